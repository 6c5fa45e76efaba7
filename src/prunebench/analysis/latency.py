"""Measured inference cost beside the counted MACs: eval-mode latency and throughput of model files.

Structured pruning removes filters, so the pruned network is physically smaller and its dense
kernels do less work. Unstructured pruning (magnitude, lottery) and SFP's soft arm keep the full
network and zero weights: the MAC count leaves the zeros out, but PyTorch's dense kernels still
multiply by them. Timing both kinds beside the full network shows the difference.
"""

from __future__ import annotations

import contextlib
import json
import math
import statistics
import time
from pathlib import Path

import pandas as pd
import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from prunebench import models
from prunebench.core.provenance import device_name
from prunebench.models import masks
from prunebench.models.counting import count_macs, count_params, input_size
from prunebench.training.checkpoints import load_model

KINDS = ("full", "pruned", "masked")
# A trained dense network has practically no exact-zero conv weights (about one in ten million);
# SFP's soft arm zeroes whole filters without attaching masks. 1 % zeros marks a masked network.
ZERO_SHARE = 0.01
COLUMNS = [
    "path", "dataset", "arch", "model", "kind", "macs_dense", "macs", "macs_full", "mac_reduction", "params",
    "batch", "image_size", "device", "device_name", "threads", "warmup", "repeats",
    "latency_ms_median", "latency_ms_min", "throughput_ips", "speedup_vs_full",
]  # fmt: skip


# --------------------------------------------------------------------------- timing
@contextlib.contextmanager
def _threads(threads: int | None):
    """torch's CPU threads set for the measurement and restored after, so a caller's setting survives."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _sync(device: torch.device) -> None:
    """CUDA runs kernels asynchronously: wait for them, or the clock stops before the work does."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(model: nn.Module, batch_size: int, device: str | torch.device = "cpu", warmup: int = 1, repeats: int = 5, threads: int | None = None, image_size: int | None = None) -> dict:
    """Time ``repeats`` eval-mode forward passes of a random batch of ``image_size`` images (default:
    the model's own input size, 32 on CIFAR, 224 on ImageNet; after ``warmup``
    untimed ones) under ``torch.inference_mode`` on ``device`` (the model is moved there).

    Timed by hand (``perf_counter`` with ``torch.cuda.synchronize`` around every pass) rather than
    with ``torch.utils.benchmark.Timer``: Timer cannot run an exact number of single passes (its
    ``timeit`` adds at least two warm-up calls and returns one mean, ``blocked_autorange`` runs for
    0.2 s or more), and the smoke pipeline must stay at a few passes per model on slow CPU nodes.
    The median is reported because one slow pass (another job on the node) should not move it.
    """
    device = torch.device(device)
    model = model.to(device).eval()
    side = input_size(model, image_size)
    x = torch.randn(batch_size, 3, side, side, generator=torch.Generator().manual_seed(0)).to(device)
    times = []
    with _threads(threads), torch.inference_mode():
        for _ in range(warmup):
            model(x)
        _sync(device)
        for _ in range(repeats):
            start = time.perf_counter()
            model(x)
            _sync(device)
            times.append((time.perf_counter() - start) * 1000.0)
        name, used = device_name(device), torch.get_num_threads()
    median = statistics.median(times)
    return {
        "batch": batch_size,
        "image_size": side,
        "device": str(device),
        "device_name": name,
        "threads": used,
        "warmup": warmup,
        "repeats": repeats,
        "times_ms": times,
        "latency_ms_median": median,
        "latency_ms_min": min(times),
        "throughput_ips": batch_size * 1000.0 / median,
    }


# --------------------------------------------------------------------------- the models
def zero_share(model: nn.Module) -> float:
    """The share of conv weights that are exactly zero."""
    return masks.sparsity(model)["sparsity"]


def classify(model: nn.Module, meta: dict) -> str:
    """full (the registry's cfg, dense), pruned (a smaller cfg: physically pruned, SFP's
    physical.pt included even where zero filters remain) or masked (full cfg, zeroed weights)."""
    if list(meta["cfg"]) != models.default_cfg(meta["arch"]):
        return "pruned"
    if masks.is_masked(model) or zero_share(model) >= ZERO_SHARE:
        return "masked"
    return "full"


def as_dense(model: nn.Module) -> nn.Module:
    """Fold the masks into plain weights (zeros included), in place: a deployed masked network is a
    dense one with zeros, and the mask hook's extra multiply per pass is not part of its cost."""
    for module in model.modules():
        if hasattr(module, "weight_mask"):
            torch_prune.remove(module, "weight")
    return model


_FULL_MACS: dict[str, int] = {}


def full_macs(arch: str, num_classes: int, options: dict) -> int:
    """MACs of the unpruned network a model was cut from (cached: one count per architecture)."""
    key = json.dumps([arch, num_classes, options], sort_keys=True, default=str)
    if key not in _FULL_MACS:
        _FULL_MACS[key] = count_macs(models.build(arch, None, num_classes, **options), sparse=False)
    return _FULL_MACS[key]


def label(meta: dict) -> str:
    """A model's name as the tables print it, with its method and arm (VGG-16-A l1, finetune)."""
    from prunebench.core.names import display_name

    run = meta.get("run") or {}
    name = display_name(meta["arch"], run.get("setting"), run.get("method"))
    parts = [str(run[k]) for k in ("method", "arm") if run.get(k) and run.get(k) != "base"]
    return f"{name} {', '.join(parts)}" if parts else name


def describe(path: str) -> dict:
    """Load a model file (a one-line error if it is not one) and count what a table shows of it."""
    model, meta = load_model(path)
    macs, full = count_macs(model, sparse=True), full_macs(meta["arch"], meta["num_classes"], meta["options"])
    return {
        "path": str(path),
        "dataset": (meta.get("run") or {}).get("dataset", ""),
        "arch": meta["arch"],
        "model": label(meta),
        "kind": classify(model, meta),
        "macs_dense": count_macs(model, sparse=False),
        "macs": macs,
        "macs_full": full,
        "mac_reduction": full / macs if macs else math.nan,
        "params": count_params(model),
        "standin": bool(meta.get("standin", False)),
    }


def dense_model(path: str) -> nn.Module:
    """The model of ``path`` as it is timed: masks folded into plain weights."""
    return as_dense(load_model(path)[0])


def unique_labels(described: list[dict]) -> None:
    """Two files with the same name (seeds, repeated runs) get their folder added, in place."""
    seen = pd.Series([d["model"] for d in described])
    for d, dup in zip(described, seen.duplicated(keep=False)):
        if dup:
            d["model"] = f"{d['model']} [{Path(d['path']).parent.name or d['path']}]"


# --------------------------------------------------------------------------- the table
def table(rows: list[dict]) -> pd.DataFrame:
    """One row per model, batch size and device, with the speedup over the full network of the
    same dataset and arch (the median of its median latencies when several are given)."""
    df = pd.DataFrame(rows, columns=COLUMNS + ["standin"])
    if df.empty:
        return df
    keys = ["dataset", "arch", "batch", "device"]
    full = df[df["kind"] == "full"].groupby(keys)["latency_ms_median"].median().rename("full_ms")
    df = df.drop(columns="speedup_vs_full").join(full, on=keys)
    df["speedup_vs_full"] = (df["full_ms"] / df["latency_ms_median"]).round(3)
    order = {k: i for i, k in enumerate(KINDS)}
    df = df.assign(_k=df["kind"].map(order)).sort_values(["dataset", "arch", "device", "batch", "_k", "macs"], ascending=[True, True, True, True, True, False], kind="stable")
    return df.drop(columns=["_k", "full_ms"])[COLUMNS + ["standin"]].reset_index(drop=True)


def _count(n: float) -> str:
    return f"{n / 1e9:.2f}G" if n >= 1e9 else f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.1f}K"


def _speedup(v: float) -> str:
    return "–" if pd.isna(v) else f"**{v:.2f}×**" if v >= 1.1 else f"{v:.2f}×"


def to_markdown(df: pd.DataFrame, title: str, notes: list[str]) -> str:
    """The table a person reads at a glance, with what it shows and how it was measured under it."""
    from prunebench.core.names import dataset_name

    head = ["Model", "Dataset", "Kind", "MACs (reduction)", "Params", "Batch", "Device", "Latency ms (min)", "Images/s", "Speedup vs full"]
    lines = [f"# {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in df.to_dict("records"):
        cells = [
            r["model"], dataset_name(r["dataset"], r["standin"]) if r["dataset"] else "–", r["kind"],
            f"{_count(r['macs'])} ({r['mac_reduction']:.2f}×)", _count(r["params"]), str(r["batch"]), r["device"],
            f"{r['latency_ms_median']:.2f} ({r['latency_ms_min']:.2f})", f"{r['throughput_ips']:.0f}", _speedup(r["speedup_vs_full"]),
        ]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    if df.empty:
        lines.append("| (no measurements: no requested device is available here) |" + " |" * (len(head) - 1))
    lines += [
        "",
        "*pruned* networks (structured pruning) are physically smaller: fewer filters, so the dense "
        "kernels do less work and the speedup follows the MAC reduction. *masked* networks "
        "(unstructured magnitude pruning, lottery tickets, SFP's soft arm) count fewer MACs because "
        "their zero weights are left out of the count, but they keep the full network's shapes and "
        "run the same dense kernels, so without sparse kernels they are no faster than the full one.",
        "",
        "MACs: one 32x32 image, zero weights left out (dense MACs in the CSV); reduction: the full "
        "network's MACs over these. Latency: median (min) per batch of eval-mode forward passes under "
        "`torch.inference_mode`; speedup: the full network's median latency over this one's, per batch "
        "and device (– when no full network of that dataset and arch was measured).",
        "",
        *notes,
        "",
    ]
    return "\n".join(lines)
