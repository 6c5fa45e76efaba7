"""Model files: ``{arch, cfg, num_classes, options, state_dict, run, ...}``, loadable with plain
torch and the model registry (``models.build(arch, cfg, num_classes, **options)``), validated on
load so a wrong or damaged file fails with one clear line. A masked model adds ``masks``
(``{"<module>.weight": bool tensor}``); its state dict holds the effective (zeroed) weights under
the plain names, and loading re-attaches the masks (:mod:`prunebench.models.masks`)."""

from __future__ import annotations

import hashlib
import os
from typing import Any

import torch
from torch import nn

from prunebench import models
from prunebench.core.errors import UserError
from prunebench.core.forms import validate
from prunebench.core.forms.tensors import ModelFile
from prunebench.core.io import load_torch, save_torch
from prunebench.models import foreign, masks


def save_model(path: str | os.PathLike, model: nn.Module, arch: str, num_classes: int, options: dict | None = None, **meta: Any) -> None:
    state = masks.plain_state_dict(model)
    blob = {"arch": arch, "cfg": list(model.cfg), "num_classes": num_classes, "options": dict(options or {}), "state_dict": state}
    if masks.is_masked(model):
        blob["masks"] = masks.masks_of(model)
    if foreign.recipe_of(model) is not None:
        blob["module"] = foreign.recipe_of(model)
    save_torch(path, validate(ModelFile, {**blob, **meta}, f"{path} (being written)"))


def load_model(path: str | os.PathLike, expect_arch: str | None = None) -> tuple[nn.Module, dict]:
    blob = validate(ModelFile, load_torch(path, what="model checkpoint"), str(path))
    arch = blob["arch"]
    if expect_arch is not None and arch != expect_arch:
        raise UserError(f"{path} holds a {arch} model but {expect_arch} was asked for; pass the matching checkpoint")
    try:
        options = models.check_options(arch, blob.get("options", {}))
    except UserError as e:
        raise UserError(f"{path}: {e}; the file is damaged or from another version, rerun its step") from None
    if blob.get("module") is not None:
        return _load_foreign(path, blob, options)
    try:
        model = models.build(arch, blob["cfg"], blob["num_classes"], **options)
    except (ValueError, TypeError, RuntimeError, IndexError) as e:
        raise UserError(f"{path}: cfg {blob['cfg']} does not build a {arch} ({e}); the file is damaged, rerun its step") from None
    try:
        model.load_state_dict(blob["state_dict"])
    except RuntimeError:
        raise UserError(
            f"{path}: weights do not fit {arch} with cfg {blob['cfg']}; the file is damaged or edited, rerun its step"
        ) from None
    saved_masks = blob.get("masks")
    if saved_masks is not None:
        try:
            masks.apply(model, saved_masks)
        except UserError as e:
            raise UserError(f"{path}: {e}") from None
    return model, {**{k: v for k, v in blob.items() if k not in ("state_dict", "masks")}, "options": options}


def _load_foreign(path, blob: dict, options: dict) -> tuple[nn.Module, dict]:
    """A foreign network's model file: its structure rebuilt from the user's file, its weights."""
    recipe = blob["module"]
    if blob.get("masks") is not None:
        raise UserError(f"{path}: a foreign module with masks; prunebench masks only its own networks, rerun its step")
    model = foreign.adopt(foreign.rebuild(recipe, str(path)), recipe, models.image_size(blob["arch"]))
    try:
        model.load_state_dict(blob["state_dict"])
    except RuntimeError:
        raise UserError(f"{path}: weights do not fit the module {recipe['file']} rebuilds; the file is damaged or edited, rerun its step") from None
    return model, {**{k: v for k, v in blob.items() if k not in ("state_dict", "masks")}, "options": options}


def weights_sha256(model: nn.Module) -> str:
    """One hash of a model's weights (names, shapes, dtypes and values, in state-dict order):
    how a base run records its initial weights so theta_0 rebuilt later can be checked equal."""
    return tensors_sha256(masks.plain_state_dict(model).items())


def parameters_sha256(model: nn.Module) -> str:
    """One hash of a model's parameters alone (data-parallel replicas share them; each keeps
    its own BatchNorm running statistics until rank 0's are broadcast)."""
    return tensors_sha256((k, v.detach().cpu()) for k, v in model.named_parameters())


def tensors_sha256(items) -> str:
    """One hash of (name, CPU tensor) pairs: names, shapes, dtypes and values, in order."""
    digest = hashlib.sha256()
    for key, value in items:
        digest.update(f"{key}:{tuple(value.shape)}:{value.dtype};".encode())
        digest.update(value.numpy().tobytes() if value.dtype != torch.bfloat16 else value.float().numpy().tobytes())
    return digest.hexdigest()
