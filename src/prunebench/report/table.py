"""Table 1 of Rethinking (L1-norm pruning): our mean ± std over seeds beside the paper's numbers.

One row per pruned architecture (arch, variant). The unpruned column comes from the ``base``
runs of the same arch, so every pruned variant of an arch shares it, as in the paper.
"""

from __future__ import annotations

import io
import math
import re
from importlib import resources
from os import PathLike

import pandas as pd

from ..errors import UserError
from ..io import write_text

ARMS = ("unpruned", "finetune", "scratch-e", "scratch-b")
ARM_LABELS = {"unpruned": "unpruned", "finetune": "fine-tuned", "scratch-e": "Scratch-E", "scratch-b": "Scratch-B"}
ARCH_ORDER = ("vgg16", "resnet56", "resnet110")
METRICS = ("best", "final")
DATASET_LABELS = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100"}
MISSING = "–"
UNCONFIRMED = "*"


def arch_name(arch: str) -> str:
    """vgg16 -> VGG-16, resnet56 -> ResNet-56; anything else unchanged."""
    m = re.fullmatch(r"(vgg|resnet)(\d+)", arch)
    if not m:
        return arch
    return {"vgg": "VGG", "resnet": "ResNet"}[m.group(1)] + "-" + m.group(2)


def display_name(arch: str, variant: str | None = None) -> str:
    """Model name as the paper prints it, e.g. ResNet-56-A."""
    return arch_name(arch) + (f"-{variant}" if variant else "")


def dataset_name(dataset: str) -> str:
    return DATASET_LABELS.get(dataset, dataset)


def load_paper_numbers() -> pd.DataFrame:
    """The papers' numbers shipped with the package (report/paper_numbers.csv)."""
    text = resources.files("prunebench.report").joinpath("paper_numbers.csv").read_text()
    df = pd.read_csv(io.StringIO(text), dtype={"variant": str}, true_values=["true"], false_values=["false"])
    df["confirmed"] = df["confirmed"].astype(bool)
    return df


def _records(evals: list[dict], metric: str) -> pd.DataFrame:
    """Flatten eval dicts to one row per run; the base arm becomes 'unpruned'."""
    rows = []
    for ev in evals:
        run = ev["run"]
        try:
            acc = float(ev["accuracy"][metric])
        except (KeyError, TypeError):
            raise UserError(f"eval for {run} has no accuracy['{metric}']; re-run its evaluation") from None
        arm = "unpruned" if run["arm"] == "base" else run["arm"]
        if arm not in ARMS:
            raise UserError(f"eval for {run} has arm {run['arm']!r}; expected one of base, {', '.join(ARMS[1:])}")
        if arm != "unpruned" and not run.get("variant"):
            raise UserError(f"eval for {run} is a pruned arm without a variant; re-run its evaluation")
        rows.append(
            {
                "dataset": run["dataset"],
                "arch": run["arch"],
                "variant": None if arm == "unpruned" else run["variant"],
                "arm": arm,
                "seed": run["seed"],
                "acc": acc,
                "macs": ev["macs"],
                "params": ev["params"],
                "macs_full": ev["macs_full"],
                "params_full": ev["params_full"],
                "model_file": ev.get("model", ""),
            }
        )
    df = pd.DataFrame(rows, columns=["dataset", "arch", "variant", "arm", "seed", "acc", "macs", "params", "macs_full", "params_full", "model_file"])
    dup = df[df.duplicated(["dataset", "arch", "variant", "arm", "seed"], keep=False)]
    if len(dup):
        r = dup.iloc[0]
        raise UserError(
            f"two evals for {r.dataset} {display_name(r.arch, r.variant)} {r.arm} seed {r.seed}; keep one of them"
        )
    return df


def _paper_cells(paper: pd.DataFrame, dataset: str, arch: str, variant: str) -> dict:
    """paper_<arm>, paper_<arm>_std, paper_<arm>_confirmed for one row (NaN/None when absent)."""
    out = {}
    sel = paper[(paper["table"] == "table1") & (paper["dataset"] == dataset) & (paper["arch"] == arch) & (paper["variant"] == variant)]
    for arm in ARMS:
        hit = sel[sel["arm"] == arm]
        if len(hit):
            h = hit.iloc[0]
            out |= {f"paper_{arm}": float(h["mean"]), f"paper_{arm}_std": float(h["std"]), f"paper_{arm}_confirmed": bool(h["confirmed"])}
        else:
            out |= {f"paper_{arm}": math.nan, f"paper_{arm}_std": math.nan, f"paper_{arm}_confirmed": None}
    return out


def _reduction(pruned: float, full: float) -> float:
    return round(100.0 * (1.0 - pruned / full), 1)


def build_table1(evals: list[dict], metric: str = "best", paper: pd.DataFrame | None = None) -> pd.DataFrame:
    """Our Table 1 from eval dicts. ``paper=None`` uses the bundled numbers; pass an empty frame for none.

    ``metric`` is "best" (what the papers report: best test accuracy over epochs) or "final".
    A missing arm gives NaN in its columns; the table never fails for want of a run.
    """
    if metric not in METRICS:
        raise UserError(f"unknown metric {metric!r}; use one of: {', '.join(METRICS)}")
    if paper is None:
        paper = load_paper_numbers()
    if paper.empty:
        paper = pd.DataFrame(columns=["table", "dataset", "arch", "variant", "arm", "mean", "std", "confirmed"])
    runs = _records(evals, metric)
    pruned = runs[runs["arm"] != "unpruned"]
    keys = pruned[["dataset", "arch", "variant"]].drop_duplicates()
    order = {a: i for i, a in enumerate(ARCH_ORDER)}
    keys = sorted(keys.itertuples(index=False), key=lambda k: (order.get(k.arch, len(order)), k.arch, k.variant, k.dataset))

    rows = []
    for dataset, arch, variant in keys:
        mine = runs[(runs["dataset"] == dataset) & (runs["arch"] == arch)]
        mine = mine[(mine["variant"] == variant) | (mine["arm"] == "unpruned")]
        row = {"model": display_name(arch, variant), "dataset": dataset, "metric": metric, "seeds": mine["seed"].nunique()}
        for arm in ARMS:
            acc = mine.loc[mine["arm"] == arm, "acc"]
            row |= {f"{arm}_mean": acc.mean(), f"{arm}_std": acc.std(ddof=1), f"{arm}_n": len(acc)}
        # All pruned arms share one architecture, so any of their runs gives its size.
        size = mine[mine["arm"] != "unpruned"].iloc[0]
        row |= {
            "macs": int(size["macs"]),
            "params": int(size["params"]),
            "macs_reduction_pct": _reduction(size["macs"], size["macs_full"]),
            "params_reduction_pct": _reduction(size["params"], size["params_full"]),
        }
        row |= _paper_cells(paper, dataset, arch, variant)
        row["runs"] = ";".join(sorted(mine["model_file"]))  # every number traces back to these
        rows.append(row)

    columns = ["model", "dataset", "metric", "seeds"]
    columns += [f"{arm}_{s}" for arm in ARMS for s in ("mean", "std", "n")]
    columns += ["macs", "params", "macs_reduction_pct", "params_reduction_pct"]
    columns += [f"paper_{arm}{s}" for arm in ARMS for s in ("", "_std", "_confirmed")]
    columns += ["runs"]
    return pd.DataFrame(rows, columns=columns)


def _acc_cell(mean: float, std: float, confirmed: bool | None = True) -> str:
    """'93.14 ± 0.12', '93.14' for one seed, '–' when missing; '*' after unconfirmed numbers."""
    if pd.isna(mean):
        return MISSING
    cell = f"{mean:.2f}" if pd.isna(std) else f"{mean:.2f} ± {std:.2f}"
    return cell + ("" if confirmed is None or bool(confirmed) else UNCONFIRMED)


def _count_cell(n: float, reduction_pct: float) -> str:
    """112435840 -> '1.12e8 (10.4%)'; the percentage is the reduction from the unpruned net."""
    if pd.isna(n):
        return MISSING
    exp = int(math.floor(math.log10(n))) if n > 0 else 0
    return f"{n / 10**exp:.2f}e{exp} ({reduction_pct:.1f}%)"


def to_markdown(df: pd.DataFrame, title: str) -> str:
    """A Markdown page a person can read at a glance: one row per model, ours then the paper's."""
    metric = df["metric"].iloc[0] if len(df) else "best"
    head = ["Model", "Dataset", "Seeds"] + [ARM_LABELS[a] for a in ARMS] + ["MACs (reduction)", "Params (reduction)"]
    head += [f"Paper {ARM_LABELS[a]}" for a in ARMS]
    lines = [f"# {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in df.to_dict("records"):
        cells = [r["model"], dataset_name(r["dataset"]), str(r["seeds"])]
        cells += [_acc_cell(r[f"{a}_mean"], r[f"{a}_std"]) for a in ARMS]
        cells += [_count_cell(r["macs"], r["macs_reduction_pct"]), _count_cell(r["params"], r["params_reduction_pct"])]
        cells += [_acc_cell(r[f"paper_{a}"], r[f"paper_{a}_std"], r[f"paper_{a}_confirmed"]) for a in ARMS]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Test accuracy (%), metric `{metric}` ({'best over epochs, as the papers report' if metric == 'best' else 'after the last epoch'}): "
        f"mean ± std over seeds (std with ddof=1; no ± when there is one seed; {MISSING} when the arm has no runs). "
        "MACs and params are of the pruned network, with the reduction from the unpruned one in parentheses.",
        "",
        f"\\{UNCONFIRMED} The paper's number is recalled, not confirmed against a published source; treat it as approximate.",
        "",
    ]
    return "\n".join(lines)


def write_table(df: pd.DataFrame, csv_path: str | PathLike, md_path: str | PathLike, title: str) -> None:
    """Write the full table as CSV (for machines) and Markdown (for people), each atomically."""
    write_text(csv_path, df.to_csv(index=False))
    write_text(md_path, to_markdown(df, title))
