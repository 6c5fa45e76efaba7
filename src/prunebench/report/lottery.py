"""The lottery study's table and figure: winning ticket against random init, at each initial LR.

Rethinking §6 trains every pruned mask twice, on the base's own initial weights theta_0 (the
*winning ticket*) and on a fresh init (*random*, Scratch-E), at initial LR 0.1 and 0.01, and
finds the winning ticket helps only at 0.01. One row per (dataset, arch, mask method, setting,
LR); the finding is stated beside ours, measured on the same rows. The unpruned column is the
base trained at that LR.

Per row, winning minus random is tested over the seeds both ran (paired t-test, 5 % level) and
read against the finding: at LR 0.1 it is reproduced unless the winning ticket is significantly
better; at LR 0.01 only if it is; at any other LR the paper says nothing, so ours is stated
without a verdict. Runs that failed a sanity check (eval.json's ``checks_failed``) enter no mean
and no test; ``failed_runs`` counts them.
"""

from __future__ import annotations

from os import PathLike

import pandas as pd

from prunebench.core.errors import UserError
from prunebench.core.names import STANDIN_LABEL, arch_name, dataset_name, normalize_setting, ratio

from . import stats
from .table import MISSING, eval_run, write_csv_md
from .table_form import read_csv_checked

ARMS = {"base": "unpruned", "winning": "winning", "scratch-e": "random"}
METHOD_LABELS = {"magnitude": "one-shot", "iterative": "iterative", "l1mask": "L1 filters"}
FINDING = (
    "Rethinking §6 (PROTOCOLS §6, details UNCONFIRMED): the winning ticket's init beats a random"
    " one only at initial LR 0.01; at LR 0.1 it brings no gain, and LR 0.1 is the more accurate."
)
COLUMNS = ["study", "dataset", "arch", "method", "setting", "lr", "metric", "pruned_pct"]
COLUMNS += [f"{a}_{s}" for a in ARMS.values() for s in ("mean", "std", "n")]
COLUMNS += ["gain", "standin", "runs"]
COLUMNS += [f"{a}_ci95_{s}" for a in ARMS.values() for s in ("low", "high")]
COLUMNS += stats.comparison_columns("winning_vs_random") + ["failed_runs", "failed_checks"]
# initial LR -> what the paper found about winning - random there (stats.READINGS) and its words
CLAIMS = {0.1: ("no gain", "paper: no gain from the winning ticket at LR 0.1"), 0.01: ("better", "paper: winning ticket better at LR 0.01")}


def _records(evals: list[dict], metric: str) -> pd.DataFrame:
    rows = []
    for ev in evals:
        run = eval_run(ev, tuple(ARMS), "lottery table")
        if ev.get("lr") is None:
            raise UserError(f"eval for {run} records no initial LR; re-run its evaluation with this prunebench")
        try:
            acc = float(ev["accuracy"][metric])
            params, params_full = int(ev["params"]), int(ev["params_full"])
        except (KeyError, TypeError, ValueError):
            raise UserError(f"eval for {run} lacks accuracy['{metric}'], params or params_full; re-run its evaluation") from None
        base = run["arm"] == "base"
        rows.append({
            "dataset": run["dataset"], "arch": run["arch"], "method": None if base else run.get("method"),
            "setting": None if base else normalize_setting(run.get("setting")), "lr": float(ev["lr"]),
            "arm": ARMS[run["arm"]], "seed": run["seed"], "acc": acc,
            "pruned_pct": round(100.0 * (1.0 - params / params_full), 2), "standin": bool(ev.get("standin", False)),
            "model_file": str(ev.get("model", "")), "failed": stats.failed_checks(ev),
        })
    df = pd.DataFrame(rows)
    if df.empty:
        raise UserError("no evals given; pass the lottery study's eval.json files")
    dup = df[df.duplicated(["dataset", "arch", "method", "setting", "lr", "arm", "seed"], keep=False)]
    if len(dup):
        r = dup.iloc[0]
        raise UserError(f"two evals for {r.dataset} {r.arch} {r.method} {r.setting} LR {r.lr:g} {r.arm} seed {r.seed}; keep one of them")
    return df


def setting_order(method: str, setting: str) -> tuple:
    """Ratios numerically, iterative rounds by round, variant letters alphabetically."""
    if method == "iterative":
        return (1, int(setting.split("x")[0]), "")
    r = ratio(setting)
    return (0, r, "") if r is not None else (2, 0, setting)


def build_lottery_table(evals: list[dict], study: str = "lottery", metric: str = "best") -> pd.DataFrame:
    df = _records(evals, metric)
    pruned = df[df["arm"] != "unpruned"]
    methods, archs = list(dict.fromkeys(pruned["method"])), list(dict.fromkeys(pruned["arch"]))
    out = []
    for (dataset, arch, method, setting, lr), g in pruned.groupby(["dataset", "arch", "method", "setting", "lr"], sort=False):
        row = {"study": study, "dataset": dataset, "arch": arch, "method": method, "setting": setting, "lr": lr, "metric": metric,
               "pruned_pct": g["pruned_pct"].mean()}
        base = df[(df["arm"] == "unpruned") & (df["dataset"] == dataset) & (df["arch"] == arch) & (df["lr"] == lr)]
        mine, left = stats.split_failed(pd.concat([g, base]), lambda r: r["arm"])
        for arm in ARMS.values():
            row |= stats.arm_cells(arm, mine[mine["arm"] == arm])
        row["gain"] = row["winning_mean"] - row["random_mean"]
        row["standin"] = bool(g["standin"].any() or base["standin"].any())
        row["runs"] = stats.run_list(mine)
        out.append(row | _comparison(mine, lr) | left)
    table = pd.DataFrame(out, columns=COLUMNS)
    order = table.apply(lambda r: (r["dataset"], methods.index(r["method"]), archs.index(r["arch"]), setting_order(r["method"], r["setting"]), -r["lr"]), axis=1)
    return table.iloc[sorted(range(len(table)), key=lambda i: order.iloc[i])].reset_index(drop=True)


def _comparison(runs: pd.DataFrame, lr: float) -> dict:
    """Winning minus random over the seeds both ran, and the verdict on the paper's finding at ``lr``."""
    winning, random = (stats.by_seed(runs[runs["arm"] == a]) for a in ("winning", "random"))
    comp = stats.paired(random, winning)
    expect, claim = CLAIMS.get(lr, (None, f"the paper makes no claim at LR {lr:g}"))
    text = stats.judge(comp, expect, ("winning", "random"), claim) if winning and random else ""
    return stats.comparison_cells("winning_vs_random", comp, text)


def setting_label(method: str, setting: str) -> str:
    if method == "iterative":
        return f"round {setting.split('x')[0]}"
    r = ratio(setting)
    return f"{100 * r:.4g}%" if r is not None else setting


def _cell(mean: float, std: float) -> str:
    if pd.isna(mean):
        return MISSING
    return f"{mean:.2f}" if pd.isna(std) else f"{mean:.2f} ± {std:.2f}"


def findings(table: pd.DataFrame) -> list[str]:
    """Ours, per LR: the mean winning-minus-random gain over the rows with both arms."""
    lines = []
    both = table.dropna(subset=["gain"])
    for lr, g in sorted(both.groupby("lr"), key=lambda x: -x[0]):
        wins = int((g["gain"] > 0).sum())
        lines.append(f"at LR {lr:g}: winning − random = {g['gain'].mean():+.2f} points on average over {len(g)} rows"
                     f" (winning ahead in {wins}); mean accuracy winning {g['winning_mean'].mean():.2f}, random {g['random_mean'].mean():.2f}")
    return lines


def verdict_lines(table: pd.DataFrame) -> list[str]:
    """Per row, winning against random over the same seeds, and the runs left out."""
    lines = []
    for r in table.to_dict("records"):
        label = f"{arch_name(r['arch'])} {METHOD_LABELS.get(r['method'], r['method'])} {setting_label(r['method'], r['setting'])}, LR {r['lr']:g}"
        lines += stats.row_line(label, [r.get("winning_vs_random_verdict")], r)
    head = "**Is the difference real?** Winning ticket against random init over the same seeds (paired t-test, 5 % level):"
    return [head, ""] + lines + [""] if lines else []


def to_markdown(table: pd.DataFrame, title: str) -> str:
    out = [f"# {title}", ""]
    standin = bool(table["standin"].any())
    if standin:
        out += [f"**Sections marked ({STANDIN_LABEL}) are built on one: their numbers say nothing about the real dataset.**", ""]
    for dataset, d in table.groupby("dataset", sort=False):
        out += [f"## {dataset_name(dataset, bool(d['standin'].any()))}", "",
                "| Model | Masks | Setting | Params pruned | LR | Unpruned | Winning ticket | Random init | Winning − random |",
                "|---|---|---|---|---|---|---|---|---|"]
        for r in d.to_dict("records"):
            gain = MISSING if pd.isna(r["gain"]) else f"{r['gain']:+.2f}"
            out.append(f"| {arch_name(r['arch'])} | {METHOD_LABELS.get(r['method'], r['method'])} | {setting_label(r['method'], r['setting'])}"
                       f" | {r['pruned_pct']:.1f}% | {r['lr']:g} | {_cell(r['unpruned_mean'], r['unpruned_std'])}"
                       f" | {_cell(r['winning_mean'], r['winning_std'])} | {_cell(r['random_mean'], r['random_std'])} | {gain} |")
        out += [""] + verdict_lines(d)
    out += ["## Finding", "", f"- Paper: {FINDING}"] + [f"- Ours, {line}." for line in findings(table)]
    out += ["", f"Accuracy: {table['metric'].iloc[0]} test accuracy (%), mean ± std over seeds. Params pruned: conv weights"
            " masked out, as a share of all parameters. Random init is Scratch-E: the same mask on a fresh N(0, √(2/n)) init."
            " CSV columns `<arm>_ci95_low/high` hold the 95 % confidence interval of each mean (Student's t)."]
    return "\n".join(out) + "\n"


def write_lottery_table(table: pd.DataFrame, csv_path: str | PathLike, md_path: str | PathLike, title: str) -> None:
    write_csv_md(table, to_markdown(table, title), csv_path, md_path, (COLUMNS, "prunebench table --kind lottery"))


def read_lottery_table(path: str | PathLike) -> pd.DataFrame:
    return read_csv_checked(path, COLUMNS, "prunebench table --kind lottery")
