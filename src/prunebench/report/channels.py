"""Channels kept per layer: the architecture a pruning method arrived at, from prune.json reports.

For a learned architecture (network slimming) the per-layer widths are a result in themselves:
which layers the global threshold thinned out and which it kept. ``channels_table`` gives the
numbers (mean, min and max over seeds) and ``plot_channels`` draws them, one panel per
(dataset, arch), the full width as a light bar behind one line per setting.
"""

from __future__ import annotations

from os import PathLike

import matplotlib

matplotlib.use("Agg")  # files only; no display on cluster nodes

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from prunebench.core.errors import UserError  # noqa: E402
from prunebench.core.io import atomic_path  # noqa: E402
from prunebench.core.names import STANDIN_LABEL, arch_name, dataset_name, normalize_setting, ratio, setting_label

from .table import dataset_sort_key, setting_sort_key

CHANNEL_COLUMNS = ["dataset", "arch", "setting", "layer", "stage", "before", "after_mean", "after_min", "after_max", "seeds"]
_NAMED_TICKS = 20  # up to this many layers, every layer is named on the x axis; beyond, its index


def _layers(reports: list[dict]) -> pd.DataFrame:
    """One row per (report, layer), with the layer's position in its network."""
    rows = []
    for rep in reports:
        run = rep.get("run") if isinstance(rep, dict) else None
        if not isinstance(run, dict) or not {"dataset", "arch", "seed"} <= run.keys():
            raise UserError(f"a prune report has no run with dataset, arch and seed ({str(rep)[:80]}); re-run its pruning")
        setting = normalize_setting(run.get("setting", run.get("variant", rep.get("variant"))))  # "variant": reports before studies
        if setting is None:
            raise UserError(f"prune report for {run} has no setting; re-run its pruning")
        layers = rep.get("layers")
        if not isinstance(layers, list) or not layers:
            raise UserError(f"prune report for {run} has no per-layer widths ('layers'); re-run its pruning")
        for pos, layer in enumerate(layers):
            try:
                before, after = int(layer["before"]), int(layer["after"])
                name = str(layer["layer"])
            except (KeyError, TypeError, ValueError):
                raise UserError(f"prune report for {run}: layer {pos} lacks layer/before/after; re-run its pruning") from None
            rows.append(
                {
                    "dataset": run["dataset"], "arch": run["arch"], "setting": setting, "seed": run["seed"],
                    "method": run.get("method", rep.get("criterion")), "lr": rep.get("trained_lr"), "standin": bool(rep.get("standin", run.get("standin", False))),
                    "layer": name, "stage": layer.get("stage"), "pos": pos, "before": before, "after": after,
                }
            )
    cols = ["dataset", "arch", "setting", "seed", "method", "lr", "standin", "layer", "stage", "pos", "before", "after"]
    df = _name_series(pd.DataFrame(rows, columns=cols))
    dup = df[df.duplicated(["dataset", "arch", "setting", "seed", "layer"])]
    if len(dup):
        r = dup.iloc[0]
        raise UserError(
            f"two prune reports (or a repeated layer {r.layer}) for {r.dataset} {arch_name(r.arch)} setting {r.setting} seed {r.seed}; keep one of them"
        )
    return df


def _name_series(df: pd.DataFrame) -> pd.DataFrame:
    """Where one model was pruned by several methods, or from bases trained at several LRs (the
    lottery study), a series is named by all of them: "iterative 2x0.2 @ LR 0.01"."""
    for _, idx in df.groupby(["dataset", "arch"]).groups.items():
        sub = df.loc[idx]
        methods, lrs = sub["method"].nunique() > 1, sub["lr"].nunique() > 1
        if methods or lrs:
            df.loc[idx, "setting"] = [
                " ".join(filter(None, [m if methods else "", setting_label(s) or s, f"@ LR {lr:g}" if lrs else ""]))
                for m, s, lr in zip(sub["method"], sub["setting"], sub["lr"])
            ]
    return df


def _order(df: pd.DataFrame) -> tuple[list[tuple[str, str]], dict[tuple[str, str], list[str]]]:
    """Panels (dataset, arch) in table order, and each panel's layers in network order."""
    datasets = list(dict.fromkeys(df["dataset"]))
    archs = list(dict.fromkeys(df["arch"]))
    panels = sorted(dict.fromkeys(zip(df["dataset"], df["arch"])), key=lambda k: (dataset_sort_key(k[0], datasets), archs.index(k[1])))
    layers = {}
    for key in panels:
        sub = df[(df["dataset"] == key[0]) & (df["arch"] == key[1])]
        # Network order: as the first report lists them, then any layer only a later report has.
        layers[key] = list(dict.fromkeys(sub["layer"]))
    return panels, layers


def channels_table(prune_reports: list[dict]) -> pd.DataFrame:
    """Channels kept per layer, over seeds: one row per (dataset, arch, setting, layer)."""
    df = _layers(prune_reports)
    if df.empty:
        return pd.DataFrame(columns=CHANNEL_COLUMNS)
    panels, layers = _order(df)
    rows = []
    for dataset, arch in panels:
        sub = df[(df["dataset"] == dataset) & (df["arch"] == arch)]
        for setting in sorted(sub["setting"].unique(), key=setting_sort_key):
            mine = sub[sub["setting"] == setting]
            for name in layers[(dataset, arch)]:
                lay = mine[mine["layer"] == name]
                if lay.empty:
                    continue
                if lay["before"].nunique() > 1:
                    raise UserError(
                        f"prune reports for {dataset} {arch_name(arch)} disagree on the full width of layer {name} "
                        f"({', '.join(map(str, sorted(lay['before'].unique())))}); they are of different models"
                    )
                rows.append(
                    {
                        "dataset": dataset, "arch": arch, "setting": setting, "layer": name, "stage": lay["stage"].iloc[0],
                        "before": int(lay["before"].iloc[0]), "after_mean": float(lay["after"].mean()),
                        "after_min": int(lay["after"].min()), "after_max": int(lay["after"].max()), "seeds": int(lay["seed"].nunique()),
                    }
                )
    return pd.DataFrame(rows, columns=CHANNEL_COLUMNS)


def _series_label(setting: str, kept_pct: float, seeds: int) -> str:
    if " " in setting:  # a series named by method and LR (_name_series)
        name = setting
    else:
        name = f"prune {setting_label(setting)}" if ratio(setting) is not None else f"variant {setting}"
    return f"{name}: {kept_pct:.0f}% kept ({seeds} seed{'s' if seeds > 1 else ''})"


def _stage_bands(ax, stages: list, axes_inches: float) -> None:
    """Shade every other stage and name each stage at the top of the panel."""
    runs, start = [], 0
    for i in range(1, len(stages) + 1):
        if i == len(stages) or stages[i] != stages[start]:
            runs.append((start, i - 1, stages[start]))
            start = i
    if len(runs) < 2 or all(s is None for s in stages):
        return
    for k, (a, b, stage) in enumerate(runs):
        if k % 2:
            ax.axvspan(a - 0.5, b + 0.5, color="0.5", alpha=0.07, lw=0, zorder=0)
        label = f"stage {stage}" if isinstance(stage, (int, float)) or str(stage).isdigit() else str(stage)
        if (b - a + 1) / len(stages) * axes_inches < 0.7:  # too narrow for the word: the bare stage
            label = str(stage)
        ax.text((a + b) / 2, 1.0, label, transform=ax.get_xaxis_transform(), ha="center", va="bottom", fontsize="small", color="0.35")


def plot_channels(prune_reports: list[dict], png_path: str | PathLike, title: str) -> None:
    """Channels kept per layer (mean over seeds) against the full width; one panel per (dataset, arch)."""
    table = channels_table(prune_reports)
    df = _layers(prune_reports)
    # Masked methods (unstructured, SFP) report conv weights per layer rather than channels.
    unit = "conv weights" if any(isinstance(r, dict) and r.get("unit") == "conv weights" for r in prune_reports) else "channels"
    panels, layers = _order(df) if len(df) else ([], {})
    most = max((len(v) for v in layers.values()), default=1)
    axes_inches = min(14.0, max(7.5, 0.12 * most))
    width = axes_inches + 4.5  # room for the y label and the legend on the right

    with sns.axes_style("whitegrid"):  # scoped: leave global matplotlib style alone
        fig, axes = plt.subplots(max(1, len(panels)), 1, figsize=(width, (3.4 if most <= _NAMED_TICKS else 3.9) * max(1, len(panels)) + 0.6), squeeze=False)
    try:
        if not panels:
            axes[0][0].text(0.5, 0.5, "no prune reports", transform=axes[0][0].transAxes, ha="center", va="center")
        settings_all = sorted(table["setting"].unique(), key=setting_sort_key) if len(table) else []
        palette = dict(zip(settings_all, sns.color_palette("colorblind", max(1, len(settings_all)))))
        for ax, (dataset, arch) in zip(axes[:, 0], panels):
            names = layers[(dataset, arch)]
            sub = table[(table["dataset"] == dataset) & (table["arch"] == arch)]
            x = {n: i for i, n in enumerate(names)}
            full = sub.drop_duplicates("layer").set_index("layer").reindex(names)
            ax.bar(range(len(names)), full["before"], width=0.85, color="0.86", zorder=1)
            many = len(names) > _NAMED_TICKS
            for setting in sorted(sub["setting"].unique(), key=setting_sort_key):
                s = sub[sub["setting"] == setting]
                xs = [x[n] for n in s["layer"]]
                kept = 100.0 * s["after_mean"].sum() / s["before"].sum()
                color = palette[setting]
                if (s["after_min"] != s["after_max"]).any():
                    ax.fill_between(xs, s["after_min"], s["after_max"], color=color, alpha=0.22, lw=0, zorder=2)
                ax.plot(xs, s["after_mean"], color=color, lw=1.6, marker="o", markersize=2.5 if many else 4.5, zorder=3,
                        label=_series_label(setting, kept, int(s["seeds"].max())))
            _stage_bands(ax, list(full["stage"]), axes_inches)
            if many:
                step = max(1, len(names) // 24)
                ticks = list(range(0, len(names), step))
                ax.set_xticks(ticks, [str(t) for t in ticks], fontsize="small")
                ax.set_xlabel("layer (position in the network)")
            else:
                ax.set_xticks(range(len(names)), names, rotation=90, fontsize="small")
            ax.set_xlim(-0.6, len(names) - 0.4)
            ax.set_ylim(0, 1.1 * float(full["before"].max()))
            ax.set_ylabel(unit)
            ax.grid(axis="x", visible=False)
            standin = bool(df[(df["dataset"] == dataset) & (df["arch"] == arch)]["standin"].any())
            methods = ", ".join(m for m in dict.fromkeys(df[(df["dataset"] == dataset) & (df["arch"] == arch)]["method"]) if m)
            ax.set_title(
                f"{dataset_name(dataset, standin)}: {arch_name(arch)}" + (f" ({methods})" if methods else ""),
                loc="left", pad=14, color="firebrick" if standin else "black", fontweight="bold" if standin else "normal",
            )
            handles, labels = ax.get_legend_handles_labels()
            handles.insert(0, Patch(facecolor="0.86", label="full width (unpruned)"))
            labels.insert(0, "full width (unpruned)")
            if standin:
                handles.append(Patch(facecolor="none", edgecolor="none"))
                labels.append(f"pruned on {STANDIN_LABEL} data: widths not meaningful")
            ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.005, 1.0), frameon=False, fontsize="small")
        fig.suptitle(f"{title}\n{unit} kept per layer: line = mean over seeds, band = min–max over seeds", fontsize="large")
        fig.tight_layout()
        with atomic_path(png_path) as tmp:
            fig.savefig(tmp, format="png", dpi=150)
    finally:
        plt.close(fig)
