import numpy as np
import pandas as pd

from qsearch import Encoder, SearchEngine
from qsearch.dedup import dedup, pairs_above, read_rows
from conftest import run_cli

ROWS = [
    "How old are you?",
    "How old are you?",
    "How can I learn Python quickly?",
    "What is the best way to learn Python quickly?",
    "",
    "Why is the sky blue?",
]


def test_exact_repeats_share_a_cluster_and_blank_rows_stand_alone():
    frame = pd.DataFrame({"id": range(len(ROWS)), "question": ROWS})
    result = dedup(frame, "question", Encoder.load())
    clusters = result.rows["cluster"].tolist()
    assert clusters[0] == clusters[1] and result.rows["cluster_size"].iloc[0] == 2
    assert result.rows["cluster_size"].iloc[4] == 1 and clusters[4] not in clusters[:4] + clusters[5:]
    assert list(result.rows.columns) == ["id", "question", "cluster", "cluster_size"]


def test_known_duplicate_pairs_are_clustered(pairs_frame):
    dups = pairs_frame[pairs_frame["is_duplicate"] == 1].head(200)
    frame = pd.DataFrame({"question": dups["question1"].tolist() + dups["question2"].tolist()})
    encoder = Encoder.load()
    result = dedup(frame, "question", encoder, threshold=encoder.threshold)
    same = (result.rows["cluster"].iloc[:200].to_numpy() == result.rows["cluster"].iloc[200:].to_numpy()).mean()
    assert same > 0.6, f"only {same:.0%} of known duplicate pairs ended in one cluster"


def test_every_pair_above_the_threshold_is_found_once_across_blocks(corpus_questions):
    """The blocked range searches find what the full cosine matrix finds, each pair once."""
    vectors = Encoder.load().encode(corpus_questions)
    scores = vectors @ vectors.T
    for threshold in (0.6, 0.8):
        want = {(i, j) for i, j in zip(*np.nonzero(scores > threshold)) if i < j and abs(scores[i, j] - threshold) > 1e-5}
        a, b = pairs_above(vectors, threshold, block=128)
        found = list(zip(a.tolist(), b.tolist()))
        assert len(found) == len(set(found)) and all(i < j for i, j in found)
        assert want and want <= set(found) and len(found) - len(want) <= 2, threshold


def test_a_threshold_above_one_clusters_nothing():
    frame = pd.DataFrame({"question": ROWS})
    result = dedup(frame, "question", Encoder.load(), threshold=1.01)
    assert (result.rows["cluster_size"] == 1).all()


def test_against_an_index_reports_the_best_match(tmp_path):
    engine = SearchEngine.build(["How old are you?", "Why is the sky blue?"], path=tmp_path / "idx")
    frame = pd.DataFrame({"question": ["How old are you?", "zzzz qqqq"]})
    result = dedup(frame, "question", engine.encoder, against=engine)
    assert result.rows["index_text"].iloc[0] == "How old are you?"


def test_cli_writes_input_columns_first(tmp_path):
    src = tmp_path / "archive.tsv"
    pd.DataFrame({"n": range(len(ROWS)), "title": ROWS}).to_csv(src, sep="\t", index=False)
    out = tmp_path / "clusters.csv"
    printed = run_cli("dedup", str(src), "--column", "title", "--out", str(out))
    assert "2 clusters of duplicates holding 4 rows" in printed.stdout
    written = pd.read_csv(out, keep_default_na=False)
    assert list(written.columns) == ["n", "title", "cluster", "cluster_size"] and len(written) == len(ROWS)


def test_an_output_in_a_missing_folder_is_a_one_line_error_with_the_reason(tmp_path):
    src = tmp_path / "q.txt"
    src.write_text("How old are you?\nWhat is love?\n")
    result = run_cli("dedup", str(src), "--out", str(tmp_path / "no" / "such" / "out.csv"), check=False)
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert "cannot write" in result.stderr and result.stderr.split("out.csv: ", 1)[1].strip() not in ("", "None")


def test_plain_text_files_read_one_question_a_line(tmp_path):
    src = tmp_path / "q.txt"
    src.write_text("How old are you?\nWhat is love?\n")
    rows, column = read_rows(src)
    assert column == "question" and rows[column].tolist() == ["How old are you?", "What is love?"]


def test_default_threshold_is_the_models_cluster_threshold():
    encoder = Encoder.load()
    result = dedup(pd.DataFrame({"question": ROWS}), "question", encoder)
    assert result.threshold == encoder.cluster_threshold > encoder.threshold


def test_cli_counts_one_cluster_in_the_singular(tmp_path):
    src = tmp_path / "two.csv"
    pd.DataFrame({"question": ["How old are you?", "How old are you?", "Why is the sky blue?"]}).to_csv(src, index=False)
    printed = run_cli("dedup", str(src))
    assert printed.stdout.startswith("3 rows: 1 cluster of duplicates holding 2 rows ")


def test_cli_counts_one_row_in_the_singular(tmp_path):
    src = tmp_path / "one.csv"
    pd.DataFrame({"question": ["Why is the sky blue?"]}).to_csv(src, index=False)
    assert run_cli("dedup", str(src)).stdout.startswith("1 row: 0 clusters of duplicates holding 0 rows ")
