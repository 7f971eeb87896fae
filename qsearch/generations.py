"""An index folder's generations: which one is live, the writer lock, and the atomic switch.

Folder layout::

    CURRENT            name of the live generation, replaced atomically
    g00002/            one generation, written whole before CURRENT names it
    .lock              held by writers (build, add, remove, repair)

A build writes a new generation beside the live one and only then replaces CURRENT (a
rename, fsynced), so a failed or killed build leaves the previous index working and readers
never see half a generation. These helpers know nothing of models or backends.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from qsearch.errors import QsearchError


@contextmanager
def writer_lock(root: Path) -> Iterator[None]:
    """Hold the folder's writer lock (made if missing): one writer at a time, across processes."""
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise QsearchError(f"cannot make the index folder {root}: {e.strerror or e}") from None
    with open(root / ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def live(root: Path) -> Path | None:
    """The generation CURRENT names, or None where there is no CURRENT."""
    current = root / "CURRENT"
    return root / current.read_text().strip() if current.exists() else None


def is_ours(path: Path) -> bool:
    """Whether a file in an index folder is one the engine writes (a killed first build leaves these)."""
    return path.name in (".lock", "CURRENT.tmp") or (path.name[0] == "g" and path.name[1:].isdigit())


def next_generation(root: Path) -> Path:
    """A new, empty generation folder numbered after the live one (leftovers of a killed build cleared)."""
    current = live(root)
    gen = root / f"g{int(current.name[1:]) + 1 if current else 1:05d}"
    shutil.rmtree(gen, ignore_errors=True)
    gen.mkdir(parents=True)
    return gen


def switch(root: Path, gen: Path) -> None:
    """Make ``gen`` (complete on disk) the live generation, durably, and delete the others."""
    fsync_dir(gen)
    tmp = root / "CURRENT.tmp"
    tmp.write_text(gen.name + "\n")
    os.replace(tmp, root / "CURRENT")
    fsync_dir(root)
    for old in root.glob("g[0-9]*"):
        if old != gen:
            shutil.rmtree(old, ignore_errors=True)


def fsync_dir(path: Path) -> None:
    """Flush a folder's entries, so that a rename or a new file in it survives a power cut."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
