"""Shared fixtures (tiny CIFAR-shaped image trees, their tarballs and pickles, a prepared tiny
dataset) and the one-line error contract the bad-input batteries check."""

from __future__ import annotations

import logging
import os
import pickle
import re
import signal
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

# Small CPU budget: one thread keeps runs deterministic and fast on a 2-core machine.
torch.set_num_threads(1)

CLASSES10 = [f"class{i:02d}" for i in range(10)]
CLASSES100 = [f"class{i:03d}" for i in range(100)]


def write_image_tree(
    root: Path,
    classes: list[str] = CLASSES10,
    n_train: int = 3,
    n_test: int = 2,
    seed: int = 0,
    size: int = 32,
) -> dict[str, list[tuple[str, np.ndarray]]]:
    """Write root/{train,test}/<class>/NNN.png of random RGB images; return the pixels written.

    The returned lists are in the order a loader that sorts by (class, file name) must produce.
    """
    rng = np.random.default_rng(seed)
    written: dict[str, list[tuple[str, np.ndarray]]] = {"train": [], "test": []}
    for split, n in (("train", n_train), ("test", n_test)):
        for c in classes:
            d = root / split / c
            d.mkdir(parents=True, exist_ok=True)
            for k in range(n):
                px = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
                Image.fromarray(px, "RGB").save(d / f"{k:03d}.png")
                written[split].append((c, px))
    return written


def write_tarball(tree: Path, tar_path: Path, arcname: str = "cifar10", reverse: bool = False) -> Path:
    """A .tar.gz of ``tree`` (train/ and test/ under ``arcname``); ``reverse`` stores members in
    reverse path order, as a tar tool that does not sort directory listings may."""
    files = sorted(p for p in tree.rglob("*") if p.is_file())
    if reverse:
        files = files[::-1]
    with tarfile.open(tar_path, "w:gz") as tar:
        for f in files:
            tar.add(f, arcname=f"{arcname}/{f.relative_to(tree).as_posix()}", recursive=False)
    return tar_path


def write_cifar_pickles(
    root: Path, dataset: str = "cifar100", n_train: int = 2, n_test: int = 1, seed: int = 0, bytes_keys: bool = True
) -> dict:
    """Write torchvision's extracted layout of ``dataset`` under ``root`` (``cifar-100-python/``
    train, test, meta; or ``cifar-10-batches-py/`` data_batch_1..5, test_batch, batches.meta):
    pickled dicts with 'data' (N, 3072) uint8 rows (R, G, B planes of 32x32) and shuffled labels,
    ``n_train``/``n_test`` images per class. ``bytes_keys`` writes b'data' etc. (what
    ``pickle.load(f, encoding='bytes')`` shows of the originals), else str keys (what
    torchvision's ``encoding='latin1'`` shows). Class names are in reverse alphabetical order,
    so a reader that sorts them instead of using the meta file's order is caught.

    Returns {"classes": names, "train": (NHWC uint8 array, labels), "test": (...)}.
    """
    n_classes = 100 if dataset == "cifar100" else 10
    folder, names_key, labels_key = {
        "cifar100": ("cifar-100-python", "fine_label_names", "fine_labels"),
        "cifar10": ("cifar-10-batches-py", "label_names", "labels"),
    }[dataset]
    key = (lambda k: k.encode()) if bytes_keys else (lambda k: k)
    d = root / folder
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = [f"name{n_classes - 1 - i:03d}" for i in range(n_classes)]
    expected = {"classes": names}
    for split, n in (("train", n_train), ("test", n_test)):
        labels = rng.permutation(np.repeat(np.arange(n_classes), n))
        rows = rng.integers(0, 256, size=(len(labels), 3072), dtype=np.uint8)
        expected[split] = (rows.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels)
        if dataset == "cifar100":
            files = {split: np.arange(len(labels))}
        else:
            parts = np.array_split(np.arange(len(labels)), 5) if split == "train" else [np.arange(len(labels))]
            files = {(f"data_batch_{i + 1}" if split == "train" else "test_batch"): idx for i, idx in enumerate(parts)}
        for fname, idx in files.items():
            entry = {key("data"): rows[idx], key(labels_key): [int(v) for v in labels[idx]], key("batch_label"): key(fname)}
            with open(d / fname, "wb") as f:
                pickle.dump(entry, f, protocol=2)
    meta = {key(names_key): [key(n) for n in names]}
    with open(d / ("meta" if dataset == "cifar100" else "batches.meta"), "wb") as f:
        pickle.dump(meta, f, protocol=2)
    return expected


@pytest.fixture
def make_pickles():
    return write_cifar_pickles


@pytest.fixture
def image_tree(tmp_path: Path):
    """A 10-class ImageFolder tree (3 train + 2 test images per class) and the pixels written."""
    root = tmp_path / "tree"
    written = write_image_tree(root)
    return root, written


@pytest.fixture(scope="session")
def tiny_prepared(tmp_path_factory) -> Path:
    """A prepared cifar10-shaped dataset: 128 train and 40 test random images, made by ``prepare``."""
    from prunebench.data.datasets import prepare

    base = tmp_path_factory.mktemp("tiny_data")
    # 10 classes; 13 train images for 8 classes and 12 for 2 = 128; 4 test images each = 40.
    root = base / "root"
    write_image_tree(root, n_train=13, n_test=4, seed=123)
    for c in CLASSES10[:2]:
        (root / "train" / c / "012.png").unlink()
    out = base / "cifar10.pt"
    info = prepare("cifar10", root, out, download=False)
    assert info["train_x"] == 128 and info["test_x"] == 40
    return out


def _randomise_bn(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every BatchNorm non-trivial running statistics and affine parameters."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.5)
                m.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.25)
                # scaled so a 110-layer ResNet's outputs stay O(1) and float32 tolerances apply
                m.weight.copy_(torch.randn(n, generator=g) * 0.5)
                m.bias.copy_(torch.randn(n, generator=g) * 0.2)
    return model


@pytest.fixture
def randomise_bn():
    return _randomise_bn


@pytest.fixture
def make_tree():
    return write_image_tree


@pytest.fixture
def make_tarball():
    return write_tarball


def run_failing(main, argv: list[str], case_id: str, capfd, caplog) -> tuple[int, str, list[str]]:
    """Run the CLI entry point in-process on a bad input: (exit code, stderr, prunebench log
    records at INFO and above). A traceback or a clean exit fails the test."""
    capfd.readouterr()  # drop what building the inputs printed
    caplog.set_level(logging.INFO, logger="prunebench")
    try:
        main(argv)
    except SystemExit as e:
        code = e.code
    except Exception as e:  # what python -m prunebench would print as a traceback
        pytest.fail(f"case {case_id}: main() raised {type(e).__name__}: {e}; a user sees a traceback, not one line")
    else:
        pytest.fail(f"case {case_id}: main() returned normally (exit 0) on a bad input")
    logged = [
        f"{r.levelname} {r.getMessage()}"
        for r in caplog.records
        if r.name.startswith("prunebench") and r.levelno >= logging.INFO
    ]
    return code, capfd.readouterr().err, logged


def check_error_line(rc, stderr: str, case, logged: list[str] = ()) -> str:
    """The one-line error contract for a bad-input ``case`` (with ``id``, ``names``, ``hint``
    regexes): non-zero exit, no traceback, nothing logged first, exactly one stderr line that
    starts ``prunebench: error:``, names the problem and hints at the fix."""
    detail = f"case {case.id}: rc={rc}\nstderr:\n{stderr}"
    assert rc not in (0, None), detail
    assert "Traceback" not in stderr, detail
    assert not logged, f"case {case.id} logged before failing (it did work it then threw away): {logged}"
    lines = stderr.splitlines()
    assert len(lines) == 1, f"expected exactly one stderr line\n{detail}"
    line = lines[0]
    assert line.startswith("prunebench: error: "), detail
    assert re.search(case.names, line), f"the line does not name the problem ({case.names!r})\n{detail}"
    assert re.search(case.hint, line), f"the line does not hint at the fix ({case.hint!r})\n{detail}"
    return line


def prunebench_process(argv: list[str], cwd) -> subprocess.CompletedProcess:
    """``python -m prunebench ARGV`` as a user runs it (no debug tracebacks); prints nothing on stdout."""
    env = {k: v for k, v in os.environ.items() if k != "PRUNEBENCH_DEBUG"}
    proc = subprocess.run([sys.executable, "-m", "prunebench", *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.stdout == "", proc.stdout
    return proc


@pytest.fixture
def sigterm_guard():
    """A harmless SIGTERM handler while the test runs, so a fit that failed to install its own
    handler fails the test instead of killing pytest; yields the list of stray signals."""
    stray = []
    old = signal.signal(signal.SIGTERM, lambda s, f: stray.append(s))
    yield stray
    signal.signal(signal.SIGTERM, old)


def run_example_study(tmp_path: Path, target: str, configfile: str) -> Path:
    """Run an example study as a user does (``snakemake TARGET --configfile examples/...``) from
    ``tmp_path``, at smoke scale on a tiny image tree, one epoch an arm; the results folder."""
    import yaml

    repo = Path(__file__).resolve().parents[1]
    tree, results = tmp_path / "images", tmp_path / "results"
    write_image_tree(tree, n_train=8, n_test=4, seed=7)
    override = {"scales": {"smoke": {"train_subset": None, "test_subset": None, "epochs": {"base": 1, "finetune": 1, "scratch-e": 1, "scratch-b": 1}}}}
    (tmp_path / "override.yaml").write_text(yaml.safe_dump(override))
    (tmp_path / "config.yaml").write_text((repo / "config.yaml").read_text())  # the Snakefile's configfile, in the working folder
    bin_dir = Path(sys.executable).parent
    env = {k: v for k, v in os.environ.items() if k != "PRUNEBENCH_DEBUG"}
    env |= {"PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}", "PYTHONPATH": str(repo)}  # where examples/ imports from
    cmd = [str(bin_dir / "snakemake"), "-s", str(repo / "Snakefile"), "--cores", "2", target, "--configfile", str(repo / "examples" / configfile), str(tmp_path / "override.yaml"),
           "--config", f"data_root={tree}", f"results={results}", "download=False", "device=cpu"]  # fmt: skip
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return results
