"""Search ranks by cosine, less a share of the neighbour's hubness (CSLS), plus a share of the
rare words they share, both shares set by how the model pools (``SEARCH_WEIGHTS``); the scores
and verdicts are the verdict space's cosines."""

import json
import sqlite3

import numpy as np
import pytest

from qsearch import Encoder, QsearchError, SearchEngine
from qsearch.config import ModelConfig, TrainConfig
from qsearch.data import load_pairs, split_pairs
from qsearch.hubness import HUB_NEIGHBOURS
from qsearch.ranking import SEARCH_WEIGHTS, rank
from qsearch.text import tokenize
from qsearch.train import train

from conftest import run_cli


def exact_hubs(vectors: np.ndarray) -> np.ndarray:
    """Each vector's mean cosine to its HUB_NEIGHBOURS nearest others, by brute force."""
    scores = vectors @ vectors.T
    np.fill_diagonal(scores, -np.inf)
    return np.sort(scores, axis=1)[:, ::-1][:, :HUB_NEIGHBOURS].mean(axis=1)


def search_cosines(encoder: Encoder, question: str, texts: list[str]) -> np.ndarray:
    """The cosines search ranks by (``encode``'s space, before the pair map)."""
    vectors = encoder.encode([question] + texts)
    return vectors[1:] @ vectors[0]


def stored_hubs(engine: SearchEngine) -> dict[str, float]:
    with sqlite3.connect(engine.generation / "questions.db") as db:
        return dict(db.execute("SELECT text, hub FROM questions"))


@pytest.fixture()
def engine(tmp_path, corpus_questions):
    engine = SearchEngine.build(corpus_questions[:200], path=tmp_path / "idx")
    yield engine
    engine.close()


def test_build_stores_each_questions_mean_cosine_to_its_ten_nearest_others(engine):
    hubs = stored_hubs(engine)
    texts = list(hubs)
    want = exact_hubs(engine.encoder.encode(texts))
    assert np.allclose([hubs[t] for t in texts], want, atol=1e-5)


def test_results_are_ordered_by_cosine_less_the_hubness_plus_shared_rare_words_at_the_models_weights(engine, corpus_questions):
    hubs, lexicon = stored_hubs(engine), engine.encoder.lexicon
    hub_weight, word_weight = SEARCH_WEIGHTS[engine.encoder.pooling]
    by_hub = by_words = 0
    for question in corpus_questions[200:260]:
        [matches] = engine.search([question], k=10)
        words = lexicon.overlaps(question, [m.text for m in matches])
        cosines = search_cosines(engine.encoder, question, [m.text for m in matches]).tolist()
        hub_only = [c - hub_weight * hubs[m.text] for c, m in zip(cosines, matches)]
        ranking = [h + word_weight * w for h, w in zip(hub_only, words)]
        assert np.all(np.diff(ranking) <= 1e-5)
        by_hub += cosines != sorted(cosines, reverse=True)
        by_words += hub_only != sorted(hub_only, reverse=True)
    assert by_hub and by_words, "on 60 real questions both terms should change some order"


def test_a_mean_pooled_model_ranks_with_the_weights_chosen_for_the_mean(tmp_path, corpus_questions):
    bundled = Encoder.load()
    weights = {k: v for k, v in bundled.weights.items() if k != "pool_query"}
    manifest = {**bundled.manifest, "model": {**bundled.manifest["model"], "pooling": "mean"}}
    mean = Encoder(manifest, bundled.vocab, weights, bundled.lexicon)
    assert (bundled.pooling, mean.pooling) == ("attention", "mean") and SEARCH_WEIGHTS["mean"] != SEARCH_WEIGHTS["attention"]
    engine = SearchEngine.build(corpus_questions[:200], mean, tmp_path / "idx")
    hubs, hub_weight, word_weight = stored_hubs(engine), *SEARCH_WEIGHTS["mean"]
    for question in corpus_questions[200:230]:
        [matches] = engine.search([question], k=10)
        words = mean.lexicon.overlaps(question, [m.text for m in matches])
        cosines = search_cosines(engine.encoder, question, [m.text for m in matches])
        ranking = [c - hub_weight * hubs[m.text] + word_weight * w for c, m, w in zip(cosines, matches, words)]
        assert np.all(np.diff(ranking) <= 1e-5)
    engine.close()


def test_rare_shared_words_weigh_more_than_common_ones():
    lexicon = Encoder.load().lexicon
    assert lexicon.idf("dolphins") > lexicon.idf("learn") > lexicon.idf("the") > lexicon.idf("?")
    assert lexicon.idf("qzxvbnmw") >= lexicon.idf("dolphins"), "a word never seen counts as the rarest"
    same, rare, common, none = lexicon.overlaps(
        "Why do dolphins sleep?", ["Why do dolphins sleep?", "How do dolphins breathe?", "Why do people sleep?", "Cats purr"]
    )
    assert same == pytest.approx(1.0)
    assert rare > common, "sharing 'dolphins' counts for more than sharing 'why'"
    assert none == 0.0


def test_a_trained_model_counts_the_words_of_its_training_questions_only(tmp_path, pairs_slice):
    config = TrainConfig(data=pairs_slice, corpus=None, epochs=1, model=ModelConfig(dim=16, embed_dim=16), batch_size=64, threads=1)
    lexicon = train(config, log=lambda m: None).lexicon
    parts = split_pairs(load_pairs(pairs_slice).frame)
    questions = {q.strip() for col in ("question1", "question2") for q in parts["train"][col] if q.strip()}
    assert lexicon.documents == len(questions)
    assert lexicon.frequencies[lexicon.vocab.index["?"]] == sum("?" in tokenize(q) for q in questions)
    word = lexicon.vocab.tokens[100]
    assert lexicon.frequencies[100] == sum(word in tokenize(q) for q in questions) > 0


def test_a_model_without_word_counts_ranks_by_hubness_alone(tmp_path, corpus_questions):
    old = Encoder.load()
    old.lexicon = None
    old.save(tmp_path / "old-model")
    assert not (tmp_path / "old-model" / "document_frequency.npy").exists()
    engine = SearchEngine.build(corpus_questions[:200], Encoder.load(tmp_path / "old-model"), tmp_path / "idx")
    hubs = stored_hubs(engine)
    [matches] = engine.search([corpus_questions[250]], k=10)
    cosines = search_cosines(engine.encoder, corpus_questions[250], [m.text for m in matches])
    ranking = [c - SEARCH_WEIGHTS[engine.encoder.pooling][0] * hubs[m.text] for c, m in zip(cosines, matches)]
    assert np.all(np.diff(ranking) <= 1e-5)
    engine.close()


def test_unreadable_word_counts_are_one_clear_error(tmp_path):
    Encoder.load().save(tmp_path / "model")
    (tmp_path / "model" / "document_frequency.npy").write_bytes(b"not numpy")
    with pytest.raises(QsearchError, match="cannot read the document frequencies"):
        Encoder.load(tmp_path / "model")


def test_the_reported_scores_and_verdicts_are_the_verdict_spaces_cosines_less_the_word_gap(engine, corpus_questions):
    question = corpus_questions[300]
    [matches] = engine.search([question], k=5)
    texts = [m.text for m in matches]
    vectors = engine.encoder.pair_vectors([question] + texts)
    cosines = vectors[1:] @ vectors[0]
    verdicts = engine.encoder.verdicts([question] * len(texts), texts, cosines)
    assert np.allclose([m.score for m in matches], verdicts, atol=1e-5)
    assert [m.duplicate for m in matches] == [v > engine.threshold for v in verdicts]
    assert engine.encoder.has_pair_map, "the bundled model ranks in one space and judges in another"
    assert not np.allclose(cosines, search_cosines(engine.encoder, question, [m.text for m in matches]), atol=1e-3)


def test_without_a_pair_map_search_and_verdicts_share_one_space(tmp_path, corpus_questions):
    single = Encoder.load()
    single.weights.pop("pair.weight")
    single.manifest.pop("pair_map")
    single.save(tmp_path / "single")
    single = Encoder.load(tmp_path / "single")
    assert not single.has_pair_map
    engine = SearchEngine.build(corpus_questions[:200], single, tmp_path / "idx")
    [matches] = engine.search([corpus_questions[300]], k=5)
    texts = [m.text for m in matches]
    cosines = search_cosines(single, corpus_questions[300], texts)
    assert np.allclose([m.score for m in matches], single.verdicts([corpus_questions[300]] * len(texts), texts, cosines), atol=1e-5)
    engine.close()


def test_a_stored_question_asked_again_comes_first_whatever_its_hubness():
    own, hub_neighbour = (1, 1.0, "q", 0.99), (2, 0.97, "near", 0.2)
    assert rank([hub_neighbour, own], 2, None, SEARCH_WEIGHTS["attention"])[0] == own


def test_an_added_question_stores_its_hubness_against_the_index_then(engine):
    before = list(stored_hubs(engine))
    question = "Which moon of Jupiter has the thickest ice shell?"
    engine.add([question])
    vectors = engine.encoder.encode([question] + before)
    want = np.sort(vectors[1:] @ vectors[0])[::-1][:HUB_NEIGHBOURS].mean()
    assert stored_hubs(engine)[question] == pytest.approx(want, abs=1e-5)


def test_repair_measures_every_hubness_again(engine):
    with sqlite3.connect(engine.generation / "questions.db") as db:
        db.execute("UPDATE questions SET hub = 5.0")
    engine.close()
    SearchEngine.repair(engine.root)
    hubs = stored_hubs(engine)
    assert np.allclose(list(hubs.values()), exact_hubs(engine.encoder.encode(list(hubs))), atol=1e-5)


def test_an_index_from_before_hubness_is_brought_up_to_date_by_repair_with_every_question(tmp_path, corpus_questions):
    added = "Which moon of Jupiter has the thickest ice shell?"
    engine = SearchEngine.build(corpus_questions[:50], path=tmp_path / "old")
    engine.add([added])
    engine.close()
    with sqlite3.connect(engine.generation / "questions.db") as db:  # what format 1 wrote
        db.execute("ALTER TABLE questions DROP COLUMN hub")
    manifest = json.loads((engine.generation / "index.json").read_text())
    (engine.generation / "index.json").write_text(json.dumps({**manifest, "format_version": 1}))

    with pytest.raises(QsearchError, match="qsearch repair --index"):
        SearchEngine.open(tmp_path / "old")
    assert SearchEngine.repair(tmp_path / "old") == len(set(corpus_questions[:50])) + 1
    upgraded = SearchEngine.open(tmp_path / "old")
    assert upgraded.search([added], k=1)[0][0].text == added
    hubs = stored_hubs(upgraded)
    assert np.allclose(list(hubs.values()), exact_hubs(upgraded.encoder.encode(list(hubs))), atol=1e-5)


@pytest.mark.slow
def test_adds_that_grow_the_index_by_half_advise_a_repair_until_it_is_run(tmp_path, corpus_questions):
    index = tmp_path / "forum"
    SearchEngine.build(corpus_questions[:20], path=index).close()
    quiet = run_cli("add", *corpus_questions[20:29], "--index", str(index))
    assert "repair" not in quiet.stderr, "29 questions, 20 measured together: not yet"
    grown = run_cli("add", corpus_questions[29], "--index", str(index))
    assert f"run `qsearch repair --index {index}`" in grown.stderr and "1.5x" in grown.stderr
    assert grown.stdout.strip().endswith("the index holds 30")

    run_cli("repair", "--index", str(index))
    engine = SearchEngine.open(index)
    assert engine.hubness_measured_for == 30 and not engine.hubness_outgrown()
    engine.close()
    assert "repair" not in run_cli("add", corpus_questions[30], "--index", str(index)).stderr
