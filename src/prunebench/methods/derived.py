"""Architecture sources: pruned architectures derived from other methods' results, never from a
trained model (Rethinking §7, pruning as architecture search; PROTOCOLS §7, UNCONFIRMED).

Each is a method whose setting names its source row, tokens joined by ``_``: a method and its
setting (``slimming_0.5``), for ``transferred`` after the source's dataset and arch
(``cifar10_vgg16_slimming_0.5``). Its "prune" step reads the source's prune.json reports and
writes a pruned file like any other (``prunebench derive``), so the scratch arms train it
unchanged:

- ``matched``: uniform pruning (one fraction of every prunable layer's channels) at the
  parameter count of the source's architecture, per seed: the baseline every searched
  architecture is compared with at equal parameters.
- ``guided``: every layer of a stage (the layers sharing a feature-map size) at the stage's
  average kept fraction of the source, averaged over all its seeds.
- ``transferred``: the same stage pattern, from another dataset and arch (VGG-16 on CIFAR-10
  applied to VGG-19 on CIFAR-100).
- ``randomsparse``: the unstructured analogue of uniform: every conv at the source's overall
  sparsity, at random positions.
- ``guidedsparse``: every conv at its stage's average sparsity of the source (over its seeds),
  at random positions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from prunebench import models
from prunebench.core.errors import UserError
from prunebench.data.datasets import DATASETS
from prunebench.models import masks

from . import Method, Pruned, get, names, register
from .predefined import uniform_cfg


@dataclass(frozen=True)
class Source:
    """A study row another method's architecture is derived from."""

    dataset: str
    arch: str
    method: str
    setting: str
    all_seeds: bool  # read every seed's report (stage averages), else the same seed's


@dataclass
class Derived:
    cfg: list | None = None  # a channel architecture (fresh weights)
    masks: dict[str, torch.Tensor] | None = None  # or masks on the full network
    notes: dict = field(default_factory=dict)


def split(setting: str) -> tuple[str, str]:
    """'slimming_0.5' -> ('slimming', '0.5'), checked against the method registry."""
    head, _, rest = str(setting).partition("_")
    if not rest or head not in names():
        raise UserError(f"architecture source {setting!r} is not METHOD_SETTING (e.g. slimming_0.5); METHOD is one of {', '.join(names())}")
    return head, rest


def split_transfer(setting: str) -> tuple[str, str, str, str]:
    """'cifar10_vgg16_slimming_0.5' -> ('cifar10', 'vgg16', 'slimming', '0.5')."""
    parts = str(setting).split("_", 2)
    if len(parts) < 3 or parts[0] not in DATASETS or parts[1] not in models.ARCHS:
        raise UserError(f"transfer source {setting!r} is not DATASET_ARCH_METHOD_SETTING (e.g. cifar10_vgg16_slimming_0.5)")
    method, rest = split(parts[2])
    return parts[0], parts[1], method, rest


def _check(arch: str, method: str, setting: str) -> None:
    m = get(method)
    m.check_arch(arch)
    m.check_setting(arch, setting)


# --------------------------------------------------------------------------- patterns
def stage_fractions(reports: list[dict]) -> dict[int, float]:
    """Kept fraction per stage over all layers and reports: sum(after) / sum(before)."""
    kept, full = {}, {}
    for rep in reports:
        for layer in rep["layers"]:
            if layer.get("selection"):
                continue
            stage = int(layer["stage"])
            kept[stage] = kept.get(stage, 0) + int(layer["after"])
            full[stage] = full.get(stage, 0) + int(layer["before"])
    return {s: kept[s] / full[s] for s in full}


def pattern_cfg(arch: str, fractions: dict[int, float]) -> list:
    """The full cfg with every prunable channel group at its stage's kept fraction."""
    cfg = models.default_cfg(arch)
    for g in models.build(arch, cfg).channel_groups():
        if g.selection:
            continue
        if g.stage not in fractions:
            raise UserError(f"the source pattern has no stage {g.stage} for {arch} (stages {sorted(fractions)}); transfer between nets with the same stages")
        cfg[g.cfg_index] = max(1, round(fractions[g.stage] * g.width))
    return cfg


def matched_ratio(arch: str, num_classes: int, options: dict, target: int) -> tuple[float, list, int]:
    """The uniform ratio whose architecture has the parameter count nearest ``target``."""
    from prunebench.models.counting import count_params

    def params(r: float) -> int:
        return count_params(models.build(arch, uniform_cfg(arch, r), num_classes, **options))

    smallest = min(g.width for g in models.build(arch).channel_groups() if not g.selection)
    lo, hi = 0.0, 1.0 - 1.001 / smallest  # the highest ratio that leaves every layer a filter
    for _ in range(25):  # params fall as the ratio rises
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if params(mid) > target else (lo, mid)
    best = min((lo, hi), key=lambda r: abs(params(r) - target))
    return round(best, 6), uniform_cfg(arch, best), params(best)


def random_masks(model: nn.Module, sparsity: Callable[[str], float], seed: int) -> dict[str, torch.Tensor]:
    """Per conv, exactly round(n * (1 - sparsity)) kept weights at random positions (at least 1)."""
    generator = torch.Generator().manual_seed(seed)
    out = {}
    for key, conv in masks.conv_weights(model).items():
        n = conv.weight.numel()
        keep = max(1, round(n * (1.0 - sparsity(key))))
        mask = torch.zeros(n, dtype=torch.bool)
        mask[torch.randperm(n, generator=generator)[:keep]] = True
        out[key] = mask.view_as(conv.weight)
    return out


def _layer_stages(reports: list[dict]) -> dict[str, int]:
    return {f"{layer['layer']}.weight": int(layer["stage"]) for layer in reports[0]["layers"]}


# --------------------------------------------------------------------------- the methods
def _matched(reports, arch, num_classes, setting, seed, options) -> Derived:
    target = int(reports[0]["params_after"])
    ratio, cfg, params = matched_ratio(arch, num_classes, options, target)
    return Derived(cfg=cfg, notes={"target_params": target, "uniform_ratio": ratio, "params_gap": params - target})


def _pattern(reports, arch, num_classes, setting, seed, options) -> Derived:
    fractions = stage_fractions(reports)
    return Derived(cfg=pattern_cfg(arch, fractions), notes={"stage_kept_fraction": {str(k): round(v, 6) for k, v in sorted(fractions.items())}, "source_seeds": len(reports)})


def _randomsparse(reports, arch, num_classes, setting, seed, options) -> Derived:
    kept = sum(int(layer["after"]) for layer in reports[0]["layers"])
    full = sum(int(layer["before"]) for layer in reports[0]["layers"])
    sparsity = 1.0 - kept / full
    model = models.build(arch, None, num_classes, **options)
    return Derived(masks=random_masks(model, lambda key: sparsity, seed), notes={"sparsity": round(sparsity, 6)})


def _guidedsparse(reports, arch, num_classes, setting, seed, options) -> Derived:
    fractions, stages = stage_fractions(reports), _layer_stages(reports)
    model = models.build(arch, None, num_classes, **options)
    found = random_masks(model, lambda key: 1.0 - fractions[stages[key]], seed)
    return Derived(masks=found, notes={"stage_sparsity": {str(k): round(1 - v, 6) for k, v in sorted(fractions.items())}, "source_seeds": len(reports)})


def _same_model(all_seeds: bool):
    def source(dataset: str, arch: str, setting: str) -> Source:
        method, rest = split(setting)
        return Source(dataset, arch, method, rest, all_seeds)

    def check(arch: str, setting: str) -> None:
        _check(arch, *split(setting))

    return source, check


def _transfer_source(dataset: str, arch: str, setting: str) -> Source:
    return Source(*split_transfer(setting), all_seeds=True)


def _transfer_check(arch: str, setting: str) -> None:
    _, src_arch, method, rest = split_transfer(setting)
    _check(src_arch, method, rest)


def _masked_source(check):
    def wrapped(arch: str, setting: str) -> None:
        check(arch, setting)
        if not get(split(setting)[0]).masked:
            raise UserError(f"{setting!r}: the source of a random sparsity pattern must be a masked method (e.g. magnitude_0.5)")

    return wrapped


SPECS = {
    "matched": ("uniform channel pruning at the parameter count of the source architecture", _matched, _same_model(False), False),
    "guided": ("every layer of a stage at the source's stage-average width (over its seeds)", _pattern, _same_model(True), False),
    "transferred": ("the source's stage pattern (another dataset and arch) on this network", _pattern, (_transfer_source, _transfer_check), False),
    "randomsparse": ("every conv at the source's overall sparsity, random positions", _randomsparse, _same_model(False), True),
    "guidedsparse": ("every conv at its stage's average sparsity of the source, random positions", _guidedsparse, _same_model(True), True),
}


def _no_prune(model: nn.Module, arch: str, setting: str, seed: int) -> Pruned:
    raise UserError("an architecture source is derived from other runs' reports, not pruned from a model; use 'prunebench derive'")


for _name, (_summary, _derive, (_source, _check_setting), _masked) in SPECS.items():
    register(
        Method(
            name=_name,
            summary=_summary,
            base="plain",
            learned=True,  # the scratch arms read the derived pruned file
            masked=_masked,
            check_setting=_masked_source(_check_setting) if _masked else _check_setting,
            prune=_no_prune,
            arms=("scratch-e", "scratch-b"),
            derive=_derive,
            derived_from=_source,
        )
    )
