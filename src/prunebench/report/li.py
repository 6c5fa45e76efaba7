"""The tables of Li et al.'s analyses (the ``li`` study): every sensitivity point, and one-shot
against layer-by-layer prune-and-retrain.

``curves_table`` puts the points of the curve jobs (pruned, not retrained) and of the retrained
runs (methods ``layer`` and ``consecutive``) in one long table, averaged over seeds: a figure or a
reader picks any curve from it. ``iterative_table`` compares the one-shot variant (method ``l1``,
fine-tuned once) with the same variant reached one layer at a time (method ``layerwise``), with
the retraining epochs each spent.
"""

from __future__ import annotations

from os import PathLike

import pandas as pd

from .table import arch_name, dataset_name, write_csv_md

CURVE_COLUMNS = ["dataset", "model", "mode", "name", "retrained", "layer", "ratio", "accuracy", "std", "n", "base_accuracy", "sensitive", "standin"]
ITERATIVE_COLUMNS = ["dataset", "model", "variant", "schedule", "steps", "steps_total", "retrain_epochs", "params", "macs", "accuracy", "std", "n", "standin"]


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
    rows = []
    for (ds, arch, variant, schedule), by_step in runs.items():
        last = max(by_step)
        final = by_step[last]
        accs = pd.Series([_accuracy(ev, metric) for ev in final], dtype=float)
        # every step retrains once; the same seeds ran every step
        epochs = sum(int(by_step[k][0]["epochs"]) for k in by_step)
        rows.append({"dataset": ds, "model": arch, "variant": variant, "schedule": schedule, "steps": last if last else 1, "steps_total": steps_total.get((arch, variant), 1) if last else 1, "retrain_epochs": epochs, "params": final[0]["params"], "macs": final[0]["macs"], "accuracy": accs.mean(), "std": accs.std() if len(accs) > 1 else 0.0, "n": len(accs), "standin": any(ev.get("standin", False) for ev in final)})
    if not rows:
        return pd.DataFrame(columns=ITERATIVE_COLUMNS)
    return pd.DataFrame(rows)[ITERATIVE_COLUMNS].sort_values(["dataset", "model", "variant", "schedule"], ascending=[True, True, True, False], kind="stable").reset_index(drop=True)


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
    unfinished = df[df["steps"] != df["steps_total"]]
    if not unfinished.empty:
        lines += ["", "Layer by layer stopped before the variant's last layer (a smoke scale runs the first steps only), so its architecture is not yet the one-shot one."]
    return "\n".join(lines + [""])


def write_iterative(df: pd.DataFrame, csv_path: str | PathLike, md_path: str | PathLike, title: str) -> None:
    write_csv_md(df, iterative_markdown(df, title), csv_path, md_path)
