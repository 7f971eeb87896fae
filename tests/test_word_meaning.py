"""The noisy channel's reading of a known word stands only where the word read fits the
question's other words, by the model's embedding rows, at least as well as the word written."""

import numpy as np

from test_spelling import CHANNEL_TEXTS, CHANNEL_WORDS
from qsearch.text import REAL_WORD_PRIOR, Vocabulary
from qsearch.word_meaning import WordMeaning
from qsearch.word_pairs import WordPairs


def rows_with(near_python: str) -> np.ndarray:
    """Embedding rows for ``CHANNEL_WORDS`` in which ``near_python`` ("learn" or "lean") points
    where "python", "how" and "to" do, and the other of the two elsewhere."""
    rows = np.zeros((len(CHANNEL_WORDS), 2), dtype=np.float32)
    rows[2:] = [0.0, 1.0]
    for w in ("how", "to", "python", near_python):
        rows[CHANNEL_WORDS.index(w)] = [1.0, 0.2]
    return rows


def checked_reading(rows: np.ndarray) -> Vocabulary:
    vocab = Vocabulary(CHANNEL_WORDS)
    pairs = WordPairs.count(vocab, CHANNEL_TEXTS).with_near(vocab)
    return vocab.reading(True, pairs, REAL_WORD_PRIOR, WordMeaning.of(vocab, rows, None))


def test_a_typo_that_spells_a_word_is_read_as_the_word_meant_when_that_one_fits_the_question():
    reading = checked_reading(rows_with("learn"))
    assert reading.read_as("how to lean python", 8) == {"lean": "learn"}


def test_a_known_word_that_fits_its_question_better_than_the_channel_s_reading_stays_as_written():
    reading = checked_reading(rows_with("lean"))
    assert reading.read_as("how to lean python", 8) == {}, "the bigrams say 'learn', the question's words say 'lean'"
    assert reading.ids("how to lean python", 8)[2] == (reading.index["lean"],)


def test_a_question_with_no_other_known_word_is_not_checked():
    reading = checked_reading(rows_with("lean"))
    assert reading.meaning.agrees(CHANNEL_WORDS.index("lean"), CHANNEL_WORDS.index("learn"), np.array([-1, 0, 1]))


def test_the_check_needs_the_noisy_channel():
    vocab = Vocabulary(CHANNEL_WORDS)
    pairs = WordPairs.count(vocab, CHANNEL_TEXTS).with_near(vocab)
    assert vocab.reading(True, pairs, 0.0, WordMeaning.of(vocab, rows_with("lean"), None)).meaning is None


def test_questions_read_together_are_read_as_each_alone_with_the_check():
    reading = checked_reading(rows_with("lean"))
    texts = ["how to lean python", "", "lean meat", "how to lean", "to lean python how", "lean python"]
    assert reading.ids_of(texts, 4) == [reading.ids(t, 4) for t in texts]
