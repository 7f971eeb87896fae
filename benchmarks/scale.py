"""How FAISS indexes scale: build time, memory, query latency, recall@10 against exact search.

Two vector sets, both up to 1M:

- ``gaussian`` (pessimistic): a Gaussian with the mean and 128x128 covariance of the bundled
  corpus's real embeddings, sampled and L2-normalised. It has none of the clusters real
  questions form, so approximate indexes find it hardest.
- ``realistic``: the bundled questions themselves, then copies of them with two random
  changes each (a word dropped, two swapped or a typo, and a word replaced by one from another
  question), all encoded by the bundled model. Queries are held-out test questions.

Indexes: flat (exact), pq-refine (k_factor 32) and HNSW at several efSearch values. Queries are
searched one at a time on one thread, as a user's query would be.

    python benchmarks/scale.py --sizes 10000 100000 1000000 --sets gaussian realistic
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import faiss
import numpy as np

from common import machine, peak_rss_mib, percentiles, save
from qsearch import Encoder
from qsearch.augment import augment
from qsearch.data import default_questions, load_pairs, split_pairs
from qsearch.index import HNSW_EF_SEARCH, new_index
from qsearch.paths import DEFAULT_PAIRS


def real_questions() -> list[str]:
    return list(dict.fromkeys(t.strip() for t in default_questions() if t.strip()))


def real_shape(encoder: Encoder) -> tuple[np.ndarray, np.ndarray]:
    """Mean and Cholesky factor of the covariance of the bundled corpus's real embeddings."""
    real = encoder.encode(real_questions())
    return real.mean(axis=0), np.linalg.cholesky(np.cov(real, rowvar=False) + 1e-6 * np.eye(real.shape[1]))


def realistic(n: int, encoder: Encoder, rng: np.random.Generator) -> np.ndarray:
    """``n`` vectors of real questions, then of changed copies of them (see the module's doc)."""
    real = real_questions()
    words = [w for q in real[:20000] for w in q.split()]
    texts = real[:n]
    while len(texts) < n:
        q = real[int(rng.integers(len(real)))]
        changed = augment(q, rng).split()
        if changed:
            changed[int(rng.integers(len(changed)))] = words[int(rng.integers(len(words)))]
        texts.append(" ".join(changed))
    out = np.empty((n, encoder.dim), dtype=np.float32)
    for s in range(0, n, 50_000):
        out[s : s + 50_000] = encoder.encode(texts[s : s + 50_000])
    return out


def sample(n: int, mean: np.ndarray, chol: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = np.empty((n, len(mean)), dtype=np.float32)
    for s in range(0, n, 100_000):
        z = rng.standard_normal((min(100_000, n - s), len(mean)))
        x = (mean + z @ chol.T).astype(np.float32)
        out[s : s + len(x)] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def run(
    sizes: list[int], ef_search: list[int], vector_set: str, queries: int = 500, seed: int = 0, milvus: bool = False,
    kinds: tuple[str, ...] = ("flat", "pq-refine", "hnsw"),
) -> list[dict]:
    rng = np.random.default_rng(seed)
    encoder = Encoder.load()
    if vector_set == "gaussian":
        mean, chol = real_shape(encoder)
        q = sample(queries, mean, chol, rng)
        everything = sample(max(sizes), mean, chol, rng)
    else:
        test = split_pairs(load_pairs(DEFAULT_PAIRS).frame)["test"]["question1"].tolist()
        q = encoder.encode(test[:queries])
        everything = realistic(max(sizes), encoder, rng)
    dim = everything.shape[1]
    rows = []
    for n in sorted(sizes):
        data = everything[:n]
        ids = np.arange(1, n + 1, dtype=np.int64)
        truth = None
        for kind in dict.fromkeys(("flat", *kinds)):  # flat first: it is the truth for recall
            faiss.omp_set_num_threads(os.cpu_count() or 1)
            start = time.perf_counter()
            index = new_index(dim, kind, train=data)
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
                        "set": vector_set, "vectors": n, "index": kind, "ef_search": ef, "build_s": round(build, 2),
                        **{k: round(v, 4) for k, v in percentiles(times).items()},
                        "recall@10": round(recall, 4), "index_mib": size, "peak_rss_mib": round(peak_rss_mib()),
                    }
                )
                print(rows[-1], flush=True)
            del index
        if milvus:
            rows += milvus_rows(vector_set, data, q[:100], truth[:100], ef_search)
    return rows


def milvus_rows(vector_set: str, data: np.ndarray, q: np.ndarray, truth: np.ndarray, ef_search: list[int]) -> list[dict]:
    """The same vectors in Milvus Lite (FLAT and HNSW M 32): insert, flush, then one query at a time."""
    import tempfile

    from pymilvus import DataType, MilvusClient

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        client = MilvusClient(uri=f"{tmp}/scale.db")
        for kind, params in (("FLAT", {}), ("HNSW", {"M": 32, "efConstruction": 80})):
            schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
            schema.add_field("id", DataType.INT64, is_primary=True)
            schema.add_field("vector", DataType.FLOAT_VECTOR, dim=data.shape[1])
            index_params = client.prepare_index_params()
            index_params.add_index(field_name="vector", index_type=kind, metric_type="IP", params=params)
            name = f"scale_{kind.lower()}"
            client.create_collection(name, schema=schema, index_params=index_params, consistency_level="Strong")
            start = time.perf_counter()
            for s in range(0, len(data), 5000):
                client.insert(name, [{"id": s + i + 1, "vector": v.tolist()} for i, v in enumerate(data[s : s + 5000])])
            client.flush(name)
            client.load_collection(name)
            build = time.perf_counter() - start
            for ef in ef_search if kind == "HNSW" else [None]:
                times, found = [], []
                for row in q:
                    t0 = time.perf_counter()
                    hits = client.search(name, data=[row.tolist()], limit=10, consistency_level="Strong",
                                         search_params={"metric_type": "IP", "params": {"ef": ef} if ef else {}})
                    times.append(time.perf_counter() - t0)
                    found.append([h["id"] for h in hits[0]])
                recall = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, truth)]))
                rows.append({
                    "set": vector_set, "vectors": len(data), "index": f"milvus-lite-{kind.lower()}", "ef_search": ef,
                    "build_s": round(build, 2), **{k: round(v, 4) for k, v in percentiles(times).items()},
                    "recall@10": round(recall, 4), "index_mib": None, "peak_rss_mib": round(peak_rss_mib()),
                })
                print(rows[-1], flush=True)
            try:  # the temporary folder goes anyway; at 1M Milvus Lite failed to drop its HNSW files
                client.drop_collection(name)
            except Exception as e:  # noqa: BLE001
                print(f"Milvus Lite could not drop {name}: {e}", flush=True)
        client.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--ef-search", type=int, nargs="+", default=[32, 64, HNSW_EF_SEARCH, 256, 512],
                        help=f"HNSW efSearch values to measure (qsearch's default without tuning: {HNSW_EF_SEARCH})")
    parser.add_argument("--sets", nargs="+", choices=["gaussian", "realistic"], default=["gaussian", "realistic"])
    parser.add_argument("--milvus", action="store_true", help="also Milvus Lite FLAT and HNSW (100 queries; slow at 1M)")
    parser.add_argument("--kinds", nargs="+", choices=["flat", "pq-refine", "hnsw"], default=["flat", "pq-refine", "hnsw"],
                        help="FAISS indexes to measure (flat always runs: it gives the exact top 10)")
    parser.add_argument("--name", default="scale", help="results/NAME.json and NAME.png")
    args = parser.parse_args()
    rows = [
        r for vector_set in args.sets
        for r in run(args.sizes, args.ef_search, vector_set, args.queries, milvus=args.milvus, kinds=tuple(args.kinds))
    ]
    print("\n| set | vectors | index | efSearch | build s | p50 ms | p99 ms | recall@10 | index MiB | peak RSS MiB |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['set']} | {r['vectors']:,} | {r['index']} | {r['ef_search'] or ''} | {r['build_s']} | {r['p50_ms']:.3f} | "
              f"{r['p99_ms']:.3f} | {r['recall@10']:.3f} | {r['index_mib'] or ''} | {r['peak_rss_mib']} |")
    print(f"\nmachine: {machine()}")
    save(args.name, {"machine": machine(), "rows": rows})
    plot(rows, args.name)


def plot(rows: list[dict], name: str = "scale") -> None:
    """Log-log plot of single-query latency (p50) against size: each index on each vector set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from common import RESULTS

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for vector_set, style in (("gaussian", "--"), ("realistic", "-")):
        for kind, marker in (("flat", "o"), ("pq-refine", "^"), ("hnsw", "s")):
            pts = [r for r in rows if r["set"] == vector_set and r["index"] == kind and r["ef_search"] in (None, HNSW_EF_SEARCH)]
            if not pts:
                continue
            label = f"{kind}{f', efSearch {HNSW_EF_SEARCH}' if kind == 'hnsw' else ''} ({vector_set})"
            ax.plot([r["vectors"] for r in pts], [r["p50_ms"] for r in pts], style, marker=marker, label=label)
            if kind != "flat":
                for r in pts:
                    ax.annotate(f"{r['recall@10']:.2f}", (r["vectors"], r["p50_ms"]), textcoords="offset points", xytext=(4, -10), fontsize=7)
    ax.set(xscale="log", yscale="log", xlabel="vectors in the index", ylabel="p50 latency per query (ms)",
           title="FAISS search, one query, one thread (labels: recall@10)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(RESULTS / f"{name}.png", dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
