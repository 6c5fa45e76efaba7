"""Malformed data inputs: every one must end in one clear line, never a traceback, and leave
nothing behind.

As in test_bad_inputs.py, ``CASES`` is a table of distinct bad inputs run through the real entry
point ``prunebench.commands.cli.main`` in-process, and the test checks what a user sees: a non-zero exit,
exactly one stderr line ``prunebench: error: ...`` naming the problem (a per-case regex) and the
fix (a second regex), no traceback, no log line before it, and no partial output. For
``prepare`` that means nothing at all: no output, no temporary file, no ``.lock`` file and not
even the folder made for the output.

The inputs: prepared-dataset files that load but are not of prepare's form (``train --data``,
one ``evaluate --data``), damaged CIFAR-100 in each local form ``prepare`` reads (torchvision's
pickles, a tarball, nothing at all), and JSON files that are empty or not UTF-8 (``table``).
"""

from __future__ import annotations

import json
import os
import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

import numpy as np
import pytest
import torch
from conftest import CLASSES100, check_error_line, prunebench_process, run_failing, write_cifar_pickles, write_image_tree, write_tarball

from prunebench import models
from prunebench.commands.cli import main
from prunebench.training.checkpoints import save_model

PREPARED_HINT = r"make it with 'prunebench prepare'$"
TORCH_HINT = r"delete it and rerun the step that makes it$"
PICKLE_HINT = r"replace \S*cifar-100-python with a complete copy"
RUN = {"dataset": "cifar10", "arch": "resnet20", "variant": None, "arm": "base", "seed": 1, "scale": "custom"}


@dataclass(frozen=True)
class Case:
    """One malformed input: ``make(a, tmp)`` returns ``(argv, outputs)``, the command line and the
    paths it must not leave behind (files, or for prepare the output's new folder)."""

    id: str
    make: Callable
    names: str
    hint: str


# --------------------------------------------------------------------------- prepared-dataset files
def _bad_prepared(mutate: Callable[[dict], object]) -> Callable[[SimpleNamespace, Path], Path]:
    """A torch file holding ``mutate(blob)`` (or the mutated blob, if it returns None), where blob
    is a valid prepared dataset."""

    def make(a: SimpleNamespace, tmp: Path) -> Path:
        blob = torch.load(a.data, map_location="cpu", weights_only=True)
        obj = mutate(blob)
        path = tmp / "bad.pt"
        torch.save(blob if obj is None else obj, path)
        return path

    return make


def _raw_file(content: Callable[[SimpleNamespace], bytes]) -> Callable[[SimpleNamespace, Path], Path]:
    def make(a: SimpleNamespace, tmp: Path) -> Path:
        path = tmp / "bad.pt"
        path.write_bytes(content(a))
        return path

    return make


def _set(key: str, value: Callable[[dict], object]):
    def mutate(blob: dict) -> None:
        blob[key] = value(blob)

    return mutate


def _drop(*keys: str):
    def mutate(blob: dict) -> None:
        for k in keys:
            del blob[k]

    return mutate


def _label(split: str, value: int):
    def mutate(blob: dict) -> None:
        blob[f"{split}_y"] = blob[f"{split}_y"].clone()
        blob[f"{split}_y"][3] = value

    return mutate


def _empty_train(blob: dict) -> None:
    blob["train_x"], blob["train_y"] = blob["train_x"][:0], blob["train_y"][:0]


BAD_PREPARED = {
    # id: (builder, regex naming the problem)
    "tensor": (_bad_prepared(lambda b: torch.zeros(3)), r"it holds a Tensor, not a mapping of fields"),
    "list": (_bad_prepared(lambda b: [b["train_x"], b["train_y"]]), r"it holds a list, not a mapping of fields"),
    "lacks-test-split": (_bad_prepared(_drop("test_x", "test_y")), r"it lacks test_x"),
    "float-images": (_bad_prepared(_set("train_x", lambda b: b["train_x"].float())), r"train_x: expected a uint8 4-D 32x32x3 tensor, not float32 \(128, 32, 32, 3\)"),
    "nchw-images": (_bad_prepared(_set("test_x", lambda b: b["test_x"].permute(0, 3, 1, 2).contiguous())), r"test_x: expected a uint8 4-D 32x32x3 tensor, not uint8 \(40, 3, 32, 32\)"),
    "small-images": (_bad_prepared(_set("test_x", lambda b: b["test_x"][:, :28, :28].contiguous())), r"test_x: expected .* tensor, not uint8 \(40, 28, 28, 3\)"),
    "float-labels": (_bad_prepared(_set("train_y", lambda b: b["train_y"].float())), r"train_y: expected an int64 1-D tensor, not float32 \(128,\)"),
    "label-too-large": (_bad_prepared(_label("test", 10)), r"test_y has labels outside 0\.\.9"),
    "negative-label": (_bad_prepared(_label("train", -1)), r"train_y has labels outside 0\.\.9"),
    "lengths-disagree": (_bad_prepared(_set("train_y", lambda b: b["train_y"][:-1].clone())), r"train_x holds 128 images but train_y 127 labels"),
    "no-train-images": (_bad_prepared(_empty_train), r"train_x holds no images"),
    "unknown-dataset": (_bad_prepared(_set("dataset", lambda b: "mnist")), r"dataset: input should be 'cifar10' or 'cifar100', got 'mnist'"),
    "wrong-class-count": (_bad_prepared(_set("classes", lambda b: b["classes"][:5])), r"classes lists 5 classes for cifar10, which has 10"),
}  # fmt: skip

CORRUPT_PREPARED = {
    "truncated": _raw_file(lambda a: a.data.read_bytes()[: a.data.stat().st_size // 2]),
    "empty": _raw_file(lambda a: b""),
    "text": _raw_file(lambda a: b"train_x,train_y\n1,2\n"),
}


def _train(a, tmp: Path, data: Path):
    out = tmp / "run"
    argv = [
        "train", "--arch", "resnet20", "--arm", "base", "--data", str(data), "--epochs", "1", "--lr", "0.1",
        "--device", "cpu", "--model-out", str(out / "model.pt"), "--metrics-out", str(out / "metrics.json"),
    ]  # fmt: skip
    return argv, [out / "model.pt", out / "metrics.json", out / "checkpoint.pt"]


def _evaluate(a, tmp: Path, data: Path):
    out = tmp / "eval" / "eval.json"
    argv = ["evaluate", "--model", str(a.model), "--metrics", str(a.metrics), "--data", str(data), "--device", "cpu", "--out", str(out)]
    return argv, [out]


# --------------------------------------------------------------------------- CIFAR-100 sources
def _prepare100(tmp: Path, root: Path):
    """prepare cifar100 into a folder that does not exist yet: it must not exist afterwards."""
    out = tmp / "prepared" / "cifar100.pt"
    argv = ["prepare", "--dataset", "cifar100", "--data-root", str(root), "--out", str(out), "--no-download"]
    return argv, [tmp / "prepared"]


def _pickles(tmp: Path) -> Path:
    root = tmp / "tv"
    write_cifar_pickles(root, "cifar100", n_train=2, n_test=1)
    return root


def _pickle_edit(name: str, edit: Callable[[dict], object]) -> Callable[[Path], Path]:
    """torchvision's layout with the pickle ``name`` replaced by ``edit(its dict)``."""

    def make(tmp: Path) -> Path:
        root = _pickles(tmp)
        path = root / "cifar-100-python" / name
        with open(path, "rb") as f:
            entry = pickle.load(f)
        obj = edit(entry)
        with open(path, "wb") as f:
            pickle.dump(entry if obj is None else obj, f, protocol=2)
        return root

    return make


def _pickle_missing(tmp: Path) -> Path:
    root = _pickles(tmp)
    (root / "cifar-100-python" / "test").unlink()
    return root


def _pickle_truncated(tmp: Path) -> Path:
    root = _pickles(tmp)
    path = root / "cifar-100-python" / "train"
    path.write_bytes(path.read_bytes()[:1000])
    return root


class _Payload:
    """What a malicious pickle does: call a function while loading (here a harmless mkdir)."""

    def __init__(self, target: Path):
        self.target = target

    def __reduce__(self):
        return os.makedirs, (str(self.target),)


def _pickle_with_code(tmp: Path) -> Path:
    return _pickle_edit("train", lambda e: {**e, b"batch_label": _Payload(tmp / "pwned")})(tmp)


def _labels_out_of_range(entry: dict) -> None:
    entry[b"fine_labels"] = [*entry[b"fine_labels"][:-1], 100]


def _tarroot100(tmp: Path, **kw) -> Path:
    tree, root = tmp / "tree100", tmp / "tarroot"
    write_image_tree(tree, classes=CLASSES100, n_train=1, n_test=1)
    root.mkdir()
    blob = write_tarball(tree, tmp / "full.tar.gz", arcname="cifar100").read_bytes()
    (root / "cifar100-png.tar.gz").write_bytes(blob[: len(blob) // 2])
    return root


def _only_cifar10_tarball(tmp: Path) -> Path:
    tree, root = tmp / "tree10", tmp / "tarroot"
    write_image_tree(tree, n_train=1, n_test=1)
    root.mkdir()
    write_tarball(tree, root / "cifar10-jpeg.tar.gz")
    return root


# --------------------------------------------------------------------------- JSON files
def _table(tmp: Path, content: bytes):
    path = tmp / "evals" / "eval.json"
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    csv, md = tmp / "tables" / "table1.csv", tmp / "tables" / "table1.md"
    return ["table", str(path), "--csv", str(csv), "--md", str(md)], [csv, md]


# --------------------------------------------------------------------------- the table
CASES = [
    *[
        Case(f"train-data-{k}", lambda a, t, mk=mk: _train(a, t, mk(a, t)), rf"\S*bad\.pt is not a prepared dataset: {names}", PREPARED_HINT)
        for k, (mk, names) in BAD_PREPARED.items()
    ],
    *[
        Case(f"train-data-{k}", lambda a, t, mk=mk: _train(a, t, mk(a, t)), r"prepared dataset \S*bad\.pt is corrupt or not a torch file", TORCH_HINT)
        for k, mk in CORRUPT_PREPARED.items()
    ],
    Case("evaluate-data-float-images", lambda a, t: _evaluate(a, t, BAD_PREPARED["float-images"][0](a, t)),
         r"\S*bad\.pt is not a prepared dataset: train_x: expected a uint8", PREPARED_HINT),
    # ---- CIFAR-100 sources
    Case("prepare-cifar100-nothing-no-download", lambda a, t: _prepare100(t, t / "empty-root"),
         r"cifar100 not found \(looked in \S*empty-root/cifar-100-python, .*empty-root/cifar100\*\.tar\.gz\) and download disabled",
         r"set data_root \(config\.yaml or --data-root\)"),
    Case("prepare-cifar100-only-a-cifar10-tarball", lambda a, t: _prepare100(t, _only_cifar10_tarball(t)),
         r"cifar100 not found .*tarroot/cifar100\*\.tar\.gz", r"set data_root"),
    Case("prepare-cifar100-truncated-tarball", lambda a, t: _prepare100(t, _tarroot100(t)),
         r"tarroot/cifar100-png\.tar\.gz is not a readable \.tar\.gz", r"replace it with a complete copy"),
    Case("prepare-pickles-missing-file", lambda a, t: _prepare100(t, _pickle_missing(t)),
         r"torchvision folder \S*cifar-100-python lacks test", PICKLE_HINT),
    Case("prepare-pickles-truncated", lambda a, t: _prepare100(t, _pickle_truncated(t)),
         r"\S*cifar-100-python/train is not a readable CIFAR pickle \(\w+\)", PICKLE_HINT),
    Case("prepare-pickles-run-code", lambda a, t: _prepare100(t, _pickle_with_code(t)),
         r"cifar-100-python/train is not a readable CIFAR pickle \(it holds a \S*makedirs, not only arrays", PICKLE_HINT),
    Case("prepare-pickles-not-a-dict", lambda a, t: _prepare100(t, _pickle_edit("test", lambda e: [e])(t)),
         r"cifar-100-python/test is not a CIFAR pickle \(it holds a list, not a dict\)", PICKLE_HINT),
    Case("prepare-pickles-labels-out-of-range", lambda a, t: _prepare100(t, _pickle_edit("train", _labels_out_of_range)(t)),
         r"cifar-100-python/train: 'fine_labels' are not 200 labels in 0\.\.99", PICKLE_HINT),
    Case("prepare-pickles-too-few-labels", lambda a, t: _prepare100(t, _pickle_edit("test", lambda e: {**e, b"fine_labels": e[b"fine_labels"][:-1]})(t)),
         r"cifar-100-python/test: 'fine_labels' are not 100 labels", PICKLE_HINT),
    Case("prepare-pickles-wrong-row-size", lambda a, t: _prepare100(t, _pickle_edit("train", lambda e: {**e, b"data": e[b"data"][:, :1024]})(t)),
         r"cifar-100-python/train: 'data' is uint8 \(200, 1024\), not uint8 \(N, 3072\)", PICKLE_HINT),
    Case("prepare-pickles-float-data", lambda a, t: _prepare100(t, _pickle_edit("test", lambda e: {**e, b"data": e[b"data"].astype(np.float32)})(t)),
         r"cifar-100-python/test: 'data' is float32 \(100, 3072\)", PICKLE_HINT),
    Case("prepare-pickles-meta-of-cifar10", lambda a, t: _prepare100(t, _pickle_edit("meta", lambda e: {b"fine_label_names": e[b"fine_label_names"][:10]})(t)),
         r"cifar-100-python/meta has 10 fine_label_names but cifar100 has 100", PICKLE_HINT),
    # ---- JSON files
    Case("table-eval-empty", lambda a, t: _table(t, b""),
         r"evals/eval\.json is empty, not JSON", TORCH_HINT),
    Case("table-eval-whitespace", lambda a, t: _table(t, b"  \n\n"),
         r"evals/eval\.json is empty, not JSON", TORCH_HINT),
    Case("table-eval-not-utf8", lambda a, t: _table(t, b'{"run": "\xff\xfe caf\xe9"}'),
         r"evals/eval\.json is not valid JSON \(not UTF-8 text\)", TORCH_HINT),
]  # fmt: skip


def test_the_cases_are_distinct():
    assert len({c.id for c in CASES}) == len(CASES), "duplicate case ids"
    assert len(CASES) >= 30, len(CASES)


# --------------------------------------------------------------------------- fixtures and checks
@pytest.fixture(scope="module")
def assets(tmp_path_factory, tiny_prepared) -> SimpleNamespace:
    """Read-only inputs: the tiny prepared dataset, a random ResNet-20 and its run's metrics."""
    work = tmp_path_factory.mktemp("bad_data")
    torch.manual_seed(0)
    model = work / "model.pt"
    save_model(model, models.build("resnet20", None, 10), "resnet20", 10, run=dict(RUN))
    metrics = work / "metrics.json"
    counts = {"macs": 1, "params": 1, "macs_full": 1, "params_full": 1, "epochs": 1}
    metrics.write_text(json.dumps({"run": RUN, "best_accuracy": 10.0, "final_accuracy": 10.0, **counts}))
    return SimpleNamespace(data=tiny_prepared, model=model, metrics=metrics)


def check_nothing_left(tmp: Path, outputs: list[Path], case: Case) -> None:
    for out in outputs:
        assert not out.exists(), f"case {case.id} left {out}"
        if out.parent.is_dir():
            stray = sorted(p.name for p in out.parent.glob(".*.tmp"))
            assert not stray, f"case {case.id} left temporary files in {out.parent}: {stray}"
    locks = sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*.lock"))
    assert not locks, f"case {case.id} left lock files: {locks}"
    assert not (tmp / "pwned").exists(), f"case {case.id}: a pickle ran code while loading"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_data(case: Case, assets, tmp_path, capfd, caplog, monkeypatch):
    monkeypatch.delenv("PRUNEBENCH_DEBUG", raising=False)
    argv, outputs = case.make(assets, tmp_path)
    code, err, logged = run_failing(main, argv, case.id, capfd, caplog)
    check_error_line(code, err, case, logged)
    check_nothing_left(tmp_path, outputs, case)


def test_missing_cifar100_in_a_subprocess(assets, tmp_path):
    """The real process: one line, and the lock it took is gone with the folder made for it."""
    case = next(c for c in CASES if c.id == "prepare-cifar100-nothing-no-download")
    argv, outputs = case.make(assets, tmp_path)
    proc = prunebench_process(argv, tmp_path)
    check_error_line(proc.returncode, proc.stderr, case)
    check_nothing_left(tmp_path, outputs, case)


# --------------------------------------------------------------------------- io helpers directly
@pytest.mark.parametrize(
    "content, names",
    [(b"", "is empty, not JSON"), (b"\xef\xbb", "not UTF-8 text"), (b"[1, 2", "is not valid JSON")],
    ids=["empty", "not-utf8", "cut-short"],
)
def test_read_json_one_line(tmp_path, content, names):
    from prunebench.core.errors import UserError
    from prunebench.core.io import read_json

    path = tmp_path / "x.json"
    path.write_bytes(content)
    with pytest.raises(UserError, match=re.escape(names)) as e:
        read_json(path)
    assert "\n" not in str(e.value) and str(path) in str(e.value)
    with pytest.raises(UserError, match="is a directory"):
        read_json(tmp_path)
    path.write_text("[1, 2]")
    assert read_json(path) == [1, 2]  # valid JSON of the wrong form is the caller's check
