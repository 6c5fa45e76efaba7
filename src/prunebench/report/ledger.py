"""A study's compute ledger: what each arm cost to train, counted and measured.

Rethinking's budget argument counts the training of the large model as part of fine-tuning's
cost (Scratch-B gets the large model's budget, fine-tuning spends it and then some). So per run
the ledger counts its own training, 3 x forward MACs x training images x epochs (a backward
pass costs about two forward ones), and adds every run whose trained weights it started from:
a fine-tuned run's pruned file, the model that was pruned, and so on back to the base (chained
methods pass through earlier fine-tunes). Runs from a fresh or initial init (Scratch-E/B, the
winning ticket's theta_0, soft pruning) carry no pretraining. Hours are measured: the sum of the
run's epoch times as trained (``train_seconds``), on the device it names.
"""

from __future__ import annotations

import math
from os import PathLike
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on cluster nodes

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from prunebench.core.errors import UserError  # noqa: E402
from prunebench.core.forms import PrunedFrom, RunCost, read_form  # noqa: E402
from prunebench.core.names import dataset_name, display_name  # noqa: E402

from .plotting import save_png  # noqa: E402
from .table import ARM_LABELS

PASSES = 3  # forward + backward ~ 3 forward passes
LABELS = {**ARM_LABELS, "base": "unpruned (base)", "winning": "winning ticket"}
COLUMNS = ["study", "dataset", "arch", "method", "setting", "lr", "model", "arm", "runs", "accuracy_mean", "epochs",
           "train_macs", "pretrain_macs", "total_macs", "total_vs_base", "train_hours", "total_hours", "devices", "failed_runs"]


def _metrics(path: str | Path) -> dict:
    return read_form(path, RunCost)


def own_cost(metrics: dict) -> tuple[float, float]:
    """(MACs, seconds) of one run's own training."""
    macs = PASSES * float(metrics["macs"]) * int(metrics["data"]["train_images"]) * int(metrics["epochs"])
    return macs, float(metrics.get("train_seconds") or 0.0)


def pretraining(metrics: dict, depth: int = 0) -> tuple[float, float, list[str]]:
    """(MACs, seconds, devices) of the trained runs whose weights this run started from."""
    ref = (metrics.get("inputs") or {}).get("init")
    if not isinstance(ref, dict) or depth > 16:
        return 0.0, 0.0, []
    pruned = Path(ref["path"])
    report = pruned.with_name("prune.json")
    source = (read_form(report, PrunedFrom).get("input") or {}).get("path") if report.is_file() else None
    if source is None or not Path(source).with_name("metrics.json").is_file():
        # an init file (theta_0) or a model trained elsewhere: nothing trained in this pipeline
        return 0.0, 0.0, []
    upstream = _metrics(Path(source).with_name("metrics.json"))
    macs, seconds = own_cost(upstream)
    more_macs, more_seconds, devices = pretraining(upstream, depth + 1)
    return macs + more_macs, seconds + more_seconds, [str(upstream.get("device", "?"))] + devices


def run_costs(evals: list[dict], metric: str = "best") -> pd.DataFrame:
    """One row per run: identity, accuracy, own and pretraining cost."""
    rows = []
    for ev in evals:
        run = ev.get("run") or {}
        if "metrics" not in ev:
            raise UserError(f"eval for {run} names no metrics.json; re-run its evaluation")
        m = _metrics(ev["metrics"])
        macs, seconds = own_cost(m)
        pre_macs, pre_seconds, devices = pretraining(m)
        rows.append({
            "dataset": run.get("dataset"), "arch": run.get("arch"), "method": run.get("method") if run.get("arm") != "base" else None,
            "setting": run.get("setting") if run.get("arm") != "base" else None, "lr": ev.get("lr"), "arm": run.get("arm"),
            "seed": run.get("seed"), "acc": float(ev["accuracy"][metric]), "epochs": int(m["epochs"]),
            "train_macs": macs, "pretrain_macs": pre_macs, "train_seconds": seconds, "pretrain_seconds": pre_seconds,
            "devices": ",".join(dict.fromkeys([str(m.get("device", "?"))] + devices)), "failed": bool(ev.get("checks_failed")),
        })
    if not rows:
        raise UserError("no evals given; pass a study's eval.json files")
    return pd.DataFrame(rows)


def build_ledger(evals: list[dict], study: str, metric: str = "best") -> pd.DataFrame:
    """Per (dataset, arch, method, setting, LR, arm): the mean cost over seeds, and accuracy over
    the runs that passed their sanity checks."""
    runs = run_costs(evals, metric)
    keys = ["dataset", "arch", "method", "setting", "lr", "arm"]
    out = []
    for key, g in runs.groupby(keys, sort=False, dropna=False):
        row = dict(zip(keys, key))
        ok = g[~g["failed"]]
        total = g["train_macs"] + g["pretrain_macs"]
        row |= {
            "study": study, "model": display_name(row["arch"], row["setting"], row["method"]), "runs": len(g),
            "accuracy_mean": ok["acc"].mean() if len(ok) else math.nan, "epochs": g["epochs"].mean(),
            "train_macs": g["train_macs"].mean(), "pretrain_macs": g["pretrain_macs"].mean(), "total_macs": total.mean(),
            "train_hours": g["train_seconds"].mean() / 3600, "total_hours": (g["train_seconds"] + g["pretrain_seconds"]).mean() / 3600,
            "devices": ",".join(sorted(set(",".join(g["devices"]).split(",")))), "failed_runs": int(g["failed"].sum()),
        }
        out.append(row)
    df = pd.DataFrame(out)
    df["total_vs_base"] = [r["total_macs"] / _base_total(df, r) for r in df.to_dict("records")]
    return df[COLUMNS]


def _base_total(df: pd.DataFrame, row: dict) -> float:
    """The total cost of the base a row is measured against: its (dataset, arch)'s, at the row's
    LR where bases were trained at several (the lottery's)."""
    base = df[(df["arm"] == "base") & (df["dataset"] == row["dataset"]) & (df["arch"] == row["arch"])]
    if len(base) > 1:
        base = base[base["lr"] == row["lr"]]
    return float(base["total_macs"].iloc[0]) if len(base) == 1 else math.nan


def _macs(x: float) -> str:
    return "–" if pd.isna(x) else f"{x:.3g}"


def to_markdown(df: pd.DataFrame, title: str) -> str:
    lines = [f"# {title}", "", "| Model | Dataset | LR | Arm | Runs | Accuracy | Epochs | Training MACs | + pretraining | Total | × base | Hours (total) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in df.to_dict("records"):
        acc = "–" if pd.isna(r["accuracy_mean"]) else f"{r['accuracy_mean']:.2f}"
        ratio = "–" if pd.isna(r["total_vs_base"]) else f"{r['total_vs_base']:.2f}"
        lr = "" if pd.isna(r["lr"]) else f"{r['lr']:g}"
        lines.append(f"| {r['model']} | {dataset_name(r['dataset'])} | {lr} | {LABELS.get(r['arm'], r['arm'])} | {r['runs']} | {acc} | {r['epochs']:.0f}"
                     f" | {_macs(r['train_macs'])} | {_macs(r['pretrain_macs'])} | {_macs(r['total_macs'])} | {ratio} | {r['total_hours']:.3f} ({r['devices']}) |")
    lines += ["", f"Training MACs: {PASSES} × forward MACs per image (the pruned network's; non-zero weights for a masked one) × training"
              " images × epochs, mean over seeds. *+ pretraining*: the runs whose trained weights the run started from (fine-tuning:"
              " the base it pruned, and earlier fine-tunes of a chained method), as Rethinking's budget argument counts them. × base:"
              " total over the unpruned base's training. Hours: measured epoch times summed, on the devices named. Accuracy: mean over"
              " the runs that passed their sanity checks.", ""]
    return "\n".join(lines)


def plot_ledger(df: pd.DataFrame, out: str | PathLike, title: str) -> None:
    """Accuracy against total training compute, one panel per (dataset, arch), colour per arm."""
    panels = list(dict.fromkeys(zip(df["dataset"], df["arch"])))
    arms = list(dict.fromkeys(df["arm"]))
    colours = dict(zip(arms, sns.color_palette("colorblind", len(arms))))
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.2), squeeze=False)
    for ax, (dataset, arch) in zip(axes.flat, panels):
        sel = df[(df["dataset"] == dataset) & (df["arch"] == arch)]
        for arm, d in sel.groupby("arm", sort=False):
            ax.scatter(d["total_macs"], d["accuracy_mean"], color=colours[arm], label=LABELS.get(arm, arm), s=28)
        ax.set_xscale("log")
        ax.set_title(f"{display_name(arch)}, {dataset_name(dataset)}", fontsize=9)
        ax.set_xlabel("total training compute (MACs, pretraining included)")
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    save_png(fig, out, title)
