# prunebench: the DAG only. Which runs exist comes from config.yaml; what each file holds and
# how it is made lives in the `prunebench` package that every rule calls.
from snakemake.utils import min_version

min_version("9.19")


configfile: "config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/prune.smk"
include: "workflow/rules/retrain.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/bench.smk"


localrules:
    all,
    table1,
    prepare_data,
    make_table1,
    plot_table1,


rule all:
    default_target: True
    input:
        rules.table1.input,
