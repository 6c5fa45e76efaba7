# One target per study, named after it (`snakemake --cores 8 slimming`), made in a loop over
# config.yaml; `table1` is the L1-norm study under its old name; `all` builds every study.

for _study in STUDIES:

    rule:
        name:
            _study
        input:
            study_outputs(_study),
        localrule: True


# Named groups of studies (config `targets`): `snakemake imagenet` builds the four ImageNet ones.
for _target in [t for t in config.get("targets", {}) if target_studies(config, t)]:

    rule:
        name:
            _target
        input:
            [f for s in target_studies(config, _target) for f in study_outputs(s)],
        localrule: True


if "l1" in STUDIES:

    rule table1:
        input:
            study_outputs("l1"),
        localrule: True
