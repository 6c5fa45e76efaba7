# What the study's runs cost: training compute per arm (counted, pretraining included for
# fine-tuning; hours measured) and measured inference latency beside counted MACs.


rule ledger:
    input:
        study_evals,
    output:
        csv=f"{RESULTS}/tables/{{study}}-ledger.csv",
        md=f"{RESULTS}/tables/{{study}}-ledger.md",
        png=report(
            f"{RESULTS}/figures/{{study}}-ledger.png",
            caption="../report/ledger.rst",
            category="{study}",
            subcategory="Cost",
        ),
    log:
        f"{RESULTS}/logs/ledger-{{study}}.log",
    conda:
        ENV
    params:
        metric=config["report_metric"],
        title=lambda wc: f"Training compute: {STUDIES[wc.study].get('title', wc.study)} ({SCALE} scale)",
    shell:
        "prunebench-report ledger {input:q} --study {wildcards.study} --metric {params.metric}"
        " --title {params.title:q} --csv {output.csv:q} --md {output.md:q}"
        " --figure {output.png:q} 2> {log:q}"


# Latency on the device the job gets (CPU, and the GPU where the cluster gives one).
rule latency:
    input:
        study_latency_models,
    output:
        csv=f"{RESULTS}/tables/{{study}}-latency.csv",
        md=f"{RESULTS}/tables/{{study}}-latency.md",
        png=report(
            f"{RESULTS}/figures/{{study}}-latency.png",
            caption="../report/latency.rst",
            category="{study}",
            subcategory="Cost",
        ),
    log:
        f"{RESULTS}/logs/latency-{{study}}.log",
    conda:
        ENV
    threads: S["threads"]
    resources:
        **train_resources(runtime=S["runtime_min"]["evaluate"]),
    params:
        args=latency_args,
        title=lambda wc: f"Inference cost: {STUDIES[wc.study].get('title', wc.study)} ({SCALE} scale)",
    shell:
        "prunebench latency {input:q} {params.args} --threads {threads} --title {params.title:q}"
        " --csv {output.csv:q} --md {output.md:q} --figure {output.png:q} 2> {log:q}"
