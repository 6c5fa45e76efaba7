"""Weight initialisation of the Rethinking reference models (PROTOCOLS section 1, 'Weight init').

Each reference folder initialises its own copy of a model differently, so one function covers
them all: conv weights N(0, sqrt(2 / (k^2 C))) with C the output channels (every folder but
one) or the input channels (``conv_fan="in"``: the weight-level VGG), a conv bias (only the
weight-level VGG has one) zero; BatchNorm2d gamma set per model file, beta 0; linear layers
N(0, std) with zero bias, ``"kaiming"`` (the SFP ResNet's ``kaiming_normal_``, zero bias), or
PyTorch's default when ``linear`` is None.

``SOURCES`` names the folders an architecture exists in twice: network slimming (BN gamma 0.5,
the L1 folder's VGG too) and weight-level pruning (gamma 1, the bearpaw models).
"""

from __future__ import annotations

import math

from torch import nn

SOURCES = ("slimming", "weightlevel")
BN_GAMMA = {"slimming": 0.5, "weightlevel": 1.0}
CONV_FANS = ("out", "in")


def check_source(source: str) -> str:
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    return source


def reference_init(model: nn.Module, bn_gamma: float, linear: float | str | None, conv_fan: str = "out") -> None:
    if conv_fan not in CONV_FANS:
        raise ValueError(f"conv_fan must be one of {CONV_FANS}, got {conv_fan!r}")
    model.init_rule = {"bn_gamma": bn_gamma, "linear": linear, "conv_fan": conv_fan}  # to draw a foreign module alike
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            channels = m.out_channels if conv_fan == "out" else m.in_channels
            m.weight.data.normal_(0, math.sqrt(2.0 / (m.kernel_size[0] * m.kernel_size[1] * channels)))
            if m.bias is not None:
                m.bias.data.zero_()
        elif isinstance(m, nn.BatchNorm2d):
            m.weight.data.fill_(bn_gamma)
            m.bias.data.zero_()
        elif isinstance(m, nn.Linear) and linear is not None:
            if linear == "kaiming":
                nn.init.kaiming_normal_(m.weight)
            else:
                m.weight.data.normal_(0, linear)
            m.bias.data.zero_()
