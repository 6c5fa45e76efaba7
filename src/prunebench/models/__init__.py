"""The model registry: ``build(arch, cfg, num_classes)`` for every architecture prunebench knows.

An architecture is a name plus an explicit width list (``cfg``); a pruned network is the same
architecture with a smaller cfg, so checkpoints store ``{arch, cfg, num_classes, state_dict}``
and load with plain torch and this registry.
"""

from __future__ import annotations

from typing import Callable

from torch import nn

from . import resnet, vgg
from .groups import ChannelGroup

_REGISTRY: dict[str, tuple[Callable[..., nn.Module], Callable[[], list]]] = {}


def register(name: str, builder: Callable[..., nn.Module], default_cfg: Callable[[], list]) -> None:
    _REGISTRY[name] = (builder, default_cfg)


for _depth in (16, 19):
    register(
        f"vgg{_depth}",
        lambda cfg, num_classes, **kw: vgg.VGG(cfg, num_classes),
        lambda d=_depth: list(vgg.CFGS[d]),
    )
for _depth in (20, 32, 56, 110):
    register(
        f"resnet{_depth}",
        lambda cfg, num_classes, d=_depth, **kw: resnet.ResNet(d, cfg, num_classes, **kw),
        lambda d=_depth: resnet.default_cfg(d),
    )

ARCHS = tuple(_REGISTRY)


def check_arch(arch: str) -> None:
    from ..errors import UserError

    if arch not in _REGISTRY:
        raise UserError(f"unknown arch {arch!r}; choose one of {', '.join(ARCHS)}")


def default_cfg(arch: str) -> list:
    check_arch(arch)
    return _REGISTRY[arch][1]()


def build(arch: str, cfg: list | None = None, num_classes: int = 10, **kwargs) -> nn.Module:
    check_arch(arch)
    builder, default = _REGISTRY[arch]
    return builder(list(cfg) if cfg is not None else default(), num_classes, **kwargs)


__all__ = ["ARCHS", "ChannelGroup", "build", "check_arch", "default_cfg", "register"]
