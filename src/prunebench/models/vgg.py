"""CIFAR VGG-16/19 with either Rethinking head: Li et al.'s (L1 folder) or network slimming's.

Unit: 3x3 conv (pad 1) -> BN -> ReLU; 'M' is a 2x2 max-pool; then AvgPool2d(2) and flatten.
Heads (PROTOCOLS section 2):
  "li"      Linear(C_last, 512) -> BN1d -> ReLU -> Linear(512, classes)   (Li's VGG-16)
  "linear"  Linear(C_last, classes)                  (the slimming and weight-level VGG-19)
The L1 reference never initialises the head's BN1d, so it kept the PyTorch 0.3/0.4 default:
scale uniform in [0, 1), shift 0 (``head_bn_init="uniform"``); "ones" is today's default.

``source`` is the folder whose copy of the network this is (PROTOCOLS section 1, 'Weight init'):
  "slimming"     (also the L1 folder's) convs without bias, N(0, sqrt(2 / (k^2 C_out))), BN2d gamma 0.5
  "weightlevel"  (bearpaw's vgg19_bn) convs with a zero bias, N(0, sqrt(2 / (k^2 C_in))), gamma 1
Linear layers are N(0, 0.01) with zero bias in both.
"""

from __future__ import annotations

import torch
from torch import nn

from .groups import ChannelGroup, bn_keys
from .init import BN_GAMMA, check_source, reference_init

CFGS = {
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512],
    19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512],
}
HEADS = ("li", "linear")
HEAD_BN_INITS = ("uniform", "ones")


def make_head(c_in: int, num_classes: int, head: str, head_bn_init: str) -> nn.Sequential:
    """The classifier; a Sequential either way, so the first linear is ``classifier.0``."""
    if head == "linear":
        return nn.Sequential(nn.Linear(c_in, num_classes))
    if head != "li":
        raise ValueError(f"VGG head must be one of {HEADS}, got {head!r}")
    if head_bn_init not in HEAD_BN_INITS:
        raise ValueError(f"VGG head_bn_init must be one of {HEAD_BN_INITS}, got {head_bn_init!r}")
    bn = nn.BatchNorm1d(512)
    if head_bn_init == "uniform":
        nn.init.uniform_(bn.weight)
    return nn.Sequential(nn.Linear(c_in, 512), bn, nn.ReLU(inplace=True), nn.Linear(512, num_classes))


def make_features(cfg: list, batch_norm: bool = True, bias: bool = False) -> tuple[nn.Sequential, int]:
    """The conv part and its output width: per width a 3x3 conv (pad 1) [-> BN] -> ReLU, per 'M' a
    2x2 max-pool (torchvision's ``make_layers`` layout, so its ``features.N`` keys)."""
    layers: list[nn.Module] = []
    c_in = 3
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers.append(nn.Conv2d(c_in, v, 3, padding=1, bias=bias))
            layers += [nn.BatchNorm2d(v), nn.ReLU(inplace=True)] if batch_norm else [nn.ReLU(inplace=True)]
            c_in = v
    return nn.Sequential(*layers), c_in


def conv_groups(features: nn.Sequential, cfg: list, last_consumer: str) -> list[ChannelGroup]:
    """Every conv's output channels (its bias too, if any): its BN, and the next conv (the last
    one: ``last_consumer``, the first FC's weight) as consumer."""
    convs = [(i, m) for i, m in enumerate(features) if isinstance(m, nn.Conv2d)]
    cfg_pos = [j for j, v in enumerate(cfg) if v != "M"]
    groups = []
    for n, (i, conv) in enumerate(convs):
        consumer = f"features.{convs[n + 1][0]}.weight" if n + 1 < len(convs) else last_consumer
        params = ("weight", "bias") if conv.bias is not None else ("weight",)
        groups.append(
            ChannelGroup(
                name=f"features.{i}",
                cfg_index=cfg_pos[n],
                layer_id=n + 1,
                stage=cfg[: cfg_pos[n]].count("M"),
                width=conv.out_channels,
                bn=f"features.{i + 1}",
                producers=tuple((f"features.{i}.{p}", 0) for p in params) + bn_keys(f"features.{i + 1}"),
                consumers=((consumer, 1),),
            )
        )
    return groups


class VGG(nn.Module):
    def __init__(
        self, cfg: list, num_classes: int = 10, head: str = "li", head_bn_init: str = "uniform", source: str = "slimming"
    ):
        super().__init__()
        self.cfg = list(cfg)
        bias = check_source(source) == "weightlevel"
        self.features, c_in = make_features(self.cfg, bias=bias)
        self.pool = nn.AvgPool2d(2)
        self.classifier = make_head(c_in, num_classes, head, head_bn_init)
        reference_init(self, BN_GAMMA[source], linear=0.01, conv_fan="in" if bias else "out")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.features(x))
        return self.classifier(torch.flatten(x, 1))

    def channel_groups(self) -> list[ChannelGroup]:
        """Every conv's output channels; the last conv's consumer is the head's first linear."""
        return conv_groups(self.features, self.cfg, "classifier.0.weight")
