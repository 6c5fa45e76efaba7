"""Masked models: the full architecture plus a 0/1 mask per pruned weight tensor.

Unstructured magnitude pruning and soft filter pruning keep every layer at full size and
zero weights instead of removing them. A mask is attached with PyTorch's
``torch.nn.utils.prune.custom_from_mask``: the module keeps ``weight_orig`` as its parameter
and a ``weight_mask`` buffer, and recomputes ``weight = weight_orig * weight_mask`` before each
forward. So the gradient reaching ``weight_orig`` is masked by autograd (the reference
multiplies the gradient by the mask after ``backward()``: the same update), and since
:func:`apply` also zeroes the pruned entries of ``weight_orig``, weight decay and momentum
see exact zeros there and keep them: pruned weights stay 0.0 through every step.

The masks themselves are not computed with ``prune.global_unstructured``: it prunes exactly
``round(p * n)`` weights, while the reference sets ``thr = sorted|w|[int(n * p)]`` and keeps
``|w| > thr`` (one more weight, plus any ties), and Rethinking's numbers come from that rule.

A masked model file stores the effective weights under the plain names plus ``masks``
(``{"<module>.weight": bool tensor}``), so it loads with plain torch and the registry;
:func:`prunebench.training.checkpoints.load_model` re-attaches the masks.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from prunebench.core.errors import UserError

SUFFIX = ".weight"


def conv_weights(model: nn.Module) -> dict[str, nn.Conv2d]:
    """Every Conv2d by the name of its weight: what unstructured pruning and SFP act on (stem,
    shortcut and transition convs included; linear and BatchNorm layers never)."""
    return {f"{name}{SUFFIX}": m for name, m in model.named_modules() if isinstance(m, nn.Conv2d)}


def weight_param(module: nn.Module) -> torch.Tensor:
    """The trained parameter: ``weight_orig`` of a masked module (its ``weight`` attribute is only
    refreshed by the next forward), ``weight`` otherwise."""
    return module.weight_orig if hasattr(module, "weight_orig") else module.weight


def effective(module: nn.Module) -> torch.Tensor:
    """The weight the module computes with: ``weight_orig * weight_mask`` when masked."""
    return module.weight_orig * module.weight_mask if hasattr(module, "weight_mask") else module.weight


def is_masked(model: nn.Module) -> bool:
    return any(hasattr(m, "weight_mask") for m in model.modules())


def masks_of(model: nn.Module) -> dict[str, torch.Tensor]:
    """The masks attached to ``model``, as bool tensors on the CPU."""
    return {
        f"{name}{SUFFIX}": m.weight_mask.detach().bool().cpu().contiguous()
        for name, m in model.named_modules()
        if hasattr(m, "weight_mask")
    }


def apply(model: nn.Module, masks: dict[str, torch.Tensor]) -> nn.Module:
    """Attach ``masks`` to ``model`` in place (replacing any it had) and zero the masked weights."""
    modules = dict(model.named_modules())
    for key, mask in masks.items():
        module = modules.get(key[: -len(SUFFIX)]) if key.endswith(SUFFIX) else None
        if module is None or not hasattr(module, "weight"):
            raise UserError(f"mask for {key!r}: the model has no such weight; the file is damaged or from another model")
        if tuple(mask.shape) != tuple(weight_param(module).shape):
            raise UserError(f"mask for {key!r} has shape {tuple(mask.shape)}, the weight {tuple(weight_param(module).shape)}; the file is damaged")
        if hasattr(module, "weight_mask"):
            torch_prune.remove(module, "weight")
        weight = module.weight
        float_mask = mask.to(device=weight.device, dtype=weight.dtype)
        with torch.no_grad():
            weight.mul_(float_mask)
        torch_prune.custom_from_mask(module, "weight", float_mask)
    return model


@torch.no_grad()
def clone(model: nn.Module) -> nn.Module:
    """A deep copy of a (possibly masked) model. The ``weight`` a mask's hook computed in grad
    mode is not a graph leaf, which ``copy.deepcopy`` refuses; recompute it without grad first."""
    for module in model.modules():
        if hasattr(module, "weight_mask"):
            module.weight = module.weight_orig * module.weight_mask
    return copy.deepcopy(model)


def plain_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state dict under the unmasked names: ``weight`` = ``weight_orig * weight_mask``."""
    state = {}
    for key, value in model.state_dict().items():
        if key.endswith("weight_mask"):
            continue
        if key.endswith("weight_orig"):
            base = key[: -len("_orig")]
            value = value * model.state_dict()[f"{base}_mask"]
            key = base
        state[key] = value.detach().cpu().contiguous()
    return state


# --------------------------------------------------------------------------- making masks
def magnitude_masks(model: nn.Module, ratio: float) -> dict[str, torch.Tensor]:
    """Rethinking's weight-level pruning: one global threshold over all conv weights,
    ``thr = sorted|w|[int(n * ratio)]``, keep ``|w| > thr`` [R: weight-level/cifar_prune.py]."""
    weights = {k: weight_param(m).detach().abs().float().cpu() for k, m in conv_weights(model).items()}
    everything = torch.cat([w.flatten() for w in weights.values()]).sort().values
    threshold = everything[int(len(everything) * ratio)]
    return {k: w > threshold for k, w in weights.items()}


def filter_masks(model: nn.Module, keep_rate: float) -> dict[str, torch.Tensor]:
    """Soft filter pruning's mask: in every conv, the ``int(N * (1 - keep_rate))`` filters with
    the smallest L2 norm are zero [SFP: pruning_cifar10.py, get_filter_codebook]."""
    masks = {}
    for key, conv in conv_weights(model).items():
        w = weight_param(conv).detach().float().cpu()
        n_drop = int(w.shape[0] * (1.0 - keep_rate))
        keep = torch.ones(w.shape[0], dtype=torch.bool)
        if n_drop:
            keep[w.flatten(1).norm(dim=1).argsort()[:n_drop]] = False
        masks[key] = keep.view(-1, 1, 1, 1).expand_as(w).clone()
    return masks


def pruned_ratios(found: dict[str, torch.Tensor]) -> dict[str, float]:
    """The pruned share of each masked weight: what prune.json reports per layer."""
    return {key: 1.0 - mask.float().mean().item() for key, mask in found.items()}


def zero_pattern(model: nn.Module) -> dict[str, torch.Tensor]:
    """Masks of the conv weights that are exactly zero now (SFP's final pattern)."""
    return {k: weight_param(m).detach().cpu() != 0 for k, m in conv_weights(model).items()}


@torch.no_grad()
def zero_weights(model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    """Zero the masked-out entries without attaching a mask: SFP's soft step (still trained)."""
    convs = conv_weights(model)
    for key, mask in masks.items():
        weight = weight_param(convs[key])
        weight.mul_(mask.to(device=weight.device, dtype=weight.dtype))


@torch.no_grad()
def scratch_init(model: nn.Module) -> None:
    """Redraw every masked conv of a fresh model as the reference's scratch runs do: N(0, sqrt(2/n))
    with n = non-zeros / C_in (k^2 C_out when dense), times the mask [R: weight-level/cifar_scratch*.py]."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d) and hasattr(module, "weight_mask"):
            mask = module.weight_mask
            n = mask.sum().item() / module.in_channels
            module.weight_orig.normal_(0, math.sqrt(2.0 / n) if n else 0.0).mul_(mask)


# --------------------------------------------------------------------------- checks
def sparsity(model: nn.Module) -> dict:
    """Zeros among the conv weights, overall and per layer, and ``pruned_nonzero``: entries of
    the trained parameters outside their masks that are not exactly zero (regrowth; must be 0).
    The non-zero count itself may rise a little: a fresh N(0, s) draw is exactly 0 about once in
    ten million weights, and such a kept weight moves once trained."""
    layers = []
    for key, conv in conv_weights(model).items():
        w = effective(conv).detach()
        outside = int((conv.weight_orig.detach()[~conv.weight_mask.bool()] != 0).sum()) if hasattr(conv, "weight_mask") else 0
        layers.append({"layer": key, "weights": w.numel(), "nonzero": int((w != 0).sum()), "pruned_nonzero": outside})
    total = sum(x["weights"] for x in layers)
    nonzero = sum(x["nonzero"] for x in layers)
    return {
        "conv_weights": total,
        "nonzero": nonzero,
        "sparsity": round(1.0 - nonzero / total, 6) if total else 0.0,
        "pruned_nonzero": sum(x["pruned_nonzero"] for x in layers),
        "empty_layers": [x["layer"] for x in layers if x["nonzero"] == 0],
        "layers": layers,
    }
