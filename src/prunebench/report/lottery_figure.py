"""Figure of the lottery table: accuracy against the share of parameters pruned, winning ticket
(filled circles, solid) and random init (open squares, dashed), one colour per initial LR, one panel per model and mask
method. Drawn from the table's columns, so figure and table cannot disagree."""

from __future__ import annotations

from os import PathLike

import matplotlib

matplotlib.use("Agg")  # files only; no display on cluster nodes

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from prunebench.core.io import atomic_path  # noqa: E402
from prunebench.core.names import STANDIN_LABEL, arch_name, dataset_name  # noqa: E402

from .lottery import METHOD_LABELS, setting_order  # noqa: E402


def plot_lottery(table: pd.DataFrame, out: str | PathLike, title: str | None = None) -> None:
    panels = list(dict.fromkeys(zip(table["dataset"], table["arch"], table["method"])))
    lrs = sorted(set(table["lr"]), reverse=True)
    colours = dict(zip(lrs, sns.color_palette("colorblind", len(lrs))))
    cols = min(3, len(panels))
    rows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.6 * rows), squeeze=False)
    for ax, (dataset, arch, method) in zip(axes.flat, panels):
        sel = table[(table["dataset"] == dataset) & (table["arch"] == arch) & (table["method"] == method)]
        for lr in lrs:
            d = sel[sel["lr"] == lr]
            d = d.iloc[sorted(range(len(d)), key=lambda i: setting_order(method, d["setting"].iloc[i]))]
            for arm, style, face in (("winning", "o-", colours[lr]), ("random", "s--", "white")):
                ax.errorbar(d["pruned_pct"], d[f"{arm}_mean"], yerr=d[f"{arm}_std"].fillna(0), fmt=style, ms=5, mfc=face,
                            capsize=2, color=colours[lr], label=f"{arm}, LR {lr:g}")
            if d["unpruned_mean"].notna().any():
                ax.axhline(d["unpruned_mean"].iloc[0], color=colours[lr], lw=0.8, ls=":")
        standin = bool(sel["standin"].any())
        ax.set_title(f"{arch_name(arch)}, {METHOD_LABELS.get(method, method)}\n{dataset_name(dataset, standin)}", fontsize=9)
        ax.set_xlabel("parameters pruned (%)")
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=max(1, len(labels)), fontsize=8, frameon=False)
    note = f" ({STANDIN_LABEL})" if table["standin"].any() else ""
    fig.suptitle((title or "Winning ticket vs random init") + note + "\n(dotted: unpruned at that LR)", fontsize=10)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=150)
    plt.close(fig)
