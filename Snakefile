# prunebench: the DAG only. Which runs exist comes from the studies in config.yaml; what each
# file holds and how it is made lives in the `prunebench` package that every rule calls.
from snakemake.utils import min_version

min_version("9.19")


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/prune.smk"
include: "workflow/rules/retrain.smk"
include: "workflow/rules/fused.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/li.smk"
include: "workflow/rules/cost.smk"
include: "workflow/rules/bench.smk"
include: "workflow/rules/studies.smk"


rule all:
    default_target: True
    input:
        [f for study in STUDIES for f in study_outputs(study)],


localrules:
    all,
    prepare_data,
    prepare_imagenet,
    make_table,
    plot_table,
    plot_statistics,
    plot_channels,
    plot_kernels,
    save_init,
    derive,
    li_table2,
    li_report,
    sanity,
    html_page,
    ledger,
