"""Feature-map statistics over a data set: the evidence of Li et al.'s activation criteria (Fig. 9).

Li et al. rank the filters of a layer by statistics of their pre-BatchNorm feature maps over
all training images. A forward hook on each producing conv sees those maps; per image and
channel it takes the mean, standard deviation, L1 and L2 norm of the H x W map, and sums them
over the images (in float64), so one pass gives every criterion of :data:`ACTIVATION_CRITERIA`.
"""

from __future__ import annotations

import logging
from typing import Iterable

import torch
from torch import nn

from prunebench.data.cifar import Data, eval_batches, trained_mean_std

from .criteria import ACTIVATION_CRITERIA

log = logging.getLogger("prunebench")

_SUMS = ("mean", "std", "l1", "l2", "l2sq")


@torch.no_grad()
def feature_map_stats(model: nn.Module, batches: Iterable, layers: list[str]) -> dict[str, dict[str, torch.Tensor]]:
    """{layer: {criterion: one value per output channel}} for the conv modules named in ``layers``,
    over the images of ``batches`` (pairs of input and label), the model in eval mode."""
    modules = dict(model.named_modules())
    sums: dict[str, dict] = {name: {"n": 0, **{k: 0.0 for k in _SUMS}} for name in layers}

    def record(name: str):
        def hook(module, inputs, out):
            f = out.detach().flatten(2).double()  # (images, channels, H*W)
            l2 = f.norm(dim=2)
            s = sums[name]
            s["n"] += f.shape[0]
            s["mean"] = s["mean"] + f.mean(2).sum(0)
            s["std"] = s["std"] + f.std(2, correction=0).sum(0)
            s["l1"] = s["l1"] + f.abs().sum(2).sum(0)
            s["l2"] = s["l2"] + l2.sum(0)
            s["l2sq"] = s["l2sq"] + (l2 * l2).sum(0)

        return hook

    handles = [modules[name].register_forward_hook(record(name)) for name in layers]
    was_training = model.training
    model.eval()
    try:
        for x, _ in batches:
            model(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    out = {}
    for name, s in sums.items():
        if not s["n"]:
            raise ValueError("feature_map_stats: no images in the batches")
        n, mean_l2 = s["n"], s["l2"] / s["n"]
        stats = {"mean_mean": s["mean"] / n, "mean_std": s["std"] / n, "mean_l1": s["l1"] / n, "mean_l2": mean_l2, "var_l2": (s["l2sq"] / n - mean_l2 * mean_l2).clamp_min(0)}
        out[name] = {k: stats[k].float().cpu() for k in ACTIVATION_CRITERIA}
    return out


def activation_stats(model: nn.Module, meta: dict, data: Data, device: torch.device, batch_size: int = 500) -> dict:
    """Feature-map statistics of every filter group over the training images (no augmentation)."""
    layers = [g.name for g in model.channel_groups() if not g.selection]
    batches = eval_batches(data.train_x, data.train_y, batch_size, device, trained_mean_std(meta.get("hparams"), data.dataset))
    log.info("feature-map statistics of %d layers over %d training images", len(layers), len(data.train_y))
    return feature_map_stats(model.to(device), batches, layers)
