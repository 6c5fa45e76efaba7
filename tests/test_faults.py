"""Fault injection: SIGKILL the real command line at random moments, then rerun it.

A SIGKILL cannot be caught, so the only defence is the design: every output is written to a
temporary file and renamed into place (``prunebench.core.io``), and training checkpoints after every
epoch. For train, prune and evaluate the test

1. times an uninterrupted reference run of the command (in its own folder);
2. for each trial, starts the same command in a fresh folder, SIGKILLs it after a delay drawn
   from a seeded ``random.Random`` over (0, that duration), and checks at once that every
   output that exists is complete (``torch.load`` / ``json.loads`` succeed);
3. reruns the command to completion and compares its outputs with the reference's: model
   weights bit-identical, JSON identical except wall-clock times, provenance and paths.

It prints one summary line (``pytest -s`` shows it). A second test starts 8 ``prepare``
processes at once on the same output and checks they agree with a single-process prepare.

All runs are on CPU with one thread, where prunebench promises bit-identical resumes.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from conftest import write_image_tree

SEED = 20170417  # fixed: a failing trial reruns with the same kill delays
N_TRAIN, N_TRAIN_LATE, N_PRUNE, N_EVALUATE = 10, 7, 5, 5  # N_TRAIN_LATE of N_TRAIN aim at training itself
PARALLEL = 2  # trials at once (each process uses one thread)
ENV = {
    **{k: v for k, v in os.environ.items() if k != "PRUNEBENCH_DEBUG"},
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}
OUTPUTS = {
    "train": ("model.pt", "metrics.json", "checkpoint.pt"),
    "prune": ("pruned.pt", "prune.json"),
    "evaluate": ("eval.json",),
}
FINAL = {"train": ("model.pt", "metrics.json"), "prune": ("pruned.pt", "prune.json"), "evaluate": ("eval.json",)}


# --------------------------------------------------------------------------- commands
def command(kind: str, folder: Path, data: Path, ref: Path) -> list[str]:
    """The command line of one job writing into ``folder``; prune and evaluate read the reference
    training run in ``ref`` (shared inputs, so their JSON may record the same input paths)."""
    if kind == "train":
        return [
            "train", "--arch", "resnet20", "--arm", "base", "--data", str(data), "--epochs", "3", "--lr", "0.1",
            "--milestones", "0.5", "--batch-size", "16", "--threads", "1", "--device", "cpu", "--seed", "3",
            "--model-out", str(folder / "model.pt"), "--metrics-out", str(folder / "metrics.json"),
        ]  # fmt: skip
    if kind == "prune":
        return [
            "prune", "--model", str(ref / "model.pt"), "--ratio", "0.5", "--criterion", "l1",
            "--out", str(folder / "pruned.pt"), "--report", str(folder / "prune.json"),
        ]  # fmt: skip
    if kind == "evaluate":
        return [
            "evaluate", "--model", str(ref / "model.pt"), "--metrics", str(ref / "metrics.json"), "--data", str(data),
            "--device", "cpu", "--out", str(folder / "eval.json"),
        ]  # fmt: skip
    raise ValueError(kind)


def start(argv: list[str], folder: Path, log_name: str) -> tuple[subprocess.Popen, float]:
    folder.mkdir(parents=True, exist_ok=True)
    log = open(folder / log_name, "w")
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "prunebench", *argv], cwd=folder, env=ENV, stdout=log, stderr=log)
    log.close()  # the child holds its own copy
    return proc, t0


def run_to_completion(argv: list[str], folder: Path, log_name: str) -> float:
    proc, t0 = start(argv, folder, log_name)
    rc = proc.wait(timeout=300)
    seconds = time.monotonic() - t0
    assert rc == 0, f"{argv[0]} failed (rc {rc}):\n{(folder / log_name).read_text()}"
    return seconds


# --------------------------------------------------------------------------- comparing outputs
def load(path: Path):
    if path.suffix == ".json":
        return json.loads(path.read_text())
    return torch.load(path, map_location="cpu", weights_only=True)


def strip_json(kind: str, obj: dict) -> dict:
    """Drop what legitimately differs between two runs of one command: times and provenance."""
    obj = dict(obj)
    obj.pop("provenance", None)
    if kind == "train":
        for key in ("train_seconds", "wall_seconds"):
            obj.pop(key, None)
        obj["history"] = [{k: v for k, v in h.items() if k != "time"} for h in obj["history"]]
    return obj


def differences(kind: str, got: Path, ref: Path) -> list[str]:
    """Why the outputs in folder ``got`` differ from the reference's in ``ref`` (empty: identical)."""
    problems = []
    for name in FINAL[kind]:
        a, b = got / name, ref / name
        if not a.is_file():
            problems.append(f"{name} missing after the rerun")
            continue
        if name.endswith(".json"):
            if strip_json(kind, load(a)) != strip_json(kind, load(b)):
                problems.append(f"{name} differs from the reference beyond times/provenance")
            continue
        ma, mb = load(a), load(b)
        sa, sb = ma.pop("state_dict"), mb.pop("state_dict")
        if sa.keys() != sb.keys() or not all(torch.equal(sa[k], sb[k]) for k in sa):
            bad = [k for k in sa if k in sb and not torch.equal(sa[k], sb[k])]
            problems.append(f"{name}: state_dict not bit-identical ({len(bad)} tensors differ, e.g. {bad[:3]})")
        ma.pop("source", None), mb.pop("source", None)  # pruned.pt records its input's path
        if ma != mb:
            problems.append(f"{name}: metadata differs: {ma} vs {mb}")
    return problems


# --------------------------------------------------------------------------- one trial
def wait_for_line(proc: subprocess.Popen, log: Path, marker: str, timeout: float = 120) -> float:
    """Block until ``marker`` appears in the job's log (or it exits); return the monotonic time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if marker in log.read_text():
            break
        time.sleep(0.01)
    return time.monotonic()


def trial(
    kind: str, index: int, delay: float, base: Path, data: Path, train_ref: Path, ref: Path, marker: str | None
) -> dict:
    """Kill the job ``delay`` seconds after its start (or after ``marker`` shows in its log),
    check its outputs at once, rerun it, and compare the outputs with ``ref``'s."""
    folder = base / f"{kind}-{index:02d}"
    argv = command(kind, folder, data, train_ref)
    proc, t0 = start(argv, folder, "killed.log")
    origin = wait_for_line(proc, folder / "killed.log", marker) if marker else t0
    time.sleep(max(0.0, delay - (time.monotonic() - origin)))
    killed = proc.poll() is None
    if killed:
        proc.send_signal(signal.SIGKILL)
    rc = proc.wait(timeout=60)
    at = time.monotonic() - t0
    record = {
        "kind": kind,
        "trial": index,
        "delay": round(delay, 2),
        "after": repr(marker) if marker else "start",
        "killed": killed,
        "rc": rc,
        "problems": [],
    }
    if not killed and rc != 0:
        record["problems"].append(
            f"finished before the kill with rc {rc}: {(folder / 'killed.log').read_text()[-500:]}"
        )

    # Immediately after the kill: an output that exists must be complete.
    existed = [name for name in OUTPUTS[kind] if (folder / name).exists()]
    record["existed"] = existed
    record["temps"] = sorted(p.name for p in folder.glob(".*.tmp"))
    for name in existed:
        try:
            obj = load(folder / name)
            if name in ("model.pt", "pruned.pt") and "state_dict" not in obj:
                raise ValueError("no state_dict")
        except Exception as e:
            record["problems"].append(
                f"{name} existed half-written after SIGKILL at {at:.2f}s: {type(e).__name__}: {e}"
            )

    # Rerun the same command to completion; it must resume and end where the reference did.
    rerun = subprocess.run(
        [sys.executable, "-m", "prunebench", *argv], cwd=folder, env=ENV, capture_output=True, text=True, timeout=300
    )
    if rerun.returncode != 0:
        record["problems"].append(f"rerun failed (rc {rerun.returncode}): {rerun.stderr[-800:]}")
    else:
        record["resumed"] = "resuming from" in rerun.stderr
        record["problems"] += differences(kind, folder, ref)
        left = sorted(p.name for p in folder.glob(".*.tmp"))
        if left:
            record["problems"].append(f"temporary files left after the rerun: {left}")
        if kind == "train" and (folder / "checkpoint.pt").exists():
            record["problems"].append("checkpoint.pt left after a completed run")
    record["killed_at"] = round(at, 2)
    return record


def delays(rng: random.Random, n: int, low: float, high: float) -> list[float]:
    """n delays spread over (low, high): one uniform draw in each of n equal strata."""
    width = (high - low) / n
    return [low + width * (i + rng.uniform(0.02, 0.98)) for i in range(n)]


def test_sigkill_at_random_points_then_rerun_matches_an_uninterrupted_run(tmp_path, tiny_prepared, record_property):
    rng = random.Random(SEED)
    ref = tmp_path / "reference"

    # Uninterrupted references, timed.
    seconds = {"train": run_to_completion(command("train", ref, tiny_prepared, ref), ref, "train.log")}
    assert not (ref / "checkpoint.pt").exists()
    ref_prune, ref_eval = tmp_path / "reference-prune", tmp_path / "reference-evaluate"
    seconds["prune"] = run_to_completion(command("prune", ref_prune, tiny_prepared, ref), ref_prune, "prune.log")
    seconds["evaluate"] = run_to_completion(command("evaluate", ref_eval, tiny_prepared, ref), ref_eval, "evaluate.log")
    refs = {"train": ref, "prune": ref_prune, "evaluate": ref_eval}

    # Most of a tiny job's lifetime is Python importing torch, so delays counted from the start
    # rarely land in training. The other train trials therefore count their delay from a line
    # of the job's own log: the one that starts training ("train {...}") or ends epoch k ("epoch
    # k/3", printed after that epoch's checkpoint), drawn over one reference epoch: positions
    # stratified over the 3 epochs, robust to a loaded machine slowing the job. The last one
    # aims at the final writes (model.pt, metrics.json, removing the checkpoint).
    epoch_seconds = sum(h["time"] for h in load(ref / "metrics.json")["history"]) / 3
    late = []
    for position in delays(rng, N_TRAIN_LATE - 1, 0, 3):
        k = int(position)
        late.append(("INFO train {" if k == 0 else f"epoch {k}/3", (position - k) * epoch_seconds))
    late.append(("epoch 3/3", rng.uniform(0, 0.05)))

    plan = [("train", i, d, None) for i, d in enumerate(delays(rng, N_TRAIN - N_TRAIN_LATE, 0, seconds["train"]))]
    plan += [("train", N_TRAIN - N_TRAIN_LATE + i, d, marker) for i, (marker, d) in enumerate(late)]
    plan += [("prune", i, d, None) for i, d in enumerate(delays(rng, N_PRUNE, 0, seconds["prune"]))]
    plan += [("evaluate", i, d, None) for i, d in enumerate(delays(rng, N_EVALUATE, 0, seconds["evaluate"]))]
    base = tmp_path / "trials"
    with ThreadPoolExecutor(PARALLEL) as pool:
        records = list(pool.map(lambda p: trial(p[0], p[1], p[2], base, tiny_prepared, ref, refs[p[0]], p[3]), plan))

    for r in records:
        flag = "KILLED" if r["killed"] else "finished first"
        print(
            f"  {r['kind']:8s} #{r['trial']:02d} delay {r['delay']:5.2f}s after {r['after']:15s} {flag:14s} at {r['killed_at']:5.2f}s "
            f"existed={r['existed']} temps={len(r['temps'])} resumed={r.get('resumed')} "
            f"{'OK' if not r['problems'] else 'PROBLEMS: ' + '; '.join(r['problems'])}"
        )
    n_killed = sum(r["killed"] for r in records)
    n_bad = sum(bool(r["problems"]) for r in records)
    n_resumed = sum(bool(r.get("resumed")) for r in records)
    verdict = "all resumed identical" if not n_bad else f"{n_bad} FAILED"
    summary = (
        f"fault trials: {len(records)}, killed mid-run: {n_killed}, resumed from a checkpoint: {n_resumed}, "
        f"{verdict} (reference seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in seconds.items()) + ")"
    )
    print(summary)
    record_property("fault_trials", summary)
    assert len(records) >= 20
    assert n_killed >= len(records) // 2, "most kills should land before the job finishes; are the delays right?"
    assert not n_bad, "\n".join(f"{r['kind']} #{r['trial']}: {p}" for r in records for p in r["problems"])


# --------------------------------------------------------------------------- concurrent prepare
def test_eight_concurrent_prepares_of_one_output_agree_with_a_single_one(tmp_path):
    from prunebench.data.datasets import prepare

    tree = tmp_path / "tree"
    write_image_tree(tree, seed=7)
    shared = tmp_path / "shared" / "cifar10.pt"
    argv = ["prepare", "--dataset", "cifar10", "--data-root", str(tree), "--out", str(shared), "--no-download"]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "prunebench", *argv],
            cwd=tmp_path,
            env=ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(8)
    ]
    results = [(*p.communicate(timeout=300), p.returncode) for p in procs]
    for i, (out, err, rc) in enumerate(results):
        assert rc == 0, f"prepare #{i} failed (rc {rc}):\n{err}"
        assert "Traceback" not in err and "prunebench: error" not in err, err

    single = tmp_path / "single" / "cifar10.pt"
    prepare("cifar10", tree, single, download=False)
    got, want = load(shared), load(single)
    assert got.keys() == want.keys()
    for key in want:
        if isinstance(want[key], torch.Tensor):
            assert torch.equal(got[key], want[key]), key
        else:
            assert got[key] == want[key], key
    assert len(got["train_x"]) == 30 and len(got["test_x"]) == 20
    stray = sorted(p.name for p in shared.parent.iterdir() if p.name.endswith(".tmp"))
    assert not stray, f"temporary files left by concurrent prepares: {stray}"
