"""The speed benchmark on CPU: both paths run and report, packing and projection add up, and a
short training run reaches the same accuracy through the fast path and the reference loop."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from prunebench.analysis import bench as B
from prunebench.core.io import save_torch


@pytest.fixture(scope="module")
def learnable(tmp_path_factory):
    """10 classes, each a fixed random colour template plus pixel noise: learnable in a few epochs."""
    g = torch.Generator().manual_seed(0)
    templates = torch.randint(0, 256, (10, 1, 1, 3), generator=g).float()

    def make(n_per_class):
        x = templates.repeat_interleave(n_per_class, 0).expand(-1, 32, 32, 3)
        x = (x + 40 * torch.randn(x.shape, generator=g)).clamp(0, 255).to(torch.uint8)
        return x, torch.arange(10).repeat_interleave(n_per_class)

    (tx, ty), (vx, vy) = make(48), make(20)
    path = tmp_path_factory.mktemp("bench") / "learnable.pt"
    save_torch(path, {"dataset": "cifar10", "classes": [str(i) for i in range(10)], "source": "test",
                      "train_x": tx, "train_y": ty, "test_x": vx, "test_y": vy})  # fmt: skip
    return str(path)


def test_short_run_reaches_same_accuracy_both_ways(learnable):
    s = B.Settings(learnable, device="cpu", batch_size=32, warmup=1, steps=2, workers=0, acc_epochs=6, threads=1)
    case = B.Case.parse("resnet20")
    ref = B.run_case(case, "reference", s)
    fast = B.run_case(case, "prunebench", s)
    assert ref["accuracy"] > 50 and fast["accuracy"] > 50  # chance is 10%
    assert abs(ref["accuracy"] - fast["accuracy"]) <= 15


def test_benchmark_reports_both_paths_packing_and_projection(tiny_prepared):
    s = B.Settings(str(tiny_prepared), device="cpu", batch_size=16, warmup=1, steps=2, workers=0, acc_epochs=0, threads=1)
    result = B.run([B.Case.parse("resnet20")], s, pack=2, log=lambda *_: None)
    assert result["device"].startswith("CPU")
    paths = {(r["model"], r["path"]) for r in result["rows"]}
    assert paths == {("resnet20", "reference"), ("resnet20", "prunebench")}
    for r in result["rows"]:
        assert r["images_per_s"] > 0 and r["host_peak_mib"] > 100 and r["device_peak_mib"] is None
        assert math.isclose(r["seconds_per_epoch"], 50_000 / r["images_per_s"])
    fast = next(r for r in result["rows"] if r["path"] == "prunebench")
    ref = next(r for r in result["rows"] if r["path"] == "reference")
    assert math.isclose(result["ratios"]["resnet20"], fast["images_per_s"] / ref["images_per_s"])
    p = result["packing"]
    assert p["runs"] == 2 and p["aggregate_images_per_s"] > 0
    assert math.isclose(p["speedup"], p["aggregate_images_per_s"] / p["single_images_per_s"])

    proj = B.project_table1(result, {"resnet20": []}, seeds=5, budget=160)
    assert proj["runs"] == 5
    expected = 5 * 160 * fast["seconds_per_epoch"] / 3600
    assert math.isclose(proj["gpu_hours_prunebench"], expected)
    assert math.isclose(proj["gpu_hours_prunebench_packed"], expected / p["speedup"])
    result["projection"] = proj
    md = B.to_markdown(result)
    assert "CPU" in md and "| resnet20 | reference |" in md and "| resnet20 | prunebench |" in md
    assert "Packing: 2 resnet20 runs" in md


def test_projection_scales_untimed_variants_by_macs():
    from prunebench import models
    from prunebench.models.counting import count_macs

    rows = [
        {"model": "resnet56", "path": "prunebench", "seconds_per_epoch": 10.0},
        {"model": "resnet56", "path": "reference", "seconds_per_epoch": 50.0},
    ]
    proj = B.project_table1({"rows": rows}, {"resnet56": ["B"]}, seeds=1, budget=160, finetune=40)
    full = count_macs(models.build("resnet56"))
    pruned = count_macs(models.build("resnet56", B.Case("resnet56", "B").cfg()))
    epochs_b = int(160 * full / pruned)  # 220
    expected = (160 * 10 + (40 + 160 + epochs_b) * 10 * pruned / full) / 3600
    assert math.isclose(proj["gpu_hours_prunebench"], expected)
    assert proj["estimated_from_macs"] == ["resnet56-B"] and proj["runs"] == 4


def test_unknown_bench_model_is_a_user_error():
    from prunebench.core.errors import UserError

    with pytest.raises(UserError, match="unknown arch"):
        B.Case.parse("resnet57")
    with pytest.raises(UserError, match="unknown pruned variant"):
        B.Case.parse("resnet56-Z").cfg()


# --------------------------------------------------------------------------- the speed suite
def test_speed_suite_runs_end_to_end_and_projects_every_study(tiny_prepared, tmp_path):
    """`bench --suite` in its CPU form: every reading, its ratios and TFLOP/s, the projection."""
    import json

    from click.testing import CliRunner

    from prunebench.commands.cli import cli

    repo = Path(__file__).resolve().parents[1]
    out = tmp_path / "suite.json"
    args = ["bench", "--suite", "--models", "resnet20", "--data", str(tiny_prepared), "--device", "cpu", "--batch-size", "16", "--warmup", "1", "--steps", "2",
            "--workers", "0", "--threads", "1", "--precisions", "fp32", "--config", str(repo / "config.yaml"), "--out-json", str(out), "--out-md", str(tmp_path / "suite.md")]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    got = json.loads(out.read_text())
    assert [r["what"] for r in got["rows"]] == ["reference loop", "eager", "graphed fp32", "fused K=1 fp32", "fused K=2 fp32", "packed 2 fp32"]
    assert not got["skipped"] and got["device"] == "CPU"
    reference = got["rows"][0]["images_per_s"]
    for r in got["rows"]:
        assert r["images_per_s"] > 0 and r["vs_reference"] == pytest.approx(r["images_per_s"] / reference)
        assert r["tflops"] == pytest.approx(6 * got["macs"] * r["images_per_s"] / 1e12)
        assert r["seconds_per_epoch"] == pytest.approx(50_000 * r["runs"] / r["images_per_s"])
    projected = {p["study"]: p for p in got["projection"]}
    assert set(projected) == {"l1", "slimming", "unstructured", "lottery", "archsearch", "sfp", "li"}  # ImageNet: not CIFAR
    assert projected["l1"]["runs"] == 90 and not projected["l1"]["estimated"] and projected["unstructured"]["estimated"]
    for p in projected.values():
        assert all(p[f"gpu_hours_{k}"] > 0 for k in ("alone", "packed", "fused"))
    md = (tmp_path / "suite.md").read_text()
    assert "| fused K=2 fp32 (eager: no CUDA graphs here) | 2 |" in md and "| l1 | 90 |" in md and "Command: `prunebench" in md


def test_speed_suite_respects_its_budget(tiny_prepared):
    from prunebench.analysis import suite

    s = B.Settings(str(tiny_prepared), device="cpu", batch_size=16, warmup=1, steps=2, workers=0, acc_epochs=0, threads=1)
    result = suite.run("resnet20", s, ("fp32",), 5, budget_s=0.001, log=lambda *_: None)
    assert [r["what"] for r in result["rows"]] == ["reference loop"]  # begun in budget, the rest skipped
    assert result["skipped"] == ["eager", "graphed fp32", "fused K=1 fp32", "fused K=2 fp32", "packed 2 fp32"]
    assert "Skipped (the 0 s budget ran out)" in suite.to_markdown(result, [], "cmd")


def test_fused_steps_of_the_suite_take_k_copies(tiny_prepared):
    from prunebench.analysis import suite

    s = B.Settings(str(tiny_prepared), device="cpu", batch_size=16, warmup=1, steps=2, workers=0, acc_epochs=0, threads=1)
    one = suite._timed_fused("resnet20", 1, B.Data(str(tiny_prepared)), s, torch.device("cpu"), "fp32")
    three = suite._timed_fused("resnet20", 3, B.Data(str(tiny_prepared)), s, torch.device("cpu"), "fp32")
    assert one["images_per_s"] > 0 and three["images_per_s"] > 0 and not three["cuda_graph"]
