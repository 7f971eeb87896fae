"""What search's ranking (``qsearch.ranking``) gains over cosine order, term by term and by weight.

Some indexed questions ("hubs") sit close to very many others and crowd the top of unrelated
searches. CSLS (Conneau et al., 2018, "Word translation without parallel data") ranks a known
question d for a query q by cos(q, d) - beta * r(d), where r(d) is the mean cosine of d to its
10 nearest other indexed questions; beta = 0.5 is CSLS's own weighting (2cos - r(q) - r(d),
with r(q) the same for every candidate). Search then adds gamma times the idf-weighted overlap
of the two questions' words (``qsearch.lexical``, idf from the model's training texts). This
script measures Recall@1/@10 and MRR@10 of the validation and test duplicates against the
bundled corpus (as benchmarks/compare.py does), exact search, the 20 nearest reordered, the
bundled model unless --model says otherwise: beta with gamma = 0, then gamma with beta = 0.5.
beta = gamma = 0 is plain cosine order. A last row replaces r(d) by a linear fit of it on d,
which would need nothing stored. known@1/@10 count any question the labelled pairs make a
duplicate of the query as found (``qsearch.evaluate.known_duplicates``; validation reads no
test label). Read validation to choose; test is printed for the record.

    python benchmarks/ranking.py
    python benchmarks/ranking.py --model models/mine
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from common import machine, save
from qsearch import Encoder
from qsearch.data import default_questions, load_pairs, readable_duplicates, split_pairs
from qsearch.evaluate import duplicate_partners, known_duplicates, known_for, retrieval_metrics
from qsearch.hubness import measure_vectors
from qsearch.lexical import Lexicon
from qsearch.paths import DEFAULT_PAIRS
from qsearch.ranking import candidates, overlaps, rank_for

BETAS = (0.0, 0.25, 0.5, 0.75, 1.0)
GAMMAS = (0.05, 0.1, 0.15, 0.2, 0.25)
REORDERED = 20


def linear_fit(vectors: np.ndarray, hub: np.ndarray) -> np.ndarray:
    """r(d) predicted by a ridge fit of r on d: what a fixed shift of the query could do, with nothing stored."""
    design = np.hstack([vectors, np.ones((len(vectors), 1), np.float32)]).astype(np.float64)
    weights = np.linalg.solve(design.T @ design + 1e-3 * np.eye(design.shape[1]), design.T @ hub)
    return (design @ weights).astype(np.float32)


def searches(encoder: Encoder, part, corpus: list[str], vectors: np.ndarray) -> tuple[list[str], list[set[int]], np.ndarray]:
    """One part's duplicates as queries: the queries, each one's relevant corpus rows, and its
    cosine to every corpus question (its own entry, when indexed, at -inf)."""
    position = {t: i for i, t in enumerate(corpus)}
    dups = part[part["is_duplicate"] == 1]
    relevant = duplicate_partners(dups["question1"].tolist(), dups["question2"].tolist(), position)
    queries = list(relevant)
    scores = encoder.encode(queries) @ vectors.T
    own = np.array([position.get(q, -1) for q in queries])
    found = own >= 0
    scores[np.arange(len(queries))[found], own[found]] = -np.inf
    return queries, [relevant[q] for q in queries], scores


def known_sets(parts: dict, name: str, queries: list[str], relevant: list[set[int]], corpus: list[str]) -> list[set[int]]:
    """Each query's known duplicates among ``corpus`` (``qsearch.evaluate.known_for``): its
    partners and what the duplicate pairs it may read (``readable_duplicates``: never a test
    label for validation) make its duplicates."""
    known = known_duplicates(*readable_duplicates(parts, name), {t: i for i, t in enumerate(corpus)})
    return known_for(queries, dict(zip(queries, relevant)), known)


def recall_by_weight(
    queries: list[str], corpus: list[str], relevant: list[set[int]], scores: np.ndarray, hubs: dict[str, np.ndarray], lexicon: Lexicon | None,
    also: tuple[tuple[float, float], ...] = (), known: list[set[int]] | None = None,
) -> dict[str, dict]:
    """Retrieval metrics for each r(d), beta and gamma, the ``REORDERED`` nearest reordered;
    ``also``: more (beta, gamma) pairs of the exact hubness (a model's own search weights);
    ``known``: each query's known duplicates (``known_sets``), for ``known@1``/``known@10``."""
    near = np.argsort(-scores, axis=1)[:, :REORDERED]
    cos = np.take_along_axis(scores, near, axis=1)
    words = np.array([overlaps(lexicon, q, [corpus[i] for i in row]) for q, row in zip(queries, near)])
    rows = [(kind, beta, 0.0) for kind in hubs for beta in (BETAS if kind == "exact" else (0.5,))]
    rows += [("exact", 0.5, gamma) for gamma in (GAMMAS if lexicon is not None else ())]
    rows += [("exact", beta, gamma) for beta, gamma in also]
    out = {}
    for kind, beta, gamma in rows:
        key = cos - beta * hubs[kind][near] + gamma * words
        ranked = np.take_along_axis(near, np.argsort(-key, axis=1)[:, :10], axis=1)
        out[f"{kind} {beta} {gamma}"] = retrieval_metrics(ranked, relevant, known)
    return out


def first_results(
    queries: list[str], corpus: list[str], relevant: list[set[int]], scores: np.ndarray, hub: np.ndarray, encoder: Encoder, vectors: np.ndarray
) -> dict[str, dict]:
    """How often the first result is marked duplicate (verdict score above the threshold) and
    right or wrong, in cosine order and as search orders it (the nearest ``candidates(5)``
    reordered); ``vectors``: the corpus's, as ``encoder.encode`` gives them."""
    near = np.argsort(-scores, axis=1)[:, : candidates(5)]
    asked, known = encoder.pair_vectors(queries), encoder.to_verdict(vectors)
    out = {}
    for order in ("cosine order", "qsearch's ranking"):
        counts = {"marked, right": 0, "marked, wrong": 0, "not marked, right": 0, "not marked, wrong": 0}
        for q, rel, row, cols, a in zip(queries, relevant, scores, near, asked):
            rows = [(int(i), float(row[i]), corpus[i], float(hub[i])) for i in cols]
            first = rows[0] if order == "cosine order" else rank_for(q, rows, 1, encoder.lexicon, encoder.search_weights)[0]
            verdict = encoder.verdicts([q], [first[2]], [float(a @ known[first[0]])])[0]
            marked = "marked" if verdict > encoder.threshold else "not marked"
            counts[f"{marked}, {'right' if first[0] in rel else 'wrong'}"] += 1
        out[order] = counts
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="model folder (default: the bundled model)")
    args = parser.parse_args()

    encoder = Encoder.load(args.model) if args.model else Encoder.load()
    parts = split_pairs(load_pairs(DEFAULT_PAIRS).frame)
    corpus = list(dict.fromkeys(t.strip() for t in default_questions() if t.strip()))
    start = time.perf_counter()
    vectors = encoder.encode(corpus)
    hub = measure_vectors(vectors)
    seconds = time.perf_counter() - start
    print(f"{len(corpus):,} questions encoded and their hubness measured in {seconds:.1f} s; "
          f"r(d): mean {hub.mean():.3f}, 5th-95th percentile {np.percentile(hub, 5):.3f}-{np.percentile(hub, 95):.3f}")
    hubs = {"exact": hub, "linear": linear_fit(vectors, hub)}
    results, first = {}, {}
    if encoder.lexicon is None:
        print(f"{encoder.name} has no word counts (trained before they were kept): gamma rows left out")
    print(f"{'part':<11}{'r(d), beta, gamma':>19}{'Recall@1':>10}{'Recall@10':>11}{'MRR@10':>8}{'known@1':>9}{'known@10':>10}")
    for name in ("validation", "test"):
        queries, relevant, scores = searches(encoder, parts[name], corpus, vectors)
        known = known_sets(parts, name, queries, relevant, corpus)
        results[name] = recall_by_weight(queries, corpus, relevant, scores, hubs, encoder.lexicon, known=known)
        first[name] = first_results(queries, corpus, relevant, scores, hub, encoder, vectors)
        for row, m in results[name].items():
            print(f"{name:<11}{row:>19}{m['recall@1']:>10.4f}{m['recall@10']:>11.4f}{m['mrr@10']:>8.4f}{m['known@1']:>9.4f}{m['known@10']:>10.4f}")
    print(f"\nfirst result of each search (threshold {encoder.threshold:.4f}; search's own reordering of the nearest {candidates(5)})")
    for name, orders in first.items():
        for order, counts in orders.items():
            print(f"{name:<11}{order:<19}" + "  ".join(f"{k} {v}" for k, v in counts.items()))
    save("ranking", {
        "machine": machine(), "model": encoder.name, "questions": len(corpus),
        "seconds": round(seconds, 1), "results": results, "first_result": first,
    })


if __name__ == "__main__":
    main()
