"""Soft filter pruning (He et al., IJCAI 2018) as its reference code runs it (PROTOCOLS §4).

The network trains from scratch while, before training and after every epoch, the filters of
every conv with the smallest L2 norm are zeroed at the setting's keep rate (``0.7`` keeps 70 %);
the zeroed filters keep being updated (the ``soft`` arm, :func:`prunebench.training.loop.soft_pruning`).
Pruning then reads that run's final zero pattern as masks: the pruned file is the soft-pruned
model with its masks, and the scratch arms train the same masks on a fresh init. There is no
fine-tune arm: the soft-pruned model is the method's result. Its physically pruned form (the
blocks' zeroed inner channels removed, :mod:`prunebench.pruning.folding`) is built and checked
equal to it at the prune step.
"""

from __future__ import annotations

from torch import nn

from prunebench.core.errors import UserError
from prunebench.models import masks
from prunebench.pruning import folding

from . import Method, Pruned, register

ARCHS = ("resnet20", "resnet32", "resnet56", "resnet110")


def keep_rate(setting: str) -> float:
    """The setting is SFP's ``--rate``: the fraction of filters kept, in (0, 1)."""
    try:
        rate = float(setting)
    except (TypeError, ValueError):
        rate = None
    if rate is None or not 0.0 < rate < 1.0:
        raise UserError(f"SFP keep rate {setting!r} is not a fraction in (0, 1); use e.g. 0.7 to keep 70 % of the filters")
    return rate


def prune(model: nn.Module, arch: str, setting: str, seed: int) -> Pruned:
    found = masks.zero_pattern(model)
    ratios = masks.pruned_ratios(found)
    return Pruned({}, ratios, {"keep_rate": keep_rate(setting)}, masks=found)


register(
    Method(
        name="sfp",
        summary="soft filter pruning: smallest-L2 filters zeroed after every epoch, still trained",
        base="plain",
        learned=True,
        masked=True,
        check_setting=lambda arch, setting: keep_rate(setting) and None,
        prune=prune,
        archs=ARCHS,
        arms=("soft", "scratch-e", "scratch-b"),
        prune_from="soft",
        physical=folding.physical,
    )
)
