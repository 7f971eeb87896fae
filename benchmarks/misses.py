"""What a Recall@1 miss is: a random sample of the searches whose first result is not the labelled duplicate.

Quora labelled pairs, not whole clusters, so a search's first result can ask the same thing
as the query and still count as a miss ("What is the best country to live in and why?" ->
"What is the best country to live In?"). This script searches each duplicate of a part among
the bundled corpus as ``ranking.py`` does (exact search, the 20 nearest reordered by search's
ranking), writes a random sample of the misses to a CSV with an empty ``same`` column for a
reader to fill in (yes or no: does the first result ask what the query asks?), and, given a
filled file, prints the share of misses that are not mistakes and what Recall@1 would be if
those counted, with a 95% Wilson interval. Read validation; the script never looks at test
unless told to.

    python benchmarks/misses.py --out benchmarks/results/recall_misses_validation.csv
    python benchmarks/misses.py --read benchmarks/results/recall_misses_validation.csv
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from ranking import REORDERED, searches
from qsearch import Encoder
from qsearch.data import default_questions, load_pairs, split_pairs
from qsearch.hubness import measure_vectors
from qsearch.paths import DEFAULT_PAIRS
from qsearch.ranking import rank_for

FIELDS = ("query", "first_result", "first_cosine", "duplicate", "duplicate_cosine", "duplicate_rank", "same")


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion k/n."""
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def misses(encoder: Encoder, part: str) -> tuple[int, list[dict]]:
    """The number of searches and, for each miss, the query, its first result and its labelled duplicate."""
    corpus = list(dict.fromkeys(t.strip() for t in default_questions() if t.strip()))
    vectors = encoder.encode(corpus)
    hub = measure_vectors(vectors)
    queries, relevant, scores = searches(encoder, split_pairs(load_pairs(DEFAULT_PAIRS).frame)[part], corpus, vectors)
    found = []
    for query, rel, row in zip(queries, relevant, scores):
        near = np.argsort(-row)[:REORDERED]
        rows = [(int(i), float(row[i]), corpus[i], float(hub[i])) for i in near]
        ranked = rank_for(query, rows, 10, encoder.lexicon, encoder.search_weights)
        if ranked[0][0] in rel:
            continue
        dup = max(rel, key=lambda i: row[i])
        place = next((n + 1 for n, r in enumerate(ranked) if r[0] in rel), None)
        found.append({
            "query": query, "first_result": ranked[0][2], "first_cosine": f"{ranked[0][1]:.3f}",
            "duplicate": corpus[dup], "duplicate_cosine": f"{row[dup]:.3f}", "duplicate_rank": place or "", "same": "",
        })
    return len(queries), found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="model folder (default: the bundled model)")
    parser.add_argument("--part", default="validation", choices=("validation", "test"))
    parser.add_argument("--sample", type=int, default=30, help="misses written out")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="write the sample here, with an empty 'same' column")
    parser.add_argument("--read", type=Path, help="a filled sample: print what its 'same' column says")
    args = parser.parse_args()

    if args.read:
        if not args.read.is_file():
            sys.exit(f"error: no file at {args.read}")
        with args.read.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        judged = [r for r in rows if (r.get("same") or "").strip().lower() in ("yes", "no")]
        if not judged:
            sys.exit(f"error: {args.read} has no row whose 'same' column reads yes or no")
        yes = sum(r["same"].strip().lower() == "yes" for r in judged)
        low, high = wilson(yes, len(judged))
        print(f"{yes} of {len(judged)} sampled misses have a first result that asks the same thing ({yes / len(judged):.0%}; 95% interval {low:.0%}-{high:.0%})")
        return

    encoder = Encoder.load(args.model) if args.model else Encoder.load()
    searched, found = misses(encoder, args.part)
    hits = searched - len(found)
    print(f"{args.part}: {searched} searches, Recall@1 {hits / searched:.4f}; {len(found)} misses")
    picked = [found[i] for i in sorted(np.random.default_rng(args.seed).choice(len(found), min(args.sample, len(found)), replace=False))]
    if args.out:
        with args.out.open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=FIELDS)
            writer.writeheader()
            writer.writerows(picked)
        print(f"{len(picked)} misses written to {args.out}: fill in 'same' (yes/no), then --read it")
    else:
        for r in picked:
            print(f"Q: {r['query']}\n  first ({r['first_cosine']}): {r['first_result']}\n  duplicate ({r['duplicate_cosine']}, rank {r['duplicate_rank'] or '>10'}): {r['duplicate']}")


if __name__ == "__main__":
    main()
