"""SearchEngine: a FAISS index beside a SQLite store, with the model that built it.

Folder layout (``indexes/default/`` by default)::

    CURRENT            name of the live generation, replaced atomically
    g00002/            one generation: index.json, questions.db, vectors.faiss, model/
    .lock              held by writers (build, add)

``build`` writes a whole new generation and then switches CURRENT, so a failed or killed
build leaves the previous index working. ``add`` commits to SQLite first (the source of
truth), then updates FAISS; rows a killed ``add`` left out of FAISS are encoded again on open.

Every search first catches up with the store: rows another process committed since (a CLI
``add`` beside a server, a second server) are encoded and indexed, and a rebuild by another
process is followed to the new generation. A lost or damaged vector file is rebuilt from
the store, which holds every text; a folder without write permission is opened read-only.
"""

from __future__ import annotations

import fcntl
import logging
import math
import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from qsearch import index as vindex
from qsearch.encoder import Encoder
from qsearch.errors import QsearchError
from qsearch.manifest import read_manifest, write_json
from qsearch.paths import DEFAULT_INDEX
from qsearch.store import Store

INDEX_FORMAT_VERSION = 1
MAX_QUESTION_CHARS = 10_000
log = logging.getLogger("qsearch")
_SURROGATE = re.compile("[\ud800-\udfff]")
CHECKPOINT_EVERY = 1000
_BUILD_HINT = "run `qsearch build-index` (add --index DIR for another folder)"


@dataclass
class Match:
    """One neighbour of a query: its store id, text, cosine score, and the verdict."""

    id: int
    text: str
    score: float
    duplicate: bool

    def to_dict(self) -> dict:
        return asdict(self)


def check_threshold(threshold: float | None) -> float | None:
    """``None`` (the model's) or a finite number; NaN, infinities and 1e400 are refused."""
    if threshold is None:
        return None
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not math.isfinite(threshold):
        raise QsearchError(f"threshold must be a finite number, got {threshold!r}")
    return float(threshold)


def clean_questions(questions: Iterable[str]) -> list[str]:
    """Strip whitespace; refuse a blank question (a clear error rather than a silent skip).

    Very long questions are kept: the encoder reads only the first ``max_len`` tokens, and the
    store keeps up to ``MAX_QUESTION_CHARS`` characters of text. Lone surrogates (from broken
    JSON, or a command-line argument that was not UTF-8) become U+FFFD, so any text can be stored.
    """
    if isinstance(questions, str):
        raise TypeError("pass a list of questions, not a single string")
    cleaned = []
    for n, q in enumerate(questions, 1):
        if not isinstance(q, str):
            raise QsearchError(f"question {n} is not text")
        q = _SURROGATE.sub("\ufffd", q).strip()
        if not q:
            raise QsearchError(f"question {n} is empty; give a question with some words")
        cleaned.append(q[:MAX_QUESTION_CHARS])
    if not cleaned:
        raise QsearchError("no question given")
    return cleaned


@contextmanager
def _writer_lock(root: Path):
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class _ReadWriteLock:
    """Many readers or one writer: FAISS may be searched by many threads, but not while it grows."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writing = False

    @contextmanager
    def reading(self):
        with self._cond:
            self._cond.wait_for(lambda: not self._writing)
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                self._cond.notify_all()

    @contextmanager
    def writing(self):
        with self._cond:
            self._cond.wait_for(lambda: not self._writing and not self._readers)
            self._writing = True
        try:
            yield
        finally:
            with self._cond:
                self._writing = False
                self._cond.notify_all()


def _check_k(k: int) -> None:
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise QsearchError(f"k must be a whole number of at least 1, got {k!r}")


def _ours(path: Path) -> bool:
    """Whether a file in an index folder is one the engine writes (a killed first build leaves these)."""
    return path.name in (".lock", "CURRENT.tmp") or (path.name[0] == "g" and path.name[1:].isdigit())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class SearchEngine:
    """Find the known questions nearest to new ones; add new ones as they come."""

    def __init__(self, root: Path, generation: Path, manifest: dict, encoder: Encoder, store: Store, index, read_only: bool = False):
        self.root, self.generation, self.manifest = root, generation, manifest
        self.encoder, self.store, self.index = encoder, store, index
        self.read_only = read_only
        self._write = threading.Lock()
        self._refresh = threading.Lock()
        self._faiss = _ReadWriteLock()
        self._pending = 0
        self._top = int(vindex.indexed_ids(index).max()) if index.ntotal else 0

    # ---- building -------------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        questions: Iterable[str],
        encoder: Encoder | None = None,
        path: Path | str = DEFAULT_INDEX,
        index_type: str = "flat",
        progress: Callable | None = None,
        source: str = "",
    ) -> "SearchEngine":
        """Index ``questions`` (blank ones skipped, exact repeats stored once) into ``path``.

        ``progress(done, total)`` is called while encoding. The new index replaces the one
        at ``path`` only once it is complete.
        """
        encoder = encoder or Encoder.load()
        root = Path(path)
        if root.exists() and not root.is_dir():
            raise QsearchError(f"{root} is a file, not an index folder")
        if root.is_dir() and not (root / "CURRENT").exists() and not all(_ours(p) for p in root.iterdir()):
            raise QsearchError(f"{root} exists and is not a qsearch index; pick an empty or new --index folder")
        texts = list(dict.fromkeys(q.strip()[:MAX_QUESTION_CHARS] for q in questions if q and q.strip()))
        if not texts:
            raise QsearchError("no questions to index (every one was empty)")
        if index_type not in vindex.FACTORIES:
            raise QsearchError(f"unknown index type {index_type!r}; pick one of: {', '.join(vindex.FACTORIES)}")
        with _writer_lock(root):
            current = (root / "CURRENT").read_text().strip() if (root / "CURRENT").exists() else "g00000"
            gen = root / f"g{int(current[1:]) + 1:05d}"
            shutil.rmtree(gen, ignore_errors=True)
            gen.mkdir(parents=True)
            started = time.perf_counter()
            store = Store.create(gen / "questions.db", texts)
            index = vindex.new_index(encoder.dim, index_type)
            step = 20000
            for start in range(0, len(texts), step):
                chunk = texts[start : start + step]
                index.add_with_ids(encoder.encode(chunk), np.arange(start + 1, start + 1 + len(chunk), dtype=np.int64))
                if progress:
                    progress(start + len(chunk), len(texts))
            vindex.save(index, gen / "vectors.faiss")
            encoder.save(gen / "model")
            manifest = {
                "format": "qsearch-index",
                "format_version": INDEX_FORMAT_VERSION,
                "index_type": index_type,
                "factory": vindex.FACTORIES[index_type],
                "dim": encoder.dim,
                "model": encoder.name,
                "vocab_sha256": encoder.manifest["vocab_sha256"],
                "threshold": encoder.threshold,
                "questions_at_build": len(texts),
                "source": source,
                "build_seconds": round(time.perf_counter() - started, 2),
            }
            write_json(gen / "index.json", manifest)
            store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            _fsync_dir(gen)
            tmp = root / "CURRENT.tmp"
            tmp.write_text(gen.name + "\n")
            os.replace(tmp, root / "CURRENT")
            _fsync_dir(root)
            for old in root.glob("g[0-9]*"):
                if old != gen:
                    shutil.rmtree(old, ignore_errors=True)
        return cls(root, gen, manifest, Encoder.load(gen / "model"), store, index)

    # ---- opening --------------------------------------------------------------------------
    @classmethod
    def open(cls, path: Path | str = DEFAULT_INDEX, encoder: Encoder | None = None) -> "SearchEngine":
        """Open an index; check that store, index and model agree; catch up on unindexed rows.

        Without write permission on the folder, the index opens read-only: it answers queries,
        and refuses adds with a clear message.
        """
        root = Path(path)
        if not (root / "CURRENT").exists():
            if not root.exists():
                raise QsearchError(f"no index at {root}; {_BUILD_HINT}")
            raise QsearchError(f"{root} is not a qsearch index (no CURRENT file); {_BUILD_HINT}")
        gen = root / (root / "CURRENT").read_text().strip()
        manifest = read_manifest(gen / "index.json", "index", INDEX_FORMAT_VERSION, _BUILD_HINT)
        own = Encoder.load(gen / "model")
        if encoder is not None and (
            encoder.manifest["vocab_sha256"] != manifest["vocab_sha256"] or encoder.dim != manifest["dim"]
        ):
            raise QsearchError(
                f"the index at {root} was built with another model (dim {manifest['dim']}, vocabulary "
                f"{manifest['vocab_sha256'][:12]}); rebuild it with `qsearch build-index --model YOUR_MODEL --index {root}`"
            )
        if own.manifest["vocab_sha256"] != manifest["vocab_sha256"] or own.dim != manifest["dim"]:
            raise QsearchError(f"the model inside {gen} does not match its index; {_BUILD_HINT}")
        db = gen / "questions.db"
        read_only = not (os.access(gen, os.W_OK) and os.access(db, os.W_OK) and os.access(root, os.W_OK))
        store = Store(db, read_only=read_only)
        index = cls._load_vectors(gen, manifest, own, store, store.check(), read_only)
        engine = cls(root, gen, manifest, own, store, index, read_only)
        engine._catch_up()
        return engine

    @staticmethod
    def _load_vectors(gen: Path, manifest: dict, encoder: Encoder, store: Store, stored: int, read_only: bool):
        """The vector index; lost, damaged or not matching the store (``stored`` rows), it is rebuilt from the store."""
        path = gen / "vectors.faiss"
        problem = None
        try:
            index = vindex.load(path, manifest["index_type"]) if path.exists() else None
            if index is None:
                problem = "is missing"
            elif index.d != manifest["dim"]:
                problem = f"has dimension {index.d}, the model {manifest['dim']}"
            elif index.ntotal and (index.ntotal > stored or int(vindex.indexed_ids(index).max()) > store.max_id()):
                problem = "holds ids the store lacks (it comes from another build)"  # ids only grow, none is deleted
        except QsearchError:
            problem = "cannot be read"
        if problem is None:
            return index
        index = SearchEngine._vectors_from_store(manifest, encoder, store)
        if not read_only:
            vindex.save(index, path)
        log.warning("%s %s: rebuilt it from the %d questions in questions.db", path, problem, index.ntotal)
        return index

    @staticmethod
    def _vectors_from_store(manifest: dict, encoder: Encoder, store: Store):
        """A new vector index holding every question of the store, encoded again."""
        rows = store.all_rows()
        index = vindex.new_index(manifest["dim"], manifest["index_type"])
        for start in range(0, len(rows), 20000):
            chunk = rows[start : start + 20000]
            index.add_with_ids(encoder.encode([t for _, t in chunk]), np.array([i for i, _ in chunk], dtype=np.int64))
        return index

    @classmethod
    def repair(cls, path: Path | str = DEFAULT_INDEX) -> int:
        """Rebuild the vector file from the store (every text it holds); returns the count."""
        root = Path(path)
        engine = cls.open(root)
        if engine.read_only:
            raise QsearchError(f"the index at {root} is read-only (no write permission); repair needs write access")
        with engine._write, _writer_lock(root):
            engine.index = cls._vectors_from_store(engine.manifest, engine.encoder, engine.store)
            vindex.save(engine.index, engine.generation / "vectors.faiss")
            engine._pending = 0
        engine.close()
        return int(engine.index.ntotal)

    def _catch_up(self) -> None:
        """Index rows that are in the store but not in FAISS (an ``add`` killed midway)."""
        ids = vindex.indexed_ids(self.index)
        missing = self.store.rows_missing_from(ids)
        if missing:
            self._add_rows(missing)
            self._pending += len(missing)

    def _add_rows(self, rows: list[tuple[int, str]]) -> None:
        vectors = self.encoder.encode([t for _, t in rows])
        with self._faiss.writing():
            self.index.add_with_ids(vectors, np.array([i for i, _ in rows], dtype=np.int64))
        self._top = max(self._top, max(i for i, _ in rows))

    def refresh(self) -> None:
        """Catch up with other processes: follow a rebuild to its new generation, then index
        the rows committed to the store after the last one this engine indexed (cheap when none)."""
        with self._refresh:
            current = self._current()
            if current != self.generation.name:
                self._follow(current)
            top = self.store.max_id()
            if top > self._top:
                self._add_rows(self.store.rows_after(self._top))

    def _current(self) -> str:
        try:
            return (self.root / "CURRENT").read_text().strip()
        except OSError:
            return self.generation.name

    def _follow(self, current: str) -> None:
        """Another process rebuilt the index: switch to the new generation."""
        try:
            fresh = type(self).open(self.root)
        except QsearchError as e:
            log.warning("the index at %s was rebuilt but its new generation cannot be opened yet: %s", self.root, e)
            return
        with self._faiss.writing():
            old = self.store
            self.generation, self.manifest, self.encoder = fresh.generation, fresh.manifest, fresh.encoder
            self.store, self.index, self.read_only, self._top = fresh.store, fresh.index, fresh.read_only, fresh._top
            self._pending = fresh._pending
        old.close()

    # ---- using ----------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.index.ntotal)

    @property
    def threshold(self) -> float:
        return self.encoder.threshold

    def search(self, questions: list[str], k: int = 5, threshold: float | None = None) -> list[list[Match]]:
        """The ``k`` nearest known questions for each question, best first."""
        questions = clean_questions(questions)
        _check_k(k)
        self.refresh()
        return self._search_vectors(self.encoder.encode(questions), k, threshold)

    def _search_vectors(self, vectors: np.ndarray, k: int, threshold: float | None) -> list[list[Match]]:
        _check_k(k)
        threshold = check_threshold(threshold)
        threshold = self.threshold if threshold is None else threshold
        if len(self) == 0:
            return [[] for _ in vectors]
        with self._faiss.reading():
            scores, ids = self.index.search(vectors, min(k, len(self)))
        texts = self.store.texts(i for i in ids.ravel() if i >= 0)
        return [
            [Match(int(i), texts[int(i)], float(s), float(s) > threshold) for s, i in zip(row_s, row_i) if i >= 0]
            for row_s, row_i in zip(scores, ids)
        ]

    def add(self, questions: list[str]) -> list[int]:
        """Add questions (exact repeats of stored ones are not added again); return their ids."""
        return self.search_and_add(questions, k=0)[0]

    def search_and_add(
        self, questions: list[str], k: int = 5, threshold: float | None = None
    ) -> tuple[list[int], list[list[Match]], list[bool]]:
        """The forum flow: the duplicates already known for each question, then add them.

        Returns the ids of the questions, for ``k`` >= 1 their matches before adding, and for
        each question whether it was new (False: an exact repeat, already stored under its id).
        """
        questions = clean_questions(questions)
        check_threshold(threshold)
        if k:
            _check_k(k)
        self.refresh()
        if self.read_only:
            raise QsearchError(f"the index at {self.root} is read-only (no write permission): it answers queries, adds need write access")
        vectors = self.encoder.encode(questions)
        with self._write, _writer_lock(self.root):
            if self._current() != self.generation.name:
                raise QsearchError(f"the index at {self.root} was rebuilt while adding; add again")
            self.refresh()
            matches = self._search_vectors(vectors, k, threshold) if k else []
            with self._refresh:  # a search's catch-up must not index these rows a second time
                ids, fresh = self.store.insert_new(questions)
                if fresh:
                    row = {i: n for n, i in enumerate(ids)}
                    with self._faiss.writing():
                        self.index.add_with_ids(vectors[[row[i] for i in fresh]], np.array(fresh, dtype=np.int64))
                        self._top = max(self._top, max(fresh))
                    self._pending += len(fresh)
            if self._pending >= CHECKPOINT_EVERY:
                self.save()
        new, added = set(fresh), []
        for i in ids:  # a question given twice in one call is new only the first time
            added.append(i in new)
            new.discard(i)
        return ids, matches, added

    def save(self) -> None:
        """Write the FAISS checkpoint if rows were added since it was last written.

        Added rows are safe in SQLite as soon as ``add`` returns; the checkpoint only spares
        the next ``open`` from encoding them again.
        """
        if self._pending and not self.read_only:
            with self._faiss.reading():
                vindex.save(self.index, self.generation / "vectors.faiss")
            self._pending = 0

    def close(self) -> None:
        """Write the checkpoint and close the store."""
        if not self.read_only:
            with self._write, _writer_lock(self.root):
                self.save()
        self.store.close()
