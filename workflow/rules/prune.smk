# Prune a trained model by its method at one setting: Li's predefined variants rank filters;
# network slimming thresholds the BatchNorm scales of the sparsity-trained base; unstructured
# pruning masks the smallest conv weights; SFP reads the zero pattern of its soft run; your own
# method (external) calls its function or reads its pruned module.


rule prune:
    input:
        model=prune_input,
        module=external_module,
    output:
        model=PRUNED_FILE,
        report=f"{PRUNED}/prune.json",
    log:
        f"{PRUNED}/prune.log",
    wildcard_constraints:
        method=PRUNING_METHODS,
    conda:
        ENV
    threads: 1
    resources:
        runtime=10,
        mem_mb=2000,
    params:
        external=external_args,
    shell:
        "prunebench prune --model {input.model:q} --method {wildcards.method}"
        " --setting {wildcards.setting} --seed {wildcards.seed} {params.external}"
        " --out {output.model:q} --report {output.report:q} 2> {log:q}"


# A criterion that ranks filters by their feature maps (Li's activation criteria) reads the
# training images too: the same prune, given the dataset.
rule prune_on_data:
    input:
        model=prune_input,
        data=dataset_input,
    output:
        model=PRUNED_FILE,
        report=f"{PRUNED}/prune.json",
    log:
        f"{PRUNED}/prune.log",
    wildcard_constraints:
        method=DATA_METHODS,
        setting=DATA_SETTINGS,
    conda:
        ENV
    threads: 1
    resources:
        runtime=S["runtime_min"]["evaluate"],
        mem_mb=S["mem_mb"]["evaluate"],
    params:
        subset=(
            f"--train-subset {S['train_subset']}"
            if S["train_subset"] is not None
            else ""
        ),
    shell:
        "prunebench prune --model {input.model:q} --method {wildcards.method}"
        " --setting {wildcards.setting} --seed {wildcards.seed} --data {input.data:q}"
        " {params.subset} --out {output.model:q} --report {output.report:q} 2> {log:q}"


ruleorder: prune_on_data > prune


# An architecture source (pruning as architecture search: uniform at matched parameters, guided,
# transferred, random sparsity) derives its pruned file from other rows' prune reports.
rule derive:
    input:
        derive_inputs,
    output:
        model=PRUNED_FILE,
        report=f"{PRUNED}/prune.json",
    log:
        f"{PRUNED}/derive.log",
    wildcard_constraints:
        method=DERIVED_METHODS,
    conda:
        ENV
    params:
        options=lambda wc: tag_args(wc.tag, base=False),
    shell:
        "prunebench derive {input:q} --method {wildcards.method} --setting {wildcards.setting}"
        " --dataset {wildcards.dataset} --arch {wildcards.arch} --seed {wildcards.seed}"
        "{params.options} --out {output.model:q} --report {output.report:q} 2> {log:q}"
