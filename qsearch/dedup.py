"""Group the duplicates inside a file of questions into clusters (connected components).

Every question is encoded once; FAISS range searches find every pair whose verdict cosine
(``Encoder.to_verdict``) is above the threshold (no n^2 loop in Python, and each pair computed once);
those whose verdict score (``Encoder.verdicts``: less the word gap, which only lowers it) is
still above are the edges, and the connected components of that graph are the clusters.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import faiss
import numpy as np
import pandas as pd

from qsearch.data import check_file, duplicate_components, open_text, read_table
from qsearch.encoder import Encoder
from qsearch.errors import QsearchError

if TYPE_CHECKING:
    from qsearch.search import SearchEngine

BLOCK = 4096  # questions per range search: each block is searched against the earlier ones and itself


@dataclass
class DedupResult:
    """The input rows with ``cluster`` and ``cluster_size`` added (and index matches, if asked)."""

    rows: pd.DataFrame
    column: str
    pairs: int
    threshold: float

    def largest(self, n: int = 5) -> list[list[str]]:
        """Texts of the ``n`` largest clusters of more than one question."""
        multi = self.rows[self.rows["cluster_size"] > 1]
        order = multi.groupby("cluster")["cluster_size"].first().sort_values(ascending=False, kind="stable")
        return [multi.loc[multi["cluster"] == c, self.column].tolist() for c in order.index[:n]]


def read_rows(path: Path | str, column: str | None = None) -> tuple[pd.DataFrame, str]:
    """The file's rows and the name of the question column; plain text becomes one column."""
    path = Path(path)
    if path.name.removesuffix(".gz").endswith(".txt"):
        check_file(path)
        with open_text(path) as f:
            return pd.DataFrame({"question": [line.rstrip("\r\n") for line in f]}), "question"
    frame = read_table(path).frame
    col = column or "question"
    if col not in frame.columns:
        raise QsearchError(f"{path} has no column {col!r}; columns: {', '.join(frame.columns)} (use --column)")
    return frame, col


def pairs_above(vectors: np.ndarray, threshold: float, block: int = BLOCK) -> tuple[np.ndarray, np.ndarray]:
    """Every pair of rows (a < b) whose inner product is above ``threshold``, exactly.

    Each block is added to a flat index, then range searched against it (the earlier blocks
    and itself), so each pair is computed once: half the work of searching every row against
    all the others. An entry's position in the index is its row.
    """
    index = faiss.IndexFlatIP(vectors.shape[1])
    a, b = [np.empty(0, dtype=np.int64)], [np.empty(0, dtype=np.int64)]
    for start in range(0, len(vectors), block):
        rows = np.ascontiguousarray(vectors[start : start + block], dtype=np.float32)
        index.add(rows)
        lims, _, found = index.range_search(rows, threshold)
        later = np.repeat(np.arange(start, start + len(rows)), np.diff(lims.astype(np.int64)))
        earlier = found < later
        a.append(found[earlier])
        b.append(later[earlier])
    return np.concatenate(a), np.concatenate(b)


def dedup(
    rows: pd.DataFrame,
    column: str,
    encoder: Encoder,
    threshold: float | None = None,
    against: SearchEngine | None = None,
) -> DedupResult:
    """Cluster the rows' questions; blank questions stay alone in clusters of their own.

    The default threshold is the model's cluster threshold (stricter than the pair verdict's:
    one false pair merges two clusters). Every pair above the threshold is an edge.

    ``against`` (a SearchEngine) adds, for each row, its best match in that index when the
    score is above the threshold: ``index_id``, ``index_text``, ``index_score``.
    """
    threshold = encoder.cluster_threshold if threshold is None else float(threshold)
    texts = rows[column].fillna("").astype(str).str.strip().tolist()
    filled = [i for i, t in enumerate(texts) if t]
    tokens = encoder.token_ids([texts[i] for i in filled])
    vectors = encoder.encode_tokens(tokens)
    verdict = encoder.to_verdict(vectors)
    a, b = pairs_above(verdict, threshold)
    if encoder.word_gap_weight and len(a):
        cosines = np.concatenate([np.einsum("ij,ij->i", verdict[a[s : s + BLOCK]], verdict[b[s : s + BLOCK]]) for s in range(0, len(a), BLOCK)])
        first, second = [texts[filled[i]] for i in a], [texts[filled[i]] for i in b]
        keep = encoder.verdicts(first, second, cosines, ([tokens[i] for i in a], [tokens[i] for i in b])) > threshold
        a, b = a[keep], b[keep]
    component = duplicate_components(a.tolist(), b.tolist())
    row_of = {i: n for n, i in enumerate(filled)}
    keys = [("c", component[row_of[i]]) if row_of.get(i) in component else ("r", i) for i in range(len(texts))]
    numbers: dict = {}
    out = rows.copy()
    out["cluster"] = [numbers.setdefault(key, len(numbers)) for key in keys]
    out["cluster_size"] = out.groupby("cluster")["cluster"].transform("size")
    if against is not None:
        best = [None] * len(texts)
        if filled:
            for i, ms in zip(filled, against.search_vectors([texts[i] for i in filled], vectors, 1, threshold, encoded_by=encoder)):
                best[i] = ms[0] if ms and ms[0].duplicate else None
        out["index_id"] = pd.array([m.id if m else None for m in best], dtype="Int64")
        out["index_text"] = [m.text if m else "" for m in best]
        out["index_score"] = [round(m.score, 4) if m else None for m in best]
    return DedupResult(out, column, len(a), threshold)
