"""The hand-written paraphrase sets: the 234-pair set reports, the 202-pair one chooses models,
so they must stay apart and stay what their kinds say (never trained on, see the README)."""

from pathlib import Path

import pandas as pd
import pytest

from qsearch.data import load_pairs

SETS = Path(__file__).resolve().parents[1] / "benchmarks" / "data"
LABEL_OF_KIND = {"other-words": 1, "typo": 1, "detail": 1, "near-miss": 0}


@pytest.mark.parametrize("name", ["paraphrases.csv", "paraphrases_dev.csv"])
def test_every_row_reads_and_its_label_matches_its_kind(name):
    assert load_pairs(SETS / name).skipped_rows == 0
    frame = pd.read_csv(SETS / name)
    assert set(frame["kind"]) == set(LABEL_OF_KIND)
    assert (frame["kind"].map(LABEL_OF_KIND) == frame["is_duplicate"]).all()


def test_the_development_set_shares_no_question_with_the_report_set():
    def questions(name: str) -> set[str]:
        frame = load_pairs(SETS / name).frame
        return {q.strip().lower() for q in frame["question1"].tolist() + frame["question2"].tolist()}

    assert not questions("paraphrases.csv") & questions("paraphrases_dev.csv")
