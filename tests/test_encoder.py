from dataclasses import fields, replace

import numpy as np
import pytest
import torch

from qsearch import Encoder
from qsearch.encoder import MODEL_FORMAT_VERSION
from qsearch.errors import QsearchError
from qsearch.config import ModelConfig, TrainConfig
from qsearch.model import LSTM_CHUNK, LSTMEncoder, batch_tensors


def torch_module(encoder: Encoder) -> LSTMEncoder:
    """The torch twin of a saved model, for checking the numpy inference against it."""
    module = LSTMEncoder(ModelConfig.from_dict(encoder.manifest["model"]))
    module.load_state_dict({k: torch.tensor(v.astype(np.float32)) for k, v in encoder.weights.items()})
    return module.eval()


def test_encode_gives_unit_float32_rows(tiny_model):
    encoder = Encoder.load(tiny_model)
    v = encoder.encode(["How old are you?", "What is the capital of France?"])
    assert v.dtype == np.float32 and v.shape == (2, encoder.dim)
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)


def test_padding_does_not_change_a_questions_vector(tiny_model):
    encoder = Encoder.load(tiny_model)
    short = "How old are you?"
    long = "What is the best way to learn the piano as an adult who has never played any instrument before?"
    alone = encoder.encode([short])[0]
    in_batch = encoder.encode([long, short, "Why?"])[1]
    assert np.allclose(alone, in_batch, atol=1e-6)


def test_torch_module_masks_padding_too(tiny_model):
    encoder = Encoder.load(tiny_model)
    module = torch_module(encoder)
    ids = encoder.token_ids(["How old are you?", "What is the best way to learn the piano as an adult?"])
    with torch.no_grad():
        alone = module(*batch_tensors(ids[:1]))[0]
        padded = module(*batch_tensors(ids))[0]
    assert torch.allclose(alone, padded, atol=1e-6)


def random_twin(encoder: Encoder, layers: int, bidirectional: bool = True, pooling: str = "attention") -> Encoder:
    """An encoder with the tiny model's vocabulary and another LSTM shape, of random weights
    (an attention pooling's query too, so that its weights are far from the mean's)."""
    config = ModelConfig.from_dict({**encoder.manifest["model"], "layers": layers, "bidirectional": bidirectional, "pooling": pooling})
    torch.manual_seed(0)
    module = LSTMEncoder(config)
    if pooling == "attention":
        torch.nn.init.normal_(module.pool_query, std=3.0)
    weights = {k: v.detach().numpy() for k, v in module.state_dict().items()}
    return Encoder({**encoder.manifest, "model": config.to_dict()}, encoder.vocab, weights)


SHAPES = ["2 layers", "1 layer, one direction", "2 layers, one direction", "1 layer, mean pooling"]


@pytest.mark.parametrize("shape", ["trained", *SHAPES])
def test_numpy_inference_matches_the_torch_module(tiny_model, shape):
    """Both directions run fused in one numpy step, and attention pooling reads the backward
    direction's states in its own order; each shape must still equal torch's LSTM."""
    encoder = Encoder.load(tiny_model)
    if shape != "trained":
        pooling = "mean" if "mean" in shape else "attention"
        encoder = random_twin(encoder, layers=int(shape[0]), bidirectional="one direction" not in shape, pooling=pooling)
    module = torch_module(encoder)
    texts = ["How old are you?", "Which is the best laptop under 500 dollars for programming?", "Why?"]
    with torch.no_grad():
        expected = module(*batch_tensors(encoder.token_ids(texts))).numpy()
    assert np.allclose(encoder.encode(texts), expected, atol=1e-5)


def test_torch_module_keeps_each_rows_vector_across_its_length_sorted_chunks(tiny_model, pairs_frame):
    """Training runs the LSTM on rows sorted by length, LSTM_CHUNK at a time, and pieces of
    unknown words summed by embedding_bag: each row must still get its own vector, in its place."""
    encoder = Encoder.load(tiny_model)
    texts = pairs_frame["question1"].head(3 * LSTM_CHUNK).tolist() + ["Whyyyyy is qwertzuiop so unpronounceable?", "Hi"]
    ids = encoder.token_ids(texts)
    assert len({len(q) for q in ids}) > 10 and max(len(p) for q in ids for p in q) > 1
    with torch.no_grad():
        vectors = torch_module(encoder)(*batch_tensors(ids)).numpy()
    assert np.allclose(vectors, encoder.encode(texts), atol=1e-5)


def test_save_load_round_trip_gives_identical_vectors(tiny_model, tmp_path):
    encoder = Encoder.load(tiny_model)
    encoder.save(tmp_path / "copy")
    texts = ["How do I learn Python?", "Is Mars habitable?"]
    assert np.array_equal(encoder.encode(texts), Encoder.load(tmp_path / "copy").encode(texts))
    assert Encoder.load(tmp_path / "copy").threshold == encoder.threshold


def test_the_embedding_table_is_stored_as_int8_rows_each_with_a_scale(tiny_model, tmp_path):
    """The table is nearly all of a model folder; int8 rows make it a quarter of float32's size,
    and a question's vector moves by about 1e-3."""
    from safetensors.numpy import load_file

    trained = Encoder.load(tiny_model)
    table = np.random.default_rng(0).normal(0, 1, trained.weights["embedding.weight"].shape).astype(np.float32)
    exact = Encoder(trained.manifest, trained.vocab, {**trained.weights, "embedding.weight": table})
    exact.save(tmp_path / "saved")
    stored = load_file(str(tmp_path / "saved" / "model.safetensors"))
    assert stored["embedding.weight"].dtype == np.int8 and stored["embedding.scale"].shape == (len(table),)
    texts = ["How do I learn Python?", "Is Mars habitable?", "What is the capital of Peru?"]
    cosines = (exact.encode(texts) * Encoder.load(tmp_path / "saved").encode(texts)).sum(axis=1)
    assert cosines.min() > 0.999


def test_a_model_saved_in_float16_by_an_older_qsearch_still_loads(tiny_model, tmp_path):
    import json

    from safetensors.numpy import save_file

    trained = Encoder.load(tiny_model)
    old = tmp_path / "old"
    trained.save(old)
    save_file({k: v.astype(np.float16) for k, v in trained.weights.items()}, str(old / "model.safetensors"))
    manifest = json.loads((old / "model.json").read_text())
    (old / "model.json").write_text(json.dumps({**manifest, "format_version": 2}))
    texts = ["How do I learn Python?", "Is Mars habitable?"]
    assert np.allclose(Encoder.load(old).encode(texts), trained.encode(texts), atol=2e-3)
    (old / "model.json").write_text(json.dumps({**manifest, "format_version": 8}))
    with pytest.raises(QsearchError, match="format version 8, this qsearch reads 2, 3, 4, 5, 6 or 7"):
        Encoder.load(old)


def test_long_questions_are_truncated_and_odd_ones_encode(tiny_model):
    encoder = Encoder.load(tiny_model)
    huge = "why " * 50_000
    v = encoder.encode([huge, "¿Qué es la vida? 日本語 � 🙂", "", "   "])
    assert np.allclose(np.linalg.norm(v[:2], axis=1), 1.0, atol=1e-5)
    assert not v[2:].any()


def test_encoding_on_several_threads_gives_the_same_vectors(corpus_questions):
    from qsearch.encoder import set_threads

    encoder = Encoder.load()
    one = encoder.encode(corpus_questions, batch_size=32)
    try:
        set_threads(3)
        several = encoder.encode(corpus_questions, batch_size=32)
    finally:
        set_threads(1)
    assert len(corpus_questions) > 3 * 32 and np.array_equal(one, several)


def test_default_model_loads_without_arguments():
    encoder = Encoder.load()
    assert encoder.dim == ModelConfig().dim and 0 < encoder.threshold < 1


def test_the_bundled_model_is_what_the_default_recipe_trains():
    """The README says `qsearch train --teacher minilm` with every option at its default writes
    the bundled model: its recorded shape and recipe must be today's defaults."""
    manifest = Encoder.load().manifest
    assert manifest["format_version"] == MODEL_FORMAT_VERSION, "an older qsearch must refuse what it cannot read"
    defaults = TrainConfig()
    recipe = {f.name: getattr(defaults, f.name) for f in fields(TrainConfig) if f.name not in ("data", "corpus", "model", "threads")}
    assert {name: manifest["training"][name] for name in recipe} == recipe
    assert ModelConfig.from_dict(manifest["model"]) == replace(defaults.model, vocab_size=manifest["model"]["vocab_size"])
    assert manifest["training"]["teacher"]["name"] == "all-MiniLM-L6-v2"


def test_a_folder_that_is_not_a_model_is_a_clear_error(tmp_path):
    with pytest.raises(QsearchError, match="not a qsearch model folder"):
        Encoder.load(tmp_path)
    with pytest.raises(QsearchError, match="model folder not found"):
        Encoder.load(tmp_path / "missing")
    (tmp_path / "model.json").write_text("{not json")
    with pytest.raises(QsearchError, match="cannot read"):
        Encoder.load(tmp_path)
