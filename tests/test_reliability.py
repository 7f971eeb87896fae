"""Many processes on one index, damaged files, hostile text, and writes behind a key."""

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from conftest import RunningServer, as_unprivileged, free_port, readonly_copy, run_cli
from qsearch import Encoder, SearchEngine
from qsearch.errors import QsearchError
from qsearch.server import create_app


@pytest.fixture()
def index(tmp_path, corpus_questions) -> Path:
    SearchEngine.build(corpus_questions[:150], path=tmp_path / "idx").close()
    return tmp_path / "idx"


def test_a_running_server_sees_what_another_process_added(index):
    with RunningServer(index) as server:
        before = server.request("/health")[1]["questions"]
        question = "Which moon of Saturn has geysers of water ice?"
        run_cli("add", question, "--index", str(index))
        status, body = server.request("/search", {"query": question, "k": 1})
        assert status == 200 and body["matches"][0]["text"] == question
        assert server.request("/health")[1]["questions"] == before + 1


def test_two_engines_on_one_folder_each_find_the_others_adds(index):
    a, b = SearchEngine.open(index), SearchEngine.open(index)
    [ida] = a.add(["How deep is the Mariana Trench in metres?"])
    [idb] = b.add(["What is the oldest tree on Earth?"])
    assert b.search(["How deep is the Mariana Trench in metres?"], k=1)[0][0].id == ida
    assert a.search(["What is the oldest tree on Earth?"], k=1)[0][0].id == idb
    assert len(a) == len(b) == len(a.backend.store)


def test_an_open_engine_follows_a_rebuild_by_another_process(index, corpus_questions):
    engine = SearchEngine.open(index)
    SearchEngine.build(corpus_questions[200:230], path=index, keep_old=False).close()
    assert len(engine.search([corpus_questions[205]], k=1)[0]) == 1
    assert len(engine) == 30 and engine.search([corpus_questions[205]], k=1)[0][0].text == corpus_questions[205]


def test_a_read_only_index_answers_queries_and_refuses_adds_in_one_line(index, corpus_questions):
    copy = readonly_copy(index)
    try:
        env = {**os.environ, "HOME": "/tmp"}
        base = [sys.executable, "-m", "qsearch.cli"]
        query = subprocess.run(as_unprivileged(base + ["query", corpus_questions[4], "--index", str(copy), "-k", "1", "--json"]),
                               capture_output=True, text=True, env=env, timeout=120)
        assert query.returncode == 0, query.stderr
        assert json.loads(query.stdout)[0]["matches"][0]["text"] == corpus_questions[4]
        add = subprocess.run(as_unprivileged(base + ["add", "A brand new question?", "--index", str(copy)]),
                             capture_output=True, text=True, env=env, timeout=120)
        assert add.returncode == 1 and "read-only" in add.stderr and "Traceback" not in add.stderr
        assert len(add.stderr.strip().splitlines()) == 1
    finally:
        for path in [copy.parent, *copy.parent.rglob("*")]:
            path.chmod(0o755)
        shutil.rmtree(copy.parent)


def generation(index: Path) -> Path:
    return index / (index / "CURRENT").read_text().strip()


def test_the_store_syncs_every_commit_so_a_power_cut_keeps_acknowledged_adds(index):
    """SQLite in WAL mode at synchronous=NORMAL survives a killed process but may roll back its
    last commits on a power cut or an OS crash; FULL syncs the WAL before a commit returns."""
    engine = SearchEngine.open(index)
    try:
        assert engine.backend.store.conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    finally:
        engine.close()


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_a_damaged_store_is_one_line(index, damage):
    db = generation(index) / "questions.db"
    if damage == "truncate":
        with open(db, "r+b") as f:
            f.truncate(2000)
    else:
        db.write_bytes(b"this is not a database" * 100)
    result = run_cli("query", "How old are you?", "--index", str(index), check=False)
    assert result.returncode == 1 and "questions.db" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_deleted_store_is_reported_not_recreated_empty(index):
    db = generation(index) / "questions.db"
    db.unlink()
    result = run_cli("query", "How old are you?", "--index", str(index), check=False)
    assert result.returncode == 1 and "is missing" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not db.exists()


@pytest.mark.parametrize("damage", ["delete", "truncate"])
def test_a_lost_vector_file_is_rebuilt_from_the_store_keeping_added_questions(index, damage):
    added = "What is the loudest animal in the ocean?"
    run_cli("add", added, "--index", str(index))
    vectors = generation(index) / "vectors.faiss"
    if damage == "delete":
        vectors.unlink()
    else:
        with open(vectors, "r+b") as f:
            f.truncate(vectors.stat().st_size // 3)
    result = run_cli("query", added, "--index", str(index), "-k", "1", "--json")
    assert json.loads(result.stdout)[0]["matches"][0]["text"] == added
    assert "rebuilt it from the 151 questions" in result.stderr
    assert "build-index" not in result.stderr
    assert SearchEngine.open(index).search([added], k=1)[0][0].text == added


def test_repair_re_encodes_the_store(index):
    run_cli("add", "Why do bees dance?", "--index", str(index))
    out = run_cli("repair", "--index", str(index))
    assert "re-encoded 151 questions" in out.stdout
    assert SearchEngine.open(index).search(["Why do bees dance?"], k=1)[0][0].text == "Why do bees dance?"


def test_lone_surrogates_and_non_utf8_arguments_are_stored_as_replacement_characters(index):
    engine = SearchEngine.open(index)
    [i] = engine.add(["hi \ud800 there?"])
    assert engine.texts([i])[i] == "hi \ufffd there?"
    result = subprocess.run(
        [os.fsencode(sys.executable), b"-m", b"qsearch.cli", b"query", b"caf\xe9 au lait?", b"--index", os.fsencode(index)],
        capture_output=True, timeout=120,
    )
    assert result.returncode == 0 and b"Traceback" not in result.stderr
    assert "caf\ufffd au lait?" in result.stdout.decode()


def test_the_http_api_takes_a_lone_surrogate_without_a_5xx(index):
    client = TestClient(create_app(SearchEngine.open(index)))
    body = '{"query": "hi \\ud800 there?"}'
    r = client.post("/search", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 200 and r.json()["matches"]
    r = client.post("/add", content='{"questions": ["new \\udfff one?"]}', headers={"content-type": "application/json"})
    assert r.status_code == 200 and r.json()["results"][0]["query"] == "new \ufffd one?"


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_a_threshold_that_is_not_a_finite_number_is_refused(index, value):
    client = TestClient(create_app(SearchEngine.open(index)))
    r = client.post("/search", content=f'{{"query": "How old are you?", "threshold": {value}}}', headers={"content-type": "application/json"})
    assert r.status_code == 400 and "finite" in r.json()["error"]
    result = run_cli("query", "How old are you?", "--index", str(index), "--threshold", value.lower().replace("infinity", "inf"), check=False)
    assert result.returncode == 1 and "finite" in result.stderr
    with pytest.raises(QsearchError, match="finite"):
        SearchEngine.open(index).search(["How old are you?"], threshold=float(value.lower().replace("infinity", "inf")))


def test_unknown_numbers_keep_questions_apart():
    out = run_cli("compare", "How do I renew visa form 112?", "How do I renew visa form 436?")
    assert float(out.stdout.split()[1]) < 0.999


def test_adds_need_the_key_when_the_server_has_one(index):
    client = TestClient(create_app(SearchEngine.open(index), api_key="s3cret-key"))
    payload = {"questions": ["Is this protected?"]}
    assert client.post("/add", json=payload).status_code == 401
    assert client.post("/add", json=payload, headers={"authorization": "Bearer wrong"}).status_code == 401
    assert client.post("/add", json=payload, headers={"authorization": "Bearer s3cret-key"}).status_code == 200
    assert client.post("/add", json=payload, headers={"x-api-key": "s3cret-key"}).status_code == 200
    assert client.post("/search", json={"query": "Is this protected?"}).status_code == 200


def test_a_read_only_server_refuses_adds(index):
    client = TestClient(create_app(SearchEngine.open(index), read_only=True))
    assert client.post("/add", json={"questions": ["Nope?"]}).status_code == 403
    assert client.get("/health").json()["writable"] is False


def test_serving_beyond_loopback_without_a_key_is_refused(index):
    result = run_cli("serve", "--index", str(index), "--host", "0.0.0.0", "--port", str(free_port()), check=False)
    assert result.returncode == 1 and "--api-key" in result.stderr and "--read-only" in result.stderr


def test_the_key_is_required_over_real_http_and_never_logged(index):
    key = "k-" + "7" * 30
    with RunningServer(index, "--api-key", key) as server:
        assert server.request("/add", {"questions": ["Keyless?"]})[0] == 401
        status, body = server.request("/add", {"questions": ["Keyed?"]}, {"x-api-key": key})
        assert status == 200 and body["results"][0]["id"] > 0
        server.stop()
    assert key not in server.output


def test_dedup_against_an_index_prints_its_matches_and_whole_ids(index, corpus_questions, tmp_path):
    questions = tmp_path / "q.txt"
    questions.write_text("\n".join(corpus_questions[:3] + ["Something entirely unrelated to anything?"]))
    out = run_cli("dedup", str(questions), "--against", str(index))
    assert "3 of 4 rows have a duplicate in" in out.stdout and "->  #" in out.stdout
    csv = tmp_path / "out.csv"
    run_cli("dedup", str(questions), "--against", str(index), "--out", str(csv))
    ids = [line.split(",")[2] for line in csv.read_text().splitlines()[1:4]]
    assert all(i.isdigit() for i in ids), ids


def test_searching_threads_never_see_half_of_a_switch_to_a_rebuilt_index(index, tiny_model, corpus_questions):
    """One engine, four threads searching, while another engine rebuilds the folder with a
    model of another width and back: every search answers from one whole generation (a
    search that encoded with the old model and searched the new vectors used to fail)."""
    engine, errors, stop = SearchEngine.open(index), [], threading.Event()

    def searcher(offset: int) -> None:
        try:
            n = offset
            while not stop.is_set():
                assert engine.search([corpus_questions[n % 150]], k=1)[0]
                n += 1
        except Exception as e:  # collected, so the main thread can fail the test
            errors.append(repr(e))

    threads = [threading.Thread(target=searcher, args=(i * 37,)) for i in range(4)]
    for t in threads:
        t.start()
    models = [Encoder.load(tiny_model), Encoder.load()]
    for round_ in range(6):
        SearchEngine.build(corpus_questions[:150], encoder=models[round_ % 2], path=index).close()
        time.sleep(0.2)
    stop.set()
    for t in threads:
        t.join(timeout=60)
    assert errors == [] and engine.encoder.dim == models[1].dim and len(engine) == 150


def test_vectors_encoded_before_a_rebuild_with_another_model_of_the_same_width_are_refused(index, corpus_questions):
    """The upload path encodes first and searches after: if the engine followed a rebuild in
    between, the old model's vectors must not be searched among the new model's, even at the
    same width (a retrained model would pass a width check and answer nonsense)."""
    import pandas as pd

    from qsearch.dedup import dedup

    engine = SearchEngine.open(index)
    stale = engine.encoder
    SearchEngine.build(corpus_questions[:150], encoder=Encoder.load(), path=index).close()  # same model folder, a new generation
    engine.refresh()
    assert engine.encoder is not stale and engine.encoder.dim == stale.dim
    rows = pd.DataFrame({"question": corpus_questions[:3]})
    with pytest.raises(QsearchError, match="rebuilt with another model meanwhile"):
        dedup(rows, "question", stale, against=engine)
    assert dedup(rows, "question", engine.encoder, against=engine).rows["index_id"].notna().all()
