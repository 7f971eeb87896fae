"""The word gap: verdicts read the words one question lacks, which mean pooling blurs."""

import json

import numpy as np
import pandas as pd
import pytest

from qsearch import Encoder
from qsearch.config import ModelConfig, TrainConfig
from qsearch.dedup import dedup
from qsearch.errors import QsearchError
from qsearch.train import train
from conftest import HashTeacher, run_cli


@pytest.fixture(scope="module")
def bundled() -> Encoder:
    return Encoder.load()


def gaps(encoder: Encoder, pairs: list[tuple[str, str]]) -> np.ndarray:
    first, second = zip(*pairs)
    return encoder.word_gaps(list(first), list(second))


def test_the_same_words_in_another_order_leave_no_gap(bundled):
    assert gaps(bundled, [("Why is creativity important?", "Why creativity is important?")]).tolist() == [0.0]


def test_an_opposite_costs_more_than_a_synonym(bundled):
    synonym, opposite = gaps(bundled, [("How do I buy a house?", "How do I purchase a house?"), ("How do I buy a house?", "How do I sell a house?")])
    assert 0 < synonym < opposite


def test_a_verdict_is_the_cosine_less_the_weighted_gap(bundled):
    first, second = ["What is the capital of Peru?"], ["What is the capital of Chile?"]
    v = bundled.pair_vectors(first + second)
    cosine = float(v[0] @ v[1])
    assert bundled.word_gap_weight == 0.2
    assert bundled.verdicts(first, second)[0] == pytest.approx(cosine - 0.2 * gaps(bundled, [(first[0], second[0])])[0], abs=1e-6)
    assert bundled.verdicts(first, second)[0] < cosine


def test_a_model_without_a_word_gap_judges_by_the_cosine_alone(tmp_path, bundled):
    plain = Encoder({k: v for k, v in bundled.manifest.items() if k != "word_gap"}, bundled.vocab, bundled.weights, bundled.lexicon)
    first, second = ["How do I buy a house?"], ["How do I sell a house?"]
    v = plain.pair_vectors(first + second)
    assert plain.word_gap_weight == 0 and plain.word_gaps(first, second).tolist() == [0.0]
    assert plain.verdicts(first, second)[0] == pytest.approx(float(v[0] @ v[1]), abs=1e-6)


def test_compare_shows_the_cosine_the_gap_and_the_verdict_score(bundled):
    out = run_cli("compare", "What is the capital of Peru?", "What is the capital of Chile?")
    words = out.stdout.split()
    cosine, gap, score = float(words[1]), float(words[7]), float(words[9])
    assert out.stdout.startswith("cosine ") and " - 0.2 x word gap " in out.stdout
    assert score == pytest.approx(cosine - 0.2 * gap, abs=2e-4) and "not duplicate" in out.stdout


def test_dedup_links_a_pair_only_when_its_verdict_clears_the_threshold(bundled):
    pair = ["What is the capital of Peru?", "What is the capital of Chile?"]
    v = bundled.pair_vectors(pair)
    cosine, verdict = float(v[0] @ v[1]), float(bundled.verdicts(pair[:1], pair[1:])[0])
    between = (cosine + verdict) / 2
    rows = pd.DataFrame({"question": pair})
    assert dedup(rows, "question", bundled, threshold=between).rows["cluster_size"].tolist() == [1, 1]
    assert dedup(rows, "question", bundled, threshold=verdict - 0.01).rows["cluster_size"].tolist() == [2, 2]


@pytest.mark.slow
def test_a_model_trained_with_a_teacher_judges_with_the_word_gap(pairs_slice, tmp_path):
    config = TrainConfig(data=pairs_slice, corpus=None, model=ModelConfig(dim=16, embed_dim=16, layers=1), epochs=1, distill_epochs=1,
                         batch_size=64, threads=1, english_words=0, buckets=500, detail_pairs=100)
    lines: list[str] = []
    model = train(config, log=lines.append, teacher=HashTeacher(), cache_dir=tmp_path)
    assert model.manifest["word_gap"] == 0.2 and model.manifest["training"]["word_gap"] == 0.2
    assert any(line.startswith("verdicts: the cosine less 0.2 x the pair's word gap") for line in lines)
    model.save(tmp_path / "model")
    saved = Encoder.load(tmp_path / "model")
    assert saved.word_gap_weight == 0.2 and saved.word_gaps(["How do I buy a house?"], ["How do I sell a house?"])[0] > 0


def test_a_negative_word_gap_weight_is_refused(pairs_slice):
    with pytest.raises(QsearchError, match="word gap"):
        train(TrainConfig(data=pairs_slice, word_gap=-0.1), log=lambda m: None)


def test_a_malformed_word_gap_in_a_models_manifest_is_one_clear_error(tmp_path, bundled):
    bundled.save(tmp_path / "model")
    manifest = json.loads((tmp_path / "model" / "model.json").read_text())
    (tmp_path / "model" / "model.json").write_text(json.dumps({**manifest, "word_gap": "lots"}))
    with pytest.raises(QsearchError, match="word gap weight is 'lots'"):
        Encoder.load(tmp_path / "model")
