"""A check by meaning on the noisy channel: does the word read fit the question's other words?

The noisy channel (``qsearch.word_pairs``) weighs a known word against the known words one edit
from it by the bigram counts of the training texts. A word those texts hold once or twice has
none of its bigrams seen, so any candidate whose bigrams are seen wins: "Winter Olympics in
Sochi" was read as "Kochi", "How harmful is butter for dogs?" as "better", "earn millions" as
"billions". The model's embedding rows know such words (they start from the teacher's vector
of each word, ``qsearch.word_init``), so the channel's reading stands only where the word read
fits the question's other words at least as well as the word as written:

    cos(E[read], m) - cos(E[written], m) >= MARGIN

with E the model's unit embedding rows and m the mean of the rows of the question's other
known words (those with a letter or digit), each weighted by its idf, so that "the" and "how"
say little. A typo that spells a word rarely fits its question ("lean" among "best", "way",
"python"), and it is still read as the word meant. A question with no other known word is not
checked. Chosen on validation (``benchmarks/training_history.md``, "A check by meaning on the
noisy channel"): of the channel's readings of clean validation text it drops 58–63% of those
that change the meaning on three models, and keeps 88% of its readings of random typos as the
word meant on the bundled one.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from qsearch.lexical import Lexicon
    from qsearch.text import Vocabulary

MARGIN = 0.02  # theta: 0 kept one bad reading too many on one of three models (benchmarks/training_history.md)


class WordMeaning:
    """Embedding rows and idf weights for ``agrees``; the rows are the model's own table (not copied)."""

    def __init__(self, rows: np.ndarray, weights: np.ndarray, tokens: list[str]):
        self.rows = rows
        self.weights = weights
        self.tokens = tokens

    @classmethod
    def of(cls, vocab: "Vocabulary", rows: np.ndarray, lexicon: "Lexicon | None") -> "WordMeaning":
        """The check for a model with embedding table ``rows`` and, when it has one, ``lexicon``'s
        idf weights (a model without word counts weighs every word alike)."""
        weights = lexicon.idfs if lexicon is not None else np.ones(len(vocab.tokens), dtype=np.float64)
        return cls(rows, weights, vocab.tokens)

    @cached_property
    def words(self) -> np.ndarray:
        """Which ids are words (a letter or digit), not punctuation, <pad> or <unk>: built at the
        first check, so a model that never meets one does not pay for it."""
        words = np.fromiter((any(c.isalnum() for c in t) for t in self.tokens), dtype=bool, count=len(self.tokens))
        words[:2] = False
        return words

    def _unit(self, ids: np.ndarray) -> np.ndarray:
        rows = np.asarray(self.rows[ids], dtype=np.float64)
        return rows / np.maximum(np.linalg.norm(rows, axis=-1, keepdims=True), 1e-12)

    def agrees(self, written: int, read: int, others: np.ndarray) -> bool:
        """Whether ``read`` fits the known word ids ``others`` (the rest of the question, as
        written; -1 for a word not known) at least as well as ``written`` does, by ``MARGIN``."""
        others = others[others >= 0]
        others = others[self.words[others]]
        if not len(others):
            return True
        mean = self.weights[others] @ self._unit(others)
        norm = float(np.linalg.norm(mean))
        if norm == 0.0:
            return True
        read_row, written_row = self._unit(np.array([read, written]))
        return float((read_row - written_row) @ mean) / norm >= MARGIN
