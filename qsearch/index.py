"""FAISS inner-product index over unit vectors, keyed by store id (IndexIDMap2).

Cosine similarity is the inner product of L2-normalised vectors. ``flat`` is exact search,
linear in the corpus (about 2 ms a query at 65k questions on 2 cores). ``hnsw`` (HNSW32
graph, efSearch 128) stays under a millisecond as the corpus grows, at recall@10 0.99 on the
bundled corpus but less on bigger, less clustered ones (benchmarks/scale.py), and builds slower.
"""

from __future__ import annotations

import os
from pathlib import Path

import faiss
import numpy as np

from qsearch.errors import QsearchError

FACTORIES = {"flat": "IDMap2,Flat", "hnsw": "IDMap2,HNSW32,Flat"}
HNSW_EF_SEARCH = 128
HNSW_EF_CONSTRUCTION = 80


def new_index(dim: int, index_type: str) -> faiss.Index:
    if index_type not in FACTORIES:
        raise QsearchError(f"unknown index type {index_type!r}; pick one of: {', '.join(FACTORIES)}")
    index = faiss.index_factory(dim, FACTORIES[index_type], faiss.METRIC_INNER_PRODUCT)
    _tune(index, index_type)
    return index


def _tune(index: faiss.Index, index_type: str) -> None:
    if index_type == "hnsw":
        hnsw = faiss.downcast_index(faiss.downcast_index(index).index)
        hnsw.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        hnsw.hnsw.efSearch = HNSW_EF_SEARCH


def indexed_ids(index: faiss.Index) -> np.ndarray:
    """The store ids held by an IDMap2 index."""
    return faiss.vector_to_array(faiss.downcast_index(index).id_map).astype(np.int64)


def save(index: faiss.Index, path: Path) -> None:
    """Write atomically (temporary file, fsync, rename): a killed write keeps the old file."""
    tmp = path.with_name(path.name + ".tmp")
    faiss.write_index(index, str(tmp))
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load(path: Path, index_type: str) -> faiss.Index:
    try:
        index = faiss.read_index(str(path))
    except RuntimeError as e:
        raise QsearchError(f"cannot read {path} ({str(e).splitlines()[0][:80]})") from None
    _tune(index, index_type)
    return index
