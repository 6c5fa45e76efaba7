"""MACs and parameters, counted by PyTorch's own FLOP counter on one 32x32 image.

``macs`` are multiply-accumulates of convolutions and linear layers, what Li et al. call
FLOP (VGG-16 3.13e8, ResNet-56 1.25e8, ResNet-110 2.53e8). The Rethinking reference counter
also counts BatchNorm, ReLU and pooling; for Li's five variants both give the same Scratch-B
epochs (243, 178, 220, 190, 260), so prunebench budgets Scratch-B on MACs.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def scratch_b_epochs(epochs: int, macs_full: int, macs_pruned: int) -> int:
    """Scratch-B: the full network's training budget in MACs, spent on the pruned one."""
    return int(epochs * macs_full / macs_pruned)


@torch.no_grad()
def count_macs(model: nn.Module, image_size: int = 32) -> int:
    """Multiply-accumulates of one forward pass of one image (conv + linear)."""
    was_training = model.training
    model.eval()
    x = torch.zeros(1, 3, image_size, image_size, device=next(model.parameters()).device)
    with FlopCounterMode(display=False) as counter:
        model(x)
    model.train(was_training)
    return counter.get_total_flops() // 2

