"""The speed suite (``prunebench bench --suite``): every reading that says what a table costs on
the device it runs on, taken within a time budget, in one table.

The readings, on one model (ResNet-56 at batch 64 by default): the reference-style loop; the
prunebench step eager; graphed (CUDA graphs, where the device has them) in each precision;
K runs fused into one network, graphed, for K = 1, 4, 16, 32 (and the scale's fuse); N runs
packed as N processes sharing the device. Each gives images/s (of all runs together), its ratio
to the reference loop, effective TFLOP/s (6 x MACs x images/s: forward, and backward at twice
the forward), seconds per 50,000-image epoch of one run, and peak device memory. Then every
study's paper-scale training is projected in GPU-hours from the readings: one run at a time,
packed, and fused (:mod:`prunebench.studies.cost` counts the work).

The budget is checked before each reading: what does not fit is listed as skipped, never
guessed. Readings are ordered so the reference loop and the best configurations come first.
"""

from __future__ import annotations

import time
from dataclasses import replace

import torch

from prunebench import models
from prunebench.core.utils import choose_device, seed_everything
from prunebench.data.cifar import Data, TrainBatches
from prunebench.data.sampling import epoch_generator
from prunebench.models.counting import count_macs
from prunebench.training import fused, graphs
from prunebench.training.step import Hparams, Schedule, make_optimizer, make_step

from .bench import CIFAR_TRAIN_IMAGES, Case, Settings, _spawn, _timed_fast

FUSED_K = (1, 4, 16, 32)
PACKS = (1, 4, 16)


def readings(device: torch.device, precisions: tuple[str, ...], fuse: int, small: bool) -> list[dict]:
    """What the suite measures, in order. ``small`` (the CPU's form): fewer copies and processes."""
    ks = (1, 2) if small else tuple(sorted(set(FUSED_K) | {fuse}))
    packs = (1, 2) if small else PACKS
    out = [{"what": "reference loop", "kind": "reference", "precision": "fp32"}]
    out.append({"what": "eager", "kind": "alone", "precision": "fp32", "graph": False})
    out += [{"what": f"graphed {p}", "kind": "alone", "precision": p, "graph": True} for p in precisions]
    best = precisions[-1]
    out += [{"what": f"fused K={k} {p}", "kind": "fused", "precision": p, "k": k, "graph": True} for p in (best, *precisions[:-1]) for k in ks]
    out += [{"what": f"packed {n} {precisions[0]}", "kind": "packed", "precision": precisions[0], "n": n} for n in packs if n > 1]
    return out


def _timed_fused(arch: str, k: int, data: Data, s: Settings, device: torch.device, precision: str) -> dict:
    """Images/s of K copies trained as one network (their batches stacked), graphed where CUDA,
    timed as the bench times one run."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    hp = Hparams(Schedule(1, 0.1), batch_size=s.batch_size, precision=precision)
    copies = []
    for seed in range(k):
        seed_everything(seed)
        copies.append(models.build(arch, None, data.num_classes).to(device).to(memory_format=torch.channels_last))
    net = copies[0] if k == 1 else fused.Stacked(copies)
    graph = "cuda" if graphs.wanted(device, 1, "none") else "off"
    step = make_step(net, make_optimizer(net, hp, device), hp, device, graph=graph)
    streams = [TrainBatches(data.train_x, data.train_y, s.batch_size, device, seed=seed) for seed in range(k)]

    def epoch_batches(epoch: int):
        batches = [b.epoch(epoch_generator(seed, epoch)) for seed, b in enumerate(streams)]
        return batches[0] if k == 1 else fused.stack_batches(batches)

    ips = s.steps * s.batch_size * k / _timed_fast(step, epoch_batches, device, s.warmup, s.steps)
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return {"images_per_s": ips, "device_peak_mib": peak, "cuda_graph": graph == "cuda"}


def run(arch: str, s: Settings, precisions: tuple[str, ...], fuse: int, budget_s: float, log=print) -> dict:
    """Take the readings within ``budget_s`` seconds; the result's rows hold each one's figures."""
    device = choose_device(s.device)
    small = device.type != "cuda"
    data = Data(s.data, s.train_subset, s.test_subset)
    macs = count_macs(models.build(arch, None, data.num_classes))
    deadline = time.monotonic() + budget_s
    rows, skipped = [], []
    for r in readings(device, precisions, fuse, small):
        if time.monotonic() > deadline:
            skipped.append(r["what"])
            continue
        started = time.monotonic()
        if r["kind"] == "fused":
            got = _timed_fused(arch, r["k"], data, s, device, r["precision"])
        else:
            settings = replace(s, precision=r["precision"], graphs=r.get("graph", True))
            path = "reference" if r["kind"] == "reference" else "prunebench"
            done = _spawn(Case(arch), path, settings, n=r.get("n", 1), accuracy=False)
            got = {
                "images_per_s": sum(d["images_per_s"] for d in done),
                "device_peak_mib": done[0]["device_peak_mib"],
                "cuda_graph": bool(done[0].get("cuda_graph")),
            }
        runs = r.get("k", r.get("n", 1))
        row = {**r, **got, "runs": runs, "seconds": time.monotonic() - started}
        row["tflops"] = 6 * macs * row["images_per_s"] / 1e12
        row["seconds_per_epoch"] = CIFAR_TRAIN_IMAGES / (row["images_per_s"] / runs)  # one run's epoch
        rows.append(row)
        log(f"{r['what']:>22}: {row['images_per_s']:10.1f} img/s  {row['tflops']:7.3f} TFLOP/s  ({row['seconds']:.0f} s)")
    reference = next((x["images_per_s"] for x in rows if x["kind"] == "reference"), None)
    for row in rows:
        row["vs_reference"] = row["images_per_s"] / reference if reference else None
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    return {"device": name, "torch": torch.__version__, "arch": arch, "macs": macs, "batch_size": s.batch_size, "budget_s": budget_s, "rows": rows, "skipped": skipped}


def project(result: dict, studies: dict[str, list], fuse: int) -> list[dict]:
    """GPU-hours of each study's training (``studies``: name -> its :class:`TrainingRun` list) at
    the suite's speeds, scaled from its model by MACs per image: one run at a time (the best
    graphed fp32 reading), packed (the best packed one) and fused (the fused reading at the
    study's group size, else the nearest smaller K); fp32, the papers' arithmetic, throughout."""
    rows = [r for r in result["rows"] if r["precision"] == "fp32"]

    def rate(kind: str, pick=None) -> float | None:  # images/s of all the reading's runs together
        found = [r for r in rows if r["kind"] == kind and (pick is None or pick(r))]
        return max((r["images_per_s"] for r in found), default=None)

    alone = rate("alone")
    packed = rate("packed")
    ks = sorted(r["k"] for r in rows if r["kind"] == "fused" and r["k"] <= max(fuse, 1))
    fused_rate = rate("fused", lambda r: r["k"] == ks[-1]) if ks else None
    out = []
    for study, runs in studies.items():
        if not runs:
            continue
        work = sum(r.mac_epochs for r in runs) / result["macs"]  # images of the suite's model
        hours = {name: (work / rate / 3600 if rate else None) for name, rate in (("alone", alone), ("packed", packed), ("fused", fused_rate))}
        out.append({"study": study, "runs": sum(r.seeds for r in runs), "estimated": any(r.estimated for r in runs), **{f"gpu_hours_{k}": v for k, v in hours.items()}})
    return out


def to_markdown(result: dict, projection: list[dict], command: str) -> str:
    lines = [
        f"# Speed suite: {result['arch']} at batch {result['batch_size']}",
        "",
        f"Device: **{result['device']}**, torch {result['torch']}. Images/s of all runs of a reading together; "
        "s/epoch: one run's 50,000-image epoch; effective TFLOP/s: 6 x MACs x images/s.",
        "",
        "| reading | runs | images/s | vs reference | TFLOP/s | s/epoch | device peak (MiB) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        ratio = f"x{r['vs_reference']:.2f}" if r["vs_reference"] else "–"
        peak = f"{r['device_peak_mib']:.0f}" if r["device_peak_mib"] is not None else "–"
        graph = ", CUDA graph" if r.get("cuda_graph") else " (eager: no CUDA graphs here)" if r.get("graph") else ""
        lines.append(f"| {r['what']}{graph} | {r['runs']} | {r['images_per_s']:.1f} | {ratio} | {r['tflops']:.3f} | {r['seconds_per_epoch']:.1f} | {peak} |")
    if result["skipped"]:
        lines += ["", f"Skipped (the {result['budget_s']:.0f} s budget ran out): {', '.join(result['skipped'])}."]
    if projection:
        fmt = lambda h: f"{h:.1f}" if h is not None else "–"  # noqa: E731
        lines += [
            "",
            "Projected paper-scale training, device-hours at fp32 on this device (CIFAR studies; `*`:",
            "learned or masked networks charged the full network's MACs, an upper bound):",
            "",
            "| study | runs | one at a time | packed | fused |",
            "|---|---|---|---|---|",
        ]
        lines += [f"| {p['study']}{' *' if p['estimated'] else ''} | {p['runs']} | {fmt(p['gpu_hours_alone'])} | {fmt(p['gpu_hours_packed'])} | {fmt(p['gpu_hours_fused'])} |" for p in projection]
    return "\n".join(lines + ["", f"Command: `{command}`", ""])
