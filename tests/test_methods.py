"""The method registry, network slimming's threshold and empty-layer rule, and config checks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from prunebench import methods, models
from prunebench.core.errors import UserError
from prunebench.methods import slimming
from prunebench.pruning import masked_copy, prune
from prunebench.studies.study import base_tag, check, parse_tag

SLIM_ARCHS = ("vgg19", "preresnet164", "densenet40")


# --------------------------------------------------------------------------- registry
def test_registry_names_and_facts():
    names = methods.names()
    assert {"l1", "l2", "random", "smallest", "uniform", "slimming"} <= set(names)
    s, l1 = methods.get("slimming"), methods.get("l1")
    assert s.learned and s.base == "sparsity" and s.scratch_cfg is None
    assert not l1.learned and l1.base == "plain" and l1.scratch_cfg is not None
    assert methods.get("uniform").base == "plain"


def test_unknown_method_is_one_line_listing_names():
    with pytest.raises(UserError) as e:
        methods.get("nope")
    msg = str(e.value)
    assert "\n" not in msg and "'nope'" in msg
    assert all(n in msg for n in methods.names())


# --------------------------------------------------------------------------- helpers
def bn2d(model: nn.Module) -> dict[str, nn.BatchNorm2d]:
    return {n: m for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)}


def slim_model(arch: str, randomise_bn, num_classes: int = 10, seed: int = 0) -> nn.Module:
    """A model with random BN statistics and distinct |gamma| everywhere (no ties at the threshold)."""
    torch.manual_seed(seed)
    model = randomise_bn(models.build(arch, num_classes=num_classes), seed=seed + 1).eval()
    bns = list(bn2d(model).values())
    total = sum(b.num_features for b in bns)
    g = torch.Generator().manual_seed(seed + 2)
    mags = (torch.randperm(total, generator=g).float() + 1) / total  # distinct, in (0, 1]
    signs = torch.where(torch.rand(total, generator=g) < 0.5, -1.0, 1.0)
    with torch.no_grad():
        start = 0
        for b in bns:
            b.weight.copy_(mags[start : start + b.num_features] * signs[start : start + b.num_features])
            start += b.num_features
    return model


def group_of_bn(model: nn.Module, bn: str):
    return next(g for g in model.channel_groups() if g.bn == bn)


def expected_threshold(model: nn.Module, ratio: float) -> torch.Tensor:
    """Written from PROTOCOLS §3: all BN2d |gamma| sorted ascending, thr = sorted[int(total * ratio)]."""
    everything = torch.cat([b.weight.detach().abs().flatten() for b in bn2d(model).values()]).sort().values
    return everything[int(len(everything) * ratio)]


def outputs(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(x)


# --------------------------------------------------------------------------- threshold
@pytest.mark.parametrize("arch", SLIM_ARCHS)
def test_slimming_keeps_channels_above_global_threshold(arch, randomise_bn):
    model = slim_model(arch, randomise_bn)
    thr = expected_threshold(model, 0.4)
    pruned = slimming.prune(model, arch, "0.4", 0)
    assert pruned.notes["threshold"] == thr.item()
    assert pruned.notes["global_ratio"] == 0.4 and pruned.notes["emptied"] == []
    bns = bn2d(model)
    assert {g.bn for g in model.channel_groups()} == set(bns)  # every BN2d scores one group
    kept_total = total = 0
    for name, bn in bns.items():
        g = group_of_bn(model, name)
        expected = (bn.weight.detach().abs() > thr).nonzero().flatten()
        assert 0 < len(expected)
        if len(expected) == g.width:
            assert g.name not in pruned.keep
        else:
            assert torch.equal(pruned.keep[g.name].sort().values, expected), g.name
        assert pruned.ratios[g.name] == pytest.approx(1 - len(expected) / g.width)
        kept_total += len(expected)
        total += g.width
    assert kept_total == total - int(total * 0.4) - 1  # distinct gammas: exactly those above thr
    assert kept_total / total == pytest.approx(0.6, abs=0.005)


# --------------------------------------------------------------------------- empty-layer rule
EMPTY = {"vgg19": "features.28", "preresnet164": "layer2.3.bn2", "densenet40": "dense2.4.bn1"}


def shrink(model: nn.Module, bn: str, top: int) -> None:
    """Make one BN's gammas tiny (distinct, mixed signs) with the largest |gamma| at ``top``."""
    b = bn2d(model)[bn]
    n = b.num_features
    vals = torch.arange(1, n + 1, dtype=torch.float32) * 1e-7
    vals = vals.roll(top + 1)  # the largest (n * 1e-7) lands at index ``top``
    vals[::2] *= -1
    with torch.no_grad():
        b.weight.copy_(vals)


@pytest.mark.parametrize("arch", SLIM_ARCHS)
def test_emptied_layer_keeps_its_highest_gamma(arch, randomise_bn):
    model = slim_model(arch, randomise_bn)
    shrink(model, EMPTY[arch], top=5)
    g = group_of_bn(model, EMPTY[arch])
    assert bn2d(model)[EMPTY[arch]].weight.abs().argmax().item() == 5
    pruned = slimming.prune(model, arch, "0.4", 0)
    assert pruned.notes["emptied"] == [g.name]
    assert pruned.keep[g.name].tolist() == [5]
    assert pruned.ratios[g.name] == pytest.approx(1 - 1 / g.width)


def test_preresnet_at_60_percent_with_an_emptied_layer_prunes_physically(randomise_bn):
    arch = "preresnet164"
    model = slim_model(arch, randomise_bn, num_classes=100)
    shrink(model, "layer2.3.bn2", top=7)  # a sliced group (conv1's outputs)
    shrink(model, "layer3.1.bn1", top=3)  # a selection group
    pruned = slimming.prune(model, arch, "0.6", 0)
    assert pruned.notes["emptied"] == ["layer2.3.conv1", "layer3.1.select"]
    small = prune(model, arch, pruned.keep, 100)
    cfg = small.cfg
    assert cfg[group_of_bn(model, "layer2.3.bn2").cfg_index] == 1
    assert cfg[group_of_bn(model, "layer3.1.bn1").cfg_index] == [3]
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    out_small, out_masked = outputs(small, x), outputs(masked_copy(model, pruned.keep), x)
    assert out_small.shape == (2, 100)
    torch.testing.assert_close(out_small, out_masked, rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------- pruned == masked
@pytest.mark.parametrize("arch", SLIM_ARCHS)
@pytest.mark.parametrize("num_classes", [10, 100])
def test_slimming_pruned_equals_masked(arch, num_classes, randomise_bn):
    model = slim_model(arch, randomise_bn, num_classes=num_classes, seed=3)
    pruned = slimming.prune(model, arch, "0.5", 0)
    assert pruned.keep  # something is cut
    small = prune(model, arch, pruned.keep, num_classes, **models.default_options(arch))
    masked = masked_copy(model, pruned.keep)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(6))
    out_small, out_masked, out_full = outputs(small, x), outputs(masked, x), outputs(model, x)
    assert out_small.shape == (2, num_classes)
    torch.testing.assert_close(out_small, out_masked, rtol=1e-5, atol=1e-5)
    assert (out_full - out_masked).abs().max() > 1e-3 * out_full.abs().max()  # not vacuous
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in model.parameters())
    for g in model.channel_groups():
        entry = small.cfg[g.cfg_index]
        if g.name in pruned.keep:
            assert entry == (pruned.keep[g.name].tolist() if g.selection else len(pruned.keep[g.name]))
        else:
            assert entry == model.cfg[g.cfg_index]


@pytest.mark.parametrize("setting", ["0", "1", "1.5", "-0.1", "x", "A"])
def test_slimming_setting_must_be_open_fraction(setting):
    with pytest.raises(UserError, match=r"\(0, 1\)"):
        methods.get("slimming").check_setting("vgg19", setting)


def test_slimming_refuses_archs_without_bn_groups():
    with pytest.raises(UserError, match="not resnet56"):
        methods.get("slimming").check_setting("resnet56", "0.5")


# --------------------------------------------------------------------------- config checks
SPARSITY = {"vgg": 1e-4, "preresnet": 1e-5, "densenet": 1e-5}


PROTOCOL = {"arms": {arm: {"epochs": 1, "lr": 0.1, "milestones": []} for arm in ("base", "finetune", "scratch-e", "scratch-b")}}


def config(study: dict, name: str = "s", sparsity: dict | None = None) -> dict:
    return {"studies": {name: study}, "sparsity": SPARSITY if sparsity is None else sparsity, "protocol": PROTOCOL, "scale": "smoke", "scales": {"smoke": {}}}


def check_error(cfg: dict, *needles: str) -> str:
    with pytest.raises(UserError) as e:
        check(cfg)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("config: ")
    for needle in needles:
        assert needle in msg, (needle, msg)
    return msg


def test_valid_studies_pass():
    check(config({"method": "l1", "models": {"cifar10": {"vgg16": ["A"], "resnet56": ["A", "B"]}}}, "l1"))
    check(config({"method": "slimming", "models": {"cifar100": {"vgg19": [0.5], "preresnet164": [0.4, 0.6], "densenet40": [0.4]}}}))


def test_config_unknown_method():
    check_error(config({"method": "nope", "models": {}}), "studies.s.method", "'nope'", "slimming", "l1")


def test_config_unknown_variant():
    check_error(
        config({"method": "l1", "models": {"cifar10": {"vgg16": ["Q"]}}}, "l1"),
        "studies.l1.models.cifar10.vgg16[0]", "vgg16-Q", "vgg16-A", "resnet56-B", "resnet110-A",
    )  # fmt: skip


def test_config_slimming_ratio_out_of_range():
    check_error(config({"method": "slimming", "models": {"cifar10": {"vgg19": [1.5]}}}), "studies.s.models.cifar10.vgg19[0]", "1.5", "(0, 1)")


def test_config_slimming_on_resnet_refused():
    check_error(config({"method": "slimming", "models": {"cifar10": {"resnet56": [0.5]}}}), "studies.s.models.cifar10.resnet56", "resnet56")


def test_config_missing_sparsity_family():
    study = {"method": "slimming", "models": {"cifar10": {"densenet40": [0.4]}}}
    check_error(config(study, sparsity={"vgg": 1e-4}), "sparsity.densenet", "densenet40")
    check(config(study, sparsity={"densenet": 1e-5}))
    # a plain-base method needs no sparsity at all
    check(config({"method": "uniform", "models": {"cifar10": {"preresnet164": [0.4]}}}, sparsity={}))
    # uniform removes filters: DenseNet-40 has only selection groups, DenseNet-BC-100 none at all
    for arch in ("densenet40", "densenetbc100"):
        check_error(config({"method": "uniform", "models": {"cifar10": {arch: [0.4]}}}), f"{arch} has none", "magnitude")


def test_base_tag_round_trip():
    t1 = base_tag("slimming", "vgg19", {}, {"vgg": 1e-4})
    t2 = base_tag("l1", "resnet56", {"shortcut_grad": True}, {})
    assert t1 == "sparsity0.0001"
    assert t2 == "plain+shortcut_grad=true"
    assert parse_tag(t1) == (1e-4, {}, None)
    assert parse_tag(t2) == (0.0, {"shortcut_grad": True}, None)
    # default-valued options leave the tag alone; non-default strings appear as they are
    assert base_tag("l1", "resnet56", {"shortcut_grad": False, "shortcut": "avgpool"}, {}) == "plain"
    t3 = base_tag("slimming", "vgg19", {"head": "li"}, {"vgg": 1e-4})
    assert t3 == "sparsity0.0001+head=li" and parse_tag(t3) == (1e-4, {"head": "li"}, None)
    # a named protocol comes right after the head, and is no model option
    t4 = base_tag("sfp", "resnet56", {"shortcut": "subsample"}, {}, "sfp")
    assert t4 == "plain+protocol=sfp+shortcut=subsample"
    assert parse_tag(t4) == (0.0, {"shortcut": "subsample"}, "sfp")
