"""Tables (pandas) and figures (seaborn) from evaluation JSONs, with the papers' numbers beside ours."""
