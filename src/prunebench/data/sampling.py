"""Which images a process takes, and in which order: the fixed subsets of a small run, the seeded
order of an epoch, and each data-parallel process's share. CIFAR and ImageNet share these, so a
run sees the same images in the same order whatever its data comes from."""

from __future__ import annotations

import torch

from prunebench.core.errors import UserError


def fixed_subset(x: torch.Tensor, y: torch.Tensor, n: int | None, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    if n is None or n >= len(x):
        return x.clone(), y.clone()
    if n < 1:
        raise UserError(f"{split}_subset must be a positive number of images, got {n}")
    idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))[:n].sort().values
    return x[idx], y[idx]


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 100_003 + epoch)


def shard_bounds(n: int, rank: int, world: int) -> tuple[int, int]:
    """[start, stop) of process ``rank``'s contiguous share of ``n`` items split over ``world``
    (numpy's array_split: the first n % world shares hold one more)."""
    size, extra = divmod(n, world)
    start = rank * size + min(rank, extra)
    return start, start + size + (rank < extra)


def global_batches(n: int, batch_size: int, world: int) -> range:
    """Starts of an epoch's global batches; with several processes a last batch smaller than
    ``world`` is dropped, since every process must take part in every step."""
    stop = n if world == 1 else n - (n % batch_size if n % batch_size < world else 0)
    return range(0, stop, batch_size)
