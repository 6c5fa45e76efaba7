# Li et al.'s analyses (a study with report: li). A sensitivity curve without retraining is one
# job: every pruned copy of one trained model is cheap to evaluate, so a job per point would
# spend more on scheduling and model loading than on the points. Retrained points are ordinary
# prune, fine-tune and evaluate jobs of the methods layer, consecutive and layerwise.


rule curve:
    input:
        model=f"{BASE}/model.pt",
        data=dataset_input,
    output:
        CURVE,
    log:
        CURVE.replace("curve.json", "curve.log"),
    wildcard_constraints:
        mode="layer|consecutive",
        name=r"[a-z0-9_]+",
    conda:
        ENV
    threads: S["threads"]
    resources:
        **train_resources(runtime=S["runtime_min"]["evaluate"] * 4),
    params:
        args=curve_args,
        subset=subset_args(),
        device=config["device"],
    shell:
        "prunebench curve --model {input.model:q} --data {input.data:q} --mode {wildcards.mode}"
        " --name {wildcards.name} {params.args} --seed {wildcards.seed}{params.subset}"
        " --device {params.device} --threads {threads} --out {output:q} 2> {log:q}"


# Table 2: computed from the width lists, nothing trained.
rule li_table2:
    output:
        csv=f"{RESULTS}/tables/{{study}}-table2.csv",
        md=f"{RESULTS}/tables/{{study}}-table2.md",
    log:
        f"{RESULTS}/logs/table2-{{study}}.log",
    conda:
        ENV
    params:
        variants=lambda wc: " ".join(
            f"--variants {arch}={','.join(map(str, vs))}"
            for arch, vs in STUDIES[wc.study]["analyses"].get("table2", {}).items()
        ),
        title=lambda wc: f"{STUDIES[wc.study].get('title', wc.study)}: Table 2 per layer",
    shell:
        "prunebench li-table2 {params.variants} --title {params.title:q}"
        " --csv {output.csv:q} --md {output.md:q} 2> {log:q}"


rule li_report:
    input:
        curves=lambda wc: study_curves(wc.study),
        evals=study_evals,
    output:
        curves=f"{RESULTS}/tables/{{study}}-curves.csv",
        iterative_csv=f"{RESULTS}/tables/{{study}}-iterative.csv",
        iterative_md=f"{RESULTS}/tables/{{study}}-iterative.md",
        norms=report(
            f"{RESULTS}/figures/{{study}}-norms.png",
            caption="../report/li_norms.rst",
            category="{study}",
            subcategory="Figures",
        ),
        sensitivity=report(
            f"{RESULTS}/figures/{{study}}-sensitivity.png",
            caption="../report/li_sensitivity.rst",
            category="{study}",
            subcategory="Figures",
        ),
        criteria=report(
            f"{RESULTS}/figures/{{study}}-criteria.png",
            caption="../report/li_criteria.rst",
            category="{study}",
            subcategory="Figures",
        ),
        consecutive=report(
            f"{RESULTS}/figures/{{study}}-consecutive.png",
            caption="../report/li_consecutive.rst",
            category="{study}",
            subcategory="Figures",
        ),
    log:
        f"{RESULTS}/logs/li-report-{{study}}.log",
    conda:
        ENV
    params:
        metric=config["report_metric"],
        title=lambda wc: f"{STUDIES[wc.study].get('title', wc.study).split(':')[0]} ({SCALE} scale)",
    shell:
        "prunebench li-report {input.curves:q} {input.evals:q} --metric {params.metric}"
        " --title {params.title:q} --curves-csv {output.curves:q}"
        " --iterative-csv {output.iterative_csv:q} --iterative-md {output.iterative_md:q}"
        " --norms {output.norms:q} --sensitivity {output.sensitivity:q}"
        " --criteria {output.criteria:q} --consecutive {output.consecutive:q} 2> {log:q}"
