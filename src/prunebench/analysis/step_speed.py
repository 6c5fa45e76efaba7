"""How fast the training step itself runs, apart from data loading: images/s of prunebench's step
on random batches kept on the device, eager against replayed as a CUDA graph, per precision and
memory format (``prunebench step-speed``). It is the reading behind the training loop's choices
(channels_last for every family; graphs on CUDA), taken the same way on any device."""

from __future__ import annotations

import time

import torch

from prunebench import models
from prunebench.training.step import Hparams, Schedule, make_optimizer, make_step

FORMATS = {"channels_last": torch.channels_last, "contiguous": torch.contiguous_format}


def configurations(device: torch.device, precisions: tuple[str, ...]) -> list[tuple[str, str, str]]:
    """(graph mode, precision, memory format): the eager fp32 step as the baseline, then the
    graphed step (emulated off CUDA) in every precision and format."""
    graph = "cuda" if device.type == "cuda" else "emulate"
    return [("off", "fp32", "channels_last")] + [(graph, p, f) for p in precisions for f in FORMATS]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(arch: str, device: torch.device, graph: str, precision: str, fmt: str, steps: int, batch_size: int = 64, warmup: int = 10) -> float:
    """Images/s of ``steps`` training steps after ``warmup`` (the capture among them)."""
    torch.manual_seed(0)
    memory = FORMATS[fmt]
    model = models.build(arch).to(device).to(memory_format=memory)
    hp = Hparams(Schedule(1, 0.1), batch_size=batch_size, precision=precision)
    step = make_step(model, make_optimizer(model, hp, device), hp, device, graph=graph)
    x = torch.randn(batch_size, 3, 32, 32, device=device).to(memory_format=memory)
    y = torch.randint(0, 10, (batch_size,), device=device)
    for _ in range(warmup):
        step(x, y)
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step(x, y)
    _sync(device)
    return steps * batch_size / (time.perf_counter() - start)


def grid(archs: list[str], device: torch.device, precisions: tuple[str, ...], steps: int, log=print) -> list[dict]:
    rows = []
    for arch in archs:
        for graph, precision, fmt in configurations(device, precisions):
            ips = measure(arch, device, graph, precision, fmt, steps)
            rows.append({"model": arch, "graph": graph, "precision": precision, "format": fmt, "images_per_s": round(ips, 1)})
            log(f"{arch:>10} {graph:>7} {precision:>5} {fmt:>13}: {ips:9.1f} img/s")
    return rows


def to_markdown(rows: list[dict], device: str, command: str) -> str:
    """One line per model: the eager step, then each graphed configuration with its speed-up."""
    lines = [
        "# Training-step speed (random data on the device, batch 64)",
        "",
        f"Device: **{device}**. Speed-up: against the eager fp32 channels_last step of the same model.",
        "",
        "| model | step | precision | memory format | images/s | speed-up |",
        "|---|---|---|---|---|---|",
    ]
    base = {r["model"]: r["images_per_s"] for r in rows if r["graph"] == "off"}
    for r in rows:
        step = {"off": "eager", "cuda": "CUDA graph", "emulate": "graph (emulated)"}[r["graph"]]
        lines.append(f"| {r['model']} | {step} | {r['precision']} | {r['format']} | {r['images_per_s']:.0f} | x{r['images_per_s'] / base[r['model']]:.2f} |")
    return "\n".join(lines + ["", f"Command: `{command}`", ""])
