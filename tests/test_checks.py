"""Per-run sanity checks (checks.run_checks): each one fails on the fault it names and is not
applicable where it cannot be measured."""

import json

import torch

from prunebench import models
from prunebench.models import masks
from prunebench.models.counting import count_macs
from prunebench.training.checks import CHECKS, failed, run_checks


def _metrics(model, **extra):
    return {"run": {"arm": "scratch-e"}, "macs": count_macs(model), "history": [{"train_loss": 2.3}, {"train_loss": 1.9}], **extra}


def _masked():
    model = models.build("resnet20", None, 10)
    convs = masks.conv_weights(model)
    found = {k: (torch.rand_like(m.weight) > 0.5) for k, m in convs.items()}
    return masks.apply(model, found)


def test_a_healthy_masked_run_passes_every_applicable_check():
    model = _masked()
    checks = run_checks(model, _metrics(model))
    assert set(checks) == set(CHECKS) and failed(checks) == []
    assert checks["no_regrowth"] is True and checks["loss_decreased"] is True and checks["pruned_equals_masked"] is None


def test_regrowth_is_caught():
    model = _masked()
    conv = next(iter(masks.conv_weights(model).values()))
    with torch.no_grad():
        conv.weight_orig[~conv.weight_mask.bool()] = 0.5  # a pruned weight trained back to life
    assert failed(run_checks(model, _metrics(model))) == ["no_regrowth"]


def test_an_empty_layer_a_wrong_mac_count_and_a_rising_loss_fail():
    model = models.build("resnet20", None, 10)
    metrics = _metrics(model, history=[{"train_loss": 1.0}, {"train_loss": float("nan")}])
    metrics["macs"] += 1
    with torch.no_grad():
        model.conv1.weight.zero_()
    assert failed(run_checks(model, metrics)) == ["no_empty_layer", "macs_agree", "loss_decreased"]
    assert run_checks(model, {**metrics, "history": [{"train_loss": 1.0}]})["loss_decreased"] is None  # one epoch


def test_pruned_equals_masked_is_read_from_the_pruned_files_report(tmp_path):
    model = models.build("resnet20", None, 10)
    (tmp_path / "prune.json").write_text(json.dumps({"physical": {"equal": False}}))
    metrics = _metrics(model, inputs={"init": {"path": str(tmp_path / "pruned.pt")}})
    assert failed(run_checks(model, metrics)) == ["pruned_equals_masked"]


def test_a_kept_weight_that_starts_at_zero_still_counts():
    """Seen in a smoke run: a masked scratch run recorded MACs from its non-zero weights at init,
    a kept weight that drew exactly 0 then trained away from it, and macs_agree failed. The run
    now records the count of its masks, the architecture (runs.train_run)."""
    from prunebench.models.counting import count_macs_by_mask

    model = _masked()
    conv = next(iter(masks.conv_weights(model).values()))
    one = tuple(conv.weight_mask.bool().nonzero()[0].tolist())  # the index of one kept weight
    with torch.no_grad():
        conv.weight_orig[one] = 0.0  # a kept weight at exactly 0 at the start
    recorded_then = count_macs(model)
    assert recorded_then < count_macs_by_mask(model)
    metrics = _metrics(model, macs=count_macs_by_mask(model))
    with torch.no_grad():
        conv.weight_orig[one] = 0.1  # trained away from 0
    assert failed(run_checks(model, metrics)) == []
    assert failed(run_checks(model, {**metrics, "macs": recorded_then})) == ["macs_agree"]
