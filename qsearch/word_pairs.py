"""Which words the training texts put side by side: context for the spelling correction.

A misspelt word is often one edit from several known words ("thme": "the", "them", "theme"),
and the most frequent is not always the one meant: "give thme money" means "them". A spell
checker with a language model chooses by the neighbours (the noisy-channel corrector), and so
does ``WordPairs.best``: among the candidates, the word w with the highest

    log P(w | the word before) + log P(the word after | w)

each a bigram probability of the training texts interpolated with the unigram one
(Jelinek-Mercer, ``LAMBDA`` 0.9). A question's start and end count as words (id 0), and a
neighbour the vocabulary does not know adds nothing. Without any pair seen in training the
score orders the candidates by frequency, as the word-alone corrector does.

A typo can also spell another known word ("lean python" for "learn python"), which no
corrector of unknown words sees. ``WordPairs.read_known`` weighs a known word against the known
words one edit from it by the same scores, with the word as written favoured by a prior (the
noisy channel of Mays, Damerau and Mercer, 1991): it gives way only where its neighbours fit
another word far better. Those words come from a table built once at training
(``with_near``), so search never builds a word's edits.

The counts are those of the model's training texts (the train part's questions and the
unlabelled corpus, each distinct question once), kept in the model folder beside the word
frequencies of ``qsearch.lexical``: about 190k pairs and 110k table entries for the bundled
model, 3 MB.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from functools import cached_property
from pathlib import Path

import numpy as np

from qsearch.errors import QsearchError
from qsearch.text import EDGE, Vocabulary, tokenize

FILE = "word_pairs.npz"
LAMBDA = 0.9


class WordPairs:
    """Counts of each known word and of each two known words side by side in the training texts."""

    def __init__(
        self, words: np.ndarray, keys: np.ndarray, counts: np.ndarray, near_starts: np.ndarray | None = None, near_ids: np.ndarray | None = None
    ):
        if keys.shape != counts.shape or np.any(keys[1:] <= keys[:-1]):
            raise QsearchError("the model's word-pair counts are damaged; retrain or restore the model")
        if near_starts is not None and (
            near_ids is None
            or near_starts.shape != (len(words) + 1,)
            or near_starts[0] != 0
            or near_starts[-1] != len(near_ids)
            or np.any(np.diff(near_starts) < 0)
            or np.any((near_ids < 2) | (near_ids >= len(words)))
        ):
            raise QsearchError("the model's table of words one edit apart is damaged; retrain or restore the model")
        self.words = words.astype(np.int64)  # by id; words[EDGE] is the number of texts
        self.keys = keys.astype(np.int64)  # first id * len(words) + second id, ascending
        self.counts = counts.astype(np.int64)
        self._total = float(self.words[2:].sum()) or 1.0
        # the noisy channel's candidates for id i: near_ids[near_starts[i]:near_starts[i + 1]]
        self.near_starts = near_starts.astype(np.int64) if near_starts is not None else None
        self.near_ids = near_ids.astype(np.int64) if near_ids is not None else None

    def with_near(self, vocab: Vocabulary) -> "WordPairs":
        """These counts with the table of each vocabulary word's known words one edit away
        (``Vocabulary.known_at_one_edit``) that the training texts hold, which the noisy channel
        reads (a word they never hold cannot win it: no pair and the least prior): built once,
        when a model is trained, so that search never builds a word's edits."""
        seen = self.words.tolist()
        rows = [tuple(j for j in vocab.known_at_one_edit(t) if j != i and seen[j]) if i > 1 else () for i, t in enumerate(vocab.tokens)]
        starts = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum([len(r) for r in rows], out=starts[1:])
        ids = np.fromiter((j for r in rows for j in r), dtype=np.int64, count=int(starts[-1]))
        return WordPairs(self.words, self.keys, self.counts, starts, ids)

    @classmethod
    def count(cls, vocab: Vocabulary, texts: Iterable[str]) -> "WordPairs":
        """Count the words and neighbouring pairs of ``texts`` as ``vocab`` reads them as written."""
        get, size = vocab.index.get, len(vocab.tokens)
        words: Counter = Counter()
        pairs: Counter = Counter()
        for text in texts:
            ids = [EDGE, *(get(t, -1) for t in tokenize(text)), EDGE]
            words.update(ids[1:-1])
            pairs.update(a * size + b for a, b in zip(ids, ids[1:]) if a >= 0 and b >= 0)
            words[EDGE] += 1
        table = np.zeros(size, dtype=np.int64)
        for i, c in words.items():
            if i >= 0:
                table[i] = c
        keys = np.array(sorted(pairs), dtype=np.int64)
        return cls(table, keys, np.array([pairs[k] for k in keys.tolist()], dtype=np.int64))

    def _pair(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        """How often each (first, second) stood side by side."""
        wanted = first * len(self.words) + second
        at = np.minimum(np.searchsorted(self.keys, wanted), max(len(self.keys) - 1, 0))
        return np.where(self.keys[at] == wanted, self.counts[at], 0) if len(self.keys) else np.zeros_like(wanted)

    def _unigram(self, ids: np.ndarray | int) -> np.ndarray:
        return (self.words[ids] + 0.5) / self._total

    def _fit(self, ids: np.ndarray, before: np.ndarray, after: np.ndarray) -> np.ndarray:
        """log P(id | before) + log P(after | id) for each candidate id and its neighbours' ids
        (-1: a word not known, which adds nothing but the unigram on the left, nothing on the right)."""
        unigram = self._unigram(ids)
        seen = self.words[np.maximum(before, 0)]
        pair = np.divide(self._pair(np.maximum(before, 0), ids), seen, out=np.zeros(len(ids)), where=seen > 0)
        score = np.log(np.where(before >= 0, LAMBDA * pair + (1 - LAMBDA) * unigram, unigram))
        seen = self.words[ids]
        pair = np.divide(self._pair(ids, np.maximum(after, 0)), seen, out=np.zeros(len(ids)), where=seen > 0)
        score += np.where(after >= 0, np.log(LAMBDA * pair + (1 - LAMBDA) * self._unigram(np.maximum(after, 0))), 0.0)
        return score

    def best(self, candidates: tuple[int, ...], before: int | None, after: int | None) -> int:
        """The candidate id that fits between the ``before`` and ``after`` ids best (None: a
        word not known), the lowest id among equals; the first candidate with no neighbour known."""
        if before is None and after is None:
            return candidates[0]
        ids = np.array(candidates, dtype=np.int64)
        score = self._fit(ids, np.full_like(ids, -1 if before is None else before), np.full_like(ids, -1 if after is None else after))
        return int(ids[int(np.argmax(score))])  # argmax takes the first of equals: candidates come lowest id first

    def read_known(self, written: np.ndarray, before: np.ndarray, after: np.ndarray, prior: float) -> np.ndarray:
        """The word each known ``written`` id is read as, given its neighbours' ids (``EDGE`` at a
        question's ends, -1 for a word not known): the noisy channel of Mays, Damerau and Mercer
        (1991) over the word and the known words one edit from it (``near_ids``). A candidate
        scores as ``best`` scores it, plus log ``prior`` for the word as written and
        log((1 - prior) / n) for each of its n neighbours, so a written word gives way only to
        one that fits its neighbours far better. Every word of a batch of questions in one pass.

        A candidate's fit is at most ``_fit_ceiling``, so where the word as written already
        scores above what any neighbour could, it is kept without scoring them: about four in
        five words of Quora questions, and nine tenths of the candidates."""
        read = written.copy()
        others = self.near_starts[written + 1] - self.near_starts[written]
        bar = np.log(prior) - np.log((1 - prior) / np.maximum(others, 1))
        open_ = np.flatnonzero((others > 0) & (self._fit(written, before, after) + bar <= self._fit_ceiling + 1e-9))
        if len(open_):
            read[open_] = self._read_known(written[open_], before[open_], after[open_], prior)
        return read

    @cached_property
    def _fit_ceiling(self) -> float:
        """An upper bound of ``_fit``: each of its two terms is the log of at most the larger of
        1 and the highest unigram probability (a pair's count never passes its word's)."""
        return 2.0 * math.log(max(1.0, float(self._unigram(np.arange(len(self.words))).max(initial=0.0))))

    def _read_known(self, written: np.ndarray, before: np.ndarray, after: np.ndarray, prior: float) -> np.ndarray:
        """``read_known`` with every candidate scored."""
        starts, ends = self.near_starts[written], self.near_starts[written + 1]
        others = ends - starts
        sizes = others + 1
        group = np.repeat(np.arange(len(written)), sizes)
        first = np.cumsum(sizes) - sizes
        offset = np.arange(len(group)) - first[group]  # 0: the word as written, then its neighbours
        ids = np.where(offset == 0, written[group], self.near_ids[np.minimum(starts[group] + offset - 1, len(self.near_ids) - 1)])
        score = self._fit(ids, before[group], after[group])
        score += np.where(offset == 0, np.log(prior), np.log((1 - prior) / np.maximum(others[group], 1)))
        top = np.maximum.reduceat(score, first)
        winners = np.flatnonzero(score == top[group])
        winners = winners[np.r_[True, group[winners][1:] != group[winners][:-1]]]  # the first of equals: the word as written
        return ids[winners]

    def save(self, folder: Path) -> dict:
        """Write the counts into a model folder; returns the manifest entry that names them."""
        near = {"near_starts": self.near_starts.astype(np.int32), "near_ids": self.near_ids.astype(np.int32)} if self.near_starts is not None else {}
        np.savez(folder / FILE, words=self.words.astype(np.int32), keys=self.keys, counts=self.counts.astype(np.int32), **near)
        return {"file": FILE, "pairs": int(len(self.keys)), "texts": int(self.words[EDGE]), **({"near": int(len(self.near_ids))} if near else {})}

    @classmethod
    def load(cls, folder: Path, vocab: Vocabulary, entry: dict) -> "WordPairs":
        """Read the counts a manifest entry names (see ``save``)."""
        try:
            with np.load(folder / entry["file"], allow_pickle=False) as saved:
                words, keys, counts = saved["words"], saved["keys"], saved["counts"]
                near = (saved["near_starts"], saved["near_ids"]) if "near_starts" in saved else (None, None)
        except (OSError, ValueError, KeyError) as e:
            raise QsearchError(f"cannot read the word-pair counts in {folder}: {e}; retrain or restore the model") from None
        if words.shape != (len(vocab.tokens),):
            raise QsearchError("the model's word-pair counts do not match its vocabulary; retrain the model")
        return cls(words, keys, counts, *near)
