"""Finding and preparing CIFAR-10/100 (torchvision files, folders, tarballs), failures that leave
nothing behind, and synthetic stand-ins."""

from __future__ import annotations

import gzip
import io
import tarfile
import threading
import time

import numpy as np
import pytest
import torch
from conftest import CLASSES100

from prunebench.core.errors import UserError
from prunebench.core.io import exclusive_lock, save_torch
from prunebench.data import cifar as D
from prunebench.data import datasets
from prunebench.data.cifar import Data
from prunebench.data.datasets import make_standin, prepare

CPU = torch.device("cpu")


def load(path):
    return torch.load(path, weights_only=True)


def assert_same_prepared(a: dict, b: dict):
    assert a["classes"] == b["classes"]
    for k in ("train_x", "train_y", "test_x", "test_y"):
        assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), k


# --------------------------------------------------------------------------- prepare
def test_prepare_image_folder(image_tree, tmp_path):
    root, written = image_tree
    info = prepare("cifar10", root, tmp_path / "out.pt", download=False)
    assert info["train_x"] == 30 and info["test_x"] == 20 and info["dataset"] == "cifar10"
    blob = load(tmp_path / "out.pt")
    assert blob["classes"] == [f"class{i:02d}" for i in range(10)]
    for split in ("train", "test"):
        x, y = blob[f"{split}_x"], blob[f"{split}_y"]
        assert x.dtype == torch.uint8 and x.shape == (len(written[split]), 32, 32, 3)
        assert y.dtype == torch.int64
        for i, (cls, px) in enumerate(written[split]):
            assert np.array_equal(x[i].numpy(), px)
            assert y[i].item() == int(cls[-2:])


def test_prepare_tarball_equals_folder(image_tree, tmp_path, make_tarball):
    root, _ = image_tree
    prepare("cifar10", root, tmp_path / "folder.pt", download=False)
    tar_root = tmp_path / "tars"
    tar_root.mkdir()
    make_tarball(root, tar_root / "cifar10.tar.gz")
    info = prepare("cifar10", tar_root, tmp_path / "tar.pt", download=False)
    assert "tarball" in info["source"]
    assert_same_prepared(load(tmp_path / "folder.pt"), load(tmp_path / "tar.pt"))


def test_prepare_tarball_order_does_not_matter(image_tree, tmp_path, make_tarball):
    """A tarball made by a tool that stores members unsorted must load as the folder does."""
    root, _ = image_tree
    prepare("cifar10", root, tmp_path / "folder.pt", download=False)
    tar_root = tmp_path / "tars"
    tar_root.mkdir()
    make_tarball(root, tar_root / "cifar10-png.tar.gz", reverse=True)
    prepare("cifar10", tar_root, tmp_path / "tar.pt", download=False)
    assert_same_prepared(load(tmp_path / "folder.pt"), load(tmp_path / "tar.pt"))


def test_prepare_finds_dataset_subfolder(tmp_path, make_tree):
    written = make_tree(tmp_path / "root" / "cifar10", n_train=1, n_test=1)
    prepare("cifar10", tmp_path / "root", tmp_path / "out.pt", download=False)
    blob = load(tmp_path / "out.pt")
    assert np.array_equal(blob["test_x"][3].numpy(), written["test"][3][1])


@pytest.mark.parametrize(
    "tarball, dataset", [("cifar100.tar.gz", "cifar10"), ("cifar10-jpeg.tar.gz", "cifar100")]
)
def test_a_tarball_of_the_other_cifar_is_never_taken(tmp_path, make_tree, make_tarball, tarball, dataset):
    make_tree(tmp_path / "tree", n_train=1, n_test=1)
    (tmp_path / "root").mkdir()
    make_tarball(tmp_path / "tree", tmp_path / "root" / tarball)
    with pytest.raises(UserError, match=f"{dataset} not found"):
        prepare(dataset, tmp_path / "root", tmp_path / "out.pt", download=False)


def test_missing_dataset_without_download(tmp_path):
    root = tmp_path / "nowhere"
    with pytest.raises(UserError) as e:
        prepare("cifar10", root, tmp_path / "out.pt", download=False)
    msg = str(e.value)
    assert "cifar10 not found" in msg
    assert str(root / "cifar-10-batches-py") in msg and str(root / "train") in msg  # where it looked
    assert "data_root" in msg and "download disabled" in msg
    assert "\n" not in msg
    assert not (tmp_path / "out.pt").exists()


def test_wrong_number_of_classes(tmp_path, make_tree, make_tarball):
    make_tree(tmp_path / "tree", classes=["a", "b", "c"], n_train=1, n_test=1)
    with pytest.raises(UserError, match="has 3 classes but cifar10 has 10"):
        prepare("cifar10", tmp_path / "tree", tmp_path / "out.pt", download=False)
    (tmp_path / "tars").mkdir()
    make_tarball(tmp_path / "tree", tmp_path / "tars" / "cifar10.tar.gz")
    with pytest.raises(UserError, match="has 3 classes but cifar10 has 10"):
        prepare("cifar10", tmp_path / "tars", tmp_path / "out.pt", download=False)
    # and 10 classes are not enough for cifar100
    make_tree(tmp_path / "tree10", n_train=1, n_test=1)
    with pytest.raises(UserError, match="has 10 classes but cifar100 has 100"):
        prepare("cifar100", tmp_path / "tree10", tmp_path / "out.pt", download=False)


def test_wrong_image_size(tmp_path, make_tree):
    make_tree(tmp_path / "tree", n_train=1, n_test=1, size=28)
    with pytest.raises(UserError, match="32x32 RGB"):
        prepare("cifar10", tmp_path / "tree", tmp_path / "out.pt", download=False)


def test_missing_test_split(tmp_path, make_tree):
    make_tree(tmp_path / "tree", n_train=1, n_test=0)
    with pytest.raises(UserError, match="no test/ images"):
        prepare("cifar10", tmp_path / "tree", tmp_path / "out.pt", download=False)


def test_damaged_tarball(tmp_path, make_tree, make_tarball):
    make_tree(tmp_path / "tree", n_train=2, n_test=1)
    (tmp_path / "tars").mkdir()
    tar = make_tarball(tmp_path / "tree", tmp_path / "tars" / "cifar10.tar.gz")
    blob = tar.read_bytes()
    tar.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(UserError, match="not a readable .tar.gz"):
        prepare("cifar10", tmp_path / "tars", tmp_path / "out.pt", download=False)


def test_unknown_dataset(tmp_path):
    with pytest.raises(UserError, match="unknown dataset 'mnist'"):
        prepare("mnist", tmp_path, tmp_path / "out.pt", download=False)


# --------------------------------------------------------------------------- CIFAR-100 and torchvision's layout
@pytest.mark.parametrize("dataset", ["cifar100", "cifar10"])
@pytest.mark.parametrize("bytes_keys", [True, False], ids=["bytes-keys", "str-keys"])
def test_prepare_torchvision_pickles(dataset, bytes_keys, tmp_path, make_pickles):
    expected = make_pickles(tmp_path / "root", dataset, n_train=2, n_test=1, bytes_keys=bytes_keys)
    info = prepare(dataset, tmp_path / "root", tmp_path / "out.pt", download=False)
    n = D.DATASETS[dataset]
    assert info["train_x"] == 2 * n and info["test_x"] == n and info["standin"] is False
    assert "torchvision files in" in info["source"]
    blob = load(tmp_path / "out.pt")
    assert blob["classes"] == expected["classes"]  # the meta file's label order, not sorted
    for split in ("train", "test"):
        x, y = expected[split]
        assert blob[f"{split}_x"].dtype == torch.uint8 and blob[f"{split}_y"].dtype == torch.int64
        assert np.array_equal(blob[f"{split}_x"].numpy(), x) and np.array_equal(blob[f"{split}_y"].numpy(), y)


@pytest.mark.parametrize("dataset", ["cifar100", "cifar10"])
def test_torchvision_pickles_read_as_torchvision_reads_them(dataset, tmp_path, make_pickles, monkeypatch):
    """torchvision refuses files without the official md5s (so data.py reads them itself); with
    its checks switched off, torchvision's own reader must give exactly what prepare stored."""
    from torchvision import datasets
    from torchvision.datasets import cifar

    make_pickles(tmp_path, dataset, n_train=1, n_test=1, bytes_keys=False)  # torchvision reads str keys
    cls = datasets.CIFAR100 if dataset == "cifar100" else datasets.CIFAR10
    with pytest.raises(RuntimeError, match="not found or corrupted"):
        cls(str(tmp_path), train=True, download=False)
    monkeypatch.setattr(cls, "_check_integrity", lambda self: True)
    monkeypatch.setattr(cifar, "check_integrity", lambda *a, **k: True)
    info = prepare(dataset, tmp_path, tmp_path / "out.pt", download=False)
    assert info["standin"] is False
    blob = load(tmp_path / "out.pt")
    for split, train in (("train", True), ("test", False)):
        ds = cls(str(tmp_path), train=train, download=False)
        assert blob["classes"] == list(ds.classes)
        assert np.array_equal(blob[f"{split}_x"].numpy(), ds.data)
        assert blob[f"{split}_y"].tolist() == list(ds.targets)


@pytest.mark.parametrize("where", ["cifar100", "."])
def test_prepare_cifar100_image_folder(where, tmp_path, make_tree):
    written = make_tree(tmp_path / "root" / where, classes=CLASSES100, n_train=1, n_test=1, seed=5)
    info = prepare("cifar100", tmp_path / "root", tmp_path / "out.pt", download=False)
    assert info["train_x"] == 100 and info["test_x"] == 100 and info["standin"] is False
    blob = load(tmp_path / "out.pt")
    assert blob["classes"] == CLASSES100 and blob["dataset"] == "cifar100"
    for i in (0, 57, 99):
        cls, px = written["test"][i]
        assert np.array_equal(blob["test_x"][i].numpy(), px) and blob["test_y"][i].item() == int(cls[-3:])
    d = Data(tmp_path / "out.pt")
    assert d.num_classes == 100 and d.standin is False


def test_cifar10_and_cifar100_tarballs_in_one_root_each_find_their_own(tmp_path, make_tree, make_tarball):
    make_tree(tmp_path / "t10", n_train=1, n_test=1)
    make_tree(tmp_path / "t100", classes=CLASSES100, n_train=1, n_test=1)
    root = tmp_path / "root"
    root.mkdir()
    make_tarball(tmp_path / "t10", root / "cifar10-jpeg.tar.gz")
    make_tarball(tmp_path / "t100", root / "cifar100-png.tar.gz", arcname="cifar100")
    i10 = prepare("cifar10", root, tmp_path / "c10.pt", download=False)
    i100 = prepare("cifar100", root, tmp_path / "c100.pt", download=False)
    assert i10["source"].endswith("cifar10-jpeg.tar.gz") and i10["train_x"] == 10
    assert i100["source"].endswith("cifar100-png.tar.gz") and i100["train_x"] == 100
    assert Data(tmp_path / "c100.pt").num_classes == 100


def test_tarball_names(tmp_path):
    names = [
        "cifar10.tar.gz", "cifar10-jpeg.tar.gz", "cifar10_x.tar.gz", "cifar10.v2.tar.gz", "cifar10jpeg.tar.gz",
        "cifar100.tar.gz", "cifar100-jpeg.tar.gz", "cifar100_png.tar.gz", "cifar1000.tar.gz", "cifar10.zip",
        "cifar10-standin.tar.gz", "cifar100-standin.tar.gz", "mycifar10.tar.gz",
    ]  # fmt: skip
    for n in names:
        (tmp_path / n).write_bytes(b"")
    (tmp_path / "cifar10-dir.tar.gz").mkdir()
    got = {ds: [p.name for p in datasets._tarballs(ds, tmp_path)] for ds in ("cifar10", "cifar100")}
    # the plain name first, stand-ins last
    assert got["cifar10"] == [
        "cifar10.tar.gz", "cifar10-jpeg.tar.gz", "cifar10.v2.tar.gz", "cifar10_x.tar.gz", "cifar10jpeg.tar.gz",
        "cifar10-standin.tar.gz",
    ]  # fmt: skip
    assert got["cifar100"] == ["cifar100.tar.gz", "cifar100-jpeg.tar.gz", "cifar100_png.tar.gz", "cifar100-standin.tar.gz"]


def test_missing_cifar100_without_download(tmp_path):
    root = tmp_path / "nowhere"
    out = tmp_path / "new" / "deeper" / "out.pt"
    with pytest.raises(UserError) as e:
        prepare("cifar100", root, out, download=False)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("cifar100 not found")
    for looked in (root / "cifar-100-python", root / "cifar100" / "train", root / "train", root / "cifar100*.tar.gz"):
        assert str(looked) in msg
    assert "data_root" in msg and "download disabled" in msg
    assert not (tmp_path / "new").exists()  # nor the folders made for the output, nor a .lock


# --------------------------------------------------------------------------- failures leave nothing
def test_failed_prepare_leaves_nothing_and_success_leaves_no_lock(tmp_path, make_tree, make_tarball):
    make_tree(tmp_path / "tree", n_train=2, n_test=1)
    root = tmp_path / "root"
    root.mkdir()
    tar = make_tarball(tmp_path / "tree", root / "cifar10.tar.gz")
    good = tar.read_bytes()
    tar.write_bytes(good[: len(good) // 2])
    out_dir = tmp_path / "prepared"
    out_dir.mkdir()  # an existing output folder stays, empty
    with pytest.raises(UserError, match="not a readable .tar.gz"):
        prepare("cifar10", root, out_dir / "c10.pt", download=False)
    assert list(out_dir.iterdir()) == []
    tar.write_bytes(good)
    prepare("cifar10", root, out_dir / "c10.pt", download=False)
    assert sorted(p.name for p in out_dir.iterdir()) == ["c10.pt"]


def test_exclusive_lock_excludes_and_removes_its_file(tmp_path):
    lock, counter = tmp_path / "x.lock", tmp_path / "counter"
    counter.write_text("0")
    inside = []

    def work():
        for _ in range(5):
            with exclusive_lock(lock):
                inside.append(1)
                assert len(inside) == 1
                n = int(counter.read_text())
                time.sleep(0.002)
                counter.write_text(str(n + 1))
                inside.pop()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert counter.read_text() == "20"
    assert not lock.exists()
    with pytest.raises(RuntimeError):
        with exclusive_lock(lock):
            raise RuntimeError("failed work")
    assert not lock.exists()


# --------------------------------------------------------------------------- stand-in
def test_standin_is_deterministic_and_marked(tmp_path):
    a = make_standin("cifar10", tmp_path / "a")
    b = make_standin("cifar10", tmp_path / "b")
    assert a == tmp_path / "a" / "cifar10-standin.tar.gz"
    assert a.read_bytes() == b.read_bytes()
    assert make_standin("cifar10", tmp_path / "c", seed=1).read_bytes() != a.read_bytes()
    blob = a.read_bytes()
    assert blob[4:8] == b"\0\0\0\0"  # gzip mtime 0
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob))) as tar:
        members = tar.getmembers()
        names = [m.name for m in members]
        assert names == sorted(names)
        assert all(m.mtime == 0 and m.uid == 0 and m.gid == 0 and m.isfile() for m in members)
        text = tar.extractfile("cifar10/STANDIN").read().decode()
    assert "SYNTHETIC" in text and "mean nothing" in text and "never report" in text
    pngs = [n for n in names if n.endswith(".png")]
    assert len(pngs) == 10 * (6 + 3)
    assert "cifar10/train/class00/0000.png" in pngs and "cifar10/test/class09/0002.png" in pngs
    small = make_standin("cifar100", tmp_path / "d", train_per_class=1, test_per_class=1)
    with tarfile.open(small) as tar:
        assert len([n for n in tar.getnames() if n.endswith(".png")]) == 200
    with pytest.raises(UserError, match="unknown dataset"):
        make_standin("mnist", tmp_path)
    with pytest.raises(UserError, match="train_per_class must be a positive"):
        make_standin("cifar10", tmp_path, train_per_class=0)


def test_standin_is_detected_in_tarball_and_tree_and_is_slightly_learnable(tmp_path):
    tar = make_standin("cifar10", tmp_path / "root", train_per_class=20, test_per_class=10)
    info = prepare("cifar10", tmp_path / "root", tmp_path / "tar.pt", download=False)
    assert info["standin"] is True and "stand-in" in info["source"]
    assert info["train_x"] == 200 and info["test_x"] == 100
    assert load(tmp_path / "tar.pt")["standin"] is True
    d = Data(tmp_path / "tar.pt")
    assert d.standin is True and d.num_classes == 10
    # unpacked into an ImageFolder tree, the marker file is seen too, and the images are the same
    with tarfile.open(tar) as t:
        t.extractall(tmp_path / "unpacked", filter="data")
    info = prepare("cifar10", tmp_path / "unpacked", tmp_path / "tree.pt", download=False)
    assert info["standin"] is True and "image folder" in info["source"]
    assert_same_prepared(load(tmp_path / "tar.pt"), load(tmp_path / "tree.pt"))
    # nearest class-mean colour beats chance (10 %) by far: a network has something to learn
    means = torch.stack([d.train_x[d.train_y == c].float().mean((0, 1, 2)) for c in range(10)])
    guess = torch.cdist(d.test_x.float().mean((1, 2)), means).argmin(1)
    assert (guess == d.test_y).float().mean() > 0.5


def test_real_data_wins_over_a_standin_beside_it(tmp_path, make_tree, make_tarball):
    make_tree(tmp_path / "tree", n_train=1, n_test=1)
    make_standin("cifar10", tmp_path / "root")
    make_tarball(tmp_path / "tree", tmp_path / "root" / "cifar10-png.tar.gz")
    info = prepare("cifar10", tmp_path / "root", tmp_path / "out.pt", download=False)
    assert info["standin"] is False and info["source"].endswith("cifar10-png.tar.gz")


def test_files_prepared_before_the_standin_flag_are_real(tiny_prepared, tmp_path):
    blob = load(tiny_prepared)
    assert blob["standin"] is False and Data(tiny_prepared).standin is False
    del blob["standin"]
    save_torch(tmp_path / "old.pt", blob)
    assert Data(tmp_path / "old.pt").standin is False
