# The large model every pruning method starts from (160 epochs at paper scale).


rule train_base:
    input:
        data=data_file(),
    output:
        model=f"{RUNS}/{{arch}}/base/seed{{seed}}/model.pt",
        metrics=f"{RUNS}/{{arch}}/base/seed{{seed}}/metrics.json",
    log:
        f"{RUNS}/{{arch}}/base/seed{{seed}}/train.log",
    group:
        pack_group("base")
    conda:
        ENV
    threads: S["threads"]
    resources:
        **train_resources(),
    params:
        args=train_args("base"),
    shell:
        "prunebench train --arch {wildcards.arch} --seed {wildcards.seed} {params.args}"
        " --threads {threads} --data {input.data:q} --model-out {output.model:q}"
        " --metrics-out {output.metrics:q} 2> {log:q}"
