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
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from qsearch.errors import QsearchError, disk_full
from qsearch.files import fsync_tree, replacing


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
    name = path.name
    return name == ".lock" or (name.startswith("CURRENT.") and name.endswith(".tmp")) or (name[0] == "g" and name[1:].isdigit())


@contextmanager
def new_generation(root: Path) -> Iterator[Path]:
    """A new, empty generation folder numbered after the live one (leftovers of a killed build
    cleared), to write whole before ``switch``. If writing it fails it is deleted, so a full
    disk gets its space back, and the live generation stays; a full disk says so in one line."""
    current = live(root)
    gen = root / f"g{int(current.name[1:]) + 1 if current else 1:05d}"
    shutil.rmtree(gen, ignore_errors=True)
    try:
        gen.mkdir(parents=True)
        yield gen
    except BaseException as e:
        shutil.rmtree(gen, ignore_errors=True)
        full = disk_full(e, root, f"the index at {root} is unchanged") if isinstance(e, Exception) else None
        if full is not None:
            raise full from None
        raise


def switch(root: Path, gen: Path) -> None:
    """Make ``gen`` (complete on disk) the live generation, durably, and delete the others.
    Everything in ``gen`` is synced first, so that a power cut cannot leave CURRENT naming a
    generation whose model or manifest never reached the disk."""
    fsync_tree(gen)
    try:
        with replacing(root / "CURRENT") as tmp:  # synced before it replaces CURRENT: a power cut must not leave CURRENT empty
            tmp.write_text(gen.name + "\n")
    except OSError as e:  # CURRENT still names the live generation
        shutil.rmtree(gen, ignore_errors=True)
        raise disk_full(e, root, f"the index at {root} is unchanged") or e
    for old in root.glob("g[0-9]*"):
        if old != gen:
            shutil.rmtree(old, ignore_errors=True)
