"""The ImageNet studies' own rules: Scratch-B's epochs and LR steps per reference
folder (PROTOCOLS-IMAGENET 1.2) as the runs compute them, the published architectures as a
method, network slimming's penalty on the VGG-11's FC BatchNorms, and their config checks."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from prunebench import methods, models
from prunebench.core.errors import UserError
from prunebench.models.counting import count_macs
from prunebench.studies.config import check
from prunebench.training.runs import ArmProtocol, RunSpec, starting_model
from prunebench.training.step import sparsity_penalty

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
THIRDS = (1 / 3, 2 / 3)
L1_RULE = ArmProtocol(90, 0.1, THIRDS, scratch_b_steps="repeat", scratch_b_cap=(2.0, 180))  # l1, thinet, regression
UNCAPPED = ArmProtocol(90, 0.1, THIRDS, scratch_b_steps="repeat")  # slimming, weight-level
SSS_RULE = ArmProtocol(100, 0.1, (0.3, 0.6, 0.9), scratch_b_steps="repeat")  # MXNet: int(100 r), every int(0.3 E)


def scratch_b(protocol: ArmProtocol, arch: str, method: str, setting: str, options: dict | None = None) -> tuple[int, tuple[int, ...]]:
    """What a Scratch-B run of ``setting`` trains: built and counted as train_run does it."""
    torch.manual_seed(0)
    model, model_options, _, _ = starting_model(RunSpec(arch, "scratch-b", 1, method, setting, options or {}), 1000)
    full = models.build(arch, None, 1000, **(options or {}))
    return protocol.scratch_b(count_macs(full), count_macs(model))[:2]


def test_l1_folder_scratch_b_has_a_fourth_lr_stage():
    """ResNet-34-A: 106 epochs, LR x 0.1 every 35 (the last epoch at 1e-4); B: 118, every 39."""
    assert scratch_b(L1_RULE, "resnet34", "l1", "A") == (106, (35, 70, 105))
    assert scratch_b(L1_RULE, "resnet34", "l1", "B") == (118, (39, 78, 117))
    assert scratch_b(L1_RULE, "resnet34", "l1", "C") == (97, (32, 64, 96))


def test_thinet_and_regression_cap_at_180_epochs():
    ref = {"downsample_bias": True}
    assert scratch_b(L1_RULE, "resnet50", "published", "thinet70", ref) == (141, (47, 94))  # the README's 141
    for setting in ("thinet30", "thinet50"):
        assert scratch_b(L1_RULE, "resnet50", "published", setting, ref) == (180, (60, 120))
    for setting in ("thinet_conv", "thinet_gap", "thinet_tiny", "5x"):
        assert scratch_b(L1_RULE, "vgg16_nobn", "published", setting) == (180, (60, 120))
    assert scratch_b(L1_RULE, "resnet50", "published", "2x", ref)[0] == 134  # the rule; the study sets the README's 132
    fixed = ArmProtocol(90, 0.1, THIRDS, scratch_b_steps="repeat", scratch_b_cap=(2.0, 180), scratch_b_epochs=132)
    assert fixed.scratch_b(4, 3)[:2] == (132, (44, 88))


def test_sss_scratch_b_stretches_each_stage():
    assert [scratch_b(SSS_RULE, "preresnet50", "published", f"sss{d}") for d in (41, 32, 26)] == [
        (117, (35, 70, 105)), (145, (43, 86, 129)), (179, (53, 106, 159))
    ]  # the SSS README's epochs and LR steps


def test_uncapped_folders_train_int_90r():
    assert UNCAPPED.scratch_b(300, 100)[:2] == (270, (90, 180))  # r = 3: no 180 cap (slimming, weight-level)
    assert UNCAPPED.milestone_epochs(90, scratch_b=False) == (30, 60)


def test_published_gap_head_and_full_network():
    """ThiNet-GAP drops the FC layers of the VGG-16 it is cut from; its budget is against that VGG-16."""
    model, options, _, _ = starting_model(RunSpec("vgg16_nobn", "scratch-e", 1, "published", "thinet_gap"), 1000)
    assert options["head"] == "gap" and sum(isinstance(m, nn.Linear) for m in model.modules()) == 1
    assert count_macs(models.build("vgg16_nobn")) / 1e9 == pytest.approx(15.470, abs=0.001)
    with pytest.raises(UserError, match="no published architecture 'thinet99' of vgg16_nobn"):
        methods.get("published").check_setting("vgg16_nobn", "thinet99")
    assert methods.get("published").arms == ("scratch-e", "scratch-b") and not methods.get("published").trains_base


def test_slimming_penalises_the_vgg11_fc_batchnorms():
    """ERRATA 5: the ImageNet VGG-11's BatchNorm1d scales are penalised (and thresholded); the
    CIFAR VGG-16's head BatchNorm1d, in no channel group, is not."""
    for arch, fc_penalised in (("vgg11_slimming", True), ("vgg16", False)):
        model = models.build(arch)
        for p in model.parameters():
            p.grad = torch.zeros_like(p)
        sparsity_penalty(model, 1e-5)()
        for name, m in model.named_modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                expect = isinstance(m, nn.BatchNorm2d) or fc_penalised
                assert bool(m.weight.grad.abs().sum() > 0) == expect, name


@pytest.fixture(scope="module")
def config() -> dict:
    return yaml.safe_load((REPO / "config.yaml").read_text())


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda c: c["studies"]["imagenet_scratch"]["protocol_by_arch"].update(vgg99="imagenet"), "unknown 'vgg99'"),
        (lambda c: c["studies"]["imagenet_scratch"]["protocol_by_arch"].update(vgg16_nobn="nope"), "unknown 'nope'"),
        (lambda c: c["targets"].update(l1=["imagenet_l1"]), "targets.l1 has the name of a study"),
        (lambda c: c["studies"]["imagenet_l1"]["models"].update(cifar10={"resnet34": ["A"]}), "unknown 'resnet34'"),
        (lambda c: c["studies"]["l1"]["models"].update(imagenet={"vgg16": ["A"]}), "unknown 'vgg16'"),
        (lambda c: c["studies"]["imagenet_scratch"]["scratch_b_epochs"].update(resnet50={"3x": 99}), "no row of the study has that arch and setting"),
        (lambda c: c["scales"]["smoke"].pop("imagenet"), "needs scales.smoke.imagenet"),
        (lambda c: c["sparsity"].pop("vgg11_slimming") and c["sparsity"].pop("vgg"), "add sparsity.vgg or sparsity.vgg19"),
    ],
)
def test_config_errors_name_the_key(config, change, message):
    bad = copy.deepcopy(config)
    change(bad)
    with pytest.raises(UserError) as e:
        check(bad, SCHEMA)
    assert message in str(e.value) and "\n" not in str(e.value)
