"""Files written whole or not at all: into a temporary file beside them, synced, then renamed
over the old one, so that a kill, a full disk or a power cut leaves the old file or the new
one, never half of one."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def replacing(path: Path | str) -> Iterator[Path]:
    """A temporary file beside ``path`` for the block to write. When the block ends, the file
    is synced and renamed over ``path``, then the folder is synced. When the block raises (a
    full disk, say), the temporary file is removed and ``path`` is as it was."""
    path = Path(path)
    if path.is_dir():  # before any write: "." (an empty name) or a folder is no file to replace
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    """Flush a folder's entries, so that a rename or a new file in it survives a power cut."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(path: Path) -> None:
    """Flush every file and folder under ``path`` to disk, before the rename that makes it live
    (a generation, a backup): the rename must not outlive its contents in a power cut."""
    for item in sorted(path.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if item.is_file():
            with open(item, "rb") as f:
                os.fsync(f.fileno())
        elif item.is_dir():
            fsync_dir(item)
    fsync_dir(path)
