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
from prunebench.core.forms import Metrics, write_form
from prunebench.core.io import all_or_none, sha256, write_together
from prunebench.core.limits import check_crop_fits
from prunebench.core.names import normalize_setting
from prunebench.core.provenance import config_sha256, device_name, provenance
from prunebench.data import open_data
from prunebench.models import foreign, masks
from prunebench.models.counting import count_macs, count_macs_by_mask, count_params

from . import distributed
from .checkpoints import load_model, parameters_sha256, save_model, weights_sha256
from .checks import mask_checks
from .evaluation import evaluate_run
from .loop import fit_group
from .protocols import ArmProtocol
from .step import Hparams, Schedule

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


def _check_pruned_by(spec: RunSpec, source: dict, given_only: bool = False) -> None:
    """The pruned file was made by the run's method at its setting (``given_only``: where the
    command names them; a fine-tuned run otherwise takes both from the file)."""
    pairs = [(spec.method, source.get("method")), (normalize_setting(spec.setting), normalize_setting(source.get("setting")))]
    if any(want != got for want, got in pairs if not given_only or want is not None):
        raise UserError(
            f"{spec.init} was pruned by {source.get('method')} at {source.get('setting')}, not {spec.method} at"
            f" {spec.setting}; pass the pruned file of this method and setting"
        )


def starting_model(spec: RunSpec, num_classes: int) -> tuple[nn.Module, dict, dict, RunSpec]:
    """(model, model options, input files, spec) of a run; call after seeding, as init draws from
    it. A fine-tuned run takes its method and setting from the pruned file it starts from."""
    _check_spec(spec)
    if spec.arm == "finetune":
        model, meta = _pruned_file(spec.init, spec.arch, num_classes)
        source = meta.get("run", {})
        _check_pruned_by(spec, source, given_only=True)
        spec = replace(spec, method=source.get("method", spec.method), setting=source.get("setting", spec.setting))
        return model, meta["options"], {"init": {"path": spec.init, "sha256": sha256(spec.init)}}, spec
    inputs = {}
    options = models.check_options(spec.arch, spec.options)
    if spec.arm in ("base", "soft"):
        cfg = models.default_cfg(spec.arch)
    elif methods.get(spec.method).learned:
        # The learned architecture (cfg with channel selections, or masks) and its options, fresh weights.
        pruned, meta = _pruned_file(spec.init, spec.arch, num_classes)
        _check_pruned_by(spec, meta.get("run", {}))
        cfg, options = meta["cfg"], meta["options"]
        inputs["architecture"] = {"path": spec.init, "sha256": sha256(spec.init)}
        if foreign.recipe_of(pruned) is not None:
            if spec.arm == "winning":
                raise UserError(f"{spec.init} is another network's module, not a masked model; the winning ticket puts masks on theta_0 (use a masked method)")
            # Another network's pruned module: its own layers, drawn afresh by the family's rule.
            foreign.reinit(pruned, models.build(spec.arch, None, num_classes, **options))
            return pruned, options, inputs, spec
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


@dataclass
class _Run:
    """One run made ready to train: its starting model and what its files will record."""

    spec: RunSpec
    model: nn.Module
    hp: Hparams
    checkpoint: Path
    record: dict  # counts, options, inputs, init hash: metrics.json's own fields
    masked_before: float | None


def _prepare(spec: RunSpec, data, data_path: str, protocol: ArmProtocol, hparams: dict, checkpoint: Path, scale: str) -> _Run:
    """Seed, build the starting model and count it; the schedule (Scratch-B's from the counts)."""
    from prunebench.core.utils import seed_everything

    seed_everything(spec.seed)
    model, options, inputs, spec = starting_model(spec, data.num_classes)
    inputs = {"data": {"path": data_path, "sha256": sha256(data_path)}, **inputs}
    init_hash = weights_sha256(model)  # theta_0 as trained from, before the first step
    own_options = spec.arm not in ("base", "finetune", "soft") and methods.get(spec.method).scratch_options
    recipe = foreign.recipe_of(model)
    if recipe is not None:  # another network's pruned module: counted against its own reference
        full = foreign.sized(foreign.reference(recipe), model.image_size)
    else:
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
    hp = Hparams(schedule=Schedule(epochs, protocol.lr, milestones, protocol.gamma, **warmup), seed=spec.seed, **hparams)
    record = {
        "run": spec.describe(data.dataset, scale), "epochs": epochs, "macs": macs, "params": params, "macs_full": macs_full,
        "params_full": params_full, "options": options, "init_sha256": init_hash, "inputs": inputs,
    }  # fmt: skip
    return _Run(spec, model, hp, checkpoint, record, masks.sparsity(model) if masks.is_masked(model) else None)


def train_run(spec: RunSpec, data_path: str, protocol: ArmProtocol, hparams: dict, device: torch.device, model_out: str, metrics_out: str, checkpoint: str | None = None, *args, eval_out: str | None = None, **kw) -> dict:
    """One run of :func:`train_runs`: ``train_run(spec, ..., model_out, metrics_out)``."""
    return train_runs([spec], data_path, protocol, hparams, device, [model_out], [metrics_out], [checkpoint], *args, eval_outs=[eval_out], **kw)[0]


def train_runs(
    specs: list[RunSpec],
    data_path: str,
    protocol: ArmProtocol,
    hparams: dict,
    device: torch.device,
    model_outs: list[str],
    metrics_outs: list[str],
    checkpoints: list[str | None] | None = None,
    train_subset: int | None = None,
    test_subset: int | None = None,
    scale: str = "custom",
    loader: dict | None = None,
    eval_outs: list[str | None] | None = None,
    fuse: str = "auto",
) -> list[dict]:
    """Train runs that differ only in their seed (one, or a fused group: :mod:`.fused`) and write
    each one's ``model_out`` and ``metrics_out`` together, exactly as it would alone; resume each
    from its checkpoint (default: ``checkpoint.pt`` beside its ``model_out``) if one matches.
    ``loader``: ImageNet's options (crop, resize, workers, decoder; see
    :class:`prunebench.data.imagenet.ImageNetData`). ``eval_outs``: also evaluate the written
    files as :func:`.evaluation.evaluate_run` does (the pipeline's eval.json: one process start and,
    on a cluster, one queued job fewer per run); the checkpoints go only after every run's
    files are written, so a job killed before that resumes at its last epoch. ``fuse``: see
    :func:`.loop.fit_group`.

    Launched by torchrun, one run trains data-parallel over its processes (:mod:`.distributed`)
    and rank 0 writes the files; the others return an empty list."""
    started = time.time()
    checkpoints = checkpoints or [None] * len(specs)
    eval_outs = eval_outs or [None] * len(specs)
    if not len(specs) == len(model_outs) == len(metrics_outs) == len(checkpoints) == len(eval_outs):
        raise UserError(f"{len(specs)} runs need as many model, metrics, checkpoint and eval paths")
    ctx = distributed.from_env()
    if ctx.world > 1 and len(specs) > 1:
        raise UserError("a data-parallel (torchrun) job trains one run; pass one --seed")
    data = open_data(data_path, train_subset, test_subset, **(loader or {}))
    for spec in specs if data.loader else ():  # ImageNet: the crop must survive the network's pools
        check_crop_fits(spec.arch, data.loader["crop"], "--crop")
    device = distributed.start(ctx, device)
    if not ctx.main:
        logging.getLogger("prunebench").setLevel(logging.WARNING)  # one progress log: rank 0's
    todo = [_prepare(s, data, data_path, protocol, hparams, Path(c or Path(m).with_name("checkpoint.pt")), scale) for s, c, m in zip(specs, checkpoints, model_outs)]
    what = todo[0].record["run"] | ({"seed": [r.spec.seed for r in todo]} if len(todo) > 1 else {})
    log.info("train %s on %s (%d images), %d epochs, device %s%s", what, data.dataset, data.train_images, todo[0].hp.schedule.epochs, device, f" x {ctx.world} processes" if ctx.world > 1 else "")
    try:
        results = fit_group([r.model for r in todo], data, [r.hp for r in todo], device, [r.checkpoint for r in todo], ctx, fuse=fuse)
        _same_weights_everywhere([r.model for r in todo], ctx)
    finally:
        distributed.finish(ctx)
    if not ctx.main:
        return []
    # All or none: an evaluation that fails removes the models and metrics written before it (the
    # checkpoints stay, so the rerun resumes at the end of training).
    with all_or_none(*model_outs, *metrics_outs, *eval_outs):
        out = [_write(r, result, data, ctx, device, train_subset, test_subset, started, m, j) for r, result, m, j in zip(todo, results, model_outs, metrics_outs)]
        for r, m, j, e in zip(todo, model_outs, metrics_outs, eval_outs):
            if e is not None:
                evaluate_run(m, j, data_path, test_subset, device, e, loader)
    for r, metrics, m in zip(todo, out, model_outs):
        r.checkpoint.unlink(missing_ok=True)
        log.info("done: %sbest %.2f%%, final %.2f%% -> %s", f"seed {r.spec.seed}: " if len(todo) > 1 else "", metrics["best_accuracy"], metrics["final_accuracy"], m)
    return out


def _same_weights_everywhere(trained: list[nn.Module], ctx: distributed.Context) -> None:
    """Data-parallel replicas end with the same weights, or no process writes a final output."""
    if ctx.world == 1:
        return
    everyone = distributed.gather([parameters_sha256(m) for m in trained], ctx)
    if any(mine != everyone[0] for mine in everyone):
        shown = ", ".join(f"rank {r}: {d[0][:12]}" for r, d in enumerate(everyone))
        raise UserError(f"the processes of this run ended with different weights ({shown}); nothing was written: end every process of earlier runs, then rerun")


def _write(r: _Run, result: dict, data, ctx, device, train_subset, test_subset, started: float, model_out: str, metrics_out: str) -> dict:
    """Write one trained run's model.pt and metrics.json together."""
    spec, model, hp, record = r.spec, r.model, r.hp, dict(r.record)
    checks = mask_checks(model, r.masked_before) if r.masked_before is not None or spec.arm == "soft" else None
    if spec.arm == "soft":  # the final zero pattern is the pruned architecture
        record["macs"] = checks["macs_nonzero"]
        record["params"] -= checks["conv_weights"] - checks["nonzero_after"]
    run, options, inputs = record["run"], record["options"], record["inputs"]
    resolved = {"run": run, "epochs": record["epochs"], "hparams": hp.as_dict(), "options": options, "inputs": inputs, "train_subset": train_subset, "test_subset": test_subset, **({"loader": data.loader} if data.loader else {})}
    metrics = {
        "run": run,
        **{k: result[k] for k in ("final_accuracy", "best_accuracy", "best_epoch")},
        **{k: record[k] for k in ("epochs", "macs", "params", "macs_full", "params_full", "options", "init_sha256")},
        "hparams": hp.as_dict(),
        "data": {"train_images": data.train_images, "test_images": data.test_images, "standin": data.standin, **data.loader},
        "processes": ctx.world,
        "inputs": inputs,
        "device": device_name(device),
        "train_seconds": result["train_seconds"],  # a fused run's share of its job's time
        "cuda_graph": result["cuda_graph"],  # the step replayed as a CUDA graph (same arithmetic)
        "fused_copies": result["fused_copies"],  # runs trained as one network in its job (1: alone)
        "wall_seconds": time.time() - started,
        "history": result["history"],
        "run_config_sha256": config_sha256(resolved),  # everything that decides the run's result
        "provenance": provenance(),
    }
    if checks is not None:
        metrics["mask_checks"] = checks
    write_together(
        (model_out, lambda: save_model(model_out, model, spec.arch, data.num_classes, options=options, run=run, hparams=hp.as_dict(), standin=data.standin)),
        (metrics_out, lambda: write_form(metrics_out, Metrics, metrics)),
    )
    return metrics
