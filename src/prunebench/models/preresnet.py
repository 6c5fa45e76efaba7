"""CIFAR PreResNet of network slimming (PreResNet-164) and of weight-level pruning (PreResNet-110).

Depth 9n+2: a 3x3 stem of 16 channels (no BN), three stages of n pre-activation bottlenecks
(planes 16/32/64, expansion 4, so a residual stream of 64/128/256), then BN -> selection ->
ReLU -> global average pool (AvgPool(8) on 8x8 maps) -> linear. A bottleneck is

    BN(in) -> selection -> ReLU -> 1x1 conv -> BN -> ReLU -> 3x3 conv (stride) -> BN -> ReLU -> 1x1 conv

plus the shortcut: a strided 1x1 conv (no BN) in the first block of each stage, identity
elsewhere. Slimming never narrows the residual stream: the BN in front of each block (and the
final one) keeps its width and a :class:`ChannelSelection` picks the channels the next conv
reads; the two inner convs are pruned by slicing.

``cfg`` is the reference's flat list: per block [sel, c1, c2] (sel = the stream width, or the
kept indices), then the final BN's selection. Init: conv N(0, sqrt(2 / (k^2 C_out))), BN beta 0,
linear PyTorch's default. ``source`` is the Rethinking folder the copy comes from:
  "slimming"     network-slimming's preresnet.py: selections, BN gamma 0.5
  "weightlevel"  bearpaw's preresnet.py (the weight-level folder): the same network without any
                 selection module (its cfg's sel entries must be the stream widths), BN gamma 1
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .groups import ChannelGroup, bn_keys
from .init import BN_GAMMA, check_source, reference_init
from .selection import ChannelSelection

STAGE_PLANES = (16, 32, 64)
EXPANSION = 4


def blocks_per_stage(depth: int) -> int:
    if (depth - 2) % 9 or depth < 11:
        raise ValueError(f"PreResNet depth must be 9n+2 (n >= 1), got {depth}")
    return (depth - 2) // 9


def stream_widths(depth: int) -> list[int]:
    """Channels entering each block, then the final BN's width."""
    n = blocks_per_stage(depth)
    widths, c = [], 16
    for planes in STAGE_PLANES:
        for _ in range(n):
            widths.append(c)
            c = planes * EXPANSION
    return widths + [c]


def default_cfg(depth: int) -> list[int]:
    n = blocks_per_stage(depth)
    inner = [p for p in STAGE_PLANES for _ in range(n)]
    streams = stream_widths(depth)
    return [w for sel, p in zip(streams, inner) for w in (sel, p, p)] + [streams[-1]]


def _select(select: ChannelSelection | None, x: torch.Tensor) -> torch.Tensor:
    return x if select is None else select(x)


class Bottleneck(nn.Module):
    """``cfg`` is [sel, c1, c2]; sel None: no selection module (the weight-level copy)."""

    def __init__(self, c_in: int, planes: int, cfg: list, stride: int = 1, project: bool = False):
        super().__init__()
        sel, c1, c2 = cfg
        self.bn1 = nn.BatchNorm2d(c_in)
        self.select = None if sel is None else ChannelSelection.from_cfg(sel, c_in)
        self.conv1 = nn.Conv2d(c_in if sel is None else self.select.out_channels, c1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c1)
        self.conv2 = nn.Conv2d(c1, c2, 3, stride=stride, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(c2)
        self.conv3 = nn.Conv2d(c2, planes * EXPANSION, 1, bias=False)
        # A Sequential so the key is the reference's ``downsample.0.weight``.
        self.downsample = (
            nn.Sequential(nn.Conv2d(c_in, planes * EXPANSION, 1, stride=stride, bias=False)) if project else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(_select(self.select, self.bn1(x))))
        out = self.conv2(F.relu(self.bn2(out)))
        out = self.conv3(F.relu(self.bn3(out)))
        return out + (self.downsample(x) if self.downsample is not None else x)


def selection_entries(depth: int, cfg: list, selection: bool) -> list:
    """The cfg's sel entries (every block's, then the final BN's); without selection they can only
    be the stream widths, and become None (no selection module)."""
    picks = list(cfg[::3])
    if selection:
        return picks
    if picks != stream_widths(depth):
        raise ValueError(f"a PreResNet without channel selection needs the stream widths as sel entries, got {picks}")
    return [None] * len(picks)


class PreResNet(nn.Module):
    def __init__(self, depth: int = 164, cfg: list | None = None, num_classes: int = 10, source: str = "slimming"):
        super().__init__()
        n = blocks_per_stage(depth)
        self.depth, self.selection = depth, check_source(source) == "slimming"
        self.cfg = list(cfg) if cfg is not None else default_cfg(depth)
        if len(self.cfg) != 9 * n + 1:
            raise ValueError(f"PreResNet-{depth} cfg needs {9 * n + 1} entries, got {len(self.cfg)}")
        sels = selection_entries(depth, self.cfg, self.selection)
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        c_in = 16
        for s, planes in enumerate(STAGE_PLANES):
            blocks = []
            for b in range(n):
                i = s * n + b
                stride = 2 if (s > 0 and b == 0) else 1
                blocks.append(Bottleneck(c_in, planes, [sels[i], *self.cfg[3 * i + 1 : 3 * i + 3]], stride, project=b == 0))
                c_in = planes * EXPANSION
            self.add_module(f"layer{s + 1}", nn.Sequential(*blocks))
        self.bn = nn.BatchNorm2d(c_in)
        self.select = None if sels[-1] is None else ChannelSelection.from_cfg(sels[-1], c_in)
        self.fc = nn.Linear(c_in if self.select is None else self.select.out_channels, num_classes)
        reference_init(self, BN_GAMMA[source], linear=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer3(self.layer2(self.layer1(self.conv1(x))))
        x = F.relu(_select(self.select, self.bn(x)))
        x = F.adaptive_avg_pool2d(x, 1)
        return self.fc(torch.flatten(x, 1))

    def channel_groups(self) -> list[ChannelGroup]:
        """Per block: bn1's selection, conv1's outputs (bn2), conv2's outputs (bn3); then the final
        BN's selection. Without selection modules only the conv groups, numbered 1, 2, ..."""
        n = blocks_per_stage(self.depth)
        streams = stream_widths(self.depth)
        specs = []  # (name, stage, bn, producers, consumer, selection)
        for i in range(3 * n):
            blk = f"layer{i // n + 1}.{i % n}"
            specs.append((f"{blk}.select", i // n, f"{blk}.bn1", (), f"{blk}.conv1", True))
            for conv, bn, nxt in (("conv1", "bn2", "conv2"), ("conv2", "bn3", "conv3")):
                producers = ((f"{blk}.{conv}.weight", 0),) + bn_keys(f"{blk}.{bn}")
                specs.append((f"{blk}.{conv}", i // n, f"{blk}.{bn}", producers, f"{blk}.{nxt}", False))
        specs.append(("select", 2, "bn", (), "fc", True))
        groups = []
        for j, (name, stage, bn, producers, consumer, selection) in enumerate(specs):
            if selection and not self.selection:
                continue
            groups.append(
                ChannelGroup(
                    name=name,
                    cfg_index=j,
                    layer_id=len(groups) + 1,
                    stage=stage,
                    width=streams[j // 3] if selection else self.cfg[j],
                    bn=bn,
                    producers=producers,
                    consumers=((f"{consumer}.weight", 1),),
                    selection=selection,
                )
            )
        return groups
