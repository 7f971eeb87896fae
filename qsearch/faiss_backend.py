"""The embedded backend: a FAISS vector file beside a SQLite store, in one index generation folder.

SQLite is the source of truth: an add commits the text there first, then adds the vector to
FAISS in memory; the FAISS file is a checkpoint written every ``CHECKPOINT_EVERY`` adds and on
close. Rows in the store but not in FAISS (an add killed midway, another process's adds) are
encoded again on open and on refresh; a lost, damaged or foreign vector file is rebuilt from
the store, which holds every text.

A removal deletes the rows from the store and records them there (``Store.remove``); each
process then drops those ids from its vectors, on open and on refresh. A flat index deletes them;
the approximate types cannot (FAISS has no removal for them), so their ids are hidden from results
until ``qsearch repair`` writes a vector file without them.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from qsearch import hubness
from qsearch import index as vindex
from qsearch.backend import first_seen
from qsearch.encoder import Encoder
from qsearch.errors import DiskFull, QsearchError, is_full_disk
from qsearch.locks import ReadWriteLock
from qsearch.store import Store

CHECKPOINT_EVERY = 1000
log = logging.getLogger("qsearch")
DISK_FULL = "its disk was full when it was opened"  # why a writable generation opened read-only


def _encode_all(encoder: Encoder, texts: list[str], progress=None, step: int = 20000) -> np.ndarray:
    """Every text's vector, encoded ``step`` at a time so ``progress(done, total)`` can follow."""
    vectors = np.zeros((len(texts), encoder.dim), dtype=np.float32)
    for start in range(0, len(texts), step):
        vectors[start : start + step] = encoder.encode(texts[start : start + step])
        if progress:
            progress(min(start + step, len(texts)), len(texts))
    return vectors


class FaissIndex:
    """Questions in ``questions.db`` and their vectors in ``vectors.faiss`` (IDMap2, ids = store ids)."""

    def __init__(self, gen: Path, manifest: dict, encoder: Encoder, store: Store, index, read_only: bool = False, why_read_only: str = ""):
        self.gen, self.manifest, self.encoder, self.store, self.index = gen, manifest, encoder, store, index
        self.read_only = read_only
        self.why_read_only = (why_read_only or "no write permission") if read_only else ""
        self._lock = ReadWriteLock()
        self._refresh = threading.Lock()
        self._pending = 0
        self._closed = False
        self._top = int(vindex.indexed_ids(index).max()) if index.ntotal else 0
        self._hidden: set[int] = set()  # removed ids still in an index type that cannot delete
        self._mark = 0  # the last removal applied here (``Store.removal_mark``)

    @classmethod
    def create(
        cls, gen: Path, manifest: dict, encoder: Encoder, texts: list[str], progress=None, recall: float = 0.99,
        ids: list[int] | None = None, removed: dict[str, int] | None = None,
    ) -> "FaissIndex":
        """Store and index ``texts`` (distinct, non-blank) in a new generation folder, under
        ``ids`` (by default 1..n), recording ``removed`` (texts removed from the index it
        replaces, with their ids there) so that later rebuilds leave them out.

        An approximate index is tuned to ``recall`` (recall@10 against exact search); the
        chosen parameters and the measured recall are written into ``manifest``.
        """
        vectors = _encode_all(encoder, texts, progress)
        ids = np.arange(1, len(texts) + 1, dtype=np.int64) if ids is None else np.array(ids, dtype=np.int64)
        index = vindex.new_index(encoder.dim, manifest["index_type"], train=vectors)
        index.add_with_ids(vectors, ids)
        tuned = vindex.tune(index, manifest["index_type"], vectors, ids, recall)
        manifest["search_params"] = {k: v for k, v in tuned.items() if k != "recall_at_10"}
        manifest["tuned_recall_at_10"] = tuned["recall_at_10"]
        vindex.apply_params(index, manifest["index_type"], manifest["search_params"])
        store = Store.create(gen / "questions.db", texts, hubness.measure(index, vectors, ids), ids.tolist(), removed)
        vindex.save(index, gen / "vectors.faiss")
        store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return cls(gen, manifest, encoder, store, index)

    @classmethod
    def open(cls, gen: Path, manifest: dict, encoder: Encoder) -> "FaissIndex":
        """Open a generation; read-only without write permission, or on a disk too full for
        SQLite's WAL files (searches still work there); catch up on unindexed rows."""
        read_only, why = cls._read_only(gen), ""
        try:
            store, stored, (removed, mark) = cls._open_store(gen, read_only, False)
        except DiskFull as full:
            if read_only:
                raise
            read_only, why = True, DISK_FULL
            try:
                store, stored, (removed, mark) = cls._open_store(gen, True, True)
            except QsearchError:
                raise full from None
            log.warning("the disk holding %s is full; opened read-only: searches work, adds and removals wait for space", gen)
        index = cls._load_vectors(gen, manifest, encoder, store, stored, read_only, set(removed))
        backend = cls(gen, manifest, encoder, store, index, read_only, why)
        backend._forget(removed)
        backend._mark = mark
        missing = store.rows_missing_from(backend._live_ids())
        if missing:  # an add killed between its commit and the checkpoint
            backend._add_rows(missing)
            backend._pending += len(missing)
        return backend

    @staticmethod
    def _open_store(gen: Path, read_only: bool, immutable: bool) -> tuple[Store, int, tuple[list[int], int]]:
        """A generation's store, its row count and its removals, read once: a store SQLite
        cannot read (damaged, or on a full disk) is one clear error."""
        store = Store(gen / "questions.db", read_only=read_only, immutable=immutable)
        try:
            return store, store.check(), store.removed_after(0)
        except sqlite3.DatabaseError as e:
            store.close()
            raise store.damaged(e) from None

    @staticmethod
    def _read_only(gen: Path) -> bool:
        """Without write permission on the generation, its store or the index folder, a
        generation is opened read-only."""
        db = gen / "questions.db"
        return not (os.access(gen, os.W_OK) and os.access(db, os.W_OK) and os.access(gen.parent, os.W_OK))

    @classmethod
    def stored_texts(cls, gen: Path) -> tuple[dict[str, int], dict[str, int]]:
        """A generation's questions and those removed from it, each with its id, read from its
        store alone, without its model or vector file, so a rebuild keeps them even when those
        no longer load; opened for writing where allowed, so a killed add's WAL is recovered, not skipped."""
        store = Store(gen / "questions.db", read_only=cls._read_only(gen))
        try:
            store.check()
            try:
                return {t: i for i, t in store.all_rows()}, store.removed_texts()
            except sqlite3.DatabaseError as e:
                raise store.damaged(e) from None
        finally:
            store.close()

    @staticmethod
    def _load_vectors(gen: Path, manifest: dict, encoder: Encoder, store: Store, stored: int, read_only: bool, removed: set[int]):
        """The vector index; lost, damaged or not matching the store (``stored`` rows, ``removed``
        ids since), it is rebuilt from the store."""
        path = gen / "vectors.faiss"
        problem = None
        try:
            index = vindex.load(path, manifest["index_type"], manifest.get("search_params")) if path.exists() else None
            live = None if index is None else np.setdiff1d(vindex.indexed_ids(index), np.fromiter(removed, np.int64, len(removed)))
            if index is None:
                problem = "is missing"
            elif index.d != manifest["dim"]:
                problem = f"has dimension {index.d}, the model {manifest['dim']}"
            elif len(live) and (len(live) > stored or int(live.max()) > store.top_id()):
                problem = "holds ids the store lacks (it comes from another build)"  # no id is issued twice
        except QsearchError:
            problem = "cannot be read"
        if problem is None:
            return index
        index, _, _ = FaissIndex._vectors_from_store(manifest, encoder, store)
        if not read_only:
            vindex.save(index, path)
        log.warning("%s %s: rebuilt it from the %d questions in questions.db", path, problem, index.ntotal)
        return index

    @staticmethod
    def _vectors_from_store(manifest: dict, encoder: Encoder, store: Store):
        """A new vector index holding every question of the store, encoded again; with the vectors and ids."""
        rows = store.all_rows()
        vectors = _encode_all(encoder, [t for _, t in rows])
        ids = np.array([i for i, _ in rows], dtype=np.int64)
        index = vindex.new_index(manifest["dim"], manifest["index_type"], train=vectors, params=manifest.get("search_params"))
        index.add_with_ids(vectors, ids)
        return index, vectors, ids

    def rebuild(self) -> int:
        """Encode every stored question again into a new vector file and measure every one's
        hubness again (the caller holds the writer lock)."""
        index, vectors, ids = self._vectors_from_store(self.manifest, self.encoder, self.store)
        self.store.set_hubs(ids, hubness.measure(index, vectors, ids))
        vindex.save(index, self.gen / "vectors.faiss")
        with self._lock.writing():
            self.index, self._pending, self._hidden = index, 0, set()
        return int(index.ntotal)

    def _add_rows(self, rows: list[tuple[int, str]]) -> None:
        vectors = self.encoder.encode([t for _, t in rows])
        with self._lock.writing():
            self.index.add_with_ids(vectors, np.array([i for i, _ in rows], dtype=np.int64))
        self._top = max(self._top, max(i for i, _ in rows))

    def _live_ids(self) -> np.ndarray:
        """The ids searchable here: those in the vector index and not hidden."""
        ids = vindex.indexed_ids(self.index)
        return ids[~np.isin(ids, list(self._hidden))] if self._hidden else ids

    def _forget(self, ids: list[int]) -> None:
        """Take removed ids out of the vector index (or hide them, where it cannot delete)."""
        present = np.intersect1d(self._live_ids(), np.array(ids, dtype=np.int64))
        if not len(present):
            return
        with self._lock.writing():
            try:
                self.index.remove_ids(present)
            except RuntimeError:  # pq-refine and hnsw: "remove_ids not implemented", raised before any change
                self._hidden.update(present.tolist())
        self._pending += len(present)

    def __len__(self) -> int:
        return int(self.index.ntotal) - len(self._hidden)

    @property
    def hidden(self) -> int:
        """How many removed questions the vector index still holds, hidden from results."""
        return len(self._hidden)

    def refresh(self) -> None:
        """Drop the ids removed since the last removal applied here, then index the rows
        committed to the store after the last one this process indexed."""
        with self._refresh:
            if self.store.removal_mark() > self._mark:
                removed, self._mark = self.store.removed_after(self._mark)
                self._forget(removed)
            top = self.store.max_id()
            if top > self._top:
                self._add_rows(self.store.rows_after(self._top))

    def search(self, vectors: np.ndarray, k: int) -> list[list[tuple[int, float, str, float]]]:
        if not len(self):
            return [[] for _ in vectors]
        with self._lock.reading():
            hidden = set(self._hidden)
            scores, ids = self.index.search(vectors, min(k + len(hidden), int(self.index.ntotal)))
        rows = self.store.texts_and_hubs(i for i in ids.ravel() if i >= 0)
        return [  # a row another process removed a moment ago is in no store row: left out like a hidden one
            [(int(i), float(s), *rows[int(i)]) for s, i in zip(row_s, row_i) if i >= 0 and int(i) in rows and int(i) not in hidden][:k]
            for row_s, row_i in zip(scores, ids)
        ]

    def add(self, texts: list[str], vectors: np.ndarray, hubs: list[float]) -> tuple[list[int], list[bool]]:
        with self._refresh:  # a search's catch-up must not index these rows a second time
            ids, fresh = self.store.insert_new(texts, hubs)
            if fresh:
                row = {i: n for n, i in enumerate(ids)}
                with self._lock.writing():
                    self.index.add_with_ids(vectors[[row[i] for i in fresh]], np.array(fresh, dtype=np.int64))
                    self._top = max(self._top, max(fresh))
                self._pending += len(fresh)
        if self._pending >= CHECKPOINT_EVERY:
            self.flush()
        return ids, first_seen(ids, fresh)

    def remove(self, ids: list[int]) -> dict[int, str]:
        with self._refresh:
            gone = self.store.remove(ids)
            self._forget(list(gone))
        if self._pending >= CHECKPOINT_EVERY:
            self.flush()
        return gone

    def removed_texts(self) -> list[str]:
        return list(self.store.removed_texts())

    def vectors(self, ids: list[int]) -> np.ndarray:
        if not ids:
            return np.zeros((0, self.index.d), dtype=np.float32)
        with self._lock.reading():  # every type keeps the full vectors (Flat, RFlat, HNSW's Flat storage)
            return np.vstack([self.index.reconstruct(int(i)) for i in ids])

    def ids_of(self, texts: list[str]) -> dict[str, int]:
        return self.store.ids_of(texts)

    def texts(self, ids: Iterable[int]) -> dict[int, str]:
        return self.store.texts(ids)

    def all_texts(self) -> list[str]:
        return self.store.all_texts()

    def all_rows(self) -> list[tuple[int, str]]:
        return self.store.all_rows()

    def flush(self) -> None:
        """Write the FAISS checkpoint if rows were added since it was last written. On a full
        disk it is left for later: the store holds every question, and opening indexes what
        the checkpoint lacks, so an acknowledged add or removal does not wait on it."""
        if self._pending and not self.read_only:
            try:
                with self._lock.reading():
                    vindex.save(self.index, self.gen / "vectors.faiss")
            except (OSError, RuntimeError) as e:
                if not is_full_disk(e, self.gen):
                    raise
                log.warning("the disk holding %s is full: the vector checkpoint is not written yet; every question is safe in questions.db", self.gen)
                return
            self._pending = 0

    def copy_to(self, root: Path, gen: Path, manifest: dict) -> dict:
        """Write this generation's vectors and store into ``gen`` (of a backup folder at
        ``root``) and return the manifest the copy carries. The vectors are written first, so
        the store, copied after, holds every row they hold: opening the copy indexes whatever
        was added between the two (as after a kill), and its record of removals hides the rest."""
        with self._lock.reading():
            vindex.save(self.index, gen / "vectors.faiss")
        self.store.copy_to(gen / "questions.db")
        return manifest

    def close(self) -> None:
        if not self._closed:
            self.flush()
            self.store.close()
            self._closed = True
