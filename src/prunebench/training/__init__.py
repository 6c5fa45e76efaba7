"""What one run is, from its inputs to its files: the training loop every arm shares
(:mod:`.loop`: base, fine-tune, Scratch-E/B, soft, winning differ only in data; on a GPU its
step replayed as a CUDA graph, :mod:`.graphs`), each arm's
schedule and Scratch-B's budget (:mod:`.protocols`), model files (:mod:`.checkpoints`),
data-parallel processes under torchrun (:mod:`.distributed`), the per-run self-checks
(:mod:`.checks`), and the steps a rule calls (:mod:`.runs`: train, prune, init, evaluate;
:mod:`.derivation`: architectures derived from other runs' prune reports).

Imports :mod:`prunebench.methods` and the library below it (pruning, models, data, core); never
the analysis, report or command layers.
"""
