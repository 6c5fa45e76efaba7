"""Resume is one state for every process, and identical runs write identical files.

Two-process gloo runs on the CPU: when the ranks are shown different checkpoints (one resumes,
the other starts afresh, as when an earlier run's processes replace or delete the file), the
run ends in one line before its first step and writes no final output; a checkpoint written by
two processes is not resumed by one (a warning names both counts, and the run starts over).
Two identical runs write byte-identical model.pt, init.pt and pruned.pt files."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_distributed import TORCHRUN, _command, manifest  # noqa: F401 (the fixture)
from test_run_lock import _alive, _children

from prunebench.commands.cli import main

HERE = Path(__file__).resolve().parent
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
EPOCHS = ("--epochs", "12")


def _interrupted(out: Path, manifest: Path) -> Path:  # noqa: F811
    """A two-process run stopped after its first checkpoint (its launcher killed, its ranks
    ending on their own); its checkpoint."""
    launcher = subprocess.Popen(_command(out, manifest, 2, *EPOCHS), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    deadline = time.monotonic() + 120
    while not (out / "checkpoint.pt").exists() and launcher.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    ranks = _children(launcher.pid)
    launcher.kill()
    launcher.wait()
    while any(_alive(r) for r in ranks):
        time.sleep(0.1)
    assert (out / "checkpoint.pt").exists() and not (out / "model.pt").exists()
    return out / "checkpoint.pt"


def _split(out: Path, manifest: Path) -> subprocess.CompletedProcess:  # noqa: F811
    """The same run over two processes, rank R resuming from out/checkpoint-R.pt."""
    command = _command(out, manifest, 2, *EPOCHS, "--checkpoint", str(out / "checkpoint-{rank}.pt"), "--eval-out", str(out / "eval.json"))
    at = command.index("-m")
    command[at : at + 2] = [str(HERE / "rank_paths.py")]
    return subprocess.run(command, capture_output=True, text=True, env=ENV, timeout=300)


@pytest.mark.skipif(TORCHRUN is None or not Path("/proc").is_dir(), reason="needs torchrun and Linux's /proc")
@pytest.mark.parametrize("resumes", [0, 1], ids=["rank0-resumes", "rank1-resumes"])
def test_ranks_shown_different_checkpoints_end_in_one_line_and_write_nothing(resumes, manifest, tmp_path):  # noqa: F811
    checkpoint = _interrupted(tmp_path / "first", manifest)
    out = tmp_path / "split"
    out.mkdir()
    shutil.copy(checkpoint, out / f"checkpoint-{resumes}.pt")
    before = (out / f"checkpoint-{resumes}.pt").read_bytes()
    p = _split(out, manifest)
    assert p.returncode != 0
    lines = [line for line in p.stderr.splitlines() if line.startswith("prunebench: error:")]
    assert lines and all("the processes of this run resume from different states of" in line for line in lines), p.stderr[-3000:]
    assert "rank 1: a fresh start" in lines[0] if resumes == 0 else "rank 0: a fresh start" in lines[0]
    assert "end every process of the earlier run, then rerun" in lines[0] and "src/prunebench" not in p.stderr  # torchrun's own summary aside, no traceback
    assert sorted(f.name for f in out.iterdir()) == [f"checkpoint-{resumes}.pt"]  # no model, metrics or eval; the checkpoint as it was
    assert (out / f"checkpoint-{resumes}.pt").read_bytes() == before


@pytest.mark.skipif(TORCHRUN is None or not Path("/proc").is_dir(), reason="needs torchrun and Linux's /proc")
def test_a_two_process_checkpoint_is_not_resumed_by_one_process(manifest, tmp_path):  # noqa: F811
    out = tmp_path / "run"
    _interrupted(out, manifest)
    p = subprocess.run(_command(out, manifest, 1, *EPOCHS), capture_output=True, text=True, env=ENV, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "made under other settings (processes: 2 there, 1 here); starting over" in p.stderr and "resuming from" not in p.stderr
    assert json.loads((out / "metrics.json").read_text())["processes"] == 1


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_identical_runs_write_byte_identical_files(tiny_prepared, tmp_path):
    run = tmp_path / "run"

    def once() -> dict[str, str]:
        shutil.rmtree(run, ignore_errors=True)
        train = ["--epochs", "1", "--lr", "0.05", "--batch-size", "32", "--data", str(tiny_prepared), "--device", "cpu", "--threads", "1"]
        main(["train", "--arch", "resnet20", "--arm", "base", *train, "--model-out", str(run / "base" / "model.pt"), "--metrics-out", str(run / "base" / "metrics.json")])
        main(["init", "--base", str(run / "base" / "model.pt"), "--metrics", str(run / "base" / "metrics.json"), "--out", str(run / "base" / "init.pt")])
        main(["prune", "--model", str(run / "base" / "model.pt"), "--method", "magnitude", "--setting", "0.5", "--out", str(run / "p" / "pruned.pt"), "--report", str(run / "p" / "prune.json")])
        return {name: _sha(run / name) for name in ("base/model.pt", "base/init.pt", "p/pruned.pt")}

    first, second = once(), once()
    assert first == second, (first, second)
    print(f"sha256 over two identical runs: {first}", file=sys.stderr)


def test_replicas_that_end_apart_write_nothing(monkeypatch):
    from prunebench import models
    from prunebench.core.errors import UserError
    from prunebench.training import distributed, runs

    monkeypatch.setattr(distributed, "gather", lambda value, ctx: [value, ["0" * 64]])
    with pytest.raises(UserError, match=r"ended with different weights \(rank 0: \w{12}, rank 1: 000000000000\); nothing was written"):
        runs._same_weights_everywhere([models.build("resnet20")], distributed.Context(0, 2, 0))
