"""The map fitted on the labelled pairs: what it weights, and how training carries it."""

import numpy as np
import pytest

from conftest import HashTeacher
from qsearch.alignment import OUTPUT_WEIGHT
from qsearch.config import ModelConfig, TrainConfig
from qsearch.errors import QsearchError
from qsearch.evaluate import roc_auc
from qsearch.pair_map import PAIR_WEIGHT, SHRINK, difference_covariances, enough_pairs, fit_pair_map
from qsearch.train import refit_output_map, train


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def pairs(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Synthetic pairs in 8 dimensions: a duplicate's partner moves mostly along the first four
    (rewording), a near-miss's mostly along the last two (what is asked); both share a topic."""
    topic = rng.normal(size=(n, 8)) * 3
    duplicate = rng.random(n) < 0.5
    reword = rng.normal(size=(n, 8)) * np.array([1.0, 1.0, 1.0, 1.0, 0.1, 0.1, 0.1, 0.1])
    other = rng.normal(size=(n, 8)) * np.array([1.0, 1.0, 1.0, 1.0, 0.1, 0.1, 1.0, 1.0])
    partner = topic + np.where(duplicate[:, None], reword, other)
    return unit(topic), unit(partner), duplicate


def test_the_map_sets_near_misses_apart_from_rewordings_on_pairs_it_was_not_fitted_on():
    rng = np.random.default_rng(0)
    a, b, dup = pairs(rng, 4000)
    d = a - b
    same, other = d[dup].T @ d[dup] / dup.sum(), d[~dup].T @ d[~dup] / (~dup).sum()
    mapping = fit_pair_map(same, other, 1.0)
    a2, b2, dup2 = pairs(rng, 2000)
    plain = roc_auc((a2 * b2).sum(axis=1), dup2)
    mapped = roc_auc((unit(a2 @ mapping) * unit(b2 @ mapping)).sum(axis=1), dup2)
    assert mapped > plain + 0.05, (plain, mapped)


def test_power_zero_whitens_the_shrunk_duplicate_differences_and_power_weights_the_ratio():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(500, 6)), rng.normal(size=(500, 6)) * np.array([1, 2, 3, 1, 1, 0.5])
    same, other = x.T @ x / 500, y.T @ y / 500
    shrunk = (1 - SHRINK) * same + SHRINK * np.mean(np.diag(same)) * np.eye(6)
    zero = fit_pair_map(same, other, 0.0).astype(np.float64)
    assert np.allclose(zero.T @ shrunk @ zero, np.eye(6), atol=1e-4)
    one = fit_pair_map(same, other, 1.0).astype(np.float64)
    ratio = np.diag(one.T @ other @ one) / np.diag(one.T @ shrunk @ one)
    weights = np.diag(one.T @ shrunk @ one)
    assert np.allclose(weights / weights.max(), ratio / ratio.max(), atol=1e-4), "each direction weighted by its ratio"


def test_covariances_summed_a_block_at_a_time_are_the_whole_ones():
    rng = np.random.default_rng(2)
    table = {f"q{n}": rng.normal(size=4) for n in range(60)}
    first, second = [f"q{n}" for n in range(30)], [f"q{n}" for n in range(30, 60)]
    dup = rng.random(30) < 0.4
    encode = lambda texts: np.array([table[t] for t in texts])  # noqa: E731 - a lookup stands in for a model
    same, other = difference_covariances(encode, first, second, dup, block=7)
    d = encode(first) - encode(second)
    assert np.allclose(same, d[dup].T @ d[dup] / dup.sum()) and np.allclose(other, d[~dup].T @ d[~dup] / (~dup).sum())


def test_too_few_pairs_of_either_label_are_not_enough():
    assert enough_pairs(64, 64, 32) and not enough_pairs(63, 1000, 32) and not enough_pairs(1000, 0, 32)


@pytest.fixture(scope="module")
def paired(pairs_slice, tmp_path_factory):
    """A model trained with the fake teacher and every map at its default, with its config."""
    config = TrainConfig(data=pairs_slice, corpus=None, model=ModelConfig(dim=16, embed_dim=16), epochs=1, distill_epochs=1,
                         batch_size=64, threads=1, english_words=0, buckets=500)
    lines: list[str] = []
    cache = tmp_path_factory.mktemp("cache")
    return train(config, log=lines.append, teacher=HashTeacher(), cache_dir=cache), config, lines, cache


@pytest.mark.slow
def test_a_model_trained_with_a_teacher_keeps_the_pair_map_beside_its_output_map(paired):
    model, config, lines, cache = paired
    record = model.manifest["pair_map"]
    assert record["power"] == 1.5 and record["duplicates"] > 0 and record["non_duplicates"] > 0
    assert any(line.startswith("pair map fitted on") for line in lines)
    assert model.has_pair_map and model.weights[PAIR_WEIGHT].shape == (16, 16)
    without = refit_output_map(model, config, HashTeacher(), 0.5, cache_dir=cache, log=lambda m: None, pair_power=0.0)
    assert "pair_map" not in without.manifest and without.manifest["training"]["pair_map_power"] == 0.0
    assert not without.has_pair_map and without.weights[OUTPUT_WEIGHT].shape == model.weights[OUTPUT_WEIGHT].shape
    texts = ["How old are you?", "What is your age?", "How do I learn Python?"]
    assert np.allclose(without.encode(texts), model.encode(texts), atol=1e-4), "search's vectors come before the pair map"
    assert np.allclose(without.pair_vectors(texts), without.encode(texts)), "without it, verdicts share search's space"
    assert not np.allclose(without.pair_vectors(texts), model.pair_vectors(texts), atol=1e-3), "the pair map changes the verdicts"
    again = refit_output_map(without, config, HashTeacher(), 0.5, cache_dir=cache, log=lambda m: None, pair_power=1.5)
    assert np.allclose(again.pair_vectors(texts), model.pair_vectors(texts), atol=1e-4), "fitted again, the same map"


@pytest.mark.slow
def test_without_an_output_map_the_pair_map_alone_follows_the_pooling(paired):
    model, config, _, cache = paired
    alone = refit_output_map(model, config, HashTeacher(), 0.0, cache_dir=cache, log=lambda m: None)
    assert "output_map" not in alone.manifest and alone.manifest["pair_map"]["power"] == 1.5
    assert OUTPUT_WEIGHT not in alone.weights and alone.weights[PAIR_WEIGHT].shape == (16, 16)


def test_a_negative_pair_map_power_is_refused(pairs_slice):
    with pytest.raises(QsearchError, match="pair map"):
        train(TrainConfig(data=pairs_slice, pair_map_power=-1.0), log=lambda m: None)


@pytest.mark.slow
def test_a_train_part_with_too_few_non_duplicates_trains_without_a_pair_map_and_says_so(pairs_frame, tmp_path):
    from qsearch.data import split_pairs

    frame = pairs_frame.head(1500)
    train_part = split_pairs(frame)["train"]
    dropped = set(train_part.loc[train_part["is_duplicate"] == 0, "id"].iloc[10:])  # ten labelled non-duplicates left to train on
    path = tmp_path / "few_negatives.csv"
    frame[~frame["id"].isin(dropped)].to_csv(path, index=False)
    config = TrainConfig(data=path, corpus=None, model=ModelConfig(dim=16, embed_dim=16), epochs=1, distill_epochs=0,
                         batch_size=64, threads=1, english_words=0, buckets=500)
    lines: list[str] = []
    model = train(config, log=lines.append, teacher=HashTeacher(), cache_dir=tmp_path)
    assert "pair_map" not in model.manifest and "output_map" in model.manifest
    assert any(line.startswith("no pair map: it needs 32 labelled duplicates and as many non-duplicates") for line in lines)
