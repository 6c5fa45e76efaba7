"""A study's table (e.g. Rethinking's L1-norm or slimming table): our mean ± std over seeds beside
the paper's numbers.

One row per pruned model (dataset, arch, setting), where the setting is Li's variant letter
("A") for the L1 study or a global prune ratio ("0.7") for slimming. The unpruned column comes
from the ``base`` runs of the same (dataset, arch), so every setting of an arch shares it, as in
the papers; a row of another network's pruned module (its evals name their ``reference``) has
none, since that base is not what the module was pruned from, and is named by its reference.
"""

from __future__ import annotations

import io
import math
from importlib import resources
from os import PathLike

import pandas as pd

from prunebench.core.errors import UserError
from prunebench.core.io import write_text, write_together
from prunebench.core.names import STANDIN_LABEL, dataset_name, display_name, normalize_setting, ratio

from . import stats
from .table_form import check_written, read_csv_checked

ARMS = ("unpruned", "soft", "finetune", "scratch-e", "scratch-b")
ARM_LABELS = {"unpruned": "unpruned", "soft": "soft-pruned", "finetune": "fine-tuned", "scratch-e": "Scratch-E", "scratch-b": "Scratch-B"}
METRICS = ("best", "final")
DATASET_ORDER = ("cifar10", "cifar100")
MISSING = "–"
UNCONFIRMED = "*"
PAPER_COLUMNS = ["study", "dataset", "arch", "setting", "arm", "mean", "std", "confirmed"]

TABLE_COLUMNS = ["study", "model", "dataset", "arch", "setting", "metric", "seeds"]
TABLE_COLUMNS += [f"{arm}_{s}" for arm in ARMS for s in ("mean", "std", "n")]
TABLE_COLUMNS += ["macs", "params", "macs_reduction_pct", "params_reduction_pct"]
TABLE_COLUMNS += [f"paper_{arm}{s}" for arm in ARMS for s in ("", "_std", "_confirmed")]
TABLE_COLUMNS += ["standin", "runs"]
# Runs a sanity check failed for (eval.json's checks_failed): left out of every mean, counted here.
CHECK_COLUMNS = [f"{arm}_failed" for arm in ARMS] + ["failed_runs", "failed_checks"]
FAILED_MARK = "⚠"
# Every column of the CSV, in order: the statistics after the table's own columns, then the checks.
ALL_COLUMNS = TABLE_COLUMNS + stats.column_names(ARMS) + CHECK_COLUMNS


def setting_sort_key(setting: object) -> tuple:
    """Ratios numerically, then anything else (variant letters) alphabetically."""
    s = normalize_setting(setting)
    r = ratio(s)
    return (0, r, "") if r is not None else (1, 0.0, s or "")


def dataset_sort_key(dataset: str, first_seen: list[str]) -> tuple:
    """cifar10, cifar100, then other datasets in order of first appearance."""
    if dataset in DATASET_ORDER:
        return (0, DATASET_ORDER.index(dataset))
    return (1, first_seen.index(dataset) if dataset in first_seen else len(first_seen))


# --------------------------------------------------------------------------- paper numbers
def load_paper_numbers() -> pd.DataFrame:
    """The papers' numbers shipped with the package (report/paper_numbers.csv)."""
    text = resources.files("prunebench.report").joinpath("paper_numbers.csv").read_text()
    df = pd.read_csv(io.StringIO(text), dtype={"setting": str}, true_values=["true"], false_values=["false"])
    df["confirmed"] = df["confirmed"].astype(bool)
    df["setting"] = [normalize_setting(s) for s in df["setting"]]
    return df


def _paper_cells(paper: pd.DataFrame, study: str, dataset: str, arch: str, setting: str) -> dict:
    """paper_<arm>, paper_<arm>_std, paper_<arm>_confirmed for one row (NaN/None when absent)."""
    out = {}
    sel = paper[
        (paper["study"] == study) & (paper["dataset"] == dataset) & (paper["arch"] == arch)
        & (paper["setting"].map(normalize_setting) == setting)
    ]
    for arm in ARMS:
        hit = sel[sel["arm"] == arm]
        if len(hit):
            h = hit.iloc[0]
            out |= {f"paper_{arm}": float(h["mean"]), f"paper_{arm}_std": float(h["std"]), f"paper_{arm}_confirmed": bool(h["confirmed"])}
        else:
            out |= {f"paper_{arm}": math.nan, f"paper_{arm}_std": math.nan, f"paper_{arm}_confirmed": None}
    return out


# --------------------------------------------------------------------------- build
def eval_run(ev: dict, arms: tuple[str, ...], report: str) -> dict:
    """The run an eval describes, checked: dataset, arch, arm (one of ``arms``) and seed."""
    run = ev.get("run") if isinstance(ev, dict) else None
    if not isinstance(run, dict) or not {"dataset", "arch", "arm", "seed"} <= run.keys():
        raise UserError(f"an eval has no run with dataset, arch, arm and seed ({str(ev)[:80]}); re-run its evaluation")
    if run["arm"] not in arms:
        raise UserError(f"eval for {run} has arm {run['arm']!r}; the {report} takes {', '.join(arms)}")
    return run


def _records(evals: list[dict], metric: str) -> pd.DataFrame:
    """Flatten eval dicts to one row per run; the base arm becomes 'unpruned'."""
    rows = []
    for ev in evals:
        run = eval_run(ev, ("base",) + ARMS[1:], "table")
        try:
            acc = float(ev["accuracy"][metric])
        except (KeyError, TypeError, ValueError):
            raise UserError(f"eval for {run} has no accuracy['{metric}']; re-run its evaluation") from None
        arm = "unpruned" if run["arm"] == "base" else run["arm"]
        setting = normalize_setting(run.get("setting", run.get("variant")))  # "variant": evals before studies
        if arm != "unpruned" and setting is None:
            raise UserError(f"eval for {run} is a pruned arm without a setting; re-run its evaluation")
        try:
            sizes = {k: int(ev[k]) for k in ("macs", "params", "macs_full", "params_full")}
        except (KeyError, TypeError, ValueError):
            raise UserError(f"eval for {run} lacks macs/params/macs_full/params_full; re-run its evaluation") from None
        rows.append(
            {
                "dataset": run["dataset"],
                "arch": run["arch"],
                "method": None if arm == "unpruned" else run.get("method"),
                "setting": None if arm == "unpruned" else setting,
                "arm": arm,
                "seed": run["seed"],
                "acc": acc,
                **sizes,
                "standin": bool(ev.get("standin", False)),
                "model_file": str(ev.get("model", "")),
                "failed": stats.failed_checks(ev),
                "reference": ev.get("reference"),
            }
        )
    cols = ["dataset", "arch", "method", "setting", "arm", "seed", "acc", "macs", "params", "macs_full", "params_full", "standin", "model_file", "failed", "reference"]
    df = pd.DataFrame(rows, columns=cols)
    dup = df[df.duplicated(["dataset", "arch", "setting", "arm", "seed"], keep=False)]
    if len(dup):
        r = dup.iloc[0]
        raise UserError(
            f"two evals for {r.dataset} {display_name(r.arch, r.setting)} {r.arm} seed {r.seed}; keep one of them"
        )
    return df


def _reduction(pruned: float, full: float) -> float:
    return round(100.0 * (1.0 - pruned / full), 1)


def build_table(evals: list[dict], study: str, metric: str = "best", paper: pd.DataFrame | None = None) -> pd.DataFrame:
    """The table of one study (e.g. "l1", "slimming") from eval dicts.

    ``paper=None`` uses the bundled numbers (their ``study`` column must match); pass an empty
    frame for none. ``metric`` is "best" (what the papers report: best test accuracy over epochs)
    or "final". A missing arm gives NaN in its columns; the table never fails for want of a run.
    The evals of base runs may come from any study; the pruned ones must be of one method.
    MACs and params are the mean over seeds (a learned architecture such as slimming's differs
    by seed); the reductions are of those means.
    """
    if metric not in METRICS:
        raise UserError(f"unknown metric {metric!r}; use one of: {', '.join(METRICS)}")
    if paper is None:
        paper = load_paper_numbers()
    if paper.empty:
        paper = pd.DataFrame(columns=PAPER_COLUMNS)
    runs = _records(evals, metric)
    pruned = runs[runs["arm"] != "unpruned"]
    methods = sorted({m for m in pruned["method"] if m is not None})
    if len(methods) > 1:
        raise UserError(f"the evals of study {study!r} mix pruning methods {', '.join(methods)}; pass the evals of one study")

    datasets = list(dict.fromkeys(runs["dataset"]))
    archs = list(dict.fromkeys(runs["arch"]))
    keys = pruned[["dataset", "arch", "setting"]].drop_duplicates().itertuples(index=False)
    keys = sorted(keys, key=lambda k: (dataset_sort_key(k.dataset, datasets), archs.index(k.arch), setting_sort_key(k.setting)))

    rows = []
    for dataset, arch, setting in keys:
        mine = runs[(runs["dataset"] == dataset) & (runs["arch"] == arch)]
        mine = mine[(mine["setting"] == setting) | (mine["arm"] == "unpruned")]
        reference = next((r for r in mine["reference"] if isinstance(r, str)), None)
        if reference is not None:  # another network's module: the study's base is not what it was pruned from
            mine = mine[mine["arm"] != "unpruned"]
        # The pruned arms of one seed share one architecture: one size per seed, averaged (a failed check does not change it).
        size = mine[mine["arm"] != "unpruned"].drop_duplicates("seed")[["macs", "params", "macs_full", "params_full"]].mean()
        bad = mine[mine["failed"] != ""]
        mine, left = stats.split_failed(mine, lambda r: ARM_LABELS[r["arm"]])
        row = {
            "study": study, "model": f"{reference} ({setting})" if reference else display_name(arch, setting, methods[0] if methods else None), "dataset": dataset, "arch": arch, "setting": setting,
            "metric": metric, "seeds": mine["seed"].nunique(),
        }
        for arm in ARMS:
            acc = mine.loc[mine["arm"] == arm, "acc"]
            row |= {f"{arm}_mean": acc.mean(), f"{arm}_std": acc.std(ddof=1), f"{arm}_n": len(acc)}
        row |= {
            "macs": int(round(size["macs"])),
            "params": int(round(size["params"])),
            "macs_reduction_pct": _reduction(size["macs"], size["macs_full"]),
            "params_reduction_pct": _reduction(size["params"], size["params_full"]),
        }
        row |= _paper_cells(paper, study, dataset, arch, setting)
        row |= stats.cell_statistics(row, mine, ARMS)
        row["standin"] = bool(mine["standin"].any())
        row["runs"] = stats.run_list(mine)  # every number traces back to these
        row |= {f"{arm}_failed": int((bad["arm"] == arm).sum()) for arm in ARMS}
        row |= left
        rows.append(row)
    return pd.DataFrame(rows, columns=ALL_COLUMNS)


# --------------------------------------------------------------------------- read back
def read_table(path: str | PathLike) -> pd.DataFrame:
    """A table CSV written by ``write_table``, checked: a one-line UserError if it is not one."""
    df = read_csv_checked(path, ALL_COLUMNS, "prunebench table")
    df["setting"] = [normalize_setting(s) for s in df["setting"]]
    return df


# --------------------------------------------------------------------------- Markdown
def _acc_cell(mean: float, std: float, confirmed: bool | None = True) -> str:
    """'93.14 ± 0.12', '93.14' for one seed, '–' when missing; '*' after unconfirmed numbers."""
    if pd.isna(mean):
        return MISSING
    cell = f"{mean:.2f}" if pd.isna(std) else f"{mean:.2f} ± {std:.2f}"
    return cell + ("" if confirmed is None or pd.isna(confirmed) or _truthy(confirmed) else UNCONFIRMED)


def _failed_mark(n: object) -> str:
    """' ⚠2' after a cell that left out 2 runs for a failed sanity check."""
    return f" {FAILED_MARK}{int(n)}" if isinstance(n, (int, float)) and not pd.isna(n) and n > 0 else ""


def failed_lines(df: pd.DataFrame) -> list[str]:
    """The runs left out of the means for a failed sanity check (cells marked ⚠n), per row."""
    rows = [(r["model"], stats.left_out(r)) for r in df.to_dict("records")]
    rows = [(model, text) for model, text in rows if text]
    if not rows:
        return []
    head = f"**{FAILED_MARK} Runs left out of the means: a sanity check failed** (the study's checks table lists every run):"
    return [head, ""] + [f"- {model}: {text}" for model, text in rows] + [""]


def _truthy(v: object) -> bool:
    return str(v).strip().lower() in ("true", "1") if isinstance(v, str) else bool(v)


def _count_cell(n: float, reduction_pct: float) -> str:
    """112435840 -> '1.12e8 (10.4%)'; the percentage is the reduction from the unpruned net."""
    if pd.isna(n):
        return MISSING
    exp = int(math.floor(math.log10(n))) if n > 0 else 0
    return f"{n / 10**exp:.2f}e{exp} ({reduction_pct:.1f}%)"


def present_arms(df: pd.DataFrame) -> list[str]:
    """The arms a table shows: unpruned always, the others where a row has ours or the paper's
    number (SFP has no fine-tuned arm, the other methods no soft-pruned one)."""
    if not len(df):
        return [a for a in ARMS if a != "soft"]
    return [a for a in ARMS if a == "unpruned" or df[f"{a}_mean"].notna().any() or df[f"paper_{a}"].notna().any()]


def to_markdown(df: pd.DataFrame, title: str) -> str:
    """A Markdown page a person can read at a glance: one row per model, ours then the paper's."""
    metric = df["metric"].iloc[0] if len(df) else "best"
    standin = sorted({dataset_name(d) for d, s in zip(df["dataset"], df["standin"]) if _truthy(s)})
    arms = present_arms(df)
    head = ["Model", "Dataset", "Seeds"] + [ARM_LABELS[a] for a in arms] + ["MACs (reduction)", "Params (reduction)"]
    paper_arms = [a for a in arms if df[f"paper_{a}"].notna().any()]  # no empty paper columns
    head += [f"Paper {ARM_LABELS[a]}" for a in paper_arms]
    lines = [f"# {title}", ""]
    if standin:
        lines += [
            f"> **Warning: {', '.join(standin)} runs used a {STANDIN_LABEL} dataset** (the real data was not "
            "available). Their accuracies mean nothing; do not compare them with the paper.",
            "",
        ]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in df.to_dict("records"):
        cells = [r["model"], dataset_name(r["dataset"], _truthy(r["standin"])), str(r["seeds"])]
        cells += [_acc_cell(r[f"{a}_mean"], r[f"{a}_std"]) + _failed_mark(r.get(f"{a}_failed")) for a in arms]
        cells += [_count_cell(r["macs"], r["macs_reduction_pct"]), _count_cell(r["params"], r["params_reduction_pct"])]
        cells += [_acc_cell(r[f"paper_{a}"], r[f"paper_{a}_std"], r[f"paper_{a}_confirmed"]) for a in paper_arms]
        lines.append("| " + " | ".join(cells) + " |")
    if not len(df):
        lines.append("| (no pruned runs) |" + " |" * (len(head) - 1))
    lines += [""] + failed_lines(df) + stats.markdown_lines(df)
    ratios = any(ratio(s) is not None for s in df["setting"])
    lines += [
        "",
        f"Test accuracy (%), metric `{metric}` ({'best over epochs, as the papers report' if metric == 'best' else 'after the last epoch'}): "
        f"mean ± std over seeds (std with ddof=1; no ± when there is one seed; {MISSING} when the arm has no runs). "
        "MACs and params are of the pruned network (mean over seeds), with the reduction from the unpruned one in parentheses"
        " (a masked network, unstructured or SFP, counts its non-zero conv weights only)."
        + (
            " A percentage after the model is its prune ratio: the share of channels (network slimming) or of conv"
            " weights (unstructured pruning) removed; 'keep' marks the share of filters kept (SFP)."
            if ratios
            else ""
        ),
        "",
        f"\\{UNCONFIRMED} The paper's number is recalled, not confirmed against a published source; treat it as approximate."
        if paper_arms
        else "No published numbers for this table are on record (report/paper_numbers.csv), so there are no paper columns.",
        "",
    ]
    if standin:
        lines += [f"({STANDIN_LABEL}): trained and tested on synthetic data standing in for the real dataset; the accuracies are meaningless.", ""]
    return "\n".join(lines)


def write_table(df: pd.DataFrame, csv_path: str | PathLike, md_path: str | PathLike, title: str) -> None:
    write_csv_md(df, to_markdown(df, title), csv_path, md_path, (ALL_COLUMNS, "prunebench table"))


def write_csv_md(df: pd.DataFrame, markdown: str, csv_path: str | PathLike, md_path: str | PathLike, form: tuple[list[str], str] | None = None) -> None:
    """Write a table as CSV (for machines) and Markdown (for people), each atomically; if the
    second write fails, the first file is removed. ``form``: (columns, writer) of a table that is
    read back, checked before it is written."""
    if form is not None:
        check_written(df, *form, csv_path)
    csv = df.to_csv(index=False)
    write_together((csv_path, lambda: write_text(csv_path, csv)), (md_path, lambda: write_text(md_path, markdown)))
