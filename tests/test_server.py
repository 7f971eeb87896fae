import json

import pytest
from fastapi.testclient import TestClient

from qsearch import SearchEngine
from qsearch.server import MAX_BODY_BYTES, create_app
from conftest import RunningServer, metric, project_version


@pytest.fixture()
def engine(tmp_path, corpus_questions):
    return SearchEngine.build(corpus_questions[:200], path=tmp_path / "idx")


@pytest.fixture()
def client(engine):
    return TestClient(create_app(engine))


def test_health(client, engine):
    body = client.get("/health").json()
    assert body["status"] == "ok" and body["questions"] == len(engine) and body["model"]
    assert body["version"] == project_version()
    assert body["hubness_measured_for"] == len(engine) and body["repair_advised"] is False


def test_search_one_query(client, corpus_questions):
    body = client.post("/search", json={"query": corpus_questions[5], "k": 3, "threshold": None}).json()
    assert len(body["matches"]) == 3
    assert body["matches"][0]["text"] == corpus_questions[5] and body["matches"][0]["duplicate"] is True
    assert set(body["matches"][0]) == {"id", "text", "score", "duplicate"}


def test_search_and_add_say_which_words_the_model_read_as_others(client):
    one = client.post("/search", json={"query": "How do I lern pyhton?", "k": 1}).json()
    assert one["read_as"] == {"lern": "learn", "pyhton": "python"}
    assert "read_as" not in client.post("/search", json={"query": "How do I learn Python?", "k": 1}).json()
    several = client.post("/search", json={"queries": ["Whta is love?", "What is love?"], "k": 1}).json()["results"]
    assert several[0]["read_as"] == {"whta": "what"} and "read_as" not in several[1]
    added = client.post("/add", json={"questions": ["Which moon of Jupitr has the thickest ice?"]}).json()["results"]
    assert added[0]["read_as"] == {"jupitr": "jupiter"}


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


def test_malformed_json_is_a_4xx_that_says_so(client):
    response = client.post("/search", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 422 and response.json()["error"].startswith("the body is not valid JSON")


def test_oversized_body_is_refused(client):
    response = client.post("/search", content=b"x" * (MAX_BODY_BYTES + 1), headers={"content-type": "application/json"})
    assert response.status_code == 413 and "error" in response.json()


def test_real_uvicorn_serves_on_loopback(engine, tmp_path):
    engine.close()
    with RunningServer(tmp_path / "idx") as server:
        status, health = server.request("/health")
        assert status == 200 and health["status"] == "ok" and health["questions"] == 200
        status, body = server.request("/search", {"query": "How old are you?"})
        assert status == 200 and len(body["matches"]) == 5


def test_oversized_chunked_body_without_length_is_refused(client):
    def chunks():
        for _ in range(MAX_BODY_BYTES // 10_000 + 2):
            yield b"x" * 10_000

    response = client.post("/search", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413 and "error" in response.json()


def test_unknown_paths_and_methods_get_json_errors(client):
    assert client.get("/nope").json() == {"error": "Not Found"}
    wrong_method = client.get("/search")
    assert wrong_method.status_code == 405
    assert wrong_method.json() == {"error": "GET /search is not allowed; send POST /search with a JSON body (the API is described at /docs)"}
    assert wrong_method.headers["allow"] == "POST"
    assert client.post("/health").json() == {"error": "POST /health is not allowed; send GET /health"}


def test_add_says_whether_the_question_was_new(client):
    question = "Which moon of Neptune orbits backwards?"
    first = client.post("/add", json={"questions": [question]}).json()["results"][0]
    again = client.post("/add", json={"questions": [question]}).json()["results"][0]
    assert first["added"] is True and again["added"] is False and again["id"] == first["id"]


def test_the_page_and_its_assets_are_served_without_any_outside_address(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<label for="ask">' in page.text
    for asset in ("/static/app.js", "/static/style.css"):
        response = client.get(asset)
        assert response.status_code == 200
        assert "http://" not in response.text and "https://" not in response.text
    assert "http://" not in page.text and "https://" not in page.text


def test_dedup_clusters_a_pasted_list_and_names_index_matches(client, corpus_questions):
    questions = ["How do I learn Python?", "How can I learn Python?", "What is the capital of Peru?", corpus_questions[7]]
    body = client.post("/dedup", json={"questions": questions}).json()
    assert body["questions"] == 4
    assert [[q["question"] for q in c] for c in body["clusters"]] == [questions[:2]]
    assert body["rows"][3]["index_text"] == corpus_questions[7] and isinstance(body["rows"][3]["index_id"], int)
    assert body["rows"][2]["index_id"] is None


def test_dedup_reads_an_uploaded_csv_with_its_question_column(client):
    file = 'id,question\n1,"How do I learn Python?"\n2,"How can I learn Python, quickly?"\n3,What is love?\n'
    body = client.post("/dedup", json={"file": file, "name": "forum.csv"}).json()
    assert [r["question"] for r in body["rows"]] == ["How do I learn Python?", "How can I learn Python, quickly?", "What is love?"]


@pytest.mark.parametrize(
    "payload, message",
    [
        ({"questions": ["Why?"] * 5001}, "at most 5000"),
        ({"file": "a\nb\n", "name": "questions.xlsx"}, ".csv, .tsv or .txt"),
        ({"file": "text,other\nHi?,1\n", "name": "q.csv"}, "no column 'question'"),
        ({"questions": []}, "no questions"),
    ],
)
def test_dedup_refuses_what_it_cannot_cluster_in_one_line(client, payload, message):
    response = client.post("/dedup", json=payload)
    assert response.status_code == 400 and message in response.json()["error"]


def test_metrics_count_requests_by_route_and_status_and_report_the_index(client, engine):
    before = client.get("/metrics").text
    client.post("/search", json={"query": "How old are you?"})
    client.post("/search", json={"query": ""})
    client.post("/add", json={"questions": ["A question only the metrics test asks?"]})
    after = client.get("/metrics").text
    for route, status in (("/search", "200"), ("/search", "400"), ("/add", "200")):
        labels = {"route": route, "method": "POST", "status": status}
        assert metric(after, "qsearch_requests_total", **labels) == metric(before, "qsearch_requests_total", **labels) + 1
    assert metric(after, "qsearch_request_seconds_count", route="/search") >= 2
    assert metric(after, "qsearch_questions_added_total") == metric(before, "qsearch_questions_added_total") + 1
    assert metric(after, "qsearch_index_questions") == len(engine)
    assert metric(after, "qsearch_build_info", version=project_version()) == 1


def test_access_log_has_one_line_per_request_without_questions_unless_asked(engine, caplog):
    question = "A private question about my health?"
    with caplog.at_level("INFO", logger="qsearch.access"):
        TestClient(create_app(engine)).post("/search", json={"query": question})
        TestClient(create_app(engine, log_questions=True)).post("/search", json={"query": question})
    quiet, told = (json.loads(r.getMessage()) for r in caplog.records if r.name == "qsearch.access")
    assert quiet["path"] == "/search" and quiet["status"] == 200 and quiet["ms"] > 0
    assert question not in json.dumps(quiet) and told["questions"] == [question]
