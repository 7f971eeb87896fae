"""The map after pooling, fitted onto the teacher's space: what it keeps, what it changes."""

import numpy as np
import pytest

from conftest import HashTeacher
from qsearch import Encoder
from qsearch.alignment import OUTPUT_WEIGHT, fit_output_map, neighbour_fit
from qsearch.config import ModelConfig, TrainConfig
from qsearch.errors import QsearchError
from qsearch.silver import nearest_rows
from qsearch.train import refit_output_map, train


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def cosines(x: np.ndarray) -> np.ndarray:
    return unit(x) @ unit(x).T


@pytest.fixture
def spaces() -> tuple[np.ndarray, np.ndarray]:
    """A teacher space and a student that sees it through a lopsided linear lens, plus noise."""
    rng = np.random.default_rng(0)
    teacher = unit(rng.normal(size=(400, 12)))
    lens = rng.normal(size=(12, 6)) * np.array([4.0, 2.0, 1.0, 0.5, 0.25, 0.1])
    return teacher @ lens + 0.01 * rng.normal(size=(400, 6)), teacher


def test_power_zero_changes_no_cosine(spaces):
    student, teacher = spaces
    assert np.allclose(cosines(student @ fit_output_map(student, teacher, 0.0)), cosines(student), atol=1e-5)


def test_power_one_scores_pairs_as_the_least_squares_map_onto_the_teacher(spaces):
    student, teacher = spaces
    w = np.linalg.lstsq(student, teacher, rcond=None)[0]
    assert fit_output_map(student, teacher, 1.0).shape == (6, 6)
    assert np.allclose(cosines(student @ fit_output_map(student, teacher, 1.0)), cosines(student @ w), atol=1e-4)


def test_the_map_brings_the_students_cosines_nearer_the_teachers(spaces):
    student, teacher = spaces
    gap = {p: np.abs(cosines(student @ fit_output_map(student, teacher, p)) - cosines(teacher)).mean() for p in (0.0, 0.5, 1.0)}
    assert gap[1.0] < gap[0.5] < gap[0.0], gap


def test_a_neighbour_fit_is_least_squares_on_each_texts_differences_to_its_nearest_by_the_teacher(spaces):
    student, teacher = spaces
    near, _ = nearest_rows(teacher, 4)
    i, j = np.repeat(np.arange(len(teacher)), 4), near.ravel()
    explicit = np.linalg.lstsq(student[i] - student[j], teacher[i] - teacher[j], rcond=None)[0]
    assert np.allclose(neighbour_fit(student, teacher, 4, block=256), explicit, atol=1e-8), "summed a block at a time, the same fit"
    u, s, _ = np.linalg.svd(explicit, full_matrices=False)
    assert np.allclose(fit_output_map(student, teacher, 1.0, neighbours=4), u * s / s.max(), atol=1e-5)


@pytest.mark.slow
def test_a_model_trained_with_a_teacher_carries_the_map_after_its_pooling(pairs_slice, tmp_path):
    config = TrainConfig(data=pairs_slice, corpus=None, model=ModelConfig(dim=16, embed_dim=16), epochs=1, distill_epochs=1,
                         batch_size=64, threads=1, english_words=0, buckets=500, pair_map_power=0.0)
    lines = []
    mapped = train(config, log=lines.append, teacher=HashTeacher(), cache_dir=tmp_path)
    assert mapped.manifest["output_map"]["power"] == 0.5 and mapped.weights[OUTPUT_WEIGHT].shape == (16, 16)
    assert any(line.startswith("output map fitted") for line in lines)
    texts = ["How old are you?", "What is your age?", "How do I learn Python?"]
    plain = Encoder(mapped.manifest, mapped.vocab, {k: v for k, v in mapped.weights.items() if k != OUTPUT_WEIGHT})
    pooled = plain.encode(texts)
    assert np.allclose(mapped.encode(texts), unit(pooled @ mapped.weights[OUTPUT_WEIGHT]), atol=1e-5)
    assert not np.allclose(mapped.encode(texts), pooled, atol=1e-3), "the map changes the vectors"
    mapped.save(tmp_path / "model")
    saved = Encoder.load(tmp_path / "model").encode(texts)
    assert (saved * mapped.encode(texts)).sum(axis=1).min() > 0.999, "the saved map (int8 rows beneath it) keeps the vectors"


def test_power_zero_trains_a_model_without_a_map_and_a_negative_power_is_refused(pairs_slice, tmp_path):
    config = TrainConfig(data=pairs_slice, corpus=None, model=ModelConfig(dim=16, embed_dim=16), epochs=1, distill_epochs=0,
                         batch_size=64, threads=1, english_words=0, buckets=500, map_power=0.0, pair_map_power=0.0)
    encoder = train(config, log=lambda m: None, teacher=HashTeacher(), cache_dir=tmp_path)
    assert OUTPUT_WEIGHT not in encoder.weights and "output_map" not in encoder.manifest
    with pytest.raises(QsearchError, match="power"):
        train(TrainConfig(data=pairs_slice, map_power=-1.0), log=lambda m: None)
    for neighbours in (-1, 101):
        with pytest.raises(QsearchError, match="neighbours"):
            train(TrainConfig(data=pairs_slice, map_neighbours=neighbours), log=lambda m: None)


def test_a_map_of_the_wrong_shape_is_a_clear_error(tiny_model):
    encoder = Encoder.load(tiny_model)
    with pytest.raises(QsearchError, match="output map"):
        Encoder(encoder.manifest, encoder.vocab, {**encoder.weights, OUTPUT_WEIGHT: np.eye(3, dtype=np.float32)})


def test_the_map_can_be_fitted_again_at_another_power_without_training(pairs_slice, tmp_path):
    config = TrainConfig(data=pairs_slice, corpus=None, model=ModelConfig(dim=16, embed_dim=16), epochs=1, distill_epochs=1,
                         batch_size=64, threads=1, english_words=0, buckets=500, pair_map_power=0.0)
    mapped = train(config, log=lambda m: None, teacher=HashTeacher(), cache_dir=tmp_path)
    again = refit_output_map(mapped, config, HashTeacher(), 0.5, cache_dir=tmp_path, log=lambda m: None)
    assert np.allclose(again.weights[OUTPUT_WEIGHT], mapped.weights[OUTPUT_WEIGHT], atol=1e-5), "the same power gives the same map"
    stronger = refit_output_map(mapped, config, HashTeacher(), 1.0, cache_dir=tmp_path, log=lambda m: None)
    assert stronger.manifest["output_map"]["power"] == 1.0 and stronger.manifest["training"]["map_power"] == 1.0
    assert mapped.manifest["output_map"]["power"] == 0.5, "the model refitted from is left as it was"
    texts = ["How old are you?", "What is your age?", "How do I learn Python?"]
    assert not np.allclose(cosines(stronger.encode(texts)), cosines(mapped.encode(texts)), atol=1e-4)
    on_neighbours = refit_output_map(mapped, config, HashTeacher(), 0.5, cache_dir=tmp_path, log=lambda m: None, neighbours=5)
    assert on_neighbours.manifest["output_map"]["neighbours"] == 5 and on_neighbours.manifest["training"]["map_neighbours"] == 5
    assert not np.allclose(on_neighbours.weights[OUTPUT_WEIGHT], mapped.weights[OUTPUT_WEIGHT], atol=1e-3)
    none = refit_output_map(mapped, config, HashTeacher(), 0.0, cache_dir=tmp_path, log=lambda m: None)
    assert OUTPUT_WEIGHT not in none.weights and "output_map" not in none.manifest


def test_a_map_is_fitted_again_only_on_the_data_the_model_was_trained_on(tiny_model, pairs_slice, tmp_path):
    with pytest.raises(QsearchError, match="vocabulary"):
        refit_output_map(Encoder.load(tiny_model), TrainConfig(data=pairs_slice, corpus=None, english_words=0, buckets=7),
                         HashTeacher(), 0.5, cache_dir=tmp_path, log=lambda m: None)
