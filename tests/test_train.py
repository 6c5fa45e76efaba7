"""The training loop: schedule, history, bit-identical resume after SIGTERM, stale and corrupt
checkpoints; and the atomic file writes (io.py) that fault tolerance relies on."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import signal

import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

from prunebench import models
from prunebench.core.errors import UserError
from prunebench.core.io import atomic_path, read_json, save_torch, sha256, write_json, write_text
from prunebench.data.cifar import Data
from prunebench.training.loop import Interrupted, evaluate, fit
from prunebench.training.step import Hparams, Schedule

CPU = torch.device("cpu")
SMALL_VGG = [8, "M", 16, "M", 16, "M", 16, "M", 16]  # 4 pools: 32 -> 2, then Li's head
STEPS_PER_EPOCH = 4  # 128 images, batch 32
HISTORY_KEYS = {"epoch", "lr", "train_loss", "train_accuracy", "test_loss", "test_accuracy", "time"}


@pytest.fixture(scope="module")
def data(tiny_prepared):
    return Data(tiny_prepared)


def small_vgg(seed: int = 0):
    torch.manual_seed(seed)
    return models.build("vgg16", SMALL_VGG)


def hparams(epochs: int = 3, lr: float = 0.1, **kw) -> Hparams:
    return Hparams(Schedule.fractional(epochs, lr, (0.5, 0.75)), seed=1, batch_size=32, test_batch_size=64, **kw)


def without_time(history):
    return [{k: v for k, v in h.items() if k != "time"} for h in history]


def assert_same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


class StepSpy:
    """Counts optimizer steps (all optimizers) and records the lr used; can SIGTERM this process
    right after chosen steps, as SLURM would."""

    def __init__(self, kill_at=()):
        self.steps, self.lrs, self.kill_at = 0, [], set(kill_at)

    def __enter__(self):
        self.handle = register_optimizer_step_post_hook(self._hook)
        return self

    def _hook(self, optimizer, args, kwargs):
        self.steps += 1
        self.lrs.append(optimizer.param_groups[0]["lr"])
        if self.steps in self.kill_at:
            os.kill(os.getpid(), signal.SIGTERM)

    def __exit__(self, *exc):
        self.handle.remove()


# --------------------------------------------------------------------------- schedule
def test_fractional_schedule():
    s = Schedule.fractional(8, 0.1, (0.5, 0.75))
    assert s.milestones == (4, 6)
    assert [s.lr_at(e) for e in range(8)] == pytest.approx([0.1] * 4 + [0.01] * 2 + [0.001] * 2)
    assert Schedule.fractional(160, 0.1, (0.5, 0.75)).milestones == (80, 120)
    assert Schedule.fractional(243, 0.1, (0.5, 0.75)).milestones == (121, 182)  # int(121.5), int(182.25)
    assert Schedule.fractional(5, 0.1, (0.5, 0.75)).milestones == (2, 3)
    assert Schedule(10, 0.01).lr_at(9) == 0.01  # fine-tuning: constant lr


def test_fit_follows_schedule(data, tmp_path, sigterm_guard):
    hp = Hparams(Schedule.fractional(4, 0.1, (0.5, 0.75)), seed=1, batch_size=32)
    with StepSpy() as spy:
        result = fit(small_vgg(), data, hp, CPU, tmp_path / "ckpt.pt")
    assert [h["lr"] for h in result["history"]] == pytest.approx([0.1, 0.1, 0.01, 0.001])
    assert spy.steps == 4 * STEPS_PER_EPOCH
    assert spy.lrs == pytest.approx([0.1] * 8 + [0.01] * 4 + [0.001] * 4)


# --------------------------------------------------------------------------- a short run
def test_fit_resnet20_two_epochs(data, tmp_path, sigterm_guard):
    torch.manual_seed(0)
    model = models.build("resnet20")
    init = {k: v.clone() for k, v in model.state_dict().items()}
    ckpt = tmp_path / "run" / "ckpt.pt"
    handler_before = signal.getsignal(signal.SIGTERM)
    result = fit(model, data, hparams(epochs=2), CPU, ckpt)
    assert signal.getsignal(signal.SIGTERM) is handler_before  # handler restored

    history = result["history"]
    assert len(history) == 2 and [h["epoch"] for h in history] == [1, 2]
    for h in history:
        assert set(h) == HISTORY_KEYS
        # 2 epochs: both milestones are int(0.5 * 2) = int(0.75 * 2) = 1
        assert h["lr"] == pytest.approx({1: 0.1, 2: 0.001}[h["epoch"]])
        assert math.isfinite(h["train_loss"]) and h["train_loss"] > 0
        assert math.isfinite(h["test_loss"]) and h["test_loss"] > 0
        assert 0 <= h["train_accuracy"] <= 100 and 0 <= h["test_accuracy"] <= 100
        # accuracies are counts of 128 / 40 images
        assert (h["train_accuracy"] * 128 / 100) == pytest.approx(round(h["train_accuracy"] * 128 / 100))
        assert h["time"] > 0
    assert result["final_accuracy"] == history[-1]["test_accuracy"]
    assert result["best_accuracy"] == max(h["test_accuracy"] for h in history)
    assert history[result["best_epoch"] - 1]["test_accuracy"] == result["best_accuracy"]
    assert result["train_seconds"] == pytest.approx(sum(h["time"] for h in history))
    # the model was trained in place and the last test numbers are its own
    assert any(not torch.equal(init[k], v) for k, v in model.state_dict().items())
    again = evaluate(model, data.test_x, data.test_y, 64, CPU)
    assert again["accuracy"] == history[-1]["test_accuracy"]
    assert again["loss"] == pytest.approx(history[-1]["test_loss"], rel=1e-5)
    # a checkpoint of the finished run was left behind
    saved = torch.load(ckpt, weights_only=True)
    assert saved["epoch"] == 2 and saved["step"] == 0 and len(saved["history"]) == 2


# --------------------------------------------------------------------------- resume
@pytest.fixture(scope="module")
def uninterrupted(data, tmp_path_factory):
    """Run A: three epochs without a break."""
    model = small_vgg()
    result = fit(model, data, hparams(), CPU, tmp_path_factory.mktemp("runA") / "ckpt.pt")
    return model, result


def test_fit_is_deterministic(data, tmp_path, uninterrupted):
    model_a, result_a = uninterrupted
    model = small_vgg()
    result = fit(model, data, hparams(), CPU, tmp_path / "ckpt.pt")
    assert_same_weights(model, model_a)
    assert without_time(result["history"]) == without_time(result_a["history"])


@pytest.mark.parametrize(
    "kill_at",
    [(2,), (STEPS_PER_EPOCH,), (STEPS_PER_EPOCH + 2,), (3 * STEPS_PER_EPOCH - 1,), (3, 2 * STEPS_PER_EPOCH + 1)],
    ids=["epoch1-step2", "end-of-epoch1", "epoch2-step2", "last-epoch-step3", "twice"],
)
def test_resume_after_sigterm_is_bit_identical(data, tmp_path, uninterrupted, sigterm_guard, kill_at):
    model_a, result_a = uninterrupted
    ckpt = tmp_path / "ckpt.pt"
    runs = 0
    with StepSpy(kill_at=kill_at) as spy:
        while True:
            runs += 1
            assert runs <= len(kill_at) + 1
            model_b = small_vgg()  # a fresh process: same init, weights come from the checkpoint
            try:
                result_b = fit(model_b, data, hparams(), CPU, ckpt)
                break
            except Interrupted as e:
                saved = torch.load(ckpt, weights_only=True)
                k = kill_at[runs - 1]  # killed right after global step k (1-based)
                epoch, step = (k - 1) // STEPS_PER_EPOCH, (k - 1) % STEPS_PER_EPOCH + 1
                assert (saved["epoch"], saved["step"]) == (epoch, step)
                assert f"epoch {epoch + 1}, step {step}" in str(e)
                assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL  # guard restored
    assert runs == len(kill_at) + 1
    assert spy.steps == 3 * STEPS_PER_EPOCH  # no step done twice, none skipped
    assert not sigterm_guard  # every SIGTERM was caught by fit
    assert_same_weights(model_b, model_a)
    assert without_time(result_b["history"]) == without_time(result_a["history"])
    assert all(h["time"] > 0 for h in result_b["history"])
    assert result_b["final_accuracy"] == result_a["final_accuracy"]
    assert result_b["best_epoch"] == result_a["best_epoch"]


def test_interrupted_checkpoint_is_mid_epoch(data, tmp_path, sigterm_guard):
    ckpt = tmp_path / "ckpt.pt"
    with StepSpy(kill_at=(STEPS_PER_EPOCH + 1,)):
        with pytest.raises(Interrupted, match="epoch 2, step 1"):
            fit(small_vgg(), data, hparams(), CPU, ckpt)
    saved = torch.load(ckpt, weights_only=True)
    assert saved["epoch"] == 1 and saved["step"] == 1 and len(saved["history"]) == 1
    assert saved["loss_sum"] > 0 and saved["partial_time"] > 0


def test_finished_checkpoint_is_not_retrained(data, tmp_path, uninterrupted, sigterm_guard):
    model_a, result_a = uninterrupted
    ckpt = tmp_path / "ckpt.pt"
    fit(small_vgg(), data, hparams(), CPU, ckpt)
    model = small_vgg()
    with StepSpy() as spy:
        result = fit(model, data, hparams(), CPU, ckpt)
    assert spy.steps == 0
    assert_same_weights(model, model_a)
    assert without_time(result["history"]) == without_time(result_a["history"])


def test_checkpoint_with_other_hparams_is_ignored(data, tmp_path, uninterrupted, sigterm_guard, caplog):
    model_a, result_a = uninterrupted
    ckpt = tmp_path / "ckpt.pt"
    fit(small_vgg(), data, hparams(epochs=3, lr=0.05), CPU, ckpt)
    model = small_vgg()
    with StepSpy() as spy, caplog.at_level(logging.WARNING, logger="prunebench.train"):
        result = fit(model, data, hparams(epochs=3, lr=0.1), CPU, ckpt)
    assert spy.steps == 3 * STEPS_PER_EPOCH  # trained from the start
    assert "made under other settings (hparams.schedule: " in caplog.text and "starting over" in caplog.text
    assert_same_weights(model, model_a)
    assert without_time(result["history"]) == without_time(result_a["history"])


def test_checkpoint_of_another_cfg_is_ignored(data, tmp_path, uninterrupted, sigterm_guard, caplog):
    model_a, result_a = uninterrupted
    ckpt = tmp_path / "ckpt.pt"
    torch.manual_seed(0)
    fit(models.build("vgg16", [8, "M", 8, "M", 8, "M", 8, "M", 8]), data, hparams(), CPU, ckpt)
    model = small_vgg()
    with caplog.at_level(logging.WARNING, logger="prunebench.train"):
        result = fit(model, data, hparams(), CPU, ckpt)
    assert "made under other settings (cfg: [8, 'M', 8" in caplog.text
    assert_same_weights(model, model_a)
    assert without_time(result["history"]) == without_time(result_a["history"])


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty", "foreign-torch-file"])
def test_corrupt_checkpoint_is_ignored_with_warning(data, tmp_path, uninterrupted, sigterm_guard, caplog, damage):
    model_a, result_a = uninterrupted
    ckpt = tmp_path / "ckpt.pt"
    if damage == "garbage":
        ckpt.write_bytes(bytes(range(256)) * 4)
    elif damage == "empty":
        ckpt.write_bytes(b"")
    elif damage == "foreign-torch-file":
        torch.save(torch.zeros(3), ckpt)
    else:
        with StepSpy(kill_at=(STEPS_PER_EPOCH + 2,)):
            with pytest.raises(Interrupted):
                fit(small_vgg(), data, hparams(), CPU, ckpt)
        blob = ckpt.read_bytes()
        ckpt.write_bytes(blob[: len(blob) // 2])
    model = small_vgg()
    with StepSpy() as spy, caplog.at_level(logging.WARNING, logger="prunebench.train"):
        result = fit(model, data, hparams(), CPU, ckpt)
    assert spy.steps == 3 * STEPS_PER_EPOCH
    assert any(r.levelno == logging.WARNING for r in caplog.records)
    assert_same_weights(model, model_a)
    assert without_time(result["history"]) == without_time(result_a["history"])
    assert torch.load(ckpt, weights_only=True)["epoch"] == 3  # replaced by a good one


# --------------------------------------------------------------------------- io: atomic writes
def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if ".tmp" in p.name)


def test_atomic_write_leaves_no_temp_files(tmp_path):
    target = tmp_path / "deep" / "er" / "out.json"
    write_json(target, {"a": 1, "b": [1, 2]})
    assert read_json(target) == {"a": 1, "b": [1, 2]}
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.json"]
    write_json(target, {"a": 2})  # overwrite
    assert json.loads(target.read_text()) == {"a": 2}
    write_text(tmp_path / "t.txt", "hello\n")
    save_torch(tmp_path / "x.pt", {"w": torch.arange(3)})
    assert torch.equal(torch.load(tmp_path / "x.pt", weights_only=True)["w"], torch.arange(3))
    assert (tmp_path / "t.txt").read_text() == "hello\n"
    assert _leftovers(tmp_path) == [] and _leftovers(target.parent) == []


def test_atomic_write_respects_umask(tmp_path):
    write_text(tmp_path / "t.txt", "x")
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "t.txt").stat().st_mode & 0o777 == 0o666 & ~umask


def test_failed_write_keeps_old_file(tmp_path):
    target = tmp_path / "out.json"
    write_json(target, {"old": True})
    before = target.read_bytes()
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_path(target) as tmp:
            tmp.write_text('{"new": tru')  # half written
            raise RuntimeError("boom")
    assert target.read_bytes() == before
    assert _leftovers(tmp_path) == []
    with pytest.raises(Exception):
        save_torch(tmp_path / "out.json", {"f": lambda: 0})  # not picklable: fails mid-write
    assert target.read_bytes() == before
    assert _leftovers(tmp_path) == []
    # a failed first write leaves nothing at all
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "new.txt") as tmp:
            tmp.write_text("partial")
            raise RuntimeError
    assert not (tmp_path / "new.txt").exists() and _leftovers(tmp_path) == []


def test_unwritable_path_is_a_user_error(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(UserError, match="cannot write"):
        write_json(tmp_path / "file" / "out.json", {})


def test_read_json_errors(tmp_path):
    with pytest.raises(UserError, match="missing file"):
        read_json(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(UserError, match="not valid JSON"):
        read_json(tmp_path / "bad.json")


def test_sha256(tmp_path):
    blob = os.urandom(3_000_000)  # more than one read block
    (tmp_path / "f").write_bytes(blob)
    assert sha256(tmp_path / "f") == hashlib.sha256(blob).hexdigest()
