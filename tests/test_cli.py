"""The ``prunebench`` command line: help texts, ``describe``, and the one-line error contract.

Errors are formatted by ``prunebench.commands.cli.main`` (the console entry point), so every error case
runs the real entry point in a subprocess (``python -m prunebench``) and checks what a user sees:
a non-zero exit, exactly one stderr line ``prunebench: error: ...`` naming the problem, and no
traceback. Successful, output-only cases (help, describe) run in-process, which is cheaper.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
import torch
from click.testing import CliRunner

from prunebench import models
from prunebench.commands.cli import cli
from prunebench.core.errors import UserError
from prunebench.training.checkpoints import save_model

COMMANDS = ("prepare", "standin", "describe", "train", "prune", "evaluate", "table", "figure", "channels")
BASE_RUN = {"dataset": "cifar10", "arch": "resnet56", "variant": None, "arm": "base", "seed": 1, "scale": "custom"}


# --------------------------------------------------------------------------- helpers
def run_prunebench(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The real entry point, as a user (or a Snakemake rule) runs it."""
    env = {k: v for k, v in os.environ.items() if k != "PRUNEBENCH_DEBUG"}
    return subprocess.run(
        [sys.executable, "-m", "prunebench", *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> str:
    """Non-zero exit, one stderr line 'prunebench: error: ...' that contains every needle."""
    detail = f"rc={proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert proc.returncode != 0, detail
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, detail
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, detail
    line = lines[0]
    assert line.startswith("prunebench: error: "), detail
    assert len(line) > len("prunebench: error: ") + 10, detail
    for needle in needles:
        assert needle in line, f"{needle!r} not named in the error line\n{detail}"
    return line


def invoke(*args: str) -> click.testing.Result:
    return CliRunner().invoke(cli, list(args), prog_name="prunebench", catch_exceptions=False)


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cli")


@pytest.fixture(scope="module")
def full_model(work: Path) -> Path:
    """A randomly initialised, unpruned ResNet-56 model file (what ``train --arm base`` writes)."""
    torch.manual_seed(0)
    path = work / "base" / "model.pt"
    save_model(path, models.build("resnet56", None, 10), "resnet56", 10, run=dict(BASE_RUN))
    return path


@pytest.fixture(scope="module")
def pruned_model(work: Path, full_model: Path) -> Path:
    """``full_model`` pruned to ResNet-56-A by the prune command (in-process)."""
    out, report = work / "pruned" / "pruned.pt", work / "pruned" / "prune.json"
    result = invoke("prune", "--model", str(full_model), "--variant", "A", "--out", str(out), "--report", str(report))
    assert result.exit_code == 0, result.output
    assert out.is_file() and report.is_file()
    return out


# --------------------------------------------------------------------------- help and describe
def test_every_documented_command_exists():
    assert set(COMMANDS) <= set(cli.commands), sorted(cli.commands)


def test_top_level_help_via_entry_point_lists_every_command(work):
    proc = run_prunebench("--help", cwd=work)
    assert proc.returncode == 0, proc.stderr
    for name in cli.commands:
        assert name in proc.stdout, f"{name} missing from 'prunebench --help'"


@pytest.mark.parametrize("name", sorted(set(COMMANDS) | set(cli.commands)))
def test_help_documents_every_option(name):
    command = cli.commands[name]
    result = invoke(name, "--help")
    assert result.exit_code == 0, result.output
    text = result.output
    assert f"Usage: prunebench {name}" in text
    assert command.help and command.help.split()[0] in text, "command has no description"
    options = [p for p in command.params if isinstance(p, click.Option) and not p.hidden]
    assert options, f"{name} declares no options"
    for opt in options:
        for flag in [*opt.opts, *opt.secondary_opts]:
            assert flag in text, f"{flag} of '{name}' missing from its --help"
        assert opt.help and opt.help.strip(), f"{opt.opts[0]} of '{name}' has no help text"
    for arg in (p for p in command.params if isinstance(p, click.Argument)):
        assert arg.human_readable_name.upper() in text, f"argument {arg.name} missing from usage"


def test_short_help_flag_works():
    result = invoke("prune", "-h")
    assert result.exit_code == 0 and "--variant" in result.output


def test_describe_resnet56_b():
    result = invoke("describe", "--arch", "resnet56", "--variant", "B")
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert {"cfg", "macs", "params", "macs_full", "params_full"} <= set(info)
    assert info["arch"] == "resnet56" and (info["method"], info["setting"]) == ("l1", "B")
    assert info["macs"] == 90907264
    assert info["macs_full"] == 125485696
    assert info["params"] < info["params_full"]
    assert len(info["cfg"]) == len(models.default_cfg("resnet56"))
    assert info["scratch_b_epochs"] == 220  # int(160 x 125485696 / 90907264)


def test_describe_full_network_has_no_reduction():
    info = json.loads(invoke("describe", "--arch", "resnet56").stdout)
    assert info["method"] is None and info["setting"] is None
    assert info["macs"] == info["macs_full"] == 125485696
    assert info["cfg"] == models.default_cfg("resnet56")
    assert info["scratch_b_epochs"] == 160


# PROTOCOLS-IMAGENET §2.1 [CALC] at 224x224, 1000 classes: params, MACs, Scratch-B epochs (of 90).
RESNET34 = {None: (21.798, 3.664, 90), "A": (20.152, 3.100, 106), "B": (19.469, 2.782, 118), "C": (20.206, 3.391, 97)}


@pytest.mark.parametrize("variant", list(RESNET34))
def test_describe_counts_an_imagenet_arch_on_imagenet(variant):
    args = ("--variant", variant) if variant else ()
    info = json.loads(invoke("describe", "--arch", "resnet34", *args).stdout)
    assert info == json.loads(invoke("describe", "--arch", "resnet34", "--dataset", "imagenet", *args).stdout)
    params_m, macs_g, epochs = RESNET34[variant]
    assert info["dataset"] == "imagenet" and info["num_classes"] == 1000
    assert info["params_full"] == 21_797_672 and round(info["macs_full"] / 1e9, 3) == 3.664  # torchvision's
    assert round(info["params"] / 1e6, 3) == params_m and round(info["macs"] / 1e9, 3) == macs_g
    assert info["scratch_b_epochs"] == epochs
    assert info["params_full"] == pytest.approx(2.16e7, rel=0.01) and info["macs_full"] == pytest.approx(3.64e9, rel=0.01)  # Li Table 1


def test_describe_keeps_cifar_as_the_default_for_cifar_archs():
    info = json.loads(invoke("describe", "--arch", "resnet56", "--dataset", "cifar100").stdout)
    assert (info["dataset"], info["num_classes"], info["macs_full"], info["scratch_b_epochs"]) == ("cifar100", 100, 125491456, 160)


# --------------------------------------------------------------------------- one-line errors
@pytest.mark.parametrize(
    "arch, dataset, needles",
    [("resnet34", "cifar10", ("resnet34 is an ImageNet architecture", "--dataset imagenet")), ("resnet56", "imagenet", ("resnet56 is a CIFAR architecture", "--dataset cifar10"))],
)
def test_describe_refuses_an_arch_of_the_other_dataset_family(work, arch, dataset, needles):
    proc = run_prunebench("describe", "--arch", arch, "--dataset", dataset, cwd=work)
    assert_one_line_error(proc, *needles)


def test_unknown_arch(work):
    proc = run_prunebench("describe", "--arch", "resnet57", cwd=work)
    assert_one_line_error(proc, "resnet57", "resnet56")  # names the bad value and the choices


def test_unknown_variant(work):
    proc = run_prunebench("describe", "--arch", "resnet56", "--variant", "Z", cwd=work)
    assert_one_line_error(proc, "resnet56-Z")


def test_missing_required_option(work):
    proc = run_prunebench("describe", cwd=work)
    line = assert_one_line_error(proc, "--arch")
    assert "prunebench describe --help" in line


@pytest.mark.parametrize(
    "milestones, named",
    [("0.5,abc", "abc"), ("0.5,1.5", "1.5")],  # not numbers; outside (0, 1): 1.5 would never decay
)
def test_bad_milestones_are_rejected(work, tiny_prepared, milestones, named):
    out = work / f"ms-{named}"
    proc = run_prunebench(
        "train", "--arch", "resnet20", "--arm", "base", "--data", tiny_prepared, "--epochs", "1", "--lr", "0.1",
        "--milestones", milestones, "--device", "cpu",
        "--model-out", out / "model.pt", "--metrics-out", out / "metrics.json",
        cwd=work,
    )  # fmt: skip
    assert_one_line_error(proc, named)
    assert not (out / "model.pt").exists() and not (out / "metrics.json").exists()


def test_train_with_missing_data(work):
    missing = work / "no-such-data.pt"
    proc = run_prunebench(
        "train", "--arch", "resnet20", "--arm", "base", "--data", missing, "--epochs", "1", "--lr", "0.1",
        "--model-out", work / "md" / "model.pt", "--metrics-out", work / "md" / "metrics.json",
        cwd=work,
    )  # fmt: skip
    assert_one_line_error(proc, str(missing), "does not exist")


def test_finetune_without_init(work, tiny_prepared):
    proc = run_prunebench(
        "train", "--arch", "resnet56", "--arm", "finetune", "--variant", "A", "--data", tiny_prepared,
        "--epochs", "1", "--lr", "0.1", "--device", "cpu",
        "--model-out", work / "ft" / "model.pt", "--metrics-out", work / "ft" / "metrics.json",
        cwd=work,
    )  # fmt: skip
    assert_one_line_error(proc, "--init")
    assert not (work / "ft").exists() or not any((work / "ft").iterdir())


def test_scratch_without_variant(work, tiny_prepared):
    proc = run_prunebench(
        "train", "--arch", "resnet56", "--arm", "scratch-e", "--data", tiny_prepared, "--epochs", "1", "--lr", "0.1",
        "--device", "cpu", "--model-out", work / "se" / "model.pt", "--metrics-out", work / "se" / "metrics.json",
        cwd=work,
    )  # fmt: skip
    assert_one_line_error(proc, "scratch-e", "--method", "--setting")


def test_base_with_variant(work, tiny_prepared):
    proc = run_prunebench(
        "train", "--arch", "resnet56", "--arm", "base", "--variant", "A", "--data", tiny_prepared, "--epochs", "1",
        "--lr", "0.1", "--device", "cpu",
        "--model-out", work / "bv" / "model.pt", "--metrics-out", work / "bv" / "metrics.json",
        cwd=work,
    )  # fmt: skip
    assert_one_line_error(proc, "base", "drop --method")


def test_prune_missing_model(work):
    missing = work / "nothing-here.pt"
    out, report = work / "pm" / "pruned.pt", work / "pm" / "prune.json"
    proc = run_prunebench("prune", "--model", missing, "--variant", "A", "--out", out, "--report", report, cwd=work)
    assert_one_line_error(proc, str(missing), "does not exist")
    assert not out.exists() and not report.exists()


def test_prune_corrupt_model_leaves_no_output(work):
    corrupt = work / "corrupt.pt"
    corrupt.write_bytes(b"\x80\x02garbage, not a torch file" * 50)
    out, report = work / "pc" / "pruned.pt", work / "pc" / "prune.json"
    proc = run_prunebench("prune", "--model", corrupt, "--variant", "A", "--out", out, "--report", report, cwd=work)
    assert_one_line_error(proc, str(corrupt), "corrupt")
    assert not out.exists() and not report.exists()
    assert not out.parent.exists() or not any(out.parent.iterdir()), "temporary files left behind"


def test_prune_already_pruned_model(work, pruned_model):
    out, report = work / "pp" / "pruned.pt", work / "pp" / "prune.json"
    proc = run_prunebench("prune", "--model", pruned_model, "--variant", "A", "--out", out, "--report", report, cwd=work)
    assert_one_line_error(proc, str(pruned_model), "already pruned")
    assert not out.exists() and not report.exists()


def test_prune_failing_to_write_model_leaves_no_report(work, full_model):
    """--out cannot be written (its parent is a file): neither output may exist afterwards,
    else a prune.json describes a pruned model that was never saved."""
    blocker = work / "blocker"
    blocker.write_text("a file, not a folder\n")
    out, report = blocker / "pruned.pt", work / "pw" / "prune.json"
    proc = run_prunebench("prune", "--model", full_model, "--variant", "A", "--out", out, "--report", report, cwd=work)
    assert_one_line_error(proc, str(out))
    assert not out.exists()
    assert not report.exists(), "prune wrote --report although --out failed: a half-written output pair"


def test_train_failing_to_write_model_leaves_no_metrics(work, tiny_prepared):
    """Same contract for train: a metrics.json must never describe a model.pt that was not saved."""
    blocker = work / "blocker-train"
    blocker.write_text("a file, not a folder\n")
    model_out, metrics_out = blocker / "model.pt", work / "tw" / "metrics.json"
    proc = run_prunebench(
        "train", "--arch", "resnet20", "--arm", "base", "--data", tiny_prepared, "--epochs", "1", "--lr", "0.1",
        "--device", "cpu", "--checkpoint", work / "tw" / "checkpoint.pt",
        "--model-out", model_out, "--metrics-out", metrics_out,
        cwd=work,
    )  # fmt: skip
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.splitlines()[-1].startswith("prunebench: error: cannot write"), proc.stderr
    assert not metrics_out.exists(), "train wrote --metrics-out although --model-out failed: a half-written output pair"


def test_evaluate_with_metrics_of_another_run(work, full_model, tiny_prepared):
    other = {**BASE_RUN, "seed": 2}
    metrics = work / "other-metrics.json"
    counts = {"epochs": 1, "macs": 1, "params": 1, "macs_full": 1, "params_full": 1}
    metrics.write_text(json.dumps({"run": other, "best_accuracy": 50.0, "final_accuracy": 50.0, **counts}))
    out = work / "ev" / "eval.json"
    proc = run_prunebench(
        "evaluate", "--model", full_model, "--metrics", metrics, "--data", tiny_prepared, "--device", "cpu",
        "--out", out, cwd=work,
    )  # fmt: skip
    assert_one_line_error(proc, str(metrics), str(full_model))
    assert not out.exists()


def test_figure_with_missing_table(work):
    missing = work / "tables" / "table1.csv"
    out = work / "fig" / "table1.png"
    proc = run_prunebench("figure", "--table", missing, "--out", out, cwd=work)
    assert_one_line_error(proc, str(missing), "does not exist")
    assert not out.exists()


def test_debug_raises_the_error_instead(monkeypatch):
    """The escape hatch the one-line contract promises: PRUNEBENCH_DEBUG=1 re-raises (traceback)."""
    from prunebench.commands.cli import main
    from prunebench.core.errors import UserError

    monkeypatch.setenv("PRUNEBENCH_DEBUG", "1")
    with pytest.raises(UserError, match="resnet57"):
        main(["describe", "--arch", "resnet57"])
    monkeypatch.delenv("PRUNEBENCH_DEBUG")
    with pytest.raises(SystemExit) as exc:
        main(["describe", "--arch", "resnet57"])
    assert exc.value.code == 2


def test_train_evaluates_its_run_and_exits_without_teardown(work, tiny_prepared):
    """`train --eval-out` writes the eval.json `evaluate` would (the pipeline's: one job per run)
    and removes the checkpoint after it. The console entry point ends a finished command with
    os._exit (no interpreter teardown of torch, up to about a second per job): exit 0, every output
    complete and the last log line flushed."""
    out = work / "fast-exit"
    proc = run_prunebench(
        "train", "--arch", "resnet20", "--arm", "base", "--data", tiny_prepared, "--epochs", "1", "--lr", "0.1",
        "--device", "cpu", "--checkpoint", out / "checkpoint.pt",
        "--model-out", out / "model.pt", "--metrics-out", out / "metrics.json", "--eval-out", out / "eval.json",
        cwd=work,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "done:" in proc.stderr.splitlines()[-1], proc.stderr
    assert json.loads((out / "metrics.json").read_text())["history"], "metrics.json incomplete"
    assert torch.load(out / "model.pt", map_location="cpu", weights_only=False)
    assert not (out / "checkpoint.pt").exists()
    again = run_prunebench(
        "evaluate", "--model", out / "model.pt", "--metrics", out / "metrics.json", "--data", tiny_prepared,
        "--device", "cpu", "--out", out / "again.json", cwd=work,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    in_train, by_hand = (json.loads((out / f).read_text()) for f in ("eval.json", "again.json"))
    assert {k: v for k, v in in_train.items() if k != "provenance"} == {k: v for k, v in by_hand.items() if k != "provenance"}
    help_ = run_prunebench("--help", cwd=work)
    assert help_.returncode == 0 and "train" in help_.stdout


def test_train_failing_while_evaluating_keeps_its_checkpoint(work, tiny_prepared, monkeypatch, caplog):
    """A training job that fails (or is killed) while evaluating keeps the checkpoint of its last
    epoch, so the rerun resumes there instead of training again; it writes no model or metrics."""
    from prunebench.commands.cli import main
    from prunebench.training import runs

    out = work / "eval-fails"
    args = ["train", "--arch", "resnet20", "--arm", "base", "--data", str(tiny_prepared), "--epochs", "1", "--lr", "0.1",
            "--device", "cpu", "--checkpoint", str(out / "checkpoint.pt"), "--model-out", str(out / "model.pt"),
            "--metrics-out", str(out / "metrics.json"), "--eval-out", str(out / "eval.json")]  # fmt: skip

    def broken(*a, **k):
        raise UserError("the evaluation failed")

    monkeypatch.setattr(runs, "evaluate_run", broken)
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code != 0 and (out / "checkpoint.pt").exists()
    assert not any((out / n).exists() for n in ("model.pt", "metrics.json", "eval.json"))
    monkeypatch.undo()
    caplog.set_level(logging.INFO, logger="prunebench")
    main(args)
    assert "resuming from" in caplog.text and "epoch 1/1" not in caplog.text, caplog.text
    assert json.loads((out / "eval.json").read_text())["accuracy"]["evaluated"] >= 0
