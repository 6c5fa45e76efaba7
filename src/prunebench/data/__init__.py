"""Data: CIFAR and ImageNet, found where a user holds them, prepared once, and served as batches
on the training device.

- :mod:`.datasets`: the dataset registry (class counts), finding CIFAR on disk (torchvision's
  files, an ImageFolder tree or its tarball), preparing it into one tensor file, and the synthetic
  stand-ins for datasets that cannot be had.
- :mod:`.cifar`: a prepared CIFAR file in use, with the reference's augmentation run batched on the
  device.
- :mod:`.imagenet_tree`: the user's ILSVRC-2012 ImageFolder tree, found and checked, and its
  transforms; :mod:`.imagenet`: the manifest a run reads in place of CIFAR's tensor file;
  :mod:`.imagenet_loaders`: its batches (torchvision's DataLoader, or nvjpeg on the GPU).
- :mod:`.sampling`: subsets, epoch order and data-parallel shares, shared by both.

To add a dataset: its class count in :mod:`.datasets`, a finder and preparer beside CIFAR's or
ImageNet's, and a branch in :func:`open_data`. Imports only :mod:`prunebench.core`.
"""

from __future__ import annotations

import os


def open_data(path: str | os.PathLike, train_subset: int | None = None, test_subset: int | None = None, **loader):
    """The data a run trains on: a prepared CIFAR file, or ImageNet's manifest (``prepare
    --dataset imagenet``), whose ``loader`` options (crop, resize, workers, decoder) say how its
    images become batches."""
    if str(path).endswith(".json"):
        from .imagenet import ImageNetData

        return ImageNetData(path, train_subset, test_subset, **loader)
    from .cifar import Data

    return Data(path, train_subset, test_subset)
