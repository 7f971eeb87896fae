"""A real `qsearch serve` process: graceful shutdown under writes, and several workers on one index."""

import signal
import socket
import threading
import time
from pathlib import Path

import faiss
import pytest

from conftest import RunningServer, free_port, run_cli
from qsearch import SearchEngine
from qsearch.store import Store


@pytest.fixture()
def index(tmp_path, corpus_questions) -> Path:
    SearchEngine.build(corpus_questions[:150], path=tmp_path / "idx").close()
    return tmp_path / "idx"


def test_sigterm_during_a_stream_of_adds_loses_nothing_and_writes_the_checkpoint(index):
    acknowledged: dict[str, int] = {}
    stop = threading.Event()

    def writer(server: RunningServer) -> None:
        n = 0
        while not stop.is_set() and n < 2000:
            text = f"Graceful shutdown question number {n}?"
            try:
                status, body = server.request("/add", {"questions": [text]}, timeout=10)
            except OSError:
                return  # the server stopped listening
            if status == 200:
                acknowledged[text] = body["results"][0]["id"]
            n += 1

    with RunningServer(index) as server:
        thread = threading.Thread(target=writer, args=(server,))
        thread.start()
        deadline = time.time() + 30
        while len(acknowledged) < 20 and time.time() < deadline:
            time.sleep(0.05)
        server.proc.send_signal(signal.SIGTERM)
        code = server.stop()
        stop.set()
        thread.join(timeout=30)
    assert code in (0, -signal.SIGTERM), server.output
    assert len(acknowledged) >= 20
    store = Store(index / (index / "CURRENT").read_text().strip() / "questions.db", read_only=True)
    assert store.ids_of(list(acknowledged)) == acknowledged
    checkpoint = faiss.read_index(str(index / (index / "CURRENT").read_text().strip() / "vectors.faiss"))
    assert checkpoint.ntotal == len(store)


def test_two_workers_share_the_port_and_every_committed_question(index):
    with RunningServer(index, "--workers", "2") as server:
        added = [server.request("/add", {"questions": [f"Which worker stored question {n}?"]})[1] for n in range(6)]
        for n, body in enumerate(added):
            for _ in range(3):  # new connections land on either worker; each must find the question
                status, found = server.request("/search", {"query": f"Which worker stored question {n}?", "k": 1})
                assert status == 200 and found["matches"][0]["id"] == body["results"][0]["id"]
        status, text = server.request("/metrics")
        assert status == 200
        searches = [line for line in text.splitlines() if line.startswith('qsearch_requests_total{') and 'route="/search"' in line]
        assert sum(float(line.rsplit(" ", 1)[1]) for line in searches) == 18


def test_a_removal_through_one_worker_is_gone_from_every_worker(index, corpus_questions):
    with RunningServer(index, "--workers", "2") as server:
        for _ in range(6):  # new connections land on either worker: both count the question
            before = server.request("/health")[1]["questions"]
        status, body = server.request("/remove", {"questions": [corpus_questions[3]]})
        assert status == 200 and body["results"][0]["removed"] and body["questions"] == before - 1
        status, text = server.request("/metrics")  # the index's size as the worker that caught up last counts it
        assert f"qsearch_index_questions {float(before - 1)}" in text.splitlines()
        for _ in range(6):
            status, found = server.request("/search", {"query": corpus_questions[3], "k": 10})
            assert status == 200 and corpus_questions[3] not in [m["text"] for m in found["matches"]]
            assert server.request("/health")[1]["questions"] == before - 1


def test_a_taken_port_is_one_clear_line_before_anything_is_served(index):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("serve", "--index", str(index), "--port", str(port), check=False)
    assert result.returncode == 1 and result.stderr.strip().splitlines() == [
        f"error: cannot listen on 127.0.0.1:{port}: Address already in use; is another server there? pick another --port"
    ]


def test_a_missing_index_is_reported_without_announcing_a_server(tmp_path):
    result = run_cli("serve", "--index", str(tmp_path / "nothing"), "--port", str(free_port()), check=False)
    assert result.returncode == 1 and "serving" not in result.stderr and "no index at" in result.stderr
