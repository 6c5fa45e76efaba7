# The large model every pruning method starts from (160 epochs at paper scale); its base tag
# says how it trains (plain, or with network slimming's sparsity penalty) and with which options.


rule train_base:
    input:
        data=data_file("{dataset}"),
    output:
        model=f"{BASE}/model.pt",
        metrics=f"{BASE}/metrics.json",
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
        args=train_args("base"),
        tag=lambda wc: tag_args(wc.tag, base=True),
    shell:
        "prunebench train --arch {wildcards.arch} --seed {wildcards.seed} {params.args}"
        "{params.tag} --threads {threads} --data {input.data:q} --model-out {output.model:q}"
        " --metrics-out {output.metrics:q} 2> {log:q}"
