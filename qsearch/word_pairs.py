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

The counts are those of the model's training texts (the train part's questions and the
unlabelled corpus, each distinct question once), kept in the model folder beside the word
frequencies of ``qsearch.lexical``: about 190k pairs for the bundled model, 2.5 MB.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from qsearch.errors import QsearchError
from qsearch.text import EDGE, Vocabulary, tokenize

FILE = "word_pairs.npz"
LAMBDA = 0.9


class WordPairs:
    """Counts of each known word and of each two known words side by side in the training texts."""

    def __init__(self, words: np.ndarray, keys: np.ndarray, counts: np.ndarray):
        if keys.shape != counts.shape or np.any(keys[1:] <= keys[:-1]):
            raise QsearchError("the model's word-pair counts are damaged; retrain or restore the model")
        self.words = words.astype(np.int64)  # by id; words[EDGE] is the number of texts
        self.keys = keys.astype(np.int64)  # first id * len(words) + second id, ascending
        self.counts = counts.astype(np.int64)
        self._total = float(self.words[2:].sum()) or 1.0

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

    def best(self, candidates: tuple[int, ...], before: int | None, after: int | None) -> int:
        """The candidate id that fits between the ``before`` and ``after`` ids best (None: a
        word not known), the lowest id among equals; the first candidate with no neighbour known."""
        if before is None and after is None:
            return candidates[0]
        ids = np.array(candidates, dtype=np.int64)
        score = np.zeros(len(ids))
        if before is not None:
            seen = self.words[before]
            bigram = self._pair(np.full_like(ids, before), ids) / seen if seen else 0.0
            score += np.log(LAMBDA * bigram + (1 - LAMBDA) * self._unigram(ids))
        else:
            score += np.log(self._unigram(ids))
        if after is not None:
            seen = self.words[ids]
            bigram = np.divide(self._pair(ids, np.full_like(ids, after)), seen, out=np.zeros(len(ids)), where=seen > 0)
            score += np.log(LAMBDA * bigram + (1 - LAMBDA) * self._unigram(after))
        return int(ids[int(np.argmax(score))])  # argmax takes the first of equals: candidates come lowest id first

    def save(self, folder: Path) -> dict:
        """Write the counts into a model folder; returns the manifest entry that names them."""
        np.savez(folder / FILE, words=self.words.astype(np.int32), keys=self.keys, counts=self.counts.astype(np.int32))
        return {"file": FILE, "pairs": int(len(self.keys)), "texts": int(self.words[EDGE])}

    @classmethod
    def load(cls, folder: Path, vocab: Vocabulary, entry: dict) -> "WordPairs":
        """Read the counts a manifest entry names (see ``save``)."""
        try:
            with np.load(folder / entry["file"], allow_pickle=False) as saved:
                words, keys, counts = saved["words"], saved["keys"], saved["counts"]
        except (OSError, ValueError, KeyError) as e:
            raise QsearchError(f"cannot read the word-pair counts in {folder}: {e}; retrain or restore the model") from None
        if words.shape != (len(vocab.tokens),):
            raise QsearchError("the model's word-pair counts do not match its vocabulary; retrain the model")
        return cls(words, keys, counts)
