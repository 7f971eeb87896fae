"""The one exception type a user sees: the CLI prints its message on one line, no traceback."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path


class QsearchError(Exception):
    """A problem caused by the input or the environment, not a bug; the message says what to do."""


class DiskFull(QsearchError):
    """A write failed because the disk is full: the server's fault, not the request's (HTTP 507)."""


_FULL_MESSAGES = ("no space left on device", "database or disk is full", "disk quota exceeded")
_NEARLY_FULL = 1 << 20  # SQLite reports "disk I/O error" when it cannot make its WAL files on a full disk
_NOT_SPACE = {errno.EACCES, errno.EPERM, errno.ENOENT, errno.EROFS, errno.EEXIST, errno.ENOTDIR, errno.EISDIR}  # errors a full disk does not cause


def disk_full(error: BaseException, path: Path | str, outcome: str) -> DiskFull | None:
    """The one-line error for ``error`` if it comes from a full disk under ``path``, else None.

    ``outcome`` says what the failed write left, e.g. "the index is unchanged". An error names
    a full disk by its errno or message; an I/O error on a disk with under 1 MiB free counts too.
    """
    path = Path(path)
    if not is_full_disk(error, path):
        return None
    where = path if path.is_dir() else path.parent
    free = _free_bytes(path)
    left = "" if free is None else f" ({_size(free)} free now)"
    return DiskFull(f"the disk holding {where} ran out of space{left}: {outcome}; free some space and run again")


def is_full_disk(error: BaseException, path: Path | str) -> bool:
    """Whether ``error`` comes from a full disk under ``path``: it says so itself, or it is any
    error on a disk with under 1 MiB free (SQLite's "disk I/O error" when it cannot make its WAL files)."""
    if names_full_disk(error):
        return True
    if isinstance(error, OSError) and error.errno in _NOT_SPACE:  # a file system that shows no free space (/proc) must not turn these into "full"
        return False
    free = _free_bytes(Path(path))
    return free is not None and free < _NEARLY_FULL


def names_full_disk(error: BaseException) -> bool:
    """Whether ``error`` says itself that a disk is full (by errno or message), wherever the disk is."""
    if isinstance(error, DiskFull) or (isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT)):
        return True
    return any(m in str(error).lower() for m in _FULL_MESSAGES)


def _free_bytes(path: Path) -> int | None:
    """Free bytes on the file system holding ``path`` (its nearest existing folder), or None."""
    for folder in (path, *path.parents):
        if folder.exists():
            try:
                return shutil.disk_usage(folder).free
            except OSError:
                return None
    return None


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"
