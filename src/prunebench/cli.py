"""The ``prunebench`` command line: one small command per Snakemake rule.

Each command reads explicit input paths, calls the library and writes its outputs
atomically. Known user errors end in one line on stderr and a non-zero exit; set
``PRUNEBENCH_DEBUG=1`` (or pass ``--debug``) for a traceback.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import socket
import sys
import time
from pathlib import Path

import click
import torch

from . import __version__, models
from .checkpoints import load_model, save_model
from .counting import count_macs, count_params, scratch_b_epochs
from .errors import UserError
from .io import read_json, sha256, write_json
from .pruning import VARIANTS
from .train import COMPILE_MODES, PRECISIONS

ARMS = ("base", "finetune", "scratch-e", "scratch-b")
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


def _write_together(*writes) -> None:
    """Run (path, write) pairs; if one fails, remove the files already written: all or none."""
    done = []
    try:
        for path, write in writes:
            write()
            done.append(path)
    except BaseException:
        for path in done:
            Path(path).unlink(missing_ok=True)
        raise


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="prunebench")
@click.option("--debug", is_flag=True, envvar="PRUNEBENCH_DEBUG", help="Show tracebacks for user errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Reproduce Li et al. (ICLR'17) and Rethinking the Value of Network Pruning (ICLR'19)."""
    ctx.obj = {"debug": debug}
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)


# --------------------------------------------------------------------------- prepare
@cli.command()
@click.option("--dataset", required=True, type=click.Choice(["cifar10", "cifar100"]), help="Which dataset.")
@click.option("--data-root", required=True, type=click.Path(file_okay=False), help="Folder holding (or receiving) the data.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Prepared uint8 tensor file to write.")
@click.option("--download/--no-download", default=True, show_default=True, help="Download into --data-root when missing.")
def prepare(dataset: str, data_root: str, out: str, download: bool) -> None:
    """Find DATASET under --data-root (torchvision files, train/ and test/ class folders, or a
    *.tar.gz of them; else download) and decode it once into --out."""
    from .data import prepare as prepare_data

    summary = prepare_data(dataset, data_root, out, download)
    log.info("prepared %s from %s: %d train, %d test images -> %s", dataset, summary["source"], summary["train_x"], summary["test_x"], out)


# --------------------------------------------------------------------------- describe
def _architecture(arch: str, variant: str | None, num_classes: int) -> dict:
    from .pruning import variant_cfg

    full, pruned = models.build(arch, None, num_classes), models.build(arch, variant_cfg(arch, variant), num_classes)
    macs, macs_full = count_macs(pruned), count_macs(full)
    return {
        "arch": arch,
        "variant": variant,
        "num_classes": num_classes,
        "cfg": list(pruned.cfg),
        "macs": macs,
        "params": count_params(pruned),
        "macs_full": macs_full,
        "params_full": count_params(full),
    }


@cli.command()
@click.option("--arch", required=True, help=f"Architecture: {', '.join(models.ARCHS)}.")
@click.option("--variant", default=None, help="Li et al. pruned variant (A, B); omit for the full network.")
@click.option("--dataset", default="cifar10", show_default=True, type=click.Choice(["cifar10", "cifar100"]), help="Sets the class count.")
@click.option("--budget-epochs", default=160, show_default=True, type=click.IntRange(min=1), help="Epochs of the full network, for the Scratch-B count.")
def describe(arch: str, variant: str | None, dataset: str, budget_epochs: int) -> None:
    """Print JSON describing an architecture (cfg, MACs, params, full-network counts, Scratch-B
    epochs) without training anything."""
    from .data import DATASETS

    info = _architecture(arch, variant, DATASETS[dataset])
    info["macs_reduction_pct"] = round(100 * (1 - info["macs"] / info["macs_full"]), 2)
    info["params_reduction_pct"] = round(100 * (1 - info["params"] / info["params_full"]), 2)
    info["scratch_b_epochs"] = scratch_b_epochs(budget_epochs, info["macs_full"], info["macs"])
    click.echo(json.dumps(info, indent=2))


# --------------------------------------------------------------------------- train
@cli.command()
@click.option("--arch", required=True, help=f"Architecture: {', '.join(models.ARCHS)}.")
@click.option("--arm", required=True, type=click.Choice(ARMS), help="base: full net; finetune: from --init; scratch-e/-b: pruned cfg, fresh init.")
@click.option("--variant", default=None, help="Pruned variant (scratch arms); recorded for finetune.")
@click.option("--init", "init_path", type=click.Path(dir_okay=False), help="Pruned checkpoint to fine-tune (finetune arm).")
@click.option("--data", "data_path", required=True, type=click.Path(dir_okay=False), help="Prepared dataset file (prunebench prepare).")
@click.option("--model-out", required=True, type=click.Path(dir_okay=False), help="Final model file to write.")
@click.option("--metrics-out", required=True, type=click.Path(dir_okay=False), help="Metrics JSON to write.")
@click.option("--checkpoint", type=click.Path(dir_okay=False), help="Resume checkpoint [default: beside --model-out].")
@click.option("--epochs", required=True, type=click.IntRange(min=1), help="Epochs; for scratch-b the full network's epochs, scaled by the MACs ratio.")
@click.option("--lr", required=True, type=click.FloatRange(min=0, min_open=True), help="Initial learning rate.")
@click.option("--milestones", default="", callback=_fractions, help="LR decay points as fractions of the epochs, e.g. 0.5,0.75 (empty: constant).")
@click.option("--gamma", default=0.1, show_default=True, type=click.FloatRange(min=0, min_open=True), help="LR decay factor.")
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(min=1), help="Training batch size.")
@click.option("--test-batch-size", default=256, show_default=True, type=click.IntRange(min=1), help="Evaluation batch size.")
@click.option("--momentum", default=0.9, show_default=True, type=click.FloatRange(min=0), help="SGD momentum.")
@click.option("--weight-decay", default=1e-4, show_default=True, type=click.FloatRange(min=0), help="SGD weight decay.")
@click.option("--seed", default=1, show_default=True, type=int, help="Seed for init, data order and augmentation.")
@click.option("--train-subset", type=click.IntRange(min=1), help="Use a fixed random subset of N training images.")
@click.option("--test-subset", type=click.IntRange(min=1), help="Use a fixed random subset of N test images.")
@click.option("--scale", default="custom", show_default=True, help="Scale label recorded with the run.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda[:N].")
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads for torch.")
@click.option("--precision", default="fp32", show_default=True, type=click.Choice(PRECISIONS), help="fp32 keeps the papers' arithmetic; tf32/bf16 trade it for speed on GPUs.")
@click.option("--compile", "compile_mode", default="none", show_default=True, type=click.Choice(COMPILE_MODES), help="torch.compile mode for the model (reduce-overhead uses CUDA graphs).")
def train(**o) -> None:
    """Train one run (any arm) and write its model and metrics; resumes from its checkpoint."""
    from .data import Data
    from .pruning import variant_cfg
    from .train import Hparams, Schedule, fit
    from .utils import choose_device, seed_everything

    started = time.time()
    if o["threads"]:
        torch.set_num_threads(o["threads"])
    device = choose_device(o["device"])
    models.check_arch(o["arch"])
    data = Data(o["data_path"], o["train_subset"], o["test_subset"])
    arm, arch, epochs = o["arm"], o["arch"], o["epochs"]
    inputs = {"data": {"path": o["data_path"], "sha256": sha256(o["data_path"])}}
    seed_everything(o["seed"])
    if arm == "finetune":
        if not o["init_path"]:
            raise UserError("the finetune arm needs --init PATH, the pruned checkpoint (prunebench prune --out)")
        model, meta = load_model(o["init_path"], expect_arch=arch)
        if meta["num_classes"] != data.num_classes:
            raise UserError(f"{o['init_path']} has {meta['num_classes']} classes but the data has {data.num_classes}; use the matching dataset")
        inputs["init"] = {"path": o["init_path"], "sha256": sha256(o["init_path"])}
        variant = o["variant"] or meta.get("run", {}).get("variant")
    else:
        if arm == "base":
            if o["variant"]:
                raise UserError("the base arm trains the full network; drop --variant")
            cfg, variant = models.default_cfg(arch), None
        else:
            if not o["variant"]:
                raise UserError(f"the {arm} arm needs --variant, the pruned architecture to train from scratch")
            cfg, variant = variant_cfg(arch, o["variant"]), o["variant"]
        model = models.build(arch, cfg, data.num_classes)
    macs, params = count_macs(model), count_params(model)
    full = models.build(arch, None, data.num_classes)
    macs_full, params_full = count_macs(full), count_params(full)
    if arm == "scratch-b":
        epochs = scratch_b_epochs(o["epochs"], macs_full, macs)
        log.info("scratch-b: %d epochs = int(%d x %d / %d MACs)", epochs, o["epochs"], macs_full, macs)
    hp = Hparams(
        schedule=Schedule.fractional(epochs, o["lr"], o["milestones"], o["gamma"]),
        seed=o["seed"],
        batch_size=o["batch_size"],
        test_batch_size=o["test_batch_size"],
        momentum=o["momentum"],
        weight_decay=o["weight_decay"],
        precision=o["precision"],
        compile=o["compile_mode"],
    )
    checkpoint = Path(o["checkpoint"] or Path(o["model_out"]).with_name("checkpoint.pt"))
    run = {"dataset": data.dataset, "arch": arch, "variant": variant, "arm": arm, "seed": o["seed"], "scale": o["scale"]}
    log.info("train %s on %s (%d images), %d epochs, device %s", run, data.dataset, len(data.train_x), epochs, device)
    result = fit(model, data, hp, device, checkpoint)
    metrics = {
        "run": run,
        **{k: result[k] for k in ("final_accuracy", "best_accuracy", "best_epoch")},
        "epochs": epochs,
        "macs": macs,
        "params": params,
        "macs_full": macs_full,
        "params_full": params_full,
        "hparams": hp.as_dict(),
        "data": {"train_images": len(data.train_x), "test_images": len(data.test_x)},
        "inputs": inputs,
        "device": _device_name(device),
        "train_seconds": result["train_seconds"],
        "wall_seconds": time.time() - started,
        "history": result["history"],
        "provenance": _provenance(),
    }
    _write_together(
        (o["model_out"], lambda: save_model(o["model_out"], model, arch, data.num_classes, run=run, hparams=hp.as_dict())),
        (o["metrics_out"], lambda: write_json(o["metrics_out"], metrics)),
    )
    checkpoint.unlink(missing_ok=True)
    log.info("done: best %.2f%%, final %.2f%% -> %s", result["best_accuracy"], result["final_accuracy"], o["model_out"])


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    return f"cpu: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def _provenance() -> dict:
    return {
        "prunebench": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "host": socket.gethostname(),
        "command": " ".join(["prunebench", *sys.argv[1:]]),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
    }


# --------------------------------------------------------------------------- prune
@cli.command()
@click.option("--model", "model_path", required=True, type=click.Path(dir_okay=False), help="Trained full model (train --arm base).")
@click.option("--variant", default=None, help="Li et al. variant: VGG-16 A; ResNet-56 A, B; ResNet-110 A, B.")
@click.option("--ratio", type=float, default=None, help="Instead of --variant: prune this fraction of every prunable layer, in [0, 1).")
@click.option("--criterion", default="l1", show_default=True, help="Filter importance: l1, l2, random, smallest.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed for the random criterion.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Pruned checkpoint to write.")
@click.option("--report", "report_path", required=True, type=click.Path(dir_okay=False), help="prune.json to write.")
def prune(model_path: str, variant: str | None, ratio: float | None, criterion: str, seed: int, out: str, report_path: str) -> None:
    """Remove the filters --variant prescribes (or --ratio of every prunable layer), ranked by
    --criterion, and save the smaller network."""
    from .pruning import layer_ratios, prune as cut, select_filters, variant_spec

    if (variant is None) == (ratio is None):
        raise UserError("give exactly one of --variant (Li et al.'s A/B) or --ratio (uniform fraction)")
    if ratio is not None and not 0.0 <= ratio < 1.0:
        raise UserError(f"--ratio {ratio} is outside [0, 1); give the fraction of filters to remove, e.g. 0.5")
    model, meta = load_model(model_path)
    arch, num_classes = meta["arch"], meta["num_classes"]
    if list(meta["cfg"]) != models.default_cfg(arch):
        raise UserError(f"{model_path} is already pruned (cfg {meta['cfg']}); prune the full {arch} model")
    groups = model.channel_groups()
    if ratio is not None:
        variant, ratios = f"uniform{ratio:g}", {g.name: ratio for g in groups}
    else:
        ratios = layer_ratios(groups, variant_spec(arch, variant))
    keep = select_filters(model, ratios, criterion, seed)
    small = cut(model, arch, keep, num_classes)
    run = {**meta.get("run", {}), "variant": variant, "arm": "pruned", "criterion": criterion}
    kept = {g.name: (keep[g.name].tolist() if g.name in keep else list(range(g.width))) for g in groups}
    report = {
        "run": run,
        "arch": arch,
        "variant": variant,
        "criterion": criterion,
        "cfg_before": list(meta["cfg"]),
        "cfg_after": list(small.cfg),
        "macs_before": count_macs(model),
        "macs_after": count_macs(small),
        "params_before": count_params(model),
        "params_after": count_params(small),
        "layers": [
            {"layer": g.name, "li_layer": g.layer_id, "stage": g.stage, "ratio": ratios[g.name], "before": g.width, "after": len(kept[g.name])}
            for g in groups
        ],
        "input": {"path": model_path, "sha256": sha256(model_path)},
        "provenance": _provenance(),
    }
    report["macs_reduction_pct"] = round(100 * (1 - report["macs_after"] / report["macs_before"]), 2)
    report["params_reduction_pct"] = round(100 * (1 - report["params_after"] / report["params_before"]), 2)
    _write_together(
        (out, lambda: save_model(out, small, arch, num_classes, run=run, kept=kept, source=model_path)),
        (report_path, lambda: write_json(report_path, report)),
    )
    log.info("pruned %s-%s: MACs -%.1f%%, params -%.1f%% -> %s", arch, variant, report["macs_reduction_pct"], report["params_reduction_pct"], out)


# --------------------------------------------------------------------------- evaluate
@cli.command()
@click.option("--model", "model_path", required=True, type=click.Path(dir_okay=False), help="Trained model file.")
@click.option("--metrics", "metrics_path", required=True, type=click.Path(dir_okay=False), help="The run's metrics.json.")
@click.option("--data", "data_path", required=True, type=click.Path(dir_okay=False), help="Prepared dataset file.")
@click.option("--test-subset", type=click.IntRange(min=1), help="Same test subset as training used.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda[:N].")
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads for torch.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="eval.json to write.")
def evaluate(model_path: str, metrics_path: str, data_path: str, test_subset: int | None, device: str, threads: int | None, out: str) -> None:
    """Re-evaluate a trained model on the test set and write one table cell's worth of JSON."""
    from .data import Data
    from .train import evaluate as run_eval
    from .utils import choose_device

    if threads:
        torch.set_num_threads(threads)

    model, meta = load_model(model_path)
    metrics = read_json(metrics_path)
    if metrics.get("run") != meta.get("run"):
        raise UserError(f"{metrics_path} describes run {metrics.get('run')} but {model_path} holds {meta.get('run')}; pass the pair from one run")
    missing = [k for k in ("best_accuracy", "final_accuracy", "macs", "params", "macs_full", "params_full", "epochs") if k not in metrics]
    if missing:
        raise UserError(f"{metrics_path} lacks {', '.join(missing)}; it is incomplete or from another version, rerun the training")
    data = Data(data_path, None, test_subset)
    dev = choose_device(device)
    test = run_eval(model.to(dev), data.test_x, data.test_y, 1000, dev)
    write_json(
        out,
        {
            "run": meta["run"],
            "accuracy": {"best": metrics["best_accuracy"], "final": metrics["final_accuracy"], "evaluated": test["accuracy"]},
            **{k: metrics[k] for k in ("macs", "params", "macs_full", "params_full", "epochs")},
            "model": model_path,
            "model_sha256": sha256(model_path),
            "metrics": metrics_path,
        },
    )


# --------------------------------------------------------------------------- table / figure
@cli.command()
@click.argument("evals", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--metric", default="best", show_default=True, type=click.Choice(["best", "final"]), help="Best test accuracy over epochs (the papers') or the last epoch's.")
@click.option("--csv", "csv_path", required=True, type=click.Path(dir_okay=False), help="CSV table to write.")
@click.option("--md", "md_path", required=True, type=click.Path(dir_okay=False), help="Markdown table to write.")
@click.option("--title", default="Table 1: L1-norm filter pruning (Li et al.) on CIFAR-10", show_default=True, help="Title of the Markdown table.")
def table(evals: tuple[str, ...], metric: str, csv_path: str, md_path: str, title: str) -> None:
    """Collect eval.json files (EVALS) into Rethinking's Table 1 with the paper's numbers beside ours."""
    from .report.table import build_table1, write_table

    df = build_table1([read_json(p) for p in evals], metric=metric)
    write_table(df, csv_path, md_path, title=title)
    log.info("table with %d rows -> %s, %s", len(df), csv_path, md_path)


@cli.command()
@click.option("--table", "table_path", required=True, type=click.Path(dir_okay=False), help="CSV written by 'prunebench table'.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="PNG to write.")
def figure(table_path: str, out: str) -> None:
    """Plot accuracy per arm and architecture, with the paper's numbers as markers."""
    import pandas as pd

    from .report.figure import plot_table1

    if not Path(table_path).is_file():
        raise UserError(f"table {table_path} does not exist; run 'prunebench table' first")
    plot_table1(pd.read_csv(table_path), out)
    log.info("figure -> %s", out)


# --------------------------------------------------------------------------- bench
@cli.command()
@click.option("--models", "model_list", default="resnet56,resnet110,vgg16,resnet56-B", show_default=True, help="Comma-separated archs or arch-variant.")
@click.option("--data", "data_path", required=True, type=click.Path(dir_okay=False), help="Prepared dataset file (prunebench prepare).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda[:N].")
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(min=1), help="Training batch size of both paths.")
@click.option("--warmup", default=20, show_default=True, type=click.IntRange(min=0), help="Untimed steps first.")
@click.option("--steps", default=200, show_default=True, type=click.IntRange(min=1), help="Timed steps per path and model.")
@click.option("--workers", default=4, show_default=True, type=click.IntRange(min=0), help="DataLoader workers of the reference loop.")
@click.option("--acc-epochs", default=3, show_default=True, type=click.IntRange(min=0), help="Epochs of the accuracy check per path (0: skip).")
@click.option("--train-subset", type=click.IntRange(min=1), help="Training images used (default: all).")
@click.option("--test-subset", type=click.IntRange(min=1), help="Test images used (default: all).")
@click.option("--precision", default="fp32", show_default=True, type=click.Choice(PRECISIONS), help="Precision of the prunebench path (the reference is fp32).")
@click.option("--compile", "compile_mode", default="none", show_default=True, type=click.Choice(COMPILE_MODES), help="torch.compile mode of the prunebench path.")
@click.option("--pack", default=1, show_default=True, type=click.IntRange(min=1), help="Also run N prunebench runs of the first model at once and sum their images/s.")
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads per process.")
@click.option("--out-json", required=True, type=click.Path(dir_okay=False), help="bench.json to write.")
@click.option("--out-md", required=True, type=click.Path(dir_okay=False), help="bench.md to write.")
def bench(model_list, data_path, device, batch_size, warmup, steps, workers, acc_epochs, train_subset, test_subset, precision, compile_mode, pack, threads, out_json, out_md) -> None:
    """Time prunebench's training path against a reference-style loop on this device, check both
    reach the same accuracy, measure packing, and project the GPU-hours of paper-scale Table 1."""
    from . import bench as B
    from .io import write_text

    if not Path(data_path).is_file():
        raise UserError(f"prepared dataset {data_path} does not exist; make it with 'prunebench prepare'")
    cases = [B.Case.parse(m.strip()) for m in model_list.split(",") if m.strip()]
    for c in cases:
        c.cfg()  # unknown variants fail here, before any process starts
    s = B.Settings(data_path, device, batch_size, warmup, steps, workers, acc_epochs, train_subset, test_subset, precision, compile_mode, 1, threads)
    result = B.run(cases, s, pack, log=log.info)
    result["projection"] = B.project_table1(result, {arch: list(v) for arch, v in VARIANTS.items()})
    result["command"] = " ".join(["prunebench", *sys.argv[1:]])
    result["provenance"] = _provenance()
    write_json(out_json, result)
    write_text(out_md, B.to_markdown(result))
    click.echo(B.to_markdown(result))


# --------------------------------------------------------------------------- entry point
def main(argv: list[str] | None = None) -> None:
    debug = os.environ.get("PRUNEBENCH_DEBUG") == "1" or "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        cli.main(args=argv, prog_name="prunebench", standalone_mode=False)
    except UserError as e:
        if debug:
            raise
        click.echo(f"prunebench: error: {e}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("prunebench: aborted", err=True)
        sys.exit(130)
    except click.ClickException as e:
        cmd = f" {e.ctx.command_path.split(' ', 1)[1]}" if getattr(e, "ctx", None) and " " in e.ctx.command_path else ""
        click.echo(f"prunebench: error: {' '.join(e.format_message().split()).rstrip('.')}; see 'prunebench{cmd} --help'", err=True)
        sys.exit(e.exit_code)
    except Exception as e:
        from .train import Interrupted

        if isinstance(e, Interrupted):
            click.echo(f"prunebench: interrupted: {e}; rerun the same command to resume", err=True)
            sys.exit(143)
        raise


if __name__ == "__main__":
    main()
