"""Start the embedding table from the teacher's knowledge of words (Model2Vec's idea).

Every vocabulary word is encoded alone by the teacher; PCA reduces those vectors to the
embedding width; each word's row starts there. Each hashed piece (see ``Vocabulary.pieces``)
starts at the mean of the rows of the vocabulary words that contain it, so an unseen spelling
starts near the words it resembles.
"""

from __future__ import annotations

import numpy as np

from qsearch.text import Vocabulary, unknown_pieces


def pca(vectors: np.ndarray, dim: int) -> np.ndarray:
    """Rows projected on their ``dim`` leading principal components, scaled to unit variance
    per coordinate on average (the scale of torch's default embedding initialisation)."""
    centred = vectors - vectors.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    reduced = centred @ vt[:dim].T
    if reduced.shape[1] < dim:
        reduced = np.pad(reduced, ((0, 0), (0, dim - reduced.shape[1])))
    return (reduced / (reduced.std() + 1e-8)).astype(np.float32)


def initial_embeddings(vocab: Vocabulary, word_vectors: np.ndarray, dim: int, rng: np.random.Generator) -> np.ndarray:
    """(len(vocab), dim) rows: 0 for padding, the teacher's reduced vector for each word
    (``word_vectors`` holds one row per ``vocab.tokens[2:]``), piece means for the buckets."""
    table = rng.normal(0.0, 0.1, (len(vocab), dim)).astype(np.float32)  # pieces no word has stay small
    words = pca(word_vectors, dim)
    table[0] = 0.0
    table[2 : len(vocab.tokens)] = words
    table[1] = words.mean(axis=0)
    if vocab.buckets:
        first = len(vocab.tokens)
        pieces, rows = [], []
        for row, word in enumerate(vocab.tokens[2:]):
            grams = unknown_pieces(word, 0, vocab.buckets)[1:]
            pieces += grams
            rows += [row] * len(grams)
        sums = np.zeros((vocab.buckets, dim), dtype=np.float64)
        np.add.at(sums, np.array(pieces, dtype=np.int64), words[np.array(rows, dtype=np.int64)])
        counts = np.bincount(np.array(pieces, dtype=np.int64), minlength=vocab.buckets)
        seen = counts > 0
        table[first:][seen] = (sums[seen] / counts[seen, None]).astype(np.float32)
    return table
