"""A pruned module of a network that is not one of ours (examples/foreign_network.py's PlainNet),
given with its reference network: read against the reference layer by layer, trained as it is
in every arm (the scratch arms re-draw its own layers by the study family's init rule), counted
against the reference, and refused in one line where it does not fit."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from conftest import check_error_line, run_failing

from examples.foreign_network import PlainNet, full, half
from prunebench import models
from prunebench.commands.cli import main
from prunebench.models.counting import count_macs, count_params
from prunebench.training.checkpoints import load_model, save_model, weights_sha256
from prunebench.training.runs import RunSpec, starting_model

REPO = Path(__file__).resolve().parents[1]
REFERENCE = "examples.foreign_network:full"
RUN = {"dataset": "cifar10", "arch": "vgg16", "arm": "base", "seed": 1, "method": None, "setting": None, "scale": "custom"}


@pytest.fixture
def given(tmp_path, monkeypatch, randomise_bn) -> tuple[Path, Path]:
    """The study's base (a VGG-16: the family) and a half-width PlainNet saved whole, with the
    repository as the working directory, where examples/ imports from."""
    monkeypatch.chdir(REPO)
    torch.manual_seed(0)
    base = tmp_path / "base" / "model.pt"
    save_model(base, models.build("vgg16"), "vgg16", 10, run=RUN)
    torch.save(half(randomise_bn(full()).eval()), tmp_path / "half.pt")
    return base, tmp_path / "half.pt"


def _prune(base: Path, out: Path, module: Path, *args: str) -> list[str]:
    return ["prune", "--model", str(base), "--pruned-module", str(module), "--setting", "half", "--out", str(out / "pruned.pt"), "--report", str(out / "prune.json"), *args]


def test_a_foreign_module_is_counted_against_its_reference_and_trains_as_it_is(given, tmp_path, tiny_prepared):
    base, module_file = given
    main(_prune(base, tmp_path / "p", module_file, "--reference", REFERENCE))
    report = json.loads((tmp_path / "p" / "prune.json").read_text())
    given_module = torch.load(module_file, weights_only=False)
    assert report["macs_before"] == count_macs(full()) and report["macs_after"] == count_macs(given_module)
    assert report["params_before"] == count_params(full()) and report["params_after"] == count_params(given_module)
    assert report["cfg_after"] == [] and report["external"]["reference"] == REFERENCE
    assert [(r["layer"], r["before"], r["after"]) for r in report["layers"]] == [("body.0", 32, 16), ("body.4", 64, 32), ("body.8", 128, 64), ("head", 10, 10)]
    pruned, meta = load_model(tmp_path / "p" / "pruned.pt")
    assert isinstance(pruned, PlainNet) and meta["arch"] == "vgg16" and meta["module"]["reference"] == REFERENCE
    assert weights_sha256(pruned) == weights_sha256(given_module)

    train = ["--data", str(tiny_prepared), "--epochs", "2", "--lr", "0.01", "--batch-size", "32", "--device", "cpu", "--train-subset", "32", "--test-subset", "8"]
    for arm in ("finetune", "scratch-e", "scratch-b"):
        run = tmp_path / arm
        main(["train", "--arch", "vgg16", "--arm", arm, "--method", "external", "--setting", "half", "--init", str(tmp_path / "p" / "pruned.pt"), *train,
              "--model-out", str(run / "model.pt"), "--metrics-out", str(run / "metrics.json"), "--eval-out", str(run / "eval.json")])  # fmt: skip
        metrics, ev = json.loads((run / "metrics.json").read_text()), json.loads((run / "eval.json").read_text())
        assert (ev["macs"], ev["macs_full"]) == (report["macs_after"], report["macs_before"]) and not ev["checks_failed"], (arm, ev["checks_failed"])
        assert ev["reference"] == REFERENCE and isinstance(load_model(run / "model.pt")[0], PlainNet)
        assert (metrics["init_sha256"] == weights_sha256(given_module)) == (arm == "finetune"), arm  # the scratch arms start afresh
    scratch_b = json.loads((tmp_path / "scratch-b" / "metrics.json").read_text())
    assert scratch_b["epochs"] == int(2 * report["macs_before"] / report["macs_after"])  # the reference's budget


def test_the_scratch_arms_draw_the_foreign_layers_by_the_familys_init_rule(given, tmp_path):
    base, module_file = given
    main(_prune(base, tmp_path / "p", module_file, "--reference", REFERENCE))
    torch.manual_seed(3)
    model, _, _, _ = starting_model(RunSpec("vgg16", "scratch-e", 3, "external", "half", init=str(tmp_path / "p" / "pruned.pt")), 10)
    conv, bn = model.body[4], model.body[5]
    assert abs(conv.weight.std().item() / math.sqrt(2 / (9 * conv.out_channels)) - 1) < 0.1  # VGG-16's conv rule: fan out
    assert torch.all(bn.weight == 0.5) and torch.all(bn.bias == 0) and torch.all(bn.running_var == 1)  # network slimming's gamma
    assert abs(model.head.weight.std().item() / 0.01 - 1) < 0.2 and torch.all(model.head.bias == 0)  # linear N(0, 0.01)


def _half_state_builder():
    return PlainNet((16, 32, 64))


def test_a_state_dict_with_its_builder_reads_as_the_saved_module(given, tmp_path):
    base, module_file = given
    torch.save(torch.load(module_file, weights_only=False).state_dict(), tmp_path / "state.pt")
    main(_prune(base, tmp_path / "a", module_file, "--reference", REFERENCE))
    main(_prune(base, tmp_path / "b", tmp_path / "state.pt", "--builder", "test_foreign:_half_state_builder", "--reference", REFERENCE))
    a, b = (load_model(tmp_path / d / "pruned.pt")[0] for d in ("a", "b"))
    assert weights_sha256(a) == weights_sha256(b)


def test_a_changed_module_file_is_refused_by_the_runs_after_pruning(given, tmp_path, capfd, caplog):
    base, module_file = given
    main(_prune(base, tmp_path / "p", module_file, "--reference", REFERENCE))
    torch.save(PlainNet((16, 32, 64)), module_file)
    argv = ["evaluate", "--model", str(tmp_path / "p" / "pruned.pt"), "--metrics", "x", "--data", "x", "--out", str(tmp_path / "e.json")]
    rc, err, logged = run_failing(main, argv, "changed", capfd, caplog)
    check_error_line(rc, err, type("Case", (), {"id": "changed", "names": r"was made from another \S*half\.pt \(its sha256 changed\)", "hint": r"rerun the prune step"}), logged)


def _ten_to_hundred():
    return PlainNet(num_classes=100)


def _not_a_module():
    return "PlainNet"


CASES = [
    ("reference-does-not-import", ["--reference", "no_such.nets:full"], {}, r"reference network 'no_such\.nets:full' does not import", r"install its package"),
    ("reference-is-no-module", ["--reference", "test_foreign:_not_a_module"], {}, r"returned a str, not a torch\.nn\.Module", r"torch\.nn\.Module"),
    ("wider-than-reference", ["--reference", REFERENCE], {"widths": (64, 64, 128)}, r"body\.0 is Conv2d\(3, 64\).* where the reference \S+ has Conv2d\(3, 32\)", r"only loses channels"),
    ("a-layer-missing", ["--reference", REFERENCE], {"widths": (16, 32)}, r"has no Conv2d body\.8, which the reference", r"not pruned from"),
    ("other-classes", ["--reference", "test_foreign:_ten_to_hundred"], {"num_classes": 100}, r"returns \(2, 100\) for 2 images, not \(2, 10\) class scores", r"classifier of the study's dataset"),
    ("reference-with-function", ["--function", "examples.foreign_network:half", "--reference", REFERENCE], None, r"--reference goes with --pruned-module", r"torch\.save\(model\)"),
    ("reference-for-masked", ["--method", "externalmasked", "--reference", REFERENCE], {}, r"a module pruned from another network \(\S+\) goes with method external", r"method external"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_a_foreign_module_that_does_not_fit_is_one_line_and_writes_nothing(case, given, tmp_path, capfd, caplog):
    name, args, module, names, hint = case
    base, module_file = given
    if module:
        torch.save(PlainNet(**module), module_file)
    argv = _prune(base, tmp_path / "out", module_file, *args)
    if module is None:
        argv = [a for a in argv if a not in ("--pruned-module", str(module_file))]
    rc, err, logged = run_failing(main, argv, name, capfd, caplog)
    check_error_line(rc, err, type("Case", (), {"id": name, "names": names, "hint": hint}), logged)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_the_table_names_a_foreign_row_by_its_reference_and_shows_no_unpruned_of_the_family():
    from prunebench.report.table import build_table

    def ev(arm, seed, best, reference=None):
        run = {"dataset": "cifar10", "arch": "vgg16", "method": None if arm == "base" else "external", "setting": None if arm == "base" else "half", "arm": arm, "seed": seed, "scale": "smoke"}
        sizes = {"macs": 100, "params": 10, "macs_full": 400, "params_full": 40}
        return {"run": run, "accuracy": {"best": best, "final": best, "evaluated": best}, **sizes, "epochs": 2, "model": f"{arm}{seed}.pt", "model_sha256": "00",
                "metrics": "metrics.json", **({"reference": reference} if reference else {})}  # fmt: skip

    evals = [ev("base", s, 90.0) for s in (1, 2)] + [ev(arm, s, 80.0 + s, REFERENCE) for arm in ("finetune", "scratch-e", "scratch-b") for s in (1, 2)]
    row = build_table(evals, "mine").iloc[0]
    assert row["model"] == f"{REFERENCE} (half)" and row["unpruned_n"] == 0 and math.isnan(row["unpruned_mean"])
    assert row["finetune_n"] == row["scratch-b_n"] == 2 and row["macs_reduction_pct"] == 75.0


def test_the_example_study_of_a_foreign_network_builds_its_table(tmp_path):
    """examples/foreign_network.yaml as a user runs it, at smoke scale on a tiny image tree."""
    import pandas as pd
    from conftest import run_example_study

    from examples.foreign_network import save_pruned

    save_pruned(str(tmp_path / "plainnet-half.pt"))
    results = run_example_study(tmp_path, "foreign_network", "foreign_network.yaml")
    row = pd.read_csv(results / "tables" / "foreign_network.csv").iloc[0]
    assert row["model"] == f"{REFERENCE} (half)" and row["macs_reduction_pct"] > 70 and row["unpruned_n"] == 0
    assert all(row[f"{arm}_n"] + row[f"{arm}_failed"] == 1 for arm in ("finetune", "scratch-e", "scratch-b"))
    assert {"scratch-e_vs_ft_verdict", "scratch-b_vs_ft_verdict"} <= set(row.index)
