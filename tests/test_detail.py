"""Questions with a stated situation before them join the triplet stage as duplicates."""

import numpy as np

from conftest import HashTeacher
from qsearch.detail import detail_copies, statements
from qsearch.train import _add_detail_pairs, _distill_batches, _training_data, train
from test_teacher import tiny_config

TEXTS = [
    "I am 25 and about 20 kg overweight. How do I lose weight?",
    "How do I learn Python?",
    "My laptop is five years old. It takes ages to boot. How can I make it faster?",
    "What is e.g. a good book? I mean one for beginners.",  # the last sentence is never a statement
    "How do I cook rice? What about quinoa?",  # questions are not statements
    "Ok. Why is the sky blue?",  # too short
]


def test_statements_are_the_sentences_of_circumstance_before_a_question():
    assert statements(TEXTS) == [
        (0, "I am 25 and about 20 kg overweight."),
        (2, "My laptop is five years old."),
        (2, "It takes ages to boot."),
    ]


def test_a_copy_states_another_questions_situation_before_the_question():
    copies = detail_copies(TEXTS, 10, np.random.default_rng(0))
    assert 0 < len(copies) <= 10 and len({row for row, _ in copies}) == len(copies)
    for row, copy in copies:
        sentence = copy[: -len(TEXTS[row]) - 1]
        assert copy.endswith(" " + TEXTS[row]) and sentence in [s for _, s in statements(TEXTS)]
        assert sentence not in TEXTS[row], "never the question's own statement"
    assert len(detail_copies(TEXTS, 2, np.random.default_rng(0))) == 2
    assert detail_copies(["How?", "Why is it so?"], 5, np.random.default_rng(0)) == [], "no statement, no copy"


def test_detail_pairs_are_duplicates_in_the_questions_cluster_that_distillation_never_reads(pairs_slice):
    data = _training_data(tiny_config(pairs_slice), True, lambda line: None)
    before, rows = list(data.pairs), data.distilled_rows
    copies = _add_detail_pairs(data, 50, 64, np.random.default_rng(7))
    assert len(copies) == 50 and data.pairs[: len(before)] == before and len(data.pairs) == len(before) + 100
    clusters = {p[3]: p[2] for p in before}
    for (a_ids, b_ids, cluster, a, b, weight), copy in zip(data.pairs[len(before) :: 2], copies):
        assert b == rows + copies.index(copy) and copy.endswith(" " + data.questions[a]) and weight == 1.0
        assert a_ids == data.ids[data.questions[a]] and b_ids == data.ids[copy]
        assert cluster == clusters.get(a, cluster) and (a in clusters or cluster > max(clusters.values()))
    assert data.pairs[len(before) + 1][3:5] == data.pairs[len(before)][4:2:-1], "both directions"
    assert data.distilled_rows == rows
    distilled = {n for batch in _distill_batches(data, tiny_config(pairs_slice), np.random.default_rng(0)) for _, n in batch}
    assert max(distilled) < rows


def test_training_with_a_teacher_adds_the_detail_pairs_and_without_one_does_not(pairs_slice, tmp_path):
    lines = []
    model = train(tiny_config(pairs_slice, detail_pairs=80), log=lines.append, teacher=HashTeacher(), cache_dir=tmp_path)
    assert any(line.startswith("detail pairs: 80 questions") for line in lines), lines
    assert any(line.startswith("teacher hash-bag-of-words-48: encoded 80 detail copies") for line in lines), lines
    with_pairs = model.manifest["training"]["training_pairs"]
    lines = []
    model = train(tiny_config(pairs_slice, detail_pairs=0), log=lines.append, teacher=HashTeacher(), cache_dir=tmp_path)
    assert model.manifest["training"]["training_pairs"] == with_pairs - 160
    lines = []
    train(tiny_config(pairs_slice, detail_pairs=80, distill_epochs=0), log=lines.append, cache_dir=tmp_path)
    assert not any(line.startswith("detail pairs") for line in lines), "the triplet-only recipe stays as it was"
