"""Silver pairs: duplicates in other words that the teacher finds among the training questions.

Quora's labelled duplicates mostly share their words, so a student trained on them learns that
shared words mean "duplicate" and scores "How do I become a politician?" / "How do I start a
career in politics?" low. The teacher places such questions side by side. Augmented SBERT
(Thakur et al., 2021) labels sampled pairs with a stronger model and trains the bi-encoder on
them; here each training question's nearest other training question by the teacher's cosine
becomes an extra duplicate pair for the triplet stage when the cosine is high and the two share
few of their rare words. Pairs that share most words are left out on purpose: the teacher also
scores near-misses ("convert inches to centimeters" / "convert liters to gallons") high, and
those are exactly what the student must not learn to call duplicates.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from qsearch.evaluate import nearest
from qsearch.lexical import Lexicon

MAX_OVERLAP = 0.4  # a silver pair's idf-weighted word overlap stays below this
_BLOCK = 4096


def nearest_rows(table: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each unit row's ``k`` nearest other rows by cosine: (n, k) indices and scores, best first
    (``evaluate.nearest`` over the table itself). Exact ties may come in either order."""
    table = np.ascontiguousarray(table, dtype=np.float32)
    index = np.zeros((len(table), k), dtype=np.int64)
    score = np.zeros((len(table), k), dtype=np.float32)
    for start, top, scores in nearest(table, table, np.arange(len(table)), k, _BLOCK):
        best = np.take_along_axis(scores, top, axis=1)
        order = np.argsort(-best, axis=1)
        index[start : start + len(top)] = np.take_along_axis(top, order, axis=1)
        score[start : start + len(top)] = np.take_along_axis(best, order, axis=1)
    return index, score


def silver_pairs(
    questions: list[str],
    vectors: np.ndarray,
    lexicon: Lexicon,
    min_cosine: float,
    exclude: Iterable[tuple[int, int]] = (),
    max_overlap: float = MAX_OVERLAP,
) -> list[tuple[int, int]]:
    """Row pairs (i, j), i < j: j is among i's three nearest questions by the teacher (``vectors``,
    one row per question), their cosine is at least ``min_cosine`` and their word overlap below
    ``max_overlap``. Pairs in ``exclude`` (labelled ones, either order) are left out."""
    if len(questions) < 2:
        return []
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    index, score = nearest_rows(unit, min(3, len(questions) - 1))
    skip = {(min(a, b), max(a, b)) for a, b in exclude}
    found = set()
    for i, (near, cos) in enumerate(zip(index, score)):
        for j, s in zip(near.tolist(), cos.tolist()):
            pair = (min(i, j), max(i, j))
            if s < min_cosine or pair in skip or pair in found or questions[i] == questions[j]:
                continue
            if lexicon.overlaps(questions[i], [questions[j]])[0] < max_overlap:
                found.add(pair)
    return sorted(found)
