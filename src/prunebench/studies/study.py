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

from prunebench import methods, models
from prunebench.core.errors import UserError, config_check, config_known
from prunebench.core.utils import thin
from prunebench.data.datasets import ALL_DATASETS

from . import analyses

PROTOCOL_KEY = "protocol"  # in a base tag, not a model option
DEFAULT_PROTOCOL = "default"  # in a study's protocol list: the main `protocol`, no tag of its own
REPORT_ARMS = {"lottery": {"winning", "scratch-e"}, "archsearch": {"scratch-e", "scratch-b"}, "li": {"finetune"}}  # arms each report shows


@dataclass(frozen=True)
class Row:
    """One row of a study's table: a pruned model, trained from one base."""

    dataset: str
    arch: str
    setting: str
    tag: str  # the base tag
    method: str = ""


def setting_text(value) -> str:
    """A config setting as it appears in paths and tables: A -> 'A', 0.7 -> '0.7'."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def family(arch: str) -> str:
    return re.match(r"[a-z]+", arch).group(0)


def sparsity_of(sparsity: dict, arch: str) -> float | None:
    """Network slimming's penalty for ``arch``: its own entry (vgg11_slimming), else its family's."""
    return sparsity.get(arch, sparsity.get(family(arch)))


def base_tag(method: str, arch: str, options: dict, sparsity: dict, protocol: str | None = None) -> str:
    """How the base of ``arch`` is trained for ``method``, as a path segment: ``plain`` or
    ``sparsity<s>``, then ``+protocol=<name>`` for a named protocol, then non-default options."""
    m = methods.get(method)
    tag = f"sparsity{sparsity_of(sparsity, arch):g}" if m.base == "sparsity" else "plain"
    if protocol:
        tag += f"+{PROTOCOL_KEY}={protocol}"
    defaults = models.default_options(arch)
    for key in sorted(options):
        if options[key] != defaults[key]:
            value = str(options[key]).lower() if isinstance(options[key], bool) else options[key]
            tag += f"+{key}={value}"
    return tag


def parse_tag(tag: str) -> tuple[float, dict, str | None]:
    """(sparsity, model options, protocol name) from a base tag: the inverse of :func:`base_tag`."""
    head, *opts = tag.split("+")
    sparsity = float(head[len("sparsity") :]) if head.startswith("sparsity") else 0.0
    options = {}
    for item in opts:
        key, _, value = item.partition("=")
        options[key] = {"true": True, "false": False}.get(value, value)
    return sparsity, options, options.pop(PROTOCOL_KEY, None)


def protocol(config: dict, name: str | None) -> dict:
    """The default ``protocol`` with the named entry of ``protocols`` laid over it (arm by arm)."""
    merged = {**config["protocol"], "arms": dict(config["protocol"]["arms"])}
    if name:
        override = config.get("protocols", {})[name]
        merged.update({k: v for k, v in override.items() if k != "arms"})
        merged["arms"].update(override.get("arms", {}))
    return merged


def study_methods(study: dict) -> dict[str, dict]:
    """{method: models} of a study: its ``method`` with its ``models``, or its ``methods`` map (a
    study comparing arms over masks of several methods, such as the lottery study), or the
    retrained points of Li's ``analyses`` (every one, as no scale thins them)."""
    if "analyses" in study:
        out: dict[str, dict] = {}
        for dataset, arch, method, setting in analyses.retrained(study["analyses"]):
            out.setdefault(method, {}).setdefault(dataset, {}).setdefault(arch, []).append(setting)
        return out
    return dict(study["methods"]) if "methods" in study else {study["method"]: study["models"]}


def study_protocols(study: dict) -> list[str | None]:
    """The named protocols a study runs under (None: the main one); a list runs every row under each."""
    names = study.get("protocol")
    names = names if isinstance(names, list) else [names]
    return [None if n in (None, DEFAULT_PROTOCOL) else n for n in names]


def row_protocol(study: dict, arch: str, proto: str | None) -> str | None:
    """The protocol of an arch's rows: its ``protocol_by_arch`` entry (the ImageNet VGGs without
    BatchNorm train at LR 0.01, SSS's ResNets under their own), else the study's."""
    name = study.get("protocol_by_arch", {}).get(arch, proto)
    return None if name == DEFAULT_PROTOCOL else name


def all_protocols(study: dict) -> list[str | None]:
    """Every protocol some row of the study runs under."""
    return list(dict.fromkeys(study_protocols(study) + [row_protocol(study, a, None) for a in study.get("protocol_by_arch", {})]))


def study_arms(study: dict) -> tuple[str, ...]:
    """The study's arms, by default its (first) method's."""
    if "analyses" in study:
        return tuple(study.get("arms") or analyses.ARMS)
    return tuple(study.get("arms") or methods.get(next(iter(study_methods(study)))).arms)


def rows(config: dict, name: str) -> list[Row]:
    """The study's rows at the configured scale: a scale's ``max_settings`` keeps that many
    settings of each model, spread from the first to the last; of a chained method (iterative
    rounds, each built on the last) the first ones, at least two (the second is the first round
    that prunes a pruned model). Li's analyses thin their sweeps by ``max_points`` instead. Its
    ``max_protocols`` keeps the first protocols of a study that lists several (the lottery's LRs)."""
    study = config["studies"][name]
    scale = config["scales"][config["scale"]]
    keep = scale.get("max_settings")
    out = []
    for proto in study_protocols(study)[: scale.get("max_protocols")]:
        if "analyses" in study:  # Li's sweeps thin their layers and ratios, not a settings list
            for dataset, arch, method, setting in analyses.retrained(study["analyses"], max_points(scale)):
                tag = base_tag(method, arch, study.get("options", {}).get(arch, {}), config["sparsity"], proto)
                out.append(Row(dataset, arch, setting, tag, method))
            continue
        for method, models_ in study_methods(study).items():
            chained = methods.get(method).chained
            for dataset, archs in models_.items():
                # ImageNet may thin further (smoke: each model's first setting; its VGGs are 0.5 GB a file)
                keep = scale.get("imagenet", {}).get("max_settings", scale.get("max_settings")) if dataset == "imagenet" else scale.get("max_settings")
                for arch, settings in archs.items():
                    options = study.get("options", {}).get(arch, {})
                    tag = base_tag(method, arch, options, config["sparsity"], row_protocol(study, arch, proto))
                    chosen = list(settings)[: max(keep, 2)] if chained and keep else thin(list(settings), keep)
                    out += [Row(dataset, arch, setting_text(s), tag, method) for s in chosen]
    return out


def check(config: dict) -> None:
    """Every name and value of every study against the registries; one line naming the key."""
    for name, study in config["studies"].items():
        where = f"studies.{name}"
        if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
            raise UserError(f"config: study name {name!r} must be lower-case letters, digits and _ (it names a Snakemake target)")
        if (study.get("report") == "li") != ("analyses" in study):
            raise UserError(f"config: {where}: Li's analyses go with report: li, and report: li needs an analyses block")
        if "analyses" in study:
            if {"method", "methods", "models"} & set(study):
                raise UserError(f"config: {where}: a study of Li's analyses lists its models under analyses; drop method, methods and models")
            analyses.check(f"{where}.analyses", study["analyses"])
        elif ("method" in study) == ("methods" in study) or ("method" in study) != ("models" in study):
            raise UserError(f"config: {where}: give either method and models, or methods (a map of method to models)")
        for method in study_methods(study):
            config_known(f"{where}.method", method, methods.names())
        arms = study_arms(study)
        report = study.get("report", "table")
        if report == "table" and len(study_methods(study)) > 1:
            raise UserError(f"config: {where}: a table compares the arms of one method; for several methods set report: lottery or archsearch")
        if report in REPORT_ARMS and not set(arms) <= REPORT_ARMS[report]:
            raise UserError(f"config: {where}: the {report} report shows the arms {', '.join(sorted(REPORT_ARMS[report]))}; drop {', '.join(sorted(set(arms) - REPORT_ARMS[report]))} from arms")
        for method, models_ in study_methods(study).items():
            m = methods.get(method)
            for arm in arms:
                config_known(f"{where}.arms" + (f" (method {method})" if "methods" in study else ""), arm, m.arms)
            if "analyses" not in study:  # analyses.check has checked every point
                _check_models(config, f"{where}.methods.{method}" if "methods" in study else f"{where}.models", m, models_)
            protocol_epochs = config["protocol"]["arms"]["finetune"]["epochs"]
            if m.chained and m.prune_from == "finetune" and study.get("finetune_epochs", protocol_epochs) != protocol_epochs:
                raise UserError(f"config: {where}: {method} prunes each step's fine-tuned run, which trains protocol.arms.finetune.epochs; set the retraining length there instead of finetune_epochs")
        protocols = tuple(config.get("protocols", {}))
        for arch in study.get("protocol_by_arch", {}):
            config_known(f"{where}.protocol_by_arch", arch, models.ARCHS + models.IMAGENET_ARCHS)
        for arch, settings in study.get("scratch_b_epochs", {}).items():
            for setting in settings:
                if not any(setting_text(s) == setting for m in study_methods(study).values() for archs in m.values() for s in archs.get(arch, [])):
                    raise UserError(f"config: {where}.scratch_b_epochs.{arch}.{setting}: no row of the study has that arch and setting")
        for proto in all_protocols(study):
            if proto is not None:
                config_known(f"{where}.protocol", proto, protocols + (DEFAULT_PROTOCOL,))
            schedules = protocol(config, proto)["arms"]
            for arm in ("base",) + arms:
                if arm not in schedules:
                    named = f"protocols.{proto}.arms" if proto else "protocol.arms"
                    raise UserError(f"config: {where}: arm {arm!r} has no schedule; add {named}.{arm} (epochs, lr, milestones)")
        for arch, options in study.get("options", {}).items():
            config_known(f"{where}.options", arch, models.ARCHS + models.IMAGENET_ARCHS)
            config_check(f"{where}.options.{arch}", lambda: models.check_options(arch, options))
            for key, value in options.items():
                if isinstance(value, str) and not re.fullmatch(r"[A-Za-z0-9_.]+", value):
                    raise UserError(f"config: {where}.options.{arch}.{key} = {value!r}: option values are letters, digits, _ and . (they name paths)")


def _check_models(config: dict, where: str, m, models_: dict) -> None:
    for dataset, archs in models_.items():
        config_known(where, dataset, tuple(ALL_DATASETS))
        for arch, settings in archs.items():
            family_archs = models.IMAGENET_ARCHS if dataset == "imagenet" else models.ARCHS
            config_known(f"{where}.{dataset}", arch, tuple(a for a in (m.archs or family_archs) if a in family_archs))
            for i, setting in enumerate(settings):
                config_check(f"{where}.{dataset}.{arch}[{i}] = {setting!r}", lambda: m.check_setting(arch, setting_text(setting)))
            if m.chained:
                have = {setting_text(s) for s in settings}
                for s in settings:
                    before = m.previous(setting_text(s))
                    if before is not None and before not in have:
                        raise UserError(f"config: {where}.{dataset}.{arch}: {s} builds on {before}; list every earlier round")
            if m.base == "sparsity" and sparsity_of(config["sparsity"], arch) is None:
                raise UserError(f"config: {m.name} trains {arch} with a sparsity penalty; add sparsity.{family(arch)} or sparsity.{arch} (e.g. 1.0e-5)")
            if dataset == "imagenet" and "imagenet" not in config["scales"][config["scale"]]:
                raise UserError(f"config: {where}.imagenet needs scales.{config['scale']}.imagenet (crop, resize, gpus, workers, runtime_min, mem_mb)")


def check_targets(config: dict) -> None:
    """``targets``: names for groups of studies (``imagenet``), not clashing with a study. A
    config that defines fewer studies (a test's, or an overlay replacing ``studies``) keeps the
    targets of config.yaml: each builds the studies of its list that are defined, and a target
    with none is not made (``snakemake imagenet`` then says there is no such rule)."""
    for target in config.get("targets", {}):
        if target in config["studies"] or target in ("all", "table1"):
            raise UserError(f"config: targets.{target} has the name of a study or rule; rename it")


def target_studies(config: dict, target: str) -> list[str]:
    return [n for n in config["targets"][target] if n in config["studies"]]


def curves(config: dict, name: str) -> list[tuple[analyses.Curve, str]]:
    """The curve jobs of a study of Li's analyses, each with the base tag of the model it prunes."""
    study = config["studies"][name]
    if "analyses" not in study:
        return []
    options = study.get("options", {})
    keep = max_points(config["scales"][config["scale"]])
    return [(c, base_tag("l1", c.arch, options.get(c.arch, {}), config["sparsity"])) for c in analyses.curves(study["analyses"], keep)]


def max_points(scale: dict) -> int | None:
    """How many layers and ratios of each of Li's sweeps a scale keeps (a curve needs its two
    ends), and how many layer-by-layer steps: ``max_points``, by default ``max_settings``."""
    return scale.get("max_points", scale.get("max_settings"))
