"""A finished model reads a misspelt word as the known word one edit away that fits its
neighbours best; training reads texts as written."""

import numpy as np
import pytest

from conftest import HashTeacher
from test_teacher import tiny_config
from qsearch import Encoder
from qsearch.errors import QsearchError
from qsearch.text import EDGE, PAD, REAL_WORD_PRIOR, SPELLING_CHECKED_NAME, SPELLING_IN_CONTEXT_NAME, SPELLING_NAME, UNK, Vocabulary, one_edit, tokenize
from qsearch.train import calibrate_and_save, train
from qsearch.word_pairs import WordPairs

WORDS = [PAD, UNK, "the", "how", "learn", "python", "lean", "fern", "cat", "köln"]


def test_one_edit_holds_deletes_swaps_replacements_and_insertions():
    edits = one_edit("lern")
    assert {"ern", "elrn", "lean", "learn"} <= edits
    assert "lerning" not in edits and "lern" in edits  # a replacement by the same letter gives the word back


def test_an_unknown_word_is_corrected_to_the_most_frequent_known_word_one_edit_away():
    vocab = Vocabulary(WORDS)
    assert vocab.correct("pyhton") == vocab.index["python"]
    assert vocab.correct("lern") == vocab.index["learn"], "learn, lean and fern are all one edit away: the lowest id wins"
    assert vocab.correct("xyzzy") is None, "nothing known is one edit away"


def test_short_words_names_outside_ascii_and_digits_are_left_to_their_pieces():
    vocab = Vocabulary(WORDS)
    assert vocab.correct("ca") is None, "two letters: too many words are one edit away"
    assert vocab.correct("koln") is None, "köln is not ASCII, so no ASCII word corrects to it"
    assert vocab.correct("kölm") is None
    assert vocab.correct("cat7") is None


def test_a_word_longer_than_every_known_word_is_not_searched_for_edits():
    vocab = Vocabulary(WORDS)
    assert vocab.correct("pythons") == vocab.index["python"], "one letter longer than the longest known word: still one edit"
    assert vocab.correct("q" * 100_000) is None, "its edits would be millions of 100,000-letter strings"


CONTEXT_WORDS = [PAD, UNK, "the", "give", "them", "money", "to", "read", "book", "theme"]
CONTEXT_TEXTS = ["read the book", "give them money", "give the book to them", "read the theme", "the money", "the book"]


def test_a_misspelt_word_is_read_as_the_candidate_its_neighbours_fit_best():
    vocab = Vocabulary(CONTEXT_WORDS)
    reading = vocab.reading(True, WordPairs.count(vocab, CONTEXT_TEXTS))
    assert reading.read_as("give thme money", 8) == {"thme": "them"}, "'give them' is a pair the texts hold; 'give the' is not"
    assert reading.read_as("read thme book", 8) == {"thme": "the"}
    assert vocab.reading(True).read_as("give thme money", 8) == {"thme": "the"}, "without context: the most frequent word"


def test_with_no_neighbour_known_the_context_corrector_takes_the_most_frequent_word():
    vocab = Vocabulary(CONTEXT_WORDS)
    reading = vocab.reading(True, WordPairs.count(vocab, CONTEXT_TEXTS))
    assert reading.correct("thme", None, None) == vocab.index["the"]
    assert reading.read_as("xyzzy thme qwerty", 8) == {"thme": "the"}, "unknown neighbours say nothing"
    assert reading.correct("thme", EDGE, EDGE) == vocab.index["the"], "a question's start and end: 'the' starts one text"


def test_word_pairs_count_each_text_once_with_its_start_and_end():
    vocab = Vocabulary(CONTEXT_WORDS)
    pairs = WordPairs.count(vocab, CONTEXT_TEXTS)
    assert pairs.words[EDGE] == len(CONTEXT_TEXTS)
    assert pairs.words[vocab.index["the"]] == 5
    ids = vocab.index
    assert pairs._pair(np.array([ids["give"], EDGE, ids["book"]]), np.array([ids["them"], ids["the"], EDGE])).tolist() == [1, 2, 2]


def test_word_pairs_of_no_texts_leave_the_choice_to_frequency():
    vocab = Vocabulary(CONTEXT_WORDS)
    reading = vocab.reading(True, WordPairs.count(vocab, []))
    assert reading.read_as("give thme money", 8) == {"thme": "the"}


def test_damaged_word_pair_counts_are_a_clear_error():
    with pytest.raises(QsearchError, match="damaged"):
        WordPairs(np.zeros(3), np.array([5, 2]), np.array([1, 1]))


CHANNEL_WORDS = [PAD, UNK, "how", "to", "learn", "python", "lean", "meat", "cook", "never"]
CHANNEL_TEXTS = ["how to learn python"] * 200 + ["lean meat"] * 5 + ["how to cook lean meat"] * 3


def channel_reading() -> Vocabulary:
    vocab = Vocabulary(CHANNEL_WORDS)
    return vocab.reading(True, WordPairs.count(vocab, CHANNEL_TEXTS).with_near(vocab), REAL_WORD_PRIOR)


def test_a_known_word_is_read_as_another_one_edit_away_where_its_neighbours_fit_that_one_far_better():
    reading = channel_reading()
    assert reading.read_as("how to lean python", 8) == {"lean": "learn"}, "'to learn' and 'learn python' are what the texts hold"
    assert reading.read_as("how to cook lean meat", 8) == {}, "'lean meat' is a pair the texts hold: the word as written stays"
    assert reading.read_as("lean", 8) == {}, "with no neighbour to go by, a known word is read as written"


def test_the_channel_reads_each_word_as_scoring_all_its_neighbours_would(corpus_questions):
    """It skips the neighbours of a word whose own fit no neighbour could beat: the bundled
    model's readings of real questions, with and without a typo that spells a word, are the same."""
    vocab = Encoder.load().vocab
    pairs, get = vocab.context, vocab.index.get
    texts = corpus_questions[:3000] + ["how do I lean python", "what is the bets way to learn", "how can I loose weight fast"]
    written, before, after = [], [], []
    for text in texts:
        ids = [EDGE, *(get(t, -1) for t in tokenize(text)), EDGE]
        for n in range(1, len(ids) - 1):
            if ids[n] > 1:
                written.append(ids[n]), before.append(ids[n - 1]), after.append(ids[n + 1])
    written, before, after = (np.array(x, dtype=np.int64) for x in (written, before, after))
    read = pairs.read_known(written, before, after, REAL_WORD_PRIOR)
    assert np.array_equal(read, pairs._read_known(written, before, after, REAL_WORD_PRIOR))
    assert 0 < (read != written).sum() < len(written) / 100, "a few words are read as others; most as written"


def test_the_noisy_channel_is_part_of_the_context_reading_only():
    vocab = Vocabulary(CHANNEL_WORDS)
    pairs = WordPairs.count(vocab, CHANNEL_TEXTS).with_near(vocab)
    assert vocab.reading(True, pairs).read_as("how to lean python", 8) == {}, "without the channel's prior: known words as written"
    assert vocab.reading(True, None, REAL_WORD_PRIOR).real_words == 0.0, "the channel needs the word pairs"


def test_the_table_of_words_one_edit_apart_holds_only_words_the_texts_use():
    vocab = Vocabulary(CHANNEL_WORDS)
    pairs = WordPairs.count(vocab, CHANNEL_TEXTS).with_near(vocab)
    near = {vocab.tokens[i]: [vocab.tokens[j] for j in pairs.near_ids[pairs.near_starts[i] : pairs.near_starts[i + 1]]] for i in range(2, len(vocab.tokens))}
    assert near["lean"] == ["learn"] and near["learn"] == ["lean"]
    assert near["never"] == [] and near["how"] == [], "no known word one edit away, or none the texts use"


def test_questions_read_together_are_read_as_each_alone():
    reading = channel_reading()
    texts = ["how to lean python", "", "lean meat", "how to cook lean meat python", "how to lean", "to lean python"]
    assert reading.ids_of(texts, 3) == [reading.ids(t, 3) for t in texts]
    assert reading.ids("how to lean python", 3)[2] == (reading.index["learn"],), "a word past the kept ones still counts as a neighbour"


def test_word_pairs_with_their_table_are_saved_and_read_back(tmp_path):
    vocab = Vocabulary(CHANNEL_WORDS)
    pairs = WordPairs.count(vocab, CHANNEL_TEXTS).with_near(vocab)
    entry = pairs.save(tmp_path)
    back = WordPairs.load(tmp_path, vocab, entry)
    assert entry["near"] == len(pairs.near_ids)
    assert np.array_equal(back.near_starts, pairs.near_starts) and np.array_equal(back.near_ids, pairs.near_ids)
    with pytest.raises(QsearchError, match="table of words one edit apart is damaged"):
        WordPairs(pairs.words, pairs.keys, pairs.counts, pairs.near_starts[:-1], pairs.near_ids)


def test_without_spelling_a_misspelt_word_reads_as_pieces_and_with_it_as_the_word():
    plain = Vocabulary(WORDS, buckets=100)
    reading = plain.reading(True)
    assert plain.ids("how to learn pyhton", 8)[3] != plain.ids("how to learn python", 8)[3]
    assert reading.ids("how to learn pyhton", 8) == plain.ids("how to learn python", 8)
    assert plain.reading(False) is plain and not plain.spelling, "the training vocabulary is not changed"


@pytest.fixture(scope="module")
def spelling_model(pairs_slice, tmp_path_factory):
    out = tmp_path_factory.mktemp("spelling") / "model"
    config = tiny_config(pairs_slice)
    trained = train(config, log=lambda m: None, teacher=HashTeacher(), cache_dir=out.parent / "cache")
    return calibrate_and_save(trained, config, out, log=lambda m: None), out


def test_a_model_trained_with_a_teacher_reads_misspelt_words_as_the_words_meant(spelling_model):
    encoder, folder = spelling_model
    assert encoder.manifest["spelling"] == SPELLING_CHECKED_NAME
    assert encoder.vocab.meaning is not None, "the channel's readings are checked against the question's other words"
    assert (folder / encoder.manifest["word_pairs"]["file"]).is_file()
    assert encoder.vocab.context.near_starts is not None, "the noisy channel's table is saved with the word pairs"
    misspelt, right = encoder.encode(["How do I lern englsh?", "How do I learn english?"])
    assert float(misspelt @ right) == pytest.approx(1.0, abs=1e-6)


def test_the_same_weights_without_spelling_read_the_misspelling_as_pieces(spelling_model, tmp_path):
    encoder, _ = spelling_model
    manifest = {k: v for k, v in encoder.manifest.items() if k != "spelling"}
    plain = Encoder(manifest, encoder.vocab, encoder.weights, encoder.lexicon)
    misspelt, right = plain.encode(["How do I lern englsh?", "How do I learn english?"])
    assert float(misspelt @ right) < 0.9999
    assert np.allclose(plain.encode(["How do I learn english?"]), encoder.encode(["How do I learn english?"]))


def test_a_model_trained_without_a_teacher_reads_texts_as_written(pairs_slice):
    encoder = train(tiny_config(pairs_slice, distill_epochs=0), log=lambda m: None)
    assert "spelling" not in encoder.manifest and not encoder.vocab.spelling


def test_a_model_naming_an_unknown_spelling_correction_is_a_clear_error(spelling_model, tmp_path):
    import json
    import shutil

    _, folder = spelling_model
    copy = tmp_path / "model"
    shutil.copytree(folder, copy)
    manifest = json.loads((copy / "model.json").read_text())
    manifest["spelling"] = "some-future-corrector-v9"
    (copy / "model.json").write_text(json.dumps(manifest))
    with pytest.raises(QsearchError, match="does not know; upgrade qsearch"):
        Encoder.load(copy)


def test_a_model_that_corrects_by_context_without_its_word_pairs_is_a_clear_error(spelling_model, tmp_path):
    import json
    import shutil

    _, folder = spelling_model
    copy = tmp_path / "model"
    shutil.copytree(folder, copy)
    (copy / "word_pairs.npz").write_bytes(b"not numpy")
    with pytest.raises(QsearchError, match="cannot read the word-pair counts"):
        Encoder.load(copy)
    (copy / "word_pairs.npz").unlink()
    with pytest.raises(QsearchError, match="cannot read the word-pair counts"):
        Encoder.load(copy)
    manifest = json.loads((copy / "model.json").read_text())
    del manifest["word_pairs"]
    (copy / "model.json").write_text(json.dumps(manifest))
    with pytest.raises(QsearchError, match="word-pair counts are missing"):
        Encoder.load(copy)


def test_a_model_that_checks_known_words_without_its_table_is_a_clear_error(spelling_model):
    encoder, _ = spelling_model
    context = encoder.vocab.context
    bare = encoder.vocab.reading(True, WordPairs(context.words, context.keys, context.counts))
    with pytest.raises(QsearchError, match="table of words one edit apart is missing; retrain or restore"):
        Encoder(encoder.manifest, bare, encoder.weights, encoder.lexicon)


def test_a_model_of_the_context_corrector_reads_known_words_as_written():
    encoder = Encoder.load()
    manifest = {**encoder.manifest, "spelling": SPELLING_IN_CONTEXT_NAME}
    before = Encoder(manifest, encoder.vocab, encoder.weights, encoder.lexicon)
    assert before.read_as("What is the best way to lean Python?") == {}
    assert before.read_as("Is it good to eat eggs evry day?") == {"evry": "every"}


def test_a_model_of_the_word_alone_corrector_still_reads_as_it_did():
    encoder = Encoder.load()
    manifest = {k: v for k, v in encoder.manifest.items() if k != "word_pairs"}
    alone = Encoder({**manifest, "spelling": SPELLING_NAME}, encoder.vocab, encoder.weights, encoder.lexicon)
    assert alone.read_as("Is it good to eat eggs evry day?") == {"evry": "very"}, "the most frequent word one edit away"


def test_the_bundled_model_reads_a_misspelt_word_by_its_neighbours():
    encoder = Encoder.load()
    assert encoder.read_as("Is it good to eat eggs evry day?") == {"evry": "every"}
    assert encoder.read_as("How do I tell if a girl liks me?") == {"liks": "likes"}


def test_the_bundled_model_reads_a_misspelt_question_as_the_question_meant():
    encoder = Encoder.load()
    misspelt, right = encoder.encode(["How do I get better at pyhton progamming?", "How do I get better at python programming?"])
    assert float(misspelt @ right) == pytest.approx(1.0, abs=1e-6)
    assert encoder.vocab.ids("lern", 4) == [(encoder.vocab.index["lern"],)], "a word Quora's questions use is read as written"


def test_the_bundled_model_reads_a_typo_that_spells_a_word_by_its_neighbours():
    encoder = Encoder.load()
    assert encoder.manifest["spelling"] == SPELLING_CHECKED_NAME
    assert encoder.read_as("What is the best way to lean Python?") == {"lean": "learn"}
    assert encoder.read_as("How can I learn form home?") == {"form": "from"}
    assert encoder.read_as("Is lean meat healthy?") == {}, "'lean meat' is what the training texts say: read as written"
    typo, right = encoder.encode(["What is the best way to lean Python?", "What is the best way to learn Python?"])
    assert float(typo @ right) == pytest.approx(1.0, abs=1e-6)


def test_the_bundled_model_leaves_a_rare_word_that_fits_its_question_as_written():
    encoder = Encoder.load()
    assert encoder.read_as("What is your review of 2014 Winter Olympics in Sochi?") == {}, "the bigrams alone say 'kochi'"
    assert encoder.read_as("How do I stop my dog from pulling on the leash?") == {}, "the bigrams alone say 'least'"


def test_the_bundled_model_says_which_words_it_read_as_others():
    encoder = Encoder.load()
    assert encoder.read_as("How do I get better at pyhton progamming?") == {"pyhton": "python", "progamming": "programming"}
    assert encoder.read_as("How do I get better at python programming?") == {}
    assert encoder.read_as("Who is Xqzvbn?") == {}, "a word nothing known is one edit from is read as pieces, not as another word"


def test_a_vocabulary_without_spelling_reads_no_word_as_another():
    assert Vocabulary(WORDS, buckets=100).read_as("how to learn pyhton", 8) == {}
    assert Vocabulary(WORDS, buckets=100).reading(True).read_as("how to learn pyhton", 8) == {"pyhton": "python"}
