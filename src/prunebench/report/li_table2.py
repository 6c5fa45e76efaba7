"""Li et al. Table 2 from the model: per conv and linear layer, its input size, maps, MACs and
parameters, the maps a variant keeps and the MAC reduction, with the totals.

Nothing is trained: both networks are built from their width lists. Where the paper printed the
row (VGG-16-A, ``li_table2_paper.csv``), its values sit beside ours and ``matches`` says whether
ours agree to the paper's rounding (two significant digits; reductions to the whole percent).
"""

from __future__ import annotations

from importlib import resources

import pandas as pd

from prunebench import models
from prunebench.core.names import arch_name
from prunebench.models.counting import per_layer
from prunebench.pruning import variant_cfg

from .table import write_csv_md

COLUMNS = ["model", "variant", "layer", "module", "input", "maps", "macs", "params", "maps_after", "macs_after", "params_after", "macs_reduction_pct"]
PAPER_COLUMNS = ["macs", "params", "maps_after", "macs_reduction_pct"]


def layer_table(arch: str, variant: str, num_classes: int = 10, options: dict | None = None, cfg: list | None = None) -> pd.DataFrame:
    """One row per conv and linear layer of ``arch`` and of its pruned form (Li's ``variant``, or
    the width list ``cfg`` under that label), and a total."""
    options = options or {}
    full = per_layer(models.build(arch, None, num_classes, **options))
    cfg = variant_cfg(arch, variant) if cfg is None else cfg
    pruned = {r["module"]: r for r in per_layer(models.build(arch, cfg, num_classes, **options))}
    rows = []
    for r in full:
        p = pruned[r["module"]]
        rows.append({"model": arch, "variant": variant, **{k: r[k] for k in ("layer", "module", "input", "maps", "macs", "params")}, "maps_after": p["maps"], "macs_after": p["macs"], "params_after": p["params"]})
    df = pd.DataFrame(rows)
    total = {"model": arch, "variant": variant, "layer": "total", "module": "", "input": "", **{k: int(df[k].sum()) for k in ("macs", "params", "macs_after", "params_after")}}
    df = pd.concat([df, pd.DataFrame([total])], ignore_index=True)
    df["macs_reduction_pct"] = (100 * (1 - df["macs_after"] / df["macs"])).round(1)
    for c in ("maps", "maps_after"):
        df[c] = df[c].astype("Int64")
    return df[COLUMNS]


def _sci(x) -> str:
    """The paper's notation: 1.77e6."""
    mantissa, exponent = f"{float(x):.2e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def _rounded(value, column: str) -> str:
    if pd.isna(value):
        return ""
    if column == "macs_reduction_pct":
        return f"{float(value):.0f}"
    if column == "maps_after":
        return f"{int(value)}"
    mantissa, exponent = f"{float(value):.1e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def with_paper(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with the paper's value of each compared column (paper_<column>) and ``matches``:
    yes/no where the paper has the row, empty where it has not."""
    paper = pd.read_csv(resources.files("prunebench.report").joinpath("li_table2_paper.csv"), dtype={"variant": str})
    merged = df.merge(paper[["model", "variant", "layer"] + PAPER_COLUMNS].rename(columns={c: f"paper_{c}" for c in PAPER_COLUMNS}), on=["model", "variant", "layer"], how="left")
    has_paper = merged[[f"paper_{c}" for c in PAPER_COLUMNS]].notna().any(axis=1)
    agree = pd.Series(True, index=merged.index)
    for c in PAPER_COLUMNS:
        known = merged[f"paper_{c}"].notna()
        ours = merged[c].map(lambda v, c=c: _rounded(v, c))
        theirs = merged[f"paper_{c}"].map(lambda v, c=c: _rounded(v, c))
        agree &= ~known | (ours == theirs)
    merged["matches"] = [("yes" if ok else "no") if paper_row else "" for ok, paper_row in zip(agree, has_paper)]
    return merged


def to_markdown(df: pd.DataFrame, title: str | None = None) -> str:
    """One section per model and variant, counts in the paper's notation (1.77e6)."""
    lines = [f"# {title}", ""] if title else []
    for (arch, variant), part in df.groupby(["model", "variant"], sort=False):
        paper = "matches" in part and (part["matches"] != "").any()
        lines += [f"## {arch_name(arch)}-{variant}", ""]
        head = ["layer", "input", "maps", "MACs", "params", "maps kept", "MAC reduction"] + (["paper (MACs, params, kept, reduction)", "matches"] if paper else [])
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for _, r in part.iterrows():
            cells = [r["layer"], r["input"], "" if pd.isna(r["maps"]) else f"{int(r['maps'])}", _sci(r["macs"]), _sci(r["params"]), "" if pd.isna(r["maps_after"]) else f"{int(r['maps_after'])}", f"{r['macs_reduction_pct']:.1f}%"]
            if paper:
                theirs = ", ".join(_rounded(r[f"paper_{c}"], c) or "-" for c in PAPER_COLUMNS) if r["matches"] else ""
                cells += [theirs, r["matches"]]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def build(variants: dict[str, list[str]], num_classes: int = 10) -> pd.DataFrame:
    """The per-layer tables of every model and variant of ``variants`` ({arch: [variant, ...]})."""
    return with_paper(pd.concat([layer_table(arch, str(v), num_classes) for arch, vs in variants.items() for v in vs], ignore_index=True))


def write(df: pd.DataFrame, csv_path: str, md_path: str, title: str) -> None:
    write_csv_md(df, to_markdown(df, title), csv_path, md_path)
