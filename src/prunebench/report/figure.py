"""Figure of a study's table: our accuracy per model and arm as bars, the paper's as markers on top.

Drawn from the table's mean/std columns (never recomputed), so figure and table cannot disagree.
One panel per dataset, each with its own accuracy axis (CIFAR-10 and CIFAR-100 differ by ~20 points).
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

from prunebench.core.io import atomic_path  # noqa: E402
from prunebench.core.names import STANDIN_LABEL, dataset_name  # noqa: E402

from .sweep import is_sweep, plot_sweep  # noqa: E402
from .table import ARM_LABELS, dataset_sort_key, present_arms

_WIDTH = 0.8  # total width of one x group of dodged bars


def _long(df: pd.DataFrame, arms: list[str]) -> pd.DataFrame:
    """One row per (model, arm): ours and the paper's, for the bars and the overlays."""
    rows = []
    for r in df.to_dict("records"):
        for arm in arms:
            conf = r.get(f"paper_{arm}_confirmed")
            rows.append(
                {
                    "model": r["model"],
                    "arm": ARM_LABELS[arm],
                    "mean": r[f"{arm}_mean"],
                    "std": r[f"{arm}_std"],
                    "paper": r.get(f"paper_{arm}", np.nan),
                    "confirmed": (str(conf).strip().lower() in ("true", "1")) if pd.notna(conf) else False,
                }
            )
    out = pd.DataFrame(rows, columns=["model", "arm", "mean", "std", "paper", "confirmed"])
    return out.astype({"mean": float, "std": float, "paper": float})


def _standin(df: pd.DataFrame) -> bool:
    """Whether any row was trained on a synthetic stand-in dataset (bool or CSV text)."""
    return "standin" in df and bool(df["standin"].map(lambda v: str(v).strip().lower() in ("true", "1")).any())


def _panel(ax, df: pd.DataFrame, colors: dict, standin: bool, arms: list[str]) -> None:
    """Bars of one dataset's rows on ``ax``."""
    long = _long(df, arms)
    hues = [ARM_LABELS[a] for a in arms]
    models = list(dict.fromkeys(long["model"]))
    step = _WIDTH / len(hues)
    long["x"] = [models.index(m) - _WIDTH / 2 + step * (hues.index(a) + 0.5) for m, a in zip(long["model"], long["arm"])]

    bars = long[long["mean"].notna()]
    ax.bar(
        bars["x"], bars["mean"], width=step, color=[colors[a] for a in bars["arm"]],
        hatch="//" if standin else None, edgecolor="white" if standin else None, linewidth=0,
    )
    spread = bars[bars["std"].notna()]  # one seed: no std, so no error bar rather than a zero-height one
    ax.errorbar(spread["x"], spread["mean"], yerr=spread["std"], fmt="none", ecolor="0.2", elinewidth=1, capsize=3)
    for confirmed, face in ((True, None), (False, "white")):
        pts = long[(long["confirmed"] == confirmed) & long["paper"].notna()]
        fill = [colors[a] for a in pts["arm"]] if face is None else face
        ax.scatter(pts["x"], pts["paper"], marker="D", s=40, c=fill, edgecolors="black", linewidths=1.2, zorder=3)
    missing = long[long["mean"].isna()]
    for x in missing["x"]:
        ax.annotate("–", (x, 0), xycoords=("data", "axes fraction"), xytext=(0, 3), textcoords="offset points", ha="center", color="0.4")

    values = pd.concat([long["mean"] - long["std"].fillna(0), long["mean"] + long["std"].fillna(0), long["paper"]]).dropna()
    if len(values):
        lo, hi = values.min(), values.max()
        pad = max(0.5, 0.15 * (hi - lo))
        ax.set_ylim(lo - pad, hi + pad)  # accuracies differ by tenths; a zero baseline would hide them
    ax.set_xticks(range(len(models)), models, rotation=20 if len(models) > 3 else 0, ha="right" if len(models) > 3 else "center")
    ax.set_xlim(-0.5, max(len(models), 1) - 0.5)
    ax.set_xlabel("")
    ax.set_ylabel("test accuracy (%)")
    if standin:
        ax.text(
            0.5, 0.5, f"{STANDIN_LABEL.upper()} DATA\naccuracies are meaningless", transform=ax.transAxes,
            ha="center", va="center", fontsize=11, fontweight="bold", color="firebrick", alpha=0.6, zorder=4,
        )


def plot_study(df: pd.DataFrame, png_path: str | PathLike, title: str) -> None:
    """Bar chart of our mean ± std per model and arm, with the paper's numbers as markers.

    Works for any study's table (``build_table`` or ``read_table``); one panel per dataset. A
    sweep of prune ratios (unstructured pruning) is drawn as accuracy against ratio instead.
    """
    if is_sweep(df):
        return plot_sweep(df, png_path, title)
    arms = present_arms(df)
    hues = [ARM_LABELS[a] for a in arms]
    first_seen = list(dict.fromkeys(df["dataset"])) if len(df) else []
    datasets = sorted(first_seen, key=lambda d: dataset_sort_key(d, first_seen)) or [None]
    colors = dict(zip(hues, sns.color_palette("colorblind", len(hues))))
    widths = [max(1, df.loc[df["dataset"] == d, "model"].nunique()) if d is not None else 1 for d in datasets]

    with sns.axes_style("whitegrid"):  # scoped: leave global matplotlib style alone
        fig, axes = plt.subplots(
            1, len(datasets), figsize=(sum(max(3.2, 1.5 * w + 1.2) for w in widths) + 2.6, 4.8),
            gridspec_kw={"width_ratios": [max(3.2, 1.5 * w + 1.2) for w in widths]}, squeeze=False,
        )
    try:
        for ax, d in zip(axes[0], datasets):
            if d is None:
                ax.text(0.5, 0.5, "no runs", transform=ax.transAxes, ha="center", va="center")
                ax.set_xticks([])
                continue
            sub = df[df["dataset"] == d]
            standin = _standin(sub)
            _panel(ax, sub, colors, standin, arms)
            ax.set_title(dataset_name(d, standin), color="firebrick" if standin else "black",
                         fontweight="bold" if standin else "normal")

        metric = df["metric"].iloc[0] if "metric" in df and len(df) else "best"
        has_paper = bool(df[[f"paper_{a}" for a in arms]].notna().any().any())
        fig.suptitle(f"{title}: {metric} test accuracy" + (", ours vs paper" if has_paper else ""))
        handles = [Patch(facecolor=colors[h], label=f"ours: {h}") for h in hues]
        handles.append(Line2D([], [], color="0.2", marker="|", linestyle="none", markersize=10, label="ours: ± std over seeds"))
        if has_paper:  # no paper markers, no legend for them
            handles += [
                Line2D([], [], color="none", marker="D", markerfacecolor="0.6", markeredgecolor="black", label="paper (filled in arm colour)"),
                Line2D([], [], color="none", marker="D", markerfacecolor="white", markeredgecolor="black", label="paper, unconfirmed (*)"),
            ]
        if _standin(df):
            handles.append(Patch(facecolor="0.7", hatch="//", edgecolor="white", label=f"ours, {STANDIN_LABEL} data"))
        if df[[f"{a}_mean" for a in arms]].isna().any().any():
            handles.append(Line2D([], [], color="0.4", marker="$–$", linestyle="none", label="arm has no runs"))
        axes[0][-1].legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize="small")
        fig.tight_layout()
        with atomic_path(png_path) as tmp:
            fig.savefig(tmp, format="png", dpi=150)
    finally:
        plt.close(fig)
