"""Table 1 and its figure from synthetic eval dicts, checked against hand-computed values."""

import math

import pandas as pd
import pytest

from prunebench.errors import UserError
from prunebench.report.figure import plot_table1
from prunebench.report.table import build_table1, display_name, load_paper_numbers, write_table

R56_FULL = (125485696, 853018)
SIZES = {  # (macs, params) of each pruned arch
    ("resnet56", "A"): (112435840, 773336),
    ("resnet56", "B"): (90000000, 700000),
    ("vgg16", "A"): (206000000, 5400000),
}
VGG_FULL = (313000000, 15000000)


def ev(arch, variant, arm, seed, best, final=None, dataset="cifar10"):
    full = VGG_FULL if arch == "vgg16" else R56_FULL
    macs, params = full if arm == "base" else SIZES[(arch, variant)]
    return {
        "run": {"dataset": dataset, "arch": arch, "variant": variant, "arm": arm, "seed": seed, "scale": "smoke"},
        "accuracy": {"best": best, "final": best - 0.5 if final is None else final},
        "macs": macs, "params": params, "macs_full": full[0], "params_full": full[1],
        "epochs": 40, "model": f"runs/{arch}-{variant}/{arm}/seed{seed}/model.pt", "model_sha256": "00", "metrics": "metrics.json",
    }


@pytest.fixture
def evals():
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
    # One seed, no base run and no Scratch-B: those columns must be NaN, not an error.
    out += [ev("vgg16", "A", "finetune", 1, 93.2), ev("vgg16", "A", "scratch-e", 1, 93.4)]
    return out


def row(df, model):
    sel = df[df["model"] == model]
    assert len(sel) == 1
    return sel.iloc[0]


def test_display_names():
    assert display_name("vgg16", "A") == "VGG-16-A"
    assert display_name("resnet110", "B") == "ResNet-110-B"
    assert display_name("resnet56") == "ResNet-56"


def test_rows_ordered_and_stats(evals):
    df = build_table1(evals)
    assert list(df["model"]) == ["VGG-16-A", "ResNet-56-A", "ResNet-56-B"]
    r = row(df, "ResNet-56-A")
    assert r["seeds"] == 2 and r["dataset"] == "cifar10"
    assert r["finetune_mean"] == pytest.approx(92.5)
    assert r["finetune_std"] == pytest.approx(math.sqrt(0.5))
    assert r["finetune_n"] == 2
    assert r["scratch-b_mean"] == pytest.approx(93.5)
    assert r["unpruned_mean"] == pytest.approx(93.25)
    assert r["unpruned_std"] == pytest.approx(math.sqrt(0.125))
    b = row(df, "ResNet-56-B")
    assert b["scratch-e_mean"] == pytest.approx(90.5)
    assert b["unpruned_mean"] == pytest.approx(93.25)  # base runs are shared by every variant of the arch


def test_reductions(evals):
    r = row(build_table1(evals), "ResNet-56-A")
    assert r["macs"] == 112435840 and r["params"] == 773336
    assert r["macs_reduction_pct"] == 10.4  # 1 - 112435840/125485696 = 0.1040
    assert r["params_reduction_pct"] == 9.3  # 1 - 773336/853018 = 0.0934


def test_single_seed_and_missing_arm(evals):
    r = row(build_table1(evals), "VGG-16-A")
    assert r["seeds"] == 1
    assert r["finetune_mean"] == pytest.approx(93.2) and math.isnan(r["finetune_std"])
    assert math.isnan(r["scratch-b_mean"]) and math.isnan(r["scratch-b_std"]) and r["scratch-b_n"] == 0
    assert math.isnan(r["unpruned_mean"]) and r["unpruned_n"] == 0


def test_final_metric(evals):
    r = row(build_table1(evals, metric="final"), "ResNet-56-A")
    assert r["finetune_mean"] == pytest.approx(91.5)
    assert r["metric"] == "final"


def test_bad_metric(evals):
    with pytest.raises(UserError, match="best, final"):
        build_table1(evals, metric="mean")


def test_paper_columns(evals):
    df = build_table1(evals)
    r = row(df, "ResNet-56-A")
    assert r["paper_unpruned"] == pytest.approx(93.14) and r["paper_unpruned_std"] == pytest.approx(0.12)
    assert r["paper_scratch-e"] == pytest.approx(92.96) and r["paper_scratch-e_std"] == pytest.approx(0.26)
    assert bool(r["paper_scratch-e_confirmed"]) is True
    assert r["paper_finetune"] == pytest.approx(92.97)
    assert math.isnan(r["paper_finetune_std"]) and not r["paper_finetune_confirmed"]
    assert row(df, "ResNet-56-B")["paper_scratch-b"] == pytest.approx(93.05)
    v = row(df, "VGG-16-A")
    assert v["paper_scratch-b"] == pytest.approx(93.78) and not v["paper_scratch-b_confirmed"]


def test_paper_numbers_csv():
    paper = load_paper_numbers()
    assert len(paper) == 20
    assert set(paper["arm"]) == {"unpruned", "finetune", "scratch-e", "scratch-b"}
    assert not paper.loc[paper["arch"] == "vgg16", "confirmed"].any()
    assert not paper.loc[paper["arm"] == "finetune", "confirmed"].any()
    assert paper.loc[paper["confirmed"], "std"].notna().all()


def test_no_paper_numbers(evals):
    df = build_table1(evals, paper=pd.DataFrame())
    assert df["paper_unpruned"].isna().all()


def test_write_table(evals, tmp_path):
    df = build_table1(evals)
    csv, md = tmp_path / "t1.csv", tmp_path / "t1.md"
    write_table(df, csv, md, title="Table 1 (smoke)")
    back = pd.read_csv(csv)
    assert list(back["model"]) == list(df["model"])
    assert back["finetune_mean"].iloc[1] == pytest.approx(92.5)
    text = md.read_text()
    assert text.startswith("# Table 1 (smoke)")
    assert "92.50 ± 0.71" in text  # ResNet-56-A fine-tuned
    assert "93.20 |" in text  # VGG-16-A fine-tuned, one seed: no ±
    assert "–" in text  # VGG-16-A Scratch-B missing
    assert "1.12e8 (10.4%)" in text
    assert "93.14 ± 0.12 |" in text  # confirmed paper number: no marker
    assert "92.97*" in text  # unconfirmed paper number is marked
    assert "\n\\* The paper's number is recalled, not confirmed" in text and "`best`" in text  # footnote explains * and names the metric


def test_plot_writes_png(evals, tmp_path):
    png = tmp_path / "fig" / "table1.png"
    plot_table1(build_table1(evals), png)
    data = png.read_bytes()
    assert len(data) > 1000
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert list(png.parent.iterdir()) == [png]  # no temp file left behind


def test_plot_single_seed_all_nan(tmp_path):
    one = [ev("resnet56", "A", "finetune", 1, 92.0)]
    png = tmp_path / "one.png"
    plot_table1(build_table1(one, paper=pd.DataFrame()), png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_duplicate_run_is_a_user_error(evals):
    with pytest.raises(UserError, match="two evals for cifar10 ResNet-56-A finetune seed 1"):
        build_table1(evals + [ev("resnet56", "A", "finetune", 1, 90.0)])


def test_every_row_names_the_runs_behind_it(evals):
    df = build_table1(evals)
    runs = row(df, "ResNet-56-B")["runs"].split(";")
    assert len(runs) == 8  # 2 unpruned + 3 arms x 2 seeds
    assert "runs/resnet56-None/base/seed1/model.pt" in runs and "runs/resnet56-B/scratch-b/seed2/model.pt" in runs
    assert not any("-A/" in r for r in runs)
