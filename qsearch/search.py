"""SearchEngine: the model that built an index, and a backend that holds its questions.

An index folder (``indexes/default/`` by default) holds generations (``qsearch.generations``:
CURRENT names the live one). A generation holds index.json, model/, and the backend's files:
questions.db + vectors.faiss (faiss), or nothing (milvus: index.json names the URI and
collection; a Milvus Lite file defaults to milvus.db in the folder).

``build`` writes a whole new generation and then switches CURRENT, so a failed or killed
build leaves the previous index working. The engine encodes, checks input, ranks
(``qsearch.ranking``) and reports; the backend (``qsearch.backend``) stores, searches and
keeps what it acknowledged.

Every search first catches up: a rebuild by another process is followed to the new
generation, and the backend indexes what other processes committed since.
"""

from __future__ import annotations

import glob
import json
import logging
import math
import os
import re
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from qsearch import generations, hubness, ranking
from qsearch import index as vindex
from qsearch.backend import BACKENDS, QuestionIndex
from qsearch.encoder import Encoder
from qsearch.faiss_backend import DISK_FULL, FaissIndex
from qsearch.files import fsync_dir, fsync_tree
from qsearch.locks import ReadWriteLock
from qsearch.errors import DiskFull, QsearchError, disk_full
from qsearch.manifest import read_manifest, write_json
from qsearch.paths import DEFAULT_INDEX, LITE_FILE
from qsearch.store import Store

INDEX_FORMAT_VERSION = 2  # 2: every question's hubness is stored beside its text
MAX_QUESTION_CHARS = 10_000
HUBNESS_OUTGROWN = 1.5  # advise a repair once the index holds this many times the questions last measured together
HIDDEN_REPAIR = 1000  # advise a repair once pq-refine or HNSW hides this many removed questions: each search fetches that many more
log = logging.getLogger("qsearch")
_SURROGATE = re.compile("[\ud800-\udfff]")
_BUILD_HINT = "run `qsearch build-index` (add --index DIR for another folder)"


@dataclass
class Match:
    """One neighbour of a query: its store id, text, verdict cosine (``Encoder.to_verdict``) and the verdict."""

    id: int
    text: str
    score: float
    duplicate: bool

    def to_dict(self) -> dict:
        return asdict(self)


def _read(read_as: list[dict[str, str]] | None, n: int) -> list[dict]:
    """Each query's ``"read_as"`` entry (the words the model read as others), or nothing."""
    return [{"read_as": r} if r else {} for r in (read_as or [{}] * n)]


def results_json(queries: list[str], results: list[list[Match]], read_as: list[dict[str, str]] | None = None) -> list[dict]:
    """Search results as ``query --json`` prints them and the API answers: one object per query,
    with ``read_as`` (``Encoder.read_as``) where the model read a word of the query as another."""
    return [{"query": q, **r, "matches": [m.to_dict() for m in ms]} for q, r, ms in zip(queries, _read(read_as, len(queries)), results)]


def added_json(
    queries: list[str], ids: list[int], added: list[bool], results: list[list[Match]], read_as: list[dict[str, str]] | None = None
) -> list[dict]:
    """``search_and_add``'s outcome as ``add --json`` prints it and the API answers: each
    question's id, whether it was new, the words read as others (as ``results_json``) and the
    neighbours it had before it was added."""
    return [
        {"query": q, "id": i, "added": a, **r, "matches": [m.to_dict() for m in ms]}
        for q, i, a, r, ms in zip(queries, ids, added, _read(read_as, len(queries)), results)
    ]


def removed_json(questions: list[str], by_text: list[int | None], ids: list[int], by_id: dict[int, str]) -> list[dict]:
    """What a removal reports: each question given (with the id it had, or None) and each id
    given (with the text it had, or None), and whether it was removed."""
    return [{"question": q, "id": i, "removed": i is not None} for q, i in zip(questions, by_text)] + [
        {"question": by_id.get(i), "id": i, "removed": i in by_id} for i in ids
    ]


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


def _model_difference(encoder: Encoder, own: Encoder, manifest: dict) -> str | None:
    """How ``encoder`` differs from the model an index was built with (``own``, its copy), or
    None when it is the same: width, vocabulary, reading of words (spelling) and weights.
    Retrained models share the first two and give other vectors; another spelling correction
    reads some questions otherwise."""
    if encoder.manifest["vocab_sha256"] != manifest["vocab_sha256"] or encoder.dim != manifest["dim"]:
        return f"dim {manifest['dim']}, vocabulary {manifest['vocab_sha256'][:12]}"
    if encoder.weights.keys() != own.weights.keys() or not all(np.array_equal(encoder.weights[k], own.weights[k]) for k in own.weights):
        return f"dim {manifest['dim']}, vocabulary {manifest['vocab_sha256'][:12]}, other weights"
    if encoder.manifest.get("spelling") != own.manifest.get("spelling"):
        return f"the same weights, reading words with {own.manifest.get('spelling') or 'no spelling correction'}"
    return None


@dataclass
class _Previous:
    """What a rebuild carries over from the index it replaces."""

    held: dict[str, int] = field(default_factory=dict)  # every stored question, with its id
    removed: dict[str, int] = field(default_factory=dict)  # every question removed (not stored again), with the id it had
    faiss: bool = False  # whether these are a FAISS store's ids, which a FAISS rebuild keeps
    collection: tuple[str, str] | None = None  # the Milvus URI and collection they were read from

    def joined(self, held: list[str], removed: list[str]) -> "_Previous":
        """These and what a Milvus collection holds that another folder built: a question that
        either holds is kept (never lost), and one removed from either and held by neither
        stays out. The collection's own ids play no part: a Milvus build takes ids from texts."""
        both = {**dict.fromkeys(held, 0), **self.held}
        gone = {t: i for t, i in {**dict.fromkeys(removed, 0), **self.removed}.items() if t not in both}
        return _Previous(both, gone, self.faiss, self.collection)


def _previous(root: Path) -> _Previous:
    """The questions that the live index at ``root`` (if any) holds, and those removed from it.

    A FAISS index's questions are read from its SQLite store alone, so a rebuild with a new
    model keeps them even when the old generation's model or vector file no longer loads;
    a Milvus index is opened, since its texts live in the collection.
    """
    gen = generations.live(root)
    if gen is None:
        return _Previous()
    manifest = _recorded(gen)
    backend = manifest.get("backend", "faiss") if manifest is not None else None
    try:
        if backend == "faiss":
            return _Previous(*FaissIndex.stored_texts(gen), faiss=True)
        old = SearchEngine.open(root)
        try:
            return _Previous(
                dict.fromkeys(old.backend.all_texts(), 0), dict.fromkeys(old.backend.removed_texts(), 0),
                collection=(old.manifest["milvus_uri"], old.manifest["collection"]),
            )
        finally:
            old.backend.close()  # not old.close(): the caller holds the folder's writer lock, which that takes
    except DiskFull:
        raise
    except QsearchError as e:
        raise QsearchError(f"the index at {root} cannot be read to keep its questions ({e}); --replace builds anew without them") from None


def _carried_ids(texts: list[str], previous: _Previous) -> list[int] | None:
    """The ids of a FAISS rebuild's ``texts``: each question the FAISS index it replaces held
    keeps its id, and the others get ids above every id that index issued, so that an id a
    client holds never comes to name another question; None (1..n) after any other index."""
    if not previous.faiss:
        return None
    top = max([0, *previous.held.values(), *previous.removed.values()])
    ids = []
    for text in texts:
        if text not in previous.held:
            top += 1
        ids.append(previous.held.get(text, top))
    return ids


def _refused(engine: "SearchEngine", what: str) -> QsearchError:
    """The one-line refusal of a write (``what``: adds, removals, repair) to a read-only index, with its remedy."""
    why = engine.backend.why_read_only
    fix = "free some space on its disk and run again" if why == DISK_FULL else f"{what} {'needs' if what == 'repair' else 'need'} write access"
    return QsearchError(f"the index at {engine.root} is read-only ({why}): it answers queries; {fix}")


def _check_k(k: int) -> None:
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise QsearchError(f"k must be a whole number of at least 1, got {k!r}")


class SearchEngine:
    """Find the known questions nearest to new ones; add new ones as they come."""

    def __init__(self, root: Path, generation: Path, manifest: dict, encoder: Encoder, backend: QuestionIndex):
        self.root, self.generation, self.manifest = root, generation, manifest
        self.encoder, self.backend = encoder, backend
        self._write = threading.Lock()
        self._refresh = threading.Lock()
        self._parts = ReadWriteLock()  # generation, manifest, encoder and backend change together
        self._seen_current: tuple[tuple[int, int, int], str] | None = None

    @property
    def read_only(self) -> bool:
        return self.backend.read_only

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
        backend: str = "faiss",
        milvus_uri: str | None = None,
        collection: str = "qsearch",
        milvus_token: str | None = None,
        recall: float = 0.99,
        keep_old: bool = True,
    ) -> "SearchEngine":
        """Index ``questions`` (blank ones skipped, exact repeats stored once) into ``path``.

        An index already at ``path`` is replaced, but the questions it holds beyond
        ``questions`` (those added since it was built) go into the new one, so that a rebuild,
        with a new model say, never loses an acknowledged question, and those removed from it
        (``remove``) stay out, so that a rebuild from the same source file does not bring them
        back; ``keep_old=False`` forgets both. The manifest's ``kept_from_previous`` and
        ``left_out_removed`` count them.

        ``backend`` is ``faiss`` (files in the folder) or ``milvus`` (a collection at
        ``milvus_uri``: a Milvus Lite file, by default ``milvus.db`` in the folder, or a server
        URL; the folder records the URI and collection, never the token). ``index_type`` is
        flat, pq-refine, hnsw or auto (see ``qsearch.index``); approximate FAISS types are tuned
        to ``recall``. ``progress(done, total)`` is called while encoding. The new index
        replaces the one at ``path`` only once it is complete.
        """
        encoder = encoder or Encoder.load()
        root = Path(path)
        if root.exists() and not root.is_dir():
            raise QsearchError(f"{root} is a file, not an index folder")
        if root.is_dir() and generations.live(root) is None and not _only_ours(root):
            raise QsearchError(f"{root} exists and is not a qsearch index; pick an empty or new --index folder")
        texts = list(dict.fromkeys(q.strip()[:MAX_QUESTION_CHARS] for q in questions if q and q.strip()))
        if not texts:
            raise QsearchError("no questions to index (every one was empty)")
        if backend not in BACKENDS:
            raise QsearchError(f"unknown backend {backend!r}; pick one of: {', '.join(BACKENDS)}")
        if not 0 < recall <= 1:
            raise QsearchError(f"the recall target must be above 0 and at most 1, got {recall}")
        requested = index_type
        index_type = vindex.resolve_type(index_type, len(texts))
        if backend == "milvus" and index_type == "pq-refine":
            index_type = "flat" if requested == "auto" else index_type
            if requested != "auto":
                raise QsearchError("the Milvus backend supports --index-type flat, hnsw or auto")
        uri = None
        if backend == "milvus":
            from qsearch.milvus_backend import MilvusIndex, is_lite

            uri = milvus_uri or LITE_FILE  # the default, inside the folder, is recorded relative to it
            if milvus_uri and is_lite(milvus_uri):
                uri = str(Path(milvus_uri).resolve())
        with generations.writer_lock(root):  # adds wait here, so none falls between reading the old index and the switch
            _drop_stale_lite(root)
            previous = _previous(root) if keep_old else _Previous()
            if backend == "milvus" and keep_old and previous.collection != (uri, collection):  # another folder's, or none
                previous = previous.joined(*MilvusIndex.held(_milvus_uri(root, uri), collection, milvus_token))
            new = set(texts)
            kept = [t for t in previous.held if t not in new]
            left_out = [t for t in texts if t in previous.removed]
            texts = [t for t in texts if t not in previous.removed] + kept
            if not texts:
                raise QsearchError(f"every question given was removed from the index at {root}; --replace builds anew with them")
            with generations.new_generation(root) as gen:  # deleted again if writing it fails
                started = time.perf_counter()
                manifest = {
                    "format": "qsearch-index",
                    "format_version": INDEX_FORMAT_VERSION,
                    "backend": backend,
                    "index_type": index_type,
                    "requested_index_type": requested,
                    "factory": vindex.factory(encoder.dim, index_type),
                    "dim": encoder.dim,
                    "model": encoder.name,
                    "vocab_sha256": encoder.manifest["vocab_sha256"],
                    "threshold": encoder.threshold,
                    "questions_at_build": len(texts),
                    "kept_from_previous": len(kept),
                    "left_out_removed": len(left_out),
                    "source": source,
                }
                if backend == "faiss":
                    store = FaissIndex.create(gen, manifest, encoder, texts, progress, recall, _carried_ids(texts, previous), previous.removed)
                else:
                    manifest.update(milvus_uri=uri, collection=collection)
                    manifest["factory"] = f"milvus:{index_type}"
                    store = MilvusIndex.create(
                        _milvus_uri(root, uri), collection, _model_key(manifest), index_type, texts, encoder, progress, milvus_token,
                        removed=list(previous.removed), keep_removed=keep_old,
                    )
                manifest["build_seconds"] = round(time.perf_counter() - started, 2)
                try:
                    encoder.save(gen / "model")
                    write_json(gen / "index.json", manifest)
                    if backend == "milvus":
                        store.publish()  # the new collection takes the name only once the folder's generation is whole
                except BaseException:
                    if backend == "milvus":
                        store.discard()
                    raise
            generations.switch(root, gen)
            _drop_stale_lite(root)
        return cls(root, gen, manifest, Encoder.load(gen / "model"), store)

    # ---- opening --------------------------------------------------------------------------
    @classmethod
    def open(cls, path: Path | str = DEFAULT_INDEX, encoder: Encoder | None = None) -> "SearchEngine":
        """Open an index; check that its backend, index and model agree; catch up on unindexed rows.

        Without write permission on the folder, a FAISS index opens read-only: it answers
        queries, and refuses adds with a clear message.
        """
        root = Path(path)
        gen = generations.live(root)
        if gen is None:
            if not root.exists():
                raise QsearchError(f"no index at {root}; {_BUILD_HINT}")
            raise QsearchError(f"{root} is not a qsearch index (no CURRENT file); {_BUILD_HINT}")
        try:
            manifest = read_manifest(gen / "index.json", "index", INDEX_FORMAT_VERSION, _BUILD_HINT)
        except QsearchError:
            _refuse_format_1(root, gen)  # an index from an older qsearch: say how to upgrade it
            raise
        own = Encoder.load(gen / "model")
        difference = _model_difference(encoder, own, manifest) if encoder is not None else None
        if difference is not None:
            raise QsearchError(
                f"the index at {root} was built with another model ({difference}); "
                f"rebuild it with `qsearch build-index --model YOUR_MODEL --index {root}`"
            )
        if own.manifest["vocab_sha256"] != manifest["vocab_sha256"] or own.dim != manifest["dim"]:
            raise QsearchError(f"the model inside {gen} does not match its index; {_BUILD_HINT}")
        if manifest.get("backend", "faiss") == "milvus":
            from qsearch.milvus_backend import MilvusIndex

            backend = MilvusIndex.open(_milvus_uri(root, manifest["milvus_uri"]), manifest["collection"], _model_key(manifest))
        else:
            backend = FaissIndex.open(gen, manifest, own)
        return cls(root, gen, manifest, own, backend)

    @classmethod
    def repair(cls, path: Path | str = DEFAULT_INDEX) -> int:
        """Rebuild the vector file from the store (every text it holds) and measure every
        question's hubness again; returns the count. An index of format 1 (before hubness)
        is brought up to format 2 on the way, every question kept."""
        root = Path(path)
        if generations.live(root) is not None:
            with generations.writer_lock(root):
                _upgrade_format_1(generations.live(root))
        with cls.open(root) as engine:
            if not isinstance(engine.backend, FaissIndex):
                raise QsearchError(f"the index at {root} lives in Milvus, which keeps its own vectors; repair is for FAISS indexes")
            if engine.read_only:
                raise _refused(engine, "repair")
            try:
                with engine._write, generations.writer_lock(root):
                    count = engine.backend.rebuild()
                    engine.manifest["hubness_measured_for"] = count
                    write_json(engine.generation / "index.json", engine.manifest)
            except (OSError, RuntimeError) as e:
                raise disk_full(e, root, "the vector file is unchanged") or e
        return count

    def refresh(self) -> None:
        """Catch up with other processes: follow a rebuild to its new generation, then let the
        backend take in what was committed since (cheap when nothing was)."""
        with self._refresh:
            current = self._current()
            if current != self.generation.name:
                self._follow(current)
            self.backend.refresh()

    def _current(self) -> str:
        """The live generation's name. CURRENT is only ever replaced (a new inode), so it is
        read again only when its inode, time or size changed: a stat costs a tenth of a read,
        and every search asks."""
        path = self.root / "CURRENT"
        try:
            st = os.stat(path)
            key = (st.st_ino, st.st_mtime_ns, st.st_size)
            seen = self._seen_current
            if seen is None or seen[0] != key:
                seen = self._seen_current = (key, path.read_text().strip())
            return seen[1]
        except OSError:
            return self.generation.name

    def _follow(self, current: str) -> None:
        """Another process rebuilt the index: switch to the new generation."""
        try:
            fresh = type(self).open(self.root)
        except QsearchError as e:
            log.warning("the index at %s was rebuilt but its new generation cannot be opened yet: %s", self.root, e)
            return
        with self._parts.writing():
            old = self.backend
            self.generation, self.manifest, self.encoder, self.backend = fresh.generation, fresh.manifest, fresh.encoder, fresh.backend
        old.close()

    # ---- using ----------------------------------------------------------------------------
    def __len__(self) -> int:
        with self._parts.reading():
            return len(self.backend)

    @property
    def threshold(self) -> float:
        return self.encoder.threshold

    @property
    def hubness_measured_for(self) -> int:
        """How many questions the index held when every one's hubness was last measured (build or repair)."""
        return int(self.manifest.get("hubness_measured_for", self.manifest["questions_at_build"]))

    def hubness_outgrown(self) -> bool:
        """Whether the index has grown enough by adds since then (``HUBNESS_OUTGROWN`` times)
        that the older questions' hubness, measured against fewer neighbours, should be
        measured again (``repair``)."""
        return len(self) >= HUBNESS_OUTGROWN * max(self.hubness_measured_for, 1)

    def hidden_removals(self) -> int:
        """Removed questions that a pq-refine or HNSW index still holds, hidden from results
        (FAISS cannot delete from them; ``repair`` writes the vectors without them)."""
        with self._parts.reading():
            return self.backend.hidden if isinstance(self.backend, FaissIndex) else 0

    def repair_advised(self) -> bool:
        """Whether ``repair`` would help: hubness outgrown, or ``HIDDEN_REPAIR`` removals hidden."""
        return self.hubness_outgrown() or self.hidden_removals() >= HIDDEN_REPAIR

    def info(self) -> dict:
        """What an operator asks of an index: where it lives, what it holds and how it was
        built, the model that reads it, and whether ``repair`` is advised (``qsearch info``)."""
        self.refresh()
        with self._parts.reading():
            m = self.manifest
            where = {}
            if m.get("backend") == "milvus":  # the name is an alias: the collection behind it is what Milvus's own tools take
                where = {"milvus_uri": m["milvus_uri"], "collection": m["collection"], "milvus_collection": self.backend.serving()}
            return {
                "index": str(self.root), "generation": self.generation.name, "backend": m.get("backend", "faiss"),
                "index_type": m["index_type"], "factory": m["factory"], **where, "questions": len(self.backend),
                "questions_at_build": m["questions_at_build"], "kept_from_previous": m.get("kept_from_previous", 0),
                "left_out_removed": m.get("left_out_removed", 0), "source": m.get("source", ""),
                "build_seconds": m.get("build_seconds"), "model": self.encoder.name, "dim": self.encoder.dim,
                "threshold": self.threshold, "cluster_threshold": self.encoder.cluster_threshold,
                "hubness_measured_for": self.hubness_measured_for, "hidden_removals": self.hidden_removals(),
                "repair_advised": self.repair_advised(), "writable": not self.read_only,
            }

    def backup(self, dest: Path | str) -> dict:
        """A consistent copy of this index in ``dest``, a new folder, taken while it serves:
        nothing waits for it, and it holds every question acknowledged before it began.

        The copy is an index folder itself: ``--index DEST`` searches it, and moving it into
        the index's place restores it. It is written beside ``dest`` and renamed into place
        when whole, so a backup that fails or is killed leaves nothing under that name (a
        killed one's hidden folder goes at the next backup to that name); it is opened once
        before this returns, to check that it reads. Returns its folder, question
        count, size in bytes and seconds taken.
        """
        dest = Path(dest)
        try:
            taken = dest.exists() and (not dest.is_dir() or any(dest.iterdir()))
            inside = dest.resolve().is_relative_to(self.root.resolve())
        except OSError as e:  # a name too long, a folder that may not be read
            raise QsearchError(f"cannot write the backup into {dest}: {e.strerror or e}") from None
        if taken:
            raise QsearchError(f"{dest} exists and is not an empty folder; back up into a new one")
        if inside:
            raise QsearchError(f"{dest} is inside the index folder {self.root}; back up somewhere else")
        started = time.perf_counter()
        self.refresh()
        partial = dest.parent / f".{dest.name}.partial-{os.getpid()}"
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            for left in dest.parent.glob(f".{glob.escape(dest.name)}.partial-*"):  # a killed backup's, to this name
                shutil.rmtree(left, ignore_errors=True)
            with self._parts.reading():
                gen = partial / self.generation.name
                gen.mkdir(parents=True)
                manifest = self.backend.copy_to(partial, gen, dict(self.manifest))
                shutil.copytree(self.generation / "model", gen / "model")
                write_json(gen / "index.json", manifest)
            (partial / "CURRENT").write_text(gen.name + "\n")
            fsync_tree(partial)
            if dest.exists():
                dest.rmdir()
            os.rename(partial, dest)  # whole, or not there: the rename is the backup's one visible step
            fsync_dir(dest.parent)
        except BaseException as e:
            shutil.rmtree(partial, ignore_errors=True)
            if isinstance(e, (OSError, RuntimeError, sqlite3.DatabaseError)):  # FAISS writes raise RuntimeError
                why = e.strerror if isinstance(e, OSError) and e.strerror else e
                raise disk_full(e, dest.parent, "no backup was written") or QsearchError(f"cannot write the backup into {dest}: {why}") from None
            raise
        with type(self).open(dest) as copy:
            questions = len(copy)
        size = sum(f.stat().st_size for f in dest.rglob("*") if f.is_file())
        return {"index": str(dest), "questions": questions, "bytes": size, "seconds": round(time.perf_counter() - started, 2)}

    def questions(self) -> list[tuple[int, str]]:
        """Every stored question as (id, text), by id: what ``qsearch export`` writes."""
        self.refresh()
        with self._parts.reading():
            return self.backend.all_rows()

    def ids_of(self, texts: list[str]) -> dict[str, int]:
        """The id of each text already stored (exact match)."""
        with self._parts.reading():
            return self.backend.ids_of(texts)

    def texts(self, ids: Iterable[int]) -> dict[int, str]:
        """The stored text of each id."""
        with self._parts.reading():
            return self.backend.texts(ids)

    def search(self, questions: list[str], k: int = 5, threshold: float | None = None) -> list[list[Match]]:
        """The ``k`` nearest known questions for each question, best first."""
        questions = clean_questions(questions)
        _check_k(k)
        self.refresh()
        with self._parts.reading():
            return self.search_vectors(questions, self.encoder.encode(questions), k, threshold)

    def search_vectors(
        self, questions: list[str], vectors: np.ndarray, k: int, threshold: float | None = None, encoded_by: Encoder | None = None
    ) -> list[list[Match]]:
        """The ``k`` nearest known questions for each of ``questions``, given their ``vectors``
        (already encoded by this model).

        Ranked by cosine less half the neighbour's hubness plus a little of the rare words they
        share (``qsearch.ranking``); the scores reported, and the verdicts, are the plain
        verdict cosines (``Encoder.to_verdict``). ``encoded_by``: the encoder that made ``vectors``,
        when it was taken from ``self.encoder`` earlier; if the engine has since followed a
        rebuild to another model, the vectors would be searched in the wrong space, so that is
        an error (even at the same width).
        """
        _check_k(k)
        threshold = check_threshold(threshold)
        if len(questions) != len(vectors):
            raise ValueError(f"{len(questions)} questions but {len(vectors)} vectors")
        with self._parts.reading():
            if vectors.shape[1] != self.encoder.dim or (encoded_by is not None and encoded_by is not self.encoder):
                raise QsearchError(f"the index at {self.root} was rebuilt with another model meanwhile; try again")
            return self._matches(questions, vectors, self.backend.search(vectors, ranking.candidates(k)), k, threshold)

    def _matches(self, questions: list[str], vectors: np.ndarray, rows: list[list[tuple]], k: int, threshold: float | None) -> list[list[Match]]:
        """Each query's best ``k`` rows as matches, scored by their verdict cosines (see ``search_vectors``)."""
        threshold = self.threshold if threshold is None else threshold
        lexicon = self.encoder.lexicon
        best = [ranking.rank_for(q, row, k, lexicon, self.encoder.search_weights) for q, row in zip(questions, rows)]
        scores = [[r[1] for r in rs] for rs in best]
        if self.encoder.has_pair_map:
            found = [r[0] for rs in best for r in rs]
            stored = dict(zip(found, self.encoder.to_verdict(self.backend.vectors(found))))
            asked = self.encoder.to_verdict(vectors)
            scores = [[float(stored[r[0]] @ q) for r in rs] for q, rs in zip(asked, best)]
        if self.encoder.word_gap_weight:
            flat = self.encoder.verdicts(
                [q for q, rs in zip(questions, best) for _ in rs], [r[2] for rs in best for r in rs], [s for ss in scores for s in ss]
            ).tolist()
            taken = iter(flat)
            scores = [[next(taken) for _ in rs] for rs in best]
        return [[Match(r[0], r[2], s, s > threshold) for r, s in zip(rs, ss)] for rs, ss in zip(best, scores)]

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
            raise _refused(self, "adds")
        with self._parts.reading():
            vectors, encoded_for = self.encoder.encode(questions), self.generation.name
        with self._write, generations.writer_lock(self.root):
            self.refresh()
            with self._parts.reading():
                if self._current() != encoded_for or self.generation.name != encoded_for:
                    raise QsearchError(f"the index at {self.root} was rebuilt while adding; add again")
                rows = self.backend.search(vectors, ranking.candidates(k))
                matches = self._matches(questions, vectors, rows, k, threshold) if k else []
                hubs = [hubness.hub_of([r[1] for r in row]) for row in rows]
                ids, added = self.backend.add(questions, vectors, hubs)
        return ids, matches, added

    def remove(self, questions: list[str]) -> list[int | None]:
        """Take stored questions (matched exactly, as ``add`` stores them) out of the index;
        return each one's id, or None where no such question is stored.

        See ``remove_ids``: the same removal, by id.
        """
        questions = clean_questions(questions)
        found, gone = self._remove(questions, [])
        return [found[q] if found.get(q) in gone else None for q in questions]

    def remove_ids(self, ids: list[int]) -> dict[int, str]:
        """Take the questions with these ids out of the index, for a question deleted from the
        forum or merged into another; return {id: text} of those that were stored.

        Durable when it returns, and seen by the next search of every process that has the
        index open. A rebuild (``build``, keeping what the index holds) leaves them out too;
        adding one again stores it under a new id, since no id is issued twice.
        """
        for i in ids:
            if not isinstance(i, int) or isinstance(i, bool) or not 1 <= i < 2**63:
                raise QsearchError(f"an id is a whole number from 1 to 2^63 - 1 (SQLite's and FAISS's), got {i!r}")
        return self._remove([], ids)[1]

    def _remove(self, texts: list[str], ids: list[int]) -> tuple[dict[str, int], dict[int, str]]:
        """Remove ``texts`` and ``ids`` under the writer lock, the texts looked up there, after
        catching up, so that a rebuild by another process cannot come between look-up and removal."""
        self.refresh()
        if self.read_only:
            raise _refused(self, "removals")
        if not texts and not ids:
            return {}, {}
        with self._write, generations.writer_lock(self.root):
            self.refresh()
            with self._parts.reading():
                found = self.backend.ids_of(texts) if texts else {}
                wanted = list(dict.fromkeys([*found.values(), *ids]))
                return found, self.backend.remove(wanted) if wanted else {}

    def save(self) -> None:
        """Write the backend's checkpoint; acknowledged adds are durable without it."""
        if not self.read_only:
            with self._write, generations.writer_lock(self.root), self._parts.reading():
                self.backend.flush()

    def __enter__(self) -> "SearchEngine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Write the checkpoint and let go of the backend (``with SearchEngine.open(...) as
        engine:`` calls it on the way out, an error included)."""
        if self.read_only:
            with self._parts.reading():
                self.backend.close()
            return
        with self._write, generations.writer_lock(self.root), self._parts.reading():
            self.backend.close()


def _format_1(gen: Path) -> dict | None:
    """The manifest of a format-1 generation (before hubness was stored), else None."""
    try:
        manifest = json.loads((gen / "index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # read_manifest says what is wrong
    return manifest if isinstance(manifest, dict) and manifest.get("format_version") == 1 else None


def _refuse_format_1(root: Path, gen: Path) -> None:
    """An index from before hubness: say how to bring it up to date without losing a question."""
    manifest = _format_1(gen)
    if manifest is None:
        return
    if manifest.get("backend", "faiss") == "milvus":
        raise QsearchError(
            f"the index at {root} was built by an older qsearch (format 1, before search ranked by hubness); "
            f"build it again with `qsearch build-index --backend milvus --index {root}`"
        )
    raise QsearchError(
        f"the index at {root} was built by an older qsearch (format 1, before search ranked by hubness); "
        f"`qsearch repair --index {root}` brings it up to date and keeps every question"
    )


def _upgrade_format_1(gen: Path) -> None:
    """Give a format-1 FAISS store its hub column (0 until repair measures it) and mark the
    generation format 2. The caller holds the writer lock; a second run finds nothing to do."""
    manifest = _format_1(gen)
    if manifest is None or manifest.get("backend", "faiss") != "faiss":
        return
    Store.add_hub_column(gen / "questions.db")
    manifest["format_version"] = INDEX_FORMAT_VERSION
    write_json(gen / "index.json", manifest)


def _recorded(gen: Path) -> dict | None:
    """A generation's ``index.json`` as written, unchecked, or None where it cannot be read as
    an object: what a rebuild needs to know of an index that may no longer open."""
    try:
        manifest = json.loads((gen / "index.json").read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def _only_ours(root: Path) -> bool:
    """Whether a folder without CURRENT holds only what a killed first build leaves: the
    engine's own files and, once that build had begun its Milvus Lite collection, the folder's
    own Lite file beside the writer lock (the next build drops the unfinished collection)."""
    names = {p.name for p in root.iterdir()}
    lite = LITE_FILE in names and ".lock" in names
    return all(generations.is_ours(root / n) or (lite and n == LITE_FILE) for n in names)


def _drop_stale_lite(root: Path) -> None:
    """Delete the folder's own Milvus Lite file when the live generation does not name it: left
    by an index that moved to FAISS or to another Milvus, or by a killed first build. Nothing
    reads it then, and a later Milvus build in the folder must not take back the questions it
    still holds (one removed since would return). Kept whenever the live manifest is unreadable.
    Called under the writer lock."""
    own = root / LITE_FILE
    if not own.exists():
        return
    gen = generations.live(root)
    if gen is not None:
        manifest = _recorded(gen)
        if manifest is None:
            return
        uri = manifest.get("milvus_uri") if manifest.get("backend") == "milvus" else None
        if uri is not None and Path(_milvus_uri(root, uri)).resolve() == own.resolve():
            return
    if own.is_dir():  # Milvus Lite 3 keeps a folder under the file's name
        shutil.rmtree(own, ignore_errors=True)
    else:
        own.unlink(missing_ok=True)


def _milvus_uri(root: Path, uri: str) -> str:
    """A recorded Milvus Lite path is relative to the index folder; a server URL is as given."""
    from qsearch.milvus_backend import is_lite

    return str(root / uri) if is_lite(uri) and not Path(uri).is_absolute() else uri


def _model_key(manifest: dict) -> dict:
    """What a Milvus collection records of the model that built it, to refuse another."""
    return {"model": manifest["model"], "dim": manifest["dim"], "vocab_sha256": manifest["vocab_sha256"]}
