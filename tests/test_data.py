"""Finding and preparing CIFAR data, subsets, and the batched augmentation against torchvision's."""

from __future__ import annotations

import gzip
import io
import tarfile
import threading
import time

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms
from torchvision.transforms import functional as TF

from prunebench import data as D
from prunebench import datasets
from conftest import CLASSES100
from prunebench.data import MEAN, STD, Data, TrainBatches, epoch_generator
from prunebench.datasets import make_standin, prepare
from prunebench.errors import UserError
from prunebench.io import exclusive_lock, save_torch

CPU = torch.device("cpu")
REFERENCE = transforms.Compose(
    [transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(), transforms.ToTensor(), transforms.Normalize(MEAN, STD)]
)


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


# --------------------------------------------------------------------------- Data and subsets
def test_data_full(tiny_prepared):
    blob = load(tiny_prepared)
    d = Data(tiny_prepared)
    assert d.dataset == "cifar10" and d.num_classes == 10
    assert torch.equal(d.train_x, blob["train_x"]) and torch.equal(d.test_y, blob["test_y"])
    d2 = Data(tiny_prepared, train_subset=10_000, test_subset=40)  # larger than the data: all of it
    assert torch.equal(d2.train_x, blob["train_x"]) and torch.equal(d2.test_x, blob["test_x"])


def test_data_subsets_are_deterministic(tiny_prepared):
    blob = load(tiny_prepared)
    a = Data(tiny_prepared, train_subset=20, test_subset=7)
    b = Data(tiny_prepared, train_subset=20, test_subset=7)
    assert a.train_x.shape == (20, 32, 32, 3) and a.test_x.shape == (7, 32, 32, 3)
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.train_y, b.train_y)
    assert torch.equal(a.test_x, b.test_x) and torch.equal(a.test_y, b.test_y)
    # a subset is made of whole (image, label) rows of the full data, without repeats, in file order
    full = blob["train_x"].flatten(1)
    rows = [int(torch.nonzero((full == r.flatten()).all(1)).item()) for r in a.train_x]
    assert rows == sorted(set(rows))
    assert torch.equal(a.train_y, blob["train_y"][rows])
    assert rows != list(range(20))  # random, not the first 20


def test_data_bad_inputs(tiny_prepared, tmp_path):
    with pytest.raises(UserError, match="train_subset must be a positive number"):
        Data(tiny_prepared, train_subset=0)
    with pytest.raises(UserError, match="does not exist"):
        Data(tmp_path / "missing.pt")
    save_torch(tmp_path / "other.pt", {"arch": "resnet20"})
    with pytest.raises(UserError, match="not a prepared dataset"):
        Data(tmp_path / "other.pt")


def test_eval_batches_are_plain_normalised_images(tiny_prepared):
    d = Data(tiny_prepared)
    xs, ys = zip(*D.eval_batches(d.test_x, d.test_y, 16, CPU))
    assert [len(y) for y in ys] == [16, 16, 8]
    x, y = torch.cat(xs), torch.cat(ys)
    assert torch.equal(y, d.test_y)
    for i in (0, 17, 39):
        ref = TF.normalize(TF.to_tensor(Image.fromarray(d.test_x[i].numpy())), MEAN, STD)
        torch.testing.assert_close(x[i], ref)


# --------------------------------------------------------------------------- augmentation
def _images(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, 32, 32, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def _reference_crop(px: np.ndarray, dy: int, dx: int, flip: bool) -> torch.Tensor:
    img = TF.pad(Image.fromarray(px), 4, fill=0)
    img = TF.crop(img, dy, dx, 32, 32)
    if flip:
        img = TF.hflip(img)
    return TF.normalize(TF.to_tensor(img), MEAN, STD)


def _ours(tb: TrainBatches, idx, offsets, flips) -> torch.Tensor:
    crops = tb.crop_flip(torch.as_tensor(idx), torch.as_tensor(offsets), torch.as_tensor(flips))
    assert crops.dtype == torch.uint8 and crops.shape == (len(idx), 32, 32, 3)
    return D._normalise(crops, tb.mean, tb.std)


def test_crop_flip_matches_hand_reference_for_every_offset():
    x = _images(2)
    tb = TrainBatches(x, torch.zeros(2, dtype=torch.int64), 8, CPU)
    combos = [(i, dy, dx, f) for i in range(2) for dy in range(9) for dx in range(9) for f in (False, True)]
    idx = [c[0] for c in combos]
    offsets = [[c[1], c[2]] for c in combos]
    flips = [c[3] for c in combos]
    ours = _ours(tb, idx, offsets, flips)
    ref = torch.stack([_reference_crop(x[i].numpy(), dy, dx, f) for i, dy, dx, f in combos])
    torch.testing.assert_close(ours, ref)


def test_padding_is_black_before_normalisation():
    x = torch.full((1, 32, 32, 3), 200, dtype=torch.uint8)
    tb = TrainBatches(x, torch.zeros(1, dtype=torch.int64), 1, CPU)
    pad_value = (0 - torch.tensor(MEAN)) / torch.tensor(STD)
    img_value = (200 / 255 - torch.tensor(MEAN)) / torch.tensor(STD)
    out = _ours(tb, [0, 0, 0], [[0, 0], [8, 8], [0, 8]], [False, False, True])
    # offset (0, 0): top 4 rows and left 4 columns are padding
    torch.testing.assert_close(out[0, :, :4, :], pad_value[:, None, None].expand(3, 4, 32))
    torch.testing.assert_close(out[0, :, :, :4], pad_value[:, None, None].expand(3, 32, 4))
    torch.testing.assert_close(out[0, :, 4:, 4:], img_value[:, None, None].expand(3, 28, 28))
    # offset (8, 8): bottom rows and right columns
    torch.testing.assert_close(out[1, :, 28:, :], pad_value[:, None, None].expand(3, 4, 32))
    torch.testing.assert_close(out[1, :, :28, :28], img_value[:, None, None].expand(3, 28, 28))
    # offset (0, 8) flipped: padding ends up on the left
    torch.testing.assert_close(out[2, :, :, :4], pad_value[:, None, None].expand(3, 32, 4))
    torch.testing.assert_close(out[2, :, 4:, 4:], img_value[:, None, None].expand(3, 28, 28))


def test_crop_flip_matches_torchvision_pipeline(monkeypatch):
    """Run the reference Compose itself, record its crop parameters, and find our equivalent."""
    x = _images(1, seed=3)
    tb = TrainBatches(x, torch.zeros(1, dtype=torch.int64), 1, CPU)
    pil = Image.fromarray(x[0].numpy())
    seen = []
    original = transforms.RandomCrop.get_params

    def recording(img, output_size):
        i, j, h, w = original(img, output_size)
        seen.append((i, j))
        return i, j, h, w

    monkeypatch.setattr(transforms.RandomCrop, "get_params", staticmethod(recording))
    torch.manual_seed(0)
    flips_seen = set()
    for _ in range(40):
        ref = REFERENCE(pil)
        dy, dx = seen[-1]
        plain, flipped = (_ours(tb, [0], [[dy, dx]], [f])[0] for f in (False, True))
        match = [f for f, out in ((False, plain), (True, flipped)) if torch.allclose(out, ref, rtol=1e-5, atol=1e-6)]
        assert len(match) == 1, (dy, dx)
        flips_seen.add(match[0])
    assert flips_seen == {False, True}
    assert len(set(seen)) > 20


def test_offsets_and_flips_are_uniform():
    n, epochs = 256, 100
    tb = TrainBatches(_images(n), torch.zeros(n, dtype=torch.int64), 64, CPU)
    offs, flips = [], []
    for e in range(epochs):
        order, o, f = tb.draw(epoch_generator(7, e))
        assert torch.equal(order.sort().values, torch.arange(n))
        offs.append(o)
        flips.append(f)
    offs, flips = torch.cat(offs), torch.cat(flips)
    total = n * epochs
    assert offs.min() == 0 and offs.max() == 8
    for axis in (0, 1):
        counts = torch.bincount(offs[:, axis], minlength=9).double()
        assert len(counts) == 9
        expect = total / 9
        chi2 = ((counts - expect) ** 2 / expect).sum().item()
        assert chi2 < 40, (axis, counts)  # 8 dof: p(chi2 > 40) ~ 3e-6; a biased sampler scores in the 1000s
    joint = torch.bincount(offs[:, 0] * 9 + offs[:, 1], minlength=81).double()
    expect = total / 81
    assert ((joint - expect) ** 2 / expect).sum().item() < 150  # 80 dof: p ~ 1e-5
    assert abs(flips.double().mean().item() - 0.5) < 0.02  # sd 0.003
    # flips do not depend on the horizontal offset
    for dx in range(9):
        assert abs(flips[offs[:, 1] == dx].double().mean().item() - 0.5) < 0.05


def test_epoch_covers_every_image_once():
    n = 70
    x = (torch.arange(n, dtype=torch.uint8) * 3)[:, None, None, None].expand(n, 32, 32, 3).contiguous()
    y = torch.arange(n)
    tb = TrainBatches(x, y, 32, CPU)
    assert len(tb) == 3
    for epoch in range(3):
        batches = list(tb.epoch(epoch_generator(1, epoch)))
        assert [len(b[1]) for b in batches] == [32, 32, 6]
        xs, ys = torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])
        assert xs.shape == (n, 3, 32, 32) and xs.dtype == torch.float32
        assert torch.equal(ys.sort().values, y)
        # the image served with each label is that label's image (the centre is never padding)
        expect = (ys[:, None].float() * 3 / 255 - torch.tensor(MEAN)) / torch.tensor(STD)
        torch.testing.assert_close(xs[:, :, 16, 16], expect)


def test_epoch_batches_are_the_drawn_crops():
    x, y = _images(50, seed=1), torch.arange(50) % 10
    tb = TrainBatches(x, y, 16, CPU)
    order, offsets, flips = tb.draw(epoch_generator(3, 4))
    served = list(tb.epoch(epoch_generator(3, 4)))
    xs, ys = torch.cat([b[0] for b in served]), torch.cat([b[1] for b in served])
    assert torch.equal(ys, y[order])
    ref = torch.stack(
        [_reference_crop(x[i].numpy(), int(o[0]), int(o[1]), bool(f)) for i, o, f in zip(order, offsets, flips)]
    )
    torch.testing.assert_close(xs, ref)


def test_same_seed_and_epoch_same_batches():
    x, y = _images(50, seed=2), torch.arange(50)
    a = list(TrainBatches(x, y, 16, CPU).epoch(epoch_generator(5, 2)))
    b = list(TrainBatches(x.clone(), y.clone(), 16, CPU).epoch(epoch_generator(5, 2)))
    assert len(a) == len(b) == 4
    for (xa, ya), (xb, yb) in zip(a, b):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    other_epoch = torch.cat([yb for _, yb in TrainBatches(x, y, 16, CPU).epoch(epoch_generator(5, 3))])
    other_seed = torch.cat([yb for _, yb in TrainBatches(x, y, 16, CPU).epoch(epoch_generator(6, 2))])
    this = torch.cat([ya for _, ya in a])
    assert not torch.equal(this, other_epoch) and not torch.equal(this, other_seed)
