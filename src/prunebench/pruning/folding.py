"""The physically pruned form of a filter-masked ResNet (soft filter pruning).

SFP zeroes conv filters but leaves the BatchNorm after them intact, so a zeroed inner filter of
a block does not silence its channel: after BN and ReLU the channel is the constant
``c = ReLU(beta - gamma * mean / sqrt(var + eps))`` (eval mode). Removing the channel from
conv1 (and from conv2's input) therefore needs conv2's response to that constant map, zero
padding included, as a fixed offset: :func:`physical` computes it into the ``offset`` buffer of
a ResNet built with ``dead_offsets=True``. In eval mode the small network then equals the
masked one up to float rounding.

Only a block's inner channels (its conv1 groups) can go: the stem and conv2 outputs feed the
parameter-free residual stream, so their zeroed filters stay, as masks on the small network.
Its MACs are checked against an independent count on the masked network: the non-zero weights
once conv2's inputs from removed channels are zeroed too.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from prunebench import models
from prunebench.models import masks
from prunebench.models.counting import count_macs

from .surgery import prune as cut


def dead_filters(model: nn.Module) -> dict[str, torch.Tensor]:
    """Per channel group (a block's conv1), the indices of its filters that are entirely zero."""
    weights = {k: masks.effective(m).detach() for k, m in masks.conv_weights(model).items()}
    dead = {}
    for g in model.channel_groups():
        zero = ~(weights[g.weight_key].flatten(1) != 0).any(1)
        if zero.any():
            dead[g.name] = zero.nonzero().flatten()
    return dead


@torch.no_grad()
def physical(model: nn.Module, arch: str, num_classes: int, options: dict) -> nn.Module:
    """The small ResNet without the zeroed inner channels of ``model`` (a filter-masked ResNet)."""
    dead = dead_filters(model)
    groups = {g.name: g for g in model.channel_groups()}
    keep = {}
    for name, idx in dead.items():
        alive = torch.ones(groups[name].width, dtype=torch.bool)
        alive[idx] = False
        keep[name] = alive.nonzero().flatten()
    dtype = next(model.parameters()).dtype  # float64 for an exact check (checks.physical_checks)
    plain = models.build(arch, model.cfg, num_classes, **options).to(dtype)
    plain.load_state_dict(masks.plain_state_dict(model))
    plain.eval()
    cut_model = cut(plain, arch, keep, num_classes, **options)
    small = models.build(arch, cut_model.cfg, num_classes, **{**options, "dead_offsets": True}).to(dtype)
    missing, unexpected = small.load_state_dict(cut_model.state_dict(), strict=False)
    assert not unexpected and all(k.endswith(".offset") for k in missing), (missing, unexpected)
    modules = dict(plain.named_modules())
    small_modules = dict(small.named_modules())
    for name, idx in dead.items():
        block = name.rsplit(".", 1)[0]
        bn, conv2 = modules[f"{block}.bn1"], modules[f"{block}.conv2"]
        size = small_modules[block].offset.shape[-1]
        constant = F.relu(bn(torch.zeros(1, bn.num_features, size, size, dtype=dtype)))[:, idx]
        small_modules[block].offset.copy_(F.conv2d(constant, conv2.weight[:, idx], padding=conv2.padding)[0])
    leftover = {k: m for k, m in masks.zero_pattern(small).items() if not m.all()}
    if leftover:
        masks.apply(small, leftover)  # the stem's and conv2's zeroed filters
    return small.eval()


def macs_without_dead_inputs(model: nn.Module) -> int:
    """MACs of the masked network's non-zero weights once the weights reading a removed inner
    channel are zeroed too: what the physically pruned network must count."""
    copy_ = masks.clone(model)
    convs = dict(copy_.named_modules())
    with torch.no_grad():
        for name, idx in dead_filters(copy_).items():
            conv2 = convs[f"{name.rsplit('.', 1)[0]}.conv2"]
            masks.weight_param(conv2)[:, idx] = 0
    return count_macs(copy_, sparse=True)
