"""CIFAR data: find it (torchvision files, an ImageFolder tree or its tarball, or a download),
decode it once to uint8 tensors, and serve augmented batches from the training device.

Augmentation is the reference's: zero-pad 4, random 32x32 crop, horizontal flip, then
normalise. It runs batched on the device with the crop offsets and flips of a whole epoch
drawn up front from a CPU generator seeded by (seed, epoch), so an epoch's batches do not
depend on the device and a resumed run sees exactly the batches an uninterrupted one would.
"""

from __future__ import annotations

import gzip
import io
import os
import tarfile
import time
import zlib
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from filelock import FileLock
from PIL import Image

from .errors import UserError
from .io import load_torch, save_torch

DATASETS = {"cifar10": 10, "cifar100": 100}
# Rethinking's L1-norm, slimming and weight-level code uses these for C10 and C100 alike.
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2023, 0.1994, 0.2010)
PAD = 4
TORCHVISION_DIRS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}


# --------------------------------------------------------------------------- finding data
def _from_torchvision(dataset: str, root: Path, download: bool) -> dict:
    from torchvision import datasets

    cls = datasets.CIFAR10 if dataset == "cifar10" else datasets.CIFAR100
    splits = {}
    for split, train in (("train", True), ("test", False)):
        ds = cls(str(root), train=train, download=download)
        splits[split] = (torch.from_numpy(np.asarray(ds.data)), torch.tensor(ds.targets, dtype=torch.int64))
    return {"classes": list(ds.classes), "splits": splits, "source": f"torchvision {cls.__name__} in {root}"}


Item = tuple[str, str, str, "bytes | Path"]  # split, class, name (for messages), file or bytes


def _decode(items: list[Item], classes: list[str], where: str) -> tuple[torch.Tensor, torch.Tensor]:
    index = {c: i for i, c in enumerate(classes)}
    xs, ys = [], []
    for _, cls, name, blob in items:
        try:
            with Image.open(io.BytesIO(blob) if isinstance(blob, bytes) else blob) as im:
                xs.append(np.asarray(im.convert("RGB"), dtype=np.uint8))
        except (OSError, ValueError):
            raise UserError(f"{where}: {name} is not a readable image; remove it or replace the copy") from None
        ys.append(index[cls])
    shapes = {x.shape for x in xs}
    if len(shapes) > 1:
        raise UserError(f"{where} mixes image sizes {sorted(shapes)}; CIFAR images are all 32x32 RGB")
    return torch.from_numpy(np.stack(xs)), torch.tensor(ys, dtype=torch.int64)


def _split_items(items: list[Item], dataset: str, where: str) -> dict:
    classes = sorted({c for _, c, _, _ in items})
    if len(classes) != DATASETS[dataset]:
        raise UserError(
            f"{where} has {len(classes)} classes but {dataset} has {DATASETS[dataset]}; point data_root at a {dataset} copy"
        )
    splits = {}
    for split in ("train", "test"):
        chosen = [item for item in items if item[0] == split]
        if not chosen:
            raise UserError(f"{where} has no {split}/ images; it needs train/<class>/ and test/<class>/ folders")
        splits[split] = _decode(chosen, classes, where)
    return {"classes": classes, "splits": splits, "source": where}


def _from_image_folder(dataset: str, root: Path) -> dict:
    items = []
    for split in ("train", "test"):
        for f in sorted((root / split).glob("*/*")):
            if f.is_file():
                items.append((split, f.parent.name, str(f), f))
    return _split_items(items, dataset, f"image folder {root}")


def _from_tarball(dataset: str, tar_path: Path) -> dict:
    """Read members without unpacking. The whole stream is decompressed first (checking gzip's
    CRC) and must end in the archive's zero padding, so a damaged archive fails loudly instead
    of yielding the images before the damage."""
    items = []
    try:
        with gzip.open(tar_path) as f:
            raw = f.read()
        with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
            for m in tar:
                parts = Path(m.name).parts
                if m.isfile() and len(parts) >= 3 and parts[-3] in ("train", "test"):
                    items.append((parts[-3], parts[-2], m.name, tar.extractfile(m).read()))
            complete = not raw[tar.offset :].strip(b"\0")
    except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
        raise UserError(f"{tar_path} is not a readable .tar.gz ({type(e).__name__}); replace it with a complete copy") from None
    if not complete:
        raise UserError(f"{tar_path} is damaged after member {len(items)}; replace it with a complete copy")
    items.sort(key=lambda t: t[:3])  # archive order is arbitrary: sort as the folder loader does
    return _split_items(items, dataset, f"tarball {tar_path}")


def _tarballs(dataset: str, root: Path) -> list[Path]:
    """``cifar10.tar.gz``, ``cifar10-jpeg.tar.gz``, ``cifar10_x.tar.gz`` (never ``cifar100...`` for cifar10)."""
    if not root.is_dir():
        return []
    return sorted(
        p
        for p in root.iterdir()
        if p.name.endswith(".tar.gz")
        and (p.name == f"{dataset}.tar.gz" or p.name.startswith((f"{dataset}-", f"{dataset}_", f"{dataset}.")))
    )


def find_dataset(dataset: str, data_root: str | os.PathLike, download: bool = True) -> dict:
    """Locate ``dataset`` under ``data_root`` and decode it; download it there as a last resort."""
    if dataset not in DATASETS:
        raise UserError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    root = Path(data_root)
    looked = []
    if (root / TORCHVISION_DIRS[dataset]).is_dir():
        return _from_torchvision(dataset, root, download=False)
    looked.append(str(root / TORCHVISION_DIRS[dataset]))
    for folder in (root / dataset, root):
        if (folder / "train").is_dir():
            return _from_image_folder(dataset, folder)
        looked.append(str(folder / "train"))
    tars = _tarballs(dataset, root)
    if tars:
        return _from_tarball(dataset, tars[0])
    looked.append(str(root / f"{dataset}*.tar.gz"))
    if download:
        try:
            root.mkdir(parents=True, exist_ok=True)
            # Concurrent jobs download one at a time; the later ones find the verified files.
            with FileLock(str(root / f".{dataset}.download.lock")):
                return _from_torchvision(dataset, root, download=True)
        except Exception as e:  # no network, proxy, disk: the same advice
            reason = f"download failed ({type(e).__name__})"
    else:
        reason = "download disabled"
    raise UserError(
        f"{dataset} not found (looked in {', '.join(looked)}) and {reason}; "
        f"set data_root (config.yaml or --data-root) to a folder holding the torchvision files, "
        f"train/<class>/ and test/<class>/ folders, or a {dataset}*.tar.gz of them"
    )


def prepare(dataset: str, data_root: str | os.PathLike, out: str | os.PathLike, download: bool = True) -> dict:
    """Decode ``dataset`` once into one uint8 tensor file that every training job memory-maps.

    Safe to run concurrently for the same ``out``: one process prepares it, the others wait
    and reuse it.
    """
    try:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot write {out}: {e.strerror}; choose a writable output path") from None
    asked = time.time()
    with FileLock(f"{out}.lock"):
        made_meanwhile = _summary_if_prepared(out, dataset, since=asked)
        if made_meanwhile is not None:
            return made_meanwhile
        return _prepare(dataset, data_root, out, download)


def _summary_if_prepared(out: str | os.PathLike, dataset: str, since: float) -> dict | None:
    """The summary of ``out`` if another process prepared it after ``since``."""
    if not Path(out).is_file() or Path(out).stat().st_mtime < since:
        return None
    try:
        blob = load_torch(out, what="prepared dataset", mmap=True)
    except UserError:
        return None
    if not isinstance(blob, dict) or blob.get("dataset") != dataset:
        return None
    return _summary(blob)


def _summary(blob: dict) -> dict:
    """What a prepared file holds: image counts and where they came from."""
    return {k: (len(v) if isinstance(v, torch.Tensor) else v) for k, v in blob.items() if k != "classes"}


def _prepare(dataset: str, data_root: str | os.PathLike, out: str | os.PathLike, download: bool) -> dict:
    found = find_dataset(dataset, data_root, download)
    (train_x, train_y), (test_x, test_y) = found["splits"]["train"], found["splits"]["test"]
    for name, x in (("train", train_x), ("test", test_x)):
        if x.ndim != 4 or tuple(x.shape[1:]) != (32, 32, 3):
            raise UserError(f"{found['source']} has {name} images of shape {tuple(x.shape[1:])}; CIFAR images are 32x32 RGB")
    blob = {
        "dataset": dataset,
        "classes": found["classes"],
        "source": found["source"],
        "train_x": train_x.contiguous(),
        "train_y": train_y,
        "test_x": test_x.contiguous(),
        "test_y": test_y,
    }
    save_torch(out, blob)
    return _summary(blob)


# --------------------------------------------------------------------------- using data
class Data:
    """A prepared dataset, optionally a fixed random subset (smoke scale)."""

    def __init__(self, path: str | os.PathLike, train_subset: int | None = None, test_subset: int | None = None):
        blob = load_torch(path, what="prepared dataset", mmap=True)
        if not isinstance(blob, dict) or "train_x" not in blob:
            raise UserError(f"{path} is not a prepared dataset; make it with 'prunebench prepare'")
        self.dataset, self.classes = blob["dataset"], blob["classes"]
        self.num_classes = len(self.classes)
        self.train_x, self.train_y = _subset(blob["train_x"], blob["train_y"], train_subset, "train")
        self.test_x, self.test_y = _subset(blob["test_x"], blob["test_y"], test_subset, "test")


def _subset(x: torch.Tensor, y: torch.Tensor, n: int | None, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    if n is None or n >= len(x):
        return x.clone(), y.clone()
    if n < 1:
        raise UserError(f"{split}_subset must be a positive number of images, got {n}")
    idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))[:n].sort().values
    return x[idx], y[idx]


def _normalise(x_uint8_nhwc: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 NHWC -> float NCHW in channels_last memory (a free permute of the NHWC data)."""
    return ((x_uint8_nhwc.float() / 255.0 - mean) / std).permute(0, 3, 1, 2)


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 100_003 + epoch)


class TrainBatches:
    """Augmented training batches served from uint8 images kept on ``device``."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, device: torch.device):
        self.n, self.batch_size, self.device = len(x), batch_size, device
        # Zero-pad the raw pixels once: padded pixels are black before normalisation, as in PIL.
        self.padded = torch.nn.functional.pad(x.to(device), (0, 0, PAD, PAD, PAD, PAD))  # N, 40, 40, 3
        self.y = y.to(device)
        self.mean = torch.tensor(MEAN, device=device)
        self.std = torch.tensor(STD, device=device)
        self.ar = torch.arange(32, device=device)

    def __len__(self) -> int:
        return -(-self.n // self.batch_size)

    def draw(self, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One epoch's random choices: order, crop offsets (dy, dx in 0..8) and flips."""
        order = torch.randperm(self.n, generator=generator)
        offsets = torch.randint(0, 2 * PAD + 1, (self.n, 2), generator=generator)
        flips = torch.rand(self.n, generator=generator) < 0.5
        return order, offsets, flips

    def crop_flip(self, idx: torch.Tensor, offsets: torch.Tensor, flips: torch.Tensor) -> torch.Tensor:
        """uint8 NHWC crops of the padded images ``idx``, mirrored where ``flips``."""
        rows = offsets[:, :1] + self.ar  # B, 32
        cols = torch.where(flips[:, None], offsets[:, 1:] + 31 - self.ar, offsets[:, 1:] + self.ar)
        return self.padded[idx[:, None, None], rows[:, :, None], cols[:, None, :]]

    def epoch(self, generator: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order, offsets, flips = (t.to(self.device) for t in self.draw(generator))
        for start in range(0, self.n, self.batch_size):
            sl = slice(start, start + self.batch_size)
            idx = order[sl]
            x = self.crop_flip(idx, offsets[sl], flips[sl])
            yield _normalise(x, self.mean, self.std), self.y[idx]


def eval_batches(x: torch.Tensor, y: torch.Tensor, batch_size: int, device: torch.device) -> Iterator:
    mean, std = torch.tensor(MEAN, device=device), torch.tensor(STD, device=device)
    for start in range(0, len(x), batch_size):
        xb = x[start : start + batch_size].to(device, non_blocking=True)
        yield _normalise(xb, mean, std), y[start : start + batch_size].to(device, non_blocking=True)
