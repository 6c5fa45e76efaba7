"""Figures of a study table's statistics, readable at paper scale where all arms sit within a
few points: a point-range plot (each arm's mean with its 95 % interval per model, the paper's
value as a cross, on an axis zoomed to the data) and a difference plot (each scratch arm minus
fine-tuning per model, with the 95 % interval of the paired difference; right of zero: scratch
is better). Drawn from the table's columns, never recomputed."""

from __future__ import annotations

import math
from os import PathLike

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from prunebench.core.io import atomic_path  # noqa: E402
from prunebench.core.names import dataset_name  # noqa: E402

from .stats import SCRATCH_ARMS  # noqa: E402
from .table import ARM_LABELS, present_arms

COLOURS = {"unpruned": "black", "soft": "tab:purple", "finetune": "tab:blue", "scratch-e": "tab:orange", "scratch-b": "tab:green"}


def _num(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _save(fig, out: str | PathLike) -> None:
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)


def _panels(df: pd.DataFrame, height_per_row: float):
    datasets = list(dict.fromkeys(df["dataset"])) or ["(no rows)"]
    rows = max(1, max((len(df[df["dataset"] == d]) for d in datasets), default=1))
    fig, axes = plt.subplots(1, len(datasets), figsize=(6.5 * len(datasets), 1.2 + height_per_row * rows), squeeze=False)
    return fig, list(zip(datasets, axes[0]))


def _point(ax, x: float, low: float, high: float, y: float, colour: str, label: str | None) -> None:
    """A value with its interval (none where it is undefined: one seed)."""
    err = [[x - low], [high - x]] if not math.isnan(low) else None
    ax.errorbar(x, y, xerr=err, fmt="o", ms=4, color=colour, capsize=2, label=label)


def _finish(ax, part: pd.DataFrame, dataset: str, xlabel: str) -> None:
    ax.set_yticks(range(len(part)), list(part["model"]))
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.set_title(dataset_name(dataset), fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)


def plot_pointrange(df: pd.DataFrame, out: str | PathLike, title: str) -> None:
    """Mean and 95 % interval per arm and model; the paper's value as a cross."""
    arms = present_arms(df)
    fig, panels = _panels(df, 0.22 * max(len(arms), 1) + 0.2)
    for dataset, ax in panels:
        part = df[df["dataset"] == dataset].reset_index(drop=True)
        values = []
        for i, r in part.iterrows():
            for j, arm in enumerate(arms):
                y = i + (j - (len(arms) - 1) / 2) * 0.8 / max(len(arms), 1)
                mean, low, high = _num(r[f"{arm}_mean"]), _num(r.get(f"{arm}_ci95_low")), _num(r.get(f"{arm}_ci95_high"))
                if not math.isnan(mean):
                    _point(ax, mean, low, high, y, COLOURS[arm], ARM_LABELS[arm] if i == 0 else None)
                    values += [v for v in (mean, low, high) if not math.isnan(v)]
                paper = _num(r.get(f"paper_{arm}"))
                if not math.isnan(paper):
                    ax.plot(paper, y, "x", color=COLOURS[arm], ms=6, mew=1.5, label="paper" if i == 0 and j == 0 else None)
                    values.append(paper)
        if values:  # zoomed to the data: a few tenths of a point stay visible
            lo, hi = min(values), max(values)
            pad = max(0.1, 0.08 * (hi - lo))
            ax.set_xlim(lo - pad, hi + pad)
        _finish(ax, part, dataset, "test accuracy (%), mean and 95 % interval over seeds")
    fig.suptitle(title, fontsize=11)
    _save(fig, out)


def plot_differences(df: pd.DataFrame, out: str | PathLike, title: str) -> None:
    """Each scratch arm minus fine-tuning (SFP: minus soft-pruned) per model, paired over seeds."""
    fig, panels = _panels(df, 0.9)
    for dataset, ax in panels:
        part = df[df["dataset"] == dataset].reset_index(drop=True)
        for i, r in part.iterrows():
            # SFP compares with its soft-pruned arm; a study without fine-tuned runs of its own
            # (the published ImageNet architectures) still shows the paper's difference
            reference = "soft" if not math.isnan(_num(r.get("soft_mean"))) else "finetune"
            for j, arm in enumerate(SCRATCH_ARMS):
                y = i + (j - 0.5) * 0.35
                d, low, high = _num(r.get(f"{arm}_vs_ft_diff")), _num(r.get(f"{arm}_vs_ft_ci95_low")), _num(r.get(f"{arm}_vs_ft_ci95_high"))
                if not math.isnan(d):
                    _point(ax, d, low, high, y, COLOURS[arm], f"{ARM_LABELS[arm]} - {ARM_LABELS[reference]}" if i == 0 else None)
                paper = _num(r.get(f"paper_{arm}")) - _num(r.get(f"paper_{reference}"))
                if not math.isnan(paper):
                    ax.plot(paper, y, "x", color=COLOURS[arm], ms=6, mew=1.5, label="paper" if i == 0 and j == 0 else None)
        ax.axvline(0, color="grey", lw=1)
        _finish(ax, part, dataset, "minus fine-tuned (points), 95 % interval over paired seeds\n> 0: training from scratch is better")
    fig.suptitle(title, fontsize=11)
    _save(fig, out)
