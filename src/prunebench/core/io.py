"""Atomic file writes: a reader sees the old file or the new one, never half of one.

Every file prunebench produces goes through here, so a job killed at any moment leaves
no partial output behind (only a stray ``*.tmp*`` file, which nothing reads).
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator

from filelock import FileLock

from .errors import UserError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_orphans(path)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp")
    except OSError as e:
        raise UserError(f"cannot write {path}: {e.strerror}; choose a writable output path") from e
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _remove_orphans(path: Path) -> None:
    """Delete temporary files of ``path`` left by writers that were killed (their pid is gone)."""
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        pid = tmp.name[len(path.name) + 2 :].split(".", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            tmp.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write_json(path: str | os.PathLike, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_together(*writes) -> None:
    """Run (path, write) pairs; if one fails, remove the files already written: all or none."""
    done = []
    try:
        for path, write in writes:
            write()
            done.append(path)
    except BaseException:
        for path in done:
            Path(path).unlink(missing_ok=True)
        raise


def check_writable(path: str | os.PathLike) -> None:
    """A one-line UserError now, before any work, if ``path`` cannot be written: it is a folder,
    or the nearest existing folder above it is a file or not writable."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"cannot write {path}: it is a folder; choose a file path")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise UserError(f"cannot write {path}: {parent} is a file, not a folder; choose a writable output path")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"cannot write {path}: {parent} is not writable; choose a writable output path")


def check_outputs(*paths: str | os.PathLike | None) -> None:
    """Every output path of a command checked before its work starts (``None``: an unused option)."""
    for path in paths:
        if path is not None:
            check_writable(path)


def _stamp(path: Path) -> tuple | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


@contextlib.contextmanager
def all_or_none(*paths: str | os.PathLike | None) -> Iterator[None]:
    """A command's outputs, all written or none: each is checked before the work starts, and if
    the block fails, every one it wrote is removed (``None`` entries, unused options, are skipped)."""
    chosen = [Path(p) for p in paths if p is not None]
    check_outputs(*chosen)
    before = {path: _stamp(path) for path in chosen}
    try:
        yield
    except BaseException:
        for path in chosen:
            if _stamp(path) != before[path]:
                path.unlink(missing_ok=True)
        raise


def save_torch(path: str | os.PathLike, obj: Any) -> None:
    import torch  # here, not at the top: the report commands use this module without torch

    # Through an open file, not its path: torch names the archive's inner folder after a path's
    # file name (here the random temporary one), so identical content would give other bytes.
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save(obj, f)


def read_json(path: str | os.PathLike) -> Any:
    """The parsed JSON of ``path``; one-line errors for a missing, unreadable, empty, non-UTF-8
    or malformed file. Whether the value has the expected form is the caller's check."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
        if not text.strip():
            raise UserError(f"{path} is empty, not JSON; delete it and rerun the step that makes it")
        return json.loads(text)
    except FileNotFoundError:
        raise UserError(f"missing file {path}; run the step that makes it first") from None
    except IsADirectoryError:
        raise UserError(f"{path} is a directory, not a JSON file; pass the file's path") from None
    except UnicodeDecodeError:
        raise UserError(f"{path} is not valid JSON (not UTF-8 text); delete it and rerun the step that makes it") from None
    except json.JSONDecodeError as e:
        raise UserError(f"{path} is not valid JSON ({e.msg}); delete it and rerun the step that makes it") from None
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror}; check its permissions") from None


def load_torch(path: str | os.PathLike, what: str = "checkpoint", **kwargs: Any) -> Any:
    """torch.load with a one-line error for a missing, truncated or foreign file."""
    import torch

    path = Path(path)
    if path.is_dir():
        raise UserError(f"{what} {path} is a folder, not a file; pass the file's path")
    if not path.is_file():
        raise UserError(f"{what} {path} does not exist; check the path or rerun the step that makes it")
    try:
        with warnings.catch_warnings():
            # a TorchScript file: torch warns that it dispatches to torch.jit.load, then fails;
            # the one-line error below says what the file is not
            warnings.filterwarnings("ignore", message=".*TorchScript archive", category=UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True, **kwargs)
    except PermissionError as e:
        raise UserError(f"cannot read {what} {path}: {e.strerror}; check its permissions") from None
    except Exception as e:  # torch raises many types for corrupt files
        raise UserError(
            f"{what} {path} is corrupt or not a torch file ({type(e).__name__}); delete it and rerun the step that makes it"
        ) from None


@contextlib.contextmanager
def exclusive_lock(path: str | os.PathLike, busy: Callable[[str], None] | None = None, holder: str = "") -> Iterator[None]:
    """Hold an exclusive lock on the file ``path`` (created if needed) and delete it on release,
    so that no ``.lock`` file outlives its users, whether the locked work succeeded or not.

    Deleting a lock file is safe because a waiter that wakes up holding the lock of a file
    that has since been deleted (or replaced) lets go and locks the current file instead. The
    operating system releases the lock of a process that dies, so a killed holder's file is
    simply taken over. ``busy``: called with the file's text (the ``holder`` the process that
    holds it wrote) when another process holds it; it raises to give up, or returns to wait.
    """
    path = Path(path)
    if fcntl is None:  # no flock (Windows): filelock's lock, whose file stays behind
        with FileLock(str(path)):
            yield
        return
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666 & ~_UMASK)
        except OSError as e:
            raise UserError(f"cannot write {path}: {e.strerror}; choose a writable output path") from None
        try:
            _flock(fd, busy)
            mine = os.fstat(fd)
            try:
                now = os.stat(path)
            except FileNotFoundError:
                now = None
        except BaseException:
            os.close(fd)
            raise
        if now is not None and (now.st_dev, now.st_ino) == (mine.st_dev, mine.st_ino):
            break
        os.close(fd)  # the previous holder deleted this file after we opened it: start over
    try:
        if holder:
            os.ftruncate(fd, 0)
            os.pwrite(fd, holder.encode(), 0)
        yield
    finally:
        try:
            path.unlink(missing_ok=True)  # still holding the lock, so nobody else has it yet
        finally:
            os.close(fd)


def _flock(fd: int, busy: Callable[[str], None] | None) -> None:
    if busy is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            busy(os.pread(fd, 4096, 0).decode(errors="replace").strip())
    fcntl.flock(fd, fcntl.LOCK_EX)


def sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
