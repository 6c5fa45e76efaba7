"""Data-parallel training of one run over several processes, as torchrun launches them.

An ImageNet run takes days on one GPU, so a run may span the GPUs of a node (or several nodes):
``torchrun --nproc-per-node N -m prunebench train ...`` starts N copies of the same command and
sets RANK, WORLD_SIZE and LOCAL_RANK; each process trains PyTorch's own
DistributedDataParallel wrapper of the model on its share of every global batch, and only
rank 0 writes checkpoints and results. Started without torchrun, a run is one process and
nothing here does anything.

Exactness. Process r takes a contiguous share of each global batch (``data.sampling.shard_bounds``) and
its loss is the *sum* over its images times world/global-batch, so DDP's gradient average is
the gradient of the global batch's mean loss, whatever the shares' sizes: a model without
BatchNorm ends with the weights of a one-process run over the same global batch, to float
rounding (tested with gloo on CPU). BatchNorm normalises each process's share by its own
statistics, as the reference's nn.DataParallel does per GPU; DDP keeps rank 0's running
statistics (``broadcast_buffers``).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from prunebench.core.errors import UserError

log = logging.getLogger("prunebench")


@dataclass(frozen=True)
class Context:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Whether this process writes checkpoints, results and progress."""
        return self.rank == 0


def from_env() -> Context:
    """The process's place in the job, from torchrun's variables (one process without them)."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    except ValueError:
        raise UserError("WORLD_SIZE, RANK and LOCAL_RANK must be whole numbers; launch data-parallel runs with torchrun") from None
    if world < 1 or not 0 <= rank < world:
        raise UserError(f"RANK={rank} is not a process of WORLD_SIZE={world}; launch data-parallel runs with torchrun")
    return Context(rank, world, local)


def start(ctx: Context, device: torch.device) -> torch.device:
    """Join the process group (NCCL on GPUs, gloo on CPU) and return this process's device: one
    GPU per process, by local rank."""
    if ctx.world == 1:
        return device
    if device.type == "cuda":
        if ctx.local_rank >= torch.cuda.device_count():
            raise UserError(f"process {ctx.local_rank} of this node has no GPU ({torch.cuda.device_count()} visible); start at most one process per GPU")
        device = torch.device("cuda", ctx.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    _end_with_launcher()
    return device


WATCH_EVERY = 0.5  # seconds between a rank's looks at its launcher


def _end_with_launcher() -> None:
    """When the launcher (torchrun, this process's parent) dies, as when the shell or workflow
    that started it is killed outside SLURM, send this process SIGTERM: the loop then saves a
    checkpoint at the ranks' next common check and the run ends, resumable, instead of training
    on beside a rerun. A watchdog thread on the parent's pid, since Linux's parent-death signal
    follows the parent thread, which need not live as long as torchrun."""
    launcher = os.getppid()

    def watch() -> None:
        while os.getppid() == launcher:
            time.sleep(WATCH_EVERY)
        log.warning("the launcher (process %d) is gone: saving a checkpoint and ending", launcher)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="launcher-watchdog", daemon=True).start()


def finish(ctx: Context) -> None:
    if ctx.world > 1 and dist.is_initialized():
        dist.destroy_process_group()


def wrap(model: nn.Module, ctx: Context, device: torch.device) -> nn.Module:
    """The module the training step runs: DDP's wrapper over several processes, else the model."""
    if ctx.world == 1:
        return model
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def all_sum(t: torch.Tensor, ctx: Context) -> torch.Tensor:
    """``t`` summed over the processes (in place; unchanged in a one-process run)."""
    if ctx.world > 1:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def gather(value, ctx: Context) -> list:
    """Every process's ``value`` (any picklable object), in rank order, in every process."""
    if ctx.world == 1:
        return [value]
    out = [None] * ctx.world
    dist.all_gather_object(out, value)
    return out


def any_true(flag: bool, ctx: Context, device: torch.device) -> bool:
    """Whether ``flag`` is set in any process (a SIGTERM that reached one of them)."""
    if ctx.world == 1:
        return flag
    return bool(all_sum(torch.tensor(float(flag), device=device), ctx).item())
