"""The figures of Li et al.'s analyses, drawn from the curve table and the curve jobs' norms.

``norms``        Fig. 2a: each layer's filter L1 norms, sorted, divided by the largest
``sensitivity``  Fig. 2b/2c and 6: accuracy against the fraction pruned, one line per layer,
                 not retrained and retrained side by side, Li's sensitive layers in red
``criteria``     Fig. 8 and 9: the same, one panel per criterion
``consecutive``  every layer at once: independent against greedy ranking, as is and retrained
"""

from __future__ import annotations

import textwrap
from os import PathLike

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from prunebench.core.io import atomic_path  # noqa: E402
from prunebench.core.names import arch_name  # noqa: E402

CRITERION_TITLES = {"l1": "L1 (smallest pruned)", "l2": "L2 (smallest pruned)", "random": "random filters", "smallest": "largest pruned"}
STRATEGY_COLOURS = {"independent": "tab:blue", "greedy": "tab:orange"}


def _save(fig, out: str | PathLike, title: str, standin: bool) -> None:
    text = title + ("  [synthetic stand-in: numbers mean nothing]" if standin else "")
    fig.suptitle(textwrap.fill(text, int(fig.get_figwidth() * 11)), fontsize=11)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def _empty(out: str | PathLike, title: str, what: str) -> None:
    fig, ax = plt.subplots(figsize=(6, 2))
    ax.axis("off")
    ax.text(0.5, 0.5, f"No {what} in this study's analyses.", ha="center", va="center")
    _save(fig, out, title, False)


def _grid(n: int, width: float = 4.6, height: float = 3.4):
    cols = min(n, 3)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    return fig, list(axes.flat)


def _depth_bar(ax, layers: list) -> None:
    """Too many layers for a legend: a colour bar from the first to the last layer instead."""
    mappable = plt.cm.ScalarMappable(cmap="viridis", norm=plt.Normalize(min(layers), max(layers)))
    ax.figure.colorbar(mappable, ax=ax, label="layer (Li's numbering)", fraction=0.05)


def _layer_lines(ax, df: pd.DataFrame, title: str) -> None:
    """Accuracy against the fraction pruned, a line per layer coloured by depth; sensitive
    layers red and labelled, the unpruned accuracy dotted."""
    layers = sorted(df["layer"].dropna().unique())
    cmap = plt.get_cmap("viridis")
    for i, layer in enumerate(layers):
        part = df[df["layer"] == layer].sort_values("ratio")
        if part["sensitive"].any():
            ax.plot(part["ratio"], part["accuracy"], color="tab:red", lw=2, marker="o", ms=3, label=f"layer {layer} (sensitive)")
        else:
            ax.plot(part["ratio"], part["accuracy"], color=cmap(i / max(len(layers) - 1, 1)), lw=1, marker="o", ms=2, label=f"layer {layer}" if len(layers) <= 13 else None)
    if df["base_accuracy"].notna().any():
        ax.axhline(df["base_accuracy"].mean(), color="grey", ls=":", lw=1, label="unpruned")
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("fraction of the layer's filters pruned")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, ncol=2 if len(layers) > 6 else 1)
    if len(layers) > 13:
        _depth_bar(ax, [int(v) for v in layers])


def plot_norms(curves: list[dict], out: str | PathLike, title: str) -> None:
    """Fig. 2a from the first curve job of each model that recorded norms."""
    norms: dict[str, dict] = {}
    for c in curves:
        if c.get("norms") and c["arch"] not in norms:
            norms[c["arch"]] = c["norms"]
    if not norms:
        return _empty(out, title, "layer sensitivity curve")
    fig, axes = _grid(len(norms))
    cmap = plt.get_cmap("viridis")
    for ax, (arch, by_layer) in zip(axes, norms.items()):
        for i, (layer, values) in enumerate(by_layer.items()):
            x = [j / max(len(values) - 1, 1) for j in range(len(values))]
            ax.plot(x, values, color=cmap(i / max(len(by_layer) - 1, 1)), lw=1, label=f"layer {layer}" if len(by_layer) <= 13 else None)
        ax.set_title(f"{arch_name(arch)}: filters' L1 norms, sorted", fontsize=10)
        ax.set_xlabel("filter rank / filters in the layer")
        ax.set_ylabel("L1 norm / largest in the layer")
        ax.grid(alpha=0.3)
        if len(by_layer) <= 13:
            ax.legend(fontsize=6, ncol=2)
        else:
            _depth_bar(ax, [int(k) for k in by_layer])
    _save(fig, out, title, any(c.get("standin") for c in curves))


def plot_sensitivity(df: pd.DataFrame, out: str | PathLike, title: str) -> None:
    """Per model, the L1 curves pruned alone: not retrained, and retrained where the study has them."""
    l1 = df[(df["mode"] == "layer") & (df["name"] == "l1")]
    panels = [(arch, retrained) for arch in l1["model"].unique() for retrained in (False, True) if not l1[(l1["model"] == arch) & (l1["retrained"] == retrained)].empty]
    if not panels:
        return _empty(out, title, "L1 layer sensitivity")
    fig, axes = _grid(len(panels))
    for ax, (arch, retrained) in zip(axes, panels):
        part = l1[(l1["model"] == arch) & (l1["retrained"] == retrained)]
        _layer_lines(ax, part, f"{arch_name(arch)}: each layer pruned alone, {'retrained' if retrained else 'not retrained'}")
    _save(fig, out, title, bool(df["standin"].any()))


def plot_criteria(df: pd.DataFrame, out: str | PathLike, title: str) -> None:
    """Per model with several criteria, one panel per criterion (not retrained)."""
    layer = df[(df["mode"] == "layer") & ~df["retrained"]]
    panels = [(arch, name) for arch in layer["model"].unique() if layer[layer["model"] == arch]["name"].nunique() > 1 for name in layer[layer["model"] == arch]["name"].unique()]
    if not panels:
        return _empty(out, title, "comparison of criteria")
    fig, axes = _grid(len(panels))
    for ax, (arch, name) in zip(axes, panels):
        _layer_lines(ax, layer[(layer["model"] == arch) & (layer["name"] == name)], f"{arch_name(arch)}: {CRITERION_TITLES.get(name, name.replace('_', '-'))}")
    _save(fig, out, title, bool(df["standin"].any()))


def plot_consecutive(df: pd.DataFrame, out: str | PathLike, title: str) -> None:
    """Every layer at once: independent and greedy ranking, solid as is, dashed retrained."""
    cons = df[df["mode"] == "consecutive"]
    if cons.empty:
        return _empty(out, title, "consecutive-layer comparison")
    archs = list(cons["model"].unique())
    fig, axes = _grid(len(archs), width=5.5, height=3.8)
    for ax, arch in zip(axes, archs):
        for (name, retrained), part in cons[cons["model"] == arch].groupby(["name", "retrained"], sort=True):
            part = part.sort_values("ratio")
            ax.errorbar(part["ratio"], part["accuracy"], yerr=part["std"], color=STRATEGY_COLOURS.get(name), ls="--" if retrained else "-", marker="o", ms=3, capsize=2, label=f"{name}, {'retrained' if retrained else 'not retrained'}")
        ax.set_title(f"{arch_name(arch)}: every layer pruned at once", fontsize=10)
        ax.set_xlabel("fraction of every layer's filters pruned")
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    _save(fig, out, title, bool(df["standin"].any()))
