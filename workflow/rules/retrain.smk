# The arms compared on each pruned architecture: fine-tune the pruned weights, or train the same
# architecture from a fresh init for the same epochs (Scratch-E) or the same MACs budget
# (Scratch-B). A predefined architecture (Li's variants) needs no trained model for the scratch
# arms; a learned one takes its cfg and channel selections (network slimming) or its masks
# (unstructured pruning, SFP) from the pruned file. The winning ticket (lottery study) puts those
# masks on the base's own initial weights (theta_0) instead of a fresh init.


rule finetune:
    input:
        data=dataset_input,
        init=PRUNED_FILE,
    output:
        model=f"{DERIVED}/model.pt",
        metrics=f"{DERIVED}/metrics.json",
        eval=f"{DERIVED}/eval.json",
    log:
        f"{DERIVED}/train.log",
    wildcard_constraints:
        arm=r"finetune(-\d+ep)?",
    group:
        chain_safe_group("finetune")
    conda:
        ENV
    threads: S["threads"]
    resources:
        **train_resources(),
    params:
        launch=launcher,
        data=lambda wc: data_args(wc),
        args=lambda wc: train_args(wc.arm, wc.tag),
    shell:
        "{params.launch} train --arch {wildcards.arch} --seed {wildcards.seed} {params.args}"
        " --threads {threads}{params.data} --init {input.init:q} --data {input.data:q}"
        " --model-out {output.model:q} --metrics-out {output.metrics:q}"
        " --eval-out {output.eval:q} 2> {log:q}"


rule scratch:
    input:
        unpack(scratch_inputs),
    output:
        model=f"{DERIVED}/model.pt",
        metrics=f"{DERIVED}/metrics.json",
        eval=f"{DERIVED}/eval.json",
    log:
        f"{DERIVED}/train.log",
    wildcard_constraints:
        arm=r"scratch-e|scratch-b(-beforemask|-\d+ep)?|winning",
    group:
        chain_safe_group("scratch")
    conda:
        ENV
    threads: S["threads"]
    resources:
        **train_resources(),
    params:
        launch=launcher,
        data=lambda wc: data_args(wc),
        args=lambda wc: train_args(wc.arm, wc.tag),
        arch=lambda wc, input: (
            f" --init {input.init}"
            if "init" in input.keys()
            else tag_args(wc.tag, base=False)
        )
        + (f" --theta0 {input.theta0}" if "theta0" in input.keys() else ""),
    shell:
        "{params.launch} train --arch {wildcards.arch} --method {wildcards.method}"
        " --setting {wildcards.setting} --seed {wildcards.seed} {params.args}{params.arch}"
        " --threads {threads}{params.data} --data {input.data:q} --model-out {output.model:q}"
        " --metrics-out {output.metrics:q}"
        " --eval-out {output.eval:q} 2> {log:q}"
