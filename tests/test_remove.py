"""Removing questions: deleted from the forum or merged into another, gone from every process's results."""

import json
import sqlite3
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from conftest import RunningServer, metric, run_cli
from qsearch import SearchEngine
from qsearch.index import indexed_ids
from qsearch.server import create_app
from qsearch.store import Store


@pytest.fixture()
def index(tmp_path, corpus_questions) -> Path:
    SearchEngine.build(corpus_questions[:150], path=tmp_path / "idx").close()
    return tmp_path / "idx"


def texts_found(engine: SearchEngine, question: str, k: int = 10) -> list[str]:
    return [m.text for m in engine.search([question], k=k)[0]]


def test_two_engines_on_one_folder_each_stop_finding_the_others_removals(index, corpus_questions):
    a, b = SearchEngine.open(index), SearchEngine.open(index)
    try:
        assert corpus_questions[3] in texts_found(b, corpus_questions[3])
        a.remove([corpus_questions[3]])
        b.remove([corpus_questions[4]])
        assert corpus_questions[3] not in texts_found(b, corpus_questions[3])
        assert corpus_questions[4] not in texts_found(a, corpus_questions[4])
        assert len(a) == len(b) == len(a.backend.store)
    finally:
        a.close()
        b.close()


def test_a_running_server_stops_finding_what_the_cli_removed(index, corpus_questions):
    with RunningServer(index) as server:
        before = server.request("/health")[1]["questions"]
        out = run_cli("remove", corpus_questions[3], "--index", str(index))
        assert out.stdout.startswith("removed 1 question (id ") and out.stdout.rstrip().endswith(f"the index holds {before - 1}")
        status, body = server.request("/search", {"query": corpus_questions[3], "k": 10})
        assert status == 200 and corpus_questions[3] not in [m["text"] for m in body["matches"]]
        assert server.request("/health")[1]["questions"] == before - 1


def test_the_cli_names_what_was_not_stored_and_still_removes_the_rest(index, corpus_questions):
    out = run_cli("remove", corpus_questions[3], "Was this ever asked here?", "--index", str(index))
    assert out.stderr.strip() == "not in the index: Was this ever asked here?"
    assert out.stdout.startswith("removed 1 question")


def test_the_cli_removes_by_id_and_reports_in_json(index, corpus_questions):
    [i] = SearchEngine.open(index).ids_of([corpus_questions[3]]).values()
    out = json.loads(run_cli("remove", "--id", str(i), "--id", "999999", "--index", str(index), "--json").stdout)
    assert out["results"] == [
        {"question": corpus_questions[3], "id": i, "removed": True},
        {"question": None, "id": 999999, "removed": False},
    ]
    assert out["questions"] == len(set(corpus_questions[:150])) - 1


@pytest.mark.parametrize(
    "args, message",
    [([], "give at least one question"), (["--id", "0"], "an id is a whole number from 1"), (["--id", str(2**64)], "an id is a whole number from 1")],
)
def test_the_cli_refuses_a_removal_of_nothing_in_one_line(index, args, message):
    result = run_cli("remove", *args, "--index", str(index), check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr and message in result.stderr


def test_no_id_is_issued_twice_even_after_the_highest_is_removed(index):
    engine = SearchEngine.open(index)
    try:
        top = max(engine.backend.store.all_ids())
        engine.remove_ids([int(top)])
        [new] = engine.add(["Which moon of Neptune orbits backwards?"])
        assert new > top
    finally:
        engine.close()


@pytest.mark.parametrize("index_type", ["pq-refine", "hnsw"])
def test_approximate_indexes_hide_removed_questions_until_repair_drops_them(tmp_path, corpus_questions, index_type):
    engine = SearchEngine.build(corpus_questions[:150], path=tmp_path / "idx", index_type=index_type)
    [i] = engine.remove([corpus_questions[3]])
    assert corpus_questions[3] not in texts_found(engine, corpus_questions[3], k=150)
    assert len(engine) == len(set(corpus_questions[:150])) - 1
    assert i in indexed_ids(engine.backend.index)  # FAISS cannot delete from these types: hidden, not gone
    engine.close()
    SearchEngine.repair(tmp_path / "idx")
    repaired = SearchEngine.open(tmp_path / "idx")
    try:
        assert i not in indexed_ids(repaired.backend.index) and len(repaired) == len(set(corpus_questions[:150])) - 1
    finally:
        repaired.close()


def test_a_store_written_before_removal_reads_as_having_none_when_it_cannot_be_written(index):
    path = index / (index / "CURRENT").read_text().strip() / "questions.db"
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE removed")
    store = Store(path, read_only=True)
    try:
        assert store.removal_mark() == 0 and store.removed_after(0) == ([], 0) and store.removed_texts() == {}
        assert store.top_id() == store.max_id() == len(store)
    finally:
        store.close()
    Store(path).close()  # opened for writing, it gains the table
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM removed").fetchone() == (0,)


def test_removals_over_http_need_the_key_and_are_counted(index, corpus_questions):
    engine = SearchEngine.open(index)
    client = TestClient(create_app(engine, api_key="s3cret-key"))
    payload = {"questions": [corpus_questions[3], "Was this ever asked here?"]}
    assert client.post("/remove", json=payload).status_code == 401
    before = metric(client.get("/metrics").text, "qsearch_questions_removed_total")  # counters are per process, shared by tests
    body = client.post("/remove", json=payload, headers={"x-api-key": "s3cret-key"}).json()
    assert [r["removed"] for r in body["results"]] == [True, False] and body["questions"] == len(engine)
    assert metric(client.get("/metrics").text, "qsearch_questions_removed_total") == before + 1
    assert client.post("/remove", json={}, headers={"x-api-key": "s3cret-key"}).status_code == 422
    assert client.post("/remove", json={"ids": [2**64]}, headers={"x-api-key": "s3cret-key"}).status_code == 400
    engine.close()


def test_a_read_only_server_refuses_removals(index, corpus_questions):
    engine = SearchEngine.open(index)
    client = TestClient(create_app(engine, read_only=True))
    assert client.post("/remove", json={"questions": [corpus_questions[3]]}).status_code == 403
    assert corpus_questions[3] in texts_found(engine, corpus_questions[3], k=1)
    engine.close()


def test_build_index_says_it_left_out_the_removed_questions(tmp_path, corpus_questions):
    source = tmp_path / "questions.txt"
    source.write_text("\n".join(corpus_questions[:100]) + "\n")
    run_cli("build-index", "--questions", str(source), "--index", str(tmp_path / "idx"))
    run_cli("remove", corpus_questions[3], "--index", str(tmp_path / "idx"))
    again = run_cli("build-index", "--questions", str(source), "--index", str(tmp_path / "idx"))
    assert "left out 1 question removed from the index; --replace takes them in again" in again.stdout
    query = run_cli("query", corpus_questions[3], "-k", "3", "--index", str(tmp_path / "idx"), "--json")
    assert corpus_questions[3] not in [m["text"] for m in json.loads(query.stdout)[0]["matches"]]


def test_a_rebuild_keeps_every_question_under_its_id_and_numbers_new_ones_above_all(index, corpus_questions):
    engine = SearchEngine.open(index)
    engine.add(["Which moon of Neptune orbits backwards?"])
    engine.remove([corpus_questions[3]])
    before = {t: i for i, t in engine.backend.store.all_rows()}
    engine.close()
    extra = next(q for q in corpus_questions[150:] if q not in before and q != corpus_questions[3])
    rebuilt = SearchEngine.build(corpus_questions[:150] + [extra], path=index)
    try:
        after = {t: i for i, t in rebuilt.backend.store.all_rows()}
        assert {t: after[t] for t in before} == before and after[extra] == max(before.values()) + 1
    finally:
        rebuilt.close()


def test_an_approximate_index_hiding_many_removals_advises_a_repair(tmp_path):
    import pandas as pd

    from qsearch.paths import DEFAULT_CORPUS
    from qsearch.search import HIDDEN_REPAIR

    questions = list(dict.fromkeys(pd.read_csv(DEFAULT_CORPUS, keep_default_na=False)["question"].head(HIDDEN_REPAIR + 300)))
    SearchEngine.build(questions, path=tmp_path / "idx", index_type="pq-refine").close()
    (tmp_path / "gone.txt").write_text("\n".join(questions[:HIDDEN_REPAIR]) + "\n")
    out = run_cli("remove", "--file", str(tmp_path / "gone.txt"), "--index", str(tmp_path / "idx"))
    assert f"still holds {HIDDEN_REPAIR} removed questions" in out.stderr and "qsearch repair" in out.stderr
    engine = SearchEngine.open(tmp_path / "idx")
    assert engine.repair_advised() and TestClient(create_app(engine)).get("/health").json()["repair_advised"] is True
    engine.close()
    SearchEngine.repair(tmp_path / "idx")
    repaired = SearchEngine.open(tmp_path / "idx")
    try:
        assert repaired.hidden_removals() == 0 and not repaired.repair_advised() and len(repaired) == len(questions) - HIDDEN_REPAIR
    finally:
        repaired.close()
