"""Training-speed benchmark: prunebench's training path against a loop written the way the
reference code trains (torchvision-style dataset of PIL images, DataLoader with RandomCrop +
RandomHorizontalFlip + ToTensor + Normalize, fp32, per-step ``.item()``).

Each case runs in a fresh spawned process, so its peak host memory (RSS, DataLoader workers
included) and peak device memory are its own. Packing runs N fast-path processes at once on
the same device and sums their throughput.
"""

from __future__ import annotations

import multiprocessing as mp
import resource
import time
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from prunebench import models
from prunebench.core.errors import UserError
from prunebench.core.utils import choose_device, seed_everything
from prunebench.data.cifar import MEAN, STD, Data, TrainBatches
from prunebench.data.sampling import epoch_generator
from prunebench.models.counting import count_macs, scratch_b_epochs
from prunebench.training import graphs
from prunebench.training.loop import evaluate, fit
from prunebench.training.step import Hparams, Schedule, make_optimizer, make_step, set_precision

CIFAR_TRAIN_IMAGES = 50_000


@dataclass(frozen=True)
class Case:
    arch: str
    variant: str | None = None

    @property
    def label(self) -> str:
        return f"{self.arch}-{self.variant}" if self.variant else self.arch

    @classmethod
    def parse(cls, text: str) -> "Case":
        arch, _, variant = text.partition("-")
        models.check_arch(arch)
        return cls(arch, variant or None)

    def cfg(self) -> list:
        from prunebench.pruning import labelled_cfg

        return labelled_cfg(self.label)


@dataclass(frozen=True)
class Settings:
    data: str
    device: str = "auto"
    batch_size: int = 64
    warmup: int = 20
    steps: int = 200
    workers: int = 4
    acc_epochs: int = 3
    train_subset: int | None = None
    test_subset: int | None = None
    precision: str = "fp32"
    compile: str = "none"
    seed: int = 1
    threads: int | None = None
    graphs: bool = True  # the prunebench path replays a CUDA graph where training would


# --------------------------------------------------------------------------- the two paths
class _ReferenceCIFAR(torch.utils.data.Dataset):
    """What torchvision.datasets.CIFAR10 does per item: uint8 array -> PIL image -> transforms."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, transform):
        self.x, self.y, self.transform = x.numpy(), y.tolist(), transform

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int):
        from PIL import Image

        return self.transform(Image.fromarray(self.x[i])), self.y[i]


def _reference_loader(data: Data, s: Settings, device: torch.device, seed: int):
    from torchvision import transforms

    tf = transforms.Compose(
        [
            transforms.RandomCrop(32, padding=4),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(MEAN, STD),
        ]
    )
    return torch.utils.data.DataLoader(
        _ReferenceCIFAR(data.train_x, data.train_y, tf),
        batch_size=s.batch_size,
        shuffle=True,
        num_workers=s.workers,
        pin_memory=device.type == "cuda",
        persistent_workers=s.workers > 0,
        generator=torch.Generator().manual_seed(seed),
    )


def _reference_step(model, optimizer, x, y, device) -> None:
    x, y = x.to(device), y.to(device)
    out = model(x)
    loss = F.cross_entropy(out, y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    loss.item()  # the reference accumulates loss and correct counts on the host every step
    out.argmax(1).eq(y).sum().item()


def _reference_epoch(model, optimizer, loader, device) -> None:
    model.train()
    for x, y in loader:
        _reference_step(model, optimizer, x, y, device)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed_reference(model, optimizer, loader, device, warmup: int, steps: int) -> float:
    """Seconds for ``steps`` reference steps after ``warmup`` (cycling the loader as needed)."""
    done, start = 0, None
    while True:
        for x, y in loader:
            if done == warmup:
                _sync(device)
                start = time.perf_counter()
            _reference_step(model, optimizer, x, y, device)
            done += 1
            if done == warmup + steps:
                _sync(device)
                return time.perf_counter() - start


def _timed_fast(step, epoch_batches, device, warmup: int, steps: int) -> float:
    """Seconds for ``steps`` steps after ``warmup``, over ``epoch_batches(epoch)`` epoch by epoch."""
    done, start, epoch = 0, None, 0
    while True:
        for x, y in epoch_batches(epoch):
            if done == warmup:
                _sync(device)
                start = time.perf_counter()
            step(x, y)
            done += 1
            if done == warmup + steps:
                _sync(device)
                return time.perf_counter() - start
        epoch += 1


def _hparams(s: Settings, epochs: int, precision: str, compile_mode: str) -> Hparams:
    return Hparams(
        schedule=Schedule.fractional(epochs, 0.1, (0.5, 0.75)),
        seed=s.seed,
        batch_size=s.batch_size,
        test_batch_size=1000,
        precision=precision,
        compile=compile_mode,
    )


def run_case(case: Case, path: str, s: Settings, accuracy: bool = True, barrier=None) -> dict:
    """Time one path on one model, then (optionally) train it ``acc_epochs`` for its accuracy."""
    if s.threads:
        torch.set_num_threads(s.threads)
    device = choose_device(s.device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    data = Data(s.data, s.train_subset, s.test_subset)
    seed_everything(s.seed)
    model = models.build(case.arch, case.cfg(), data.num_classes).to(device)
    result = {"model": case.label, "path": path, "macs": count_macs(model)}
    if path == "reference":
        set_precision("fp32")
        hp = _hparams(s, max(s.acc_epochs, 1), "fp32", "none")
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
        loader = _reference_loader(data, s, device, s.seed)
        if barrier is not None:
            barrier.wait()
        seconds = _timed_reference(model, optimizer, loader, device, s.warmup, s.steps)
    else:
        model = model.to(memory_format=torch.channels_last)
        hp = _hparams(s, max(s.acc_epochs, 1), s.precision, s.compile)
        optimizer = make_optimizer(model, hp, device)
        graph = "cuda" if s.graphs and graphs.wanted(device, 1, s.compile) else "off"
        step = make_step(model, optimizer, hp, device, graph=graph)
        result["cuda_graph"] = graph == "cuda"
        batches = TrainBatches(data.train_x, data.train_y, s.batch_size, device)
        if barrier is not None:
            barrier.wait()
        seconds = _timed_fast(step, lambda epoch: batches.epoch(epoch_generator(s.seed, epoch)), device, s.warmup, s.steps)
    ips = s.steps * s.batch_size / seconds
    result.update(images_per_s=ips, seconds_per_epoch=CIFAR_TRAIN_IMAGES / ips)
    if accuracy and s.acc_epochs > 0:
        seed_everything(s.seed)
        fresh = models.build(case.arch, case.cfg(), data.num_classes)
        start = time.perf_counter()
        if path == "reference":
            fresh = fresh.to(device)
            opt = torch.optim.SGD(fresh.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
            loader = _reference_loader(data, s, device, s.seed)
            for epoch in range(s.acc_epochs):
                for group in opt.param_groups:
                    group["lr"] = hp.schedule.lr_at(epoch)
                _reference_epoch(fresh, opt, loader, device)
            acc = evaluate(fresh, data.test_x, data.test_y, 1000, device)["accuracy"]
        else:
            import tempfile
            from pathlib import Path

            with tempfile.TemporaryDirectory() as tmp:
                acc = fit(fresh, data, hp, device, Path(tmp) / "ckpt.pt", graph=None if s.graphs else "off")["final_accuracy"]
        result.update(accuracy=acc, accuracy_epochs=s.acc_epochs, accuracy_seconds=time.perf_counter() - start)
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss + resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    result["host_peak_mib"] = rss_kib / 1024
    result["device_peak_mib"] = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return result


# --------------------------------------------------------------------------- processes
def _child(queue, case, path, settings, accuracy, barrier) -> None:
    try:
        queue.put(run_case(case, path, settings, accuracy, barrier))
    except BaseException as e:  # report, never hang the parent
        queue.put({"error": f"{type(e).__name__}: {e}"})
        if barrier is not None:
            barrier.abort()


def _spawn(case: Case, path: str, s: Settings, n: int = 1, accuracy: bool = True) -> list[dict]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    barrier = ctx.Barrier(n) if n > 1 else None
    procs = [ctx.Process(target=_child, args=(queue, case, path, s, accuracy, barrier)) for _ in range(n)]
    for p in procs:
        p.start()
    results = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    for r in results:
        if "error" in r:
            raise RuntimeError(f"benchmark of {case.label} ({path}) failed: {r['error']}")
    return results


def device_name(device: str, threads: int | None = None) -> str:
    d = choose_device(device)
    if d.type == "cuda":
        return torch.cuda.get_device_name(d)
    import platform

    return f"CPU ({platform.machine()}, {threads or torch.get_num_threads()} threads per run)"


def run(cases: list[Case], s: Settings, pack: int = 1, log=print) -> dict:
    """The whole benchmark: both paths per case, then packing on the first case."""
    if not cases:
        raise UserError("no models to benchmark; pass --models, e.g. resnet56,resnet56-B")
    rows = []
    for case in cases:
        for path in ("reference", "prunebench"):
            (r,) = _spawn(case, path, s)
            log(f"{r['model']:>12} {path:>10}: {r['images_per_s']:9.1f} img/s  {r['seconds_per_epoch']:7.1f} s/epoch")
            rows.append(r)
    by = {(r["model"], r["path"]): r for r in rows}
    ratios = {c.label: by[(c.label, "prunebench")]["images_per_s"] / by[(c.label, "reference")]["images_per_s"] for c in cases}
    packing = None
    if pack > 1:
        single = by[(cases[0].label, "prunebench")]["images_per_s"]
        packed = _spawn(cases[0], "prunebench", s, n=pack, accuracy=False)
        aggregate = sum(r["images_per_s"] for r in packed)
        packing = {
            "model": cases[0].label,
            "runs": pack,
            "single_images_per_s": single,
            "aggregate_images_per_s": aggregate,
            "speedup": aggregate / single,
            "device_peak_mib_each": packed[0]["device_peak_mib"],
        }
        log(f"packing {pack} x {cases[0].label}: {aggregate:.1f} img/s aggregate, x{aggregate / single:.2f} vs one run")
    return {
        "device": device_name(s.device, s.threads),
        "settings": asdict(s),
        "rows": rows,
        "ratios": ratios,
        "packing": packing,
        "command": None,
    }


# --------------------------------------------------------------------------- projection
def project_table1(result: dict, table_models: dict[str, list[str]], seeds: int = 5, budget: int = 160, finetune: int = 40) -> dict:
    """GPU-hours of the paper-scale Table 1 from measured seconds per epoch.

    Runs per seed: the base model (``budget`` epochs) per arch; per variant fine-tune
    (``finetune``), Scratch-E (``budget``) and Scratch-B (int(budget x MACs ratio)). A model the
    benchmark did not time is scaled from its full network's time by the MACs ratio and marked
    as estimated. Evaluation and pruning (seconds each) are left out.
    """
    measured = {(r["model"], r["path"]): r for r in result["rows"]}
    hours = {"reference": 0.0, "prunebench": 0.0}
    estimated, missing, runs = set(), set(), 0
    for arch, variants in table_models.items():
        full_macs = count_macs(models.build(arch))
        jobs = [(Case(arch), full_macs, budget)]
        for v in variants:
            macs = count_macs(models.build(arch, Case(arch, v).cfg()))
            epochs_b = scratch_b_epochs(budget, full_macs, macs)
            jobs += [(Case(arch, v), macs, e) for e in (finetune, budget, epochs_b)]
        for case, macs, epochs in jobs:
            runs += seeds
            for path in hours:
                row = measured.get((case.label, path))
                if row is None:
                    full = measured.get((arch, path))
                    if full is None:
                        missing.add(case.label)
                        continue
                    sec = full["seconds_per_epoch"] * macs / full_macs
                    estimated.add(case.label)
                else:
                    sec = row["seconds_per_epoch"]
                hours[path] += seeds * epochs * sec / 3600
    out = {
        "runs": runs,
        "seeds": seeds,
        "gpu_hours_reference": hours["reference"],
        "gpu_hours_prunebench": hours["prunebench"],
        "estimated_from_macs": sorted(estimated),
        "unmeasured": sorted(missing),
    }
    if result.get("packing"):
        out["gpu_hours_prunebench_packed"] = hours["prunebench"] / result["packing"]["speedup"]
        out["packed_runs_per_device"] = result["packing"]["runs"]
    return out


def to_markdown(result: dict) -> str:
    lines = [
        "# Training speed: prunebench vs the reference-style loop",
        "",
        f"Device: **{result['device']}**. Batch {result['settings']['batch_size']}, "
        f"{result['settings']['steps']} timed steps after {result['settings']['warmup']} warm-up steps; "
        f"precision {result['settings']['precision']}, compile {result['settings']['compile']}; "
        f"reference DataLoader workers {result['settings']['workers']}. "
        f"Seconds per epoch are for 50,000 CIFAR images.",
        "",
        "| model | path | images/s | s/epoch | speed-up | test acc. (%) after | host peak (MiB) | device peak (MiB) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        ratio = result["ratios"][r["model"]] if r["path"] == "prunebench" else 1.0
        acc = f"{r['accuracy']:.2f} ({r['accuracy_epochs']} ep.)" if "accuracy" in r else "–"
        dev = f"{r['device_peak_mib']:.0f}" if r["device_peak_mib"] is not None else "–"
        lines.append(
            f"| {r['model']} | {r['path']}{', CUDA graph' if r.get('cuda_graph') else ''} | {r['images_per_s']:.1f} | {r['seconds_per_epoch']:.1f} | "
            f"x{ratio:.2f} | {acc} | {r['host_peak_mib']:.0f} | {dev} |"
        )
    p = result.get("packing")
    if p:
        lines += [
            "",
            f"Packing: {p['runs']} {p['model']} runs at once on one device: "
            f"{p['aggregate_images_per_s']:.1f} images/s in total vs {p['single_images_per_s']:.1f} for one run "
            f"(x{p['speedup']:.2f}).",
        ]
    proj = result.get("projection")
    if proj:
        lines += [
            "",
            f"Projected paper-scale Table 1 ({proj['runs']} training runs, {proj['seeds']} seeds; training only): "
            f"reference loop {proj['gpu_hours_reference']:.1f} device-hours, prunebench "
            f"{proj['gpu_hours_prunebench']:.1f}"
            + (f", prunebench packed {proj['packed_runs_per_device']} per device {proj['gpu_hours_prunebench_packed']:.1f}" if "gpu_hours_prunebench_packed" in proj else "")
            + ".",
        ]
        if proj["estimated_from_macs"]:
            lines.append(f"Scaled from the full network by MACs (not timed): {', '.join(proj['estimated_from_macs'])}.")
        if proj["unmeasured"]:
            lines.append(f"Left out (neither it nor its full network was timed): {', '.join(proj['unmeasured'])}.")
    if result.get("command"):
        lines += ["", f"Command: `{result['command']}`"]
    return "\n".join(lines) + "\n"
