import pandas as pd
import pytest

from qsearch.data import SPLITS, load_pairs, load_questions, readable_duplicates, split_of, split_pairs, transitive_pairs
from qsearch.errors import QsearchError
from conftest import run_cli, write_gz


def test_split_is_stable_when_rows_are_added(pairs_frame):
    small = pairs_frame.head(500)
    grown = pd.concat([pairs_frame.iloc[3000:3500], small.sample(frac=1, random_state=1)])
    before = dict(zip(small["id"], split_of(small["id"])))
    after = dict(zip(grown["id"], split_of(grown["id"])))
    assert all(after[i] == part for i, part in before.items())


def test_split_is_about_80_10_10(pairs_frame):
    parts = pd.Series(split_of(pairs_frame["id"])).value_counts(normalize=True)
    assert abs(parts["train"] - 0.8) < 0.02 and abs(parts["test"] - 0.1) < 0.02


def test_no_pair_id_is_in_two_parts(pairs_slice):
    parts = split_pairs(load_pairs(pairs_slice).frame)
    ids = [set(p["id"]) for p in parts.values()]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])


def test_kaggle_train_csv_with_empty_questions_loads(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text(
        'id,qid1,qid2,question1,question2,is_duplicate\n'
        '105780,174363,174364,How can I develop android app?,,0\n'
        '363362,493340,493341,,"My Chinese name is Haichao Yu. What English name is most suitable for me?",0\n'
        '7,15,16,"How can I be a good geologist?","What should I do to be a great geologist?",1\n'
    )
    pairs = load_pairs(path).frame
    assert len(pairs) == 3
    assert pairs["question2"].iloc[0] == "" and pairs["question1"].iloc[1] == ""


def test_quora_tsv_release_loads(tmp_path):
    path = tmp_path / "quora_duplicate_questions.tsv"
    path.write_text(
        "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n"
        "0\t1\t2\tWhat is the step by step guide to invest in share market in india?\tWhat is the step by step guide to invest in share market?\t0\n"
        '5\t11\t12\tAstrology: I am a Capricorn Sun Cap moon and cap rising...what does that say about me?\t"I\'m a triple Capricorn (Sun, Moon and ascendant in Capricorn) What does this say about me?"\t1\n'
    )
    pairs = load_pairs(path).frame
    assert pairs["is_duplicate"].tolist() == [0, 1]
    assert pairs["question2"].iloc[1].startswith("I'm a triple Capricorn")


def test_broken_rows_are_counted_not_silently_dropped(tmp_path):
    path = write_gz(
        tmp_path / "pairs.csv.gz",
        "id,question1,question2,is_duplicate\n1,a b,c d,1\n2,x,y,1,extra,fields\n3,e f,g h,maybe\n4,i j,k l,0\n",
    )
    table = load_pairs(path)
    assert len(table.frame) == 2
    assert table.skipped_rows == 2


def test_a_question_list_with_broken_rows_says_which_on_stderr(tmp_path):
    path = tmp_path / "questions.csv"
    path.write_text("question,source\nHow old are you?,forum\nToo,many,fields\nWhat is love?,forum\n")
    result = run_cli("dedup", str(path))
    assert f"warning: {path}: 1 row(s) with the wrong number of fields skipped (line 3: expected 2 fields, saw 3)" in result.stderr
    assert result.stdout.startswith("2 rows:")


@pytest.mark.parametrize(
    "content, message",
    [
        ("", "is empty"),
        ("id,question1,question2,is_duplicate\n", "no rows"),
        ("id,q1,q2,label\n1,a,b,1\n", "no column(s) question1, question2, is_duplicate"),
    ],
)
def test_bad_pair_files_give_clear_errors(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(QsearchError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_pairs(path)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(QsearchError, match="file not found"):
        load_pairs(tmp_path / "nope.csv")


def test_transitive_pairs_join_chains():
    extra = transitive_pairs(["a", "b", "x"], ["b", "c", "y"])
    assert {frozenset(p) for p in extra} == {frozenset(("a", "c"))}


def test_questions_load_from_column_or_plain_text(tmp_path):
    (tmp_path / "q.tsv").write_text("n\ttitle\n1\tHow old are you?\n2\t \n")
    (tmp_path / "q.txt").write_text("How old are you?\n\nWhat is love?\n")
    assert load_questions(tmp_path / "q.tsv", "title") == ["How old are you?"]
    assert load_questions(tmp_path / "q.txt") == ["How old are you?", "What is love?"]
    with pytest.raises(QsearchError, match="no column 'text'"):
        load_questions(tmp_path / "q.tsv", "text")


def test_a_validation_measure_reads_the_train_and_validation_labels_and_never_a_test_one():
    parts = {
        name: pd.DataFrame({"question1": [f"{name} a", f"{name} b"], "question2": [f"{name} c", f"{name} d"], "is_duplicate": [1, 0]})
        for name in SPLITS
    }
    assert readable_duplicates(parts, "validation") == (["train a", "validation a"], ["train c", "validation c"])
    assert readable_duplicates(parts, "test")[0] == ["train a", "validation a", "test a"]
