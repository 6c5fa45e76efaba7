"""Figure for Table 1: our accuracy per model and arm as bars, the paper's as markers on top.

Drawn from the table's mean/std columns (never recomputed), so figure and table cannot disagree.
"""

from __future__ import annotations

from os import PathLike

import matplotlib

matplotlib.use("Agg")  # files only; no display on cluster nodes

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from ..io import atomic_path  # noqa: E402
from .table import ARM_LABELS, ARMS, dataset_name  # noqa: E402

_WIDTH = 0.8  # seaborn's default total width of one x group of dodged bars


def _long(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, arm): ours and the paper's, for seaborn and for the overlays."""
    rows = []
    for r in df.to_dict("records"):
        for arm in ARMS:
            conf = r.get(f"paper_{arm}_confirmed")
            rows.append(
                {
                    "model": r["model"],
                    "arm": ARM_LABELS[arm],
                    "mean": r[f"{arm}_mean"],
                    "std": r[f"{arm}_std"],
                    "paper": r.get(f"paper_{arm}", np.nan),
                    "confirmed": bool(conf) if pd.notna(conf) else False,
                }
            )
    out = pd.DataFrame(rows, columns=["model", "arm", "mean", "std", "paper", "confirmed"])
    return out.astype({"mean": float, "std": float, "paper": float})


def plot_table1(df: pd.DataFrame, png_path: str | PathLike) -> None:
    """Bar chart of our mean ± std per model and arm, with the paper's numbers as markers."""
    long = _long(df)
    models = list(dict.fromkeys(long["model"]))
    hues = [ARM_LABELS[a] for a in ARMS]
    colors = dict(zip(hues, sns.color_palette("colorblind", len(hues))))
    step = _WIDTH / len(hues)
    long["x"] = [models.index(m) - _WIDTH / 2 + step * (hues.index(a) + 0.5) for m, a in zip(long["model"], long["arm"])]

    with sns.axes_style("whitegrid"):  # scoped: leave global matplotlib style alone
        fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(models) + 2.5), 4.5))
    try:
        if long["mean"].notna().any():
            sns.barplot(
                data=long, x="model", y="mean", hue="arm", order=models, hue_order=hues,
                palette=colors, saturation=1, errorbar=None, legend=False, ax=ax,
            )
        spread = long[long["std"].notna()]  # one seed: no std, so no bar at all rather than a zero-height one
        ax.errorbar(spread["x"], spread["mean"], yerr=spread["std"], fmt="none", ecolor="0.2", elinewidth=1, capsize=3)
        for confirmed, face in ((True, None), (False, "white")):
            pts = long[(long["confirmed"] == confirmed) & long["paper"].notna()]
            fill = [colors[a] for a in pts["arm"]] if face is None else face
            ax.scatter(pts["x"], pts["paper"], marker="D", s=40, c=fill, edgecolors="black", linewidths=1.2, zorder=3)

        values = pd.concat([long["mean"] - long["std"].fillna(0), long["mean"] + long["std"].fillna(0), long["paper"]]).dropna()
        if len(values):
            lo, hi = values.min(), values.max()
            pad = max(0.5, 0.15 * (hi - lo))
            ax.set_ylim(lo - pad, hi + pad)  # accuracies differ by tenths; a zero baseline would hide them
        ax.set_xticks(range(len(models)), models)
        ax.set_xlim(-0.5, max(len(models), 1) - 0.5)
        ax.set_xlabel("")
        ax.set_ylabel("test accuracy (%)")

        datasets = ", ".join(dataset_name(d) for d in dict.fromkeys(df["dataset"])) if len(df) else "no runs"
        metric = df["metric"].iloc[0] if "metric" in df and len(df) else "best"
        ax.set_title(f"{datasets}, L1-norm pruning: {metric} test accuracy, ours vs paper")

        handles = [Patch(facecolor=colors[h], label=f"ours: {h}") for h in hues]
        handles += [
            Line2D([], [], color="0.2", marker="|", linestyle="none", markersize=10, label="ours: ± std over seeds"),
            Line2D([], [], color="none", marker="D", markerfacecolor="0.6", markeredgecolor="black", label="paper (filled in arm colour)"),
            Line2D([], [], color="none", marker="D", markerfacecolor="white", markeredgecolor="black", label="paper, unconfirmed (*)"),
        ]
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize="small")
        fig.tight_layout()
        with atomic_path(png_path) as tmp:
            fig.savefig(tmp, format="png", dpi=150)
    finally:
        plt.close(fig)
