"""Li et al.'s predefined pruned architectures as data (PROTOCOLS section 8, PROTOCOLS-IMAGENET 2.1).

A variant names, per prunable layer (Li's conv numbering, stem = 1), the fraction of filters
to remove: either ``layers`` (layer id -> ratio) or ``stage_ratios`` (one ratio per stage)
minus the ``skip`` list of sensitive layers; ``streams`` (one ratio per stage) prunes the
residual streams a model declares in ``stream_groups()`` (ResNet-34-C). Kept filters =
int(C * (1 - ratio)).

The ImageNet ResNet-34 variants are kept apart in ``IMAGENET_VARIANTS``: ``VARIANTS`` are the
CIFAR ones the studies and Table 1 use.
"""

from __future__ import annotations

from torch import nn

from prunebench.core.errors import UserError
from prunebench.models import ChannelGroup

VARIANTS: dict[str, dict[str, dict]] = {
    "vgg16": {
        "A": {"layers": {1: 0.5, 8: 0.5, 9: 0.5, 10: 0.5, 11: 0.5, 12: 0.5, 13: 0.5}},
    },
    "resnet56": {
        "A": {"skip": [16, 20, 38, 54], "stage_ratios": [0.1, 0.1, 0.1]},
        "B": {"skip": [16, 18, 20, 34, 38, 54], "stage_ratios": [0.6, 0.3, 0.1]},
    },
    "resnet110": {
        "A": {"skip": [36], "stage_ratios": [0.5, 0.0, 0.0]},
        "B": {"skip": [36, 38, 74], "stage_ratios": [0.5, 0.4, 0.3]},
    },
}


# Li Table 1 via the L1 folder's prune.py (A, B); C, which the reference lacks, prunes the
# stage-3 residual stream by 20 % (256 -> 204), the reading that matches Li's reductions.
IMAGENET_VARIANTS: dict[str, dict[str, dict]] = {
    "resnet34": {
        "A": {"skip": [2, 8, 14, 16, 26, 28, 30, 32], "stage_ratios": [0.3, 0.3, 0.3, 0.0]},
        "B": {"skip": [2, 8, 14, 16, 26, 28, 30, 32], "stage_ratios": [0.5, 0.6, 0.4, 0.0]},
        "C": {"streams": [0.0, 0.0, 0.2, 0.0]},
    },
}


def variant_spec(arch: str, variant: str) -> dict:
    every = {**VARIANTS, **IMAGENET_VARIANTS}
    if variant not in every.get(arch, {}):
        known = ", ".join(f"{a}-{v}" for a, vs in every.items() for v in vs)
        raise UserError(f"unknown pruned variant {arch}-{variant}; known variants: {known}")
    return every[arch][variant]


def layer_ratios(groups: list[ChannelGroup], spec: dict) -> dict[str, float]:
    """The pruning ratio of every channel group (0 for the layers the variant leaves alone)."""
    skip = set(spec.get("skip", ()))
    ratios = {}
    for g in groups:
        if "layers" in spec:
            r = spec["layers"].get(g.layer_id, 0.0)
        else:
            r = 0.0 if g.layer_id in skip or "stage_ratios" not in spec else spec["stage_ratios"][g.stage]
        ratios[g.name] = float(r)
    return ratios


def variant_ratios(model: nn.Module, spec: dict) -> dict[str, float]:
    """The ratio of every group a variant sizes: the channel groups, and the residual streams
    when the variant prunes them."""
    ratios = layer_ratios(model.channel_groups(), spec)
    if "streams" in spec:
        ratios.update({g.name: float(spec["streams"][g.stage]) for g in model.stream_groups()})
    return ratios


def kept_count(group: ChannelGroup, ratio: float) -> int:
    if not 0.0 <= ratio < 1.0:
        raise UserError(f"pruning ratio {ratio} for layer {group.name} is outside [0, 1); use a fraction such as 0.5")
    n = int(group.width * (1.0 - ratio))
    if n < 1:
        raise UserError(
            f"pruning ratio {ratio} empties layer {group.name} ({group.width} filters); use a smaller ratio"
        )
    return n
