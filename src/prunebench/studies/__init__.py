"""Studies: one table of a paper each, as data in ``config.yaml``. :mod:`.study` turns a study into
its rows of runs (the Snakefile reads these to draw the DAG) and checks it before any job runs;
:mod:`.analyses` does the same for Li et al.'s analyses block; :mod:`.config` validates the whole
config against its schema with one-line errors.

Adding a study is a block in ``config.yaml`` (see the docs' development page); a new kind of
table is a module in :mod:`prunebench.report`. Imports methods, models, pruning, data and core.
"""
