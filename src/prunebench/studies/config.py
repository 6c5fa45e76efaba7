"""Config validation with one-line errors: the Snakefile calls ``check`` before building the DAG,
so a wrong key, value or name (schema, then every study against the registries, then every
setting as the commands check it: :mod:`.settings`) stops Snakemake before any job runs."""

from __future__ import annotations

import os
from typing import Any

import jsonschema
import yaml

from prunebench.core.errors import UserError


def _where(path) -> str:
    return ".".join(str(p) for p in path) or "(top level)"


def check(config: dict[str, Any], schema_path: str | os.PathLike) -> dict[str, Any]:
    """Validate ``config`` against the JSON schema; fill in the schema's defaults."""
    # `--config download=false` arrives as a string; only True/False become booleans.
    if isinstance(config.get("download"), str) and config["download"].lower() in ("true", "false"):
        config["download"] = config["download"].lower() == "true"
    with open(schema_path) as f:
        schema = yaml.safe_load(f)
    validator_cls = jsonschema.validators.validator_for(schema)
    errors = sorted(validator_cls(schema).iter_errors(config), key=lambda e: (len(e.path), list(map(str, e.path))))
    if errors:
        e = errors[0]
        if e.validator == "additionalProperties":
            extra = sorted(set(e.instance) - set(e.schema.get("properties", {})))
            known = ", ".join(e.schema.get("properties", {}))
            raise UserError(f"config: unknown key {_where(list(e.path) + extra[:1])}; known keys there: {known}")
        if e.validator == "required":
            raise UserError(f"config: {_where(e.path)}: {e.message}; add it to config.yaml or pass --config")
        raise UserError(f"config: {_where(e.path)} = {e.instance!r} is invalid: {e.message}; fix it in config.yaml or --config")
    scale = config["scale"]
    if scale not in config["scales"]:
        raise UserError(f"config: scale {scale!r} is not defined under scales; choose one of {', '.join(config['scales'])}")
    from .external import check as check_external  # your own method's settings
    from .settings import check as check_settings  # what the commands refuse on their own
    from .study import check as check_studies  # the registries: models, methods, datasets
    from .study import check_targets

    check_studies(config)
    check_targets(config)
    check_external(config)
    check_settings(config)
    return config
