"""The weight-level folder's models (PROTOCOLS sections 1 and 2): PreResNet-110, DenseNet-BC-100
in both block readings, ``source="weightlevel"`` on VGG-19 and DenseNet-40, and the SFP
ResNets' ``fc_init="kaiming"``; every option's default is the model as it was."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from prunebench import models
from prunebench.core.errors import UserError
from prunebench.models import ChannelSelection, densenet_bc
from prunebench.models.counting import count_macs, count_params
from prunebench.pruning import masked_copy, prune
from prunebench.training.checkpoints import load_model, save_model

# (arch, options) -> (params C10, params C100, MACs C10 or None). PreResNet-110 from the
# PROTOCOLS table, DenseNet-BC-100 from its section 2 notes, weight-level VGG-19 = the slimming
# count plus one bias per conv channel (5,504), DenseNet-40 = the table's minus its 9,360 indexes.
COUNTS = {
    ("preresnet110", ()): (1.147e6, 1.170e6, 167.4e6),
    ("densenetbc100", ()): (0.769e6, 0.800e6, None),
    ("densenetbc100", (("block", "basic"),)): (4.07e6, 4.13e6, None),
    ("vgg19", (("source", "weightlevel"),)): (20.04e6, 20.08e6, 398.1e6),
    ("densenet40", (("source", "weightlevel"),)): (1.059e6, 1.100e6, 282.9e6),
}
NEW = [(arch, dict(opts)) for arch, opts in COUNTS] + [("resnet20", {"fc_init": "kaiming"})]


def _ids(cases):
    return [arch + "".join(f"-{v}" for v in opts.values()) for arch, opts in cases]


def _bns(m):
    return [x for x in m.modules() if isinstance(x, nn.BatchNorm2d)]


@pytest.mark.parametrize("key", sorted(COUNTS), ids=_ids([(a, dict(o)) for a, o in sorted(COUNTS)]))
def test_params_and_macs(key):
    arch, opts = key
    params10, params100, macs = COUNTS[key]
    m = models.build(arch, **dict(opts))
    assert count_params(m) == pytest.approx(params10, rel=5e-3 if arch == "densenetbc100" else 1e-3)
    assert count_params(models.build(arch, num_classes=100, **dict(opts))) == pytest.approx(params100, rel=5e-3)
    if macs is not None:
        assert count_macs(m) == pytest.approx(macs, rel=1e-3)


def test_exact_counts():
    assert count_params(models.build("preresnet110")) == 1_146_842
    assert count_params(models.build("preresnet164")) == 1_711_338 - 8080  # unchanged (+ its 8,080 indexes)


@pytest.mark.parametrize("arch, options", NEW, ids=_ids(NEW))
@pytest.mark.parametrize("num_classes", [10, 100])
def test_forward_shape(arch, options, num_classes):
    m = models.build(arch, num_classes=num_classes, **options).eval()
    with torch.no_grad():
        assert m(torch.randn(2, 3, 32, 32)).shape == (2, num_classes)


@pytest.mark.parametrize("arch, options", NEW, ids=_ids(NEW))
def test_checkpoint_round_trip(tmp_path, arch, options):
    torch.manual_seed(0)
    m = models.build(arch, **options).eval()
    save_model(tmp_path / "m.pt", m, arch, 10, options=options)
    loaded, meta = load_model(tmp_path / "m.pt", expect_arch=arch)
    assert meta["options"] == models.check_options(arch, options)
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in m.state_dict().items())
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded.eval()(x), m(x))


# --------------------------------------------------------------------------- options and defaults
def test_options():
    assert models.default_options("vgg19")["source"] == "slimming"
    assert models.default_options("densenet40") == {"source": "slimming"}
    assert models.default_options("vgg16")["source"] == "slimming"
    # The weight-level folder's vgg16_bn (the lottery reference's): conv biases, Linear(512, classes).
    assert count_params(models.build("vgg16", head="linear", source="weightlevel")) == 14_710_464 + 4_224 + 2 * 4_224 + 5_130
    assert models.default_options("resnet110")["fc_init"] == "default"
    assert models.default_options("densenetbc100") == {"block": "bottleneck"}
    assert models.default_options("preresnet110") == {} == models.default_options("preresnet164")
    for arch, key, bad in (("vgg19", "source", "l1"), ("resnet32", "fc_init", "xavier"), ("densenetbc100", "block", "bc")):
        with pytest.raises(UserError, match=f"bad value '{bad}'"):
            models.build(arch, **{key: bad})


@pytest.mark.parametrize(
    "arch, options",
    [("vgg19", {"source": "slimming"}), ("densenet40", {"source": "slimming"}), ("resnet56", {"fc_init": "default"})],
)
def test_explicit_default_is_todays_model(arch, options):
    torch.manual_seed(1)
    plain = models.build(arch).state_dict()
    torch.manual_seed(1)
    explicit = models.build(arch, **options).state_dict()
    assert list(plain) == list(explicit) and all(torch.equal(v, explicit[k]) for k, v in plain.items())


# --------------------------------------------------------------------------- init
def test_vgg19_weightlevel_init():
    torch.manual_seed(0)
    m = models.build("vgg19", source="weightlevel")
    convs = [x for x in m.features if isinstance(x, nn.Conv2d)]
    assert len(convs) == 16 and all(c.bias is not None and torch.all(c.bias == 0) for c in convs)
    assert all(torch.all(b.weight == 1) and torch.all(b.bias == 0) for b in _bns(m))
    wide = convs[4]  # 128 -> 256: fan-in and fan-out stds differ by sqrt(2)
    assert (wide.in_channels, wide.out_channels) == (128, 256)
    assert wide.weight.std().item() == pytest.approx((2.0 / (9 * 128)) ** 0.5, rel=0.03)
    assert (len(m.classifier), m.classifier[0].in_features) == (1, 512)
    assert m.classifier[0].weight.std().item() == pytest.approx(0.01, rel=0.05) and torch.all(m.classifier[0].bias == 0)
    assert all(c.bias is None for c in models.build("vgg19").features if isinstance(c, nn.Conv2d))


def test_vgg19_weightlevel_surgery_cuts_conv_bias():
    torch.manual_seed(0)
    m = models.build("vgg19", source="weightlevel").eval()
    with torch.no_grad():
        for p in m.parameters():  # make the biases and BN shifts matter
            p.add_(0.05 * torch.randn_like(p))
    second, last = m.channel_groups()[1], m.channel_groups()[-1]  # features.3, the last conv (into the FC)
    assert second.producers[:2] == (("features.3.weight", 0), ("features.3.bias", 0))
    keep = {second.name: torch.arange(0, 64, 2), last.name: torch.arange(100)}
    small = prune(m, "vgg19", keep, 10, source="weightlevel").eval()
    assert small.features[3].bias.shape == (32,) and small.features[4].num_features == 32
    assert small.classifier[0].in_features == 100
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(small(x), masked_copy(m, keep)(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("arch, options", [("preresnet110", {}), ("densenetbc100", {}), ("densenetbc100", {"block": "basic"}), ("densenet40", {"source": "weightlevel"})])
def test_bearpaw_init(arch, options):
    torch.manual_seed(0)
    m = models.build(arch, **options)
    assert all(torch.all(b.weight == 1) and torch.all(b.bias == 0) for b in _bns(m))
    for c in (x for x in m.modules() if isinstance(x, nn.Conv2d) and x.weight.numel() > 20000):
        assert c.weight.std().item() == pytest.approx((2.0 / (c.kernel_size[0] ** 2 * c.out_channels)) ** 0.5, rel=0.1)
    bound = m.fc.in_features**-0.5  # PyTorch's default linear init
    assert m.fc.weight.abs().max() <= bound and m.fc.bias.abs().sum() > 0


def test_resnet_fc_init_kaiming():
    torch.manual_seed(0)
    fc = models.build("resnet110", num_classes=100, fc_init="kaiming").fc
    assert fc.weight.std().item() == pytest.approx((2.0 / 64) ** 0.5, rel=0.05) and torch.all(fc.bias == 0)
    fc = models.build("resnet110", num_classes=100).fc  # default: PyTorch's uniform(+-1/sqrt(64))
    assert fc.weight.abs().max() <= 64**-0.5 and fc.bias.abs().sum() > 0


# --------------------------------------------------------------------------- structure
def test_preresnet110_structure_and_groups():
    m = models.build("preresnet110")
    assert len(m.layer1) == len(m.layer3) == 12 and m.fc.in_features == 256
    assert not any(isinstance(x, ChannelSelection) or "select" in n for n, x in m.named_modules())
    assert m.cfg == models.default_cfg("preresnet110") and len(m.cfg) == 9 * 12 + 1
    groups = m.channel_groups()
    assert len(groups) == 72 and not any(g.selection for g in groups)
    assert [g.layer_id for g in groups] == list(range(1, 73))
    assert [g.cfg_index for g in groups] == [i for i in range(len(m.cfg)) if i % 3]
    cfg = list(m.cfg)
    cfg[0] = [0, 3]
    with pytest.raises(ValueError, match="stream widths"):
        models.build("preresnet110", cfg)


def test_preresnet110_pruned_conv_groups():
    torch.manual_seed(0)
    m = models.build("preresnet110").eval()
    keep = {"layer2.3.conv1": torch.arange(10), "layer3.11.conv2": torch.tensor([0, 5, 63])}
    small = prune(m, "preresnet110", keep, 10).eval()
    assert small.layer2[3].conv1.out_channels == 10 and small.layer3[11].conv3.in_channels == 3
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(small(x), masked_copy(m, keep)(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("block, layers, final", [("bottleneck", 16, 342), ("basic", 32, 678)])
def test_densenetbc100_structure(block, layers, final):
    m = models.build("densenetbc100", block=block)
    assert m.cfg == models.default_cfg("densenetbc100") == [32, 32, 32]
    assert len(m.dense1) == len(m.dense3) == layers
    assert m.conv1.out_channels == 24 and m.conv1.bias is None
    assert m.bn.num_features == m.fc.in_features == final
    assert m.trans1.conv1.out_channels == m.trans1.conv1.in_channels // 2
    convs = [x for x in m.modules() if isinstance(x, nn.Conv2d)]
    assert len(convs) + 1 == 100  # depth: stem + 96 dense convs + 2 transitions + fc
    assert not any(isinstance(x, ChannelSelection) or "select" in n for n, x in m.named_modules())
    assert m.channel_groups() == []
    if block == "bottleneck":
        b = m.dense2[0]
        assert (b.conv1.kernel_size, b.conv1.out_channels, b.conv2.kernel_size, b.conv2.out_channels) == ((1, 1), 48, (3, 3), 12)
    with pytest.raises(ValueError, match="multiples of 2"):
        densenet_bc.DenseNetBC([31, 32, 32], block="bottleneck")
