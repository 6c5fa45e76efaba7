"""ImageNet model families (PROTOCOLS-IMAGENET section 2): counts against section 2.8 and Li et al.
Table 1, torchvision equivalence, forward shapes, and the surgery on ResNet-34 (Li's A/B/C) and
network slimming's VGG-11.

Counts and structure checks run on the meta device (shapes only), so the 138M-parameter VGGs
cost nothing; only the forward and surgery tests hold real weights.
"""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from prunebench import methods, models
from prunebench.core.errors import UserError
from prunebench.methods import slimming
from prunebench.models.counting import count_macs, count_params, scratch_b_epochs
from prunebench.models.published import PUBLISHED, mask_indices, published
from prunebench.pruning import masked_copy, prune, pruned_cfg, select_filters, variant_cfg

REF = {"downsample_bias": True}  # the thinet and regression folders' ResNet-50
LI = {v: ("resnet34", variant_cfg("resnet34", v), {}) for v in "ABC"}


def model_of(name: str) -> tuple[str, list | None, dict]:
    if name in PUBLISHED:
        p = published(name)
        return p.arch, p.cfg, p.options
    return LI.get(name[-1], (name, None, {})) if name.startswith("resnet34-") else (name, None, {})


def meta(arch: str, cfg: list | None = None, **options) -> nn.Module:
    with torch.device("meta"):
        return models.build(arch, cfg, **options)


def reference_flops(model: nn.Module) -> int:
    """The Rethinking repo's counter (PROTOCOLS-IMAGENET 1.4) on one 224x224 image, dense. Our
    adaptive pools are not counted (the reference ResNets' AvgPool2d(7) adds 2.5e-5 G at most)."""
    total = 0

    def hook(m, inputs, out):
        nonlocal total
        if isinstance(m, nn.Conv2d):
            bias = m.out_channels if m.bias is not None else 0
            total += (2 * m.weight.numel() + bias) * out.shape[2] * out.shape[3]
        elif isinstance(m, nn.Linear):
            total += 2 * m.in_features * m.out_features + m.out_features
        elif isinstance(m, nn.BatchNorm2d):
            total += 2 * inputs[0].numel()
        elif isinstance(m, nn.ReLU):
            total += inputs[0].numel()
        elif isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
            total += m.kernel_size**2 * out.numel()

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    with torch.no_grad():
        model.eval()(torch.zeros(1, 3, 224, 224, device="meta"))
    for h in handles:
        h.remove()
    return total


# PROTOCOLS-IMAGENET 2.8 (and 2.5 for SSS): params (M), MACs (G), reference-counter FLOPs (G,
# None where not given). Tolerance: half a unit of the last digit printed, i.e. 0.0005 M / G
# (0.005 M for the SSS params, printed with two decimals).
COUNTS = [
    ("vgg16_nobn", {}, 138.358, 15.470, 30.974),
    ("vgg16-thinet-conv", {}, 131.453, 4.791, 9.599),
    ("vgg16-thinet-gap", {}, 8.323, 4.668, 9.353),
    ("vgg16-thinet-tiny", {}, 1.325, 1.005, 2.017),
    ("vgg16-5x", {}, 130.879, 3.515, 7.043),
    ("resnet50", REF, 25.561, 4.089, 8.214),
    ("resnet50-thinet30", {}, 8.669, 1.166, 2.361),
    ("resnet50-thinet50", {}, 12.386, 1.822, 3.674),
    ("resnet50-thinet70", {}, 16.949, 2.601, 5.235),
    # the reference's 19.711 M counts its channel_selection ``indexes`` (13,120), a parameter
    # there; ours are a non-persistent buffer
    ("resnet50-2x", {}, 19.711 - 0.013120, 2.730, 5.494),
    ("resnet34", {}, 21.798, 3.664, 7.340),
    ("resnet34-A", {}, 20.152, 3.100, 6.212),
    ("resnet34-B", {}, 19.469, 2.782, 5.576),
    ("resnet34-C", {}, 20.206, 3.391, None),
    ("vgg11_slimming", {}, 132.885, 7.609, 15.254),
    ("vgg16_bn", {}, 138.366, 15.470, 31.001),
    ("resnet50", {}, 25.557, 4.089, 8.212),
    ("preresnet50", {}, 25.55, 4.089, None),
    ("resnet41-sss", {}, 25.35, 3.473, None),
    ("resnet32-sss", {}, 14.26, 2.818, None),
    ("resnet26-sss", {}, 14.92, 2.278, None),
]


@pytest.mark.parametrize("name, options, params_m, macs_g, flops_g", COUNTS, ids=[c[0] + ("-ref" * bool(c[1])) for c in COUNTS])
def test_counts_match_protocol(name, options, params_m, macs_g, flops_g):
    arch, cfg, opts = model_of(name)
    m = meta(arch, cfg, **{**opts, **options})
    params_tol = 0.005 if name.endswith("sss") or name == "preresnet50" else 0.0005
    assert count_params(m) / 1e6 == pytest.approx(params_m, abs=params_tol)
    assert count_macs(m, image_size=224) / 1e9 == pytest.approx(macs_g, abs=0.0005)
    if flops_g is not None:
        assert reference_flops(m) / 1e9 == pytest.approx(flops_g, abs=0.0005)


def test_li_table1_reductions():
    """ResNet-34-A/B/C against the protocol's [CALC] reductions (two decimals: +-0.005 points) and
    Li's Table 1 (one decimal, on base counts 0.6-0.9 % below torchvision's: +-0.2 points)."""
    full = meta("resnet34")
    p0, f0 = count_params(full), count_macs(full, 224)
    calc = {"A": (7.55, 15.38), "B": (10.68, 24.06), "C": (7.30, 7.44)}
    li = {"A": (7.6, 15.5), "B": (10.8, 24.2), "C": (7.2, 7.5)}
    for v, (_, cfg, _) in LI.items():
        m = meta("resnet34", cfg)
        red = (100 * (1 - count_params(m) / p0), 100 * (1 - count_macs(m, 224) / f0))
        assert red == pytest.approx(calc[v], abs=0.005), v
        assert red == pytest.approx(li[v], abs=0.2), v


def test_li_cfgs():
    # PROTOCOLS-IMAGENET 2.1: 16 first-conv widths, then the four stream widths
    assert LI["A"][1] == [64, 44, 44, 128, 89, 89, 128, 256, 179, 179, 179, 179, 256, 512, 512, 512, 64, 128, 256, 512]
    assert LI["B"][1] == [64, 32, 32, 128, 51, 51, 128, 256, 153, 153, 153, 153, 256, 512, 512, 512, 64, 128, 256, 512]
    assert LI["C"][1] == models.default_cfg("resnet34")[:18] + [204, 512]


def test_scratch_b_epochs():
    """The code rule on the reference counter, int(90 r) or 180 when r >= 2 (2.1, 2.8: ThiNet-70
    141 as in its README; ResNet-2x 134 by the rule, the README says 132); SSS: int(100 r) on
    MACs (2.5)."""

    def epochs(name: str, full: nn.Module) -> int:
        arch, cfg, options = model_of(name)
        r = reference_flops(full) / reference_flops(meta(arch, cfg, **options))
        return 180 if r >= 2 else int(90 * r)

    r34, r50, vgg = meta("resnet34"), meta("resnet50", **REF), meta("vgg16_nobn")
    assert [epochs(f"resnet34-{v}", r34) for v in "ABC"] == [106, 118, 97]
    assert [epochs(f"resnet50-thinet{k}", r50) for k in (30, 50, 70)] == [180, 180, 141]
    assert epochs("resnet50-2x", r50) == 134
    assert {epochs(n, vgg) for n in ("vgg16-thinet-conv", "vgg16-thinet-gap", "vgg16-thinet-tiny", "vgg16-5x")} == {180}
    macs50 = count_macs(meta("preresnet50"), 224)
    sss = [count_macs(meta("preresnet50", model_of(f"resnet{d}-sss")[1]), 224) for d in (41, 32, 26)]
    assert [scratch_b_epochs(100, macs50, m) for m in sss] == [117, 145, 179]


def test_caffe_stride_placement():
    """stride_on="1x1": ThiNet's 7.72 B FLOPs (2 per multiply-add) for ResNet-50 and 4.88 B for
    ThiNet-70 (2.3), to the 0.0005 G the protocol's [CALC] gives."""
    assert 2 * count_macs(meta("resnet50", stride_on="1x1", **REF), 224) / 1e9 == pytest.approx(7.716, abs=0.0005)
    thinet70 = published("resnet50-thinet70")
    assert 2 * count_macs(meta("resnet50", thinet70.cfg, stride_on="1x1", **REF), 224) / 1e9 == pytest.approx(4.880, abs=0.0005)


def test_published_widths():
    # ThiNet-k keeps int(planes * k / 100) of both inner convs (2.3)
    for k in (30, 50, 70):
        cfg = published(f"resnet50-thinet{k}").cfg
        assert cfg[1::3] == cfg[2::3] == [int(p * k / 100) for p, n in zip((64, 128, 256, 512), (3, 4, 6, 3)) for _ in range(n)]
    # ResNet-50-2x (2.4): cfg_2x, its selections' index sums (Appendix)
    cfg_2x = [35, 64, 55, 101, 51, 39, 97, 50, 37,
              144, 128, 106, 205, 105, 72, 198, 105, 72, 288, 128, 110,
              278, 256, 225, 418, 209, 147, 407, 204, 158, 423, 212, 155, 412, 211, 148, 595, 256, 213,
              606, 512, 433, 1222, 512, 437, 1147, 512, 440]  # fmt: skip
    sums = [1114, 12320, 12379, 18337, 55577, 51697, 73986, 70273,
            216203, 212730, 215619, 219003, 300362, 314910, 1253877, 1196132]  # fmt: skip
    cfg = published("resnet50-2x").cfg
    assert [len(v) if isinstance(v, list) else v for v in cfg] == cfg_2x
    assert [sum(sel) for sel in cfg[0::3]] == sums
    assert mask_indices("887f")[:8] == [0, 4, 9, 10, 11, 12, 13, 14]
    # SSS: depth = 2 + 3 x residual branches; removed identity units are gone
    for d in (41, 32, 26):
        cfg = published(f"resnet{d}-sss").cfg
        assert 2 + 3 * sum(1 for w in cfg if w) == d
    m = meta("preresnet50", published("resnet26-sss").cfg)
    assert [len(getattr(m, f"layer{s}")) for s in (1, 2, 3, 4)] == [1, 3, 6, 1]


@pytest.mark.parametrize(
    "arch, builder, options",
    [("resnet34", torchvision.models.resnet34, {}), ("resnet50", torchvision.models.resnet50, {}),
     ("vgg16_bn", torchvision.models.vgg16_bn, {}), ("vgg16_nobn", torchvision.models.vgg16, {})],
)
def test_equals_torchvision(arch, builder, options):
    """Same state_dict keys and shapes as torchvision's model, so its pretrained weights load."""
    ours = meta(arch, **options)
    with torch.device("meta"):
        theirs = builder(weights=None)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in theirs.state_dict().items()}
    assert count_params(ours) == count_params(theirs)


def test_resnet50_same_function_as_torchvision():
    torch.manual_seed(0)
    theirs = torchvision.models.resnet50(weights=None).eval()
    ours = models.build("resnet50", num_classes=1000).eval()
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x))


NAMES = sorted(models.IMAGENET_ARCHS) + sorted(PUBLISHED) + ["resnet34-A", "resnet34-B", "resnet34-C"]


@pytest.mark.parametrize("name", NAMES)
def test_forward_shape(name):
    arch, cfg, options = model_of(name)
    torch.manual_seed(0)
    m = models.build(arch, cfg, 7, **options).eval()
    with torch.no_grad():
        out = m(torch.randn(1, 3, 64, 64))
    assert out.shape == (1, 7) and torch.isfinite(out).all()


def test_defaults_and_bad_input():
    assert models.default_cfg("resnet34") == [64] * 3 + [128] * 4 + [256] * 6 + [512] * 3 + [64, 128, 256, 512]
    assert models.default_cfg("vgg11_slimming") == [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M", 4096, 4096]
    assert models.default_options("resnet50") == {"stride_on": "3x3", "downsample_bias": False}
    assert models.default_options("vgg16_nobn") == {"head": "fc"}
    with torch.device("meta"):
        assert [models.build(a).fc.out_features for a in ("resnet34", "resnet50", "preresnet50")] == [1000] * 3
        assert [models.build(a).classifier[-1].out_features for a in ("vgg16_bn", "vgg16_nobn", "vgg11_slimming")] == [1000] * 3
        assert models.build("resnet20").fc.out_features == 10  # CIFAR's default unchanged
    assert not set(models.IMAGENET_ARCHS) & set(models.ARCHS)  # the CIFAR studies' choices are unchanged
    with pytest.raises(UserError, match="bad value '2x2' for option 'stride_on'"):
        models.build("resnet50", stride_on="2x2")
    with pytest.raises(ValueError, match="16 block widths and 4 stream widths"):
        meta("resnet34", [64] * 16)
    with pytest.raises(UserError, match="unknown published architecture 'thinet'.*resnet50-2x"):
        published("thinet")


# --------------------------------------------------------------------------- surgery
def assert_pruned_equals_masked(model, arch, keep):
    small, masked = prune(model, arch, keep, 5).eval(), masked_copy(model, keep).eval()
    assert small.cfg == pruned_cfg(model, keep)
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        a, b, full = small(x), masked(x), model(x)
    assert a.shape == (1, 5)
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    assert (full - b).abs().max() > 1e-3 * full.abs().max()  # the pruning changed the function
    return small


def test_resnet34_random_channels_and_streams(randomise_bn):
    """Every block's first conv and every residual stream cut at random indices at once."""
    torch.manual_seed(0)
    model = randomise_bn(models.build("resnet34", num_classes=5), seed=1).eval()
    groups = models.cuttable_groups(model)
    assert len(groups) == 20 and [g.layer_id for g in model.channel_groups()] == list(range(2, 33, 2))
    keep = select_filters(model, {g.name: (0.25, 0.5, 0.7)[i % 3] for i, g in enumerate(groups)}, "random", seed=3)
    assert len(keep) == 20
    small = assert_pruned_equals_masked(model, "resnet34", keep)
    assert small.cfg[16:] == [len(keep[g.name]) for g in model.stream_groups()]


@pytest.mark.parametrize("variant", ["A", "C"])
def test_resnet34_li_variants_by_l1(variant, randomise_bn):
    """Li's A and C through the L1 method; C ranks the stage-3 stream by its projection's filters."""
    torch.manual_seed(0)
    model = randomise_bn(models.build("resnet34", num_classes=5), seed=1).eval()
    keep = methods.get("l1").prune(model, "resnet34", variant, 0).keep
    small = assert_pruned_equals_masked(model, "resnet34", keep)
    assert small.cfg == LI[variant][1]
    if variant == "C":
        w = model.layer3[0].downsample[0].weight.detach()
        assert keep.keys() == {"layer3.0.downsample.0"}
        assert keep["layer3.0.downsample.0"].tolist() == sorted(w.abs().sum((1, 2, 3)).argsort(descending=True)[:204].tolist())


def test_vgg11_network_slimming(randomise_bn):
    """Slimming's global threshold over all 2,752 BN2d and 8,192 BN1d scales (2.6), then the cut:
    hidden FC layers and conv8's 49 flattened inputs per channel included."""
    torch.manual_seed(0)
    model = randomise_bn(models.build("vgg11_slimming", num_classes=5), seed=1).eval()
    assert slimming._all_bn_grouped("vgg11_slimming")
    assert sum(len(s) for s in slimming.gammas(model).values()) == 10944
    keep = methods.get("slimming").prune(model, "vgg11_slimming", "0.5", 0).keep
    assert {"features.25", "classifier.0", "classifier.3"} <= keep.keys()  # conv8 and both hidden FCs
    small = assert_pruned_equals_masked(model, "vgg11_slimming", keep)
    assert small.classifier[0].in_features == 49 * small.cfg[-4]
