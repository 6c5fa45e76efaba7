"""The average kept 3x3 kernel per stage (Rethinking §7's sparsity patterns): for each masked
row of a study (magnitude pruning, random sparsity), the kept fraction at each kernel position
over all 3x3 kernels of a stage, mean over seeds, as a CSV and a grid of heatmaps."""

from __future__ import annotations

from os import PathLike

import matplotlib

matplotlib.use("Agg")  # files only; no display on cluster nodes

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from prunebench.core.errors import UserError  # noqa: E402
from prunebench.core.names import arch_name, dataset_name  # noqa: E402

from .plotting import save_png  # noqa: E402

COLUMNS = ["dataset", "arch", "method", "setting", "stage", "row", "col", "kept", "seeds"]


def kernel_table(reports: list[dict]) -> pd.DataFrame:
    rows = []
    for rep in reports:
        patterns = rep.get("kernel_pattern")
        if not patterns:
            continue  # a channel-pruned row: no kernel pattern
        run = rep["run"]
        for stage, p in patterns.items():
            grid = np.asarray(p.get("kept") if isinstance(p, dict) else None, dtype=float)
            if grid.shape != (3, 3):
                raise UserError(f"prune report for {run}: kernel_pattern of stage {stage} is not 3x3; re-run its pruning")
            for (i, j), v in np.ndenumerate(grid):
                rows.append({"dataset": run["dataset"], "arch": run["arch"], "method": run.get("method"), "setting": str(run.get("setting")),
                             "stage": int(stage), "row": i, "col": j, "kept": v, "seed": run.get("seed")})
    if not rows:
        raise UserError("no prune report has a kernel_pattern (only masked runs do); pass masked rows' prune.json files")
    df = pd.DataFrame(rows)
    keys = ["dataset", "arch", "method", "setting", "stage", "row", "col"]
    out = df.groupby(keys, sort=False).agg(kept=("kept", "mean"), seeds=("seed", "nunique")).reset_index()
    return out[COLUMNS]


def plot_kernels(table: pd.DataFrame, out: str | PathLike, title: str) -> None:
    """One heatmap per (row of the study, stage): the kept fraction at each kernel position."""
    series = list(dict.fromkeys(zip(table["dataset"], table["arch"], table["method"], table["setting"])))
    stages = sorted(set(table["stage"]))
    fig, axes = plt.subplots(len(series), len(stages), figsize=(1.9 * len(stages) + 1.5, 1.9 * len(series) + 0.8), squeeze=False)
    for r, key in enumerate(series):
        sel = table[(table["dataset"] == key[0]) & (table["arch"] == key[1]) & (table["method"] == key[2]) & (table["setting"] == key[3])]
        for c, stage in enumerate(stages):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            cells = sel[sel["stage"] == stage]
            if cells.empty:
                ax.set_visible(False)
                continue
            grid = np.zeros((3, 3))
            for rec in cells.to_dict("records"):
                grid[rec["row"], rec["col"]] = rec["kept"]
            lo, hi = grid.min(), max(grid.max(), grid.min() + 1e-9)  # colour: the panel's own range, so its pattern shows
            ax.imshow(grid, vmin=lo, vmax=hi, cmap="viridis")
            for (i, j), v in np.ndenumerate(grid):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6, color="white" if v < (lo + hi) / 2 else "black")
            if r == 0:
                ax.set_title(f"stage {stage}", fontsize=8)
            if c == 0:
                ax.set_ylabel(f"{arch_name(key[1])} {key[2]}\n{key[3]}\n{dataset_name(key[0])}", fontsize=7)
    save_png(fig, out, title + "\n(kept fraction per position; colour spans each panel's own range)", fontsize=9)
