# The three arms compared on each pruned architecture: fine-tune the pruned weights, or train
# the same architecture from a fresh init for the same epochs (Scratch-E) or the same MACs
# budget (Scratch-B). Predefined architectures need no trained model for the scratch arms.


rule finetune:
    input:
        data=data_file(),
        init=f"{RUNS}/{{arch}}-{{variant}}/pruned-{{criterion}}/seed{{seed}}/pruned.pt",
    output:
        model=f"{RUNS}/{{arch}}-{{variant}}/finetune-{{criterion}}/seed{{seed}}/model.pt",
        metrics=f"{RUNS}/{{arch}}-{{variant}}/finetune-{{criterion}}/seed{{seed}}/metrics.json",
    log:
        f"{RUNS}/{{arch}}-{{variant}}/finetune-{{criterion}}/seed{{seed}}/train.log",
    group:
        pack_group("finetune")
    conda:
        ENV
    threads: S["threads"]
    resources:
        **train_resources(),
    params:
        args=train_args("finetune"),
    shell:
        "prunebench train --arch {wildcards.arch} --variant {wildcards.variant}"
        " --seed {wildcards.seed} {params.args} --threads {threads} --init {input.init:q}"
        " --data {input.data:q} --model-out {output.model:q}"
        " --metrics-out {output.metrics:q} 2> {log:q}"


rule scratch:
    input:
        data=data_file(),
    output:
        model=f"{RUNS}/{{arch}}-{{variant}}/{{arm}}/seed{{seed}}/model.pt",
        metrics=f"{RUNS}/{{arch}}-{{variant}}/{{arm}}/seed{{seed}}/metrics.json",
    log:
        f"{RUNS}/{{arch}}-{{variant}}/{{arm}}/seed{{seed}}/train.log",
    wildcard_constraints:
        arm="scratch-e|scratch-b",
    group:
        pack_group("scratch")
    conda:
        ENV
    threads: S["threads"]
    resources:
        **train_resources(),
    params:
        args=lambda wc: train_args(wc.arm),
    shell:
        "prunebench train --arch {wildcards.arch} --variant {wildcards.variant}"
        " --seed {wildcards.seed} {params.args} --threads {threads}"
        " --data {input.data:q} --model-out {output.model:q}"
        " --metrics-out {output.metrics:q} 2> {log:q}"
