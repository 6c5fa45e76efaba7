# Evaluation JSONs -> one table, its figure and the pruned architectures' figure per study. A
# run's eval.json comes from the job that trained it (`prunebench train --eval-out`: its saved
# files re-read and re-evaluated, the sanity checks run), not from a job of its own: one process
# start, and on a cluster one queued job, fewer per run. `prunebench evaluate` redoes one by hand.


rule make_table:
    input:
        study_evals,
    output:
        csv=f"{RESULTS}/tables/{{study}}.csv",
        md=f"{RESULTS}/tables/{{study}}.md",
        tex=f"{RESULTS}/tables/{{study}}.tex",
    log:
        f"{RESULTS}/logs/table-{{study}}.log",
    conda:
        ENV
    params:
        metric=config["report_metric"],
        paper=lambda wc: STUDIES[wc.study].get("paper", wc.study),
        kind=lambda wc: STUDIES[wc.study].get("report", "table"),
        title=lambda wc: f"{STUDIES[wc.study].get('title', wc.study)} ({SCALE} scale)",
    shell:
        "prunebench-report table {input:q} --study {params.paper} --metric {params.metric}"
        " --kind {params.kind} --title {params.title:q} --csv {output.csv:q}"
        " --md {output.md:q} --tex {output.tex:q} 2> {log:q}"


rule plot_table:
    input:
        f"{RESULTS}/tables/{{study}}.csv",
    output:
        report(
            f"{RESULTS}/figures/{{study}}.png",
            caption="../report/figure.rst",
            category="{study}",
            subcategory="Figures",
        ),
    log:
        f"{RESULTS}/logs/figure-{{study}}.log",
    conda:
        ENV
    params:
        kind=lambda wc: STUDIES[wc.study].get("report", "table"),
        title=lambda wc: f"{STUDIES[wc.study].get('title', wc.study)} ({SCALE} scale)",
    shell:
        "prunebench-report figure --table {input:q} --kind {params.kind} --title {params.title:q}"
        " --out {output:q} 2> {log:q}"


# A table's statistics at a glance (kind table): intervals per arm, differences from fine-tuning.
rule plot_statistics:
    input:
        f"{RESULTS}/tables/{{study}}.csv",
    output:
        ci=report(
            f"{RESULTS}/figures/{{study}}-ci.png",
            caption="../report/stats_ci.rst",
            category="{study}",
            subcategory="Statistics",
        ),
        diff=report(
            f"{RESULTS}/figures/{{study}}-diff.png",
            caption="../report/stats_diff.rst",
            category="{study}",
            subcategory="Statistics",
        ),
    log:
        f"{RESULTS}/logs/statistics-{{study}}.log",
    conda:
        ENV
    params:
        title=lambda wc: f"{STUDIES[wc.study].get('title', wc.study)} ({SCALE} scale)",
    shell:
        "prunebench-report stats-figure --table {input:q} --ci {output.ci:q} --diff {output.diff:q}"
        " --title {params.title:q} 2> {log:q}"


rule plot_channels:
    input:
        study_prunes,
    output:
        csv=f"{RESULTS}/tables/{{study}}-channels.csv",
        png=report(
            f"{RESULTS}/figures/{{study}}-channels.png",
            caption="../report/channels.rst",
            category="{study}",
            subcategory="Figures",
        ),
    log:
        f"{RESULTS}/logs/channels-{{study}}.log",
    conda:
        ENV
    params:
        title=lambda wc: f"Channels kept per layer: {STUDIES[wc.study].get('title', wc.study)}",
    shell:
        "prunebench-report channels {input:q} --title {params.title:q} --csv {output.csv:q}"
        " --out {output.png:q} 2> {log:q}"


# Pruning as architecture search: the average kept 3x3 kernel per stage of its masked rows.
rule plot_kernels:
    input:
        study_prunes,
    output:
        csv=f"{RESULTS}/tables/{{study}}-kernels.csv",
        png=report(
            f"{RESULTS}/figures/{{study}}-kernels.png",
            caption="../report/kernels.rst",
            category="{study}",
            subcategory="Figures",
        ),
    log:
        f"{RESULTS}/logs/kernels-{{study}}.log",
    conda:
        ENV
    params:
        title=lambda wc: f"Average kept 3x3 kernel per stage: {STUDIES[wc.study].get('title', wc.study)}",
    shell:
        "prunebench-report kernels {input:q} --title {params.title:q} --csv {output.csv:q}"
        " --out {output.png:q} 2> {log:q}"


# Every run's sanity checks (measured again at evaluation; a failed run is left out of the means).
rule sanity:
    input:
        study_evals,
    output:
        csv=f"{RESULTS}/tables/{{study}}-checks.csv",
        md=f"{RESULTS}/tables/{{study}}-checks.md",
    log:
        f"{RESULTS}/logs/checks-{{study}}.log",
    conda:
        ENV
    params:
        title=lambda wc: f"Sanity checks: {STUDIES[wc.study].get('title', wc.study)} ({SCALE} scale)",
    shell:
        "prunebench-report checks {input:q} --title {params.title:q} --csv {output.csv:q}"
        " --md {output.md:q} 2> {log:q}"


# A Markdown table as an HTML page: what the HTML report (snakemake --report) shows of it.
rule html_page:
    input:
        f"{RESULTS}/tables/{{page}}.md",
    output:
        report(
            f"{RESULTS}/html/{{page}}.html",
            caption="../report/page.rst",
            category=page_study,
            subcategory="Tables",
        ),
    log:
        f"{RESULTS}/logs/html-{{page}}.log",
    conda:
        ENV
    shell:
        "prunebench-report html --md {input:q} --out {output:q} 2> {log:q}"
