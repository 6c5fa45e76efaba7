"""``prunebench latency``: the kinds of model files (full, physically pruned, masked), the table's
columns and speedups, skipped devices and one-line errors. Timings are only checked to be
positive and finite: their ratios depend on the machine and would make flaky tests."""

from __future__ import annotations

import csv
import logging
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from conftest import check_error_line, run_failing

from prunebench import models
from prunebench.analysis.latency import COLUMNS, as_dense, classify, measure
from prunebench.commands.cli import main
from prunebench.models import masks
from prunebench.pruning import folding
from prunebench.training.checkpoints import load_model, save_model

ARCH = "resnet20"
SMALL_CFG = [8, 8, 8, 16, 16, 16, 32, 32, 32]
FAST = ["--batch", "1", "--batch", "2", "--warmup", "0", "--repeats", "1", "--threads", "1"]


def _run(arm: str, method: str | None = None, setting: str | None = None, dataset: str = "cifar10") -> dict:
    return {"dataset": dataset, "arch": ARCH, "method": method, "setting": setting, "arm": arm, "seed": 1, "scale": "smoke"}


def _save(path: Path, model, options: dict | None = None, **run) -> str:
    save_model(path, model, ARCH, 10, options=options, run=_run(**run))
    return str(path)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, str]:
    """A full resnet20, a physically pruned one, a 90 %-masked one, SFP's soft arm (zeroed
    filters without masks) and its physical.pt, and a pruned one of another dataset with no full
    network beside it."""
    d = tmp_path_factory.mktemp("latency")
    torch.manual_seed(0)
    full = models.build(ARCH)
    masked = masks.apply(masks.clone(full), masks.magnitude_masks(full, 0.9))
    soft = masks.clone(full)
    masks.zero_weights(soft, masks.filter_masks(soft, 0.7))
    options = models.default_options(ARCH)
    physical = folding.physical(masks.apply(masks.clone(soft), masks.zero_pattern(soft)), ARCH, 10, options)
    return {
        "full": _save(d / "full.pt", full, arm="base"),
        "pruned": _save(d / "pruned.pt", models.build(ARCH, SMALL_CFG), arm="finetune", method="uniform", setting="0.5"),
        "masked": _save(d / "masked.pt", masked, arm="finetune", method="magnitude", setting="0.9"),
        "soft": _save(d / "soft.pt", soft, arm="soft", method="sfp", setting="0.7"),
        "physical": _save(d / "physical.pt", physical, {**options, "dead_offsets": True}, arm="physical", method="sfp", setting="0.7"),
        "alone": _save(d / "alone.pt", models.build(ARCH, SMALL_CFG), arm="finetune", method="uniform", setting="0.5", dataset="cifar100"),
    }


def _read(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _latency(files: dict, out: Path, *extra: str) -> tuple[list[dict], str]:
    paths = [files[k] for k in ("full", "pruned", "masked", "soft", "physical", "alone")]
    csv_path, md = out / "latency.csv", out / "latency.md"
    main(["latency", *paths, *FAST, "--csv", str(csv_path), "--md", str(md), *extra])
    return _read(csv_path), md.read_text()


# --------------------------------------------------------------------------- measuring
def test_measure_times_positive_and_restores_threads():
    before = torch.get_num_threads()
    m = measure(models.build(ARCH, SMALL_CFG), batch_size=2, device="cpu", warmup=0, repeats=2, threads=1)
    assert torch.get_num_threads() == before
    assert m["threads"] == 1 and m["repeats"] == 2 and len(m["times_ms"]) == 2
    assert all(t > 0 and math.isfinite(t) for t in m["times_ms"])
    assert m["latency_ms_min"] <= m["latency_ms_median"]
    assert m["throughput_ips"] == pytest.approx(2 * 1000 / m["latency_ms_median"])
    assert m["device_name"].startswith("cpu")


def test_classify_and_fold_masks(files):
    kinds = {k: classify(*load_model(p)) for k, p in files.items()}
    assert kinds == {"full": "full", "pruned": "pruned", "masked": "masked", "soft": "masked", "physical": "pruned", "alone": "pruned"}
    model, _ = load_model(files["masked"])
    dense = as_dense(model)
    assert not masks.is_masked(dense)
    assert masks.sparsity(dense)["sparsity"] > 0.85  # the zeros stay in the plain weights


# --------------------------------------------------------------------------- the command
def test_table_kinds_macs_and_speedups(files, tmp_path):
    rows, md = _latency(files, tmp_path, "--figure", str(tmp_path / "latency.png"))
    assert list(rows[0]) == COLUMNS + ["standin"]
    assert len(rows) == 6 * 2  # six models, two batch sizes, one device
    by = {(Path(r["path"]).stem, int(r["batch"])): r for r in rows}
    for (name, batch), r in by.items():
        assert r["kind"] == {"soft": "masked", "physical": "pruned", "alone": "pruned"}.get(name, name)
        assert r["device"] == "cpu" and r["threads"] == "1" and r["repeats"] == "1"
        for key in ("latency_ms_median", "latency_ms_min", "throughput_ips"):
            assert float(r[key]) > 0 and math.isfinite(float(r[key])), (name, key)
    full, masked, pruned = by[("full", 1)], by[("masked", 1)], by[("pruned", 1)]
    assert float(full["speedup_vs_full"]) == 1.0 and float(full["mac_reduction"]) == 1.0
    assert int(masked["macs"]) < int(full["macs"]) and int(masked["macs_dense"]) == int(full["macs_dense"])
    assert int(pruned["macs_dense"]) == int(pruned["macs"]) < int(full["macs"])
    # the same network folded: also without the products of the dead channels' inputs
    assert int(by[("physical", 1)]["macs"]) <= int(by[("soft", 1)]["macs"]) < int(full["macs"])
    assert float(masked["speedup_vs_full"]) > 0 and float(pruned["mac_reduction"]) > 1
    assert by[("alone", 2)]["speedup_vs_full"] == ""  # no full cifar100 resnet20 in the set
    assert "run the same dense kernels" in md and "| masked |" in md and "1.00×" in md
    assert (tmp_path / "latency.png").stat().st_size > 0


def test_missing_cuda_is_skipped_with_a_warning(files, tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    caplog.set_level(logging.INFO, logger="prunebench")
    rows, md = _latency(files, tmp_path, "--device", "cuda", "--device", "cpu")
    assert {r["device"] for r in rows} == {"cpu"}
    assert any(r.levelno == logging.WARNING and "cuda" in r.getMessage() and "skipped" in r.getMessage() for r in caplog.records)
    assert "Skipped device cuda" in md


def test_only_missing_devices_still_writes_the_files(files, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    rows, md = _latency(files, tmp_path, "--device", "cuda:0")
    assert rows == [] and "no measurements" in md
    assert (tmp_path / "latency.csv").read_text().startswith("path,dataset,arch")


# --------------------------------------------------------------------------- bad input
def _bad(tmp_path: Path, files: dict, *argv: str) -> list[str]:
    return ["latency", *argv, "--csv", str(tmp_path / "o.csv"), "--md", str(tmp_path / "o.md")]


BAD = [
    SimpleNamespace(id="not-a-model", argv=lambda t, f: _bad(t, f, str(t / "notes.pt")), names=r"notes\.pt", hint=r"rerun|delete"),
    SimpleNamespace(id="missing-file", argv=lambda t, f: _bad(t, f, str(t / "gone.pt")), names=r"gone\.pt", hint=r"check the path|rerun"),
    SimpleNamespace(id="empty-list", argv=lambda t, f: _bad(t, f), names=r"MODELS", hint=r"--help"),
    SimpleNamespace(id="batch-zero", argv=lambda t, f: _bad(t, f, f["full"], "--batch", "0"), names=r"--batch", hint=r"--help"),
    SimpleNamespace(id="unknown-device", argv=lambda t, f: _bad(t, f, f["full"], "--device", "banana"), names=r"banana", hint=r"use cpu, cuda"),
]


@pytest.mark.parametrize("case", BAD, ids=lambda c: c.id)
def test_bad_input_is_one_line(case, files, tmp_path, capfd, caplog):
    (tmp_path / "notes.pt").write_text("not a checkpoint")
    code, err, logged = run_failing(main, case.argv(tmp_path, files), case.id, capfd, caplog)
    check_error_line(code, err, case, logged)
    assert not (tmp_path / "o.csv").exists() and not (tmp_path / "o.md").exists()
