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
    def _one_side(words: list[int], other: list[int], units: np.ndarray, rarity: np.ndarray) -> float:
        present = set(other)
        lacking = [w for w in words if w not in present]
        if not lacking or not other:
            return 0.0
        best = (units[lacking] @ units[other].T).max(axis=1)
        r = rarity[lacking]
        return float(r @ (r * (1.0 - best)) / r.sum())

    def gaps(self, first: list[list[Token]], second: list[list[Token]]) -> np.ndarray:
        """The gap of each pair, given both questions' tokens as the model reads them
        (``Encoder.token_ids``): 0 for the same words, up to 1. Each distinct token of the
        call is looked up once."""
        index: dict[Token, int] = {}
        pairs = [
            ([index.setdefault(t, len(index)) for t in dict.fromkeys(a)], [index.setdefault(t, len(index)) for t in dict.fromkeys(b)])
            for a, b in zip(first, second)
        ]
        tokens = list(index)
        units, rarity = self._units(tokens), self._rarities(tokens)
        out = np.zeros(len(pairs), dtype=np.float32)
        for n, (a, b) in enumerate(pairs):
            out[n] = max(self._one_side(a, b, units, rarity), self._one_side(b, a, units, rarity))
        return out
