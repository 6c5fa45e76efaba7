"""CIFAR data in use: a prepared dataset file, checked for its form, and augmented batches served
from the training device (finding and preparing datasets lives in :mod:`prunebench.data.datasets`).

Augmentation is the reference's: zero-pad 4, random 32x32 crop, horizontal flip, then
normalise. It runs batched on the device with the crop offsets and flips of a whole epoch
drawn up front from a CPU generator seeded by (seed, epoch), so an epoch's batches do not
depend on the device and a resumed run sees exactly the batches an uninterrupted one would.
"""

from __future__ import annotations

import os
from typing import Iterator, Literal

import torch
from pydantic import model_validator

from prunebench.core.errors import UserError
from prunebench.core.forms import Form, validate
from prunebench.core.forms.tensors import tensor
from prunebench.core.io import load_torch

from .datasets import DATASETS
from .sampling import epoch_generator, fixed_subset, global_batches, shard_bounds

# Rethinking's L1-norm, slimming and weight-level code uses these for C10 and C100 alike.
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2023, 0.1994, 0.2010)
# Per-channel (mean, std) by normalisation and dataset (PROTOCOLS section 1): the Rethinking
# code uses the CIFAR-10 values for both datasets; the SFP code its own per dataset.
NORMALISATIONS = {
    "rethinking": {},
    "sfp": {
        "cifar10": (tuple(v / 255 for v in (125.3, 123.0, 113.9)), tuple(v / 255 for v in (63.0, 62.1, 66.7))),
        "cifar100": (tuple(v / 255 for v in (129.3, 124.1, 112.4)), tuple(v / 255 for v in (68.2, 65.4, 70.4))),
    },
}


def mean_std(normalisation: str, dataset: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The normalisation's (mean, std) for ``dataset``; Rethinking's values where it has none."""
    if normalisation not in NORMALISATIONS:
        raise UserError(f"unknown normalisation {normalisation!r}; choose one of {', '.join(NORMALISATIONS)}")
    return NORMALISATIONS[normalisation].get(dataset, (MEAN, STD))


def trained_mean_std(hparams: dict | None, dataset: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The (mean, std) a run trained with (its recorded hparams), to evaluate it as it trained."""
    return mean_std((hparams if isinstance(hparams, dict) else {}).get("normalisation", "rethinking"), dataset)
PAD = 4


# --------------------------------------------------------------------------- using data
class Data:
    """A prepared dataset, optionally a fixed random subset (smoke scale).

    ``standin`` is True for a synthetic stand-in (see ``make_standin``), whose accuracies mean
    nothing; files prepared before the flag existed are real data.
    """

    def __init__(self, path: str | os.PathLike, train_subset: int | None = None, test_subset: int | None = None):
        blob = validate(PreparedDataset, load_torch(path, what="prepared dataset", mmap=True), str(path))
        self.dataset, self.classes = blob["dataset"], list(blob["classes"])
        self.num_classes = len(self.classes)
        self.standin = bool(blob.get("standin", False))
        self.train_x, self.train_y = fixed_subset(blob["train_x"], blob["train_y"], train_subset, "train")
        self.test_x, self.test_y = fixed_subset(blob["test_x"], blob["test_y"], test_subset, "test")
        self.loader = {}  # how batches are made, beyond the hyperparameters: nothing to choose on CIFAR

    @property
    def train_images(self) -> int:
        return len(self.train_x)

    @property
    def test_images(self) -> int:
        return len(self.test_x)

    def train_batches(self, batch_size: int, device: torch.device, stats, seed: int, rank: int = 0, world: int = 1) -> "TrainBatches":
        return TrainBatches(self.train_x, self.train_y, batch_size, device, stats, seed, rank, world)

    def test_batches(self, batch_size: int, device: torch.device, stats, rank: int = 0, world: int = 1) -> Iterator:
        return eval_batches(self.test_x, self.test_y, batch_size, device, stats, rank, world)


Images = tensor(torch.uint8, 4, (32, 32, 3))  # N x 32 x 32 x 3, as the CIFAR pickles hold them
Labels = tensor(torch.int64, 1)


class PreparedDataset(Form):
    """What 'prunebench prepare' writes: every image and label of a CIFAR dataset, uint8 NHWC."""

    KIND = "prepared dataset"
    FIX = "make it with 'prunebench prepare'"
    dataset: Literal[tuple(DATASETS)]
    classes: list[str]
    train_x: Images
    train_y: Labels
    test_x: Images
    test_y: Labels
    standin: bool = False

    @model_validator(mode="after")
    def _consistent(self):
        if len(self.classes) != DATASETS[self.dataset]:
            raise ValueError(f"classes lists {len(self.classes)} classes for {self.dataset}, which has {DATASETS[self.dataset]}")
        for split in ("train", "test"):
            x, y = getattr(self, f"{split}_x"), getattr(self, f"{split}_y")
            if len(x) != len(y):
                raise ValueError(f"{split}_x holds {len(x)} images but {split}_y {len(y)} labels")
            if len(x) == 0:
                raise ValueError(f"{split}_x holds no images")
            if y.min() < 0 or y.max() >= len(self.classes):
                raise ValueError(f"{split}_y has labels outside 0..{len(self.classes) - 1}")
        return self


def _normalise(x_uint8_nhwc: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 NHWC -> float NCHW in channels_last memory (a free permute of the NHWC data)."""
    return ((x_uint8_nhwc.float() / 255.0 - mean) / std).permute(0, 3, 1, 2)


class TrainBatches:
    """Augmented training batches served from uint8 images kept on ``device``. With ``world``
    processes (data-parallel training), process ``rank`` yields its share of every global batch
    of ``batch_size``; every process draws the same epoch from (seed, epoch)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, device: torch.device, stats=(MEAN, STD), seed: int = 0, rank: int = 0, world: int = 1):
        self.n, self.batch_size, self.device = len(x), batch_size, device
        self.seed, self.rank, self.world = seed, rank, world
        # Zero-pad the raw pixels once: padded pixels are black before normalisation, as in PIL.
        self.padded = torch.nn.functional.pad(x.to(device), (0, 0, PAD, PAD, PAD, PAD))  # N, 40, 40, 3
        self.y = y.to(device)
        self.mean = torch.tensor(stats[0], device=device)
        self.std = torch.tensor(stats[1], device=device)
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

    def epoch_batches(self, epoch: int, skip: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """This process's batches of ``epoch`` after the first ``skip`` (a resumed epoch's): the
        same for a fresh and a resumed run."""
        return self.epoch(epoch_generator(self.seed, epoch), skip)

    def epoch(self, generator: torch.Generator, skip: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order, offsets, flips = (t.to(self.device) for t in self.draw(generator))
        for start in global_batches(self.n, self.batch_size, self.world)[skip:]:
            lo, hi = shard_bounds(min(self.batch_size, self.n - start), self.rank, self.world)
            sl = slice(start + lo, start + hi)
            idx = order[sl]
            x = self.crop_flip(idx, offsets[sl], flips[sl])
            yield _normalise(x, self.mean, self.std), self.y[idx]


def eval_batches(x: torch.Tensor, y: torch.Tensor, batch_size: int, device: torch.device, stats=(MEAN, STD), rank: int = 0, world: int = 1) -> Iterator:
    """Normalised test batches in order; with ``world`` processes, process ``rank``'s share of the set."""
    lo, hi = shard_bounds(len(x), rank, world)
    x, y = x[lo:hi], y[lo:hi]
    mean, std = torch.tensor(stats[0], device=device), torch.tensor(stats[1], device=device)
    for start in range(0, len(x), batch_size):
        xb = x[start : start + batch_size].to(device, non_blocking=True)
        yield _normalise(xb, mean, std), y[start : start + batch_size].to(device, non_blocking=True)
