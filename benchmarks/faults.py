"""Faults on purpose, bounded and on loopback only; prints what was tried and what was lost.

    python benchmarks/faults.py              # about five minutes on 2 cores
    python benchmarks/faults.py --kills 20

Scenarios: writer processes adding while a server answers searches; kill -9 in the middle of
adds; kill -9 in the middle of removals; kill -9 in the middle of a rebuild; a deleted or
truncated vector file; then on Milvus Lite, kill -9 in the middle of adds and of rebuilds.
Rebuilds are killed at a random moment within the time one whole rebuild took. "Lost" counts questions whose add was acknowledged (the call returned)
but which a fresh open, or the running server, cannot find; for removals, acknowledged removals
that a fresh open still finds, and questions never removed that it cannot. It must be 0.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

from common import RESULTS, machine
from qsearch import SearchEngine
from qsearch.data import load_questions
from qsearch.paths import DEFAULT_CORPUS

ADDER = """
import sys
from qsearch import SearchEngine
engine = SearchEngine.open(sys.argv[1])
for n in range(int(sys.argv[3])):
    text = f"{sys.argv[2]} question number {n} about faults?"
    engine.add([text])
    print(text, flush=True)
engine.close()
"""

REMOVER = """
import sys
from qsearch import SearchEngine
engine = SearchEngine.open(sys.argv[1])
for line in sys.stdin:
    [i] = engine.remove([line.rstrip("\\n")])
    print(i, flush=True)
"""


def lost(index: Path, acknowledged: list[str]) -> int:
    """Acknowledged questions that a fresh open of the index does not find as their own top match."""
    engine = SearchEngine.open(index)
    ids = engine.ids_of(acknowledged)
    missing = [t for t in acknowledged if t not in ids]
    found = engine.search(acknowledged, k=1) if acknowledged else []
    unsearchable = [t for t, [m] in zip(acknowledged, found) if m.text != t]
    engine.close()
    return len(set(missing) | set(unsearchable))


def adders_beside_a_server(index: Path, writers: int, each: int) -> dict:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "qsearch.cli", "serve", "--index", str(index), "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while True:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=2)
            break
        except OSError:
            if time.time() > deadline:
                server.kill()
                raise SystemExit("server did not start") from None
            time.sleep(0.2)
    procs = [subprocess.Popen([sys.executable, "-c", ADDER, str(index), f"writer{w}", str(each)], stdout=subprocess.PIPE, text=True)
             for w in range(writers)]
    searches = errors = 0
    while any(p.poll() is None for p in procs) and time.time() < deadline + 120:
        request = urllib.request.Request(f"{url}/search", data=b'{"query": "question about faults?"}', headers={"content-type": "application/json"})
        try:
            urllib.request.urlopen(request, timeout=10).read()
        except OSError:
            errors += 1
        searches += 1
    acknowledged = [line.strip() for p in procs for line in p.communicate(timeout=120)[0].splitlines()]
    unseen = 0
    for text in acknowledged:  # the running server, not a fresh open, must find each one
        request = urllib.request.Request(f"{url}/search", data=json.dumps({"query": text, "k": 1}).encode(), headers={"content-type": "application/json"})
        unseen += json.loads(urllib.request.urlopen(request, timeout=10).read())["matches"][0]["text"] != text
    server.terminate()
    server.wait(timeout=30)
    return {"scenario": f"{writers} processes adding while a server answers", "tries": len(acknowledged),
            "acknowledged": len(acknowledged), "lost": lost(index, acknowledged), "not seen by the server": unseen,
            "server errors": errors, "searches": searches}


def kill_adds(index: Path, kills: int, rng: random.Random) -> dict:
    acknowledged: list[str] = []
    for k in range(kills):
        proc = subprocess.Popen([sys.executable, "-c", ADDER, str(index), f"killed{k}", "100000"], stdout=subprocess.PIPE, text=True)
        time.sleep(rng.uniform(1.5, 3.0))
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate()
        acknowledged += [line.strip() for line in out.splitlines() if line.endswith("?")]
    return {"scenario": "kill -9 during adds", "tries": kills, "acknowledged": len(acknowledged), "lost": lost(index, acknowledged)}


def kill_removals(index: Path, kills: int, rng: random.Random) -> dict:
    """Removers killed at a random moment: every acknowledged removal must stay removed, and
    every question not being removed must stay (the one in flight may go either way)."""
    engine = SearchEngine.open(index)
    questions = [t for _, t in engine.backend.store.all_rows() if "faults?" not in t]
    engine.close()
    acknowledged: list[str] = []
    in_flight: list[str] = []
    for _ in range(kills):
        left = [q for q in questions if q not in set(acknowledged) | set(in_flight)]
        proc = subprocess.Popen([sys.executable, "-c", REMOVER, str(index)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        proc.stdin.write("".join(q + "\n" for q in left[:1000]))
        proc.stdin.flush()
        first = proc.stdout.readline()  # removing has begun: the kill lands in the stream, not in start-up
        time.sleep(rng.uniform(0.05, 0.5))
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate()
        done = [line for line in (first + out).splitlines() if line.strip()]
        acknowledged += left[: len(done)]
        in_flight += left[len(done) : len(done) + 1]
    engine = SearchEngine.open(index)
    back = [q for q in acknowledged if q in engine.ids_of([q]) or engine.search([q], k=1)[0][0].text == q]
    kept = [q for q in questions if q not in set(acknowledged) | set(in_flight)]
    missing = [q for q in kept if q not in engine.ids_of(kept)]
    engine.close()
    return {"scenario": "kill -9 during removals (removed stay removed, the rest stay)", "tries": kills,
            "acknowledged": len(acknowledged), "lost": len(back) + len(missing)}


def kill_builds(index: Path, kills: int, questions: Path, rng: random.Random, acknowledged: list[str], backend: str = "faiss") -> dict:
    """Rebuilds killed at a random moment up to ``longest`` s in: the old index must stay whole."""
    command = [sys.executable, "-m", "qsearch.cli", "build-index", "--questions", str(questions), "--index", str(index), "--backend", backend]
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)  # one whole rebuild first: the kills spread over its length
    whole = time.perf_counter() - started
    for _ in range(kills):
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.1, 0.95) * whole)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    name = "a rebuild" if backend == "faiss" else "a Milvus Lite rebuild"
    return {"scenario": f"kill -9 during {name} (old index must stay whole)", "tries": kills,
            "acknowledged": len(acknowledged), "lost": lost(index, acknowledged), "rebuild_s": round(whole, 1)}


def milvus_rows(index: Path, corpus: list[str], questions: Path, kills: int, rng: random.Random) -> list[dict]:
    """Adds and rebuilds killed on a Milvus Lite index (one process at a time: no server beside them)."""
    SearchEngine.build(corpus, path=index, backend="milvus").close()
    adds = kill_adds(index, kills, rng)
    adds["scenario"] = "kill -9 during Milvus Lite adds"
    engine = SearchEngine.open(index)
    everything = [t for t in engine.backend.all_texts() if "faults?" in t]
    engine.close()
    return [adds, kill_builds(index, kills, questions, rng, everything, backend="milvus")]


def damaged_vectors(index: Path, acknowledged: list[str]) -> list[dict]:
    rows = []
    for damage in ("deleted", "truncated"):
        gen = index / (index / "CURRENT").read_text().strip()
        vectors = gen / "vectors.faiss"
        if damage == "deleted":
            vectors.unlink()
        else:
            with open(vectors, "r+b") as f:
                f.truncate(vectors.stat().st_size // 2)
        rows.append({"scenario": f"vector file {damage}", "tries": 1, "acknowledged": len(acknowledged), "lost": lost(index, acknowledged)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--writers", type=int, default=3)
    parser.add_argument("--each", type=int, default=40)
    parser.add_argument("--no-milvus", action="store_true", help="skip the Milvus Lite rows (they need pip install 'qsearch[milvus]')")
    args = parser.parse_args()
    rng = random.Random(0)
    corpus = load_questions(DEFAULT_CORPUS)[:2000]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        index = Path(tmp) / "idx"
        SearchEngine.build(corpus, path=index).close()
        rows.append(adders_beside_a_server(index, args.writers, args.each))
        rows.append(kill_adds(index, args.kills, rng))
        rows.append(kill_removals(index, max(3, args.kills // 2), rng))
        engine = SearchEngine.open(index)
        everything = [t for _, t in engine.backend.store.all_rows() if "faults?" in t]
        engine.close()
        big = Path(tmp) / "big.txt"
        big.write_text("\n".join(f"{q} variant {i}" for i in range(30) for q in corpus))
        rows.append(kill_builds(index, max(3, args.kills // 2), big, rng, everything))
        rows += damaged_vectors(index, everything)
        if not args.no_milvus:
            rows += milvus_rows(Path(tmp) / "milvus", corpus, big, max(3, args.kills // 2), rng)
    print("| scenario | tries | acknowledged writes | lost |")
    print("|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['scenario']} | {r['tries']} | {r['acknowledged']} | {r['lost']} |")
    extra = rows[0]
    print(f"\nserver during the writers: {extra['searches']} searches, {extra['server errors']} errors, "
          f"{extra['not seen by the server']} acknowledged adds it did not find")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "faults.json").write_text(json.dumps({"machine": machine(), "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
