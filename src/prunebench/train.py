"""One training loop for every arm: base, fine-tune, Scratch-E and Scratch-B differ only in data
(the starting weights and the schedule), never in code.

Fault tolerance lives here. A checkpoint is written atomically after every epoch and, on
SIGTERM (SLURM's warning before a kill or preemption), after the current step. A rerun with
the same hyperparameters resumes from it and, on CPU, ends with bit-identical weights: the
data order and augmentation of each epoch come from a generator seeded by (seed, epoch).
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from . import masks
from .data import MEAN, STD, Data, TrainBatches, epoch_generator, eval_batches, mean_std
from .errors import UserError
from .io import load_torch, save_torch
from .utils import hms

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


def make_step(model: nn.Module, optimizer: torch.optim.Optimizer, hp: Hparams, device: torch.device):
    """The training step of every arm: forward, loss, backward, SGD update; no host sync.

    Returns ``step(x, y) -> (logits, loss)``, both detached.
    """
    set_precision(hp.precision)
    if hp.compile not in COMPILE_MODES:
        raise UserError(f"unknown compile mode {hp.compile!r}; choose one of {', '.join(COMPILE_MODES)}")
    forward = model if hp.compile == "none" else torch.compile(model, mode=hp.compile)
    bf16 = hp.precision == "bf16"
    penalise = sparsity_penalty(model, hp.sparsity)

    def step(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            out = forward(x)
            loss = F.cross_entropy(out, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        penalise()
        optimizer.step()
        return out.detach(), loss.detach()

    return step


def sparsity_penalty(model: nn.Module, s: float):
    """Network slimming's sparsity training (PROTOCOLS §3): after ``backward()``, add
    ``s * sign(gamma)`` to the gradient of every BatchNorm2d scale; a no-op when ``s`` is 0."""
    if not s:
        return lambda: None
    scales = [m.weight for m in model.modules() if isinstance(m, nn.BatchNorm2d)]

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


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int, device: torch.device, stats=(MEAN, STD)) -> dict:
    model.eval()
    loss = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.int64)
    for xb, yb in eval_batches(x, y, batch_size, device, stats):
        out = model(xb)
        loss += F.cross_entropy(out, yb, reduction="sum")
        correct += (out.argmax(1) == yb).sum()
    n = len(x)
    return {"loss": loss.item() / n, "accuracy": 100.0 * correct.item() / n}


def fit(
    model: nn.Module,
    data: Data,
    hp: Hparams,
    device: torch.device,
    checkpoint: Path,
) -> dict[str, Any]:
    """Train ``model`` in place under ``hp``; resume from ``checkpoint`` if it matches ``hp``."""
    model.to(device).to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model, hp, device)
    state = _resume(checkpoint, hp, model, optimizer)
    train_step = make_step(model, optimizer, hp, device)
    history: list[dict] = state["history"]
    stats = mean_std(hp.normalisation, data.dataset)
    batches = TrainBatches(data.train_x, data.train_y, hp.batch_size, device, stats)
    soft_prune = soft_pruning(model, hp.soft_keep)
    if state["epoch"] == 0 and state["step"] == 0:
        soft_prune()  # SFP masks the initial weights too
    epochs = hp.schedule.epochs
    times: list[float] = []  # epochs run by this process, for the ETA
    with _SigtermFlag() as sigterm:
        for epoch in range(state["epoch"], epochs):
            lr = hp.schedule.lr_at(epoch)
            for group in optimizer.param_groups:
                group["lr"] = lr
            start, skip = time.perf_counter(), state["step"]
            loss_sum = torch.tensor(state["loss_sum"], device=device)
            correct = torch.tensor(state["correct"], device=device, dtype=torch.int64)
            model.train()
            for step, (xb, yb) in enumerate(batches.epoch(epoch_generator(hp.seed, epoch))):
                if step < skip:
                    continue
                out, loss = train_step(xb, yb)
                loss_sum += loss * len(yb)
                correct += (out.argmax(1) == yb).sum()
                if sigterm.raised:
                    elapsed = time.perf_counter() - start + state["partial_time"]
                    _save(checkpoint, hp, model, optimizer, history, epoch, step + 1, loss_sum, correct, elapsed)
                    raise Interrupted(f"SIGTERM at epoch {epoch + 1}, step {step + 1}; checkpoint saved to {checkpoint}")
            soft_prune()
            test = evaluate(model, data.test_x, data.test_y, hp.test_batch_size, device, stats)
            seconds = time.perf_counter() - start + state["partial_time"]
            history.append(
                {
                    "epoch": epoch + 1,
                    "lr": lr,
                    "train_loss": loss_sum.item() / batches.n,
                    "train_accuracy": 100.0 * correct.item() / batches.n,
                    "test_loss": test["loss"],
                    "test_accuracy": test["accuracy"],
                    "time": seconds,
                }
            )
            state = {"step": 0, "loss_sum": 0.0, "correct": 0, "partial_time": 0.0}
            _save(checkpoint, hp, model, optimizer, history, epoch + 1, 0, 0.0, 0, 0.0)
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
    }


def _fingerprint(hp: Hparams, model: nn.Module) -> dict:
    return {"hparams": hp.as_dict(), "cfg": list(getattr(model, "cfg", []))}


def _save(path, hp, model, optimizer, history, epoch, step, loss_sum, correct, partial_time) -> None:
    save_torch(
        path,
        {
            "fingerprint": _fingerprint(hp, model),
            "epoch": epoch,
            "step": step,
            "loss_sum": float(loss_sum),
            "correct": int(correct),
            "partial_time": partial_time,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "history": history,
        },
    )


def _resume(path: Path, hp: Hparams, model: nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    fresh = {"epoch": 0, "step": 0, "loss_sum": 0.0, "correct": 0, "partial_time": 0.0, "history": []}
    if not path.exists():
        return fresh
    try:
        ckpt = load_torch(path, what="training checkpoint")
    except UserError as e:
        log.warning("ignoring unreadable checkpoint (%s); starting over", e)
        return fresh
    if not isinstance(ckpt, dict) or ckpt.get("fingerprint") != _fingerprint(hp, model):
        log.warning("checkpoint %s was made with other hyperparameters; starting over", path)
        return fresh
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    log.info("resuming from %s at epoch %d, step %d", path, ckpt["epoch"] + 1, ckpt["step"])
    return {k: ckpt[k] for k in fresh}
