"""Figure of the latency table: per batch size, the measured speedup over the full network against
the counted MAC reduction, one colour per kind of model. Structured (pruned) points climb with
the reduction along the ideal diagonal; masked points stay on the line speedup = 1 however many
MACs they leave out. Drawn from the table's columns, so figure and table cannot disagree."""

from __future__ import annotations

from os import PathLike

import matplotlib

matplotlib.use("Agg")  # files only; no display on cluster nodes

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter  # noqa: E402

from .plotting import save_png  # noqa: E402

MARKERS = ("o", "^", "s", "D", "v")  # one per device
NOTHING = "nothing to compare: no full network of the same dataset and arch\nwas measured beside the others (or no device was available)"


def _panel(ax, part: pd.DataFrame, colours: dict, markers: dict) -> None:
    """One batch size: speedup vs MAC reduction, the ideal diagonal and the no-gain line."""
    top = max([2.0, *part["mac_reduction"].dropna(), *part["speedup_vs_full"].dropna()]) * 1.1
    ax.plot([1, top], [1, top], ls="--", lw=1, color="grey", label="speedup = MAC reduction")
    ax.axhline(1, lw=0.8, color="black", ls=":")
    for (kind, device), d in part.groupby(["kind", "device"], sort=False):
        ax.scatter(d["mac_reduction"], d["speedup_vs_full"], s=40, color=colours[kind], marker=markers[device], edgecolor="black", linewidth=0.4, label=f"{kind}, {device}", zorder=3)
    ax.set_xscale("log")
    ax.set_yscale("log")
    for axis in (ax.xaxis, ax.yaxis):  # 1.5x, 2x, not 2x10^0
        axis.set_major_locator(LogLocator(base=10, subs=(1, 1.5, 2, 3, 5, 7)))
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}×"))
        axis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("MAC reduction (full network's MACs / these, ×)")
    ax.set_ylabel("measured speedup vs full (×)")
    ax.grid(alpha=0.3, which="both")


def plot_latency(df: pd.DataFrame, out: str | PathLike, title: str) -> None:
    """One panel per batch size; a note instead of points where nothing could be compared."""
    from prunebench.analysis.latency import KINDS

    shown = df.dropna(subset=["speedup_vs_full"]) if len(df) else df
    batches = sorted(set(shown["batch"])) if len(shown) else [None]
    colours = dict(zip(KINDS, sns.color_palette("colorblind", len(KINDS))))
    markers = {d: MARKERS[i % len(MARKERS)] for i, d in enumerate(dict.fromkeys(shown["device"] if len(shown) else []))}
    fig, axes = plt.subplots(1, len(batches), figsize=(max(7.5, 5.2 * len(batches)), 4.4), squeeze=False)
    for ax, batch in zip(axes[0], batches):
        if batch is None:
            ax.text(0.5, 0.5, NOTHING, ha="center", va="center", transform=ax.transAxes)
            ax.set_axis_off()
            continue
        _panel(ax, shown[shown["batch"] == batch], colours, markers)
        ax.set_title(f"batch {batch}", fontsize=10)
        ax.legend(fontsize=7, frameon=False, loc="upper left")
    save_png(fig, out, f"{title}\nstructured (pruned) networks run faster; masked ones count fewer MACs but run dense kernels", dpi=130)
