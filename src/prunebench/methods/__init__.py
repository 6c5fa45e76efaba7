"""The method registry: what a pruning method is, as data plus two functions.

A method says how its base model is trained (``base``: plain, or with a sparsity penalty on the
BatchNorm scales), how it prunes a trained model for one *setting* (a predefined variant such as
Li's ``A``, or a global ratio such as ``0.4``), which arms compare against it, and whether the
pruned architecture is learned from the weights (``learned``: then the scratch arms need the
pruned file) or predefined (the scratch arms need nothing but the setting). The workflow reads
these facts to draw the DAG; ``prunebench prune`` and ``prunebench train`` call the functions.
Adding a method is a module that calls :func:`register`, not a branch in the CLI or the DAG.

A *masked* method (unstructured magnitude pruning, soft filter pruning) keeps the full
architecture and returns masks instead of kept channels; its pruned file is the masked full
model, and its scratch arms put the same masks on a fresh init. A method may also prune a
model of its own arm rather than the base (``prune_from``): SFP's soft-pruned run. A *chained*
method (iterative pruning) prunes the ``prune_from`` run of its ``previous`` setting, the base
for its first one: round k of iterative pruning prunes round k-1's retrained winning ticket,
and step k of Li's layer-by-layer pruning prunes step k-1's fine-tuned network.

Imports :mod:`prunebench.pruning` and the library below it (models, data, core).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from prunebench.core.errors import UserError

DEFAULT_ARMS = ("finetune", "scratch-e", "scratch-b")
# soft: trained from scratch while pruning (SFP); winning: the pruned masks on the base's own
# initial weights theta_0 (the lottery ticket), whose control is Scratch-E (a fresh init)
ARMS = DEFAULT_ARMS + ("soft", "winning")
BASES = ("plain", "sparsity")


@dataclass
class Pruned:
    """What a method's ``prune`` returns: kept channel indices per channel group, the ratio it
    aimed at per group (for the report), and notes such as layers a threshold would have emptied."""

    keep: dict[str, torch.Tensor]
    ratios: dict[str, float]
    notes: dict = field(default_factory=dict)
    masks: dict[str, torch.Tensor] | None = None  # a masked method's masks, by weight name


@dataclass(frozen=True)
class Method:
    name: str
    summary: str
    base: str  # "plain" | "sparsity"
    learned: bool  # architecture learned from the weights (scratch arms need the pruned file)
    check_setting: Callable[[str, str], None]  # (arch, setting) -> None or UserError
    prune: Callable[[nn.Module, str, str, int], Pruned]  # (model, arch, setting, seed)
    scratch_cfg: Callable[[str, str], list] | None = None  # (arch, setting) -> cfg, when not learned
    archs: tuple[str, ...] | None = None  # None: any registered arch (check_setting may refuse some)
    arms: tuple[str, ...] = DEFAULT_ARMS
    masked: bool = False  # prune returns masks; the pruned file is the masked full model
    prune_from: str = "base"  # the arm whose model is pruned: base, or soft (SFP)
    # A masked method whose masks remove whole channels: (masked model, arch, num_classes,
    # options) -> the physically pruned network, checked equal to the masked one.
    physical: Callable[[nn.Module, str, int, dict], nn.Module] | None = None
    # A chained method: setting -> the setting whose prune_from run this one prunes (None: the base).
    previous: Callable[[str], str | None] | None = None
    # An architecture source (methods/derived.py): (dataset, arch, setting) -> the Source row whose
    # prune.json reports it reads, and derive(reports, arch, num_classes, setting, seed, options).
    derived_from: Callable | None = None
    derive: Callable | None = None
    # A predefined architecture's model options beyond the base's, (arch, setting) -> options:
    # ThiNet's GAP and Tiny VGGs drop the FC layers (head="gap") of the VGG-16 they are cut from.
    scratch_options: Callable[[str, str], dict] | None = None
    # Whether the study trains the unpruned base: not for published architectures trained from
    # scratch only (their fine-tuned numbers are the original papers').
    trains_base: bool = True
    # A regular expression of the settings whose prune ranks on the data (Li's activation
    # criteria): prune then takes ``activations=`` (feature-map statistics over the training
    # set) as a keyword, and the DAG gives those settings' prune jobs the dataset.
    data_settings: str | None = None
    # Pruned from outside (methods/external.py): the prune job calls a function named by import
    # path, or reads a pruned module, and fits it to the registry's arch.
    external: bool = False
    # A method an installed package registers: (trained model, arch, setting, seed) -> the pruned
    # module, fitted to the registry's arch as an external one is.
    prune_module: Callable[[nn.Module, str, str, int], nn.Module] | None = None

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z0-9]+", self.name):
            raise ValueError(f"method {self.name!r}: a name is lower-case letters and digits only (it names run folders as METHOD-SETTING)")
        if self.base not in BASES:
            raise ValueError(f"method {self.name}: base must be one of {BASES}")
        if self.prune_from != "base" and self.prune_from not in self.arms:
            raise ValueError(f"method {self.name}: prune_from {self.prune_from!r} is not one of its arms")
        if self.previous is not None and self.prune_from == "base":
            raise ValueError(f"method {self.name}: a chained method prunes one of its arms (prune_from)")
        if not self.learned and self.scratch_cfg is None:
            raise ValueError(f"method {self.name}: a predefined method needs scratch_cfg")

    @property
    def derived(self) -> bool:
        return self.derive is not None

    @property
    def chained(self) -> bool:
        return self.previous is not None

    def data_for(self, setting: str) -> bool:
        return self.data_settings is not None and re.fullmatch(self.data_settings, str(setting)) is not None

    def source(self, setting: str) -> tuple[str, str] | None:
        """(setting, arm) of the run this setting prunes; None: the base."""
        if self.previous is not None:
            before = self.previous(setting)
            return None if before is None else (before, self.prune_from)
        return None if self.prune_from == "base" else (setting, self.prune_from)

    def check_arch(self, arch: str) -> None:
        if self.archs is not None and arch not in self.archs:
            raise UserError(f"{self.name} prunes {', '.join(self.archs)}, not {arch}")


_REGISTRY: dict[str, Method] = {}


def register(method: Method) -> Method:
    _REGISTRY[method.name] = method
    return method


def get(name: str) -> Method:
    _load()
    if name not in _REGISTRY:
        raise UserError(f"unknown pruning method {name!r}; choose one of {', '.join(names())}")
    return _REGISTRY[name]


def names() -> tuple[str, ...]:
    _load()
    return tuple(_REGISTRY)


_INSTALLED: list[str] = []  # the entry points loaded, once


def _load() -> None:
    """Import the method modules once; each registers itself. Then the methods installed packages
    add through the ``prunebench.methods`` entry point group: a module that registers its methods
    when imported, or a :class:`Method` itself."""
    # in the order their names are listed: as before the lottery study, then the
    # lottery's masks and the architecture sources, then Li et al.'s analyses
    from . import predefined, magnitude, sfp, slimming, lottery, derived, li, published, external  # noqa: F401, I001

    if _INSTALLED:
        return
    from importlib.metadata import entry_points

    _INSTALLED.append("(scanned)")
    for ep in entry_points(group="prunebench.methods"):
        try:
            obj = ep.load()
        except Exception as e:  # its package's code may raise anything
            raise UserError(f"the installed pruning method {ep.name} ({ep.value}) does not import ({type(e).__name__}: {e}); reinstall or uninstall its package") from None
        if isinstance(obj, Method):
            register(obj)
        _INSTALLED.append(ep.name)


__all__ = ["ARMS", "BASES", "DEFAULT_ARMS", "Method", "Pruned", "get", "names", "register"]
