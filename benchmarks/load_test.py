"""Bounded HTTP load test of ``qsearch serve`` on loopback.

Copies the default index to a temporary folder (adds must not touch yours), starts the real
server on a free 127.0.0.1 port, then runs a fixed number of requests from 1 and from 4
concurrent keep-alive clients: search only, and a 95% search / 5% add mix. Then the search
page's own pattern: concurrent typists, each typing real test questions key by key (60-220 ms
between keys, sometimes a 300-900 ms pause after a word); as on the page, a search of what is
typed so far is sent once the keys stop for 250 ms (the debounce). Stops by itself.

    python benchmarks/load_test.py --requests 2000 --typists 20 --questions-per-typist 8
    python benchmarks/load_test.py --workers 2        # the same against serve --workers 2
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


def run_threads(threads: list[threading.Thread]) -> float:
    """Start the client threads together, wait for all; the seconds they took."""
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - start


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
    elapsed = run_threads([threading.Thread(target=client, args=(port, s, times, errors)) for s in share])
    return {"requests": requests, "clients": clients, "add_share": add_share, "errors": len(errors),
            "throughput_rps": requests / elapsed, **percentiles(times)}


DEBOUNCE_S = 0.25


def keystroke_searches(question: str, rng: random.Random) -> list[tuple[float, str]]:
    """(seconds after the first key, text so far) of each search the page sends while typing."""
    t, out = 0.0, []
    for n, char in enumerate(question):
        gap = rng.uniform(0.06, 0.22)
        if char == " " and rng.random() < 0.35:
            gap += rng.uniform(0.3, 0.9)
        if gap > DEBOUNCE_S or n == len(question) - 1:
            out.append((t + DEBOUNCE_S, question[: n + 1]))
        t += gap
    return out


def typist(port: int, questions: list[str], seed: int, times: list[float], errors: list[int]) -> None:
    """One person typing ``questions`` one after another on the page, over one keep-alive connection."""
    rng = random.Random(seed)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for question in questions:
        start = time.perf_counter()
        for at, text in keystroke_searches(question.strip(), rng):
            time.sleep(max(0.0, start + at - time.perf_counter()))
            t0 = time.perf_counter()
            body = json.dumps({"query": text, "k": 5}).encode()
            try:
                conn.request("POST", "/search", body=body, headers={"content-type": "application/json"})
                response = conn.getresponse()
            except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
                # the server closed the idle keep-alive connection (5 s); a browser reconnects, so do we
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                conn.request("POST", "/search", body=body, headers={"content-type": "application/json"})
                response = conn.getresponse()
            response.read()
            times.append(time.perf_counter() - t0)
            if response.status != 200:
                errors.append(response.status)
        time.sleep(rng.uniform(1.0, 2.0))  # reads the results, starts the next question
    conn.close()


def run_typists(port: int, questions: list[str], typists: int, per_typist: int, seed: int) -> dict:
    rng = random.Random(seed)
    times: list[float] = []
    errors: list[int] = []
    elapsed = run_threads([
        threading.Thread(target=typist, args=(port, rng.sample(questions, per_typist), seed + n, times, errors))
        for n in range(typists)
    ])
    return {"typists": typists, "questions_per_typist": per_typist, "requests": len(times), "errors": len(errors),
            "seconds": elapsed, "throughput_rps": len(times) / elapsed, **percentiles(times)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--index", type=Path, default=DEFAULT_INDEX)
    parser.add_argument("--typists", type=int, default=20)
    parser.add_argument("--questions-per-typist", type=int, default=8)
    parser.add_argument("--workers", type=int, default=1, help="serve --workers")
    args = parser.parse_args()
    questions = split_pairs(load_pairs(DEFAULT_PAIRS).frame)["test"]["question1"].tolist()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        index = Path(tmp) / "index"
        shutil.copytree(args.index, index)
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "qsearch.cli", "serve", "--index", str(index), "--port", str(port),
             "--workers", str(args.workers), "--no-access-log"],
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
            typing = run_typists(port, questions, args.typists, args.questions_per_typist, 99)
            print(typing, flush=True)
        finally:
            server.terminate()
            server.wait(timeout=60)
    print("\n| clients | mix | requests | throughput (req/s) | p50 ms | p99 ms | errors |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    for r in rows:
        mix = "search only" if r["add_share"] == 0 else "95% search / 5% add"
        print(f"| {r['clients']} | {mix} | {r['requests']} | {r['throughput_rps']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['errors']} |")
    print("\n| typists | questions each | searches | req/s | p50 ms | p99 ms | errors |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| {typing['typists']} | {typing['questions_per_typist']} | {typing['requests']} | {typing['throughput_rps']:.0f} | "
          f"{typing['p50_ms']:.2f} | {typing['p99_ms']:.2f} | {typing['errors']} |")
    print(f"\nmachine: {machine()}; serve --workers {args.workers}")
    name = "load_test" if args.workers == 1 else f"load_test_workers{args.workers}"
    save(name, {"machine": machine(), "workers": args.workers, "rows": rows, "typists": typing})


if __name__ == "__main__":
    main()
