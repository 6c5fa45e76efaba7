"""Channel groups: which tensor slices live or die together when one channel is removed.

A model declares its prunable channels as data. Pruning a channel of a group means slicing
every ``producers`` tensor (the conv filter and its BatchNorm entries) and every
``consumers`` tensor (the next layer's input kernels) at the same indices; masking it means
zeroing the producer weights so the channel outputs exactly zero after its BatchNorm. The
surgery in :mod:`prunebench.pruning.surgery` needs nothing else about the architecture.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ChannelGroup:
    name: str  # conv module name, e.g. "features.0" or "layer1.3.conv1"
    cfg_index: int  # position of this width in the model's cfg list
    layer_id: int  # Li et al.'s conv numbering: stem conv = 1
    stage: int  # 0-based stage (feature-map size) the layer belongs to
    width: int
    producers: tuple[tuple[str, int], ...] = field(default=())  # (state key, dim)
    consumers: tuple[tuple[str, int], ...] = field(default=())

    @property
    def weight_key(self) -> str:
        return f"{self.name}.weight"

    @property
    def silencing_keys(self) -> tuple[str, ...]:
        """Producer tensors whose zeroed slice makes the channel output exactly zero."""
        return tuple(k for k, _ in self.producers if not k.endswith(("running_mean", "running_var")))


def bn_keys(bn: str) -> tuple[tuple[str, int], ...]:
    return tuple((f"{bn}.{p}", 0) for p in ("weight", "bias", "running_mean", "running_var"))
