"""A linear map after the output map, fitted on the training part's labelled pairs.

Quora's labelled non-duplicates are mostly near-misses: two questions on one topic that ask
different things. After training, the differences ``x_a - x_b`` of the model's unit vectors
are gathered over the labelled duplicates (covariance ``S``) and over the labelled
non-duplicates (``D``). The map weights each direction by how much more non-duplicates than
duplicates differ along it: with the generalized eigenvectors ``V`` of ``(D, S)``
(``V' S V = I``, ``V' D V = diag(lam)``), it is ``V diag(lam ** (power / 2))``, a metric in
the spirit of KISSME (Koestinger et al., 2012). ``S`` is shrunk a quarter of the way toward
a multiple of the identity: the model was trained on these duplicates, so their differences
are smaller than a new question's, and the shrinkage keeps the map from trusting them too far.

The map is square, as wide as the model, and kept beside the output map (``PAIR_WEIGHT``):
verdicts (pair cosines, the threshold, dedup's links) are taken after it, while search ranks
by the cosines before it (``Encoder.to_verdict``). Weighting down the directions that tell
topics apart is what sharpens a verdict between two questions of one topic, and what costs a
search among all topics its recall: split, each space does the job it is better at. Measured
on the development set and validation, and the reasons it is on by default and kept apart, in
``benchmarks/training_history.md`` ("A map from the labelled pairs", "Search before the pair
map"). It costs a query one (d, d) product for its few results.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

PAIR_WEIGHT = "pair.weight"  # the map's name among a model's weights
SHRINK = 0.25  # S is (1 - SHRINK) S + SHRINK mean(diag S) I
MIN_PAIRS = 2  # per dimension, of each label: fewer leave D too poorly known to weight by


def difference_covariances(
    encode: Callable[[list[str]], np.ndarray], first: list[str], second: list[str], duplicate: np.ndarray, block: int = 16384
) -> tuple[np.ndarray, np.ndarray]:
    """The (d, d) covariances of ``encode(first) - encode(second)`` over the duplicates and the
    non-duplicates (``duplicate`` true or false for each pair), a ``block`` of pairs at a time."""
    duplicate = np.asarray(duplicate, dtype=bool)
    sums: dict[bool, np.ndarray] = {}
    for start in range(0, len(first), block):
        end = start + block
        diff = (encode(first[start:end]) - encode(second[start:end])).astype(np.float64)
        for label in (True, False):
            rows = diff[duplicate[start:end] == label]
            sums[label] = sums.get(label, 0) + rows.T @ rows
    counts = {label: max(int((duplicate == label).sum()), 1) for label in (True, False)}
    return sums[True] / counts[True], sums[False] / counts[False]


def fit_pair_map(same: np.ndarray, other: np.ndarray, power: float, shrink: float = SHRINK) -> np.ndarray:
    """The (d, d) float32 map ``V diag(lam ** (power / 2))`` from the covariance of duplicates'
    differences (``same``) and of non-duplicates' (``other``). Power 0 only whitens the
    duplicates' differences; power 1 weights each direction by the square root of its ratio."""
    d = len(same)
    same = (1 - shrink) * same + shrink * float(np.mean(np.diag(same))) * np.eye(d)
    lower_inv = np.linalg.inv(np.linalg.cholesky(same))  # (D, S) -> the ordinary problem of L^-1 D L^-T
    lam, q = np.linalg.eigh(lower_inv @ other @ lower_inv.T)
    vectors = lower_inv.T @ q
    lam = np.maximum(lam, 1e-12) / max(float(lam.max()), 1e-12)
    return (vectors * lam ** (power / 2)).astype(np.float32)


def enough_pairs(duplicates: int, non_duplicates: int, dim: int) -> bool:
    """Whether there are enough labelled pairs of each kind to fit the map for ``dim`` dimensions."""
    return min(duplicates, non_duplicates) >= MIN_PAIRS * dim
