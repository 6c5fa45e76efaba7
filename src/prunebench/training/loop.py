"""One training loop for every arm: base, fine-tune, Scratch-E and Scratch-B differ only in data
(the starting weights and the schedule), never in code.

Fault tolerance lives here. A checkpoint is written atomically after every epoch and, on
SIGTERM (SLURM's warning before a kill or preemption), after the current step. A rerun with
the same hyperparameters resumes from it and, on CPU, ends with bit-identical weights: the
data order and augmentation of each epoch come from a generator seeded by (seed, epoch).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from prunebench.core.errors import UserError
from prunebench.core.io import load_torch, save_torch
from prunebench.core.utils import hms
from prunebench.data.cifar import MEAN, STD, eval_batches, mean_std
from prunebench.models import masks

from . import distributed, graphs

log = logging.getLogger("prunebench.train")


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

    Returns ``step(x, y, global_n) -> (logits, loss)``, both detached (loss: the mean over ``x``).
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
    forward = distributed.wrap(model, ctx, device)
    forward = forward if hp.compile == "none" else torch.compile(forward, mode=hp.compile)
    bf16 = hp.precision == "bf16"
    penalise = sparsity_penalty(model, hp.sparsity)
    if graph != "off":
        graphs.tensor_lr(optimizer, device)

    def step(x: torch.Tensor, y: torch.Tensor, global_n: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        # autocast's weight-cast cache would outlive a captured step: off when graphed
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16, cache_enabled=graph == "off"):
            out = forward(x)
            if ctx.world == 1:
                loss = objective = F.cross_entropy(out, y)
            else:
                total = F.cross_entropy(out, y, reduction="sum")
                loss, objective = total / len(y), total * (ctx.world / (global_n or len(y) * ctx.world))
        optimizer.zero_grad(set_to_none=True)
        objective.backward()
        penalise()
        optimizer.step()
        out, loss = out.detach(), loss.detach()
        if sums is not None:
            sums[0].add_(loss * len(y))
            sums[1].add_((out.argmax(1) == y).sum())
        return out, loss

    return step if graph == "off" else graphs.Replayed(step, device, capture=graph == "cuda")


def sparsity_penalty(model: nn.Module, s: float):
    """Network slimming's sparsity training (PROTOCOLS §3): after ``backward()``, add
    ``s * sign(gamma)`` to the gradient of every BatchNorm2d scale, and of every BatchNorm1d
    that scores a channel group (the ImageNet VGG-11's FC layers, ERRATA 5: its threshold
    prunes them too); a no-op when ``s`` is 0."""
    if not s:
        return lambda: None
    modules = dict(model.named_modules())
    grouped = {g.bn for g in model.channel_groups()} if hasattr(model, "channel_groups") else set()
    scales = [m.weight for n, m in modules.items() if isinstance(m, nn.BatchNorm2d) or (isinstance(m, nn.BatchNorm1d) and n in grouped)]

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


class Interrupted(Exception):
    """SIGTERM arrived; a checkpoint was saved and the run can resume."""


class _SigtermFlag:
    def __init__(self) -> None:
        self.raised = False

    def __enter__(self) -> "_SigtermFlag":
        try:
            self._old = signal.signal(signal.SIGTERM, self._handle)
        except ValueError:  # not the main thread: no handler, no flag
            self._old = None
        return self

    def _handle(self, signum, frame) -> None:
        self.raised = True

    def __exit__(self, *exc) -> None:
        if self._old is not None:
            signal.signal(signal.SIGTERM, self._old)


def soft_pruning(model: nn.Module, keep: float):
    """Soft filter pruning (PROTOCOLS section 4): zero the smallest-L2 filters of every conv,
    before training and after every epoch; the zeroed filters keep training. No-op at 0."""
    if not keep:
        return lambda: None
    return lambda: masks.zero_weights(model, masks.filter_masks(model, keep))


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int, device: torch.device, stats=(MEAN, STD)) -> dict:
    """Test loss and accuracy of ``model`` on CIFAR images ``x`` and labels ``y``."""
    return evaluate_batches(model, eval_batches(x, y, batch_size, device, stats), len(x), device)


@torch.no_grad()
def evaluate_batches(model: nn.Module, batches, n: int, device: torch.device, ctx: distributed.Context = distributed.Context()) -> dict:
    """Loss and accuracy over ``batches`` (this process's share of ``n`` images, summed over processes)."""
    model.eval()
    sums = torch.zeros(2, device=device, dtype=torch.float64)  # loss, correct
    for xb, yb in batches:
        out = model(xb)
        sums[0] += F.cross_entropy(out, yb, reduction="sum")
        sums[1] += (out.argmax(1) == yb).sum()
    loss, correct = distributed.all_sum(sums, ctx).tolist()
    return {"loss": loss / n, "accuracy": 100.0 * correct / n}


SIGNAL_EVERY = 10  # steps between the processes' checks for a SIGTERM that reached any of them


def fit(
    model: nn.Module,
    data,
    hp: Hparams,
    device: torch.device,
    checkpoint: Path,
    ctx: distributed.Context = distributed.Context(),
    graph: str | None = None,
) -> dict[str, Any]:
    """Train ``model`` in place under ``hp``; resume from ``checkpoint`` if it matches ``hp``.

    ``data`` is a :class:`prunebench.data.cifar.Data` or :class:`prunebench.data.imagenet.ImageNetData`; over several
    processes (``ctx``) each trains on its share of every batch and rank 0 alone saves. The step
    is a CUDA graph where :func:`.graphs.wanted` says so, unless ``graph`` names a mode."""
    # channels_last for every family: on an H200 (graphed step, batch 64) it beat NCHW for
    # ResNet-56/110 at fp32, tf32 and bf16 (up to 1.8x in bf16) and for VGG-16 at tf32 and bf16
    # (1.3x, 1.5x); only VGG-16 in fp32 was 3 % slower (docs/speed.md).
    model.to(device).to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model, hp, device)
    state = _resume(checkpoint, hp, model, optimizer, data.loader)
    graph = graph or ("cuda" if graphs.wanted(device, ctx.world, hp.compile) else "off")
    loss_sum = torch.zeros((), device=device)  # the epoch's sums, which the step adds to
    correct = torch.zeros((), device=device, dtype=torch.int64)
    train_step = make_step(model, optimizer, hp, device, ctx, (loss_sum, correct), graph)
    history: list[dict] = state["history"]
    stats = mean_std(hp.normalisation, data.dataset)
    batches = data.train_batches(hp.batch_size, device, stats, hp.seed, ctx.rank, ctx.world)
    save = functools.partial(_save, checkpoint, hp, data.loader, model, optimizer) if ctx.main else lambda *a: None
    soft_prune = soft_pruning(model, hp.soft_keep)
    if state["epoch"] == 0 and state["step"] == 0:
        soft_prune()  # SFP masks the initial weights too
    epochs = hp.schedule.epochs
    times: list[float] = []  # epochs run by this process, for the ETA
    with _SigtermFlag() as sigterm:
        for epoch in range(state["epoch"], epochs):
            lr = hp.schedule.lr_at(epoch)
            graphs.set_lr(optimizer, lr)
            start, skip = time.perf_counter(), state["step"]
            # a resumed epoch's sums so far are every process's together: held by rank 0 alone
            loss_sum.fill_(state["loss_sum"] if ctx.main else 0.0)
            correct.fill_(state["correct"] if ctx.main else 0)
            model.train()
            for step, (xb, yb) in enumerate(batches.epoch_batches(epoch, skip), start=skip):
                train_step(xb, yb, min(hp.batch_size, batches.n - step * hp.batch_size))
                if (ctx.world == 1 or step % SIGNAL_EVERY == SIGNAL_EVERY - 1) and distributed.any_true(sigterm.raised, ctx, device):
                    elapsed = time.perf_counter() - start + state["partial_time"]
                    save(history, epoch, step + 1, *_summed(loss_sum, correct, ctx), elapsed)
                    raise Interrupted(f"SIGTERM at epoch {epoch + 1}, step {step + 1}; checkpoint saved to {checkpoint}")
            epoch_loss, epoch_correct = _summed(loss_sum, correct, ctx)
            soft_prune()
            test = evaluate_batches(model, data.test_batches(hp.test_batch_size, device, stats, ctx.rank, ctx.world), data.test_images, device, ctx)
            seconds = time.perf_counter() - start + state["partial_time"]
            history.append(
                {
                    "epoch": epoch + 1,
                    "lr": lr,
                    "train_loss": epoch_loss.item() / batches.n,
                    "train_accuracy": 100.0 * epoch_correct.item() / batches.n,
                    "test_loss": test["loss"],
                    "test_accuracy": test["accuracy"],
                    "time": seconds,
                }
            )
            state = {"step": 0, "loss_sum": 0.0, "correct": 0, "partial_time": 0.0}
            save(history, epoch + 1, 0, 0.0, 0, 0.0)
            times.append(seconds)
            h = history[-1]
            log.info(
                "epoch %d/%d  lr %.4g  loss %.4f  train %.2f%%  test %.2f%%  %.1fs  ETA %s",
                h["epoch"], epochs, lr, h["train_loss"], h["train_accuracy"], h["test_accuracy"], seconds,
                hms(sum(times) / len(times) * (epochs - h["epoch"])),
            )  # fmt: skip
    accs = [h["test_accuracy"] for h in history]
    return {
        "history": history,
        "final_accuracy": accs[-1] if accs else None,
        "best_accuracy": max(accs) if accs else None,
        "best_epoch": accs.index(max(accs)) + 1 if accs else None,
        "train_seconds": sum(h["time"] for h in history),
        "cuda_graph": graph == "cuda" and getattr(train_step, "active", False),
    }


def _summed(loss_sum: torch.Tensor, correct: torch.Tensor, ctx: distributed.Context) -> tuple[torch.Tensor, torch.Tensor]:
    """The epoch's training loss and correct counts so far, over every process: the sums a
    one-process run would hold (a resumed process restarts its share from them divided by world)."""
    if ctx.world == 1:
        return loss_sum, correct
    both = distributed.all_sum(torch.stack([loss_sum.double(), correct.double()]), ctx)
    return both[0], both[1].long()


def _fingerprint(hp: Hparams, model: nn.Module, loader: dict) -> dict:
    """What a checkpoint must match to be resumed: the hyperparameters, the architecture and how
    the data is loaded (ImageNet's crop and resize; nothing on CIFAR, so old checkpoints match)."""
    return {"hparams": hp.as_dict(), "cfg": list(getattr(model, "cfg", [])), **({"loader": loader} if loader else {})}


def _save(path, hp, loader, model, optimizer, history, epoch, step, loss_sum, correct, partial_time) -> None:
    save_torch(
        path,
        {
            "fingerprint": _fingerprint(hp, model, loader),
            "epoch": epoch,
            "step": step,
            "loss_sum": float(loss_sum),
            "correct": int(correct),
            "partial_time": partial_time,
            "model": model.state_dict(),
            "optimizer": graphs.plain_state(optimizer),
            "history": history,
        },
    )


def _resume(path: Path, hp: Hparams, model: nn.Module, optimizer: torch.optim.Optimizer, loader: dict) -> dict:
    fresh = {"epoch": 0, "step": 0, "loss_sum": 0.0, "correct": 0, "partial_time": 0.0, "history": []}
    if not path.exists():
        return fresh
    try:
        ckpt = load_torch(path, what="training checkpoint")
    except UserError as e:
        log.warning("ignoring unreadable checkpoint (%s); starting over", e)
        return fresh
    if not isinstance(ckpt, dict) or ckpt.get("fingerprint") != _fingerprint(hp, model, loader):
        log.warning("checkpoint %s was made with other hyperparameters; starting over", path)
        return fresh
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    log.info("resuming from %s at epoch %d, step %d", path, ckpt["epoch"] + 1, ckpt["step"])
    return {k: ckpt[k] for k in fresh}
