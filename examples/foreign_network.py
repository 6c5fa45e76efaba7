"""A network of your own, not one of prunebench's, pruned by your own code and saved whole:
prunebench trains the pruned module as it is (fine-tuned from your weights; Scratch-E and
Scratch-B from a fresh draw of its own layers by the study's family's init rule) and counts it
against the full network ``full`` returns.

    python -c "from examples.foreign_network import save_pruned; save_pruned('plainnet-half.pt')"
    prunebench prune --model results/.../base/seed1/model.pt --pruned-module plainnet-half.pt \\
        --reference examples.foreign_network:full --setting half --out pruned.pt --report prune.json

Save from an importable module (as here), not from a script run as ``__main__``: a whole module
is a pickle that names its classes by their import path.
"""

from __future__ import annotations

import torch
from torch import nn


class PlainNet(nn.Module):
    """Your own CIFAR network: conv-BN-ReLU-pool stages, global average pooling, a linear head."""

    def __init__(self, widths: tuple[int, ...] = (32, 64, 128), num_classes: int = 10):
        super().__init__()
        layers, c_in = [], 3
        for width in widths:
            layers += [nn.Conv2d(c_in, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            c_in = width
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x).mean(dim=(2, 3)))


def full() -> PlainNet:
    """The reference network: what the pruned module was cut from."""
    return PlainNet()


def half(model: PlainNet) -> PlainNet:
    """Your pruning code: keep the half of each stage's filters with the largest L1 norms."""
    convs = [m for m in model.body if isinstance(m, nn.Conv2d)]
    bns = [m for m in model.body if isinstance(m, nn.BatchNorm2d)]
    keeps = [conv.weight.abs().sum(dim=(1, 2, 3)).argsort(descending=True)[: conv.out_channels // 2].sort().values for conv in convs]
    small = PlainNet(tuple(len(k) for k in keeps), model.head.out_features)
    small_convs = [m for m in small.body if isinstance(m, nn.Conv2d)]
    small_bns = [m for m in small.body if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        previous = torch.arange(3)
        for conv, bn, keep, to_conv, to_bn in zip(convs, bns, keeps, small_convs, small_bns):
            to_conv.weight.copy_(conv.weight[keep][:, previous])
            for name in ("weight", "bias", "running_mean", "running_var"):
                getattr(to_bn, name).copy_(getattr(bn, name)[keep])
            previous = keep
        small.head.weight.copy_(model.head.weight[:, previous])
        small.head.bias.copy_(model.head.bias)
    return small


def save_pruned(path: str, trained: str | None = None) -> None:
    """Prune your trained network (``trained``: a torch.save'd PlainNet; a fresh one if None) and
    save the pruned module whole, as prunebench reads it."""
    model = torch.load(trained, weights_only=False) if trained else full()
    torch.save(half(model.eval()), path)
