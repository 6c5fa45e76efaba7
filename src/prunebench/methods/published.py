"""Published pruned ImageNet architectures, trained from scratch only (Rethinking's ThiNet,
regression-pruning and sparse-structure-selection rows, PROTOCOLS-IMAGENET 2.2-2.5).

The Rethinking reference neither prunes nor fine-tunes these: the fine-tuned numbers are the
original papers' released Caffe or MXNet models, shown beside ours from the paper's table, and
its runs train the published widths from a fresh init for the full network's epochs
(Scratch-E) or its MACs budget (Scratch-B). So the method has only the scratch arms and no base
to train; the full network of its arch (with the study's options, e.g. ResNet-50's downsample
bias in the thinet folder) is only counted, for Scratch-B's budget.
"""

from __future__ import annotations

from prunebench.core.errors import UserError
from prunebench.models.published import published

from . import Method, register

# setting (a path segment) -> the architecture's name in models.published, per arch
SETTINGS = {
    "vgg16_nobn": {"thinet_conv": "vgg16-thinet-conv", "thinet_gap": "vgg16-thinet-gap", "thinet_tiny": "vgg16-thinet-tiny", "5x": "vgg16-5x"},
    "resnet50": {"thinet30": "resnet50-thinet30", "thinet50": "resnet50-thinet50", "thinet70": "resnet50-thinet70", "2x": "resnet50-2x"},
    "preresnet50": {"sss26": "resnet26-sss", "sss32": "resnet32-sss", "sss41": "resnet41-sss"},
}


def _name(arch: str, setting: str) -> str:
    if setting not in SETTINGS.get(arch, {}):
        known = "; ".join(f"{a}: {', '.join(s)}" for a, s in SETTINGS.items())
        raise UserError(f"no published architecture {setting!r} of {arch}; known: {known}")
    return SETTINGS[arch][setting]


def _nothing_to_prune(model, arch: str, setting: str, seed: int):
    raise UserError("published architectures are trained from scratch; nothing is pruned (method published has no prune step)")


register(
    Method(
        name="published",
        summary="a published pruned architecture (ThiNet, regression pruning, SSS) trained from scratch",
        base="plain",
        learned=False,
        check_setting=lambda arch, setting: _name(arch, setting) and None,
        prune=_nothing_to_prune,
        scratch_cfg=lambda arch, setting: published(_name(arch, setting)).cfg,
        scratch_options=lambda arch, setting: published(_name(arch, setting)).options,
        archs=tuple(SETTINGS),
        arms=("scratch-e", "scratch-b"),
        trains_base=False,
    )
)
