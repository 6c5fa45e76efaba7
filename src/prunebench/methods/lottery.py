"""Masks for the lottery-ticket comparison (Rethinking §6, PROTOCOLS §6).

The lottery study trains each pruned mask twice: on the base's own initial weights theta_0 (the
``winning`` ticket) and on a fresh init (Scratch-E, the random ticket). The masks come from
three methods: ``magnitude`` (one-shot, :mod:`.magnitude`), and the two here:

- ``iterative``: unstructured magnitude pruning in rounds. Setting ``NxP`` is round N of pruning
  the fraction P of the *remaining* conv weights (global threshold over the non-zero ones
  [R: lottery-ticket/weight-level/cifar_prune_iterative.py]); round N prunes round N-1's winning
  ticket after it retrained from theta_0, round 1 the trained base. Its sparsity is 1 - (1-P)^N.
- ``l1mask``: Li et al.'s predefined variants (VGG-16-A, ResNet-56/110-A/B) ranked by L1 norm as
  zeroed filters of the full network: the pruned filters' conv weights are masked, their
  BatchNorm is not [R: lottery-ticket/l1-norm-pruning/lottery_*prune.py]; the next conv's
  kernels reading a pruned filter are masked too, so the mask counts the physically pruned net.
"""

from __future__ import annotations

import re

import torch
from torch import nn

from prunebench.core.errors import UserError
from prunebench.models import masks
from prunebench.pruning import VARIANTS, layer_ratios, select_filters, variant_spec

from . import Method, Pruned, register

LOTTERY_ARMS = ("winning", "scratch-e")


def parse_rounds(setting: str) -> tuple[int, float]:
    """'3x0.2' -> (3, 0.2): the round and the fraction of the remaining weights each round prunes."""
    m = re.fullmatch(r"([1-9]\d*)x(0?\.\d+)", str(setting))
    fraction = float(m.group(2)) if m else 0.0
    if not m or not 0.0 < fraction < 1.0:
        raise UserError(f"iterative setting {setting!r} is not ROUNDSxFRACTION; use e.g. 3x0.2 for round 3 of pruning 20 % of the remaining weights")
    return int(m.group(1)), fraction


def previous_round(setting: str) -> str | None:
    rounds, fraction = parse_rounds(setting)
    return None if rounds == 1 else f"{rounds - 1}x{fraction:g}"


def iterative_sparsity(setting: str) -> float:
    rounds, fraction = parse_rounds(setting)
    return 1.0 - (1.0 - fraction) ** rounds


def prune_remaining(model: nn.Module, fraction: float) -> dict[str, torch.Tensor]:
    """One global threshold over the non-zero conv weights: ``thr = sorted|w|[int(n * fraction)]``
    over the n non-zeros, keep ``|w| > thr`` (weights already zero stay pruned)."""
    weights = {k: masks.weight_param(m).detach().abs().float().cpu() for k, m in masks.conv_weights(model).items()}
    nonzero = torch.cat([w[w != 0] for w in weights.values()]).sort().values
    if len(nonzero) == 0:
        raise UserError("the model has no non-zero conv weight left to prune; prune fewer rounds")
    threshold = nonzero[int(len(nonzero) * fraction)]
    return {k: w > threshold for k, w in weights.items()}


def _iterative_prune(model: nn.Module, arch: str, setting: str, seed: int) -> Pruned:
    rounds, fraction = parse_rounds(setting)
    found = prune_remaining(model, fraction)
    ratios = masks.pruned_ratios(found)
    notes = {"round": rounds, "round_fraction": fraction, "nominal_sparsity": round(iterative_sparsity(setting), 6)}
    return Pruned({}, ratios, notes, masks=found)


def filter_masks(model: nn.Module, keep: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Masks of every conv weight: all-True, except the pruned filters (output channels) of the
    channel groups in ``keep`` (kept indices by group) and the consuming convs' input kernels
    that read them, which are False.

    A pruned channel stays exactly zero after its BatchNorm (beta starts at 0 and ReLU passes it
    no gradient), so the kernels reading it never train. Unmasked, they would count as kept (a
    theta_0 draw of exactly 0 among them then makes the MACs by weight and by mask disagree) and
    the masked network would cost more than the physically pruned one it stands for. The last
    VGG conv's consumer is the classifier's Linear, which masks do not cover."""
    found = {k: torch.ones_like(masks.weight_param(m), dtype=torch.bool, device="cpu") for k, m in masks.conv_weights(model).items()}
    for group in model.channel_groups():
        if group.name in keep:
            dropped = torch.ones(found[group.weight_key].shape[0], dtype=torch.bool)
            dropped[keep[group.name]] = False
            found[group.weight_key][dropped] = False
            for key, dim in group.consumers:
                if key in found:
                    found[key].index_fill_(dim, dropped.nonzero().flatten(), False)
    return found


def _l1mask_prune(model: nn.Module, arch: str, setting: str, seed: int) -> Pruned:
    ratios = layer_ratios(model.channel_groups(), variant_spec(arch, setting))
    found = filter_masks(model, select_filters(model, ratios, "l1", seed))
    return Pruned({}, masks.pruned_ratios(found), {"variant": setting, "filter_ratios": ratios}, masks=found)


register(
    Method(
        name="iterative",
        summary="unstructured: each round masks a fraction of the remaining conv weights of the last round's winning ticket",
        base="plain",
        learned=True,
        masked=True,
        check_setting=lambda arch, setting: parse_rounds(setting) and None,
        prune=_iterative_prune,
        arms=LOTTERY_ARMS,
        prune_from="winning",
        previous=previous_round,
    )
)

register(
    Method(
        name="l1mask",
        summary="Li et al.'s variants by L1 norm as zeroed filters of the full network (BatchNorm not masked)",
        base="plain",
        learned=True,
        masked=True,
        check_setting=lambda arch, setting: variant_spec(arch, setting) and None,
        prune=_l1mask_prune,
        archs=tuple(VARIANTS),
        arms=LOTTERY_ARMS,
    )
)
