"""From a table cell back to the runs that made it (``prunebench trace``).

A table's ``runs`` column lists the model file of every run behind a row; a column names its arm
(``finetune_mean`` -> the fine-tuned runs, ``random_mean`` of the lottery table -> Scratch-E), a
comparison column both arms it compares (``winning_vs_random_p`` -> winning and Scratch-E runs;
``vs_uniform_p`` of the archsearch table -> this row's Scratch-E runs and those of its uniform
match, another row; ``vs_oneshot_p`` of Li's table -> this row's runs and its one-shot row's).
Study, lottery, archsearch and li-iterative tables are told apart by their columns. For each run
the trace prints its eval.json (the number that entered the mean) and its metrics.json (code
commit, device, seed, the hash of the resolved run configuration, the dataset's checksum), then
follows the run's input files (the pruned file, its prune.json, the model that was pruned, ...)
back to the base, checking every recorded sha256 against the file as it is now.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd

from prunebench.core.errors import UserError
from prunebench.core.io import read_json, sha256

from . import table_form
from .stats import SCRATCH_ARMS
from .table import ALL_COLUMNS, ARMS


def _uniform_row(df: pd.DataFrame, r: pd.Series) -> pd.Series | None:
    """The archsearch row named in ``uniform_match`` ("matched slimming_0.6")."""
    method, _, setting = str(r.get("uniform_match", "")).partition(" ")
    hit = df[(df["dataset"] == r["dataset"]) & (df["arch"] == r["arch"]) & (df["method"] == method) & (df["setting"] == setting)]
    return hit.iloc[0] if len(hit) else None


def _oneshot_row(df: pd.DataFrame, r: pd.Series) -> pd.Series | None:
    """The one-shot row of Li's table with a layer-by-layer row's model and variant."""
    if r["schedule"] == "one-shot":
        return None
    hit = df[(df["dataset"] == r["dataset"]) & (df["model"] == r["model"]) & (df["variant"] == r["variant"]) & (df["schedule"] == "one-shot")]
    return hit.iloc[0] if len(hit) else None


@dataclass(frozen=True)
class Kind:
    """How one kind of table names its runs: arm column prefix -> run folder; comparison column
    prefix -> the arms it compares (None: every pruned run); the other row a comparison reads."""

    marker: str  # a column only this kind has
    label: tuple[str, ...]  # the columns that name a row
    arms: dict[str, str] = field(default_factory=dict)
    compared: dict[str, tuple] = field(default_factory=dict)
    partner: Callable[[pd.DataFrame, pd.Series], pd.Series | None] | None = None


KINDS = (
    Kind("winning_mean", ("dataset", "arch", "method", "setting", "lr"), {"unpruned": "base", "winning": "winning", "random": "scratch-e"}, {"winning_vs_random": ("winning", "random"), "gain": ("winning", "random")}),
    Kind("uniform_match", ("dataset", "arch", "method", "setting"), {"unpruned": "base", "scratch-e": "scratch-e", "scratch-b": "scratch-b"}, {"vs_uniform": ("scratch-e",)}, _uniform_row),
    Kind("schedule", ("dataset", "model", "variant", "schedule"), {}, {"vs_oneshot": (None,)}, _oneshot_row),
    Kind("runs", ("dataset", "model"), {a: "base" if a == "unpruned" else a for a in ARMS}, {f"{a}_vs_ft": (a, "finetune", "soft") for a in SCRATCH_ARMS}),
)


def _json(path: Path) -> dict | None:
    try:
        blob = read_json(path)
    except UserError:
        return None
    return blob if isinstance(blob, dict) else None


@functools.cache
def _sha256_now(path: str, mtime_ns: int, size: int) -> str:
    return sha256(path)


def _hash_line(path: str | Path, recorded: str | None) -> str:
    p = Path(path)
    if not p.is_file():
        return f"{p} (missing now)"
    if recorded is None:
        return f"{p}"
    st = p.stat()
    now = _sha256_now(str(p), st.st_mtime_ns, st.st_size)
    return f"{p} sha256 {recorded[:12]} ({'matches the file' if now == recorded else 'DIFFERS from the file now: ' + now[:12]})"


def _provenance(blob: dict) -> str:
    p = blob.get("provenance") or {}
    commit = p.get("commit")
    code = f"commit {commit[:12]}{' (dirty tree)' if p.get('dirty') else ''}" if commit else f"prunebench {p.get('prunebench', '?')} (no git commit recorded)"
    return f"{code}, torch {p.get('torch', '?')}, host {p.get('host', '?')}, finished {p.get('finished', '?')}"


def _row(df: pd.DataFrame, row: str) -> pd.Series:
    """The row numbered ``row`` (1-based, as in the Markdown table) or labelled so in ``model``."""
    if row.isdigit():
        i = int(row)
        if not 1 <= i <= len(df):
            raise UserError(f"--row {row}: the table has rows 1 to {len(df)}")
        return df.iloc[i - 1]
    if "model" not in df:
        raise UserError(f"--row {row!r}: this table has no model column; give a row number (1 to {len(df)})")
    hits = df[df["model"] == row]
    if len(hits) != 1:
        known = ", ".join(f"{i + 1}: {m}" for i, m in enumerate(df["model"]))
        what = "no row" if hits.empty else f"{len(hits)} rows"
        raise UserError(f"--row {row!r}: {what} of that model; give a row number ({known})")
    return hits.iloc[0]


def _prefix(column: str, names) -> str | None:
    """The longest of ``names`` that ``column`` is or starts with (and an underscore)."""
    return next((n for n in sorted(names, key=len, reverse=True) if column == n or column.startswith(f"{n}_")), None)


def _read(table_path: str) -> pd.DataFrame:
    """The table, every cell as text, checked against the form of its kind (told by its columns)."""
    from . import archsearch, li, lottery

    writer = "prunebench table"
    columns = table_form.header(table_path, writer)
    if "runs" not in columns:
        raise UserError(f"{table_path} has no runs column; trace a table written by 'prunebench table' or the li-iterative table of 'prunebench li-report'")
    declared = {"winning_mean": lottery.COLUMNS, "uniform_match": archsearch.COLUMNS, "schedule": li.ITERATIVE_COLUMNS, "runs": ALL_COLUMNS}
    marker = next(k.marker for k in KINDS if k.marker in columns)
    return table_form.read_csv_checked(table_path, declared[marker], "prunebench li-report" if marker == "schedule" else writer, as_text=True)


def _kind(df: pd.DataFrame) -> Kind:
    return next(k for k in KINDS if k.marker in df.columns)


def _in_arm(model: str, folder: str | None) -> bool:
    """Whether a run's model file lies in the arm's run folder (None: any pruned run)."""
    name = Path(model).parent.parent.name
    return name != "base" if folder is None else name == folder


def _models(r: pd.Series) -> list[str]:
    return [m for m in str(r["runs"]).split(";") if m and m != "nan"]


def _chosen(kind: Kind, df: pd.DataFrame, r: pd.Series, column: str) -> tuple[str, list[str]]:
    """What a column reads ("mean over" an arm's runs, "compares" two arms', "from" every pruned run) and the model files behind it."""
    if column not in df.columns and column not in kind.arms:
        raise UserError(f"--column {column!r} is not a column of the table; choose one of {', '.join(df.columns)}")
    compared = _prefix(column, kind.compared)
    if compared:
        partner = kind.partner(df, r) if kind.partner else None
        if kind.partner and partner is None:
            return "compares", []  # a row compared with no other: the cell is empty
        rows = [r] + ([partner] if partner is not None else [])
        folders = [None if a is None else kind.arms[a] for a in kind.compared[compared]]
        return "compares", [m for x in rows for m in _models(x) if any(_in_arm(m, f) for f in folders)]
    arm = _prefix(column, kind.arms)
    return "mean over" if arm else "from", [m for m in _models(r) if _in_arm(m, kind.arms.get(arm) if arm else None)]


def _inputs(blob: dict) -> dict:
    """Input files a run or prune recorded: {name: {path, sha256}}."""
    if "inputs" in blob:
        return dict(blob["inputs"])
    if "input" in blob:
        return {"pruned model": blob["input"]}
    return {}


def _walk(path: str, seen: set, depth: int, lines: list[str]) -> None:
    """A model file, the JSON written beside it, and what that JSON says it was made from."""
    p = Path(path)
    if str(p) in seen or depth > 12:
        return
    seen.add(str(p))
    pad = "    " * depth
    beside = [p.parent / n for n in ("metrics.json", "prune.json") if (p.parent / n).is_file()]
    for j in beside:
        blob = _json(j) or {}
        run = blob.get("run", {})
        what = ", ".join(f"{k} {run[k]}" for k in ("arch", "arm", "method", "setting", "seed") if k in run)
        extra = f", run config sha256 {blob['run_config_sha256'][:12]}" if "run_config_sha256" in blob else ""
        device = f", device {blob['device']}" if "device" in blob else ""
        lines.append(f"{pad}{j.name}: {what}{device}{extra}; {_provenance(blob)}")
        for name, ref in _inputs(blob).items():
            if not isinstance(ref, dict) or "path" not in ref:
                continue
            lines.append(f"{pad}  from {name}: {_hash_line(ref['path'], ref.get('sha256'))}")
            if name != "data":
                _walk(ref["path"], seen, depth + 1, lines)


def trace(table_path: str, row: str, column: str) -> list[str]:
    """Lines from the cell (row, column) of a study table down to every file behind it."""
    df = _read(table_path)
    r = _row(df, row)
    kind = _kind(df)
    verb, chosen = _chosen(kind, df, r, column)
    label = " ".join(str(r[k]) for k in kind.label if not pd.isna(r[k]))
    lines = [f"{table_path}: row {row} ({label}), column {column} = {r.get(column, '')}"]
    if not chosen:
        lines.append("  no run behind this cell (it is empty)" if verb != "from" else "  no pruned run behind this row")
        return lines
    lines.append(f"  {verb} {len(chosen)} run(s):")
    seen: set = set()
    for m in chosen:
        run_dir = Path(m).parent
        ev = _json(run_dir / "eval.json")
        if ev is None:
            lines.append(f"  {run_dir}: eval.json missing or unreadable")
            continue
        acc = ev.get("accuracy", {})
        numbers = ", ".join(f"{k} {v:.2f}" for k, v in acc.items() if isinstance(v, (int, float)) and not math.isnan(v))
        lines.append(f"  {run_dir}/eval.json: accuracy {numbers}")
        lines.append(f"    model {_hash_line(m, ev.get('model_sha256'))}")
        _walk(m, seen, 1, lines)
    return lines
