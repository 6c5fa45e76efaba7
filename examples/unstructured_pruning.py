"""A dense masked method, as prunebench takes it (``method: externalmasked``): PyTorch's own
``torch.nn.utils.prune``, one global L1 threshold over every convolution's weights. The masks it
leaves as ``weight_mask`` buffers (or, once made permanent, the zeroed weights) are read as the
pruned model's masks; the scratch arms train the same masks from a fresh init.

    prunebench prune --model results/.../base/seed1/model.pt --method externalmasked \\
        --function examples.unstructured_pruning:prune --with amount=0.5 --out pruned.pt --report prune.json
"""

from torch import nn
from torch.nn.utils import prune as torch_prune


def prune(model: nn.Module, amount: float = 0.5) -> nn.Module:
    """Zero the ``amount`` smallest-magnitude conv weights of the whole network (masks kept)."""
    convs = [(m, "weight") for m in model.modules() if isinstance(m, nn.Conv2d)]
    torch_prune.global_unstructured(convs, pruning_method=torch_prune.L1Unstructured, amount=amount)
    return model
