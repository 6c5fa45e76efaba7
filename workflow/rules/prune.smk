# Li et al.'s predefined pruned architectures: rank filters on the trained model, cut them.


rule prune:
    input:
        model=f"{RUNS}/{{arch}}/base/seed{{seed}}/model.pt",
    output:
        model=f"{RUNS}/{{arch}}-{{variant}}/pruned-{{criterion}}/seed{{seed}}/pruned.pt",
        report=f"{RUNS}/{{arch}}-{{variant}}/pruned-{{criterion}}/seed{{seed}}/prune.json",
    log:
        f"{RUNS}/{{arch}}-{{variant}}/pruned-{{criterion}}/seed{{seed}}/prune.log",
    conda:
        ENV
    threads: 1
    resources:
        runtime=10,
        mem_mb=2000,
    shell:
        "prunebench prune --model {input.model:q} --variant {wildcards.variant}"
        " --criterion {wildcards.criterion} --seed {wildcards.seed}"
        " --out {output.model:q} --report {output.report:q} 2> {log:q}"
