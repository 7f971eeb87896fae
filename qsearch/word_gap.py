"""The word gap of a pair: how far the words one question has and the other lacks are from
every word of the other, so that a verdict can read what mean pooling blurs.

A near-miss ("the capital of Peru" / "the capital of Chile") shares all but one word, and
that word is one of about ten token states averaged into each vector, so its cosine stays
high. The model's own embedding rows still tell such words apart (one-word cosines: synonyms
0.54, sister words 0.23; benchmarks/training_history.md). For each word t of one question
that the other lacks, m(t) is its best cosine to any word of the other question and ι(t) its
rarity (idf over the largest idf; a word made of pieces counts as never seen). A question's
gap is the ι-weighted mean of ι(t) · (1 − m(t)); the pair's is the larger of its two
questions' (0 when neither lacks a word). Verdicts subtract ``weight`` × the gap from the
cosine (``Encoder.verdicts``); search's order does not use it.

A synonym ("age" for "old") finds a near match and costs little; a sister word, an opposite
or a new name finds none and costs more. The mean, not the largest, because one unmatched
word is as often a duplicate's extra detail as a near-miss's other word: the largest gap
alone lowered both validation and the development set. A model's manifest holds its weight;
new ones get ``TrainConfig.word_gap``, 0.2, the largest tried that kept validation ROC-AUC
within 0.002 (training_history, thirty-seventh session).
"""

from __future__ import annotations

import numpy as np

from qsearch.lexical import Lexicon

Token = tuple[int, ...]
CHUNK_VALUES = 1 << 21  # floats of one step's padded token vectors (8 MiB a side), so memory stays flat


class WordGap:
    """Word gaps of question pairs, from a model's embedding table and training word counts."""

    def __init__(self, rows: np.ndarray, lexicon: Lexicon):
        self._rows = rows
        self._idfs = lexicon.idfs
        self._rarest = lexicon.unseen_idf

    def _units(self, tokens: list[Token]) -> np.ndarray:
        """Each token's unit vector: its embedding row, or the mean of its pieces' rows."""
        single = [t[0] if len(t) == 1 else 0 for t in tokens]
        out = self._rows[single]
        for n, t in enumerate(tokens):
            if len(t) != 1:
                out[n] = self._rows[list(t)].mean(axis=0)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return np.divide(out, norms, out=out, where=norms > 0)

    def _rarities(self, tokens: list[Token]) -> np.ndarray:
        known = len(self._idfs)
        return np.array([self._idfs[t[0]] / self._rarest if len(t) == 1 and t[0] < known else 1.0 for t in tokens])

    @staticmethod
    def _side(words: np.ndarray, other: np.ndarray, cosines: np.ndarray, rarity: np.ndarray) -> np.ndarray:
        """One side's gap for a chunk of pairs: ``words`` and ``other`` are (pairs, length)
        token rows padded with -1, ``cosines`` (pairs, words, other) their tokens' cosines;
        ``rarity`` ends with a row for the padding."""
        has, other_has = words >= 0, other >= 0
        lacking = has & ~((words[:, :, None] == other[:, None, :]) & other_has[:, None, :]).any(axis=2)
        best = np.where(other_has[:, None, :], cosines, -np.inf).max(axis=2)
        r = np.where(lacking, rarity[words], 0.0)
        total = r.sum(axis=1)
        spent = (r * r * (1.0 - np.where(lacking, best, 0.0))).sum(axis=1)
        return np.where((total > 0) & other_has.any(axis=1), spent / np.maximum(total, 1e-12), 0.0)

    def gaps(self, first: list[list[Token]], second: list[list[Token]]) -> np.ndarray:
        """The gap of each pair, given both questions' tokens as the model reads them
        (``Encoder.token_ids``): 0 for the same words, up to 1. Each distinct token list (a text
        in many pairs passes the same list) and each distinct token is read once; pairs sorted
        by length go through together as padded rows, a bounded number of tokens at a time, so
        ``dedup``'s hundreds of thousands of links take seconds and a search's results one step."""
        index: dict[Token, int] = {}
        lists: dict[int, int] = {}  # a token list's identity -> its number
        words: list[list[int]] = []
        sets: dict[frozenset, int] = {}  # a set of words -> its number: the same words in any order
        kinds: list[int] = []

        def number(q: list[Token]) -> int:
            n = lists.get(id(q))
            if n is None:
                n = lists[id(q)] = len(words)
                words.append([index.setdefault(t, len(index)) for t in dict.fromkeys(q)])
                kinds.append(sets.setdefault(frozenset(words[-1]), len(sets)))
            return n

        ua = np.array([number(q) for q in first], dtype=np.int64)
        ub = np.array([number(q) for q in second], dtype=np.int64)
        out = np.zeros(len(ua), dtype=np.float32)
        kind = np.array(kinds, dtype=np.int64)
        order = np.flatnonzero(kind[ua] != kind[ub])
        if not len(order):
            return out
        tokens = list(index)
        units = np.vstack([self._units(tokens), np.zeros((1, self._rows.shape[1]), dtype=np.float32)])
        rarity = np.append(self._rarities(tokens), 0.0)
        sizes = np.array([len(w) for w in words], dtype=np.int64)
        flat = np.array([t for w in words for t in w] + [-1], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        lengths = np.maximum(sizes[ua], sizes[ub])
        order = order[np.argsort(lengths[order], kind="stable")]
        slots = CHUNK_VALUES // units.shape[1]  # padded tokens a step may hold
        start = 0
        while start < len(order):
            window = np.maximum(lengths[order[start : start + slots]], 1)
            fit = int(np.searchsorted(np.arange(1, len(window) + 1) * window, slots, side="right"))
            chunk = order[start : start + max(1, fit)]
            start += len(chunk)
            column = np.arange(max(1, int(lengths[chunk[-1]])))
            a, b = (np.where(column < sizes[u][:, None], flat[np.minimum(offsets[u][:, None] + column, len(flat) - 1)], -1) for u in (ua[chunk], ub[chunk]))
            cosines = np.matmul(units[a], units[b].transpose(0, 2, 1))  # both sides read the one product
            out[chunk] = np.maximum(self._side(a, b, cosines, rarity), self._side(b, a, cosines.transpose(0, 2, 1), rarity))
        return out
