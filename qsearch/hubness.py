"""Hubness: how close a known question sits to its nearest neighbours.

Some questions ("hubs") sit close to very many others and would take the first place in
searches that are not about them, so search ranks by cosine less half of ``hub(d)``, d's mean
cosine to its ``HUB_NEIGHBOURS`` nearest other questions (``qsearch.ranking``).

``hub(d)`` is measured when d is indexed, against the questions indexed then: at build time
against all of them, at ``add`` time from the search the add runs anyway. Building the index
again (or ``qsearch repair``) measures every question again.
"""

from __future__ import annotations

import numpy as np

from qsearch import index as vindex

HUB_NEIGHBOURS = 10


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


def measure_vectors(vectors: np.ndarray, index_type: str = "flat") -> np.ndarray:
    """Each of ``vectors``' hubness among the others, through a FAISS index of ``index_type``
    built in memory for them (for vectors that live where a search per question is slow)."""
    ids = np.arange(len(vectors), dtype=np.int64)
    index = vindex.new_index(vectors.shape[1], index_type, train=vectors)
    index.add_with_ids(vectors, ids)
    return measure(index, vectors, ids)
