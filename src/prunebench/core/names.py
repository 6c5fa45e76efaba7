"""Names as the papers print them: architectures (ResNet-56), datasets (CIFAR-10), settings (70%,
keep 70%, A) and models (VGG-16-A). Tables, figures and the latency measurements label rows with
these, so one spelling is used everywhere."""

from __future__ import annotations

import math
import re

DATASET_LABELS = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "imagenet": "ImageNet"}
ARCH_LABELS = {"vgg": "VGG", "resnet": "ResNet", "preresnet": "PreResNet", "densenet": "DenseNet", "densenetbc": "DenseNet-BC"}
KEEP_RATE_METHODS = ("sfp",)  # methods whose setting is the share kept, not removed
STANDIN_LABEL = "synthetic stand-in"

# ImageNet archs whose name is not family + depth
ARCH_NAMES = {"vgg16_bn": "VGG-16-BN", "vgg16_nobn": "VGG-16", "vgg11_slimming": "VGG-11", "preresnet50": "ResNet-50 (pre-act.)"}
# published architectures (method published): the names their papers give them
PUBLISHED_NAMES = {
    "thinet_conv": "ThiNet VGG-Conv", "thinet_gap": "ThiNet VGG-GAP", "thinet_tiny": "ThiNet VGG-Tiny", "5x": "VGG-16-5x (regression)",
    "thinet30": "ThiNet-30", "thinet50": "ThiNet-50", "thinet70": "ThiNet-70", "2x": "ResNet-50-2x (regression)",
    "sss26": "ResNet-26 (SSS)", "sss32": "ResNet-32 (SSS)", "sss41": "ResNet-41 (SSS)",
}  # fmt: skip


def arch_name(arch: str) -> str:
    """vgg16 -> VGG-16, resnet56 -> ResNet-56, preresnet164 -> PreResNet-164, densenet40 -> DenseNet-40."""
    if arch in ARCH_NAMES:
        return ARCH_NAMES[arch]
    m = re.fullmatch(r"(vgg|resnet|preresnet|densenetbc|densenet)(\d+)", arch)
    return f"{ARCH_LABELS[m.group(1)]}-{m.group(2)}" if m else arch


def ratio(setting: object) -> float | None:
    """The prune ratio a setting stands for ("0.7" -> 0.7), or None for a variant letter."""
    try:
        r = float(setting)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return r if math.isfinite(r) else None


def normalize_setting(setting: object) -> str | None:
    """One spelling per setting: ratios as "0.7" (so "0.70" and 0.7 match), anything else as str."""
    if setting is None or (isinstance(setting, float) and math.isnan(setting)) or setting == "":
        return None
    r = ratio(setting)
    return f"{r:g}" if r is not None else str(setting)


def setting_label(setting: object) -> str:
    """'70%' for a ratio, 'A' for a variant letter, '' for none."""
    s = normalize_setting(setting)
    if s is None:
        return ""
    r = ratio(s)
    return f"{100 * r:.4g}%" if r is not None else s


def display_name(arch: str, setting: object = None, method: str | None = None) -> str:
    """Model name as the papers print it: ResNet-56-A for a variant, VGG-19 (70%) for a ratio,
    ResNet-56 (keep 70%) for a keep rate (SFP)."""
    s = normalize_setting(setting)
    if s is None:
        return arch_name(arch)
    if method == "published" and s in PUBLISHED_NAMES:
        return PUBLISHED_NAMES[s]
    if ratio(s) is not None:
        keep = "keep " if method in KEEP_RATE_METHODS else ""
        return f"{arch_name(arch)} ({keep}{setting_label(s)})"
    return f"{arch_name(arch)}-{s}" if re.fullmatch(r"[A-Za-z]+", s) else f"{arch_name(arch)} ({s})"


def dataset_name(dataset: str, standin: bool = False) -> str:
    label = DATASET_LABELS.get(dataset, dataset)
    return f"{label} ({STANDIN_LABEL})" if standin else label
