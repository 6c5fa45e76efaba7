"""Whole-step CUDA graphs: the training step (forward, loss, backward, the slimming penalty, the
SGD update and the epoch's sums) captured once and replayed for every later batch.

A CIFAR-size network at batch 64 is launch-bound on a GPU: an eager ResNet-56 step launches
about a thousand small kernels and the GPU waits on the host between them. Replaying a
captured graph launches them all at once. What a graph needs, and where it is provided:

- static inputs: each batch is copied into buffers the graph reads (:class:`Replayed`);
- no host values that change: the learning rate is a device tensor the SGD kernel reads
  (:func:`tensor_lr`, set in place by :func:`set_lr` when the schedule moves on), and the
  epoch's loss and accuracy sums are device tensors the step adds to in place;
- real first steps: the first ``warmup`` steps run eagerly on a side stream (lazy state such as
  momentum buffers and cuDNN's choices is made there), then the step is captured, which
  executes nothing, and replayed from the same batch on, so the run takes exactly the steps an
  eager one would;
- one shape: a batch of another shape (an epoch's last, smaller batch) runs eagerly, on the
  same parameters, gradients' owners and optimizer state.

The arithmetic is the eager step's, kernel for kernel. Used on a single CUDA process (DDP's
collectives and torch.compile stay eager); ``PRUNEBENCH_CUDA_GRAPHS=0`` turns it off. On the
CPU the same class runs with ``capture=False``, calling the step on the static buffers instead
of replaying, so the tests cover its bookkeeping without a GPU.
"""

from __future__ import annotations

import logging
import os
from typing import Callable

import torch

log = logging.getLogger("prunebench.train")

WARMUP = 3  # eager steps before the capture (the CUDA graphs docs' warm-up)
ENV = "PRUNEBENCH_CUDA_GRAPHS"


def wanted(device: torch.device, world: int, compile_mode: str) -> bool:
    """Whether a run graphs its step: on one CUDA process without torch.compile, unless turned off."""
    return device.type == "cuda" and world == 1 and compile_mode == "none" and os.environ.get(ENV, "1") != "0"


def tensor_lr(optimizer: torch.optim.Optimizer, device: torch.device) -> None:
    """Make every group's learning rate a device tensor, so a captured update reads the current one."""
    for group in optimizer.param_groups:
        group["lr"] = torch.tensor(float(group["lr"]), dtype=torch.float32 if device.type == "cuda" else torch.float64, device=device)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every group's learning rate: in place where it is a tensor (a graph reads it)."""
    for group in optimizer.param_groups:
        if isinstance(group["lr"], torch.Tensor):
            group["lr"].fill_(lr)
        else:
            group["lr"] = lr


def plain_state(optimizer: torch.optim.Optimizer) -> dict:
    """The optimizer's state dict with plain float learning rates, as a checkpoint stores it."""
    state = optimizer.state_dict()
    state["param_groups"] = [{**g, "lr": float(g["lr"])} for g in state["param_groups"]]
    return state


class Replayed:
    """``step(x, y, n) -> outputs`` run eagerly for its first ``warmup`` calls, then captured once
    for batches of the shape it next sees and replayed; other shapes run eagerly. ``step`` must
    write only into tensors that live across calls (parameters, gradients, optimizer state,
    running statistics, the epoch's sums). With ``capture=False`` the step is called on the
    static buffers in place of a replay (the CPU form of the same bookkeeping)."""

    def __init__(self, step: Callable, device: torch.device, warmup: int = WARMUP, capture: bool = True) -> None:
        self.step, self.device, self.warmup, self.capture = step, device, warmup, capture
        self.calls = 0
        self.graph: torch.cuda.CUDAGraph | None = None
        self.static: tuple[torch.Tensor, torch.Tensor] | None = None
        self.outputs = None
        self.failed = False

    @property
    def active(self) -> bool:
        """Whether later full-size batches replay a capture."""
        return self.static is not None

    def __call__(self, x: torch.Tensor, y: torch.Tensor, n: int | None = None):
        self.calls += 1
        if self.static is not None and x.shape == self.static[0].shape and y.shape == self.static[1].shape:
            return self._replay(x, y)
        if self.static is not None or self.failed or self.calls <= self.warmup:
            return self._eager(x, y, n)
        return self._capture(x, y, n)

    def _eager(self, x, y, n):
        if not self.capture or self.static is not None or self.failed:
            return self.step(x, y, n)
        side = torch.cuda.Stream(self.device)  # warm-up on a side stream, as capture wants
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            outputs = self.step(x, y, n)
        torch.cuda.current_stream(self.device).wait_stream(side)
        return outputs

    def _capture(self, x, y, n):
        static = (x.clone(), y.clone())
        if not self.capture:
            self.static, self.n = static, n
            return self._replay(x, y)
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                outputs = self.step(*static, n)
        except RuntimeError as e:  # an op that cannot be captured: this run stays eager
            self.failed = True
            log.warning("training step not captured as a CUDA graph (%s); training eagerly", str(e).splitlines()[0])
            torch.cuda.synchronize(self.device)
            return self.step(x, y, n)
        self.graph, self.static, self.outputs, self.n = graph, static, outputs, n
        log.info("training step captured as a CUDA graph (batch %d)", len(y))
        return self._replay(x, y)

    def _replay(self, x, y):
        self.static[0].copy_(x)
        self.static[1].copy_(y)
        if self.graph is None:
            return self.step(*self.static, self.n)
        self.graph.replay()
        return self.outputs
