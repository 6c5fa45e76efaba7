"""Where a result came from: the code (git commit, and whether the tree had uncommitted
changes), the package versions, the machine and the command. Every file a run writes
(metrics.json, prune.json, eval.json) carries it, so ``prunebench trace`` can walk from a table
cell back to the runs that made it."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import socket
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import torch

from prunebench import __version__

PACKAGES = ("torch", "torchvision", "numpy", "pandas", "snakemake", "click")


@functools.cache
def code_version() -> dict:
    """The git commit of the prunebench source and whether tracked files differ from it (both
    None outside a git checkout, e.g. an installed wheel, or without git)."""
    here = str(Path(__file__).resolve().parent)
    try:
        commit = subprocess.run(["git", "-C", here, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=20)
        if commit.returncode:
            return {"commit": None, "dirty": None}
        status = subprocess.run(["git", "-C", here, "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit.stdout.strip(), "dirty": bool(status.stdout.strip()) if status.returncode == 0 else None}


@functools.cache
def package_versions() -> dict:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def config_sha256(config: dict) -> str:
    """A hash of a resolved run configuration (canonical JSON: sorted keys)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    return f"cpu: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def provenance() -> dict:
    return {
        "prunebench": __version__,
        **code_version(),
        "packages": package_versions(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "host": socket.gethostname(),
        "command": " ".join(["prunebench", *sys.argv[1:]]),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
    }
