"""Parameter and MAC counts against the papers (He et al., Li et al. Table 1)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from prunebench import models
from prunebench.models.counting import count_macs, count_params
from prunebench.pruning import variant_cfg

# arch -> (params, MACs) for CIFAR-10.
EXPECTED = {
    "vgg16": (14.99e6, 313.5e6),
    "resnet20": (0.270e6, 40.6e6),
    "resnet32": (0.464e6, 68.9e6),
    "resnet56": (0.853e6, 125.5e6),
    "resnet110": (1.728e6, 252.9e6),
}

# Li et al. Table 1: (arch, variant) -> (FLOP reduction %, params reduction %, Scratch-B epochs).
LI_TABLE1 = {
    ("vgg16", "A"): (34.2, 64.0, 243),
    ("resnet56", "A"): (10.4, 9.4, 178),
    ("resnet56", "B"): (27.6, 13.7, 220),
    ("resnet110", "A"): (15.9, 2.3, 190),
    ("resnet110", "B"): (38.6, 32.4, 260),
}

_counts: dict = {}


def counts(arch: str, cfg: list | None = None, num_classes: int = 10) -> tuple[int, int]:
    key = (arch, None if cfg is None else tuple(cfg), num_classes)
    if key not in _counts:
        m = models.build(arch, cfg, num_classes)
        _counts[key] = (count_params(m), count_macs(m))
    return _counts[key]


@pytest.mark.parametrize("arch", sorted(EXPECTED))
def test_params_and_macs_match_papers(arch):
    params, macs = counts(arch)
    exp_params, exp_macs = EXPECTED[arch]
    assert params == pytest.approx(exp_params, rel=5e-3)
    # The reference MACs are given to 4 significant figures.
    assert macs == pytest.approx(exp_macs, abs=0.051e6)


def test_vgg16_params_with_100_classes():
    params, _ = counts("vgg16", num_classes=100)
    assert params == pytest.approx(15.03e6, rel=5e-3)
    # 90 more classes add 90 * (512 + 1) parameters to the last layer, nothing else.
    assert params - counts("vgg16")[0] == 90 * 513


@pytest.mark.parametrize(
    "arch, macs, params",
    [("vgg16", 3.13e8, 1.5e7), ("resnet56", 1.25e8, 8.5e5), ("resnet110", 2.53e8, 1.72e6)],
)
def test_li_table1_baselines(arch, macs, params):
    p, m = counts(arch)
    # Table 1 rounds to 3 significant figures (2 for VGG's 1.5e7 params).
    assert m == pytest.approx(macs, rel=5e-3)
    assert p == pytest.approx(params, rel=1e-2 if arch == "vgg16" else 5e-3)


@pytest.mark.parametrize("arch, variant", sorted(LI_TABLE1))
def test_li_table1_reductions(arch, variant):
    flop_red, param_red, _ = LI_TABLE1[(arch, variant)]
    p_full, m_full = counts(arch)
    p_small, m_small = counts(arch, variant_cfg(arch, variant, models.default_cfg(arch)))
    assert 100 * (1 - m_small / m_full) == pytest.approx(flop_red, abs=0.5)
    assert 100 * (1 - p_small / p_full) == pytest.approx(param_red, abs=0.5)


@pytest.mark.parametrize("arch, variant", sorted(LI_TABLE1))
def test_scratch_b_epochs(arch, variant):
    _, _, epochs = LI_TABLE1[(arch, variant)]
    _, m_full = counts(arch)
    _, m_small = counts(arch, variant_cfg(arch, variant, models.default_cfg(arch)))
    assert int(160 * m_full / m_small) == epochs


def test_count_macs_counts_conv_and_linear_only_and_restores_mode():
    # conv: 8 filters * 3*3*3 kernel * 32*32 outputs; linear: 8 -> 5.
    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
            self.bn = nn.BatchNorm2d(8)
            self.fc = nn.Linear(8, 5)

        def forward(self, x):
            x = torch.relu(self.bn(self.conv(x)))
            return self.fc(x.mean((2, 3)))

    m = Tiny().train()
    assert count_macs(m) == 8 * 27 * 32 * 32 + 8 * 5
    assert m.training
    assert count_macs(m.eval()) == 8 * 27 * 32 * 32 + 8 * 5
    assert not m.training
    assert count_params(m) == 8 * 27 + 2 * 8 + 8 * 5 + 5


def test_count_macs_leaves_bn_statistics_alone():
    m = models.build("resnet20").train()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    count_macs(m)
    after = m.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("arch", [*models.ARCHS, "resnet50", "vgg11_slimming"])
def test_hook_counts_equal_pytorchs_flop_counter(arch):
    """The forward-hook counter (no torch._dynamo import per job) against PyTorch's own FLOP
    counter, which counts a conv or linear layer's multiply-adds as 2 FLOP each."""
    from torch.utils.flop_counter import FlopCounterMode

    model = models.build(arch).eval()
    side = getattr(model, "image_size", 32)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 3, side, side))
    assert count_macs(model) == counter.get_total_flops() // 2
