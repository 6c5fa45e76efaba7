"""One writer per run folder: every command that writes into a run's folder (train, prune,
init, evaluate, derive) holds an OS file lock on it (``.prunebench.lock`` inside) for its life.

A second process that finds the folder held ends at once with one line naming the folder and
the holder's process, or, asked to wait (``--wait``), waits for it. The operating system
releases the lock of a process that dies however it dies (kill -9 included), so a killed run's
folder is taken over by its rerun with no manual step; the lock file of a killed holder stays
behind until then, holding only the text that named it. A process re-entering a folder it holds
(training that evaluates what it wrote) goes on under the lock it has.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
import time
from pathlib import Path
from typing import Iterator

from .errors import UserError
from .io import exclusive_lock

LOCK_NAME = ".prunebench.lock"
log = logging.getLogger("prunebench")
_held: set[Path] = set()
_wait = False


def wait_when_busy(wait: bool) -> None:
    """Whether this process waits for a busy run folder (the commands' ``--wait``) or ends."""
    global _wait
    _wait = bool(wait)


@contextlib.contextmanager
def run_folders(*outputs: str | os.PathLike | None) -> Iterator[None]:
    """Hold the folder of every output path (``None`` entries skipped), in one order so that two
    commands over shared folders cannot deadlock."""
    folders = sorted({Path(p).resolve().parent for p in outputs if p is not None} - _held)
    with contextlib.ExitStack() as stack:
        for folder in folders:
            stack.enter_context(_holding(folder))
        yield


@contextlib.contextmanager
def _holding(folder: Path) -> Iterator[None]:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot write into {folder}: {e.strerror}; choose a writable output path") from None
    command = f"prunebench {sys.argv[1]}" if len(sys.argv) > 1 else "prunebench"
    holder = f"process {os.getpid()} on {socket.gethostname()} ({command}, since {time.strftime('%Y-%m-%d %H:%M:%S')})"
    with exclusive_lock(folder / LOCK_NAME, busy=lambda who: _busy(folder, who), holder=holder):
        _held.add(folder)
        try:
            yield
        finally:
            _held.discard(folder)


def _busy(folder: Path, holder: str) -> None:
    who = holder or "another process"
    if not _wait:
        raise UserError(f"run folder {folder} is being written by {who}; wait for it to end, or pass --wait to wait for it")
    log.info("run folder %s is being written by %s: waiting for it", folder, who)
