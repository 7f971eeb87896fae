"""FAISS inner-product indexes over unit vectors, keyed by store id (IndexIDMap2).

Cosine similarity is the inner product of L2-normalised vectors. Types (``--index-type``):

- ``flat``: exact search, linear in the corpus (2 to 3 ms a query at 65k questions).
- ``pq-refine``: a 4-bit fast-scan first pass, one sub-quantiser per dimension (8x smaller
  than the vectors), then exact re-scoring of ``k_factor`` x k candidates: about 0.5 ms at
  65k, with recall@10 against exact search of 1.000 on the bundled corpus
  (benchmarks/search_bench.py). Half as many sub-quantisers (two dimensions each) scan
  faster but rank so roughly that tuning for recall 1.0 chose k_factor 128 for a 128-wide
  model, against 16 with one per dimension, and the re-scoring cost more than the scan saved.
- ``hnsw``: an HNSW32 graph; under a millisecond at large sizes, approximate.
- ``auto``: flat below 20k questions, pq-refine below 500k, hnsw above.

The approximate types are tuned at build time: the smallest ``k_factor`` or ``efSearch``
whose recall@10 against exact search, on a sample of the indexed questions used as queries,
reaches the ``recall`` target, then one step more (doubled), because 500 sampled queries are
not every query. What was chosen and measured goes into the index manifest.
"""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np

from qsearch.errors import QsearchError
from qsearch.files import replacing

FACTORIES = {"flat": "IDMap2,Flat", "pq-refine": "IDMap2,PQ{m}x4fs,RFlat", "hnsw": "IDMap2,HNSW32,Flat"}
INDEX_TYPES = (*FACTORIES, "auto")
HNSW_EF_SEARCH = 128
HNSW_EF_CONSTRUCTION = 80
AUTO_FLAT_BELOW = 20_000
AUTO_PQ_BELOW = 500_000
TUNE_QUERIES = 500
STEPS = {"pq-refine": ("k_factor", (4, 8, 16, 32, 64, 128)), "hnsw": ("efSearch", (16, 32, 64, 128, 256, 512, 1024))}
DEFAULT_PARAMS = {"pq-refine": {"k_factor": 32}, "hnsw": {"efSearch": HNSW_EF_SEARCH}, "flat": {}}


def resolve_type(index_type: str, n: int) -> str:
    """The concrete type for ``index_type`` at ``n`` questions (``auto`` picks by size)."""
    if index_type not in INDEX_TYPES:
        raise QsearchError(f"unknown index type {index_type!r}; pick one of: {', '.join(INDEX_TYPES)}")
    if index_type != "auto":
        return index_type
    return "flat" if n < AUTO_FLAT_BELOW else "pq-refine" if n < AUTO_PQ_BELOW else "hnsw"


def factory(dim: int, index_type: str) -> str:
    """The FAISS index_factory string of a type at this dimension."""
    return FACTORIES[index_type].format(m=dim)


def new_index(dim: int, index_type: str, train: np.ndarray | None = None, params: dict | None = None) -> faiss.Index:
    """An empty index; pq-refine learns its codebooks from ``train`` (a sample of the vectors)."""
    index = faiss.index_factory(dim, factory(dim, index_type), faiss.METRIC_INNER_PRODUCT)
    if not index.is_trained:
        if train is None or len(train) < 64:
            raise QsearchError(f"a {index_type} index needs at least 64 questions to learn from; use --index-type flat")
        index.train(np.ascontiguousarray(train[:100_000], dtype=np.float32))
    apply_params(index, index_type, params)
    if index_type == "hnsw":
        _inner(index).hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    return index


def _inner(index: faiss.Index) -> faiss.Index:
    return faiss.downcast_index(faiss.downcast_index(index).index)


def apply_params(index: faiss.Index, index_type: str, params: dict | None = None) -> None:
    """Set the search-time parameters (k_factor, efSearch) recorded for this index."""
    params = {**DEFAULT_PARAMS.get(index_type, {}), **(params or {})}
    if index_type == "hnsw":
        _inner(index).hnsw.efSearch = int(params["efSearch"])
    elif index_type == "pq-refine":
        _inner(index).k_factor = float(params["k_factor"])


def tune(index: faiss.Index, index_type: str, vectors: np.ndarray, ids: np.ndarray, recall: float, seed: int = 0) -> dict:
    """The smallest setting whose recall@10 reaches ``recall`` on a sample of ``vectors``.

    Each sampled question is a query; its own id is left out of both result lists, so the
    ten others are compared with exact search. Returns the chosen parameters and the recall
    measured with them (the largest setting, short of the target, is reported as such).
    Settings double at each step; the one after the first that reaches the target is kept.
    """
    if index_type == "flat":
        return {"recall_at_10": 1.0}
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(vectors), min(TUNE_QUERIES, len(vectors)), replace=False)
    queries = np.ascontiguousarray(vectors[pick])
    k = min(11, len(vectors))
    exact = faiss.IndexFlatIP(vectors.shape[1])
    exact.add(np.ascontiguousarray(vectors, dtype=np.float32))
    truth = ids[exact.search(queries, k)[1]]
    name, steps = STEPS[index_type]
    reached = None
    for n, value in enumerate(steps):
        apply_params(index, index_type, {name: value})
        found = index.search(queries, k)[1]
        got = np.mean([
            len(set(t[t != ids[q]][:10]) & set(f[f != ids[q]][:10])) / max(1, len(t[t != ids[q]][:10]))
            for q, t, f in zip(pick, truth, found)
        ])
        if reached is None and got >= recall:
            reached = n
        if reached is not None and n > reached:  # one step of headroom: the sample is 500 queries, not all
            break
    return {name: value, "recall_at_10": round(float(got), 4)}


def indexed_ids(index: faiss.Index) -> np.ndarray:
    """The store ids held by an IDMap2 index."""
    return faiss.vector_to_array(faiss.downcast_index(index).id_map).astype(np.int64)


def save(index: faiss.Index, path: Path) -> None:
    """Write whole or not at all (``files.replacing``): a killed write keeps the old file, and
    a full disk leaves no half-written one taking the space."""
    with replacing(path) as tmp:
        faiss.write_index(index, str(tmp))


def load(path: Path, index_type: str, params: dict | None = None) -> faiss.Index:
    try:
        index = faiss.read_index(str(path))
    except RuntimeError as e:
        raise QsearchError(f"cannot read {path} ({str(e).splitlines()[0][:80]})") from None
    apply_params(index, index_type, params)
    return index
