"""Network slimming (Liu et al., ICCV 2017) as the Rethinking reference runs it (PROTOCOLS §3).

The base trains with an L1 penalty on every BatchNorm2d scale (``s * sign(gamma)`` added to its
gradient; ``s`` per model family in the config). Pruning takes |gamma| of all BatchNorm2d
layers together, sets one threshold at the setting's fraction of them and keeps the channels
above it. Each BatchNorm belongs to one channel group of the model, so the cut is the generic
surgery: VGG loses conv filters; PreResNet shrinks conv1/conv2 outputs and reads fewer channels
through its selection layers (bn1 and the final BN stay full); DenseNet only selects conv inputs.

A threshold that would empty a layer keeps that layer's highest-|gamma| channel instead (the
reference's physical pruning crashes there, at 60 % on PreResNet-164/CIFAR-100); prune.json
lists such layers under ``emptied``.
"""

from __future__ import annotations

import functools
import re

import torch
from torch import nn

from prunebench import models
from prunebench.core.errors import UserError

from . import Method, Pruned, register
from .predefined import parse_ratio

FAMILIES = ("vgg", "preresnet", "densenet")


def family(arch: str) -> str:
    """vgg19 -> vgg, preresnet164 -> preresnet: the key of the sparsity config."""
    return re.match(r"[a-z]+", arch).group(0)


def _check(arch: str, setting: str) -> None:
    if family(arch) not in FAMILIES or not _all_bn_grouped(arch):
        raise UserError(f"network slimming prunes {', '.join(FAMILIES)} models with every BatchNorm in a channel group, not {arch}")
    parse_ratio(setting, low_open=True)


@functools.cache
def _all_bn_grouped(arch: str) -> bool:
    """Whether every BatchNorm2d of ``arch`` scores a channel group (not so for preresnet110,
    which has no selection layers for its block-input BNs)."""
    model = models.skeleton(arch)
    covered = {g.bn for g in model.channel_groups()}
    return all(n in covered for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d))


def gammas(model: nn.Module) -> dict[str, torch.Tensor]:
    """|gamma| of the BatchNorm that scores each channel group, by group name."""
    modules = dict(model.named_modules())
    groups = model.channel_groups()
    covered = {g.bn for g in groups}
    loose = [n for n, m in modules.items() if isinstance(m, nn.BatchNorm2d) and n not in covered]
    if loose:
        raise UserError(f"network slimming needs every BatchNorm2d in a channel group; {loose[0]} is in none")
    return {g.name: modules[g.bn].weight.detach().abs().float().cpu() for g in groups}


def prune(model: nn.Module, arch: str, setting: str, seed: int) -> Pruned:
    ratio = parse_ratio(setting, low_open=True)
    scores = gammas(model)
    everything = torch.cat(list(scores.values())).sort().values
    threshold = everything[int(len(everything) * ratio)]
    keep, ratios, emptied = {}, {}, []
    for name, score in scores.items():
        kept = score > threshold
        if not kept.any():
            kept[score.argmax()] = True
            emptied.append(name)
        ratios[name] = 1.0 - kept.sum().item() / len(score)
        if not kept.all():
            keep[name] = kept.nonzero().flatten()
    notes = {"threshold": threshold.item(), "global_ratio": ratio, "emptied": emptied}
    return Pruned(keep, ratios, notes)


register(
    Method(
        name="slimming",
        summary="network slimming: L1 on BatchNorm scales, one global |gamma| threshold",
        base="sparsity",
        learned=True,
        check_setting=_check,
        prune=prune,
    )
)
