"""prunebench: is the pruned network worth more than the small one trained from scratch?

The package is laid out in layers; each subpackage imports only the ones below it (checked by
``tests/test_layout.py``):

1. :mod:`prunebench.commands`: every click command and the two entry points (``prunebench``,
   ``prunebench-report``). The only place that parses arguments.
2. :mod:`prunebench.report`: tables, statistics, figures and the HTML page, from the JSON files
   runs leave.
3. :mod:`prunebench.analysis`: Li et al.'s sensitivity curves, measured latency, the training
   speed benchmark. :mod:`prunebench.studies`: a study of ``config.yaml`` as rows of runs, and
   the config's checks.
4. :mod:`prunebench.training`: what one run is: the training loop for every arm, its protocols,
   checkpoints and resume, data-parallel processes, the per-run checks, and the prune, derive
   and init steps that produce a run's input.
5. :mod:`prunebench.methods`: the pruning-method registry, one module per method.
6. :mod:`prunebench.pruning`: criteria, Li's variants, surgery, activation evidence.
7. :mod:`prunebench.models` (architectures, masks, MACs) and :mod:`prunebench.data` (CIFAR and
   ImageNet).
8. :mod:`prunebench.core`: errors, atomic io, provenance, names, small helpers.
"""

__version__ = "0.1.0"
