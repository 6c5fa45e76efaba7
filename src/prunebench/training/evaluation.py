"""Re-evaluate a trained run into its eval.json: one table cell, with the run's sanity checks."""

from __future__ import annotations

import logging

import torch

from prunebench.core.errors import UserError
from prunebench.core.forms import Eval, Metrics, read_form, write_form
from prunebench.core.io import sha256
from prunebench.core.provenance import provenance
from prunebench.data import open_data
from prunebench.data.cifar import Data, trained_mean_std

from .checkpoints import load_model
from .checks import failed, run_checks
from .loop import evaluate_batches

log = logging.getLogger("prunebench")



def evaluate_run(model_path: str, metrics_path: str, data_path: str, test_subset: int | None, device: torch.device, out: str, loader: dict | None = None) -> dict:
    """Re-evaluate a trained model on the test set (ImageNet: at the crop and resize it trained
    with; ``loader`` may set workers and decoder); write one table cell's worth of JSON."""
    model, meta = load_model(model_path)
    metrics = read_form(metrics_path, Metrics)
    if metrics["run"] != meta.get("run"):
        raise UserError(f"{metrics_path} describes run {metrics['run']} but {model_path} holds {meta.get('run')}; pass the pair from one run")
    trained = metrics.get("data") if isinstance(metrics.get("data"), dict) else {}
    data = open_data(data_path, None, test_subset, **({k: trained[k] for k in ("crop", "resize") if k in trained} | (loader or {})))
    hparams = metrics.get("hparams") if isinstance(metrics.get("hparams"), dict) else {}
    stats = trained_mean_std(hparams, data.dataset)
    checks = run_checks(model, metrics)
    batch = 1000 if isinstance(data, Data) else 250  # ImageNet: 224x224 images
    test = evaluate_batches(model.to(device), data.test_batches(batch, device, stats), data.test_images, device)
    result = {
        "run": meta["run"],
        "accuracy": {"best": metrics["best_accuracy"], "final": metrics["final_accuracy"], "evaluated": test["accuracy"]},
        **{k: metrics[k] for k in ("macs", "params", "macs_full", "params_full", "epochs")},
        "lr": (hparams.get("schedule") or {}).get("lr"),  # the initial LR (the lottery study compares two)
        "sparsity": hparams.get("sparsity", 0.0),  # network slimming's penalty: a sparsity-trained base
        "standin": data.standin,
        "checks": checks,
        "checks_failed": failed(checks),
        "model": model_path,
        "model_sha256": sha256(model_path),
        "metrics": metrics_path,
        **({"reference": meta["module"]["reference"]} if meta.get("module") else {}),  # another network's module
        "provenance": provenance(),
    }
    write_form(out, Eval, result)
    if failed(checks):
        log.warning("sanity check failed for %s: %s; the run is left out of its table's means", model_path, ", ".join(failed(checks)))
    return result
