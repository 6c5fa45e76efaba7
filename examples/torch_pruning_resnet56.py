"""Your own pruning method, as prunebench takes it: a function that gets the trained model and
returns the pruned one. This one is Torch-Pruning's (DepGraph) magnitude pruning of ResNet-56's
inner convolutions, step by step until the network's MACs are at most ``macs`` of the full one's.

    pip install 'prunebench[torch-pruning]'
    prunebench prune --model results/.../base/seed1/model.pt \\
        --function examples.torch_pruning_resnet56:prune --with macs=0.5 --out pruned.pt --report prune.json
"""

import torch
import torch_pruning as tp
from torch import nn


def prune(model: nn.Module, macs: float = 0.5, steps: int = 20) -> nn.Module:
    """Prune the first convolution of every residual block by its filters' L1 norms (each block's
    output width stays, as in Li et al.'s ResNet variants) until MACs <= ``macs`` x the full net's."""
    example = torch.randn(1, 3, 32, 32)
    inner = {m for name, m in model.named_modules() if name.startswith("layer") and name.endswith("conv1")}
    ignored = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)) and m not in inner]
    pruner = tp.pruner.MagnitudePruner(
        model, example, importance=tp.importance.MagnitudeImportance(p=1), pruning_ratio=0.95, iterative_steps=steps, ignored_layers=ignored
    )
    full, _ = tp.utils.count_ops_and_params(model, example)
    for _ in range(steps):
        pruner.step()
        now, _ = tp.utils.count_ops_and_params(model, example)
        if now <= macs * full:
            break
    return model
