"""Study tables, their figure and the per-layer channels figure, from hand-made eval and prune dicts."""

import math

import pandas as pd
import pytest

from prunebench.core.errors import UserError
from prunebench.core.names import display_name
from prunebench.report import stats
from prunebench.report.channels import CHANNEL_COLUMNS, channels_table, plot_channels
from prunebench.report.figure import plot_study
from prunebench.report.table import ARMS, CHECK_COLUMNS, TABLE_COLUMNS, build_table, load_paper_numbers, read_table, to_markdown, write_table

PNG = b"\x89PNG\r\n\x1a\n"
R56_FULL = (125485696, 853018)
VGG16_FULL = (313000000, 15000000)
VGG19_FULL = (398000000, 20040000)
SIZES = {  # (macs, params) of each pruned arch (slimming: per seed, as its architecture is learned)
    ("resnet56", "A", 1): (112435840, 773336),
    ("resnet56", "B", 1): (90000000, 700000),
    ("vgg16", "A", 1): (206000000, 5400000),
    ("vgg19", "0.7", 1): (200000000, 2200000),
    ("vgg19", "0.7", 2): (210000000, 2300000),
    ("vgg19", "0.4", 1): (300000000, 9000000),
    ("vgg19", "0.5", 1): (250000000, 5000000),
}
FULL = {"resnet56": R56_FULL, "vgg16": VGG16_FULL, "vgg19": VGG19_FULL}


def ev(arch, setting, arm, seed, best, final=None, dataset="cifar10", method="l1", standin=False):
    full = FULL[arch]
    macs, params = full if arm == "base" else SIZES[(arch, setting, seed if arch == "vgg19" else 1)]
    return {
        "run": {
            "dataset": dataset, "arch": arch, "method": None if arm == "base" else method, "setting": setting,
            "arm": arm, "seed": seed, "scale": "smoke",
        },
        "accuracy": {"best": best, "final": best - 0.5 if final is None else final, "evaluated": best - 0.5},
        "macs": macs, "params": params, "macs_full": full[0], "params_full": full[1],
        "epochs": 40, "model": f"runs/{dataset}/{arch}-{setting}/{arm}/seed{seed}/model.pt", "model_sha256": "00",
        "metrics": "metrics.json", "standin": standin,
    }


@pytest.fixture
def evals():
    """L1 study: ResNet-56-A/B with two seeds; VGG-16-A with one seed, no base run and no Scratch-B."""
    out = [ev("resnet56", None, "base", 1, 93.0), ev("resnet56", None, "base", 2, 93.5)]
    for variant, shift in (("A", 0.0), ("B", -1.0)):
        out += [
            ev("resnet56", variant, "finetune", 1, 92.0 + shift, final=91.0),
            ev("resnet56", variant, "finetune", 2, 93.0 + shift, final=92.0),
            ev("resnet56", variant, "scratch-e", 1, 91.0 + shift),
            ev("resnet56", variant, "scratch-e", 2, 92.0 + shift),
            ev("resnet56", variant, "scratch-b", 1, 93.0 + shift),
            ev("resnet56", variant, "scratch-b", 2, 94.0 + shift),
        ]
    out += [ev("vgg16", "A", "finetune", 1, 93.2), ev("vgg16", "A", "scratch-e", 1, 93.4)]
    return out


@pytest.fixture
def slim_evals():
    """Slimming study: CIFAR-100 (a stand-in) listed first, CIFAR-10 VGG-19 at 0.7 (two seeds) and 0.4."""
    sl = dict(method="slimming")
    c100 = dict(dataset="cifar100", standin=True, **sl)
    out = [ev("vgg19", None, "base", 1, 12.0, **c100)]
    out += [ev("vgg19", "0.5", arm, 1, acc, **c100) for arm, acc in (("finetune", 11.0), ("scratch-e", 10.5), ("scratch-b", 11.5))]
    out += [ev("vgg19", None, "base", s, acc, **sl) for s, acc in ((1, 93.5), (2, 93.7))]
    for s in (1, 2):
        out += [ev("vgg19", "0.7", arm, s, acc + s / 10, **sl) for arm, acc in (("finetune", 93.4), ("scratch-e", 93.1), ("scratch-b", 93.7))]
    out += [ev("vgg19", "0.4", "finetune", 1, 93.6, **sl)]  # the other arms are missing
    return out


def row(df, model, dataset="cifar10"):
    sel = df[(df["model"] == model) & (df["dataset"] == dataset)]
    assert len(sel) == 1
    return sel.iloc[0]


def test_display_names():
    assert display_name("vgg16", "A") == "VGG-16-A"
    assert display_name("resnet110", "B") == "ResNet-110-B"
    assert display_name("resnet56") == "ResNet-56"
    assert display_name("vgg19", "0.7") == "VGG-19 (70%)"
    assert display_name("preresnet164", "0.40") == "PreResNet-164 (40%)"
    assert display_name("densenet40", 0.6) == "DenseNet-40 (60%)"


# --------------------------------------------------------------------------- L1 study
def test_a_run_that_failed_a_check_enters_no_mean_and_marks_its_cell(evals):
    evals[3]["checks_failed"] = ["no_regrowth"]  # ResNet-56-A fine-tuned, seed 2 (93.0)
    df = build_table(evals, "l1")
    r = row(df, "ResNet-56-A")
    assert r["finetune_mean"] == 92.0 and r["finetune_n"] == 1 and r["finetune_failed"] == 1 and r["scratch-e_failed"] == 0
    assert r["failed_runs"] == 1 and r["failed_checks"] == "fine-tuned seed 2: no_regrowth"
    assert r["scratch-e_vs_ft_pairs"] == 1  # the failed seed pairs with nothing
    assert row(df, "ResNet-56-B")["failed_runs"] == 0
    md = to_markdown(df, "t")
    assert "| 92.00 ⚠1 |" in md and "- ResNet-56-A: 1 run left out for a failed check (fine-tuned seed 2: no_regrowth)" in md


def test_rows_ordered_and_stats(evals):
    df = build_table(evals, "l1")
    assert list(df.columns) == TABLE_COLUMNS + stats.column_names(ARMS) + CHECK_COLUMNS  # the statistics follow the table's own columns
    assert list(df["model"]) == ["ResNet-56-A", "ResNet-56-B", "VGG-16-A"]  # arch in order of first appearance
    assert set(df["study"]) == {"l1"} and list(df["setting"]) == ["A", "B", "A"]
    r = row(df, "ResNet-56-A")
    assert r["seeds"] == 2 and r["dataset"] == "cifar10" and r["arch"] == "resnet56"
    assert r["finetune_mean"] == pytest.approx(92.5)
    assert r["finetune_std"] == pytest.approx(math.sqrt(0.5))
    assert r["finetune_n"] == 2
    assert r["scratch-b_mean"] == pytest.approx(93.5)
    assert r["unpruned_mean"] == pytest.approx(93.25)
    assert r["unpruned_std"] == pytest.approx(math.sqrt(0.125))
    assert not r["standin"]
    b = row(df, "ResNet-56-B")
    assert b["scratch-e_mean"] == pytest.approx(90.5)
    assert b["unpruned_mean"] == pytest.approx(93.25)  # base runs are shared by every setting of the arch


def test_reductions(evals):
    r = row(build_table(evals, "l1"), "ResNet-56-A")
    assert r["macs"] == 112435840 and r["params"] == 773336
    assert r["macs_reduction_pct"] == 10.4  # 1 - 112435840/125485696 = 0.1040
    assert r["params_reduction_pct"] == 9.3  # 1 - 773336/853018 = 0.0934


def test_single_seed_and_missing_arm(evals):
    r = row(build_table(evals, "l1"), "VGG-16-A")
    assert r["seeds"] == 1
    assert r["finetune_mean"] == pytest.approx(93.2) and math.isnan(r["finetune_std"])
    assert math.isnan(r["scratch-b_mean"]) and math.isnan(r["scratch-b_std"]) and r["scratch-b_n"] == 0
    assert math.isnan(r["unpruned_mean"]) and r["unpruned_n"] == 0


def test_final_metric(evals):
    r = row(build_table(evals, "l1", metric="final"), "ResNet-56-A")
    assert r["finetune_mean"] == pytest.approx(91.5)
    assert r["metric"] == "final"


def test_bad_metric(evals):
    with pytest.raises(UserError, match="best, final"):
        build_table(evals, "l1", metric="mean")


def test_paper_columns(evals):
    df = build_table(evals, "l1")
    r = row(df, "ResNet-56-A")
    assert r["paper_unpruned"] == pytest.approx(93.14) and r["paper_unpruned_std"] == pytest.approx(0.12)
    assert r["paper_scratch-e"] == pytest.approx(92.96) and r["paper_scratch-e_std"] == pytest.approx(0.26)
    assert bool(r["paper_scratch-e_confirmed"]) is True
    assert r["paper_finetune"] == pytest.approx(92.97)
    assert math.isnan(r["paper_finetune_std"]) and not r["paper_finetune_confirmed"]
    assert row(df, "ResNet-56-B")["paper_scratch-b"] == pytest.approx(93.05)
    v = row(df, "VGG-16-A")
    assert v["paper_scratch-b"] == pytest.approx(93.78) and not v["paper_scratch-b_confirmed"]


def test_paper_numbers_of_another_study_are_not_used(evals):
    assert build_table(evals, "slimming")["paper_unpruned"].isna().all()


def test_paper_numbers_csv():
    every = load_paper_numbers()
    assert list(every.columns) == ["study", "dataset", "arch", "setting", "arm", "mean", "std", "confirmed", "source"]
    assert len(every) == 132 and not every.duplicated(["study", "dataset", "arch", "setting", "arm"]).any()
    assert set(every["arm"]) == {"unpruned", "finetune", "scratch-e", "scratch-b"}
    # ImageNet (PROTOCOLS-IMAGENET 3): single runs, no std; the released models' numbers confirmed
    imagenet = every[every["dataset"] == "imagenet"].set_index(["study", "arch", "setting", "arm"])
    assert len(imagenet) == 72 and imagenet["std"].isna().all()
    assert imagenet.loc[("imagenet_l1", "resnet34", "A", "scratch-b"), "mean"] == pytest.approx(73.03)
    assert imagenet.loc[("imagenet_scratch", "resnet50", "thinet70", "scratch-b"), "mean"] == pytest.approx(75.14)
    assert imagenet.loc[("imagenet_unstructured", "vgg16_bn", "0.3", "scratch-b"), "mean"] == pytest.approx(74.02)
    assert not imagenet.loc[("imagenet_slimming", "vgg11_slimming", "0.5", "unpruned"), "confirmed"]
    paper = every[every["dataset"] != "imagenet"]
    l1 = paper[paper["study"] == "l1"]
    assert len(l1) == 20 and set(l1["setting"]) == {"A", "B"}
    assert not l1.loc[l1["arch"] == "vgg16", "confirmed"].any()
    assert not paper.loc[paper["arm"] == "finetune", "confirmed"].any()
    assert paper.loc[paper["confirmed"], "std"].notna().all()
    slim = paper[paper["study"] == "slimming"].set_index(["dataset", "arch", "setting", "arm"])
    assert len(slim) == 40 and not slim["confirmed"].any() and slim["std"].isna().all()
    assert set(slim["source"]) == {"Rethinking slimming table as recalled (unconfirmed)"}
    assert slim.loc[("cifar10", "vgg19", "0.7", "scratch-b"), "mean"] == pytest.approx(93.81)
    assert slim.loc[("cifar100", "vgg19", "0.5", "unpruned"), "mean"] == pytest.approx(72.63)
    assert slim.loc[("cifar100", "preresnet164", "0.6", "finetune"), "mean"] == pytest.approx(74.17)
    assert slim.loc[("cifar10", "densenet40", "0.6", "scratch-e"), "mean"] == pytest.approx(93.58)


def test_no_paper_numbers(evals):
    df = build_table(evals, "l1", paper=pd.DataFrame())
    assert df["paper_unpruned"].isna().all()


def test_write_table(evals, tmp_path):
    df = build_table(evals, "l1")
    csv, md = tmp_path / "t1.csv", tmp_path / "t1.md"
    write_table(df, csv, md, title="Table 1 (smoke)")
    back = read_table(csv)
    assert list(back["model"]) == list(df["model"]) and list(back["setting"]) == ["A", "B", "A"]
    assert back["finetune_mean"].iloc[0] == pytest.approx(92.5)
    text = md.read_text()
    assert text.startswith("# Table 1 (smoke)")
    assert "| ResNet-56-A | CIFAR-10 | 2 | 93.25 ± 0.35 | 92.50 ± 0.71 |" in text
    assert "93.20 |" in text  # VGG-16-A fine-tuned, one seed: no ±
    assert "–" in text  # VGG-16-A Scratch-B missing
    assert "1.12e8 (10.4%)" in text
    assert "93.14 ± 0.12 |" in text  # confirmed paper number: no marker
    assert "92.97*" in text  # unconfirmed paper number is marked
    assert "\n\\* The paper's number is recalled, not confirmed" in text and "`best`" in text  # footnote explains * and names the metric
    assert "stand-in" not in text


def test_duplicate_run_is_a_user_error(evals):
    with pytest.raises(UserError, match="two evals for cifar10 ResNet-56-A finetune seed 1"):
        build_table(evals + [ev("resnet56", "A", "finetune", 1, 90.0)], "l1")


def test_mixed_methods_are_a_user_error(evals, slim_evals):
    with pytest.raises(UserError, match="mix pruning methods l1, slimming"):
        build_table(evals + slim_evals, "l1")


def test_every_row_names_the_runs_behind_it(evals):
    df = build_table(evals, "l1")
    runs = row(df, "ResNet-56-B")["runs"].split(";")
    assert len(runs) == 8  # 2 unpruned + 3 arms x 2 seeds
    assert "runs/cifar10/resnet56-None/base/seed1/model.pt" in runs and "runs/cifar10/resnet56-B/scratch-b/seed2/model.pt" in runs
    assert not any("-A/" in r for r in runs)


def test_old_evals_with_variant_still_read(evals):
    for e in evals:
        e["run"]["variant"] = e["run"].pop("setting")
    assert list(build_table(evals, "l1")["model"]) == ["ResNet-56-A", "ResNet-56-B", "VGG-16-A"]


# --------------------------------------------------------------------------- slimming study
def test_slimming_rows_datasets_and_settings(slim_evals):
    df = build_table(slim_evals, "slimming")
    # cifar10 before cifar100 although cifar100 came first; ratios sorted numerically.
    assert list(zip(df["dataset"], df["model"])) == [
        ("cifar10", "VGG-19 (40%)"), ("cifar10", "VGG-19 (70%)"), ("cifar100", "VGG-19 (50%)"),
    ]
    assert list(df["setting"]) == ["0.4", "0.7", "0.5"]
    r = row(df, "VGG-19 (70%)")
    assert r["unpruned_mean"] == pytest.approx(93.6) and r["finetune_mean"] == pytest.approx(93.55)
    assert r["seeds"] == 2 and not r["standin"]
    # Learned architecture: size is the mean over the two seeds.
    assert r["macs"] == 205000000 and r["params"] == 2250000
    assert r["params_reduction_pct"] == round(100 * (1 - 2250000 / VGG19_FULL[1]), 1)
    assert r["paper_scratch-b"] == pytest.approx(93.81) and r["paper_unpruned"] == pytest.approx(93.53)
    assert r["paper_scratch-b_confirmed"] is False or not r["paper_scratch-b_confirmed"]
    p = row(df, "VGG-19 (40%)")
    assert p["finetune_mean"] == pytest.approx(93.6) and p["unpruned_mean"] == pytest.approx(93.6)
    assert math.isnan(p["scratch-e_mean"]) and p["scratch-b_n"] == 0
    assert math.isnan(p["paper_finetune"])  # no paper number for VGG-19 at 40%
    c = row(df, "VGG-19 (50%)", dataset="cifar100")
    assert bool(c["standin"]) and c["unpruned_mean"] == pytest.approx(12.0)
    assert c["paper_scratch-b"] == pytest.approx(73.08)


def test_standin_is_visible_in_markdown(slim_evals, tmp_path):
    df = build_table(slim_evals, "slimming")
    write_table(df, tmp_path / "s.csv", tmp_path / "s.md", title="Slimming (smoke)")
    text = (tmp_path / "s.md").read_text()
    assert text.startswith("# Slimming (smoke)\n\n> **Warning: CIFAR-100 runs used a synthetic stand-in dataset**")
    assert "| VGG-19 (50%) | CIFAR-100 (synthetic stand-in) | 1 |" in text
    assert "| VGG-19 (70%) | CIFAR-10 | 2 |" in text
    assert "prune ratio: the share of channels" in text
    back = read_table(tmp_path / "s.csv")
    assert list(back["standin"]) == [False, False, True] and list(back["setting"]) == ["0.4", "0.7", "0.5"]


def test_empty_table_still_renders():
    df = build_table([], "slimming")
    assert list(df.columns) == TABLE_COLUMNS + stats.column_names(ARMS) + CHECK_COLUMNS and df.empty
    assert "no pruned runs" in to_markdown(df, "Empty")


# --------------------------------------------------------------------------- read_table
@pytest.mark.parametrize(
    "content, match",
    [
        (None, "does not exist; run 'prunebench table' first"),
        ("", "is empty; it was not written by 'prunebench table'; rerun it"),
        ("model,dataset\nVGG-16-A,cifar10\n", r"lacks the columns study, arch, setting, metric, seeds, unpruned_mean and \d+ more; it was not written by 'prunebench table'; rerun it"),
        (b"\x89PNG\r\n\x1a\n\x00\xff\xfe binary", "it was not written by 'prunebench table'; rerun it"),
        ('a,b\n"unterminated,1\n', "it was not written by 'prunebench table'; rerun it"),
    ],
    ids=["missing", "empty", "wrong-columns", "binary", "not-csv"],
)
def test_read_table_bad_files(tmp_path, content, match):
    path = tmp_path / "t.csv"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(UserError, match=match) as err:
        read_table(path)
    assert "\n" not in str(err.value)


def test_read_table_missing_one_column(evals, tmp_path):
    path = tmp_path / "t.csv"
    build_table(evals, "l1").drop(columns=["standin"]).to_csv(path, index=False)
    with pytest.raises(UserError, match=r"lacks the columns standin; it was not written by 'prunebench table'; rerun it$"):
        read_table(path)


# --------------------------------------------------------------------------- figure
def test_plot_writes_png(evals, tmp_path):
    png = tmp_path / "fig" / "l1.png"
    plot_study(build_table(evals, "l1"), png, "L1-norm pruning (smoke)")
    data = png.read_bytes()
    assert len(data) > 1000 and data[:8] == PNG
    assert list(png.parent.iterdir()) == [png]  # no temp file left behind


def test_plot_two_datasets_from_csv(slim_evals, tmp_path):
    """Read back from CSV (confirmed flags and standin as text) and drawn one panel per dataset."""
    write_table(build_table(slim_evals, "slimming"), tmp_path / "s.csv", tmp_path / "s.md", "Slimming")
    png = tmp_path / "slimming.png"
    plot_study(read_table(tmp_path / "s.csv"), png, "Network slimming (smoke)")
    assert png.stat().st_size > 1000 and png.read_bytes()[:8] == PNG


def test_plot_single_seed_all_nan(tmp_path):
    one = [ev("resnet56", "A", "finetune", 1, 92.0)]
    png = tmp_path / "one.png"
    plot_study(build_table(one, "l1", paper=pd.DataFrame()), png, "one run")
    assert png.read_bytes()[:8] == PNG


def test_plot_empty_table(tmp_path):
    png = tmp_path / "none.png"
    plot_study(build_table([], "l1"), png, "nothing yet")
    assert png.read_bytes()[:8] == PNG


# --------------------------------------------------------------------------- channels
VGG19_WIDTHS = [64, 64, 128, 128, 256, 256, 256, 256, 512, 512, 512, 512, 512, 512, 512, 512]
VGG19_STAGES = [1, 1, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5]


def prune_report(arch, setting, seed, kept, dataset="cifar10", method="slimming", widths=None, stages=None, standin=False):
    widths = widths or VGG19_WIDTHS
    stages = stages or VGG19_STAGES
    return {
        "run": {"dataset": dataset, "arch": arch, "method": method, "setting": setting, "seed": seed, "arm": "pruned", "scale": "smoke"},
        "layers": [
            {"layer": f"features.{i}", "stage": s, "before": w, "after": k}
            for i, (w, s, k) in enumerate(zip(widths, stages, kept))
        ],
        "standin": standin,
    }


def slim_kept(ratio, seed):
    """Deeper layers lose more, as slimming tends to; seeds differ by a few channels."""
    return [max(1, round(w * (1 - ratio * (0.3 + 1.2 * i / 15))) - seed) for i, w in enumerate(VGG19_WIDTHS)]


@pytest.fixture
def reports():
    out = [prune_report("vgg19", "0.5", 1, slim_kept(0.5, 1), dataset="cifar100", standin=True)]
    out += [prune_report("vgg19", r, s, slim_kept(float(r), s)) for r in ("0.7", "0.4") for s in (1, 2, 3)]
    r56 = dict(widths=[16] * 9 + [32] * 9 + [64] * 9, stages=[1] * 9 + [2] * 9 + [3] * 9, method="l1")
    out += [prune_report("resnet56", "A", 1, [8] * 9 + [32] * 9 + [64] * 9, **r56)]
    out += [prune_report("resnet56", "B", 1, [16] * 9 + [32] * 9 + [32] * 9, **r56)]
    return out


def test_channels_table(reports):
    df = channels_table(reports)
    assert list(df.columns) == CHANNEL_COLUMNS
    # cifar10 first; arch in order of first appearance; settings numeric then letters; layers in network order.
    assert list(df[["dataset", "arch", "setting"]].drop_duplicates().itertuples(index=False, name=None)) == [
        ("cifar10", "vgg19", "0.4"), ("cifar10", "vgg19", "0.7"),
        ("cifar10", "resnet56", "A"), ("cifar10", "resnet56", "B"), ("cifar100", "vgg19", "0.5"),
    ]
    v = df[(df["setting"] == "0.7") & (df["dataset"] == "cifar10")]
    assert list(v["layer"]) == [f"features.{i}" for i in range(16)]
    last = v.iloc[-1]
    kept = [slim_kept(0.7, s)[-1] for s in (1, 2, 3)]
    assert last["before"] == 512 and last["stage"] == 5 and last["seeds"] == 3
    assert last["after_mean"] == pytest.approx(sum(kept) / 3)
    assert (last["after_min"], last["after_max"]) == (min(kept), max(kept))
    a = df[(df["arch"] == "resnet56") & (df["setting"] == "A")]
    assert a["after_mean"].iloc[0] == 8 and a["seeds"].iloc[0] == 1


def test_channels_duplicate_and_bad_reports(reports):
    with pytest.raises(UserError, match="two prune reports .* cifar10 VGG-19 setting 0.7 seed 1"):
        channels_table(reports + [reports[1]])
    with pytest.raises(UserError, match="has no per-layer widths"):
        channels_table([{"run": {"dataset": "cifar10", "arch": "vgg19", "setting": "0.7", "seed": 1}}])
    bad = prune_report("vgg19", "0.7", 4, slim_kept(0.7, 1), widths=[w * 2 for w in VGG19_WIDTHS])
    with pytest.raises(UserError, match="disagree on the full width of layer features.0"):
        channels_table(reports + [bad])


def test_plot_channels(reports, tmp_path):
    png = tmp_path / "fig" / "channels.png"
    plot_channels(reports, png, "Channels kept per layer (smoke)")
    data = png.read_bytes()
    assert len(data) > 1000 and data[:8] == PNG
    assert list(png.parent.iterdir()) == [png]  # written atomically: no temp file left behind


def test_plot_channels_many_layers(tmp_path):
    """A deep network (PreResNet-164 has ~160 prunable BN layers): index ticks instead of names."""
    widths = [16] * 54 + [32] * 54 + [64] * 54
    stages = [1] * 54 + [2] * 54 + [3] * 54
    reps = [prune_report("preresnet164", r, s, [max(1, int(w * (1 - r_f)) - s) for w in widths], widths=widths, stages=stages)
            for r, r_f in (("0.4", 0.4), ("0.6", 0.6)) for s in (1, 2)]
    png = tmp_path / "deep.png"
    plot_channels(reps, png, "PreResNet-164")
    assert png.read_bytes()[:8] == PNG
