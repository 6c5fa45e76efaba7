"""Weight initialisation of the Rethinking reference models (PROTOCOLS section 1, 'Weight init').

Conv weights N(0, sqrt(2 / (k^2 C_out))); BatchNorm2d gamma set per model file, beta 0;
linear layers N(0, linear_std) with zero bias, or PyTorch's default when linear_std is None.
"""

from __future__ import annotations

import math

from torch import nn


def reference_init(model: nn.Module, bn_gamma: float, linear_std: float | None) -> None:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
            m.weight.data.normal_(0, math.sqrt(2.0 / n))
        elif isinstance(m, nn.BatchNorm2d):
            m.weight.data.fill_(bn_gamma)
            m.bias.data.zero_()
        elif isinstance(m, nn.Linear) and linear_std is not None:
            m.weight.data.normal_(0, linear_std)
            m.bias.data.zero_()
