"""Search, add and build speed on the bundled corpus with the bundled model, for every backend.

Prints batched encoding throughput, then for FAISS flat, pq-refine (tuned to recall 1.0) and
HNSW, and Milvus Lite FLAT and HNSW: build time; warm single-question latency, both of the
index search alone (the question already encoded) and end to end (encode + search + texts);
recall@10 against FAISS flat (exact), by text; adds per second (one question per call, each
durable before the next); the cold wall time and peak memory of a whole ``qsearch query``.
For 1,000,000 vectors see benchmarks/scale.py.

    python benchmarks/search_bench.py
    python benchmarks/search_bench.py --only faiss-flat faiss-pq-refine
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


VARIANTS = {  # name: (backend, index type, recall target)
    "faiss-flat": ("faiss", "flat", 0.99),
    "faiss-pq-refine": ("faiss", "pq-refine", 1.0),
    "faiss-hnsw": ("faiss", "hnsw", 0.99),
    "milvus-lite-flat": ("milvus", "flat", 0.99),
    "milvus-lite-hnsw": ("milvus", "hnsw", 0.99),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--adds", type=int, default=300)
    parser.add_argument("--only", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    args = parser.parse_args()

    encoder = Encoder.load()
    texts = default_questions()
    unique = list(dict.fromkeys(t.strip() for t in texts if t.strip()))
    start = time.perf_counter()
    encoder.encode(unique)
    encode_s = time.perf_counter() - start

    test = split_pairs(load_pairs(DEFAULT_PAIRS).frame)["test"]
    queries = test["question1"].tolist()[: args.queries]
    vectors = encoder.encode(queries)
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
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in ["faiss-flat"] + [n for n in args.only if n != "faiss-flat"]:
            backend, kind, recall_target = VARIANTS[name]
            path = Path(tmp) / name
            faiss.omp_set_num_threads(os.cpu_count() or 1)
            start = time.perf_counter()
            engine = SearchEngine.build(texts, encoder, path, index_type=kind, backend=backend, recall=recall_target)
            build_s = time.perf_counter() - start
            faiss.omp_set_num_threads(1)
            for q in queries[:50]:
                engine.search([q], k=5)
            search_times, times, found = [], [], []
            for n, q in enumerate(queries):
                t0 = time.perf_counter()
                engine.search_vectors(queries[n : n + 1], vectors[n : n + 1], 10)
                search_times.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                matches = engine.search([q], k=10)
                times.append(time.perf_counter() - t0)
                found.append({m.text for m in matches[0]})
            exact = exact or found
            recall = float(np.mean([len(a & b) / max(1, len(b)) for a, b in zip(found, exact)]))
            same_top10 = float(np.mean([a == b for a, b in zip(found, exact)]))
            start = time.perf_counter()
            for n in range(args.adds):
                engine.add([f"{queries[n % len(queries)]} (benchmark add {n})"])
            adds_per_s = args.adds / (time.perf_counter() - start)
            engine.close()
            cold = cold_command([sys.executable, "-m", "qsearch.cli", "query", "How old are you?", "--index", str(path)])
            row = {
                "variant": name, "backend": backend, "index_type": engine.manifest["index_type"],
                "search_params": engine.manifest.get("search_params", {}),
                "build_s": round(build_s, 2),
                "warm_search_only_ms": {k: round(v, 3) for k, v in percentiles(search_times).items()},
                "warm_query_ms": {k: round(v, 3) for k, v in percentiles(times).items()},
                "recall@10_vs_exact": round(recall, 4),
                "same_top10_as_exact": round(same_top10, 4),
                "adds_per_s": round(adds_per_s, 1),
                "cold_query_s": round(cold["median_s"], 3),
                "cold_query_peak_rss_mib": round(cold["peak_rss_mib"]),
            }
            rows.append(row)
            print(row, flush=True)
    result["rows"] = rows
    result["benchmark_peak_rss_mib"] = round(peak_rss_mib())
    print("\n| backend, index | build s | search only p50 / p99 ms | end to end p50 / p99 ms | recall@10 vs exact "
          "| same top-10 | adds/s | cold `qsearch query` s | its peak MiB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        params = "".join(f", {k} {v}" for k, v in r["search_params"].items())
        print(f"| {r['variant']}{params} | {r['build_s']:.1f} | {r['warm_search_only_ms']['p50_ms']:.3f} / "
              f"{r['warm_search_only_ms']['p99_ms']:.3f} | {r['warm_query_ms']['p50_ms']:.3f} / {r['warm_query_ms']['p99_ms']:.3f} | "
              f"{r['recall@10_vs_exact']:.4f} | {r['same_top10_as_exact']:.4f} | {r['adds_per_s']:.0f} | {r['cold_query_s']:.2f} | "
              f"{r['cold_query_peak_rss_mib']} |")
    print(f"\npeak memory of this benchmark process: {result['benchmark_peak_rss_mib']} MiB")
    save("search", result)


if __name__ == "__main__":
    main()
