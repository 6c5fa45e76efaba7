"""Channel selection: a BatchNorm's output channels that the next layer reads.

Network slimming prunes the input of a layer whose BatchNorm must stay full size (the
pre-activation BN of a PreResNet block or a DenseNet layer sits on a residual or concatenated
stream that other layers read too). The BN keeps every channel; a selection right after it
passes on only the kept ones, and the following conv is built for that many inputs.

The reference (network-slimming ``channel_selection``) stores the choice in a 0/1 *parameter*
``indexes`` saved in the state_dict. Here the kept indices are part of the model's ``cfg`` (a
cfg entry is either the full width or the sorted list of kept indices), held in a
non-persistent buffer: a pruned model file rebuilds from ``{arch, cfg}`` alone, its state_dict
has no selection tensors, and the selection adds no parameters to the count.
"""

from __future__ import annotations

import torch
from torch import nn


class ChannelSelection(nn.Module):
    """Keeps channels ``keep`` (sorted indices into ``width``) along dim 1; None keeps all."""

    def __init__(self, width: int, keep: list[int] | None = None):
        super().__init__()
        self.width = width
        self.keep = None if keep is None else [int(i) for i in keep]
        if self.keep is not None:
            if not self.keep or any(b <= a for a, b in zip(self.keep, self.keep[1:])):
                raise ValueError(f"a channel selection needs sorted, distinct, non-empty indices, got {keep}")
            if self.keep[0] < 0 or self.keep[-1] >= width:
                raise ValueError(f"channel selection indices {keep} fall outside a width of {width}")
            self.register_buffer("index", torch.tensor(self.keep, dtype=torch.long), persistent=False)

    @classmethod
    def from_cfg(cls, entry: int | list[int], width: int) -> ChannelSelection:
        """A cfg entry is ``width`` itself (read every channel) or the list of kept indices."""
        if isinstance(entry, int):
            if entry != width:
                raise ValueError(f"a selection cfg entry must be the stream width {width} or a list of indices, got {entry}")
            return cls(width)
        return cls(width, list(entry))

    @property
    def out_channels(self) -> int:
        return self.width if self.keep is None else len(self.keep)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.keep is None:
            return x
        if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
            # Select in NHWC so the result stays channels_last: a plain index_select returns NCHW,
            # and every following conv would convert it back (2x slower training, measured on CPU).
            return x.permute(0, 2, 3, 1).index_select(3, self.index).permute(0, 3, 1, 2)
        return x.index_select(1, self.index)

    def extra_repr(self) -> str:
        return f"{self.width}" if self.keep is None else f"{self.width} -> {len(self.keep)}"
