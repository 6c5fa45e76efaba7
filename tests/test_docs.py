"""The docs: the site builds with ``mkdocs build --strict`` (a broken link, anchor or missing page
fails it), the README is a front page whose links lead somewhere, no project file cites an
issue number, and every worked example of the development page runs as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from test_workflow import as_runs, dry_run

REPO = Path(__file__).resolve().parents[1]
DEVELOPMENT = REPO / "docs" / "development.md"


def test_site_builds_strictly(tmp_path):
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "site" / "development" / "index.html").is_file()
    # the results tree page is results/README.md itself, included
    assert "The results tree" in (tmp_path / "site" / "results" / "index.html").read_text()


def test_readme_is_a_front_page_whose_links_resolve():
    text = (REPO / "README.md").read_text()
    assert len(text.splitlines()) <= 250
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
        if "://" not in target:
            assert (REPO / target).exists(), f"README links to {target}, which does not exist"


def _tracked_text_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    files = [REPO / f for f in out.splitlines() if (REPO / f).is_file()]
    return [f for f in files if f.suffix not in {".png", ".pt", ".gz"}]


def test_no_project_file_cites_an_issue_number():
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    pattern = re.compile(r"\bissues?[ -]#?\d+|\bissue #\d+", re.IGNORECASE)
    found = [f"{f.relative_to(REPO)}: {m.group(0)}" for f in _tracked_text_files() for m in pattern.finditer(f.read_text(errors="replace"))]
    assert not found, found


def _example(name: str) -> str:
    """The fenced block after ``<!-- tested: NAME -->`` in the development page."""
    m = re.search(rf"<!-- tested: {name} -->\n```\w+\n(.*?)```", DEVELOPMENT.read_text(), re.DOTALL)
    assert m, f"no example {name!r} in {DEVELOPMENT.name}"
    return m.group(1)


def _run(code: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_criterion_example_ranks_filters_and_is_a_method():
    check = """
    import torch
    from prunebench import methods, models
    model = models.build("resnet56")
    pruned = methods.get("linf").prune(model, "resnet56", "A", 0)
    reference = methods.get("l1").prune(model, "resnet56", "A", 0)
    assert {k: len(v) for k, v in pruned.keep.items()} == {k: len(v) for k, v in reference.keep.items()}
    name = next(iter(pruned.keep))
    weight = dict(model.named_parameters())[name + ".weight"].detach()
    scores = weight.abs().flatten(1).amax(1)
    assert torch.equal(pruned.keep[name], scores.argsort(descending=True, stable=True)[: len(pruned.keep[name])].sort().values)
    print("ok")
    """
    assert _run(_example("criterion") + textwrap.dedent(check)).strip() == "ok"


def test_method_example_prunes_to_its_scratch_cfg_and_passes_the_config_check():
    check = """
    import yaml
    from prunebench import methods, models
    from prunebench.pruning import prune as cut
    from prunebench.studies.config import check
    method = methods.get("uniformrandom")
    model = models.build("resnet20")
    pruned = method.prune(model, "resnet20", "0.5", 3)
    small = cut(model, "resnet20", pruned.keep, 10)
    assert small.cfg == method.scratch_cfg("resnet20", "0.5") != models.default_cfg("resnet20")
    config = yaml.safe_load(open("config.yaml"))
    config["studies"]["uniformrandom"] = {"method": "uniformrandom", "models": {"cifar10": {"resnet56": [0.5]}}}
    check(config, "workflow/schemas/config.schema.yaml")
    print("ok")
    """
    assert _run(_example("method") + textwrap.dedent(check)).strip() == "ok"


def test_model_example_builds_with_the_counts_the_page_gives():
    check = """
    from prunebench import models
    from prunebench.models.counting import count_macs, count_params
    model = models.build("resnet44")
    print(count_macs(model), count_params(model))
    """
    macs, params = map(int, _run(_example("model") + textwrap.dedent(check)).split())
    page = DEVELOPMENT.read_text()
    assert f"MACs ({macs / 1e6:.1f}M)" in page and f"({params / 1e6:.2f}M" in page


def test_study_example_is_a_target(tmp_path):
    extra = tmp_path / "criteria.yaml"
    extra.write_text(_example("study"))
    assert set(yaml.safe_load(extra.read_text())["studies"]) == {"criteria"}
    stats = dry_run("--configfile", str(extra), "--config", "scale=paper", f"results={tmp_path / 'results'}", targets=("criteria",))
    # paper scale: 5 seeds of the two variants, on the five ResNet-56 bases the l1 study trains too
    runs = as_runs(stats)  # (each folder's 5 seeds one fused job)
    assert (runs["train_base"], runs["prune"], runs["finetune"], runs["scratch"]) == (5, 10, 10, 20), stats
