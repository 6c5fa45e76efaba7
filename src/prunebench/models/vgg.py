"""CIFAR VGG with the head of Li et al.'s VGG-16 (the L1-norm folder of Rethinking).

Unit: 3x3 conv (pad 1, no bias) -> BN -> ReLU; 'M' is a 2x2 max-pool; then AvgPool2d(2),
flatten, and the head Linear(C_last, 512) -> BN1d -> ReLU -> Linear(512, classes).
Init as the reference: conv N(0, sqrt(2 / (k^2 C_out))), BN2d gamma 0.5, linear N(0, 0.01).
"""

from __future__ import annotations

import torch
from torch import nn

from .groups import ChannelGroup, bn_keys
from .init import reference_init

CFGS = {
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512],
    19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512],
}


class VGG(nn.Module):
    def __init__(self, cfg: list, num_classes: int = 10):
        super().__init__()
        self.cfg = list(cfg)
        layers: list[nn.Module] = []
        c_in = 3
        for v in self.cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(c_in, v, 3, padding=1, bias=False), nn.BatchNorm2d(v), nn.ReLU(inplace=True)]
                c_in = v
        self.features = nn.Sequential(*layers)
        self.pool = nn.AvgPool2d(2)
        self.classifier = nn.Sequential(
            nn.Linear(c_in, 512), nn.BatchNorm1d(512), nn.ReLU(inplace=True), nn.Linear(512, num_classes)
        )
        reference_init(self, bn_gamma=0.5, linear_std=0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.features(x))
        return self.classifier(torch.flatten(x, 1))

    def channel_groups(self) -> list[ChannelGroup]:
        """Every conv's output channels: its BN, and the next conv (or the first FC) as consumer."""
        convs = [(i, m) for i, m in enumerate(self.features) if isinstance(m, nn.Conv2d)]
        cfg_pos = [j for j, v in enumerate(self.cfg) if v != "M"]
        groups, stage = [], 0
        for n, (i, conv) in enumerate(convs):
            stage = sum(1 for v in self.cfg[: cfg_pos[n]] if v == "M")
            consumer = f"features.{convs[n + 1][0]}.weight" if n + 1 < len(convs) else "classifier.0.weight"
            groups.append(
                ChannelGroup(
                    name=f"features.{i}",
                    cfg_index=cfg_pos[n],
                    layer_id=n + 1,
                    stage=stage,
                    width=conv.out_channels,
                    producers=((f"features.{i}.weight", 0),) + bn_keys(f"features.{i + 1}"),
                    consumers=((consumer, 1),),
                )
            )
        return groups
