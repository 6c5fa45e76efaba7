"""Tables and figures of the masked studies: SFP's soft-pruned column, a prune-ratio sweep drawn
as accuracy against ratio, and no empty arm or paper columns."""

from __future__ import annotations

import pandas as pd

from prunebench.core.names import display_name
from prunebench.report.figure import plot_study
from prunebench.report.sweep import is_sweep
from prunebench.report.table import build_table, present_arms, read_table, to_markdown, write_table

PNG = b"\x89PNG\r\n\x1a\n"
FULL = {"vgg19": (398_000_000, 20_040_000), "resnet56": (125_485_696, 853_018)}
EMPTY_PAPER = pd.DataFrame()


def ev(arch, setting, arm, seed, best, method, dataset="cifar10"):
    full = FULL[arch]
    sparse = 1.0 - float(setting) if method == "magnitude" and setting else 0.7
    macs, params = full if arm == "base" else (int(full[0] * sparse), int(full[1] * sparse))
    return {
        "run": {"dataset": dataset, "arch": arch, "method": None if arm == "base" else method, "setting": setting, "arm": arm, "seed": seed, "scale": "smoke"},
        "accuracy": {"best": best, "final": best, "evaluated": best},
        "macs": macs, "params": params, "macs_full": full[0], "params_full": full[1], "epochs": 1,
        "model": f"runs/{arch}/{setting}/{arm}/seed{seed}/model.pt", "standin": False,
    }


def sfp_evals():
    out = [ev("resnet56", None, "base", s, 93.0 + s / 10, "sfp") for s in (1, 2)]
    for s in (1, 2):
        out += [ev("resnet56", "0.7", arm, s, acc + s / 10, "sfp") for arm, acc in (("soft", 92.5), ("scratch-e", 92.0), ("scratch-b", 92.8))]
    return out


def sweep_evals():
    out = [ev("vgg19", None, "base", 1, 93.5, "magnitude")]
    for ratio, drop in (("0.3", 0.0), ("0.5", 0.1), ("0.7", 0.3), ("0.9", 1.0), ("0.95", 2.5)):
        out += [
            ev("vgg19", ratio, "finetune", 1, 93.5 - drop / 2, "magnitude"),
            ev("vgg19", ratio, "scratch-e", 1, 93.0 - drop, "magnitude"),
            ev("vgg19", ratio, "scratch-b", 1, 93.4 - drop, "magnitude"),
        ]
    return out


def test_sfp_table_has_a_soft_pruned_column_and_no_fine_tuned_one():
    df = build_table(sfp_evals(), "sfp", paper=EMPTY_PAPER)
    assert present_arms(df) == ["unpruned", "soft", "scratch-e", "scratch-b"]
    row = df.iloc[0]
    assert row["model"] == "ResNet-56 (keep 70%)"
    assert abs(row["soft_mean"] - 92.65) < 1e-9 and row["soft_n"] == 2 and row["finetune_n"] == 0
    md = to_markdown(df, "SFP")
    head = next(line for line in md.splitlines() if line.startswith("| Model"))
    assert "soft-pruned" in head and "fine-tuned" not in head and "Paper" not in head
    assert "No published numbers" in md


def test_an_empty_table_keeps_the_usual_columns():
    assert present_arms(build_table([], "l1", paper=EMPTY_PAPER)) == ["unpruned", "finetune", "scratch-e", "scratch-b"]


def test_display_names_of_settings():
    assert display_name("resnet56", "0.7", "sfp") == "ResNet-56 (keep 70%)"
    assert display_name("vgg19", "0.95", "magnitude") == "VGG-19 (95%)"
    assert display_name("densenetbc100", "0.5") == "DenseNet-BC-100 (50%)"


def test_a_ratio_sweep_is_drawn_against_the_ratio(tmp_path):
    df = build_table(sweep_evals(), "unstructured", paper=EMPTY_PAPER)
    assert is_sweep(df)
    assert list(df["setting"]) == ["0.3", "0.5", "0.7", "0.9", "0.95"]
    csv, md, png = tmp_path / "t.csv", tmp_path / "t.md", tmp_path / "t.png"
    write_table(df, csv, md, "unstructured")
    plot_study(read_table(csv), png, "unstructured")
    assert png.read_bytes().startswith(PNG)


def test_two_settings_are_no_sweep(tmp_path):
    evals = [e for e in sweep_evals() if e["run"]["setting"] in (None, "0.3", "0.95")]
    df = build_table(evals, "unstructured", paper=EMPTY_PAPER)
    assert not is_sweep(df)
    plot_study(df, tmp_path / "bars.png", "unstructured")  # the bar figure, as for slimming
    assert (tmp_path / "bars.png").read_bytes().startswith(PNG)


def test_sfp_bar_figure(tmp_path):
    plot_study(build_table(sfp_evals(), "sfp", paper=EMPTY_PAPER), tmp_path / "sfp.png", "sfp")
    assert (tmp_path / "sfp.png").read_bytes().startswith(PNG)
