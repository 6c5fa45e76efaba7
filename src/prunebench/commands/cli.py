"""The ``prunebench`` command line: one small command per Snakemake rule.

Each command reads explicit input paths, calls the library and writes its outputs
atomically. Known user errors end in one line on stderr and a non-zero exit; set
``PRUNEBENCH_DEBUG=1`` (or pass ``--debug``) for a traceback.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys

import click
import torch

from prunebench import __version__, models
from prunebench.core.errors import UserError
from prunebench.core.io import check_outputs
from prunebench.core.run_lock import run_folders, wait_when_busy
from prunebench.data.cifar import NORMALISATIONS
from prunebench.models.counting import count_macs, count_params, scratch_b_epochs
from prunebench.training.distributed import from_env
from prunebench.training.fused import FUSE_MODES
from prunebench.training.runs import ARMS
from prunebench.training.step import COMPILE_MODES, PRECISIONS

from .data import imagenet_options, loader_options

log = logging.getLogger("prunebench")


def _fractions(ctx: click.Context, param: click.Parameter, text: str) -> tuple[float, ...]:
    """--milestones: comma-separated fractions of the run's epochs, each in (0, 1)."""
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a comma-separated list of numbers, e.g. 0.5,0.75") from None
    if any(not 0 < v < 1 for v in values):
        raise click.BadParameter(f"{text!r}: each milestone is a fraction of the epochs in (0, 1), e.g. 0.5,0.75")
    return values


def _cap(ctx: click.Context, param: click.Parameter, text: str | None) -> tuple[float, int] | None:
    """--scratch-b-cap RATIO,EPOCHS."""
    if not text:
        return None
    try:
        ratio, epochs = text.split(",")
        cap = (float(ratio), int(epochs))
    except ValueError:
        raise click.BadParameter(f"{text!r} is not RATIO,EPOCHS, e.g. 2,180") from None
    if cap[0] <= 0 or cap[1] < 1:
        raise click.BadParameter(f"{text!r}: the ratio must be positive and the epochs at least 1")
    return cap


def _keywords(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict:
    """--with KEY=VALUE (repeatable): keyword arguments of a pruning function; JSON values (numbers,
    true, lists) as such, anything else as text."""
    out = {}
    for text in values:
        key, sep, value = text.partition("=")
        if not sep or not key.isidentifier():
            raise click.BadParameter(f"{text!r} is not KEY=VALUE with KEY a Python name, e.g. ratio=0.5")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def _options(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict:
    """--option KEY=VALUE (repeatable): a model option; true/false become booleans."""
    out = {}
    for text in values:
        key, sep, value = text.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{text!r} is not KEY=VALUE, e.g. shortcut_grad=true")
        out[key] = {"true": True, "false": False}.get(value.lower(), value)
    return out


def _held(*outputs: str | None):
    """The run folders of ``outputs``, held for the command's life (one writer each:
    :mod:`prunebench.core.run_lock`); a data-parallel run's other ranks write nothing."""
    return run_folders(*outputs) if from_env().main else contextlib.nullcontext()


def _wait_option(command):
    return click.option(
        "--wait", is_flag=True, expose_value=False, callback=lambda ctx, param, value: wait_when_busy(value),
        help="If another process is writing a run folder this writes into, wait for it to end (default: end at once, naming it).",
    )(command)


def _method_setting(method: str | None, setting: str | None, variant: str | None) -> tuple[str | None, str | None]:
    """--variant V is Li et al.'s variant: short for --method l1 --setting V."""
    if variant is not None:
        if method not in (None, "l1") or setting is not None:
            raise UserError("give either --variant (Li et al.'s A/B, method l1) or --method with --setting, not both")
        return "l1", variant
    if (method is None) != (setting is None):
        raise UserError("--method and --setting go together: the pruning method and its variant or ratio")
    return method, setting


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="prunebench")
@click.option("--debug", is_flag=True, envvar="PRUNEBENCH_DEBUG", help="Show tracebacks for user errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Reproduce Li et al. (ICLR'17) and Rethinking the Value of Network Pruning (ICLR'19)."""
    ctx.obj = {"debug": debug}
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)


# --------------------------------------------------------------------------- describe
def _architecture(arch: str, method: str | None, setting: str | None, num_classes: int, options: dict) -> dict:
    from prunebench import methods

    options = models.check_options(arch, options)
    cfg = models.default_cfg(arch)
    if method is not None:
        m = methods.get(method)
        m.check_setting(arch, setting)
        if m.learned:
            raise UserError(f"{method} learns its architecture from trained weights; prune a model and read its prune.json")
        cfg = m.scratch_cfg(arch, setting)
    full, pruned = models.build(arch, None, num_classes, **options), models.build(arch, cfg, num_classes, **options)
    macs, macs_full = count_macs(pruned), count_macs(full)
    return {
        "arch": arch,
        "method": method,
        "setting": setting,
        "options": options,
        "num_classes": num_classes,
        "cfg": list(pruned.cfg),
        "macs": macs,
        "params": count_params(pruned),
        "macs_full": macs_full,
        "params_full": count_params(full),
    }


@cli.command()
@click.option("--arch", required=True, help=f"Architecture: {', '.join(models.ARCHS)}.")
@click.option("--variant", default=None, help="Li et al.'s pruned variant (A, B): short for --method l1 --setting V.")
@click.option("--method", default=None, help="A predefined pruning method (l1, l2, random, smallest, uniform).")
@click.option("--setting", default=None, help="The method's variant or ratio.")
@click.option("--option", "options", multiple=True, callback=_options, help="Model option KEY=VALUE (repeatable).")
@click.option("--dataset", default=None, type=click.Choice(["cifar10", "cifar100", "imagenet"]), help="Sets the class count and input size: CIFAR (32x32) for the CIFAR archs, imagenet (224x224, 1000 classes) for the ImageNet ones [default: imagenet for an ImageNet arch, else cifar10].")
@click.option("--budget-epochs", default=None, type=click.IntRange(min=1), help="Epochs of the full network, for the Scratch-B count [default: 160; 90 on imagenet].")
@click.option("--per-layer", is_flag=True, help="Print Li et al.'s Table 2 instead: per layer input, maps, MACs, params, maps kept, MAC reduction.")
def describe(arch: str, variant: str | None, method: str | None, setting: str | None, options: dict, dataset: str | None, budget_epochs: int | None, per_layer: bool) -> None:
    """Print JSON describing an architecture (cfg, MACs, params, full-network counts, Scratch-B
    epochs) without training anything; with --per-layer, a Markdown table per layer."""
    from prunebench.data.datasets import ALL_DATASETS as DATASETS

    models.check_arch(arch)
    imagenet_arch = arch in models.IMAGENET_ARCHS
    dataset = dataset or ("imagenet" if imagenet_arch else "cifar10")
    if imagenet_arch and dataset != "imagenet":
        raise UserError(f"{arch} is an ImageNet architecture (224x224 inputs) and is not built for {dataset}; use --dataset imagenet or a CIFAR arch")
    if not imagenet_arch and dataset == "imagenet":
        raise UserError(f"{arch} is a CIFAR architecture (32x32 inputs) and is not built for imagenet; use --dataset cifar10 or cifar100, or an ImageNet arch ({', '.join(models.IMAGENET_ARCHS)})")
    budget_epochs = budget_epochs or (90 if dataset == "imagenet" else 160)  # the base's epochs in config.yaml's protocols
    method, setting = _method_setting(method, setting, variant)
    info = {"dataset": dataset, **_architecture(arch, method, setting, DATASETS[dataset], options)}
    if per_layer:
        from prunebench.report import li_table2

        label = setting if method in (None, "l1") else f"{method} {setting}"
        df = li_table2.layer_table(arch, label or "full", DATASETS[dataset], info["options"], info["cfg"])
        click.echo(li_table2.to_markdown(li_table2.with_paper(df) if method == "l1" else df))
        return
    info["macs_reduction_pct"] = round(100 * (1 - info["macs"] / info["macs_full"]), 2)
    info["params_reduction_pct"] = round(100 * (1 - info["params"] / info["params_full"]), 2)
    info["scratch_b_epochs"] = scratch_b_epochs(budget_epochs, info["macs_full"], info["macs"])
    click.echo(json.dumps(info, indent=2))


# --------------------------------------------------------------------------- train
@cli.command()
@click.option("--arch", required=True, help=f"Architecture: {', '.join(models.ARCHS)}.")
@click.option("--arm", required=True, type=click.Choice(ARMS), help="base: full net; finetune: from --init; scratch-e/-b: the pruned architecture, fresh init; soft: SFP's soft pruning from scratch; winning: --init's masks on --theta0.")
@click.option("--method", default=None, help="Pruning method of the scratch arms (l1, slimming, ...).")
@click.option("--setting", default=None, help="The method's variant (A, B) or ratio (0.4).")
@click.option("--variant", default=None, help="Li et al.'s variant: short for --method l1 --setting V.")
@click.option("--option", "options", multiple=True, callback=_options, help="Model option KEY=VALUE (repeatable; base and predefined scratch arms).")
@click.option("--init", "init_path", multiple=True, type=click.Path(dir_okay=False), help="The pruned file: weights to fine-tune, or the learned architecture of a scratch arm (one per --seed).")
@click.option("--theta0", multiple=True, type=click.Path(dir_okay=False), help="The winning arm's init: the base's initial weights, prunebench init (one per --seed).")
@click.option("--data", "data_path", required=True, type=click.Path(dir_okay=False), help="Prepared dataset file (prunebench prepare).")
@click.option("--model-out", required=True, multiple=True, type=click.Path(dir_okay=False), help="Final model file to write (one per --seed).")
@click.option("--metrics-out", required=True, multiple=True, type=click.Path(dir_okay=False), help="Metrics JSON to write (one per --seed).")
@click.option("--eval-out", multiple=True, type=click.Path(dir_okay=False), help="Also evaluate the written model as 'prunebench evaluate' does, into this eval.json (one per --seed).")
@click.option("--checkpoint", multiple=True, type=click.Path(dir_okay=False), help="Resume checkpoint [default: beside --model-out] (one per --seed).")
@click.option("--epochs", required=True, type=click.IntRange(min=1), help="Epochs; for scratch-b the full network's epochs, scaled by the MACs ratio.")
@click.option("--lr", required=True, type=click.FloatRange(min=0, min_open=True), help="Initial learning rate.")
@click.option("--milestones", default="", callback=_fractions, help="LR decay points as fractions of the epochs, e.g. 0.5,0.75 (empty: constant).")
@click.option("--gamma", default=0.1, show_default=True, type=click.FloatRange(min=0, min_open=True), help="LR decay factor.")
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(min=1), help="Training batch size.")
@click.option("--test-batch-size", default=256, show_default=True, type=click.IntRange(min=1), help="Evaluation batch size.")
@click.option("--momentum", default=0.9, show_default=True, type=click.FloatRange(min=0), help="SGD momentum.")
@click.option("--weight-decay", default=1e-4, show_default=True, type=click.FloatRange(min=0), help="SGD weight decay.")
@click.option("--sparsity", default=0.0, show_default=True, type=click.FloatRange(min=0), help="Network slimming's L1 penalty s on BatchNorm scales (base arm).")
@click.option("--nesterov/--no-nesterov", default=False, show_default=True, help="Nesterov momentum (the SFP protocol).")
@click.option("--normalisation", default="rethinking", show_default=True, type=click.Choice(tuple(NORMALISATIONS)), help="Input mean/std: the Rethinking code's, or the SFP code's per dataset.")
@click.option("--warmup-epochs", default=0, show_default=True, type=click.IntRange(min=0), help="Epochs at --warmup-lr before --lr (SFP: 1 at 0.01).")
@click.option("--warmup-lr", default=0.0, show_default=True, type=click.FloatRange(min=0), help="Learning rate of the warm-up epochs.")
@click.option("--scratch-b-budget", default="after-mask", show_default=True, type=click.Choice(("after-mask", "before-mask")), help="Scratch-B of a masked model: MACs measured after the mask is loaded, or before (the reference's bug: ratio 1).")
@click.option("--scratch-b-steps", default="fractions", show_default=True, type=click.Choice(("fractions", "repeat")), help="Scratch-B's LR steps: at --milestones' fractions of its epochs, or every int(E x first milestone) epochs (ImageNet).")
@click.option("--scratch-b-cap", callback=_cap, help="RATIO,EPOCHS: a MACs ratio of at least RATIO trains EPOCHS instead (ImageNet L1/ThiNet/regression: 2,180).")
@click.option("--scratch-b-epochs", type=click.IntRange(min=1), help="Scratch-B's epochs, set instead of the budget (a released run that differs from the rule).")
@click.option("--max-epochs", type=click.IntRange(min=1), help="Cap on Scratch-B's budgeted epochs (a smoke scale's limit).")
@click.option("--seed", "seeds", default=(1,), show_default=True, multiple=True, type=int, help="Seed for init, data order and augmentation; several train one fused job, a run per seed.")
@click.option("--train-subset", type=click.IntRange(min=1), help="Use a fixed random subset of N training images.")
@click.option("--test-subset", type=click.IntRange(min=1), help="Use a fixed random subset of N test images.")
@click.option("--scale", default="custom", show_default=True, help="Scale label recorded with the run.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda[:N].")
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads for torch.")
@click.option("--precision", default="fp32", show_default=True, type=click.Choice(PRECISIONS), help="fp32 keeps the papers' arithmetic; tf32/bf16 trade it for speed on GPUs.")
@click.option("--fuse", default="auto", show_default=True, type=click.Choice(FUSE_MODES), help="Several --seed values: one fused network (auto: on a GPU only, where it is faster) or one run after another.")
@click.option("--compile", "compile_mode", default="none", show_default=True, type=click.Choice(COMPILE_MODES), help="torch.compile mode for the model (reduce-overhead uses CUDA graphs).")
@imagenet_options(train=True)
@_wait_option
def train(**o) -> None:
    """Train one run (any arm) and write its model and metrics; resumes from its checkpoint.
    Several --seed values train their runs as one fused job (the same network K times, each copy
    its own seed's run), with one of each per-run path per seed, in the same order."""
    from prunebench.core.utils import choose_device
    from prunebench.training.runs import ArmProtocol, RunSpec, train_runs

    if o["threads"]:
        torch.set_num_threads(o["threads"])
    seeds = o["seeds"]
    per_run = {"--model-out": o["model_out"], "--metrics-out": o["metrics_out"], "--eval-out": o["eval_out"], "--checkpoint": o["checkpoint"], "--init": o["init_path"], "--theta0": o["theta0"]}
    for name, values in per_run.items():
        if values and len(values) != len(seeds):
            raise UserError(f"{len(seeds)} --seed value(s) but {len(values)} {name}; give one {name} per seed, in the same order")
    if len(set(seeds)) != len(seeds):
        raise UserError(f"--seed {' '.join(map(str, seeds))} repeats a seed; each run of a fused job has its own")
    check_outputs(*o["model_out"], *o["metrics_out"], *o["eval_out"])
    method, setting = _method_setting(o["method"], o["setting"], o["variant"])
    inits, thetas = o["init_path"] or (None,) * len(seeds), o["theta0"] or (None,) * len(seeds)
    specs = [RunSpec(o["arch"], o["arm"], s, method, setting, o["options"], i, t) for s, i, t in zip(seeds, inits, thetas)]
    hparams = {k: o[k] for k in ("batch_size", "test_batch_size", "momentum", "weight_decay", "precision", "sparsity", "nesterov", "normalisation")}
    hparams["compile"] = o["compile_mode"]
    protocol = ArmProtocol(o["epochs"], o["lr"], o["milestones"], o["gamma"], o["warmup_epochs"], o["warmup_lr"], o["scratch_b_budget"] == "after-mask", o["max_epochs"], o["scratch_b_steps"], o["scratch_b_cap"], o["scratch_b_epochs"])
    with _held(*o["model_out"], *o["metrics_out"], *o["eval_out"], *o["checkpoint"]):
        train_runs(
            specs, o["data_path"], protocol, hparams, choose_device(o["device"]), list(o["model_out"]), list(o["metrics_out"]), list(o["checkpoint"]) or None,
            o["train_subset"], o["test_subset"], o["scale"], loader_options(o), list(o["eval_out"]) or None, o["fuse"],
        )  # fmt: skip


# --------------------------------------------------------------------------- init
@cli.command()
@click.option("--base", "base_path", required=True, type=click.Path(dir_okay=False), help="The trained base's model.pt.")
@click.option("--metrics", "metrics_path", required=True, type=click.Path(dir_okay=False), help="The base's metrics.json (holds the hash of its init).")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="init.pt to write.")
@_wait_option
def init(base_path: str, metrics_path: str, out: str) -> None:
    """Write a base run's initial weights theta_0 (the lottery ticket's init), rebuilt from its
    seed and checked against the hash the base recorded before training."""
    from prunebench.training.jobs import init_run

    check_outputs(out)
    with _held(out):
        init_run(base_path, metrics_path, out)


# --------------------------------------------------------------------------- prune
@cli.command()
@click.option("--model", "model_path", required=True, type=click.Path(dir_okay=False), help="Trained full model (train --arm base; for sfp, --arm soft).")
@click.option("--method", default=None, help="Pruning method: l1, l2, random, smallest (Li's variants), uniform, slimming, magnitude (ratios), sfp (keep rate).")
@click.option("--setting", default=None, help="The method's variant (A, B) or global ratio (0.4).")
@click.option("--variant", default=None, help="Li et al.'s variant: short for --method l1 --setting V.")
@click.option("--criterion", default=None, help="With --variant: rank filters by l1, l2, random or smallest (the method of that name).")
@click.option("--ratio", type=float, default=None, help="Short for --method uniform --setting RATIO: remove this fraction of every prunable layer.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed for the random criterion.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Pruned checkpoint to write.")
@click.option("--report", "report_path", required=True, type=click.Path(dir_okay=False), help="prune.json to write.")
@click.option("--physical-out", type=click.Path(dir_okay=False), help="sfp: also write the physically pruned network (zeroed inner channels removed).")
@click.option("--data", "data_path", type=click.Path(dir_okay=False), help="Prepared dataset, for criteria that rank filters by their feature maps (Li's mean_std, ...).")
@click.option("--train-subset", type=click.IntRange(min=1), help="Use this many training images for those statistics.")
@click.option("--function", default=None, help="Your own pruning function, package.module:function: takes the trained model (and data=, if it has that keyword) and returns the pruned one (method external, or externalmasked for a dense masked one).")
@click.option("--with", "keywords", multiple=True, callback=_keywords, help="KEY=VALUE (repeatable): a keyword argument of --function (a number where it reads as one).")
@click.option("--pruned-module", type=click.Path(dir_okay=False), help="A model pruned by other code: torch.save(model), or its state dict with --builder (method external).")
@click.option("--builder", default=None, help="With --pruned-module holding a state dict: package.module:function returning the pruned module.")
@click.option("--reference", default=None, help="With --pruned-module not pruned from our registry's network: package.module:function returning the full network it was pruned from (trained as it is).")
@_wait_option
def prune(model_path: str, method: str | None, setting: str | None, variant: str | None, criterion: str | None, ratio: float | None, seed: int, out: str, report_path: str, physical_out: str | None, data_path: str | None, train_subset: int | None,
          function: str | None, keywords: dict, pruned_module: str | None, builder: str | None, reference: str | None) -> None:  # fmt: skip
    """Prune a trained full model by --method at --setting (Li's variants rank filters by their
    criterion; slimming thresholds BatchNorm scales globally), or by your own --function or
    --pruned-module, and save the smaller network."""
    from prunebench.training.jobs import prune_run

    check_outputs(out, report_path, *([physical_out] if physical_out else []))
    external = {"function": function, "settings": keywords, "module": pruned_module, "builder": builder, "reference": reference}
    if function is not None or pruned_module is not None:
        if method not in (None, "external", "externalmasked") or variant or ratio is not None:
            raise UserError("--function and --pruned-module prune by your own method (external, or externalmasked for a dense masked module); drop --variant and --ratio, and name no other --method")
        method, setting = method or "external", setting or "custom"
    elif keywords or builder or reference:
        raise UserError("--with goes with --function, --builder and --reference with --pruned-module")
    if function is not None and reference is not None:
        raise UserError("--reference goes with --pruned-module: save the module your function returns with torch.save(model) and pass that file")
    if ratio is not None:
        if method or setting or variant:
            raise UserError("give one of --ratio, --variant, or --method with --setting")
        method, setting = "uniform", repr(ratio)
    else:
        method, setting = _method_setting(method, setting, variant)
        if criterion is not None:
            if variant is None:
                raise UserError("--criterion goes with --variant; otherwise name the method with --method")
            method = criterion
    if method is None:
        raise UserError("give --method with --setting (or --variant, or --ratio): what to prune, and how much")
    with _held(out, report_path, physical_out):
        prune_run(model_path, method, setting, seed, out, report_path, physical_out, data_path, train_subset, external)


# --------------------------------------------------------------------------- derive
@cli.command()
@click.argument("sources", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--method", required=True, help="An architecture source: matched, guided, transferred, randomsparse, guidedsparse.")
@click.option("--setting", required=True, help="Its source row, e.g. slimming_0.5 or cifar10_vgg16_slimming_0.5.")
@click.option("--dataset", required=True, help="The dataset the derived network trains on (its classes).")
@click.option("--arch", required=True, help=f"Architecture: {', '.join(models.ARCHS)}.")
@click.option("--option", "options", multiple=True, callback=_options, help="Model option KEY=VALUE (repeatable).")
@click.option("--seed", default=1, show_default=True, type=int, help="Seed of the fresh weights and random masks.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Pruned file to write.")
@click.option("--report", "report_path", required=True, type=click.Path(dir_okay=False), help="prune.json to write.")
@_wait_option
def derive(sources: tuple[str, ...], method: str, setting: str, dataset: str, arch: str, options: dict, seed: int, out: str, report_path: str) -> None:
    """Derive an architecture (pruning as architecture search) from the source runs' prune.json
    files (SOURCES) and write it as a pruned file for the scratch arms."""
    from prunebench.training.derivation import derive_run

    check_outputs(out, report_path)
    with _held(out, report_path):
        derive_run(method, setting, dataset, arch, seed, options, list(sources), out, report_path)


# --------------------------------------------------------------------------- evaluate
@cli.command()
@click.option("--model", "model_path", required=True, type=click.Path(dir_okay=False), help="Trained model file.")
@click.option("--metrics", "metrics_path", required=True, type=click.Path(dir_okay=False), help="The run's metrics.json.")
@click.option("--data", "data_path", required=True, type=click.Path(dir_okay=False), help="Prepared dataset file.")
@click.option("--test-subset", type=click.IntRange(min=1), help="Same test subset as training used.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda[:N].")
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads for torch.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="eval.json to write.")
@imagenet_options(train=False)
@_wait_option
def evaluate(model_path: str, metrics_path: str, data_path: str, test_subset: int | None, device: str, threads: int | None, out: str, **o) -> None:
    """Re-evaluate a trained model on the test set and write one table cell's worth of JSON."""
    from prunebench.core.utils import choose_device
    from prunebench.training.evaluation import evaluate_run

    check_outputs(out)
    if threads:
        torch.set_num_threads(threads)
    with _held(out):
        evaluate_run(model_path, metrics_path, data_path, test_subset, choose_device(device), out, loader_options(o))


from .data import prepare, standin  # noqa: E402 (datasets: CIFAR prepared, ImageNet checked)
from .latency import latency  # noqa: E402 (measured inference cost)
from .li import curve, li_report, li_table2  # noqa: E402 (Li et al.'s analyses)
from .report import channels, check_report, checks, figure, html, kernels, ledger, stats_figure, table, trace  # noqa: E402 (the report layer)
from .speed import bench, step_speed  # noqa: E402 (training speed)

for _command in (prepare, standin, table, figure, stats_figure, channels, kernels, trace, checks, html, check_report, ledger, curve, li_table2, li_report, latency, bench, step_speed):
    cli.add_command(_command)


# --------------------------------------------------------------------------- entry point
def main(argv: list[str] | None = None) -> None:
    from .entry import run

    run(cli, "prunebench", argv)


if __name__ == "__main__":
    main()
