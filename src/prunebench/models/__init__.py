"""The model registry: ``build(arch, cfg, num_classes, **options)`` for every architecture.

An architecture is a name plus an explicit width list (``cfg``); a pruned network is the same
architecture with a smaller cfg (channel selections included), so checkpoints store
``{arch, cfg, num_classes, options, state_dict}`` and load with plain torch and this registry.

Options are the reference folders' differences that are not widths (a shortcut form, a VGG
head, the weight init of one folder's copy of a network: ``source``, ``fc_init``). Each has a
default and a closed set of plain JSON values (str or bool), since they are saved in
checkpoints and configs; every default is the model as it was before the option existed.

The weight-level folder's models: ``vgg19`` and ``densenet40`` with ``source="weightlevel"``,
``preresnet110`` (bearpaw's, no channel selection) and ``densenetbc100``.

ImageNet (224x224, 1000 classes; ``IMAGENET_ARCHS``, kept apart from the CIFAR ``ARCHS`` the
studies accept): ``resnet34`` (Li et al.'s, L1 folder), ``resnet50`` and ``vgg16_bn``
(torchvision's, weight-level folder; ``resnet50`` with ``downsample_bias`` is the thinet and
regression folders'), ``vgg16_nobn`` (ThiNet's and regression pruning's VGG-16),
``vgg11_slimming`` (network slimming's VGG-11 with BatchNorm1d in the head) and ``preresnet50``
(SSS's MXNet ResNet-50). The published pruned ones are cfgs of these: :mod:`.published`.

Beside the architectures: :mod:`.masks` (a masked model: the full architecture with a 0/1 mask per
pruned weight), :mod:`.foreign` (another network's pruned module, held by the file that rebuilds
it) and :mod:`.counting` (MACs and parameters, masks taken into account). Adding a
model is a module here built from an explicit width list, registered in ``ARCHS``, with its
channel groups (:mod:`.groups`) so pruning can cut it. Imports only :mod:`prunebench.core`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from torch import nn

from . import densenet, densenet_bc, preresnet, preresnet_imagenet, resnet, resnet_imagenet, vgg, vgg_imagenet
from .groups import ChannelGroup, cuttable_groups
from .init import SOURCES
from .selection import ChannelSelection

Options = dict[str, tuple[Any, tuple]]  # option -> (default, allowed values)


@dataclass(frozen=True)
class _Entry:
    builder: Callable[..., nn.Module]  # (cfg, num_classes, **options) -> model
    default_cfg: Callable[[], list]
    options: Options
    num_classes: int  # build's default: 10 for the CIFAR families, 1000 for the ImageNet ones


_REGISTRY: dict[str, _Entry] = {}


def register(
    name: str,
    builder: Callable[..., nn.Module],
    default_cfg: Callable[[], list],
    options: Options | None = None,
    num_classes: int = 10,
) -> None:
    _REGISTRY[name] = _Entry(builder, default_cfg, dict(options or {}), num_classes)


_SOURCE: Options = {"source": ("slimming", SOURCES)}  # which folder's copy: its weight init


def _vgg_options(head: str) -> Options:
    return {"head": (head, vgg.HEADS), "head_bn_init": ("uniform", vgg.HEAD_BN_INITS), **_SOURCE}


_RESNET_OPTIONS: Options = {
    "shortcut": ("avgpool", ("avgpool", "subsample")),
    "shortcut_grad": (False, (False, True)),
    "fc_init": ("default", tuple(resnet.FC_INITS)),
    "dead_offsets": (False, (False, True)),
}

# VGG-16 is Li's (L1 folder), VGG-19 the network-slimming one; `source: weightlevel` gives either
# the weight-level folder's init (conv biases; with `head: linear`, its vgg16_bn / vgg19_bn).
for _depth, _head in ((16, "li"), (19, "linear")):
    register(
        f"vgg{_depth}",
        lambda cfg, num_classes, **kw: vgg.VGG(cfg, num_classes, **kw),
        lambda d=_depth: list(vgg.CFGS[d]),
        _vgg_options(_head),
    )
for _depth in (20, 32, 56, 110):
    register(
        f"resnet{_depth}",
        lambda cfg, num_classes, d=_depth, **kw: resnet.ResNet(d, cfg, num_classes, **kw),
        lambda d=_depth: resnet.default_cfg(d),
        _RESNET_OPTIONS,
    )
register(
    "preresnet164",
    lambda cfg, num_classes: preresnet.PreResNet(164, cfg, num_classes),
    lambda: preresnet.default_cfg(164),
)
register(
    "preresnet110",
    lambda cfg, num_classes: preresnet.PreResNet(110, cfg, num_classes, source="weightlevel"),
    lambda: preresnet.default_cfg(110),
)
register(
    "densenet40",
    lambda cfg, num_classes, **kw: densenet.DenseNet(40, cfg, num_classes, **kw),
    lambda: densenet.default_cfg(40),
    _SOURCE,
)
register(
    "densenetbc100",
    lambda cfg, num_classes, **kw: densenet_bc.DenseNetBC(cfg, num_classes, **kw),
    lambda: densenet_bc.default_cfg(100),
    {"block": ("bottleneck", densenet_bc.BLOCKS)},
)

ARCHS = tuple(_REGISTRY)  # the CIFAR architectures

# ImageNet (PROTOCOLS-IMAGENET section 2): 1000 classes by default
for _name, _builder, _cfg, _options in (
    ("resnet34", resnet_imagenet.ResNet34, resnet_imagenet.resnet34_cfg, None),
    (
        "resnet50",
        resnet_imagenet.ResNet50,
        resnet_imagenet.resnet50_cfg,
        {"stride_on": ("3x3", resnet_imagenet.STRIDES_ON), "downsample_bias": (False, (False, True))},
    ),
    ("preresnet50", preresnet_imagenet.SSSResNet, preresnet_imagenet.default_cfg, None),
    ("vgg16_bn", vgg_imagenet.vgg16_bn, lambda: vgg_imagenet.default_cfg(16), None),
    ("vgg16_nobn", vgg_imagenet.vgg16_nobn, lambda: vgg_imagenet.default_cfg(16), {"head": ("fc", ("fc", "gap"))}),
    ("vgg11_slimming", vgg_imagenet.vgg11_slimming, lambda: vgg_imagenet.default_cfg(11), None),
):
    register(_name, _builder, _cfg, _options, num_classes=1000)

IMAGENET_ARCHS = tuple(a for a in _REGISTRY if a not in ARCHS)


def image_size(arch: str) -> int:
    """The side of the images ``arch`` classifies: 224 for the ImageNet families, else 32."""
    return 224 if arch in IMAGENET_ARCHS else 32


def check_arch(arch: str) -> None:
    from prunebench.core.errors import UserError

    if arch not in _REGISTRY:
        raise UserError(f"unknown arch {arch!r}; choose one of {', '.join(ARCHS + IMAGENET_ARCHS)}")


def default_cfg(arch: str) -> list:
    check_arch(arch)
    return _REGISTRY[arch].default_cfg()


def default_options(arch: str) -> dict:
    """Every option of ``arch`` with its default value."""
    check_arch(arch)
    return {k: default for k, (default, _) in _REGISTRY[arch].options.items()}


def check_options(arch: str, options: dict) -> dict:
    """``options`` completed with the defaults; a UserError names an unknown option or bad value."""
    from prunebench.core.errors import UserError

    check_arch(arch)
    known = _REGISTRY[arch].options
    for key, value in options.items():
        if key not in known:
            choices = ", ".join(known) or "none"
            raise UserError(f"unknown option {key!r} for {arch}; its options are: {choices}")
        allowed = known[key][1]
        # type must match too: 1 is not True, "false" is not False
        if not any(type(value) is type(a) and value == a for a in allowed):
            raise UserError(
                f"bad value {value!r} for option {key!r} of {arch}; choose one of {', '.join(map(repr, allowed))}"
            )
    return {**default_options(arch), **options}


def build(arch: str, cfg: list | None = None, num_classes: int | None = None, **options) -> nn.Module:
    """``arch`` with ``cfg`` (default: the full network) and ``num_classes`` (default: 10 for the
    CIFAR families, 1000 for the ImageNet ones)."""
    options = check_options(arch, options)
    entry = _REGISTRY[arch]
    cfg = list(cfg) if cfg is not None else entry.default_cfg()
    return entry.builder(cfg, num_classes if num_classes is not None else entry.num_classes, **options)


def skeleton(arch: str, cfg: list | None = None, **options) -> nn.Module:
    """``arch`` built on PyTorch's meta device: its structure (modules, channel groups) without
    allocating or initialising weights, for the config checks that Snakemake runs before every DAG
    (a VGG-11 with its 132M parameters takes seconds to initialise on a laptop CPU)."""
    import torch

    try:
        with torch.device("meta"):
            return build(arch, cfg, **options)
    except (NotImplementedError, RuntimeError):  # a builder that reads tensor values
        return build(arch, cfg, **options)


__all__ = [
    "ARCHS",
    "ChannelGroup",
    "ChannelSelection",
    "IMAGENET_ARCHS",
    "build",
    "check_arch",
    "check_options",
    "cuttable_groups",
    "default_cfg",
    "default_options",
    "register",
    "skeleton",
]
