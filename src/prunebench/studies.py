"""Studies: one table of a paper each, as data in config.yaml, checked before any job runs.

A study names a pruning method, the arms compared, and per dataset the models with their
settings (Li's variants, or prune ratios). The workflow turns it into runs whose paths follow
from their parameters: ``<dataset>/<arch>/<base tag>/base`` for the model every method starts
from, and ``.../<method>-<setting>/<arm>`` for what is derived from it. The base tag says how
the base was trained (``plain``, or ``sparsity<s>`` for network slimming) plus any non-default
model option, so two studies that need the same base share it, and a changed option is a new
run, never an overwritten one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from . import methods, models
from .datasets import DATASETS
from .errors import UserError


@dataclass(frozen=True)
class Row:
    """One row of a study's table: a pruned model, trained from one base."""

    dataset: str
    arch: str
    setting: str
    tag: str  # the base tag


def setting_text(value) -> str:
    """A config setting as it appears in paths and tables: A -> 'A', 0.7 -> '0.7'."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def family(arch: str) -> str:
    return re.match(r"[a-z]+", arch).group(0)


def base_tag(method: str, arch: str, options: dict, sparsity: dict) -> str:
    """How the base of ``arch`` is trained for ``method``, as a path segment."""
    m = methods.get(method)
    tag = f"sparsity{sparsity[family(arch)]:g}" if m.base == "sparsity" else "plain"
    defaults = models.default_options(arch)
    for key in sorted(options):
        if options[key] != defaults[key]:
            value = str(options[key]).lower() if isinstance(options[key], bool) else options[key]
            tag += f"+{key}={value}"
    return tag


def parse_tag(tag: str) -> tuple[float, dict]:
    """(sparsity, model options) from a base tag: the inverse of :func:`base_tag`."""
    head, *opts = tag.split("+")
    sparsity = float(head[len("sparsity") :]) if head.startswith("sparsity") else 0.0
    options = {}
    for item in opts:
        key, _, value = item.partition("=")
        options[key] = {"true": True, "false": False}.get(value, value)
    return sparsity, options


def rows(config: dict, name: str) -> list[Row]:
    study = config["studies"][name]
    out = []
    for dataset, archs in study["models"].items():
        for arch, settings in archs.items():
            options = study.get("options", {}).get(arch, {})
            tag = base_tag(study["method"], arch, options, config["sparsity"])
            out += [Row(dataset, arch, setting_text(s), tag) for s in settings]
    return out


def check(config: dict) -> None:
    """Every name and value of every study against the registries; one line naming the key."""
    for name, study in config["studies"].items():
        where = f"studies.{name}"
        if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
            raise UserError(f"config: study name {name!r} must be lower-case letters, digits and _ (it names a Snakemake target)")
        method = _known(f"{where}.method", study["method"], methods.names())
        m = methods.get(method)
        for arm in study.get("arms", m.arms):
            _known(f"{where}.arms", arm, m.arms)
        for arch, options in study.get("options", {}).items():
            _known(f"{where}.options", arch, models.ARCHS)
            _wrap(f"{where}.options.{arch}", lambda: models.check_options(arch, options))
            for key, value in options.items():
                if isinstance(value, str) and not re.fullmatch(r"[A-Za-z0-9_.]+", value):
                    raise UserError(f"config: {where}.options.{arch}.{key} = {value!r}: option values are letters, digits, _ and . (they name paths)")
        for dataset, archs in study["models"].items():
            _known(f"{where}.models", dataset, tuple(DATASETS))
            for arch, settings in archs.items():
                _known(f"{where}.models.{dataset}", arch, m.archs or models.ARCHS)
                for i, setting in enumerate(settings):
                    _wrap(f"{where}.models.{dataset}.{arch}[{i}] = {setting!r}", lambda: m.check_setting(arch, setting_text(setting)))
                if m.base == "sparsity" and family(arch) not in config["sparsity"]:
                    raise UserError(f"config: {method} trains {arch} with a sparsity penalty; add sparsity.{family(arch)} (e.g. 1.0e-5)")


def _known(where: str, value, allowed) -> str:
    if value not in allowed:
        raise UserError(f"config: {where}: unknown {value!r}; choose one of {', '.join(map(str, allowed))}")
    return value


def _wrap(where: str, check) -> None:
    try:
        check()
    except UserError as e:
        raise UserError(f"config: {where}: {e}") from None
