"""A generated battery of malformed files, one per declared file form.

A tiny pipeline writes one valid file of each kind the project reads. From each, variants are
derived the way files go wrong: a field removed, a field of another type, a value out of range
(each kept only if the kind's declared form refuses it, so every variant is malformed by
definition), truncated bytes, an empty file, and a folder in its place. Every command that reads
that kind is run on every variant and must keep the promise: a non-zero exit, one line
``prunebench: error: ...`` naming the file (and, for a field, the field), no traceback, and none
of its outputs written. ``test_the_battery_is_large`` counts the cases per kind.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd
import pytest
import torch
from conftest import run_failing

from prunebench.commands.cli import main
from prunebench.core import forms
from prunebench.core.forms.tensors import ModelFile
from prunebench.data.cifar import PreparedDataset
from prunebench.report.table import TABLE_COLUMNS, read_table

OUTS = ("a.csv", "b.md", "c.png", "d.png", "e.csv", "f.md", "g.png")


def _ok(argv: list[str]) -> None:
    try:
        main(argv)
    except SystemExit as e:
        assert e.code in (0, None), f"{argv[0]} failed on valid input (exit {e.code})"


@pytest.fixture(scope="module")
def valid(tmp_path_factory, tiny_prepared) -> dict[str, Path]:
    """One valid file of every kind, written by the project's own commands."""
    d = tmp_path_factory.mktemp("forms")
    data = str(tiny_prepared)
    train = ["--data", data, "--epochs", "1", "--lr", "0.05", "--batch-size", "64", "--device", "cpu", "--train-subset", "64", "--test-subset", "20"]
    base, ft, vgg = d / "base", d / "ft", d / "vgg"
    _ok(["train", "--arch", "resnet56", "--arm", "base", *train, "--model-out", f"{base}/model.pt", "--metrics-out", f"{base}/metrics.json", "--eval-out", f"{base}/eval.json"])
    _ok(["prune", "--model", f"{base}/model.pt", "--variant", "A", "--out", f"{d}/a/pruned.pt", "--report", f"{d}/a/prune.json"])
    _ok(["prune", "--model", f"{base}/model.pt", "--method", "magnitude", "--setting", "0.5", "--out", f"{d}/m/pruned.pt", "--report", f"{d}/m/prune.json"])
    _ok(["train", "--arch", "resnet56", "--arm", "finetune", "--variant", "A", "--init", f"{d}/a/pruned.pt", *train,
         "--model-out", f"{ft}/model.pt", "--metrics-out", f"{ft}/metrics.json", "--eval-out", f"{ft}/eval.json"])
    _ok(["init", "--base", f"{base}/model.pt", "--metrics", f"{base}/metrics.json", "--out", f"{d}/init.pt"])
    _ok(["curve", "--model", f"{base}/model.pt", "--data", data, "--mode", "layer", "--name", "l1", "--ratios", "0.5", "--layers", "2",
         "--test-subset", "20", "--device", "cpu", "--out", f"{d}/curve.json"])
    _ok(["train", "--arch", "vgg16", "--arm", "base", *train, "--sparsity", "0.0001", "--model-out", f"{vgg}/model.pt", "--metrics-out", f"{vgg}/metrics.json"])
    _ok(["prune", "--model", f"{vgg}/model.pt", "--method", "slimming", "--setting", "0.5", "--out", f"{d}/s/pruned.pt", "--report", f"{d}/s/prune.json"])
    _ok(["table", f"{base}/eval.json", f"{ft}/eval.json", "--study", "l1", "--csv", f"{d}/table.csv", "--md", f"{d}/table.md"])
    _ok(["standin", "--dataset", "imagenet", "--out-dir", str(d / "in"), "--train-per-class", "1", "--test-per-class", "1", "--classes", "2"])
    _ok(["prepare", "--dataset", "imagenet", "--data-root", str(d / "in"), "--out", f"{d}/manifest.json"])
    page = {"figures/a.png": {"mime_type": "image/png", "data_uri": "data:,"}, "tables/a.csv": {"mime_type": "text/csv"}}
    (d / "report.html").write_text(f"<html><body><script>var results = {json.dumps(page)};</script></body></html>")
    return {
        "data": tiny_prepared, "base": base / "model.pt", "metrics": base / "metrics.json", "eval": base / "eval.json",
        "pruned": d / "a" / "pruned.pt", "masked": d / "m" / "pruned.pt", "prune": d / "a" / "prune.json", "masked_prune": d / "m" / "prune.json",
        "slimming_prune": d / "s" / "prune.json", "init": d / "init.pt", "curve": d / "curve.json", "table": d / "table.csv",
        "manifest": d / "manifest.json", "report": d / "report.html",
    }


# --------------------------------------------------------------------------- commands per kind
# Each takes (the valid files, the file under test, a folder for outputs) and gives argv and outputs.
def _outs(out: Path, n: int) -> list[Path]:
    return [out / name for name in OUTS[:n]]


def _table(kind):
    return lambda v, f, o: (["table", str(f), "--kind", kind, "--csv", str(o / "a.csv"), "--md", str(o / "b.md"), "--tex", str(o / "t.tex")], [*_outs(o, 2), o / "t.tex"])


def _li_report(v, f, o):
    names = ["--curves-csv", "--iterative-csv", "--iterative-md", "--norms", "--sensitivity", "--criteria", "--consecutive"]
    outs = [o / n for n in ("a.csv", "e.csv", "f.md", "c.png", "d.png", "g.png", "h.png")]
    return ["li-report", str(f), *[x for pair in zip(names, map(str, outs)) for x in pair]], outs


def _eval_naming(metrics: Path, o: Path) -> Path:
    """A valid eval.json whose metrics.json is ``metrics`` (the ledger reads it through the eval)."""
    ev = json.loads(Path(VALID["eval"]).read_text()) | {"metrics": str(metrics)}
    path = o.parent / f"{o.name}-eval.json"
    path.write_text(json.dumps(ev))
    return path


def _train(v, *extra, arch="resnet56", arm="base"):
    def make(o):
        return ["train", "--arch", arch, "--arm", arm, "--epochs", "1", "--lr", "0.1", "--device", "cpu", "--train-subset", "8", "--test-subset", "8",
                "--model-out", str(o / "model.pt"), "--metrics-out", str(o / "metrics.json"), *extra], [o / "model.pt", o / "metrics.json"]
    return make


READERS: dict[str, list[tuple[str, Callable]]] = {
    "eval.json": [
        ("table", _table("table")), ("table-lottery", _table("lottery")), ("table-archsearch", _table("archsearch")),
        ("checks", lambda v, f, o: (["checks", str(f), "--csv", str(o / "a.csv"), "--md", str(o / "b.md")], _outs(o, 2))),
        ("ledger", lambda v, f, o: (["ledger", str(f), "--study", "l1", "--csv", str(o / "a.csv"), "--md", str(o / "b.md"), "--figure", str(o / "c.png")], _outs(o, 3))),
        ("li-report", _li_report),
    ],
    "metrics.json": [
        ("evaluate", lambda v, f, o: (["evaluate", "--model", str(v["base"]), "--metrics", str(f), "--data", str(v["data"]), "--device", "cpu", "--out", str(o / "eval.json")], [o / "eval.json"])),
        ("init", lambda v, f, o: (["init", "--base", str(v["base"]), "--metrics", str(f), "--out", str(o / "init.pt")], [o / "init.pt"])),
    ],
    "metrics.json (ledger)": [
        ("ledger", lambda v, f, o: (["ledger", str(_eval_naming(f, o)), "--study", "l1", "--csv", str(o / "a.csv"), "--md", str(o / "b.md"), "--figure", str(o / "c.png")], _outs(o, 3))),
    ],
    "prune.json": [
        ("channels", lambda v, f, o: (["channels", str(f), "--csv", str(o / "a.csv"), "--out", str(o / "c.png")], [o / "a.csv", o / "c.png"])),
    ],
    "prune.json (masked)": [
        ("channels", lambda v, f, o: (["channels", str(f), "--csv", str(o / "a.csv"), "--out", str(o / "c.png")], [o / "a.csv", o / "c.png"])),
        ("kernels", lambda v, f, o: (["kernels", str(f), "--csv", str(o / "a.csv"), "--out", str(o / "c.png")], [o / "a.csv", o / "c.png"])),
    ],
    "prune.json (slimming)": [
        ("derive", lambda v, f, o: (["derive", str(f), "--method", "matched", "--setting", "slimming_0.5", "--dataset", "cifar10", "--arch", "vgg16",
                                     "--out", str(o / "pruned.pt"), "--report", str(o / "prune.json")], [o / "pruned.pt", o / "prune.json"])),
    ],
    "curve.json": [("li-report", _li_report)],
    "model.pt": [
        ("evaluate", lambda v, f, o: (["evaluate", "--model", str(f), "--metrics", str(v["metrics"]), "--data", str(v["data"]), "--device", "cpu", "--out", str(o / "eval.json")], [o / "eval.json"])),
        ("prune", lambda v, f, o: (["prune", "--model", str(f), "--variant", "A", "--out", str(o / "pruned.pt"), "--report", str(o / "prune.json")], [o / "pruned.pt", o / "prune.json"])),
        ("curve", lambda v, f, o: (["curve", "--model", str(f), "--data", str(v["data"]), "--mode", "layer", "--name", "l1", "--ratios", "0.5", "--layers", "2", "--device", "cpu", "--out", str(o / "curve.json")], [o / "curve.json"])),
        ("latency", lambda v, f, o: (["latency", str(f), "--batch", "1", "--repeats", "1", "--warmup", "0", "--csv", str(o / "a.csv"), "--md", str(o / "b.md"), "--figure", str(o / "c.png")], _outs(o, 3))),
        ("init", lambda v, f, o: (["init", "--base", str(f), "--metrics", str(v["metrics"]), "--out", str(o / "init.pt")], [o / "init.pt"])),
    ],
    "pruned.pt (masked)": [
        ("finetune", lambda v, f, o: _train(v, "--data", str(v["data"]), "--method", "magnitude", "--setting", "0.5", "--init", str(f), arm="finetune")(o)),
        ("evaluate", lambda v, f, o: (["evaluate", "--model", str(f), "--metrics", str(v["metrics"]), "--data", str(v["data"]), "--device", "cpu", "--out", str(o / "eval.json")], [o / "eval.json"])),
    ],
    "init.pt": [
        ("winning", lambda v, f, o: _train(v, "--data", str(v["data"]), "--method", "magnitude", "--setting", "0.5", "--init", str(v["masked"]), "--theta0", str(f), arm="winning")(o)),
    ],
    "prepared dataset": [
        ("train", lambda v, f, o: _train(v, "--data", str(f))(o)),
        ("evaluate", lambda v, f, o: (["evaluate", "--model", str(v["base"]), "--metrics", str(v["metrics"]), "--data", str(f), "--device", "cpu", "--out", str(o / "eval.json")], [o / "eval.json"])),
        ("curve", lambda v, f, o: (["curve", "--model", str(v["base"]), "--data", str(f), "--mode", "layer", "--name", "l1", "--ratios", "0.5", "--layers", "2", "--device", "cpu", "--out", str(o / "curve.json")], [o / "curve.json"])),
    ],
    "ImageNet manifest": [
        ("train", lambda v, f, o: _train(v, "--data", str(f), "--crop", "8", "--resize", "8", arch="resnet34")(o)),
    ],
    "table CSV": [
        ("figure", lambda v, f, o: (["figure", "--table", str(f), "--out", str(o / "c.png")], [o / "c.png"])),
        ("stats-figure", lambda v, f, o: (["stats-figure", "--table", str(f), "--ci", str(o / "c.png"), "--diff", str(o / "d.png")], [o / "c.png", o / "d.png"])),
        ("trace", lambda v, f, o: (["trace", str(f), "--row", "1", "--column", "finetune_mean"], [])),
    ],
    "report page": [
        ("check-report", lambda v, f, o: (["check-report", str(f), "--shots", str(o / "shots")], [o / "shots"])),
    ],
}
# kind -> (the valid file it starts from, its declared form, how it is stored)
KINDS = {
    "eval.json": ("eval", forms.Eval, "json"), "metrics.json": ("metrics", forms.Metrics, "json"), "metrics.json (ledger)": ("metrics", forms.RunCost, "json"),
    "prune.json": ("prune", forms.PruneReport, "json"), "prune.json (masked)": ("masked_prune", forms.PruneReport, "json"),
    "prune.json (slimming)": ("slimming_prune", forms.PruneReport, "json"), "curve.json": ("curve", forms.Curve, "json"),
    "model.pt": ("base", ModelFile, "torch"), "pruned.pt (masked)": ("masked", ModelFile, "torch"), "init.pt": ("init", ModelFile, "torch"),
    "prepared dataset": ("data", PreparedDataset, "torch"), "ImageNet manifest": ("manifest", forms.ImageNetManifest, "json"),
    "table CSV": ("table", None, "csv"), "report page": ("report", None, "html"),
}
VALID: dict[str, Path] = {}


# --------------------------------------------------------------------------- variants
@dataclass(frozen=True)
class Variant:
    name: str
    field: str | None  # the field the line must name
    write: Callable[[Path, Path], None]  # (valid file, where to write the variant)


def _paths(value, prefix=()):
    """Every field path of a JSON-like value (a list's first item, a big mapping's first key)."""
    if isinstance(value, dict):
        keys = list(value)[:1] if len(value) > 24 else list(value)
        for k in keys:
            yield (*prefix, k)
            yield from _paths(value[k], (*prefix, k))
    elif isinstance(value, list) and value:
        yield (*prefix, 0)
        yield from _paths(value[0], (*prefix, 0))


def _other_type(v):
    if isinstance(v, bool):
        return "yes"
    if isinstance(v, (int, float)):
        return "words"
    if isinstance(v, str):
        return 7
    if isinstance(v, list):
        return {"x": 1}
    if isinstance(v, dict):
        return [1, 2]
    if isinstance(v, torch.Tensor):
        return "words"
    return None


def _out_of_range(v):
    if isinstance(v, bool):
        return []
    if isinstance(v, int):
        return [-1]
    if isinstance(v, float):
        return [-1.0, 101.0, 1.5]
    if isinstance(v, torch.Tensor):
        return [v.float() if v.dtype != torch.float32 else v.long(), v.reshape(-1)[:1].clone()]
    return []


def _set(blob, path, value):
    blob = copy.copy(blob) if not isinstance(blob, dict) else dict(blob)
    out = blob
    for k in path[:-1]:
        out[k] = copy.copy(out[k])
        out = out[k]
    if value is _DROP:
        del out[path[-1]]
    else:
        out[path[-1]] = value
    return blob


_DROP = object()


def _field_variants(blob, form, store) -> list[tuple[str, str, object]]:
    """(name, field, mutated value) for every change to ``blob`` that ``form`` refuses."""
    out = []
    for path in _paths(blob):
        here = blob
        for k in path:
            here = here[k]
        field = ".".join(map(str, path))
        tries = [("removed", _DROP), ("retyped", _other_type(here))] + [(f"out-of-range{i}", v) for i, v in enumerate(_out_of_range(here))]
        for name, value in tries:
            if value is None:
                continue
            mutated = _set(blob, path, value)
            if store == "json":
                mutated = json.loads(json.dumps(mutated))
            try:
                form.model_validate(mutated)
            except Exception:
                out.append((f"{field}-{name}", field, mutated))
    return out


def _whole_file_variants() -> list[Variant]:
    def truncated(src, dst):
        dst.write_bytes(src.read_bytes()[: max(1, src.stat().st_size // 2)])

    return [
        Variant("truncated", None, truncated),
        Variant("empty", None, lambda src, dst: dst.write_bytes(b"")),
        Variant("a-folder", None, lambda src, dst: (dst.mkdir(), (dst / "x").write_text("x"))),
    ]


def _csv_variants(path: Path) -> list[Variant]:
    df = pd.read_csv(path, dtype=str)
    out = []
    for col in ("study", "finetune_mean", "scratch-b_vs_ft_diff", "macs", "standin", "runs"):
        out.append(Variant(f"{col}-removed", col, lambda s, d, c=col: df.drop(columns=[c]).to_csv(d, index=False)))
    for col in ("finetune_mean", "unpruned_std", "scratch-b_vs_ft_diff", "macs_reduction_pct", "standin"):
        out.append(Variant(f"{col}-words", col, lambda s, d, c=col: df.assign(**{c: "many"}).to_csv(d, index=False)))
    return out


def _html_variants(path: Path) -> list[Variant]:
    text = path.read_text()
    return [
        Variant("results-not-json", None, lambda s, d: d.write_text(text.replace('{"figures', '{figures', 1))),
        Variant("results-entry-a-list", "figures/a.png", lambda s, d: d.write_text(text.replace('{"mime_type": "image/png", "data_uri": "data:,"}', "[1, 2]"))),
        Variant("no-results", None, lambda s, d: d.write_text("<html><body>a page</body></html>")),
        Variant("not-text", None, lambda s, d: d.write_bytes(bytes(range(256)) * 4)),
    ]


def _variants(kind: str) -> list[Variant]:
    key, form, store = KINDS[kind]
    src = Path(VALID[key])
    if store == "csv":
        return _csv_variants(src) + _whole_file_variants()
    if store == "html":
        return _html_variants(src) + _whole_file_variants()
    blob = json.loads(src.read_text()) if store == "json" else torch.load(src, map_location="cpu", weights_only=True)
    out = []
    for name, field, mutated in _field_variants(blob, form, store):
        if store == "json":
            write = lambda s, d, m=mutated: d.write_text(json.dumps(m))  # noqa: E731
        else:
            write = lambda s, d, m=mutated: torch.save(m, d)  # noqa: E731
        out.append(Variant(name, field, write))
    return out + _whole_file_variants()


def _cases() -> list[tuple[str, str]]:
    """(kind, command) pairs; the variants are made once the valid files exist."""
    return [(kind, cmd) for kind, readers in READERS.items() for cmd, _ in readers]


@pytest.fixture(scope="module")
def variants(valid) -> dict[str, list[Variant]]:
    VALID.update(valid)
    return {kind: _variants(kind) for kind in KINDS}


def _suffix(kind: str) -> str:
    if kind == "curve.json":
        return "-curve.json"  # li-report tells curves from evals by this name
    return {"json": ".json", "torch": ".pt", "csv": ".csv", "html": ".html"}[KINDS[kind][2]]


@pytest.mark.parametrize("kind,command", _cases(), ids=[f"{k}:{c}" for k, c in _cases()])
def test_every_reader_refuses_every_variant_in_one_line(kind, command, valid, variants, tmp_path, capfd, caplog):
    make = dict(READERS[kind])[command]
    src = Path(valid[KINDS[kind][0]])
    for i, v in enumerate(variants[kind]):
        case = tmp_path / f"case{i}"
        case.mkdir()
        bad = case / f"bad-{i}{_suffix(kind)}"
        v.write(src, bad)
        out = case / "out"
        argv, outputs = make(valid, bad, out)
        rc, err, logged = run_failing(main, argv, f"{kind}/{v.name}/{command}", capfd, caplog)
        detail = f"{kind} variant {v.name}, {command}: rc={rc}\n{err}"
        lines = err.splitlines()
        assert rc not in (0, None) and "Traceback" not in err and len(lines) == 1 and lines[0].startswith("prunebench: error: "), detail
        assert bad.name in lines[0], f"the line does not name the file\n{detail}"
        if v.field is not None:  # a list's item removed: the list is what is wrong
            field = re.sub(r"(\.\d+)+$", "", v.field) if v.name.endswith("-removed") else v.field
            assert field in lines[0], f"the line does not name the field {field}\n{detail}"
        assert not [p for p in outputs if p.exists()], f"outputs left behind\n{detail}"
        assert not list(case.rglob("*.tmp")), detail


def test_the_valid_files_read_back_through_their_forms(valid):
    """What the project writes fits the forms its readers hold it to."""
    for kind, (key, form, store) in KINDS.items():
        path = Path(valid[key])
        if store == "json":
            forms.read_form(path, form)
        elif store == "torch":
            forms.validate(form, torch.load(path, map_location="cpu", weights_only=True), str(path))
    read_table(valid["table"])
    assert list(pd.read_csv(valid["table"]).columns)[: len(TABLE_COLUMNS)] == TABLE_COLUMNS


def test_the_battery_is_large(variants, capsys):
    """The count per file kind, as the note reports it: variants x the commands that read the kind."""
    counts = {kind: len(variants[kind]) * len(READERS[kind]) for kind in READERS}
    with capsys.disabled():
        print("\ngenerated malformed-file cases: " + ", ".join(f"{k} {n}" for k, n in counts.items()) + f"; {sum(counts.values())} in all")
    assert all(len(variants[k]) >= 4 for k in KINDS)
    assert sum(counts.values()) >= 300


def test_curve_refuses_a_masked_model_in_one_line(valid, tmp_path, capfd, caplog):
    """A masked pruned.pt has the full network's layer sizes, so only its masks say it is pruned."""
    out = tmp_path / "curve.json"
    argv = ["curve", "--model", str(valid["masked"]), "--data", str(valid["data"]), "--mode", "layer", "--name", "l1", "--ratios", "0.5", "--device", "cpu", "--out", str(out)]
    rc, err, logged = run_failing(main, argv, "curve-masked", capfd, caplog)
    assert rc == 2 and err.startswith("prunebench: error: ") and len(err.splitlines()) == 1 and "is masked" in err and "base run's model.pt" in err, err
    assert not out.exists() and not logged
