"""End-to-end search speed on the bundled corpus with the bundled model.

Prints: batched encoding throughput, and for a flat and an HNSW index: build time, warm
single-question latency (encode + search + texts, one question at a time, in process), HNSW's
recall@10 against flat, the cold wall time of a whole ``qsearch query`` command, peak memory.
For 1,000,000 vectors see benchmarks/scale.py.

    python benchmarks/search_bench.py
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import faiss
import numpy as np

from common import cold_command, machine, peak_rss_mib, percentiles, save
from qsearch import Encoder, SearchEngine
from qsearch.data import default_questions, load_pairs, split_pairs
from qsearch.paths import DEFAULT_PAIRS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=1000)
    args = parser.parse_args()

    encoder = Encoder.load()
    texts = default_questions()
    unique = list(dict.fromkeys(t.strip() for t in texts if t.strip()))
    start = time.perf_counter()
    encoder.encode(unique)
    encode_s = time.perf_counter() - start

    test = split_pairs(load_pairs(DEFAULT_PAIRS).frame)["test"]
    queries = test["question1"].tolist()[: args.queries]
    result = {
        "machine": machine(),
        "questions_read": len(texts),
        "questions_indexed": len(unique),
        "encode_questions_per_s": round(len(unique) / encode_s),
    }
    print(f"machine: {result['machine']}")
    print(f"bundled corpus: {len(unique):,} unique questions ({len(texts):,} read)")
    print(f"| encoding, batched | {result['encode_questions_per_s']:,} questions/s |")
    exact = None
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("flat", "hnsw"):
            path = Path(tmp) / kind
            faiss.omp_set_num_threads(os.cpu_count() or 1)
            start = time.perf_counter()
            engine = SearchEngine.build(texts, encoder, path, index_type=kind)
            build_s = time.perf_counter() - start
            faiss.omp_set_num_threads(1)
            for q in queries[:50]:
                engine.search([q], k=5)
            times, found = [], []
            for q in queries:
                t0 = time.perf_counter()
                matches = engine.search([q], k=10)
                times.append(time.perf_counter() - t0)
                found.append({m.id for m in matches[0]})
            exact = exact or found
            recall = float(np.mean([len(a & b) / max(1, len(b)) for a, b in zip(found, exact)]))
            warm = percentiles(times)
            cold = cold_command([sys.executable, "-m", "qsearch.cli", "query", "How old are you?", "--index", str(path)])
            engine.close()
            result[kind] = {
                "build_s": round(build_s, 2),
                "warm_query_ms": {k: round(v, 3) for k, v in warm.items()},
                "recall@10_vs_flat": round(recall, 4),
                "cold_query_s": round(cold["median_s"], 3),
                "cold_query_peak_rss_mib": round(cold["peak_rss_mib"]),
            }
            print(f"| {kind}: build index | {build_s:.2f} s |")
            print(f"| {kind}: warm query (encode + search + texts), p50 / p99 | {warm['p50_ms']:.3f} / {warm['p99_ms']:.3f} ms |")
            print(f"| {kind}: recall@10 against flat | {recall:.4f} |")
            print(f"| {kind}: cold `qsearch query` (whole process), median of {cold['runs']} | {cold['median_s']:.2f} s |")
            print(f"| {kind}: peak memory of that `qsearch query` | {cold['peak_rss_mib']:.0f} MiB |")
    result["benchmark_peak_rss_mib"] = round(peak_rss_mib())
    print(f"| peak memory of this benchmark process (model, both indexes) | {result['benchmark_peak_rss_mib']} MiB |")
    save("search", result)


if __name__ == "__main__":
    main()
