"""The pipeline's jobs beside training: prune a trained model into its pruned file and report,
and rebuild a base's initial weights theta_0 (evaluation: :mod:`.evaluation`)."""

from __future__ import annotations

import logging

import torch

from prunebench import methods, models
from prunebench.core.errors import UserError
from prunebench.core.forms import Metrics, PruneReport, read_form, write_form
from prunebench.core.io import sha256, write_together
from prunebench.core.names import normalize_setting
from prunebench.core.provenance import provenance
from prunebench.data.cifar import Data
from prunebench.models import foreign, masks
from prunebench.models.counting import count_macs, count_params

from .checkpoints import load_model, save_model, weights_sha256
from .checks import kernel_patterns, mask_checks, mask_layers, physical_checks, width_layers
from .runs import RunSpec, starting_model

log = logging.getLogger("prunebench")


def prune_run(model_path: str, method_name: str, setting: str, seed: int, out: str, report_path: str, physical_out: str | None = None, data_path: str | None = None, train_subset: int | None = None, external: dict | None = None) -> dict:
    """Prune a trained full model (a chained method: the last step's) by ``method`` at
    ``setting``; write the smaller network (with the kept indices per group) and prune.json
    (counts before/after, per-layer widths). A criterion that ranks on feature maps reads the
    training images of ``data_path``. ``external``: how the external method prunes (``function``
    with its ``settings``, or ``module`` with its ``builder``)."""
    from prunebench.pruning import prune as cut

    method = methods.get(method_name)
    if physical_out is not None and method.physical is None:
        raise UserError(f"{method_name} has no physically pruned form; drop --physical-out")
    model, meta = load_model(model_path)
    arch, num_classes, options = meta["arch"], meta["num_classes"], meta["options"]
    method.check_arch(arch)
    method.check_setting(arch, setting)
    if list(meta["cfg"]) != models.default_cfg(arch) and not method.chained:
        raise UserError(f"{model_path} is already pruned (cfg {meta['cfg']}); prune the full {arch} model")
    _check_source(method, setting, meta.get("run") or {}, model_path)
    model.eval()
    evidence = {}
    if method.data_for(setting):
        if data_path is None:
            raise UserError(f"{method_name} {setting} ranks filters by their feature maps over the training set; pass --data")
        from prunebench.pruning.activations import activation_stats

        evidence["activations"] = activation_stats(model, meta, Data(data_path, train_subset, None), torch.device("cpu"))
    before = model  # the network the counts before pruning are of
    if method.external or method.prune_module is not None:
        small, pruned, layers, before = _external(method, external or {}, model, arch, setting, seed, num_classes, options, data_path, train_subset)
        kept = None
    elif method.masked:
        pruned = method.prune(model, arch, setting, seed, **evidence)
        small, kept, layers = masks.apply(masks.clone(model), pruned.masks), None, mask_layers(model, pruned)
    else:
        pruned = method.prune(model, arch, setting, seed, **evidence)
        small = cut(model, arch, pruned.keep, num_classes, **options)
        groups = model.channel_groups()
        kept = {g.name: (pruned.keep[g.name].tolist() if g.name in pruned.keep else list(range(g.width))) for g in groups}
        layers = [
            {"layer": g.name, "layer_id": g.layer_id, "stage": g.stage, "selection": g.selection, "ratio": round(pruned.ratios.get(g.name, 0.0), 6), "before": g.width, "after": len(kept[g.name])}
            for g in groups
        ]
    run = {**meta.get("run", {}), "method": method_name, "setting": setting, "arm": "pruned"}
    report = {
        "run": run,
        "arch": arch,
        "method": method_name,
        "setting": setting,
        "options": options,
        "trained_lr": (meta.get("hparams") or {}).get("schedule", {}).get("lr"),  # the pruned model's initial LR
        "standin": bool(meta.get("standin", False)),
        "cfg_before": list(before.cfg),
        "cfg_after": list(small.cfg),
        "macs_before": count_macs(before),
        "macs_after": count_macs(small),
        "params_before": count_params(before),
        "params_after": count_params(small),
        **pruned.notes,
        "layers": layers,
        "input": {"path": model_path, "sha256": sha256(model_path)},
        "provenance": provenance(),
    }
    if method.masked:
        report["unit"] = "conv weights"  # of the per-layer before/after counts
        report["mask_checks"] = mask_checks(small, None)
        report["kernel_pattern"] = kernel_patterns(small, pruned.masks)
    if method.physical is not None:
        report["physical"], physical_model = physical_checks(small, method.physical, arch, num_classes, options)
        report["mask_checks"]["macs_physical"] = report["physical"]["macs"]
    report["macs_reduction_pct"] = round(100 * (1 - report["macs_after"] / report["macs_before"]), 2)
    report["params_reduction_pct"] = round(100 * (1 - report["params_after"] / report["params_before"]), 2)
    writes = [
        (out, lambda: save_model(out, small, arch, num_classes, options=options, run=run, kept=kept, source=model_path, standin=report["standin"])),
        (report_path, lambda: write_form(report_path, PruneReport, report)),
    ]
    if physical_out is not None:
        physical_options = {**options, "dead_offsets": True}
        writes.append((physical_out, lambda: save_model(physical_out, physical_model, arch, num_classes, options=physical_options, run={**run, "arm": "physical"}, source=out, standin=report["standin"])))
    write_together(*writes)
    log.info("pruned %s by %s at %s: MACs -%.1f%%, params -%.1f%% -> %s", arch, method_name, setting, report["macs_reduction_pct"], report["params_reduction_pct"], out)
    return report


def _check_source(method, setting: str, run: dict, path: str) -> None:
    """The model is the run this method prunes at ``setting``: the base, or its own arm at this
    setting (SFP's soft run at its keep rate) or at the previous one (a chained method's round)."""
    source = method.source(setting)
    if source is None:
        if run.get("arm", "base") != "base":
            raise UserError(f"{path} is a {run.get('arm')} run, not a trained base; {method.name} prunes the base run's model.pt")
        return
    want = (method.name, normalize_setting(source[0]), source[1])
    got = (run.get("method"), normalize_setting(run.get("setting")), run.get("arm", "base"))
    if got != want:
        what = "a trained base" if got[2] == "base" else f"the {got[2]} run of {got[0]} at {got[1]}"
        other = source[0] == setting and (got[0], got[2]) == (want[0], want[2])  # the same run kind at another setting
        raise UserError(f"{path} is {what}, but {method.name} at {setting} prunes its {want[2]} run at {want[1]}; pass that run's model.pt{f', or --setting {got[1]}' if other else ''}")


def _external(method, spec: dict, model, arch: str, setting: str, seed: int, num_classes: int, options: dict, data_path, train_subset) -> tuple:
    """The pruned network of an external method fitted to ``arch`` (masked, for a masked one),
    its Pruned (prune.json's notes of where it came from), its per-layer rows and the full
    network it is counted against; a module with a ``reference`` is kept as it is (foreign)."""
    from prunebench.methods import external as ext

    function, module_file = spec.get("function"), spec.get("module")
    if method.prune_module is not None:
        module, source, notes = method.prune_module(model, arch, setting, seed), f"the module {method.name} returned", {"external": ext.source_of(method.prune_module)}
    elif (function is None) == (module_file is None):
        raise UserError(f"the {method.name} method prunes by a function (--function) or a pruned module (--pruned-module); pass one of them")
    elif module_file is not None:
        module, source = foreign.read_module(module_file, spec.get("builder")), f"pruned module {module_file}"
        notes = {"external": {"module": module_file, "module_sha256": sha256(module_file), "builder": spec.get("builder")}}
        if spec.get("reference"):
            if method.masked:
                raise UserError(f"{method.name} reads a dense masked prunebench network; a module pruned from another network ({spec['reference']}) goes with method external")
            recipe = {"file": module_file, "sha256": notes["external"]["module_sha256"], "builder": spec.get("builder"), "reference": spec["reference"]}
            small, layers, full = _foreign(module, recipe, source, models.image_size(arch), num_classes)
            return small, methods.Pruned({}, {}, {"external": {**notes["external"], "reference": spec["reference"]}}), layers, full
    else:
        data = Data(data_path, train_subset, None) if data_path is not None else None
        module, found = ext.prune_with(function, model, spec.get("settings") or {}, data)
        source, notes = f"the module {function} returned", {"external": {**found, "settings": spec.get("settings") or {}}}
    small = ext.fit_registry(module, arch, num_classes, options, source)
    if not method.masked:
        return small, methods.Pruned({}, {}, notes), width_layers(model, small), model
    found = ext.dense_masks(module, small, arch, source)
    pruned = methods.Pruned({}, masks.pruned_ratios(found), notes, masks=found)
    return masks.apply(small, found), pruned, mask_layers(model, pruned), model


def _foreign(module, recipe: dict, source: str, image_size: int, num_classes: int) -> tuple:
    """A pruned module of another network, kept as it is: checked against its reference (every
    layer there, no wider) and to classify the data's images; the module marked with the recipe
    that rebuilds it, its per-layer rows, and the reference network, counted at the family's size."""
    full = foreign.sized(foreign.reference(recipe), image_size)
    layers = foreign.layer_rows(module, full, source, recipe["reference"])
    for net, what in ((full, f"reference network {recipe['reference']}"), (module, source)):
        foreign.check_forward(net, num_classes, image_size, what)
    return foreign.adopt(module, recipe, image_size), layers, full


def init_run(base_path: str, metrics_path: str, out: str) -> dict:
    """Rebuild a base run's initial weights theta_0 (same seed, model and options, through the same
    code as training) and check them against the hash the base recorded before its first step."""
    from prunebench.core.utils import seed_everything

    _, meta = load_model(base_path)
    run = meta.get("run", {})
    if run.get("arm") != "base" or list(meta["cfg"]) != models.default_cfg(meta["arch"]):
        raise UserError(f"{base_path} is not a trained base (arm {run.get('arm')!r}); pass the base run's model.pt")
    metrics = read_form(metrics_path, Metrics)
    if metrics["run"] != run:
        raise UserError(f"{metrics_path} is not the metrics.json of {base_path}; pass the pair from one run")
    spec = RunSpec(meta["arch"], "base", int(run["seed"]), options=meta["options"])
    seed_everything(spec.seed)
    model, options, _, _ = starting_model(spec, meta["num_classes"])
    digest, recorded = weights_sha256(model), metrics.get("init_sha256")
    if recorded is not None and digest != recorded:
        raise UserError(f"theta_0 rebuilt for {base_path} differs from the init it trained from (sha256 {digest[:12]} != {recorded[:12]}); was it trained by another torch version? retrain the base")
    if recorded is None:
        log.warning("%s records no init hash (trained before prunebench recorded one): theta_0 is rebuilt from its seed, unchecked", metrics_path)
    init_meta = {"arm": "init", **{k: run[k] for k in ("dataset", "arch", "seed", "scale") if k in run}}
    save_model(out, model, spec.arch, meta["num_classes"], options=options, run=init_meta, base=base_path, init_sha256=digest, verified=recorded is not None, standin=bool(meta.get("standin", False)))
    log.info("theta_0 of %s (seed %d, sha256 %s, %s) -> %s", spec.arch, spec.seed, digest[:12], "checked" if recorded else "unchecked", out)
    return {"sha256": digest, "verified": recorded is not None}
