"""Masked models: mask semantics (the reference's threshold, SFP's filter rule), training that
keeps pruned weights at exactly zero, model files, sparse MAC counts and the scratch init."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from prunebench import models
from prunebench.data.cifar import Data
from prunebench.models import masks
from prunebench.models.counting import conv_positions, count_macs, count_macs_by_mask, count_params
from prunebench.training.checkpoints import load_model, save_model
from prunebench.training.loop import fit
from prunebench.training.step import Hparams, Schedule, make_optimizer, make_step


def _trained_like(arch: str = "resnet20", seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return models.build(arch)


# --------------------------------------------------------------------------- making masks
def test_magnitude_threshold_is_the_references():
    """thr = sorted|w|[int(n * p)] over all conv weights together; keep |w| > thr."""
    model = _trained_like()
    ratio = 0.5
    everything = torch.cat([m.weight.detach().abs().flatten() for m in model.modules() if isinstance(m, nn.Conv2d)])
    thr = everything.sort().values[int(len(everything) * ratio)]
    found = masks.magnitude_masks(model, ratio)
    assert set(found) == {f"{n}.weight" for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    kept = sum(int(m.sum()) for m in found.values())
    assert kept == int((everything > thr).sum())
    assert kept == len(everything) - int(len(everything) * ratio) - 1  # no ties in random weights
    # One global threshold: layers end up with different ratios.
    ratios = {k: 1 - m.float().mean().item() for k, m in found.items()}
    assert max(ratios.values()) - min(ratios.values()) > 0.1


def test_magnitude_masks_never_touch_linear_or_bn():
    model = _trained_like("vgg16")
    found = masks.magnitude_masks(model, 0.9)
    assert all(k.startswith("features.") for k in found)
    masks.apply(model, found)
    assert masks.is_masked(model)
    assert not any(isinstance(m, (nn.Linear, nn.BatchNorm2d, nn.BatchNorm1d)) and hasattr(m, "weight_mask") for m in model.modules())


def test_filter_masks_zero_the_smallest_l2_filters():
    model = _trained_like()
    found = masks.filter_masks(model, 0.7)
    for key, conv in masks.conv_weights(model).items():
        w = conv.weight.detach()
        n = w.shape[0]
        dropped = (~found[key].flatten(1).all(1)).nonzero().flatten()
        assert len(dropped) == int(n * 0.3), key
        norms = w.flatten(1).norm(dim=1)
        assert set(dropped.tolist()) == set(norms.argsort()[: int(n * 0.3)].tolist())
        assert (found[key].flatten(1).all(1) | ~found[key].flatten(1).any(1)).all()  # whole filters


# --------------------------------------------------------------------------- training
@pytest.fixture
def data(tiny_prepared) -> Data:
    return Data(tiny_prepared)


def test_masked_training_keeps_pruned_weights_exactly_zero(data, tmp_path):
    """Momentum and weight decay included: nothing grows back, kept weights do train."""
    model = _trained_like()
    masks.apply(model, masks.magnitude_masks(model, 0.8))
    before = masks.sparsity(model)
    kept_before = {k: masks.effective(m).detach().clone() for k, m in masks.conv_weights(model).items()}
    hp = Hparams(Schedule(2, 0.1), batch_size=32, momentum=0.9, weight_decay=5e-4)
    fit(model, data, hp, torch.device("cpu"), tmp_path / "ckpt.pt")
    after = masks.sparsity(model)
    assert after["nonzero"] == before["nonzero"] and after["sparsity"] == before["sparsity"]
    assert before["pruned_nonzero"] == after["pruned_nonzero"] == 0
    for key, conv in masks.conv_weights(model).items():
        mask = conv.weight_mask.bool()
        assert (conv.weight_orig[~mask] == 0).all(), key  # the parameter itself, not only the product
        assert not torch.equal(masks.effective(conv).detach()[mask], kept_before[key][mask]), key


def test_gradient_reaching_a_masked_weight_is_zero():
    model = _trained_like()
    masks.apply(model, masks.magnitude_masks(model, 0.5))
    F.cross_entropy(model(torch.randn(4, 3, 32, 32)), torch.tensor([0, 1, 2, 3])).backward()
    for conv in masks.conv_weights(model).values():
        assert (conv.weight_orig.grad[~conv.weight_mask.bool()] == 0).all()


def test_soft_pruning_zeroes_filters_each_epoch_and_lets_them_train(data, tmp_path):
    """SFP: the pattern is applied before and after every epoch; in between, zeroed filters move."""
    model = _trained_like()
    hp = Hparams(Schedule(1, 0.1), batch_size=32, soft_keep=0.7, nesterov=True, weight_decay=5e-4)
    fit(model, data, hp, torch.device("cpu"), tmp_path / "ckpt.pt")
    for key, conv in masks.conv_weights(model).items():
        alive = (conv.weight.detach().flatten(1) != 0).any(1)
        assert int((~alive).sum()) == int(conv.out_channels * 0.3), key
    zeroed = {k: ~m for k, m in masks.zero_pattern(model).items()}
    step = make_step(model, make_optimizer(model, hp, torch.device("cpu")), hp, torch.device("cpu"))
    step(torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,)))
    regrown = [k for k, c in masks.conv_weights(model).items() if (c.weight.detach()[zeroed[k]] != 0).any()]
    assert regrown, "soft-pruned filters must keep receiving updates"


# --------------------------------------------------------------------------- files
def test_masked_model_file_loads_with_plain_torch_and_the_registry(tmp_path):
    model = _trained_like()
    masks.apply(model, masks.magnitude_masks(model, 0.7))
    path = tmp_path / "model.pt"
    save_model(path, model, "resnet20", 10)
    blob = torch.load(path, weights_only=True)
    assert not any(k.endswith(("_orig", "_mask")) for k in blob["state_dict"])
    assert all(m.dtype == torch.bool for m in blob["masks"].values())
    plain = models.build(blob["arch"], blob["cfg"], blob["num_classes"], **blob["options"])
    plain.load_state_dict(blob["state_dict"])  # the zeroed weights, no prune machinery needed
    loaded, _ = load_model(path)
    assert masks.is_masked(loaded)
    x = torch.randn(2, 3, 32, 32)
    for m in (model, plain, loaded):
        m.eval()
    assert torch.equal(model(x), plain(x)) and torch.equal(model(x), loaded(x))
    assert {k: v.sum() for k, v in masks.masks_of(loaded).items()} == {k: v.sum() for k, v in blob["masks"].items()}


def test_damaged_masks_are_one_line_errors(tmp_path):
    from prunebench.core.errors import UserError

    model = _trained_like()
    path = tmp_path / "model.pt"
    save_model(path, model, "resnet20", 10, masks={"conv1.weight": torch.ones(3, 3, dtype=torch.bool)})
    with pytest.raises(UserError, match="mask for 'conv1.weight' has shape"):
        load_model(path)
    save_model(path, model, "resnet20", 10, masks={"nope.weight": torch.ones(1, dtype=torch.bool)})
    with pytest.raises(UserError, match="no such weight"):
        load_model(path)
    with pytest.raises(UserError, match="being written.*expected a bool tensor"):  # the writer holds to the form too
        save_model(path, model, "resnet20", 10, masks={"conv1.weight": torch.ones(16, 3, 3, 3)})
    blob = torch.load(path, weights_only=True)
    torch.save({**blob, "masks": {"conv1.weight": torch.ones(16, 3, 3, 3)}}, path)
    with pytest.raises(UserError, match=r"masks\.conv1\.weight: expected a bool tensor"):
        load_model(path)


# --------------------------------------------------------------------------- counting
def test_masked_macs_count_only_nonzero_conv_weights():
    model = _trained_like()
    dense_macs, dense_params = count_macs(model), count_params(model)
    found = masks.magnitude_masks(model, 0.6)
    masks.apply(model, found)
    positions = conv_positions(model)
    removed = sum(int((~m).sum()) * positions[k] for k, m in found.items())
    assert count_macs(model) == dense_macs - removed
    assert count_macs(model, sparse=False) == dense_macs
    assert count_macs_by_mask(model) == count_macs(model)
    assert count_params(model) == dense_params - sum(int((~m).sum()) for m in found.values())
    assert positions["conv1.weight"] == 32 * 32 and positions["layer3.2.conv2.weight"] == 8 * 8


# --------------------------------------------------------------------------- scratch init
def test_scratch_init_draws_from_the_sparse_fan_out():
    """N(0, sqrt(2/n)) with n = non-zeros / C_in, times the mask (the reference's scratch init)."""
    model = _trained_like("vgg16")
    found = masks.magnitude_masks(model, 0.9)
    fresh = models.build("vgg16")
    masks.apply(fresh, found)
    torch.manual_seed(3)
    masks.scratch_init(fresh)
    conv = dict(fresh.named_modules())["features.40"]  # 512 -> 512, 3x3: many weights
    mask = conv.weight_mask.bool()
    drawn = conv.weight_orig.detach()[mask]
    expected = math.sqrt(2.0 / (mask.sum().item() / conv.in_channels))
    assert drawn.std().item() == pytest.approx(expected, rel=0.05)
    assert (conv.weight_orig.detach()[~mask] == 0).all()
