"""The lottery table and figure: winning vs random per LR and setting, the paper's finding
beside ours, and one-line errors for evals the table cannot use."""

from __future__ import annotations

import math
import re

import pytest

from prunebench.commands.cli import main
from prunebench.core.errors import UserError
from prunebench.core.io import write_json
from prunebench.report.lottery import build_lottery_table, findings, read_lottery_table, to_markdown, write_lottery_table
from prunebench.report.lottery_figure import plot_lottery

PNG = b"\x89PNG\r\n\x1a\n"
FULL = 15_000_000


def ev(arm, seed, best, lr, method=None, setting=None, kept=1.0, arch="vgg16"):
    return {
        "run": {"dataset": "cifar10", "arch": arch, "method": method, "setting": setting, "arm": arm, "seed": seed, "scale": "smoke"},
        "accuracy": {"best": best, "final": best - 0.1, "evaluated": best},
        "macs": 300, "params": int(FULL * kept), "macs_full": 313, "params_full": FULL, "epochs": 160, "lr": lr, "standin": False,
    }


def evals():
    """The paper's pattern: at 0.01 winning > random, at 0.1 no gain and higher accuracy."""
    out = []
    for seed in (1, 2):
        for lr, base in ((0.1, 93.5), (0.01, 91.0)):
            out.append(ev("base", seed, base + seed / 10, lr))
            for method, setting, kept in (("magnitude", "0.5", 0.5), ("magnitude", "0.9", 0.1), ("iterative", "2x0.2", 0.64), ("l1mask", "A", 0.7)):
                gain = 0.8 if lr == 0.01 else 0.0
                out.append(ev("winning", seed, base - 0.5 + gain + seed / 10, lr, method, setting, kept))
                out.append(ev("scratch-e", seed, base - 0.5 + seed / 10, lr, method, setting, kept))
    return out


def test_lottery_table_rows_and_finding(tmp_path):
    t = build_lottery_table(evals())
    assert len(t) == 8 and list(t["lr"][:2]) == [0.1, 0.01]
    assert list(dict.fromkeys(t["method"])) == ["magnitude", "iterative", "l1mask"]
    r = t[(t["method"] == "magnitude") & (t["setting"] == "0.9") & (t["lr"] == 0.01)].iloc[0]
    assert r["winning_n"] == r["random_n"] == r["unpruned_n"] == 2 and r["gain"] == pytest.approx(0.8)
    assert r["pruned_pct"] == pytest.approx(90.0) and r["unpruned_mean"] == pytest.approx(91.15)
    lines = findings(t)
    assert lines[0].startswith("at LR 0.1: winning − random = +0.00") and "at LR 0.01: winning − random = +0.80" in lines[1]
    md = to_markdown(t, "Lottery")
    assert "Rethinking §6" in md and "| VGG-16 | iterative | round 2 | 36.0% | 0.01 |" in md and "| +0.80 |" in md
    write_lottery_table(t, tmp_path / "t.csv", tmp_path / "t.md", "Lottery")
    back = read_lottery_table(tmp_path / "t.csv")
    assert list(back["setting"]) == list(t["setting"])
    plot_lottery(back, tmp_path / "t.png", "Lottery")
    assert (tmp_path / "t.png").read_bytes().startswith(PNG)


def test_a_row_missing_an_arm_shows_a_dash():
    t = build_lottery_table([e for e in evals() if not (e["run"]["arm"] == "scratch-e" and e["lr"] == 0.1)])
    assert t[t["lr"] == 0.1]["gain"].isna().all() and "–" in to_markdown(t, "x")
    assert len(findings(t)) == 1  # only LR 0.01 has both arms


@pytest.mark.parametrize(
    "edit, needle",
    [
        (lambda e: e.pop("lr"), "records no initial LR"),
        (lambda e: e["run"].update(arm="finetune"), "the lottery table takes base, winning, scratch-e"),
        (lambda e: e.pop("params"), "lacks accuracy['best'], params or params_full"),
    ],
)
def test_bad_evals_are_one_line_errors(edit, needle):
    bad = evals()
    edit(bad[1])
    with pytest.raises(UserError, match=re.escape(needle)):
        build_lottery_table(bad)


def test_duplicate_evals_are_refused():
    with pytest.raises(UserError, match="two evals for cifar10 vgg16 magnitude 0.5 LR 0.1 winning seed 1"):
        build_lottery_table(evals() + [evals()[1]])


def test_cli_table_and_figure_of_kind_lottery(tmp_path, capsys):
    paths = []
    for i, e in enumerate(evals()):
        write_json(tmp_path / f"e{i}.json", e)
        paths.append(str(tmp_path / f"e{i}.json"))
    main(["table", *paths, "--study", "lottery", "--kind", "lottery", "--csv", str(tmp_path / "t.csv"), "--md", str(tmp_path / "t.md")])
    main(["figure", "--kind", "lottery", "--table", str(tmp_path / "t.csv"), "--out", str(tmp_path / "t.png")])
    assert (tmp_path / "t.png").read_bytes().startswith(PNG)
    with pytest.raises(SystemExit):
        main(["figure", "--table", str(tmp_path / "t.csv"), "--out", str(tmp_path / "u.png")])  # read as a plain table
    assert "lacks the columns" in capsys.readouterr().err and not (tmp_path / "u.png").exists()


def test_channels_name_series_by_method_and_lr(tmp_path):
    from prunebench.report.channels import channels_table, plot_channels

    def rep(method, setting, lr, after):
        run = {"dataset": "cifar10", "arch": "vgg16", "method": method, "setting": setting, "seed": 1, "arm": "pruned"}
        layers = [{"layer": f"features.{i}", "stage": i // 2, "before": 1728 * (i + 1), "after": after * (i + 1)} for i in range(4)]
        return {"run": run, "layers": layers, "unit": "conv weights", "trained_lr": lr}

    reports = [rep("magnitude", "0.5", 0.1, 800), rep("magnitude", "0.5", 0.01, 700), rep("iterative", "2x0.2", 0.1, 1100)]
    t = channels_table(reports)
    assert set(t["setting"]) == {"magnitude 50% @ LR 0.1", "magnitude 50% @ LR 0.01", "iterative 2x0.2 @ LR 0.1"}
    assert len(t) == 12
    plot_channels(reports, tmp_path / "c.png", "channels")
    assert (tmp_path / "c.png").read_bytes().startswith(PNG)


# --------------------------------------------------------------------------- statistics
T_123 = 2 * math.sqrt(3)  # paired differences 1, 2, 3: mean 2, sd 1, t = 2 / (1 / sqrt 3)
P_123 = 0.07417990022744858  # two-sided, 2 df
HALF_123 = 4.302652729911275 / math.sqrt(3)  # t(0.975, 2 df) x sd / sqrt(n), sd = 1


def paired_evals(diffs, lr=0.01, seeds=(1, 2, 3), failed=None):
    """One magnitude 0.5 row: random 90 + seed, winning that plus ``diffs``; base at ``lr`` and at
    another LR; ``failed``: {(arm, seed): [checks]} for evals that failed a sanity check."""
    out = []
    for s, d in zip(seeds, diffs):
        for arm, acc in (("base", 93.0 + s), ("scratch-e", 90.0 + s), ("winning", 90.0 + s + d)):
            e = ev(arm, s, acc, lr, *(() if arm == "base" else ("magnitude", "0.5", 0.5)))
            e["model"] = f"runs/{lr}/{'base' if arm == 'base' else 'magnitude-0.5/' + arm}/seed{s}/model.pt"
            if (arm, s) in (failed or {}):
                e["checks_failed"] = failed[(arm, s)]
            out.append(e)
    return out + [{**ev("base", 1, 50.0, 0.2), "model": "runs/other-lr/base/seed1/model.pt"}]


def test_winning_vs_random_is_a_paired_test_with_intervals():
    r = build_lottery_table(paired_evals((1.0, 2.0, 3.0))).iloc[0]
    assert r["random_mean"] == pytest.approx(92.0) and (r["random_ci95_low"], r["random_ci95_high"]) == pytest.approx((92.0 - HALF_123, 92.0 + HALF_123))
    assert (r["unpruned_ci95_low"], r["unpruned_ci95_high"]) == pytest.approx((95.0 - HALF_123, 95.0 + HALF_123))
    assert r["winning_vs_random_pairs"] == 3 and r["winning_vs_random_diff"] == pytest.approx(2.0)
    assert (r["winning_vs_random_ci95_low"], r["winning_vs_random_ci95_high"]) == pytest.approx((2.0 - HALF_123, 2.0 + HALF_123))
    assert r["winning_vs_random_t"] == pytest.approx(T_123) and r["winning_vs_random_p"] == pytest.approx(P_123)
    assert r["winning_vs_random_verdict"] == "not reproduced: on par; ours +2.00 (p=0.0742, 3 seeds); paper: winning ticket better at LR 0.01"
    runs = r["runs"].split(";")  # the base at this LR, the winning and random runs; not the base at 0.2
    assert len(runs) == 9 and "runs/0.01/base/seed2/model.pt" in runs and not any("other-lr" in m for m in runs)
    assert r["failed_runs"] == 0 and r["failed_checks"] == ""


@pytest.mark.parametrize(
    "lr, diffs, expected",
    [
        (0.1, (1.0, 2.0, 3.0), "reproduced: on par"),
        (0.1, (1.0, 1.1, 0.9), "not reproduced: winning better"),
        (0.1, (-1.0, -1.1, -0.9), "reproduced: random better"),
        (0.01, (1.0, 1.1, 0.9), "reproduced: winning better; ours +1.00 (p=0.00"),
        (0.01, (1.0, 2.0, 3.0), "not reproduced: on par"),
        (0.01, (-1.0, -1.1, -0.9), "not reproduced: random better"),
        (0.05, (1.0, 1.1, 0.9), "winning better; ours +1.00 (p=0.00"),
        (0.01, (1.0,), "untested (1 seed; a test needs 2): ours +1.00, paper: winning ticket better at LR 0.01"),
    ],
)
def test_every_verdict_on_the_lottery_finding(lr, diffs, expected):
    verdict = build_lottery_table(paired_evals(diffs, lr, seeds=(1, 2, 3)[: len(diffs)]))["winning_vs_random_verdict"].iloc[0]
    assert verdict.startswith(expected)
    assert verdict.endswith("the paper makes no claim at LR 0.05") == (lr == 0.05)


def test_a_row_without_common_seeds_or_one_arm_has_no_test():
    no_common = [e for e in paired_evals((1.0, 2.0)) if not (e["run"]["arm"] == "winning" and e["run"]["seed"] == 1) and not (e["run"]["arm"] == "scratch-e" and e["run"]["seed"] == 2)]
    assert build_lottery_table(no_common)["winning_vs_random_verdict"].iloc[0] == "no winning and random runs of the same seed"
    one_arm = build_lottery_table([e for e in paired_evals((1.0, 2.0)) if e["run"]["arm"] != "scratch-e"]).iloc[0]
    assert one_arm["winning_vs_random_verdict"] == "" and one_arm["winning_vs_random_pairs"] == 0


def test_runs_that_failed_a_check_enter_no_mean_or_test(tmp_path):
    evals = paired_evals((1.0, 2.0, 3.0, 9.0), seeds=(1, 2, 3, 4), failed={("winning", 4): ["no_regrowth"], ("base", 1): []})
    evals[0]["checks_failed"] = []  # passed all checks; older evals have no key at all
    r = build_lottery_table(evals).iloc[0]
    assert r["winning_n"] == 3 and r["random_n"] == 4 and r["unpruned_n"] == 4 and r["winning_mean"] == pytest.approx(94.0)
    assert r["winning_vs_random_pairs"] == 3 and r["winning_vs_random_p"] == pytest.approx(P_123)
    assert r["failed_runs"] == 1 and r["failed_checks"] == "winning seed 4: no_regrowth"
    assert "runs/0.01/magnitude-0.5/winning/seed4/model.pt" not in r["runs"]
    t = build_lottery_table(evals)
    md = to_markdown(t, "x")
    assert "- VGG-16 one-shot 50%, LR 0.01: not reproduced: on par; ours +2.00 (p=0.0742, 3 seeds)" in md
    assert "1 run left out for a failed check (winning seed 4: no_regrowth)" in md
    write_lottery_table(t, tmp_path / "t.csv", tmp_path / "t.md", "x")
    back = read_lottery_table(tmp_path / "t.csv")
    assert back["failed_runs"].iloc[0] == 1 and to_markdown(back, "x") == md
