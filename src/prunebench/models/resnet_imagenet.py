"""ImageNet ResNet-34 and ResNet-50 in torchvision's layout, as the Rethinking ImageNet folders use them.

Stem: 7x7 stride-2 conv (64) -> BN -> ReLU -> 3x3 stride-2 max-pool; four stages of [3, 4, 6, 3]
blocks at 64/128/256/512 planes; global average pool; FC. A block that changes width or map
size has a projection shortcut (1x1 conv + BN). Module names are torchvision's, so its
``resnet34`` and ``resnet50`` state_dicts load unchanged (the L1 and weight-level folders start
from those pretrained weights).

ResNet-34 (PROTOCOLS-IMAGENET 2.1), basic blocks. ``cfg`` is the 16 blocks' first-conv widths
(the reference's cfg, what Li et al.'s A and B prune), then the 4 stages' residual-stream widths:
the stream is written by every second conv of the stage and its projection (stage 1: by the
stem), so it is pruned as a whole, Li's ResNet-34-C (stage 3 to 204). The reference builds the
FC as ``Linear(cfg[-1], 1000)``, right only while the last first conv is unpruned; here it reads
the last stream.

ResNet-50 (2.3, 2.4, 2.7), bottlenecks of expansion 4. ``cfg`` is the thinet and regression
folders' [sel, c1, c2] per block: ``sel`` is the block input's width, or the kept indices of a
channel selection feeding conv1 only (regression pruning's ResNet-50-2x; the shortcut reads the
whole input); c1, c2 are the 1x1 and 3x3 conv widths; conv3 and the shortcut give 4 x planes.
Options, the reference definitions' differences:
  ``stride_on``        "3x3" (default: torchvision and the Rethinking PyTorch models, whose
                       Scratch-B epochs use it) or "1x1" (the original Caffe models of He et al.
                       and ThiNet: 7.716 G instead of 8.18 G reference-counter FLOPs)
  ``downsample_bias``  False (torchvision) or True (the thinet and regression folders'
                       projection convs have a bias: +3,840 parameters)

Init (every folder and torchvision): conv N(0, sqrt(2 / (k^2 C_out))), BN gamma 1 and beta 0,
the FC at PyTorch's default.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from .groups import ChannelGroup, bn_keys
from .init import reference_init
from .resnet import first_conv_groups
from .selection import ChannelSelection

BLOCKS = (3, 4, 6, 3)
PLANES = (64, 128, 256, 512)
EXPANSION = 4
STEM_WIDTH = 64
STRIDES_ON = ("3x3", "1x1")


def resnet34_cfg() -> list[int]:
    return [p for p, n in zip(PLANES, BLOCKS) for _ in range(n)] + list(PLANES)


def resnet50_cfg() -> list[int]:
    cfg, c_in = [], STEM_WIDTH
    for p, n in zip(PLANES, BLOCKS):
        for _ in range(n):
            cfg += [c_in, p, p]
            c_in = p * EXPANSION
    return cfg


def projection(c_in: int, c_out: int, stride: int, bias: bool = False) -> nn.Sequential:
    """The shortcut of a block that changes width or size (torchvision's ``downsample``)."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=bias), nn.BatchNorm2d(c_out))


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, mid: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, mid, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(mid, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.downsample = projection(c_in, c_out, stride) if stride != 1 or c_in != c_out else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """``cfg`` is [sel, c1, c2]; the ReLU module is called three times, as torchvision's is."""

    def __init__(self, c_in: int, cfg: list, c_out: int, stride: int, stride_on: str = "3x3", downsample_bias: bool = False):
        super().__init__()
        sel, c1, c2 = cfg
        s1, s3 = (stride, 1) if stride_on == "1x1" else (1, stride)
        self.select = ChannelSelection.from_cfg(sel, c_in)
        self.conv1 = nn.Conv2d(self.select.out_channels, c1, 1, stride=s1, bias=False)
        self.bn1 = nn.BatchNorm2d(c1)
        self.conv2 = nn.Conv2d(c1, c2, 3, stride=s3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c2)
        self.conv3 = nn.Conv2d(c2, c_out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        needs = stride != 1 or c_in != c_out
        self.downsample = projection(c_in, c_out, stride, downsample_bias) if needs else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(self.select(x))))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + identity)


# make_block(i, stage, b, c_in, stride) -> (block or None when the block is removed, c_out)
BlockMaker = Callable[[int, int, int, int, int], tuple[nn.Module | None, int]]


class ImageNetResNet(nn.Module):
    """The stem, then ``layer1``..``layer4`` and the head, which subclasses add."""

    image_size = 224  # the input its MACs are counted on (counting.input_size)

    def __init__(self, stem_width: int = STEM_WIDTH):
        super().__init__()
        self.conv1 = nn.Conv2d(3, stem_width, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem_width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)

    def add_stages(self, make_block: BlockMaker, c_in: int = STEM_WIDTH) -> int:
        """``layer1``..``layer4`` of BLOCKS blocks each, stride 2 at the start of stages 2-4; i counts
        blocks over the network, b within the stage. Returns the last stage's width."""
        i = 0
        for s, n in enumerate(BLOCKS):
            blocks = []
            for b in range(n):
                block, c_in = make_block(i, s, b, c_in, 2 if s > 0 and b == 0 else 1)
                blocks += [block] if block is not None else []
                i += 1
            self.add_module(f"layer{s + 1}", nn.Sequential(*blocks))
        return c_in

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.avgpool(self.features(x)), 1))


class ResNet34(ImageNetResNet):
    def __init__(self, cfg: list[int] | None = None, num_classes: int = 1000):
        cfg = list(cfg) if cfg is not None else resnet34_cfg()
        if len(cfg) != sum(BLOCKS) + len(BLOCKS):
            raise ValueError(f"ResNet-34 cfg needs 16 block widths and 4 stream widths, got {len(cfg)} entries")
        mids, streams = cfg[: sum(BLOCKS)], cfg[sum(BLOCKS) :]
        super().__init__(stem_width=streams[0])
        self.cfg = cfg

        def make_block(i: int, s: int, b: int, c_in: int, stride: int) -> tuple[nn.Module, int]:
            return BasicBlock(c_in, mids[i], streams[s], stride), streams[s]

        c_out = self.add_stages(make_block, streams[0])
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c_out, num_classes)
        reference_init(self, bn_gamma=1.0, linear=None)

    def blocks(self) -> list[tuple[str, int]]:
        return [(f"layer{s + 1}.{b}", s) for s, n in enumerate(BLOCKS) for b in range(n)]

    def channel_groups(self) -> list[ChannelGroup]:
        """Each block's first conv (Li's layer 2b for block b; stem = 1): ResNet-34-A and -B."""
        return first_conv_groups(self.blocks(), self.cfg)

    def stream_groups(self) -> list[ChannelGroup]:
        """Each stage's residual stream, named by the conv Li ranks it with: the stage's projection
        (the stem for stage 1, which has none). It is written by that conv and every second conv
        of the stage, and read by the stage's first convs (but the first block's of stages 2-4,
        which reads the stream before) and the next stage's first block (or the FC).
        ``layer_id`` is Li's id of the stage's first second conv."""
        groups = []
        for s, n in enumerate(BLOCKS):
            paths = [f"layer{s + 1}.{b}" for b in range(n)]
            head, head_bn = (f"{paths[0]}.downsample.0", f"{paths[0]}.downsample.1") if s else ("conv1", "bn1")
            producers = ((f"{head}.weight", 0),) + bn_keys(head_bn)
            for p in paths:
                producers += ((f"{p}.conv2.weight", 0),) + bn_keys(f"{p}.bn2")
            readers = [f"{p}.conv1" for p in (paths if s == 0 else paths[1:])]  # layer1.0 reads the stem
            readers += [f"layer{s + 2}.0.conv1", f"layer{s + 2}.0.downsample.0"] if s + 1 < len(BLOCKS) else ["fc"]
            groups.append(
                ChannelGroup(
                    name=head,
                    cfg_index=sum(BLOCKS) + s,
                    layer_id=2 * (sum(BLOCKS[:s]) + 1) + 1,
                    stage=s,
                    width=self.cfg[sum(BLOCKS) + s],
                    bn=head_bn,
                    producers=producers,
                    consumers=tuple((f"{r}.weight", 1) for r in readers),
                )
            )
        return groups


class ResNet50(ImageNetResNet):
    def __init__(self, cfg: list | None = None, num_classes: int = 1000, stride_on: str = "3x3", downsample_bias: bool = False):
        super().__init__()
        if stride_on not in STRIDES_ON:
            raise ValueError(f"ResNet-50 stride_on must be one of {STRIDES_ON}, got {stride_on!r}")
        self.cfg = list(cfg) if cfg is not None else resnet50_cfg()
        if len(self.cfg) != 3 * sum(BLOCKS):
            raise ValueError(f"ResNet-50 cfg needs [sel, c1, c2] for 16 blocks (48 entries), got {len(self.cfg)}")

        def make_block(i: int, s: int, b: int, c_in: int, stride: int) -> tuple[nn.Module, int]:
            c_out = PLANES[s] * EXPANSION
            return Bottleneck(c_in, self.cfg[3 * i : 3 * i + 3], c_out, stride, stride_on, downsample_bias), c_out

        c_out = self.add_stages(make_block)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c_out, num_classes)
        reference_init(self, bn_gamma=1.0, linear=None)

    def channel_groups(self) -> list[ChannelGroup]:
        """None: the predefined ResNet-50s are trained from their cfg, the torchvision one is
        pruned unstructured."""
        return []
