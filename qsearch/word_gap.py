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
alone lowered both validation and the development set. Weight 0.2 was the largest tried that
kept validation ROC-AUC within 0.002 (training_history, thirty-seventh session).
"""

from __future__ import annotations

import math

import numpy as np

from qsearch.lexical import Lexicon

WORD_GAP_WEIGHT = 0.2  # the default for newly trained models; a model's manifest holds its own

Token = tuple[int, ...]
CHUNK_VALUES = 1 << 21  # floats of one step's padded token vectors (8 MiB a side), so memory stays flat


class WordGap:
    """Word gaps of question pairs, from a model's embedding table and training word counts."""

    def __init__(self, rows: np.ndarray, lexicon: Lexicon):
        self._rows = rows
        self._idfs = lexicon.idfs
        self._rarest = math.log(lexicon.documents + 1) + 1.0

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
        (``Encoder.token_ids``): 0 for the same words, up to 1. Each distinct token of the
        call is looked up once; pairs of one length go through together as padded rows, a
        bounded number at a time, so ``dedup``'s hundreds of thousands of links take seconds."""
        index: dict[Token, int] = {}
        read: dict[int, list[int]] = {}  # by the token list's identity: a text in many pairs is read once

        def row(q: list[Token]) -> list[int]:
            if id(q) not in read:
                read[id(q)] = [index.setdefault(t, len(index)) for t in dict.fromkeys(q)]
            return read[id(q)]

        rows = [row(q) for q in first] + [row(q) for q in second]
        tokens = list(index)
        units = np.vstack([self._units(tokens), np.zeros((1, self._rows.shape[1]), dtype=np.float32)])
        rarity = np.append(self._rarities(tokens), 0.0)
        n = len(first)
        out = np.zeros(n, dtype=np.float32)
        lengths = np.array([max(len(rows[i]), len(rows[n + i])) for i in range(n)], dtype=np.int64)
        same = np.array([rows[i] is rows[n + i] or set(rows[i]) == set(rows[n + i]) for i in range(n)], dtype=bool)  # no gap
        pending = ~same
        for width in np.unique(lengths[pending]):  # pairs of one padded width at a time
            of_width = np.flatnonzero(pending & (lengths == width))
            step = max(1, CHUNK_VALUES // (max(1, int(width)) * units.shape[1]))
            for start in range(0, len(of_width), step):
                chunk = of_width[start : start + step]
                a = np.full((len(chunk), max(1, int(width))), -1, dtype=np.int64)
                b = np.full_like(a, -1)
                for k, i in enumerate(chunk):
                    a[k, : len(rows[i])] = rows[i]
                    b[k, : len(rows[n + i])] = rows[n + i]
                cosines = np.matmul(units[a], units[b].transpose(0, 2, 1))  # both sides read the one product
                out[chunk] = np.maximum(self._side(a, b, cosines, rarity), self._side(b, a, cosines.transpose(0, 2, 1), rarity))
        return out
