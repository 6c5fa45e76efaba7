"""An arm's schedule as a run trains it, and Scratch-B's budget rules (PROTOCOLS section 1,
PROTOCOLS-IMAGENET 1.2): the full network's epochs scaled by the MACs ratio, with the LR steps
placed as the reference folder of the study places them."""

from __future__ import annotations

from dataclasses import dataclass

from prunebench.models.counting import scratch_b_epochs


@dataclass(frozen=True)
class ArmProtocol:
    """An arm's schedule; Scratch-B's epochs are the full network's, scaled by the MACs ratio."""

    epochs: int
    lr: float
    milestones: tuple[float, ...] = ()  # fractions of the epochs
    gamma: float = 0.1
    warmup_epochs: int = 0  # epochs at warmup_lr before lr (SFP: 1 epoch at 0.01)
    warmup_lr: float = 0.0
    # Scratch-B of a masked model: budget on the MACs measured after the mask is loaded (True),
    # or before, as the reference's cifar_B.py does (False: the ratio is 1).
    budget_after_mask: bool = True
    max_epochs: int | None = None  # a scale's cap on Scratch-B's budget (smoke runs), None: none
    # Scratch-B's rule (PROTOCOLS-IMAGENET 1.2): "fractions" puts the milestones at the same
    # fractions of its epochs (CIFAR); "repeat" decays every int(E x first milestone) epochs, so a
    # fourth LR stage appears when E is not a multiple of 3 (the ImageNet main_B.py scripts).
    # cap (ratio, epochs): a MACs ratio of at least ratio trains epochs instead (the L1, ThiNet and
    # regression folders: r >= 2 -> 180 epochs). epochs: a fixed count (a released run's).
    scratch_b_steps: str = "fractions"
    scratch_b_cap: tuple[float, int] | None = None
    scratch_b_epochs: int | None = None

    def scratch_b(self, macs_full: int, macs: int) -> tuple[int, tuple[int, ...], str]:
        """(epochs, milestone epochs, how) of Scratch-B for a network of ``macs`` against ``macs_full``."""
        ratio = macs_full / macs
        if self.scratch_b_epochs is not None:
            epochs, how = self.scratch_b_epochs, f"{self.scratch_b_epochs} set by the study (the rule gives {scratch_b_epochs(self.epochs, macs_full, macs)})"
        elif self.scratch_b_cap is not None and ratio >= self.scratch_b_cap[0]:
            epochs, how = self.scratch_b_cap[1], f"{self.scratch_b_cap[1]}: MACs ratio {ratio:.4f} >= {self.scratch_b_cap[0]:g}"
        else:
            epochs = scratch_b_epochs(self.epochs, macs_full, macs)
            how = f"int({self.epochs} x {macs_full} / {macs} MACs)"
        return epochs, self.milestone_epochs(epochs), how

    def milestone_epochs(self, epochs: int, scratch_b: bool = True) -> tuple[int, ...]:
        if scratch_b and self.scratch_b_steps == "repeat" and self.milestones:
            step = max(1, int(epochs * self.milestones[0]))
            return tuple(range(step, epochs, step))
        return tuple(int(f * epochs) for f in self.milestones)
