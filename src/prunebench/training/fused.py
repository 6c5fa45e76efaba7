"""Fused runs: K runs of one architecture and one schedule trained as one network.

A CIFAR-size network at batch 64 leaves a GPU mostly idle; K runs that differ only in their
seed (the seeds of one arm, a masked arm whose masks differ per seed, SFP's soft runs) can
share each kernel instead. :class:`Stacked` holds the K copies' parameters and buffers stacked
along a new first dimension and calls the registry's own model through ``torch.func.vmap``:
PyTorch's batching rules turn every convolution into one grouped convolution over K x C
channels, every BatchNorm into one over K x C channels (per copy statistics), every linear layer
into a batched matmul. No architecture is rewritten by hand, so every model of the registry
fuses, masked ones included (the mask is a stacked buffer, the pruning hook multiplies it in).

Why vmap rather than a module transform (HFTA's grouped Conv2d / BatchNorm / Linear): a
transform must also rewrite every channel-mixing step written in a model's forward (option-A
shortcuts pad channels, channel selections index them), which vmap handles unchanged; and the
kernels vmap produces are the transform's grouped ones. Its only cost, dispatching the batching
rules in Python, is paid once per step on the host and disappears when the step is replayed as
a CUDA graph, which is how a GPU runs it.

Each copy stays the run it would be alone: its own init, data order and augmentation (its
seed), masks, slimming penalty on its own BatchNorm scales (an elementwise update on the stacked
scales), SFP zeroing (applied to the copy between epochs), checkpoint and files. The loss is the
sum of the copies' mean losses, so each copy's gradient is its own mean loss's gradient, and SGD
(momentum, weight decay) is elementwise, so the stacked update is each copy's update.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap

from prunebench.models import masks

from . import graphs

FUSE_MODES = ("auto", "on", "off")

# vmap loops over the copies for the one op without a batching rule that these models reach
# (adaptive_avg_pool2d's in-place restride); correct, and said once per process by PyTorch as a
# request to file an issue, which a training log does not need.
warnings.filterwarnings("ignore", message="There is a performance drop because we have not yet implemented the batching rule")


def not_fusible(models: list[nn.Module], hps: list, world: int) -> str | None:
    """Why these runs cannot train as one fused network (None when they can)."""
    if world > 1:
        return "data-parallel runs train one at a time"
    first = hps[0].as_dict() | {"seed": None}
    if any(hp.as_dict() | {"seed": None} != first for hp in hps):
        return "their hyperparameters differ beyond the seed"
    if hps[0].compile != "none":
        return "torch.compile runs one model"
    shapes = [[(n, tuple(t.shape), t.dtype) for n, t in (*m.named_parameters(), *m.named_buffers())] for m in models]
    cfgs = [list(getattr(m, "cfg", [])) for m in models]
    if any(s != shapes[0] for s in shapes) or any(c != cfgs[0] for c in cfgs):
        return "their architectures differ"
    if any(isinstance(m, nn.Dropout) and m.p > 0 for m in models[0].modules()):
        return "dropout draws its own randomness per run"
    return None


class Stacked:
    """K copies of one architecture as one network: ``params`` and ``buffers`` hold each tensor
    of the copies stacked along dim 0, and :meth:`forward_loss` runs the registry's model on them
    through vmap. The copies themselves are only written at epoch ends and checkpoints
    (:meth:`to_copies`) and read back after a change made to them (:meth:`from_copies`)."""

    def __init__(self, copies: list[nn.Module]) -> None:
        self.copies = copies
        self.template = masks.clone(copies[0])  # the module vmap calls; its own tensors are never read
        self._own = [({**dict(c.named_parameters()), **dict(c.named_buffers())}) for c in copies]
        with torch.no_grad():
            self.params = {n: torch.stack([own[n] for own in self._own]).requires_grad_() for n, _ in copies[0].named_parameters()}
            self.buffers = {n: torch.stack([own[n] for own in self._own]) for n, _ in copies[0].named_buffers()}

    def __len__(self) -> int:
        return len(self.copies)

    def named_parameters(self):
        return self.params.items()

    def parameters(self):
        return list(self.params.values())

    def named_modules(self):
        return self.template.named_modules()

    def channel_groups(self):
        return self.template.channel_groups()

    def train(self, mode: bool = True) -> "Stacked":
        self.template.train(mode)
        return self

    def _one(self, params: dict, buffers: dict, x: torch.Tensor, y: torch.Tensor):
        out = functional_call(self.template, (params, buffers), (x,))
        return out, F.cross_entropy(out, y)

    def forward_loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits ``[K, B, classes]`` and each copy's mean loss ``[K]`` for batches ``x [K, B, ...]``."""
        return vmap(self._one, randomness="error")(self.params, self.buffers, x, y)

    @torch.no_grad()
    def to_copies(self) -> None:
        for k, own in enumerate(self._own):
            for n, t in (*self.params.items(), *self.buffers.items()):
                own[n].copy_(t[k])

    @torch.no_grad()
    def from_copies(self) -> None:
        for k, own in enumerate(self._own):
            for n, t in (*self.params.items(), *self.buffers.items()):
                t[k].copy_(own[n])


def stack_batches(iterators):
    """Each step's K batches (one per copy, each from its own seed's stream) as ``[K, B, ...]``."""
    for batches in zip(*iterators):
        yield torch.stack([x for x, _ in batches]), torch.stack([y for _, y in batches])


def copy_optimizer_state(optimizer: torch.optim.Optimizer, k: int) -> dict:
    """Copy ``k``'s optimizer state dict, exactly as its run alone would hold it."""
    state = graphs.plain_state(optimizer)
    state["state"] = {i: {key: _slice(v, k) for key, v in s.items()} for i, s in state["state"].items()}
    return state


def load_optimizer_states(optimizer: torch.optim.Optimizer, states: list[dict]) -> None:
    """Load the copies' own optimizer state dicts (from their checkpoints) into the stacked one."""
    first = states[0]
    if any(s["state"].keys() != first["state"].keys() for s in states):
        raise ValueError("the copies' optimizer states hold different parameters")
    stacked = {
        i: {key: torch.stack([s["state"][i][key] for s in states]) if _per_copy(v) else v for key, v in entry.items()}
        for i, entry in first["state"].items()
    }
    optimizer.load_state_dict({"state": stacked, "param_groups": first["param_groups"]})


def _per_copy(v) -> bool:
    return isinstance(v, torch.Tensor) and v.dim() > 0


def _slice(v, k: int):
    return v[k].clone() if _per_copy(v) else v
