# Path helpers and config lookups shared by every rule file. No training logic here.
import sys

from prunebench.config import check
from prunebench.errors import UserError

try:
    check(config, workflow.source_path("../schemas/config.schema.yaml"))
except UserError as e:
    sys.exit(f"prunebench: error: {e}")

SCALE = config["scale"]
S = config["scales"][SCALE]
PROTOCOL = config["protocol"]
SEEDS = S["seeds"]
DATASET = config["table1"]["dataset"]
CRITERION = config["table1"]["criterion"]
RESULTS = config["results"]
RUNS = f"{RESULTS}/runs/{SCALE}/{DATASET}"
ENV = "../../envs/prunebench.yaml"
PRUNED = [
    (arch, v) for arch, variants in config["table1"]["models"].items() for v in variants
]


wildcard_constraints:
    arch=r"[a-z]+\d+",
    variant=r"[A-Z]",
    seed=r"\d+",
    criterion=r"[a-z0-9]+",


def data_file():
    return f"{RESULTS}/data/{DATASET}.pt"


def epochs(arm):
    return S["epochs"].get(arm, PROTOCOL["arms"][arm]["epochs"])


def train_args(arm):
    """The protocol of one arm as `prunebench train` options (the scale may shorten it)."""
    a = PROTOCOL["arms"][arm]
    return (
        f"--arm {arm} --epochs {epochs(arm)} --lr {a['lr']}"
        f" --milestones '{','.join(str(m) for m in a['milestones'])}'"
        f" --gamma {PROTOCOL['gamma']} --batch-size {PROTOCOL['batch_size']}"
        f" --test-batch-size {PROTOCOL['test_batch_size']} --momentum {PROTOCOL['momentum']}"
        f" --weight-decay {PROTOCOL['weight_decay']} --scale {SCALE}"
        f" --precision {config['speed']['precision']} --compile {config['speed']['compile']}"
        f" --device {config['device']}{subset_args()}"
    )


PACK = config["cluster"]["pack"]


def train_resources(**extra):
    """One GPU per training job; packed, the GPU is a gres string, which Snakemake does not
    add up over the jobs of a group, so N grouped runs share one GPU."""
    as_gres = PACK > 1 or config["cluster"]["request"] == "gres"
    gpu = {"gres": config["cluster"]["gres"]} if as_gres else {"gpu": 1}
    return {
        **gpu,
        "runtime": S["runtime_min"]["train"],
        "mem_mb": S["mem_mb"]["train"],
        **extra,
    }


def pack_group(name):
    """Job group of packed training runs (used with --group-components NAME=pack)."""
    return f"pack_{name}" if PACK > 1 else None


def eval_files(arch, variant, arm):
    """eval.json of every seed of one table cell."""
    run = f"{arch}/base" if arm == "base" else f"{arch}-{variant}/{arm}"
    return expand(f"{RUNS}/{run}/seed{{seed}}/eval.json", seed=SEEDS)


def table1_evals():
    files = [
        f for arch in config["table1"]["models"] for f in eval_files(arch, None, "base")
    ]
    for arch, variant in PRUNED:
        for arm in (f"finetune-{CRITERION}", "scratch-e", "scratch-b"):
            files += eval_files(arch, variant, arm)
    return files


def subset_args():
    return "".join(
        f" --{k.replace('_', '-')} {S[k]}"
        for k in ("train_subset", "test_subset")
        if S[k] is not None
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
