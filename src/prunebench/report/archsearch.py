"""The archsearch study's table and figure: pruning as architecture search (Rethinking §7).

Every row is an architecture trained from scratch: learned by a pruning method (network
slimming's widths, magnitude pruning's masks) or derived from one (uniform at matched
parameters, guided by stage averages, transferred, random sparsity). One row per (dataset,
arch, method, setting); the figure plots accuracy against parameters, one curve per family, so
"better at equal parameters" reads off as "above the uniform curve". The unpruned reference is
the plain base (not network slimming's sparsity-trained one).

The paper's claim (§7): an architecture learned by pruning, or guided by one, is better than the
uniform one at matched parameters. Each such row is compared with the uniform row matched to it:
``matched`` named after it (``matched`` ``slimming_0.6`` for slimming 0.6, ``guided_slimming_0.6``
for guided ``slimming_0.6``, ``transferred_...`` for a transferred row), for masks the random
sparsity at the source's overall sparsity (``randomsparse`` ``magnitude_0.5`` for magnitude 0.5
and for guidedsparse ``magnitude_0.5``). Scratch-E accuracies, row minus uniform, paired by seed
(a seed's uniform architecture is derived from the same seed's learned one), t-test at 5 %:
"reproduced" if the row is significantly better, "not reproduced" if significantly worse,
"inconclusive" if neither (the paper claims *better*, and on par does not show it); "untested"
with fewer than 2 seeds. Runs that failed a sanity check (eval.json's ``checks_failed``) enter no
mean and no test; ``failed_runs`` counts them.
"""

from __future__ import annotations

from os import PathLike

import matplotlib

matplotlib.use("Agg")  # files only; no display on cluster nodes

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.ticker import FormatStrFormatter, NullFormatter  # noqa: E402

from prunebench.core.errors import UserError  # noqa: E402
from prunebench.core.names import STANDIN_LABEL, arch_name, dataset_name  # noqa: E402

from . import stats  # noqa: E402
from .plotting import save_png  # noqa: E402
from .table import MISSING, eval_run, write_csv_md
from .table_form import read_csv_checked

FAMILIES = {
    "slimming": "network slimming", "matched": "uniform (matched params)", "guided": "guided (stage averages)",
    "transferred": "transferred pattern", "magnitude": "magnitude masks", "randomsparse": "uniform random sparsity",
    "guidedsparse": "guided sparsity (stage averages)",
}
ARMS = ("scratch-e", "scratch-b")
COLUMNS = ["study", "dataset", "arch", "method", "family", "setting", "metric", "params", "macs", "params_full"]
COLUMNS += [f"{a}_{s}" for a in ("unpruned",) + ARMS for s in ("mean", "std", "n")]
COLUMNS += ["standin", "runs"]
COLUMNS += [f"{a}_ci95_{s}" for a in ("unpruned",) + ARMS for s in ("low", "high")]
COLUMNS += ["uniform_match"] + stats.comparison_columns("vs_uniform") + ["failed_runs", "failed_checks"]
UNIFORM = ("matched", "randomsparse")  # the uniform architectures, each matched to a source row


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
                     "acc": acc, "params": params, "macs": macs, "params_full": full, "standin": bool(ev.get("standin", False)),
                     "model_file": str(ev.get("model", "")), "failed": stats.failed_checks(ev)})
    df = pd.DataFrame(rows)
    if df.empty:
        raise UserError("no evals given; pass the archsearch study's eval.json files")
    out, scratch = {}, {}
    pruned = df[df["arm"] != "base"]
    for key, g in pruned.groupby(["dataset", "arch", "method", "setting"], sort=False):
        dataset, arch, method, setting = key
        base = df[(df["arm"] == "base") & (df["dataset"] == dataset) & (df["arch"] == arch)]
        row = {"study": study, "dataset": dataset, "arch": arch, "method": method, "family": FAMILIES.get(method, method), "setting": setting,
               "metric": metric, "params": g["params"].mean(), "macs": g["macs"].mean(), "params_full": g["params_full"].iloc[0]}
        mine, left = stats.split_failed(pd.concat([g, base]), lambda r: "unpruned" if r["arm"] == "base" else r["arm"])
        for arm in ("unpruned",) + ARMS:
            row |= stats.arm_cells(arm, mine[mine["arm"] == {"unpruned": "base"}.get(arm, arm)])
        row["standin"] = bool(g["standin"].any() or base["standin"].any())
        row["runs"] = stats.run_list(mine)
        out[key], scratch[key] = row | left, stats.by_seed(mine[mine["arm"] == "scratch-e"])
    for key, row in out.items():
        row |= _against_uniform(key, scratch)
    table = pd.DataFrame(list(out.values()), columns=COLUMNS)
    family = [list(FAMILIES).index(m) if m in FAMILIES else len(FAMILIES) for m in table["method"]]
    table = table.assign(_family=family).sort_values(["dataset", "arch", "_family", "params"], kind="stable", ascending=[True, True, True, False])
    return table.drop(columns="_family").reset_index(drop=True)


def uniform_keys(method: str, setting: str) -> list[tuple[str, str]]:
    """(method, setting) of the uniform rows that may be matched to a row, first found first."""
    if method in UNIFORM:
        return []
    source = f"{method}_{setting}"
    return [("matched", source), ("randomsparse", source)] + ([("randomsparse", setting)] if method == "guidedsparse" else [])


def _against_uniform(key: tuple, scratch: dict) -> dict:
    """``uniform_match`` and the vs_uniform comparison of one row (empty where it has no match)."""
    dataset, arch, method, setting = key
    match = next(((dataset, arch, m, s) for m, s in uniform_keys(method, setting) if (dataset, arch, m, s) in scratch), None)
    if match is None:
        return {"uniform_match": ""} | stats.comparison_cells("vs_uniform", None, "")
    comp = stats.paired(scratch[match], scratch[key])
    claim = f"Rethinking §7: {FAMILIES.get(method, method)} better than uniform at matched params"
    text = stats.judge(comp, "better if shown", (FAMILIES.get(method, method), "uniform"), claim) if scratch[key] else ""
    return {"uniform_match": f"{match[2]} {match[3]}"} | stats.comparison_cells("vs_uniform", comp, text)


def _cell(mean: float, std: float) -> str:
    if pd.isna(mean):
        return MISSING
    return f"{mean:.2f}" if pd.isna(std) else f"{mean:.2f} ± {std:.2f}"


def verdict_lines(table: pd.DataFrame) -> list[str]:
    """Per row, the comparison with its uniform match, and the runs left out."""
    lines = []
    for r in table.to_dict("records"):
        match = f" vs {r['uniform_match']}" if isinstance(r["uniform_match"], str) and r["uniform_match"] else ""
        lines += stats.row_line(f"{r['family']} {r['setting']}{match}", [r["vs_uniform_verdict"]], r)
    head = "**Better than uniform?** Scratch-E against the uniform architecture matched to it, over the same seeds (paired t-test, 5 % level):"
    return [head, ""] + lines + [""] if lines else []


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
        out += [""] + verdict_lines(d)
    out += [f"Accuracy: {table['metric'].iloc[0]} test accuracy (%) of networks trained from scratch, mean ± std over seeds. "
            "Params and MACs count non-zero conv weights for masked rows. Compare a family with the uniform one at equal params."
            " CSV columns `<arm>_ci95_low/high` hold the 95 % confidence interval of each mean (Student's t)."]
    return "\n".join(out) + "\n"


def write_archsearch_table(table: pd.DataFrame, csv_path: str | PathLike, md_path: str | PathLike, title: str) -> None:
    write_csv_md(table, to_markdown(table, title), csv_path, md_path, (COLUMNS, "prunebench table --kind archsearch"))


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
    save_png(fig, out, title or "Pruning as architecture search")
