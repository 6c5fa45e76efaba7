"""Data-parallel training: torchrun with two gloo processes on the CPU ends with the
weights of one process over the same global batch, and writes its files once."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from prunebench.data.imagenet import prepare
from prunebench.data.imagenet_tree import write_tiny_imagenet
from prunebench.data.sampling import global_batches, shard_bounds
from prunebench.training.checkpoints import load_model

TORCHRUN = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("inet")
    write_tiny_imagenet(root, classes=3, train_per_class=7, val_per_class=2)
    out = root / "imagenet.json"
    prepare(root, out)
    return out


def _command(out: Path, manifest: Path, processes: int, *extra: str) -> list[str]:
    """ThiNet's VGG-Tiny (no BatchNorm, no dropout) trained from scratch for 2 epochs at global
    batch 8 on 21 images: the last batch of an epoch is 5 images, split 3 + 2 over two processes."""
    args = [
        "train", "--arch", "vgg16_nobn", "--arm", "scratch-e", "--method", "published", "--setting", "thinet_tiny",
        "--epochs", "2", "--lr", "0.05", "--milestones", "0.5", "--batch-size", "8", "--test-batch-size", "4",
        "--data", str(manifest), "--crop", "32", "--resize", "36", "--workers", "0", "--threads", "1", "--device", "cpu",
        "--model-out", str(out / "model.pt"), "--metrics-out", str(out / "metrics.json"), *extra,
    ]  # fmt: skip
    launch = [sys.executable, "-m", "prunebench"] if processes == 1 else [TORCHRUN, "--standalone", f"--nproc-per-node={processes}", "-m", "prunebench"]
    return launch + args


def _train(out: Path, manifest: Path, processes: int, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(_command(out, manifest, processes, *extra), capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.skipif(TORCHRUN is None, reason="torchrun is not installed with torch here")
def test_two_gloo_processes_match_one(manifest, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    for out, n in ((one, 1), (two, 2)):
        p = _train(out, manifest, n)
        assert p.returncode == 0, p.stderr[-3000:]
    a, _ = load_model(one / "model.pt")
    b, meta = load_model(two / "model.pt")
    assert meta["cfg"] == a.cfg
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.allclose(x, y, rtol=1e-4, atol=1e-5), f"{name} differs by {float((x - y).abs().max()):.3g}"
    m1, m2 = (json.loads((d / "metrics.json").read_text()) for d in (one, two))
    assert (m1["processes"], m2["processes"]) == (1, 2)
    for h1, h2 in zip(m1["history"], m2["history"]):  # losses and accuracies over all images, not rank 0's share
        assert h1["train_loss"] == pytest.approx(h2["train_loss"], rel=1e-4)
        assert (h1["train_accuracy"], h1["test_accuracy"]) == (h2["train_accuracy"], h2["test_accuracy"])
    assert sorted(p.name for p in two.iterdir()) == ["metrics.json", "model.pt"]  # rank 0 wrote, no checkpoint left


def test_shares_cover_every_global_batch():
    """Each process's contiguous share of a global batch; together they are the batch, in order."""
    for n, world in ((8, 2), (5, 2), (7, 3), (2, 4)):
        bounds = [shard_bounds(n, r, world) for r in range(world)]
        assert bounds[0][0] == 0 and bounds[-1][1] == n
        assert all(bounds[i][1] == bounds[i + 1][0] for i in range(world - 1))
    assert list(global_batches(21, 8, 1)) == [0, 8, 16]
    assert list(global_batches(21, 8, 2)) == [0, 8, 16]  # the last 5 split 3 + 2
    assert list(global_batches(17, 8, 2)) == [0, 8]  # 1 image cannot be split over 2 processes: dropped
