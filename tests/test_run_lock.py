"""One writer per run folder (core/run_lock.py): a second process ends at once naming the holder,
or waits when asked; a killed holder's lock is taken over with no manual step; and the ranks of
a data-parallel run end when their launcher is killed, so that a rerun started beside them waits,
resumes and ends as an uninterrupted run."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from conftest import check_error_line, run_failing
from test_distributed import TORCHRUN, _command, _train, manifest  # noqa: F401 (the fixture)

from prunebench.commands.cli import main
from prunebench.core.errors import UserError
from prunebench.core.run_lock import LOCK_NAME, run_folders, wait_when_busy

CTX = multiprocessing.get_context("fork")


def _hold(folder: str, ready, release) -> None:
    with run_folders(os.path.join(folder, "model.pt")):
        ready.set()
        release.wait(60)


def _holder(folder: Path):
    ready, release = CTX.Event(), CTX.Event()
    proc = CTX.Process(target=_hold, args=(str(folder), ready, release))
    proc.start()
    assert ready.wait(30)
    return proc, release


def test_a_held_run_folder_ends_a_second_writer_naming_the_holder(tmp_path):
    proc, release = _holder(tmp_path / "run")
    try:
        with pytest.raises(UserError, match=rf"run folder \S+/run is being written by process {proc.pid} on \S+ .*; wait for it to end, or pass --wait") as e:
            with run_folders(tmp_path / "run" / "metrics.json"):
                pass
        assert "\n" not in str(e.value)
    finally:
        release.set()
        proc.join()
    with run_folders(tmp_path / "run" / "model.pt"):  # released: free again, and re-entrant within a process
        assert (tmp_path / "run" / LOCK_NAME).read_text().startswith(f"process {os.getpid()} ")
        with run_folders(tmp_path / "run" / "eval.json"):
            pass
    assert not (tmp_path / "run" / LOCK_NAME).exists()


def test_wait_queues_behind_the_holder(tmp_path):
    proc, release = _holder(tmp_path / "run")
    threading.Timer(1.0, release.set).start()
    wait_when_busy(True)
    try:
        started = time.monotonic()
        with run_folders(tmp_path / "run" / "model.pt"):
            waited = time.monotonic() - started
    finally:
        wait_when_busy(False)
        release.set()
        proc.join()
    assert waited >= 0.5


def test_a_killed_holders_lock_is_taken_over(tmp_path):
    proc, _ = _holder(tmp_path / "run")
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    assert (tmp_path / "run" / LOCK_NAME).exists()  # left behind by kill -9
    with run_folders(tmp_path / "run" / "model.pt"):
        assert (tmp_path / "run" / LOCK_NAME).read_text().startswith(f"process {os.getpid()} ")


def test_a_command_on_a_busy_run_folder_is_one_line_and_writes_nothing(tmp_path, capfd, caplog, tiny_prepared):
    run = tmp_path / "run"
    proc, release = _holder(run)
    argv = ["train", "--arch", "resnet20", "--arm", "base", "--epochs", "1", "--lr", "0.1", "--data", str(tiny_prepared), "--device", "cpu",
            "--model-out", str(run / "model.pt"), "--metrics-out", str(run / "metrics.json")]  # fmt: skip
    try:
        rc, err, logged = run_failing(main, argv, "busy", capfd, caplog)
    finally:
        release.set()
        proc.join()
    check_error_line(rc, err, type("Case", (), {"id": "busy", "names": rf"run folder \S+ is being written by process {proc.pid}", "hint": r"pass --wait"}), logged)
    assert sorted(p.name for p in run.iterdir()) == []


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(TORCHRUN is None or not Path("/proc").is_dir(), reason="needs torchrun and Linux's /proc")
def test_killing_the_launcher_ends_its_ranks_and_the_rerun_ends_as_an_uninterrupted_run(manifest, tmp_path):  # noqa: F811
    epochs = ("--epochs", "12")
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert _train(whole, manifest, 2, *epochs).returncode == 0
    launcher = subprocess.Popen(_command(killed, manifest, 2, *epochs), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 120
    while not (killed / "checkpoint.pt").exists() and launcher.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    ranks = _children(launcher.pid)
    assert launcher.poll() is None and ranks, "the run ended before its first checkpoint"
    launcher.kill()  # the launcher alone, as when the shell or workflow that started it dies
    launcher.wait()
    gone = time.monotonic()
    # rerun at once, beside the orphaned ranks: it waits for the run folder, then resumes
    rerun = subprocess.Popen(_command(killed, manifest, 2, *epochs, "--wait"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    while any(_alive(r) for r in ranks) and time.monotonic() - gone < 30:
        time.sleep(0.1)
    took = time.monotonic() - gone
    assert not any(_alive(r) for r in ranks), "the ranks trained on after their launcher died"
    assert took < 15
    err = rerun.communicate(timeout=300)[1]
    assert rerun.returncode == 0 and "resuming from" in err, err[-3000:]
    a, b = (torch.load(d / "model.pt", weights_only=True)["state_dict"] for d in (whole, killed))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ha, hb = (json.loads((d / "metrics.json").read_text())["history"] for d in (whole, killed))
    assert [{k: v for k, v in h.items() if k != "time"} for h in ha] == [{k: v for k, v in h.items() if k != "time"} for h in hb]
    print(f"ranks ended {took:.1f} s after the launcher was killed", file=sys.stderr)
