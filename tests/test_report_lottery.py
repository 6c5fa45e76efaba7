"""The lottery table and figure: winning vs random per LR and setting, the paper's finding
beside ours, and one-line errors for evals the table cannot use."""

from __future__ import annotations

import re

import pytest

from prunebench.cli import main
from prunebench.errors import UserError
from prunebench.io import write_json
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
