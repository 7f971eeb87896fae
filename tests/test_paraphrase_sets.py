"""The hand-written paraphrase sets: the 234-pair set and the 251 pairs written later report, the
202-pair one chooses models, so they must stay apart and stay what their kinds say (never trained
on, see docs/model-card.md)."""

from pathlib import Path

import pandas as pd
import pytest

from qsearch.data import load_pairs

SETS = Path(__file__).resolve().parents[1] / "benchmarks" / "data"
LABEL_OF_KIND = {"other-words": 1, "typo": 1, "detail": 1, "near-miss": 0}


REPORTED = ["paraphrases.csv", "paraphrases_more.csv"]


@pytest.mark.parametrize("name", [*REPORTED, "paraphrases_dev.csv"])
def test_every_row_reads_and_its_label_matches_its_kind(name):
    assert load_pairs(SETS / name).skipped_rows == 0
    frame = pd.read_csv(SETS / name)
    assert set(frame["kind"]) == set(LABEL_OF_KIND)
    assert (frame["kind"].map(LABEL_OF_KIND) == frame["is_duplicate"]).all()


def questions(name: str) -> set[str]:
    frame = load_pairs(SETS / name).frame
    return {q.strip().lower() for q in frame["question1"].tolist() + frame["question2"].tolist()}


@pytest.mark.parametrize("name", REPORTED)
def test_the_development_set_shares_no_question_with_a_report_set(name):
    assert not questions(name) & questions("paraphrases_dev.csv")


def test_the_two_report_sets_share_no_question():
    assert not questions("paraphrases.csv") & questions("paraphrases_more.csv")


def test_the_later_report_set_shares_no_question_with_the_bundled_data():
    """Written after the student had learnt from every bundled question, so none of them is
    one it has seen (the earlier sets were written before that check existed)."""
    from qsearch.data import load_questions
    from qsearch.paths import DEFAULT_CORPUS, DEFAULT_PAIRS

    pairs = load_pairs(DEFAULT_PAIRS).frame
    bundled = {q.strip().lower() for q in pairs["question1"].tolist() + pairs["question2"].tolist() + load_questions(DEFAULT_CORPUS)}
    assert not questions("paraphrases_more.csv") & bundled
