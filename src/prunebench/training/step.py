"""The training step every arm shares: the schedule and hyperparameters that describe a run,
the precision switches, the optimizer and one step (forward, loss, backward, penalty, update),
eager, replayed as a CUDA graph (:mod:`.graphs`) or over fused copies (:mod:`.fused`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from prunebench.core.errors import UserError
from prunebench.core.limits import check_nesterov

from . import distributed, fused, graphs


@dataclass(frozen=True)
class Schedule:
    """Step schedule: ``lr`` times ``gamma`` for every milestone epoch reached, after an optional
    warm-up of ``warmup_epochs`` at ``warmup_lr`` (SFP: LR 0.01 in epoch 0, then 0.1)."""

    epochs: int
    lr: float
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1
    warmup_epochs: int = 0
    warmup_lr: float = 0.0

    @classmethod
    def fractional(cls, epochs: int, lr: float, fractions: tuple[float, ...], gamma: float = 0.1, **warmup) -> "Schedule":
        """Milestones at int(f * epochs), as the reference's main_B.py does for Scratch-B."""
        return cls(epochs, lr, tuple(int(f * epochs) for f in fractions), gamma, **warmup)

    def lr_at(self, epoch: int) -> float:
        if epoch < self.warmup_epochs:
            return self.warmup_lr
        return self.lr * self.gamma ** sum(epoch >= m for m in self.milestones)


@dataclass(frozen=True)
class Hparams:
    schedule: Schedule
    seed: int = 1
    batch_size: int = 64
    test_batch_size: int = 256
    momentum: float = 0.9
    weight_decay: float = 1e-4
    precision: str = "fp32"  # fp32 (the papers'), tf32 or bf16 (autocast); see PRECISIONS
    compile: str = "none"  # torch.compile mode for the model, or none; see COMPILE_MODES
    sparsity: float = 0.0  # network slimming: s * sign(gamma) added to every BatchNorm2d scale's gradient
    nesterov: bool = False  # SFP's optimizer
    normalisation: str = "rethinking"  # see data.NORMALISATIONS
    soft_keep: float = 0.0  # soft filter pruning: keep rate of every conv's filters; 0 = off

    def __post_init__(self) -> None:
        check_nesterov(self.nesterov, self.momentum, "--nesterov", "--momentum")  # before SGD refuses it mid-job

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


PRECISIONS = ("fp32", "tf32", "bf16")
COMPILE_MODES = ("none", "default", "reduce-overhead", "max-autotune")
GRAPH_MODES = ("off", "cuda", "emulate")


def set_precision(precision: str) -> None:
    """Apply ``precision``'s global TF32 switches (bf16 autocast is applied per step).

    ``fp32`` turns TF32 off for matmuls *and* cuDNN convolutions (PyTorch's default leaves it on
    for convolutions), so the paper-scale numbers come from true fp32 arithmetic.
    """
    if precision not in PRECISIONS:
        raise UserError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    tf32 = precision != "fp32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32


def make_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    hp: Hparams,
    device: torch.device,
    ctx: distributed.Context = distributed.Context(),
    sums: tuple[torch.Tensor, torch.Tensor] | None = None,
    graph: str = "off",
):
    """The training step of every arm: forward, loss, backward, SGD update; no host sync.

    Returns ``step(x, y, global_n) -> (logits, loss)``, both detached (loss: the mean over ``x``;
    of a :class:`.fused.Stacked` model, each copy's mean over its batch ``x[k]``).
    Over several processes ``x`` is this process's share of a global batch of ``global_n``
    images, and the loss it backpropagates is scaled so that DDP's average of the gradients is
    the gradient of the global batch's mean (see :mod:`.distributed`). With ``sums`` (the
    epoch's summed loss and correct count, device tensors) the step adds its batch to them.

    ``graph``: ``off`` (eager), ``cuda`` (captured once as a CUDA graph and replayed, see
    :mod:`.graphs`; the learning rate becomes a device tensor) or ``emulate`` (the same
    bookkeeping on any device, the step called in place of a replay: for tests).
    """
    if graph not in GRAPH_MODES:
        raise UserError(f"unknown graph mode {graph!r}; choose one of {', '.join(GRAPH_MODES)}")
    set_precision(hp.precision)
    if hp.compile not in COMPILE_MODES:
        raise UserError(f"unknown compile mode {hp.compile!r}; choose one of {', '.join(COMPILE_MODES)}")
    stacked = isinstance(model, fused.Stacked)
    forward = model if stacked else distributed.wrap(model, ctx, device)
    forward = forward if hp.compile == "none" else torch.compile(forward, mode=hp.compile)
    bf16 = hp.precision == "bf16"
    penalise = sparsity_penalty(model, hp.sparsity)
    if graph != "off":
        graphs.tensor_lr(optimizer, device)

    def step(x: torch.Tensor, y: torch.Tensor, global_n: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        # autocast's weight-cast cache would outlive a captured step: off when graphed
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16, cache_enabled=graph == "off"):
            if stacked:  # K copies, x [K, B, ...]: the sum of their mean losses
                out, loss = model.forward_loss(x, y)
                objective = loss.sum()
            elif ctx.world == 1:
                out = forward(x)
                loss = objective = F.cross_entropy(out, y)
            else:
                out = forward(x)
                total = F.cross_entropy(out, y, reduction="sum")
                loss, objective = total / len(y), total * (ctx.world / (global_n or len(y) * ctx.world))
        optimizer.zero_grad(set_to_none=True)
        objective.backward()
        penalise()
        optimizer.step()
        out, loss = out.detach(), loss.detach()
        if sums is not None:
            sums[0].add_(loss * y.shape[-1])
            sums[1].add_((out.argmax(-1) == y).sum(-1))
        return out, loss

    return step if graph == "off" else graphs.Replayed(step, device, capture=graph == "cuda")


def sparsity_penalty(model: nn.Module, s: float):
    """Network slimming's sparsity training (PROTOCOLS §3): after ``backward()``, add
    ``s * sign(gamma)`` to the gradient of every BatchNorm2d scale, and of every BatchNorm1d
    that scores a channel group (the ImageNet VGG-11's FC layers, ERRATA 5: its threshold
    prunes them too); a no-op when ``s`` is 0."""
    if not s:
        return lambda: None
    params = dict(model.named_parameters())  # of a fused model, each stacked over its copies
    grouped = {g.bn for g in model.channel_groups()} if hasattr(model, "channel_groups") else set()
    scales = [params[f"{n}.weight"] for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d) or (isinstance(m, nn.BatchNorm1d) and n in grouped)]

    @torch.no_grad()
    def penalise() -> None:
        torch._foreach_add_([w.grad for w in scales], torch._foreach_sign(scales), alpha=s)

    return penalise


def make_optimizer(model: nn.Module, hp: Hparams, device: torch.device) -> torch.optim.Optimizer:
    """SGD as the reference; the fused CUDA kernel on a GPU (one launch for all parameters)."""
    return torch.optim.SGD(
        model.parameters(),
        lr=hp.schedule.lr,
        momentum=hp.momentum,
        weight_decay=hp.weight_decay,
        nesterov=hp.nesterov,
        fused=device.type == "cuda",
    )
