"""Image files that do not decode (an HTML error page, an empty file, a cut-short JPEG where an
ImageNet JPEG should be) end in one line naming the file: at ``prepare --verify`` (and then no
manifest is written) and when a run's loaders decode them, DataLoader workers included."""

from __future__ import annotations

import json
import pickle
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from conftest import check_error_line, prunebench_process, run_failing

from prunebench.commands.cli import main
from prunebench.core.errors import UserError
from prunebench.data import image_check
from prunebench.data.image_check import BadImage, reason, sample_positions, verify_images
from prunebench.data.imagenet import prepare
from prunebench.data.imagenet_loaders import imagenet_loaders, split_batches
from prunebench.data.imagenet_tree import write_tiny_imagenet

CPU = torch.device("cpu")
SMALL = {"crop": 32, "resize": 36}
PREPARE_HINT = r"re-download it or delete it and rerun prepare$"
RUN_HINT = r"re-download it or delete it, and run 'prunebench prepare --dataset imagenet --verify all' to find every bad file$"
HTML = b"<!DOCTYPE html>\n<html><head><title>403 Forbidden</title></head><body>Forbidden</body></html>\n"
# what each broken file holds, from a good JPEG's bytes, and the reason the line gives
BREAKS = {
    "html": (lambda good: HTML, r"cannot identify image file"),
    "empty": (lambda good: b"", r"the file is empty"),
    "truncated": (lambda good: good[: len(good) // 2], r".+"),  # PIL's words vary
}


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> Path:
    """A tiny ImageNet-shaped data_root: 3 classes, 5 train and 2 val images each."""
    root = tmp_path_factory.mktemp("clean")
    write_tiny_imagenet(root, classes=3, train_per_class=5, val_per_class=2)
    return root


def files(root: Path, split: str) -> list[Path]:
    """The split's images in ImageFolder order (what the loaders and --verify number)."""
    return sorted((root / "imagenet" / split).glob("*/*.JPEG"))


def broken(clean: Path, tmp_path: Path, *bad: tuple[str, int, str]) -> tuple[Path, list[Path]]:
    """A copy of ``clean`` with each (split, position, kind) file replaced by a broken one."""
    root = tmp_path / "root"
    shutil.copytree(clean, root)
    paths = []
    for split, position, kind in bad:
        path = files(root, split)[position]
        path.write_bytes(BREAKS[kind][0](path.read_bytes()))
        paths.append(path)
    return root, paths


def case(id: str, path: Path, kind: str, hint: str) -> SimpleNamespace:
    return SimpleNamespace(id=id, names=rf"^prunebench: error: {re.escape(str(path))} does not decode as an image \({BREAKS[kind][1]}\);", hint=hint)


def prepare_argv(root: Path, out: Path, *verify: str) -> list[str]:
    return ["prepare", "--dataset", "imagenet", "--data-root", str(root), "--out", str(out), *verify]


# --------------------------------------------------------------------------- prepare --verify
@pytest.mark.parametrize("split, kind", [("train", "html"), ("val", "empty"), ("train", "truncated")])
def test_verify_all_names_the_file_and_writes_nothing(clean, tmp_path, capfd, caplog, monkeypatch, split, kind):
    monkeypatch.delenv("PRUNEBENCH_DEBUG", raising=False)
    root, (bad,) = broken(clean, tmp_path, (split, 3 if split == "train" else 1, kind))
    out = tmp_path / "results" / "imagenet.json"
    rc, err, logged = run_failing(main, prepare_argv(root, out, "--verify", "all"), kind, capfd, caplog)
    check_error_line(rc, err, case(kind, bad, kind, PREPARE_HINT), logged)
    assert not (tmp_path / "results").exists()


def test_verify_all_reports_every_bad_file(clean, tmp_path, capfd, caplog, monkeypatch):
    """The first bad file in the line, the others logged before it, so one pass finds them all."""
    monkeypatch.delenv("PRUNEBENCH_DEBUG", raising=False)
    root, (first, second, third) = broken(clean, tmp_path, ("train", 0, "html"), ("train", 7, "empty"), ("val", 5, "truncated"))
    out = tmp_path / "imagenet.json"
    rc, err, logged = run_failing(main, prepare_argv(root, out, "--verify", "all"), "several", capfd, caplog)
    assert rc == 2 and err.splitlines() == [
        f"prunebench: error: {first} does not decode as an image (cannot identify image file), nor do 2 other files (logged above); re-download them or delete them and rerun prepare"
    ], err
    assert logged[0] == f"WARNING {second} does not decode as an image (the file is empty)"
    assert len(logged) == 2 and logged[1].startswith(f"WARNING {third} does not decode as an image (")
    assert not out.exists()


def test_verify_sample_decodes_a_fixed_sample(clean, tmp_path, capfd, caplog, monkeypatch):
    """--verify sample catches a bad file in its sample and, being a sample, not one outside it."""
    monkeypatch.delenv("PRUNEBENCH_DEBUG", raising=False)
    monkeypatch.setattr(image_check, "SAMPLE_LEAST", 4)  # 4 of the 15 train images, 4 of the 6 val
    inside = sample_positions(15, "train")
    outside = next(i for i in range(15) if i not in inside)
    assert len(inside) == 4 and inside == sample_positions(15, "train")
    root, (bad,) = broken(clean, tmp_path / "in", ("train", inside[1], "html"))
    rc, err, logged = run_failing(main, prepare_argv(root, tmp_path / "in.json", "--verify", "sample"), "in-sample", capfd, caplog)
    check_error_line(rc, err, case("in-sample", bad, "html", PREPARE_HINT), logged)
    assert not (tmp_path / "in.json").exists()
    root, _ = broken(clean, tmp_path / "out", ("train", outside, "html"))
    main(prepare_argv(root, tmp_path / "out.json", "--verify", "sample"))
    assert json.loads((tmp_path / "out.json").read_text())["images"] == {"train": 15, "val": 6}


def test_sample_size_and_draw():
    assert sample_positions(150, "train") == list(range(150))  # a small split: every image
    big = sample_positions(50_000, "train")
    assert len(big) == 500 and big == sorted(set(big)) and big == sample_positions(50_000, "train")
    assert big != sample_positions(50_000, "val")
    assert len(sample_positions(1_281_167, "train")) == 12_812  # ILSVRC-2012's train split: 1 %


def test_verify_none_decodes_nothing(clean, tmp_path, monkeypatch):
    """The default: today's manifest, at today's cost (no image opened), bad files or not."""
    root, _ = broken(clean, tmp_path, ("train", 2, "html"))
    monkeypatch.setattr(image_check, "load_rgb", lambda path: pytest.fail(f"--verify none decoded {path}"))
    main(prepare_argv(root, tmp_path / "default.json"))
    main(prepare_argv(root, tmp_path / "none.json", "--verify", "none"))
    default, none = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("default", "none"))
    assert default == none and none["images"] == {"train": 15, "val": 6}


def test_verify_logs_progress(clean, monkeypatch, caplog):
    monkeypatch.setattr(image_check, "PROGRESS_S", 0.0)
    caplog.set_level("INFO", logger="prunebench")
    assert verify_images(clean / "imagenet", ["n00000000", "n00000001", "n00000002"], "all") == 21
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("verify all: 1/21 images decoded, 0 bad so far (") and len(lines) == 22
    assert lines[-1] == "verify all: all 21 images decoded"
    with pytest.raises(UserError, match=r"unknown verify mode 'most'; choose one of none, sample, all"):
        verify_images(clean / "imagenet", [], "most")


def test_cli_verify_modes_agree_with_image_check():
    from prunebench.commands import data as data_commands

    assert data_commands.VERIFY_MODES == image_check.VERIFY_MODES


def test_reason_and_pickling():
    cpp = RuntimeError("decode_jpeg, /src/vision/csrc/io/image/cpu/decode_jpeg.cpp:171, Not a JPEG file: starts with 0x3c 0x21")
    assert reason(cpp) == "Not a JPEG file: starts with 0x3c 0x21"
    assert reason(OSError("image file is truncated (3 bytes not processed).\nMore.")) == "image file is truncated (3 bytes not processed)"
    assert reason(ValueError()) == "ValueError"
    e = pickle.loads(pickle.dumps(BadImage("a/b.JPEG", "the file is empty")))
    assert isinstance(e, UserError) and str(e) == str(BadImage("a/b.JPEG", "the file is empty"))


# --------------------------------------------------------------------------- the runs' loaders
def one_line(call, path: Path, kind: str) -> None:
    """``call`` fails with the line a user sees (``kind``: the reason's; None: any). Caught by
    hand: pytest.raises would keep the traceback in a cycle, and a loader's persistent workers
    collected as cyclic garbage take 5 s each to stop (their queues are finalised first)."""
    try:
        call()
    except UserError as e:
        line = f"prunebench: error: {e}"  # as the entry point prints it
    else:
        pytest.fail("no UserError")
    names = case(kind, path, kind, "").names if kind else rf"^prunebench: error: {re.escape(str(path))} does not decode as an image \(.+\);"
    assert "\n" not in line and re.search(names, line) and re.search(RUN_HINT, line), line


@pytest.mark.parametrize("kind, workers", [("html", 0), ("empty", 0), ("truncated", 2)])
def test_cpu_loaders_name_the_file(clean, tmp_path, kind, workers):
    """PIL's error, in the main process or a worker, arrives as one line naming the file."""
    root, (bad_train, bad_val) = broken(clean, tmp_path, ("train", 4, kind), ("val", 3, kind))
    train, val = imagenet_loaders(root, 4, workers, 0, 0, "cpu", **SMALL)
    one_line(lambda: list(train), bad_train, kind)
    one_line(lambda: list(val), bad_val, kind)


@pytest.mark.parametrize("kind, workers", [("html", 2), ("empty", 0), ("truncated", 0)])
def test_gpu_path_names_the_file(clean, tmp_path, kind, workers):
    """The GPU path's steps on the CPU: the header read in a worker (train), the file read in a
    worker (an empty one), torchvision's decode in the main process (val; its RuntimeError)."""
    root, (bad_train, bad_val) = broken(clean, tmp_path, ("train", 4, kind), ("val", 3, kind))
    for split, bad in (("train", bad_train), ("val", bad_val)):
        batches = split_batches(root / "imagenet", split, 4, workers, 0, 0, CPU, None, True, 32, 36)
        one_line(lambda: list(batches), bad, kind if split == "train" or kind == "empty" else None)


# --------------------------------------------------------------------------- the commands
@pytest.fixture(scope="module")
def trained(clean, tmp_path_factory) -> SimpleNamespace:
    """A run of ThiNet's VGG-Tiny trained one epoch on the clean tree (at 32-pixel crops)."""
    work = tmp_path_factory.mktemp("run")
    prepare(clean, work / "imagenet.json")
    model, metrics = work / "model.pt", work / "metrics.json"
    main(RUN + ["--data", str(work / "imagenet.json"), "--model-out", str(model), "--metrics-out", str(metrics)])
    return SimpleNamespace(model=model, metrics=metrics)


RUN = [
    "train", "--arch", "vgg16_nobn", "--arm", "scratch-e", "--method", "published", "--setting", "thinet_tiny",
    "--epochs", "1", "--lr", "0.05", "--batch-size", "8", "--test-batch-size", "4",
    "--crop", "32", "--resize", "36", "--workers", "0", "--threads", "1", "--device", "cpu",
]  # fmt: skip


def _evaluate(trained, manifest: Path, out: Path) -> list[str]:
    return ["evaluate", "--model", str(trained.model), "--metrics", str(trained.metrics), "--data", str(manifest), "--device", "cpu", "--workers", "2", "--out", str(out)]


def test_evaluate_names_the_file(clean, trained, tmp_path, capfd, caplog, monkeypatch):
    """The cheapest command that decodes images, its loader in two worker processes."""
    monkeypatch.delenv("PRUNEBENCH_DEBUG", raising=False)
    root, (bad,) = broken(clean, tmp_path, ("val", 2, "html"))
    prepare(root, tmp_path / "imagenet.json")
    out = tmp_path / "eval.json"
    rc, err, logged = run_failing(main, _evaluate(trained, tmp_path / "imagenet.json", out), "evaluate", capfd, caplog)
    check_error_line(rc, err, case("evaluate", bad.resolve(), "html", RUN_HINT), logged)
    assert not out.exists()


def test_train_names_the_file(clean, tmp_path, capfd, caplog, monkeypatch):
    """Training ends at the first batch: its start logged, then the one line."""
    monkeypatch.delenv("PRUNEBENCH_DEBUG", raising=False)
    root, (bad,) = broken(clean, tmp_path, ("train", 6, "truncated"))
    prepare(root, tmp_path / "imagenet.json")
    argv = [*RUN, "--workers", "2", "--data", str(tmp_path / "imagenet.json"), "--model-out", str(tmp_path / "m.pt"), "--metrics-out", str(tmp_path / "m.json")]
    rc, err, logged = run_failing(main, argv, "train", capfd, caplog)
    assert len(logged) == 1 and logged[0].startswith("INFO train "), logged
    check_error_line(rc, err, case("train", bad.resolve(), "truncated", RUN_HINT))
    assert not (tmp_path / "m.pt").exists()


def test_evaluate_in_a_process(clean, trained, tmp_path):
    """The real process, as a user runs it: one line on stderr, no worker's traceback."""
    root, (bad,) = broken(clean, tmp_path, ("val", 0, "empty"))
    prepare(root, tmp_path / "imagenet.json")
    proc = prunebench_process(_evaluate(trained, tmp_path / "imagenet.json", tmp_path / "eval.json"), tmp_path)
    check_error_line(proc.returncode, proc.stderr, case("process", bad.resolve(), "empty", RUN_HINT))
