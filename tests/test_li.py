"""Li et al.'s analyses: Table 2 against the paper, the activation criteria and their statistics,
greedy ranking, the one-layer / consecutive / layer-by-layer methods, the curve job and the
report of the ``li`` study."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from prunebench import methods, models
from prunebench.analysis.curves import curve_run
from prunebench.commands.cli import main
from prunebench.core.errors import UserError
from prunebench.methods.li import steps
from prunebench.pruning import ACTIVATION_CRITERIA, masked_copy, prune, select_filters, variant_cfg
from prunebench.pruning.activations import feature_map_stats
from prunebench.pruning.criteria import keep_top
from prunebench.report import li_table2
from prunebench.studies.analyses import curves, retrained
from prunebench.training.checkpoints import load_model, save_model
from prunebench.training.jobs import prune_run
from prunebench.training.runs import ArmProtocol, RunSpec, train_run

CPU = torch.device("cpu")
CONFIG = Path(__file__).resolve().parents[1] / "config.yaml"


def config() -> dict:
    """The repository's config.yaml (the li study as shipped)."""
    return yaml.safe_load(CONFIG.read_text())


# --------------------------------------------------------------------------- Table 2
def test_table2_of_vgg16_a_matches_the_paper_row_by_row():
    df = li_table2.build({"vgg16": ["A"]})
    assert list(df["layer"]) == [f"conv{i}" for i in range(1, 14)] + ["fc1", "fc2", "total"]
    assert (df["matches"] == "yes").all(), df[df["matches"] != "yes"]
    total = df[df["layer"] == "total"].iloc[0]
    assert total["macs"] == 313_463_808 and total["macs_reduction_pct"] == 34.2
    conv9 = df[df["layer"] == "conv9"].iloc[0]
    assert (conv9["input"], conv9["maps"], conv9["maps_after"], conv9["macs_reduction_pct"]) == ("4x4", 512, 256, 75.0)


@pytest.mark.parametrize("arch,variant,reduction", [("resnet56", "A", 10.4), ("resnet56", "B", 27.6), ("resnet110", "A", 15.9), ("resnet110", "B", 38.7)])
def test_table2_totals_are_li_table1_flop_reductions(arch, variant, reduction):
    """Li Table 1 prints 38.6 for ResNet-110-B; the width lists give 38.7 (PROTOCOLS section 8)."""
    df = li_table2.layer_table(arch, variant)
    assert df[df["layer"] == "total"].iloc[0]["macs_reduction_pct"] == reduction
    assert list(df["layer"]) == [f"conv{i}" for i in range(1, len(df) - 1)] + ["fc1", "total"]
    assert df["input"].iloc[0] == "32x32" and df["input"].iloc[-3] == "8x8"


def test_table2_flags_a_row_that_differs_from_the_paper():
    df = li_table2.layer_table("vgg16", "A")
    df.loc[df["layer"] == "conv2", "macs"] *= 2
    checked = li_table2.with_paper(df)
    assert list(checked.loc[checked["matches"] == "no", "layer"]) == ["conv2"]


def test_describe_per_layer_prints_table2(capsys):
    main(["describe", "--arch", "vgg16", "--variant", "A", "--per-layer"])
    out = capsys.readouterr().out
    assert "| conv13 | 2x2 | 512 | 9.44e6 | 2.36e6 | 256 | 75.0% | 9.4e6, 2.4e6, 256, 75 | yes |" in out
    assert "| no |" not in out
    main(["describe", "--arch", "resnet56", "--method", "uniform", "--setting", "0.5", "--per-layer"])
    assert "| total |" in capsys.readouterr().out


# --------------------------------------------------------------------------- criteria
def _random_model(arch: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = models.build(arch).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 2)
                m.weight.normal_(1, 0.2)
    return model


def test_feature_map_statistics_match_a_direct_computation():
    model = _random_model("resnet20")
    x = torch.randn(10, 3, 32, 32)
    seen = []
    handle = model.layer2.get_submodule("0").conv1.register_forward_hook(lambda m, i, o: seen.append(o.detach().double()))
    stats = feature_map_stats(model, [(x[:4], None), (x[4:], None)], ["layer2.0.conv1"])["layer2.0.conv1"]
    handle.remove()
    f = torch.cat(seen).flatten(2)  # (10 images, channels, H*W)
    l2 = f.norm(dim=2)
    expected = {"mean_mean": f.mean(2).mean(0), "mean_std": f.std(2, correction=0).mean(0), "mean_l1": f.abs().sum(2).mean(0), "mean_l2": l2.mean(0), "var_l2": l2.var(0, correction=0)}
    assert set(stats) == set(ACTIVATION_CRITERIA)
    for name, want in expected.items():
        torch.testing.assert_close(stats[name].double(), want, rtol=1e-5, atol=1e-6, msg=name)


def test_activation_criteria_rank_by_their_statistic_and_need_the_data():
    model = _random_model("resnet20")
    ratios = {"layer1.0.conv1": 0.5}
    with pytest.raises(UserError, match="feature maps over the training set; pass the data"):
        select_filters(model, ratios, "mean_std")
    stats = feature_map_stats(model, [(torch.randn(6, 3, 32, 32), None)], ["layer1.0.conv1"])
    keep = select_filters(model, ratios, "var_l2", activations=stats)
    assert keep["layer1.0.conv1"].tolist() == keep_top(stats["layer1.0.conv1"]["var_l2"], 8).tolist()


def test_greedy_ranks_a_layer_without_the_kernels_of_removed_maps():
    model = _random_model("vgg16")
    g1, g2 = model.channel_groups()[:2]
    ratios = {g1.name: 0.5, g2.name: 0.5}
    w2 = dict(model.named_parameters())[g2.weight_key].detach()
    independent = select_filters(model, ratios, "l1")
    greedy = select_filters(model, ratios, "l1", strategy="greedy")
    assert greedy[g1.name].tolist() == independent[g1.name].tolist()  # the first layer has nothing removed before it
    assert independent[g2.name].tolist() == keep_top(w2.abs().flatten(1).sum(1), 32).tolist()
    left = w2.index_select(1, independent[g1.name])
    assert greedy[g2.name].tolist() == keep_top(left.abs().flatten(1).sum(1), 32).tolist()
    with pytest.raises(UserError, match="unknown strategy 'lazy'"):
        select_filters(model, ratios, "l1", strategy="lazy")


# --------------------------------------------------------------------------- methods
@pytest.mark.parametrize(
    "method,setting,message",
    [
        ("layer", "8_0.5_l3", r"unknown criterion 'l3'"),
        ("layer", "14_0.5_l1", r"no prunable layer 14; its layers are 1, 2"),
        ("layer", "8_1.5_l1", r"not a fraction in \(0, 1\)"),
        ("layer", "8x0.5", r"LAYER_RATIO_CRITERION"),
        ("consecutive", "0.5_lazy", r"RATIO_STRATEGY"),
        ("layerwise", "A_8", r"prunes 7 layers one at a time; step 8 must be 1 to 7"),
        ("layerwise", "C_1", r"unknown pruned variant vgg16-C"),
    ],
)
def test_analysis_settings_are_checked(method, setting, message):
    with pytest.raises(UserError, match=message):
        methods.get(method).check_setting("vgg16", setting)


def test_one_layer_and_consecutive_cfgs_are_the_pruned_widths():
    model = _random_model("vgg16")
    for method, setting in (("layer", "8_0.5_l1"), ("layer", "3_0.9_random"), ("consecutive", "0.3_greedy")):
        m = methods.get(method)
        pruned = m.prune(model, "vgg16", setting, 0)
        assert list(prune(model, "vgg16", pruned.keep, 10).cfg) == m.scratch_cfg("vgg16", setting), setting
    assert methods.get("layer").data_for("8_0.5_mean_std") and not methods.get("layer").data_for("8_0.5_l1")


def test_layer_by_layer_reaches_the_variant_in_one_step_per_pruned_layer():
    m = methods.get("layerwise")
    assert [name for name, _ in steps("vgg16", "A")] == [f"features.{i}" for i in (0, 24, 27, 30, 34, 37, 40)]
    assert m.scratch_cfg("vgg16", "A_7") == variant_cfg("vgg16", "A")
    assert (m.previous("A_3"), m.previous("A_1")) == ("A_2", None)
    assert m.source("A_3") == ("A_2", "finetune") and m.source("A_1") is None


@pytest.fixture(scope="module")
def trained(tiny_prepared, tmp_path_factory):
    """A resnet56 base trained one epoch on 32 tiny images."""
    d = tmp_path_factory.mktemp("li")
    train_run(RunSpec("resnet56", "base", 2), str(tiny_prepared), ArmProtocol(1, 0.1), {"batch_size": 16}, CPU, str(d / "base.pt"), str(d / "base.json"), train_subset=32, test_subset=16)
    return d


def test_layer_by_layer_prunes_the_last_step_and_nothing_else(trained, tiny_prepared):
    d = trained
    prune_run(str(d / "base.pt"), "layerwise", "A_1", 1, str(d / "s1.pt"), str(d / "s1.json"))
    step1, meta = load_model(d / "s1.pt")
    save_model(d / "s1-ft.pt", step1, "resnet56", 10, options=meta["options"], run={**meta["run"], "arm": "finetune"})  # step 1, as if fine-tuned
    prune_run(str(d / "s1-ft.pt"), "layerwise", "A_2", 1, str(d / "s2.pt"), str(d / "s2.json"))
    step2, _ = load_model(d / "s2.pt")
    assert list(step2.cfg) == methods.get("layerwise").scratch_cfg("resnet56", "A_2")
    name = steps("resnet56", "A")[1][0]
    w = dict(step1.named_parameters())[f"{name}.weight"].detach()
    assert json.loads((d / "s2.json").read_text())["layers"][1]["after"] == 14
    kept = torch.load(d / "s2.pt", weights_only=False)["kept"][name]
    assert kept == keep_top(w.abs().flatten(1).sum(1), 14).tolist()
    with pytest.raises(UserError, match="already pruned"):
        prune_run(str(d / "s1.pt"), "l1", "A", 1, str(d / "x.pt"), str(d / "x.json"))


def test_an_activation_criterion_prunes_from_the_training_images(trained, tiny_prepared):
    d = trained
    with pytest.raises(UserError, match="pass --data"):
        prune_run(str(d / "base.pt"), "layer", "2_0.5_mean_l2", 1, str(d / "a.pt"), str(d / "a.json"))
    prune_run(str(d / "base.pt"), "layer", "2_0.5_mean_l2", 1, str(d / "a.pt"), str(d / "a.json"), data_path=str(tiny_prepared), train_subset=16)
    assert load_model(d / "a.pt")[0].cfg[0] == 8


# --------------------------------------------------------------------------- curves
def test_a_curve_job_evaluates_physically_pruned_copies(trained, tiny_prepared, tmp_path):
    d = trained
    out = tmp_path / "curve.json"
    result = curve_run(str(d / "base.pt"), str(tiny_prepared), "layer", "mean_std", (2, 54), (0.5, 0.9), 0, 32, 16, CPU, str(out))
    assert [(p["layer"], p["ratio"]) for p in result["points"]] == [(2, 0.5), (2, 0.9), (54, 0.5), (54, 0.9)]
    assert result["sensitive"] == [20, 38, 54] and json.loads(out.read_text())["points"][1]["kept"] == {"2": 1}
    norms = result["norms"][2]
    assert norms[0] == 1.0 and norms == sorted(norms, reverse=True)
    # a point equals the masked full model, evaluated the same way
    model, _ = load_model(d / "base.pt")
    model.eval()
    cons = curve_run(str(d / "base.pt"), str(tiny_prepared), "consecutive", "greedy", (), (0.5,), 0, 32, 16, CPU, str(tmp_path / "c.json"))
    keep = select_filters(model, {g.name: 0.5 for g in model.channel_groups()}, "l1", strategy="greedy")
    x = torch.randn(4, 3, 32, 32)
    torch.testing.assert_close(prune(model, "resnet56", keep, 10).eval()(x), masked_copy(model, keep).eval()(x), rtol=1e-4, atol=1e-5)
    assert 0 <= cons["points"][0]["accuracy"] <= 100 and cons["norms"] == {}


def test_a_curve_refuses_an_unknown_layer_or_criterion(trained, tiny_prepared, tmp_path):
    with pytest.raises(UserError, match="no prunable layer 3"):
        curve_run(str(trained / "base.pt"), str(tiny_prepared), "layer", "l1", (3,), (0.5,), 0, None, 8, CPU, str(tmp_path / "x.json"))
    with pytest.raises(UserError, match="take one of independent, greedy"):
        curve_run(str(trained / "base.pt"), str(tiny_prepared), "consecutive", "l1", (), (0.5,), 0, None, 8, CPU, str(tmp_path / "x.json"))
    assert not (tmp_path / "x.json").exists()


# --------------------------------------------------------------------------- the study
def test_smoke_thins_layers_ratios_and_steps():
    spec = config()["studies"]["li"]["analyses"]
    smoke = retrained(spec, 2)
    assert ("cifar10", "vgg16", "layer", "13_0.9_l1") in smoke and ("cifar10", "vgg16", "layer", "8_0.5_l1") not in smoke
    assert [s for _, _, m, s in smoke if m == "layerwise"] == ["A_1", "A_2"]
    assert len(retrained(spec)) == 9 * 13 + 2 * 9 + 1 + 7
    assert {c.layers for c in curves(spec, 2) if c.arch == "resnet110"} == {(2, 108)}


def test_retraining_length_is_the_protocol_fine_tune_when_steps_chain():
    from prunebench.studies.study import check

    cfg = config()
    cfg["studies"]["li"]["finetune_epochs"] = 20
    with pytest.raises(UserError, match="layerwise prunes each step's fine-tuned run"):
        check(cfg)
    del cfg["studies"]["li"]["analyses"]["iterative"]
    check(cfg)


def _curve(arch, name, points, mode="layer", standin=False):
    return {"run": {"dataset": "cifar10", "arch": arch, "seed": 1}, "arch": arch, "mode": mode, "name": name, "base_accuracy": 93.0, "points": points, "norms": {"1": [1.0, 0.5]} if mode == "layer" else {}, "sensitive": [20] if arch == "resnet56" else [], "standin": standin}


def _eval(arch, method, setting, acc, epochs=40, seed=1, params=1000, macs=5000):
    return {"run": {"dataset": "cifar10", "arch": arch, "method": method, "setting": setting, "arm": "finetune" if method else "base", "seed": seed}, "accuracy": {"best": acc, "final": acc - 1}, "params": params, "macs": macs, "macs_full": 9000, "params_full": 2000, "epochs": epochs}


def test_the_report_builds_every_table_and_figure(tmp_path):
    files = []
    for i, c in enumerate([
        _curve("vgg16", "l1", [{"layer": 1, "ratio": 0.5, "accuracy": 90.0}, {"layer": 13, "ratio": 0.5, "accuracy": 92.0}]),
        _curve("vgg16", "random", [{"layer": 1, "ratio": 0.5, "accuracy": 80.0}]),
        _curve("resnet56", "l1", [{"layer": 20, "ratio": 0.5, "accuracy": 70.0}]),
        _curve("vgg16", "greedy", [{"layer": None, "ratio": 0.5, "accuracy": 60.0}], mode="consecutive"),
    ]):  # fmt: skip
        (tmp_path / f"c{i}").mkdir()
        files.append(tmp_path / f"c{i}" / "curve.json")
        files[-1].write_text(json.dumps(c))
    evals = [_eval("vgg16", None, None, 93.5), _eval("vgg16", "layer", "1_0.5_l1", 93.0), _eval("vgg16", "consecutive", "0.5_greedy", 91.0), _eval("vgg16", "l1", "A", 93.2, params=500), _eval("vgg16", "layerwise", "A_1", 92.0), _eval("vgg16", "layerwise", "A_2", 92.5, params=800)]
    for i, ev in enumerate(evals):
        files.append(tmp_path / f"e{i}.json")
        files[-1].write_text(json.dumps(ev))
    out = {k: tmp_path / f"out-{k}" for k in ("curves.csv", "iterative.csv", "iterative.md", "norms.png", "sensitivity.png", "criteria.png", "consecutive.png")}
    main(["li-report", *map(str, files), "--curves-csv", str(out["curves.csv"]), "--iterative-csv", str(out["iterative.csv"]), "--iterative-md", str(out["iterative.md"]), "--norms", str(out["norms.png"]), "--sensitivity", str(out["sensitivity.png"]), "--criteria", str(out["criteria.png"]), "--consecutive", str(out["consecutive.png"])])
    table = pd.read_csv(out["curves.csv"])
    assert list(table["model"].unique()) == ["vgg16", "resnet56"]  # the study's order
    retrained_l1 = table[(table["name"] == "l1") & table["retrained"]]
    assert list(retrained_l1["accuracy"]) == [93.0] and list(retrained_l1["base_accuracy"]) == [93.5]
    assert table[table["model"] == "resnet56"]["sensitive"].all()
    md = out["iterative.md"].read_text()
    assert "| one-shot | 1 | 40 |" in md and "| layer by layer | 2 of 7 | 80 |" in md and "not yet the one-shot one" in md
    for k in ("norms.png", "sensitivity.png", "criteria.png", "consecutive.png"):
        assert out[k].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out[k].stat().st_size > 10_000, k


def test_a_study_of_analyses_has_no_method_and_known_names():
    from prunebench.studies.study import check

    for path, value, message in (
        (("sensitivity", "vgg16"), ["l1", "mean_max"], r"studies\.li\.analyses\.sensitivity\.vgg16: unknown 'mean_max'; choose one of l1, l2"),
        (("consecutive", "vgg16"), ["lazy"], r"consecutive\.vgg16: unknown 'lazy'; choose one of independent, greedy"),
        (("sensitivity", "densenet40"), ["l1"], r"sensitivity\.densenet40: densenet40 has no filter groups"),
        (("iterative", "vgg19"), ["A"], r"iterative: unknown 'vgg19'; choose one of vgg16, resnet56, resnet110"),
    ):
        cfg = config()
        cfg["studies"]["li"]["analyses"][path[0]] = {path[1]: value}
        with pytest.raises(UserError, match=message):
            check(cfg)
    cfg = config()
    cfg["studies"]["li"]["method"] = "l1"
    with pytest.raises(UserError, match="lists its models under analyses; drop method"):
        check(cfg)
    cfg = copy.deepcopy(config())
    del cfg["studies"]["li"]["report"]
    with pytest.raises(UserError, match="analyses go with report: li"):
        check(cfg)


# --------------------------------------------------------------------------- one-shot vs layer by layer: statistics
def _iterative(oneshot, layerwise, steps_total=2, failed=None):
    """VGG-16-A one-shot at ``oneshot`` per seed, layer by layer (2 steps) at ``layerwise``."""
    evals = []
    for seed, (a, b) in enumerate(zip(oneshot, layerwise), start=1):
        evals.append(_eval("vgg16", "l1", "A", a, seed=seed) | {"model": f"r/l1-A/finetune/seed{seed}/model.pt"})
        for step, acc in ((1, 0.0), (2, b)):
            evals.append(_eval("vgg16", "layerwise", f"A_{step}", acc, seed=seed) | {"model": f"r/layerwise-A_{step}/finetune/seed{seed}/model.pt"})
    for e in evals:
        key = (e["run"]["setting"], e["run"]["seed"])
        if key in (failed or {}):
            e["checks_failed"] = failed[key]
    from prunebench.report import li

    return li.iterative_table(evals, {("vgg16", "A"): steps_total})


@pytest.mark.parametrize(
    "oneshot, layerwise, steps_total, expected",
    [
        ((90.0,), (91.0,), 2, "untested (1 seed; a test needs 2): ours +1.00, Li §3.4: prune once and retrain suffices"),
        ((90.0, 90.0, 90.0), (91.0, 92.0, 93.0), 2, "reproduced: on par; ours +2.00 (p=0.0742, 3 seeds); Li §3.4"),
        ((90.0, 90.0, 90.0), (89.0, 88.9, 89.1), 2, "reproduced: one-shot better"),
        ((90.0, 90.0, 90.0), (91.0, 91.1, 90.9), 2, "not reproduced: layer by layer better; ours +1.00 (p=0.00"),
        ((90.0, 90.0), (91.0, 91.1), 7, "untested (layer by layer stopped at step 2 of 7): ours +1.05"),
    ],
)
def test_layer_by_layer_is_tested_against_one_shot(oneshot, layerwise, steps_total, expected):
    df = _iterative(oneshot, layerwise, steps_total)
    oneshot_row, layered = df[df["schedule"] == "one-shot"].iloc[0], df[df["schedule"] == "layer by layer"].iloc[0]
    assert layered["vs_oneshot_verdict"].startswith(expected)
    assert oneshot_row["vs_oneshot_verdict"] == "" and pd.isna(oneshot_row["vs_oneshot_p"])
    assert layered["runs"].split(";") == [f"r/layerwise-A_2/finetune/seed{s}/model.pt" for s in range(1, len(oneshot) + 1)]


def test_one_shot_vs_layer_by_layer_numbers_and_failed_runs():
    df = _iterative((90.0, 90.0, 90.0, 90.0), (91.0, 92.0, 93.0, 99.0), failed={("A_2", 4): ["loss_decreased"]})
    layered = df[df["schedule"] == "layer by layer"].iloc[0]
    half = 4.302652729911275 / math.sqrt(3)  # t(0.975, 2 df) x sd / sqrt(n), sd = 1
    assert (layered["n"], layered["accuracy"], layered["std"]) == (3, 92.0, 1.0)
    assert (layered["ci95_low"], layered["ci95_high"]) == pytest.approx((92 - half, 92 + half))
    assert layered["vs_oneshot_pairs"] == 3 and layered["vs_oneshot_diff"] == 2.0
    assert layered["vs_oneshot_t"] == pytest.approx(2 * math.sqrt(3)) and layered["vs_oneshot_p"] == pytest.approx(0.07417990022744858)
    assert (layered["vs_oneshot_ci95_low"], layered["vs_oneshot_ci95_high"]) == pytest.approx((2 - half, 2 + half))
    assert layered["failed_runs"] == 1 and layered["failed_checks"] == "layer by layer seed 4: loss_decreased" and "seed4" not in layered["runs"]
    oneshot = df[df["schedule"] == "one-shot"].iloc[0]
    assert oneshot["failed_runs"] == 0 and oneshot["std"] == 0.0 and oneshot["ci95_low"] == oneshot["ci95_high"] == 90.0
    from prunebench.report import li

    md = li.iterative_markdown(df, "t")
    assert "- VGG-16-A layer by layer: reproduced: on par; ours +2.00 (p=0.0742, 3 seeds)" in md
    assert "1 run left out for a failed check (layer by layer seed 4: loss_decreased)" in md
