# Path helpers and config lookups shared by every rule file. No training logic here; which runs
# a study needs comes from prunebench.studies.study, what each run does from the prunebench CLI.
import re
import sys

from prunebench import methods
from prunebench.studies.config import check
from prunebench.studies import external
from prunebench.core.errors import UserError
from prunebench.studies.study import (
    base_tag,
    curves,
    parse_tag,
    protocol,
    rows,
    study_arms,
    target_studies,
)

try:
    check(config, workflow.source_path("../schemas/config.schema.yaml"))
except UserError as e:
    sys.exit(f"prunebench: error: {e}")

SCALE = config["scale"]
S = config["scales"][SCALE]
PROTOCOL = config["protocol"]
SEEDS = S["seeds"]
STUDIES = config["studies"]
RESULTS = config["results"]
RUNS = f"{RESULTS}/runs/{SCALE}"
ENV = "../../envs/prunebench.yaml"
PACK = config["cluster"]["pack"]
# A run's folder: <dataset>/<arch>/<base tag>/base, or .../<method>-<setting>/<arm>.
BASE = f"{RUNS}/{{dataset}}/{{arch}}/{{tag}}/base/seed{{seed}}"
DERIVED = (
    f"{RUNS}/{{dataset}}/{{arch}}/{{tag}}/{{method}}-{{setting}}/{{arm}}/seed{{seed}}"
)
PRUNED = (
    f"{RUNS}/{{dataset}}/{{arch}}/{{tag}}/{{method}}-{{setting}}/pruned/seed{{seed}}"
)
PRUNED_FILE = f"{PRUNED}/pruned.pt"


wildcard_constraints:
    dataset=r"[a-z0-9]+",
    arch=r"[a-z]+\d+(_[a-z]+)?",
    tag=r"[a-z0-9.=_+-]+",
    method=r"[a-z0-9]+",
    setting=r"[A-Za-z0-9._]+",
    seed=r"\d+",
    study="|".join(STUDIES),


def data_file(dataset="cifar10"):
    """CIFAR's prepared tensor file; ImageNet's manifest of the user's tree (never copied)."""
    return f"{RESULTS}/data/{dataset}.{'json' if dataset == 'imagenet' else 'pt'}"


def dataset_input(wc):
    return data_file(wc.dataset)


IMAGENET = S.get("imagenet", {})


def data_args(wc):
    """How an ImageNet run loads its images (its eval.json takes the same crop and resize);
    nothing on CIFAR."""
    if not is_imagenet(wc):
        return ""
    crop = f" --crop {IMAGENET['crop']} --resize {IMAGENET['resize']}"
    return f" --workers {IMAGENET['workers']} --decoder {config['imagenet']['decoder']}{crop}"


def is_imagenet(wc):
    return getattr(wc, "dataset", None) == "imagenet"


def gpus(wc):
    """GPUs (torchrun processes) per node of one training job: ImageNet runs are data-parallel."""
    return IMAGENET["gpus"] if is_imagenet(wc) else 1


def launcher(wc):
    """The command a training job runs: prunebench itself, or torchrun starting one prunebench
    per GPU (docs/imagenet.md, "Data-parallel runs"); over several nodes srun starts torchrun
    on each, meeting at the job's first node."""
    n, nodes = gpus(wc), config["imagenet"]["nodes"] if is_imagenet(wc) else 1
    if nodes > 1:
        return (
            f"srun --ntasks-per-node 1 torchrun --nnodes {nodes} --nproc-per-node {n}"
            " --rdzv-backend c10d --rdzv-id $SLURM_JOB_ID"
            " --rdzv-endpoint $(scontrol show hostnames $SLURM_JOB_NODELIST | head -n 1):29400"
            " -m prunebench"
        )
    return (
        "prunebench"
        if n == 1
        else f"torchrun --standalone --nproc-per-node {n} -m prunebench"
    )


def arm_dir(study, arm, row=None):
    """An arm run differently from the protocol is a run of its own: finetune-<E>ep for other
    fine-tune epochs, scratch-b-beforemask for the reference's masked Scratch-B budget,
    scratch-b-<E>ep for the study's fixed Scratch-B epochs of the row's arch and setting.
    """
    e = STUDIES[study].get("finetune_epochs", PROTOCOL["arms"]["finetune"]["epochs"])
    if arm == "finetune" and e != PROTOCOL["arms"]["finetune"]["epochs"]:
        return f"finetune-{e}ep"
    fixed = (
        STUDIES[study].get("scratch_b_epochs", {}).get(row.arch if row else None, {})
    )
    if arm == "scratch-b" and row is not None and row.setting in fixed:
        return f"scratch-b-{fixed[row.setting]}ep"
    if arm == "scratch-b" and STUDIES[study].get("scratch_b_budget") == "before-mask":
        return "scratch-b-beforemask"
    return arm


def arm_kind(arm_folder):
    """finetune-160ep -> (finetune, 160); scratch-e -> (scratch-e, None)."""
    m = re.fullmatch(r"(finetune|scratch-b)-(\d+)ep", arm_folder)
    return (
        (m.group(1), int(m.group(2)))
        if m
        else (arm_folder.removesuffix("-beforemask"), None)
    )


def train_args(arm_folder, tag):
    """The protocol of one arm (the base tag names it) as `prunebench train` options; the scale
    may shorten it."""
    arm, own_epochs = arm_kind(arm_folder)
    p = protocol(config, parse_tag(tag)[2])
    a = p["arms"][arm]
    fixed_b = own_epochs if arm == "scratch-b" else None
    n = S["epochs"].get(arm, (own_epochs if arm == "finetune" else None) or a["epochs"])
    warmup = p.get("warmup", {"epochs": 0, "lr": 0})
    budget = "before-mask" if arm_folder.endswith("-beforemask") else "after-mask"
    rule_b = p.get("scratch_b", {})
    cap = rule_b.get("cap")
    return (
        f"--arm {arm} --epochs {n} --lr {a['lr']}"
        f" --milestones '{','.join(str(m) for m in a['milestones'])}'"
        f" --gamma {p['gamma']} --batch-size {p['batch_size']}"
        f" --test-batch-size {p['test_batch_size']} --momentum {p['momentum']}"
        f" --weight-decay {p['weight_decay']}"
        f" --{'' if p.get('nesterov') else 'no-'}nesterov"
        f" --normalisation {p.get('normalisation', 'rethinking')}"
        f" --warmup-epochs {warmup['epochs']} --warmup-lr {warmup['lr']}"
        f" --scratch-b-budget {budget} --scale {SCALE}"
        # only where not the default, so the CIFAR runs' commands (and Snakemake's params
        # rerun trigger) stay as they were
        + (
            f" --scratch-b-steps {rule_b['steps']}"
            if rule_b.get("steps", "fractions") != "fractions"
            else ""
        )
        + (f" --scratch-b-cap {cap['ratio']:g},{cap['epochs']}" if cap else "")
        + (
            f" --scratch-b-epochs {fixed_b}"
            if fixed_b and not S["epochs"].get(arm)
            else ""
        )
        + f" --precision {S.get('precision', config['speed']['precision'])}"
        f" --compile {config['speed']['compile']} --device {config['device']}{subset_args()}"
        + (f" --max-epochs {S['max_epochs']}" if S.get("max_epochs") else "")
    )


def tag_args(tag, base):
    """The base tag as `prunebench train` options: model options, and the sparsity of a base."""
    sparsity, options, _ = parse_tag(tag)
    args = "".join(f" --option {k}={str(v).lower()}" for k, v in options.items())
    return args + (f" --sparsity {sparsity:g}" if base and sparsity else "")


def train_resources(**extra):
    """One GPU per training job (an ImageNet one: the scale's imagenet.gpus per node, on
    imagenet.nodes nodes); packed, the GPU is a gres string, which Snakemake does not add up
    over the jobs of a group, so N grouped runs share one GPU."""
    as_gres = PACK > 1 or config["cluster"]["request"] == "gres"
    gres = config["cluster"]["gres"]
    if as_gres:
        many = re.sub(r"(:\d+)?$", "", gres)
        gpu = {"gres": lambda wc: gres if gpus(wc) == 1 else f"{many}:{gpus(wc)}"}
    else:
        gpu = {"gpu": gpus}
    return {
        **gpu,
        "runtime": lambda wc: per_dataset(wc, "runtime_min", "train"),
        "mem_mb": lambda wc: per_dataset(wc, "mem_mb", "train"),
        **(
            {"nodes": lambda wc: config["imagenet"]["nodes"] if is_imagenet(wc) else 1}
            if "imagenet" in config and config["imagenet"]["nodes"] > 1
            else {}
        ),
        **extra,
    }


def per_dataset(wc, key, job):
    """A scale's runtime_min or mem_mb of a job, ImageNet's own for an ImageNet run."""
    return (IMAGENET if is_imagenet(wc) else S)[key][job]


def pack_group(name):
    """Job group of packed training runs (used with --group-components NAME=pack); an ImageNet
    run, which holds a node's GPUs, is never packed."""
    if PACK == 1:
        return None
    return lambda wc: None if is_imagenet(wc) else f"pack_{name}"


def chain_safe_group(kind):
    """Packed like every run of its kind, except the runs a chained method prunes next
    (iterative pruning's winning tickets, Li's layer-by-layer fine-tunes): a group may not
    feed itself through a job outside it."""

    def group(wc):
        m = methods.get(wc.method)
        packed = pack_group(kind)
        return (
            None
            if packed is None or (m.chained and wc.arm == m.prune_from)
            else packed(wc)
        )

    return group


def study_runs(study):
    """Folders (without seed) of every run behind one study's table: bases and pruned arms."""
    arms = study_arms(STUDIES[study])
    out = {}
    for r in rows(config, study):
        if methods.get(r.method).trains_base:
            out[f"{RUNS}/{r.dataset}/{r.arch}/{r.tag}/base"] = None
        for arm in arms:
            out[
                f"{RUNS}/{r.dataset}/{r.arch}/{r.tag}/{r.method}-{r.setting}/{arm_dir(study, arm, r)}"
            ] = None
    return list(out)


def study_evals(wildcards):
    return expand(
        "{run}/seed{seed}/eval.json",
        run=study_runs(wildcards.study),
        seed=study_seeds(wildcards.study),
    )


def pruned_rows(study):
    """The rows cut from a trained base (not the published architectures, only trained from scratch)."""
    return [r for r in rows(config, study) if methods.get(r.method).trains_base]


def study_prunes(wildcards):
    return expand(
        f"{RUNS}/{{r.dataset}}/{{r.arch}}/{{r.tag}}/{{r.method}}-{{r.setting}}/pruned/seed{{seed}}/prune.json",
        r=pruned_rows(wildcards.study),
        seed=study_seeds(wildcards.study),
    )


LI_TABLES = ("table2.csv", "table2.md", "curves.csv", "iterative.csv", "iterative.md")
LI_FIGURES = ("norms", "sensitivity", "criteria", "consecutive")


def study_outputs(study):
    """A study's tables and figures, each Markdown table also as an HTML page for the report,
    and its runs' sanity checks. An archsearch study adds its kernel patterns; a study of Li's
    analyses has its own tables and figures."""
    common = [
        f"{RESULTS}/tables/{study}-checks.csv",
        f"{RESULTS}/tables/{study}-ledger.csv",
        f"{RESULTS}/figures/{study}-ledger.png",
    ] + [f"{RESULTS}/html/{page}.html" for page in study_pages(study)]
    if STUDIES[study].get("report") == "li":
        return (
            [f"{RESULTS}/tables/{study}-{t}" for t in LI_TABLES]
            + [f"{RESULTS}/figures/{study}-{f}.png" for f in LI_FIGURES]
            + common
        )
    kind = STUDIES[study].get("report", "table")
    extra = {
        # pruning as architecture search: the kept 3x3 kernel patterns
        "archsearch": [
            f"{RESULTS}/tables/{study}-kernels.csv",
            f"{RESULTS}/figures/{study}-kernels.png",
        ],
        # arms compared with fine-tuning: their intervals and differences at a glance
        "table": [
            f"{RESULTS}/figures/{study}-ci.png",
            f"{RESULTS}/figures/{study}-diff.png",
        ],
    }
    # of the rows pruned here (a trained base): the kept widths per layer, and the pruned
    # networks timed beside the full one (a study of published architectures has no full run)
    pruned = [
        f"{RESULTS}/tables/{study}-channels.csv",
        f"{RESULTS}/figures/{study}-channels.png",
        f"{RESULTS}/tables/{study}-latency.csv",
        f"{RESULTS}/figures/{study}-latency.png",
    ]
    return (
        [
            f"{RESULTS}/tables/{study}.csv",
            f"{RESULTS}/tables/{study}.md",
            f"{RESULTS}/tables/{study}.tex",
            f"{RESULTS}/figures/{study}.png",
        ]
        + extra.get(kind, [])
        + (pruned if pruned_rows(study) else [])
        + common
    )


def study_latency_models(wc):
    """What a study's latency table times: each full base and, per row, the first pruned arm's
    model (one architecture per row: its arms share it), of the first seed."""
    study = wc.study
    arm = study_arms(STUDIES[study])[0]
    seed = study_seeds(study)[0]
    out = {}
    for r in rows(config, study):
        if methods.get(r.method).trains_base:
            out[f"{RUNS}/{r.dataset}/{r.arch}/{r.tag}/base/seed{seed}/model.pt"] = None
        out[
            f"{RUNS}/{r.dataset}/{r.arch}/{r.tag}/{r.method}-{r.setting}/{arm_dir(study, arm, r)}/seed{seed}/model.pt"
        ] = None
    return list(out)


def study_pages(study):
    """The Markdown tables of a study (results/tables/<page>.md), shown in the HTML report."""
    if STUDIES[study].get("report") == "li":
        pages = [f"{study}-{t[: -len('.md')]}" for t in LI_TABLES if t.endswith(".md")]
    else:
        pages = [study] + ([f"{study}-latency"] if pruned_rows(study) else [])
    return pages + [f"{study}-checks", f"{study}-ledger"]


def page_study(wc):
    """The study a page of the HTML report belongs to: its report category."""
    page = wc.page if hasattr(wc, "page") else wc.study
    return max((s for s in STUDIES if page == s or page.startswith(f"{s}-")), key=len)


def scratch_inputs(wc):
    """Scratch arms of a learned architecture (slimming's cfg, a masked method's masks) start
    from the pruned file; the winning ticket also from the base's initial weights theta_0.
    """
    inputs = {"data": data_file(wc.dataset)}
    if methods.get(wc.method).learned:
        inputs["init"] = PRUNED_FILE.format(**wc)
    if wc.arm == "winning":
        inputs["theta0"] = f"{BASE}/init.pt".format(**wc)
    return inputs


def prune_input(wc):
    """What a method prunes: the trained base, a model of its own arm (SFP's soft run), or the
    arm of its previous setting (iterative pruning's last round)."""
    source = methods.get(wc.method).source(wc.setting)
    if source is None:
        return f"{BASE}/model.pt".format(**wc)
    setting, arm = source
    return f"{DERIVED}/model.pt".format(**{**wc, "setting": setting, "arm": arm})


def external_module(wc):
    """Method external's pruned module file for this seed, where the setting names one."""
    spec = external.specs(config).get(wc.setting) if external.is_external(wc.method) else None
    return [external.module_file(spec, wc.seed)] if spec and "module" in spec else []


def external_args(wc):
    """The prune command's options for method external (its function, or its module)."""
    if not external.is_external(wc.method):
        return ""
    return external.prune_args(external.specs(config)[wc.setting], wc.seed)


# The pruning methods (prune a trained model) and the architecture sources (derived from other
# rows' prune reports): the prune and derive rules split the pruned files between them.
PRUNING_METHODS = "|".join(m for m in methods.names() if not methods.get(m).derived)
DERIVED_METHODS = "|".join(m for m in methods.names() if methods.get(m).derived)


def derive_inputs(wc):
    """The prune.json reports an architecture source reads: its source row's, for the same seed
    or for every seed (stage averages). A transferred source's model runs with default options.
    """
    src = methods.get(wc.method).derived_from(wc.dataset, wc.arch, wc.setting)
    _, options, proto = parse_tag(wc.tag)
    tag = base_tag(
        src.method,
        src.arch,
        options if src.arch == wc.arch else {},
        config["sparsity"],
        proto,
    )
    return [
        f"{RUNS}/{src.dataset}/{src.arch}/{tag}/{src.method}-{src.setting}/pruned/seed{s}/prune.json"
        for s in (SEEDS if src.all_seeds else [wc.seed])
    ]


# Methods whose settings may rank filters on the data (prune_on_data), and those settings.
_DATA = {m: methods.get(m).data_settings for m in methods.names()}
_DATA = {m: pattern for m, pattern in _DATA.items() if pattern}
DATA_METHODS = "|".join(_DATA) or "^$"
DATA_SETTINGS = "|".join(f"(?:{pattern})" for pattern in _DATA.values()) or "^$"


def study_seeds(study):
    """The scale's seeds, or the first max_seeds of them (Li's analyses: one run each)."""
    return SEEDS[: STUDIES[study].get("max_seeds")]


# Curve jobs of Li's analyses by their path's parameters: which layers and ratios each evaluates.
CURVE = f"{RUNS}/{{dataset}}/{{arch}}/{{tag}}/curves/{{mode}}-{{name}}/seed{{seed}}/curve.json"
CURVES = {
    (c.dataset, c.arch, tag, c.mode, c.name): c
    for study in STUDIES
    for c, tag in curves(config, study)
}


def study_curves(study):
    return [
        CURVE.format(
            dataset=c.dataset, arch=c.arch, tag=tag, mode=c.mode, name=c.name, seed=s
        )
        for c, tag in curves(config, study)
        for s in study_seeds(study)
    ]


def curve_args(wc):
    c = CURVES[(wc.dataset, wc.arch, wc.tag, wc.mode, wc.name)]
    layers = f" --layers {','.join(map(str, c.layers))}" if c.layers else ""
    return f"--ratios {','.join(f'{r:g}' for r in c.ratios)}{layers}"


def subset_args():
    return "".join(
        f" --{k.replace('_', '-')} {S[k]}"
        for k in ("train_subset", "test_subset")
        if S[k] is not None
    )


def latency_args(wc):
    """The latency config as options; an ImageNet study's models are timed at the crop they
    train on (224 at paper scale, the smoke scale's small one)."""
    lat = config["latency"]
    repeats = f" --repeats {lat['repeats']}" if lat["repeats"] is not None else ""
    if any(r.dataset == "imagenet" for r in rows(config, wc.study)):
        repeats += f" --image-size {IMAGENET['crop']}"
    return (
        " ".join(f"--batch {b}" for b in lat["batches"])
        + " "
        + " ".join(f"--device {d}" for d in lat["devices"])
        + f" --warmup {lat['warmup']}{repeats}"
    )


def bench_args():
    b = config["bench"]
    return (
        f"--models {','.join(b['models'])} --device {config['device']}"
        f" --steps {b['steps']} --warmup {b['warmup']} --workers {b['workers']}"
        f" --acc-epochs {b['acc_epochs']} --pack {b['pack']}"
        f" --precision {config['speed']['precision']} --compile {config['speed']['compile']}"
        f"{subset_args()}"
    )
