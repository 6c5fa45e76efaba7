"""CIFAR "DenseNet-BC-100" of the weight-level folder (bearpaw's densenet.py, ``--depth 100
--compressionRate 2``), in both readings of that folder (PROTOCOLS section 2).

A 3x3 stem of 2*growth = 24 channels (no bias, no BN), three dense blocks whose layers'
outputs (growth = 12 channels each) are concatenated to their input, two transitions
BN -> ReLU -> 1x1 conv to floor(C/2) channels -> AvgPool2d(2), then BN -> ReLU -> global
average pool -> linear. ``block`` picks the dense layer:
  "bottleneck"  BN -> ReLU -> 1x1 conv (4*growth) -> BN -> ReLU -> 3x3 conv (growth): upstream
                bearpaw, a true DenseNet-BC; 16 per block, 342 final channels, 0.77M parameters
  "basic"       BN -> ReLU -> 3x3 conv (growth): what the Rethinking copy runs (it changed the
                default block); 32 per block, 678 final channels, 4.07M parameters

``cfg`` is [d1, d2, d3], each dense block's share of the depth, i.e. its conv layers: a
bottleneck layer holds two, a basic layer one. Depth 100 is [32, 32, 32] (+ stem, two
transitions and the linear layer) for either block, so the cfg does not depend on the option
and a model file rebuilds from ``{arch, cfg, options}``. Only unstructured pruning acts on
this model: it never narrows a layer, and ``channel_groups()`` is empty.

Init as bearpaw: conv N(0, sqrt(2 / (k^2 C_out))), BN gamma 1 and beta 0, linear PyTorch's
default. The layers are :mod:`.densenet`'s, built without channel selection.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .densenet import DenseLayer, PreActConv, Transition
from .groups import ChannelGroup
from .init import BN_GAMMA, reference_init

BLOCKS = ("bottleneck", "basic")
CONVS_PER_LAYER = {"bottleneck": 2, "basic": 1}


def default_cfg(depth: int = 100) -> list[int]:
    if (depth - 4) % 6 or depth < 10:
        raise ValueError(f"DenseNet-BC depth must be 6L+4 (L >= 1), got {depth}")
    return [(depth - 4) // 3] * 3


def layers_per_block(cfg: list, block: str) -> list[int]:
    if block not in BLOCKS:
        raise ValueError(f"DenseNet-BC block must be one of {BLOCKS}, got {block!r}")
    per = CONVS_PER_LAYER[block]
    if len(cfg) != 3 or any(not isinstance(d, int) or d < per or d % per for d in cfg):
        raise ValueError(f"DenseNet-BC cfg needs 3 per-block conv counts, multiples of {per} ({block}), got {cfg}")
    return [d // per for d in cfg]


class Bottleneck(PreActConv):
    """BN -> ReLU -> 1x1 conv (4*growth) -> BN -> ReLU -> 3x3 conv (growth), concatenated to the input."""

    def __init__(self, c_in: int, growth: int):
        super().__init__(c_in, None, 4 * growth, 1)
        self.bn2 = nn.BatchNorm2d(4 * growth)
        self.conv2 = nn.Conv2d(4 * growth, growth, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat((x, self.conv2(F.relu(self.bn2(super().forward(x))))), 1)


class DenseNetBC(nn.Module):
    def __init__(self, cfg: list | None = None, num_classes: int = 10, block: str = "bottleneck", growth: int = 12):
        super().__init__()
        self.cfg = list(cfg) if cfg is not None else default_cfg()
        self.block, self.growth = block, growth
        self.conv1 = nn.Conv2d(3, 2 * growth, 3, padding=1, bias=False)
        c = 2 * growth
        for b, n in enumerate(layers_per_block(self.cfg, block)):
            layers = []
            for _ in range(n):
                layers.append(Bottleneck(c, growth) if block == "bottleneck" else DenseLayer(c, None, growth))
                c += growth
            self.add_module(f"dense{b + 1}", nn.Sequential(*layers))
            if b < 2:
                self.add_module(f"trans{b + 1}", Transition(c, None, c // 2))
                c //= 2
        self.bn = nn.BatchNorm2d(c)
        self.fc = nn.Linear(c, num_classes)
        reference_init(self, BN_GAMMA["weightlevel"], linear=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.trans1(self.dense1(self.conv1(x)))
        x = self.trans2(self.dense2(x))
        x = F.relu(self.bn(self.dense3(x)))
        x = F.adaptive_avg_pool2d(x, 1)
        return self.fc(torch.flatten(x, 1))

    def channel_groups(self) -> list[ChannelGroup]:
        """None: the model is only pruned unstructured (weights zeroed, no channel removed)."""
        return []
