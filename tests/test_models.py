"""The model registry, the architectures' structure, and model files (checkpoints.py)."""

from __future__ import annotations

import copy
import json
import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from prunebench import models
from prunebench.core.errors import UserError
from prunebench.core.io import save_torch
from prunebench.models import ChannelSelection, resnet
from prunebench.models.counting import count_macs, count_params
from prunebench.training.checkpoints import load_model, save_model

ALL_ARCHS = ("vgg16", "vgg19", "resnet20", "resnet32", "resnet56", "resnet110", "preresnet164", "densenet40")


# --------------------------------------------------------------------------- registry
def test_registry_lists_every_arch():
    assert set(models.ARCHS) == set(ALL_ARCHS) | {"preresnet110", "densenetbc100"}  # those two: test_models_weightlevel.py


def test_unknown_arch_is_a_user_error():
    with pytest.raises(UserError, match="unknown arch 'resnet18'"):
        models.build("resnet18")
    with pytest.raises(UserError, match="resnet56"):  # the message lists the choices
        models.default_cfg("vgg11")


def test_default_cfgs():
    assert models.default_cfg("vgg16") == [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]
    assert models.default_cfg("vgg19").count("M") == 4
    assert [v for v in models.default_cfg("vgg19") if v != "M"] == [64] * 2 + [128] * 2 + [256] * 4 + [512] * 8
    for depth in (20, 32, 56, 110):
        n = (depth - 2) // 6
        assert models.default_cfg(f"resnet{depth}") == [16] * n + [32] * n + [64] * n


def test_default_cfg_is_a_fresh_copy():
    cfg = models.default_cfg("vgg16")
    cfg[0] = 1
    assert models.default_cfg("vgg16")[0] == 64


@pytest.mark.parametrize("arch", ALL_ARCHS)
def test_forward_shape_and_depth(arch):
    m = models.build(arch, num_classes=7).eval()
    with torch.no_grad():
        out = m(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 7)
    convs = [name for name, mod in m.named_modules() if isinstance(mod, nn.Conv2d)]
    linears = [mod for mod in m.modules() if isinstance(mod, nn.Linear)]
    depth = int("".join(c for c in arch if c.isdigit()))
    if arch == "vgg16":
        # VGG-16 = 13 convs + Li's 2-layer head (+1 in the original 3 FC layers of ImageNet VGG).
        assert len(convs) + len(linears) == depth - 1
        assert len(linears) == 2 and linears[0].out_features == 512
    elif arch == "vgg19":
        # the slimming VGG-19: 16 convs + one linear layer
        assert len(convs) == 16 and len(linears) == 1 and linears[0].in_features == 512
    elif arch.startswith("resnet"):
        assert len(convs) + len(linears) == depth  # no conv in the option-A shortcuts
        assert all(not any(isinstance(x, nn.Conv2d) for x in b.shortcut.modules()) for b in m.modules() if isinstance(b, resnet.BasicBlock))
    elif arch == "preresnet164":
        shortcut_convs = [c for c in convs if "downsample" in c]
        assert len(shortcut_convs) == 3  # first block of each stage
        assert len(convs) - len(shortcut_convs) + len(linears) == depth
    else:
        assert len(convs) + len(linears) == depth  # stem + 36 layers + 2 transitions + fc


def test_bad_resnet_cfg_and_depth():
    with pytest.raises(ValueError, match="27 block widths"):
        models.build("resnet56", [16] * 5)
    with pytest.raises(ValueError, match="6n\\+2"):
        resnet.ResNet(21)
    with pytest.raises(UserError, match="shortcut"):
        models.build("resnet20", shortcut="conv")
    with pytest.raises(ValueError, match="shortcut"):
        resnet.ResNet(20, shortcut="conv")


def test_vgg_init_matches_reference():
    torch.manual_seed(0)
    m = models.build("vgg16")
    bns = [x for x in m.features if isinstance(x, nn.BatchNorm2d)]
    assert all(torch.all(b.weight == 0.5) and torch.all(b.bias == 0) for b in bns)
    conv = m.features[0]
    assert conv.weight.std().item() == pytest.approx((2.0 / (9 * 64)) ** 0.5, rel=0.15)
    assert m.classifier[0].weight.std().item() == pytest.approx(0.01, rel=0.05)
    assert torch.all(m.classifier[3].bias == 0)


@pytest.mark.parametrize("mode", ["avgpool", "subsample"])
def test_resnet_shortcut_a(mode):
    sc = resnet.ShortcutA(2, 16, mode)
    x = torch.arange(2 * 16 * 4 * 4, dtype=torch.float32).reshape(2, 16, 4, 4)
    y = sc(x)
    assert y.shape == (2, 32, 2, 2)
    assert torch.all(y[:, 16:] == 0)  # new channels are zero padding
    expect = torch.nn.functional.avg_pool2d(x, 2) if mode == "avgpool" else x[:, :, ::2, ::2]
    assert torch.equal(y[:, :16], expect)
    assert sum(p.numel() for p in sc.parameters()) == 0


def test_resnet_pruned_cfg_changes_only_first_conv_of_each_block():
    cfg = models.default_cfg("resnet20")
    cfg[4] = 5
    m = models.build("resnet20", cfg)
    block = m.layer2[1]
    assert block.conv1.out_channels == 5 and block.bn1.num_features == 5
    assert block.conv2.in_channels == 5 and block.conv2.out_channels == 32
    assert m.layer2[0].conv1.out_channels == 32
    with torch.no_grad():
        assert m.eval()(torch.randn(1, 3, 32, 32)).shape == (1, 10)


# --------------------------------------------------------------------------- options
def test_default_options():
    assert models.default_options("resnet56") == {"shortcut": "avgpool", "shortcut_grad": False, "fc_init": "default", "dead_offsets": False}
    assert models.default_options("vgg16") == {"head": "li", "head_bn_init": "uniform", "source": "slimming"}
    assert models.default_options("vgg19") == {"head": "linear", "head_bn_init": "uniform", "source": "slimming"}
    assert models.default_options("preresnet164") == {}
    assert models.default_options("densenet40") == {"source": "slimming"}
    for arch in ALL_ARCHS:  # plain JSON values: they are saved in checkpoints and configs
        assert json.loads(json.dumps(models.default_options(arch))) == models.default_options(arch)


def test_check_options_fills_defaults():
    assert models.check_options("resnet20", {"shortcut": "subsample"}) == {"shortcut": "subsample", "shortcut_grad": False, "fc_init": "default", "dead_offsets": False}
    assert models.check_options("vgg19", {"head": "li"}) == {"head": "li", "head_bn_init": "uniform", "source": "slimming"}
    assert models.check_options("densenet40", {}) == {"source": "slimming"}


@pytest.mark.parametrize(
    "arch, options, message",
    [
        ("resnet20", {"head": "li"}, "unknown option 'head' for resnet20; its options are: shortcut, shortcut_grad"),
        ("preresnet164", {"shortcut": "avgpool"}, "unknown option 'shortcut' for preresnet164; its options are: none"),
        ("densenet40", {"shortcut": "avgpool"}, "unknown option 'shortcut' for densenet40; its options are: source"),
        ("resnet20", {"shortcut": "conv"}, "bad value 'conv' for option 'shortcut' of resnet20; choose one of 'avgpool', 'subsample'"),
        ("resnet56", {"shortcut_grad": 1}, "bad value 1 for option 'shortcut_grad' of resnet56; choose one of False, True"),
        ("resnet56", {"shortcut_grad": "true"}, "bad value 'true' for option 'shortcut_grad'"),
        ("vgg16", {"head": "mlp"}, "bad value 'mlp' for option 'head' of vgg16; choose one of 'li', 'linear'"),
        ("vgg19", {"head_bn_init": "zeros"}, "choose one of 'uniform', 'ones'"),
    ],
)
def test_bad_options_are_one_line_user_errors(arch, options, message):
    with pytest.raises(UserError) as err:
        models.check_options(arch, options)
    assert message in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(UserError, match=re.escape(message)):
        models.build(arch, **options)


def test_vgg_heads():
    torch.manual_seed(0)
    m19 = models.build("vgg19", num_classes=100)
    assert len(m19.classifier) == 1 and (m19.classifier[0].in_features, m19.classifier[0].out_features) == (512, 100)
    assert m19.classifier[0].weight.std().item() == pytest.approx(0.01, rel=0.05)
    assert torch.all(m19.classifier[0].bias == 0)
    assert len(models.build("vgg19", head="li").classifier) == 4
    m16 = models.build("vgg16", head="linear")
    assert len(m16.classifier) == 1 and "classifier.0.weight" in m16.state_dict()


def test_vgg_head_bn_init():
    torch.manual_seed(0)
    bn = models.build("vgg16").classifier[1]  # the L1 reference's un-initialised BN1d (PyTorch 0.3/0.4)
    assert isinstance(bn, nn.BatchNorm1d)
    assert torch.all((bn.weight >= 0) & (bn.weight < 1)) and bn.weight.std().item() == pytest.approx(12**-0.5, rel=0.15)
    assert torch.all(bn.bias == 0)
    bn = models.build("vgg16", head_bn_init="ones").classifier[1]
    assert torch.all(bn.weight == 1) and torch.all(bn.bias == 0)
    assert len(models.build("vgg19", head_bn_init="ones").classifier) == 1  # accepted, no BN1d to set


class _HandShortcut(nn.Module):
    """Option A written out: downsample, append zero channels; optionally from a detached input."""

    def __init__(self, extra: int, mode: str, detach: bool):
        super().__init__()
        self.extra, self.mode, self.detach = extra, mode, detach

    def forward(self, x):
        x = x.detach() if self.detach else x
        x = F.avg_pool2d(x, 2) if self.mode == "avgpool" else x[:, :, ::2, ::2]
        return torch.cat([x, x.new_zeros(x.shape[0], self.extra, *x.shape[2:])], 1)


def _stem_grad(model, x):
    model.zero_grad()
    model(x).square().sum().backward()
    return model.conv1.weight.grad.clone()


@pytest.mark.parametrize("mode", ["avgpool", "subsample"])
def test_resnet_shortcut_grad(mode):
    torch.manual_seed(0)
    blocked = models.build("resnet20", shortcut=mode)  # shortcut_grad=False: the L1 reference
    passing = models.build("resnet20", shortcut=mode, shortcut_grad=True)
    passing.load_state_dict(blocked.state_dict())
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(blocked(x), passing(x))
    g_blocked, g_passing = _stem_grad(blocked, x), _stem_grad(passing, x)
    assert (g_blocked - g_passing).abs().max() > 1e-3 * g_passing.abs().max()
    for model, detach, grad in ((blocked, True, g_blocked), (passing, False, g_passing)):
        hand = copy.deepcopy(model)
        swapped = 0
        for b in hand.modules():
            if isinstance(b, resnet.BasicBlock) and isinstance(b.shortcut, resnet.ShortcutA):
                b.shortcut, swapped = _HandShortcut(b.shortcut.extra, mode, detach), swapped + 1
        assert swapped == 2  # only the two downsampling blocks; identity shortcuts always pass gradients
        torch.testing.assert_close(_stem_grad(hand, x), grad)


# --------------------------------------------------------------------------- counts (PROTOCOLS section 2)
# arch -> (params C10, params C100, MACs C10). The PreResNet and DenseNet rows include the
# reference's ``indexes`` parameters, one per channel entering a selection; prunebench keeps
# the selection in the cfg, so they are added here.
COUNTS = {
    "vgg16": (14.99e6, 15.03e6, 313.5e6),
    "vgg19": (20.04e6, 20.08e6, 398.1e6),
    "preresnet164": (1.711e6, 1.734e6, 247.6e6),
    "densenet40": (1.069e6, 1.110e6, 282.9e6),
}
INDEXES = {"vgg16": 0, "vgg19": 0, "preresnet164": 8080, "densenet40": 9360}


@pytest.mark.parametrize("arch", sorted(COUNTS))
def test_params_and_macs(arch):
    params10, params100, macs = COUNTS[arch]
    m = models.build(arch)
    indexes = sum(s.width for s in m.modules() if isinstance(s, ChannelSelection))
    assert indexes == INDEXES[arch]
    assert count_params(m) + indexes == pytest.approx(params10, rel=1e-3)
    assert count_macs(m) == pytest.approx(macs, rel=1e-3)
    assert count_params(models.build(arch, num_classes=100)) + indexes == pytest.approx(params100, rel=1e-3)


# --------------------------------------------------------------------------- channel groups
def test_resnet56_channel_groups_use_li_numbering():
    m = models.build("resnet56")
    groups = m.channel_groups()
    assert len(groups) == 27
    assert [g.layer_id for g in groups] == list(range(2, 55, 2))
    assert [g.stage for g in groups] == [0] * 9 + [1] * 9 + [2] * 9
    g = groups[9]  # first block of stage 2 = Li's layer 20
    assert g.layer_id == 20 and g.name == "layer2.0.conv1" and g.width == 32 and g.cfg_index == 9
    assert g.bn == "layer2.0.bn1" and not g.selection
    assert g.producers == (
        ("layer2.0.conv1.weight", 0),
        ("layer2.0.bn1.weight", 0),
        ("layer2.0.bn1.bias", 0),
        ("layer2.0.bn1.running_mean", 0),
        ("layer2.0.bn1.running_var", 0),
    )
    assert g.consumers == (("layer2.0.conv2.weight", 1),)
    assert g.silencing_keys == ("layer2.0.conv1.weight", "layer2.0.bn1.weight", "layer2.0.bn1.bias")
    state = m.state_dict()
    for gr in groups:  # every key a group names exists with the group's width on its dim
        for key, dim in gr.producers + gr.consumers:
            assert state[key].shape[dim] == gr.width


def test_vgg16_channel_groups():
    m = models.build("vgg16")
    groups = m.channel_groups()
    assert [g.layer_id for g in groups] == list(range(1, 14))
    assert [g.width for g in groups] == [v for v in models.default_cfg("vgg16") if v != "M"]
    assert [g.stage for g in groups] == [0, 0, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4]
    assert [g.cfg_index for g in groups] == [i for i, v in enumerate(m.cfg) if v != "M"]
    assert groups[-1].consumers == (("classifier.0.weight", 1),)
    assert groups[0].consumers == (("features.3.weight", 1),)
    state = m.state_dict()
    for g in groups:
        assert isinstance(dict(m.named_modules())[g.name], nn.Conv2d)
        for key, dim in g.producers + g.consumers:
            assert state[key].shape[dim] == g.width


# --------------------------------------------------------------------------- model files
def _pruned_resnet20():
    torch.manual_seed(0)
    cfg = models.default_cfg("resnet20")
    cfg[0], cfg[4], cfg[8] = 7, 20, 50
    m = models.build("resnet20", cfg, num_classes=100)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.running_mean.normal_()
                mod.running_var.uniform_(0.5, 2)
                mod.num_batches_tracked.fill_(17)
    return m, cfg


def test_save_load_round_trip(tmp_path):
    m, cfg = _pruned_resnet20()
    path = tmp_path / "sub" / "model.pt"
    run = {"dataset": "cifar100", "arch": "resnet20", "arm": "base", "seed": 1}
    save_model(path, m, "resnet20", 100, run=run, accuracy=93.1)
    loaded, meta = load_model(path, expect_arch="resnet20")
    assert loaded.cfg == cfg
    options = models.default_options("resnet20")  # the options the model was built with, filled in
    assert meta == {"arch": "resnet20", "cfg": cfg, "num_classes": 100, "options": options, "run": run, "accuracy": 93.1}
    a, b = m.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded.eval()(x), m.eval()(x), rtol=0, atol=0)
    # loadable with plain torch + the registry
    blob = torch.load(path, weights_only=True)
    assert set(blob) >= {"arch", "cfg", "num_classes", "state_dict"}


def test_vgg_cfg_with_pools_round_trips(tmp_path):
    cfg = [8, "M", 16, "M", 16, "M", 16, "M", 16]
    m = models.build("vgg16", cfg)
    save_model(tmp_path / "v.pt", m, "vgg16", 10)
    loaded, meta = load_model(tmp_path / "v.pt")
    assert loaded.cfg == cfg and meta["cfg"] == cfg


def test_truncated_model_file(tmp_path):
    m, _ = _pruned_resnet20()
    path = tmp_path / "model.pt"
    save_model(path, m, "resnet20", 100)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="corrupt or not a torch file"):
        load_model(path)


def test_non_torch_file(tmp_path):
    path = tmp_path / "model.pt"
    path.write_text("arch: resnet20\n")
    with pytest.raises(UserError, match=f"{path.name} is corrupt or not a torch file"):
        load_model(path)


def test_missing_model_file(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_model(tmp_path / "nope.pt")


def test_torch_file_that_is_not_a_model(tmp_path):
    path = tmp_path / "x.pt"
    save_torch(path, {"arch": "resnet20", "cfg": [16] * 9})
    with pytest.raises(UserError, match="not a prunebench model file"):
        load_model(path)
    save_torch(path, [1, 2, 3])
    with pytest.raises(UserError, match="not a prunebench model file"):
        load_model(path)


def test_wrong_arch(tmp_path):
    m, _ = _pruned_resnet20()
    save_model(tmp_path / "m.pt", m, "resnet20", 100)
    with pytest.raises(UserError, match="holds a resnet20 model but resnet56 was asked for"):
        load_model(tmp_path / "m.pt", expect_arch="resnet56")


def test_state_dict_that_does_not_fit_cfg(tmp_path):
    m, cfg = _pruned_resnet20()
    path = tmp_path / "m.pt"
    save_model(path, m, "resnet20", 100)
    blob = torch.load(path, weights_only=True)
    blob["cfg"] = models.default_cfg("resnet20")  # weights are pruned, cfg says full width
    save_torch(path, blob)
    with pytest.raises(UserError, match="weights do not fit resnet20"):
        load_model(path)
    blob["cfg"] = [16] * 4  # a cfg that does not even build
    save_torch(path, blob)
    with pytest.raises(UserError, match="does not build a resnet20"):
        load_model(path)
    blob["cfg"], blob["num_classes"] = cfg, 10  # wrong classifier size
    save_torch(path, blob)
    with pytest.raises(UserError, match="weights do not fit"):
        load_model(path)
