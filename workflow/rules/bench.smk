# `snakemake --cores 4 bench`: training speed of prunebench vs a reference-style loop on the
# device this job gets (a GPU through the SLURM profile), with packing and a GPU-hour projection.


rule bench:
    input:
        data=data_file("cifar10"),
    output:
        json=f"{RESULTS}/bench/bench.json",
        md=f"{RESULTS}/bench/bench.md",
    log:
        f"{RESULTS}/logs/bench.log",
    conda:
        ENV
    threads: max(config["bench"]["workers"], 1)
    resources:
        **train_resources(runtime=120),
    params:
        args=bench_args(),
    shell:
        "prunebench bench {params.args} --data {input.data:q}"
        " --out-json {output.json:q} --out-md {output.md:q} 2> {log:q}"
