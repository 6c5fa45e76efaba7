"""Networks from outside the registry: a pruned module that is not one of our families' width
lists (another repository's ResNet-56, a module Torch-Pruning cut), trained as it is.

Such a module is held by its recipe: the file it was given in (a whole module saved with
``torch.save``, or a state dict with the ``builder`` that returns its module), that file's hash,
and the ``reference`` full network it was pruned from (a function by import path that returns
it). A model file of ours stores the recipe beside its own weights (``ModelFile.module``), so
every later job rebuilds the structure from the user's file and loads the run's weights into it.
The family (the registry ``arch`` the study names) gives the init rule of the scratch arms and
the image size the counter uses.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from prunebench.core.errors import UserError
from prunebench.core.io import sha256

from .init import reference_init

IMPORT_PATH = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")
LAYERS = (nn.Conv2d, nn.Linear, nn.BatchNorm2d, nn.BatchNorm1d)  # the layers whose shapes are read


def import_object(path: str, what: str) -> Any:
    """The object ``package.module:name`` names (an installed package, or a module in the working
    folder); a one-line UserError if it does not import."""
    if not IMPORT_PATH.fullmatch(path or ""):
        raise UserError(f"{what} {path!r} is not an import path; write it as package.module:function")
    module_name, _, attr = path.partition(":")
    _import_from_here()
    try:
        obj = importlib.import_module(module_name)
    except Exception as e:  # its own code may raise anything while importing
        raise UserError(f"{what} {path!r} does not import ({type(e).__name__}: {first_line(e) if str(e) else ''}); install its package or fix the path") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise UserError(f"{what} {path!r}: module {module_name} has no {attr}; check the name after the colon")
        obj = getattr(obj, part)
    return obj


def _import_from_here() -> None:
    """Let the user's own modules, beside where they run, import (as ``python -m`` finds them)."""
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.append(os.getcwd())


def first_line(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:160] if text else type(e).__name__


def built(builder: str, what: str = "builder") -> nn.Module:
    """The module a function named by import path returns when called with no arguments."""
    make = import_object(builder, what)
    if not callable(make):
        raise UserError(f"{what} {builder!r} is not a function; name one that returns the module")
    try:
        module = make()
    except Exception as e:
        raise UserError(f"{what} {builder!r} failed ({type(e).__name__}: {first_line(e)}); it must build the module with no arguments") from None
    if not isinstance(module, nn.Module):
        raise UserError(f"{what} {builder!r} returned a {type(module).__name__}, not a torch.nn.Module")
    return module


def read_module(path: str, builder: str | None = None) -> nn.Module:
    """A pruned module from a file: a whole ``nn.Module`` saved with ``torch.save`` (its classes
    must import here), or a state dict given to the module ``builder`` returns."""
    file = Path(path)
    if not file.is_file():
        raise UserError(f"pruned module {path} does not exist; check the path")
    if builder is not None:
        module = built(builder)
        try:
            state = torch.load(file, map_location="cpu", weights_only=True)
        except Exception as e:
            raise UserError(f"pruned module {path} is not a torch state dict ({type(e).__name__}); save it with torch.save(model.state_dict(), ...)") from None
        state = state.get("state_dict", state) if isinstance(state, dict) else state
        if not isinstance(state, dict):
            raise UserError(f"pruned module {path} holds a {type(state).__name__}, not a state dict; save it with torch.save(model.state_dict(), ...)")
        try:
            module.load_state_dict(state)
        except RuntimeError as e:
            raise UserError(f"pruned module {path} does not fit the module {builder} builds ({first_line(e)}); pass the builder of the pruned network") from None
        return module
    _import_from_here()  # the classes a whole module's pickle names
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # A whole module is a pickle of its classes: loading it runs the code they name, so
            # only a file the user made is read this way (the study names it).
            module = torch.load(file, map_location="cpu", weights_only=False)
    except Exception as e:
        raise UserError(f"pruned module {path} does not load ({type(e).__name__}: {first_line(e)}); save it with torch.save(model), or pass a state dict with --builder") from None
    if not isinstance(module, nn.Module):
        raise UserError(f"pruned module {path} holds a {type(module).__name__}, not a torch.nn.Module; save the module itself, or its state dict with --builder")
    return module


def recipe_of(model: nn.Module) -> dict | None:
    """The recipe of a foreign module (None for the registry's models)."""
    return getattr(model, "foreign_recipe", None)


def sized(module: nn.Module, image_size: int) -> nn.Module:
    """``module`` counted (and checked) on ``image_size`` images; it has no width list of ours."""
    module.cfg = []  # its shapes are its architecture
    module.image_size = image_size
    return module


def adopt(module: nn.Module, recipe: dict, image_size: int) -> nn.Module:
    """``module`` marked as a foreign network of ``recipe``, counted on ``image_size`` images."""
    module.foreign_recipe = dict(recipe)
    return sized(module, image_size)


def rebuild(recipe: dict, where: str) -> nn.Module:
    """The structure a recipe names, with the weights its file holds (a model file then loads
    its own weights into it); the file must be the one the recipe was made from."""
    path = recipe["file"]
    if not Path(path).is_file():
        raise UserError(f"{where} trains the pruned module {path}, which no longer exists; put it back or rerun the prune step")
    if sha256(path) != recipe["sha256"]:
        raise UserError(f"{where} was made from another {path} (its sha256 changed); rerun the prune step and the runs after it")
    return read_module(path, recipe.get("builder"))


def reference(recipe: dict) -> nn.Module:
    """The full network the recipe's module was pruned from."""
    return built(recipe["reference"], "reference network")


def layer_rows(module: nn.Module, full: nn.Module, source: str, reference_name: str) -> list[dict]:
    """prune.json's per-layer rows of a foreign module read against its reference: every conv,
    linear and BatchNorm layer of the reference is there under the same name and type, no wider,
    with the same kernel and stride; no such layer is added."""
    ours = {name: m for name, m in module.named_modules() if isinstance(m, LAYERS)}
    rows = []
    for name, ref in full.named_modules():
        if not isinstance(ref, LAYERS):
            continue
        mine = ours.pop(name, None)
        if mine is None or type(mine) is not type(ref):
            raise UserError(f"{source} has no {type(ref).__name__} {name}, which the reference {reference_name} has; it is not pruned from {reference_name}")
        before, after = _width(ref), _width(mine)
        if any(a > b for a, b in zip(after, before)) or _geometry(mine) != _geometry(ref):
            raise UserError(f"{source}: {name} is {_describe(mine)} where the reference {reference_name} has {_describe(ref)}; a pruned layer only loses channels")
        if not isinstance(ref, (nn.BatchNorm2d, nn.BatchNorm1d)):
            rows.append({"layer": name, "before": before[0], "after": after[0], "ratio": round(1 - after[0] / before[0], 6)})
    if ours:
        raise UserError(f"{source} has {next(iter(ours))}, which the reference {reference_name} has not; name the reference network it was pruned from")
    return rows


def _width(m: nn.Module) -> tuple[int, ...]:
    if isinstance(m, nn.Conv2d):
        return (m.out_channels, m.in_channels)
    if isinstance(m, nn.Linear):
        return (m.out_features, m.in_features)
    return (m.num_features,)


def _geometry(m: nn.Module) -> tuple:
    return (m.kernel_size, m.stride, m.padding, m.groups == 1) if isinstance(m, nn.Conv2d) else ()


def _describe(m: nn.Module) -> str:
    return f"{type(m).__name__}{_width(m)[::-1]}" + (f" kernel {m.kernel_size} stride {m.stride}" if isinstance(m, nn.Conv2d) else "")


def check_forward(module: nn.Module, num_classes: int, image_size: int, source: str) -> None:
    """The module classifies a batch of ``image_size`` images into ``num_classes`` scores."""
    x = torch.randn(2, 3, image_size, image_size, generator=torch.Generator().manual_seed(0))
    module.eval()
    with torch.no_grad():
        try:
            out = module(x)
        except Exception as e:
            raise UserError(f"{source} fails on a {image_size}x{image_size} batch ({type(e).__name__}: {first_line(e)}); give the module as trained") from None
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, num_classes):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise UserError(f"{source} returns {got} for 2 images, not (2, {num_classes}) class scores; give a classifier of the study's dataset")


def reinit(module: nn.Module, family: nn.Module) -> None:
    """A fresh draw of every layer of ``module``: PyTorch's own reset, then the family's init
    rule (the one ``family``, a registry model, was initialised by) on its conv, BatchNorm and
    linear layers, as a scratch run of that family starts."""
    for m in module.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()  # BatchNorm's resets its running statistics too
    reference_init(module, **family.init_rule)
