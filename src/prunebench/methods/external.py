"""Pruning from outside prunebench: a pruning function named by import path
(``package.module:function``) or a pruned module saved by any code, turned into a pruned file
of one of our architectures so that every arm trains and is counted as for a shipped method.

The architecture is read, not trusted: each channel group of the reference network (the
registry's full ``arch``) takes its width from the BatchNorm of that name in the given module,
the registry builds that width list, the module's weights are loaded into it (every tensor's
name and shape must fit), and the two must compute the same outputs on a random batch. MACs
and parameters are then counted by our counter, as for any pruned file. Scratch-E and Scratch-B
train that width list from a fresh init, as for any learned architecture.

A module of another network is kept as it is instead, given as a file with the ``reference``
network it was pruned from (:mod:`prunebench.models.foreign`; the prune job's ``_foreign``).

``externalmasked`` reads a dense masked module instead (the full widths, pruned weights zero):
each conv's mask is its ``torch.nn.utils.prune`` buffer ``weight_mask`` where it has one, else
its non-zero weights, and the model is masked as unstructured magnitude pruning's is.
"""

from __future__ import annotations

import copy
import inspect
import os
from typing import Any

import torch
from torch import nn

from prunebench import models
from prunebench.core.errors import UserError
from prunebench.core.io import sha256
from prunebench.models import masks
from prunebench.models.foreign import first_line, import_object

from . import Method, Pruned, register

# A module of another network trains as it is, from a file, with the network it was pruned from.
OTHER_NETWORK = "if it is pruned from another network, save it as a file and pass --pruned-module with --reference"


def source_of(obj: Any) -> dict:
    """Provenance of an external function: its import path and the hash of its source file."""
    name = f"{getattr(obj, '__module__', '?')}:{getattr(obj, '__qualname__', repr(obj))}"
    try:
        path = inspect.getsourcefile(obj)
    except TypeError:
        path = None
    digest = sha256(path) if path and os.path.isfile(path) else None
    return {"function": name, "source": path, "source_sha256": digest}


def fit_registry(module: nn.Module, arch: str, num_classes: int, options: dict, source: str) -> nn.Module:
    """``arch`` at the widths ``module`` has, holding ``module``'s weights, checked to compute
    what ``module`` computes. ``source`` names the module in errors."""
    full = models.build(arch, None, num_classes, **options)
    # torch.nn.utils.prune's weight_orig and weight_mask read as the weight they compute
    state = {k: v for k, v in masks.plain_state_dict(module).items() if not k.endswith("num_batches_tracked")}
    cfg = list(full.cfg)
    for g in models.cuttable_groups(full):
        key = f"{g.bn}.weight"
        if key not in state:
            raise UserError(f"{source} has no {key}, which {arch} has; it is not a pruned {arch}: {OTHER_NETWORK}")
        cfg[g.cfg_index] = int(state[key].shape[0])
    try:
        ours = models.build(arch, cfg, num_classes, **options)
    except (ValueError, RuntimeError, IndexError) as e:
        raise UserError(f"{source}: its widths {cfg} do not build a {arch} ({first_line(e)}); {OTHER_NETWORK}") from None
    want = {k: v for k, v in ours.state_dict().items() if not k.endswith("num_batches_tracked")}
    missing = [k for k in want if k not in state]
    extra = [k for k in state if k not in want]
    if missing or extra:
        what = f"lacks {missing[0]}" if missing else f"has {extra[0]}, which {arch} has not"
        raise UserError(f"{source} {what}; it is not a pruned {arch}: {OTHER_NETWORK}")
    for k, v in want.items():
        if tuple(state[k].shape) != tuple(v.shape):
            raise UserError(f"{source}: {k} has shape {tuple(state[k].shape)} where {arch} at its widths has {tuple(v.shape)}; it is not a pruned {arch}")
    ours.load_state_dict(state, strict=False)
    _check_same_outputs(module, ours, source, arch)
    return ours


def _check_same_outputs(module: nn.Module, ours: nn.Module, source: str, arch: str) -> None:
    size = models.image_size(arch)
    x = torch.randn(4, 3, size, size, generator=torch.Generator().manual_seed(0))
    module.eval(), ours.eval()
    with torch.no_grad():
        try:
            theirs = module(x)
        except Exception as e:
            raise UserError(f"{source} fails on a {size}x{size} batch ({type(e).__name__}: {first_line(e)}); give the module as trained") from None
        mine = ours(x)
    if not isinstance(theirs, torch.Tensor) or theirs.shape != mine.shape or not torch.allclose(theirs, mine, rtol=1e-4, atol=1e-4):
        raise UserError(f"{source} does not compute what {arch} at its widths computes with its weights; it is not a pruned {arch} (or its forward differs)")


def dense_masks(module: nn.Module, ours: nn.Module, arch: str, source: str) -> dict[str, torch.Tensor]:
    """The masks of a dense masked ``module`` that ``ours`` (:func:`fit_registry`'s copy) holds the
    weights of, by conv weight name: its ``weight_mask`` buffer where it has one, else the
    non-zero weights."""
    if list(ours.cfg) != models.default_cfg(arch):
        raise UserError(f"{source} has fewer channels than {arch}: method externalmasked reads the full network with zeroed weights; prune it with method external")
    buffers = {f"{name}.weight": m.weight_mask.detach().bool().cpu() for name, m in module.named_modules() if hasattr(m, "weight_mask")}
    convs = masks.conv_weights(ours)
    for key in buffers:
        if key not in convs:
            raise UserError(f"{source} masks {key}, which is not a conv weight; prunebench masks conv weights only, as unstructured pruning in Rethinking does: remove that mask")
    found = {key: buffers[key] if key in buffers else conv.weight.detach().cpu() != 0 for key, conv in convs.items()}
    if all(bool(mask.all()) for mask in found.values()):
        raise UserError(f"{source} has no zero conv weight and no torch.nn.utils.prune mask, so it is not a masked model; zero the pruned weights, or use method external for fewer channels")
    return {key: mask.contiguous() for key, mask in found.items()}


def prune_with(function: str, model: nn.Module, settings: dict, data: Any = None) -> tuple[nn.Module, dict]:
    """Call the pruning function ``function`` on a copy of the trained ``model`` (with ``data``
    if it takes a ``data`` keyword, and the study's ``settings`` as keywords); the module it
    returns, and its provenance."""
    fn = import_object(function, "pruning function")
    if not callable(fn):
        raise UserError(f"pruning function {function!r} is not callable; name a function that takes the trained model and returns the pruned one")
    kwargs = dict(settings)
    if data is not None and "data" in inspect.signature(fn).parameters:
        kwargs["data"] = data
    pruned = fn(copy.deepcopy(model).eval(), **kwargs)
    if not isinstance(pruned, nn.Module):
        raise UserError(f"pruning function {function!r} returned a {type(pruned).__name__}, not a torch.nn.Module; return the pruned model")
    return pruned, source_of(fn)


def _not_called(*args, **kwargs) -> Pruned:  # the prune job calls prune_with or read_module instead
    raise UserError("the external method prunes through --function or --pruned-module; pass one")


register(
    Method(
        name="external",
        summary="a pruning function named by import path, or a pruned module saved by other code",
        base="plain",
        learned=True,
        check_setting=lambda arch, setting: None,
        prune=_not_called,
        external=True,
    )
)
register(
    Method(
        name="externalmasked",
        summary="as external, for a dense masked module: zeroed conv weights or torch.nn.utils.prune masks",
        base="plain",
        learned=True,  # the scratch arms need the pruned file: its masks
        masked=True,
        check_setting=lambda arch, setting: None,
        prune=_not_called,
        external=True,
    )
)
