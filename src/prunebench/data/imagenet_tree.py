"""ImageNet (ILSVRC-2012) as users hold it: an ImageFolder tree found and checked under data_root,
the reference's transforms (PROTOCOLS-IMAGENET section 1.1), and a tiny synthetic tree for tests
and smoke runs. Batches on the device are :mod:`.imagenet_loaders`' business.

The project never downloads ImageNet (its licence does not allow redistribution): users put the
ImageFolder tree in place, and a missing or malformed tree is a one-line error saying what is
missing.

The transforms use ``torchvision.transforms.v2``: its kernels take PIL images in the CPU workers
and uint8 tensors (CUDA ones included) in the GPU-decoding path alike, and on PIL images they call
the same PIL resize as v1, so the output equals v1's (tested).
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.datasets.folder import IMG_EXTENSIONS
from torchvision.transforms import v2

from prunebench.core.errors import UserError
from prunebench.core.io import atomic_path, write_text

from .datasets import STANDIN_MARKER

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
CROP, RESIZE = 224, 256  # train/val crop side, val shorter-side resize
# RandomResizedCrop's torchvision defaults, spelled out so a change of default cannot move them.
SCALE, RATIO = (0.08, 1.0), (3 / 4, 4 / 3)
FLIP_P = 0.5
SPLITS = ("train", "val")
_FIX = "put the ILSVRC-2012 ImageFolder tree there (the project cannot download it)"


def check_count(name: str, value, least: int = 1) -> None:
    """A whole-number argument (images, classes, workers) of at least ``least``."""
    if not isinstance(value, int) or isinstance(value, bool) or value < least:
        raise UserError(f"{name} must be a whole number of at least {least}, got {value!r}")


# --------------------------------------------------------------------------- finding the tree
def find_imagenet(data_root: str | os.PathLike) -> Path:
    """The folder holding ImageNet's ``train/`` and ``val/`` ImageFolder trees under ``data_root``.

    Accepted layouts, tried in this order:
      * ``<data_root>/imagenet/{train,val}/<class>/*.JPEG`` (beside other datasets in one root);
      * ``<data_root>/{train,val}/<class>/*.JPEG`` (data_root is the ImageNet folder itself).
    Any extension ImageFolder reads counts as an image. The tree is checked before any job uses
    it: both splits present, class folders in each, the same classes in both, no empty class.
    """
    root = Path(data_root)
    tree = next((t for t in (root / "imagenet", root) if any((t / s).is_dir() for s in SPLITS)), None)
    if tree is None:
        raise UserError(
            f"ImageNet not found under data_root={root}: expected {root / 'imagenet'}/train/<class>/*.JPEG and "
            f".../val/<class>/*.JPEG (or {root}/train and {root}/val); {_FIX}"
        )
    problem = _tree_problem(tree)
    if problem:
        raise UserError(f"ImageNet under data_root={root} is incomplete: {problem}; {_FIX}")
    return tree


def _tree_problem(tree: Path) -> str | None:
    """What keeps ``tree`` from being ImageNet's train/ and val/ ImageFolder trees, or None."""
    classes = {}
    for split in SPLITS:
        folder = tree / split
        if not folder.is_dir():
            return f"{folder} is missing"
        classes[split] = sorted(e.name for e in os.scandir(folder) if e.is_dir())
        if not classes[split]:
            flat = " (it holds images directly: sort them into <class>/ folders)" if _holds_images(folder) else ""
            return f"{folder} has no <class>/ folders{flat}"
    odd = sorted(set(classes["train"]) ^ set(classes["val"]))
    if odd:
        return (
            f"train/ has {len(classes['train'])} classes and val/ {len(classes['val'])}, "
            f"{len(odd)} of them not in both (e.g. {odd[0]})"
        )
    for split in SPLITS:
        empty = next((c for c in classes[split] if not _holds_images(tree / split / c)), None)
        if empty is not None:
            return f"class folder {tree / split / empty} holds no images ({', '.join(IMG_EXTENSIONS)})"
    return None


def _holds_images(folder: Path) -> bool:
    """Whether ``folder`` holds an image file; stops at the first (a class has ~1300)."""
    with os.scandir(folder) as entries:
        return any(e.name.lower().endswith(IMG_EXTENSIONS) and e.is_file() for e in entries)


# --------------------------------------------------------------------------- transforms
def train_transform(crop: int = CROP, normalise: bool = True) -> v2.Compose:
    """PIL image -> the reference's training input: RandomResizedCrop(crop) (scale 0.08-1, aspect
    3/4-4/3, bilinear), horizontal flip, then float normalised CHW (uint8 CHW if not ``normalise``:
    the loaders normalise on the device, moving a quarter of the bytes).

    Its randomness comes from torch's global generator, which the loaders seed per image from
    (seed, epoch, index); see :mod:`.imagenet_loaders`.
    """
    steps = [v2.RandomResizedCrop(crop, scale=SCALE, ratio=RATIO, interpolation=v2.InterpolationMode.BILINEAR)]
    return v2.Compose([*steps, v2.RandomHorizontalFlip(FLIP_P), *_to_tensor(normalise)])


def val_transform(crop: int = CROP, resize: int = RESIZE, normalise: bool = True) -> v2.Compose:
    """PIL image -> the reference's evaluation input: shorter side resized to ``resize``
    (bilinear), centre ``crop`` x ``crop``, then as ``train_transform``."""
    steps = [v2.Resize(resize, interpolation=v2.InterpolationMode.BILINEAR), v2.CenterCrop(crop)]
    return v2.Compose([*steps, *_to_tensor(normalise)])


# uint8 CHW or NCHW -> float in [0, 1] -> (x - MEAN) / STD, as v1's ToTensor + Normalize do.
_NORMALISE = v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD)])


def _to_tensor(normalise: bool) -> list:
    return [v2.PILToTensor(), *([_NORMALISE] if normalise else [])]


def normalise_batch(x_uint8: torch.Tensor) -> torch.Tensor:
    """A uint8 batch (N, 3, H, W) on any device -> the normalised float batch the transforms give."""
    return _NORMALISE(x_uint8)


# --------------------------------------------------------------------------- tiny stand-in
def write_tiny_imagenet(
    root: str | os.PathLike,
    classes: int = 4,
    train_per_class: int = 6,
    val_per_class: int = 2,
    size: tuple[int, int] = (40, 48),
    seed: int = 0,
) -> Path:
    """Write ``<root>/imagenet/{train,val}/<wnid>/<wnid>_NNNN.JPEG``: a SYNTHETIC ImageNet-shaped
    tree for tests and smoke runs, which ``find_imagenet(root)`` accepts. Returns its folder.

    Images are ``size`` = (height, width) RGB JPEGs (quality 90) of noise around a random mean
    colour per class, so a network can learn a little; class names look like WordNet ids
    (n00000000, n00000001, ...). A ``STANDIN`` marker beside train/ and val/ says it is synthetic;
    it is written first, so a killed write still carries it. An earlier stand-in there is replaced;
    any other folder there is refused. The same arguments give the same bytes.
    """
    check_count("classes", classes)
    check_count("train_per_class", train_per_class)
    check_count("val_per_class", val_per_class)
    if len(size) != 2 or not all(isinstance(s, int) and s >= 1 for s in size):
        raise UserError(f"size must be (height, width) in whole pixels, got {size!r}")
    tree = Path(root) / "imagenet"
    if tree.exists():
        if not (tree / STANDIN_MARKER).is_file():
            raise UserError(f"{tree} exists and is not a stand-in from write_tiny_imagenet; choose another root")
        shutil.rmtree(tree)
    write_text(
        tree / STANDIN_MARKER,
        f"SYNTHETIC STAND-IN for ImageNet, made by prunebench's write_tiny_imagenet(classes={classes}, "
        f"train_per_class={train_per_class}, val_per_class={val_per_class}, size={tuple(size)}, seed={seed}). "
        "Accuracies measured on it mean nothing: use it only to smoke-test the pipeline.\n",
    )
    rng = np.random.default_rng([seed, classes])
    means = rng.integers(40, 216, size=(classes, 3))
    for split, n in (("train", train_per_class), ("val", val_per_class)):
        for c, mean in enumerate(means):
            wnid = f"n{c:08d}"
            for k in range(n):
                px = np.clip(mean + rng.normal(0.0, 40.0, size=(*size, 3)), 0, 255).astype(np.uint8)
                buf = io.BytesIO()
                Image.fromarray(px, "RGB").save(buf, format="JPEG", quality=90)
                with atomic_path(tree / split / wnid / f"{wnid}_{k:04d}.JPEG") as tmp:
                    tmp.write_bytes(buf.getvalue())
    return tree
