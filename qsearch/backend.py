"""The seam between the search engine and where the questions live.

A backend holds every known question's text and vector and finds the nearest ones. Two
implement it: ``FaissIndex`` (a FAISS file beside a SQLite store, inside the index folder: the
embedded default) and ``MilvusIndex`` (a Milvus collection: Milvus Lite in a file, or a Milvus
server shared by several machines). ``SearchEngine`` encodes, checks and reports; it calls only
what is below, so both backends behave alike (tests/test_backends.py holds them to it).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

import numpy as np

BACKENDS = ("faiss", "milvus")


def first_seen(keys: list, new: Iterable) -> list[bool]:
    """For each key, whether it is one of ``new`` seen for the first time in ``keys``: a
    question given twice in one add is new only the first time."""
    new, out = set(new), []
    for key in keys:
        out.append(key in new)
        new.discard(key)
    return out


class QuestionIndex(Protocol):
    """Texts, unit vectors and hubness of the known questions, keyed by integer ids that never change."""

    read_only: bool
    why_read_only: str  # "" when writable; else what a refused write should say, e.g. "no write permission"

    def __len__(self) -> int:
        """How many questions are stored and searchable."""

    def search(self, vectors: np.ndarray, k: int) -> list[list[tuple[int, float, str, float]]]:
        """For each vector, up to ``k`` (id, inner product, text, hubness), by inner product, best first."""

    def add(self, texts: list[str], vectors: np.ndarray, hubs: list[float]) -> tuple[list[int], list[bool]]:
        """Store the texts not stored yet, with their hubness (``qsearch.hubness``); return every
        text's id and whether it was new.

        Durable when it returns: an acknowledged question survives a killed process.
        """

    def remove(self, ids: list[int]) -> dict[int, str]:
        """Delete the questions with these ids and record their texts, which ``removed_texts``
        gives until one is stored again; return {id: text} of those that were stored (the
        caller holds the writer lock). Durable when it returns; no id is issued again."""

    def removed_texts(self) -> list[str]:
        """The texts removed and not stored again since: what a rebuild leaves out."""

    def vectors(self, ids: list[int]) -> np.ndarray:
        """The stored unit vector of each id, in order (search's results, for their verdicts)."""

    def ids_of(self, texts: list[str]) -> dict[str, int]:
        """The id of each text already stored (exact match)."""

    def texts(self, ids: Iterable[int]) -> dict[int, str]:
        """The text of each stored id."""

    def all_texts(self) -> list[str]:
        """Every stored text (what a rebuild keeps)."""

    def all_rows(self) -> list[tuple[int, str]]:
        """Every stored (id, text), by id."""

    def copy_to(self, root: Path, gen: Path, manifest: dict) -> dict:
        """Write what the index holds into generation folder ``gen`` of a backup at ``root``,
        consistently while others write; return the manifest the copy carries."""

    def refresh(self) -> None:
        """Catch up with what other processes committed since (cheap when nothing changed)."""

    def flush(self) -> None:
        """Write what spares the next open some work (a checkpoint); nothing is lost without it."""

    def close(self) -> None:
        """Flush and let go of files and connections."""
