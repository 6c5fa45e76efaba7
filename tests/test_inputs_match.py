"""A command that takes a setting and an input made at a setting refuses a mismatch in one line:
SFP's keep rate against its soft run's, a chained method's round against the run it prunes, a
fine-tuned run's method and setting against its pruned file's, a pruning of anything but the
run the method prunes."""

from __future__ import annotations

import pytest
import torch
from conftest import check_error_line, run_failing

from prunebench import models
from prunebench.commands.cli import main
from prunebench.methods import lottery
from prunebench.models import masks
from prunebench.training.checkpoints import save_model


def _run(arm: str, method: str | None = None, setting: str | None = None) -> dict:
    return {"dataset": "cifar10", "arch": "resnet20", "arm": arm, "seed": 1, "method": method, "setting": setting, "scale": "custom"}


@pytest.fixture
def files(tmp_path) -> dict:
    torch.manual_seed(0)
    full = models.build("resnet20")
    out = {}
    for name, run in (("soft", _run("soft", "sfp", "0.7")), ("base", _run("base")), ("winning", _run("winning", "iterative", "1x0.2")), ("finetuned", _run("finetune", "magnitude", "0.3"))):
        out[name] = tmp_path / f"{name}.pt"
        model = masks.apply(masks.clone(full), lottery.prune_remaining(full, 0.2)) if name == "winning" else full
        save_model(out[name], model, "resnet20", 10, run=run)
    pruned = masks.apply(masks.clone(full), masks.magnitude_masks(full, 0.3))
    out["pruned"] = tmp_path / "pruned.pt"
    save_model(out["pruned"], pruned, "resnet20", 10, run={**_run("pruned", "magnitude", "0.3")})
    return out


def _prune(path, *args) -> list[str]:
    out = path.parent / "out"
    return ["prune", "--model", str(path), *args, "--out", str(out / "pruned.pt"), "--report", str(out / "prune.json")]


CASES = [
    ("sfp-keep-rate", "soft", ["--method", "sfp", "--setting", "0.6"], r"soft\.pt is the soft run of sfp at 0\.7, but sfp at 0\.6 prunes its soft run at 0\.6", r"or --setting 0\.7"),
    ("sfp-from-the-base", "base", ["--method", "sfp", "--setting", "0.7"], r"base\.pt is a trained base, but sfp at 0\.7 prunes its soft run at 0\.7", r"pass that run's model\.pt"),
    ("iterative-round", "winning", ["--method", "iterative", "--setting", "3x0.2"], r"winning\.pt is the winning run of iterative at 1x0\.2, but iterative at 3x0\.2 prunes its winning run at 2x0\.2", r"pass that run's model\.pt"),
    ("prune-a-fine-tuned-run", "finetuned", ["--method", "magnitude", "--setting", "0.5"], r"finetuned\.pt is a finetune run, not a trained base", r"prunes the base run's model\.pt"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_pruning_an_input_made_at_another_setting_is_refused(case, files, capfd, caplog):
    name, which, args, names, hint = case
    rc, err, logged = run_failing(main, _prune(files[which], *args), name, capfd, caplog)
    check_error_line(rc, err, type("Case", (), {"id": name, "names": names, "hint": hint}), logged)
    assert not (files[which].parent / "out").exists() or not any((files[which].parent / "out").iterdir())


def test_the_matching_setting_prunes(files):
    main(_prune(files["soft"], "--method", "sfp", "--setting", "0.7"))
    main(_prune(files["winning"], "--method", "iterative", "--setting", "2x0.2"))


def test_fine_tuning_a_file_pruned_at_another_setting_is_refused(files, tiny_prepared, capfd, caplog):
    run = files["pruned"].parent / "ft"
    argv = ["train", "--arch", "resnet20", "--arm", "finetune", "--method", "magnitude", "--setting", "0.5", "--init", str(files["pruned"]), "--epochs", "1", "--lr", "0.01",
            "--data", str(tiny_prepared), "--device", "cpu", "--model-out", str(run / "model.pt"), "--metrics-out", str(run / "metrics.json")]  # fmt: skip
    rc, err, logged = run_failing(main, argv, "finetune-setting", capfd, caplog)
    check_error_line(rc, err, type("Case", (), {"id": "finetune-setting", "names": r"pruned\.pt was pruned by magnitude at 0\.3, not magnitude at 0\.5", "hint": r"pass the pruned file of this method and setting"}), logged)
    assert not any(run.iterdir())
