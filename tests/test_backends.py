"""One contract for both backends: FAISS + SQLite (embedded) and Milvus (Milvus Lite here, no server)."""

import csv
import io
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import free_port, run_cli
from qsearch import Encoder, SearchEngine
from qsearch.errors import QsearchError

ODD = ['Is "C++" \\ or \'Rust\' better? 🦀', "Ünïcödé: ¿qué es \ufffd?", "Tabs\tand\\nescapes?"]


def build(backend: str, questions: list[str], path: Path, **kwargs) -> SearchEngine:
    if backend == "milvus":
        pytest.importorskip("pymilvus", reason="the Milvus backend needs pip install 'qsearch[milvus]'")
        pytest.importorskip("milvus_lite", reason="the Milvus backend needs pip install 'qsearch[milvus]'")
    return SearchEngine.build(questions, path=path, backend=backend, **kwargs)


@pytest.fixture(params=["faiss", "milvus"])
def backend(request) -> str:
    return request.param


@pytest.fixture()
def engine(backend, tmp_path, corpus_questions):
    engine = build(backend, corpus_questions[:150], tmp_path / "idx")
    yield engine
    engine.close()


def test_a_stored_question_is_its_own_nearest_neighbour(engine, corpus_questions):
    assert len(engine) == len(set(corpus_questions[:150]))
    [[best, *_]] = engine.search([corpus_questions[9]], k=3)
    assert best.text == corpus_questions[9] and best.score > 0.999 and best.duplicate


def test_results_are_scored_by_their_verdicts_from_the_stored_vectors(engine, corpus_questions):
    question = "How can I learn to cook Indian food at home?"
    [matches] = engine.search([question], k=5)
    texts = [m.text for m in matches]
    vectors = engine.encoder.pair_vectors([question] + texts)
    verdicts = engine.encoder.verdicts([question] * len(texts), texts, vectors[1:] @ vectors[0])
    assert np.allclose([m.score for m in matches], verdicts, atol=1e-4)


def test_add_is_searchable_and_an_exact_repeat_keeps_its_id(engine):
    before = len(engine)
    question = "Which moon of Jupiter has the thickest ice shell?"
    ids, matches, added = engine.search_and_add([question, question], k=2)
    assert ids[0] == ids[1] and added == [True, False] and len(matches[0]) == 2
    assert len(engine) == before + 1
    assert engine.search([question], k=1)[0][0].id == ids[0]
    assert engine.search_and_add([question], k=1)[0] == [ids[0]] and len(engine) == before + 1


def test_odd_characters_are_stored_and_found_exactly(engine):
    ids = engine.add(ODD)
    assert engine.texts(ids) == dict(zip(ids, ODD))
    assert engine.ids_of(ODD) == dict(zip(ODD, ids))
    assert [engine.search([q], k=1)[0][0].text for q in ODD] == ODD


def test_adds_survive_closing_and_reopening(engine, tmp_path):
    [i] = engine.add(["How deep is the Mariana Trench in metres?"])
    count = len(engine)
    engine.close()
    again = SearchEngine.open(tmp_path / "idx")
    try:
        assert len(again) == count and again.texts([i]) == {i: "How deep is the Mariana Trench in metres?"}
    finally:
        again.close()


def test_a_rebuild_keeps_the_questions_added_since_the_build(engine, backend, tmp_path, corpus_questions):
    question = "How deep is the Mariana Trench in metres?"
    engine.add([question])
    engine.close()
    rebuilt = build(backend, corpus_questions[:150], tmp_path / "idx")
    try:
        assert len(rebuilt) == len(set(corpus_questions[:150])) + 1 and rebuilt.manifest["kept_from_previous"] == 1
        assert rebuilt.search([question], k=1)[0][0].text == question
    finally:
        rebuilt.close()


def test_a_rebuild_told_not_to_keep_them_holds_only_its_own_questions(engine, backend, tmp_path, corpus_questions):
    engine.add(["How deep is the Mariana Trench in metres?"])
    engine.close()
    rebuilt = build(backend, corpus_questions[:150], tmp_path / "idx", keep_old=False)
    try:
        assert len(rebuilt) == len(set(corpus_questions[:150])) and rebuilt.manifest["kept_from_previous"] == 0
    finally:
        rebuilt.close()


def test_a_removed_question_is_found_no_more_and_the_count_falls(engine, corpus_questions):
    before, question = len(engine), corpus_questions[9]
    [i] = engine.remove([question])
    assert i is not None and len(engine) == before - 1
    assert question not in [m.text for m in engine.search([question], k=10)[0]]
    assert engine.ids_of([question]) == {} and engine.texts([i]) == {}


def test_removing_what_is_not_stored_removes_nothing_and_says_so(engine):
    before = len(engine)
    assert engine.remove(["Was this question ever asked here?"]) == [None]
    assert engine.remove_ids([2**40]) == {} and len(engine) == before


def test_a_removal_survives_closing_and_reopening(engine, backend, tmp_path, corpus_questions):
    engine.remove([corpus_questions[9]])
    count = len(engine)
    engine.close()
    again = SearchEngine.open(tmp_path / "idx")
    try:
        assert len(again) == count and corpus_questions[9] not in [m.text for m in again.search([corpus_questions[9]], k=10)[0]]
    finally:
        again.close()


def test_a_removed_question_added_again_is_found_again(engine, corpus_questions):
    before, question = len(engine), corpus_questions[9]
    engine.remove([question])
    ids, _, added = engine.search_and_add([question], k=1)
    assert added == [True] and len(engine) == before
    assert engine.search([question], k=1)[0][0].id == ids[0]


def test_a_rebuild_from_the_same_questions_leaves_the_removed_ones_out(engine, backend, tmp_path, corpus_questions):
    engine.remove([corpus_questions[9]])
    engine.close()
    rebuilt = build(backend, corpus_questions[:150], tmp_path / "idx")
    try:
        assert rebuilt.manifest["left_out_removed"] == 1 and len(rebuilt) == len(set(corpus_questions[:150])) - 1
        assert corpus_questions[9] not in [m.text for m in rebuilt.search([corpus_questions[9]], k=10)[0]]
    finally:
        rebuilt.close()
    again = build(backend, corpus_questions[:150], tmp_path / "idx")  # the record of the removal goes on to the next build
    try:
        assert again.manifest["left_out_removed"] == 1
    finally:
        again.close()


def test_a_rebuild_told_not_to_keep_them_brings_removed_questions_back(engine, backend, tmp_path, corpus_questions):
    engine.remove([corpus_questions[9]])
    engine.close()
    rebuilt = build(backend, corpus_questions[:150], tmp_path / "idx", keep_old=False)
    try:
        assert rebuilt.manifest["left_out_removed"] == 0 and rebuilt.search([corpus_questions[9]], k=1)[0][0].text == corpus_questions[9]
    finally:
        rebuilt.close()


def test_info_says_what_the_index_holds_and_how_it_was_built(engine, backend, corpus_questions):
    engine.add(["How deep is the Mariana Trench in metres?"])
    engine.remove([corpus_questions[9], corpus_questions[10]])
    facts = engine.info()
    assert facts["backend"] == backend and facts["index_type"] == "flat" and facts["writable"] is True
    assert facts["questions"] == len(engine) == facts["questions_at_build"] - 1
    assert facts["model"] == engine.encoder.name and facts["threshold"] == engine.threshold and facts["repair_advised"] is False
    if backend == "milvus":  # the name is an alias; the collection behind it is a build's own
        assert facts["collection"] == "qsearch" and facts["milvus_collection"].startswith("qsearch_q")


def test_questions_lists_every_stored_question_by_id_with_the_id_search_returns(engine, corpus_questions):
    added = "How deep is the Mariana Trench in metres?"
    [i] = engine.add([added])
    engine.remove([corpus_questions[3]])
    rows = engine.questions()
    assert (i, added) in rows and corpus_questions[3] not in {t for _, t in rows}
    assert [n for n, _ in rows] == sorted(n for n, _ in rows) and len(rows) == len(engine)
    assert engine.ids_of([t for _, t in rows]) == {t: n for n, t in rows}


def test_export_writes_a_csv_that_builds_the_same_index(tmp_path, corpus_questions):
    build("faiss", corpus_questions[:100], tmp_path / "idx").close()
    printed = list(csv.DictReader(io.StringIO(run_cli("export", "--index", str(tmp_path / "idx")).stdout)))
    assert {r["question"] for r in printed} == set(corpus_questions[:100]) and all(r["id"].isdigit() for r in printed)
    out = run_cli("export", "--index", str(tmp_path / "idx"), "--out", str(tmp_path / "q.csv")).stdout
    assert out.strip() == f"wrote {len(set(corpus_questions[:100]))} questions from {tmp_path / 'idx'} to {tmp_path / 'q.csv'}"
    run_cli("build-index", "--questions", str(tmp_path / "q.csv"), "--index", str(tmp_path / "again"))
    again = SearchEngine.open(tmp_path / "again")
    try:
        assert set(again.backend.all_texts()) == set(corpus_questions[:100])
    finally:
        again.close()


def test_export_into_a_folder_is_one_line_and_leaves_nothing_beside_it(tmp_path, corpus_questions):
    build("faiss", corpus_questions[:20], tmp_path / "idx").close()
    (tmp_path / "out").mkdir()
    result = run_cli("export", "--index", str(tmp_path / "idx"), "--out", str(tmp_path / "out"), check=False)
    assert result.returncode == 1 and result.stderr.strip() == f"error: cannot write {tmp_path / 'out'}: Is a directory"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx", "out"]


def test_leaving_a_with_block_writes_the_checkpoint_even_after_an_error(tmp_path, corpus_questions):
    import faiss

    build("faiss", corpus_questions[:20], tmp_path / "idx").close()
    with pytest.raises(QsearchError, match="k must be"):
        with SearchEngine.open(tmp_path / "idx") as engine:
            engine.add([corpus_questions[30]])
            engine.search([corpus_questions[30]], k=0)
    assert faiss.read_index(str(engine.generation / "vectors.faiss")).ntotal == len(set(corpus_questions[:20])) + 1


def test_another_model_is_refused(engine, tmp_path, tiny_model):
    engine.close()
    with pytest.raises(QsearchError, match="another model"):
        SearchEngine.open(tmp_path / "idx", Encoder.load(tiny_model))


KILLED_WRITER = """
import sys
from qsearch import SearchEngine
engine = SearchEngine.open(sys.argv[1])
n = 0
while True:
    text = f"Killed writer question number {n}?"
    [i] = engine.add([text])
    print(i, text, flush=True)
    n += 1
"""


def test_kill_9_during_adds_loses_no_acknowledged_question(backend, tmp_path, corpus_questions):
    build(backend, corpus_questions[:100], tmp_path / "idx").close()
    writer = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(tmp_path / "idx")], stdout=subprocess.PIPE, text=True)
    acknowledged = {}
    deadline = time.time() + 60
    while len(acknowledged) < 25 and time.time() < deadline:
        line = writer.stdout.readline()
        if not line:
            break
        i, text = line.rstrip("\n").split(" ", 1)
        acknowledged[text] = int(i)
    writer.send_signal(signal.SIGKILL)
    writer.wait(timeout=30)
    assert len(acknowledged) >= 25
    engine = SearchEngine.open(tmp_path / "idx")
    try:
        assert engine.ids_of(list(acknowledged)) == acknowledged
        assert engine.search([next(iter(acknowledged))], k=1)[0][0].text == next(iter(acknowledged))
    finally:
        engine.close()


KILLED_REMOVER = """
import sys
from qsearch import SearchEngine
engine = SearchEngine.open(sys.argv[1])
for text in sys.stdin:
    [i] = engine.remove([text.rstrip("\\n")])
    print(i, flush=True)
"""


def test_kill_9_after_removals_loses_no_acknowledged_removal(backend, tmp_path, corpus_questions):
    questions = list(dict.fromkeys(corpus_questions[:100]))
    build(backend, questions, tmp_path / "idx").close()
    remover = subprocess.Popen([sys.executable, "-c", KILLED_REMOVER, str(tmp_path / "idx")], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    for question in questions[:5]:
        remover.stdin.write(question + "\n")
        remover.stdin.flush()
        assert remover.stdout.readline().strip() != "None"
    remover.send_signal(signal.SIGKILL)
    remover.wait(timeout=30)
    engine = SearchEngine.open(tmp_path / "idx")
    try:
        assert len(engine) == len(questions) - 5 and engine.ids_of(questions[:5]) == {}
        assert questions[0] not in [m.text for m in engine.search([questions[0]], k=10)[0]]
    finally:
        engine.close()


def test_a_rebuild_after_kill_9_during_adds_keeps_every_acknowledged_question(tmp_path, corpus_questions):
    build("faiss", corpus_questions[:100], tmp_path / "idx").close()
    writer = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(tmp_path / "idx")], stdout=subprocess.PIPE, text=True)
    acknowledged = []
    deadline = time.time() + 60
    while len(acknowledged) < 10 and time.time() < deadline:
        line = writer.stdout.readline()
        if not line:
            break
        acknowledged.append(line.rstrip("\n").split(" ", 1)[1])
    writer.send_signal(signal.SIGKILL)
    writer.wait(timeout=30)
    assert len(acknowledged) >= 10
    rebuilt = SearchEngine.build(corpus_questions[:100], path=tmp_path / "idx")
    try:
        assert set(rebuilt.ids_of(acknowledged)) == set(acknowledged)
        assert rebuilt.manifest["kept_from_previous"] >= len(acknowledged)
    finally:
        rebuilt.close()


def test_both_backends_return_the_same_top_10_with_flat_search(tmp_path, corpus_questions):
    import pandas as pd

    from qsearch.paths import DEFAULT_CORPUS

    questions = pd.read_csv(DEFAULT_CORPUS, keep_default_na=False)["question"].head(2000).tolist()
    faiss_engine = build("faiss", questions, tmp_path / "f")
    milvus_engine = build("milvus", questions, tmp_path / "m")
    try:
        vectors = faiss_engine.encoder.encode(questions[::10])
        same = [
            [m.text for m in a] == [m.text for m in b]
            for a, b in zip(faiss_engine.search_vectors(questions[::10], vectors, 10), milvus_engine.search_vectors(questions[::10], vectors, 10))
        ]
        assert np.mean(same) >= 0.99, np.mean(same)
    finally:
        faiss_engine.close()
        milvus_engine.close()


def test_an_unreachable_milvus_is_one_line_within_10_seconds(tmp_path, corpus_questions):
    pytest.importorskip("pymilvus", reason="the Milvus backend needs pip install 'qsearch[milvus]'")
    questions = tmp_path / "q.txt"
    questions.write_text("\n".join(corpus_questions[:20]))
    start = time.perf_counter()
    result = run_cli("build-index", "--questions", str(questions), "--index", str(tmp_path / "idx"), "--backend", "milvus",
                     "--milvus-uri", f"http://127.0.0.1:{free_port()}", check=False)
    assert time.perf_counter() - start < 30  # the CLI's own start-up included; the connection gives up after 10 s
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: cannot reach Milvus at http://127.0.0.1:")


def test_a_milvus_lite_file_in_use_is_one_line_naming_the_way_out(tmp_path, corpus_questions):
    engine = build("milvus", corpus_questions[:50], tmp_path / "idx")
    try:
        result = run_cli("query", "How old are you?", "--index", str(tmp_path / "idx"), check=False)
    finally:
        engine.close()
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "one process at a time" in result.stderr and "--milvus-uri http://" in result.stderr


def test_a_collection_built_by_another_model_is_refused_with_what_to_do(tmp_path, corpus_questions, tiny_model):
    build("milvus", corpus_questions[:50], tmp_path / "a", milvus_uri=str(tmp_path / "shared.db")).close()
    with pytest.raises(QsearchError, match="pick another --collection, or drop it"):
        build("milvus", corpus_questions[:50], tmp_path / "b", milvus_uri=str(tmp_path / "shared.db"), encoder=Encoder.load(tiny_model))


def test_serve_refuses_several_workers_on_a_milvus_lite_file(tmp_path, corpus_questions):
    build("milvus", corpus_questions[:50], tmp_path / "idx").close()
    result = run_cli("serve", "--index", str(tmp_path / "idx"), "--workers", "2", "--port", str(free_port()), check=False)
    assert result.returncode == 1 and "Milvus Lite opens in one process only" in result.stderr


def test_milvus_ids_that_collide_move_to_the_next_free_one(tmp_path, corpus_questions, monkeypatch):
    from qsearch import milvus_backend

    monkeypatch.setattr(milvus_backend, "ID_BITS", 3)  # seven possible ids: collisions are certain
    engine = build("milvus", corpus_questions[:3], tmp_path / "idx")
    try:
        new = ["Why is the sky blue?", "Why is the sea blue?", "Why are violets blue?"]
        ids, _, added = engine.search_and_add(new, k=1)
        assert added == [True] * 3 and len(set(ids)) == 3 and len(engine) == 6
        stored = engine.texts(range(1, 8))
        assert sorted(stored.values()) == sorted(corpus_questions[:3] + new)
        assert engine.ids_of(list(stored.values())) == {t: i for i, t in stored.items()}
        assert engine.search_and_add(new, k=1)[2] == [False] * 3
    finally:
        engine.close()


def test_a_milvus_id_moved_on_by_a_collision_is_still_found_after_the_first_is_removed(tmp_path, corpus_questions, monkeypatch):
    from qsearch import milvus_backend

    monkeypatch.setattr(milvus_backend, "ID_BITS", 3)  # seven possible ids: collisions are certain
    engine = build("milvus", corpus_questions[:3], tmp_path / "idx")
    try:
        new = ["Why is the sky blue?", "Why is the sea blue?", "Why are violets blue?"]
        ids = engine.add(new)
        engine.remove(corpus_questions[:3])
        assert engine.ids_of(new) == dict(zip(new, ids))
        assert engine.search_and_add(new, k=1)[2] == [False] * 3 and len(engine) == 3
    finally:
        engine.close()


KILLED_BUILDER = """
import sys
from pathlib import Path
from qsearch import SearchEngine
questions = Path(sys.argv[2]).read_text().split("\\n")
SearchEngine.build(questions, path=sys.argv[1], backend="milvus", progress=lambda done, total: print(done, flush=True)).close()
"""
ADDED = "How deep is the Mariana Trench in metres?"


def milvus_with_one_added(path: Path, questions: list[str]) -> SearchEngine:
    engine = build("milvus", questions, path)
    engine.add([ADDED])
    return engine


def test_a_milvus_rebuild_killed_part_way_loses_no_question_and_leaves_no_collection_behind(tmp_path, corpus_questions):
    milvus_with_one_added(tmp_path / "idx", corpus_questions[:150]).close()
    source = tmp_path / "questions.txt"
    source.write_text("\n".join(corpus_questions[:300]))
    builder = subprocess.Popen([sys.executable, "-c", KILLED_BUILDER, str(tmp_path / "idx"), str(source)], stdout=subprocess.PIPE, text=True)
    assert builder.stdout.readline()  # encoding done: a rebuild used to have dropped the old collection by now
    builder.send_signal(signal.SIGKILL)
    builder.wait(timeout=30)
    engine = SearchEngine.open(tmp_path / "idx")
    try:
        assert set(corpus_questions[:150]) | {ADDED} <= set(engine.backend.all_texts())
    finally:
        engine.close()
    rebuilt = build("milvus", corpus_questions[:300], tmp_path / "idx")
    try:
        assert set(rebuilt.backend.all_texts()) == set(corpus_questions[:300]) | {ADDED}
        assert len([c for c in rebuilt.backend.client.list_collections() if c.startswith("qsearch_q")]) == 1
    finally:
        rebuilt.close()


def test_a_first_milvus_build_killed_part_way_leaves_a_folder_the_next_build_takes(tmp_path, corpus_questions):
    pytest.importorskip("milvus_lite", reason="the Milvus backend needs pip install 'qsearch[milvus]'")
    source = tmp_path / "questions.txt"
    source.write_text("\n".join(corpus_questions[:150]))
    builder = subprocess.Popen([sys.executable, "-c", KILLED_BUILDER, str(tmp_path / "idx"), str(source)], stdout=subprocess.PIPE, text=True)
    assert builder.stdout.readline()
    builder.send_signal(signal.SIGKILL)
    builder.wait(timeout=30)
    assert (tmp_path / "idx" / "milvus.db").exists() and not (tmp_path / "idx" / "CURRENT").exists()
    rebuilt = build("milvus", corpus_questions[:100], tmp_path / "idx")
    try:
        assert set(rebuilt.backend.all_texts()) == set(corpus_questions[:100])
        assert len([c for c in rebuilt.backend.client.list_collections() if c.startswith("qsearch_q")]) == 1
    finally:
        rebuilt.close()


def test_moving_an_index_from_milvus_lite_to_faiss_and_back_does_not_bring_back_a_removed_question(tmp_path, corpus_questions):
    build("milvus", corpus_questions[:20], tmp_path / "idx").close()
    with build("faiss", corpus_questions[:20], tmp_path / "idx") as moved:
        moved.remove([corpus_questions[0]])
    assert not (tmp_path / "idx" / "milvus.db").exists()  # nothing names the Lite file any more
    with build("milvus", corpus_questions[1:5], tmp_path / "idx") as back:
        assert set(back.backend.all_texts()) == set(corpus_questions[1:20])


def test_a_folder_holding_only_someone_elses_milvus_lite_file_is_not_built_into(tmp_path, corpus_questions):
    (tmp_path / "idx").mkdir()
    (tmp_path / "idx" / "milvus.db").write_text("theirs")
    with pytest.raises(QsearchError, match="is not a qsearch index"):
        build("faiss", corpus_questions[:20], tmp_path / "idx")
    assert (tmp_path / "idx" / "milvus.db").read_text() == "theirs"


def test_a_milvus_index_from_before_aliases_is_rebuilt_under_an_alias_keeping_its_questions(tmp_path, corpus_questions):
    engine = milvus_with_one_added(tmp_path / "idx", corpus_questions[:150])
    client = engine.backend.client
    client.drop_alias("qsearch")  # the layout qsearch wrote before: a collection under the name itself
    client.rename_collection(engine.backend.client.list_collections()[0], "qsearch")
    engine.close()
    rebuilt = build("milvus", corpus_questions[:150], tmp_path / "idx")
    try:
        assert len(rebuilt) == len(set(corpus_questions[:150])) + 1 and rebuilt.ids_of([ADDED])
        assert rebuilt.backend.client.describe_alias("qsearch")["collection_name"].startswith("qsearch_q")
    finally:
        rebuilt.close()


def test_a_milvus_name_lost_before_its_alias_was_made_is_given_to_the_complete_build(tmp_path, corpus_questions):
    engine = milvus_with_one_added(tmp_path / "idx", corpus_questions[:150])
    engine.backend.client.drop_alias("qsearch")  # as a first rebuild of an older index killed between its two steps leaves it
    engine.close()
    reopened = SearchEngine.open(tmp_path / "idx")
    try:
        assert len(reopened) == len(set(corpus_questions[:150])) + 1 and reopened.ids_of([ADDED])
    finally:
        reopened.close()


def test_a_milvus_build_from_another_folder_keeps_what_the_shared_collection_holds(tmp_path, corpus_questions):
    shared = str(tmp_path / "shared.db")  # one collection that two index folders name, as replicas on a server do
    first = build("milvus", corpus_questions[:100], tmp_path / "a", milvus_uri=shared)
    first.add([ADDED])
    first.remove([corpus_questions[0]])
    first.close()
    second = build("milvus", corpus_questions[:100], tmp_path / "b", milvus_uri=shared)
    try:
        assert second.ids_of([ADDED]) and corpus_questions[0] not in set(second.backend.all_texts())
        assert second.manifest["kept_from_previous"] == 1 and second.manifest["left_out_removed"] == 1
    finally:
        second.close()
