"""Sensitivity curves without retraining (Li et al. Fig. 2b, 6, 8, 9 and the consecutive-layer
comparison): one trained model, many pruned copies, each evaluated on the test set.

One job computes a whole curve family: every listed layer at every listed ratio (``layer``
mode, one criterion), or every prunable layer at once at each ratio (``consecutive`` mode, one
ranking strategy). A point is a physically pruned copy, so its evaluation also runs at the
pruned network's cost. The job also records, per layer, the filters' L1 norms sorted and
normalised (Fig. 2a).
"""

from __future__ import annotations

import logging
import time

import torch
from torch import nn

from prunebench import models
from prunebench.core.errors import UserError
from prunebench.core.forms import Curve, write_form
from prunebench.core.io import sha256
from prunebench.core.provenance import provenance
from prunebench.core.utils import hms
from prunebench.data.cifar import Data, trained_mean_std
from prunebench.models import masks
from prunebench.pruning import ACTIVATION_CRITERIA, CRITERIA, STRATEGIES, prune, select_filters
from prunebench.pruning.activations import activation_stats
from prunebench.pruning.criteria import Evidence
from prunebench.training.checkpoints import load_model
from prunebench.training.loop import evaluate

log = logging.getLogger("prunebench")
MODES = ("layer", "consecutive")
# Li et al.'s sensitive layers (section 4.2, PROTOCOLS section 8): marked on the curves.
SENSITIVE = {"resnet56": (20, 38, 54), "resnet110": (36, 38, 74)}


def sorted_norms(model: nn.Module) -> dict[int, list[float]]:
    """Li's layer number -> its filters' L1 norms, largest first, divided by the largest (Fig. 2a)."""
    weights, generator = dict(model.named_parameters()), torch.Generator()
    out = {}
    for g in model.channel_groups():
        if not g.selection:
            norms = CRITERIA["l1"](Evidence(weights[g.weight_key].detach().cpu(), generator)).sort(descending=True).values
            out[g.layer_id] = [round(float(v), 6) for v in norms / norms[0].clamp_min(1e-12)]
    return out


def curve_run(model_path: str, data_path: str, mode: str, name: str, layers: tuple[int, ...], ratios: tuple[float, ...], seed: int, train_subset: int | None, test_subset: int | None, device: torch.device, out: str) -> dict:
    """Evaluate the pruned copies of one curve family; write curve.json."""
    if mode not in MODES:
        raise UserError(f"unknown curve mode {mode!r}; choose one of {', '.join(MODES)}")
    known = CRITERIA if mode == "layer" else STRATEGIES
    if name not in known:
        raise UserError(f"{mode} curves take one of {', '.join(known)}, not {name!r}")
    model, meta = load_model(model_path)
    arch, num_classes, options = meta["arch"], meta["num_classes"], meta["options"]
    if list(meta["cfg"]) != models.default_cfg(arch) or masks.is_masked(model):
        what = "masked (its pruned weights held at zero)" if masks.is_masked(model) else "already pruned"
        raise UserError(f"{model_path} is {what}; sensitivity curves start from the full trained model, a base run's model.pt")
    groups = {g.layer_id: g for g in model.channel_groups() if not g.selection}
    if not groups:
        raise UserError(f"{arch} has no filter groups; sensitivity curves need vgg16, resnet56, resnet110 or another filter-pruned model")
    layers = tuple(layers) or tuple(groups)  # none given: every prunable layer
    unknown = [layer for layer in layers if layer not in groups]
    if unknown:
        raise UserError(f"{arch} has no prunable layer {unknown[0]}; its layers are {', '.join(map(str, groups))}")
    data = Data(data_path, train_subset, test_subset)
    model = model.to(device).eval()
    stats = trained_mean_std(meta.get("hparams"), data.dataset)

    def accuracy(net: nn.Module) -> float:
        return evaluate(net.to(device), data.test_x, data.test_y, 1000, device, stats)["accuracy"]

    activations = activation_stats(model, meta, data, device) if name in ACTIVATION_CRITERIA else None
    jobs = [(layer, r) for layer in layers for r in ratios] if mode == "layer" else [(None, r) for r in ratios]
    points, start = [], time.time()
    for i, (layer, ratio) in enumerate(jobs, 1):
        chosen = [groups[layer]] if layer is not None else list(groups.values())
        want = {g.name: ratio for g in chosen}
        if mode == "layer":
            keep = select_filters(model, want, name, seed, activations=activations)
        else:
            keep = select_filters(model, want, "l1", seed, strategy=name)
        acc = accuracy(prune(model, arch, keep, num_classes, **options))
        points.append({"layer": layer, "ratio": ratio, "kept": {g.layer_id: len(keep.get(g.name, range(g.width))) for g in chosen}, "accuracy": acc})
        eta = (time.time() - start) / i * (len(jobs) - i)
        log.info("point %d/%d: %s ratio %.2f -> %.2f%% (ETA %s)", i, len(jobs), f"layer {layer}" if layer else "all layers", ratio, acc, hms(eta))
    result = {
        "run": {**meta.get("run", {}), "arm": "curve", "mode": mode, "name": name},
        "arch": arch,
        "mode": mode,
        "name": name,
        "seed": seed,
        "base_accuracy": accuracy(model),
        "points": points,
        "norms": sorted_norms(model) if mode == "layer" else {},
        "sensitive": list(SENSITIVE.get(arch, ())),
        "standin": data.standin,
        "model": model_path,
        "model_sha256": sha256(model_path),
        "provenance": provenance(),
    }
    write_form(out, Curve, result)
    log.info("%s curve of %s by %s: %d points in %s -> %s", mode, arch, name, len(points), hms(time.time() - start), out)
    return result

