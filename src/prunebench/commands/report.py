"""The report commands of the ``prunebench`` CLI: tables and figures from eval.json and
prune.json files. A study's ``report`` kind picks the table: ``table`` (arms side by side with
the paper's numbers), ``lottery`` (winning ticket vs random init per initial LR) or
``archsearch`` (architectures trained from scratch, accuracy against parameters); ``kernels``
draws the average kept 3x3 kernel of masked runs per stage."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from prunebench.core.errors import UserError
from prunebench.core.forms import Eval, PruneReport, read_form
from prunebench.core.io import all_or_none, check_outputs, write_text, write_together

log = logging.getLogger("prunebench")
KINDS = ("table", "lottery", "archsearch")


@click.command()
@click.argument("evals", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--study", default="l1", show_default=True, help="The study (config.yaml) the table belongs to: picks the paper's numbers.")
@click.option("--metric", default="best", show_default=True, type=click.Choice(["best", "final"]), help="Best test accuracy over epochs (the papers') or the last epoch's.")
@click.option("--kind", default="table", show_default=True, type=click.Choice(KINDS), help="The study's report kind.")
@click.option("--csv", "csv_path", required=True, type=click.Path(dir_okay=False), help="CSV table to write.")
@click.option("--md", "md_path", required=True, type=click.Path(dir_okay=False), help="Markdown table to write.")
@click.option("--title", default=None, help="Title of the Markdown table [default: the study's name].")
@click.option("--tex", "tex_path", type=click.Path(dir_okay=False), help="Also write the table as LaTeX (booktabs).")
def table(evals: tuple[str, ...], study: str, metric: str, kind: str, csv_path: str, md_path: str, title: str | None, tex_path: str | None) -> None:
    """Collect eval.json files (EVALS) into one study's table with the paper's numbers beside ours."""
    with all_or_none(csv_path, md_path, tex_path):
        _table(evals, study, metric, kind, csv_path, md_path, title, tex_path)


def _table(evals, study, metric, kind, csv_path, md_path, title, tex_path) -> None:
    loaded = [_read_eval(p) for p in evals]
    if kind == "lottery":
        from prunebench.report.lottery import build_lottery_table, write_lottery_table

        df = build_lottery_table(loaded, study=study, metric=metric)
        write_lottery_table(df, csv_path, md_path, title=title or f"Study {study}")
    elif kind == "archsearch":
        from prunebench.report.archsearch import build_archsearch_table, write_archsearch_table

        df = build_archsearch_table(loaded, study=study, metric=metric)
        write_archsearch_table(df, csv_path, md_path, title=title or f"Study {study}")
    else:
        from prunebench.report.table import build_table, write_table

        df = build_table(loaded, study=study, metric=metric)
        write_table(df, csv_path, md_path, title=title or f"Study {study}")
    if tex_path:
        from prunebench.report.latex import to_latex

        write_text(tex_path, to_latex(Path(md_path).read_text(), title or f"Study {study}"))
    log.info("table with %d rows -> %s, %s", len(df), csv_path, md_path)


def _read_eval(path: str) -> dict:
    return read_form(path, Eval)


@click.command()
@click.option("--table", "table_path", required=True, type=click.Path(dir_okay=False), help="CSV written by 'prunebench table'.")
@click.option("--kind", default="table", show_default=True, type=click.Choice(KINDS), help="The table's kind (as 'prunebench table --kind').")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="PNG to write.")
@click.option("--title", default=None, help="Figure title [default: from the table].")
def figure(table_path: str, kind: str, out: str, title: str | None) -> None:
    """Plot accuracy per arm and model, with the paper's numbers as markers (lottery: accuracy
    against parameters pruned, winning ticket vs random init per LR)."""
    check_outputs(out)
    if kind == "lottery":
        from prunebench.report.lottery import read_lottery_table
        from prunebench.report.lottery_figure import plot_lottery

        plot_lottery(read_lottery_table(table_path), out, title)
    elif kind == "archsearch":
        from prunebench.report.archsearch import plot_archsearch, read_archsearch_table

        plot_archsearch(read_archsearch_table(table_path), out, title)
    else:
        from prunebench.report.figure import plot_study
        from prunebench.report.table import read_table

        plot_study(read_table(table_path), out, title)
    log.info("figure -> %s", out)


@click.command()
@click.argument("reports", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--csv", "csv_path", required=True, type=click.Path(dir_okay=False), help="Per-layer channels CSV to write.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="PNG to write.")
@click.option("--title", default="Channels kept per layer", show_default=True, help="Figure title.")
def channels(reports: tuple[str, ...], csv_path: str, out: str, title: str) -> None:
    """Channels kept per layer from prune.json files (REPORTS), mean over seeds: the pruned
    architectures themselves, as a CSV and a figure."""
    from prunebench.core.io import write_text
    from prunebench.report.channels import channels_table, plot_channels

    check_outputs(csv_path, out)
    loaded = [_read_prune_report(p) for p in reports]
    csv = channels_table(loaded).to_csv(index=False)
    write_together((csv_path, lambda: write_text(csv_path, csv)), (out, lambda: plot_channels(loaded, out, title)))
    log.info("channels -> %s, %s", csv_path, out)


def _read_prune_report(path: str) -> dict:
    return read_form(path, PruneReport)


@click.command()
@click.argument("reports", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--csv", "csv_path", required=True, type=click.Path(dir_okay=False), help="Per-stage kernel pattern CSV to write.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="PNG to write.")
@click.option("--title", default="Average kept 3x3 kernel per stage", show_default=True, help="Figure title.")
def kernels(reports: tuple[str, ...], csv_path: str, out: str, title: str) -> None:
    """The average kept 3x3 kernel pattern per stage of the masked runs among prune.json files
    (REPORTS), mean over seeds: where in the kernel unstructured pruning keeps weights."""
    from prunebench.core.io import write_text
    from prunebench.report.kernels import kernel_table, plot_kernels

    check_outputs(csv_path, out)
    table = kernel_table([_read_prune_report(p) for p in reports])
    csv = table.to_csv(index=False)
    write_together((csv_path, lambda: write_text(csv_path, csv)), (out, lambda: plot_kernels(table, out, title)))
    log.info("kernels -> %s, %s", csv_path, out)


@click.command("trace")
@click.argument("table_path", type=click.Path(dir_okay=False))
@click.option("--row", required=True, help="Row number (1-based, as in the Markdown table) or, in a study table, the model label, e.g. VGG-16-A.")
@click.option("--column", required=True, help="Column of the CSV, e.g. finetune_mean, scratch-b_std, macs, winning_vs_random_p.")
def trace(table_path: str, row: str, column: str) -> None:
    """Print the chain from one cell of a study, lottery, archsearch or li-iterative table to its runs, their files and hashes."""
    from prunebench.report.trace import trace as walk

    if not Path(table_path).is_file():
        raise UserError(f"table {table_path} does not exist; run the study first (snakemake STUDY)")
    for line in walk(table_path, row, column):
        click.echo(line)


@click.command("stats-figure")
@click.option("--table", "table_path", required=True, type=click.Path(dir_okay=False), help="CSV written by 'prunebench table' (kind table).")
@click.option("--ci", "ci_out", required=True, type=click.Path(dir_okay=False), help="Point-range PNG: mean and 95 % interval per arm, the paper as a cross.")
@click.option("--diff", "diff_out", required=True, type=click.Path(dir_okay=False), help="Difference PNG: each scratch arm minus fine-tuned, paired over seeds.")
@click.option("--title", default="", help="Figure title prefix.")
def stats_figure(table_path: str, ci_out: str, diff_out: str, title: str) -> None:
    """The statistics of a study table at a glance: intervals per arm, and differences from fine-tuning."""
    from prunebench.report.stats_figure import plot_differences, plot_pointrange
    from prunebench.report.table import read_table

    with all_or_none(ci_out, diff_out):
        df = read_table(table_path)
        plot_pointrange(df, ci_out, f"{title}: mean and 95 % interval per arm" if title else "mean and 95 % interval per arm")
        plot_differences(df, diff_out, f"{title}: scratch minus fine-tuned" if title else "scratch minus fine-tuned")
    log.info("statistics figures -> %s, %s", ci_out, diff_out)


@click.command("checks")
@click.argument("evals", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--csv", "csv_path", required=True, type=click.Path(dir_okay=False), help="Per-run checks CSV to write.")
@click.option("--md", "md_path", required=True, type=click.Path(dir_okay=False), help="Markdown summary to write.")
@click.option("--title", default="Sanity checks", show_default=True, help="Title of the Markdown page.")
def checks(evals: tuple[str, ...], csv_path: str, md_path: str, title: str) -> None:
    """Every run's sanity checks from eval.json files (EVALS): which held, failed or do not apply."""
    from prunebench.report.sanity import build_checks_table, write_checks_table

    check_outputs(csv_path, md_path)
    df = build_checks_table([_read_eval(p) for p in evals])
    write_checks_table(df, csv_path, md_path, title)
    log.info("checks of %d runs (%d failed) -> %s, %s", len(df), int((df["failed"] != "").sum()), csv_path, md_path)


@click.command("html")
@click.option("--md", "md_path", required=True, type=click.Path(dir_okay=False), help="Markdown page written by a table command.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="HTML page to write.")
def html(md_path: str, out: str) -> None:
    """A Markdown table page (with its notes) as a standalone HTML page for the HTML report."""
    from prunebench.report.html import to_html

    check_outputs(out)
    try:
        text = Path(md_path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read {md_path} ({getattr(e, 'strerror', None) or type(e).__name__}); rerun the rule that writes it") from None
    write_text(out, to_html(text, Path(md_path).stem))
    log.info("html -> %s", out)


@click.command("check-report")
@click.argument("report", type=click.Path(dir_okay=False))
@click.option("--shots", required=True, type=click.Path(file_okay=False), help="Folder for the screenshots (one per figure, and the start page).")
def check_report(report: str, shots: str) -> None:
    """Open Snakemake's HTML REPORT in headless Chromium and check that it shows every figure."""
    from prunebench.report.browser import check_report as check

    results = check(report, shots)
    bad = [r["figure"] for r in results if not r["ok"]]
    click.echo(f"{len(results) - len(bad)} of {len(results)} figures shown in the report (screenshots in {shots})")
    if bad:
        raise UserError(f"{len(bad)} figure(s) not shown in {report}: {', '.join(bad)}; see the screenshots in {shots}")


@click.command("ledger")
@click.argument("evals", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--study", required=True, help="The study the evals belong to.")
@click.option("--metric", default="best", show_default=True, type=click.Choice(["best", "final"]), help="Accuracy beside the cost.")
@click.option("--csv", "csv_path", required=True, type=click.Path(dir_okay=False), help="Ledger CSV to write.")
@click.option("--md", "md_path", required=True, type=click.Path(dir_okay=False), help="Markdown ledger to write.")
@click.option("--figure", "figure_path", required=True, type=click.Path(dir_okay=False), help="Accuracy against total training compute (PNG).")
@click.option("--title", default="Compute ledger", show_default=True, help="Title of the table and figure.")
def ledger(evals: tuple[str, ...], study: str, metric: str, csv_path: str, md_path: str, figure_path: str, title: str) -> None:
    """What each arm cost to train (MACs counted, hours measured; fine-tuning with its pretraining) from eval.json files."""
    from prunebench.report.ledger import build_ledger, plot_ledger, to_markdown

    check_outputs(csv_path, md_path, figure_path)
    df = build_ledger([_read_eval(p) for p in evals], study, metric)
    markdown = to_markdown(df, title)
    write_together(
        (csv_path, lambda: write_text(csv_path, df.to_csv(index=False))),
        (md_path, lambda: write_text(md_path, markdown)),
        (figure_path, lambda: plot_ledger(df, figure_path, title)),
    )
    log.info("ledger of %d rows -> %s, %s, %s", len(df), csv_path, md_path, figure_path)


# --------------------------------------------------------------------------- prunebench-report
@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
def report_cli() -> None:
    """The report commands alone (the same as under prunebench), without loading torch: the
    workflow's many small report jobs each start about two seconds sooner."""
    from .entry import logging_setup

    logging_setup()


for _command in (table, figure, stats_figure, channels, kernels, trace, checks, html, check_report, ledger):
    report_cli.add_command(_command)


def main(argv: list[str] | None = None) -> None:
    from .entry import run

    run(report_cli, "prunebench-report", argv)
