"""Unstructured magnitude pruning as Rethinking's weight-level folder runs it (PROTOCOLS §5).

One global threshold over the absolute values of all conv weights (stem, shortcut and
transition convs included; linear and BatchNorm layers never) zeroes the setting's fraction of
them in the trained base. The network keeps its shape: the pruned file is the full model with
a mask per conv, fine-tuning keeps the masked weights at zero, and the scratch arms put the
same masks on a fresh init (:func:`prunebench.models.masks.scratch_init`).

A threshold that would empty a whole conv (possible at extreme ratios on a small stem) keeps
that conv's largest weight instead, so the network still depends on its input; prune.json
lists such layers under ``emptied``.
"""

from __future__ import annotations

from torch import nn

from prunebench.models import masks

from . import DEFAULT_ARMS, Method, Pruned, register
from .predefined import parse_ratio


def prune(model: nn.Module, arch: str, setting: str, seed: int) -> Pruned:
    ratio = parse_ratio(setting, low_open=True)
    found = masks.magnitude_masks(model, ratio)
    weights = masks.conv_weights(model)
    emptied = []
    for key, mask in found.items():
        if not mask.any():
            mask.view(-1)[masks.effective(weights[key]).detach().abs().flatten().argmax()] = True
            emptied.append(key)
    ratios = masks.pruned_ratios(found)
    return Pruned({}, ratios, {"global_ratio": ratio, "emptied": emptied}, masks=found)


register(
    Method(
        name="magnitude",
        summary="unstructured: one global magnitude threshold over all conv weights, masked",
        base="plain",
        learned=True,  # the scratch arms need the pruned file: its masks
        masked=True,
        check_setting=lambda arch, setting: parse_ratio(setting, low_open=True) and None,
        prune=prune,
        arms=DEFAULT_ARMS + ("winning",),
    )
)
