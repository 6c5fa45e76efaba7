"""The statistics of a study table's cells: confidence intervals, distance from the paper, the
paired comparison of each scratch arm with fine-tuning, and the verdict in words."""

from __future__ import annotations

import math

import pytest

from prunebench.report import stats
from prunebench.report.table import build_table, to_markdown


def test_interval_is_students_t_over_the_seeds():
    low, high = stats.interval([1.0, 2.0, 3.0])
    half = 4.302652729911275 / math.sqrt(3)  # t(0.975, 2 df) x sd / sqrt(n), sd = 1
    assert (low, high) == pytest.approx((2 - half, 2 + half))
    assert all(math.isnan(x) for x in stats.interval([93.0]))
    assert stats.interval([5.0, 5.0]) == (5.0, 5.0)


def test_paired_test_over_shared_seeds_only():
    ft = {1: 90.0, 2: 91.0, 3: 92.0, 4: 93.0}
    sb = {1: 91.0, 2: 93.0, 3: 95.0, 5: 99.0}  # seed 4 and 5 have no partner
    c = stats.paired(ft, sb)
    # differences 1, 2, 3: mean 2, sd 1, t = 2 / (1 / sqrt 3), two-sided p with 2 df
    assert c["pairs"] == 3 and c["diff"] == pytest.approx(2.0) and c["t"] == pytest.approx(2 * math.sqrt(3))
    assert c["p"] == pytest.approx(0.07417990022744858)
    one = stats.paired({1: 90.0}, {1: 91.0})
    assert one["pairs"] == 1 and math.isnan(one["p"])


@pytest.mark.parametrize(
    "arm,diff,p,paper,expected",
    [
        ("scratch-b", 0.4, 0.01, 0.2, "reproduced: Scratch-B better"),
        ("scratch-e", 0.4, 0.01, -0.01, "reproduced: Scratch-E better; ours +0.40 (p=0.01, 5 seeds); paper Scratch-E - fine-tuned = -0.01 (on par within its std)"),
        ("scratch-e", -0.3, 0.01, -0.01, "not reproduced: fine-tuned better"),
        ("scratch-b", -0.1, 0.5, 0.2, "reproduced: Scratch-B on par"),
        ("scratch-b", -0.6, 0.01, 0.2, "not reproduced: fine-tuned better"),
        ("scratch-e", -0.6, 0.01, -0.5, "reproduced: fine-tuned better"),
        ("scratch-e", -0.1, 0.4, -0.5, "not reproduced: Scratch-E on par"),
        ("scratch-b", -0.6, 0.01, math.nan, "not reproduced: fine-tuned better; ours -0.60 (p=0.01, 5 seeds); Rethinking: Scratch-B on par or better"),
        ("scratch-e", 0.3, 0.2, math.nan, "no paper value to compare; ours Scratch-E - fine-tuned = +0.30"),
    ],
)
def test_verdict_states_whether_the_paper_conclusion_holds(arm, diff, p, paper, expected):
    assert stats.verdict(arm, {"pairs": 5, "diff": diff, "t": 1.0, "p": p}, paper, 0.0 if abs(paper) > 0.1 else 0.26).startswith(expected)


def test_verdict_with_one_seed_is_untested():
    assert stats.verdict("scratch-b", {"pairs": 1, "diff": 0.2, "t": math.nan, "p": math.nan}, 0.1).startswith("untested (1 seed; a test needs 2)")


def _ev(arm, seed, acc, setting="A"):
    return {
        "run": {"dataset": "cifar10", "arch": "resnet56", "arm": arm, "seed": seed, "method": None if arm == "base" else "l1", "setting": None if arm == "base" else setting},
        "accuracy": {"best": acc, "final": acc}, "macs": 112435840, "params": 773336, "macs_full": 125485696, "params_full": 853018,
    }  # fmt: skip


def test_a_table_row_carries_intervals_z_and_verdicts():
    evals = [_ev("base", s, 93.0 + s / 10) for s in (1, 2, 3)]
    evals += [_ev("finetune", s, a) for s, a in ((1, 92.0), (2, 92.4), (3, 92.2))]
    evals += [_ev("scratch-b", s, a) for s, a in ((1, 93.0), (2, 93.6), (3, 93.1))]
    df = build_table(evals, "l1")
    r = df.iloc[0]
    assert r["finetune_ci95_low"] < r["finetune_mean"] < r["finetune_ci95_high"]
    assert r["scratch-b_vs_ft_pairs"] == 3 and r["scratch-b_vs_ft_diff"] == pytest.approx(1.0333333)
    assert r["scratch-b_vs_ft_p"] < 0.05 and r["scratch-b_vs_ft_verdict"].startswith("reproduced: Scratch-B better")
    assert r["scratch-e_vs_ft_verdict"] == "" and r["scratch-e_vs_ft_pairs"] == 0
    # the paper's unpruned ResNet-56 is 93.14 +- 0.12; its fine-tuned number has no std: no z
    assert r["unpruned_paper_z"] == pytest.approx((93.2 - 93.14) / 0.12) and math.isnan(r["finetune_paper_z"])
    md = to_markdown(df, "t")
    assert "**Is the difference real?**" in md and "- ResNet-56-A (CIFAR-10): Scratch-B: reproduced: Scratch-B better" in md


def test_table_as_latex_and_statistics_figures(tmp_path):
    from prunebench.commands.cli import main

    evals = [_ev("base", s, 93.0 + s / 10) for s in (1, 2, 3)]
    for setting, shift in (("A", 0.0), ("B", -0.5)):
        evals += [_ev("finetune", s, a + shift, setting) for s, a in ((1, 92.0), (2, 92.4), (3, 92.2))]
        evals += [_ev("scratch-b", s, a + shift, setting) for s, a in ((1, 93.0), (2, 93.6), (3, 93.1))]
    paths = []
    for i, ev in enumerate(evals):
        paths.append(tmp_path / f"e{i}.json")
        paths[-1].write_text(__import__("json").dumps(ev))
    out = {k: tmp_path / f"l1.{k}" for k in ("csv", "md", "tex")}
    main(["table", *map(str, paths), "--study", "l1", "--csv", str(out["csv"]), "--md", str(out["md"]), "--tex", str(out["tex"]), "--title", "Table 1 & more"])
    tex = out["tex"].read_text()
    assert "\\begin{tabular}" in tex and "\\toprule" in tex and "Table 1 \\& more" in tex
    assert "ResNet-56-A & CIFAR-10 & 3 & 93.20 $\\pm$ 0.10" in tex
    assert tex.count("\\\\") == 1 + 2 + tex.count("\\begin{tabular}") - 1  # header and two rows
    main(["stats-figure", "--table", str(out["csv"]), "--ci", str(tmp_path / "ci.png"), "--diff", str(tmp_path / "diff.png"), "--title", "l1"])
    for name in ("ci.png", "diff.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG" and (tmp_path / name).stat().st_size > 10_000
