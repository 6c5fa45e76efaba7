"""Self-checks of masked runs, written into their metrics.json and prune.json.

A masked network (unstructured pruning, SFP) must keep its pruned weights at zero through
training, leave no conv empty, and count its MACs the same way from its weights and from its
masks; SFP's physically pruned form must compute what the masked one does. These functions
measure all of that so every run records it; a failed check is logged and written down.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import torch
from torch import nn

from prunebench import methods
from prunebench.core.errors import UserError
from prunebench.core.forms import PrunedFrom, read_form
from prunebench.models import masks
from prunebench.models.counting import conv_positions, count_macs, count_macs_by_mask, count_params

log = logging.getLogger("prunebench")


def mask_checks(model: nn.Module, before: dict | None) -> dict:
    """A masked run's self-checks: sparsity before and after training, no regrowth (every pruned
    weight still exactly 0), no conv left empty, and MACs counted from the non-zero weights and
    from the masks, which must agree. A soft-pruned run has no mask: no regrowth check."""
    after = masks.sparsity(model)
    checks = {
        "sparsity_before": before["sparsity"] if before else None,
        "sparsity_after": after["sparsity"],
        "nonzero_before": before["nonzero"] if before else None,
        "nonzero_after": after["nonzero"],
        "conv_weights": after["conv_weights"],
        "pruned_nonzero": after["pruned_nonzero"] if masks.is_masked(model) else None,
        "no_regrowth": after["pruned_nonzero"] == 0 if masks.is_masked(model) else None,
        "empty_layers": after["empty_layers"],
        "macs_nonzero": count_macs(model, sparse=True),
    }
    if masks.is_masked(model):
        checks["macs_mask"] = count_macs_by_mask(model)
        checks["macs_agree"] = checks["macs_nonzero"] == checks["macs_mask"]
    for name, ok in (("no regrowth", checks["no_regrowth"] is not False), ("no empty layer", not checks["empty_layers"]), ("MACs agree", checks.get("macs_agree", True))):
        if not ok:
            log.warning("mask check failed: %s (%s)", name, {k: v for k, v in checks.items() if k != "layers"})
    return checks


@torch.no_grad()
def physical_checks(masked: nn.Module, make_physical, arch: str, num_classes: int, options: dict) -> tuple[dict, nn.Module]:
    """The physically pruned form of ``masked`` (built by ``make_physical``) and its checks:
    eval-mode outputs equal to the masked network's on a random batch, and MACs by two counts
    that agree. It is built and compared in float64, so a real difference cannot hide in float32
    rounding; the network returned is its float32 copy."""
    from prunebench.pruning.folding import macs_without_dead_inputs

    masked64 = masks.clone(masked).double().eval()
    small64 = make_physical(masked64, arch, num_classes, options)
    x = torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    reference, out = masked64(x), small64(x)
    diff = (reference - out).abs().max().item()
    small = small64.float()
    macs, independent = count_macs(small, sparse=True), macs_without_dead_inputs(masked)
    checks = {
        "cfg": list(small.cfg),
        "macs": macs,
        "params": count_params(small),
        "macs_masked_without_dead_inputs": independent,
        "macs_agree": macs == independent,
        "max_abs_logit_diff": diff,
        "equal": diff <= 1e-9 * max(1.0, reference.abs().max().item()),
    }
    if not (checks["equal"] and checks["macs_agree"]):
        raise RuntimeError(f"physical pruning disagrees with the masked network: {checks}")
    return checks, small


def _stage(positions: dict[str, int], key: str) -> int:
    """A conv's stage from its output size: 32x32 -> 0, 16x16 -> 1, ..."""
    return max(0, round(math.log2(32 / math.sqrt(positions[key]))))


def mask_layers(model: nn.Module, pruned: methods.Pruned) -> list[dict]:
    """prune.json's per-layer rows for a masked method: conv weights before and after, the stage
    from the layer's output size (32x32 -> 0, 16x16 -> 1, ...)."""
    positions = conv_positions(model)
    rows = []
    for i, (key, mask) in enumerate(pruned.masks.items()):
        stage = _stage(positions, key)
        rows.append({"layer": key[: -len(".weight")], "layer_id": i + 1, "stage": stage, "selection": False, "ratio": round(pruned.ratios[key], 6), "before": mask.numel(), "after": int(mask.sum())})
    return rows


def width_layers(full: nn.Module, model: nn.Module) -> list[dict]:
    """prune.json's per-layer rows for a network whose widths were cut: channels before and after."""
    widths = {g.name: g.width for g in full.channel_groups()}
    return [
        {"layer": g.name, "layer_id": g.layer_id, "stage": g.stage, "selection": g.selection, "ratio": round(1 - g.width / widths[g.name], 6), "before": widths[g.name], "after": g.width}
        for g in model.channel_groups()
    ]


def kernel_patterns(model: nn.Module, found: dict) -> dict[str, dict]:
    """Per stage, the kept fraction at each of the 3x3 kernel positions over every 3x3 conv's
    kernels (out x in): where unstructured pruning keeps weights (Rethinking §7's patterns)."""
    positions = conv_positions(model)
    kept, count = {}, {}
    for key, mask in found.items():
        if mask.dim() != 4 or tuple(mask.shape[2:]) != (3, 3):
            continue
        stage = str(_stage(positions, key))
        kept[stage] = kept.get(stage, 0) + mask.float().sum(dim=(0, 1))
        count[stage] = count.get(stage, 0) + mask.shape[0] * mask.shape[1]
    return {s: {"kept": [[round(v, 6) for v in row] for row in (kept[s] / count[s]).tolist()], "kernels": count[s]} for s in sorted(kept, key=int)}


# --------------------------------------------------------------------------- per-run sanity
CHECKS = {
    "no_regrowth": "every pruned weight of a masked network is still exactly 0",
    "no_empty_layer": "no conv layer lost all its weights",
    "macs_agree": "MACs counted from the trained weights equal the run's recorded count (and, masked, the count from its masks)",
    "pruned_equals_masked": "the physically pruned network computes what the masked one does (where both exist)",
    "loss_decreased": "the training loss of the last epoch is below the first epoch's (runs of 2+ epochs)",
}


def _pruned_report(metrics: dict) -> dict:
    """prune.json beside the pruned file a run started from ({} for a base or an unreadable one)."""
    for name in ("init", "architecture"):
        ref = (metrics.get("inputs") or {}).get(name)
        if isinstance(ref, dict) and ref.get("path"):
            path = Path(ref["path"]).with_name("prune.json")
            if path.is_file():
                try:
                    return read_form(path, PrunedFrom)
                except UserError:  # unreadable: the check is not applicable, the trace will say why
                    return {}
    return {}


@torch.no_grad()
def run_checks(model: nn.Module, metrics: dict) -> dict[str, bool | None]:
    """The sanity checks of one trained run (names in CHECKS): True held, False failed, None not
    applicable. Measured again on the model file as evaluated, not copied from training's log."""
    state = masks.sparsity(model)
    masked = masks.is_masked(model)
    soft = (metrics.get("run") or {}).get("arm") == "soft"
    recorded = metrics.get("mask_checks") or {}
    macs_now = count_macs(model, sparse=True if soft else None)
    macs_agree = macs_now == metrics.get("macs")
    if masked:
        macs_agree = macs_agree and count_macs_by_mask(model) == macs_now
    physical = _pruned_report(metrics).get("physical") or {}
    history = [h.get("train_loss") for h in metrics.get("history") or []]
    losses = [x for x in history if isinstance(x, (int, float))]
    return {
        "no_regrowth": state["pruned_nonzero"] == 0 and recorded.get("no_regrowth") is not False if masked else None,
        "no_empty_layer": not state["empty_layers"] and not recorded.get("empty_layers"),
        "macs_agree": bool(macs_agree),
        "pruned_equals_masked": bool(physical["equal"]) if "equal" in physical else None,
        "loss_decreased": (len(losses) == len(history) and losses[-1] < losses[0]) if len(history) >= 2 else None,
    }


def failed(checks: dict) -> list[str]:
    return [name for name, ok in checks.items() if ok is False]
