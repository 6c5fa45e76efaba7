"""ImageNet VGGs of the Rethinking ImageNet folders and torchvision (PROTOCOLS-IMAGENET 2.2, 2.4, 2.6, 2.7).

``cfg`` is the conv widths with 'M' for the 2x2 max-pools (the CIFAR VGGs' format, built by
:func:`.vgg.make_features`), then, for the heads that have them, the two hidden FC widths: the
network-slimming reference's format ``[c1, 'M', ..., 'M', f1, f2]``, since slimming prunes f1 and
f2 too. Heads:
  "fc"     Linear(C*7*7, f1) -> ReLU -> Dropout -> Linear(f1, f2) -> ReLU -> Dropout -> Linear(f2, classes)
           (torchvision; ThiNet's and regression pruning's ``vgg_official``)
  "fc_bn"  Linear(C*7*7, f1) -> BN1d -> ReLU -> Linear(f1, f2) -> BN1d -> ReLU -> Linear(f2, classes)
           (network slimming's VGG-11: no dropout, its BN1d scales are pruned like the conv ones)
  "gap"    global average pool -> Linear(C, classes)             (ThiNet-GAP and ThiNet-Tiny)
The FC heads read a 7x7 map: an adaptive pool to 7x7 (torchvision's; the identity at 224x224,
where the reference has none) lets smaller test inputs through. ThiNet's GAP is ``AvgPool2d(14, 2)``
on the 14x14 map, the same as the global pool at 224x224. No pool holds parameters or MACs.

Init (every folder, and torchvision): conv N(0, sqrt(2 / (k^2 C_out))) with a zero bias, BN
gamma ``bn_gamma`` (0.5 for slimming's BN2d and BN1d, else 1) and beta 0, linear N(0, 0.01)
with a zero bias.
"""

from __future__ import annotations

import torch
from torch import nn

from .groups import ChannelGroup, bn_keys
from .init import reference_init
from .vgg import conv_groups, make_features

CONVS = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
}
HIDDEN = [4096, 4096]
HEADS = ("fc", "fc_bn", "gap")


def default_cfg(depth: int) -> list:
    return CONVS[depth] + HIDDEN


def make_head(c_in: int, hidden: list[int], num_classes: int, head: str, bn_gamma: float) -> nn.Sequential:
    """The classifier, a Sequential so its layers have torchvision's keys (``classifier.0/3/6``)."""
    if head == "gap":
        return nn.Sequential(nn.Linear(c_in, num_classes))
    f1, f2 = hidden
    layers: list[nn.Module] = []
    for c, f in ((c_in * 7 * 7, f1), (f1, f2)):
        if head == "fc":
            layers += [nn.Linear(c, f), nn.ReLU(inplace=True), nn.Dropout(0.5)]
        else:
            bn = nn.BatchNorm1d(f)
            nn.init.constant_(bn.weight, bn_gamma)
            layers += [nn.Linear(c, f), bn, nn.ReLU(inplace=True)]
    return nn.Sequential(*layers, nn.Linear(f2, num_classes))


class ImageNetVGG(nn.Module):
    image_size = 224  # the input its MACs are counted on (counting.input_size)

    def __init__(self, cfg: list, num_classes: int = 1000, batch_norm: bool = True, head: str = "fc", bn_gamma: float = 1.0):
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"ImageNet VGG head must be one of {HEADS}, got {head!r}")
        self.cfg, self.head = list(cfg), head
        n_hidden = 0 if head == "gap" else 2
        convs, hidden = self.cfg[: len(self.cfg) - n_hidden], self.cfg[len(self.cfg) - n_hidden :]
        if not all(isinstance(f, int) for f in hidden) or any(v != "M" and not isinstance(v, int) for v in convs):
            raise ValueError(f"a VGG cfg with head {head!r} is conv widths and 'M', then {n_hidden} FC widths, got {cfg}")
        self.features, c_out = make_features(convs, batch_norm=batch_norm, bias=True)
        self.avgpool = nn.AdaptiveAvgPool2d(1 if head == "gap" else 7)
        self.classifier = make_head(c_out, hidden, num_classes, head, bn_gamma)
        reference_init(self, bn_gamma, linear=0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))

    def channel_groups(self) -> list[ChannelGroup]:
        """With BatchNorm: every conv's output channels and, in the "fc_bn" head, both hidden FC
        layers' (scored by their BN1d). The last conv feeds the first FC through the 7x7 flatten,
        49 inputs per channel; the surgery cuts them together. Without BN: none."""
        if not any(isinstance(m, nn.BatchNorm2d) for m in self.features):
            return []
        groups = conv_groups(self.features, self.cfg, "classifier.0.weight")
        if self.head != "fc_bn":
            return groups
        # classifier.0/3: the hidden linears, .1/.4 their BN1d, .3/.6 the next linears
        for k, (fc, bn, nxt) in enumerate(((0, 1, 3), (3, 4, 6))):
            j = len(self.cfg) - 2 + k
            groups.append(
                ChannelGroup(
                    name=f"classifier.{fc}",
                    cfg_index=j,
                    layer_id=len(groups) + 1,
                    stage=self.cfg.count("M"),
                    width=self.cfg[j],
                    bn=f"classifier.{bn}",
                    producers=((f"classifier.{fc}.weight", 0), (f"classifier.{fc}.bias", 0)) + bn_keys(f"classifier.{bn}"),
                    consumers=((f"classifier.{nxt}.weight", 1),),
                )
            )
        return groups


def vgg16_bn(cfg: list, num_classes: int = 1000) -> ImageNetVGG:
    """torchvision's ``vgg16_bn`` (the weight-level folder's VGG-16)."""
    return ImageNetVGG(cfg, num_classes, batch_norm=True)


def vgg16_nobn(cfg: list, num_classes: int = 1000, head: str = "fc") -> ImageNetVGG:
    """ThiNet's and regression pruning's ``vgg_official`` (torchvision's ``vgg16``), and with
    ``head="gap"`` ThiNet-GAP and -Tiny."""
    return ImageNetVGG(cfg, num_classes, batch_norm=False, head=head)


def vgg11_slimming(cfg: list, num_classes: int = 1000) -> ImageNetVGG:
    """Network slimming's VGG-11: BatchNorm1d in the head, BN gamma 0.5."""
    return ImageNetVGG(cfg, num_classes, batch_norm=True, head="fc_bn", bn_gamma=0.5)
