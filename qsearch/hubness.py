"""Hubness: how close a known question sits to its nearest neighbours, and ranking that allows for it.

Some questions ("hubs") sit close to very many others and would take the first place in
searches that are not about them. Search ranks a known question d for a query q by
``cos(q, d) - HUB_WEIGHT * hub(d)``, where ``hub(d)`` is d's mean cosine to its
``HUB_NEIGHBOURS`` nearest other questions: CSLS (Conneau et al., 2018, "Word translation
without parallel data"), whose own weight 0.5 was also the best on validation
(benchmarks/hubness.py: +2 points of Recall@1). Only the order changes: the scores reported,
and the duplicate verdict (cosine above the threshold), stay the plain cosines.

``hub(d)`` is measured when d is indexed, against the questions indexed then: at build time
against all of them, at ``add`` time from the search the add runs anyway. Building the index
again (or ``qsearch repair``) measures every question again.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np

HUB_NEIGHBOURS = 10
HUB_WEIGHT = 0.5
EXTRA_CANDIDATES = 10  # results fetched beyond k, for the reordering to choose from
SAME_QUESTION = 1.0 - 1e-4  # a cosine this high is the query itself, which always stays first

Row = TypeVar("Row", bound=tuple)


def candidates(k: int) -> int:
    """How many nearest questions to fetch so that the best ``k`` after reordering are among them."""
    return max(k + EXTRA_CANDIDATES, HUB_NEIGHBOURS + 1)


def hub_of(scores: list[float]) -> float:
    """The hubness of a question from its neighbours' cosines, best first (itself left out):
    the mean of the first ``HUB_NEIGHBOURS``; 0 with no neighbour yet."""
    near = scores[:HUB_NEIGHBOURS]
    return float(np.mean(near)) if near else 0.0


def measure(index, vectors: np.ndarray, ids: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Each vector's hubness, searching ``index`` (a FAISS index holding ``vectors`` under ``ids``)."""
    hubs = np.zeros(len(vectors), dtype=np.float32)
    want = min(HUB_NEIGHBOURS + 1, index.ntotal)
    for start in range(0, len(vectors), chunk):
        scores, found = index.search(vectors[start : start + chunk], want)
        for n, (row_s, row_i) in enumerate(zip(scores, found)):
            own = ids[start + n]
            hubs[start + n] = hub_of([float(s) for s, i in zip(row_s, row_i) if i >= 0 and i != own])
    return hubs


def rank(rows: list[Row], k: int) -> list[Row]:
    """The best ``k`` of one query's (id, score, text, hub) rows: the query's own stored copy
    first, then by score minus ``HUB_WEIGHT`` × hub."""
    return sorted(rows, key=lambda r: (r[1] < SAME_QUESTION, -(r[1] - HUB_WEIGHT * r[3])))[:k]
