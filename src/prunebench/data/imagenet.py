"""ImageNet as a run's data: a manifest file in place of CIFAR's prepared tensor file.

ImageNet is 140 GB of JPEGs read from the user's ImageFolder tree by every training job, so
``prepare --dataset imagenet`` checks the tree once (one-line errors naming data_root), decodes
none, a sample or all of its images as ``verify`` says (:mod:`.image_check`), and writes a small
JSON manifest (the tree's path, its classes, image counts, whether it is the synthetic stand-in,
and a digest of its file list) that the workflow's rules depend on and every run records.
:class:`ImageNetData` opens the tree the manifest names, checks that it still has the manifest's
classes and images, and serves batches through :mod:`.imagenet_loaders` with the interface of
:class:`.data.Data`.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch

from prunebench.core.errors import UserError
from prunebench.core.forms import ImageNetManifest, read_form, write_form
from prunebench.core.limits import check_image_sizes

from .datasets import STANDIN_MARKER
from .image_check import verify_images
from .imagenet_loaders import DECODERS, _gpu_decoding, split_batches
from .imagenet_tree import CROP, RESIZE, SPLITS, check_count, find_imagenet

DATASET = "imagenet"
FORMAT = "prunebench-imagenet-manifest-1"


def _listing(tree: Path) -> tuple[list[str], dict[str, int], str]:
    """(classes, images per split, sha256 of every split/class/file name and size) of ``tree``."""
    from torchvision.datasets.folder import IMG_EXTENSIONS

    digest, counts = hashlib.sha256(), {}
    classes = sorted(e.name for e in os.scandir(tree / "train") if e.is_dir())
    for split in SPLITS:
        counts[split] = 0
        for c in classes:
            for e in sorted(os.scandir(tree / split / c), key=lambda e: e.name):
                if e.is_file() and e.name.lower().endswith(IMG_EXTENSIONS):
                    digest.update(f"{split}/{c}/{e.name}\t{e.stat().st_size}\n".encode())
                    counts[split] += 1
    return classes, counts, digest.hexdigest()


def prepare(data_root: str | os.PathLike, out: str | os.PathLike, verify: str = "none") -> dict:
    """Check the ImageFolder tree under ``data_root`` (:func:`.imagenet.find_imagenet`), decode
    ``verify``'s images (none, sample, all: :func:`.image_check.verify_images`) and write its
    manifest to ``out``, only if they all decode; returns the manifest."""
    found = find_imagenet(data_root)
    tree = found.resolve()
    classes, counts, digest = _listing(tree)
    verify_images(found, classes, verify)
    manifest = {
        "format": FORMAT,
        "dataset": DATASET,
        "tree": str(tree),
        "classes": classes,
        "images": counts,
        "files_sha256": digest,
        "standin": (tree / STANDIN_MARKER).is_file(),
    }
    write_form(out, ImageNetManifest, manifest)
    return manifest


def read_manifest(path: str | os.PathLike) -> dict:
    m = read_form(path, ImageNetManifest)
    if m["format"] != FORMAT:
        raise UserError(f"{path} is not an ImageNet manifest (format {m['format']!r}); {ImageNetManifest.FIX}")
    return m


class ImageNetData:
    """The tree a manifest names, as a run's data (see :class:`.data.Data` for the interface).

    ``loader`` options say how images become batches: ``crop`` and ``resize`` (the protocol's
    224 and 256; smoke runs shrink them), ``workers`` (DataLoader processes) and ``decoder``
    (cpu, gpu or auto: :mod:`.imagenet_loaders`). crop and resize change what a run learns, so
    they are recorded with it and part of its checkpoint's fingerprint; workers and decoder are not.
    """

    dataset = DATASET

    def __init__(self, path, train_subset: int | None = None, test_subset: int | None = None, crop: int = CROP, resize: int = RESIZE, workers: int = 0, decoder: str = "auto"):
        check_image_sizes(crop, resize)
        check_count("workers", workers, least=0)
        if decoder not in DECODERS:
            raise UserError(f"unknown decoder {decoder!r}; choose one of {', '.join(DECODERS)}")
        m = read_manifest(path)
        self.tree = find_imagenet(m["tree"])
        classes = sorted(e.name for e in os.scandir(self.tree / "train") if e.is_dir())
        if classes != m["classes"]:
            raise UserError(f"the ImageNet tree {self.tree} no longer has the classes of {path}; rerun 'prunebench prepare --dataset imagenet' (delete {path})")
        self.classes, self.num_classes, self.standin = classes, len(classes), bool(m.get("standin"))
        self.subsets = {"train": train_subset, "val": test_subset}
        for split, n in self.subsets.items():
            if n is not None and n < 1:
                raise UserError(f"{'test' if split == 'val' else split}_subset must be a positive number of images, got {n}")
        counts = {s: int(m["images"].get(s, 0)) for s in SPLITS}
        self.train_images = min(counts["train"], train_subset or counts["train"])
        self.test_images = min(counts["val"], test_subset or counts["val"])
        self.workers, self.decoder = workers, decoder
        self.loader = {"crop": crop, "resize": resize}
        self._val = None  # (arguments, batches): the val loader, built once per evaluation setting

    def _batches(self, split: str, batch_size: int, device: torch.device, seed: int, rank: int, world: int):
        gpu = _gpu_decoding(self.decoder, device)
        b = split_batches(self.tree, split, batch_size, self.workers, seed, 0, device, self.subsets[split], gpu, self.loader["crop"], self.loader["resize"], rank, world)
        if b.n != (self.train_images if split == "train" else self.test_images):
            raise UserError(f"the ImageNet tree {self.tree} has changed since its manifest was made ({b.n} {split} images used); rerun prepare")
        return b

    def train_batches(self, batch_size: int, device: torch.device, stats, seed: int, rank: int = 0, world: int = 1):
        """Training batches (``stats`` unused: ImageNet has its own normalisation)."""
        return self._batches("train", batch_size, device, seed, rank, world)

    def test_batches(self, batch_size: int, device: torch.device, stats, rank: int = 0, world: int = 1):
        if self._val is None or self._val[0] != (batch_size, device, rank, world):
            self._val = ((batch_size, device, rank, world), self._batches("val", batch_size, device, 0, rank, world))
        return iter(self._val[1])
