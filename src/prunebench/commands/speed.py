"""``prunebench bench`` and ``prunebench step-speed``: training speed on this device, against a
reference-style loop, per step configuration, and as the whole speed suite (``bench --suite``)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click
import torch

from prunebench import models
from prunebench.core.errors import UserError
from prunebench.core.io import check_outputs, write_json, write_together
from prunebench.core.provenance import provenance
from prunebench.pruning import VARIANTS
from prunebench.training.step import COMPILE_MODES, PRECISIONS

log = logging.getLogger("prunebench")


@click.command()
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
@click.option("--graphs/--no-graphs", default=True, show_default=True, help="Replay the prunebench step as a CUDA graph on a CUDA device (as training does).")
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads per process.")
@click.option("--suite", is_flag=True, help="Take every speed reading (reference, eager, graphed per precision, fused K copies, packed N processes) of the first model within --budget, and project each study's paper-scale GPU-hours.")
@click.option("--budget", "budget_s", default=480, show_default=True, type=click.FloatRange(min=1), help="--suite: seconds it may take; readings that do not fit are listed as skipped.")
@click.option("--precisions", default="fp32,tf32,bf16", show_default=True, help="--suite: precisions of the graphed and fused readings.")
@click.option("--config", "config_path", default="config.yaml", show_default=True, type=click.Path(dir_okay=False), help="--suite: the config whose studies are projected (at its paper scale).")
@click.option("--out-json", required=True, type=click.Path(dir_okay=False), help="bench.json to write.")
@click.option("--out-md", required=True, type=click.Path(dir_okay=False), help="bench.md to write.")
def bench(model_list, data_path, device, batch_size, warmup, steps, workers, acc_epochs, train_subset, test_subset, precision, compile_mode, pack, graphs, threads, suite, budget_s, precisions, config_path, out_json, out_md) -> None:
    """Time prunebench's training path against a reference-style loop on this device, check both
    reach the same accuracy, measure packing, and project the GPU-hours of paper-scale Table 1.
    With --suite, the speed suite instead (docs/speed.md)."""
    from prunebench.analysis import bench as B
    from prunebench.core.io import write_text

    check_outputs(out_json, out_md)
    if not Path(data_path).is_file():
        raise UserError(f"prepared dataset {data_path} does not exist; make it with 'prunebench prepare'")
    cases = [B.Case.parse(m.strip()) for m in model_list.split(",") if m.strip()]
    for c in cases:
        c.cfg()  # unknown variants fail here, before any process starts
    s = B.Settings(data_path, device, batch_size, warmup, steps, workers, acc_epochs, train_subset, test_subset, precision, compile_mode, 1, threads, graphs)
    if suite:
        return _suite(cases, s, budget_s, precisions, config_path, out_json, out_md)
    result = B.run(cases, s, pack, log=log.info)
    result["projection"] = B.project_table1(result, {arch: list(v) for arch, v in VARIANTS.items()})
    result["command"] = " ".join(["prunebench", *sys.argv[1:]])
    result["provenance"] = provenance()
    markdown = B.to_markdown(result)
    write_together((out_json, lambda: write_json(out_json, result)), (out_md, lambda: write_text(out_md, markdown)))
    click.echo(markdown)


def _suite(cases, s, budget_s: float, precisions: str, config_path: str, out_json: str, out_md: str) -> None:
    import yaml

    from prunebench.analysis import suite
    from prunebench.core.io import write_text
    from prunebench.studies.cost import training_runs

    chosen = tuple(p.strip() for p in precisions.split(",") if p.strip())
    if not chosen or not set(chosen) <= set(PRECISIONS):
        raise UserError(f"--precisions {precisions!r}: choose from {', '.join(PRECISIONS)}")
    if cases[0].variant:
        raise UserError(f"--suite times a full network; pass one without a variant, not {cases[0].label}")
    try:
        config = yaml.safe_load(Path(config_path).read_text())
    except (OSError, yaml.YAMLError) as e:
        raise UserError(f"cannot read the config {config_path} ({e}); pass --config config.yaml of the checkout") from None
    if not isinstance(config, dict) or "paper" not in config.get("scales", {}) or not isinstance(config.get("studies"), dict):
        raise UserError(f"{config_path} is not a prunebench config with a paper scale and studies; pass --config config.yaml of the checkout")
    config = {**config, "scale": "paper"}
    fuse = config["scales"]["paper"].get("fuse", 1)
    studies = {name: training_runs(config, name) for name in config["studies"]}  # before any reading: a config error fails fast
    result = suite.run(cases[0].arch, s, chosen, fuse, budget_s, log=log.info)
    projection = suite.project(result, studies, fuse)
    command = " ".join(["prunebench", *sys.argv[1:]])
    result.update(projection=projection, command=command, provenance=provenance())
    markdown = suite.to_markdown(result, projection, command)
    write_together((out_json, lambda: write_json(out_json, result)), (out_md, lambda: write_text(out_md, markdown)))
    click.echo(markdown)


@click.command("step-speed")
@click.option("--models", "model_list", default="resnet56,resnet110,vgg16", show_default=True, help="Comma-separated archs.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda[:N].")
@click.option("--precisions", default="fp32,tf32,bf16", show_default=True, help="Comma-separated precisions of the graphed step.")
@click.option("--steps", default=100, show_default=True, type=click.IntRange(min=1), help="Timed steps per configuration.")
@click.option("--out-json", required=True, type=click.Path(dir_okay=False), help="JSON to write.")
@click.option("--out-md", required=True, type=click.Path(dir_okay=False), help="Markdown table to write.")
def step_speed(model_list, device, precisions, steps, out_json, out_md) -> None:
    """Images/s of the training step alone (random data on the device): eager against a CUDA graph
    (emulated off CUDA), per precision and memory format."""
    from prunebench.analysis import step_speed as S
    from prunebench.core.io import write_text
    from prunebench.core.utils import choose_device

    check_outputs(out_json, out_md)
    archs = [m.strip() for m in model_list.split(",") if m.strip()]
    for arch in archs:
        models.check_arch(arch)
    chosen = tuple(p.strip() for p in precisions.split(",") if p.strip())
    if not chosen or not set(chosen) <= set(PRECISIONS):
        raise UserError(f"--precisions {precisions!r}: choose from {', '.join(PRECISIONS)}")
    d = choose_device(device)
    rows = S.grid(archs, d, chosen, steps, log=log.info)
    name = torch.cuda.get_device_name(d) if d.type == "cuda" else "CPU"
    result = {"device": name, "torch": torch.__version__, "rows": rows, "command": " ".join(["prunebench", *sys.argv[1:]]), "provenance": provenance()}
    markdown = S.to_markdown(rows, f"{name}, torch {torch.__version__}", result["command"])
    write_together((out_json, lambda: write_json(out_json, result)), (out_md, lambda: write_text(out_md, markdown)))
    click.echo(markdown)


