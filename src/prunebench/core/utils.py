"""Small shared helpers: device choice, seeding, durations, thinning a sweep."""

from __future__ import annotations

import random

import numpy as np
import torch

from .errors import UserError


def choose_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device {name!r} requested but no CUDA GPU is visible; use --device cpu or auto")
    try:
        return torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device {name!r}; use auto, cpu or cuda[:N]") from None


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def hms(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def thin(settings: list, keep: int | None) -> list:
    """At most ``keep`` settings, evenly spread from the first to the last (None: all)."""
    if keep is None or len(settings) <= keep:
        return settings
    if keep == 1:
        return settings[:1]
    step = (len(settings) - 1) / (keep - 1)
    return [settings[round(i * step)] for i in range(keep)]
