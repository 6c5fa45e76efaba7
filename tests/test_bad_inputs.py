"""A battery of malformed inputs: every one must end in one clear line, never a traceback.

``CASES`` is one table of distinct bad inputs, config values and command lines alike. For a
command-line case the real entry point ``prunebench.commands.cli.main`` runs in-process (cheap) and the
test checks what a user sees:

* a non-zero exit;
* exactly one stderr line, ``prunebench: error: ...``, that names the problem (a per-case
  regex) and hints at the fix (a second per-case regex);
* no traceback and no log line before the error (the job failed before doing any work);
* no partial output: the output paths it was given do not exist afterwards and no ``.*.tmp``
  file is left beside them.

A config case mutates a copy of ``config.yaml`` and calls ``prunebench.studies.config.check`` (what the
Snakefile does before building the DAG; test_workflow.py shows snakemake turns the
``UserError`` into one stderr line): the message must be one line naming the offending key.

Two more tests feed ``table`` and ``channels`` files in the format from before studies (a run
with a "variant" and no method or setting): read, or refused in one line, never a traceback.

Three representative command-line cases also run through a real subprocess
(``python -m prunebench``), where the logging set-up and the interpreter's own error printing
are the real ones.
"""

from __future__ import annotations

import copy
import csv as csv_module
import gzip
import io
import json
import logging
import re
import tarfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

import pytest
import torch
import yaml
from conftest import CLASSES10, check_error_line, prunebench_process, run_failing, write_image_tree, write_tarball

from prunebench import models
from prunebench.commands.cli import main
from prunebench.core.errors import UserError
from prunebench.studies.config import check
from prunebench.training.checkpoints import save_model

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
CONFIG = REPO / "config.yaml"
BASE_RUN = {
    "dataset": "cifar10",
    "arch": "resnet56",
    "method": None,
    "setting": None,
    "arm": "base",
    "seed": 1,
    "scale": "custom",
}
# A run dict as evals and prune reports wrote it before studies: "variant", no method or setting.
OLD_PRUNED_RUN = {
    "dataset": "cifar10",
    "arch": "resnet56",
    "variant": "A",
    "arm": "finetune",
    "seed": 1,
    "scale": "custom",
}
COUNTS = {"macs": 1, "params": 1, "macs_full": 1, "params_full": 1}
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


def _torchscript(tmp: Path) -> Path:
    """A scripted model saved by torch.jit.save: a torch zip file, but not a prunebench one."""
    path = tmp / "scripted.pt"
    with warnings.catch_warnings():  # torch.jit's own deprecation notes, not the command's
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(path))
    return path


def _imagenet_manifest(tmp: Path) -> Path:
    """The manifest of a tiny synthetic ImageNet tree, as 'prunebench prepare' writes it."""
    from prunebench.data.imagenet import prepare as prepare_imagenet
    from prunebench.data.imagenet_tree import write_tiny_imagenet

    write_tiny_imagenet(tmp / "imagenet-root", classes=2, train_per_class=1, val_per_class=1)
    prepare_imagenet(tmp / "imagenet-root", tmp / "imagenet.json")
    return tmp / "imagenet.json"


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
    path.write_text(json.dumps({"run": {**BASE_RUN, "seed": 2}, "best_accuracy": 50.0, "final_accuracy": 50.0, "epochs": 1, **COUNTS}))
    return path


def _blocker(tmp: Path) -> Path:
    path = tmp / "blocker"
    path.write_text("a regular file where a folder should be\n")
    return path


def _evals_file(tmp: Path, name: str, content) -> Path:
    """``tmp/evals/<name>`` holding ``content`` (JSON of it, or the str/bytes as they are)."""
    path = tmp / "evals" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def _bad_json(tmp: Path) -> Path:
    cut_short = '{"run": {"arch": "resnet56", "arm": "base"}, "accuracy": {"best": 93.'
    return _evals_file(tmp, "eval.json", cut_short)


def _eval_without_metric(tmp: Path) -> Path:
    return _evals_file(tmp, "eval.json", {"run": BASE_RUN, "accuracy": {"final": 90.0}, **COUNTS})


def _without(made, option: str):
    """``(argv, outputs)`` with ``option`` and its value removed from argv."""
    argv, outputs = made
    i = argv.index(option)
    return argv[:i] + argv[i + 2 :], outputs


def _table(tmp: Path, evals: list[Path]):
    csv, md = tmp / "tables" / "table1.csv", tmp / "tables" / "table1.md"
    return ["table", *map(str, evals), "--csv", str(csv), "--md", str(md)], [csv, md]


def _figure(tmp: Path, table: Path):
    out = tmp / "fig" / "t.png"
    return ["figure", "--table", str(table), "--out", str(out)], [out]


def _csv_file(tmp: Path, content: str | bytes) -> Path:
    path = tmp / "tables" / "table1.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def _channels(tmp: Path, reports: list[Path]):
    csv, png = tmp / "channels" / "channels.csv", tmp / "channels" / "channels.png"
    return ["channels", *map(str, reports), "--csv", str(csv), "--out", str(png)], [csv, png]


def _prune_json(a, tmp: Path, *drop, wrap: bool = False) -> Path:
    """The real prune.json of the -A fixture without the key at path ``drop`` (e.g. "layers",
    or "layers", 3, "after"), or wrapped in a JSON list."""
    rep = json.loads(a.prune_json.read_text())
    if drop:
        _delete(*drop)(rep)
    return _evals_file(tmp, "prune.json", [rep] if wrap else rep)


def _model_with(a, tmp: Path, **changes) -> Path:
    """The full ResNet-56 model file with some of its keys replaced (hand-edited or damaged)."""
    blob = torch.load(a.full, map_location="cpu", weights_only=True)
    blob.update(changes)
    path = tmp / "edited.pt"
    torch.save(blob, path)
    return path


def _metrics_file(tmp: Path, content) -> Path:
    path = tmp / "list-metrics.json"
    path.write_text(json.dumps(content))
    return path


def _both(*mutations):
    def mutate(c: dict) -> None:
        for m in mutations:
            m(c)

    return mutate


def _add_study(name: str):
    def mutate(c: dict) -> None:
        c["studies"][name] = copy.deepcopy(c["studies"]["l1"])

    return mutate


CLI_CASES = [
    # ---- architectures, methods and settings
    Case("train-unknown-arch", "cli", lambda a, t: _train(a, t, arch="resnet57"),
         r"unknown arch 'resnet57'", r"choose one of .*resnet56"),
    Case("prune-unknown-variant", "cli", lambda a, t: _prune(a, t, "--variant", "C"),
         r"unknown pruned variant resnet56-C", r"known variants: .*resnet56-A"),
    Case("describe-unknown-variant", "cli", lambda a, t: (["describe", "--arch", "vgg16", "--variant", "B"], []),
         r"unknown pruned variant vgg16-B", r"known variants: vgg16-A"),
    Case("describe-learned-method", "cli", lambda a, t: (["describe", "--arch", "vgg19", "--method", "slimming", "--setting", "0.5"], []),
         r"slimming learns its architecture from trained weights", r"prune a model and read its prune\.json"),
    Case("scratch-unknown-variant", "cli", lambda a, t: _train(a, t, "--variant", "C", arch="resnet110", arm="scratch-b"),
         r"unknown pruned variant resnet110-C", r"known variants: .*resnet110-B"),
    Case("prune-unknown-method", "cli", lambda a, t: _prune(a, t, "--method", "nope", "--setting", "A"),
         r"unknown pruning method 'nope'", r"choose one of .*l1.*slimming"),
    Case("prune-method-without-setting", "cli", lambda a, t: _prune(a, t, "--method", "l1"),
         r"--method and --setting go together", r"its variant or ratio"),
    Case("prune-slimming-on-resnet", "cli", lambda a, t: _prune(a, t, "--method", "slimming", "--setting", "0.5"),
         r"network slimming prunes vgg, preresnet, densenet models .*not resnet56", r"prunes vgg, preresnet, densenet"),
    Case("prune-slimming-ratio-above-one", "cli", lambda a, t: _prune(a, t, "--method", "slimming", "--setting", "1.5", model=a.vgg19),
         r"pruning ratio '1\.5' is not a fraction in \(0, 1\)", r"use e\.g\. 0\.4 for 40 %"),
    # ---- prune ratios and options
    Case("prune-ratio-above-one", "cli", lambda a, t: _prune(a, t, "--ratio", "1.5"),
         r"pruning ratio '1\.5' is not a fraction in \[0, 1\)", r"use e\.g\. 0\.4 for 40 %"),
    Case("prune-ratio-empties-layer", "cli", lambda a, t: _prune(a, t, "--ratio", "0.99"),
         r"pruning ratio 0\.99 empties layer \S+ \(16 filters\)", r"use a smaller ratio"),
    Case("prune-variant-and-ratio", "cli", lambda a, t: _prune(a, t, "--variant", "A", "--ratio", "0.5"),
         r"give one of --ratio, --variant, or --method with --setting", r"give one of"),
    Case("prune-variant-and-method", "cli", lambda a, t: _prune(a, t, "--variant", "A", "--method", "slimming"),
         r"give either --variant .* or --method with --setting, not both", r"not both"),
    Case("prune-nothing-to-prune", "cli", lambda a, t: _prune(a, t),
         r"give --method with --setting \(or --variant, or --ratio\)", r"what to prune, and how much"),
    Case("prune-unknown-criterion", "cli", lambda a, t: _prune(a, t, "--variant", "A", "--criterion", "l3"),
         r"unknown pruning method 'l3'", r"choose one of .*l1"),
    Case("prune-criterion-without-variant", "cli", lambda a, t: _prune(a, t, "--method", "uniform", "--setting", "0.5", "--criterion", "l2"),
         r"--criterion goes with --variant", r"name the method with --method"),
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
    Case("train-unknown-option", "cli", lambda a, t: _train(a, t, "--option", "widen=2"),
         r"unknown option 'widen' for resnet20", r"its options are: shortcut, shortcut_grad"),
    Case("train-bad-option-value", "cli", lambda a, t: _train(a, t, "--option", "shortcut=hourglass"),
         r"bad value 'hourglass' for option 'shortcut' of resnet20", r"choose one of 'avgpool', 'subsample'"),
    Case("train-option-without-value", "cli", lambda a, t: _train(a, t, "--option", "novalue"),
         r"Invalid value for '--option': 'novalue' is not KEY=VALUE", r"e\.g\. shortcut_grad=true; " + CLICK_HINT),
    Case("train-base-with-method", "cli", lambda a, t: _train(a, t, "--method", "l1", "--setting", "A", arch="resnet56"),
         r"the base arm trains the full network from scratch", r"drop --method, --setting and --init"),
    Case("scratch-without-setting", "cli", lambda a, t: _train(a, t, arch="resnet56", arm="scratch-e"),
         r"the scratch-e arm needs --method and --setting", r"which pruned architecture"),
    Case("scratch-learned-without-init", "cli", lambda a, t: _train(a, t, "--method", "slimming", "--setting", "0.5", arch="vgg19", arm="scratch-e"),
         r"slimming learns its architecture: the scratch-e arm needs --init PATH", r"the pruned file"),
    Case("scratch-learned-init-other-arch", "cli",
         lambda a, t: _train(a, t, "--method", "slimming", "--setting", "0.5", "--init", str(a.pruned), arch="vgg19", arm="scratch-b"),
         r"pruned\.pt holds a resnet56 model but vgg19 was asked for", r"pass the matching checkpoint"),
    Case("finetune-without-init", "cli", lambda a, t: _train(a, t, arch="resnet56", arm="finetune"),
         r"the finetune arm needs --init PATH", r"prunebench prune --out"),
    Case("finetune-wrong-arch", "cli", lambda a, t: _train(a, t, "--init", str(a.pruned), arch="resnet110", arm="finetune"),
         r"pruned\.pt holds a resnet56 model but resnet110 was asked for", r"pass the matching checkpoint"),
    Case("finetune-init-other-family", "cli", lambda a, t: _train(a, t, "--init", str(a.vgg19), arch="resnet56", arm="finetune"),
         r"vgg19\.pt holds a vgg19 model but resnet56 was asked for", r"pass the matching checkpoint"),
    Case("finetune-init-not-a-model", "cli", lambda a, t: _train(a, t, "--init", str(a.data), arch="resnet56", arm="finetune"),
         r"cifar10\.pt is not a prunebench model file", r"rerun the step that makes it"),
    Case("finetune-class-count-mismatch", "cli", lambda a, t: _train(a, t, "--init", str(a.c100), arch="resnet20", arm="finetune"),
         r"c100\.pt has 100 classes but the data has 10", r"use the matching dataset"),
    Case("finetune-with-sparsity", "cli", lambda a, t: _train(a, t, "--init", str(a.pruned), "--sparsity", "1e-4", arch="resnet56", arm="finetune"),
         r"--sparsity trains a base model for network slimming", r"drop it for the other arms"),
    Case("train-nesterov-without-momentum", "cli", lambda a, t: _train(a, t, "--nesterov", "--momentum", "0"),
         r"--nesterov needs momentum, but --momentum = 0(\.0)?", r"set --momentum above 0 \(e\.g\. 0\.9\) or turn --nesterov off"),
    Case("train-imagenet-resize-under-crop", "cli", lambda a, t: _train(a, t, "--crop", "32", "--resize", "16", arch="resnet34", data=_imagenet_manifest(t)),
         r"resize = 16 is smaller than crop = 32", r"use at least 32"),
    Case("train-imagenet-vgg-crop-too-small", "cli", lambda a, t: _train(a, t, "--crop", "16", "--resize", "20", arch="vgg11_slimming", data=_imagenet_manifest(t)),
         r"--crop = 16 is too small for vgg11_slimming: its five 2x2 max-pools need at least 32 pixels", r"use --crop 32 or more"),
    # ---- masked methods (unstructured, SFP)
    Case("prune-magnitude-ratio-one", "cli", lambda a, t: _prune(a, t, "--method", "magnitude", "--setting", "1"),
         r"pruning ratio '1' is not a fraction in \(0, 1\)", r"use e\.g\. 0\.4 for 40 %"),
    Case("prune-physical-out-without-one", "cli", lambda a, t: (lambda made: (made[0] + ["--physical-out", str(t / "p" / "small.pt")], made[1] + [t / "p" / "small.pt"]))(_prune(a, t, "--method", "magnitude", "--setting", "0.5")),
         r"magnitude has no physically pruned form", r"drop --physical-out"),
    Case("prune-sfp-on-vgg", "cli", lambda a, t: _prune(a, t, "--method", "sfp", "--setting", "0.7", model=a.vgg19),
         r"sfp prunes resnet20, resnet32, resnet56, resnet110, not vgg19", r"prunes resnet20"),
    Case("train-soft-with-init", "cli", lambda a, t: _train(a, t, "--method", "sfp", "--setting", "0.7", "--init", str(a.pruned), arm="soft"),
         r"the soft arm trains the full network from scratch while pruning", r"drop --init"),
    Case("train-soft-of-magnitude", "cli", lambda a, t: _train(a, t, "--method", "magnitude", "--setting", "0.5", arm="soft"),
         r"magnitude has no soft arm", r"its arms are finetune, scratch-e, scratch-b"),
    Case("train-sfp-keep-everything", "cli", lambda a, t: _train(a, t, "--method", "sfp", "--setting", "1", arm="soft"),
         r"SFP keep rate '1' is not a fraction in \(0, 1\)", r"use e\.g\. 0\.7 to keep 70 %"),
    Case("finetune-masks-wrong-shape", "cli", lambda a, t: _train(a, t, "--init", str(_model_with(a, t, masks={"conv1.weight": torch.ones(3, 3, dtype=torch.bool)})), arch="resnet56", arm="finetune"),
         r"edited\.pt: mask for 'conv1\.weight' has shape \(3, 3\)", r"the file is damaged"),
    Case("finetune-masks-not-bool", "cli", lambda a, t: _train(a, t, "--init", str(_model_with(a, t, masks={"conv1.weight": torch.ones(16, 3, 3, 3)})), arch="resnet56", arm="finetune"),
         r"edited\.pt is not a prunebench model file: masks\.conv1\.weight: expected a bool tensor", r"rerun the step that makes it"),
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
    Case("standin-out-dir-is-a-file", "cli", lambda a, t: (["standin", "--dataset", "cifar10", "--out-dir", str(_blocker(t))], [t / "blocker" / "cifar10-standin.tar.gz"]),
         r"Invalid value for '--out-dir': Directory \S*blocker' is a file", CLICK_HINT),
    # ---- model files
    Case("prune-truncated-checkpoint", "cli", lambda a, t: _prune(a, t, "--variant", "A", model=_truncated_checkpoint(a, t)),
         r"model checkpoint \S*truncated\.pt is corrupt or not a torch file", r"delete it and rerun the step that makes it"),
    Case("prune-already-pruned-model", "cli", lambda a, t: _prune(a, t, "--variant", "A", model=a.pruned),
         r"pruned\.pt is already pruned \(cfg \[", r"prune the full resnet56 model"),
    Case("prune-model-options-a-list", "cli", lambda a, t: _prune(a, t, "--variant", "A", model=_model_with(a, t, options=["shortcut", "avgpool"])),
         r"edited\.pt is not a prunebench model file: options: input should be a valid dictionary", r"rerun the step that makes it"),
    Case("evaluate-model-unknown-option", "cli", lambda a, t: _evaluate(a, t, model=_model_with(a, t, options={"widen": "2"})),
         r"edited\.pt: unknown option 'widen' for resnet56", r"damaged or from another version, rerun its step"),
    Case("evaluate-non-torch-checkpoint", "cli", lambda a, t: _evaluate(a, t, model=_text_file(t)),
         r"model checkpoint \S*model\.pt is corrupt or not a torch file", r"delete it and rerun the step that makes it"),
    Case("evaluate-torchscript-model", "cli", lambda a, t: _evaluate(a, t, model=_torchscript(t)),
         r"model checkpoint \S*scripted\.pt is corrupt or not a torch file", r"delete it and rerun the step that makes it"),
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
    # ---- evaluate inputs
    Case("evaluate-metrics-of-another-run", "cli", lambda a, t: _evaluate(a, t, metrics=_other_run_metrics(t)),
         r"other-metrics\.json describes run .*'seed': 2.* but \S*base\.pt holds .*'seed': 1", r"pass the pair from one run"),
    Case("evaluate-metrics-a-list", "cli", lambda a, t: _evaluate(a, t, metrics=_metrics_file(t, [BASE_RUN, 10.0])),
         r"list-metrics\.json is not a metrics\.json", r"rerun the training that writes it"),
    Case("evaluate-metrics-missing", "cli", lambda a, t: _evaluate(a, t, metrics=t / "gone" / "metrics.json"),
         r"missing file \S*gone/metrics\.json", r"run the step that makes it first"),
    Case("evaluate-metrics-incomplete", "cli", lambda a, t: _evaluate(a, t, metrics=_incomplete_metrics(t)),
         r"incomplete-metrics\.json .*macs", r"rerun|re-run"),
    Case("evaluate-zero-test-subset", "cli", lambda a, t: _evaluate(a, t, None, None, "--test-subset", "0"),
         r"Invalid value for '--test-subset': 0 is not in the range x>=1", CLICK_HINT),
    # ---- table inputs (eval.json)
    Case("table-eval-not-json", "cli", lambda a, t: _table(t, [_bad_json(t)]),
         r"evals/eval\.json is not valid JSON", r"delete it and rerun the step that makes it"),
    Case("table-eval-a-list", "cli", lambda a, t: _table(t, [_evals_file(t, "eval.json", [BASE_RUN, 93.1])]),
         r"evals/eval\.json is not an eval\.json: it holds a list", r"rerun 'prunebench evaluate' for it"),
    Case("table-eval-lacks-keys", "cli", lambda a, t: _table(t, [_evals_file(t, "eval.json", {"run": BASE_RUN, "accuracy": {"best": 93.1}})]),
         r"evals/eval\.json is not an eval\.json: it lacks macs", r"rerun 'prunebench evaluate' for it"),
    Case("table-eval-run-not-a-dict", "cli", lambda a, t: _table(t, [_evals_file(t, "eval.json", {"run": "base", "accuracy": {"best": 1.0}, **COUNTS})]),
         r"evals/eval\.json is not an eval\.json", r"rerun 'prunebench evaluate' for it"),
    Case("table-eval-without-metric", "cli", lambda a, t: _table(t, [_eval_without_metric(t)]),
         r"has no accuracy\['best'\]", r"re-run its evaluation"),
    Case("table-eval-unknown-arm", "cli", lambda a, t: _table(t, [_evals_file(t, "eval.json", {"run": {**BASE_RUN, "arm": "scratch-c"}, "accuracy": {"best": 1.0}, **COUNTS})]),
         r"has arm 'scratch-c'", r"the table takes base, soft, finetune, scratch-e, scratch-b"),
    Case("table-eval-pruned-arm-without-setting", "cli",
         lambda a, t: _table(t, [_evals_file(t, "eval.json", {"run": {k: v for k, v in OLD_PRUNED_RUN.items() if k != "variant"}, "accuracy": {"best": 1.0}, **COUNTS})]),
         r"is a pruned arm without a setting", r"re-run its evaluation"),
    Case("table-evals-mix-methods", "cli",
         lambda a, t: _table(t, [_evals_file(t, f"{m}.json", {"run": {**BASE_RUN, "arm": "finetune", "method": m, "setting": s}, "accuracy": {"best": 1.0}, **COUNTS}) for m, s in (("l1", "A"), ("slimming", "0.4"))]),
         r"the evals of study 'l1' mix pruning methods l1, slimming", r"pass the evals of one study"),
    Case("table-unwritable-md", "cli",
         lambda a, t: (lambda b: (_table(t, [_evals_file(t, "eval.json", {"run": BASE_RUN, "accuracy": {"best": 1.0}, **COUNTS})])[0][:-1] + [str(b / "table1.md")],
                                  [t / "tables" / "table1.csv", b / "table1.md"]))(_blocker(t)),
         r"cannot write \S*blocker/table1\.md", r"choose a writable output path"),
    Case("table-duplicate-evals", "cli",
         lambda a, t: _table(t, [_evals_file(t, f"{i}.json", {"run": BASE_RUN, "accuracy": {"best": 1.0}, **COUNTS}) for i in (1, 2)]),
         r"two evals for cifar10 ResNet-56 unpruned seed 1", r"keep one of them"),
    # ---- figure inputs (table CSV)
    Case("figure-missing-table", "cli", lambda a, t: _figure(t, t / "none" / "table1.csv"),
         r"table \S*none/table1\.csv does not exist", r"run 'prunebench table' first"),
    Case("figure-table-lacks-columns", "cli", lambda a, t: _figure(t, _csv_file(t, "model,arch,setting\nResNet-56-A,resnet56,A\n")),
         r"table \S*table1\.csv lacks the columns study, dataset, metric", r"not written by 'prunebench table'; rerun it"),
    Case("figure-empty-table", "cli", lambda a, t: _figure(t, _csv_file(t, "")),
         r"table \S*table1\.csv is empty", r"not written by 'prunebench table'; rerun it"),
    Case("figure-binary-table", "cli", lambda a, t: _figure(t, _csv_file(t, bytes(range(256)) * 8)),
         r"table \S*table1\.csv (is not a CSV table|lacks the columns)", r"not written by 'prunebench table'; rerun it"),
    # ---- channels inputs (prune.json)
    Case("channels-report-lacks-layers", "cli", lambda a, t: _channels(t, [_prune_json(a, t, "layers")]),
         r"evals/prune\.json is not a prune\.json: it lacks layers", r"rerun the prune step"),
    Case("channels-report-not-json", "cli", lambda a, t: _channels(t, [_evals_file(t, "prune.json", "pruned resnet56 by l1 at A\n")]),
         r"evals/prune\.json is not valid JSON", r"delete it and rerun the step that makes it"),
    Case("channels-report-a-list", "cli", lambda a, t: _channels(t, [_prune_json(a, t, wrap=True)]),
         r"evals/prune\.json is not a prune\.json", r"rerun the prune step"),
    Case("channels-report-layer-lacks-widths", "cli", lambda a, t: _channels(t, [_prune_json(a, t, "layers", 3, "after")]),
         r"prune\.json is not a prune\.json: it lacks layers\.3\.after", r"rerun the prune step"),
    Case("channels-unwritable-png", "cli",
         lambda a, t: (lambda b: (_channels(t, [a.prune_json])[0][:-1] + [str(b / "channels.png")],
                                  [t / "channels" / "channels.csv", b / "channels.png"]))(_blocker(t)),
         r"cannot write \S*blocker/channels\.png", r"choose a writable output path"),
    Case("channels-report-without-setting", "cli", lambda a, t: _channels(t, [_prune_json(a, t, "run", "setting")]),
         r"prune report for .* has no setting", r"re-run its pruning"),
]  # fmt: skip

CONFIG_HINT = (
    r"(fix it in config\.yaml or --config|add it to config\.yaml or pass --config|known keys there: |choose one of )"
)
CONFIG_CASES = [
    Case("config-unknown-top-level-key", "config", _set("epochz", 3), r"unknown key epochz\b", r"known keys there: scale, data_root"),
    Case("config-unknown-nested-key", "config", _set("protocol", "batchsize", 64), r"unknown key protocol\.batchsize\b", r"known keys there: batch_size"),
    Case("config-old-table1-key", "config", _set("table1", {"models": {"vgg16": ["A"]}}), r"unknown key table1\b", r"known keys there: .*studies"),
    Case("config-unknown-study-key", "config", _set("studies", "l1", "variants", ["A"]), r"unknown key studies\.l1\.variants\b", r"known keys there: title, paper, report, method, methods"),
    Case("config-unknown-arch", "config", _set("studies", "l1", "models", "cifar10", "resnet57", ["A"]), r"studies\.l1\.models\.cifar10\b.*'resnet57'", CONFIG_HINT),
    Case("config-arch-without-variants", "config", _set("studies", "l1", "models", "cifar100", {"resnet20": ["A"]}), r"studies\.l1\.models\.cifar100: unknown 'resnet20'", r"choose one of vgg16, resnet56, resnet110"),
    Case("config-unknown-dataset", "config", _set("studies", "l1", "models", "svhn", {"vgg16": ["A"]}), r"studies\.l1\.models: unknown 'svhn'", r"choose one of cifar10, cifar100, imagenet"),
    Case("config-unknown-method", "config", _set("studies", "l1", "method", "l3"), r"studies\.l1\.method: unknown 'l3'", r"choose one of l1, .*slimming"),
    Case("config-unknown-arm", "config", _set("studies", "slimming", "arms", ["finetune", "scratch-c"]), r"studies\.slimming\.arms: unknown 'scratch-c'", r"choose one of finetune, scratch-e, scratch-b"),
    Case("config-unknown-variant", "config", _set("studies", "l1", "models", "cifar10", "resnet56", ["A", "Q"]), r"studies\.l1\.models\.cifar10\.resnet56\[1\] = 'Q': unknown pruned variant resnet56-Q", r"known variants: .*resnet56-B"),
    Case("config-slimming-ratio-above-one", "config", _set("studies", "slimming", "models", "cifar10", "vgg19", [1.5]), r"studies\.slimming\.models\.cifar10\.vgg19\[0\] = 1\.5: pruning ratio '1\.5' is not a fraction in \(0, 1\)", r"use e\.g\. 0\.4"),
    Case("config-slimming-on-resnet", "config", _set("studies", "slimming", "models", "cifar10", "resnet56", [0.5]), r"studies\.slimming\.models\.cifar10\.resnet56\[0\] = 0\.5: network slimming prunes vgg, preresnet, densenet models", r"not resnet56"),
    Case("config-slimming-without-sparsity", "config", _delete("sparsity", "densenet"), r"slimming trains densenet40 with a sparsity penalty", r"add sparsity\.densenet"),
    Case("config-unknown-model-option", "config", _set("studies", "l1", "options", {"resnet56": {"widen": "2"}}), r"studies\.l1\.options\.resnet56: unknown option 'widen' for resnet56", r"its options are: shortcut, shortcut_grad"),
    Case("config-bad-model-option-value", "config", _set("studies", "l1", "options", {"resnet56": {"shortcut": "hourglass"}}), r"studies\.l1\.options\.resnet56: bad value 'hourglass' for option 'shortcut'", r"choose one of 'avgpool', 'subsample'"),
    Case("config-study-name-with-dash", "config", _add_study("l1-copy"), r"study name 'l1-copy'", r"must be lower-case letters, digits and _"),
    Case("config-no-studies", "config", _set("studies", {}), r"studies = \{\} is invalid", CONFIG_HINT),
    Case("config-negative-sparsity", "config", _set("sparsity", "vgg", -1e-4), r"sparsity\.vgg = -0\.0001 is invalid", CONFIG_HINT),
    Case("config-negative-epochs", "config", _set("protocol", "arms", "base", "epochs", -1), r"protocol\.arms\.base\.epochs = -1 is invalid", CONFIG_HINT),
    Case("config-zero-epochs", "config", _set("scales", "smoke", "epochs", "finetune", 0), r"scales\.smoke\.epochs\.finetune = 0 is invalid", CONFIG_HINT),
    Case("config-zero-finetune-epochs", "config", _set("studies", "slimming", "finetune_epochs", 0), r"studies\.slimming\.finetune_epochs = 0 is invalid", CONFIG_HINT),
    Case("config-milestone-above-one", "config", _set("protocol", "arms", "base", "milestones", [0.5, 1.5]), r"protocol\.arms\.base\.milestones\.1 = 1\.5 is invalid", CONFIG_HINT),
    Case("config-empty-seed-list", "config", _set("scales", "smoke", "seeds", []), r"scales\.smoke\.seeds = \[\] is invalid", CONFIG_HINT),
    Case("config-undefined-scale", "config", _set("scale", "huge"), r"scale 'huge' is not defined under scales", r"choose one of smoke, paper"),
    Case("config-wrong-type-batch-size", "config", _set("protocol", "batch_size", "64"), r"protocol\.batch_size = '64' is invalid: .*not of type 'integer'", CONFIG_HINT),
    Case("config-lr-zero", "config", _set("protocol", "arms", "finetune", "lr", 0), r"protocol\.arms\.finetune\.lr = 0 is invalid", CONFIG_HINT),
    Case("config-device-gpu", "config", _set("device", "gpu"), r"device = 'gpu' is invalid", CONFIG_HINT),
    Case("config-report-metric-worst", "config", _set("report_metric", "worst"), r"report_metric = 'worst' is invalid", CONFIG_HINT),
    Case("config-bad-bench-model", "config", _set("bench", "models", ["resnet56", "ResNet-56/B"]), r"bench\.models\.1 = 'ResNet-56/B' is invalid", CONFIG_HINT),
    Case("config-missing-required-key", "config", _delete("results"), r"'results' is a required property", r"add it to config\.yaml or pass --config"),
    Case("config-missing-study-method", "config", _delete("studies", "l1", "method"), r"studies\.l1: give either method and models, or methods", r"a map of method to models"),
    Case("config-download-maybe", "config", _set("download", "maybe"), r"download = 'maybe' is invalid", CONFIG_HINT),
    Case("config-missing-nested-key", "config", _delete("protocol", "arms", "scratch-b"), r"protocol\.arms: 'scratch-b' is a required property", r"add it to config\.yaml"),
    Case("config-empty-variant-list", "config", _set("studies", "l1", "models", "cifar10", "vgg16", []), r"studies\.l1\.models\.cifar10\.vgg16 = \[\] is invalid", CONFIG_HINT),
    Case("config-unknown-precision", "config", _set("speed", "precision", "fp16"), r"speed\.precision = 'fp16' is invalid", CONFIG_HINT),
    Case("config-unknown-protocol", "config", _set("studies", "sfp", "protocol", "sgdr"), r"studies\.sfp\.protocol: unknown 'sgdr'", r"choose one of .*sfp"),
    Case("config-unknown-protocol-key", "config", _set("protocols", "sfp", "nesterof", True), r"unknown key protocols\.sfp\.nesterof\b", r"known keys there: batch_size"),
    Case("config-soft-arm-without-schedule", "config", _delete("protocols", "sfp", "arms", "soft"), r"studies\.sfp: arm 'soft' has no schedule", r"add protocols\.sfp\.arms\.soft"),
    Case("config-bad-normalisation", "config", _set("protocols", "sfp", "normalisation", "imagenet"), r"protocols\.sfp\.normalisation = 'imagenet' is invalid", CONFIG_HINT),
    Case("config-bad-scratch-b-budget", "config", _set("studies", "unstructured", "scratch_b_budget", "never"), r"studies\.unstructured\.scratch_b_budget = 'never' is invalid", CONFIG_HINT),
    Case("config-sfp-on-vgg", "config", _set("studies", "sfp", "models", "cifar10", "vgg19", [0.7]), r"studies\.sfp\.models\.cifar10: unknown 'vgg19'", r"choose one of resnet20, resnet32"),
    Case("config-zero-max-settings", "config", _set("scales", "smoke", "max_settings", 0), r"scales\.smoke\.max_settings = 0 is invalid", CONFIG_HINT),
    Case("config-soft-arm-of-l1", "config", _set("studies", "l1", "arms", ["finetune", "soft"]), r"studies\.l1\.arms: unknown 'soft'", r"choose one of finetune, scratch-e, scratch-b"),
    Case("config-sfp-keep-everything", "config", _set("studies", "sfp", "models", "cifar10", "resnet56", [1.0]), r"studies\.sfp\.models\.cifar10\.resnet56\[0\] = 1\.0: SFP keep rate '1' is not a fraction in \(0, 1\)", r"use e\.g\. 0\.7"),
    Case("config-bad-densenetbc-block", "config", _set("studies", "unstructured", "options", "densenetbc100", {"block": "dense"}), r"studies\.unstructured\.options\.densenetbc100: bad value 'dense' for option 'block'", r"choose one of 'bottleneck', 'basic'"),
    Case("config-slimming-on-preresnet110", "config", _set("studies", "slimming", "models", "cifar10", "preresnet110", [0.4]), r"studies\.slimming\.models\.cifar10\.preresnet110\[0\] = 0\.4: network slimming prunes .* with every BatchNorm in a channel group", r"not preresnet110"),
    # settings the commands check on their own (prunebench.core.limits, the bench's parser)
    Case("config-imagenet-crop-under-8", "config", _set("scales", "smoke", "imagenet", "crop", 4), r"scales\.smoke\.imagenet\.crop = 4 is not a whole number of pixels of at least 8", r"use e\.g\. 224"),
    Case("config-imagenet-resize-under-crop", "config", _set("scales", "paper", "imagenet", "resize", 200), r"scales\.paper\.imagenet\.resize = 200 is smaller than scales\.paper\.imagenet\.crop = 224", r"use at least 224"),
    Case("config-imagenet-crop-too-small-for-vgg", "config", _set("scales", "smoke", "imagenet", "crop", 16), r"scales\.smoke\.imagenet\.crop = 16 is too small for vgg16_nobn: its five 2x2 max-pools", r"use scales\.smoke\.imagenet\.crop 32 or more"),
    Case("config-gpu-decoder-on-cpu", "config", _both(_set("device", "cpu"), _set("imagenet", "decoder", "gpu")), r"imagenet\.decoder='gpu' needs an available CUDA device, got device=cpu", r"use imagenet\.decoder='cpu' or 'auto'"),
    Case("config-imagenet-study-without-imagenet-block", "config", _delete("imagenet"), r"studies\.imagenet_l1 trains on ImageNet but the config has no imagenet block", r"add imagenet: \{decoder: auto, nodes: 1\}"),
    Case("config-results-is-a-file", "config", _set("results", str(CONFIG)), r"results = '\S*config\.yaml' is a file, not a folder", r"point results at a folder"),
    Case("config-results-under-a-file", "config", _set("results", str(CONFIG / "results")), r"results = '\S*config\.yaml/results' is under \S*config\.yaml, a file", r"point results at a folder"),
    Case("config-results-with-braces", "config", _set("results", "results/{scale}"), r"results = 'results/\{scale\}' holds braces", r"without \{ or \}"),
    Case("config-data-root-is-a-file", "config", _set("data_root", str(CONFIG)), r"data_root = '\S*config\.yaml' is a file, not a folder", r"point data_root at a folder"),
    Case("config-nesterov-without-momentum", "config", _set("protocols", "sfp", "momentum", 0), r"protocols\.sfp\.nesterov needs momentum, but protocols\.sfp\.momentum = 0", r"set protocols\.sfp\.momentum above 0"),
    Case("config-nesterov-without-main-momentum", "config", _set("protocol", "momentum", 0.0), r"protocols\.sfp\.nesterov needs momentum, but protocol\.momentum = 0\.0", r"set protocol\.momentum above 0"),
    Case("config-bench-unknown-arch", "config", _set("bench", "models", ["resnet56", "resnet57"]), r"bench\.models\[1\] = 'resnet57': unknown arch 'resnet57'", r"choose one of .*resnet56"),
    Case("config-bench-unknown-variant", "config", _set("bench", "models", ["resnet56-C"]), r"bench\.models\[0\] = 'resnet56-C': unknown pruned variant resnet56-C", r"known variants: .*resnet56-B"),
    Case("config-unstructured-ratio-zero", "config", _set("studies", "unstructured", "models", "cifar10", "vgg19", [0]), r"studies\.unstructured\.models\.cifar10\.vgg19\[0\] = 0: pruning ratio '0' is not a fraction in \(0, 1\)", r"use e\.g\. 0\.4"),
]  # fmt: skip

CASES = CLI_CASES + CONFIG_CASES


def test_the_battery_is_large_and_distinct():
    assert len(CLI_CASES) >= 75, len(CLI_CASES)
    assert len(CONFIG_CASES) >= 35, len(CONFIG_CASES)
    assert len({c.id for c in CASES}) == len(CASES), "duplicate case ids"


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def assets(tmp_path_factory, tiny_prepared) -> SimpleNamespace:
    """Shared, read-only inputs: a random ResNet-56, its pruned -A version and prune.json (made
    by the real prune command), its metrics, a 100-class ResNet-20, a VGG-19 and the tiny
    prepared dataset."""
    work = tmp_path_factory.mktemp("bad_inputs")
    torch.manual_seed(0)
    full = work / "base.pt"
    save_model(full, models.build("resnet56", None, 10), "resnet56", 10, run=dict(BASE_RUN))
    pruned = work / "pruned.pt"
    prune_json = work / "prune.json"
    main(["prune", "--model", str(full), "--variant", "A", "--out", str(pruned), "--report", str(prune_json)])
    assert pruned.is_file() and prune_json.is_file()
    base_metrics = work / "metrics.json"
    base_metrics.write_text(
        json.dumps({"run": BASE_RUN, "best_accuracy": 10.0, "final_accuracy": 10.0, **COUNTS, "epochs": 1})
    )
    vgg19 = work / "vgg19.pt"
    save_model(vgg19, models.build("vgg19", None, 10), "vgg19", 10, run={**BASE_RUN, "arch": "vgg19"})
    c100 = work / "c100.pt"
    save_model(
        c100,
        models.build("resnet20", None, 100),
        "resnet20",
        100,
        run={**BASE_RUN, "dataset": "cifar100", "arch": "resnet20"},
    )
    return SimpleNamespace(
        work=work,
        full=full,
        pruned=pruned,
        prune_json=prune_json,
        base_metrics=base_metrics,
        c100=c100,
        vgg19=vgg19,
        data=tiny_prepared,
    )


# --------------------------------------------------------------------------- checks
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
    code, err, logged = run_failing(main, argv, case.id, capfd, caplog)
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


def _main_outcome(argv: list[str], capfd) -> tuple[int, str]:
    """(exit status, stderr) of ``main(argv)``; an exception escaping it fails the test."""
    capfd.readouterr()
    try:
        main(argv)
    except SystemExit as e:
        code = e.code
    except Exception as e:
        pytest.fail(f"main() raised {type(e).__name__}: {e}; a user sees a traceback, not one line")
    else:
        code = 0
    return code, capfd.readouterr().err


def test_old_format_pruned_eval(assets, tmp_path, capfd, monkeypatch):
    """An eval.json of a pruned arm from before studies: its run names a "variant" and no
    method or setting. ``table`` either reads the variant as the setting or refuses in one
    line; never a traceback, never half its outputs."""
    monkeypatch.delenv("PRUNEBENCH_DEBUG", raising=False)
    base = _evals_file(tmp_path, "base.json", {"run": BASE_RUN, "accuracy": {"best": 90.0}, **COUNTS})
    old = _evals_file(tmp_path, "old.json", {"run": OLD_PRUNED_RUN, "accuracy": {"best": 91.0}, **COUNTS})
    argv, (csv, md) = _table(tmp_path, [base, old])
    code, err = _main_outcome(argv, capfd)
    if code == 0:
        rows = list(csv_module.DictReader(csv.open()))
        assert [(r["arch"], r["setting"], r["finetune_n"]) for r in rows] == [("resnet56", "A", "1")], rows
        assert md.is_file()
    else:
        assert len(err.splitlines()) == 1 and err.startswith(PREFIX), err
        assert not csv.exists() and not md.exists()


def test_old_format_prune_report(assets, tmp_path, capfd, monkeypatch):
    """The same for ``channels`` and a prune.json whose run names a "variant" and no setting."""
    monkeypatch.delenv("PRUNEBENCH_DEBUG", raising=False)
    rep = json.loads(assets.prune_json.read_text())
    rep["run"] = {k: v for k, v in rep["run"].items() if k not in ("method", "setting")} | {"variant": "A"}
    argv, (csv, png) = _channels(tmp_path, [_evals_file(tmp_path, "prune.json", rep)])
    code, err = _main_outcome(argv, capfd)
    if code == 0:
        rows = list(csv_module.DictReader(csv.open()))
        assert rows and {r["setting"] for r in rows} == {"A"}, rows
        assert png.is_file()
    else:
        assert len(err.splitlines()) == 1 and err.startswith(PREFIX), err
        assert not csv.exists() and not png.exists()


# --------------------------------------------------------------------------- config against the commands
def _choices(command, name: str) -> set:
    return set(next(p for p in command.params if p.name == name).type.choices)


def test_the_schemas_choices_are_the_commands():
    """Every enum of the schema that the workflow passes to a command is that command's choice
    list, so a value the schema takes is one the command takes."""
    from prunebench.commands import cli as commands
    from prunebench.commands.li import li_report
    from prunebench.commands.report import ledger, table

    schema = yaml.safe_load(SCHEMA.read_text())
    top, fields = schema["properties"], schema["$defs"]["protocol_fields"]["properties"]
    study = top["studies"]["additionalProperties"]["properties"]
    pairs = {
        "speed.precision": (top["speed"]["properties"]["precision"]["enum"], _choices(commands.train, "precision")),
        "scales.<scale>.precision": (top["scales"]["additionalProperties"]["properties"]["precision"]["enum"], _choices(commands.train, "precision")),
        "speed.compile": (top["speed"]["properties"]["compile"]["enum"], _choices(commands.train, "compile_mode")),
        "imagenet.decoder": (top["imagenet"]["properties"]["decoder"]["enum"], _choices(commands.train, "decoder")),
        "normalisation": (fields["normalisation"]["enum"], _choices(commands.train, "normalisation")),
        "scratch_b.steps": (fields["scratch_b"]["properties"]["steps"]["enum"], _choices(commands.train, "scratch_b_steps")),
        "scratch_b_budget": (study["scratch_b_budget"]["enum"], _choices(commands.train, "scratch_b_budget")),
        "report_metric (table)": (top["report_metric"]["enum"], _choices(table, "metric")),
        "report_metric (ledger)": (top["report_metric"]["enum"], _choices(ledger, "metric")),
        "report_metric (li-report)": (top["report_metric"]["enum"], _choices(li_report, "metric")),
        "report (table kinds)": ([k for k in study["report"]["enum"] if k != "li"], _choices(table, "kind")),
    }
    for key, (enum, choices) in pairs.items():
        assert set(enum) == choices, (key, enum, choices)


def test_a_results_folder_made_later_is_fine(tmp_path):
    """results and data_root may not exist yet: the jobs create them."""
    config = yaml.safe_load(CONFIG.read_text())
    config.update(results=str(tmp_path / "new" / "results"), data_root=str(tmp_path / "new" / "data"))
    check(config, SCHEMA)
    assert not (tmp_path / "new").exists()


# --------------------------------------------------------------------------- real subprocesses
# the TorchScript case also shows torch's warnings are kept off stderr (pytest captures them in-process)
SUBPROCESS_CASES = ["prepare-no-data-no-download", "prune-truncated-checkpoint", "train-data-is-a-model", "evaluate-torchscript-model"]


@pytest.mark.parametrize("case_id", SUBPROCESS_CASES)
def test_bad_input_in_a_subprocess(case_id: str, assets, tmp_path):
    """The same contract through ``python -m prunebench``: real logging, real exit status."""
    case = next(c for c in CASES if c.id == case_id)
    argv, outputs = case.make(assets, tmp_path)
    proc = prunebench_process(argv, tmp_path)
    check_error_line(proc.returncode, proc.stderr, case)
    check_no_partial_output(outputs, case)
