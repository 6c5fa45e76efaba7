"""Study tables (pandas), their figures and per-layer channel figures (seaborn), from evaluation and prune JSONs, with the papers' numbers beside ours."""
