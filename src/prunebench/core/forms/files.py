"""The JSON files a run leaves and the reports read: metrics.json, eval.json, prune.json, a
curve's curve.json and the ImageNet manifest. Writers check what they write against the same
form, so a file the project writes always reads back."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from .base import Accuracy, Count, Finite, Form, Fraction, Setting


class Run(Form):
    """Which run a file belongs to: its folder follows from these."""

    KIND = "run"
    dataset: str
    arch: str
    arm: str
    seed: Count
    method: str | None = None
    setting: Setting | None = None
    scale: str | None = None


class Epoch(Form):
    epoch: Count
    lr: Finite
    train_loss: float
    test_accuracy: Accuracy | None = None
    time: float | None = Field(default=None, ge=0)


class FileRef(Form):
    path: str
    sha256: str | None = None


class MetricsData(Form):
    train_images: Count
    test_images: Count | None = None


class Metrics(Form):
    """metrics.json: what training measured, beside the run it describes."""

    KIND = "metrics.json"
    FIX = "delete it and rerun the training that writes it"
    run: Run
    best_accuracy: Accuracy
    final_accuracy: Accuracy
    epochs: Count
    macs: Count
    params: Count
    macs_full: Count
    params_full: Count
    hparams: dict[str, Any] = {}
    data: MetricsData | None = None
    processes: int = Field(default=1, ge=1)
    train_seconds: float | None = Field(default=None, ge=0)
    inputs: dict[str, FileRef] = {}
    history: list[Epoch] = []


class RunCost(Form):
    """metrics.json as the compute ledger reads it: what one run's training cost."""

    KIND = Metrics.KIND
    FIX = Metrics.FIX
    macs: Count
    epochs: Count
    data: MetricsData
    train_seconds: float | None = Field(default=None, ge=0)
    inputs: dict[str, FileRef] = {}


class EvalAccuracy(Form):
    # Both are written; a table asks for the one its metric names.
    best: Accuracy | None = None
    final: Accuracy | None = None
    evaluated: Accuracy | None = None


class Eval(Form):
    """eval.json: one table cell's worth of a run, with its sanity checks."""

    KIND = "eval.json"
    FIX = "delete it and rerun 'prunebench evaluate' for its run"
    run: Run
    accuracy: EvalAccuracy
    macs: Count
    params: Count
    macs_full: Count
    params_full: Count
    epochs: Count | None = None
    lr: Finite | None = None
    sparsity: float = Field(default=0.0, ge=0)
    standin: bool = False
    checks: dict[str, Any] = {}
    checks_failed: list[str] = []
    model: str = ""
    metrics: str | None = None


class LayerChange(Form):
    """One prunable layer's count before and after pruning (channels, or conv weights)."""

    layer: str
    before: Count
    after: Count
    ratio: Fraction
    layer_id: int | None = None
    stage: int | None = None
    selection: bool | None = None


class KernelStage(Form):
    kept: list[list[Fraction]]
    kernels: Count


class PruneReport(Form):
    """prune.json: what pruning kept, per layer, and the counts before and after."""

    KIND = "prune.json"
    FIX = "delete it and rerun the prune step that writes it"
    run: Run
    arch: str
    method: str | None = None
    setting: Setting | None = None
    cfg_before: list[Any]
    cfg_after: list[Any]
    macs_before: Count
    macs_after: Count
    params_before: Count
    params_after: Count
    layers: list[LayerChange]
    standin: bool = False
    input: FileRef | None = None
    inputs: list[FileRef] = []
    kernel_pattern: dict[str, KernelStage] | None = None
    mask_checks: dict[str, Any] | None = None


class PhysicalCheck(Form):
    KIND = "physical pruning check"
    equal: bool


class PrunedFrom(Form):
    """prune.json as the compute ledger and a run's sanity checks read it: which model was
    pruned, and whether its physically pruned copy computed what the masked one does."""

    KIND = PruneReport.KIND
    FIX = PruneReport.FIX
    input: FileRef | None = None
    physical: PhysicalCheck | None = None


class CurvePoint(Form):
    layer: int | None = None
    ratio: Fraction
    accuracy: Accuracy
    kept: dict[str, Count] = {}  # Li's layer number (text in JSON) -> filters kept


class Curve(Form):
    """curve.json: Li's sensitivity points, pruned and not retrained."""

    KIND = "curve.json"
    FIX = "delete it and rerun 'prunebench curve' for it"
    run: dict[str, Any]
    arch: str
    mode: Literal["layer", "consecutive"]
    name: str
    points: list[CurvePoint]
    base_accuracy: Accuracy
    sensitive: list[int] = []
    norms: dict[str, list[Finite]] = {}
    standin: bool = False


class ImageNetManifest(Form):
    """The manifest 'prunebench prepare --dataset imagenet' writes: the tree and what it holds."""

    KIND = "ImageNet manifest"
    FIX = "make it again with 'prunebench prepare --dataset imagenet'"
    format: str
    tree: str
    classes: list[str] = Field(min_length=1)
    images: dict[str, Count]
    standin: bool = False


class ReportEntry(Form):
    mime_type: str = ""


class ReportResults(Form):
    """The results object embedded in Snakemake's HTML report: path -> entry."""

    KIND = "Snakemake HTML report's results"
    FIX = "build the report again with 'snakemake --report report.html'"
    results: dict[str, ReportEntry]
