"""Li et al.'s variants, filter selection criteria, and the surgery that cuts the network."""

from __future__ import annotations

import pytest
import torch

from prunebench import models
from prunebench.core.errors import UserError
from prunebench.pruning import (
    CRITERIA,
    layer_ratios,
    masked_copy,
    prune,
    pruned_cfg,
    select_filters,
    variant_cfg,
    variant_spec,
)

VGG16_A = [32, 64, "M", 128, 128, "M", 256, 256, 256, "M", 256, 256, 256, "M", 256, 256, 256]


def li_resnet_cfg(depth: int, kept: tuple[int, int, int], skip: set[int]) -> list[int]:
    """Written from the paper: block b (1-based over the network) has its first conv at Li layer 2b;
    every block of stage s keeps kept[s] filters unless its layer id is in ``skip``."""
    n = (depth - 2) // 6
    cfg = []
    for i in range(3 * n):
        s = i // n
        full = (16, 32, 64)[s]
        cfg.append(full if 2 * (i + 1) in skip else kept[s])
    return cfg


EXPECTED_CFG = {
    ("vgg16", "A"): VGG16_A,
    ("resnet56", "A"): li_resnet_cfg(56, (14, 28, 57), {16, 20, 38, 54}),
    ("resnet56", "B"): li_resnet_cfg(56, (6, 22, 57), {16, 18, 20, 34, 38, 54}),
    ("resnet110", "A"): li_resnet_cfg(110, (8, 32, 64), {36}),
    ("resnet110", "B"): li_resnet_cfg(110, (8, 19, 44), {36, 38, 74}),
}
VARIANTS = sorted(EXPECTED_CFG)


def l1_scores(w: torch.Tensor) -> torch.Tensor:
    return torch.stack([w[j].abs().sum() for j in range(w.shape[0])])


def random_model(arch, randomise_bn, num_classes=10, seed=0):
    torch.manual_seed(seed)
    return randomise_bn(models.build(arch, num_classes=num_classes), seed=seed + 1).eval()


# --------------------------------------------------------------------------- variants
def test_expected_cfgs_spot_checks():
    # sanity of the hand-written expectations themselves
    r56a = EXPECTED_CFG[("resnet56", "A")]
    assert r56a[7] == 16 and r56a[9] == 32 and r56a[18] == 64 and r56a[26] == 64  # ids 16, 20, 38, 54
    assert r56a.count(14) == 8 and r56a.count(28) == 8 and r56a.count(57) == 7
    r110b = EXPECTED_CFG[("resnet110", "B")]
    assert r110b[17] == 16 and r110b[18] == 32 and r110b[36] == 64  # ids 36, 38, 74
    assert r110b.count(8) == 17 and r110b.count(19) == 17 and r110b.count(44) == 17


@pytest.mark.parametrize("arch, variant", VARIANTS)
def test_variant_cfg_matches_li(arch, variant):
    assert variant_cfg(arch, variant, models.default_cfg(arch)) == EXPECTED_CFG[(arch, variant)]


def test_kept_count_truncates():
    # int(C * (1 - ratio)): 16 * 0.4 = 6.4 -> 6, 32 * 0.6 = 19.2 -> 19, 64 * 0.9 = 57.6 -> 57.
    m = models.build("resnet20")
    groups = m.channel_groups()
    keep = select_filters(m, {groups[0].name: 0.6, groups[3].name: 0.4, groups[6].name: 0.1})
    assert {k: len(v) for k, v in keep.items()} == {groups[0].name: 6, groups[3].name: 19, groups[6].name: 57}


def test_layer_ratios_resnet56_b():
    groups = models.build("resnet56").channel_groups()
    ratios = layer_ratios(groups, variant_spec("resnet56", "B"))
    by_id = {g.layer_id: ratios[g.name] for g in groups}
    assert set(by_id) == set(range(2, 55, 2))
    for lid, r in by_id.items():
        if lid in (16, 18, 20, 34, 38, 54):
            assert r == 0.0
        else:
            assert r == (0.6 if lid < 20 else 0.3 if lid < 38 else 0.1)


def test_layer_ratios_vgg16_a():
    groups = models.build("vgg16").channel_groups()
    ratios = layer_ratios(groups, variant_spec("vgg16", "A"))
    assert [ratios[g.name] for g in groups] == [0.5] + [0.0] * 6 + [0.5] * 6


@pytest.mark.parametrize("arch, variant", [("resnet56", "C"), ("resnet20", "A"), ("vgg19", "A"), ("resnet56", "a")])
def test_unknown_variant(arch, variant):
    with pytest.raises(UserError, match=f"unknown pruned variant {arch}-{variant}.*resnet56-B"):
        variant_spec(arch, variant)
    with pytest.raises(UserError, match="unknown pruned variant"):
        variant_cfg(arch, variant, models.default_cfg(arch))


# --------------------------------------------------------------------------- surgery
@pytest.mark.parametrize("arch, variant", VARIANTS)
def test_pruned_equals_masked(arch, variant, randomise_bn):
    model = random_model(arch, randomise_bn)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    keep = select_filters(model, layer_ratios(model.channel_groups(), variant_spec(arch, variant)))
    small = prune(model, arch, keep, 10).eval()
    masked = masked_copy(model, keep).eval()

    assert small.cfg == variant_cfg(arch, variant, models.default_cfg(arch)) == EXPECTED_CFG[(arch, variant)]
    assert pruned_cfg(model, keep) == small.cfg
    # only the layers the variant prunes appear in keep
    assert set(keep) == {g.name for g in model.channel_groups() if small.cfg[g.cfg_index] < g.width}

    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        out_small, out_masked, out_full = small(x), masked(x), model(x)
    torch.testing.assert_close(out_small, out_masked)
    # not vacuous: pruning changed the function, and BN is not trivial
    assert (out_full - out_masked).abs().max() > 1e-2 * out_full.abs().max()

    # the original model is untouched
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)

    # the small model holds exactly the kept slices (a tensor may be cut on two dims: a VGG
    # conv is the consumer of one group and a producer of the next)
    expected = dict(model.state_dict())
    for g in model.channel_groups():
        for key, dim in g.producers + g.consumers:
            if g.name in keep:
                expected[key] = expected[key].index_select(dim, keep[g.name])
    small_state = small.state_dict()
    assert small_state.keys() == expected.keys()
    for key in expected:
        assert torch.equal(small_state[key], expected[key]), key


@pytest.mark.parametrize("arch", ["resnet20", "vgg16"])
def test_pruned_equals_masked_every_layer_random(arch, randomise_bn):
    """Every group pruned at once, with scattered random indices and 100 classes."""
    torch.manual_seed(3)
    model = randomise_bn(models.build(arch, num_classes=100), seed=4).eval()
    ratios = {g.name: [0.25, 0.5, 0.7][i % 3] for i, g in enumerate(model.channel_groups())}
    keep = select_filters(model, ratios, criterion="random", seed=9)
    assert len(keep) == len(model.channel_groups())
    small = prune(model, arch, keep, 100).eval()
    masked = masked_copy(model, keep).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        a, b = small(x), masked(x)
    assert a.shape == (2, 100)
    torch.testing.assert_close(a, b)


def test_prune_with_empty_keep_is_a_copy(randomise_bn):
    model = random_model("resnet20", randomise_bn)
    small = prune(model, "resnet20", {}, 10).eval()
    assert small.cfg == model.cfg
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(small(x), model(x), rtol=0, atol=0)


def test_masked_copy_silences_exactly_the_dropped_channels(randomise_bn):
    model = random_model("resnet20", randomise_bn)
    g = model.channel_groups()[2]
    keep = {g.name: torch.tensor([0, 3, 4, 9, 15])}
    masked = masked_copy(model, keep)
    w = dict(masked.named_parameters())
    drop = sorted(set(range(16)) - {0, 3, 4, 9, 15})
    assert torch.all(w[g.weight_key][drop] == 0)
    assert torch.equal(w[g.weight_key][[0, 3, 4, 9, 15]], dict(model.named_parameters())[g.weight_key][[0, 3, 4, 9, 15]])
    assert torch.all(w["layer1.2.bn1.weight"][drop] == 0) and torch.all(w["layer1.2.bn1.bias"][drop] == 0)
    assert not torch.all(dict(model.named_parameters())[g.weight_key][drop] == 0)  # original untouched
    # the channel outputs exactly zero after BN + ReLU
    feats = {}
    masked.layer1[2].bn1.register_forward_hook(lambda m, i, o: feats.setdefault("bn1", o))
    with torch.no_grad():
        masked.eval()(torch.randn(2, 3, 32, 32))
    assert torch.all(torch.relu(feats["bn1"][:, drop]) == 0)


# --------------------------------------------------------------------------- criteria
def test_l1_keeps_largest_filters_hand_check(randomise_bn):
    model = random_model("resnet56", randomise_bn)
    keep = select_filters(model, layer_ratios(model.channel_groups(), variant_spec("resnet56", "B")))
    # one layer checked by hand: layer1.0.conv1 (Li layer 2), 16 -> 6 filters
    w = model.layer1[0].conv1.weight.detach()
    scores = l1_scores(w)
    ranked = sorted(range(16), key=lambda j: -scores[j].item())
    assert keep["layer1.0.conv1"].tolist() == sorted(ranked[:6])
    assert min(scores[j] for j in ranked[:6]) > max(scores[j] for j in ranked[6:])
    # and every other pruned layer
    for g in model.channel_groups():
        if g.name in keep:
            wk = dict(model.named_parameters())[g.weight_key].detach()
            top = torch.topk(l1_scores(wk), len(keep[g.name])).indices.sort().values
            assert torch.equal(keep[g.name], top), g.name


def _two_filter_layer_model():
    """resnet20 whose first prunable layer has filters with known L1 / L2 order.

    filter 0: one weight of 3 (L1 3, L2 3); filter 1: 27 weights of 0.2 (L1 5.4, L2 1.04);
    filter 2: one weight of -2.5 (L1 2.5, L2 2.5); filter k in 3..15: 144 weights of 0.01 k / 15
    (L1 0.096 k <= 1.44, L2 0.008 k <= 0.12).
    """
    model = models.build("resnet20")
    w = model.layer1[0].conv1.weight
    assert w.shape == (16, 16, 3, 3)
    with torch.no_grad():
        w.fill_(0.0)
        w[0, 0, 1, 1] = 3.0
        w[1, :3] = 0.2
        w[2, 5, 0, 0] = -2.5
        w[3:] = 0.01 * torch.arange(3, 16, dtype=torch.float32)[:, None, None, None] / 15  # distinct, small
    return model


def test_l1_and_l2_rank_differently():
    model = _two_filter_layer_model()
    name = "layer1.0.conv1"
    ratios = {name: 1 - 2 / 16}  # keep int(16 * 0.125) = 2
    l1 = select_filters(model, ratios, "l1")[name].tolist()
    l2 = select_filters(model, ratios, "l2")[name].tolist()
    assert l1 == [0, 1]  # L1: 5.4 (filter 1) and 3.0 (filter 0)
    assert l2 == [0, 2]  # L2: 3.0 (filter 0) and 2.5 (filter 2)
    small = select_filters(model, {name: 1 - 3 / 16}, "smallest")[name].tolist()
    assert small == [3, 4, 5]  # the three filters of least L1


def test_smallest_is_the_complement_of_l1(randomise_bn):
    model = random_model("resnet56", randomise_bn)
    ratios = {g.name: 0.5 for g in model.channel_groups()}
    l1 = select_filters(model, ratios, "l1")
    sm = select_filters(model, ratios, "smallest")
    for name in l1:
        assert set(l1[name].tolist()).isdisjoint(sm[name].tolist())
        assert len(l1[name]) + len(sm[name]) == dict(model.named_modules())[name].out_channels


def test_random_criterion(randomise_bn):
    model = random_model("resnet56", randomise_bn)
    ratios = layer_ratios(model.channel_groups(), variant_spec("resnet56", "B"))
    l1 = select_filters(model, ratios, "l1")
    r0 = select_filters(model, ratios, "random", seed=0)
    r0b = select_filters(model, ratios, "random", seed=0)
    r1 = select_filters(model, ratios, "random", seed=1)
    assert r0.keys() == l1.keys()
    assert all(torch.equal(r0[k], r0b[k]) for k in r0)  # deterministic per seed
    assert any(not torch.equal(r0[k], r1[k]) for k in r0)  # seed matters
    assert any(not torch.equal(r0[k], l1[k]) for k in r0)  # not the L1 choice
    for k, v in r0.items():
        assert len(v) == len(l1[k]) and torch.equal(v, v.unique())  # sorted, no repeats
    # random does not look at the weights
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(-3)
    r0c = select_filters(model, ratios, "random", seed=0)
    assert all(torch.equal(r0[k], r0c[k]) for k in r0)


def test_criteria_registry():
    assert set(CRITERIA) >= {"l1", "l2", "random", "smallest"}


def test_unknown_criterion():
    model = models.build("resnet20")
    with pytest.raises(UserError, match="unknown criterion 'l3'.*l1"):
        select_filters(model, {}, criterion="l3")


# --------------------------------------------------------------------------- ratio errors
@pytest.mark.parametrize("ratio", [1.0, 1.5, -0.1, -1.0])
def test_ratio_outside_unit_interval(ratio):
    model = models.build("resnet20")
    with pytest.raises(UserError, match=f"ratio {ratio} for layer layer1.1.conv1 is outside \\[0, 1\\)"):
        select_filters(model, {"layer1.1.conv1": ratio})


def test_ratio_that_empties_a_layer():
    model = models.build("resnet20")
    with pytest.raises(UserError, match="ratio 0.99 empties layer layer1.0.conv1 \\(16 filters\\)"):
        select_filters(model, {"layer1.0.conv1": 0.99})
    # the same ratio is fine on a layer wide enough to keep one filter
    keep = select_filters(model, {"layer3.0.conv1": 0.98})
    assert len(keep["layer3.0.conv1"]) == 1


def test_ratio_errors_through_a_variant_spec():
    groups = models.build("resnet20").channel_groups()
    ratios = layer_ratios(groups, {"stage_ratios": [0.0, 1.0, 0.0]})
    with pytest.raises(UserError, match="outside"):
        select_filters(models.build("resnet20"), ratios)


# --------------------------------------------------------------------------- network-slimming models
# group name -> kept count of 1 (a layer reduced to a single channel): one selection group and,
# where the model has them, one sliced group.
SINGLE = {
    "vgg19": ["features.27"],
    "preresnet164": ["layer2.3.select", "layer3.5.conv2"],
    "densenet40": ["dense2.4.select", "trans1.select"],
}


def random_keep(model, single: list[str], seed: int) -> dict[str, torch.Tensor]:
    """Every group cut to a random 30-80 % of its channels (random indices); ``single`` to one."""
    g = torch.Generator().manual_seed(seed)
    keep = {}
    for group in model.channel_groups():
        n = 1 if group.name in single else max(1, int(group.width * (0.3 + 0.5 * torch.rand(1, generator=g).item())))
        keep[group.name] = torch.randperm(group.width, generator=g)[:n].sort().values
    return keep


@pytest.mark.parametrize("arch", sorted(SINGLE))
def test_slimming_models_pruned_equal_masked(arch, randomise_bn, tmp_path):
    torch.manual_seed(0)
    model = randomise_bn(models.build(arch, num_classes=100), seed=1).eval()
    groups = model.channel_groups()
    assert set(SINGLE[arch]) <= {g.name for g in groups}
    keep = random_keep(model, SINGLE[arch], seed=2)
    options = models.default_options(arch)
    small = prune(model, arch, keep, 100, **options).eval()
    masked = masked_copy(model, keep).eval()

    cfg = pruned_cfg(model, keep)
    assert small.cfg == cfg
    for g in groups:
        entry = cfg[g.cfg_index]
        if g.selection:  # sorted python ints: the cfg is saved as plain data
            assert entry == keep[g.name].tolist() and all(type(i) is int for i in entry)
        else:
            assert entry == len(keep[g.name]) and type(entry) is int

    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        out_small, out_masked, out_full = small(x), masked(x), model(x)
    assert out_small.shape == (2, 100)
    torch.testing.assert_close(out_small, out_masked, rtol=1e-5, atol=1e-5)
    assert (out_full - out_masked).abs().max() > 1e-2 * out_full.abs().max()  # not vacuous

    # the small model holds exactly the kept slices (BNs behind a selection stay full size)
    expected = dict(model.state_dict())
    for g in groups:
        for key, dim in g.producers + g.consumers:
            expected[key] = expected[key].index_select(dim, keep[g.name])
    small_state = small.state_dict()
    assert small_state.keys() == expected.keys()
    assert all(torch.equal(small_state[k], expected[k]) for k in expected)

    # a pruned model file rebuilds with plain torch and the registry
    path = tmp_path / "pruned.pt"
    torch.save({"arch": arch, "cfg": small.cfg, "num_classes": 100, "options": options, "state_dict": small_state}, path)
    blob = torch.load(path, weights_only=True)
    rebuilt = models.build(blob["arch"], blob["cfg"], blob["num_classes"], **blob["options"])
    rebuilt.load_state_dict(blob["state_dict"])
    with torch.no_grad():
        torch.testing.assert_close(rebuilt.eval()(x), out_small, rtol=0, atol=0)


@pytest.mark.parametrize("arch, group", [("preresnet164", "layer1.4.select"), ("densenet40", "select")])
def test_pruning_a_pruned_selection_again_is_refused(arch, group):
    model = models.build(arch)
    small = prune(model, arch, {group: torch.tensor([0, 2, 5])}, 10)
    assert small.cfg[next(g.cfg_index for g in small.channel_groups() if g.name == group)] == [0, 2, 5]
    with pytest.raises(ValueError, match=f"{group} is already a channel selection"):
        prune(small, arch, {group: torch.tensor([0, 1])}, 10)
    with pytest.raises(ValueError, match="already a channel selection"):
        pruned_cfg(small, {group: torch.tensor([0, 1])})


def test_masked_selection_silences_the_bn():
    torch.manual_seed(0)
    model = models.build("densenet40").eval()
    keep = {"dense1.3.select": torch.tensor([1, 4, 30])}
    masked = masked_copy(model, keep)
    bn = masked.dense1[3].bn1
    drop = sorted(set(range(bn.num_features)) - {1, 4, 30})
    assert torch.all(bn.weight[drop] == 0) and torch.all(bn.bias[drop] == 0)
    assert torch.equal(bn.weight[[1, 4, 30]], model.dense1[3].bn1.weight[[1, 4, 30]])
    assert torch.equal(masked.dense1[3].conv1.weight, model.dense1[3].conv1.weight)  # consumers untouched
