"""What one run is: the application layer between the CLI and the library.

A run is described by its parameters (arch, model options, arm, method, setting, seed, and the
arm's protocol); from them this module builds the starting model (fresh, fine-tuned from a
pruned file, or the pruned architecture on a fresh init), trains it through the one training
loop, and writes the run's files. Pruning and evaluation live here too, so each CLI command is
parsing plus one call.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch import nn

from prunebench import methods, models
from prunebench.core.errors import UserError
from prunebench.core.io import read_json, sha256, write_json, write_together
from prunebench.core.provenance import config_sha256, device_name, provenance
from prunebench.data import open_data
from prunebench.data.cifar import Data, trained_mean_std
from prunebench.models import masks
from prunebench.models.counting import count_macs, count_macs_by_mask, count_params

from . import distributed
from .checkpoints import load_model, save_model, weights_sha256
from .checks import failed, kernel_patterns, mask_checks, mask_layers, physical_checks, run_checks
from .loop import Hparams, Schedule, evaluate_batches, fit
from .protocols import ArmProtocol

log = logging.getLogger("prunebench")
ARMS = ("base",) + methods.ARMS


@dataclass(frozen=True)
class RunSpec:
    """Everything that decides which network a run trains, and from what."""

    arch: str
    arm: str
    seed: int = 1
    method: str | None = None
    setting: str | None = None
    options: dict = field(default_factory=dict)  # model options (models.default_options)
    init: str | None = None  # finetune: the pruned file; scratch of a learned method: its architecture
    theta0: str | None = None  # winning ticket: the base's initial weights (prunebench init)

    def describe(self, dataset: str, scale: str) -> dict:
        return {"dataset": dataset, "arch": self.arch, "method": self.method, "setting": self.setting, "arm": self.arm, "seed": self.seed, "scale": scale}


def _check_spec(spec: RunSpec) -> None:
    models.check_arch(spec.arch)
    if spec.arm not in ARMS:
        raise UserError(f"unknown arm {spec.arm!r}; choose one of {', '.join(ARMS)}")
    if spec.theta0 and spec.arm != "winning":
        raise UserError(f"--theta0 is the winning ticket's init; the {spec.arm} arm does not take it")
    if spec.arm == "base":
        if spec.method or spec.setting or spec.init:
            raise UserError("the base arm trains the full network from scratch; drop --method, --setting and --init")
        return
    if spec.arm == "finetune":
        if not spec.init:
            raise UserError("the finetune arm needs --init PATH, the pruned file (prunebench prune --out)")
        return
    if not spec.method or spec.setting is None:
        raise UserError(f"the {spec.arm} arm needs --method and --setting: which pruned architecture to train from scratch")
    method = methods.get(spec.method)
    method.check_arch(spec.arch)
    method.check_setting(spec.arch, spec.setting)
    if spec.arm not in method.arms:
        raise UserError(f"{spec.method} has no {spec.arm} arm; its arms are {', '.join(method.arms)}")
    if spec.arm == "soft":
        if spec.init:
            raise UserError("the soft arm trains the full network from scratch while pruning; drop --init")
        return
    if method.learned and not spec.init:
        raise UserError(f"{spec.method} learns its architecture: the {spec.arm} arm needs --init PATH, the pruned file")
    if spec.arm == "winning" and not spec.theta0:
        raise UserError("the winning arm needs --theta0 PATH, the base's initial weights (prunebench init)")


def _pruned_file(path: str, arch: str, num_classes: int) -> tuple[nn.Module, dict]:
    model, meta = load_model(path, expect_arch=arch)
    if meta["num_classes"] != num_classes:
        raise UserError(f"{path} has {meta['num_classes']} classes but the data has {num_classes}; use the matching dataset")
    return model, meta


def _theta0(path: str, arch: str, num_classes: int, options: dict) -> dict:
    """The state dict of an init file: the full, unmasked network the pruned one came from."""
    model, meta = load_model(path, expect_arch=arch)
    if meta.get("run", {}).get("arm") != "init" or masks.is_masked(model) or list(meta["cfg"]) != models.default_cfg(arch):
        raise UserError(f"{path} is not an init file (the full {arch} before training); make it with 'prunebench init'")
    if meta["num_classes"] != num_classes or meta["options"] != options:
        raise UserError(f"{path} is the init of a {meta['num_classes']}-class {arch} with options {meta['options']}, not of this pruned model; pass its base's init.pt")
    return model.state_dict()


def starting_model(spec: RunSpec, num_classes: int) -> tuple[nn.Module, dict, dict, RunSpec]:
    """(model, model options, input files, spec) of a run; call after seeding, as init draws from
    it. A fine-tuned run takes its method and setting from the pruned file it starts from."""
    _check_spec(spec)
    if spec.arm == "finetune":
        model, meta = _pruned_file(spec.init, spec.arch, num_classes)
        source = meta.get("run", {})
        spec = replace(spec, method=source.get("method", spec.method), setting=source.get("setting", spec.setting))
        return model, meta["options"], {"init": {"path": spec.init, "sha256": sha256(spec.init)}}, spec
    inputs = {}
    options = models.check_options(spec.arch, spec.options)
    if spec.arm in ("base", "soft"):
        cfg = models.default_cfg(spec.arch)
    elif methods.get(spec.method).learned:
        # The learned architecture (cfg with channel selections, or masks) and its options, fresh weights.
        pruned, meta = _pruned_file(spec.init, spec.arch, num_classes)
        source = meta.get("run", {})
        if (source.get("method"), source.get("setting")) != (spec.method, spec.setting):
            raise UserError(
                f"{spec.init} was pruned by {source.get('method')} at {source.get('setting')}, not {spec.method} at"
                f" {spec.setting}; pass the pruned file of this method and setting"
            )
        cfg, options = meta["cfg"], meta["options"]
        inputs["architecture"] = {"path": spec.init, "sha256": sha256(spec.init)}
        model = models.build(spec.arch, cfg, num_classes, **options)
        if spec.arm == "winning":
            if not masks.is_masked(pruned):
                raise UserError(f"{spec.init} is not a masked model; the winning ticket puts masks on theta_0 (use a masked method)")
            model.load_state_dict(_theta0(spec.theta0, spec.arch, num_classes, options))
            inputs["theta0"] = {"path": spec.theta0, "sha256": sha256(spec.theta0)}
            masks.apply(model, masks.masks_of(pruned))  # theta_0 times the mask
        elif masks.is_masked(pruned):
            masks.apply(model, masks.masks_of(pruned))
            masks.scratch_init(model)
        return model, options, inputs, spec
    else:
        method = methods.get(spec.method)
        cfg = method.scratch_cfg(spec.arch, spec.setting)
        if method.scratch_options:
            options = models.check_options(spec.arch, {**options, **method.scratch_options(spec.arch, spec.setting)})
    return models.build(spec.arch, cfg, num_classes, **options), options, inputs, spec


def train_run(
    spec: RunSpec,
    data_path: str,
    protocol: ArmProtocol,
    hparams: dict,
    device: torch.device,
    model_out: str,
    metrics_out: str,
    checkpoint: str | None = None,
    train_subset: int | None = None,
    test_subset: int | None = None,
    scale: str = "custom",
    loader: dict | None = None,
    eval_out: str | None = None,
) -> dict:
    """Train one run and write ``model_out`` and ``metrics_out`` together; resume from the
    checkpoint (default: ``checkpoint.pt`` beside ``model_out``) if one matches. ``loader``:
    ImageNet's options (crop, resize, workers, decoder; see :class:`prunebench.data.imagenet.ImageNetData`).
    ``eval_out``: also evaluate the written files as :func:`evaluate_run` does (the pipeline's
    eval.json: one process start and, on a cluster, one queued job fewer per run); the
    checkpoint goes only after it, so a job killed while evaluating resumes at its last epoch.

    Launched by torchrun, the run trains data-parallel over its processes (:mod:`.distributed`)
    and rank 0 writes the files; the others return None."""
    from prunebench.core.utils import seed_everything

    started = time.time()
    ctx = distributed.from_env()
    data = open_data(data_path, train_subset, test_subset, **(loader or {}))
    device = distributed.start(ctx, device)
    if not ctx.main:
        logging.getLogger("prunebench").setLevel(logging.WARNING)  # one progress log: rank 0's
    seed_everything(spec.seed)
    model, options, inputs, spec = starting_model(spec, data.num_classes)
    inputs = {"data": {"path": data_path, "sha256": sha256(data_path)}, **inputs}
    init_hash = weights_sha256(model)  # theta_0 as trained from, before the first step
    own_options = spec.arm not in ("base", "finetune", "soft") and methods.get(spec.method).scratch_options
    full = models.build(spec.arch, None, data.num_classes, **(models.check_options(spec.arch, spec.options) if own_options else options))
    # A masked network's architecture is its masks: a kept weight that happens to start at exactly 0
    # (theta_0 or a fresh draw) is still trained, so it counts (evaluate's macs_agree checks this).
    macs = count_macs_by_mask(model) if masks.is_masked(model) else count_macs(model)
    params, macs_full, params_full = count_params(model), count_macs(full), count_params(full)
    epochs, milestones = protocol.epochs, protocol.milestone_epochs(protocol.epochs, scratch_b=False)
    if spec.arm == "scratch-b":
        budget_macs = macs if protocol.budget_after_mask else count_macs(model, sparse=False)
        epochs, milestones, how = protocol.scratch_b(macs_full, budget_macs)
        log.info("scratch-b: %d epochs = %s, LR steps at %s", epochs, how, list(milestones))
        if protocol.max_epochs is not None and epochs > protocol.max_epochs:
            epochs = protocol.max_epochs
            milestones = protocol.milestone_epochs(epochs)
            log.info("scratch-b: capped at %d epochs by --max-epochs (the scale's limit, not the protocol)", epochs)
    if hparams.get("sparsity") and spec.arm != "base":
        raise UserError("--sparsity trains a base model for network slimming; drop it for the other arms")
    if spec.arm == "soft":
        hparams = {**hparams, "soft_keep": float(spec.setting)}
    warmup = {"warmup_epochs": protocol.warmup_epochs, "warmup_lr": protocol.warmup_lr}
    schedule = Schedule(epochs, protocol.lr, milestones, protocol.gamma, **warmup)
    hp = Hparams(schedule=schedule, seed=spec.seed, **hparams)
    masked_before = masks.sparsity(model) if masks.is_masked(model) else None
    ckpt = Path(checkpoint or Path(model_out).with_name("checkpoint.pt"))
    run = spec.describe(data.dataset, scale)
    log.info("train %s on %s (%d images), %d epochs, device %s%s", run, data.dataset, data.train_images, epochs, device, f" x {ctx.world} processes" if ctx.world > 1 else "")
    try:
        result = fit(model, data, hp, device, ckpt, ctx)
    finally:
        distributed.finish(ctx)
    if not ctx.main:
        return None
    checks = mask_checks(model, masked_before) if masked_before is not None or spec.arm == "soft" else None
    if spec.arm == "soft":  # the final zero pattern is the pruned architecture
        macs = checks["macs_nonzero"]
        params -= checks["conv_weights"] - checks["nonzero_after"]
    resolved = {"run": run, "epochs": epochs, "hparams": hp.as_dict(), "options": options, "inputs": inputs, "train_subset": train_subset, "test_subset": test_subset, **({"loader": data.loader} if data.loader else {})}
    metrics = {
        "run": run,
        **{k: result[k] for k in ("final_accuracy", "best_accuracy", "best_epoch")},
        "epochs": epochs,
        "macs": macs,
        "params": params,
        "macs_full": macs_full,
        "params_full": params_full,
        "options": options,
        "init_sha256": init_hash,
        "hparams": hp.as_dict(),
        "data": {"train_images": data.train_images, "test_images": data.test_images, "standin": data.standin, **data.loader},
        "processes": ctx.world,
        "inputs": inputs,
        "device": device_name(device),
        "train_seconds": result["train_seconds"],
        "cuda_graph": result["cuda_graph"],  # the step replayed as a CUDA graph (same arithmetic)
        "wall_seconds": time.time() - started,
        "history": result["history"],
        "run_config_sha256": config_sha256(resolved),  # everything that decides the run's result
        "provenance": provenance(),
    }
    if checks is not None:
        metrics["mask_checks"] = checks
    write_together(
        (model_out, lambda: save_model(model_out, model, spec.arch, data.num_classes, options=options, run=run, hparams=hp.as_dict(), standin=data.standin)),
        (metrics_out, lambda: write_json(metrics_out, metrics)),
    )
    if eval_out is not None:
        evaluate_run(model_out, metrics_out, data_path, test_subset, device, eval_out, loader)
    ckpt.unlink(missing_ok=True)
    log.info("done: best %.2f%%, final %.2f%% -> %s", result["best_accuracy"], result["final_accuracy"], model_out)
    return metrics


def prune_run(model_path: str, method_name: str, setting: str, seed: int, out: str, report_path: str, physical_out: str | None = None, data_path: str | None = None, train_subset: int | None = None) -> dict:
    """Prune a trained full model (a chained method: the last step's) by ``method`` at
    ``setting``; write the smaller network (with the kept indices per group) and prune.json
    (counts before/after, per-layer widths). A criterion that ranks on feature maps reads the
    training images of ``data_path``."""
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
    model.eval()
    evidence = {}
    if method.data_for(setting):
        if data_path is None:
            raise UserError(f"{method_name} {setting} ranks filters by their feature maps over the training set; pass --data")
        from prunebench.pruning.activations import activation_stats

        evidence["activations"] = activation_stats(model, meta, Data(data_path, train_subset, None), torch.device("cpu"))
    pruned = method.prune(model, arch, setting, seed, **evidence)
    if method.masked:
        small, kept, layers = masks.apply(masks.clone(model), pruned.masks), None, mask_layers(model, pruned)
    else:
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
        "cfg_before": list(meta["cfg"]),
        "cfg_after": list(small.cfg),
        "macs_before": count_macs(model),
        "macs_after": count_macs(small),
        "params_before": count_params(model),
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
        (report_path, lambda: write_json(report_path, report)),
    ]
    if physical_out is not None:
        physical_options = {**options, "dead_offsets": True}
        writes.append((physical_out, lambda: save_model(physical_out, physical_model, arch, num_classes, options=physical_options, run={**run, "arm": "physical"}, source=out, standin=report["standin"])))
    write_together(*writes)
    log.info("pruned %s by %s at %s: MACs -%.1f%%, params -%.1f%% -> %s", arch, method_name, setting, report["macs_reduction_pct"], report["params_reduction_pct"], out)
    return report


def init_run(base_path: str, metrics_path: str, out: str) -> dict:
    """Rebuild a base run's initial weights theta_0 (same seed, model and options, through the same
    code as training) and check them against the hash the base recorded before its first step."""
    from prunebench.core.utils import seed_everything

    _, meta = load_model(base_path)
    run = meta.get("run", {})
    if run.get("arm") != "base" or list(meta["cfg"]) != models.default_cfg(meta["arch"]):
        raise UserError(f"{base_path} is not a trained base (arm {run.get('arm')!r}); pass the base run's model.pt")
    metrics = read_json(metrics_path)
    if not isinstance(metrics, dict) or metrics.get("run") != run:
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


METRICS_KEYS = ("best_accuracy", "final_accuracy", "macs", "params", "macs_full", "params_full", "epochs")


def evaluate_run(model_path: str, metrics_path: str, data_path: str, test_subset: int | None, device: torch.device, out: str, loader: dict | None = None) -> dict:
    """Re-evaluate a trained model on the test set (ImageNet: at the crop and resize it trained
    with; ``loader`` may set workers and decoder); write one table cell's worth of JSON."""
    model, meta = load_model(model_path)
    metrics = read_json(metrics_path)
    if not isinstance(metrics, dict) or not isinstance(metrics.get("run"), dict):
        raise UserError(f"{metrics_path} is not a metrics.json (a JSON object with a run); pass the one 'prunebench train' wrote")
    if metrics["run"] != meta.get("run"):
        raise UserError(f"{metrics_path} describes run {metrics['run']} but {model_path} holds {meta.get('run')}; pass the pair from one run")
    missing = [k for k in METRICS_KEYS if k not in metrics]
    if missing:
        raise UserError(f"{metrics_path} lacks {', '.join(missing)}; it is incomplete or from another version, rerun the training")
    trained = metrics.get("data") if isinstance(metrics.get("data"), dict) else {}
    data = open_data(data_path, None, test_subset, **({k: trained[k] for k in ("crop", "resize") if k in trained} | (loader or {})))
    hparams = metrics.get("hparams") if isinstance(metrics.get("hparams"), dict) else {}
    stats = trained_mean_std(hparams, data.dataset)
    checks = run_checks(model, metrics)
    batch = 1000 if isinstance(data, Data) else 250  # ImageNet: 224x224 images
    test = evaluate_batches(model.to(device), data.test_batches(batch, device, stats), data.test_images, device)
    result = {
        "run": meta["run"],
        "accuracy": {"best": metrics["best_accuracy"], "final": metrics["final_accuracy"], "evaluated": test["accuracy"]},
        **{k: metrics[k] for k in ("macs", "params", "macs_full", "params_full", "epochs")},
        "lr": (hparams.get("schedule") or {}).get("lr"),  # the initial LR (the lottery study compares two)
        "sparsity": hparams.get("sparsity", 0.0),  # network slimming's penalty: a sparsity-trained base
        "standin": data.standin,
        "checks": checks,
        "checks_failed": failed(checks),
        "model": model_path,
        "model_sha256": sha256(model_path),
        "metrics": metrics_path,
        "provenance": provenance(),
    }
    write_json(out, result)
    if failed(checks):
        log.warning("sanity check failed for %s: %s; the run is left out of its table's means", model_path, ", ".join(failed(checks)))
    return result
