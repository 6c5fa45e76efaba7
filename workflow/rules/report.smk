# Evaluation JSONs -> tables and figures.


rule evaluate:
    input:
        data=data_file(),
        model=f"{RUNS}/{{run}}/model.pt",
        metrics=f"{RUNS}/{{run}}/metrics.json",
    output:
        f"{RUNS}/{{run}}/eval.json",
    log:
        f"{RUNS}/{{run}}/evaluate.log",
    conda:
        ENV
    threads: 2
    resources:
        runtime=S["runtime_min"]["evaluate"],
        mem_mb=S["mem_mb"]["evaluate"],
    params:
        subset=(
            f"--test-subset {S['test_subset']}" if S["test_subset"] is not None else ""
        ),
        # Evaluation asks for no GPU, so it must not touch one another job holds.
        device="cpu",
    shell:
        "prunebench evaluate --model {input.model:q} --metrics {input.metrics:q}"
        " --data {input.data:q} {params.subset} --device {params.device} --threads {threads}"
        " --out {output:q} 2> {log:q}"


rule make_table1:
    input:
        table1_evals(),
    output:
        csv=f"{RESULTS}/tables/table1.csv",
        md=f"{RESULTS}/tables/table1.md",
    log:
        f"{RESULTS}/logs/table1.log",
    conda:
        ENV
    params:
        metric=config["report_metric"],
        title=f"Table 1 ({SCALE} scale): L1-norm filter pruning (Li et al.) on {DATASET}",
    shell:
        "prunebench table {input:q} --metric {params.metric} --title {params.title:q}"
        " --csv {output.csv:q} --md {output.md:q} 2> {log:q}"


rule plot_table1:
    input:
        f"{RESULTS}/tables/table1.csv",
    output:
        f"{RESULTS}/figures/table1.png",
    log:
        f"{RESULTS}/logs/figure1.log",
    conda:
        ENV
    shell:
        "prunebench figure --table {input:q} --out {output:q} 2> {log:q}"


rule table1:
    input:
        rules.make_table1.output,
        rules.plot_table1.output,
