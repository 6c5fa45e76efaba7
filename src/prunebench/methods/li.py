"""Li et al.'s analyses as pruning methods, so their retrained points are ordinary runs (the
prune, fine-tune and evaluate rules) of the ``li`` study (:mod:`prunebench.studies.analyses`).

``layer``        one layer alone: setting ``<layer>_<ratio>_<criterion>`` (``8_0.5_l1``) removes
                 that fraction of Li's layer ``8`` by a criterion of the registry (Fig. 2c; an
                 activation criterion ranks on the training data, Fig. 9).
``consecutive``  every prunable layer at one ratio: ``<ratio>_<strategy>`` (``0.5_greedy``),
                 L1 ranked independently or greedily (section 3.3, Fig. 3).
``layerwise``    prune and retrain layer by layer (section 3.4): ``<variant>_<k>`` prunes the k-th
                 layer the variant prunes (network order) from step k-1's fine-tuned network, so the
                 last step is the variant, reached after k fine-tunings.
"""

from __future__ import annotations

import functools

from torch import nn

from prunebench import models
from prunebench.core.errors import UserError
from prunebench.pruning import ACTIVATION_CRITERIA, CRITERIA, STRATEGIES, kept_count, layer_ratios, select_filters, variant_spec

from . import Method, Pruned, register
from .predefined import parse_ratio, uniform_cfg


def _register(name: str, summary: str, parse, prune, scratch_cfg, **extra) -> None:
    """A method of the analyses: a plain base, a predefined architecture, one fine-tuned arm."""
    check = lambda arch, setting: parse(arch, setting) and None  # noqa: E731
    register(Method(name=name, summary=summary, base="plain", learned=False, check_setting=check, prune=prune, scratch_cfg=scratch_cfg, arms=("finetune",), **extra))


@functools.cache
def prunable(arch: str) -> dict[int, str]:
    """Li's layer number -> channel group name, of the groups filters are removed from."""
    groups = {g.layer_id: g.name for g in models.skeleton(arch).channel_groups() if not g.selection}
    if not groups:
        raise UserError(f"{arch} has no filter groups to prune one at a time; choose vgg16, resnet56 or resnet110")
    return groups


@functools.cache
def _groups(arch: str):
    return {g.name: g for g in models.skeleton(arch).channel_groups()}


# --------------------------------------------------------------------------- layer
def parse_layer_setting(arch: str, setting: str) -> tuple[int, float, str]:
    """``8_0.5_l1`` -> (8, 0.5, "l1"), checked against the arch's layers and the criteria."""
    parts = str(setting).split("_", 2)
    if len(parts) != 3 or not parts[0].isdigit():
        raise UserError(f"setting {setting!r} is not LAYER_RATIO_CRITERION; use e.g. 8_0.5_l1 (Li's layer 8, 50 %, L1 norm)")
    layer, ratio, criterion = int(parts[0]), parse_ratio(parts[1], low_open=True), parts[2]
    if layer not in prunable(arch):
        raise UserError(f"{arch} has no prunable layer {layer}; its layers are {', '.join(map(str, prunable(arch)))}")
    if criterion not in CRITERIA:
        raise UserError(f"unknown criterion {criterion!r} in {setting!r}; choose one of {', '.join(CRITERIA)}")
    kept_count(_groups(arch)[prunable(arch)[layer]], ratio)
    return layer, ratio, criterion


def _layer_prune(model: nn.Module, arch: str, setting: str, seed: int, activations: dict | None = None) -> Pruned:
    layer, ratio, criterion = parse_layer_setting(arch, setting)
    ratios = {prunable(arch)[layer]: ratio}
    return Pruned(select_filters(model, ratios, criterion, seed, activations=activations), ratios)


def _layer_cfg(arch: str, setting: str) -> list:
    layer, ratio, _ = parse_layer_setting(arch, setting)
    g = _groups(arch)[prunable(arch)[layer]]
    cfg = models.default_cfg(arch)
    cfg[g.cfg_index] = kept_count(g, ratio)
    return cfg


_register(
    "layer",
    "one layer pruned alone by a criterion (Li et al.'s sensitivity, retrained)",
    parse_layer_setting,
    _layer_prune,
    _layer_cfg,
    data_settings=rf"\d+_[0-9.]+_({'|'.join(ACTIVATION_CRITERIA)})",
)


# --------------------------------------------------------------------------- consecutive
def parse_consecutive_setting(arch: str, setting: str) -> tuple[float, str]:
    """``0.5_greedy`` -> (0.5, "greedy")."""
    ratio, _, strategy = str(setting).partition("_")
    if strategy not in STRATEGIES:
        raise UserError(f"setting {setting!r} is not RATIO_STRATEGY; use e.g. 0.5_greedy (strategies: {', '.join(STRATEGIES)})")
    ratio = parse_ratio(ratio, low_open=True)
    for name in prunable(arch).values():
        kept_count(_groups(arch)[name], ratio)
    return ratio, strategy


def _consecutive_prune(model: nn.Module, arch: str, setting: str, seed: int) -> Pruned:
    ratio, strategy = parse_consecutive_setting(arch, setting)
    ratios = {name: ratio for name in prunable(arch).values()}
    return Pruned(select_filters(model, ratios, "l1", seed, strategy=strategy), ratios)


_register(
    "consecutive",
    "every prunable layer at one ratio, L1 ranked independently or greedily (Li et al. section 3.3)",
    parse_consecutive_setting,
    _consecutive_prune,
    lambda arch, setting: uniform_cfg(arch, parse_consecutive_setting(arch, setting)[0]),
)


# --------------------------------------------------------------------------- layerwise
@functools.cache
def steps(arch: str, variant: str) -> list[tuple[str, float]]:
    """(group name, ratio) of every layer the variant prunes, in network order: one step each."""
    ratios = layer_ratios(models.skeleton(arch).channel_groups(), variant_spec(arch, variant))
    return [(name, r) for name, r in ratios.items() if r > 0]


def parse_step(arch: str, setting: str) -> tuple[str, int]:
    """``A_3`` -> ("A", 3): step 3 of variant A."""
    variant, _, k = str(setting).rpartition("_")
    if not variant or not k.isdigit():
        raise UserError(f"setting {setting!r} is not VARIANT_STEP; use e.g. A_3 (the third layer variant A prunes)")
    n = len(steps(arch, variant))
    if not 1 <= int(k) <= n:
        raise UserError(f"{arch}-{variant} prunes {n} layers one at a time; step {k} must be 1 to {n}")
    return variant, int(k)


def _previous_step(setting: str) -> str | None:
    variant, _, k = str(setting).rpartition("_")
    return f"{variant}_{int(k) - 1}" if k.isdigit() and int(k) > 1 else None


def _step_prune(model: nn.Module, arch: str, setting: str, seed: int) -> Pruned:
    """Step k: the k-th layer, ranked by L1 on step k-1's fine-tuned weights."""
    variant, k = parse_step(arch, setting)
    name, ratio = steps(arch, variant)[k - 1]
    ratios = {name: ratio}
    return Pruned(select_filters(model, ratios, "l1", seed), ratios)


def _step_cfg(arch: str, setting: str) -> list:
    variant, k = parse_step(arch, setting)
    groups, cfg = _groups(arch), models.default_cfg(arch)
    for name, ratio in steps(arch, variant)[:k]:
        cfg[groups[name].cfg_index] = kept_count(groups[name], ratio)
    return cfg


_register(
    "layerwise",
    "Li et al.'s variant reached by pruning and retraining one layer at a time (section 3.4)",
    parse_step,
    _step_prune,
    _step_cfg,
    prune_from="finetune",
    previous=_previous_step,
)
