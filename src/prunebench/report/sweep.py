"""Figure of a prune-ratio sweep (unstructured pruning): accuracy against prune ratio.

One panel per (dataset, model), one line per arm with ± std bands, and the unpruned network's
accuracy as a dashed level, so a reader sees at a glance where fine-tuning starts to beat
training from scratch. Drawn from the table's columns, like the bar figure.
"""

from __future__ import annotations

from os import PathLike

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from prunebench.core.io import atomic_path  # noqa: E402
from prunebench.core.names import STANDIN_LABEL, arch_name, dataset_name, ratio  # noqa: E402

from .table import ARM_LABELS, dataset_sort_key, present_arms

MIN_POINTS = 3  # settings per model that make a table a sweep


def is_sweep(df: pd.DataFrame) -> bool:
    """Every setting a ratio, and some (dataset, arch) with at least MIN_POINTS of them."""
    if not len(df) or any(ratio(s) is None for s in df["setting"]):
        return False
    return bool(df.groupby(["dataset", "arch"])["setting"].nunique().max() >= MIN_POINTS)


def _truthy(v: object) -> bool:
    return str(v).strip().lower() in ("true", "1")


def plot_sweep(df: pd.DataFrame, png_path: str | PathLike, title: str) -> None:
    first_seen = list(dict.fromkeys(df["dataset"]))
    datasets = sorted(first_seen, key=lambda d: dataset_sort_key(d, first_seen))
    archs = list(dict.fromkeys(df["arch"]))
    arms = [a for a in present_arms(df) if a != "unpruned"]
    colors = dict(zip(arms, sns.color_palette("colorblind", len(arms))))
    with sns.axes_style("whitegrid"):
        fig, axes = plt.subplots(len(datasets), len(archs), figsize=(3.6 * len(archs) + 1.8, 3.2 * len(datasets)), squeeze=False)
    try:
        for i, dataset in enumerate(datasets):
            for j, arch in enumerate(archs):
                ax = axes[i][j]
                sub = df[(df["dataset"] == dataset) & (df["arch"] == arch)].copy()
                if not len(sub):
                    ax.set_axis_off()
                    continue
                sub["x"] = [100 * ratio(s) for s in sub["setting"]]
                sub = sub.sort_values("x")
                for arm in arms:
                    mean, std = sub[f"{arm}_mean"].astype(float), sub[f"{arm}_std"].astype(float).fillna(0)
                    ax.plot(sub["x"], mean, marker="o", color=colors[arm], label=ARM_LABELS[arm])
                    ax.fill_between(sub["x"], mean - std, mean + std, color=colors[arm], alpha=0.2, linewidth=0)
                level = sub["unpruned_mean"].astype(float).dropna()
                if len(level):
                    ax.axhline(level.iloc[0], color="0.3", linestyle="--", linewidth=1, label="unpruned")
                standin = any(_truthy(s) for s in sub["standin"])
                ax.set_title(f"{arch_name(arch)}, {dataset_name(dataset, standin)}", fontsize="medium", color="firebrick" if standin else "black")
                ax.set_xlabel("prune ratio (% of conv weights)")
                ax.set_ylabel("test accuracy (%)" if j == 0 else "")
        metric = df["metric"].iloc[0] if "metric" in df else "best"
        fig.suptitle(f"{title}: {metric} test accuracy against prune ratio" + (f" ({STANDIN_LABEL} data: meaningless)" if df["standin"].map(_truthy).any() else ""))
        handles, labels = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.0, 0.95), frameon=False, fontsize="small")
        fig.tight_layout()
        with atomic_path(png_path) as tmp:
            fig.savefig(tmp, format="png", dpi=150, bbox_inches="tight")
    finally:
        plt.close(fig)
