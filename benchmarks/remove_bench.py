"""What removing questions costs on the bundled corpus: removals per second on a flat index, the
first search of another process after them, and searches on pq-refine and HNSW while they hide
removed questions (FAISS cannot delete from those types until ``qsearch repair``).

    python benchmarks/remove_bench.py        # about two minutes on 2 cores

FAISS and torch on one thread, questions one at a time; each index is built afresh in a
temporary folder. Prints a table and writes results/remove_bench.json.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import machine, save
from qsearch import SearchEngine
from qsearch.data import default_questions

HIDDEN = (0, 100, 1000, 5000)
SEARCHES = 200


def search_ms(engine: SearchEngine, queries: list[str]) -> float:
    """Mean milliseconds of one search (k 5) over ``queries``, after one to warm up."""
    engine.search(queries[:1], k=5)
    started = time.perf_counter()
    for q in queries:
        engine.search([q], k=5)
    return (time.perf_counter() - started) / len(queries) * 1000


def flat(questions: list[str], folder: Path) -> dict:
    """Removals one at a time and in one batch, and another process's catching up."""
    engine = SearchEngine.build(questions, path=folder / "flat")
    other = SearchEngine.open(folder / "flat")  # a second engine: what a server beside the remover sees
    ids = [i for i, _ in engine.backend.store.all_rows()]
    started = time.perf_counter()
    for i in ids[:100]:
        engine.remove_ids([i])
    one = (time.perf_counter() - started) / 100 * 1000
    started = time.perf_counter()
    engine.remove_ids(ids[100:1100])
    batch = (time.perf_counter() - started) * 1000
    started = time.perf_counter()
    other.search(questions[-1:], k=5)
    catch_up = (time.perf_counter() - started) * 1000
    queries = questions[-SEARCHES:]
    row = {"questions": len(other) + 1100, "remove_one_ms": one, "remove_1000_at_once_ms": batch, "other_first_search_after_1100_ms": catch_up,
           "search_ms": search_ms(other, queries)}
    engine.close()
    other.close()
    return row


def hidden(questions: list[str], folder: Path, index_type: str) -> dict:
    """Search time as the hidden removals grow."""
    engine = SearchEngine.build(questions, path=folder / index_type, index_type=index_type)
    ids = [i for i, _ in engine.backend.store.all_rows()]
    queries = questions[-SEARCHES:]
    row, done = {}, 0
    for n in HIDDEN:
        engine.remove_ids(ids[done:n])
        done = n
        row[f"search_ms_{n}_hidden"] = search_ms(engine, queries)
    engine.close()
    return row


def main() -> None:
    questions = default_questions()
    with tempfile.TemporaryDirectory() as tmp:
        results = {"machine": machine(), "flat": flat(questions, Path(tmp))}
        for index_type in ("pq-refine", "hnsw"):
            results[index_type] = hidden(questions, Path(tmp), index_type)
    f = results["flat"]
    print(f"{results['machine']}; {f['questions']} questions")
    print(f"flat: {f['remove_one_ms']:.1f} ms a removal one at a time, {f['remove_1000_at_once_ms']:.1f} ms for 1,000 at once; "
          f"another process's first search after them {f['other_first_search_after_1100_ms']:.1f} ms, then {f['search_ms']:.2f} ms")
    print("| index | " + " | ".join(f"search ms, {n} hidden" for n in HIDDEN) + " |")
    print("|---|" + "---:|" * len(HIDDEN))
    for index_type in ("pq-refine", "hnsw"):
        print(f"| {index_type} | " + " | ".join(f"{results[index_type][f'search_ms_{n}_hidden']:.2f}" for n in HIDDEN) + " |")
    print("wrote", save("remove_bench", results))


if __name__ == "__main__":
    main()
