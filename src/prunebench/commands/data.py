"""Dataset commands: prepare a dataset for the runs, write a synthetic stand-in, and the options
that say how ImageNet's images become batches (shared by train and evaluate)."""

from __future__ import annotations

import logging

import click

from prunebench.core.io import check_outputs
from prunebench.core.limits import MIN_CROP

log = logging.getLogger("prunebench")
# imagenet's and imagenet_loaders' values, spelled here: importing them loads torchvision, which
# every command would pay for at start (tests/test_imagenet_data.py checks they agree)
CROP, RESIZE = 224, 256
DECODERS = ("auto", "cpu", "gpu")
DATASET_CHOICES = ("cifar10", "cifar100", "imagenet")
VERIFY_MODES = ("none", "sample", "all")  # image_check's, spelled here for the same reason


def imagenet_options(train: bool):
    """--workers and --decoder (and, for training, --crop and --resize): how an ImageNet run's
    images are loaded; ignored on CIFAR. Evaluation crops as the run it evaluates trained."""

    def add(command):
        options = [
            click.option("--workers", default=8, show_default=True, type=click.IntRange(min=0), help="ImageNet: DataLoader worker processes (0: load in the main process)."),
            click.option("--decoder", default="auto", show_default=True, type=click.Choice(DECODERS), help="ImageNet: JPEG decoding on the cpu (workers), the gpu (nvjpeg), or auto (gpu where it works)."),
        ]
        if train:
            options += [
                click.option("--crop", default=CROP, show_default=True, type=click.IntRange(min=MIN_CROP), help="ImageNet: side of the training and evaluation crops (the protocol's 224; smoke runs shrink it)."),
                click.option("--resize", default=RESIZE, show_default=True, type=click.IntRange(min=MIN_CROP), help="ImageNet: evaluation's shorter-side resize before the centre crop (the protocol's 256)."),
            ]
        for option in reversed(options):
            command = option(command)
        return command

    return add


def loader_options(o: dict) -> dict:
    """The ImageNet loader options of a command's parsed arguments."""
    return {k: o[k] for k in ("crop", "resize", "workers", "decoder") if k in o}


@click.command()
@click.option("--dataset", required=True, type=click.Choice(DATASET_CHOICES), help="Which dataset.")
@click.option("--data-root", required=True, type=click.Path(file_okay=False), help="Folder holding (or, CIFAR, receiving) the data.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="CIFAR: the uint8 tensor file to write; ImageNet: its manifest (.json).")
@click.option("--download/--no-download", default=True, show_default=True, help="CIFAR: download into --data-root when missing (ImageNet is never downloaded).")
@click.option("--verify", default="none", show_default=True, type=click.Choice(VERIFY_MODES), help="ImageNet: decode images now, so that a file that is no image is named here (and no manifest written), not at a run's first batch: none; sample (a fixed 1 % of each split, at least 200 images: about 13,000 for ILSVRC-2012, under a minute); all (every image, 1.33 million: about half an hour to an hour on one core, plus reading the 140 GB; progress logged). CIFAR is always decoded whole.")
def prepare(dataset: str, data_root: str, out: str, download: bool, verify: str) -> None:
    """Find DATASET under --data-root. CIFAR (torchvision files, train/ and test/ class folders,
    or a *.tar.gz of them; else a download) is decoded once into --out. ImageNet's ImageFolder
    tree (train/ and val/) is checked, its images decoded as --verify says, and described in a
    manifest, --out, that runs read."""
    check_outputs(out)
    if dataset == "imagenet":
        from prunebench.data.imagenet import prepare as prepare_imagenet

        m = prepare_imagenet(data_root, out, verify)
        log.info("ImageNet tree %s: %d classes, %d train, %d val images%s -> %s", m["tree"], len(m["classes"]), m["images"]["train"], m["images"]["val"], " (SYNTHETIC stand-in)" if m["standin"] else "", out)
        return
    from prunebench.data.datasets import prepare as prepare_data

    summary = prepare_data(dataset, data_root, out, download)
    log.info("prepared %s from %s: %d train, %d test images -> %s", dataset, summary["source"], summary["train_x"], summary["test_x"], out)


@click.command()
@click.option("--dataset", required=True, type=click.Choice(DATASET_CHOICES), help="Which dataset to imitate.")
@click.option("--out-dir", required=True, type=click.Path(file_okay=False), help="Folder to write <dataset>-standin.tar.gz into (ImageNet: the imagenet/ tree).")
@click.option("--train-per-class", default=6, show_default=True, type=click.IntRange(min=1), help="Training images per class.")
@click.option("--test-per-class", default=3, show_default=True, type=click.IntRange(min=1), help="Test (ImageNet: val) images per class.")
@click.option("--classes", default=4, show_default=True, type=click.IntRange(min=2), help="ImageNet: how many classes (CIFAR has its own).")
def standin(dataset: str, out_dir: str, train_per_class: int, test_per_class: int, classes: int) -> None:
    """Write a small synthetic stand-in for DATASET (random images, marked as synthetic) so the
    pipeline can run where the real data cannot be had. Its accuracies mean nothing; tables
    built from it say so."""
    if dataset == "imagenet":
        from prunebench.data.imagenet_tree import write_tiny_imagenet

        path = write_tiny_imagenet(out_dir, classes, train_per_class, test_per_class)
    else:
        from prunebench.data.datasets import make_standin

        path = make_standin(dataset, out_dir, train_per_class, test_per_class)
    log.info("synthetic stand-in for %s -> %s (never report its accuracies)", dataset, path)
