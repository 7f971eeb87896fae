"""Word overlap between two questions, each word weighted by how rare it is (tf-idf).

The student reads meaning from vectors, but a duplicate usually also shares its rarest words
with the question ("dolphins", "GRE", "Peru"), and that is a signal a narrow LSTM blurs.
Search adds a little of this overlap to its ranking (``qsearch.ranking``), as hybrid
dense + lexical search does; verdicts stay the model's cosines.

The weights are the inverse document frequencies of the model's training texts (sklearn's
smoothed idf, ``log((n + 1) / (df + 1)) + 1``), counted when the model is trained and kept in
its folder beside ``vocab.txt``. A word the vocabulary does not hold counts as never seen, so
as rare as can be. Overlap is the cosine of the two questions' word sets, each word weighted by
its idf.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from qsearch.errors import QsearchError
from qsearch.text import Vocabulary, tokenize

FILE = "document_frequency.npy"


class Lexicon:
    """How many training texts hold each vocabulary word, and overlap weighted by rarity."""

    def __init__(self, vocab: Vocabulary, frequencies: np.ndarray, documents: int):
        if frequencies.shape != (len(vocab.tokens),) or documents < 1:
            raise QsearchError("the model's document frequencies do not match its vocabulary; retrain the model")
        self.vocab = vocab
        self.frequencies = frequencies.astype(np.int32)
        self.documents = int(documents)
        self.idfs = np.log((documents + 1) / (self.frequencies + 1.0)) + 1.0
        self._squares: list[float] = (self.idfs * self.idfs).tolist()  # a list: search reads it word by word
        self.unseen_idf = math.log(documents + 1) + 1.0  # a word no training text holds: the largest idf there is
        self._unseen = self.unseen_idf**2

    @classmethod
    def count(cls, vocab: Vocabulary, texts: Iterable[str]) -> "Lexicon":
        """Count, for each vocabulary word, the texts that hold it."""
        texts = list(texts)
        counts = Counter(t for text in texts for t in set(tokenize(text)))
        frequencies = np.array([counts.get(t, 0) for t in vocab.tokens], dtype=np.int32)
        return cls(vocab, frequencies, max(len(texts), 1))

    def idf(self, token: str) -> float:
        """The weight of one token: high for rare words, about 1 for "?" and "the"."""
        i = self.vocab.index.get(token)
        return math.sqrt(self._squares[i] if i is not None else self._unseen)

    def overlaps(self, question: str, texts: list[str]) -> list[float]:
        """The overlap of ``question`` with each text: the cosine of their word sets, each word
        weighted by its idf; 1 for the same words, 0 for none shared. (On search's hot path:
        about 8 µs a text.)"""
        get, squares, unseen = self.vocab.index.get, self._squares, self._unseen
        asked = {t: squares[i] if (i := get(t)) is not None else unseen for t in set(tokenize(question))}
        norm = sum(asked.values())
        out = []
        for text in texts:
            words = set(tokenize(text))
            other = sum([squares[i] if (i := get(t)) is not None else unseen for t in words])
            shared = sum([asked[t] for t in words if t in asked])
            out.append(shared / math.sqrt(norm * other) if norm and other else 0.0)
        return out

    def save(self, folder: Path) -> dict:
        """Write the counts into a model folder; returns the manifest entry that names them."""
        np.save(folder / FILE, self.frequencies)
        return {"file": FILE, "documents": self.documents}

    @classmethod
    def load(cls, folder: Path, vocab: Vocabulary, entry: dict) -> "Lexicon":
        """Read the counts a manifest entry names (see ``save``)."""
        try:
            frequencies = np.load(folder / entry["file"], allow_pickle=False)
        except (OSError, ValueError, KeyError) as e:
            raise QsearchError(f"cannot read the document frequencies in {folder}: {e}; retrain or restore the model") from None
        return cls(vocab, frequencies, int(entry.get("documents", 0)))
