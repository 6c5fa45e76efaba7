"""Provenance in every run's files, and ``prunebench trace`` from a table cell to those runs."""

from __future__ import annotations

import json
import re

import pytest
import torch

from prunebench.cli import main
from prunebench.errors import UserError
from prunebench.report.table import build_table, write_table
from prunebench.report.trace import trace
from prunebench.runs import ArmProtocol, RunSpec, evaluate_run, prune_run, train_run

CPU = torch.device("cpu")
TINY = {"train_subset": 32, "test_subset": 16}


@pytest.fixture(scope="module")
def table(tiny_prepared, tmp_path_factory):
    """ResNet-56-A of the l1 study on tiny data: a base, its pruned file, a fine-tuned and a
    Scratch-E run, each evaluated, and the study table of them."""
    d = tmp_path_factory.mktemp("trace")
    runs = {"base": d / "base" / "seed1", "finetune": d / "l1-A" / "finetune" / "seed1", "scratch-e": d / "l1-A" / "scratch-e" / "seed1", "pruned": d / "l1-A" / "pruned" / "seed1"}
    for p in runs.values():
        p.mkdir(parents=True)
    data = str(tiny_prepared)
    hp = {"batch_size": 16}
    train_run(RunSpec("resnet56", "base", 1), data, ArmProtocol(1, 0.1), hp, CPU, str(runs["base"] / "model.pt"), str(runs["base"] / "metrics.json"), **TINY)
    prune_run(str(runs["base"] / "model.pt"), "l1", "A", 1, str(runs["pruned"] / "pruned.pt"), str(runs["pruned"] / "prune.json"))
    train_run(RunSpec("resnet56", "finetune", 1, init=str(runs["pruned"] / "pruned.pt")), data, ArmProtocol(1, 0.001), hp, CPU, str(runs["finetune"] / "model.pt"), str(runs["finetune"] / "metrics.json"), **TINY)
    train_run(RunSpec("resnet56", "scratch-e", 1, "l1", "A"), data, ArmProtocol(1, 0.1), hp, CPU, str(runs["scratch-e"] / "model.pt"), str(runs["scratch-e"] / "metrics.json"), **TINY)
    evals = [evaluate_run(str(runs[a] / "model.pt"), str(runs[a] / "metrics.json"), data, 16, CPU, str(runs[a] / "eval.json")) for a in ("base", "finetune", "scratch-e")]
    write_table(build_table(evals, "l1"), d / "l1.csv", d / "l1.md", "l1")
    return d, runs


def test_every_run_records_its_code_packages_and_config(table):
    _, runs = table
    metrics = json.loads((runs["finetune"] / "metrics.json").read_text())
    p = metrics["provenance"]
    assert re.fullmatch(r"[0-9a-f]{40}", p["commit"]) and isinstance(p["dirty"], bool)  # the tests run in a git checkout
    assert p["packages"]["torch"] == torch.__version__.split("+")[0] or p["packages"]["torch"].startswith(torch.__version__.split("+")[0])
    assert re.fullmatch(r"[0-9a-f]{64}", metrics["run_config_sha256"])
    assert metrics["run"]["seed"] == 1 and re.fullmatch(r"[0-9a-f]{64}", metrics["inputs"]["data"]["sha256"])
    assert metrics["device"].startswith("cpu")
    assert "commit" in json.loads((runs["pruned"] / "prune.json").read_text())["provenance"]
    assert "commit" in json.loads((runs["finetune"] / "eval.json").read_text())["provenance"]


def test_trace_walks_from_a_cell_to_the_base_and_checks_hashes(table):
    d, runs = table
    lines = trace(str(d / "l1.csv"), "1", "finetune_mean")
    text = "\n".join(lines)
    assert lines[0].startswith(f"{d / 'l1.csv'}: row 1 (cifar10 ResNet-56-A), column finetune_mean = ")
    assert f"{runs['finetune']}/eval.json: accuracy best" in text
    assert "metrics.json: arch resnet56, arm finetune, method l1, setting A, seed 1" in text
    assert "from init: " + str(runs["pruned"] / "pruned.pt") in text and "prune.json: arch resnet56, arm pruned" in text
    assert f"from pruned model: {runs['base'] / 'model.pt'}" in text and "metrics.json: arch resnet56, arm base" in text
    assert "DIFFERS" not in text and "matches the file" in text
    assert str(runs["scratch-e"]) not in text  # only the fine-tuned runs behind that cell
    # the unpruned column traces the base; a tampered file is reported, not hidden
    assert f"{runs['base']}/eval.json" in "\n".join(trace(str(d / "l1.csv"), "ResNet-56-A", "unpruned_mean"))
    pruned = runs["pruned"] / "pruned.pt"
    saved = pruned.read_bytes()
    try:
        pruned.write_bytes(saved + b"x")
        assert "DIFFERS from the file now" in "\n".join(trace(str(d / "l1.csv"), "1", "finetune_mean"))
    finally:
        pruned.write_bytes(saved)


def test_trace_names_a_bad_row_or_column(table, capsys):
    d, _ = table
    with pytest.raises(UserError, match=r"--row 7: the table has rows 1 to 1"):
        trace(str(d / "l1.csv"), "7", "finetune_mean")
    with pytest.raises(UserError, match=r"--row 'VGG-16-A': no row of that model; give a row number \(1: ResNet-56-A\)"):
        trace(str(d / "l1.csv"), "VGG-16-A", "finetune_mean")
    with pytest.raises(UserError, match=r"--column 'finetuned' is not a column of the table; choose one of study, model"):
        trace(str(d / "l1.csv"), "1", "finetuned")
    main(["trace", str(d / "l1.csv"), "--row", "1", "--column", "scratch-e_mean"])
    assert "arm scratch-e" in capsys.readouterr().out
