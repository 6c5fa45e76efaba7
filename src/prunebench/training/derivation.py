"""Deriving an architecture from other runs' prune reports (``prunebench derive``): the prune
step of an architecture source (:mod:`prunebench.methods.derived`). It writes what the prune
step writes, a pruned file with fresh weights and a prune.json, so the scratch arms, the
evaluation and the reports treat a derived architecture like any pruned one."""

from __future__ import annotations

import logging

from prunebench import methods, models
from prunebench.core.errors import UserError
from prunebench.core.forms import PruneReport, read_form, write_form
from prunebench.core.io import sha256, write_together
from prunebench.core.provenance import provenance
from prunebench.core.utils import seed_everything
from prunebench.data.datasets import DATASETS
from prunebench.models import masks
from prunebench.models.counting import count_macs, count_params

from .checkpoints import save_model
from .checks import kernel_patterns, mask_checks, mask_layers, width_layers

log = logging.getLogger("prunebench")


def _read_report(path: str) -> dict:
    return read_form(path, PruneReport)


def derive_run(method_name: str, setting: str, dataset: str, arch: str, seed: int, options: dict, sources: list[str], out: str, report_path: str) -> dict:
    """Derive ``method``'s architecture at ``setting`` from the source prune reports; write the
    pruned file (fresh weights, drawn from ``seed``) and its prune.json."""
    method = methods.get(method_name)
    if not method.derived:
        raise UserError(f"{method_name} is not an architecture source; prune a trained model with 'prunebench prune'")
    if dataset not in DATASETS:
        raise UserError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    method.check_arch(arch)
    method.check_setting(arch, setting)
    if not sources:
        raise UserError(f"{method_name} {setting} needs its source prune.json reports")
    reports = [_read_report(p) for p in sources]
    want = method.derived_from(dataset, arch, setting)
    for path, rep in zip(sources, reports):
        run = rep["run"]
        got = (run.get("dataset"), run.get("arch"), run.get("method"), str(run.get("setting")))
        if got != (want.dataset, want.arch, want.method, want.setting):
            raise UserError(f"{path} reports {'/'.join(map(str, got))}, not the source {want.dataset}/{want.arch}/{want.method}/{want.setting}; pass that row's prune.json")
    num_classes = DATASETS[dataset]
    options = models.check_options(arch, options)
    derived = method.derive(reports, arch, num_classes, setting, seed, options)
    seed_everything(seed)
    model = models.build(arch, derived.cfg, num_classes, **options)
    full = models.build(arch, None, num_classes, **options)
    if derived.masks is not None:
        masks.apply(model, derived.masks)
        layers = mask_layers(model, methods.Pruned({}, masks.pruned_ratios(derived.masks), masks=derived.masks))
    else:
        layers = width_layers(full, model)
    first = reports[0]["run"]
    run = {"dataset": dataset, "arch": arch, "method": method_name, "setting": setting, "arm": "pruned", "seed": seed, "scale": first.get("scale")}
    standin = any(bool(r.get("standin", False)) for r in reports)
    report = {
        "run": run, "arch": arch, "method": method_name, "setting": setting, "options": options, "standin": standin,
        "source": {"dataset": want.dataset, "arch": want.arch, "method": want.method, "setting": want.setting, "seeds": len(reports)},
        "cfg_before": models.default_cfg(arch), "cfg_after": list(model.cfg),
        "macs_before": count_macs(full), "macs_after": count_macs(model), "params_before": count_params(full), "params_after": count_params(model),
        **derived.notes, "layers": layers,
        "inputs": [{"path": p, "sha256": sha256(p)} for p in sources],
        "provenance": provenance(),
    }
    if derived.masks is not None:
        report["unit"] = "conv weights"
        report["mask_checks"] = mask_checks(model, None)
        report["kernel_pattern"] = kernel_patterns(model, derived.masks)
    report["macs_reduction_pct"] = round(100 * (1 - report["macs_after"] / report["macs_before"]), 2)
    report["params_reduction_pct"] = round(100 * (1 - report["params_after"] / report["params_before"]), 2)
    write_together(
        (out, lambda: save_model(out, model, arch, num_classes, options=options, run=run, sources=list(sources), standin=standin)),
        (report_path, lambda: write_form(report_path, PruneReport, report)),
    )
    log.info("derived %s %s for %s on %s: params %d (-%.1f%%) -> %s", method_name, setting, arch, dataset, report["params_after"], report["params_reduction_pct"], out)
    return report
