"""Measurements that are not a training run: Li et al.'s sensitivity curves without retraining
(:mod:`.curves`), the measured inference cost of model files (:mod:`.latency`), the training
speed benchmark against a reference-style loop (:mod:`.bench`) and the speed of the training
step alone (:mod:`.step_speed`).

Imports :mod:`prunebench.training` and the library below it; the report layer draws what these
measure.
"""
