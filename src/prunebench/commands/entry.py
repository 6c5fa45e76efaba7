"""Running a click group as a command: a user's error ends in one line naming the fix, never a
traceback (``PRUNEBENCH_DEBUG=1`` or ``--debug`` shows it). Shared by ``prunebench`` and the
torch-free ``prunebench-report`` (the report rules' command, which starts in a second less)."""

from __future__ import annotations

import logging
import os
import sys

import click

from prunebench.core.errors import UserError


def run(group: click.Group, prog: str, argv: list[str] | None = None) -> None:
    debug = os.environ.get("PRUNEBENCH_DEBUG") == "1" or "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        code = group.main(args=argv, prog_name=prog, standalone_mode=False)
    except UserError as e:
        if debug:
            raise
        click.echo(f"prunebench: error: {e}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("prunebench: aborted", err=True)
        sys.exit(130)
    except click.ClickException as e:
        cmd = f" {e.ctx.command_path.split(' ', 1)[1]}" if getattr(e, "ctx", None) and " " in e.ctx.command_path else ""
        click.echo(f"prunebench: error: {' '.join(e.format_message().split()).rstrip('.')}; see '{prog}{cmd} --help'", err=True)
        sys.exit(e.exit_code)
    except Exception as e:
        interrupted = sys.modules.get("prunebench.training.loop")
        if interrupted is not None and isinstance(e, interrupted.Interrupted):
            click.echo(f"prunebench: interrupted: {e}; rerun the same command to resume", err=True)
            sys.exit(143)
        raise
    if argv is None:  # the console script, not a test calling main() in-process
        exit_without_teardown(code if isinstance(code, int) else 0)


def exit_without_teardown(code: int) -> None:
    """End a finished command's process without the interpreter's teardown of torch's modules:
    0.1 to 1.2 s per job on a 2-core machine, over the hundreds of jobs of ``make run``. Every output is already
    closed and renamed into place; logging and the standard streams are flushed here. Skipped
    while child processes (DataLoader workers) live, so that they are reaped as usual."""
    import multiprocessing

    if "torch" not in sys.modules or multiprocessing.active_children():
        sys.exit(code)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def logging_setup() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
