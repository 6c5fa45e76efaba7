"""The archsearch study's table and figure: pruning as architecture search (Rethinking §7).

Every row is an architecture trained from scratch: learned by a pruning method (network
slimming's widths, magnitude pruning's masks) or derived from one (uniform at matched
parameters, guided by stage averages, transferred, random sparsity). One row per (dataset,
arch, method, setting); the figure plots accuracy against parameters, one curve per family, so
"better at equal parameters" reads off as "above the uniform curve". The unpruned reference is
the plain base (not network slimming's sparsity-trained one).
"""

from __future__ import annotations

from os import PathLike

import matplotlib

matplotlib.use("Agg")  # files only; no display on cluster nodes

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.ticker import FormatStrFormatter, NullFormatter  # noqa: E402

from ..errors import UserError  # noqa: E402
from ..io import atomic_path  # noqa: E402
from .table import MISSING, STANDIN_LABEL, arch_name, dataset_name, eval_run, read_csv_checked, write_csv_md  # noqa: E402

FAMILIES = {
    "slimming": "network slimming", "matched": "uniform (matched params)", "guided": "guided (stage averages)",
    "transferred": "transferred pattern", "magnitude": "magnitude masks", "randomsparse": "uniform random sparsity",
    "guidedsparse": "guided sparsity (stage averages)",
}
ARMS = ("scratch-e", "scratch-b")
COLUMNS = ["study", "dataset", "arch", "method", "family", "setting", "metric", "params", "macs", "params_full"]
COLUMNS += [f"{a}_{s}" for a in ("unpruned",) + ARMS for s in ("mean", "std", "n")]
COLUMNS += ["standin", "runs"]


def build_archsearch_table(evals: list[dict], study: str = "archsearch", metric: str = "best") -> pd.DataFrame:
    rows = []
    for ev in evals:
        run = eval_run(ev, ("base",) + ARMS, "archsearch table")
        try:
            acc, params, macs, full = float(ev["accuracy"][metric]), int(ev["params"]), int(ev["macs"]), int(ev["params_full"])
        except (KeyError, TypeError, ValueError):
            raise UserError(f"eval for {run} lacks accuracy['{metric}'], params, macs or params_full; re-run its evaluation") from None
        if run["arm"] == "base" and ev.get("sparsity"):
            continue  # network slimming's sparsity-trained base: the unpruned reference is the plain one
        rows.append({**{k: run[k] for k in ("dataset", "arch", "arm", "seed")}, "method": run.get("method"), "setting": run.get("setting"),
                     "acc": acc, "params": params, "macs": macs, "params_full": full, "standin": bool(ev.get("standin", False))})
    df = pd.DataFrame(rows)
    if df.empty:
        raise UserError("no evals given; pass the archsearch study's eval.json files")
    out = []
    pruned = df[df["arm"] != "base"]
    for (dataset, arch, method, setting), g in pruned.groupby(["dataset", "arch", "method", "setting"], sort=False):
        base = df[(df["arm"] == "base") & (df["dataset"] == dataset) & (df["arch"] == arch)]
        row = {"study": study, "dataset": dataset, "arch": arch, "method": method, "family": FAMILIES.get(method, method), "setting": setting,
               "metric": metric, "params": g["params"].mean(), "macs": g["macs"].mean(), "params_full": g["params_full"].iloc[0]}
        for arm, sel in (("unpruned", base),) + tuple((a, g[g["arm"] == a]) for a in ARMS):
            row[f"{arm}_mean"] = sel["acc"].mean() if len(sel) else float("nan")
            row[f"{arm}_std"] = sel["acc"].std(ddof=1) if len(sel) > 1 else float("nan")
            row[f"{arm}_n"] = len(sel)
        row["standin"] = bool(g["standin"].any() or base["standin"].any())
        row["runs"] = len(g) + len(base)
        out.append(row)
    table = pd.DataFrame(out, columns=COLUMNS)
    family = [list(FAMILIES).index(m) if m in FAMILIES else len(FAMILIES) for m in table["method"]]
    table = table.assign(_family=family).sort_values(["dataset", "arch", "_family", "params"], kind="stable", ascending=[True, True, True, False])
    return table.drop(columns="_family").reset_index(drop=True)


def _cell(mean: float, std: float) -> str:
    if pd.isna(mean):
        return MISSING
    return f"{mean:.2f}" if pd.isna(std) else f"{mean:.2f} ± {std:.2f}"


def to_markdown(table: pd.DataFrame, title: str) -> str:
    arms = [a for a in ARMS if table[f"{a}_n"].sum() > 0]
    out = [f"# {title}", ""]
    if table["standin"].any():
        out += [f"**Sections marked ({STANDIN_LABEL}) are built on one: their numbers say nothing about the real dataset.**", ""]
    for (dataset, arch), d in table.groupby(["dataset", "arch"], sort=False):
        unpruned = d.iloc[0]
        out += [f"## {dataset_name(dataset, bool(d['standin'].any()))}: {arch_name(arch)}"
                f" (unpruned {_cell(unpruned['unpruned_mean'], unpruned['unpruned_std'])}, {int(unpruned['params_full']):,} params)", "",
                "| Family | Source / setting | Params | MACs | " + " | ".join(("Scratch-E", "Scratch-B")[ARMS.index(a)] for a in arms) + " |",
                "|---|---|---|---|" + "---|" * len(arms)]
        for r in d.to_dict("records"):
            cells = " | ".join(_cell(r[f"{a}_mean"], r[f"{a}_std"]) for a in arms)
            out.append(f"| {r['family']} | {r['setting']} | {r['params'] / 1e6:.3f}M | {r['macs'] / 1e6:.1f}M | {cells} |")
        out.append("")
    out += [f"Accuracy: {table['metric'].iloc[0]} test accuracy (%) of networks trained from scratch, mean ± std over seeds. "
            "Params and MACs count non-zero conv weights for masked rows. Compare a family with the uniform one at equal params."]
    return "\n".join(out) + "\n"


def write_archsearch_table(table: pd.DataFrame, csv_path: str | PathLike, md_path: str | PathLike, title: str) -> None:
    write_csv_md(table, to_markdown(table, title), csv_path, md_path)


def read_archsearch_table(path: str | PathLike) -> pd.DataFrame:
    return read_csv_checked(path, COLUMNS, "prunebench table --kind archsearch")


def plot_archsearch(table: pd.DataFrame, out: str | PathLike, title: str | None = None) -> None:
    """Accuracy (Scratch-E) against parameters, one panel per (dataset, arch), one curve per family."""
    panels = list(dict.fromkeys(zip(table["dataset"], table["arch"])))
    families = list(dict.fromkeys(table["family"]))
    colours = dict(zip(families, sns.color_palette("colorblind", len(families))))
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.2), squeeze=False)
    for ax, (dataset, arch) in zip(axes.flat, panels):
        sel = table[(table["dataset"] == dataset) & (table["arch"] == arch)]
        for family, d in sel.groupby("family", sort=False):
            d = d.sort_values("params")
            ax.errorbar(d["params"] / 1e6, d["scratch-e_mean"], yerr=d["scratch-e_std"].fillna(0), fmt="o-", ms=4, capsize=2, color=colours[family], label=family)
        if sel["unpruned_mean"].notna().any():
            ax.axhline(sel["unpruned_mean"].iloc[0], color="0.4", lw=0.8, ls="--", label="unpruned")
        if sel["params"].max() > 10 * sel["params"].min():  # a log axis only where it spans a decade
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_title(f"{arch_name(arch)}, {dataset_name(dataset, bool(sel['standin'].any()))}", fontsize=9)
        ax.set_xlabel("parameters (M)")
        ax.set_ylabel("Scratch-E test accuracy (%)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    fig.suptitle(title or "Pruning as architecture search", fontsize=10)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=150)
    plt.close(fig)
