"""The forms of the torch files: model files (model.pt, pruned.pt, init.pt), training checkpoints,
and the tensor fields other forms (the prepared dataset) build on. Kept apart from the JSON forms
because it imports torch, which the report commands do without."""

from __future__ import annotations

from typing import Annotated, Any

import torch
from pydantic import AfterValidator, Field

from .base import Count, Form, _a


def tensor(dtype: torch.dtype | None = None, ndim: int | None = None, tail: tuple[int, ...] | None = None):
    """A tensor field: optionally of one dtype, number of dimensions and trailing shape."""

    def check(t: torch.Tensor) -> torch.Tensor:
        want = " ".join(x for x in (str(dtype).removeprefix("torch.") if dtype else "", f"{ndim}-D" if ndim is not None else "", "x".join(map(str, tail)) if tail else "") if x)
        if (dtype is not None and t.dtype != dtype) or (ndim is not None and t.ndim != ndim) or (tail and tuple(t.shape[-len(tail):]) != tail):
            raise ValueError(f"expected {_a(want)} tensor, not {str(t.dtype).removeprefix('torch.')} {tuple(t.shape)}")
        return t

    return Annotated[torch.Tensor, AfterValidator(check)]


class ForeignRecipe(Form):
    """A network from outside the registry (:mod:`prunebench.models.foreign`): the user's file
    that rebuilds its structure, the file's hash, and the reference network it was pruned from."""

    KIND = "foreign module recipe"
    file: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    builder: str | None = None
    reference: str


class ModelFile(Form):
    """model.pt, pruned.pt, init.pt: ``models.build(arch, cfg, num_classes, **options)`` and the
    state dict that fits it; a masked model adds its bool masks. A foreign network (``module``)
    is rebuilt from its recipe instead, ``arch`` naming its family and ``cfg`` empty."""

    KIND = "prunebench model file"
    arch: str
    cfg: list[Any]
    num_classes: int = Field(ge=1)
    options: dict[str, Any] = {}
    state_dict: dict[str, torch.Tensor]
    masks: dict[str, tensor(torch.bool)] | None = None
    run: dict[str, Any] | None = None
    module: ForeignRecipe | None = None


class TrainingCheckpoint(Form):
    """A run's resume checkpoint: where in training it stopped, and the state to go on from."""

    KIND = "training checkpoint"
    fingerprint: dict[str, Any]
    epoch: Count
    step: Count
    loss_sum: float
    correct: Count
    partial_time: float = Field(ge=0)
    model: dict[str, torch.Tensor]
    optimizer: Any = None
    history: list[dict[str, Any]]
