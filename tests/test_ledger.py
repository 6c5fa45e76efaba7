"""The compute ledger: own training MACs per run, pretraining followed through the files a
fine-tuned run started from (chained methods included), measured hours, and its outputs."""

import json

import pandas as pd
import pytest

from prunebench.commands.cli import main
from prunebench.core.errors import UserError
from prunebench.report.ledger import PASSES, build_ledger

IMAGES = 10


def _run(tmp, name, arm, macs, epochs, seconds, inputs=None, setting="A", seed=1, acc=90.0, failed=()):
    folder = tmp / name / f"seed{seed}"
    folder.mkdir(parents=True)
    run = {"dataset": "cifar10", "arch": "resnet56", "arm": arm, "seed": seed, "method": None if arm == "base" else "l1", "setting": None if arm == "base" else setting}
    metrics = {"run": run, "macs": macs, "epochs": epochs, "data": {"train_images": IMAGES}, "train_seconds": seconds, "device": "cpu", "inputs": inputs or {}}
    (folder / "metrics.json").write_text(json.dumps(metrics))
    (folder / "model.pt").write_bytes(b"")
    ev = {"run": run, "accuracy": {"best": acc, "final": acc}, "lr": 0.1 if arm != "finetune" else 0.001, "metrics": str(folder / "metrics.json"),
          "model": str(folder / "model.pt"), "checks_failed": list(failed), "macs": macs, "params": 1, "macs_full": 100, "params_full": 1}
    return folder, ev


def _pruned(tmp, name, source):
    folder = tmp / name
    folder.mkdir(parents=True)
    (folder / "pruned.pt").write_bytes(b"")
    (folder / "prune.json").write_text(json.dumps({"input": {"path": str(source / "model.pt")}}))
    return {"path": str(folder / "pruned.pt")}


@pytest.fixture
def evals(tmp_path):
    base, ev_base = _run(tmp_path, "base", "base", 100, 2, 7200)
    pruned = _pruned(tmp_path, "pruned1", base)
    ft1, ev_ft1 = _run(tmp_path, "ft1", "finetune", 50, 1, 1800, {"init": pruned})
    # a chained step: prunes the first fine-tuned model and fine-tunes again
    ft2_pruned = _pruned(tmp_path, "pruned2", ft1)
    _, ev_ft2 = _run(tmp_path, "ft2", "finetune", 40, 1, 900, {"init": ft2_pruned}, setting="B")
    _, ev_se = _run(tmp_path, "se", "scratch-e", 50, 2, 3600, {"architecture": pruned})
    _, ev_se2 = _run(tmp_path, "se", "scratch-e", 50, 2, 3600, {"architecture": pruned}, seed=2, acc=10.0, failed=["no_regrowth"])
    return [ev_base, ev_ft1, ev_ft2, ev_se, ev_se2]


def test_costs_follow_the_weights(evals):
    df = build_ledger(evals, "l1")
    base = df[df["arm"] == "base"].iloc[0]
    own_base = PASSES * 100 * IMAGES * 2
    assert base["train_macs"] == own_base and base["pretrain_macs"] == 0 and base["total_vs_base"] == 1
    ft1 = df[(df["arm"] == "finetune") & (df["setting"] == "A")].iloc[0]
    assert ft1["train_macs"] == PASSES * 50 * IMAGES and ft1["pretrain_macs"] == own_base
    assert ft1["total_hours"] == pytest.approx(2.5) and ft1["train_hours"] == pytest.approx(0.5)
    ft2 = df[(df["arm"] == "finetune") & (df["setting"] == "B")].iloc[0]
    assert ft2["pretrain_macs"] == own_base + PASSES * 50 * IMAGES  # the base and the first fine-tune
    assert ft2["total_vs_base"] == pytest.approx((own_base + PASSES * 90 * IMAGES) / own_base)
    se = df[df["arm"] == "scratch-e"].iloc[0]
    assert se["pretrain_macs"] == 0 and se["runs"] == 2 and se["failed_runs"] == 1
    assert se["accuracy_mean"] == 90.0  # the run that failed a check enters no mean


def test_cli_writes_table_and_figure(evals, tmp_path):
    paths = []
    for i, ev in enumerate(evals):
        p = tmp_path / f"eval{i}.json"
        p.write_text(json.dumps(ev))
        paths.append(str(p))
    out = tmp_path / "out"
    main(["ledger", *paths, "--study", "l1", "--csv", str(out / "l.csv"), "--md", str(out / "l.md"), "--figure", str(out / "l.png")])
    assert len(pd.read_csv(out / "l.csv")) == 4
    assert "+ pretraining" in (out / "l.md").read_text() and (out / "l.png").read_bytes().startswith(b"\x89PNG")


def test_a_metrics_file_without_counts_is_a_one_line_error(evals, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"run": {}}))
    evals[1]["metrics"] = str(bad)
    with pytest.raises(UserError, match="is not a metrics.json"):
        build_ledger(evals, "l1")
