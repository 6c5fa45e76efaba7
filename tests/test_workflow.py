"""The Snakemake DAG, checked with the real ``snakemake`` CLI in dry-run mode.

Dry runs write only ``.snakemake`` metadata; every run points ``results`` at a temporary folder
(or runs in a temporary copy of the workflow) so existing results cannot change the job list.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# Every study: its runs' sanity checks, its compute ledger, 4 Markdown tables as HTML report pages;
# every study with a table also times its models (latency).
REPORT_RULES = {"sanity": 1, "ledger": 1, "html_page": 4}
TABLE_RULES = {"make_table": 1, "plot_table": 1, "plot_channels": 1, "latency": 1, **REPORT_RULES}
PER_SEED_RULES = {"train_base", "train_soft", "save_init", "prune", "derive", "finetune", "scratch"}
# Smoke-scale jobs per rule of each study's own target (one seed).
SMOKE_STUDY = {
    # each model's first setting (max_settings: 1)
    "l1": {"prepare_data": 1, "train_base": 3, "prune": 3, "finetune": 3, "scratch": 6, **TABLE_RULES, "plot_statistics": 1, "l1": 1},
    "slimming": {"prepare_data": 2, "train_base": 6, "prune": 6, "finetune": 6, "scratch": 12, **TABLE_RULES, "plot_statistics": 1, "slimming": 1},
    # 8 (dataset, model) pairs, each at its sweep's first ratio
    "unstructured": {"prepare_data": 2, "train_base": 8, "prune": 8, "finetune": 8, "scratch": 16, **TABLE_RULES, "plot_statistics": 1, "unstructured": 1},
    "sfp": {"prepare_data": 1, "train_base": 4, "train_soft": 4, "prune": 4, "scratch": 8, **TABLE_RULES, "plot_statistics": 1, "sfp": 1},
    # 6 masks (magnitude 0.2, the first 2 rounds of the iterative chain, L1 VGG-16-A, ResNet-56-A,
    # ResNet-110-A), each a winning and a random ticket, at the first LR only (max_protocols: 1)
    "lottery": {"prepare_data": 1, "train_base": 3, "save_init": 3, "prune": 6, "scratch": 12, **TABLE_RULES, "lottery": 1},
    # 8 architectures trained from scratch: 2 pruned (slimming 0.2, magnitude 0.5; the guided
    # source slimming 0.6 is pruned too), 6 derived from them; bases: VGG-16 plain and
    # sparsity-trained, VGG-19 (CIFAR-100)
    "archsearch": {"prepare_data": 2, "train_base": 3, "prune": 3, "derive": 6, "scratch": 8, **TABLE_RULES, "plot_kernels": 1, "archsearch": 1},
    # Li's analyses (max_points: 2): 13 curve jobs (9 criteria on VGG-16, L1 on ResNet-56/110, 2
    # consecutive strategies); 11 retrained points (VGG-16's first and last layer at 10 and 90 %, 4
    # consecutive, VGG-16-A one-shot and its first 2 layer-by-layer steps); bases of all 3 models
    "li": {"prepare_data": 1, "train_base": 3, "curve": 13, "prune": 11, "finetune": 11, "li_table2": 1, "li_report": 1, **REPORT_RULES, "li": 1},
    # ImageNet, one run per result at every scale (max_seeds: 1); the smoke scale runs each
    # model's first setting (imagenet.max_settings: 1). L1: ResNet-34-A; the published
    # architectures (ThiNet VGG-GAP, ResNet-50-2x, SSS ResNet-26): scratch arms only, no base, no
    # pruning (so no channels figure); slimming VGG-11 at 50 %; magnitude VGG-16-BN and ResNet-50 at 30 %
    "imagenet_l1": {"prepare_imagenet": 1, "train_base": 1, "prune": 1, "finetune": 1, "scratch": 2, **TABLE_RULES, "plot_statistics": 1, "imagenet_l1": 1},
    "imagenet_scratch": {"prepare_imagenet": 1, "scratch": 6, **TABLE_RULES, "html_page": 3, "plot_statistics": 1, "imagenet_scratch": 1},
    "imagenet_slimming": {"prepare_imagenet": 1, "train_base": 1, "prune": 1, "finetune": 1, "scratch": 2, **TABLE_RULES, "plot_statistics": 1, "imagenet_slimming": 1},
    "imagenet_unstructured": {"prepare_imagenet": 1, "train_base": 2, "prune": 2, "finetune": 2, "scratch": 4, **TABLE_RULES, "plot_statistics": 1, "imagenet_unstructured": 1},
}
SMOKE_STUDY["imagenet_scratch"].pop("plot_channels")  # and no latency: nothing full to time beside
SMOKE_STUDY["imagenet_scratch"].pop("latency")
IMAGENET = [s for s in SMOKE_STUDY if s.startswith("imagenet")]
# The paper scale runs 5 seeds and every setting; li and the ImageNet studies one run each
# (max_seeds: 1). The lottery study: both LRs, 18 masks each (5 one-shot ratios, 8 iterative
# rounds, 5 L1 variants); archsearch: all 21 rows, 7 pruned (slimming 0.2-0.8, magnitude x3), 14
# derived; li: 117 one-layer points (13 layers x 9 ratios), 18 consecutive, the one-shot variant
# and its 7 layer-by-layer steps; ImageNet: every row (ResNet-34-A/B/C; 11 published architectures).
PAPER_RUNS = {
    "l1": {"train_base": 15, "prune": 25, "finetune": 25, "scratch": 50},
    "slimming": {"train_base": 30, "prune": 50, "finetune": 50, "scratch": 100},
    "unstructured": {"train_base": 40, "prune": 240, "finetune": 240, "scratch": 480},
    "sfp": {"train_base": 20, "train_soft": 20, "prune": 20, "scratch": 40},
    "lottery": {"train_base": 30, "save_init": 30, "prune": 180, "scratch": 360},
    "archsearch": {"train_base": 15, "prune": 35, "derive": 70, "scratch": 105},
    "li": {"train_base": 3, "prune": 143, "finetune": 143},
    "imagenet_l1": {"train_base": 1, "prune": 3, "finetune": 3, "scratch": 6},
    "imagenet_scratch": {"scratch": 22},
    "imagenet_slimming": {"train_base": 1, "prune": 1, "finetune": 1, "scratch": 2},
    "imagenet_unstructured": {"train_base": 2, "prune": 4, "finetune": 4, "scratch": 8},
}
PAPER_STUDY = {name: {**counts, **PAPER_RUNS[name]} for name, counts in SMOKE_STUDY.items()}
# `all`: the lottery study's LR-0.1 bases (VGG-16, ResNet-56, ResNet-110 on CIFAR-10) and the
# archsearch study's plain VGG-16 base are the l1 study's.
# The li study shares its bases and its one-shot VGG-16-A with the l1 study.
# The ImageNet studies share no run with the CIFAR ones nor with each other.
SMOKE = {
    "prepare_data": 2, "prepare_imagenet": 1, "train_base": 27, "train_soft": 4, "save_init": 3, "prune": 44, "derive": 6, "finetune": 31,
    "scratch": 76, "curve": 13, "make_table": 10, "plot_statistics": 8, "plot_table": 10, "plot_channels": 9,
    "plot_kernels": 1, "li_table2": 1, "li_report": 1, "latency": 9, "sanity": 11, "ledger": 11, "html_page": 43, "all": 1,
}  # fmt: skip
PAPER = {
    "prepare_data": 2, "prepare_imagenet": 1, "train_base": 134, "train_soft": 20, "save_init": 30, "prune": 685, "derive": 70, "finetune": 465,
    "scratch": 1158, "curve": 13, "make_table": 10, "plot_statistics": 8, "plot_table": 10, "plot_channels": 9,
    "plot_kernels": 1, "li_table2": 1, "li_report": 1, "latency": 9, "sanity": 11, "ledger": 11, "html_page": 43, "all": 1,
}  # fmt: skip
TRAIN_RULES = {"train_base", "train_soft", "finetune", "scratch"}
# The paper scale fuses the 5 seeds of a run folder into one job (scales.paper.fuse):
# fused_<kind>_1_2_3_4_5 jobs, each the 5 runs its one-run rule would make.
FUSED = re.compile(r"fused_(base|soft|finetune|scratch)_(\d+(?:_\d+)*)")
ONE_RUN = {"base": "train_base", "soft": "train_soft", "finetune": "finetune", "scratch": "scratch"}
PAPER_JOBS = 1801
RUNS = Path("runs") / "smoke" / "cifar10"


# --------------------------------------------------------------------------- helpers
def snakemake(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    exe = BIN / "snakemake"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "snakemake"]
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run([*cmd, *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def job_stats(output: str) -> dict[str, int]:
    """The first 'Job stats' table of a snakemake run: {rule: count, ..., 'total': n}."""
    lines = output.splitlines()
    start = lines.index("Job stats:")
    assert lines[start + 1].split() == ["job", "count"], lines[start : start + 3]
    stats = {}
    for line in lines[start + 3 :]:
        if not line.strip():
            break
        name, count = line.split()
        stats[name] = int(count)
    assert stats, output
    return stats


def as_runs(stats: dict[str, int]) -> dict[str, int]:
    """Job counts with each fused job counted as its runs, under the one-run rule of its kind."""
    out = Counter()
    for rule, n in stats.items():
        m = FUSED.fullmatch(rule)
        out[ONE_RUN[m[1]] if m else rule] += n * (len(m[2].split("_")) if m else 1)
    return dict(out)


def dry_run(*args: str, targets: tuple = (), cwd: Path = REPO) -> dict[str, int]:
    """Job counts of a dry run (``--quiet`` takes values, so targets go after ``--``)."""
    proc = snakemake("-n", "--quiet", "rules", *args, *(("--", *targets) if targets else ()), cwd=cwd)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    stats = job_stats(proc.stdout)
    assert stats.pop("total") == sum(stats.values()), stats
    return stats


def copy_workflow(dest: Path) -> Path:
    """The files a user types `snakemake` beside, copied so runs there touch nothing here."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("Snakefile", "config.yaml"):
        shutil.copy2(REPO / name, dest / name)
    for name in ("workflow", "slurm", "envs"):
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def parse_jobs(output: str) -> list[dict]:
    """Per-job blocks of a non-quiet dry run: rule name, threads and resources."""
    jobs: list[dict] = []
    for line in output.splitlines():
        m = re.fullmatch(r"(?:local)?rule (\w+):", line.strip())
        if m:
            jobs.append({"rule": m.group(1), "threads": 1, "resources": None, "wildcards": {}})
        elif jobs and line.strip().startswith("wildcards:"):
            pairs = line.split(":", 1)[1].split(",")
            jobs[-1]["wildcards"] = dict(p.strip().split("=", 1) for p in pairs if "=" in p)
        elif jobs and line.strip().startswith("threads:"):
            jobs[-1]["threads"] = int(line.split(":", 1)[1])
        elif jobs and line.strip().startswith("resources:"):
            pairs = line.split(":", 1)[1].split(",")
            jobs[-1]["resources"] = dict(p.strip().split("=", 1) for p in pairs if p.strip())
    return jobs


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("wf") / "results"


@pytest.fixture(scope="module")
def smoke_stats(results) -> dict[str, int]:
    return dry_run("--config", f"results={results}")


@pytest.fixture(scope="module")
def paper_stats(results) -> dict[str, int]:
    return dry_run("--config", "scale=paper", f"results={results}")


@pytest.fixture(scope="module")
def slurm_dry_run(tmp_path_factory) -> subprocess.CompletedProcess:
    """`snakemake --profile slurm -n --cores 8`, typed in (a copy of) the repository root."""
    copy = copy_workflow(tmp_path_factory.mktemp("slurm") / "repo")
    proc = snakemake("--profile", "slurm", "-n", "--cores", "8", cwd=copy)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


# --------------------------------------------------------------------------- DAG shape
def test_smoke_dag(smoke_stats):
    assert smoke_stats == SMOKE
    assert sum(smoke_stats.values()) == 322


def test_paper_dag(paper_stats):
    assert as_runs(paper_stats) == PAPER
    assert sum(as_runs(paper_stats).values()) == 2693
    # every CIFAR training folder of 5 seeds whose runs share an architecture is one job
    assert {k: v for k, v in paper_stats.items() if FUSED.fullmatch(k)} == {
        "fused_base_1_2_3_4_5": 26, "fused_soft_1_2_3_4_5": 4, "fused_finetune_1_2_3_4_5": 53, "fused_scratch_1_2_3_4_5": 140,
    }  # fmt: skip
    assert sum(paper_stats.values()) == PAPER_JOBS


def test_scale_changes_seeds_and_sweep_points_only(smoke_stats, paper_stats):
    """Same rules at both scales; per seed the counts grow by the seeds (and the sweep's points)."""
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    assert len(config["scales"]["paper"]["seeds"]) == 5 and len(config["scales"]["smoke"]["seeds"]) == 1
    assert config["scales"]["paper"].get("max_settings") is None
    assert set(smoke_stats) == set(as_runs(paper_stats))
    for name in SMOKE_STUDY:
        for rule, n in SMOKE_STUDY[name].items():
            assert PAPER_STUDY[name][rule] >= n, (name, rule)


# (the ImageNet studies' smoke counts: through the imagenet target below, and `make run`)
@pytest.mark.parametrize("study", sorted(s for s in SMOKE_STUDY if s not in IMAGENET))
def test_each_study_is_a_target_of_its_own(results, study):
    assert dry_run("--config", f"results={results}", targets=(study,)) == SMOKE_STUDY[study]


@pytest.mark.parametrize("study", sorted(SMOKE_STUDY))
def test_each_study_at_paper_scale(results, study):
    expected = dict(PAPER_STUDY[study])
    if study == "li":  # its bases and one-shot VGG-16-A are l1's folders, fused over l1's 5 seeds
        expected.update(train_base=15, prune=147, finetune=147)
    assert as_runs(dry_run("--config", "scale=paper", f"results={results}", targets=(study,))) == expected


@pytest.mark.parametrize("scale", ["smoke", "paper"])
def test_imagenet_target_builds_the_four_imagenet_studies(results, scale):
    stats = dry_run("--config", f"scale={scale}", f"results={results}", targets=("imagenet",))
    per_study = PAPER_STUDY if scale == "paper" else SMOKE_STUDY
    expected = Counter()
    for name in IMAGENET:
        expected.update({k: v for k, v in per_study[name].items() if k != name})
    expected["prepare_imagenet"] = 1
    assert stats == {**expected, "imagenet": 1}  # ImageNet runs are never fused
    assert sum(stats.values()) == (101 if scale == "paper" else 69)


def test_table1_is_the_l1_study(results):
    stats = dry_run("--config", f"results={results}", targets=("table1",))
    assert stats == {**{k: v for k, v in SMOKE_STUDY["l1"].items() if k != "l1"}, "table1": 1}


@pytest.mark.parametrize("arm", ["scratch-e", "scratch-b"])
def test_predefined_scratch_arms_need_no_trained_base(results, arm):
    target = results / RUNS / "resnet56" / "plain" / "l1-A" / arm / "seed1" / "model.pt"
    assert dry_run("--config", f"results={results}", targets=(target,)) == {"prepare_data": 1, "scratch": 1}


@pytest.mark.parametrize("arm", ["scratch-e", "scratch-b"])
def test_learned_scratch_arms_need_the_pruned_file(results, arm):
    """Slimming learns its architecture: its scratch arms wait for the sparsity-trained base and its pruning."""
    target = results / RUNS / "vgg19" / "sparsity0.0001" / "slimming-0.7" / arm / "seed1" / "model.pt"
    stats = dry_run("--config", f"results={results}", targets=(target,))
    assert stats == {"prepare_data": 1, "train_base": 1, "prune": 1, "scratch": 1}


def test_finetune_depends_on_base_and_prune(results):
    target = results / RUNS / "resnet56" / "plain" / "l1-A" / "finetune" / "seed1" / "model.pt"
    stats = dry_run("--config", f"results={results}", targets=(target,))
    assert stats == {"prepare_data": 1, "train_base": 1, "prune": 1, "finetune": 1}


def _overlay(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "overlay.yaml"
    path.write_text(text)
    return path


def test_studies_share_a_base_trained_the_same_way(tmp_path, results):
    """A second study pruning ResNet-56 by another criterion reuses the L1 study's base runs."""
    extra = _overlay(tmp_path, "studies:\n  criteria:\n    method: random\n    models: {cifar10: {resnet56: [A, B]}}\n")
    stats = dry_run("--configfile", extra, "--config", f"results={results}")
    assert stats["train_base"] == SMOKE["train_base"]
    assert stats["prune"] == SMOKE["prune"] + 1  # random-A (the smoke scale's first setting)


def test_a_non_default_model_option_is_a_base_of_its_own(tmp_path, results):
    extra = _overlay(
        tmp_path,
        "studies:\n  grad:\n    method: l1\n    options: {resnet56: {shortcut_grad: true}}\n"
        "    models: {cifar10: {resnet56: [A]}}\n",
    )
    proc = snakemake("-n", "-p", "--configfile", extra, "--config", f"results={results}", "--", "grad")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "resnet56/plain+shortcut_grad=true/base/seed1" in proc.stdout
    assert "--option shortcut_grad=true" in proc.stdout
    assert job_stats(proc.stdout)["train_base"] == 1


def test_finetune_epochs_of_a_study_are_a_run_of_their_own(tmp_path, results):
    extra = _overlay(tmp_path, "studies:\n  slimming:\n    finetune_epochs: 160\n")
    proc = snakemake("-n", "-p", "--configfile", extra, "--config", "scale=paper", f"results={results}", "--", "slimming")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "/slimming-0.7/finetune-160ep/seed1/model.pt" in proc.stdout
    assert re.search(r"--arm finetune --epochs 160 ", proc.stdout)
    assert "/slimming-0.7/finetune/" not in proc.stdout


# --------------------------------------------------------------------------- fused runs
FUSE_TWO = "scales:\n  smoke:\n    seeds: [1, 2, 3]\n    fuse: 2\n"


def test_fused_groups_in_the_dry_run(tmp_path, results):
    """fuse 2 over seeds 1-3: seeds 1 and 2 of each fusible folder are one job, seed 3 its own;
    the arms whose architecture is learned per seed (slimming's) stay one run per job."""
    overlay = _overlay(tmp_path, FUSE_TWO)
    stats = dry_run("--configfile", overlay, "--config", f"results={results}", targets=("l1", "slimming"))
    runs = as_runs(stats)
    assert {r: runs[r] for r in ("train_base", "finetune", "scratch")} == {"train_base": 27, "finetune": 27, "scratch": 54}  # 3 seeds
    assert stats["fused_base_1_2"] == 3 + 6 and stats["train_base"] == 3 + 6  # every base folder
    assert stats["fused_finetune_1_2"] == 3 and stats["finetune"] == 3 + 6 * 3  # l1's; slimming's per seed
    assert stats["fused_scratch_1_2"] == 6 and stats["scratch"] == 6 + 12 * 3
    proc = snakemake("-n", "-p", "--configfile", overlay, "--config", f"results={results}", "--", "l1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    fused = [line for line in proc.stdout.splitlines() if "prunebench train" in line and "--seed 1 " in line and "--seed 2 " in line]
    assert len(fused) == 3 + 3 + 6
    finetune = next(line for line in fused if "--arm finetune" in line)
    assert re.search(r"--seed 1 --init \S+/l1-\w/pruned/seed1/pruned.pt --model-out \S+/finetune/seed1/model.pt", finetune)
    assert re.search(r"--seed 2 --init \S+/pruned/seed2/pruned.pt --model-out \S+/finetune/seed2/model.pt", finetune)


def test_a_single_seed_folder_is_never_fused(tmp_path, results):
    """Li's own points need seed 1 only (max_seeds: 1): their jobs stay one run each. What li
    shares with the l1 study (the bases, the one-shot VGG-16-A) is fused as l1 needs it."""
    overlay = _overlay(tmp_path, FUSE_TWO)
    stats = dry_run("--configfile", overlay, "--config", f"results={results}", targets=("li",))
    assert stats["finetune"] == SMOKE_STUDY["li"]["finetune"] - 1 and stats["fused_finetune_1_2"] == 1
    assert stats["fused_base_1_2"] == 3 and "train_base" not in stats


def test_a_fused_job_writes_every_run_of_its_group(tmp_path):
    """A real fused job (on the CPU its runs train one after another, in one job): each seed's
    folder gets its own model, metrics, eval and log, and a rerun has nothing to do."""
    from conftest import write_image_tree

    write_image_tree(tmp_path / "images", n_train=2, n_test=1, seed=3)
    overlay = _overlay(tmp_path, "scales:\n  smoke:\n    seeds: [1, 2]\n    fuse: 2\n    train_subset: null\n    test_subset: null\n")
    args = ("--configfile", overlay, "--config", f"data_root={tmp_path / 'images'}", f"results={tmp_path / 'results'}", "download=False", "device=cpu")
    folder = tmp_path / "results" / RUNS / "resnet56" / "plain" / "base"
    targets = [folder / f"seed{s}" / "eval.json" for s in (1, 2)]
    proc = snakemake("--cores", "2", *args, "--", *targets)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "fused_base_1_2" in proc.stdout + proc.stderr
    for s in (1, 2):
        metrics = json.loads((folder / f"seed{s}" / "metrics.json").read_text())
        assert metrics["run"]["seed"] == s and metrics["fused_copies"] == 1  # the CPU: one after another
        assert (folder / f"seed{s}" / "model.pt").exists() and "epoch 1/1" in (folder / f"seed{s}" / "train.log").read_text()
        assert not (folder / f"seed{s}" / "checkpoint.pt").exists()
    again = snakemake("-n", *args, "--", *targets)
    assert "Nothing to be done" in again.stdout + again.stderr


def test_slimming_base_trains_with_its_family_sparsity(results):
    proc = snakemake("-n", "-p", "--config", f"results={results}", "--", "slimming")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"--arch vgg19 .*--sparsity 0\.0001 ", proc.stdout)
    assert re.search(r"--arch densenet40 .*--sparsity 1e-05 ", proc.stdout)


def test_sfp_runs_soft_then_prunes_its_zero_pattern(results):
    """SFP: the soft run trains from scratch (no base needed); prune reads it; scratch reads prune."""
    run = results / RUNS / "resnet56" / "plain+protocol=sfp+fc_init=kaiming+shortcut=subsample+shortcut_grad=true" / "sfp-0.7"
    assert dry_run("--config", f"results={results}", targets=(run / "soft" / "seed1" / "model.pt",)) == {"prepare_data": 1, "train_soft": 1}
    stats = dry_run("--config", f"results={results}", targets=(run / "scratch-b" / "seed1" / "model.pt",))
    assert stats == {"prepare_data": 1, "train_soft": 1, "prune": 1, "scratch": 1}


def test_sfp_trains_with_its_own_protocol(results):
    proc = snakemake("-n", "-p", "--config", "scale=paper", f"results={results}", "--", "sfp")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for arm, epochs in (("base", 200), ("soft", 200), ("scratch-e", 200), ("scratch-b", 200)):
        line = next(ln for ln in proc.stdout.splitlines() if f"--arm {arm} " in ln and "--arch resnet110" in ln)
        assert f"--epochs {epochs} --lr 0.1 --milestones '0.3,0.6,0.8' --gamma 0.2 --batch-size 128" in line, line
        assert "--weight-decay 0.0005 --nesterov --normalisation sfp --warmup-epochs 1 --warmup-lr 0.01" in line, line
        assert "--max-epochs" not in line
    assert "/resnet110/plain+protocol=sfp+fc_init=kaiming+shortcut=subsample+shortcut_grad=true/base/seed5/" in proc.stdout
    # The L1 study's bases are other runs: the default protocol, no Nesterov.
    l1 = snakemake("-n", "-p", "--config", f"results={results}", "--", "l1")
    assert "--no-nesterov --normalisation rethinking --warmup-epochs 0" in l1.stdout


def test_unstructured_scratch_arms_need_the_masks(results):
    target = results / RUNS / "preresnet110" / "plain" / "magnitude-0.95" / "scratch-e" / "seed1" / "model.pt"
    assert dry_run("--config", f"results={results}", targets=(target,)) == {"prepare_data": 1, "train_base": 1, "prune": 1, "scratch": 1}


def test_reference_scratch_b_budget_is_a_run_of_its_own(tmp_path, results):
    """Also: the smoke scale caps Scratch-B's epochs and runs a sweep's first ratio only."""
    extra = _overlay(tmp_path, "studies:\n  unstructured:\n    scratch_b_budget: before-mask\n")
    proc = snakemake("-n", "-p", "--configfile", extra, "--config", f"results={results}", "--", "unstructured")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "/magnitude-0.3/scratch-b-beforemask/seed1/model.pt" in proc.stdout
    assert "--arm scratch-b " in proc.stdout and "--scratch-b-budget before-mask" in proc.stdout
    assert "/magnitude-0.3/scratch-b/" not in proc.stdout
    assert "--max-epochs 2" in proc.stdout
    assert "magnitude-0.95/" not in proc.stdout and "magnitude-0.7/" not in proc.stdout


def test_lint():
    proc = snakemake("--lint")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Lints for" not in proc.stdout + proc.stderr


# --------------------------------------------------------------------------- config errors
def _assert_config_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    detail = proc.stdout + proc.stderr
    assert proc.returncode != 0, detail
    assert "Traceback" not in detail, detail
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("prunebench: error: config:")]
    assert len(lines) == 1, detail
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


@pytest.mark.parametrize(
    "override, needles",
    [
        ("scale=huge", ("scale", "huge")),
        ("device=gpu", ("device", "gpu")),
        ("report_metric=worst", ("report_metric", "worst")),
    ],
)
def test_bad_config_value(results, override, needles):
    _assert_config_error(snakemake("-n", "--config", override, f"results={results}"), *needles)


@pytest.mark.parametrize(
    "text, needles",
    [
        ("studies: {l1: {models: {cifar10: {vgg16: [Q]}}}}", ("studies.l1.models.cifar10.vgg16[0]", "vgg16-Q", "vgg16-A")),
        ("studies: {l1: {method: l5}}", ("studies.l1.method", "l5", "slimming")),
        ("studies: {l1: {models: {cifar1000: {vgg16: [A]}}}}", ("studies.l1.models", "cifar1000", "cifar100")),
        ("studies: {l1: {models: {cifar10: {vgg17: [A]}}}}", ("studies.l1.models.cifar10", "vgg17", "resnet56")),
        ("studies: {slimming: {models: {cifar10: {vgg19: [1.5]}}}}", ("studies.slimming.models.cifar10.vgg19[0]", "1.5", "(0, 1)")),
        ("studies: {slimming: {models: {cifar10: {resnet56: [0.5]}}}}", ("studies.slimming.models.cifar10", "resnet56")),
        ("studies: {l1: {arms: [finetune, scratch-x]}}", ("studies.l1.arms", "scratch-x", "scratch-b")),
        ("studies: {l1: {options: {resnet56: {shortcut: hourglass}}}}", ("studies.l1.options.resnet56", "hourglass", "avgpool")),
        ("studies: {l1: {options: {resnet56: {widen: 2}}}}", ("studies.l1.options.resnet56", "widen")),
        ("studies: {Table-2: {method: l1, models: {cifar10: {vgg16: [A]}}}}", ("Table-2",)),
        # the masked studies' keys (more cases run in-process in test_bad_inputs.py)
        ("studies: {sfp: {protocol: sgdr}}", ("studies.sfp.protocol", "sgdr", "sfp")),
        ("studies: {s2: {method: sfp, models: {cifar10: {resnet20: [0.7]}}}}", ("studies.s2", "protocol.arms.soft")),
    ],
)
def test_bad_study_is_caught_before_any_job(tmp_path, results, text, needles):
    extra = _overlay(tmp_path, text + "\n")
    _assert_config_error(snakemake("-n", "--configfile", extra, "--config", f"results={results}"), *needles)


def test_results_a_file_is_one_line_not_a_traceback(tmp_path):
    """results pointing at a regular file: one line from the config check, before Snakemake
    builds the DAG (where listing results/tables would fail with a traceback)."""
    blocker = tmp_path / "results"
    blocker.write_text("a regular file where the results folder should be\n")
    proc = snakemake("-n", "--config", f"results={blocker}")
    _assert_config_error(proc, f"results = '{blocker}' is a file, not a folder", "point results at a folder")


def test_unknown_top_level_config_key(tmp_path, results):
    extra = tmp_path / "extra.yaml"
    extra.write_text("epochz: 3\n")
    proc = snakemake("-n", "--configfile", extra, "--config", f"results={results}")
    _assert_config_error(proc, "unknown key epochz")


def test_unknown_nested_config_key(tmp_path, results):
    extra = tmp_path / "extra.yaml"
    extra.write_text("scales:\n  smoke:\n    epochz: {base: 1}\n")
    proc = snakemake("-n", "--configfile", extra, "--config", f"results={results}")
    _assert_config_error(proc, "scales.smoke.epochz")


# --------------------------------------------------------------------------- SLURM profile
def test_profile_uses_slurm_executor():
    profile = yaml.safe_load((REPO / "slurm" / "profile.yaml").read_text())
    assert profile["executor"] == "slurm"
    assert profile["default-resources"]["slurm_partition"]


def test_profile_requests_cluster_resources(slurm_dry_run):
    assert job_stats(slurm_dry_run.stdout)["total"] == PAPER_JOBS  # the profile selects the paper scale
    jobs = parse_jobs(slurm_dry_run.stdout)
    counts = as_runs(Counter(j["rule"] for j in jobs))
    assert {r: counts[r] for r in PER_SEED_RULES} == {r: PAPER[r] for r in PER_SEED_RULES}
    gpus = Counter()
    for job in jobs:
        res = job["resources"]
        imagenet = job["wildcards"].get("dataset") == "imagenet"
        if job["rule"] in TRAIN_RULES or FUSED.fullmatch(job["rule"]):  # a fused job too: one GPU
            assert res is not None, job
            # an ImageNet run is data-parallel over the 8 GPUs of a node (torchrun)
            assert (res.get("gpu"), res.get("runtime"), res.get("mem_mb")) == (("8", "4320", "256000") if imagenet else ("1", "1440", "16000")), job
            assert job["threads"] == 4, job
            gpus[res["gpu"]] += 1
        elif job["rule"] == "prune":
            assert res is not None, job
            assert res.get("gpu", "0") == "0", job
    one_gpu = sum(n for rule, n in Counter(j["rule"] for j in jobs).items() if rule in TRAIN_RULES or FUSED.fullmatch(rule)) - 50
    assert gpus == {"8": 4 + 8 + 38, "1": one_gpu}


def test_profile_keeps_paper_scale_under_command_line_config(tmp_path):
    """The profile selects the paper scale through a config file (slurm/paper.yaml), so a
    `--config KEY=VALUE` on the command line does not silently fall back to smoke."""
    copy = copy_workflow(tmp_path / "repo")
    proc = snakemake("--profile", "slurm", "-n", "--quiet", "rules", "--cores", "8", "--config", "data_root=/data/cifar", cwd=copy)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert job_stats(proc.stdout)["total"] == PAPER_JOBS


# --------------------------------------------------------------------------- packing
def test_packed_runs_share_one_gpu_per_group_job(tmp_path):
    """cluster.pack=4 with --group-components: 4 runs per SLURM job, one gres GPU per group
    (a string resource, which Snakemake does not add up over a group's jobs)."""
    copy = copy_workflow(tmp_path / "repo")
    overlay = tmp_path / "pack.yaml"
    # one run per job (fuse 1): a fused job is a group of its own, never packed
    overlay.write_text('scale: paper\nscales: {paper: {fuse: 1}}\ncluster: {pack: 4, request: gpus, gres: "gpu:1"}\n')
    proc = snakemake(
        "--profile", "slurm", "-n", "--cores", "8", "--configfile", overlay,
        "--group-components", "pack_base=4", "pack_finetune=4", "pack_scratch=4", cwd=copy,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    groups = Counter(re.findall(r"Group job (\w+) ", proc.stdout))
    # ceil((130 bases + 20 soft runs)/4), ceil((457 - 7)/4), ceil((1120 - 80)/4): iterative
    # pruning's 80 winning tickets and Li's 7 layer-by-layer fine-tunes stay out of the groups,
    # as each feeds the next round's (step's) prune
    assert groups == {"pack_base": 38, "pack_finetune": 113, "pack_scratch": 260}
    for job in parse_jobs(proc.stdout):
        if job["rule"] in TRAIN_RULES:  # an ImageNet run is never packed: it holds 8 GPUs of a node
            gres = "gpu:8" if job["wildcards"].get("dataset") == "imagenet" else "gpu:1"
            assert job["resources"].get("gres") == gres and "gpu" not in job["resources"], job


def test_an_imagenet_job_runs_torchrun_over_its_gpus(results):
    """At paper scale an ImageNet training job starts one prunebench per GPU with torchrun; at
    smoke scale (one process, on the CPU) prunebench itself, at the small crop."""
    base = "imagenet/resnet34/plain+protocol=imagenet/base/seed1/model.pt"  # a run of both scales
    for scale, launch, crop in (("paper", "torchrun --standalone --nproc-per-node 8 -m prunebench train", "--crop 224 --resize 256"), ("smoke", "prunebench train", "--crop 32 --resize 36")):
        target = results / "runs" / scale / base
        proc = snakemake("-n", "-p", "--config", f"scale={scale}", f"results={results}", "--", target)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        command = next(line for line in proc.stdout.splitlines() if " train --arch resnet34" in line)
        assert command.strip().removeprefix("Shell command: ").startswith(launch) and crop in command, command
