"""Bounded HTTP load test of ``qsearch serve`` on loopback.

Copies the default index to a temporary folder (adds must not touch yours), starts the real
server on a free 127.0.0.1 port, then runs a fixed number of requests from 1 and from 4
concurrent keep-alive clients: search only, and a 95% search / 5% add mix. Stops by itself.

    python benchmarks/load_test.py --requests 2000
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import machine, percentiles, save
from qsearch.data import load_pairs, split_pairs
from qsearch.paths import DEFAULT_INDEX, DEFAULT_PAIRS


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def client(port: int, jobs: list[tuple[str, dict]], times: list[float], errors: list[int]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for path, body in jobs:
        data = json.dumps(body).encode()
        t0 = time.perf_counter()
        conn.request("POST", path, body=data, headers={"content-type": "application/json"})
        response = conn.getresponse()
        response.read()
        times.append(time.perf_counter() - t0)
        if response.status != 200:
            errors.append(response.status)
    conn.close()


def run(port: int, questions: list[str], requests: int, clients: int, add_share: float, seed: int) -> dict:
    rng = random.Random(seed)
    jobs = []
    for n in range(requests):
        if rng.random() < add_share:
            jobs.append(("/add", {"questions": [f"{rng.choice(questions)} (load test {seed}-{n})"]}))
        else:
            jobs.append(("/search", {"query": rng.choice(questions), "k": 5}))
    share = [jobs[i::clients] for i in range(clients)]
    times: list[float] = []
    errors: list[int] = []
    threads = [threading.Thread(target=client, args=(port, s, times, errors)) for s in share]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    return {"requests": requests, "clients": clients, "add_share": add_share, "errors": len(errors),
            "throughput_rps": requests / elapsed, **percentiles(times)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--index", type=Path, default=DEFAULT_INDEX)
    args = parser.parse_args()
    questions = split_pairs(load_pairs(DEFAULT_PAIRS).frame)["test"]["question1"].tolist()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        index = Path(tmp) / "index"
        shutil.copytree(args.index, index)
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "qsearch.cli", "serve", "--index", str(index), "--port", str(port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        try:
            deadline = time.time() + 120
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.time() > deadline or server.poll() is not None:
                        raise SystemExit(f"server did not start: {server.stderr.read().decode() if server.poll() is not None else ''}") from None
                    time.sleep(0.2)
            run(port, questions, 100, 1, 0.0, 0)  # warm-up
            for clients in (1, 4):
                for add_share in (0.0, 0.05):
                    r = run(port, questions, args.requests, clients, add_share, len(rows) + 1)
                    rows.append(r)
                    print(r, flush=True)
        finally:
            server.terminate()
            server.wait(timeout=60)
    print("\n| clients | mix | requests | throughput (req/s) | p50 ms | p99 ms | errors |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    for r in rows:
        mix = "search only" if r["add_share"] == 0 else "95% search / 5% add"
        print(f"| {r['clients']} | {mix} | {r['requests']} | {r['throughput_rps']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['errors']} |")
    print(f"\nmachine: {machine()}")
    save("load_test", {"machine": machine(), "rows": rows})


if __name__ == "__main__":
    main()
