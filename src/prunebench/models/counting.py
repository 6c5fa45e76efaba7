"""MACs and parameters, counted by forward hooks on one image of the model's input
size (its ``image_size`` attribute: 224 for the ImageNet models, else CIFAR's 32).

``macs`` are multiply-accumulates of convolutions and linear layers, what Li et al. call
FLOP (VGG-16 3.13e8, ResNet-56 1.25e8, ResNet-110 2.53e8). The Rethinking reference counter
also counts BatchNorm, ReLU and pooling; for Li's five variants both give the same Scratch-B
epochs (243, 178, 220, 190, 260), so prunebench budgets Scratch-B on MACs.

A masked model (unstructured pruning, SFP) counts only its non-zero conv weights, as the
reference's weight-level counter does: a conv costs nnz(weight) x H_out x W_out.
"""

from __future__ import annotations

import torch
from torch import nn

from . import masks


def count_params(model: nn.Module) -> int:
    """Parameters; a masked model's masked-out weights are not counted."""
    removed = sum(int((~m).sum()) for m in masks.masks_of(model).values())
    return sum(p.numel() for p in model.parameters()) - removed


def input_size(model: nn.Module, image_size: int | None = None) -> int:
    """The side of the image a model is counted on: ``image_size``, else the model's own."""
    return image_size or getattr(model, "image_size", 32)


def scratch_b_epochs(epochs: int, macs_full: int, macs_pruned: int) -> int:
    """Scratch-B: the full network's training budget in MACs, spent on the pruned one."""
    return int(epochs * macs_full / macs_pruned)


@torch.no_grad()
def _layers(model: nn.Module, image_size: int | None) -> list[dict]:
    """One eval-mode forward pass of a blank image, every conv and linear layer in forward order:
    its input map size, output maps (or features), output positions, MACs and parameters.

    Counted by forward hooks rather than ``torch.utils.flop_counter``: the same numbers for these
    models (a layer's MACs are its weight's size times its output positions), without the first
    use of a dispatch mode importing ``torch._dynamo`` (about 1.5 s, which a job that does not
    train no longer pays; training imports it anyway, through ``torch.optim``)."""
    rows: list[dict] = []

    def record(name: str):
        def hook(module, inputs, out):
            conv = isinstance(module, nn.Conv2d)
            positions = out.shape[-1] * out.shape[-2] if conv else out.numel() // out.shape[-1]
            rows.append(
                {
                    "module": name,
                    "kind": "conv" if conv else "fc",
                    "input": "x".join(map(str, inputs[0].shape[-2:])) if conv else "",
                    "maps": module.out_channels if conv else module.out_features,
                    "positions": positions,
                    "macs": module.weight.numel() * positions,
                    "params": sum(p.numel() for p in module.parameters(recurse=False)),
                }
            )

        return hook

    handles = [m.register_forward_hook(record(n)) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    was_training = model.training
    model.eval()
    side = input_size(model, image_size)
    try:
        model(torch.zeros(1, 3, side, side, device=next(model.parameters()).device))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return rows


def _measure(model: nn.Module, image_size: int | None) -> tuple[int, dict[str, int]]:
    """The dense MACs of one image and the output positions (H_out x W_out) of every conv, by
    the name of its weight."""
    rows = _layers(model, image_size)
    return sum(r["macs"] for r in rows), {f"{r['module']}.weight": r["positions"] for r in rows if r["kind"] == "conv"}


def conv_positions(model: nn.Module, image_size: int | None = None) -> dict[str, int]:
    """Output positions (H_out x W_out) of every conv, by the name of its weight."""
    return _measure(model, image_size)[1]


def count_macs(model: nn.Module, image_size: int | None = None, sparse: bool | None = None) -> int:
    """Multiply-accumulates of one forward pass of one image (conv + linear). ``sparse`` (default:
    whether the model is masked) leaves out the products of zero conv weights."""
    if sparse is None:
        sparse = masks.is_masked(model)
    dense, positions = _measure(model, image_size)
    if not sparse:
        return dense
    convs = masks.conv_weights(model)
    return dense - sum(int((masks.effective(convs[k]) == 0).sum()) * n for k, n in positions.items())


def count_macs_by_mask(model: nn.Module, image_size: int | None = None) -> int:
    """MACs of a masked model from its masks rather than its weights: the second count of the
    per-run checks, equal to ``count_macs`` unless a kept weight is exactly zero."""
    dense, positions = _measure(model, image_size)
    return dense - sum(int((~m).sum()) * positions[k] for k, m in masks.masks_of(model).items())


def per_layer(model: nn.Module, image_size: int | None = None) -> list[dict]:
    """Every conv and linear layer in forward order (Li et al. Table 2's rows): its input map size,
    output maps (or features), MACs and parameters (weight and bias) for one image. Dense counts:
    masks are not taken into account."""
    rows = [{k: v for k, v in r.items() if k != "positions"} for r in _layers(model, image_size)]
    counts = {"conv": 0, "fc": 0}
    for r in rows:
        counts[r["kind"]] += 1
        r["layer"] = f"{r['kind']}{counts[r['kind']]}"
    return rows
