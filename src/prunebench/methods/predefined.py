"""Predefined architectures (Li et al.): the setting fixes how many filters each layer keeps
before any training, and a criterion ranks which ones on the trained weights.

``l1`` is Li et al.'s method and Rethinking Table 1; ``l2``, ``random`` and ``smallest`` are
Li's criteria controls on the same variants; ``uniform`` removes one fraction (the setting, e.g.
``0.5``) of the filters of every prunable layer by L1 norm.
"""

from __future__ import annotations

import functools

from torch import nn

from prunebench import models
from prunebench.core.errors import UserError
from prunebench.pruning import ACTIVATION_CRITERIA, CRITERIA, IMAGENET_VARIANTS, VARIANTS, kept_count, select_filters, variant_cfg, variant_ratios, variant_spec

from . import Method, Pruned, register


def parse_ratio(setting: str, low_open: bool = False) -> float:
    """A setting that is a pruning ratio: a fraction in [0, 1) ((0, 1) with ``low_open``)."""
    try:
        ratio = float(setting)
    except (TypeError, ValueError):
        ratio = None
    if ratio is None or not (0.0 < ratio < 1.0 if low_open else 0.0 <= ratio < 1.0):
        bounds = "(0, 1)" if low_open else "[0, 1)"
        raise UserError(f"pruning ratio {setting!r} is not a fraction in {bounds}; use e.g. 0.4 for 40 %")
    return ratio


def _variant(criterion: str) -> Method:
    def prune(model: nn.Module, arch: str, setting: str, seed: int) -> Pruned:
        ratios = variant_ratios(model, variant_spec(arch, setting))
        return Pruned(select_filters(model, ratios, criterion, seed), ratios)

    return Method(
        name=criterion,
        summary=f"Li et al.'s predefined variants, filters ranked by {criterion}",
        base="plain",
        learned=False,
        check_setting=lambda arch, setting: variant_spec(arch, setting) and None,
        prune=prune,
        scratch_cfg=variant_cfg,
        archs=tuple(VARIANTS) + tuple(IMAGENET_VARIANTS),
    )


for _criterion in CRITERIA:
    if _criterion not in ACTIVATION_CRITERIA:  # those rank on data the prune step does not read
        register(_variant(_criterion))


def _uniform_ratios(arch: str, setting: str, groups) -> dict[str, float]:
    ratio = parse_ratio(setting)
    return {g.name: ratio for g in groups if not g.selection}


@functools.cache
def _has_groups(arch: str) -> bool:
    if not [g for g in models.skeleton(arch).channel_groups() if not g.selection]:
        raise UserError(f"uniform prunes the filters of channel groups; {arch} has none (prune it unstructured: method magnitude)")
    return True


def _uniform_prune(model: nn.Module, arch: str, setting: str, seed: int) -> Pruned:
    ratios = _uniform_ratios(arch, setting, model.channel_groups())
    return Pruned(select_filters(model, ratios, "l1", seed), ratios)


def _uniform_cfg(arch: str, setting: str) -> list:
    """The same ratios as ``_uniform_prune``, as widths: the architecture needs no weights."""
    return uniform_cfg(arch, parse_ratio(setting))


def uniform_cfg(arch: str, ratio: float) -> list:
    """The full cfg with ``ratio`` of every prunable group's filters removed."""
    cfg = models.default_cfg(arch)
    for g in models.build(arch, cfg).channel_groups():
        if not g.selection:
            cfg[g.cfg_index] = kept_count(g, ratio)
    return cfg


register(
    Method(
        name="uniform",
        summary="the same fraction of filters removed from every prunable layer, ranked by L1",
        base="plain",
        learned=False,
        check_setting=lambda arch, setting: _has_groups(arch) and parse_ratio(setting) and None,
        prune=_uniform_prune,
        scratch_cfg=_uniform_cfg,
    )
)
