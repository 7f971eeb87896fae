"""The distributed backend: questions and vectors in one Milvus collection.

The collection has ``id`` (INT64 primary key), ``vector`` (FLOAT_VECTOR, metric IP, FLAT or
HNSW), ``text`` (VARCHAR) and ``hub`` (FLOAT, the question's hubness: ``qsearch.hubness``).
A question's id is derived from its text (53 bits of its sha256, so that JavaScript reads it
exactly; on the rare collision, the next free id), which makes an exact repeat a primary-key
look-up (milliseconds, where a filter on the text scans the collection) and lets replicas on
several machines add the same question at once without
storing it twice (rows are upserted). The model that built it is recorded in the
collection's properties, so another model is refused. Every read and write uses the Strong
consistency level: an add acknowledged by one replica is seen by the next request to any
other. ``uri`` is a Milvus Lite file (embedded, one process at a time) or ``http://host:19530``
(a Milvus standalone or cluster, any number of qsearch processes and machines); the token for
a server comes from ``MILVUS_TOKEN`` and is never written down.

The name a user gives (``--collection``) is a Milvus alias. A build fills a collection of its
own, ``<collection>_q<8 hex digits>``, marks it complete, and only then points the alias at it
and drops the one it replaces: a build that fails or is killed leaves the questions where they
were (Milvus's own way to re-index without downtime), and replicas that address the alias see
the new collection at once. An index built before the alias has a collection under the name
itself; its first rebuild drops that one just before the alias is made, and should the process
die between the two, the next open adopts the complete build that no name points at.

A removed question is deleted from the collection and recorded, under the id it had, in a
second collection, ``<collection>_removed`` (made at the first removal; Milvus needs a vector
field in every collection, so it holds a constant 2-dimensional one). A rebuild reads it to
leave the text out, and a look-up passes over a recorded id as over a held one, so a text that a
collision had moved on to the next id is still found after the first one is removed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from qsearch import hubness
from qsearch.backend import first_seen
from qsearch.errors import DiskFull, QsearchError, names_full_disk
from qsearch.paths import LITE_FILE

CONSISTENCY = "Strong"
CONNECT_TIMEOUT_S = 10
BATCH = 5000
MAX_TEXT_BYTES = 65535
INDEX_TYPES = {"flat": ("FLAT", {}), "hnsw": ("HNSW", {"M": 32, "efConstruction": 80})}
HNSW_EF = 128
_EXTRA = "pip install 'qsearch[milvus]'"
REMOVED_SUFFIX = "_removed"
COMPLETE = "qsearch.complete"  # a build's collection property once every question is in and flushed
ID_BITS = 53  # JavaScript's exact integers
log = logging.getLogger(__name__)


def _milvus():
    # gRPC's own log said "Received a GOAWAY ... too_many_pings" on stderr during long Milvus Lite
    # builds (the client's keepalive pings are throttled, harmlessly); a failed call raises anyway,
    # and ``_call`` says it in one line. GRPC_VERBOSITY=ERROR in the environment brings it back.
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    try:
        import pymilvus
    except ImportError:
        raise QsearchError(f"the Milvus backend needs pymilvus (and milvus-lite for a local file): {_EXTRA}") from None
    return pymilvus


_lite_lock = threading.Lock()
_lite_users: dict[str, int] = {}


def _lite_release(uri: str) -> None:
    """Stop this process's Milvus Lite server for ``uri`` once no client here uses it, so that
    another process can open the file (Milvus Lite allows one process at a time)."""
    path = os.path.abspath(uri)
    with _lite_lock:
        _lite_users[path] = _lite_users.get(path, 1) - 1
        if _lite_users[path] > 0:
            return
        del _lite_users[path]
    from milvus_lite.server_manager import server_manager_instance

    server_manager_instance.release_server(path)


def is_lite(uri: str) -> bool:
    """Whether ``uri`` names a Milvus Lite file rather than a server."""
    return "://" not in uri


def text_id(text: str) -> int:
    """The id a text gets unless another text already holds it (then the next free one)."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()[:8], "big") % (2**ID_BITS - 1) + 1


def _next_id(i: int) -> int:
    """The id to try when ``i`` is held by another text (wrapping within ID_BITS)."""
    return i % (2**ID_BITS - 1) + 1


def _first_line(error: Exception) -> str:
    message = getattr(error, "message", None) or str(error)
    return message.strip().splitlines()[0][:200] if message.strip() else type(error).__name__


class MilvusIndex:
    """One Milvus collection holding every question; ``uri`` and ``collection`` name it."""

    def __init__(self, client, uri: str, collection: str, read_only: bool = False):
        self.client, self.uri, self.collection, self.read_only = client, uri, collection, read_only
        self.name = collection  # the alias users give; ``collection`` is what calls address (a build's own until it is published)
        self._replaces: str | None = None
        self._keep_removed = True
        self._sole_copy = False  # a build whose old collection is already gone must never be dropped
        self.why_read_only = "no write permission" if read_only else ""
        self._write = threading.Lock()
        self._ef = HNSW_EF
        self._removals_seen = False  # once the removed collection exists, it stays

    # ---- connecting -------------------------------------------------------------------------
    @staticmethod
    def connect(uri: str, token: str | None = None):
        """A client for ``uri``, or one clear line: unreachable within 10 s, or a Lite file in use."""
        pymilvus = _milvus()
        token = token if token is not None else os.environ.get("MILVUS_TOKEN", "")
        if is_lite(uri):
            if not uri.endswith(".db"):
                raise QsearchError(f"a Milvus Lite file name ends in .db, got {uri}")
            Path(uri).parent.mkdir(parents=True, exist_ok=True)
            for noisy in ("grpc._server", "milvus_lite"):  # tracebacks for unimplemented calls and a held file: one line below instead
                logging.getLogger(noisy).setLevel(logging.CRITICAL)
            # Milvus Lite keeps no server timestamps, so every read of all texts warned that it used the client's clock
            logging.getLogger("pymilvus.client.iterator.query_iterator").setLevel(logging.ERROR)
        logging.getLogger("pymilvus.decorators").setLevel(logging.CRITICAL)  # its traceback of each failed call: ``_call`` says it in one line
        try:
            client = pymilvus.MilvusClient(uri=uri, token=token, timeout=CONNECT_TIMEOUT_S)
            if is_lite(uri):
                with _lite_lock:
                    _lite_users[os.path.abspath(uri)] = _lite_users.get(os.path.abspath(uri), 0) + 1
            return client
        except Exception as e:  # pymilvus raises several types; each becomes one line
            if is_lite(uri):
                raise QsearchError(
                    f"cannot open the Milvus Lite file {uri} ({_first_line(e)}); Milvus Lite allows one process at a "
                    "time: stop the other qsearch using it, or use a Milvus server (--milvus-uri http://HOST:19530)"
                ) from None
            raise QsearchError(f"cannot reach Milvus at {uri} within {CONNECT_TIMEOUT_S} s ({_first_line(e)})") from None

    def _call(self, what: str, fn, *args, **kwargs):
        """Run one client call; a Milvus error becomes one line naming the collection."""
        try:
            return fn(*args, **kwargs)
        except QsearchError:
            raise
        except Exception as e:
            raise self._failure(what, args[0] if args and isinstance(args[0], str) else self.collection, e) from None

    def _failure(self, what: str, collection: str, e: Exception) -> QsearchError:
        """One line naming the call and collection; a full disk under Milvus is the server's
        trouble, not the request's: DiskFull (HTTP 507)."""
        error = DiskFull if names_full_disk(e) else QsearchError
        return error(f"Milvus {what} on collection {collection!r} at {self.uri} failed: {_first_line(e)}")

    def _create_collection(self, name: str, schema, params, **kwargs) -> None:
        """``create_collection``, past a folder that Milvus Lite left half-made.

        Milvus Lite makes a collection's folder before it writes the schema in it, and a write
        that fails there (a full disk) leaves a folder that it neither lists nor will make again
        ("File exists"). Such a folder, without a schema, holds no rows: it is removed and the
        collection made once more.
        """
        try:
            self.client.create_collection(name, schema=schema, index_params=params, **kwargs)
            return
        except Exception as e:
            leftover = self._half_made(name)
            if leftover is None or "File exists" not in str(e):
                raise self._failure("create_collection", name, e) from None
        shutil.rmtree(leftover)
        self._call("create_collection", self.client.create_collection, name, schema=schema, index_params=params, **kwargs)

    def _half_made(self, name: str) -> Path | None:
        """Milvus Lite's folder for collection ``name`` when it holds no schema (see
        ``_create_collection``); None on a server, or when there is none."""
        folder = Path(self.uri) / "collections" / name
        return folder if is_lite(self.uri) and folder.is_dir() and not (folder / "schema.json").exists() else None

    def serving(self) -> str | None:
        """The collection the user's name stands for now: the alias's, the name itself for an
        index built before aliases, or None when neither exists (Milvus's own backup and admin
        tools take this collection, not the alias)."""
        try:
            return self.client.describe_alias(self.name)["collection_name"]
        except Exception:  # not an alias (pymilvus's error types vary by server); asked again below
            pass
        return self.name if self._call("has_collection", self.client.has_collection, self.name) else None

    def _builds(self, half_made: bool = False) -> list[str]:
        """The collections that builds under this name made (published or not); with
        ``half_made``, Milvus Lite's folders of those it failed to make too."""
        pattern = re.compile(re.escape(self.name) + r"_q[0-9a-f]{8}")
        names = set(self._call("list_collections", self.client.list_collections))
        if half_made and is_lite(self.uri) and (Path(self.uri) / "collections").is_dir():
            names |= {p.name for p in (Path(self.uri) / "collections").iterdir() if self._half_made(p.name)}
        return sorted(c for c in names if pattern.fullmatch(c))

    def _drop(self, collection: str) -> None:
        """Drop a collection, or remove what Milvus Lite left of one it failed to make."""
        leftover = self._half_made(collection)
        if leftover is not None:
            shutil.rmtree(leftover)
        else:
            self._call("drop_collection", self.client.drop_collection, collection)

    def _complete(self, collection: str) -> bool:
        described = self._call("describe_collection", self.client.describe_collection, collection)
        return described.get("properties", {}).get(COMPLETE) == "1"

    @classmethod
    def create(
        cls, uri: str, collection: str, model: dict, index_type: str, texts: list[str], encoder, progress=None, token=None,
        removed: list[str] = (), keep_removed: bool = True,
    ) -> "MilvusIndex":
        """A new collection of its own holding ``texts`` and their vectors, complete but not
        yet under the name ``collection``: ``publish`` puts it there.

        One already under that name and built by the same model is replaced at ``publish`` (a
        rebuild, like FAISS's); one built by another model or with another dimension is
        refused. The record of removed texts is kept for the next rebuild unless
        ``keep_removed`` is False; ``removed`` (those of the index this one replaces) join it.
        A failure on the way drops the new collection and leaves the old one as it was.
        """
        pymilvus = _milvus()
        if index_type not in INDEX_TYPES:
            raise QsearchError(f"the Milvus backend supports --index-type {' or '.join(INDEX_TYPES)}, not {index_type!r}")
        client = cls.connect(uri, token)
        backend = cls(client, uri, collection)
        backend._replaces, backend._keep_removed = backend.serving(), keep_removed
        if backend._replaces is not None:
            theirs = backend.recorded_model(backend._replaces)
            if theirs != model:
                raise QsearchError(
                    f"the Milvus collection {collection!r} at {uri} holds another model's vectors "
                    f"({theirs.get('model', 'unknown')}, dim {theirs.get('dim', '?')}); pick another --collection, "
                    f"or drop it first (pymilvus: {backend._drop_hint()})"
                )
        for unfinished in set(backend._builds(half_made=True)) - {backend._replaces}:  # left by a build that failed or was killed
            backend._drop(unfinished)
        vectors = np.zeros((len(texts), int(model["dim"])), dtype=np.float32)
        for start in range(0, len(texts), BATCH):
            vectors[start : start + BATCH] = encoder.encode(texts[start : start + BATCH])
            if progress:
                progress(min(start + BATCH, len(texts)), len(texts))
        ids, taken = [], set()
        for text in texts:  # a new collection: collisions are resolved here, without asking Milvus
            i = text_id(text)
            while i in taken:
                i = _next_id(i)
            taken.add(i)
            ids.append(i)
        hubs = hubness.measure_vectors(vectors, index_type)  # in memory: a search per question through Milvus would take far longer
        schema = pymilvus.MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False, description="qsearch questions")
        schema.add_field("id", pymilvus.DataType.INT64, is_primary=True)
        schema.add_field("vector", pymilvus.DataType.FLOAT_VECTOR, dim=int(model["dim"]))
        schema.add_field("text", pymilvus.DataType.VARCHAR, max_length=MAX_TEXT_BYTES)
        schema.add_field("hub", pymilvus.DataType.FLOAT)
        params = client.prepare_index_params()
        kind, build = INDEX_TYPES[index_type]
        params.add_index(field_name="vector", index_type=kind, metric_type="IP", params=build)
        backend.collection = f"{collection}_q{secrets.token_hex(4)}"
        try:
            backend._create_collection(
                backend.collection, schema, params, consistency_level=CONSISTENCY, properties={"qsearch.model": json.dumps(model, sort_keys=True)},
            )
            for start in range(0, len(texts), BATCH):
                end = start + BATCH
                backend._upsert(ids[start:end], texts[start:end], vectors[start:end], hubs[start:end])
            backend._call("flush", client.flush, backend.collection)  # sealed segments search faster than growing ones
            backend._call("load_collection", client.load_collection, backend.collection)  # serving before the name moves to it
            backend._call("alter_collection_properties", client.alter_collection_properties, backend.collection, {COMPLETE: "1"})
            backend._record_removed(removed)
        except BaseException:
            backend.discard()
            raise
        return backend

    def _drop_hint(self) -> str:
        """The pymilvus calls that drop what the name stands for, for a user to run."""
        client = f"c = MilvusClient({self.uri!r}); "
        if self._replaces == self.name:
            return client + f"c.drop_collection({self.name!r})"
        return client + f"c.drop_alias({self.name!r}); c.drop_collection({self._replaces!r})"

    def publish(self) -> None:
        """Put a ``create``d collection under its name: point the alias at it, then drop the
        collection it replaces (and, with ``keep_removed`` False, the record of removed texts).
        Until this, searches and adds under the name go to the old collection. Once the alias
        has moved, nothing raises: an old collection that will not drop is left for the next
        build to drop."""
        if self.collection == self.name:
            return
        if self._replaces == self.name:  # built before aliases: the name is a collection, so it goes first
            self._call("drop_collection", self.client.drop_collection, self.name)
            self._replaces, self._sole_copy = None, True
        if self._replaces is None:
            self._call("create_alias", self.client.create_alias, self.collection, self.name)
        else:
            self._call("alter_alias", self.client.alter_alias, self.collection, self.name)
        gone = [self._replaces] if self._replaces is not None else []
        if not self._keep_removed and self._call("has_collection", self.client.has_collection, self.removed_collection):
            gone.append(self.removed_collection)
            self._removals_seen = False
        self.collection, self._replaces = self.name, None
        for collection in gone:
            try:
                self._call("drop_collection", self.client.drop_collection, collection)
            except QsearchError as e:
                log.warning("%s; the next build drops it", e)

    def discard(self) -> None:
        """Drop a ``create``d collection that will not be published, and disconnect (best
        effort: the error that led here is the one to report). A build that outlived the
        collection it replaced is kept: the next open gives it the name."""
        if self.collection != self.name and not self._sole_copy:
            try:
                self._drop(self.collection)
            except Exception:
                log.warning("could not drop the unfinished Milvus collection %r; the next build drops it", self.collection)
        self._disconnect()

    @classmethod
    def open(cls, uri: str, collection: str, model: dict, token=None) -> "MilvusIndex":
        """Open the collection an index folder names; refuse it when another model built it."""
        backend = cls._loaded(uri, collection, token)
        if backend is None:
            raise QsearchError(f"the Milvus collection {collection!r} is gone from {uri}; run `qsearch build-index --backend milvus` again")
        theirs = backend.recorded_model()
        if theirs != model:
            backend._disconnect()
            raise QsearchError(
                f"the Milvus collection {collection!r} at {uri} was built with another model "
                f"({theirs.get('model', 'unknown')}, dim {theirs.get('dim', '?')}); rebuild it with `qsearch build-index --backend milvus`"
            )
        return backend

    @classmethod
    def held(cls, uri: str, collection: str, token=None) -> tuple[list[str], list[str]]:
        """The texts stored under ``collection`` and those recorded as removed from it; two
        empty lists where there is no such collection. A build carries them over, whichever
        index folder made the collection: on a shared server, several folders name one."""
        backend = cls._loaded(uri, collection, token)
        if backend is None:
            return [], []
        try:
            return backend.all_texts(), backend.removed_texts()
        finally:
            backend._disconnect()

    @classmethod
    def _loaded(cls, uri: str, collection: str, token=None) -> "MilvusIndex | None":
        """A connection to what the name stands for, loaded for reads (a complete build that lost
        its name adopted first); None, disconnected, where there is nothing."""
        backend = cls(cls.connect(uri, token), uri, collection)
        try:
            if backend.serving() is None and not backend._adopt():
                backend._disconnect()
                return None
            backend._call("load_collection", backend.client.load_collection, collection)
        except BaseException:
            backend._disconnect()
            raise
        return backend

    def _adopt(self) -> bool:
        """Name the one complete build that no name points at: a first rebuild of an index made
        before aliases that died between dropping the old collection and making the alias."""
        complete = [c for c in self._builds() if self._complete(c)]
        if len(complete) != 1:
            return False
        log.warning("the Milvus name %r was missing; it now names %r, the last complete build", self.name, complete[0])
        self._call("create_alias", self.client.create_alias, complete[0], self.name)
        return True

    def recorded_model(self, collection: str | None = None) -> dict:
        """The model recorded in the collection's properties ({} when none: not qsearch's)."""
        described = self._call("describe_collection", self.client.describe_collection, collection or self.collection)
        try:
            return json.loads(described.get("properties", {}).get("qsearch.model", "{}"))
        except ValueError:
            return {}

    # ---- using ------------------------------------------------------------------------------
    def _upsert(self, ids: list[int], texts: list[str], vectors: np.ndarray, hubs: Sequence[float]) -> None:
        for t in texts:
            if len(t.encode("utf-8")) > MAX_TEXT_BYTES:
                raise QsearchError(f"a question of {len(t.encode('utf-8'))} bytes is over Milvus's VARCHAR limit of {MAX_TEXT_BYTES}")
        rows = [{"id": i, "vector": v.tolist(), "text": t, "hub": float(h)} for i, t, v, h in zip(ids, texts, vectors, hubs)]
        self._call("upsert", self.client.upsert, self.collection, rows)

    def _locate(self, texts: list[str]) -> tuple[dict[str, int], dict[str, int]]:
        """(ids of the texts already stored, free ids for the others), by primary-key look-ups.

        An id that a removed question had is passed over like a held one (a tombstone): a
        text stored beyond it, after a collision, is still found.
        """
        known: dict[str, int] = {}
        free: dict[str, int] = {}
        probe = {t: text_id(t) for t in dict.fromkeys(texts)}
        while probe:
            rows = self._call("get", self.client.get, self.collection, ids=list(set(probe.values())), output_fields=["text"])
            held = {int(r["id"]): r["text"] for r in rows}
            vacated = self._vacated([i for i in set(probe.values()) if i not in held])
            for text, i in list(probe.items()):
                if held.get(i) == text:
                    known[text] = i
                elif i not in held and i not in vacated and i not in free.values():
                    free[text] = i
                else:  # a collision: another text holds or held this id; try the next
                    probe[text] = _next_id(i)
                    continue
                del probe[text]
        return known, free

    def __len__(self) -> int:
        rows = self._call(
            "count", self.client.query, self.collection, filter="", output_fields=["count(*)"], consistency_level=CONSISTENCY
        )
        return int(rows[0]["count(*)"])

    def search(self, vectors: np.ndarray, k: int) -> list[list[tuple[int, float, str, float]]]:
        if not len(vectors):
            return []
        hits = self._call(
            "search", self.client.search, self.collection, data=vectors.tolist(), limit=k, output_fields=["text", "hub"],
            search_params={"metric_type": "IP", "params": {"ef": max(self._ef, k)}}, consistency_level=CONSISTENCY,
        )
        return [[(int(h["id"]), float(h["distance"]), h["entity"]["text"], float(h["entity"]["hub"])) for h in row] for row in hits]

    def vectors(self, ids: list[int]) -> np.ndarray:
        unique = [int(i) for i in dict.fromkeys(ids)]
        rows = self._call("get", self.client.get, self.collection, ids=unique, output_fields=["vector"]) if unique else []
        found = {int(r["id"]): r["vector"] for r in rows}
        return np.array([found[int(i)] for i in ids], dtype=np.float32).reshape(len(ids), -1)

    def ids_of(self, texts: list[str]) -> dict[str, int]:
        return self._locate(texts)[0]

    def texts(self, ids: Iterable[int]) -> dict[int, str]:
        unique = [int(i) for i in dict.fromkeys(ids)]
        if not unique:
            return {}
        rows = self._call("get", self.client.get, self.collection, ids=unique, output_fields=["text"])
        return {int(r["id"]): r["text"] for r in rows}

    def all_texts(self) -> list[str]:
        """Every text, read in batches (a query alone returns at most 16,384 rows)."""
        return [r["text"] for batch in self._batches(self.collection) for r in batch]

    def all_rows(self) -> list[tuple[int, str]]:
        return sorted((int(r["id"]), r["text"]) for batch in self._batches(self.collection) for r in batch)

    def _batches(self, collection: str) -> Iterable[list[dict]]:
        """A collection's texts, ``BATCH`` rows at a time."""
        rows = self._call(
            "query_iterator", self.client.query_iterator, collection, batch_size=BATCH, output_fields=["text"],
            consistency_level=CONSISTENCY,
        )
        try:
            while batch := self._call("query_iterator", rows.next):
                yield batch
        finally:
            rows.close()

    def add(self, texts: list[str], vectors: np.ndarray, hubs: list[float]) -> tuple[list[int], list[bool]]:
        """Upsert the texts not stored yet under their ids (the caller holds the folder's writer lock).

        Replicas adding the same new text at once write the same row twice, never two rows.
        """
        with self._write:
            known, free = self._locate(texts)
            if free:
                row = {t: n for n, t in reversed(list(enumerate(texts)))}
                self._upsert(list(free.values()), list(free), vectors[[row[t] for t in free]], [hubs[row[t]] for t in free])
        ids = {**known, **free}
        return [ids[t] for t in texts], first_seen(texts, free)

    @property
    def removed_collection(self) -> str:
        return self.name + REMOVED_SUFFIX

    def _record_removed(self, texts: list[str]) -> None:
        """Record removed texts (from an index this one replaced) that the record lacks, under their own ids."""
        recorded = set(self.removed_texts()) if texts else set()
        rows = [{"id": text_id(t), "text": t, "vector": [1.0, 0.0]} for t in texts if t not in recorded]
        if rows:
            self._ensure_removed_collection()
            self._call("upsert", self.client.upsert, self.removed_collection, rows)

    def _vacated(self, ids: list[int]) -> set[int]:
        """Which of these ids a removed question had."""
        if not ids or not self._has_removals():
            return set()
        rows = self._call("get", self.client.get, self.removed_collection, ids=ids, output_fields=["id"])
        return {int(r["id"]) for r in rows}

    def _has_removals(self) -> bool:
        if not self._removals_seen and self._call("has_collection", self.client.has_collection, self.removed_collection):
            self._call("load_collection", self.client.load_collection, self.removed_collection)
            self._removals_seen = True
        return self._removals_seen

    def remove(self, ids: list[int]) -> dict[int, str]:
        """Record the stored ones under their ids in the removed collection, then delete them
        (the caller holds the folder's writer lock); a removal killed between the two is taken
        again whole."""
        with self._write:
            gone = self.texts(ids)
            if gone:
                self._ensure_removed_collection()
                rows = [{"id": i, "text": t, "vector": [1.0, 0.0]} for i, t in gone.items()]
                self._call("upsert", self.client.upsert, self.removed_collection, rows)
                self._call("delete", self.client.delete, self.collection, ids=list(gone))
        return gone

    def _ensure_removed_collection(self) -> None:
        if self._has_removals():
            return
        pymilvus = _milvus()
        schema = pymilvus.MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False, description="qsearch removed questions")
        schema.add_field("id", pymilvus.DataType.INT64, is_primary=True)
        schema.add_field("text", pymilvus.DataType.VARCHAR, max_length=MAX_TEXT_BYTES)
        schema.add_field("vector", pymilvus.DataType.FLOAT_VECTOR, dim=2)
        params = self.client.prepare_index_params()
        params.add_index(field_name="vector", index_type="FLAT", metric_type="IP")
        self._create_collection(self.removed_collection, schema, params, consistency_level=CONSISTENCY)
        self._removals_seen = self._has_removals()

    def removed_texts(self) -> list[str]:
        if not self._has_removals():
            return []
        texts = list(dict.fromkeys(r["text"] for batch in self._batches(self.removed_collection) for r in batch))
        stored = self._locate(texts)[0]
        return [t for t in texts if t not in stored]

    def copy_to(self, root: Path, gen: Path, manifest: dict) -> dict:
        """Copy a Milvus Lite file into the backup folder ``root`` (as ``LITE_FILE``, which the
        returned manifest names). Milvus Lite opens in one process, this one, so nothing writes
        to it meanwhile. A Milvus server's collections are backed up with Milvus's own tool."""
        if not is_lite(self.uri):
            raise QsearchError(
                f"the questions of this index live in the Milvus server at {self.uri}: back up its collection "
                f"{self.name!r} with Milvus's own backup tool (milvus-backup); `qsearch backup` copies FAISS indexes and Milvus Lite files"
            )
        self.flush()
        shutil.copytree(self.uri, root / LITE_FILE)
        return {**manifest, "milvus_uri": LITE_FILE}

    def refresh(self) -> None:
        """Nothing to catch up: every read asks the collection with Strong consistency."""

    def flush(self) -> None:
        """Seal what was inserted (Milvus has it durable in its log already)."""
        if not self.read_only:
            self._call("flush", self.client.flush, self.collection)

    def close(self) -> None:
        """Flush and disconnect; the last user of a Milvus Lite file in this process lets go of it."""
        if self.client is not None:
            self.flush()
            self._disconnect()

    def _disconnect(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None
            if is_lite(self.uri):
                _lite_release(self.uri)
