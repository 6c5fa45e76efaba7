"""Provenance in every run's files, and ``prunebench trace`` from a table cell to those runs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from prunebench.commands.cli import main
from prunebench.core.errors import UserError
from prunebench.report.table import build_table, write_table
from prunebench.report.trace import trace
from prunebench.training.evaluation import evaluate_run
from prunebench.training.jobs import prune_run
from prunebench.training.runs import ArmProtocol, RunSpec, train_run

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


# --------------------------------------------------------------------------- lottery and archsearch tables
def _saved(root, folder, ev):
    """A run as the workflow lays it out (<...>/<arm folder>/seed<s>/model.pt): a small model file,
    its eval.json (accuracy, model path and hash) and a metrics.json."""
    from prunebench.core.io import sha256, write_json

    run_dir = root / folder / f"seed{ev['run']['seed']}"
    run_dir.mkdir(parents=True)
    model = run_dir / "model.pt"
    model.write_bytes(f"weights of {folder} seed {ev['run']['seed']}".encode())
    ev = {**ev, "model": str(model), "model_sha256": sha256(model)}
    write_json(run_dir / "eval.json", ev)
    write_json(run_dir / "metrics.json", {"run": ev["run"], "provenance": {"commit": "0" * 40}})
    return ev


def _eval(arm, seed, acc, method=None, setting=None, **extra):
    run = {"dataset": "cifar10", "arch": "vgg16", "method": method, "setting": setting, "arm": arm, "seed": seed}
    return {"run": run, "accuracy": {"best": acc, "final": acc}, "macs": 100, "params": 1000, "macs_full": 300, "params_full": 3000, **extra}


def _traced(path, row, column):
    """The run folders a trace of one cell reads the eval.json of."""
    return sorted("/".join(Path(line.strip().split("/eval.json")[0]).parts[-2:]) for line in trace(str(path), row, column) if "/eval.json: accuracy" in line)


def test_trace_a_lottery_cell_to_its_arm_or_both_compared(tmp_path):
    from prunebench.report.lottery import build_lottery_table, write_lottery_table

    evals = []
    for lr in (0.1, 0.01):
        for s in (1, 2):
            evals.append(_saved(tmp_path, f"lr{lr}/base", _eval("base", s, 93.0 + s, lr=lr)))
            evals.append(_saved(tmp_path, f"lr{lr}/magnitude-0.5/winning", _eval("winning", s, 91.0 + s, "magnitude", "0.5", lr=lr)))
            evals.append(_saved(tmp_path, f"lr{lr}/magnitude-0.5/scratch-e", _eval("scratch-e", s, 90.0 + s, "magnitude", "0.5", lr=lr)))
    evals.append(_saved(tmp_path, "lr0.1/magnitude-0.5/winning", _eval("winning", 3, 99.0, "magnitude", "0.5", lr=0.1, checks_failed=["no_regrowth"])))
    write_lottery_table(build_lottery_table(evals), tmp_path / "t.csv", tmp_path / "t.md", "lottery")
    lines = trace(str(tmp_path / "t.csv"), "1", "winning_mean")
    assert lines[0] == f"{tmp_path / 't.csv'}: row 1 (cifar10 vgg16 magnitude 0.5 0.1), column winning_mean = 92.5"
    assert lines[1] == "  mean over 2 run(s):" and "matches the file" in "\n".join(lines)
    assert _traced(tmp_path / "t.csv", "1", "winning_mean") == ["winning/seed1", "winning/seed2"]  # not seed 3: it failed a check
    assert _traced(tmp_path / "t.csv", "1", "random_ci95_low") == ["scratch-e/seed1", "scratch-e/seed2"]
    assert _traced(tmp_path / "t.csv", "2", "unpruned_mean") == ["base/seed1", "base/seed2"] and "lr0.01/base/seed1/eval.json" in "\n".join(trace(str(tmp_path / "t.csv"), "2", "unpruned_mean"))
    both = trace(str(tmp_path / "t.csv"), "1", "winning_vs_random_p")
    assert both[1] == "  compares 4 run(s):" and _traced(tmp_path / "t.csv", "1", "winning_vs_random_verdict") == ["scratch-e/seed1", "scratch-e/seed2", "winning/seed1", "winning/seed2"]
    assert trace(str(tmp_path / "t.csv"), "1", "pruned_pct")[1] == "  from 4 run(s):"
    with pytest.raises(UserError, match=r"^--row 'VGG-16': this table has no model column; give a row number \(1 to 2\)$"):
        trace(str(tmp_path / "t.csv"), "VGG-16", "winning_mean")
    with pytest.raises(UserError, match=r"--column 'winner' is not a column of the table"):
        trace(str(tmp_path / "t.csv"), "1", "winner")


def test_trace_an_archsearch_comparison_to_the_uniform_match(tmp_path):
    from prunebench.report.archsearch import build_archsearch_table, write_archsearch_table

    evals = [_saved(tmp_path, "base", _eval("base", s, 94.0)) for s in (1, 2)]
    for s in (1, 2):
        evals.append(_saved(tmp_path, "slimming-0.6/scratch-e", _eval("scratch-e", s, 93.0 + s, "slimming", "0.6")))
        evals.append(_saved(tmp_path, "matched-slimming_0.6/scratch-e", _eval("scratch-e", s, 92.0 + s, "matched", "slimming_0.6")))
    write_archsearch_table(build_archsearch_table(evals), tmp_path / "a.csv", tmp_path / "a.md", "archsearch")
    path = tmp_path / "a.csv"
    assert trace(str(path), "1", "scratch-e_mean")[0].endswith("row 1 (cifar10 vgg16 slimming 0.6), column scratch-e_mean = 94.5")
    assert _traced(path, "1", "scratch-e_mean") == ["scratch-e/seed1", "scratch-e/seed2"]
    assert "slimming-0.6/scratch-e/seed1" in "\n".join(trace(str(path), "1", "scratch-e_mean")) and "matched" not in "\n".join(trace(str(path), "1", "scratch-e_std"))
    compared = "\n".join(trace(str(path), "1", "vs_uniform_diff"))
    assert "compares 4 run(s)" in compared and "matched-slimming_0.6/scratch-e/seed2/eval.json" in compared and "slimming-0.6/scratch-e/seed2/eval.json" in compared
    assert _traced(path, "2", "unpruned_ci95_high") == ["base/seed1", "base/seed2"]
    assert trace(str(path), "2", "vs_uniform_verdict")[1] == "  no run behind this cell (it is empty)"  # the uniform row has no match


def test_trace_li_layer_by_layer_against_its_one_shot_row(tmp_path):
    from prunebench.report.li import iterative_table, write_iterative

    evals = []
    for s in (1, 2):
        evals.append(_saved(tmp_path, "l1-A/finetune", _eval("finetune", s, 90.0 + s, "l1", "A", epochs=40)))
        evals.append(_saved(tmp_path, "layerwise-A_1/finetune", _eval("finetune", s, 80.0, "layerwise", "A_1", epochs=40)))
        evals.append(_saved(tmp_path, "layerwise-A_2/finetune", _eval("finetune", s, 91.0 + s, "layerwise", "A_2", epochs=40)))
    write_iterative(iterative_table(evals, {("vgg16", "A"): 2}), tmp_path / "i.csv", tmp_path / "i.md", "li")
    path = tmp_path / "i.csv"
    assert trace(str(path), "1", "accuracy")[0].endswith("row 1 (cifar10 vgg16 A one-shot), column accuracy = 91.5")
    assert _traced(path, "1", "ci95_low") == ["finetune/seed1", "finetune/seed2"] and "l1-A/finetune/seed1" in "\n".join(trace(str(path), "1", "accuracy"))
    compared = "\n".join(trace(str(path), "2", "vs_oneshot_p"))
    assert "compares 4 run(s)" in compared and "l1-A/finetune/seed2/eval.json" in compared and "layerwise-A_2/finetune/seed2/eval.json" in compared
    assert "layerwise-A_1" not in compared and trace(str(path), "1", "vs_oneshot_p")[1] == "  no run behind this cell (it is empty)"
    with pytest.raises(UserError, match=r"--row 'vgg16': 2 rows of that model; give a row number"):
        trace(str(path), "vgg16", "accuracy")
