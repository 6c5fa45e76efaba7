"""The commands of Li et al.'s analyses (the ``li`` study): ``curve`` evaluates the pruned copies
of one trained model, ``li-table2`` writes the per-layer tables, ``li-report`` the tables and
figures of the curves and of the retrained runs."""

from __future__ import annotations

import logging

import click
import torch

from prunebench.core.errors import UserError
from prunebench.core.forms import Curve, Eval, read_form
from prunebench.core.io import all_or_none, check_outputs, write_text

log = logging.getLogger("prunebench")


def _numbers(kind):
    def parse(ctx: click.Context, param: click.Parameter, text: str | None) -> tuple:
        if not text:
            return ()
        try:
            return tuple(kind(v) for v in text.split(",") if v.strip())
        except ValueError:
            raise click.BadParameter(f"{text!r} is not a comma-separated list of {kind.__name__}s") from None

    return parse


@click.command()
@click.option("--model", "model_path", required=True, type=click.Path(dir_okay=False), help="The trained full model (a base run's model.pt).")
@click.option("--data", "data_path", required=True, type=click.Path(dir_okay=False), help="Prepared dataset file (prunebench prepare).")
@click.option("--mode", required=True, type=click.Choice(("layer", "consecutive")), help="layer: each layer pruned alone; consecutive: every layer at once.")
@click.option("--name", required=True, help="layer: a criterion (l1, l2, random, smallest, mean_mean, mean_std, mean_l1, mean_l2, var_l2); consecutive: independent or greedy.")
@click.option("--ratios", required=True, callback=_numbers(float), help="Fractions pruned, e.g. 0.1,0.5,0.9.")
@click.option("--layers", default="", callback=_numbers(int), help="layer mode: Li's layer numbers, e.g. 1,2,13 [default: every prunable layer].")
@click.option("--seed", default=1, show_default=True, type=int, help="Seed of the random criterion.")
@click.option("--train-subset", type=click.IntRange(min=1), help="Training images for the feature-map statistics [default: all].")
@click.option("--test-subset", type=click.IntRange(min=1), help="Test images to evaluate on [default: all].")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--threads", default=None, type=click.IntRange(min=1), help="CPU threads for torch.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="curve.json to write.")
def curve(model_path, data_path, mode, name, ratios, layers, seed, train_subset, test_subset, device, threads, out) -> None:
    """Sensitivity without retraining: evaluate the model with each layer (or every layer) pruned
    at each ratio, one physically pruned copy per point."""
    from prunebench.analysis.curves import curve_run
    from prunebench.core.utils import choose_device

    check_outputs(out)
    if any(not 0 < r < 1 for r in ratios):
        raise UserError(f"--ratios {','.join(map(str, ratios))}: each is a fraction in (0, 1), e.g. 0.1,0.5,0.9")
    if threads:
        torch.set_num_threads(threads)
    curve_run(model_path, data_path, mode, name, layers, ratios, seed, train_subset, test_subset, choose_device(device), out)


def _variants(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict[str, list[str]]:
    out = {}
    for text in values:
        arch, sep, variants = text.partition("=")
        if not sep or not arch or not variants:
            raise click.BadParameter(f"{text!r} is not ARCH=V1,V2, e.g. resnet56=A,B")
        out[arch] = variants.split(",")
    return out


@click.command("li-table2")
@click.option("--variants", "variants", multiple=True, required=True, callback=_variants, help="ARCH=V1,V2 (repeatable), e.g. vgg16=A.")
@click.option("--csv", "csv_path", required=True, type=click.Path(dir_okay=False), help="CSV to write.")
@click.option("--md", "md_path", required=True, type=click.Path(dir_okay=False), help="Markdown to write.")
@click.option("--title", default="Li et al. Table 2: per-layer costs of the pruned variants", show_default=True, help="Markdown title.")
def li_table2(variants: dict, csv_path: str, md_path: str, title: str) -> None:
    """Li et al.'s Table 2 for every listed variant, with the paper's values beside VGG-16-A's."""
    from prunebench.report import li_table2 as t

    check_outputs(csv_path, md_path)
    df = t.build(variants)
    t.write(df, csv_path, md_path, title)
    mismatched = df[df["matches"] == "no"]
    if not mismatched.empty:
        log.warning("%d rows differ from the paper's Table 2: %s", len(mismatched), ", ".join(mismatched["layer"]))
    log.info("per-layer table of %d variants -> %s, %s", sum(map(len, variants.values())), csv_path, md_path)


@click.command("li-report")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--metric", default="best", show_default=True, type=click.Choice(["best", "final"]), help="Accuracy of the retrained runs: best over epochs or the last.")
@click.option("--title", default="Li et al.", show_default=True, help="Title prefix of the tables and figures.")
@click.option("--curves-csv", required=True, type=click.Path(dir_okay=False), help="Every point as one long CSV.")
@click.option("--iterative-csv", required=True, type=click.Path(dir_okay=False), help="One-shot vs layer by layer, CSV.")
@click.option("--iterative-md", required=True, type=click.Path(dir_okay=False), help="The same, Markdown.")
@click.option("--norms", required=True, type=click.Path(dir_okay=False), help="Fig. 2a PNG.")
@click.option("--sensitivity", required=True, type=click.Path(dir_okay=False), help="Fig. 2b/2c/6 PNG.")
@click.option("--criteria", required=True, type=click.Path(dir_okay=False), help="Fig. 8/9 PNG.")
@click.option("--consecutive", required=True, type=click.Path(dir_okay=False), help="Independent vs greedy PNG.")
def li_report(inputs, metric, title, curves_csv, iterative_csv, iterative_md, norms, sensitivity, criteria, consecutive) -> None:
    """Tables and figures of Li's analyses from curve.json (curve jobs) and eval.json (runs) INPUTS."""
    with all_or_none(curves_csv, iterative_csv, iterative_md, norms, sensitivity, criteria, consecutive):
        _li_report(inputs, metric, title, curves_csv, iterative_csv, iterative_md, norms, sensitivity, criteria, consecutive)


def _li_report(inputs, metric, title, curves_csv, iterative_csv, iterative_md, norms, sensitivity, criteria, consecutive) -> None:
    from prunebench.methods.li import steps
    from prunebench.report import li, li_figures

    curves = [read_form(p, Curve) for p in inputs if p.endswith("curve.json")]
    evals = [read_form(p, Eval) for p in inputs if not p.endswith("curve.json")]
    table = li.curves_table(curves, evals, metric)
    write_text(curves_csv, table.to_csv(index=False))
    variants = {(ev["run"]["arch"], ev["run"]["setting"].rpartition("_")[0]) for ev in evals if ev["run"].get("method") == "layerwise"}
    iterative = li.iterative_table(evals, {(a, v): len(steps(a, v)) for a, v in variants}, metric)
    li.write_iterative(iterative, iterative_csv, iterative_md, f"{title}: prune once vs prune and retrain layer by layer")
    li_figures.plot_norms(curves, norms, f"{title}: filters' L1 norms per layer (Fig. 2a)")
    li_figures.plot_sensitivity(table, sensitivity, f"{title}: sensitivity of each layer to pruning (Fig. 2b, 2c, 6)")
    li_figures.plot_criteria(table, criteria, f"{title}: which filters to prune, criteria compared (Fig. 8, 9)")
    li_figures.plot_consecutive(table, consecutive, f"{title}: pruning consecutive layers, independent vs greedy (Fig. 3)")
    log.info("Li's analyses: %d curve points, %d one-shot/layer-by-layer rows -> %s", len(table), len(iterative), curves_csv)
