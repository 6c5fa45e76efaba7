# The large model every pruning method starts from (160 epochs at paper scale); its base tag
# says how it trains (plain, or with network slimming's sparsity penalty) and with which options.


rule train_base:
    input:
        data=dataset_input,
    output:
        model=f"{BASE}/model.pt",
        metrics=f"{BASE}/metrics.json",
        eval=f"{BASE}/eval.json",
    log:
        f"{BASE}/train.log",
    group:
        pack_group("base")
    conda:
        ENV
    threads: S["threads"]
    resources:
        **train_resources(),
    params:
        launch=launcher,
        data=lambda wc: data_args(wc),
        args=lambda wc: train_args("base", wc.tag),
        tag=lambda wc: tag_args(wc.tag, base=True),
    shell:
        "{params.launch} train --arch {wildcards.arch} --seed {wildcards.seed} {params.args}"
        "{params.tag} --threads {threads}{params.data} --data {input.data:q} --model-out {output.model:q}"
        " --metrics-out {output.metrics:q}"
        " --eval-out {output.eval:q} 2> {log:q}"


# Soft filter pruning trains the full network from scratch while zeroing filters after every
# epoch; its result is an arm of the method (`soft`) and what the prune rule then reads.
rule train_soft:
    input:
        data=dataset_input,
    output:
        model=f"{DERIVED}/model.pt",
        metrics=f"{DERIVED}/metrics.json",
        eval=f"{DERIVED}/eval.json",
    log:
        f"{DERIVED}/train.log",
    wildcard_constraints:
        arm="soft",
    group:
        pack_group("base")
    conda:
        ENV
    threads: S["threads"]
    resources:
        **train_resources(),
    params:
        launch=launcher,
        data=lambda wc: data_args(wc),
        args=lambda wc: train_args(wc.arm, wc.tag),
        tag=lambda wc: tag_args(wc.tag, base=False),
    shell:
        "{params.launch} train --arch {wildcards.arch} --method {wildcards.method}"
        " --setting {wildcards.setting} --seed {wildcards.seed} {params.args}{params.tag}"
        " --threads {threads}{params.data} --data {input.data:q} --model-out {output.model:q}"
        " --metrics-out {output.metrics:q}"
        " --eval-out {output.eval:q} 2> {log:q}"


# The base's initial weights theta_0 (the lottery ticket's init): rebuilt from the base's seed
# and model exactly as its training began, and checked against the hash the base recorded.
rule save_init:
    input:
        model=f"{BASE}/model.pt",
        metrics=f"{BASE}/metrics.json",
    output:
        f"{BASE}/init.pt",
    log:
        f"{BASE}/init.log",
    conda:
        ENV
    threads: 1
    resources:
        runtime=10,
        mem_mb=2000,
    shell:
        "prunebench init --base {input.model:q} --metrics {input.metrics:q}"
        " --out {output:q} 2> {log:q}"
