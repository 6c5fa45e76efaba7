# Fused runs (docs/speed.md, "Fused runs"): the seeds of one run folder train as one job, a
# network holding K copies, when the scale's `fuse` is K > 1. The job's outputs are the K runs'
# own files, so every rule downstream reads them as it reads a run trained alone. One rule per
# kind of run and group of seeds (`fused_<kind>_<seeds>`), its `run` wildcard limited to the
# folders that group fuses, and preferred over the one-run rule where both match. Folders stay
# one run per job where fusing cannot help: ImageNet (data-parallel) runs, and the arms whose
# architecture differs per seed (a learned structured method's widths) or whose epochs may (a
# masked Scratch-B's budget).

from shlex import quote

FUSE = S.get("fuse", 1)
ONE_RUN_RULES = {
    "base": "train_base",
    "soft": "train_soft",
    "finetune": "finetune",
    "scratch": "scratch",
}
_FOLDER = re.compile(
    rf"{re.escape(RUNS)}/(?P<dataset>[^/]+)/(?P<arch>[^/]+)/(?P<tag>[^/]+)/"
    r"(?:base|(?P<method>[a-z0-9]+)-(?P<setting>[^/]+)/(?P<arm>[^/]+))"
)


class Folder:
    """A run folder's wildcards, as the one-run rules see them (arm 'base' for a base)."""

    def __init__(self, folder):
        fields = _FOLDER.fullmatch(folder).groupdict()
        self.__dict__.update(fields)
        self.arm = fields["arm"] or "base"
        kind = arm_kind(self.arm)[0]
        self.kind = kind if kind in ("base", "soft", "finetune") else "scratch"

    def keys(self):
        return self.__dict__.keys()

    def __getitem__(self, key):
        return self.__dict__[key]


def needed_seeds():
    """Every training folder the studies read (their arms, bases and what a method prunes from),
    with the seeds each needs."""
    need = {}
    for study in STUDIES:
        folders = list(study_runs(study))
        for r in pruned_rows(study):
            source = methods.get(r.method).source(r.setting)
            if source:  # SFP's soft run, iterative pruning's previous round
                folders.append(
                    f"{RUNS}/{r.dataset}/{r.arch}/{r.tag}/{r.method}-{source[0]}/{source[1]}"
                )
        for folder in folders:
            need.setdefault(folder, set()).update(study_seeds(study))
    return need


def fusible(f):
    if f.dataset == "imagenet":
        return False
    if f.kind in ("base", "soft"):
        return True
    m = methods.get(f.method)
    if m.masked:
        return not f.arm.startswith("scratch-b")
    return not m.learned


def fused_groups():
    """(kind, seeds) -> the folders whose seeds train as one job, FUSE at a time."""
    groups = {}
    if FUSE < 2:
        return groups
    for folder, seeds in needed_seeds().items():
        f = Folder(folder)
        if not fusible(f):
            continue
        ordered = [s for s in SEEDS if s in seeds]
        for i in range(0, len(ordered), FUSE):
            chunk = tuple(ordered[i : i + FUSE])
            if len(chunk) > 1:
                groups.setdefault((f.kind, chunk), []).append(folder)
    return groups


def fused_inputs(chunk):
    """The data, and per seed what its one-run rule reads (pruned file, theta_0)."""

    def inputs(wc):
        f = Folder(wc.run)
        out = {"data": data_file(f.dataset)}
        for s in chunk:
            one = {**f, "seed": s}
            if f.kind == "finetune":
                out[f"init{s}"] = PRUNED_FILE.format(**one)
            elif f.kind == "scratch":
                if methods.get(f.method).learned:
                    out[f"init{s}"] = PRUNED_FILE.format(**one)
                if f.arm == "winning":
                    out[f"theta0_{s}"] = f"{BASE}/init.pt".format(**one)
        return out

    return inputs


def fused_command(chunk):
    """`prunebench train` with one --seed (and its own paths) per run of the group."""

    def command(wc, input, output):
        f = Folder(wc.run)
        what = f"--arch {f.arch}"
        if f.kind != "base":
            what += f" --method {f.method} --setting {f.setting}"
        own = f.kind in ("base", "soft") or (
            f.kind == "scratch" and not methods.get(f.method).learned
        )
        what += f" {train_args(f.arm, f.tag)}" + (
            tag_args(f.tag, base=f.kind == "base") if own else ""
        )
        per_run = ""
        for i, s in enumerate(chunk):
            per_run += f" --seed {s}"
            if f"init{s}" in input.keys():
                per_run += f" --init {quote(input[f'init{s}'])}"
            if f"theta0_{s}" in input.keys():
                per_run += f" --theta0 {quote(input[f'theta0_{s}'])}"
            per_run += "".join(
                f" --{k}-out {quote(output[k][i])}"
                for k in ("model", "metrics", "eval")
            )
        return (
            f"prunebench train {what}{data_args(f)} --data {quote(input.data)}{per_run}"
        )

    return command


def copy_logs(chunk):
    """Every run's train.log gets the job's log (the K runs' epochs side by side)."""
    return lambda wc: "".join(
        f" && cp {quote(f'{wc.run}/seed{chunk[0]}/train.log')} {quote(f'{wc.run}/seed{s}/train.log')}"
        for s in chunk[1:]
    )


for (_kind, _chunk), _folders in fused_groups().items():

    rule:
        name:
            f"fused_{_kind}_{'_'.join(map(str, _chunk))}"
        input:
            unpack(fused_inputs(_chunk)),
        output:
            model=[f"{{run}}/seed{s}/model.pt" for s in _chunk],
            metrics=[f"{{run}}/seed{s}/metrics.json" for s in _chunk],
            eval=[f"{{run}}/seed{s}/eval.json" for s in _chunk],
        log:
            [f"{{run}}/seed{s}/train.log" for s in _chunk],
        wildcard_constraints:
            run="|".join(re.escape(f) for f in sorted(_folders)),
        conda:
            ENV
        threads: S["threads"]
        resources:
            **train_resources(),
        params:
            command=fused_command(_chunk),
            copies=copy_logs(_chunk),
        shell:
            "{params.command} --threads {threads} 2> {log[0]:q} || rc=$?; true{params.copies}; exit ${{rc:-0}}"

    workflow.ruleorder(
        f"fused_{_kind}_{'_'.join(map(str, _chunk))}", ONE_RUN_RULES[_kind]
    )
