"""Li et al.'s analyses as a study (``report: li``): what its ``analyses`` block asks for.

    table2       {arch: [variant]}: the per-layer table of each variant (no training)
    ratios       the pruning ratios of every sweep (Li: 0.1 to 0.9)
    sensitivity  {arch: [criterion]}: one curve per criterion, every layer alone at every ratio,
                 without retraining (Fig. 2b, 6, 8, 9); the first L1 curve's job also records the
                 sorted filter norms (Fig. 2a)
    retrain      {arch: [criterion]}: the same points, each fine-tuned (Fig. 2c)
    consecutive  {arch: [strategy]}: every layer at once at each ratio, ranked independently or
                 greedily (Fig. 3), evaluated as is and fine-tuned
    iterative    {arch: [variant]}: the variant pruned at once then fine-tuned, against pruned and
                 fine-tuned one layer at a time (section 3.4)

A curve without retraining is one job (its points are cheap copies of one trained model); a
retrained point is a training run of its own (method ``layer``, ``consecutive`` or ``layerwise``,
arm ``finetune``, :mod:`prunebench.methods.li`). A smoke scale thins the ratios and the layers
of every sweep to their first and last, and keeps the first steps of layer-by-layer pruning.
"""

from __future__ import annotations

from dataclasses import dataclass

from prunebench import methods
from prunebench.core.errors import UserError, config_check, config_known
from prunebench.core.utils import thin
from prunebench.data.datasets import DATASETS
from prunebench.methods.li import prunable, steps
from prunebench.pruning import CRITERIA, STRATEGIES, VARIANTS

ARMS = ("finetune",)  # every retrained point is fine-tuned (the study's finetune_epochs)


@dataclass(frozen=True)
class Curve:
    """One curve job: a trained model's pruned copies, evaluated without retraining."""

    dataset: str
    arch: str
    mode: str  # "layer" (one layer at a time) or "consecutive" (all layers at once)
    name: str  # the criterion (layer) or the ranking strategy (consecutive)
    layers: tuple[int, ...]
    ratios: tuple[float, ...]


def dataset(spec: dict) -> str:
    return spec.get("dataset", "cifar10")


def _ratios(spec: dict, keep: int | None) -> tuple[float, ...]:
    return tuple(float(r) for r in thin(list(spec["ratios"]), keep))


def _layers(arch: str, keep: int | None) -> tuple[int, ...]:
    return tuple(thin(list(prunable(arch)), keep))


def curves(spec: dict, keep: int | None = None) -> list[Curve]:
    ds, ratios = dataset(spec), _ratios(spec, keep)
    out = [Curve(ds, arch, "layer", c, _layers(arch, keep), ratios) for arch, cs in spec.get("sensitivity", {}).items() for c in cs]
    out += [Curve(ds, arch, "consecutive", s, (), ratios) for arch, ss in spec.get("consecutive", {}).items() for s in ss]
    return out


def retrained(spec: dict, keep: int | None = None) -> list[tuple[str, str, str, str]]:
    """(dataset, arch, method, setting) of every retrained point, one-shot variant included."""
    ds, ratios = dataset(spec), _ratios(spec, keep)
    out = []
    for arch, criteria in spec.get("retrain", {}).items():
        out += [(ds, arch, "layer", f"{layer}_{r:g}_{c}") for c in criteria for layer in _layers(arch, keep) for r in ratios]
    for arch, strategies in spec.get("consecutive", {}).items():
        out += [(ds, arch, "consecutive", f"{r:g}_{s}") for s in strategies for r in ratios]
    for arch, variants in spec.get("iterative", {}).items():
        for v in map(str, variants):
            chain = [(ds, arch, "layerwise", f"{v}_{k}") for k in range(1, len(steps(arch, v)) + 1)]
            out += [(ds, arch, "l1", v)] + chain[:keep]
    return out


def check(where: str, spec: dict) -> None:
    """Every model, criterion, strategy and variant of the block, and every point it makes."""
    if dataset(spec) not in DATASETS:
        raise UserError(f"config: {where}.dataset: unknown {dataset(spec)!r}; choose one of {', '.join(DATASETS)}")
    for arch, variants in spec.get("table2", {}).items():
        config_known(f"{where}.table2", arch, tuple(VARIANTS))
        for v in variants:
            config_known(f"{where}.table2.{arch}", str(v), tuple(VARIANTS[arch]))
    for key, allowed in (("sensitivity", CRITERIA), ("retrain", CRITERIA), ("consecutive", STRATEGIES)):
        for arch, names in spec.get(key, {}).items():
            config_check(f"{where}.{key}.{arch}", lambda arch=arch: prunable(arch))
            for n in names:
                config_known(f"{where}.{key}.{arch}", n, tuple(allowed))
    for arch, variants in spec.get("iterative", {}).items():
        config_known(f"{where}.iterative", arch, tuple(VARIANTS))
        for v in variants:
            config_known(f"{where}.iterative.{arch}", str(v), tuple(VARIANTS[arch]))
    for _, arch, method, setting in retrained(spec):
        config_check(f"{where} ({method} {setting} of {arch})", lambda m=method, a=arch, s=setting: methods.get(m).check_setting(a, s))
