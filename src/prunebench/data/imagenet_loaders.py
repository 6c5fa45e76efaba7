"""ImageNet batches on the training device: (normalised float images N x 3 x crop x crop, int64
labels), from the tree :func:`.imagenet_tree.find_imagenet` finds, with its transforms.

Seeding. An epoch's training order is a permutation drawn in the main process from
``sampling.epoch_generator(seed, epoch)``, as on CIFAR. Each image's augmentation (crop box, flip) is
drawn by whichever process loads it, from torch's generator reseeded for that image alone with
``sample_seed(seed, epoch, index)`` (a SeedSequence hash; ``index`` is the image's place in the
whole ImageFolder) inside ``fork_rng``, so the caller's generator is left as it was. The sampler
hands each worker (position, epoch) keys, so a batch depends neither on the number of workers nor
on which worker loads what, persistent workers learn the epoch without being told, and a run
resumed at epoch e sees exactly the batches an uninterrupted one would. The DataLoader has its
own generator, so iterating never draws from the global one; no worker_init_fn is needed.

Decoders. ``"cpu"`` (the fallback and, without CUDA, the default): torchvision's ImageFolder and
a DataLoader whose workers decode with PIL and crop; uint8 batches go to the device (pinned on
CUDA) and are normalised there. ``"gpu"``: the workers read the file bytes and draw the crop box
from the JPEG header the way the CPU path draws it; the batch is decoded at once with nvjpeg
(``torchvision.io.decode_jpeg(device="cuda")``), then cropped, resized and flipped on the GPU.
``"auto"`` takes ``"gpu"`` where the device is CUDA and torchvision decodes JPEG there. The two
crop the same pixels; they differ only in rounding (PIL's resize against torch's antialiased one).
A file that does not decode ends the run, on either path, in one line naming it (:mod:`.image_check`).
torchvision 0.29 marks its image codecs deprecated in favour of torchcodec; the GPU path silences
that warning and would move to torchcodec when the pinned torchvision drops them. NVIDIA DALI
(``nvidia.dali``) would be a third decoder with fused crops; it is not a dependency and not
offered (it was not importable where this was written): add it beside ``"gpu"`` if that path is
ever the bottleneck.
"""

from __future__ import annotations

import functools
import io
import itertools
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler, default_collate
from torchvision.datasets import ImageFolder
from torchvision.io import ImageReadMode, decode_image, decode_jpeg
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from prunebench.core.errors import UserError
from prunebench.core.limits import check_decoder, check_image_sizes

from .image_check import CheckedCollate, Undecodable, decoding, guarded, load_rgb, read_image_bytes
from .imagenet_tree import CROP, FLIP_P, RATIO, RESIZE, SCALE, SPLITS, check_count, find_imagenet, normalise_batch, train_transform, val_transform
from .sampling import epoch_generator, fixed_subset, global_batches, shard_bounds

DECODERS = ("auto", "cpu", "gpu")


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """The seed of image ``index``'s augmentation in ``epoch``: a hash of the three numbers."""
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1, np.uint64)[0])


class _EpochBatches(Sampler):
    """Batches of (position, epoch) keys: for training a permutation drawn from (seed, epoch), else
    in order; process ``rank`` of ``world`` gets its contiguous share of every global batch of
    ``batch_size`` (``data.sampling.shard_bounds``), from global batch ``skip`` on (a resumed epoch)."""

    def __init__(self, n: int, seed: int, epoch: int, shuffle: bool, batch_size: int, rank: int = 0, world: int = 1):
        self.n, self.seed, self.epoch, self.shuffle = n, seed, epoch, shuffle
        self.batch_size, self.rank, self.world, self.skip = batch_size, rank, world, 0

    def __len__(self) -> int:
        return len(global_batches(self.n, self.batch_size, self.world)[self.skip :])

    def __iter__(self):
        order = range(self.n)
        if self.shuffle:
            order = torch.randperm(self.n, generator=epoch_generator(self.seed, self.epoch)).tolist()
        for start in global_batches(self.n, self.batch_size, self.world)[self.skip :]:
            lo, hi = shard_bounds(min(self.batch_size, self.n - start), self.rank, self.world)
            yield [(position, self.epoch) for position in order[start + lo : start + hi]]


class _SeededImages(Dataset):
    """ImageFolder samples loaded by ``load`` with torch's generator seeded per (seed, epoch, index)."""

    def __init__(self, samples: list[tuple[str, int]], indices: list[int], load, seed: int):
        self.samples, self.indices, self.load, self.seed = samples, indices, load, seed

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, key: tuple[int, int]):
        position, epoch = key
        index = self.indices[position]
        path, label = self.samples[index]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(sample_seed(self.seed, epoch, index))
            image = guarded(self.load, path)  # a bad file: an Undecodable in the sample's place
            return image if isinstance(image, Undecodable) else (image, label)


class _Decoded:
    """Path -> uint8 CHW tensor: PIL decoding and ``transform``, in a worker (CPU path)."""

    def __init__(self, transform: v2.Compose):
        self.transform = transform

    def __call__(self, path: str) -> torch.Tensor:
        return self.transform(load_rgb(path))


class _Encoded:
    """Path -> (file bytes, box, path), decoding left to the GPU. For training, box = (top, left,
    height, width, flip) drawn with train_transform's own calls in its order, from the size in
    the JPEG header, so both decoders crop the same pixels; for evaluation it is unused zeros."""

    def __init__(self, train: bool):
        self.crop = v2.RandomResizedCrop(CROP, scale=SCALE, ratio=RATIO) if train else None

    def __call__(self, path: str) -> tuple[torch.Tensor, torch.Tensor, str]:
        data = read_image_bytes(path)
        box = [0] * 5
        if self.crop is not None:
            with decoding(path), Image.open(io.BytesIO(data)) as img:  # reads the header only
                p = self.crop.make_params([img])
            box = [p["top"], p["left"], p["height"], p["width"], int(torch.rand(1) < FLIP_P)]
        return torch.frombuffer(bytearray(data), dtype=torch.uint8), torch.tensor(box), path


def _collate_encoded(batch):
    """Samples of ``_Encoded`` -> ((list of byte tensors, boxes N x 5, paths), labels): bytes vary in length."""
    (datas, boxes, paths), labels = zip(*(sample for sample, _ in batch)), [label for _, label in batch]
    return (list(datas), torch.stack(boxes), list(paths)), torch.tensor(labels)


def _decode(datas: list[torch.Tensor], device: torch.device, paths: list[str]) -> list[torch.Tensor]:
    """JPEG bytes -> uint8 RGB CHW tensors on ``device`` in one batched call; if a file spoils it
    (ImageNet holds a few CMYK JPEGs and a PNG named .JPEG), one by one, those on the CPU."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torchvision 0.29: codecs move to torchcodec
        try:
            return decode_jpeg(datas, mode=ImageReadMode.RGB, device=device)
        except RuntimeError:
            return [_decode_one(data, device, path) for data, path in zip(datas, paths)]


def _decode_one(data: torch.Tensor, device: torch.device, path: str) -> torch.Tensor:
    try:
        return decode_jpeg(data, mode=ImageReadMode.RGB, device=device)
    except RuntimeError:
        with decoding(path, also=(RuntimeError,)):  # no image at all: one line naming the file
            return decode_image(data, mode=ImageReadMode.RGB).to(device)


def _decode_crop(encoded, device: torch.device, train: bool, crop: int, resize: int) -> torch.Tensor:
    """A batch from ``_collate_encoded`` -> normalised images on ``device`` (GPU path)."""
    datas, boxes, paths = encoded
    images = []
    for img, (top, left, height, width, flip) in zip(_decode(datas, device, paths), boxes.tolist()):
        if train:
            img = F.resized_crop(img, top, left, height, width, [crop, crop], antialias=True)
            img = F.horizontal_flip(img) if flip else img
        else:
            img = F.center_crop(F.resize(img, [resize], antialias=True), [crop, crop])
        images.append(img)
    return normalise_batch(torch.stack(images))


def _to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A uint8 batch from the CPU workers -> normalised on ``device`` (a quarter of float's bytes move)."""
    return normalise_batch(x.to(device, non_blocking=True))


class ImageNetBatches:
    """One split's batches on ``device``: (normalised float N x 3 x crop x crop, int64 labels).
    ``set_epoch(e)`` makes the next pass epoch e's order and augmentation; ``classes`` are the
    class folder names, label i being ``classes[i]``. ``n`` counts the split's images, over
    every process."""

    def __init__(self, loader: DataLoader, sampler: _EpochBatches, finish, classes: list[str], device: torch.device):
        self.loader, self.sampler, self.finish, self.classes, self.device = loader, sampler, finish, classes, device

    def __len__(self) -> int:
        return len(self.loader)

    @property
    def n(self) -> int:
        return self.sampler.n

    images = n

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.sampler.epoch, self.sampler.skip = epoch, skip

    def epoch_batches(self, epoch: int, skip: int = 0):
        """Epoch ``epoch``'s batches after the first ``skip``, as :class:`.data.TrainBatches` gives them."""
        self.set_epoch(epoch, skip)
        return iter(self)

    def __iter__(self):
        for batch in self.loader:
            if isinstance(batch, Undecodable):  # a file a worker could not decode: one line naming it
                raise batch.error()
            x, y = batch
            yield self.finish(x), y.to(self.device, non_blocking=True)


# --------------------------------------------------------------------------- building loaders
def imagenet_loaders(
    root,
    batch_size: int,
    workers: int,
    seed: int,
    epoch: int,
    device,
    train_subset: int | None = None,
    val_subset: int | None = None,
    decoder: str = "auto",
    crop: int = CROP,
    resize: int = RESIZE,
    rank: int = 0,
    world: int = 1,
) -> tuple[ImageNetBatches, ImageNetBatches]:
    """(train, val) batches of the ImageNet tree under ``root`` (a data_root, see find_imagenet).

    Training batches are shuffled and augmented for ``epoch`` (``set_epoch`` moves on); val
    batches are in ImageFolder order. ``*_subset`` keeps a fixed random subset of that many
    images (as on CIFAR). ``decoder`` is "cpu", "gpu" or "auto" (see the module notes); ``crop``
    and ``resize`` default to the protocol's 224 and 256 (smoke runs shrink them). Workers, when
    ``workers`` > 0, persist across epochs. Process ``rank`` of ``world`` gets its share of
    every global batch of ``batch_size`` (data-parallel training).
    """
    device = torch.device(device)
    check_count("batch_size", batch_size)
    check_count("workers", workers, least=0)
    check_count("seed", seed, least=0)
    check_count("epoch", epoch, least=0)
    check_image_sizes(crop, resize)
    gpu = _gpu_decoding(decoder, device)
    tree = find_imagenet(root)
    return tuple(
        split_batches(tree, split, batch_size, workers, seed, epoch, device, subset, gpu, crop, resize, rank, world)
        for split, subset in zip(SPLITS, (train_subset, val_subset))
    )


def _gpu_decoding(decoder: str, device: torch.device) -> bool:
    """Whether ``decoder`` on ``device`` means the GPU path; one-line errors where it cannot."""
    if decoder not in DECODERS:
        raise UserError(f"unknown decoder {decoder!r}; choose one of {', '.join(DECODERS)}")
    if decoder == "cpu":
        return False
    cuda = device.type == "cuda" and torch.cuda.is_available()
    if decoder == "auto":
        return cuda and _nvjpeg_works(device)
    check_decoder(decoder, str(device), cuda)
    if not _nvjpeg_works(device):
        raise UserError(f"decoder='gpu': this torchvision cannot decode JPEG on {device}; use decoder='cpu' or 'auto'")
    return True


@functools.cache
def _nvjpeg_works(device: torch.device) -> bool:
    """Whether torchvision decodes a JPEG on ``device`` (it needs a build with nvjpeg)."""
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format="JPEG")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            decode_jpeg([torch.frombuffer(bytearray(buf.getvalue()), dtype=torch.uint8)], device=device)
        return True
    except Exception:  # no kernel, no nvjpeg, driver trouble: all mean "use the CPU"
        return False


def split_batches(tree: Path, split: str, batch_size, workers, seed, epoch, device, subset, gpu: bool, crop: int, resize: int, rank: int = 0, world: int = 1) -> ImageNetBatches:
    """The batches of one split of the checked tree (arguments as :func:`imagenet_loaders`'s)."""
    train = split == "train"
    folder = ImageFolder(str(tree / split))
    every = torch.arange(len(folder))
    indices = fixed_subset(every, every, subset, split)[0].tolist()  # the CIFAR rule: fixed (seed 0), file order
    if gpu:
        load, collate = _Encoded(train), _collate_encoded
        finish = functools.partial(_decode_crop, device=device, train=train, crop=crop, resize=resize)
    else:
        transform = train_transform(crop, normalise=False) if train else val_transform(crop, resize, normalise=False)
        load, collate = _Decoded(transform), default_collate
        finish = functools.partial(_to_device, device=device)
    sampler = _EpochBatches(len(indices), seed, epoch, train, batch_size, rank, world)
    loader = DataLoader(
        _SeededImages(folder.samples, indices, load, seed),
        batch_sampler=sampler,
        num_workers=workers,
        collate_fn=CheckedCollate(collate),
        pin_memory=device.type == "cuda" and not gpu,
        persistent_workers=workers > 0,
        generator=torch.Generator().manual_seed(seed),
    )
    return ImageNetBatches(loader, sampler, finish, folder.classes, device)


# --------------------------------------------------------------------------- benchmark
def loader_throughput(
    root,
    batch_size: int,
    workers: int,
    decoder: str = "auto",
    batches: int = 20,
    device=None,
    crop: int = CROP,
    resize: int = RESIZE,
) -> float:
    """Training images per second delivered as normalised batches on ``device`` (CUDA where
    available), over ``batches`` batches after a first, untimed one that starts the workers;
    epochs repeat as needed. For comparing the decoders by hand, not a test."""
    check_count("batches", batches)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    train, _ = imagenet_loaders(root, batch_size, workers, 0, 0, device, decoder=decoder, crop=crop, resize=resize)
    stream = _endless(train)
    next(stream)
    _sync(device)
    start = time.perf_counter()
    images = sum(len(x) for x, _ in itertools.islice(stream, batches))
    _sync(device)
    return images / (time.perf_counter() - start)


def _endless(batches: ImageNetBatches):
    for epoch in itertools.count():
        batches.set_epoch(epoch)
        yield from batches


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
