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
        return f"untested ({n} seed{'s' if n != 1 else ''}; a test needs 2): ours {d:+.2f}, {claim}"
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
