"""End to end: `snakemake all` on a tiny image tree the test writes itself (no download).

The run happens in a temporary working directory with the repository's Snakefile. Its
config.yaml is the repository's with the studies reduced to L1 on ResNet-56 A and B and network
slimming on VGG-19 at 50 %: Snakemake merges ``--configfile``/``--config`` into the Snakefile's
config recursively, so an override can add or change keys but never drop a study. The scale is
shortened with a partial ``--configfile`` (merged into ``scales.smoke``) and the paths with
``--config``, as a user would.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import write_image_tree

from prunebench.models.counting import scratch_b_epochs
from prunebench.report.browser import check_report, find_browser
from prunebench.training.checks import CHECKS

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
MODELS = {"resnet56": ["A", "B"]}
N_TRAIN, N_TEST = 8, 4  # images per class
ARMS = ("unpruned", "finetune", "scratch-e", "scratch-b")


def snakemake(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    exe = BIN / "snakemake"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "snakemake"]
    env = {k: v for k, v in os.environ.items() if k != "PRUNEBENCH_DEBUG"}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"  # the rules call `prunebench`
    return subprocess.run([*cmd, *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("e2e")
    tree = base / "images"
    write_image_tree(tree, n_train=N_TRAIN, n_test=N_TEST, seed=7)
    work = base / "work"
    work.mkdir()
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["studies"] = {
        "l1": {**config["studies"]["l1"], "models": {"cifar10": MODELS}},
        "slimming": {**config["studies"]["slimming"], "models": {"cifar10": {"vgg19": [0.5]}}},
    }
    (work / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    override = {
        "scales": {
            "smoke": {
                "train_subset": None,
                "test_subset": None,
                "max_settings": None,  # both variants of MODELS
                "epochs": {"base": 1, "finetune": 1, "scratch-e": 1, "scratch-b": 1},
            }
        }
    }
    (work / "override.yaml").write_text(yaml.safe_dump(override))
    results = base / "results"
    args = (
        "-s", REPO / "Snakefile", "--configfile", work / "override.yaml",
        # snakemake's --config reads booleans as True/False only
        "--config", f"data_root={tree}", f"results={results}", "download=False", "device=cpu",
    )  # fmt: skip
    proc = snakemake("--cores", "2", "all", *args, cwd=work)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-5000:]
    runs = results / "runs" / "smoke" / "cifar10"
    return {"work": work, "results": results, "runs": runs, "args": args, "proc": proc, "config": config}


def read_table(study, name="l1") -> list[dict]:
    with open(study["results"] / "tables" / f"{name}.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_table_has_a_row_per_model_with_finite_means(study):
    rows = read_table(study)
    assert [r["model"] for r in rows] == ["ResNet-56-A", "ResNet-56-B"]
    for row in rows:
        assert row["dataset"] == "cifar10" and row["metric"] == "best"
        for arm in ARMS:
            mean = float(row[f"{arm}_mean"])
            assert math.isfinite(mean) and 0 <= mean <= 100, (row["model"], arm, mean)
            assert int(row[f"{arm}_n"]) == 1
    by_model = {r["model"]: r for r in rows}
    assert float(by_model["ResNet-56-A"]["macs_reduction_pct"]) == pytest.approx(10.4)
    assert float(by_model["ResNet-56-B"]["macs_reduction_pct"]) == pytest.approx(27.6)
    assert int(by_model["ResNet-56-B"]["macs"]) == 90907264


def test_markdown_table_and_figures(study):
    md = (study["results"] / "tables" / "l1.md").read_text()
    assert "ResNet-56-A" in md and "ResNet-56-B" in md
    for name in ("l1", "l1-channels", "slimming", "slimming-channels"):
        png = (study["results"] / "figures" / f"{name}.png").read_bytes()
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000, name


def test_slimming_table_and_learned_architecture(study):
    (row,) = read_table(study, "slimming")
    assert row["arch"] == "vgg19" and row["setting"] == "0.5"
    for arm in ARMS:
        assert math.isfinite(float(row[f"{arm}_mean"])), arm
    pruned = study["runs"] / "vgg19" / "sparsity0.0001" / "slimming-0.5"
    report = json.loads((pruned / "pruned" / "seed1" / "prune.json").read_text())
    assert report["global_ratio"] == 0.5 and "threshold" in report
    after = sum(layer["after"] for layer in report["layers"])
    before = sum(layer["before"] for layer in report["layers"])
    assert after < before
    # the scratch arms train the learned cfg, read from the pruned file
    for arm in ("scratch-e", "scratch-b"):
        m = json.loads((pruned / arm / "seed1" / "metrics.json").read_text())
        assert m["inputs"]["architecture"]["path"].endswith("slimming-0.5/pruned/seed1/pruned.pt")
        assert m["macs"] == report["macs_after"]
    channels = (study["results"] / "tables" / "slimming-channels.csv").read_text().splitlines()
    assert len(channels) == 1 + len(report["layers"])


def test_every_eval_matches_its_model_file(study):
    evals = sorted((study["runs"] / "resnet56").rglob("eval.json"))
    # base + (finetune, scratch-e, scratch-b) for each of A and B
    assert len(evals) == 1 + 3 * 2, evals
    for path in evals:
        ev = json.loads(path.read_text())
        model = path.with_name("model.pt")
        assert Path(ev["model"]).resolve() == model.resolve()
        assert ev["model_sha256"] == hashlib.sha256(model.read_bytes()).hexdigest(), path
        assert math.isfinite(ev["accuracy"]["evaluated"])


def test_every_run_has_per_epoch_history(study):
    metrics = sorted(study["runs"].rglob("metrics.json"))
    assert len(metrics) == 7 + 4, metrics
    for path in metrics:
        m = json.loads(path.read_text())
        assert m["epochs"] >= 1 and len(m["history"]) == m["epochs"], path
        for h in m["history"]:
            assert h["lr"] > 0 and h["time"] >= 0, (path, h)
        # the override reached the jobs: whole tiny dataset, one epoch (Scratch-B: its budget,
        # at most the smoke scale's max_epochs)
        assert m["data"] == {"train_images": 10 * N_TRAIN, "test_images": 10 * N_TEST, "standin": False}, path
        cap = study["config"]["scales"]["smoke"]["max_epochs"]
        expected = min(scratch_b_epochs(1, m["macs_full"], m["macs"]), cap) if m["run"]["arm"] == "scratch-b" else 1
        assert m["epochs"] == expected, path


def test_prune_reports(study):
    for variant, pct in (("A", 10.4), ("B", 27.56)):
        report = json.loads((study["runs"] / "resnet56" / "plain" / f"l1-{variant}" / "pruned" / "seed1" / "prune.json").read_text())
        assert report["macs_reduction_pct"] == pytest.approx(pct, abs=0.01)


def test_every_eval_records_its_sanity_checks(study):
    evals = sorted(study["runs"].rglob("eval.json"))
    for path in evals:
        ev = json.loads(path.read_text())
        assert set(ev["checks"]) == set(CHECKS), (path, ev["checks"])
        # a loss on 80 images over a few epochs may well rise: that check is left to the data
        assert set(ev["checks_failed"]) <= {"loss_decreased"}, (path, ev["checks"])
        assert ev["checks"]["macs_agree"] is True and ev["checks"]["no_empty_layer"] is True, path
        assert (ev["checks"]["loss_decreased"] is None) == (ev["epochs"] == 1), path  # one epoch: nothing to compare
    summary = (study["results"] / "tables" / "l1-checks.md").read_text()
    assert summary.count("| `") == len(CHECKS) and "runs; **" in summary


def test_html_report_builds_and_shows_every_figure(study, tmp_path):
    """`snakemake --report` at this scale, then every figure opened in headless Chromium."""
    report = study["results"] / "report.html"
    proc = snakemake("--report", report, *study["args"], cwd=study["work"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = report.read_text()
    figures = [f"{s}{f}.png" for s in ("l1", "slimming") for f in ("", "-ci", "-diff", "-channels", "-ledger", "-latency")]
    for name in figures + [f"{s}{p}.html" for s in ("l1", "slimming") for p in ("", "-checks", "-ledger", "-latency")]:
        assert name in text, name
    assert "config.yaml" in text  # the configuration travels with the report
    if find_browser() is None:
        if os.environ.get("PRUNEBENCH_REQUIRE_BROWSER") == "1":
            pytest.fail("PRUNEBENCH_REQUIRE_BROWSER=1 but no Chromium is installed (apt-get install chromium)")
        pytest.skip("no headless Chromium here (apt-get install chromium); .ci/run installs it and requires this check")
    shown = check_report(report, tmp_path / "shots")
    assert sorted(Path(r["figure"]).name for r in shown) == sorted(figures)
    assert all(r["ok"] for r in shown), [r for r in shown if not r["ok"]]


def test_ledger_counts_pretraining_for_fine_tuning_only(study):
    df = pd.read_csv(study["results"] / "tables" / "l1-ledger.csv")
    base = df[df["arm"] == "base"].iloc[0]
    # 3 x forward MACs x 80 training images x 1 epoch
    assert base["train_macs"] == 3 * 125485696 * 10 * N_TRAIN and base["pretrain_macs"] == 0 and base["total_vs_base"] == 1
    for _, r in df[df["arm"] != "base"].iterrows():
        assert r["pretrain_macs"] == (base["train_macs"] if r["arm"] == "finetune" else 0), r.to_dict()
        assert r["total_macs"] == r["train_macs"] + r["pretrain_macs"] and r["train_hours"] > 0
    assert (study["results"] / "figures" / "l1-ledger.png").read_bytes().startswith(b"\x89PNG")


def test_latency_table_times_the_full_and_pruned_models(study):
    df = pd.read_csv(study["results"] / "tables" / "l1-latency.csv")
    assert sorted(set(df["kind"])) == ["full", "pruned"] and sorted(set(df["batch"])) == [1, 64]
    assert set(df["device"]) == {"cpu"}  # cuda is skipped on a machine without one
    assert (df["latency_ms_median"] > 0).all() and (df.loc[df["kind"] == "full", "speedup_vs_full"] == 1).all()


def test_no_partial_files_left(study):
    leftovers = [p for p in study["results"].rglob("*") if p.name.endswith(".tmp") or p.name == "checkpoint.pt"]
    assert leftovers == []


def test_rerun_has_nothing_to_do(study):
    for target in ("table1", "l1", "slimming", "all"):
        proc = snakemake("-n", target, *study["args"], cwd=study["work"])
        assert proc.returncode == 0, proc.stderr
        assert "Nothing to be done" in proc.stdout + proc.stderr, proc.stdout[-3000:]
