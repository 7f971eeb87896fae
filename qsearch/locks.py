"""A read-write lock: FAISS is searched by many threads but not while it grows, and an engine's
model and backend are used by many searches but swapped for a rebuilt generation by one."""

from __future__ import annotations

import threading
from contextlib import contextmanager


class ReadWriteLock:
    """Many readers or one writer. Readers may nest (a waiting writer does not hold new readers
    back), so a reader that calls another reader cannot deadlock."""

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
