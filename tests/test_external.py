"""Your own pruning method: a function named by import path, a pruned module saved by other code,
or a method an installed package registers; each becomes a pruned file of our ResNet-56 that
every arm trains from. Torch-Pruning's magnitude pruning (examples/torch_pruning_resnet56.py) is
the worked example."""

from __future__ import annotations

import json
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
import torch
from conftest import check_error_line, run_failing

from prunebench import methods, models
from prunebench.commands.cli import main
from prunebench.models.counting import count_macs
from prunebench.training.checkpoints import load_model, save_model

REPO = Path(__file__).resolve().parents[1]
RUN = {"dataset": "cifar10", "arch": "resnet56", "arm": "base", "seed": 1, "method": None, "setting": None, "scale": "custom"}
HALF = "examples.torch_pruning_resnet56:prune"


@pytest.fixture
def base(tmp_path, monkeypatch, randomise_bn) -> Path:
    """A 'trained' ResNet-56 (random weights, BatchNorm statistics not the defaults) and the
    repository as the working directory, where the example's import path resolves."""
    monkeypatch.chdir(REPO)
    torch.manual_seed(0)
    path = tmp_path / "base" / "model.pt"
    save_model(path, randomise_bn(models.build("resnet56")), "resnet56", 10, run=RUN)
    return path


def _prune(base: Path, out: Path, *args: str) -> list[str]:
    return ["prune", "--model", str(base), "--out", str(out / "pruned.pt"), "--report", str(out / "prune.json"), *args]


def test_a_torch_pruning_function_gives_a_pruned_file_every_arm_trains_from(base, tmp_path, tiny_prepared):
    pytest.importorskip("torch_pruning", reason="the optional dependency: pip install 'prunebench[torch-pruning]'")
    out = tmp_path / "tp"
    main(_prune(base, out, "--function", HALF, "--with", "macs=0.5", "--setting", "tp-0.5"))
    report = json.loads((out / "prune.json").read_text())
    assert report["method"] == "external" and report["setting"] == "tp-0.5"
    assert report["external"]["function"] == "examples.torch_pruning_resnet56:prune" and len(report["external"]["source_sha256"]) == 64
    assert report["external"]["settings"] == {"macs": 0.5} and report["macs_after"] <= 0.5 * report["macs_before"]
    pruned, meta = load_model(out / "pruned.pt")
    assert count_macs(pruned) == report["macs_after"] and meta["cfg"] != models.default_cfg("resnet56")
    assert all(row["after"] <= row["before"] for row in report["layers"]) and any(row["after"] < row["before"] for row in report["layers"])
    train = ["--data", str(tiny_prepared), "--epochs", "1", "--lr", "0.01", "--batch-size", "32", "--device", "cpu", "--train-subset", "32", "--test-subset", "8"]
    for arm in ("finetune", "scratch-e", "scratch-b"):
        run = tmp_path / arm
        main(["train", "--arch", "resnet56", "--arm", arm, "--method", "external", "--setting", "tp-0.5", "--init", str(out / "pruned.pt"), *train,
              "--model-out", str(run / "model.pt"), "--metrics-out", str(run / "metrics.json"), "--eval-out", str(run / "eval.json")])  # fmt: skip
        ev = json.loads((run / "eval.json").read_text())
        assert ev["macs"] == report["macs_after"] and not ev["checks_failed"], (arm, ev["checks_failed"])


def _half_inner(model):
    """A pruning function of 'other code': half the filters of every inner conv, by prunebench's surgery."""
    from prunebench.pruning import prune, select_filters

    keep = select_filters(model, {g.name: 0.5 for g in models.cuttable_groups(model)}, "l1", 0)
    return prune(model, "resnet56", keep, 10, **models.default_options("resnet56"))


def test_a_saved_module_and_a_state_dict_with_its_builder_give_the_same_file(base, tmp_path):
    model, _ = load_model(base)
    module = _half_inner(model)
    torch.save(module, tmp_path / "whole.pt")
    torch.save(module.state_dict(), tmp_path / "state.pt")
    main(_prune(base, tmp_path / "a", "--pruned-module", str(tmp_path / "whole.pt")))
    builder = "test_external:_builder"
    _BUILT["cfg"] = list(module.cfg)
    main(_prune(base, tmp_path / "b", "--pruned-module", str(tmp_path / "state.pt"), "--builder", builder))
    a, b = load_model(tmp_path / "a" / "pruned.pt")[0], load_model(tmp_path / "b" / "pruned.pt")[0]
    assert a.cfg == b.cfg == module.cfg
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), module.state_dict().values()))
    report = json.loads((tmp_path / "b" / "prune.json").read_text())
    assert report["external"]["builder"] == builder and len(report["external"]["module_sha256"]) == 64


_BUILT: dict = {}


def _builder():
    return models.build("resnet56", _BUILT["cfg"])


def _vgg(model):
    return models.build("vgg16")


def _three(model):
    return 3


CASES = [
    ("not-an-import-path", ["--function", "no_colon_here"], r"'no_colon_here' is not an import path", r"package\.module:function"),
    ("does-not-import", ["--function", "no_such_package.mod:prune"], r"'no_such_package\.mod:prune' does not import \(ModuleNotFoundError", r"install its package or fix the path"),
    ("no-such-function", ["--function", "test_external:nothing"], r"module test_external has no nothing", r"check the name after the colon"),
    ("returns-no-module", ["--function", "test_external:_three"], r"returned a int, not a torch\.nn\.Module", r"return the pruned model"),
    ("returns-another-arch", ["--function", "test_external:_vgg"], r"has no layer1\.0\.bn1\.weight, which resnet56 has; it is not a pruned resnet56", r"pass --pruned-module with --reference"),
    ("module-file-is-text", ["--pruned-module", "{text}"], r"pruned module \S*notes\.pt does not load", r"save it with torch\.save\(model\)"),
    ("module-file-is-a-tensor", ["--pruned-module", "{tensor}"], r"holds a Tensor, not a torch\.nn\.Module", r"save the module itself"),
    ("both-function-and-method", ["--function", HALF, "--method", "l1"], r"drop --variant and --ratio, and name no other --method", r"drop"),
    ("masked-but-fewer-channels", ["--method", "externalmasked", "--function", "test_external:_half_inner"], r"has fewer channels than resnet56", r"prune it with method external"),
    ("masked-without-zeros", ["--method", "externalmasked", "--function", "test_external:_same"], r"has no zero conv weight and no torch\.nn\.utils\.prune mask", r"zero the pruned weights"),
    ("masked-linear-layer", ["--method", "externalmasked", "--function", "test_external:_masked_fc"], r"masks fc\.weight, which is not a conv weight", r"remove that mask"),
    ("keywords-without-function", ["--method", "l1", "--setting", "A", "--with", "macs=0.5"], r"--with goes with --function", r"--builder and --reference with --pruned-module"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_external_input_is_one_line_and_writes_nothing(case, base, tmp_path, capfd, caplog):
    name, args, names, hint = case
    (tmp_path / "notes.pt").write_text("my notes\n")
    torch.save(torch.zeros(3), tmp_path / "tensor.pt")
    args = [a.format(text=tmp_path / "notes.pt", tensor=tmp_path / "tensor.pt") for a in args]
    out = tmp_path / "out"
    rc, err, logged = run_failing(main, _prune(base, out, *args), name, capfd, caplog)
    check_error_line(rc, err, type("Case", (), {"id": name, "names": names, "hint": hint}), logged)
    assert not out.exists() or not any(out.iterdir())


def _same(model):
    return model


def _unstructured(model, amount=0.5):
    """'Other code' pruning unstructured: torch.nn.utils.prune over every conv (its buffers kept)."""
    from torch.nn.utils import prune as torch_prune

    convs = [(m, "weight") for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    torch_prune.global_unstructured(convs, pruning_method=torch_prune.L1Unstructured, amount=amount)
    return model


def _masked_fc(model):
    from torch.nn.utils import prune as torch_prune

    torch_prune.l1_unstructured(_unstructured(model).fc, "weight", amount=0.5)
    return model


def test_a_dense_masked_module_reads_as_a_masked_model_from_its_buffers_or_its_zeros(base, tmp_path, tiny_prepared):
    """torch.nn.utils.prune's buffers (a function's result) and plain zeros (a saved module whose
    masks were made permanent) give the same masked file, which trains with its zeros kept."""
    from torch.nn.utils import prune as torch_prune

    from prunebench.models import masks

    main(_prune(base, tmp_path / "a", "--method", "externalmasked", "--function", "test_external:_unstructured", "--setting", "u50"))
    module = _unstructured(load_model(base)[0])
    for m in module.modules():
        if hasattr(m, "weight_mask"):
            torch_prune.remove(m, "weight")
    torch.save(module, tmp_path / "zeros.pt")
    main(_prune(base, tmp_path / "b", "--method", "externalmasked", "--pruned-module", str(tmp_path / "zeros.pt"), "--setting", "u50"))
    a, b = load_model(tmp_path / "a" / "pruned.pt")[0], load_model(tmp_path / "b" / "pruned.pt")[0]
    found = masks.masks_of(a)
    assert found.keys() == masks.conv_weights(a).keys() and all(torch.equal(found[k], v) for k, v in masks.masks_of(b).items())
    report = json.loads((tmp_path / "a" / "prune.json").read_text())
    assert report["method"] == "externalmasked" and report["unit"] == "conv weights"
    assert abs(report["mask_checks"]["sparsity_after"] - 0.5) < 1e-3 and report["cfg_after"] == report["cfg_before"]
    train = ["--data", str(tiny_prepared), "--epochs", "1", "--lr", "0.01", "--batch-size", "32", "--device", "cpu", "--train-subset", "32", "--test-subset", "8"]
    for arm in ("finetune", "scratch-e"):
        run = tmp_path / arm
        main(["train", "--arch", "resnet56", "--arm", arm, "--method", "externalmasked", "--setting", "u50", "--init", str(tmp_path / "a" / "pruned.pt"), *train,
              "--model-out", str(run / "model.pt"), "--metrics-out", str(run / "metrics.json"), "--eval-out", str(run / "eval.json")])  # fmt: skip
        trained = load_model(run / "model.pt")[0]
        assert all(torch.equal(found[k], v) for k, v in masks.masks_of(trained).items()) and masks.sparsity(trained)["pruned_nonzero"] == 0, arm


def test_an_installed_package_registers_a_method_through_the_entry_point_group(base, tmp_path, monkeypatch):
    """An installed package's entry point in ``prunebench.methods`` adds its method without
    touching this repository; the prune job fits what its function returns to the arch."""
    mine = methods.Method(name="halfinner", summary="half of every inner conv", base="plain", learned=True,
                          check_setting=lambda arch, s: None, prune=lambda *a: None, prune_module=lambda model, arch, setting, seed: _half_inner(model))  # fmt: skip
    point = EntryPoint(name="halfinner", value="test_external:MINE", group="prunebench.methods")
    monkeypatch.setattr("importlib.metadata.entry_points", lambda group=None: [point] if group == "prunebench.methods" else [])
    monkeypatch.setitem(globals(), "MINE", mine)
    monkeypatch.setattr(methods, "_INSTALLED", [])
    monkeypatch.setattr(methods, "_REGISTRY", dict(methods._REGISTRY))
    assert "halfinner" in methods.names()
    main(_prune(base, tmp_path / "h", "--method", "halfinner", "--setting", "1"))
    report = json.loads((tmp_path / "h" / "prune.json").read_text())
    assert report["method"] == "halfinner" and report["external"]["function"].endswith("<lambda>")
    assert report["cfg_after"] == [w // 2 for w in models.default_cfg("resnet56")]


def test_the_example_study_builds_its_table_with_the_verdicts(tmp_path):
    """examples/torch_pruning.yaml as a user runs it: `snakemake torch_pruning --configfile ...`
    at smoke scale on a tiny image tree; the table has the fine-tuned and scratch arms and the
    paired verdicts of every study table."""
    pytest.importorskip("torch_pruning", reason="the optional dependency: pip install 'prunebench[torch-pruning]'")
    import pandas as pd
    from conftest import run_example_study

    results = run_example_study(tmp_path, "torch_pruning", "torch_pruning.yaml")
    table = pd.read_csv(results / "tables" / "torch_pruning.csv")
    row = table.iloc[0]
    assert row["model"] == "ResNet-56 (tp0.5)" and row["macs_reduction_pct"] >= 50
    # every arm trained and entered the row (or was left out of the mean for a failed sanity check,
    # as a one-epoch run on random images may be: its loss need not fall)
    assert all(row[f"{arm}_n"] + row[f"{arm}_failed"] == 1 for arm in ("unpruned", "finetune", "scratch-e", "scratch-b"))
    assert {"scratch-e_vs_ft_verdict", "scratch-b_vs_ft_verdict"} <= set(table.columns)
    report = json.loads(next(p for p in (results / "runs").rglob("prune.json") if "tp0.5" in str(p)).read_text())
    assert report["external"]["function"] == HALF


def _config_with(study: dict, other: dict | None = None) -> dict:
    import yaml

    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["studies"] = {"mine": study, **({"theirs": other} if other else {})}
    return config


STUDY = {"method": "external", "arms": ["finetune", "scratch-e", "scratch-b"], "external": {"tp0.5": {"function": HALF, "with": {"macs": 0.5}}},
         "models": {"cifar10": {"resnet56": ["tp0.5"]}}}  # fmt: skip
CONFIG_CASES = [
    ("setting-without-entry", {**STUDY, "models": {"cifar10": {"resnet56": ["tp0.7"]}}}, None, r"setting 'tp0\.7' of method external \(cifar10 resnet56\) has no entry under studies\.mine\.external"),
    ("one-setting-two-meanings", STUDY, {**STUDY, "external": {"tp0.5": {"function": HALF, "with": {"macs": 0.7}}}}, r"studies\.theirs\.external\.tp0\.5 differs from studies\.mine\.external\.tp0\.5"),
    ("module-file-missing", {**STUDY, "external": {"tp0.5": {"module": "nowhere/seed{seed}.pt"}}}, None, r"nowhere/seed1\.pt \(seed 1\) is not a file"),
    ("with-on-a-module", {**STUDY, "external": {"tp0.5": {"module": "config.yaml", "with": {"macs": 0.5}}}}, None, r"with gives a function's keyword arguments"),
    ("function-and-module", {**STUDY, "external": {"tp0.5": {"function": HALF, "module": "config.yaml"}}}, None, r"studies\.mine\.external\.tp0\.5 = .* is invalid"),
    ("not-an-import-path", {**STUDY, "external": {"tp0.5": {"function": "a/b.py"}}}, None, r"studies\.mine\.external\.tp0\.5\.function = 'a/b\.py' is invalid"),
    ("masked-setting-without-entry", {**STUDY, "method": "externalmasked", "models": {"cifar10": {"resnet56": ["u0.5"]}}}, None, r"setting 'u0\.5' of method externalmasked \(cifar10 resnet56\) has no entry"),
    ("reference-on-a-function", {**STUDY, "external": {"tp0.5": {"function": HALF, "reference": "examples.foreign_network:full"}}}, None, r"reference names the full network a module file was pruned from; it goes with module"),
    ("entries-without-the-method", {**STUDY, "method": "l1", "models": {"cifar10": {"resnet56": ["A"]}}}, None, r"does not use method external"),
]


@pytest.mark.parametrize("case", CONFIG_CASES, ids=[c[0] for c in CONFIG_CASES])
def test_a_bad_external_study_is_refused_when_the_dag_is_built(case, monkeypatch):
    from prunebench.core.errors import UserError
    from prunebench.studies.config import check

    monkeypatch.chdir(REPO)
    name, study, other, message = case
    with pytest.raises(UserError, match=message) as e:
        check(_config_with(study, other), REPO / "workflow" / "schemas" / "config.schema.yaml")
    assert "\n" not in str(e.value)


def test_the_example_study_passes_the_config_check(monkeypatch):
    import yaml

    from prunebench.studies.config import check

    monkeypatch.chdir(REPO)
    studies = yaml.safe_load((REPO / "examples" / "torch_pruning.yaml").read_text())["studies"]
    check(_config_with(studies["torch_pruning"], studies["torch_unstructured"]), REPO / "workflow" / "schemas" / "config.schema.yaml")


def test_a_method_name_that_cannot_name_a_run_folder_is_refused():
    with pytest.raises(ValueError, match=r"lower-case letters and digits only"):
        methods.Method(name="my-method", summary="", base="plain", learned=True, check_setting=lambda a, s: None, prune=lambda *a: None)


def test_a_module_entry_gives_the_prune_command_its_file_builder_and_reference():
    from prunebench.studies.external import prune_args

    spec = {"module": "pruned/seed{seed}.pt", "builder": "my.nets:small", "reference": "my.nets:full"}
    assert prune_args(spec, 2) == "--pruned-module pruned/seed2.pt --builder my.nets:small --reference my.nets:full"
