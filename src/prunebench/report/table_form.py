"""The declared form of the CSV tables the report commands write and read back (a study's table,
the lottery, archsearch and li-iterative tables): the columns each kind must have, and per row a
pydantic form whose cells are text, a flag, or a number (empty where there is none). A table that
does not fit is one line naming the file, the row and the column."""

from __future__ import annotations

import csv
import functools
import io
from os import PathLike
from pathlib import Path
from typing import Any

import pandas as pd

from prunebench.core.errors import UserError
from prunebench.core.forms import row_form, validate_rows

TEXT_COLUMNS = {"study", "model", "dataset", "arch", "method", "family", "setting", "metric", "runs", "failed_checks", "uniform_match", "variant", "schedule"}


def cell_type(column: str):
    """A column's declared type: text (names, verdicts, run lists), a flag, or a number."""
    if column in TEXT_COLUMNS or column.endswith(("_verdict", "_confirmed")):
        return Any
    return bool if column == "standin" else float | None


@functools.cache
def _row_form(columns: tuple[str, ...], writer: str):
    return row_form("TableRow", {c: cell_type(c) for c in columns}, f"row of the table '{writer}' writes", f"rerun '{writer}' for it")


def _text(path: Path, writer: str) -> str:
    rerun = f"it was not written by '{writer}'; rerun it"
    if not path.exists():
        raise UserError(f"table {path} does not exist; run '{writer}' first")
    if not path.is_file():
        raise UserError(f"table {path} is not a file; pass the CSV written by '{writer}'")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(f"table {path} is not a CSV table (not UTF-8 text); {rerun}") from None
    except OSError as e:
        raise UserError(f"cannot read table {path}: {e.strerror}; check its permissions") from None
    if not text.strip():
        raise UserError(f"table {path} is empty; {rerun}")
    try:
        rows = list(csv.reader(io.StringIO(text)))
    except csv.Error as e:
        raise UserError(f"table {path} is not a CSV table ({e}); {rerun}") from None
    width = len(rows[0])
    short = next((i for i, r in enumerate(rows[1:], 1) if r and len(r) != width), None)
    if short is not None:
        raise UserError(f"table {path} row {short} has {len(rows[short])} cells but the header has {width}: the file is cut short or edited; {rerun}")
    return text


def read_csv_checked(path: str | PathLike, columns: list[str], writer: str, as_text: bool = False) -> pd.DataFrame:
    """A CSV table that ``writer`` wrote with ``columns``, checked against its form: a one-line
    UserError if it is not one. Numbers come back as numbers (``as_text``: every cell as text)."""
    path = Path(path)
    text = _text(path, writer)
    try:
        df = pd.read_csv(io.StringIO(text), dtype=str if as_text else {"setting": str, "study": str, "model": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"table {path} is not a CSV table ({first}); it was not written by '{writer}'; rerun it") from None
    missing = [c for c in columns if c not in df.columns]
    if missing:
        shown = ", ".join(missing[:6]) + (f" and {len(missing) - 6} more" if len(missing) > 6 else "")
        raise UserError(f"table {path} lacks the columns {shown}; it was not written by '{writer}'; rerun it")
    validate_rows(_row_form(tuple(columns), writer), df.to_dict("records"), f"table {path}")
    if as_text:
        return df
    for col in columns:
        if cell_type(col) is not Any and col != "standin":
            df[col] = pd.to_numeric(df[col])
    df["standin"] = df["standin"].map(lambda v: str(v).strip().lower() in ("true", "1"))
    return df


def check_written(df: pd.DataFrame, columns: list[str], writer: str, path: str | PathLike) -> None:
    """A table about to be written, checked against the form its readers hold it to."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise UserError(f"table {path} (being written) lacks the columns {', '.join(missing[:6])}; this is a bug in '{writer}', please report it")
    validate_rows(_row_form(tuple(columns), writer), df.to_dict("records"), f"table {path} (being written)")


def header(path: str | PathLike, writer: str) -> list[str]:
    """The column names of a table file (checked to be a readable CSV table)."""
    return next(csv.reader(io.StringIO(_text(Path(path), writer))))
