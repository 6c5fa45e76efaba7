"""Statistics behind a study table's cells, so a reader sees whether a difference is real.

Per arm: a 95 % confidence interval of the mean (Student's t over the seeds) and the distance of
our mean from the paper's in units of the paper's std. Per scratch arm: the paired comparison
with fine-tuning over the seeds both ran (scipy's paired t-test; a seed's scratch and fine-tuned
runs share the pruned architecture) and a verdict in words on whether the paper's conclusion for
that row holds here: the paper's sign of (scratch - fine-tuned), or, where it printed no numbers,
Rethinking's claim that Scratch-B is on par with or better than fine-tuning.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

LEVEL = 0.95  # confidence level of the intervals
ALPHA = 0.05  # significance level of the paired test
DATASETS = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "imagenet": "ImageNet"}
ARM_NAMES = {"finetune": "fine-tuned", "scratch-e": "Scratch-E", "scratch-b": "Scratch-B", "soft": "soft-pruned"}


def interval(values) -> tuple[float, float]:
    """The 95 % confidence interval of the mean of ``values`` (NaN with fewer than 2)."""
    v = np.asarray(list(values), dtype=float)
    if len(v) < 2:
        return math.nan, math.nan
    if np.all(v == v[0]):
        return float(v[0]), float(v[0])
    low, high = stats.t.interval(LEVEL, len(v) - 1, loc=v.mean(), scale=stats.sem(v))
    return float(low), float(high)


def paper_z(mean: float, paper: float, paper_std: float) -> float:
    """(ours - paper) in units of the paper's std; NaN where the paper gives no std."""
    if any(x is None or math.isnan(x) for x in (mean, paper, paper_std)) or paper_std <= 0:
        return math.nan
    return (mean - paper) / paper_std


def paired(finetune: dict, other: dict) -> dict:
    """``other`` minus fine-tuned over the seeds both ran: pairs, mean difference, t and p."""
    seeds = sorted(set(finetune) & set(other))
    diff = np.array([other[s] - finetune[s] for s in seeds], dtype=float)
    low, high = interval(diff)
    out = {"pairs": len(seeds), "diff": float(diff.mean()) if len(diff) else math.nan, "ci95_low": low, "ci95_high": high, "t": math.nan, "p": math.nan}
    if len(diff) >= 2:
        if np.all(diff == diff[0]):  # no spread: the test is undefined; the sign is certain only if nonzero
            out["p"] = 1.0 if diff[0] == 0 else 0.0
        else:
            test = stats.ttest_rel([other[s] for s in seeds], [finetune[s] for s in seeds])
            out["t"], out["p"] = float(test.statistic), float(test.pvalue)
    return out


def untested(pairs: int, diff: float, claim: str) -> str:
    """The verdict where a paired test cannot be run (fewer than 2 seeds)."""
    return f"untested ({pairs} seed{'s' if pairs != 1 else ''}; a test needs 2): ours {diff:+.2f}, {claim}"


def verdict(arm: str, comparison: dict, paper_diff: float | None, tolerance: float = 0.0) -> str:
    """Whether this row reproduces the paper's conclusion about ``arm`` against fine-tuning: that
    training from scratch is on par with or better than fine-tuning (the paper's difference at
    least -``tolerance``, the larger paper std of the two arms), or that fine-tuning is better.
    The first holds unless fine-tuning is significantly better here; the second only if it is."""
    name = ARM_NAMES.get(arm, arm)
    n, d, p = comparison["pairs"], comparison["diff"], comparison["p"]
    if n == 0:
        return f"no {name} and fine-tuned runs of the same seed"
    if paper_diff is None or math.isnan(paper_diff):
        if arm != "scratch-b":
            return f"no paper value to compare; ours {name} - fine-tuned = {d:+.2f}"
        paper_diff, claim = 0.0, "Rethinking: Scratch-B on par or better"
    else:
        claim = f"paper {name} - fine-tuned = {paper_diff:+.2f}"
    if n < 2 or math.isnan(p):
        return untested(n, d, claim)
    significant = p < ALPHA
    ours = f"ours {d:+.2f} (p={p:.3g}, {n} seeds)"
    finetune_better = d < 0 and significant
    found = "fine-tuned better" if finetune_better else f"{name} {'better' if significant else 'on par'}"
    if abs(paper_diff) <= tolerance:
        claim += " (on par within its std)"
    if paper_diff >= -tolerance:  # the paper: scratch on par with or better than fine-tuning
        return f"{'not reproduced' if finetune_better else 'reproduced'}: {found}; {ours}; {claim}"
    return f"{'reproduced' if finetune_better else 'not reproduced'}: {found}; {ours}; {claim}"


SCRATCH_ARMS = ("scratch-e", "scratch-b")


def reference_arm(by_arm: dict) -> str:
    """What the scratch arms are compared with: fine-tuning; SFP's soft-pruned model where a row has no fine-tuned runs."""
    return "finetune" if by_arm.get("finetune") or not by_arm.get("soft") else "soft"


def column_names(arms) -> list[str]:
    """The statistics columns a study table adds after its own."""
    cols = [f"{a}_{s}" for a in arms for s in ("ci95_low", "ci95_high", "paper_z")]
    return cols + [f"{a}_vs_ft_{s}" for a in SCRATCH_ARMS for s in ("pairs", "diff", "ci95_low", "ci95_high", "t", "p", "verdict")]


def cell_statistics(row: dict, mine: pd.DataFrame, arms) -> dict:
    """The :func:`column_names` of one table row (its means and paper columns already in ``row``)
    from that row's runs ``mine`` (arm, seed, acc)."""
    by_arm = {a: dict(zip(mine.loc[mine["arm"] == a, "seed"], mine.loc[mine["arm"] == a, "acc"])) for a in arms}
    out = {}
    for a in arms:
        out[f"{a}_ci95_low"], out[f"{a}_ci95_high"] = interval(by_arm[a].values())
        out[f"{a}_paper_z"] = paper_z(row[f"{a}_mean"], row[f"paper_{a}"], row[f"paper_{a}_std"])
    reference = reference_arm(by_arm)
    for a in SCRATCH_ARMS:
        comp = paired(by_arm.get(reference, {}), by_arm.get(a, {}))
        out |= {f"{a}_vs_ft_{key}": value for key, value in comp.items()}
        paper_diff = row[f"paper_{a}"] - row[f"paper_{reference}"]
        stds = [row[f"paper_{x}_std"] for x in (a, reference) if not pd.isna(row[f"paper_{x}_std"])]
        out[f"{a}_vs_ft_verdict"] = verdict(a, comp, paper_diff, max(stds, default=0.0)) if by_arm.get(a) else ""
    return out


def markdown_lines(df) -> list[str]:
    """Per row, the 95 % intervals and the verdicts, as a list under the table."""
    if not len(df) or f"{SCRATCH_ARMS[0]}_vs_ft_verdict" not in df:
        return []
    lines = ["**Is the difference real?** Per row, each scratch arm against fine-tuning over the same seeds (paired t-test, 5 % level):", ""]
    for _, r in df.iterrows():
        verdicts = [f"{ARM_NAMES[a]}: {r[f'{a}_vs_ft_verdict']}" for a in SCRATCH_ARMS if isinstance(r[f"{a}_vs_ft_verdict"], str) and r[f"{a}_vs_ft_verdict"]]
        if verdicts:
            lines.append(f"- {r['model']} ({DATASETS.get(r['dataset'], r['dataset'])}): " + "; ".join(verdicts))
    return lines + ["", "CSV columns `<arm>_ci95_low/high` hold the 95 % confidence interval of each mean (Student's t), `<arm>_paper_z` the distance from the paper in units of its std.", ""]


# --------------------------------------------------------------------------- other tables' helpers
COMPARISON = ("pairs", "diff", "ci95_low", "ci95_high", "t", "p", "verdict")
# The paper's claim about (row - reference) -> the verdict for what we found: better, on par, worse.
READINGS = {
    "better": ("reproduced", "not reproduced", "not reproduced"),  # only a significant gain bears it out
    "better if shown": ("reproduced", "inconclusive", "not reproduced"),  # on par neither bears it out nor refutes it
    "not worse": ("reproduced", "reproduced", "not reproduced"),
    "no gain": ("not reproduced", "reproduced", "reproduced"),
}


def comparison_columns(prefix: str) -> list[str]:
    """The columns of one paired comparison: ``<prefix>_pairs`` ... ``<prefix>_verdict``."""
    return [f"{prefix}_{key}" for key in COMPARISON]


def comparison_cells(prefix: str, comparison: dict | None, text: str) -> dict:
    """A :func:`paired` result and its verdict as the :func:`comparison_columns` (NaN where none)."""
    return {f"{prefix}_{key}": (comparison or {}).get(key, math.nan) for key in COMPARISON[:-1]} | {f"{prefix}_verdict": text}


def judge(comparison: dict, expect: str | None, names: tuple[str, str], claim: str) -> str:
    """Whether ``names[0]`` minus ``names[1]`` over paired seeds bears out the paper's ``claim``, read
    as :data:`READINGS` ``[expect]`` says at the 5 % level; ``expect=None``: ours, no claim to test."""
    n, d, p = comparison["pairs"], comparison["diff"], comparison["p"]
    if n == 0:
        return f"no {names[0]} and {names[1]} runs of the same seed"
    if n < 2 or math.isnan(p):
        return untested(n, d, claim)
    outcome = 0 if p < ALPHA and d > 0 else 2 if p < ALPHA and d < 0 else 1
    found = (f"{names[0]} better", "on par", f"{names[1]} better")[outcome]
    said = f"{found}; ours {d:+.2f} (p={p:.3g}, {n} seeds); {claim}"
    return said if expect is None else f"{READINGS[expect][outcome]}: {said}"


def failed_checks(ev: dict) -> str:
    """The sanity checks a run failed, comma-joined; "" for none (evals from before the checks pass)."""
    names = ev.get("checks_failed") or []
    return ",".join(map(str, names)) if isinstance(names, list) else str(names)


def arm_cells(arm: str, runs: pd.DataFrame) -> dict:
    """``<arm>_mean/_std/_n/_ci95_low/_ci95_high`` of one arm's runs (columns acc)."""
    acc = runs["acc"]
    low, high = interval(acc)
    return {f"{arm}_mean": acc.mean() if len(acc) else math.nan, f"{arm}_std": acc.std(ddof=1) if len(acc) > 1 else math.nan,
            f"{arm}_n": len(acc), f"{arm}_ci95_low": low, f"{arm}_ci95_high": high}  # fmt: skip


def by_seed(runs: pd.DataFrame) -> dict:
    """seed -> accuracy of one arm's runs, what :func:`paired` takes."""
    return dict(zip(runs["seed"], runs["acc"]))


def split_failed(runs: pd.DataFrame, label) -> tuple[pd.DataFrame, dict]:
    """The runs that passed their checks, and ``failed_runs`` (count) and ``failed_checks``
    ("<label> seed <s>: <checks>") of the others; ``runs`` has columns seed and failed."""
    bad = runs[runs["failed"] != ""]
    named = "; ".join(f"{label(r)} seed {r['seed']}: {r['failed']}" for r in bad.to_dict("records"))
    return runs[runs["failed"] == ""], {"failed_runs": len(bad), "failed_checks": named}


def left_out(row: dict) -> str:
    """'1 run left out: winning seed 2: no_regrowth' for a row with failed runs, else ''."""
    n = row.get("failed_runs")
    if pd.isna(n) or not n:
        return ""
    return f"{int(n)} run{'s' if n != 1 else ''} left out for a failed check ({row['failed_checks']})"


def row_line(label: str, verdicts: list[str], row: dict) -> list[str]:
    """A Markdown list item: a row's verdicts and the runs it left out; none when it has neither."""
    said = [v for v in verdicts if isinstance(v, str) and v] + [x for x in (left_out(row),) if x]
    return [f"- {label}: " + "; ".join(said)] if said else []


def run_list(runs: pd.DataFrame) -> str:
    """The ``runs`` cell: every model file behind a row, ";"-joined, so a cell traces back to them."""
    return ";".join(sorted(m for m in runs["model_file"] if m))
