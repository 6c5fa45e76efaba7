"""``prunebench latency``: measured inference cost (latency, throughput) of model files beside
their counted MACs, so a reader sees that structured pruning speeds a network up and masked
(unstructured) pruning does not without sparse kernels."""

from __future__ import annotations

import logging
import time

import click
import torch

from prunebench.core.errors import UserError
from prunebench.core.io import check_outputs, write_text, write_together

log = logging.getLogger("prunebench")
DEFAULT_REPEATS = {1: 5}  # batch -> timed passes when --repeats is not given; larger batches: 3


def _devices(names: tuple[str, ...]) -> tuple[list[torch.device], list[str]]:
    """The requested devices this machine has, and those it lacks (cuda on a CPU node): skipped,
    so one rule runs on CPU and GPU nodes alike. An unknown name is the user's error."""
    found, missing = [], []
    for name in dict.fromkeys(names):
        try:
            device = torch.device(name)
        except RuntimeError:
            raise UserError(f"unknown device {name!r}; use cpu, cuda or cuda:N") from None
        if device.type not in ("cpu", "cuda"):
            raise UserError(f"device {name!r} is not supported; use cpu, cuda or cuda:N")
        if device.type == "cuda" and (not torch.cuda.is_available() or (device.index or 0) >= torch.cuda.device_count()):
            missing.append(name)
        else:
            found.append(device)
    return found, missing


def _repeats(batch: int, repeats: int | None) -> int:
    return repeats if repeats is not None else DEFAULT_REPEATS.get(batch, 3)


def _measure_all(described: list[dict], devices, batches, warmup, repeats, threads, image_size=None) -> list[dict]:
    """Time every model on every device at every batch size, one model in memory at a time."""
    from prunebench.analysis.latency import dense_model, measure

    rows = []
    for i, info in enumerate(described, 1):
        model = dense_model(info["path"])
        for device in devices:
            done = []
            for batch in batches:
                m = measure(model, batch, device, warmup, _repeats(batch, repeats), threads, image_size)
                rows.append({**info, **{k: v for k, v in m.items() if k != "times_ms"}})
                done.append(f"batch {batch} {m['latency_ms_median']:.2f} ms")
            log.info("latency %d/%d %s (%s) on %s: %s", i, len(described), info["model"], info["kind"], device, ", ".join(done))
        del model
    return rows


@click.command("latency")
@click.argument("model_paths", metavar="MODELS...", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--batch", "batches", multiple=True, type=click.IntRange(min=1), default=(1, 64), show_default=True, help="Batch size (repeatable).")
@click.option("--device", "device_names", multiple=True, default=("cpu",), show_default=True, help="cpu, cuda or cuda:N (repeatable); a CUDA device this machine lacks is skipped with a warning.")
@click.option("--warmup", default=1, show_default=True, type=click.IntRange(min=0), help="Untimed forward passes before timing.")
@click.option("--repeats", type=click.IntRange(min=1), help="Timed forward passes per model, batch and device [default: 5 at batch 1, 3 otherwise].")
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads for torch [default: torch's].")
@click.option("--image-size", type=click.IntRange(min=8), help="Side of the timed images [default: the model's input, 32 on CIFAR, 224 on ImageNet].")
@click.option("--csv", "csv_path", required=True, type=click.Path(dir_okay=False), help="CSV to write.")
@click.option("--md", "md_path", required=True, type=click.Path(dir_okay=False), help="Markdown table to write.")
@click.option("--figure", "figure_path", type=click.Path(dir_okay=False), help="Also draw speedup against MAC reduction (PNG).")
@click.option("--title", default="Inference cost: measured latency beside counted MACs", show_default=True, help="Title of the table and figure.")
def latency(model_paths, batches, device_names, warmup, repeats, threads, image_size, csv_path, md_path, figure_path, title) -> None:
    """Time eval-mode forward passes of model.pt files (MODELS: full, physically pruned and masked
    networks) and compare each with the full network of its dataset and arch."""
    from prunebench.analysis import latency as L
    from prunebench.core.provenance import provenance

    check_outputs(csv_path, md_path, figure_path)
    started = time.time()
    devices, missing = _devices(device_names)
    described = [L.describe(p) for p in dict.fromkeys(model_paths)]  # every file checked before any timing
    L.unique_labels(described)
    for name in missing:
        log.warning("device %s is not available on this machine (CUDA GPUs: %d); skipped", name, torch.cuda.device_count())
    rows = _measure_all(described, devices, sorted(set(batches)), warmup, repeats, threads, image_size)
    df = L.table(rows)
    elapsed = time.time() - started
    notes = [f"Measured with `{provenance()['command']}` (torch {torch.__version__}, warm-up passes: {warmup}) in {elapsed:.0f} s."]
    notes += [f"Device {d}: {n}." for d, n in dict(zip(df.get("device", []), df.get("device_name", []))).items()]
    notes += [f"Skipped device {name}: not available on the machine that measured." for name in missing]
    writes = [(csv_path, lambda: write_text(csv_path, df.to_csv(index=False))), (md_path, lambda: write_text(md_path, L.to_markdown(df, title, notes)))]
    if figure_path:
        from prunebench.report.latency_figure import plot_latency

        writes.append((figure_path, lambda: plot_latency(df, figure_path, title)))
    write_together(*writes)
    log.info("latency of %d models x %d batch sizes x %d devices in %.1f s -> %s, %s", len(described), len(set(batches)), len(devices), time.time() - started, csv_path, md_path)
