"""Every file kind prunebench reads or writes has one declared form here (or, for a table, beside
its columns), and every reader and writer goes through it: a file that does not fit is one line
naming the file, the field and the fix, never a traceback deep inside a report."""

from __future__ import annotations

import json
import os
from typing import Any

from ..io import read_json, write_text
from .base import Form, explain, row_form, validate, validate_rows
from .files import Curve, Eval, ImageNetManifest, Metrics, PrunedFrom, PruneReport, ReportResults, Run, RunCost

__all__ = [
    "Curve", "Eval", "Form", "ImageNetManifest", "Metrics", "PrunedFrom", "PruneReport", "ReportResults", "Run", "RunCost",
    "explain", "read_form", "row_form", "validate", "validate_rows", "write_form",
]


def read_form(path: str | os.PathLike, form: type[Form]) -> Any:
    """The JSON file ``path``, checked against ``form``."""
    return validate(form, read_json(path), str(path))


def write_form(path: str | os.PathLike, form: type[Form], obj: Any) -> None:
    """Write ``obj`` as JSON, atomically, after checking that what lands in the file (JSON's
    types: string keys, lists) fits ``form``: a file the project writes always reads back."""
    text = json.dumps(obj, indent=2) + "\n"
    validate(form, json.loads(text), f"{path} (being written)")
    write_text(path, text)
