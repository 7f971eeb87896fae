import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import faiss
import numpy as np
import pytest

from qsearch import Encoder, SearchEngine
from qsearch.errors import QsearchError
from qsearch.index import indexed_ids
from conftest import run_cli


@pytest.fixture()
def engine(tmp_path, corpus_questions):
    return SearchEngine.build(corpus_questions, path=tmp_path / "idx")


def test_a_question_finds_itself_first(engine, corpus_questions):
    q = corpus_questions[10]
    [matches] = engine.search([q], k=3)
    assert matches[0].text == q and matches[0].duplicate
    assert abs(matches[0].score - 1.0) < 1e-3


def test_exact_repeats_are_stored_once_and_blank_ones_skipped(tmp_path):
    engine = SearchEngine.build(["How old are you?", "How old are you?", "  ", "What is love?"], path=tmp_path / "i")
    assert len(engine) == 2


def test_ids_agree_between_faiss_and_sqlite(engine):
    assert sorted(indexed_ids(engine.backend.index).tolist()) == sorted(engine.backend.store.all_ids().tolist())
    [matches] = engine.search(["How do I learn Python?"], k=5)
    texts = engine.texts(m.id for m in matches)
    assert all(texts[m.id] == m.text for m in matches)


def test_add_then_find(engine):
    new = "Which moon of Jupiter has the thickest ice shell?"
    before = len(engine)
    ids, matches, added = engine.search_and_add([new, new], k=3)
    assert ids[0] == ids[1] and len(engine) == before + 1
    assert added == [True, False]
    assert all(m.text != new for m in matches[0])
    assert engine.search([new], k=1)[0][0].id == ids[0]
    assert engine.add([new]) == [ids[0]] and len(engine) == before + 1
    assert engine.search_and_add([new])[2] == [False]


def test_added_questions_survive_reopening(engine, tmp_path):
    ids = engine.add(["Is there liquid water under the ice of Europa?"])
    engine.close()
    again = SearchEngine.open(tmp_path / "idx")
    assert again.search(["Is there liquid water under the ice of Europa?"], k=1)[0][0].id == ids[0]


def test_rows_committed_but_not_indexed_are_repaired_on_open(engine, tmp_path):
    # what a process killed between the SQLite commit and the FAISS write leaves behind
    with sqlite3.connect(engine.generation / "questions.db") as db:
        db.execute("INSERT INTO questions (text, hub) VALUES (?, 0.6)", ("Why is the sky blue during the day?",))
    reopened = SearchEngine.open(tmp_path / "idx")
    assert len(reopened) == len(engine) + 1
    assert reopened.search(["Why is the sky blue during the day?"], k=1)[0][0].score > 0.999


def test_k_larger_than_the_index_returns_everything(tmp_path):
    engine = SearchEngine.build(["How old are you?", "What is love?"], path=tmp_path / "i")
    assert len(engine.search(["How old are you?"], k=50)[0]) == 2


@pytest.mark.parametrize("bad", [[""], ["   "], []])
def test_blank_questions_are_refused(engine, bad):
    with pytest.raises(QsearchError):
        engine.search(bad)


def test_k_below_one_is_refused(engine):
    with pytest.raises(QsearchError, match="k must be"):
        engine.search(["How old are you?"], k=0)


def test_an_index_built_by_another_model_is_detected(engine, tiny_model, tmp_path):
    with pytest.raises(QsearchError, match="built with another model"):
        SearchEngine.open(tmp_path / "idx", Encoder.load(tiny_model))


def test_a_retrained_model_with_the_same_vocabulary_is_told_apart_from_the_index_s_own(tiny_model, tmp_path, corpus_questions):
    SearchEngine.build(corpus_questions[:20], Encoder.load(tiny_model), tmp_path / "idx").close()
    retrained = Encoder.load(tiny_model)
    retrained.weights = {k: v * 1.5 if k.startswith("lstm.") else v for k, v in retrained.weights.items()}
    retrained.save(tmp_path / "retrained")
    with pytest.raises(QsearchError, match="built with another model"):
        SearchEngine.open(tmp_path / "idx", Encoder.load(tmp_path / "retrained"))
    SearchEngine.open(tmp_path / "idx", Encoder.load(tiny_model)).close()


def test_the_same_weights_with_another_spelling_correction_are_told_apart_from_the_index_s_own(tmp_path, corpus_questions):
    from qsearch.text import SPELLING_NAME

    bundled = Encoder.load()
    SearchEngine.build(corpus_questions[:20], bundled, tmp_path / "idx").close()
    manifest = {k: v for k, v in bundled.manifest.items() if k != "word_pairs"}
    Encoder({**manifest, "spelling": SPELLING_NAME}, bundled.vocab, bundled.weights, bundled.lexicon).save(tmp_path / "alone")
    with pytest.raises(QsearchError, match="built with another model \\(the same weights, reading words with [a-z-]*-v1\\)"):
        SearchEngine.open(tmp_path / "idx", Encoder.load(tmp_path / "alone"))
    SearchEngine.open(tmp_path / "idx", Encoder.load()).close()


def test_other_weights_with_another_spelling_correction_are_named_as_other_weights(tmp_path, corpus_questions):
    from qsearch.text import SPELLING_NAME

    bundled = Encoder.load()
    SearchEngine.build(corpus_questions[:20], bundled, tmp_path / "idx").close()
    manifest = {k: v for k, v in bundled.manifest.items() if k != "word_pairs"}
    weights = {k: (v * 0.5 if v.dtype.kind == "f" else v) for k, v in bundled.weights.items()}
    Encoder({**manifest, "spelling": SPELLING_NAME}, bundled.vocab, weights, bundled.lexicon).save(tmp_path / "other")
    with pytest.raises(QsearchError, match="built with another model \\(dim .*, other weights\\)"):
        SearchEngine.open(tmp_path / "idx", Encoder.load(tmp_path / "other"))


def test_a_vector_file_from_another_build_is_rebuilt_from_the_store(tmp_path, caplog):
    a = SearchEngine.build(["How old are you?", "What is love?", "Why?"], path=tmp_path / "a")
    b = SearchEngine.build(["How old are you?"], path=tmp_path / "b")
    (b.generation / "questions.db").unlink()
    for suffix in ("-wal", "-shm"):
        (b.generation / f"questions.db{suffix}").unlink(missing_ok=True)
    import shutil

    shutil.copy(a.generation / "vectors.faiss", b.generation / "vectors.faiss")
    with sqlite3.connect(b.generation / "questions.db") as db:
        db.execute("CREATE TABLE questions (id INTEGER PRIMARY KEY, text TEXT NOT NULL UNIQUE, hub FLOAT NOT NULL)")
        db.execute("INSERT INTO questions VALUES (1, 'How old are you?', 0.0)")
    engine = SearchEngine.open(tmp_path / "b")
    assert "holds ids the store lacks" in caplog.text
    assert len(engine) == 1 and engine.search(["How old are you?"], k=3)[0][0].text == "How old are you?"


def test_opening_a_missing_index_says_what_to_run(tmp_path):
    with pytest.raises(QsearchError, match="qsearch build-index"):
        SearchEngine.open(tmp_path / "nothing")


@pytest.mark.slow
def test_a_killed_build_leaves_the_old_index_usable(tmp_path, corpus_questions):
    index = tmp_path / "idx"
    SearchEngine.build(corpus_questions[:50], path=index)
    big = tmp_path / "many.txt"
    big.write_text("\n".join(f"{q} variant {i}" for i in range(60) for q in corpus_questions))
    proc = subprocess.Popen(
        [sys.executable, "-m", "qsearch.cli", "build-index", "--questions", str(big), "--index", str(index)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 60
    while not (index / "g00002" / "questions.db").exists() and time.time() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (index / "g00002").exists(), "the build was killed before it started writing"
    engine = SearchEngine.open(index)
    assert len(engine) == 50
    assert engine.search([corpus_questions[3]], k=1)[0][0].text == corpus_questions[3]
    rebuilt = SearchEngine.build(corpus_questions[:60], path=index)
    assert len(rebuilt) == 60 and sorted(p.name for p in index.glob("g*")) == [rebuilt.generation.name]


def test_cli_build_query_add_json(tmp_path):
    questions = tmp_path / "q.csv"
    questions.write_text("title\nHow old are you?\nWhat is your age?\nHow do I learn Python quickly?\n")
    index = str(tmp_path / "idx")
    built = run_cli("build-index", "--questions", str(questions), "--column", "title", "--index", index)
    assert "indexed 3 unique questions" in built.stdout
    out = run_cli("query", "How old are you?", "How can I learn Python?", "--k", "2", "--json", "--index", index)
    data = json.loads(out.stdout)
    assert [r["query"] for r in data] == ["How old are you?", "How can I learn Python?"]
    assert set(data[0]["matches"][0]) == {"id", "text", "score", "duplicate"}
    assert data[0]["matches"][0]["text"] == "How old are you?" and data[0]["matches"][0]["duplicate"] is True
    added = run_cli("add", "Which moon of Jupiter has the thickest ice?", "--index", index, "--json")
    assert json.loads(added.stdout)[0]["matches"]
    found = run_cli("query", "Which moon of Jupiter has the thickest ice?", "--k", "1", "--index", index)
    assert "Which moon of Jupiter has the thickest ice?" in found.stdout


def test_a_query_loads_neither_torch_nor_the_teacher_nor_pandas(engine, tmp_path):
    # a cold `qsearch query` pays for every import: pandas alone is a third of a second
    run = (
        "import sys; from qsearch.cli import main; sys.argv = ['qsearch', 'query', 'How old are you?', '--index', sys.argv[1]]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('torch', 'sentence_transformers', 'transformers', 'pandas') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", run, str(tmp_path / "idx")], capture_output=True, text=True, timeout=120, check=True)
    assert "How old are you?" in out.stdout
    assert out.stdout.splitlines()[-1] == "[]"


def test_cli_counts_one_indexed_question_in_the_singular(tmp_path):
    questions = tmp_path / "q.txt"
    questions.write_text("How old are you?\nHow old are you?\n")
    built = run_cli("build-index", "--questions", str(questions), "--index", str(tmp_path / "idx"))
    assert built.stdout.startswith("indexed 1 unique question (of 2 read) into ")


def test_query_and_add_say_which_words_the_model_read_as_others(tmp_path):
    questions = tmp_path / "q.txt"
    questions.write_text("How old are you?\nWhat is your age?\nHow do I learn Python quickly?\n")
    index = str(tmp_path / "idx")
    run_cli("build-index", "--questions", str(questions), "--index", index)
    shown = run_cli("query", "How do I lern pyhton quickly?", "--k", "1", "--index", index)
    assert shown.stdout.splitlines()[1] == "  read as: lern → learn, pyhton → python", "a typo of an unknown word, and one that spells a word"
    data = json.loads(run_cli("query", "How do I lern pyhton quickly?", "How old are you?", "--k", "1", "--json", "--index", index).stdout)
    assert data[0]["read_as"] == {"lern": "learn", "pyhton": "python"} and "read_as" not in data[1], "only where a word was read as another"
    added = json.loads(run_cli("add", "Whta is your age?", "--index", index, "--json").stdout)
    assert added[0]["read_as"] == {"whta": "what"}


@pytest.mark.parametrize(
    "args, message",
    [
        (["query", "How old are you?", "--k", "0"], "--k must be at least 1"),
        (["query", "   "], "is empty"),
        (["query", "hello", "--index", "/nonexistent/idx"], "qsearch build-index"),
        (["build-index", "--questions", "/nonexistent.csv"], "file not found"),
    ],
)
def test_cli_errors_are_one_line(args, message):
    result = run_cli(*args, check=False)
    assert result.returncode == 1
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_adding_to_an_index_rebuilt_meanwhile_goes_into_the_new_index(engine, tmp_path, corpus_questions):
    SearchEngine.build(corpus_questions[:20], path=tmp_path / "idx", keep_old=False)
    question = "A question that would otherwise vanish with the old generation?"
    engine.add([question])
    reopened = SearchEngine.open(tmp_path / "idx")
    assert len(reopened) == 21 and reopened.search([question], k=1)[0][0].text == question


def test_build_index_again_keeps_the_added_questions_and_replace_drops_them(tmp_path, corpus_questions):
    texts = [q.replace("\n", " ") for q in corpus_questions[:30]]
    questions, index, added = tmp_path / "questions.txt", tmp_path / "idx", "Which moon of Jupiter has the thickest ice shell?"
    questions.write_text("\n".join(texts))
    engine = SearchEngine.build(texts, path=index)
    engine.add([added])
    engine.close()
    again = run_cli("build-index", "--questions", str(questions), "--index", str(index))
    assert "kept 1 question(s) that the index held beyond these" in again.stdout
    engine = SearchEngine.open(index)
    assert len(engine) == 31 and added in engine.ids_of([added])
    engine.close()
    run_cli("build-index", "--questions", str(questions), "--index", str(index), "--replace")
    engine = SearchEngine.open(index)
    assert len(engine) == 30 and engine.ids_of([added]) == {}
    engine.close()


def test_a_rebuild_over_an_unreadable_store_stops_instead_of_dropping_its_questions(tmp_path, corpus_questions):
    engine = SearchEngine.build(corpus_questions[:20], path=tmp_path / "idx")
    engine.close()
    (engine.generation / "questions.db").write_bytes(b"not a database" * 100)
    with pytest.raises(QsearchError, match="cannot be read to keep its questions .*--replace builds anew"):
        SearchEngine.build(corpus_questions[:20], path=tmp_path / "idx")
    assert len(SearchEngine.build(corpus_questions[:20], path=tmp_path / "idx", keep_old=False)) == 20


def test_a_rebuild_keeps_the_added_questions_from_the_store_when_the_old_model_no_longer_loads(tmp_path, corpus_questions):
    engine = SearchEngine.build(corpus_questions[:20], path=tmp_path / "idx")
    added = "Which moon of Jupiter has the thickest ice shell?"
    engine.add([added])
    engine.close()
    manifest = engine.generation / "model" / "model.json"
    manifest.write_text(manifest.read_text().replace('"format_version"', '"format_version": 999, "was"', 1))
    with pytest.raises(QsearchError):
        SearchEngine.open(tmp_path / "idx")
    rebuilt = SearchEngine.build(corpus_questions[:20], path=tmp_path / "idx")
    assert len(rebuilt) == 21 and added in rebuilt.ids_of([added]) and rebuilt.manifest["kept_from_previous"] == 1
    rebuilt.close()


def test_a_long_stored_question_is_cut_to_a_line_in_text_output_and_whole_in_json(tmp_path):
    long = "Why " + "really " * 500 + "does this question go on?"
    questions = tmp_path / "questions.txt"
    questions.write_text(f"{long}\nHow old are you?\n")
    index = str(tmp_path / "idx")
    run_cli("build-index", "--questions", str(questions), "--index", index)
    [line] = [x for x in run_cli("query", long, "--index", index, "-k", "1").stdout.splitlines() if x.endswith("]")]
    assert len(line) < 240 and "…  [#" in line
    assert json.loads(run_cli("query", long, "--index", index, "-k", "1", "--json").stdout)[0]["matches"][0]["text"] == long


def test_a_killed_first_build_does_not_block_the_next(tmp_path):
    index = tmp_path / "idx"
    (index / "g00001").mkdir(parents=True)
    (index / ".lock").touch()
    assert len(SearchEngine.build(["How old are you?"], path=index)) == 1


def test_building_under_a_file_is_a_clear_error(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(QsearchError, match="cannot make the index folder .*notes.txt/idx: Not a directory"):
        SearchEngine.build(["How old are you?"], path=tmp_path / "notes.txt" / "idx")


def test_building_into_a_folder_of_other_files_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(QsearchError, match="is not a qsearch index"):
        SearchEngine.build(["How old are you?"], path=tmp_path)


def test_searches_run_beside_adds_without_errors(engine, corpus_questions):
    import threading

    errors, before = [], len(engine)

    def searcher():
        try:
            for q in corpus_questions[:60]:
                assert engine.search([q], k=3)[0]
        except Exception as e:  # collected, so the main thread can fail the test
            errors.append(e)

    threads = [threading.Thread(target=searcher) for _ in range(3)]
    for t in threads:
        t.start()
    added = [engine.add([f"Concurrent question number {n} about rivers?"])[0] for n in range(30)]
    for t in threads:
        t.join()
    assert not errors
    assert len(engine) == before + 30 and len(set(added)) == 30
    assert engine.search(["Concurrent question number 7 about rivers?"], k=1)[0][0].id == added[7]


def test_pq_refine_is_tuned_to_the_recall_target_and_keeps_it_after_reopening(tmp_path):
    import pandas as pd

    from qsearch.paths import DEFAULT_CORPUS

    questions = pd.read_csv(DEFAULT_CORPUS, keep_default_na=False)["question"].head(1500).tolist()
    engine = SearchEngine.build(questions, path=tmp_path / "pq", index_type="pq-refine", recall=1.0)
    manifest = engine.manifest
    assert manifest["index_type"] == "pq-refine" and manifest["tuned_recall_at_10"] == 1.0
    assert manifest["search_params"]["k_factor"] >= 8
    assert [m.text for m in engine.search(questions[:20], k=1)[0]] == [questions[0]]
    engine.close()
    again = SearchEngine.open(tmp_path / "pq")
    inner = faiss.downcast_index(faiss.downcast_index(again.backend.index).index)
    assert inner.k_factor == manifest["search_params"]["k_factor"]
    again.close()


@pytest.mark.parametrize("index_type", ["flat", "pq-refine", "hnsw"])
def test_every_index_type_gives_back_the_exact_vectors_that_verdicts_are_taken_from(tmp_path, corpus_questions, index_type):
    questions = corpus_questions[:300]
    engine = SearchEngine.build(questions, path=tmp_path / index_type, index_type=index_type)
    ids = engine.ids_of(questions[:5])
    stored = engine.backend.vectors([ids[q] for q in questions[:5]])
    assert np.allclose(stored, engine.encoder.encode(questions[:5]), atol=1e-6)
    engine.close()


def test_pq_refine_quantises_every_dimension_so_an_odd_width_works():
    from qsearch import index as vindex

    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(400, 7)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    assert vindex.factory(7, "pq-refine") == "IDMap2,PQ7x4fs,RFlat"
    index = vindex.new_index(7, "pq-refine", train=vectors)
    index.add_with_ids(vectors, np.arange(100, 500))
    assert (index.search(vectors, 1)[1][:, 0] == np.arange(100, 500)).all()


def test_auto_picks_flat_for_a_small_collection(tmp_path, corpus_questions):
    engine = SearchEngine.build(corpus_questions[:100], path=tmp_path / "auto", index_type="auto")
    assert engine.manifest["index_type"] == "flat" and engine.manifest["requested_index_type"] == "auto"
    engine.close()


def test_tuning_keeps_one_step_beyond_the_first_setting_that_reaches_the_target():
    from qsearch import index as vindex

    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((2000, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = np.arange(1, 2001, dtype=np.int64)
    index = vindex.new_index(16, "hnsw")
    index.add_with_ids(vectors, ids)
    name, steps = vindex.STEPS["hnsw"]
    assert vindex.tune(index, "hnsw", vectors, ids, recall=0.0)[name] == steps[1]  # the first step reaches 0.0


def test_info_prints_the_index_and_its_build_and_json_for_programs(tmp_path, corpus_questions):
    source = tmp_path / "questions.txt"
    source.write_text("\n".join(corpus_questions[:60]) + "\n")
    run_cli("build-index", "--questions", str(source), "--index", str(tmp_path / "idx"))
    run_cli("remove", corpus_questions[3], "--index", str(tmp_path / "idx"))
    run_cli("build-index", "--questions", str(source), "--index", str(tmp_path / "idx"))
    lines = run_cli("info", "--index", str(tmp_path / "idx")).stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["index", "backend", "questions", "built", "model", "hubness", "repair"]
    assert "1 removed question left out" in lines[3] and lines[-1].endswith("not needed")
    facts = json.loads(run_cli("info", "--index", str(tmp_path / "idx"), "--json").stdout)
    assert facts["questions"] == len(set(corpus_questions[:60])) - 1 and facts["left_out_removed"] == 1
    missing = run_cli("info", "--index", str(tmp_path / "nowhere"), check=False)
    assert missing.returncode == 1 and missing.stderr.startswith("error: no index at")

