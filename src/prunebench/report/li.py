"""The tables of Li et al.'s analyses (the ``li`` study): every sensitivity point, and one-shot
against layer-by-layer prune-and-retrain.

``curves_table`` puts the points of the curve jobs (pruned, not retrained) and of the retrained
runs (methods ``layer`` and ``consecutive``) in one long table, averaged over seeds: a figure or a
reader picks any curve from it. ``iterative_table`` compares the one-shot variant (method ``l1``,
fine-tuned once) with the same variant reached one layer at a time (method ``layerwise``), with
the retraining epochs each spent.

Li §3.4 chose to prune once and retrain: it recovers the accuracy, while iterative pruning "may
yield better results" at far more epochs. A layer-by-layer row is compared with its one-shot row
over the seeds both ran (paired t-test, 5 %), layer by layer minus one-shot: the choice is
"reproduced" unless layer by layer is significantly better, "untested" with fewer than 2 seeds
(the study runs one by default) or when layer by layer stopped before the variant's last layer.
Runs that failed a sanity check (eval.json's ``checks_failed``) enter no mean and no test.
"""

from __future__ import annotations

from os import PathLike

import pandas as pd

from prunebench.core.names import arch_name, dataset_name

from . import stats
from .table import write_csv_md

CURVE_COLUMNS = ["dataset", "model", "mode", "name", "retrained", "layer", "ratio", "accuracy", "std", "n", "base_accuracy", "sensitive", "standin"]
ITERATIVE_COLUMNS = ["dataset", "model", "variant", "schedule", "steps", "steps_total", "retrain_epochs", "params", "macs", "accuracy", "std", "n", "standin"]
ITERATIVE_COLUMNS += ["ci95_low", "ci95_high"] + stats.comparison_columns("vs_oneshot") + ["failed_runs", "failed_checks", "runs"]
CLAIM = "Li §3.4: prune once and retrain suffices (layer by layer may do better, at far more epochs)"


def _accuracy(ev: dict, metric: str) -> float:
    return float(ev["accuracy"][metric])


def _base_accuracy(evals: list[dict], metric: str) -> dict[tuple[str, str], float]:
    """(dataset, arch) -> mean accuracy of the trained bases the points were pruned from."""
    found: dict[tuple[str, str], list[float]] = {}
    for ev in evals:
        if ev["run"].get("arm") == "base":
            found.setdefault((ev["run"]["dataset"], ev["run"]["arch"]), []).append(_accuracy(ev, metric))
    return {k: sum(v) / len(v) for k, v in found.items()}


def curves_table(curves: list[dict], evals: list[dict], metric: str = "best") -> pd.DataFrame:
    """Every point, not retrained (curve jobs) and retrained (runs), mean over seeds."""
    sensitive = {c["arch"]: set(c.get("sensitive", [])) for c in curves}
    points = []
    for c in curves:
        ds = c["run"].get("dataset", "cifar10")
        for p in c["points"]:
            points.append({"dataset": ds, "model": c["arch"], "mode": c["mode"], "name": c["name"], "retrained": False, "layer": p["layer"], "ratio": p["ratio"], "acc": p["accuracy"], "base": c["base_accuracy"], "standin": c.get("standin", False)})
    bases = _base_accuracy(evals, metric)
    for ev in evals:
        run = ev["run"]
        if run.get("method") not in ("layer", "consecutive"):
            continue
        parts = run["setting"].split("_", 2)
        layer, ratio, name = (int(parts[0]), float(parts[1]), parts[2]) if run["method"] == "layer" else (None, float(parts[0]), parts[1])
        key = (run["dataset"], run["arch"])
        points.append({"dataset": key[0], "model": key[1], "mode": run["method"], "name": name, "retrained": True, "layer": layer, "ratio": ratio, "acc": _accuracy(ev, metric), "base": bases.get(key), "standin": ev.get("standin", False)})
    if not points:
        return pd.DataFrame(columns=CURVE_COLUMNS)
    df = pd.DataFrame(points)
    df["layer"] = df["layer"].astype("Int64")
    keys = ["dataset", "model", "mode", "name", "retrained", "layer", "ratio"]
    out = df.groupby(keys, dropna=False, sort=False).agg(accuracy=("acc", "mean"), std=("acc", "std"), n=("acc", "size"), base_accuracy=("base", "mean"), standin=("standin", "any")).reset_index()
    out["std"] = out["std"].fillna(0.0)
    out["sensitive"] = [bool(pd.notna(layer) and int(layer) in sensitive.get(m, ())) for m, layer in zip(out["model"], out["layer"])]
    order = {m: i for i, m in enumerate(df["model"].unique())}  # the study's order, not the alphabet's
    return out[CURVE_COLUMNS].sort_values(keys, kind="stable", key=lambda col: col.map(order) if col.name == "model" else col).reset_index(drop=True)


def iterative_table(evals: list[dict], steps_total: dict[tuple[str, str], int], metric: str = "best") -> pd.DataFrame:
    """One-shot against layer by layer, per model and variant. ``steps_total``: (arch, variant) ->
    the layers the variant prunes; a smoke scale runs only the first steps, and ``steps`` says so."""
    runs: dict[tuple, dict[int, list[dict]]] = {}
    for ev in evals:
        run = ev["run"]
        if run.get("method") == "l1" and (run["arch"], run["setting"]) in steps_total:
            runs.setdefault((run["dataset"], run["arch"], run["setting"], "one-shot"), {}).setdefault(0, []).append(ev)
        elif run.get("method") == "layerwise":
            variant, _, k = run["setting"].rpartition("_")
            runs.setdefault((run["dataset"], run["arch"], variant, "layer by layer"), {}).setdefault(int(k), []).append(ev)
    rows, seeds = {}, {}
    for key, by_step in runs.items():
        ds, arch, variant, schedule = key
        last = max(by_step)
        final = by_step[last]
        mine, left = stats.split_failed(_final_runs(final, metric), lambda r: schedule)
        # every step retrains once; the same seeds ran every step
        epochs = sum(int(by_step[k][0]["epochs"]) for k in by_step)
        arm = stats.arm_cells("accuracy", mine)
        rows[key] = {"dataset": ds, "model": arch, "variant": variant, "schedule": schedule, "steps": last if last else 1, "steps_total": steps_total.get((arch, variant), 1) if last else 1,
                     "retrain_epochs": epochs, "params": final[0]["params"], "macs": final[0]["macs"], "accuracy": arm["accuracy_mean"], "std": arm["accuracy_std"] if len(mine) > 1 else 0.0,
                     "n": len(mine), "standin": any(ev.get("standin", False) for ev in final), "ci95_low": arm["accuracy_ci95_low"], "ci95_high": arm["accuracy_ci95_high"],
                     "runs": stats.run_list(mine), **left}  # fmt: skip
        seeds[key] = stats.by_seed(mine)
    if not rows:
        return pd.DataFrame(columns=ITERATIVE_COLUMNS)
    for key, row in rows.items():
        row |= _against_oneshot(row, seeds.get(key[:3] + ("one-shot",)), seeds[key])
    return pd.DataFrame(list(rows.values()))[ITERATIVE_COLUMNS].sort_values(["dataset", "model", "variant", "schedule"], ascending=[True, True, True, False], kind="stable").reset_index(drop=True)


def _final_runs(final: list[dict], metric: str) -> pd.DataFrame:
    """The runs of a row's last step: seed, acc, model_file, failed."""
    cols = ["seed", "acc", "model_file", "failed"]
    return pd.DataFrame([(ev["run"].get("seed"), _accuracy(ev, metric), str(ev.get("model", "")), stats.failed_checks(ev)) for ev in final], columns=cols)


def _against_oneshot(row: dict, oneshot: dict | None, mine: dict) -> dict:
    """Layer by layer minus one-shot over the seeds both ran; empty on a one-shot row."""
    if row["schedule"] == "one-shot" or oneshot is None:
        return stats.comparison_cells("vs_oneshot", None, "")
    comp = stats.paired(oneshot, mine)
    if not (oneshot and mine):
        text = ""
    elif row["steps"] != row["steps_total"] and comp["pairs"]:
        text = f"untested (layer by layer stopped at step {row['steps']} of {row['steps_total']}): ours {comp['diff']:+.2f}, {CLAIM}"
    else:
        text = stats.judge(comp, "no gain", ("layer by layer", "one-shot"), CLAIM)
    return stats.comparison_cells("vs_oneshot", comp, text)


def iterative_markdown(df: pd.DataFrame, title: str) -> str:
    lines = [f"# {title}", ""]
    if df.empty:
        return "\n".join(lines + ["No one-shot vs layer-by-layer rows in this study.", ""])
    if df["standin"].any():
        lines += ["**Synthetic stand-in data: these accuracies mean nothing.**", ""]
    lines += ["| dataset | model | schedule | steps | retraining epochs | params | MACs | accuracy (%) |", "|---|---|---|---|---|---|---|---|"]
    for _, r in df.iterrows():
        steps = f"{r['steps']} of {r['steps_total']}" if r["steps"] != r["steps_total"] else f"{r['steps']}"
        acc = f"{r['accuracy']:.2f} ± {r['std']:.2f} (n={r['n']})"
        lines.append(f"| {dataset_name(r['dataset'])} | {arch_name(r['model'])}-{r['variant']} | {r['schedule']} | {steps} | {r['retrain_epochs']} | {r['params'] / 1e6:.2f}M | {r['macs'] / 1e6:.1f}M | {acc} |")
    said = [line for r in df.to_dict("records") for line in stats.row_line(f"{arch_name(r['model'])}-{r['variant']} {r['schedule']}", [r["vs_oneshot_verdict"]], r)]
    if said:
        lines += ["", "**Is the difference real?** Layer by layer against one-shot over the same seeds (paired t-test, 5 % level):", ""] + said
    unfinished = df[df["steps"] != df["steps_total"]]
    if not unfinished.empty:
        lines += ["", "Layer by layer stopped before the variant's last layer (a smoke scale runs the first steps only), so its architecture is not yet the one-shot one."]
    return "\n".join(lines + [""])


def write_iterative(df: pd.DataFrame, csv_path: str | PathLike, md_path: str | PathLike, title: str) -> None:
    write_csv_md(df, iterative_markdown(df, title), csv_path, md_path, (ITERATIVE_COLUMNS, "prunebench li-report"))
