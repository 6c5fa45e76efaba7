"""The machinery of declared file forms: a pydantic model per file kind, and reading a value
through one so that a wrong key, type, range or shape is one line naming the file, the field,
what was expected and how to fix it.

pydantic, not the config's JSON schema, declares the files: one family covers the JSON files,
the checkpoint dictionaries (whose values are tensors, which JSON schema cannot describe) and the
rows of the CSV tables, and a form is a typed class that readers and writers import by name.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, create_model

from ..errors import UserError


class Form(BaseModel):
    """One file kind's declared form: the keys its readers rely on, with their types and ranges.
    Files carry more (provenance, history); keys a form does not name pass through unchecked."""

    model_config = ConfigDict(extra="allow", arbitrary_types_allowed=True, strict=True)
    KIND: ClassVar[str] = "file"
    FIX: ClassVar[str] = "delete it and rerun the step that makes it"


def _setting_text(v: Any) -> Any:
    """A setting as the runs name it: Li's variant letter, or a ratio written as text."""
    if isinstance(v, bool):
        return v  # refused below: True is not a setting
    if isinstance(v, (int, float)) and math.isfinite(v):
        return str(v)
    return v


Count = Annotated[int, Field(ge=0)]
Accuracy = Annotated[float, Field(ge=0, le=100)]
Fraction = Annotated[float, Field(ge=0, le=1)]
Setting = Annotated[str, BeforeValidator(_setting_text)]
Finite = Annotated[float, Field(allow_inf_nan=False)]


def _short(value: Any) -> str:
    """A value as a reader of one error line wants it: short, on one line (a tensor by its form)."""
    if type(value).__name__ == "Tensor":
        return f"a {str(value.dtype).removeprefix('torch.')} tensor of shape {tuple(value.shape)}"
    text = " ".join(repr(value).split())
    return text if len(text) <= 40 else text[:37] + "..."


def explain(error: ValidationError, source: str, form: type[Form]) -> str:
    """The first problem of ``error`` as one line: the file, the field, what was wrong, the fix."""
    first = error.errors(include_url=False)[0]
    loc = [str(p) for p in first["loc"]]
    more = error.error_count() - 1
    tail = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    head = f"{source} is not {_a(form.KIND)}"
    if first["type"] == "value_error":  # the form's own check, which says what it found
        return f"{head}: {'.'.join(loc) + ': ' if loc else ''}{first['ctx']['error']}{tail}; {form.FIX}"
    if not loc:
        return f"{head}: it holds {_a(type(first.get('input')).__name__)}, not a mapping of fields{tail}; {form.FIX}"
    field = ".".join(loc)
    if first["type"] == "missing":
        return f"{head}: it lacks {field}{tail}; {form.FIX}"
    msg = first["msg"][0].lower() + first["msg"][1:]
    return f"{head}: {field}: {msg}, got {_short(first.get('input'))}{tail}; {form.FIX}"


def _a(kind: str) -> str:
    return f"{'an' if kind[:1].lower() in 'aeio' else 'a'} {kind}"  # a uint8, an int64


def validate(form: type[Form], value: Any, source: str) -> Any:
    """``value`` itself once it fits ``form`` (strictly: JSON's own types, no text read as a
    number); a one-line UserError naming ``source`` if it does not."""
    try:
        form.model_validate(value)
        return value
    except ValidationError as e:
        raise UserError(explain(e, source, form)) from None


def row_form(name: str, columns: dict[str, Any], kind: str, fix: str) -> type[Form]:
    """The form of one CSV table row: column name -> type (use ``float | None`` for a cell that
    may be empty). Column names need not be identifiers."""
    fields = {f"c{i}": (kind_, Field(alias=col)) for i, (col, kind_) in enumerate(columns.items())}
    # Lax, unlike the JSON forms: a CSV cell is text, and "93.1" is a number there.
    base = type(f"{name}Base", (Form,), {"KIND": kind, "FIX": fix, "model_config": ConfigDict(extra="allow", strict=False)})
    return create_model(name, __base__=base, **fields)


def validate_rows(form: type[Form], rows: list[dict], source: str) -> None:
    """Every row of a CSV table checked against its row form; the first bad one is one line
    naming the file, the row (1-based, as in the Markdown table) and the column."""
    for i, row in enumerate(rows, 1):
        try:
            form.model_validate(row)
        except ValidationError as e:
            raise UserError(explain(e, f"{source} row {i}", form)) from None
