"""The MXNet pre-activation ResNet-50 of Sparse Structure Selection, and its ResNet-26/32/41
(PROTOCOLS-IMAGENET 2.5).

The ImageNet stem (:class:`.resnet_imagenet.ImageNetResNet`), four stages of [3, 4, 6, 3]
pre-activation bottlenecks (the CIFAR PreResNet's, :class:`.preresnet.Bottleneck`: BN -> ReLU ->
1x1 -> BN -> ReLU -> 3x3 with the stride -> BN -> ReLU -> 1x1 to 4 x planes), then BN -> ReLU ->
global average pool -> FC. Unlike the CIFAR PreResNet, the projection shortcut of a stage's
first unit (a 1x1 conv, no BN) reads the pre-activated input relu(bn1(x)), as MXNet's does.

SSS removes whole residual branches. ``cfg`` is each unit's branch width (planes: 64 / 128 /
256 / 512 at full size) or 0 for a removed branch: a removed first unit keeps bn1 -> ReLU -> its
projection, which still changes width and size; a removed identity unit disappears. The README
gives per stage only (branches kept, first unit's branch kept); which identity units survive
does not matter (they are identical), :func:`sss_cfg` keeps the first ones.

The README's ResNet-32 layout gives 14.26 M parameters where the SSS plots read about 18.6 M at
the same FLOPs (a layout with more stage-4 units): the layout fixes the FLOPs and the
Scratch-B epochs, so it is kept; another layout is just another cfg.

Init: MXNet's Xavier (gaussian, fan-in, magnitude 2), He-normal on the fan-in for convs and
the FC, zero biases, BN gamma 1 and beta 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import preresnet
from .groups import ChannelGroup
from .init import reference_init
from .resnet_imagenet import BLOCKS, EXPANSION, PLANES, ImageNetResNet


def default_cfg() -> list[int]:
    return [p for p, n in zip(PLANES, BLOCKS) for _ in range(n)]


def sss_cfg(stages: list[tuple[int, bool]]) -> list[int]:
    """The cfg of the README's per-stage (branches kept, first unit's branch kept)."""
    cfg = []
    for (kept, first), planes, n in zip(stages, PLANES, BLOCKS):
        identity = kept - first
        if not 0 <= identity <= n - 1:
            raise ValueError(f"a stage of {n} units cannot keep {kept} branches with first={first}")
        cfg += [planes if first else 0] + [planes] * identity + [0] * (n - 1 - identity)
    return cfg


class PreActUnit(preresnet.Bottleneck):
    """The CIFAR pre-activation bottleneck, without channel selection, its projection reading relu(bn1(x))."""

    def __init__(self, c_in: int, width: int, planes: int, stride: int, project: bool):
        super().__init__(c_in, planes, [None, width, width], stride, project)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = F.relu(self.bn1(x))
        out = self.conv2(F.relu(self.bn2(self.conv1(pre))))
        out = self.conv3(F.relu(self.bn3(out)))
        return out + (x if self.downsample is None else self.downsample(pre))


class ProjectionUnit(nn.Module):
    """A first unit whose branch SSS removed: bn1 -> ReLU -> the strided 1x1 projection."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(F.relu(self.bn1(x)))


class SSSResNet(ImageNetResNet):
    def __init__(self, cfg: list[int] | None = None, num_classes: int = 1000):
        super().__init__()
        self.cfg = list(cfg) if cfg is not None else default_cfg()
        if len(self.cfg) != sum(BLOCKS):
            raise ValueError(f"SSS ResNet cfg needs 16 branch widths (0: removed), got {len(self.cfg)}")

        def make_block(i: int, s: int, b: int, c_in: int, stride: int) -> tuple[nn.Module | None, int]:
            c_out = PLANES[s] * EXPANSION
            if self.cfg[i]:
                return PreActUnit(c_in, self.cfg[i], PLANES[s], stride, project=b == 0), c_out
            return (ProjectionUnit(c_in, c_out, stride) if b == 0 else None), c_out

        c_out = self.add_stages(make_block)
        self.bn = nn.BatchNorm2d(c_out)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c_out, num_classes)
        reference_init(self, bn_gamma=1.0, linear="kaiming", conv_fan="in")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn(self.features(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))

    def channel_groups(self) -> list[ChannelGroup]:
        """None: SSS's models are trained from their cfg."""
        return []
