import json
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from fastapi.testclient import TestClient

from qsearch import SearchEngine
from qsearch.server import MAX_BODY_BYTES, create_app


@pytest.fixture()
def engine(tmp_path, corpus_questions):
    return SearchEngine.build(corpus_questions[:200], path=tmp_path / "idx")


@pytest.fixture()
def client(engine):
    return TestClient(create_app(engine))


def test_health(client, engine):
    body = client.get("/health").json()
    assert body["status"] == "ok" and body["questions"] == len(engine) and body["model"]


def test_search_one_query(client, corpus_questions):
    body = client.post("/search", json={"query": corpus_questions[5], "k": 3, "threshold": None}).json()
    assert len(body["matches"]) == 3
    assert body["matches"][0]["text"] == corpus_questions[5] and body["matches"][0]["duplicate"] is True
    assert set(body["matches"][0]) == {"id", "text", "score", "duplicate"}


def test_search_several_queries(client):
    body = client.post("/search", json={"queries": ["How old are you?", "What is love?"], "k": 2}).json()
    assert [r["query"] for r in body["results"]] == ["How old are you?", "What is love?"]


def test_add_reports_duplicates_then_is_searchable(client, engine):
    new = "Which moon of Jupiter has the thickest ice shell?"
    body = client.post("/add", json={"questions": [new]}).json()
    [result] = body["results"]
    assert isinstance(result["id"], int) and all(m["text"] != new for m in result["matches"])
    found = client.post("/search", json={"query": new, "k": 1}).json()["matches"][0]
    assert found["id"] == result["id"] and found["text"] == new


@pytest.mark.parametrize(
    "path, payload",
    [
        ("/search", {}),
        ("/search", {"query": ""}),
        ("/search", {"query": "   "}),
        ("/search", {"query": "hi", "k": 0}),
        ("/search", {"query": "hi", "k": "5"}),
        ("/search", {"query": 42}),
        ("/search", {"query": "a", "queries": ["b"]}),
        ("/search", {"queries": []}),
        ("/search", {"queries": ["q"] * 101}),
        ("/search", {"query": "hi", "unexpected": 1}),
        ("/add", {"questions": []}),
        ("/add", {"questions": [""]}),
        ("/add", {"questions": "not a list"}),
    ],
)
def test_bad_requests_get_a_4xx_json_error(client, path, payload):
    response = client.post(path, json=payload)
    assert 400 <= response.status_code < 500
    assert isinstance(response.json()["error"], str)


def test_malformed_json_is_a_4xx(client):
    response = client.post("/search", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 422 and "error" in response.json()


def test_oversized_body_is_refused(client):
    response = client.post("/search", content=b"x" * (MAX_BODY_BYTES + 1), headers={"content-type": "application/json"})
    assert response.status_code == 413 and "error" in response.json()


def test_real_uvicorn_serves_on_loopback(engine, tmp_path):
    engine.close()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "qsearch.cli", "serve", "--index", str(tmp_path / "idx"), "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.time() + 60
        while True:
            try:
                health = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).read())
                break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    raise AssertionError(f"server did not start: {proc.stderr.read() if proc.poll() is not None else ''}") from None
                time.sleep(0.2)
        assert health["status"] == "ok" and health["questions"] == 200
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/search", data=json.dumps({"query": "How old are you?"}).encode(),
            headers={"content-type": "application/json"},
        )
        assert len(json.loads(urllib.request.urlopen(request, timeout=5).read())["matches"]) == 5
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_oversized_chunked_body_without_length_is_refused(client):
    def chunks():
        for _ in range(MAX_BODY_BYTES // 10_000 + 2):
            yield b"x" * 10_000

    response = client.post("/search", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413 and "error" in response.json()


def test_unknown_paths_and_methods_get_json_errors(client):
    assert client.get("/nope").json() == {"error": "Not Found"}
    assert client.get("/search").status_code == 405 and "error" in client.get("/search").json()
