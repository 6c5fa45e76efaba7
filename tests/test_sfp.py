"""Soft filter pruning: the method's setting, its pruned file (the final zero pattern as masks),
the physically pruned network (equal to the masked one) and the scratch arms' budgets."""

from __future__ import annotations

import json

import pytest
import torch

from prunebench import methods, models
from prunebench.core.errors import UserError
from prunebench.models import masks
from prunebench.models.counting import count_macs
from prunebench.pruning.folding import dead_filters, macs_without_dead_inputs, physical
from prunebench.training.checkpoints import load_model, save_model
from prunebench.training.jobs import prune_run
from prunebench.training.runs import ArmProtocol, RunSpec, train_run

OPTIONS = {"shortcut": "subsample", "shortcut_grad": True, "fc_init": "kaiming"}


def _soft_pruned(randomise_bn, keep: float = 0.7, seed: int = 0) -> torch.nn.Module:
    """A ResNet-20 as SFP leaves it: smallest-L2 filters zeroed, BatchNorms untouched."""
    torch.manual_seed(seed)
    model = randomise_bn(models.build("resnet20", **OPTIONS), seed)
    masks.zero_weights(model, masks.filter_masks(model, keep))
    return model


@pytest.mark.parametrize("bad", ["0", "1", "1.5", "-0.2", "x"])
def test_keep_rate_must_be_a_fraction(bad):
    with pytest.raises(UserError, match="SFP keep rate"):
        methods.get("sfp").check_setting("resnet56", bad)


def test_sfp_arms_and_source():
    m = methods.get("sfp")
    assert m.arms == ("soft", "scratch-e", "scratch-b") and m.prune_from == "soft" and m.masked


def test_physical_network_equals_the_masked_one(randomise_bn):
    """Zeroed inner filters removed, their constant ReLU(BN(0)) folded into conv2's offset."""
    model = _soft_pruned(randomise_bn)
    masked = masks.apply(model, masks.zero_pattern(model))
    small = physical(masked, "resnet20", 10, OPTIONS)
    assert small.cfg == [16 - 4] * 3 + [32 - 9] * 3 + [64 - 19] * 3  # int(N * 0.3) filters gone per block
    # The removed channels are not silent: without the offsets the outputs would differ.
    assert any(b.offset.abs().sum() > 0 for b in small.modules() if getattr(b, "offset", None) is not None)
    # MACs: the small network's non-zero weights, and the masked one's without dead inputs.
    assert count_macs(small) == macs_without_dead_inputs(masked) < count_macs(masked)
    x = torch.randn(4, 3, 32, 32)
    assert torch.allclose(masked.eval()(x), small(x), rtol=0, atol=1e-5)  # float32
    masked64 = masked.double().eval()  # float64 throughout: equal up to float64 rounding
    small64 = physical(masked64, "resnet20", 10, OPTIONS)
    assert next(small64.parameters()).dtype == torch.float64
    assert torch.allclose(masked64(x.double()), small64(x.double()), rtol=0, atol=1e-12)


def test_physical_file_loads_and_keeps_stem_and_conv2_masks(randomise_bn, tmp_path):
    model = _soft_pruned(randomise_bn)
    masked = masks.apply(model, masks.zero_pattern(model))
    small = physical(masked, "resnet20", 10, OPTIONS)
    stem_dead = int((~masks.masks_of(small)["conv1.weight"].flatten(1).any(1)).sum())
    assert stem_dead == int(16 * 0.3)  # the stem feeds the residual stream: masked, not removed
    path = tmp_path / "physical.pt"
    save_model(path, small, "resnet20", 10, options={**OPTIONS, "dead_offsets": True})
    loaded, meta = load_model(path)
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(loaded.eval()(x), small.float().eval()(x))


def test_dead_filters_are_whole_zero_filters_of_block_conv1(randomise_bn):
    model = _soft_pruned(randomise_bn)
    dead = dead_filters(model)
    assert set(dead) == {g.name for g in model.channel_groups()}
    assert all(len(v) == int(g.width * 0.3) for g in model.channel_groups() for v in [dead[g.name]])


@pytest.fixture
def soft_file(randomise_bn, tmp_path) -> str:
    model = _soft_pruned(randomise_bn)
    path = tmp_path / "soft.pt"
    run = {"dataset": "cifar10", "arch": "resnet20", "method": "sfp", "setting": "0.7", "arm": "soft", "seed": 1}
    save_model(path, model, "resnet20", 10, options=OPTIONS, run=run)
    return str(path)


def test_prune_step_writes_masks_and_physical_checks(soft_file, tmp_path):
    out, report, phys = tmp_path / "pruned.pt", tmp_path / "prune.json", tmp_path / "physical.pt"
    prune_run(soft_file, "sfp", "0.7", 1, str(out), str(report), str(phys))
    rep = json.loads(report.read_text())
    assert rep["physical"]["equal"] and rep["physical"]["macs_agree"]
    checks = rep["mask_checks"]
    assert checks["macs_agree"] and not checks["empty_layers"]
    assert checks["macs_physical"] < checks["macs_nonzero"] == rep["macs_after"]
    pruned, meta = load_model(out)
    assert masks.is_masked(pruned) and meta["run"]["arm"] == "pruned"
    assert load_model(phys)[1]["options"]["dead_offsets"] is True


def test_physical_out_is_refused_for_a_method_without_one(tmp_path):
    with pytest.raises(UserError, match="no physically pruned form"):
        prune_run("nowhere.pt", "magnitude", "0.5", 1, str(tmp_path / "a.pt"), str(tmp_path / "b.json"), str(tmp_path / "c.pt"))


@pytest.mark.parametrize("after_mask", [True, False])
def test_scratch_b_budget_after_or_before_the_mask(soft_file, tiny_prepared, tmp_path, after_mask):
    """The reference measured Scratch-B's MACs before loading the mask (ratio 1): an option."""
    pruned = tmp_path / "pruned.pt"
    prune_run(soft_file, "sfp", "0.7", 1, str(pruned), str(tmp_path / "prune.json"))
    spec = RunSpec("resnet20", "scratch-b", 1, "sfp", "0.7", init=str(pruned))
    protocol = ArmProtocol(2, 0.1, (), budget_after_mask=after_mask)
    metrics = train_run(spec, str(tiny_prepared), protocol, {"batch_size": 64}, torch.device("cpu"), str(tmp_path / "m.pt"), str(tmp_path / "m.json"), train_subset=32, test_subset=16)
    ratio = metrics["macs_full"] / metrics["macs"]
    assert metrics["epochs"] == (int(2 * ratio) if after_mask else 2)
    assert ratio > 1.3
    checks = metrics["mask_checks"]
    assert checks["no_regrowth"] and checks["sparsity_before"] == checks["sparsity_after"] > 0.25


def test_sfp_schedule_warms_up_then_steps_by_0_2():
    from prunebench.training.step import Schedule

    s = Schedule.fractional(200, 0.1, (0.3, 0.6, 0.8), 0.2, warmup_epochs=1, warmup_lr=0.01)
    assert s.milestones == (60, 120, 160)
    lrs = [s.lr_at(e) for e in (0, 1, 59, 60, 119, 120, 160, 199)]
    assert lrs == pytest.approx([0.01, 0.1, 0.1, 0.02, 0.02, 0.004, 0.0008, 0.0008])


def test_sfp_normalisation_is_per_dataset():
    from prunebench.data.cifar import MEAN, STD, mean_std

    assert mean_std("rethinking", "cifar100") == (MEAN, STD)
    mean, std = mean_std("sfp", "cifar10")
    assert mean == pytest.approx((125.3 / 255, 123.0 / 255, 113.9 / 255)) and std == pytest.approx((63.0 / 255, 62.1 / 255, 66.7 / 255))
    assert mean_std("sfp", "cifar100")[0] == pytest.approx((129.3 / 255, 124.1 / 255, 112.4 / 255))
    with pytest.raises(UserError, match="unknown normalisation"):
        mean_std("imagenet", "cifar10")


def test_soft_arm_trains_from_scratch_with_soft_pruning(tiny_prepared, tmp_path):
    spec = RunSpec("resnet20", "soft", 1, "sfp", "0.7", OPTIONS)
    metrics = train_run(spec, str(tiny_prepared), ArmProtocol(1, 0.1, (), 0.2, 1, 0.01), {"batch_size": 64, "nesterov": True, "normalisation": "sfp"}, torch.device("cpu"), str(tmp_path / "m.pt"), str(tmp_path / "m.json"), train_subset=32, test_subset=16)
    assert metrics["hparams"]["soft_keep"] == 0.7 and metrics["hparams"]["nesterov"]
    assert metrics["history"][0]["lr"] == 0.01
    assert metrics["macs"] < metrics["macs_full"] and metrics["mask_checks"]["sparsity_after"] > 0.25
    with pytest.raises(UserError, match="magnitude has no soft arm"):
        train_run(RunSpec("resnet20", "soft", 1, "magnitude", "0.7"), str(tiny_prepared), ArmProtocol(1, 0.1), {}, torch.device("cpu"), str(tmp_path / "a.pt"), str(tmp_path / "a.json"))
