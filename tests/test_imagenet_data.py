"""ImageNet data: finding and checking the ImageFolder tree, the reference's transforms, seeded
loaders (CPU decoding; the GPU path's crops run here on the CPU), and the tiny stand-in."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms as T

from prunebench.core.errors import UserError
from prunebench.data.imagenet_loaders import imagenet_loaders, loader_throughput, split_batches
from prunebench.data.imagenet_tree import MEAN, STD, find_imagenet, train_transform, val_transform, write_tiny_imagenet

CPU = torch.device("cpu")
SMALL = {"crop": 32, "resize": 36}  # the smoke-run input size for the 40 x 48 tiny images
N_CLASSES, N_TRAIN, N_VAL = 3, 5, 2


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("imagenet_root")
    write_tiny_imagenet(root, classes=N_CLASSES, train_per_class=N_TRAIN, val_per_class=N_VAL)
    return root


def loaders(root, workers=0, seed=0, epoch=0, **kw):
    return imagenet_loaders(root, 4, workers, seed, epoch, "cpu", **SMALL, **kw)


def images_of(batches) -> torch.Tensor:
    return torch.cat([x for x, _ in batches])


def one_line_error(call, *patterns) -> str:
    with pytest.raises(UserError) as e:
        call()
    msg = str(e.value)
    assert "\n" not in msg, msg
    for p in patterns:
        assert re.search(p, msg), f"{p!r} not in {msg!r}"
    return msg


# --------------------------------------------------------------------------- finding the tree
def test_find_imagenet_layouts(data_root):
    tree = data_root / "imagenet"
    assert find_imagenet(data_root) == tree  # <data_root>/imagenet/{train,val}
    assert find_imagenet(tree) == tree  # <data_root>/{train,val}


def _no_val(t):
    shutil.rmtree(t / "val")


def _no_train(t):
    shutil.rmtree(t / "train")


def _flat_val(t):
    for f in list((t / "val").rglob("*.JPEG")):
        f.rename(t / "val" / f.name)
    for d in (t / "val").iterdir():
        if d.is_dir():
            d.rmdir()


def _other_classes(t):
    (t / "val" / "n00000002").rename(t / "val" / "n09999999")


def _empty_class(t):
    for f in (t / "train" / "n00000001").iterdir():
        f.unlink()


@pytest.mark.parametrize(
    "break_tree, problem",
    [
        (_no_val, r"imagenet/val is missing"),
        (_no_train, r"imagenet/train is missing"),
        (_flat_val, r"val has no <class>/ folders \(it holds images directly"),
        (_other_classes, r"train/ has 3 classes and val/ 3, 2 of them not in both \(e\.g\. n00000002\)"),
        (_empty_class, r"class folder \S+/train/n00000001 holds no images"),
    ],
)
def test_find_imagenet_malformed(data_root, tmp_path, break_tree, problem):
    root = tmp_path / "root"
    shutil.copytree(data_root, root)
    break_tree(root / "imagenet")
    one_line_error(lambda: find_imagenet(root), f"data_root={re.escape(str(root))} is incomplete", problem, "cannot download")


def test_find_imagenet_missing(tmp_path):
    one_line_error(
        lambda: find_imagenet(tmp_path / "nowhere"),
        r"ImageNet not found under data_root=\S+nowhere: expected \S+/imagenet/train/<class>/\*\.JPEG",
        r"put the ILSVRC-2012 ImageFolder tree there \(the project cannot download it\)",
    )


# --------------------------------------------------------------------------- the stand-in
def test_tiny_imagenet_is_deterministic_and_guarded(tmp_path):
    a = write_tiny_imagenet(tmp_path / "a", classes=2, train_per_class=2, val_per_class=1, seed=3)
    b = write_tiny_imagenet(tmp_path / "b", classes=2, train_per_class=2, val_per_class=1, seed=3)
    files = sorted(p.relative_to(a) for p in a.rglob("*.JPEG"))
    assert len(files) == 6 and files == sorted(p.relative_to(b) for p in b.rglob("*.JPEG"))
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    assert Image.open(a / files[0]).size == (48, 40)  # size is (height, width)
    # Rewriting replaces the earlier stand-in whole: no stale class is left.
    write_tiny_imagenet(tmp_path / "a", classes=1, train_per_class=1, val_per_class=1, seed=4)
    assert [d.name for d in (a / "train").iterdir()] == ["n00000000"]
    (tmp_path / "real" / "imagenet" / "train").mkdir(parents=True)
    one_line_error(lambda: write_tiny_imagenet(tmp_path / "real"), r"is not a stand-in.*choose another root")
    one_line_error(lambda: write_tiny_imagenet(tmp_path / "c", classes=0), r"classes must be a whole number of at least 1")


# --------------------------------------------------------------------------- transforms
@pytest.fixture(scope="module")
def photo() -> Image.Image:
    px = np.random.default_rng(0).integers(0, 256, size=(300, 400, 3), dtype=np.uint8)
    return Image.fromarray(px, "RGB")


def test_transform_shapes(photo):
    torch.manual_seed(0)
    cases = [(train_transform(), 224), (val_transform(), 224), (train_transform(32), 32), (val_transform(32, 36), 32)]
    for transform, side in cases:
        x = transform(photo)
        assert x.dtype == torch.float32 and tuple(x.shape) == (3, side, side)
    raw = val_transform(normalise=False)(photo)
    assert raw.dtype == torch.uint8 and tuple(raw.shape) == (3, 224, 224)


@pytest.mark.parametrize("crop, resize", [(224, 256), (32, 36)])
def test_val_transform_equals_torchvision_v1(photo, crop, resize):
    ref = T.Compose([T.Resize(resize), T.CenterCrop(crop), T.ToTensor(), T.Normalize(MEAN, STD)])(photo)
    assert torch.allclose(val_transform(crop, resize)(photo), ref, atol=1e-6, rtol=0)


# --------------------------------------------------------------------------- loaders
def test_loaders_yield_every_image_once(data_root):
    train, val = loaders(data_root)
    assert train.classes == val.classes == [f"n{c:08d}" for c in range(N_CLASSES)]
    assert (train.images, val.images, len(train), len(val)) == (15, 6, 4, 2)
    labels = torch.cat([y for _, y in train])
    assert torch.equal(labels.sort().values, torch.arange(N_CLASSES).repeat_interleave(N_TRAIN))
    xs, ys = zip(*val)
    assert all(x.shape[1:] == (3, 32, 32) and x.dtype == torch.float32 for x in xs)
    # Val batches are the val transform of each image, in ImageFolder order.
    files = sorted((data_root / "imagenet" / "val").rglob("*.JPEG"))
    expected = torch.stack([val_transform(**SMALL)(Image.open(f).convert("RGB")) for f in files])
    assert torch.allclose(torch.cat(xs), expected, atol=1e-6, rtol=0)
    assert torch.equal(torch.cat(ys), torch.arange(N_CLASSES).repeat_interleave(N_VAL))


def test_loaders_subsets(data_root):
    train, val = loaders(data_root, train_subset=5, val_subset=3)
    assert len(images_of(train)) == 5 and len(images_of(val)) == 3
    assert loaders(data_root, train_subset=99)[0].images == 15
    one_line_error(lambda: loaders(data_root, train_subset=0), r"train_subset must be a positive number of images")


def test_train_batches_follow_seed_and_epoch(data_root):
    state = torch.get_rng_state()
    first = next(iter(loaders(data_root)[0]))
    assert torch.equal(torch.get_rng_state(), state)  # the caller's generator is left alone
    again = next(iter(loaders(data_root)[0]))
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    assert not torch.equal(first[0], next(iter(loaders(data_root, epoch=1)[0]))[0])
    assert not torch.equal(first[0], next(iter(loaders(data_root, seed=1)[0]))[0])


def test_epochs_independent_of_workers_and_resume(data_root):
    """A loader moved on with set_epoch, a fresh one started at that epoch (a resume), and one
    with two workers all give the same batches."""
    moved = loaders(data_root)[0]
    images_of(moved)
    moved.set_epoch(1)
    resumed = loaders(data_root, epoch=1)[0]
    workers = loaders(data_root, workers=2, epoch=1)[0]
    a, b, c = images_of(moved), images_of(resumed), images_of(workers)
    assert torch.equal(a, b) and torch.equal(a, c)


def test_gpu_path_crops_as_cpu_path(data_root):
    """The GPU path's steps (bytes in workers, crop boxes from the header, batched decode and
    crop) run on the CPU here: the same pixels, up to the rounding of two resize kernels."""
    tree = data_root / "imagenet"
    build = [[split_batches(tree, split, 4, 0, 0, 0, CPU, None, gpu, 32, 36) for split in ("train", "val")] for gpu in (False, True)]
    for cpu, gpu in zip(*build):
        (xc, yc), (xg, yg) = (torch.cat(t) for t in zip(*cpu)), (torch.cat(t) for t in zip(*gpu))
        assert torch.equal(yc, yg)
        levels = (xc - xg).abs() * torch.tensor(STD)[:, None, None] * 255  # in 0..255 grey levels
        assert levels.max() < 3.01 and levels.mean() < 0.5


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_gpu_decoder_needs_cuda(data_root, device):
    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    one_line_error(
        lambda: imagenet_loaders(data_root, 4, 0, 0, 0, device, decoder="gpu"),
        rf"decoder='gpu' needs an available CUDA device, got device={device}; use decoder='cpu' or 'auto'",
    )


def test_bad_decoder_and_auto(data_root):
    one_line_error(lambda: loaders(data_root, decoder="dali"), r"unknown decoder 'dali'; choose one of auto, cpu, gpu")
    assert loaders(data_root, decoder="auto")[0].images == 15  # auto on the CPU: the CPU path


def test_loader_throughput(data_root):
    assert loader_throughput(data_root, 4, 0, "cpu", 2, device="cpu", **SMALL) > 0


def test_cli_option_defaults_agree_with_the_loaders():
    """data_commands spells the crop, resize and decoders so that every command starts without
    torchvision; they must stay the loaders' own."""
    from prunebench.commands import data as data_commands
    from prunebench.data import imagenet_loaders
    from prunebench.data import imagenet_tree as imagenet

    assert (data_commands.CROP, data_commands.RESIZE) == (imagenet.CROP, imagenet.RESIZE)
    assert data_commands.DECODERS == imagenet_loaders.DECODERS
