"""CIFAR ResNet-20/32/56/110 (He et al.) as in Li et al. and the L1-norm folder of Rethinking.

Depth 6n+2: a 3x3 stem of 16 channels, three stages of n post-activation basic blocks with
16/32/64 output channels, global average pooling and one linear layer. The shortcut is
option A (no parameters): a 2x2 average pool (the L1 reference) or a stride-2 subsample
(the SFP reference) followed by zero channel padding. The L1 reference builds that padded
tensor from the input's ``.data``, so no gradient flows through the shortcut of the two
downsampling blocks (identity shortcuts do pass it); ``shortcut_grad=False`` reproduces this,
True lets the gradient through. Forward outputs are the same either way.

``cfg`` holds each block's first-conv width, the only width Li et al. prune on CIFAR: the
second conv must match the parameter-free shortcut.

Init (both folders): conv N(0, sqrt(2 / (k^2 C_out))), BN gamma 1 and beta 0. The linear layer
keeps PyTorch's default in the L1 reference (``fc_init="default"``); the SFP reference draws it
with ``kaiming_normal_`` and a zero bias (``fc_init="kaiming"``).

``dead_offsets=True`` gives every block a constant ``offset`` buffer added to conv2's output:
the physically pruned form of a soft-filter-pruned network. SFP zeroes conv weights only, so
a removed inner channel still outputs the constant ReLU(BN(0)); its effect on conv2 (a fixed
map, zero padding included) moves into the offset, and the small network computes exactly
what the masked one does in eval mode (:mod:`prunebench.pruning.folding`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .groups import ChannelGroup, bn_keys
from .init import reference_init

STAGE_WIDTHS = (16, 32, 64)
IMAGE_SIZE = 32  # CIFAR: the offsets of ``dead_offsets`` have the stages' map sizes
FC_INITS = {"default": None, "kaiming": "kaiming"}  # option value -> reference_init's ``linear``


def default_cfg(depth: int) -> list[int]:
    n = blocks_per_stage(depth)
    return [w for w in STAGE_WIDTHS for _ in range(n)]


def blocks_per_stage(depth: int) -> int:
    if (depth - 2) % 6:
        raise ValueError(f"CIFAR ResNet depth must be 6n+2, got {depth}")
    return (depth - 2) // 6


class ShortcutA(nn.Module):
    """Parameter-free shortcut: downsample spatially, then pad the new channels with zeros.

    ``grad=False`` detaches the input, as the L1 reference's ``.data`` does.
    """

    def __init__(self, stride: int, extra_channels: int, mode: str = "avgpool", grad: bool = True):
        super().__init__()
        self.stride, self.extra, self.mode, self.grad = stride, extra_channels, mode, grad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.grad:
            x = x.detach()
        if self.stride > 1:
            x = F.avg_pool2d(x, self.stride) if self.mode == "avgpool" else x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.extra)) if self.extra else x


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, mid: int, c_out: int, stride: int, shortcut: str, shortcut_grad: bool, offset_size: int = 0):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, mid, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        needs_shortcut = stride != 1 or c_in != c_out
        self.shortcut = ShortcutA(stride, c_out - c_in, shortcut, shortcut_grad) if needs_shortcut else nn.Identity()
        # What removed inner channels contributed to conv2 (see ResNet's ``dead_offsets``).
        self.offset = nn.Buffer(torch.zeros(c_out, offset_size, offset_size)) if offset_size else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(F.relu(self.bn1(self.conv1(x))))
        if self.offset is not None:
            out = out + self.offset
        return F.relu(self.bn2(out) + self.shortcut(x))


class ResNet(nn.Module):
    def __init__(
        self,
        depth: int,
        cfg: list[int] | None = None,
        num_classes: int = 10,
        shortcut: str = "avgpool",
        shortcut_grad: bool = False,
        fc_init: str = "default",
        dead_offsets: bool = False,
    ):
        super().__init__()
        if shortcut not in ("avgpool", "subsample"):
            raise ValueError(f"shortcut must be 'avgpool' or 'subsample', got {shortcut!r}")
        if fc_init not in FC_INITS:
            raise ValueError(f"fc_init must be one of {tuple(FC_INITS)}, got {fc_init!r}")
        n = blocks_per_stage(depth)
        self.depth, self.shortcut, self.shortcut_grad = depth, shortcut, shortcut_grad
        self.cfg = list(cfg) if cfg is not None else default_cfg(depth)
        if len(self.cfg) != 3 * n:
            raise ValueError(f"ResNet-{depth} cfg needs {3 * n} block widths, got {len(self.cfg)}")
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        c_in, i = 16, 0
        for s, width in enumerate(STAGE_WIDTHS):
            blocks = []
            for b in range(n):
                stride = 2 if (s > 0 and b == 0) else 1
                size = IMAGE_SIZE >> s if dead_offsets else 0
                blocks.append(BasicBlock(c_in, self.cfg[i], width, stride, shortcut, shortcut_grad, size))
                c_in, i = width, i + 1
            self.add_module(f"layer{s + 1}", nn.Sequential(*blocks))
        self.fc = nn.Linear(64, num_classes)
        reference_init(self, bn_gamma=1.0, linear=FC_INITS[fc_init])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        x = F.adaptive_avg_pool2d(x, 1)
        return self.fc(torch.flatten(x, 1))

    def channel_groups(self) -> list[ChannelGroup]:
        """The first conv of each block; Li et al. number it 2b for the b-th block (stem = 1)."""
        n = blocks_per_stage(self.depth)
        return first_conv_groups([(f"layer{i // n + 1}.{i % n}", i // n) for i in range(3 * n)], self.cfg)


def first_conv_groups(blocks: list[tuple[str, int]], cfg: list[int]) -> list[ChannelGroup]:
    """The first-conv group of each (block path, stage), in network order: what Li et al. prune in
    a ResNet (the block's second conv keeps the width its shortcut needs). Block b (1-based) has
    its first conv at Li's layer 2b, its width at ``cfg[b - 1]``."""
    return [
        ChannelGroup(
            name=f"{block}.conv1",
            cfg_index=i,
            layer_id=2 * (i + 1),
            stage=stage,
            width=cfg[i],
            bn=f"{block}.bn1",
            producers=((f"{block}.conv1.weight", 0),) + bn_keys(f"{block}.bn1"),
            consumers=((f"{block}.conv2.weight", 1),),
        )
        for i, (block, stage) in enumerate(blocks)
    ]
