"""From a table cell back to the runs that made it (``prunebench trace``).

A study table's ``runs`` column lists the model file of every run behind a row; a column names
its arm (``finetune_mean`` -> the fine-tuned runs). For each of those runs the trace prints its
eval.json (the number that entered the mean) and its metrics.json (code commit, device, seed,
the hash of the resolved run configuration, the dataset's checksum), then follows the run's input
files (the pruned file, its prune.json, the model that was pruned, ...) back to the base, checking
every recorded sha256 against the file as it is now.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import pandas as pd

from ..errors import UserError
from ..io import read_json, sha256
from .table import ARMS

ARM_FOLDERS = {"unpruned": "base"}  # the table's arm -> the run folder's


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
    hits = df[df["model"] == row] if "model" in df else df.iloc[0:0]
    if len(hits) != 1:
        known = ", ".join(f"{i + 1}: {m}" for i, m in enumerate(df.get("model", [])))
        what = "no row" if hits.empty else f"{len(hits)} rows"
        raise UserError(f"--row {row!r}: {what} of that model; give a row number ({known})")
    return hits.iloc[0]


def _arm(column: str, df: pd.DataFrame) -> str | None:
    if column not in df.columns and column not in ARMS:
        raise UserError(f"--column {column!r} is not a column of the table; choose one of {', '.join(df.columns)}")
    for arm in sorted(ARMS, key=len, reverse=True):
        if column == arm or column.startswith(f"{arm}_"):
            return arm
    return None  # a column of the pruned architecture (macs, params): every pruned run


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
    df = pd.read_csv(table_path, dtype=str)
    if "runs" not in df.columns:
        raise UserError(f"{table_path} has no runs column; trace a study table written by 'prunebench table'")
    r = _row(df, row)
    arm = _arm(column, df)
    value = r.get(column, "")
    models = [m for m in str(r["runs"]).split(";") if m and m != "nan"]
    folder = ARM_FOLDERS.get(arm, arm)
    chosen = [m for m in models if Path(m).parent.parent.name == folder] if arm else [m for m in models if Path(m).parent.parent.name != "base"]
    label = " ".join(str(r.get(k, "")) for k in ("dataset", "model"))
    lines = [f"{table_path}: row {row} ({label}), column {column} = {value}"]
    if not chosen:
        lines.append(f"  no run of arm {arm} behind this row (the cell is empty)" if arm else "  no pruned run behind this row")
        return lines
    lines.append(f"  {'mean over' if arm else 'from'} {len(chosen)} run(s):")
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
