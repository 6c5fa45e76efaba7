"""The model registry, the architectures' structure, and model files (checkpoints.py)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from prunebench import models
from prunebench.checkpoints import load_model, save_model
from prunebench.errors import UserError
from prunebench.io import save_torch
from prunebench.models import resnet, vgg

ALL_ARCHS = ("vgg16", "vgg19", "resnet20", "resnet32", "resnet56", "resnet110")


# --------------------------------------------------------------------------- registry
def test_registry_lists_every_arch():
    assert set(models.ARCHS) == set(ALL_ARCHS)


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
    convs = [mod for mod in m.modules() if isinstance(mod, nn.Conv2d)]
    linears = [mod for mod in m.modules() if isinstance(mod, nn.Linear)]
    depth = int(arch[len("resnet"):]) if arch.startswith("resnet") else int(arch[len("vgg"):])
    if arch.startswith("vgg"):
        # VGG-16 = 13 convs + Li's 2-layer head (+1 in the original 3 FC layers of ImageNet VGG).
        assert len(convs) + len(linears) == depth - 1
        assert len(linears) == 2 and linears[0].out_features == 512
    else:
        assert len(convs) + len(linears) == depth  # no conv in the option-A shortcuts
        assert all(not any(isinstance(x, nn.Conv2d) for x in b.shortcut.modules()) for b in m.modules() if isinstance(b, resnet.BasicBlock))


def test_bad_resnet_cfg_and_depth():
    with pytest.raises(ValueError, match="27 block widths"):
        models.build("resnet56", [16] * 5)
    with pytest.raises(ValueError, match="6n\\+2"):
        resnet.ResNet(21)
    with pytest.raises(ValueError, match="shortcut"):
        models.build("resnet20", shortcut="conv")


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


# --------------------------------------------------------------------------- channel groups
def test_resnet56_channel_groups_use_li_numbering():
    m = models.build("resnet56")
    groups = m.channel_groups()
    assert len(groups) == 27
    assert [g.layer_id for g in groups] == list(range(2, 55, 2))
    assert [g.stage for g in groups] == [0] * 9 + [1] * 9 + [2] * 9
    g = groups[9]  # first block of stage 2 = Li's layer 20
    assert g.layer_id == 20 and g.name == "layer2.0.conv1" and g.width == 32 and g.cfg_index == 9
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
    save_model(path, m, "resnet20", 100, run="base", accuracy=93.1)
    loaded, meta = load_model(path, expect_arch="resnet20")
    assert loaded.cfg == cfg
    assert meta == {"arch": "resnet20", "cfg": cfg, "num_classes": 100, "run": "base", "accuracy": 93.1}
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
