"""One training loop for every arm: base, fine-tune, Scratch-E and Scratch-B differ only in data
(the starting weights and the schedule), never in code.

Fault tolerance lives here. A checkpoint is written atomically after every epoch and, on
SIGTERM (SLURM's warning before a kill or preemption), after the current step. A rerun with
the same hyperparameters resumes from it and, on CPU, ends with bit-identical weights: the
data order and augmentation of each epoch come from a generator seeded by (seed, epoch).
"""

from __future__ import annotations

import logging
import signal
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from prunebench.core.errors import UserError
from prunebench.core.forms import validate
from prunebench.core.forms.tensors import TrainingCheckpoint
from prunebench.core.io import load_torch, save_torch
from prunebench.core.utils import hms
from prunebench.data.cifar import MEAN, STD, eval_batches, mean_std
from prunebench.models import masks

from . import distributed, fused, graphs
from .checkpoints import tensors_sha256
from .step import Hparams, make_optimizer, make_step

log = logging.getLogger("prunebench.train")


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
    return fit_group([model], data, [hp], device, [checkpoint], ctx, graph)[0]


def fit_group(
    models: list[nn.Module],
    data,
    hps: list[Hparams],
    device: torch.device,
    checkpoints: list[Path],
    ctx: distributed.Context = distributed.Context(),
    graph: str | None = None,
    fuse: str = "auto",
) -> list[dict[str, Any]]:
    """Train K runs that differ only in their seed as one fused network (:mod:`.fused`), each
    resuming from and saving to its own checkpoint; one run trains alone, exactly as :func:`fit`.
    ``fuse``: ``auto`` fuses on a GPU only (on a CPU, fused steps are slower than the runs one
    after another: docs/speed.md), ``on`` and ``off`` force it. Runs that cannot fuse
    (:func:`.fused.not_fusible`), or whose checkpoints stopped at different points, train one
    after another."""
    # channels_last for every family: on an H200 (graphed step, batch 64) it beat NCHW for
    # ResNet-56/110 at fp32, tf32 and bf16 (up to 1.8x in bf16) and for VGG-16 at tf32 and bf16
    # (1.3x, 1.5x); only VGG-16 in fp32 was 3 % slower (docs/speed.md).
    for model in models:
        model.to(device).to(memory_format=torch.channels_last)
    k = len(models)
    why = fused.not_fusible(models, hps, ctx.world) if k > 1 else None
    if k > 1 and why is None and (fuse == "off" or (fuse == "auto" and device.type != "cuda")):
        why = "fusion is off" if fuse == "off" else "on a CPU they are faster unfused"
    states = [_resume(c, hp, m, data.loader, ctx.world) for c, hp, m in zip(checkpoints, hps, models)] if why is None else []
    _same_state_everywhere(states, checkpoints, ctx)
    if why is None and len({(s["epoch"], s["step"]) for s in states}) > 1:
        why = "their checkpoints stopped at different points"
    if why is not None:
        log.info("training %d runs one after another: %s", k, why)
        return [fit(m, data, hp, device, c, ctx, graph) for m, hp, c in zip(models, hps, checkpoints)]
    hp, state = hps[0], states[0]
    soft_prunes = [soft_pruning(m, h.soft_keep) for m, h in zip(models, hps)]
    if state["epoch"] == 0 and state["step"] == 0:
        for soft_prune in soft_prunes:
            soft_prune()  # SFP masks the initial weights too
    net = models[0] if k == 1 else fused.Stacked(models)
    optimizer = make_optimizer(net, hp, device)
    if state["optimizer"] is not None and k == 1:
        optimizer.load_state_dict(state["optimizer"])
    elif state["optimizer"] is not None:
        fused.load_optimizer_states(optimizer, [s["optimizer"] for s in states])
    graph = graph or ("cuda" if graphs.wanted(device, ctx.world, hp.compile) else "off")
    loss_sum = torch.zeros(k, device=device)  # each run's epoch sums, which the step adds to
    correct = torch.zeros(k, device=device, dtype=torch.int64)
    train_step = make_step(net, optimizer, hp, device, ctx, (loss_sum, correct), graph)
    histories: list[list[dict]] = [s["history"] for s in states]
    stats = mean_std(hp.normalisation, data.dataset)
    streams = [data.train_batches(h.batch_size, device, stats, h.seed, ctx.rank, ctx.world) for h in hps]
    n = streams[0].n

    def save(epoch: int, step: int, sums: tuple, partial_time: float) -> None:
        """Each run's checkpoint (of a fused network: its copies, written back before)."""
        if not ctx.main:
            return
        for i, (c, h, m) in enumerate(zip(checkpoints, hps, models)):
            opt_state = graphs.plain_state(optimizer) if k == 1 else fused.copy_optimizer_state(optimizer, i)
            _save(c, h, data.loader, ctx.world, m, opt_state, histories[i], epoch, step, float(sums[0][i]), int(sums[1][i]), partial_time)

    epochs = hp.schedule.epochs
    times: list[float] = []  # epochs run by this process, for the ETA
    with _SigtermFlag() as sigterm:
        for epoch in range(state["epoch"], epochs):
            lr = hp.schedule.lr_at(epoch)
            graphs.set_lr(optimizer, lr)
            start, skip = time.perf_counter(), state["step"]
            # a resumed epoch's sums so far are every process's together: held by rank 0 alone
            for i, s in enumerate(states):
                loss_sum[i] = s["loss_sum"] if ctx.main else 0.0
                correct[i] = s["correct"] if ctx.main else 0
            net.train()
            epoch_batches = [s.epoch_batches(epoch, skip) for s in streams]
            batches = epoch_batches[0] if k == 1 else fused.stack_batches(epoch_batches)
            for step, (xb, yb) in enumerate(batches, start=skip):
                train_step(xb, yb, min(hp.batch_size, n - step * hp.batch_size))
                if (ctx.world == 1 or step % SIGNAL_EVERY == SIGNAL_EVERY - 1) and distributed.any_true(sigterm.raised, ctx, device):
                    elapsed = time.perf_counter() - start + state["partial_time"]
                    if k > 1:
                        net.to_copies()
                    save(epoch, step + 1, _summed(loss_sum, correct, ctx), elapsed)
                    where = checkpoints[0] if k == 1 else f"{k} checkpoints ({checkpoints[0]}, ...)"
                    raise Interrupted(f"SIGTERM at epoch {epoch + 1}, step {step + 1}; checkpoint saved to {where}")
            epoch_loss, epoch_correct = _summed(loss_sum, correct, ctx)
            if k > 1:
                net.to_copies()  # for the soft pruning, the evaluation and the checkpoints below
            for soft_prune in soft_prunes:
                soft_prune()
            if k > 1 and hp.soft_keep:
                net.from_copies()  # SFP zeroed the copies' filters: train on from there
            tests = [evaluate_batches(m, data.test_batches(h.test_batch_size, device, stats, ctx.rank, ctx.world), data.test_images, device, ctx) for m, h in zip(models, hps)]
            seconds = time.perf_counter() - start + state["partial_time"]
            for i, (history, test) in enumerate(zip(histories, tests)):
                history.append(
                    {
                        "epoch": epoch + 1,
                        "lr": lr,
                        "train_loss": epoch_loss[i].item() / n,
                        "train_accuracy": 100.0 * epoch_correct[i].item() / n,
                        "test_loss": test["loss"],
                        "test_accuracy": test["accuracy"],
                        "time": seconds / k,  # a fused run's share of the job's time: the runs' times add up to it
                    }
                )
            states = [{"step": 0, "loss_sum": 0.0, "correct": 0, "partial_time": 0.0}] * k
            state = states[0]
            save(epoch + 1, 0, (torch.zeros(k), torch.zeros(k)), 0.0)
            times.append(seconds)
            tested = "/".join(f"{h[-1]['test_accuracy']:.2f}" for h in histories)
            log.info(
                "epoch %d/%d  lr %.4g  loss %s  train %s%%  test %s%%  %.1fs  ETA %s",
                epoch + 1, epochs, lr, "/".join(f"{h[-1]['train_loss']:.4f}" for h in histories),
                "/".join(f"{h[-1]['train_accuracy']:.2f}" for h in histories), tested, seconds,
                hms(sum(times) / len(times) * (epochs - epoch - 1)),
            )  # fmt: skip
            if ctx.world > 1 and epoch + 1 < epochs and distributed.any_true(sigterm.raised, ctx, device):  # an epoch shorter than SIGNAL_EVERY steps
                raise Interrupted(f"SIGTERM in epoch {epoch + 1}; checkpoint saved at its end to {checkpoints[0]}")
    if k > 1:
        net.to_copies()
    return [_result(history, graph == "cuda" and getattr(train_step, "active", False), k) for history in histories]


def _result(history: list[dict], graphed: bool, copies: int) -> dict[str, Any]:
    accs = [h["test_accuracy"] for h in history]
    return {
        "history": history,
        "final_accuracy": accs[-1] if accs else None,
        "best_accuracy": max(accs) if accs else None,
        "best_epoch": accs.index(max(accs)) + 1 if accs else None,
        "train_seconds": sum(h["time"] for h in history),
        "cuda_graph": graphed,
        "fused_copies": copies,
    }


def _summed(loss_sum: torch.Tensor, correct: torch.Tensor, ctx: distributed.Context) -> tuple[torch.Tensor, torch.Tensor]:
    """The epoch's training loss and correct counts so far, over every process: the sums a
    one-process run would hold (a resumed process restarts its share from them divided by world)."""
    if ctx.world == 1:
        return loss_sum, correct
    both = distributed.all_sum(torch.stack([loss_sum.double(), correct.double()]), ctx)
    return both[0], both[1].long()


def _fingerprint(hp: Hparams, model: nn.Module, loader: dict, processes: int) -> dict:
    """What a checkpoint must match to be resumed: the hyperparameters (precision included), the
    architecture, how the data is loaded (ImageNet's crop and resize) and the number of
    processes, since each changes the arithmetic of a step. A fused copy's checkpoint is the one
    its run alone writes (:mod:`.fused`): the two steps differ only in summation order."""
    recipe = getattr(model, "foreign_recipe", None)  # another network's module: its file is its architecture
    extra = {**({"loader": loader} if loader else {}), **({"module": recipe} if recipe else {})}
    return {"hparams": hp.as_dict(), "cfg": list(getattr(model, "cfg", [])), "processes": processes, **extra}


def _differences(saved: dict, now: dict) -> str:
    """'processes: 2 there, 1 here; hparams.lr: ...': what a checkpoint's fingerprint differs in."""
    out = []
    for key in sorted(set(saved) | set(now)):
        a, b = saved.get(key), now.get(key)
        if isinstance(a, dict) and isinstance(b, dict) and a != b:
            out += [f"{key}.{k}: {a.get(k)!r} there, {b.get(k)!r} here" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        elif a != b:
            out.append(f"{key}: {a!r} there, {b!r} here")
    return "; ".join(out)


def _same_state_everywhere(states: list[dict], checkpoints: list[Path], ctx: distributed.Context) -> None:
    """Every process goes on from the same state: the checkpoint each resumed (its content's hash)
    or a fresh start, agreed over the processes before the first step; else one line, and no
    process trains or writes (an earlier run's processes may still be replacing the file)."""
    if ctx.world == 1:
        return
    mine = [s.get("sha256") for s in states]
    everyone = distributed.gather(mine, ctx)
    for i, path in enumerate(checkpoints):
        seen = [rank[i] for rank in everyone]
        if len(set(seen)) > 1:
            shown = ", ".join(f"rank {r}: {'a fresh start' if v is None else 'sha256 ' + v[:12]}" for r, v in enumerate(seen))
            raise UserError(f"the processes of this run resume from different states of {path} ({shown}); end every process of the earlier run, then rerun")


def _save(path, hp, loader, processes, model, optimizer_state, history, epoch, step, loss_sum, correct, partial_time) -> None:
    save_torch(
        path,
        {
            "fingerprint": _fingerprint(hp, model, loader, processes),
            "epoch": epoch,
            "step": step,
            "loss_sum": float(loss_sum),
            "correct": int(correct),
            "partial_time": partial_time,
            "model": model.state_dict(),
            "optimizer": optimizer_state,
            "history": history,
        },
    )


def _resume(path: Path, hp: Hparams, model: nn.Module, loader: dict, processes: int) -> dict:
    """The state to go on from: ``path``'s, its weights loaded into ``model`` and its optimizer
    state returned (None: start over), if it was saved under ``hp`` over as many processes;
    with the hash of what it read (``sha256``), which every process must agree on."""
    fresh = {"epoch": 0, "step": 0, "loss_sum": 0.0, "correct": 0, "partial_time": 0.0, "history": [], "optimizer": None}
    if not path.exists():
        return fresh
    try:
        ckpt = load_torch(path, what="training checkpoint")
    except UserError as e:
        log.warning("ignoring unreadable checkpoint (%s); starting over", e)
        return fresh
    try:
        validate(TrainingCheckpoint, ckpt, str(path))
    except UserError as e:
        log.warning("ignoring a damaged checkpoint (%s); starting over", e)
        return fresh
    now = _fingerprint(hp, model, loader, processes)
    if ckpt["fingerprint"] != now:
        log.warning("checkpoint %s was made under other settings (%s); starting over", path, _differences(ckpt["fingerprint"], now))
        return fresh
    model.load_state_dict(ckpt["model"])
    log.info("resuming from %s at epoch %d, step %d", path, ckpt["epoch"] + 1, ckpt["step"])
    # what the processes of a data-parallel run compare: where it stopped and the weights
    position = torch.tensor([ckpt["epoch"], ckpt["step"]])
    digest = tensors_sha256([("position", position), *((k, v.detach().cpu()) for k, v in ckpt["model"].items())]) if processes > 1 else None
    return {**{k: ckpt[k] for k in fresh}, "sha256": digest}
