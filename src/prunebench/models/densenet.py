"""CIFAR DenseNet-40 of network slimming (Rethinking's network-slimming folder).

Depth 3L+4: a 3x3 stem of 2*growth channels (no BN), three dense blocks of L layers
BN -> selection -> ReLU -> 3x3 conv (growth channels) whose output is concatenated to the
input, two transitions BN -> selection -> ReLU -> 1x1 conv (compression 1: as many channels
out as came in) -> AvgPool2d(2), then BN -> selection -> ReLU -> global average pool
(AvgPool(8) on 8x8 maps) -> linear. No dropout. DenseNet-40 with growth 12 ends with 456
channels.

Slimming prunes only conv *inputs*: every BN stays full size (its channels are the
concatenated stream) and a :class:`ChannelSelection` picks what the conv reads. ``cfg`` has one
entry per selection in forward order (L layers, transition, L layers, transition, L layers,
final): the channels arriving, or the kept indices. Init: conv N(0, sqrt(2 / (k^2 C_out))),
BN beta 0, linear PyTorch's default; BN gamma 0.5 in the slimming copy (``source="slimming"``),
1 in the weight-level one (``"weightlevel"``, bearpaw's densenet.py, otherwise the same network).

:class:`PreActConv` and :class:`Transition` also build DenseNet-BC (:mod:`.densenet_bc`): a
selection entry of None leaves the selection out, a transition may halve its channels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .groups import ChannelGroup
from .init import BN_GAMMA, check_source, reference_init
from .selection import ChannelSelection


def layers_per_block(depth: int) -> int:
    if (depth - 4) % 3 or depth < 7:
        raise ValueError(f"DenseNet depth must be 3L+4 (L >= 1), got {depth}")
    return (depth - 4) // 3


def selection_widths(depth: int, growth: int = 12) -> list[int]:
    """Channels arriving at each selection, in cfg order."""
    n = layers_per_block(depth)
    widths, c = [], 2 * growth
    for block in range(3):
        widths += [c + growth * k for k in range(n)]
        c += growth * n
        widths.append(c)  # the transition (compression 1) or, after the last block, the final BN
    return widths


def default_cfg(depth: int, growth: int = 12) -> list[int]:
    return selection_widths(depth, growth)


class PreActConv(nn.Module):
    """BN -> selection -> ReLU -> conv: a dense layer's or a transition's body. ``sel`` None: no
    selection module at all (the weight-level models)."""

    def __init__(self, c_in: int, sel: int | list[int] | None, c_out: int, kernel_size: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.select = None if sel is None else ChannelSelection.from_cfg(sel, c_in)
        c_read = c_in if sel is None else self.select.out_channels
        self.conv1 = nn.Conv2d(c_read, c_out, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn1(x)
        return self.conv1(F.relu(x if self.select is None else self.select(x)))


class DenseLayer(PreActConv):
    def __init__(self, c_in: int, sel: int | list[int] | None, growth: int):
        super().__init__(c_in, sel, growth, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat((x, super().forward(x)), 1)


class Transition(PreActConv):
    """Compression 1 (``c_out`` None: as many channels out as in) or DenseNet-BC's halving."""

    def __init__(self, c_in: int, sel: int | list[int] | None, c_out: int | None = None):
        super().__init__(c_in, sel, c_in if c_out is None else c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(super().forward(x), 2)


class DenseNet(nn.Module):
    def __init__(
        self, depth: int = 40, cfg: list | None = None, num_classes: int = 10, growth: int = 12, source: str = "slimming"
    ):
        super().__init__()
        check_source(source)
        n = layers_per_block(depth)
        self.depth, self.growth = depth, growth
        self.cfg = list(cfg) if cfg is not None else default_cfg(depth, growth)
        if len(self.cfg) != 3 * n + 3:
            raise ValueError(f"DenseNet-{depth} cfg needs {3 * n + 3} entries, got {len(self.cfg)}")
        self.conv1 = nn.Conv2d(3, 2 * growth, 3, padding=1, bias=False)
        c = 2 * growth
        for block in range(3):
            entries = self.cfg[block * (n + 1) : (block + 1) * (n + 1)]
            layers = []
            for k in range(n):
                layers.append(DenseLayer(c, entries[k], growth))
                c += growth
            self.add_module(f"dense{block + 1}", nn.Sequential(*layers))
            if block < 2:
                self.add_module(f"trans{block + 1}", Transition(c, entries[n]))
        self.bn = nn.BatchNorm2d(c)
        self.select = ChannelSelection.from_cfg(self.cfg[-1], c)
        self.fc = nn.Linear(self.select.out_channels, num_classes)
        reference_init(self, BN_GAMMA[source], linear=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.trans1(self.dense1(self.conv1(x)))
        x = self.trans2(self.dense2(x))
        x = F.relu(self.select(self.bn(self.dense3(x))))
        x = F.adaptive_avg_pool2d(x, 1)
        return self.fc(torch.flatten(x, 1))

    def channel_groups(self) -> list[ChannelGroup]:
        """One selection group per BN: every dense layer, both transitions, the final BN."""
        n = layers_per_block(self.depth)
        modules = []  # (module path, stage, consumer weight key)
        for block in range(3):
            modules += [(f"dense{block + 1}.{k}", block, f"dense{block + 1}.{k}.conv1.weight") for k in range(n)]
            if block < 2:
                modules.append((f"trans{block + 1}", block, f"trans{block + 1}.conv1.weight"))
        modules.append(("", 2, "fc.weight"))
        widths = selection_widths(self.depth, self.growth)
        return [
            ChannelGroup(
                name=f"{path}.select" if path else "select",
                cfg_index=j,
                layer_id=j + 1,
                stage=stage,
                width=widths[j],
                bn=f"{path}.bn1" if path else "bn",
                consumers=((consumer, 1),),
                selection=True,
            )
            for j, (path, stage, consumer) in enumerate(modules)
        ]
