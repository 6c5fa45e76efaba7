"""What a study's training costs before it runs: its training runs at a scale, each with the
network it trains (MACs per image), its epochs and its images, so a measured speed turns into
GPU-hours (``prunebench bench --suite`` projects every CIFAR study at paper scale).

Counted from the config as the DAG builds it (rows, arms, bases, SFP's soft runs, seeds), with
two estimates where the number is only known after training: a learned architecture (slimming's
widths, a derived one) and a masked network are charged the full network's MACs per image (a
mask removes no arithmetic on a GPU; a learned network is smaller, so this is an upper bound),
and Scratch-B is charged its definition, the base's epochs times the full network's MACs (the
same FLOPs; a capped budget costs less). Shared bases are counted once per study."""

from __future__ import annotations

from dataclasses import dataclass

from prunebench import methods, models
from prunebench.data.datasets import ALL_DATASETS
from prunebench.models.counting import count_macs

from .study import parse_tag, protocol, rows, study_arms

CIFAR_IMAGES = 50_000


@dataclass(frozen=True)
class TrainingRun:
    """One folder's runs: ``seeds`` runs of ``epochs`` epochs over ``images`` images each."""

    dataset: str
    arch: str
    arm: str
    macs: int  # per image, forward
    epochs: int
    seeds: int
    images: int = CIFAR_IMAGES
    estimated: bool = False  # MACs or epochs known only after pruning (see the module's docstring)

    @property
    def mac_epochs(self) -> float:
        return float(self.macs) * self.epochs * self.images * self.seeds


def _full_macs(dataset: str, arch: str, options: dict, cache: dict) -> int:
    key = (dataset, arch, tuple(sorted(options.items())))
    if key not in cache:
        cache[key] = count_macs(models.build(arch, None, ALL_DATASETS[dataset], **options))
    return cache[key]


def training_runs(config: dict, study: str) -> list[TrainingRun]:
    """The study's training runs at ``config["scale"]`` (CIFAR ones; ImageNet studies give none)."""
    spec = config["studies"][study]
    scale = config["scales"][config["scale"]]
    seeds = len(scale["seeds"][: spec.get("max_seeds")])
    arms = study_arms(spec)
    cache: dict = {}
    out: dict[tuple, TrainingRun] = {}
    for r in rows(config, study):
        if r.dataset == "imagenet":
            continue
        method = methods.get(r.method)
        _, options, proto = parse_tag(r.tag)
        p = protocol(config, proto)
        epochs = {arm: scale["epochs"].get(arm, a["epochs"]) for arm, a in p["arms"].items()}
        full = _full_macs(r.dataset, r.arch, options, cache)
        if method.learned or method.masked:
            pruned, estimated = full, True
        else:
            cfg = method.scratch_cfg(r.arch, r.setting)
            pruned, estimated = count_macs(models.build(r.arch, cfg, ALL_DATASETS[r.dataset], **options)), False
        if method.trains_base:
            out[(r.dataset, r.arch, r.tag, "base")] = TrainingRun(r.dataset, r.arch, "base", full, epochs["base"], seeds)
        source = method.source(r.setting)
        if source and source[1] == "soft":
            out[(r.dataset, r.arch, r.tag, r.method, source[0], "soft")] = TrainingRun(r.dataset, r.arch, "soft", full, epochs.get("soft", epochs["base"]), seeds)
        for arm in arms:
            if arm == "finetune":
                n = spec.get("finetune_epochs", epochs["finetune"])
            elif arm == "scratch-b":  # the same FLOPs as the base: E x full MACs
                out[(r.dataset, r.arch, r.tag, r.method, r.setting, arm)] = TrainingRun(r.dataset, r.arch, arm, full, epochs["base"], seeds)
                continue
            else:
                n = epochs.get(arm, epochs["base"])
            out[(r.dataset, r.arch, r.tag, r.method, r.setting, arm)] = TrainingRun(r.dataset, r.arch, arm, pruned, n, seeds, estimated=estimated)
    return list(out.values())
