"""Network slimming's architectures: channel selection, PreResNet-164 and DenseNet-40 (their
cfgs, structure, init) and the channel groups every BatchNorm belongs to."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from prunebench import models
from prunebench.models import ChannelGroup, ChannelSelection, densenet, preresnet
from prunebench.models.groups import bn_keys


# --------------------------------------------------------------------------- channel selection
def test_channel_selection():
    x = torch.randn(2, 6, 3, 3)
    assert ChannelSelection(6)(x) is x
    sel = ChannelSelection(6, [1, 4])
    assert torch.equal(sel(x), x[:, [1, 4]]) and sel.out_channels == 2
    assert list(sel.state_dict()) == [] and list(sel.parameters()) == []
    for bad in ([], [4, 1], [1, 1], [6], [-1, 2]):
        with pytest.raises(ValueError, match="channel selection"):
            ChannelSelection(6, bad)
    assert ChannelSelection.from_cfg(6, 6).keep is None and ChannelSelection.from_cfg([0, 5], 6).keep == [0, 5]
    with pytest.raises(ValueError, match="stream width 6"):
        ChannelSelection.from_cfg(5, 6)


# --------------------------------------------------------------------------- PreResNet and DenseNet
def _reference_preresnet_cfg(n):
    """The default cfg as network-slimming's preresnet.py writes it."""
    parts = [[16, 16, 16], [64, 16, 16] * (n - 1), [64, 32, 32], [128, 32, 32] * (n - 1), [128, 64, 64], [256, 64, 64] * (n - 1), [256]]
    return [v for p in parts for v in p]


def test_preresnet_cfg_and_structure():
    assert models.default_cfg("preresnet164") == _reference_preresnet_cfg(18)
    assert preresnet.default_cfg(47) == _reference_preresnet_cfg(5)
    torch.manual_seed(0)
    m = models.build("preresnet164")
    b = m.layer2[0]
    assert (b.bn1.num_features, b.conv1.in_channels, b.conv1.out_channels, b.conv1.kernel_size) == (64, 64, 32, (1, 1))
    assert (b.conv2.in_channels, b.conv2.out_channels, b.conv2.kernel_size, b.conv2.stride) == (32, 32, (3, 3), (2, 2))
    assert (b.conv3.in_channels, b.conv3.out_channels) == (32, 128)
    assert len(b.downsample) == 1 and b.downsample[0].stride == (2, 2) and b.downsample[0].bias is None
    assert m.layer1[0].downsample[0].stride == (1, 1) and m.layer1[0].downsample[0].in_channels == 16
    assert m.layer1[1].downsample is None and m.layer3[17].downsample is None
    assert m.bn.num_features == 256 and m.fc.in_features == 256
    assert not any(isinstance(x, nn.BatchNorm2d) for x in m.layer1[0].downsample.modules())
    with pytest.raises(ValueError, match="9n\\+2"):
        preresnet.PreResNet(165)
    with pytest.raises(ValueError, match="163 entries"):
        models.build("preresnet164", models.default_cfg("preresnet164")[:-1])


@pytest.mark.parametrize("arch", ["preresnet164", "densenet40"])
def test_slimming_init_matches_reference(arch):
    torch.manual_seed(0)
    m = models.build(arch)
    bns = [x for x in m.modules() if isinstance(x, nn.BatchNorm2d)]
    assert all(torch.all(b.weight == 0.5) and torch.all(b.bias == 0) for b in bns)
    convs = [x for x in m.modules() if isinstance(x, nn.Conv2d) and x.weight.numel() > 20000]
    for c in convs:
        assert c.weight.std().item() == pytest.approx((2.0 / (c.kernel_size[0] ** 2 * c.out_channels)) ** 0.5, rel=0.1)
    bound = m.fc.in_features**-0.5  # PyTorch's default linear init
    assert m.fc.weight.abs().max() <= bound and m.fc.bias.abs().max() <= bound and m.fc.bias.abs().sum() > 0
    assert not any("select" in k for k in m.state_dict())


def test_preresnet_cfg_selection():
    cfg = models.default_cfg("preresnet164")
    cfg[3], cfg[4], cfg[-1] = [0, 5, 63], 7, list(range(0, 256, 2))
    m = models.build("preresnet164", cfg).eval()
    assert (m.layer1[1].bn1.num_features, m.layer1[1].conv1.in_channels, m.layer1[1].conv1.out_channels) == (64, 3, 7)
    assert m.layer1[1].bn2.num_features == 7 and m.layer1[1].conv2.in_channels == 7
    assert m.bn.num_features == 256 and m.fc.in_features == 128
    with torch.no_grad():
        assert m(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    cfg[3] = 32
    with pytest.raises(ValueError, match="stream width 64"):
        models.build("preresnet164", cfg)


def test_densenet_cfg_and_structure():
    ref, start = [], 24  # network-slimming densenet.py's default cfg
    for _ in range(3):
        ref += [start + 12 * i for i in range(13)]
        start += 12 * 12
    assert models.default_cfg("densenet40") == ref and len(ref) == 39
    m = models.build("densenet40")
    assert m.conv1.out_channels == 24 and m.conv1.bias is None
    assert (m.dense1[0].conv1.in_channels, m.dense1[0].conv1.out_channels, m.dense1[0].conv1.kernel_size) == (24, 12, (3, 3))
    assert (m.trans1.bn1.num_features, m.trans1.conv1.out_channels, m.trans1.conv1.kernel_size) == (168, 168, (1, 1))
    assert m.trans2.conv1.in_channels == 312 and m.bn.num_features == 456 and m.fc.in_features == 456
    cfg = list(ref)
    cfg[5], cfg[12] = [0, 70], [3]
    m = models.build("densenet40", cfg)
    assert (m.dense1[5].bn1.num_features, m.dense1[5].conv1.in_channels) == (84, 2)
    assert (m.trans1.bn1.num_features, m.trans1.conv1.in_channels, m.trans1.conv1.out_channels) == (168, 1, 168)
    with pytest.raises(ValueError, match="stream width 84"):
        models.build("densenet40", ref[:5] + [80] + ref[6:])
    with pytest.raises(ValueError, match="3L\\+4"):
        densenet.DenseNet(41)



@pytest.mark.parametrize("arch", ["vgg16", "vgg19", "preresnet164", "densenet40"])
def test_every_batchnorm_scores_exactly_one_group(arch):
    """So a global threshold over all BN gammas (network slimming) maps onto groups."""
    m = models.build(arch)
    groups = m.channel_groups()
    mods, state = dict(m.named_modules()), m.state_dict()
    assert sorted(g.bn for g in groups) == sorted(n for n, x in m.named_modules() if isinstance(x, nn.BatchNorm2d))
    assert [g.layer_id for g in groups] == list(range(1, len(groups) + 1))
    assert [g.cfg_index for g in groups] == [i for i, v in enumerate(m.cfg) if v != "M"]
    assert [g.stage for g in groups] == sorted(g.stage for g in groups)
    for g in groups:
        assert mods[g.bn].num_features == g.width
        for key, dim in g.producers + g.consumers:
            assert state[key].shape[dim] == g.width
        if g.selection:
            assert isinstance(mods[g.name], ChannelSelection) and g.producers == ()
            assert g.silencing_keys == (f"{g.bn}.weight", f"{g.bn}.bias")
        else:
            assert isinstance(mods[g.name], nn.Conv2d)
            assert g.silencing_keys == (f"{g.name}.weight", f"{g.bn}.weight", f"{g.bn}.bias")


def test_preresnet164_channel_groups():
    groups = models.build("preresnet164").channel_groups()
    assert len(groups) == 163
    assert groups[0] == ChannelGroup(
        name="layer1.0.select", cfg_index=0, layer_id=1, stage=0, width=16, bn="layer1.0.bn1",
        consumers=(("layer1.0.conv1.weight", 1),), selection=True,
    )  # fmt: skip
    assert groups[1] == ChannelGroup(
        name="layer1.0.conv1", cfg_index=1, layer_id=2, stage=0, width=16, bn="layer1.0.bn2",
        producers=(("layer1.0.conv1.weight", 0),) + bn_keys("layer1.0.bn2"), consumers=(("layer1.0.conv2.weight", 1),),
    )  # fmt: skip
    assert groups[2].producers[0] == ("layer1.0.conv2.weight", 0) and groups[2].bn == "layer1.0.bn3"
    assert groups[2].consumers == (("layer1.0.conv3.weight", 1),)
    assert (groups[54].name, groups[54].width, groups[54].stage) == ("layer2.0.select", 64, 1)
    assert (groups[57].name, groups[57].width, groups[58].width) == ("layer2.1.select", 128, 32)
    assert groups[-1] == ChannelGroup(
        name="select", cfg_index=162, layer_id=163, stage=2, width=256, bn="bn", consumers=(("fc.weight", 1),), selection=True
    )


def test_densenet40_channel_groups():
    groups = models.build("densenet40").channel_groups()
    assert len(groups) == 39 and all(g.selection for g in groups)
    assert [g.stage for g in groups] == [0] * 13 + [1] * 13 + [2] * 13
    assert [g.width for g in groups] == models.default_cfg("densenet40")
    assert (groups[0].name, groups[0].bn, groups[0].consumers) == ("dense1.0.select", "dense1.0.bn1", (("dense1.0.conv1.weight", 1),))
    assert (groups[12].name, groups[12].bn, groups[12].width) == ("trans1.select", "trans1.bn1", 168)
    assert (groups[-1].name, groups[-1].bn, groups[-1].width, groups[-1].consumers) == ("select", "bn", 456, (("fc.weight", 1),))


def test_channel_selection_keeps_channels_last():
    """A selection must not turn a channels_last activation into NCHW: every later conv would
    convert it back (training the pruned PreResNet/DenseNet was 2x slower than the full one)."""
    sel = ChannelSelection(8, [1, 4, 6])
    x = torch.randn(2, 8, 5, 5)
    y = sel(x.to(memory_format=torch.channels_last))
    assert y.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(y, x[:, [1, 4, 6]])
    assert torch.equal(sel(x), x[:, [1, 4, 6]]) and sel(x).is_contiguous()
