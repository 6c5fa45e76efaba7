"""Structured pruning: criteria (which filters), variants (how many, where), surgery (the cut).

The importance criterion is apart from the surgery: :mod:`.criteria` scores filters (a new
criterion is a few lines there), :mod:`.variants` holds Li et al.'s predefined per-layer ratios,
:func:`select_filters` ranks each channel group by a criterion, :mod:`.surgery` builds the smaller
network and copies the kept weights, :mod:`.folding` gives a filter-masked ResNet its physical
form, and :mod:`.activations` gathers the feature-map evidence of the activation criteria.
Imports :mod:`prunebench.models`, :mod:`prunebench.data` and :mod:`prunebench.core`.
"""

from __future__ import annotations

import torch
from torch import nn

from prunebench import models
from prunebench.core.errors import UserError

from .criteria import ACTIVATION_CRITERIA, CRITERIA, Evidence, keep_top
from .surgery import masked_copy, prune, pruned_cfg
from .variants import IMAGENET_VARIANTS, VARIANTS, kept_count, layer_ratios, variant_ratios, variant_spec

STRATEGIES = ("independent", "greedy")  # Li et al. section 3.3, Fig. 3


def select_filters(
    model: nn.Module,
    ratios: dict[str, float],
    criterion: str = "l1",
    seed: int = 0,
    strategy: str = "independent",
    activations: dict[str, dict[str, torch.Tensor]] | None = None,
) -> dict[str, torch.Tensor]:
    """Kept filter indices per channel group.

    ``independent`` (Li's default, the reference scripts') ranks every layer on its unpruned
    weights; ``greedy`` ranks a layer without the input kernels of maps already removed from the
    layer before it (groups are visited in network order). Activation criteria need
    ``activations`` (:func:`prunebench.pruning.activations.feature_map_stats`).
    """
    if criterion not in CRITERIA:
        raise UserError(f"unknown criterion {criterion!r}; choose one of {', '.join(CRITERIA)}")
    if strategy not in STRATEGIES:
        raise UserError(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    if criterion in ACTIVATION_CRITERIA and activations is None:
        raise UserError(f"criterion {criterion} ranks filters by their feature maps over the training set; pass the data")
    score = CRITERIA[criterion]
    generator = torch.Generator().manual_seed(seed)
    weights = dict(model.named_parameters())
    keep: dict[str, torch.Tensor] = {}
    kept_inputs: dict[str, torch.Tensor] = {}  # a conv weight -> the input channels left (greedy)
    for g in models.cuttable_groups(model):
        ratio = ratios.get(g.name, 0.0)
        n_keep = kept_count(g, ratio)
        if n_keep < g.width:
            weight = weights[g.weight_key].detach().cpu()
            if strategy == "greedy" and g.weight_key in kept_inputs:
                weight = weight.index_select(1, kept_inputs[g.weight_key])
            evidence = Evidence(weight, generator, activations.get(g.name) if activations else None)
            keep[g.name] = keep_top(score(evidence), n_keep)
            kept_inputs.update({key: keep[g.name] for key, dim in g.consumers if dim == 1})
    return keep


def variant_cfg(arch: str, variant: str | None, cfg: list | None = None) -> list:
    """The pruned cfg of a predefined variant (of ``cfg``, by default the full network's); it
    does not depend on the weights. No variant: the full cfg."""
    if cfg is None:
        cfg = models.default_cfg(arch)
    if variant is None:
        return list(cfg)
    model = models.build(arch, cfg)
    ratios = variant_ratios(model, variant_spec(arch, variant))
    out = list(cfg)
    for g in models.cuttable_groups(model):
        if g.name in ratios:
            out[g.cfg_index] = kept_count(g, ratios[g.name])
    return out


def labelled_cfg(label: str) -> list:
    """The cfg of a model named as the benchmarks name it: ``resnet56``, or ``resnet56-A`` for a
    variant; a one-line UserError for an unknown arch or variant."""
    arch, _, variant = label.partition("-")
    models.check_arch(arch)
    return variant_cfg(arch, variant or None)


__all__ = [
    "ACTIVATION_CRITERIA",
    "CRITERIA",
    "IMAGENET_VARIANTS",
    "STRATEGIES",
    "VARIANTS",
    "labelled_cfg",
    "layer_ratios",
    "masked_copy",
    "prune",
    "pruned_cfg",
    "select_filters",
    "variant_cfg",
    "variant_ratios",
    "variant_spec",
]
