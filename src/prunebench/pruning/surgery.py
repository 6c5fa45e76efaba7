"""Physical pruning: build the smaller network and copy the kept weights into it.

Works for any model that declares ``channel_groups()``: every tensor slice a group names is
cut at the kept indices, everything else is copied as is. A selection group has no producers:
its cfg entry becomes the sorted list of kept indices, and only its consumers are cut. A
consumer that reads each channel as several inputs (a linear layer after a flatten: an
ImageNet VGG's 7x7 map gives 49 per channel) loses all of a removed channel's inputs.

The groups cut are those ``keep`` names among :func:`prunebench.models.cuttable_groups`: the
channel groups, and the residual streams of a model that declares them (Li's ResNet-34-C).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from prunebench import models
from prunebench.models import ChannelGroup, cuttable_groups


def _kept(model: nn.Module, g: ChannelGroup, keep: dict[str, torch.Tensor]) -> torch.Tensor:
    """The group's kept indices, sorted; refuses to re-prune a selection (not supported)."""
    if g.selection and not isinstance(model.cfg[g.cfg_index], int):
        raise ValueError(f"{g.name} is already a channel selection; pruning it again is not supported")
    return torch.as_tensor(keep[g.name], dtype=torch.long).sort().values


def _spread(idx: torch.Tensor, size: int, width: int) -> torch.Tensor:
    """The kept indices along a dim of ``size`` entries, ``size / width`` consecutive per channel."""
    per = size // width
    return idx if per == 1 else (idx[:, None] * per + torch.arange(per)).flatten()


def pruned_cfg(model: nn.Module, keep: dict[str, torch.Tensor]) -> list:
    cfg = list(model.cfg)
    for g in cuttable_groups(model):
        if g.name in keep:
            idx = _kept(model, g, keep)
            cfg[g.cfg_index] = [int(i) for i in idx] if g.selection else len(idx)
    return cfg


def prune(model: nn.Module, arch: str, keep: dict[str, torch.Tensor], num_classes: int, **options) -> nn.Module:
    """A new, smaller ``arch`` model holding ``model``'s weights at the kept channel indices."""
    state = {k: v.clone() for k, v in model.state_dict().items()}
    for g in cuttable_groups(model):
        if g.name not in keep:
            continue
        idx = _kept(model, g, keep)
        for key, dim in g.producers + g.consumers:
            cut = _spread(idx, state[key].shape[dim], g.width)
            state[key] = state[key].index_select(dim, cut.to(state[key].device))
    small = models.build(arch, pruned_cfg(model, keep), num_classes, **options)
    small.load_state_dict(state)
    return small


def masked_copy(model: nn.Module, keep: dict[str, torch.Tensor]) -> nn.Module:
    """The full-size model with every removed channel silenced (its ``silencing_keys`` zeroed).

    In eval mode its outputs equal those of ``prune(model, ...)``: the check that surgery is right.
    """
    masked = copy.deepcopy(model)
    params = dict(masked.named_parameters())
    with torch.no_grad():
        for g in cuttable_groups(masked):
            if g.name not in keep:
                continue
            drop = torch.ones(g.width, dtype=torch.bool)
            drop[keep[g.name]] = False
            for key in g.silencing_keys:
                params[key][drop.to(params[key].device)] = 0
    return masked
