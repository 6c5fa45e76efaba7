"""Fused runs (training/fused.py): K runs that differ only in their seed, trained as one network,
must end as the K runs trained alone for every kind of run: a full ResNet, a pruned ResNet-56-B,
a masked VGG whose masks differ per copy, a slimming base with its penalty, an SFP run, another
network's module.

Grouped kernels sum in another order than a run's own, so the two differ by rounding, and SGD
from a random init amplifies rounding step by step (in float32, 1e-7 after one step, a few 1e-3
after six at LR 0.1). The equivalence is therefore checked in float64, where rounding stays
near 1e-13 and any real difference (a copy reading another's data, masks or penalty) shows at
full size; one float32 case checks the arithmetic the runs use. A fused job killed mid-epoch
resumes from its K checkpoints and ends exactly as an uninterrupted fused job."""

from __future__ import annotations

import json
import os
import signal

import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

from prunebench import methods, models
from prunebench.core.errors import UserError
from prunebench.data.cifar import Data
from prunebench.models import masks
from prunebench.training import fused
from prunebench.training.loop import Interrupted, fit, fit_group
from prunebench.training.step import Hparams, Schedule

CPU = torch.device("cpu")
SMALL_VGG = [8, "M", 16, "M", 16, "M", 16, "M", 16]
SEEDS = (1, 2, 3)


@pytest.fixture(scope="module")
def data(tiny_prepared):
    return Data(tiny_prepared, train_subset=80, test_subset=40)  # batches of 32, 32 and a last one of 16


def hparams(seed: int, epochs: int = 2, lr: float = 0.01, **kw) -> Hparams:
    return Hparams(Schedule.fractional(epochs, lr, (0.5,)), seed=seed, batch_size=32, test_batch_size=64, **kw)


@pytest.fixture
def float64(monkeypatch):
    """Models built and batches served in float64."""
    from prunebench.data import cifar

    normalise = cifar._normalise
    monkeypatch.setattr(cifar, "_normalise", lambda *a: normalise(*a).double())
    return lambda model: model.double()


def build(kind: str, seed: int):
    torch.manual_seed(seed)
    if kind == "resnet":
        return models.build("resnet20")
    if kind == "resnet56-B":
        return models.build("resnet56", methods.get("l1").scratch_cfg("resnet56", "B"))
    if kind == "foreign":  # another network's module, trained as it is
        from examples.foreign_network import PlainNet

        return PlainNet((8, 16, 16))
    model = models.build("vgg16", SMALL_VGG)
    if kind == "masked":
        masks.apply(model, masks.magnitude_masks(model, 0.5))  # each seed's own weights: its own masks
    return model


CASES = {
    "full-resnet": ("resnet", {}),
    "pruned-resnet56-B": ("resnet56-B", {"epochs": 1}),
    "masked-vgg": ("masked", {}),
    "slimming-base": ("vgg", {"sparsity": 1e-3}),
    "sfp": ("resnet", {"soft_keep": 0.7}),
    "foreign-module": ("foreign", {}),
}


def assert_close_models(a, b, tol):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        if sa[k].is_floating_point():
            torch.testing.assert_close(sa[k], sb[k], rtol=tol, atol=tol, msg=k)
        else:
            assert torch.equal(sa[k], sb[k]), k


def assert_same_history(a, b, tol):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.keys() == y.keys()
        for key in x:
            if key != "time":
                assert x[key] == pytest.approx(y[key], rel=tol, abs=tol), key


@pytest.mark.parametrize("case", CASES)
def test_fused_group_equals_runs_trained_alone(case, data, tmp_path, sigterm_guard, float64):
    kind, kw = CASES[case]
    alone = [float64(build(kind, s)) for s in SEEDS]
    results_alone = [fit(m, data, hparams(s, lr=0.1, **kw), CPU, tmp_path / f"alone{s}.pt") for m, s in zip(alone, SEEDS)]
    group = [float64(build(kind, s)) for s in SEEDS]
    before = [masks.masks_of(m) for m in group]
    results = fit_group(group, data, [hparams(s, lr=0.1, **kw) for s in SEEDS], CPU, [tmp_path / f"fused{s}.pt" for s in SEEDS], fuse="on")
    assert [r["fused_copies"] for r in results] == [3, 3, 3]
    for m, a, r, ra, mask in zip(group, alone, results, results_alone, before):
        assert_close_models(m, a, 1e-9)
        assert_same_history(r["history"], ra["history"], 1e-6)  # the epoch's loss sums are float32
        assert r["final_accuracy"] == ra["final_accuracy"]
        if kind == "masked":
            assert masks.masks_of(m).keys() == mask.keys()
            for key, keep in mask.items():  # pruned weights stay exactly zero, as alone
                assert torch.equal(masks.masks_of(m)[key], keep)
                assert (masks.weight_param(dict(m.named_modules())[key[: -len(".weight")]])[~keep] == 0).all()
    if kind == "masked":
        assert any(not torch.equal(before[0][k], before[1][k]) for k in before[0])  # the copies' masks differ
    # each copy's checkpoint is the one its run alone would write: resuming it alone trains no more
    saved, own = torch.load(tmp_path / "fused2.pt", weights_only=True), torch.load(tmp_path / "alone2.pt", weights_only=True)
    assert saved.keys() == own.keys() and saved["fingerprint"] == own["fingerprint"]
    assert saved["optimizer"]["param_groups"] == own["optimizer"]["param_groups"]
    assert saved["optimizer"]["state"].keys() == own["optimizer"]["state"].keys()
    resumed = float64(build(kind, 2))
    assert fit(resumed, data, hparams(2, lr=0.1, **kw), CPU, tmp_path / "fused2.pt")["history"] == results[1]["history"]


def test_fused_group_in_float32_matches_within_rounding(data, tmp_path, sigterm_guard):
    """The arithmetic the runs use: two epochs at LR 0.01 stay within 1e-3 of the runs alone."""
    alone = [build("resnet", s) for s in SEEDS]
    results_alone = [fit(m, data, hparams(s), CPU, tmp_path / f"alone{s}.pt") for m, s in zip(alone, SEEDS)]
    group = [build("resnet", s) for s in SEEDS]
    results = fit_group(group, data, [hparams(s) for s in SEEDS], CPU, [tmp_path / f"fused{s}.pt" for s in SEEDS], fuse="on")
    for m, a, r, ra in zip(group, alone, results, results_alone):
        assert_close_models(m, a, 1e-3)
        assert_same_history(r["history"], ra["history"], 1e-4)


def test_copy_times_add_up_to_the_job(data, tmp_path, sigterm_guard):
    results = fit_group([build("vgg", s) for s in (1, 2)], data, [hparams(s, 1) for s in (1, 2)], CPU, [tmp_path / f"{s}.pt" for s in (1, 2)], fuse="on")
    assert results[0]["history"][0]["time"] == results[1]["history"][0]["time"] > 0  # each its half


class KillAt:
    """SIGTERM this process right after optimizer step ``n`` (a fused step is one step)."""

    def __init__(self, n: int):
        self.n, self.steps = n, 0

    def __enter__(self):
        self.handle = register_optimizer_step_post_hook(self._hook)
        return self

    def _hook(self, *args):
        self.steps += 1
        if self.steps == self.n:
            os.kill(os.getpid(), signal.SIGTERM)

    def __exit__(self, *exc):
        self.handle.remove()


def test_killed_fused_job_resumes_as_uninterrupted(data, tmp_path, sigterm_guard):
    hps = [hparams(s, kind_epochs := 2) for s in SEEDS]
    straight = [build("masked", s) for s in SEEDS]
    r_straight = fit_group(straight, data, hps, CPU, [tmp_path / f"a{s}.pt" for s in SEEDS], fuse="on")
    ckpts = [tmp_path / f"b{s}.pt" for s in SEEDS]
    with KillAt(4):  # epoch 2, step 1 of 3
        with pytest.raises(Interrupted, match="epoch 2, step 1"):
            fit_group([build("masked", s) for s in SEEDS], data, hps, CPU, ckpts, fuse="on")
    assert all(torch.load(c, weights_only=True)["step"] == 1 for c in ckpts)
    with KillAt(10**9) as spy:
        again = [build("masked", s) for s in SEEDS]
        r_again = fit_group(again, data, hps, CPU, ckpts, fuse="on")
    assert spy.steps == 3 * kind_epochs - 4  # no step done twice, none skipped
    for a, b, ra, rb in zip(straight, again, r_straight, r_again):
        for k, v in a.state_dict().items():
            assert torch.equal(v, b.state_dict()[k]), k  # stacking and slicing copy exactly
        assert [{k: v for k, v in h.items() if k != "time"} for h in ra["history"]] == [{k: v for k, v in h.items() if k != "time"} for h in rb["history"]]
    assert not sigterm_guard


def test_checkpoints_at_different_points_train_one_after_another(data, tmp_path, sigterm_guard, caplog):
    ckpts = [tmp_path / f"{s}.pt" for s in (1, 2)]
    fit(build("vgg", 1), data, hparams(1, 1), CPU, ckpts[0])  # run 1 finished, run 2 not started
    caplog.set_level("INFO", "prunebench.train")
    results = fit_group([build("vgg", s) for s in (1, 2)], data, [hparams(s, 1) for s in (1, 2)], CPU, ckpts, fuse="on")
    assert "one after another: their checkpoints stopped at different points" in caplog.text
    assert [r["fused_copies"] for r in results] == [1, 1]


def test_cpu_trains_runs_one_after_another_unless_told(data, tmp_path, sigterm_guard, caplog):
    caplog.set_level("INFO", "prunebench.train")
    results = fit_group([build("vgg", s) for s in (1, 2)], data, [hparams(s, 1) for s in (1, 2)], CPU, [tmp_path / f"{s}.pt" for s in (1, 2)])
    assert [r["fused_copies"] for r in results] == [1, 1] and "on a CPU they are faster unfused" in caplog.text


def test_what_cannot_fuse():
    vgg = [build("vgg", s) for s in (1, 2)]
    assert fused.not_fusible(vgg, [hparams(1), hparams(2)], 1) is None
    assert "hyperparameters" in fused.not_fusible(vgg, [hparams(1), hparams(2, 3)], 1)
    assert "data-parallel" in fused.not_fusible(vgg, [hparams(1), hparams(2)], 2)
    assert "architectures" in fused.not_fusible([vgg[0], build("resnet", 2)], [hparams(1), hparams(2)], 1)
    other = models.build("vgg16", [8, "M", 16, "M", 16, "M", 16, "M", 8])
    assert "architectures" in fused.not_fusible([vgg[0], other], [hparams(1), hparams(2)], 1)


def test_cli_trains_a_fused_job_with_one_file_set_per_seed(tiny_prepared, tmp_path):
    from click.testing import CliRunner

    from prunebench.commands.cli import cli

    def run(*seeds, name):
        outs = [(tmp_path / name / f"s{s}" / "model.pt", tmp_path / name / f"s{s}" / "metrics.json", tmp_path / name / f"s{s}" / "eval.json") for s in seeds]
        args = ["train", "--arch", "resnet20", "--arm", "base", "--epochs", "1", "--lr", "0.1", "--batch-size", "48", "--fuse", "on", "--data", str(tiny_prepared), "--train-subset", "96", "--test-subset", "32"]
        for s, (m, j, e) in zip(seeds, outs):
            args += ["--seed", str(s), "--model-out", str(m), "--metrics-out", str(j), "--eval-out", str(e)]
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, result.output
        return [json.loads(j.read_text()) for _, j, _ in outs], [json.loads(e.read_text()) for _, _, e in outs]

    fused_metrics, fused_evals = run(1, 2, name="fused")
    alone = [run(s, name=f"alone{s}") for s in (1, 2)]
    for f, (a, ae), fe in zip(fused_metrics, alone, fused_evals):
        assert f.keys() == a[0].keys() and f["run"] == a[0]["run"]
        assert f["fused_copies"] == 2 and a[0]["fused_copies"] == 1
        assert f["run_config_sha256"] == a[0]["run_config_sha256"] and f["init_sha256"] == a[0]["init_sha256"]
        assert f["final_accuracy"] == a[0]["final_accuracy"]
        assert fe["accuracy"]["evaluated"] == ae[0]["accuracy"]["evaluated"]
    assert not list(tmp_path.rglob("checkpoint.pt"))


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--seed", "1", "--seed", "2"], "2 --seed value(s) but 1 --model-out"),
        (["--seed", "1", "--seed", "1", "--model-out", "b/m.pt", "--metrics-out", "b/j.json"], "repeats a seed"),
    ],
)
def test_cli_rejects_unmatched_per_run_paths(tiny_prepared, tmp_path, extra, message):
    from click.testing import CliRunner

    from prunebench.commands.cli import cli

    args = ["train", "--arch", "resnet20", "--arm", "base", "--epochs", "1", "--lr", "0.1", "--data", str(tiny_prepared), "--model-out", str(tmp_path / "m.pt"), "--metrics-out", str(tmp_path / "j.json"), *extra]
    result = CliRunner().invoke(cli, args)
    assert isinstance(result.exception, UserError) and message in str(result.exception)
