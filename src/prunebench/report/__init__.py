"""Study tables (pandas), their statistics and figures (seaborn), the compute ledger and the HTML
page, from the eval.json and prune.json files runs leave, with the papers' numbers beside ours.

A new kind of table is a module here whose builder the ``table`` command dispatches to by the
study's ``report`` kind. Imports the analysis, training and library layers for what they
measure and count; never the command layer.
"""
