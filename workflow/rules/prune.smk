# Prune a trained model by its method at one setting: Li's predefined variants rank filters;
# network slimming thresholds the BatchNorm scales of the sparsity-trained base; unstructured
# pruning masks the smallest conv weights; SFP reads the zero pattern of its soft run.


rule prune:
    input:
        model=prune_input,
    output:
        model=PRUNED_FILE,
        report=f"{PRUNED}/prune.json",
    log:
        f"{PRUNED}/prune.log",
    conda:
        ENV
    threads: 1
    resources:
        runtime=10,
        mem_mb=2000,
    shell:
        "prunebench prune --model {input.model:q} --method {wildcards.method}"
        " --setting {wildcards.setting} --seed {wildcards.seed}"
        " --out {output.model:q} --report {output.report:q} 2> {log:q}"
