"""A study's sanity checks at a glance: every run's checks (checks.CHECKS) from its eval.json.

Evaluation measures the checks again on the model file it evaluates; a run that fails one is
left out of its table's means and marked there. This table lists every run, so a reader sees
how many checks held, which do not apply (a dense run has no mask to regrow), and which failed.
"""

from __future__ import annotations

from os import PathLike

import pandas as pd

from prunebench.training.checks import CHECKS

from .table import write_csv_md

COLUMNS = ["dataset", "arch", "method", "setting", "arm", "seed", *CHECKS, "failed", "model"]


def build_checks_table(evals: list[dict]) -> pd.DataFrame:
    """One row per run: its identity, each check (True, False or None) and the failed ones."""
    rows = []
    for ev in evals:
        run = ev.get("run") or {}
        checks = ev.get("checks") or {}
        rows.append({
            **{k: run.get(k) for k in ("dataset", "arch", "method", "setting", "arm", "seed")},
            **{name: checks.get(name) for name in CHECKS},
            "failed": ",".join(name for name in CHECKS if checks.get(name) is False),
            "model": ev.get("model", ""),
        })
    return pd.DataFrame(rows, columns=COLUMNS)


def _count(df: pd.DataFrame, name: str, value: bool | None) -> int:
    return int(df[name].isna().sum()) if value is None else int((df[name] == value).sum())


def to_markdown(df: pd.DataFrame, title: str) -> str:
    failed = df[df["failed"] != ""]
    lines = [f"# {title}", ""]
    lines.append(f"{len(df)} runs; " + ("**every check held or did not apply.**" if failed.empty else f"**{len(failed)} failed a check and are left out of the tables' means.**"))
    lines += ["", "| Check | Held | Failed | Not applicable | What it tests |", "|---|---|---|---|---|"]
    for name, what in CHECKS.items():
        lines.append(f"| `{name}` | {_count(df, name, True)} | {_count(df, name, False)} | {_count(df, name, None)} | {what} |")
    if not failed.empty:
        lines += ["", "## Runs that failed a check", "", "| Run | Failed |", "|---|---|"]
        lines += [f"| {r['model']} | {r['failed']} |" for r in failed.to_dict("records")]
    lines += ["", "Per run in the CSV: True held, False failed, empty not applicable (checks re-measured on the evaluated model file).", ""]
    return "\n".join(lines)


def write_checks_table(df: pd.DataFrame, csv_path: str | PathLike, md_path: str | PathLike, title: str) -> None:
    write_csv_md(df, to_markdown(df, title), csv_path, md_path)
