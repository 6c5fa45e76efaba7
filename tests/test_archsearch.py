"""Pruning as architecture search: architecture sources derived from other rows' prune reports
(uniform at matched parameters, guided and transferred stage patterns, random sparsity), their
pruned files trained from scratch, the kernel patterns, and the archsearch table and figure."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from prunebench import methods, models
from prunebench.core.errors import UserError
from prunebench.core.io import read_json
from prunebench.methods.derived import pattern_cfg, stage_fractions
from prunebench.models import masks
from prunebench.training.checkpoints import load_model, save_model
from prunebench.training.derivation import derive_run
from prunebench.training.jobs import prune_run
from prunebench.training.runs import ArmProtocol, RunSpec, train_run

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """prune.json (and pruned files) of slimming at 0.6 on two VGG-16 seeds and magnitude at 0.8 on one."""
    from conftest import _randomise_bn

    d = tmp_path_factory.mktemp("archsearch")
    out = {}
    for seed in (1, 2):
        torch.manual_seed(seed)
        model = _randomise_bn(models.build("vgg16"), seed)
        save_model(d / f"base{seed}.pt", model, "vgg16", 10, run={"dataset": "cifar10", "arch": "vgg16", "arm": "base", "seed": seed, "scale": "smoke"})
        prune_run(str(d / f"base{seed}.pt"), "slimming", "0.6", seed, str(d / f"slim{seed}.pt"), str(d / f"slim{seed}.json"))
        out[f"slim{seed}"] = str(d / f"slim{seed}.json")
    prune_run(str(d / "base1.pt"), "magnitude", "0.8", 1, str(d / "mag.pt"), str(d / "mag.json"))
    out["mag"] = str(d / "mag.json")
    return d, out


def _derive(d, method, setting, srcs, dataset="cifar10", arch="vgg16", seed=1):
    out, rep = d / f"{method}-{setting}-{seed}.pt", d / f"{method}-{setting}-{seed}.json"
    report = derive_run(method, setting, dataset, arch, seed, {}, srcs, str(out), str(rep))
    return report, out


def test_matched_is_uniform_at_the_source_parameter_count(sources, tmp_path):
    d, s = sources
    report, out = _derive(tmp_path, "matched", "slimming_0.6", [s["slim1"]])
    target = read_json(s["slim1"])["params_after"]
    assert report["target_params"] == target and abs(report["params_after"] - target) / target < 0.01
    model, meta = load_model(out)
    widths = [g.width for g in model.channel_groups()]
    full = [g.width for g in models.build("vgg16").channel_groups()]
    fractions = {round(w / f, 2) for w, f in zip(widths, full)}
    assert max(fractions) - min(fractions) <= 0.02  # one fraction in every layer
    assert meta["run"]["method"] == "matched" and report["source"]["method"] == "slimming"


def test_guided_sets_every_stage_to_its_average_over_seeds(sources, tmp_path):
    d, s = sources
    reports = [read_json(s["slim1"]), read_json(s["slim2"])]
    fractions = stage_fractions(reports)
    report, out = _derive(tmp_path, "guided", "slimming_0.6", [s["slim1"], s["slim2"]])
    model, _ = load_model(out)
    for g in model.channel_groups():
        full = {x.name: x.width for x in models.build("vgg16").channel_groups()}[g.name]
        assert g.width == max(1, round(fractions[g.stage] * full))
        kept = [layer["after"] / layer["before"] for r in reports for layer in r["layers"] if layer["stage"] == g.stage]
        assert min(kept) - 1e-9 <= fractions[g.stage] <= max(kept) + 1e-9
    assert report["source_seeds"] == 2 and len({g.width for g in model.channel_groups() if g.stage == 4}) == 1


def test_transferred_applies_the_stage_pattern_to_another_network(sources, tmp_path):
    d, s = sources
    report, out = _derive(tmp_path, "transferred", "cifar10_vgg16_slimming_0.6", [s["slim1"], s["slim2"]], dataset="cifar100", arch="vgg19")
    model, meta = load_model(out)
    assert meta["num_classes"] == 100 and meta["arch"] == "vgg19"
    fractions = stage_fractions([read_json(s["slim1"]), read_json(s["slim2"])])
    assert list(model.cfg) == pattern_cfg("vgg19", fractions)
    with pytest.raises(UserError, match="not DATASET_ARCH_METHOD_SETTING"):
        methods.get("transferred").check_setting("vgg19", "vgg16_slimming_0.6")


def test_random_sparsity_matches_the_source_overall_and_per_stage(sources, tmp_path):
    d, s = sources
    rep = read_json(s["mag"])
    overall = 1 - sum(x["after"] for x in rep["layers"]) / sum(x["before"] for x in rep["layers"])
    report, out = _derive(tmp_path, "randomsparse", "magnitude_0.8", [s["mag"]])
    model, _ = load_model(out)
    for layer in report["layers"]:
        assert abs(1 - layer["after"] / layer["before"] - overall) < 1 / layer["before"] + 1e-9
    assert report["unit"] == "conv weights" and set(report["kernel_pattern"]) == {"0", "1", "2", "3", "4"}
    again, _ = _derive(tmp_path, "randomsparse", "magnitude_0.8", [s["mag"]], seed=1)
    assert again["layers"] == report["layers"]  # seeded
    magnitude = {x["layer"]: x for x in rep["layers"]}
    guided, _ = _derive(tmp_path, "guidedsparse", "magnitude_0.8", [s["mag"]])
    fractions = stage_fractions([rep])
    for layer in guided["layers"]:
        assert abs(layer["after"] / layer["before"] - fractions[layer["stage"]]) < 1 / layer["before"] + 1e-9
    assert any(abs(x["after"] - magnitude[x["layer"]]["after"]) > 10 for x in guided["layers"])  # not the magnitude masks


def test_derived_files_train_from_scratch(sources, tiny_prepared, tmp_path):
    d, s = sources
    _, matched = _derive(tmp_path, "matched", "slimming_0.6", [s["slim1"]])
    _, sparse = _derive(tmp_path, "randomsparse", "magnitude_0.8", [s["mag"]])
    for method, path in (("matched", matched), ("randomsparse", sparse)):
        spec = RunSpec("vgg16", "scratch-e", 1, method, path.stem.split("-")[1], init=str(path))
        m = train_run(spec, str(tiny_prepared), ArmProtocol(1, 0.1), {"batch_size": 16}, torch.device("cpu"), str(tmp_path / f"{method}.pt"), str(tmp_path / f"{method}.json"), train_subset=32, test_subset=16)
        assert m["params"] < m["params_full"]
        if method == "randomsparse":
            assert m["mask_checks"]["no_regrowth"]


def test_derive_refuses_the_wrong_sources(sources, tmp_path):
    d, s = sources
    with pytest.raises(UserError, match="not the source cifar10/vgg16/slimming/0.6"):
        _derive(tmp_path, "matched", "slimming_0.6", [s["mag"]])
    with pytest.raises(UserError, match="not an architecture source"):
        _derive(tmp_path, "magnitude", "0.5", [s["mag"]])
    with pytest.raises(UserError, match="must be a masked method"):
        _derive(tmp_path, "randomsparse", "slimming_0.6", [s["slim1"]])
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(UserError, match="is not a prune.json"):
        _derive(tmp_path, "matched", "slimming_0.6", [str(tmp_path / "bad.json")])
    assert not list(tmp_path.glob("matched-*.pt"))


def test_kernel_patterns_count_kept_positions():
    from prunebench.training.checks import kernel_patterns

    model = models.build("resnet20")
    found = {}
    for key, conv in masks.conv_weights(model).items():
        m = torch.zeros_like(conv.weight, dtype=torch.bool)
        if m.shape[2:] == (3, 3):
            m[:, :, 1, 1] = True
            m[:, :, 0, 0] = torch.arange(m.shape[0]).view(-1, 1) % 2 == 0
        found[key] = m
    patterns = kernel_patterns(model, found)
    assert set(patterns) == {"0", "1", "2"}
    grid = patterns["1"]["kept"]
    assert grid[1][1] == 1.0 and grid[0][0] == 0.5 and grid[2][2] == 0.0


# --------------------------------------------------------------------------- report
def ev(method, setting, arm, seed, best, params):
    return {"run": {"dataset": "cifar10", "arch": "vgg16", "method": method, "setting": setting, "arm": arm, "seed": seed, "scale": "smoke"},
            "accuracy": {"best": best, "final": best}, "macs": params * 20, "params": params, "macs_full": 313_000_000, "params_full": 15_000_000}


def test_archsearch_table_figure_and_kernels(sources, tmp_path):
    from prunebench.report.archsearch import build_archsearch_table, plot_archsearch, read_archsearch_table, to_markdown, write_archsearch_table
    from prunebench.report.kernels import kernel_table, plot_kernels

    evals = [ev(None, None, "base", s, 93.5, 15_000_000) for s in (1, 2)]
    evals += [{**ev(None, None, "base", s, 90.0, 15_000_000), "sparsity": 1e-4} for s in (1, 2)]  # slimming's base: not the reference
    for s in (1, 2):
        evals += [ev("slimming", "0.6", "scratch-e", s, 93.0, 3_000_000), ev("matched", "slimming_0.6", "scratch-e", s, 92.0, 3_000_000),
                  ev("slimming", "0.2", "scratch-e", s, 93.4, 9_000_000), ev("matched", "slimming_0.2", "scratch-e", s, 93.3, 9_000_000)]
    t = build_archsearch_table(evals)
    assert len(t) == 4 and set(t["family"]) == {"network slimming", "uniform (matched params)"}
    assert t["unpruned_mean"].iloc[0] == 93.5 and t["unpruned_n"].iloc[0] == 2 and t["scratch-e_n"].tolist() == [2, 2, 2, 2]
    assert list(t["method"]) == ["slimming", "slimming", "matched", "matched"] and t["params"].iloc[0] > t["params"].iloc[1]
    md = to_markdown(t, "Archsearch")
    assert "| network slimming | 0.6 | 3.000M |" in md and "Scratch-B" not in md
    write_archsearch_table(t, tmp_path / "a.csv", tmp_path / "a.md", "Archsearch")
    plot_archsearch(read_archsearch_table(tmp_path / "a.csv"), tmp_path / "a.png")
    assert (tmp_path / "a.png").read_bytes().startswith(PNG)
    with pytest.raises(UserError, match="takes base, scratch-e, scratch-b"):
        build_archsearch_table(evals + [ev("slimming", "0.6", "finetune", 1, 90.0, 1)])
    d, s = sources
    kt = kernel_table([read_json(s["mag"]), read_json(s["slim1"])])  # the channel row has no pattern
    assert set(kt["method"]) == {"magnitude"} and len(kt) == 5 * 9
    plot_kernels(kt, tmp_path / "k.png", "kernels")
    assert (tmp_path / "k.png").read_bytes().startswith(PNG)
    with pytest.raises(UserError, match="no prune report has a kernel_pattern"):
        kernel_table([read_json(s["slim1"])])


def test_archsearch_config_is_checked_before_any_job():
    import copy
    from pathlib import Path

    import yaml

    from prunebench.studies.study import check, rows

    cfg = yaml.safe_load((Path(__file__).resolve().parents[1] / "config.yaml").read_text())
    check(cfg)
    got = {(r.dataset, r.arch, r.method) for r in rows(cfg, "archsearch")}
    assert ("cifar100", "vgg19", "transferred") in got and ("cifar10", "vgg16", "guidedsparse") in got
    for edit, needles in (
        (lambda s: s["methods"]["matched"]["cifar10"].update(vgg16=["slim_0.5"]), ("studies.archsearch.methods.matched.cifar10.vgg16[0]", "METHOD_SETTING")),
        (lambda s: s["methods"]["transferred"]["cifar100"].update(vgg19=["cifar10_vgg16_slimming_1.5"]), ("transferred.cifar100.vgg19[0]", "1.5")),
        (lambda s: s.update(arms=["finetune"]), ("studies.archsearch", "drop finetune from arms")),
    ):
        bad = copy.deepcopy(cfg)
        edit(bad["studies"]["archsearch"])
        with pytest.raises(UserError) as e:
            check(bad)
        assert "\n" not in str(e.value) and all(n in str(e.value) for n in needles), str(e.value)


# --------------------------------------------------------------------------- statistics
T_123, P_123 = 2 * 3**0.5, 0.07417990022744858  # paired differences 1, 2, 3: t = 2 sqrt 3, two-sided p with 2 df
HALF_123 = 4.302652729911275 / 3**0.5  # half the 95 % interval of a mean over 3 with sd 1


def _run(method, setting, arm, seed, best, dataset="cifar10", arch="vgg16", failed=None):
    e = ev(method, setting, arm, seed, best, 3_000_000)
    e["run"].update(dataset=dataset, arch=arch)
    e["model"] = f"runs/{dataset}/{arch}/{'base' if arm == 'base' else f'{method}-{setting}/{arm}'}/seed{seed}/model.pt"
    return e | ({"checks_failed": failed} if failed is not None else {})


def _pair(method, setting, uniform, diffs, seeds=(1, 2, 3), **kw):
    """A learned row at 92 + seed + diff and its uniform match at 92 + seed, Scratch-E."""
    return [x for s, d in zip(seeds, diffs) for x in (_run(method, setting, "scratch-e", s, 92.0 + s + d, **kw), _run(*uniform, "scratch-e", s, 92.0 + s, **kw))]


def _row(t, method, setting):
    return t[(t["method"] == method) & (t["setting"] == setting)].iloc[0]


def test_each_learned_row_is_tested_against_its_uniform_match():
    from prunebench.report.archsearch import build_archsearch_table, to_markdown

    evals = [_run(None, None, "base", s, 93.0 + s) for s in (1, 2, 3)]
    evals += _pair("slimming", "0.6", ("matched", "slimming_0.6"), (1.0, 2.0, 3.0)) + [_run("matched", "slimming_0.6", "scratch-e", 4, 80.0)]  # seed 4 has no partner
    evals += _pair("guided", "slimming_0.6", ("matched", "guided_slimming_0.6"), (1.0, 1.1, 0.9))
    evals += _pair("magnitude", "0.5", ("randomsparse", "magnitude_0.5"), (-1.0, -1.1, -0.9))
    evals += [x for x in _pair("guidedsparse", "magnitude_0.5", ("randomsparse", "magnitude_0.5"), (0.5,)) if x["run"]["method"] == "guidedsparse"]
    evals += _pair("transferred", "cifar10_vgg16_slimming_0.6", ("matched", "transferred_cifar10_vgg16_slimming_0.6"), (1.0, 2.0), dataset="cifar100", arch="vgg19")
    evals += [_run("slimming", "0.2", "scratch-e", 1, 93.0)]  # no uniform match
    t = build_archsearch_table(evals)
    slim = _row(t, "slimming", "0.6")
    assert slim["uniform_match"] == "matched slimming_0.6" and slim["vs_uniform_pairs"] == 3 and slim["vs_uniform_diff"] == 2.0
    assert slim["vs_uniform_t"] == pytest.approx(T_123) and slim["vs_uniform_p"] == pytest.approx(P_123)
    assert (slim["vs_uniform_ci95_low"], slim["vs_uniform_ci95_high"]) == pytest.approx((2 - HALF_123, 2 + HALF_123))
    assert (slim["unpruned_ci95_low"], slim["unpruned_ci95_high"]) == pytest.approx((95 - HALF_123, 95 + HALF_123)) and slim["scratch-e_ci95_low"] == pytest.approx(96 - 2 * HALF_123)  # 94, 96, 98: sd 2
    assert slim["vs_uniform_verdict"] == "inconclusive: on par; ours +2.00 (p=0.0742, 3 seeds); Rethinking §7: network slimming better than uniform at matched params"
    assert _row(t, "guided", "slimming_0.6")["vs_uniform_verdict"].startswith("reproduced: guided (stage averages) better; ours +1.00 (p=0.00")
    assert _row(t, "magnitude", "0.5")["vs_uniform_verdict"].startswith("not reproduced: uniform better; ours -1.00")
    guidedsparse = _row(t, "guidedsparse", "magnitude_0.5")
    assert guidedsparse["uniform_match"] == "randomsparse magnitude_0.5" and guidedsparse["vs_uniform_verdict"].startswith("untested (1 seed; a test needs 2): ours +0.50")
    assert _row(t, "transferred", "cifar10_vgg16_slimming_0.6")["vs_uniform_verdict"].startswith("inconclusive: on par; ours +1.50")
    for method, setting in (("matched", "slimming_0.6"), ("randomsparse", "magnitude_0.5"), ("slimming", "0.2")):
        r = _row(t, method, setting)
        assert r["uniform_match"] == "" and r["vs_uniform_verdict"] == "" and pd.isna(r["vs_uniform_p"])
    runs = slim["runs"].split(";")
    assert len(runs) == 6 and "runs/cifar10/vgg16/base/seed1/model.pt" in runs and "runs/cifar10/vgg16/slimming-0.6/scratch-e/seed3/model.pt" in runs
    md = to_markdown(t, "Archsearch")
    assert "- network slimming 0.6 vs matched slimming_0.6: inconclusive: on par; ours +2.00 (p=0.0742, 3 seeds)" in md
    assert md.index("**Better than uniform?**") < md.index("## CIFAR-100") < md.rindex("**Better than uniform?**")


def test_archsearch_runs_that_failed_a_check_enter_no_mean_or_test():
    from prunebench.report.archsearch import build_archsearch_table, to_markdown

    evals = [_run(None, None, "base", 1, 93.0, failed=[]), _run(None, None, "base", 2, 94.0, failed=["loss_decreased"])]
    evals += _pair("slimming", "0.6", ("matched", "slimming_0.6"), (1.0, 2.0, 3.0, 50.0), seeds=(1, 2, 3, 4))
    evals[-2]["checks_failed"] = ["no_empty_layer", "macs_agree"]  # slimming seed 4
    slim = _row(build_archsearch_table(evals), "slimming", "0.6")
    assert slim["unpruned_n"] == 1 and slim["scratch-e_n"] == 3 and slim["vs_uniform_pairs"] == 3 and slim["vs_uniform_p"] == pytest.approx(P_123)
    assert slim["failed_runs"] == 2 and slim["failed_checks"] == "scratch-e seed 4: no_empty_layer,macs_agree; unpruned seed 2: loss_decreased"
    assert "slimming-0.6/scratch-e/seed4" not in slim["runs"]
    assert "2 runs left out for a failed check (scratch-e seed 4: no_empty_layer,macs_agree; unpruned seed 2: loss_decreased)" in to_markdown(build_archsearch_table(evals), "x")
