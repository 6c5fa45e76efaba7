"""A battery of malformed inputs: every one must end in one clear line, never a traceback.

``CASES`` is one table of distinct bad inputs, config values and command lines alike. For a
command-line case the real entry point ``prunebench.cli.main`` runs in-process (cheap) and the
test checks what a user sees:

* a non-zero exit;
* exactly one stderr line, ``prunebench: error: ...``, that names the problem (a per-case
  regex) and hints at the fix (a second per-case regex);
* no traceback and no log line before the error (the job failed before doing any work);
* no partial output: the output paths it was given do not exist afterwards and no ``.*.tmp``
  file is left beside them.

A config case mutates a copy of ``config.yaml`` and calls ``prunebench.config.check`` (what the
Snakefile does before building the DAG; test_workflow.py shows snakemake turns the
``UserError`` into one stderr line): the message must be one line naming the offending key.

Three representative command-line cases also run through a real subprocess
(``python -m prunebench``), where the logging set-up and the interpreter's own error printing
are the real ones.
"""

from __future__ import annotations

import copy
import gzip
import io
import json
import logging
import os
import re
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

import pytest
import torch
import yaml

from conftest import CLASSES10, write_image_tree, write_tarball
from prunebench import models
from prunebench.checkpoints import save_model
from prunebench.cli import main
from prunebench.config import check
from prunebench.errors import UserError

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
CONFIG = REPO / "config.yaml"
BASE_RUN = {"dataset": "cifar10", "arch": "resnet56", "variant": None, "arm": "base", "seed": 1, "scale": "custom"}
PREFIX = "prunebench: error: "
CLICK_HINT = r"see 'prunebench( [a-z]+)? --help'$"


# --------------------------------------------------------------------------- the table
@dataclass(frozen=True)
class Case:
    """One malformed input.

    ``kind`` is ``cli`` or ``config``. For ``cli``, ``make(a, tmp)`` returns ``(argv, outputs)``:
    the command line and the output paths it names (none may exist afterwards). For
    ``config``, ``make(config)`` mutates a copy of config.yaml in place. ``names`` must match
    the error line (the problem, with the offending value/key/path), ``hint`` the advice.
    """

    id: str
    kind: str
    make: Callable
    names: str
    hint: str


def _set(*path_and_value):
    *path, value = path_and_value

    def mutate(c: dict) -> None:
        node = c
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return mutate


def _delete(*path):
    def mutate(c: dict) -> None:
        node = c
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]

    return mutate


def _train(a, tmp: Path, *extra: str, arch: str = "resnet20", arm: str = "base", data=None):
    """A train command line that must fail before training; outputs under tmp/run/."""
    out = tmp / "run"
    argv = [
        "train", "--arch", arch, "--arm", arm, "--data", str(data or a.data), "--epochs", "1", "--lr", "0.1",
        "--device", "cpu", "--model-out", str(out / "model.pt"), "--metrics-out", str(out / "metrics.json"), *extra,
    ]  # fmt: skip
    return argv, [out / "model.pt", out / "metrics.json", out / "checkpoint.pt"]


def _prune(a, tmp: Path, *extra: str, model=None):
    out, report = tmp / "pruned" / "pruned.pt", tmp / "pruned" / "prune.json"
    argv = ["prune", "--model", str(model or a.full), *extra, "--out", str(out), "--report", str(report)]
    return argv, [out, report]


def _evaluate(a, tmp: Path, model=None, metrics=None, *extra: str):
    out = tmp / "eval" / "eval.json"
    argv = [
        "evaluate", "--model", str(model or a.full), "--metrics", str(metrics or a.base_metrics), "--data", str(a.data),
        "--device", "cpu", "--out", str(out), *extra,
    ]  # fmt: skip
    return argv, [out]


def _prepare(tmp: Path, root: Path, *extra: str, out: Path | None = None):
    out = out or tmp / "prepared" / "cifar10.pt"
    return ["prepare", "--dataset", "cifar10", "--data-root", str(root), "--out", str(out), "--no-download", *extra], [
        out
    ]


# Builders of the inputs the command-line cases need, made inside the case's tmp folder.
def _partial_tree(tmp: Path) -> Path:
    root = tmp / "partial"
    write_image_tree(root, n_train=1, n_test=1)
    for f in sorted((root / "test").rglob("*"), reverse=True):
        f.unlink() if f.is_file() else f.rmdir()
    (root / "test").rmdir()
    return root


def _tree(tmp: Path, **kw) -> Path:
    root = tmp / "tree"
    write_image_tree(root, **{"n_train": 1, "n_test": 1, **kw})
    return root


def _garbage_tarball(tmp: Path) -> Path:
    """gzip's magic bytes, then junk: e.g. an HTML error page saved under the tarball's name."""
    return _tarroot(tmp, b"\x1f\x8b\x08\x00 this is not a gzip stream at all " * 40)


def _tar_bytes(tree: Path) -> bytes:
    """An uncompressed tar of ``tree`` under cifar10/, byte-for-byte reproducible (mtime 0)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for f in sorted(p for p in tree.rglob("*") if p.is_file()):
            blob = f.read_bytes()
            info = tarfile.TarInfo(f"cifar10/{f.relative_to(tree).as_posix()}")
            info.size, info.mtime = len(blob), 0
            tar.addfile(info, io.BytesIO(blob))
    return buf.getvalue()


def _gzip(blob: bytes) -> bytes:
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as g:
        g.write(blob)
    return out.getvalue()


def _tarroot(tmp: Path, blob: bytes) -> Path:
    root = tmp / "tarroot"
    root.mkdir()
    (root / "cifar10.tar.gz").write_bytes(blob)
    return root


def _damaged_tarball(tmp: Path) -> Path:
    """A reproducible tarball of a valid tree with bytes flipped in its compressed stream (bad disk)."""
    blob = bytearray(_gzip(_tar_bytes(_tree(tmp, n_train=2))))
    for i in range(len(blob) // 3, len(blob) - 64, 7):
        blob[i] ^= 0x5A
    return _tarroot(tmp, bytes(blob))


def _tarball_with_damaged_member(tmp: Path) -> Path:
    """A valid gzip stream around a tar whose last member's header is garbage: the last training
    image is unreadable, so the tarball is corrupt and must not be decoded as if complete."""
    raw = bytearray(_tar_bytes(_tree(tmp, n_train=2)))
    with tarfile.open(fileobj=io.BytesIO(bytes(raw))) as tar:
        last = tar.getmembers()[-1]
    raw[last.offset : last.offset + 20] = b"\xff" * 20
    return _tarroot(tmp, _gzip(bytes(raw)))


def _truncated_tarball(tmp: Path) -> Path:
    """A download cut short: the first half of a tarball made the usual way."""
    good = write_tarball(_tree(tmp), tmp / "good.tar.gz").read_bytes()
    return _tarroot(tmp, good[: len(good) // 2])


def _non_image_in_tree(tmp: Path) -> Path:
    root = _tree(tmp)
    (root / "train" / CLASSES10[0] / "notes.png").write_text("not an image, a stray text file\n")
    return root


def _truncated_checkpoint(a, tmp: Path) -> Path:
    blob = a.pruned.read_bytes()
    path = tmp / "truncated.pt"
    path.write_bytes(blob[: len(blob) // 2])
    return path


def _text_file(tmp: Path) -> Path:
    path = tmp / "model.pt"
    path.write_text('{"this": "is JSON, not a torch file"}\n')
    return path


def _cfg_mismatch(a, tmp: Path) -> Path:
    """The pruned checkpoint with one cfg entry edited: it builds, but the weights do not fit."""
    blob = torch.load(a.pruned, map_location="cpu", weights_only=True)
    blob["cfg"] = list(blob["cfg"])
    blob["cfg"][0] += 1
    path = tmp / "edited.pt"
    torch.save(blob, path)
    return path


def _incomplete_metrics(tmp: Path) -> Path:
    """The right run's metrics.json with its counts missing (hand-edited or from an old version)."""
    path = tmp / "incomplete-metrics.json"
    path.write_text(json.dumps({"run": BASE_RUN, "best_accuracy": 50.0, "final_accuracy": 50.0, "epochs": 1}))
    return path


def _other_run_metrics(tmp: Path) -> Path:
    path = tmp / "other-metrics.json"
    path.write_text(json.dumps({"run": {**BASE_RUN, "seed": 2}, "best_accuracy": 50.0, "final_accuracy": 50.0}))
    return path


def _blocker(tmp: Path) -> Path:
    path = tmp / "blocker"
    path.write_text("a regular file where a folder should be\n")
    return path


def _bad_json(tmp: Path) -> Path:
    path = tmp / "evals" / "eval.json"
    path.parent.mkdir(parents=True)
    path.write_text('{"run": {"arch": "resnet56", "arm": "base"}, "accuracy": {"best": 93.')  # cut short
    return path


def _eval_without_metric(tmp: Path) -> Path:
    path = tmp / "evals" / "eval.json"
    path.parent.mkdir(parents=True)
    path.write_text(
        json.dumps(
            {"run": BASE_RUN, "accuracy": {"final": 90.0}, "macs": 1, "params": 1, "macs_full": 1, "params_full": 1}
        )
    )
    return path


def _without(made, option: str):
    """``(argv, outputs)`` with ``option`` and its value removed from argv."""
    argv, outputs = made
    i = argv.index(option)
    return argv[:i] + argv[i + 2 :], outputs


def _table(tmp: Path, evals: list[Path]):
    csv, md = tmp / "tables" / "table1.csv", tmp / "tables" / "table1.md"
    return ["table", *map(str, evals), "--csv", str(csv), "--md", str(md)], [csv, md]


CLI_CASES = [
    # ---- architectures and variants
    Case("train-unknown-arch", "cli", lambda a, t: _train(a, t, arch="resnet57"),
         r"unknown arch 'resnet57'", r"choose one of .*resnet56"),
    Case("prune-unknown-variant", "cli", lambda a, t: _prune(a, t, "--variant", "C"),
         r"unknown pruned variant resnet56-C", r"known variants: .*resnet56-A"),
    Case("describe-unknown-variant", "cli", lambda a, t: (["describe", "--arch", "vgg16", "--variant", "B"], []),
         r"unknown pruned variant vgg16-B", r"known variants: vgg16-A"),
    Case("scratch-unknown-variant", "cli", lambda a, t: _train(a, t, "--variant", "C", arch="resnet110", arm="scratch-b"),
         r"unknown pruned variant resnet110-C", r"known variants: .*resnet110-B"),
    # ---- prune ratios and options
    Case("prune-ratio-above-one", "cli", lambda a, t: _prune(a, t, "--ratio", "1.5"),
         r"--ratio 1\.5 is outside \[0, 1\)", r"give the fraction of filters to remove"),
    Case("prune-ratio-empties-layer", "cli", lambda a, t: _prune(a, t, "--ratio", "0.99"),
         r"pruning ratio 0\.99 empties layer \S+ \(16 filters\)", r"use a smaller ratio"),
    Case("prune-variant-and-ratio", "cli", lambda a, t: _prune(a, t, "--variant", "A", "--ratio", "0.5"),
         r"exactly one of --variant .* or --ratio", r"give exactly one"),
    Case("prune-neither-variant-nor-ratio", "cli", lambda a, t: _prune(a, t),
         r"exactly one of --variant .* or --ratio", r"give exactly one"),
    Case("prune-unknown-criterion", "cli", lambda a, t: _prune(a, t, "--variant", "A", "--criterion", "l3"),
         r"unknown criterion 'l3'", r"choose one of .*l1"),
    # ---- train options
    Case("train-data-missing", "cli", lambda a, t: _train(a, t, data=t / "no-such-data.pt"),
         r"prepared dataset \S*no-such-data\.pt does not exist", r"check the path or rerun"),
    Case("train-data-is-a-model", "cli", lambda a, t: _train(a, t, data=a.full),
         r"\S*base\.pt is not a prepared dataset", r"make it with 'prunebench prepare'"),
    Case("train-data-is-a-directory", "cli", lambda a, t: _train(a, t, data=t),
         r"Invalid value for '--data': .* is a directory", CLICK_HINT),
    Case("train-negative-epochs", "cli", lambda a, t: _train(a, t, "--epochs", "-3"),
         r"Invalid value for '--epochs': -3 is not in the range x>=1", CLICK_HINT),
    Case("train-bad-milestones", "cli", lambda a, t: _train(a, t, "--milestones", "1/2,3/4"),
         r"'1/2,3/4' is not a comma-separated list of numbers", r"e\.g\. 0\.5,0\.75"),
    Case("train-lr-zero", "cli", lambda a, t: _train(a, t, "--lr", "0"),
         r"Invalid value for '--lr': 0(\.0)? is not in the range x>0", CLICK_HINT),
    Case("train-device-gpu", "cli", lambda a, t: _train(a, t, "--device", "gpu"),
         r"unknown device 'gpu'", r"use auto, cpu or cuda"),
    Case("finetune-wrong-arch", "cli", lambda a, t: _train(a, t, "--init", str(a.pruned), arch="resnet110", arm="finetune"),
         r"pruned\.pt holds a resnet56 model but resnet110 was asked for", r"pass the matching checkpoint"),
    Case("finetune-init-not-a-model", "cli", lambda a, t: _train(a, t, "--init", str(a.data), arch="resnet56", arm="finetune"),
         r"cifar10\.pt is not a prunebench model file", r"rerun the step that makes it"),
    Case("finetune-class-count-mismatch", "cli", lambda a, t: _train(a, t, "--init", str(a.c100), arch="resnet20", arm="finetune"),
         r"c100\.pt has 100 classes but the data has 10", r"use the matching dataset"),
    # ---- data preparation
    Case("prepare-no-data-no-download", "cli", lambda a, t: _prepare(t, t / "empty-root"),
         r"cifar10 not found \(looked in \S*empty-root/cifar-10-batches-py, .*empty-root/cifar10\*\.tar\.gz\) and download disabled",
         r"set data_root"),
    Case("prepare-partial-tree", "cli", lambda a, t: _prepare(t, _partial_tree(t)),
         r"image folder \S*partial has no test/ images", r"needs train/<class>/ and test/<class>/"),
    Case("prepare-wrong-class-count", "cli", lambda a, t: _prepare(t, _tree(t, classes=["cat", "dog", "frog"])),
         r"image folder \S*tree has 3 classes but cifar10 has 10", r"point data_root at a cifar10 copy"),
    Case("prepare-wrong-image-size", "cli", lambda a, t: _prepare(t, _tree(t, size=64)),
         r"has train images of shape \(64, 64, 3\)", r"CIFAR images are 32x32 RGB"),
    Case("prepare-non-image-file", "cli", lambda a, t: _prepare(t, _non_image_in_tree(t)),
         r"notes\.png", r"(remove|delete|replace)"),
    Case("prepare-garbage-tarball", "cli", lambda a, t: _prepare(t, _garbage_tarball(t)),
         r"tarroot/cifar10\.tar\.gz is not a readable \.tar\.gz", r"replace it with a complete copy"),
    Case("prepare-truncated-tarball", "cli", lambda a, t: _prepare(t, _truncated_tarball(t)),
         r"tarroot/cifar10\.tar\.gz is not a readable \.tar\.gz", r"replace it with a complete copy"),
    Case("prepare-damaged-tarball", "cli", lambda a, t: _prepare(t, _damaged_tarball(t)),
         r"tarroot/cifar10\.tar\.gz is not a readable \.tar\.gz", r"replace it with a complete copy"),
    Case("prepare-tarball-damaged-member", "cli", lambda a, t: _prepare(t, _tarball_with_damaged_member(t)),
         r"tarroot/cifar10\.tar\.gz", r"(replace|complete copy)"),
    Case("prepare-unknown-dataset", "cli", lambda a, t: (["prepare", "--dataset", "cifar1000", "--data-root", str(t), "--out", str(t / "p" / "x.pt")], [t / "p" / "x.pt"]),
         r"Invalid value for '--dataset': 'cifar1000' is not one of 'cifar10', 'cifar100'", CLICK_HINT),
    # ---- checkpoints
    Case("prune-truncated-checkpoint", "cli", lambda a, t: _prune(a, t, "--variant", "A", model=_truncated_checkpoint(a, t)),
         r"model checkpoint \S*truncated\.pt is corrupt or not a torch file", r"delete it and rerun the step that makes it"),
    Case("evaluate-non-torch-checkpoint", "cli", lambda a, t: _evaluate(a, t, model=_text_file(t)),
         r"model checkpoint \S*model\.pt is corrupt or not a torch file", r"delete it and rerun the step that makes it"),
    Case("evaluate-cfg-does-not-fit-weights", "cli", lambda a, t: _evaluate(a, t, model=_cfg_mismatch(a, t)),
         r"edited\.pt: weights do not fit resnet56 with cfg \[15, ", r"rerun its step"),
    # ---- outputs, commands, options
    Case("evaluate-unwritable-output", "cli",
         lambda a, t: (lambda b: (_evaluate(a, t)[0][:-1] + [str(b / "eval.json")], [b / "eval.json"]))(_blocker(t)),
         r"cannot write \S*blocker/eval\.json", r"choose a writable output path"),
    Case("prepare-unwritable-output", "cli", lambda a, t: _prepare(t, _tree(t), out=_blocker(t) / "cifar10.pt"),
         r"\S*blocker/cifar10\.pt", r"writable"),
    Case("unknown-command", "cli", lambda a, t: (["trian", "--arch", "resnet20"], []),
         r"No such command 'trian'", r"see 'prunebench --help'$"),
    Case("unknown-option", "cli", lambda a, t: _prune(a, t, "--varaint", "A"),
         r"No such option '--varaint'.*'--variant'", r"see 'prunebench prune --help'$"),
    Case("missing-required-option", "cli", lambda a, t: _without(_train(a, t), "--data"),
         r"Missing option '--data'", r"see 'prunebench train --help'$"),
    # ---- evaluate / table / figure inputs
    Case("evaluate-metrics-of-another-run", "cli", lambda a, t: _evaluate(a, t, metrics=_other_run_metrics(t)),
         r"other-metrics\.json describes run .*'seed': 2.* but \S*base\.pt holds .*'seed': 1", r"pass the pair from one run"),
    Case("evaluate-metrics-missing", "cli", lambda a, t: _evaluate(a, t, metrics=t / "gone" / "metrics.json"),
         r"missing file \S*gone/metrics\.json", r"run the step that makes it first"),
    Case("evaluate-metrics-incomplete", "cli", lambda a, t: _evaluate(a, t, metrics=_incomplete_metrics(t)),
         r"incomplete-metrics\.json .*macs", r"rerun|re-run"),
    Case("evaluate-zero-test-subset", "cli", lambda a, t: _evaluate(a, t, None, None, "--test-subset", "0"),
         r"Invalid value for '--test-subset': 0 is not in the range x>=1", CLICK_HINT),
    Case("table-eval-not-json", "cli", lambda a, t: _table(t, [_bad_json(t)]),
         r"evals/eval\.json is not valid JSON", r"delete it and rerun the step that makes it"),
    Case("table-eval-without-metric", "cli", lambda a, t: _table(t, [_eval_without_metric(t)]),
         r"has no accuracy\['best'\]", r"re-run its evaluation"),
    Case("figure-missing-table", "cli", lambda a, t: (["figure", "--table", str(t / "none" / "table1.csv"), "--out", str(t / "fig" / "t.png")], [t / "fig" / "t.png"]),
         r"table \S*none/table1\.csv does not exist", r"run 'prunebench table' first"),
]  # fmt: skip

CONFIG_HINT = (
    r"(fix it in config\.yaml or --config|add it to config\.yaml or pass --config|known keys there: |choose one of )"
)
CONFIG_CASES = [
    Case("config-unknown-top-level-key", "config", _set("epochz", 3), r"unknown key epochz\b", r"known keys there: scale, data_root"),
    Case("config-unknown-nested-key", "config", _set("protocol", "batchsize", 64), r"unknown key protocol\.batchsize\b", r"known keys there: batch_size"),
    Case("config-unknown-arch", "config", _set("table1", "models", "resnet57", ["A"]), r"table1\.models\b.*'resnet57'", CONFIG_HINT),
    Case("config-negative-epochs", "config", _set("protocol", "arms", "base", "epochs", -1), r"protocol\.arms\.base\.epochs = -1 is invalid", CONFIG_HINT),
    Case("config-zero-epochs", "config", _set("scales", "smoke", "epochs", "finetune", 0), r"scales\.smoke\.epochs\.finetune = 0 is invalid", CONFIG_HINT),
    Case("config-milestone-above-one", "config", _set("protocol", "arms", "base", "milestones", [0.5, 1.5]), r"protocol\.arms\.base\.milestones\.1 = 1\.5 is invalid", CONFIG_HINT),
    Case("config-empty-seed-list", "config", _set("scales", "smoke", "seeds", []), r"scales\.smoke\.seeds = \[\] is invalid", CONFIG_HINT),
    Case("config-undefined-scale", "config", _set("scale", "huge"), r"scale 'huge' is not defined under scales", r"choose one of smoke, paper"),
    Case("config-wrong-type-batch-size", "config", _set("protocol", "batch_size", "64"), r"protocol\.batch_size = '64' is invalid: .*not of type 'integer'", CONFIG_HINT),
    Case("config-lr-zero", "config", _set("protocol", "arms", "finetune", "lr", 0), r"protocol\.arms\.finetune\.lr = 0 is invalid", CONFIG_HINT),
    Case("config-device-gpu", "config", _set("device", "gpu"), r"device = 'gpu' is invalid", CONFIG_HINT),
    Case("config-report-metric-worst", "config", _set("report_metric", "worst"), r"report_metric = 'worst' is invalid", CONFIG_HINT),
    Case("config-bad-bench-model", "config", _set("bench", "models", ["resnet56", "ResNet-56/B"]), r"bench\.models\.1 = 'ResNet-56/B' is invalid", CONFIG_HINT),
    Case("config-missing-required-key", "config", _delete("results"), r"'results' is a required property", r"add it to config\.yaml or pass --config"),
    Case("config-download-maybe", "config", _set("download", "maybe"), r"download = 'maybe' is invalid", CONFIG_HINT),
    Case("config-missing-nested-key", "config", _delete("protocol", "arms", "scratch-b"), r"protocol\.arms: 'scratch-b' is a required property", r"add it to config\.yaml"),
    Case("config-empty-variant-list", "config", _set("table1", "models", "vgg16", []), r"table1\.models\.vgg16 = \[\] is invalid", CONFIG_HINT),
    Case("config-unknown-precision", "config", _set("speed", "precision", "fp16"), r"speed\.precision = 'fp16' is invalid", CONFIG_HINT),
]  # fmt: skip

CASES = CLI_CASES + CONFIG_CASES


def test_the_battery_is_large_and_distinct():
    assert len(CASES) >= 30, len(CASES)
    assert len(CLI_CASES) >= 30, len(CLI_CASES)
    assert len({c.id for c in CASES}) == len(CASES), "duplicate case ids"


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def assets(tmp_path_factory, tiny_prepared) -> SimpleNamespace:
    """Shared, read-only inputs: a random ResNet-56, its pruned -A version (made by the real
    prune command), its metrics, a 100-class ResNet-20 and the tiny prepared dataset."""
    work = tmp_path_factory.mktemp("bad_inputs")
    torch.manual_seed(0)
    full = work / "base.pt"
    save_model(full, models.build("resnet56", None, 10), "resnet56", 10, run=dict(BASE_RUN))
    pruned = work / "pruned.pt"
    main(["prune", "--model", str(full), "--variant", "A", "--out", str(pruned), "--report", str(work / "prune.json")])
    assert pruned.is_file()
    base_metrics = work / "metrics.json"
    counts = {"macs": 1, "params": 1, "macs_full": 1, "params_full": 1, "epochs": 1}
    base_metrics.write_text(json.dumps({"run": BASE_RUN, "best_accuracy": 10.0, "final_accuracy": 10.0, **counts}))
    c100 = work / "c100.pt"
    save_model(
        c100,
        models.build("resnet20", None, 100),
        "resnet20",
        100,
        run={**BASE_RUN, "dataset": "cifar100", "arch": "resnet20"},
    )
    return SimpleNamespace(
        work=work, full=full, pruned=pruned, base_metrics=base_metrics, c100=c100, data=tiny_prepared
    )


# --------------------------------------------------------------------------- checks
def check_error_line(rc, stderr: str, case: Case, logged: list[str] = ()) -> str:
    detail = f"case {case.id}: rc={rc}\nstderr:\n{stderr}"
    assert rc not in (0, None), detail
    assert "Traceback" not in stderr, detail
    assert not logged, f"case {case.id} logged before failing (it did work it then threw away): {logged}"
    lines = stderr.splitlines()
    assert len(lines) == 1, f"expected exactly one stderr line\n{detail}"
    line = lines[0]
    assert line.startswith(PREFIX), detail
    assert re.search(case.names, line), f"the line does not name the problem ({case.names!r})\n{detail}"
    assert re.search(case.hint, line), f"the line does not hint at the fix ({case.hint!r})\n{detail}"
    return line


def check_no_partial_output(outputs: list[Path], case: Case) -> None:
    for out in outputs:
        assert not out.exists(), f"case {case.id} left output {out}"
        if out.parent.is_dir():
            stray = sorted(p.name for p in out.parent.glob(".*.tmp"))
            assert not stray, f"case {case.id} left temporary files in {out.parent}: {stray}"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, assets, tmp_path, capfd, caplog, monkeypatch):
    if case.kind == "config":
        config = copy.deepcopy(yaml.safe_load(CONFIG.read_text()))
        check(copy.deepcopy(config), SCHEMA)  # the unmutated config is valid
        case.make(config)
        with pytest.raises(UserError) as err:
            check(config, SCHEMA)
        message = str(err.value)
        assert "\n" not in message, f"config error spans lines:\n{message}"
        assert message.startswith("config: "), message
        assert re.search(case.names, message), f"does not name the key ({case.names!r}): {message}"
        assert re.search(case.hint, message), f"no hint at the fix ({case.hint!r}): {message}"
        return

    monkeypatch.delenv("PRUNEBENCH_DEBUG", raising=False)
    argv, outputs = case.make(assets, tmp_path)
    capfd.readouterr()  # drop what building the inputs printed
    caplog.set_level(logging.INFO, logger="prunebench")
    try:
        main(argv)
    except SystemExit as e:
        code = e.code
    except Exception as e:  # what python -m prunebench would print as a traceback
        pytest.fail(f"case {case.id}: main() raised {type(e).__name__}: {e}; a user sees a traceback, not one line")
    else:
        pytest.fail(f"case {case.id}: main() returned normally (exit 0) on a bad input")
    err = capfd.readouterr().err
    logged = [
        f"{r.levelname} {r.getMessage()}"
        for r in caplog.records
        if r.name.startswith("prunebench") and r.levelno >= logging.INFO
    ]
    check_error_line(code, err, case, logged)
    check_no_partial_output(outputs, case)


def test_the_no_log_check_can_fail(assets, tmp_path, caplog):
    """The battery asserts no log record precedes an error; prove in-process records are seen."""
    caplog.set_level(logging.INFO, logger="prunebench")
    out = tmp_path / "ok"
    main(
        [
            "prune",
            "--model",
            str(assets.full),
            "--ratio",
            "0.1",
            "--out",
            str(out / "p.pt"),
            "--report",
            str(out / "p.json"),
        ]
    )
    assert any(r.name.startswith("prunebench") and "pruned" in r.getMessage() for r in caplog.records), caplog.records


# --------------------------------------------------------------------------- real subprocesses
SUBPROCESS_CASES = ["prepare-no-data-no-download", "prune-truncated-checkpoint", "train-data-is-a-model"]


@pytest.mark.parametrize("case_id", SUBPROCESS_CASES)
def test_bad_input_in_a_subprocess(case_id: str, assets, tmp_path):
    """The same contract through ``python -m prunebench``: real logging, real exit status."""
    case = next(c for c in CASES if c.id == case_id)
    argv, outputs = case.make(assets, tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "PRUNEBENCH_DEBUG"}
    proc = subprocess.run(
        [sys.executable, "-m", "prunebench", *argv], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.stdout == "", proc.stdout
    check_error_line(proc.returncode, proc.stderr, case)
    check_no_partial_output(outputs, case)
