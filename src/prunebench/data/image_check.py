"""Image files that do not decode (an HTML error page, an empty or cut-short file where a JPEG
should be, as a broken download leaves them), named by their path in one line, never a PIL or
torchvision traceback: at prepare time (``--verify``) and wherever a run decodes ImageNet.

A failure inside a DataLoader worker travels to the main process as an :class:`Undecodable`
sample, not as an exception: DataLoader re-raises a worker's exception with the worker's
traceback inside its message, which would turn the one line into many.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from prunebench.core.errors import UserError
from prunebench.core.utils import hms

log = logging.getLogger("prunebench")

VERIFY_MODES = ("none", "sample", "all")
SAMPLE_LEAST, SAMPLE_FRACTION = 200, 0.01  # --verify sample: 1 % of each split, at least 200 images
PROGRESS_S = 30.0  # how often a verification logs its progress
# What PIL raises on bytes that are no image or a broken one (UnidentifiedImageError is an OSError).
DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)
RUN_FIX = "re-download it or delete it, and run 'prunebench prepare --dataset imagenet --verify all' to find every bad file"


class BadImage(UserError):
    """An image file that does not decode: its path, the decoder's complaint and the fix."""

    def __init__(self, path, reason: str, fix: str = RUN_FIX):
        super().__init__(f"{path} does not decode as an image ({reason}); {fix}")
        self.path, self.reason, self.fix = str(path), reason, fix

    def __reduce__(self):
        return BadImage, (self.path, self.reason, self.fix)


def reason(e: BaseException) -> str:
    """A decoder's complaint in a few words: PIL's names a file object, torchvision's its C++ line."""
    if isinstance(e, UnidentifiedImageError):
        return "cannot identify image file"
    text = re.sub(r"^\w+, \S+:\d+, ", "", " ".join(str(e).split()))
    return text.split(". ")[0].rstrip(".")[:120] or type(e).__name__


@contextlib.contextmanager
def decoding(path, also: tuple = ()):
    """Turns a decoder's error (``also``: further exception types) inside the block into :class:`BadImage`."""
    try:
        yield
    except (*DECODE_ERRORS, *also) as e:
        raise BadImage(path, reason(e)) from None


def read_image_bytes(path) -> bytes:
    """The file's bytes; an empty file is a :class:`BadImage`. A missing file's OSError is left as is."""
    data = Path(path).read_bytes()
    if not data:
        raise BadImage(path, "the file is empty")
    return data


def load_rgb(path) -> Image.Image:
    """``path`` decoded in full as RGB (torchvision's pil_loader, with :class:`BadImage` on failure)."""
    data = read_image_bytes(path)
    with decoding(path), Image.open(io.BytesIO(data)) as img:
        return img.convert("RGB")


# --------------------------------------------------------------------------- in DataLoader workers
@dataclass(frozen=True)
class Undecodable:
    """A sample whose file did not decode, standing in for its batch on the way to the main process."""

    path: str
    reason: str

    def error(self) -> BadImage:
        return BadImage(self.path, self.reason)


def guarded(load, path):
    """``load(path)``, or an :class:`Undecodable` in its place."""
    try:
        return load(path)
    except BadImage as e:
        return Undecodable(e.path, e.reason)


class CheckedCollate:
    """``collate`` of a batch, or the batch's first :class:`Undecodable` sample in its place."""

    def __init__(self, collate):
        self.collate = collate

    def __call__(self, batch):
        bad = next((s for s in batch if isinstance(s, Undecodable)), None)
        return bad if bad is not None else self.collate(batch)


# --------------------------------------------------------------------------- prepare --verify
def sample_positions(n: int, split: str) -> list[int]:
    """The positions (in file order) --verify sample decodes: a fixed draw per split and count."""
    k = min(n, max(SAMPLE_LEAST, math.ceil(n * SAMPLE_FRACTION)))
    rng = np.random.default_rng(list(split.encode()))
    return sorted(rng.choice(n, k, replace=False).tolist())


def verify_images(tree: Path, classes: list[str], mode: str, splits=("train", "val")) -> int:
    """Decode ``mode``'s images of ``tree`` (none, a sample per split, or all) as the runs will;
    fail with one line naming the first that does not decode (the others logged first). Returns
    how many were decoded."""
    from torchvision.datasets.folder import IMG_EXTENSIONS, make_dataset

    if mode not in VERIFY_MODES:
        raise UserError(f"unknown verify mode {mode!r}; choose one of {', '.join(VERIFY_MODES)}")
    if mode == "none":
        return 0
    todo = []
    for split in splits:
        files = [p for p, _ in make_dataset(str(tree / split), {c: i for i, c in enumerate(classes)}, IMG_EXTENSIONS)]
        todo += files if mode == "all" else [files[i] for i in sample_positions(len(files), split)]
    bad, start = [], time.monotonic()
    shown = start
    for i, path in enumerate(todo, 1):
        try:
            load_rgb(path)
        except BadImage as e:
            bad.append(e)
        if time.monotonic() - shown >= PROGRESS_S:
            shown = time.monotonic()
            left = (shown - start) / i * (len(todo) - i)
            log.info("verify %s: %d/%d images decoded, %d bad so far (%s left)", mode, i, len(todo), len(bad), hms(left))
    if bad:
        for e in bad[1:]:
            log.warning("%s does not decode as an image (%s)", e.path, e.reason)
        if len(bad) == 1:
            raise BadImage(bad[0].path, bad[0].reason, "re-download it or delete it and rerun prepare")
        first, others = bad[0], "does 1 other file" if len(bad) == 2 else f"do {len(bad) - 1} other files"
        raise UserError(f"{first.path} does not decode as an image ({first.reason}), nor {others} (logged above); re-download them or delete them and rerun prepare")
    log.info("verify %s: all %d images decoded", mode, len(todo))
    return len(todo)
