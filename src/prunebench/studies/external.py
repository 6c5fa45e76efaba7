"""A study of your own pruning method (``method: external``, or ``externalmasked`` for a dense
masked module): its ``external`` block names, per setting, how the method prunes: a ``function``
by import path (called on each seed's trained base, with the keyword arguments under ``with``),
or a pruned ``module`` file made by other code (``{seed}`` in its path names one file per seed;
a state dict needs its ``builder``; a module not pruned from the study's arch names its
``reference`` network and trains as it is). Checked when the DAG is built: every setting has an
entry, a setting means the same in every study, and each module file exists. Whether a function
imports and returns a module is the prune job's check."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from prunebench import methods
from prunebench.core.errors import UserError

from .study import study_methods


def is_external(method: str) -> bool:
    """Whether ``method`` prunes by a study's ``external`` entry (external, externalmasked)."""
    return methods.get(method).external


def specs(config: dict) -> dict[str, dict]:
    """setting -> its entry, over every study (checked to agree)."""
    out: dict[str, dict] = {}
    for study in config["studies"].values():
        out.update(study.get("external", {}))
    return out


def module_file(spec: dict, seed: int) -> str:
    return spec["module"].replace("{seed}", str(seed))


def prune_args(spec: dict, seed: int) -> str:
    """The prune command's options for one setting's entry (shell-quoted)."""
    if "function" in spec:
        args = ["--function", spec["function"]]
        for key, value in spec.get("with", {}).items():
            args += ["--with", f"{key}={_text(value)}"]
    else:
        args = ["--pruned-module", module_file(spec, seed)] + [a for key in ("builder", "reference") if key in spec for a in (f"--{key}", spec[key])]
    return " ".join(shlex.quote(a) for a in args)


def _text(value) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def check(config: dict) -> None:
    seen: dict[str, tuple[str, dict]] = {}
    for name, study in config["studies"].items():
        where = f"studies.{name}"
        seeds = config["scales"][config["scale"]]["seeds"][: study.get("max_seeds")]
        entries = study.get("external", {})
        used = {m: models for m, models in study_methods(study).items() if is_external(m)} if "analyses" not in study else {}
        if entries and not used:
            raise UserError(f"config: {where}.external names how method external prunes, but the study does not use method external; drop it or set method: external")
        for method, datasets in used.items():
            for dataset, archs in datasets.items():
                for arch, settings in archs.items():
                    for s in settings:
                        if str(s) not in entries:
                            raise UserError(f"config: {where}: setting {s!r} of method {method} ({dataset} {arch}) has no entry under {where}.external; add one with a function or a module")
        for setting, spec in entries.items():
            here = f"{where}.external.{setting}"
            if setting in seen and seen[setting][1] != spec:
                raise UserError(f"config: {here} differs from {seen[setting][0]}: a setting names one run folder; give them different names")
            seen[setting] = (here, spec)
            if "with" in spec and "function" not in spec:
                raise UserError(f"config: {here}: with gives a function's keyword arguments; it goes with function, not module")
            for key, what in (("builder", "rebuilds a module from a state dict file"), ("reference", "names the full network a module file was pruned from")):
                if key in spec and "module" not in spec:
                    raise UserError(f"config: {here}: {key} {what}; it goes with module, not function")
            if "module" in spec:
                for seed in seeds:
                    path = module_file(spec, seed)
                    if not Path(path).is_file():
                        raise UserError(f"config: {here}.module: {path} (seed {seed}) is not a file; save the pruned module there, or use {{seed}} in the path for one file per seed")
