"""Structured pruning: criteria (which filters), variants (how many, where), surgery (the cut)."""

from __future__ import annotations

import torch
from torch import nn

from .. import models
from ..errors import UserError
from .criteria import CRITERIA, keep_top
from .surgery import masked_copy, prune, pruned_cfg
from .variants import VARIANTS, kept_count, layer_ratios, variant_spec


def select_filters(
    model: nn.Module, ratios: dict[str, float], criterion: str = "l1", seed: int = 0
) -> dict[str, torch.Tensor]:
    """Kept filter indices per channel group, ranked on the unpruned weights (Li's 'independent')."""
    if criterion not in CRITERIA:
        raise UserError(f"unknown criterion {criterion!r}; choose one of {', '.join(CRITERIA)}")
    score = CRITERIA[criterion]
    generator = torch.Generator().manual_seed(seed)
    weights = dict(model.named_parameters())
    keep = {}
    for g in model.channel_groups():
        ratio = ratios.get(g.name, 0.0)
        n_keep = kept_count(g, ratio)
        if n_keep < g.width:
            keep[g.name] = keep_top(score(weights[g.weight_key].detach().cpu(), generator), n_keep)
    return keep


def variant_cfg(arch: str, variant: str | None, cfg: list | None = None) -> list:
    """The pruned cfg of a predefined variant (of ``cfg``, by default the full network's); it
    does not depend on the weights. No variant: the full cfg."""
    if cfg is None:
        cfg = models.default_cfg(arch)
    if variant is None:
        return list(cfg)
    model_groups = models.build(arch, cfg).channel_groups()
    ratios = layer_ratios(model_groups, variant_spec(arch, variant))
    out = list(cfg)
    for g in model_groups:
        out[g.cfg_index] = kept_count(g, ratios[g.name])
    return out


__all__ = [
    "CRITERIA",
    "VARIANTS",
    "layer_ratios",
    "masked_copy",
    "prune",
    "pruned_cfg",
    "select_filters",
    "variant_cfg",
    "variant_spec",
]
