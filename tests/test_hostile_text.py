"""Property-based: arbitrary text never gives a traceback or a 5xx, only results or QsearchError."""

import json

import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings, strategies as st

from qsearch import Encoder, SearchEngine
from qsearch.errors import QsearchError
from qsearch.server import create_app
from qsearch.text import tokenize

# Any code point, surrogates and control characters included; sometimes very long.
ANY_TEXT = st.one_of(
    st.text(st.characters(min_codepoint=0, max_codepoint=0x10FFFF), max_size=60),
    st.text(st.characters(min_codepoint=0, max_codepoint=0x10FFFF), min_size=5_000, max_size=20_000),
    st.sampled_from(["", " ", "\x00", "\ud800", "\udfff?", "\u200b", "?" * 30_000, "🙂" * 300, "\n\t\r"]),
)
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.data_too_large, HealthCheck.too_slow])


@pytest.fixture(scope="module")
def engine(tmp_path_factory, corpus_questions):
    return SearchEngine.build(corpus_questions[:100], path=tmp_path_factory.mktemp("hostile") / "idx")


@pytest.fixture(scope="module")
def client(engine):
    return TestClient(create_app(engine), raise_server_exceptions=False)


@pytest.fixture(scope="module")
def encoder():
    return Encoder.load()


@SETTINGS
@given(texts=st.lists(ANY_TEXT, min_size=1, max_size=4))
def test_encode_takes_any_text(encoder, texts):
    v = encoder.encode(texts)
    assert v.shape[0] == len(texts) and np.isfinite(v).all()


@SETTINGS
@given(text=ANY_TEXT)
def test_any_text_says_which_of_its_words_were_read_as_others(encoder, text):
    read_as = encoder.read_as(text)
    assert all(word in tokenize(text) and meant in encoder.vocab.index and word != meant for word, meant in read_as.items())


@SETTINGS
@given(text=ANY_TEXT)
def test_search_add_and_remove_take_any_text_or_refuse_it_clearly(engine, text):
    try:
        [matches] = engine.search([text], k=2)
        assert len(matches) == 2
        [i] = engine.add([text])
        assert engine.texts([i])[i]
        assert engine.remove([text]) == [i] and engine.texts([i]) == {}
    except QsearchError as e:
        assert str(e) and "\n" not in str(e)


@SETTINGS
@given(text=ANY_TEXT, k=st.integers(-3, 200), threshold=st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)))
def test_the_http_api_never_answers_5xx(client, text, k, threshold):
    body = json.dumps({"query": text, "k": k, "threshold": threshold})
    r = client.post("/search", content=body, headers={"content-type": "application/json"})
    assert r.status_code < 500, r.text
    assert "error" in r.json() or "matches" in r.json()
    r = client.post("/add", content=json.dumps({"questions": [text]}), headers={"content-type": "application/json"})
    assert r.status_code < 500, r.text
    r = client.post("/remove", content=json.dumps({"questions": [text], "ids": [k, k * 2**60]}), headers={"content-type": "application/json"})
    assert r.status_code < 500, r.text
