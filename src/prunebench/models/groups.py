"""Channel groups: which tensor slices live or die together when one channel is removed.

A model declares its prunable channels as data. Pruning a channel of a group means slicing
every ``producers`` tensor (the conv filter and its BatchNorm entries) and every
``consumers`` tensor (the next layer's input kernels) at the same indices; masking it means
zeroing the producer weights so the channel outputs exactly zero after its BatchNorm.

A *selection* group (network slimming's channel selection, see :mod:`.selection`) has no
producers: its BatchNorm stays full size and only the consumers read fewer channels; its cfg
entry becomes the list of kept indices. Masking it zeroes the BN's scale and shift.

``bn`` names the BatchNorm whose |gamma| scores the group's channels (network slimming), so a
global threshold over all BN gammas maps onto groups (a BatchNorm1d for the hidden FC layers of
the ImageNet VGG-11). The surgery in
:mod:`prunebench.pruning.surgery` needs nothing else about the architecture.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ChannelGroup:
    name: str  # producing conv, e.g. "features.0" or "layer1.3.conv1"; the selection module for selection groups
    cfg_index: int  # position of this group's entry in the model's cfg list
    layer_id: int  # VGG/ResNet: Li et al.'s conv numbering (stem = 1); others: 1-based order in the network
    stage: int  # 0-based stage (feature-map size) the layer belongs to
    width: int  # channels the group's BatchNorm has (the indices keep sets refer to)
    bn: str  # the BatchNorm module whose gamma scores these channels
    producers: tuple[tuple[str, int], ...] = field(default=())  # (state key, dim)
    consumers: tuple[tuple[str, int], ...] = field(default=())
    selection: bool = False  # pruning edits a channel selection instead of slicing producers

    @property
    def weight_key(self) -> str:
        """The producing conv's weight (what filter criteria such as L1 score)."""
        return f"{self.name}.weight"

    @property
    def silencing_keys(self) -> tuple[str, ...]:
        """Tensors whose zeroed slice makes the channel exactly zero after its BatchNorm and ReLU."""
        if self.selection:
            return (f"{self.bn}.weight", f"{self.bn}.bias")
        return tuple(k for k, _ in self.producers if not k.endswith(("running_mean", "running_var")))


def bn_keys(bn: str) -> tuple[tuple[str, int], ...]:
    return tuple((f"{bn}.{p}", 0) for p in ("weight", "bias", "running_mean", "running_var"))


def cuttable_groups(model) -> list[ChannelGroup]:
    """What the surgery may cut: the model's channel groups, plus the residual streams of a model
    that declares ``stream_groups()`` (ImageNet ResNet-34). Streams are kept apart because only a
    variant that names them prunes them (Li's ResNet-34-C); methods that size every channel group
    (uniform ratios, slimming, sensitivity curves) never see them."""
    streams = model.stream_groups() if hasattr(model, "stream_groups") else []
    return model.channel_groups() + streams
