# Decode the dataset once into one uint8 tensor file that every training job reads.


rule prepare_data:
    output:
        f"{RESULTS}/data/{{dataset}}.pt",
    log:
        f"{RESULTS}/logs/prepare_{{dataset}}.log",
    conda:
        ENV
    threads: 1
    resources:
        runtime=60,
        mem_mb=4000,
    params:
        root=config["data_root"],
        download="--download" if config["download"] else "--no-download",
    shell:
        "prunebench prepare --dataset {wildcards.dataset} --data-root {params.root:q}"
        " {params.download} --out {output:q} 2> {log:q}"


# ImageNet is never downloaded nor copied: its ImageFolder tree under data_root is checked and
# described once in a manifest that the runs read (a missing tree is a one-line error).
rule prepare_imagenet:
    output:
        f"{RESULTS}/data/imagenet.json",
    log:
        f"{RESULTS}/logs/prepare_imagenet.log",
    conda:
        ENV
    threads: 1
    resources:
        runtime=60,
        mem_mb=2000,
    params:
        root=config["data_root"],
    shell:
        "prunebench prepare --dataset imagenet --data-root {params.root:q} --out {output:q} --verify sample"
        " 2> {log:q}"
