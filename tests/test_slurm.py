"""Through a real SLURM cluster: a training job cancelled (scancel) or requeued (as preemption
does) mid-run starts again, resumes from its checkpoint and ends with the same weights as an
uninterrupted local run.

Needs a running cluster with partition `debug`, account `root` and accounting (`sacct`), as
`.ci/slurm-cluster.sh start` makes one; CI starts it before the tests. Skipped otherwise
(failed instead with PRUNEBENCH_REQUIRE_SLURM=1).
The run uses the README's cluster command plus the CI overlay:
`snakemake --profile slurm --profile .ci/slurm-profile` (smoke scale, device cpu).
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
EPOCHS = 8  # base training epochs: time to cancel it after the first one
PREFIX = "prunebench-test"
LIMIT = 600  # seconds for the whole SLURM run


@functools.cache
def _no_cluster() -> str | None:
    """Why this machine cannot run the test, or None."""
    for tool in ("sinfo", "sbatch", "sacct", "scancel", "scontrol"):
        if shutil.which(tool) is None:
            return f"{tool} is not on PATH: no SLURM here (CI starts one: .ci/slurm-cluster.sh start)"
    try:
        out = subprocess.run(["sinfo", "-h", "-p", "debug", "-o", "%T"], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return "sinfo timed out: is slurmctld running? (.ci/slurm-cluster.sh start)"
    states = set(out.stdout.split())
    if out.returncode != 0 or not states & {"idle", "mixed", "allocated", "completing"}:
        why = out.stderr.strip().splitlines()[-1:] or [f"partition debug is {sorted(states) or 'missing'}"]
        return f"the SLURM cluster is not up ({why[0]}): run .ci/slurm-cluster.sh start"
    # Never submit to a real cluster by accident: only to the one .ci/slurm-cluster.sh made.
    conf = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, timeout=20).stdout
    name = next((line.split("=", 1)[1].strip() for line in conf.splitlines() if line.startswith("ClusterName")), "?")
    if name != "ci":
        return f"the SLURM cluster here is {name!r}, not the CI cluster of .ci/slurm-cluster.sh ('ci')"
    return None


@pytest.fixture
def slurm_cluster():
    """Skip (or, with PRUNEBENCH_REQUIRE_SLURM=1 as in .ci/run, fail) without a usable cluster."""
    why = _no_cluster()
    if why is not None:
        if os.environ.get("PRUNEBENCH_REQUIRE_SLURM") == "1":
            pytest.fail(f"PRUNEBENCH_REQUIRE_SLURM=1 but {why}")
        pytest.skip(why)


def _env() -> dict:
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "PRUNEBENCH_DEBUG": "0"}


def _config(path: Path, results: Path, data: Path) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "results": str(results),
                "data_root": str(data),
                "download": False,
                "scale": "smoke",
                "device": "cpu",
                "scales": {"smoke": {"epochs": {"base": EPOCHS, "finetune": 1, "scratch-e": 1, "scratch-b": 1}}},
            }
        )
    )
    return path


def _runs(results: Path) -> Path:
    return results / "runs" / "smoke" / "cifar10"


def _sacct(name: str) -> list[dict]:
    out = subprocess.run(
        ["sacct", "-n", "-P", "-X", "-D", "--name", name, "-S", "now-1days", "-o", "JobID,Comment,State,AllocTRES"],
        capture_output=True, text=True, check=True, timeout=30,
    )  # fmt: skip
    keys = ("id", "comment", "state", "tres")
    return [dict(zip(keys, line.split("|"))) for line in out.stdout.splitlines() if line.strip()]


def _running_jobs() -> list[dict]:
    out = subprocess.run(["squeue", "-h", "-o", "%i|%j|%k|%T"], capture_output=True, text=True, timeout=30)
    keys = ("id", "name", "comment", "state")
    return [dict(zip(keys, line.split("|"))) for line in out.stdout.splitlines() if line.strip()]


def _state_dict(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)["state_dict"]


@pytest.mark.parametrize("interrupt", ["scancel", "requeue"])
def test_interrupted_training_job_resumes_from_checkpoint(interrupt, slurm_cluster, tmp_path, make_tree):
    """`scancel`: the job fails, Snakemake resubmits it (profile `retries`). `requeue`
    (`scontrol requeue`, what preemption with PreemptMode=REQUEUE does): SLURM restarts the same
    job (the profile's `slurm-requeue` submits with --requeue), Snakemake just waits. Either way
    training gets SIGTERM, checkpoints, and the next start resumes from that checkpoint."""
    data = tmp_path / "data"
    make_tree(data, n_train=26, n_test=8, seed=7)  # 260 train, 80 test random CIFAR-shaped images
    slurm_results, local_results = tmp_path / "slurm", tmp_path / "local"
    base = _runs(slurm_results) / "resnet56" / "plain" / "base" / "seed1"
    finetune = _runs(slurm_results) / "resnet56" / "plain" / "l1-A" / "finetune" / "seed1"
    # A small pipeline: train (interrupted) -> prune -> fine-tune, each evaluated.
    targets = [str(base / "eval.json"), str(finetune / "eval.json")]

    # The uninterrupted reference, run locally beside the SLURM run (one core each).
    local_cfg = _config(tmp_path / "local.yaml", local_results, data)
    runs = ("resnet56/plain/base/seed1", "resnet56/plain/l1-A/finetune/seed1")
    local_targets = [str(_runs(local_results) / r / "model.pt") for r in runs]
    local_log = open(tmp_path / "local.log", "w")
    local = subprocess.Popen(
        [str(BIN / "snakemake"), "--configfile", str(local_cfg), "--cores", "1", *local_targets],
        cwd=REPO, env=_env(), stdout=local_log, stderr=subprocess.STDOUT,
    )  # fmt: skip

    slurm_cfg = _config(tmp_path / "slurm.yaml", slurm_results, data)
    cmd = [str(BIN / "snakemake"), "--cores", "8", "--profile", "slurm", "--profile", ".ci/slurm-profile",
           "--configfile", str(slurm_cfg), "--slurm-jobname-prefix", PREFIX, *targets]  # fmt: skip
    log_path = tmp_path / "slurm.log"
    log = open(log_path, "w")
    run = subprocess.Popen(cmd, cwd=REPO, env=_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def slurm_log() -> str:
        return log_path.read_text()[-6000:]

    try:
        # Interrupt the training job once it has written a checkpoint (after its first epoch).
        deadline = time.monotonic() + LIMIT
        checkpoint = base / "checkpoint.pt"
        while not checkpoint.exists():
            assert run.poll() is None, f"the SLURM run ended before training checkpointed:\n{slurm_log()}"
            assert time.monotonic() < deadline, f"no checkpoint after {LIMIT}s:\n{slurm_log()}"
            time.sleep(0.25)
        jobs = [j for j in _running_jobs() if j["name"].startswith(PREFIX) and j["comment"].startswith("rule_train_base")]
        assert len(jobs) == 1 and jobs[0]["state"] == "RUNNING", f"expected one running train_base job, squeue: {jobs}"
        cancelled = jobs[0]["id"]
        command = ["scancel", cancelled] if interrupt == "scancel" else ["scontrol", "requeue", cancelled]
        subprocess.run(command, check=True, timeout=30)

        rc = run.wait(timeout=max(1, deadline - time.monotonic()))
    except BaseException:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGTERM)  # snakemake cancels its SLURM jobs on SIGTERM
            try:
                run.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(run.pid, signal.SIGKILL)
                run.wait()
            subprocess.run(cmd + ["--unlock"], cwd=REPO, env=_env(), capture_output=True)
        local.kill()
        local.wait()
        raise
    finally:
        log.close()
    assert rc == 0, f"the SLURM run failed after {interrupt}:\n{slurm_log()}"
    try:
        assert local.wait(timeout=LIMIT) == 0, (tmp_path / "local.log").read_text()[-4000:]
    finally:
        local_log.close()

    # SLURM saw the interruption, and the second start completed; both asked for the (fake) GPU.
    text = log_path.read_text()
    name = next(line.split("SLURM run ID: ")[1].split()[0] for line in text.splitlines() if "SLURM run ID: " in line)
    records = _sacct(name)
    train = [r for r in records if r["comment"].startswith("rule_train_base")]
    first = "CANCELLED" if interrupt == "scancel" else "REQUEUED"
    assert [r["state"].split()[0] for r in train] == [first, "COMPLETED"], records
    assert train[0]["id"] == cancelled, records
    if interrupt == "scancel":  # a new job, submitted by Snakemake's retry
        assert train[1]["id"] != cancelled and "Error in rule train_base" in text, records
    else:  # the same job, restarted by SLURM; Snakemake saw no failure
        assert train[1]["id"] == cancelled and "Error in rule" not in text, records
    assert all("gres/gpu=1" in r["tres"].split(",") for r in train), records
    assert all(r["state"] == "COMPLETED" for r in records if r not in train), records

    # The retry resumed from the checkpoint instead of starting over...
    train_log = (base / "train.log").read_text()
    assert "resuming from" in train_log, train_log
    assert not (base / "checkpoint.pt").exists()
    # ...and ends bit-identical to the uninterrupted local run, as does the fine-tune after it.
    for slurm_run, local_run in zip((base, finetune), runs):
        a, b = _state_dict(slurm_run / "model.pt"), _state_dict(_runs(local_results) / local_run / "model.pt")
        assert a.keys() == b.keys()
        different = [k for k in a if not torch.equal(a[k], b[k])]
        assert not different, f"{slurm_run}: tensors differ from the local run: {different}"
