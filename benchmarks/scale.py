"""How FAISS flat and HNSW indexes scale: build time, memory, query latency, HNSW recall@10.

Vectors are synthetic but shaped like real ones: the bundled model encodes the bundled corpus,
a Gaussian with the mean and 128x128 covariance of those real embeddings is fitted, and
database and query vectors are drawn from it and L2-normalised. (An earlier version drew
points around random centres; its recall depended on how many points fell per centre, 1.0
at 1M and 0.94 at 100k, so it said more about the generator than about the index.)
Queries are searched one at a time on one thread, as a user's query would be.

    python benchmarks/scale.py --sizes 10000 100000 1000000
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import faiss
import numpy as np

from common import machine, peak_rss_mib, percentiles, save
from qsearch.index import HNSW_EF_SEARCH, new_index


def real_shape() -> tuple[np.ndarray, np.ndarray]:
    """Mean and Cholesky factor of the covariance of the bundled corpus's real embeddings."""
    from qsearch import Encoder
    from qsearch.data import default_questions

    real = Encoder.load().encode(list(dict.fromkeys(t.strip() for t in default_questions() if t.strip())))
    return real.mean(axis=0), np.linalg.cholesky(np.cov(real, rowvar=False) + 1e-6 * np.eye(real.shape[1]))


def sample(n: int, mean: np.ndarray, chol: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = np.empty((n, len(mean)), dtype=np.float32)
    for s in range(0, n, 100_000):
        z = rng.standard_normal((min(100_000, n - s), len(mean)))
        x = (mean + z @ chol.T).astype(np.float32)
        out[s : s + len(x)] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def run(sizes: list[int], ef_search: list[int], queries: int = 500, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    mean, chol = real_shape()
    dim = len(mean)
    q = sample(queries, mean, chol, rng)
    rows = []
    data = np.empty((0, dim), dtype=np.float32)
    for n in sorted(sizes):
        data = np.vstack([data, sample(n - len(data), mean, chol, rng)])
        ids = np.arange(1, n + 1, dtype=np.int64)
        truth = None
        for kind in ("flat", "hnsw"):
            faiss.omp_set_num_threads(os.cpu_count() or 1)
            index = new_index(dim, kind)
            start = time.perf_counter()
            for s in range(0, n, 100_000):
                index.add_with_ids(data[s : s + 100_000], ids[s : s + 100_000])
            build = time.perf_counter() - start
            faiss.omp_set_num_threads(1)
            size = round(faiss.serialize_index(index).nbytes / 2**20, 1)
            for ef in ef_search if kind == "hnsw" else [None]:
                if ef:
                    faiss.downcast_index(faiss.downcast_index(index).index).hnsw.efSearch = ef
                times, found = [], []
                for row in q:
                    t0 = time.perf_counter()
                    _, got = index.search(row[None, :], 10)
                    times.append(time.perf_counter() - t0)
                    found.append(got[0])
                found = np.array(found)
                if kind == "flat":
                    truth = found
                recall = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, truth)]))
                rows.append(
                    {
                        "vectors": n, "index": kind, "ef_search": ef, "build_s": round(build, 2),
                        **{k: round(v, 4) for k, v in percentiles(times).items()},
                        "recall@10": round(recall, 4), "index_mib": size, "peak_rss_mib": round(peak_rss_mib()),
                    }
                )
                print(rows[-1], flush=True)
            del index
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--ef-search", type=int, nargs="+", default=[64, HNSW_EF_SEARCH, 256, 512, 1024],
                        help=f"HNSW efSearch values to measure (qsearch uses {HNSW_EF_SEARCH})")
    args = parser.parse_args()
    rows = run(args.sizes, args.ef_search, queries=args.queries)
    print("\n| vectors | index | efSearch | build s | p50 ms | p99 ms | recall@10 | index MiB | peak RSS MiB |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['vectors']:,} | {r['index']} | {r['ef_search'] or ''} | {r['build_s']} | {r['p50_ms']:.3f} | {r['p99_ms']:.3f} | "
              f"{r['recall@10']:.3f} | {r['index_mib']} | {r['peak_rss_mib']} |")
    print(f"\nmachine: {machine()}")
    save("scale", {"machine": machine(), "rows": rows})
    plot(rows)


def plot(rows: list[dict]) -> None:
    """Log-log plot of single-query latency (p50) against corpus size, flat and HNSW."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from common import RESULTS

    fig, ax = plt.subplots(figsize=(6, 4.2))
    for kind, marker in (("flat", "o"), ("hnsw", "s")):
        pts = [r for r in rows if r["index"] == kind and r["ef_search"] in (None, HNSW_EF_SEARCH)]
        label = "flat (exact)" if kind == "flat" else f"hnsw, efSearch {HNSW_EF_SEARCH} (recall@10 at each point)"
        ax.plot([r["vectors"] for r in pts], [r["p50_ms"] for r in pts], marker=marker, label=label)
        if kind == "hnsw":
            for r in pts:
                ax.annotate(f"{r['recall@10']:.2f}", (r["vectors"], r["p50_ms"]), textcoords="offset points", xytext=(-8, -14))
    ax.set(xscale="log", yscale="log", xlabel="vectors in the index", ylabel="p50 latency per query (ms)",
           title="FAISS search latency, one query, one thread")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / "scale.png", dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
