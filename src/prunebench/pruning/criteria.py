"""Importance criteria: a score per output filter; higher means more worth keeping.

A criterion is a function of the :class:`Evidence` about one layer: its conv weight of shape
(C_out, C_in, k, k), a random generator, and, for the criteria Li et al. compare in their Fig. 9,
statistics of the layer's feature maps over the training set (:mod:`.activations`). Adding one
is a few lines and an entry in ``CRITERIA``; ``ACTIVATION_CRITERIA`` names those that need data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch


@dataclass(frozen=True)
class Evidence:
    """What a criterion may look at for one layer."""

    weight: torch.Tensor  # the producing conv's weight (greedy ranking: without removed inputs)
    generator: torch.Generator
    activations: dict[str, torch.Tensor] | None = None  # feature-map statistic -> one value per filter


Criterion = Callable[[Evidence], torch.Tensor]


def l1(e: Evidence) -> torch.Tensor:
    """Li et al. s_j: the sum of absolute kernel weights of filter j."""
    return e.weight.abs().flatten(1).sum(1)


def l2(e: Evidence) -> torch.Tensor:
    return e.weight.flatten(1).norm(dim=1)


def random(e: Evidence) -> torch.Tensor:
    return torch.rand(e.weight.shape[0], generator=e.generator)


def smallest(e: Evidence) -> torch.Tensor:
    """Keeps the *smallest* L1 filters: Li et al. Fig. 8's 'largest filters pruned' control."""
    return -l1(e)


def _statistic(name: str) -> Criterion:
    def score(e: Evidence) -> torch.Tensor:
        return e.activations[name]

    score.__doc__ = f"Li et al. Fig. 9: the feature map's {name.replace('_', '-')} over the training set."
    return score


# Li et al. Fig. 9, each over every training image's pre-BatchNorm feature map F (H x W):
# the mean over images of mean(F), std(F), ||F||_1 and ||F||_2, and the variance of ||F||_2.
ACTIVATION_CRITERIA = ("mean_mean", "mean_std", "mean_l1", "mean_l2", "var_l2")

CRITERIA: dict[str, Criterion] = {"l1": l1, "l2": l2, "random": random, "smallest": smallest}
CRITERIA.update({name: _statistic(name) for name in ACTIVATION_CRITERIA})


def keep_top(scores: torch.Tensor, n_keep: int) -> torch.Tensor:
    """Indices of the n_keep highest scores, in ascending index order (ties: lower index)."""
    order = torch.argsort(scores, descending=True, stable=True)
    return order[:n_keep].sort().values
