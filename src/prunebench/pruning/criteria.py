"""Importance criteria: a score per output filter; higher means more worth keeping.

A criterion is a function ``(weight, generator) -> scores`` over a conv weight of shape
(C_out, C_in, k, k). Adding one is a few lines and an entry in ``CRITERIA``.
"""

from __future__ import annotations

from typing import Callable

import torch

Criterion = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def l1(weight: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Li et al. s_j: the sum of absolute kernel weights of filter j."""
    return weight.abs().flatten(1).sum(1)


def l2(weight: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return weight.flatten(1).norm(dim=1)


def random(weight: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(weight.shape[0], generator=generator)


def smallest(weight: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Keeps the *smallest* L1 filters (Li et al. Fig. 8's 'largest pruned' control)."""
    return -l1(weight, generator)


CRITERIA: dict[str, Criterion] = {"l1": l1, "l2": l2, "random": random, "smallest": smallest}


def keep_top(scores: torch.Tensor, n_keep: int) -> torch.Tensor:
    """Indices of the n_keep highest scores, in ascending index order (ties: lower index)."""
    order = torch.argsort(scores, descending=True, stable=True)
    return order[:n_keep].sort().values
