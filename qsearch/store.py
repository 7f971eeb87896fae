"""SQLite store of question texts: the source of truth for ids and texts.

Writes go through sqlite-utils (table creation, batched inserts); reads use the standard
library's ``sqlite3`` directly, because importing sqlite-utils pulls in pandas (~0.6 s) and a
cold ``qsearch query`` should not pay for that. WAL mode; every SQL statement is parameterised.

A removed question leaves a row in the ``removed`` table (its id and text, numbered in the order
of removal): other processes read it to drop the id from their vectors, a rebuild reads it to
leave the text out, and no id is ever issued twice, so an id another process still holds always
names the same question.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import numpy as np

from qsearch.errors import QsearchError, disk_full

TABLE = "questions"
REMOVED = "removed"
_REMOVED_SCHEMA = f"CREATE TABLE IF NOT EXISTS {REMOVED} (seq INTEGER PRIMARY KEY AUTOINCREMENT, id INTEGER NOT NULL, text TEXT NOT NULL)"


class Store:
    """Questions keyed by an integer id that is also their FAISS id.

    One connection writes; each thread reads through a connection of its own, so a search
    running beside an add sees only committed rows (WAL lets readers and the writer overlap).
    """

    def __init__(self, path: Path, read_only: bool = False, create: bool = False, immutable: bool = False):
        """``immutable``: read the file as it stands, without SQLite's WAL files, for a disk
        too full to make them (a read-only open only)."""
        self.path = Path(path)
        self.read_only = read_only or immutable
        self._immutable = immutable
        if not create and not self.path.exists():
            raise QsearchError(
                f"{self.path} is missing, and with it the index's texts; restore it from a backup "
                "(`qsearch build-index --replace` would start over from your source questions, without any added since)"
            )
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        try:
            self.conn = self._connect()
            if not read_only:
                self.conn.execute("PRAGMA journal_mode=WAL")
                if self.conn.execute(f"SELECT 1 FROM sqlite_master WHERE name = '{TABLE}'").fetchone():
                    self.conn.execute(_REMOVED_SCHEMA)  # a store written before removal gains the table
        except sqlite3.DatabaseError as e:
            raise self.damaged(e) from None

    def damaged(self, error: Exception) -> QsearchError:
        """The one-line error for a store SQLite cannot read: a full disk (SQLite cannot make
        its WAL files) says so, since the store is then intact and a restore would be wrong."""
        return disk_full(error, self.path, "nothing stored was changed") or QsearchError(
            f"{self.path} cannot be read ({error}); restore it from a backup"
        )

    @contextmanager
    def _writing(self, undone: str) -> Iterator[None]:
        """One transaction on the writer connection; a full disk rolls it back and says so
        (``undone``: what the rollback means for the caller)."""
        try:
            with self.conn:
                self.conn.execute("BEGIN")
                yield
        except sqlite3.DatabaseError as e:
            raise disk_full(e, self.path, f"{undone}, and everything acknowledged before is kept") or e

    def _connect(self) -> sqlite3.Connection:
        if self.read_only:  # a query on a read-only folder must not try to write (WAL files, journal mode)
            immutable = self._immutable or not os.path.exists(f"{self.path}-wal")
            uri = f"file:{self.path}?mode=ro" + ("&immutable=1" if immutable else "")
            return sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None, timeout=30)
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        conn.execute("PRAGMA synchronous=FULL")  # WAL at NORMAL may roll back the last commits on a power cut: an acknowledged add must not
        return conn

    def check(self) -> int:
        """The number of rows, reading the table once: a damaged or foreign file is a clear error."""
        try:
            self.reader.execute(f"SELECT id, text, hub FROM {TABLE} LIMIT 0")
            return len(self)
        except sqlite3.DatabaseError as e:
            raise self.damaged(e) from None

    @property
    def reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
            self._readers.append(conn)
        return conn

    @classmethod
    def create(cls, path: Path, texts: list[str], hubs: np.ndarray, ids: list[int], removed: dict[str, int] | None = None) -> "Store":
        """A new store holding ``texts`` (already unique) under ``ids``, and each one's hubness;
        ``removed``: texts removed from the index this one replaces, with the ids they had there
        (0 where that index numbered otherwise), recorded so that the next rebuild leaves them out
        too and no id is issued again."""
        import sqlite_utils

        store = cls(path, create=True)
        db = sqlite_utils.Database(store.conn)
        db[TABLE].create({"id": int, "text": str, "hub": float}, pk="id", not_null={"text", "hub"})
        db[TABLE].create_index(["text"], unique=True)
        store.conn.execute(_REMOVED_SCHEMA)
        with store.conn:
            store.conn.execute("BEGIN")
            rows = ({"id": int(i), "text": t, "hub": float(h)} for i, t, h in zip(ids, texts, hubs))
            db[TABLE].insert_all(rows, batch_size=10000)
            store.conn.executemany(f"INSERT INTO {REMOVED} (id, text) VALUES (?, ?)", ((i, t) for t, i in (removed or {}).items()))
        return store

    def insert_new(self, texts: list[str], hubs: list[float]) -> tuple[list[int], list[int]]:
        """Insert the texts not stored yet, with their hubness; return (id of every text, ids of the new ones).

        The caller holds the index's writer lock, so no other writer runs between the look-up
        and the insert; the insert is one transaction, committed before this returns.
        """
        import sqlite_utils

        with self._writing("none of these questions was added"):  # all or none, however many
            known = self._ids_of(self.conn, texts)
            hub = {}
            for t, h in zip(texts, hubs):
                if t not in known:
                    hub.setdefault(t, float(h))
            if hub:  # ids given here, above every id ever issued: SQLite alone would reuse a removed top id
                start = self.top_id(self.conn) + 1
                rows = ({"id": i, "text": t, "hub": h} for i, (t, h) in enumerate(hub.items(), start))
                sqlite_utils.Database(self.conn)[TABLE].insert_all(rows, batch_size=10000)
            ids = self._ids_of(self.conn, texts)
        return [ids[t] for t in texts], [ids[t] for t in hub]

    def copy_to(self, path: Path) -> None:
        """A consistent copy of the store at ``path`` (SQLite's online backup): every row
        committed when it starts, whatever other processes write meanwhile."""
        with closing(sqlite3.connect(path)) as target:
            self.reader.backup(target)

    @staticmethod
    def add_hub_column(path: Path) -> None:
        """Give a store written before hubness (index format 1) its ``hub`` column, 0 until
        ``qsearch repair`` measures it; a store that has one is left as it is."""
        try:
            with closing(sqlite3.connect(path)) as conn, conn:
                if "hub" not in [row[1] for row in conn.execute(f"PRAGMA table_info({TABLE})")]:
                    conn.execute(f"ALTER TABLE {TABLE} ADD COLUMN hub REAL NOT NULL DEFAULT 0")
        except sqlite3.DatabaseError as e:
            raise QsearchError(f"{path} cannot be upgraded ({e}); restore it from a backup") from None

    def set_hubs(self, ids: np.ndarray, hubs: np.ndarray) -> None:
        """Record every question's hubness measured again (``qsearch repair``), in one transaction."""
        with self.conn:
            self.conn.execute("BEGIN")
            self.conn.executemany(f"UPDATE {TABLE} SET hub = ? WHERE id = ?", zip(map(float, hubs), map(int, ids)))

    def ids_of(self, texts: list[str]) -> dict[str, int]:
        """Id of each text already stored (exact match)."""
        return self._ids_of(self.reader, texts)

    @staticmethod
    def _rows_where(conn: sqlite3.Connection, column: str, values: Iterable, select: str = "id, text") -> Iterator[tuple]:
        """(id, text) rows (or the ``select`` columns) whose ``column`` is one of ``values``, 500 parameters a query."""
        unique = list(dict.fromkeys(values))
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            marks = ",".join("?" * len(chunk))
            yield from conn.execute(f"SELECT {select} FROM {TABLE} WHERE {column} IN ({marks})", chunk)

    @classmethod
    def _ids_of(cls, conn: sqlite3.Connection, texts: list[str]) -> dict[str, int]:
        return {t: i for i, t in cls._rows_where(conn, "text", texts)}

    def texts(self, ids: Iterable[int]) -> dict[int, str]:
        """Text of each id."""
        return dict(self._rows_where(self.reader, "id", (int(i) for i in ids)))

    def texts_and_hubs(self, ids: Iterable[int]) -> dict[int, tuple[str, float]]:
        """(text, hubness) of each id: what a search reports and ranks by."""
        rows = self._rows_where(self.reader, "id", (int(i) for i in ids), "id, text, hub")
        return {i: (t, h) for i, t, h in rows}

    def rows_missing_from(self, indexed_ids: np.ndarray) -> list[tuple[int, str]]:
        """Rows whose id is not among ``indexed_ids`` (written here, not yet in the vector index)."""
        count, top = self.reader.execute(f"SELECT count(*), max(id) FROM {TABLE}").fetchone()
        if count == len(indexed_ids) and (count == 0 or top == int(indexed_ids.max())):
            return []
        have = set(indexed_ids.tolist())
        return [(i, t) for i, t in self.reader.execute(f"SELECT id, text FROM {TABLE} ORDER BY id") if i not in have]

    def max_id(self) -> int:
        """The highest id stored (0 when empty): rows above what an engine indexed are new."""
        return self.reader.execute(f"SELECT coalesce(max(id), 0) FROM {TABLE}").fetchone()[0]

    def top_id(self, conn: sqlite3.Connection | None = None) -> int:
        """The highest id ever issued, stored or removed since (0 for none)."""
        stored = (conn or self.reader).execute(f"SELECT coalesce(max(id), 0) FROM {TABLE}").fetchone()[0]
        return max([stored, *(i for (i,) in self._removed("SELECT max(id) FROM {} WHERE id > 0", conn=conn))])

    def _removed(self, sql: str, args: tuple = (), conn: sqlite3.Connection | None = None) -> list[tuple]:
        """The rows of a query on the removed table (``{}`` names it). A store written before
        removal and opened read-only has no such table: it reads as no rows."""
        try:
            return [row for row in (conn or self.reader).execute(sql.format(REMOVED), args) if row[0] is not None]
        except sqlite3.OperationalError as e:
            if "no such table" in str(e):
                return []
            raise

    def remove(self, ids: Iterable[int]) -> dict[int, str]:
        """Delete these ids' rows and record each in the removed table, in one transaction
        (the caller holds the index's writer lock); returns {id: text} of those that were stored."""
        with self._writing("none of these questions was removed"):
            gone = dict(self._rows_where(self.conn, "id", (int(i) for i in ids)))
            for start in range(0, len(gone), 500):
                chunk = list(gone)[start : start + 500]
                self.conn.execute(f"DELETE FROM {TABLE} WHERE id IN ({','.join('?' * len(chunk))})", chunk)
            self.conn.executemany(f"INSERT INTO {REMOVED} (id, text) VALUES (?, ?)", gone.items())
        return gone

    def removal_mark(self) -> int:
        """The number of the last removal recorded (0 for none): a reader that saw a lower one has removals to apply."""
        return max([0, *(seq for (seq,) in self._removed("SELECT max(seq) FROM {}"))])

    def removed_after(self, mark: int) -> tuple[list[int], int]:
        """The ids removed after removal number ``mark``, and the number of the last one."""
        rows = self._removed("SELECT seq, id FROM {} WHERE seq > ? ORDER BY seq", (mark,))
        return [i for _, i in rows if i], (rows[-1][0] if rows else mark)

    def removed_texts(self) -> dict[str, int]:
        """The texts removed and not stored again since, each with the last id it had: what a rebuild leaves out."""
        sql = "SELECT text, max(id) FROM {} WHERE text NOT IN (SELECT text FROM " + TABLE + ") GROUP BY text"
        return {t: i for t, i in self._removed(sql)}

    def rows_after(self, last_id: int) -> list[tuple[int, str]]:
        """(id, text) of the rows added after ``last_id``, oldest first (ids only grow)."""
        return list(self.reader.execute(f"SELECT id, text FROM {TABLE} WHERE id > ? ORDER BY id", (last_id,)))

    def all_rows(self) -> list[tuple[int, str]]:
        """Every stored (id, text) in id order; a store damaged past the header that ``check``
        reads is the one-line error."""
        try:
            return list(self.reader.execute(f"SELECT id, text FROM {TABLE} ORDER BY id"))
        except sqlite3.DatabaseError as e:
            raise self.damaged(e) from None

    def all_texts(self) -> list[str]:
        """Every stored text in id order."""
        return [text for _, text in self.all_rows()]

    def all_ids(self) -> np.ndarray:
        return np.fromiter((i for (i,) in self.reader.execute(f"SELECT id FROM {TABLE}")), dtype=np.int64)

    def __len__(self) -> int:
        return self.reader.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0]

    def close(self) -> None:
        for conn in self._readers:
            conn.close()
        self.conn.close()
