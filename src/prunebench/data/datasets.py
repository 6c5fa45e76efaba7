"""CIFAR datasets on disk: find one (torchvision files, an ImageFolder tree or its tarball, or a
download), decode it once to uint8 tensors (``prepare``), and write synthetic stand-ins.

``make_standin`` writes a synthetic stand-in tarball for pipeline smoke runs on machines without
the real data; ``prepare`` recognises its ``STANDIN`` marker and flags the prepared file.
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import tarfile
import time
import zlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from prunebench.core.errors import UserError
from prunebench.core.io import atomic_path, exclusive_lock, load_torch, save_torch

DATASETS = {"cifar10": 10, "cifar100": 100}  # prepared into one tensor file (prepare)
# Every dataset a study may name, with its classes: ImageNet is read from its ImageFolder tree
# (data.imagenet), never prepared into a tensor file nor downloaded.
ALL_DATASETS = {**DATASETS, "imagenet": 1000}
TORCHVISION_DIRS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}
# torchvision's pickle files: (train files, test files, meta file, class-names key, labels key)
TORCHVISION_FILES = {
    "cifar10": ([f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], "batches.meta", "label_names", "labels"),
    "cifar100": (["train"], ["test"], "meta", "fine_label_names", "fine_labels"),
}
STANDIN_MARKER = "STANDIN"  # a file beside train/ and test/ in a synthetic stand-in


# --------------------------------------------------------------------------- finding data
def _download(dataset: str, root: Path) -> dict:
    """torchvision's download (md5-checked) into ``root``, then its decoded arrays."""
    from torchvision import datasets

    cls = datasets.CIFAR10 if dataset == "cifar10" else datasets.CIFAR100
    splits = {}
    for split, train in (("train", True), ("test", False)):
        ds = cls(str(root), train=train, download=True)
        splits[split] = (torch.from_numpy(np.asarray(ds.data)), torch.tensor(ds.targets, dtype=torch.int64))
    return {"classes": list(ds.classes), "splits": splits, "source": f"torchvision {cls.__name__} in {root}"}


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists, strings and numpy arrays only: a pickle found in a data folder
    cannot run code."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # numpy's raw bytes under pickle protocol 2
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"it holds a {module}.{name}, not only arrays and lists")
        return super().find_class(module, name)


def _str_keys(obj):
    """Pickles written by Python 2 (the originals) or by Python 3 with bytes keys alike."""
    if isinstance(obj, dict):
        return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in obj.items()}
    return obj


def _read_pickle(path: Path, folder: Path) -> dict:
    fix = f"replace {folder} with a complete copy (or remove it to use another form of the data)"
    if not path.is_file():
        raise UserError(f"torchvision folder {folder} lacks {path.name}; {fix}")
    try:
        with open(path, "rb") as f:
            obj = _str_keys(_ArrayUnpickler(f, encoding="latin1").load())
    except Exception as e:  # UnpicklingError, EOFError, ValueError, ... for a damaged file
        detail = str(e) if isinstance(e, pickle.UnpicklingError) and str(e).startswith("it holds") else type(e).__name__
        raise UserError(f"{path} is not a readable CIFAR pickle ({detail}); {fix}") from None
    if not isinstance(obj, dict):
        raise UserError(f"{path} is not a CIFAR pickle (it holds a {type(obj).__name__}, not a dict); {fix}")
    return obj


def _from_torchvision_files(dataset: str, root: Path) -> dict:
    """torchvision's extracted pickles, read directly: torchvision itself insists on the md5s of
    the official files, which a copy re-made elsewhere (or a test's) does not have."""
    folder = root / TORCHVISION_DIRS[dataset]
    train_files, test_files, meta_file, names_key, labels_key = TORCHVISION_FILES[dataset]
    fix = f"replace {folder} with a complete copy (or remove it to use another form of the data)"
    meta = _read_pickle(folder / meta_file, folder)
    classes = meta.get(names_key)
    if not isinstance(classes, list) or len(classes) != DATASETS[dataset]:
        n = len(classes) if isinstance(classes, list) else "no"
        raise UserError(f"{folder / meta_file} has {n} {names_key} but {dataset} has {DATASETS[dataset]}; {fix}")
    classes = [c.decode("latin1") if isinstance(c, bytes) else str(c) for c in classes]
    splits = {}
    for split, files in (("train", train_files), ("test", test_files)):
        xs, ys = [], []
        for name in files:
            entry = _read_pickle(folder / name, folder)
            x, y = entry.get("data"), entry.get(labels_key)
            if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3 * 32 * 32:
                got = f"{x.dtype} {x.shape}" if isinstance(x, np.ndarray) else type(x).__name__
                raise UserError(f"{folder / name}: 'data' is {got}, not uint8 (N, 3072) CIFAR images; {fix}")
            try:
                y = np.asarray(y, dtype=np.int64)
            except (TypeError, ValueError):
                y = None
            if y is None or y.shape != (len(x),) or (len(y) and (y.min() < 0 or y.max() >= len(classes))):
                raise UserError(f"{folder / name}: '{labels_key}' are not {len(x)} labels in 0..{len(classes) - 1}; {fix}")
            xs.append(x.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))  # as torchvision: NCHW rows -> NHWC
            ys.append(y)
        splits[split] = (torch.from_numpy(np.ascontiguousarray(np.concatenate(xs))), torch.from_numpy(np.concatenate(ys)))
    return {"classes": classes, "splits": splits, "source": f"torchvision files in {folder}", "standin": False}


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


def _split_items(items: list[Item], dataset: str, where: str, standin: bool) -> dict:
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
    source = f"{where} [synthetic stand-in: accuracies on it mean nothing]" if standin else where
    return {"classes": classes, "splits": splits, "source": source, "standin": standin}


def _from_image_folder(dataset: str, root: Path) -> dict:
    items = []
    for split in ("train", "test"):
        for f in sorted((root / split).glob("*/*")):
            if f.is_file():
                items.append((split, f.parent.name, str(f), f))
    return _split_items(items, dataset, f"image folder {root}", standin=(root / STANDIN_MARKER).is_file())


def _from_tarball(dataset: str, tar_path: Path) -> dict:
    """Read members without unpacking. The whole stream is decompressed first (checking gzip's
    CRC) and must end in the archive's zero padding, so a damaged archive fails loudly instead
    of yielding the images before the damage."""
    items, standin = [], False
    try:
        with gzip.open(tar_path) as f:
            raw = f.read()
        with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
            for m in tar:
                parts = Path(m.name).parts
                if m.isfile() and len(parts) >= 3 and parts[-3] in ("train", "test"):
                    items.append((parts[-3], parts[-2], m.name, tar.extractfile(m).read()))
                elif m.isfile() and parts and parts[-1] == STANDIN_MARKER:
                    standin = True
            complete = not raw[tar.offset :].strip(b"\0")
    except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
        raise UserError(f"{tar_path} is not a readable .tar.gz ({type(e).__name__}); replace it with a complete copy") from None
    if not complete:
        raise UserError(f"{tar_path} is damaged after member {len(items)}; replace it with a complete copy")
    items.sort(key=lambda t: t[:3])  # archive order is arbitrary: sort as the folder loader does
    return _split_items(items, dataset, f"tarball {tar_path}", standin=standin)


def _tarballs(dataset: str, root: Path) -> list[Path]:
    """The ``{dataset}*.tar.gz`` files in ``root`` whose name does not go on with a digit after the
    dataset's name: ``cifar10.tar.gz`` and ``cifar10-jpeg.tar.gz`` are cifar10's,
    ``cifar100.tar.gz`` is not (nor is ``cifar10-jpeg.tar.gz`` cifar100's). Best first: the plain
    ``{dataset}.tar.gz``, then by name, stand-ins (``*standin*``) last so real data wins."""
    if not root.is_dir():
        return []
    n = len(dataset)
    found = [
        p
        for p in root.iterdir()
        if p.name.endswith(".tar.gz") and p.name.startswith(dataset) and not p.name[n : n + 1].isdigit() and p.is_file()
    ]
    return sorted(found, key=lambda p: ("standin" in p.name.lower(), p.name != f"{dataset}.tar.gz", p.name))


def find_dataset(dataset: str, data_root: str | os.PathLike, download: bool = True) -> dict:
    """Locate ``dataset`` under ``data_root`` and decode it; download it there as a last resort."""
    if dataset not in DATASETS:
        raise UserError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    root = Path(data_root)
    looked = []
    if (root / TORCHVISION_DIRS[dataset]).is_dir():
        return _from_torchvision_files(dataset, root)
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
            with exclusive_lock(root / f".{dataset}.download.lock"):
                found = _download(dataset, root)
            found["standin"] = False
            return found
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
    and reuse it. The file and the returned summary record ``standin``: whether the data is a
    synthetic stand-in (a ``STANDIN`` marker beside train/ and test/, see ``make_standin``).
    A failed prepare leaves nothing behind: no output, temporary or ``.lock`` file, nor the
    folders it created for them.
    """
    parent = Path(out).parent
    created = [d for d in (parent, *parent.parents) if not d.exists()]
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot write {out}: {e.strerror}; choose a writable output path") from None
    try:
        asked = time.time()
        with exclusive_lock(f"{out}.lock"):
            made_meanwhile = _summary_if_prepared(out, dataset, since=asked)
            if made_meanwhile is not None:
                return made_meanwhile
            return _prepare(dataset, data_root, out, download)
    except BaseException:
        for d in created:  # deepest first; a folder another process has used meanwhile stays
            try:
                d.rmdir()
            except OSError:
                break
        raise


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
    """What a prepared file holds: image counts, where they came from, and whether they are a
    synthetic stand-in."""
    summary = {k: (len(v) if isinstance(v, torch.Tensor) else v) for k, v in blob.items() if k != "classes"}
    summary.setdefault("standin", False)
    return summary


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
        "standin": bool(found.get("standin", False)),
    }
    save_torch(out, blob)
    return _summary(blob)


# --------------------------------------------------------------------------- stand-in
def make_standin(
    dataset: str, out_dir: str | os.PathLike, train_per_class: int = 6, test_per_class: int = 3, seed: int = 0
) -> Path:
    """Write ``<out_dir>/<dataset>-standin.tar.gz``: a SYNTHETIC stand-in for ``dataset`` for smoke
    runs of the pipeline where the real data cannot be had. Never report results made with it.

    It is an ImageFolder tarball (``<dataset>/train/<class>/NNNN.png``, ``<dataset>/test/...``)
    of random 32x32 RGB PNGs, ``train_per_class`` and ``test_per_class`` per class, around a
    random mean colour per class (so a network can learn a little), plus a marker member
    ``<dataset>/STANDIN`` saying it is synthetic. ``prepare`` finds it in a data_root like any
    ``<dataset>*.tar.gz`` (real tarballs beside it win), sees the marker and records
    ``standin: true``. The same arguments give the same bytes (fixed PNG settings, sorted
    members, zeroed mtimes and owners, gzip mtime 0). Returns the tarball's path.
    """
    if dataset not in DATASETS:
        raise UserError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    for name, n in (("train_per_class", train_per_class), ("test_per_class", test_per_class)):
        if not isinstance(n, int) or n < 1:
            raise UserError(f"{name} must be a positive number of images, got {n!r}")
    n_classes = DATASETS[dataset]
    width = len(str(n_classes))
    classes = [f"class{i:0{width}d}" for i in range(n_classes)]  # class00..09, class000..099: sorted = label order
    rng = np.random.default_rng([seed, n_classes])
    means = rng.integers(40, 216, size=(n_classes, 3))
    members: list[tuple[str, bytes]] = []
    for split, n in (("train", train_per_class), ("test", test_per_class)):
        for c, mean in zip(classes, means):
            for k in range(n):
                px = np.clip(mean + rng.normal(0.0, 45.0, size=(32, 32, 3)), 0, 255).astype(np.uint8)
                buf = io.BytesIO()
                Image.fromarray(px, "RGB").save(buf, format="PNG", optimize=False, compress_level=6)
                members.append((f"{dataset}/{split}/{c}/{k:04d}.png", buf.getvalue()))
    marker = (
        f"SYNTHETIC STAND-IN for {dataset}, not the real data: random 32x32 images around a mean colour per class, "
        f"made by prunebench's make_standin({dataset!r}, train_per_class={train_per_class}, "
        f"test_per_class={test_per_class}, seed={seed}). Accuracies measured on it mean nothing: "
        "use it only to smoke-test the pipeline and never report them as results.\n"
    )
    members.append((f"{dataset}/{STANDIN_MARKER}", marker.encode()))
    members.sort()

    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, blob in members:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(blob), 0, 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(blob))
    packed = io.BytesIO()
    with gzip.GzipFile(filename="", fileobj=packed, mode="wb", compresslevel=9, mtime=0) as g:
        g.write(raw.getvalue())
    out = Path(out_dir) / f"{dataset}-standin.tar.gz"
    with atomic_path(out) as tmp:
        tmp.write_bytes(packed.getvalue())
    return out
