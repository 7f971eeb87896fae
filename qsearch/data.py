"""Rows -> pairs: read labelled question pairs and question lists, split pairs by id.

Any CSV/TSV (gzip or not) with ``question1``, ``question2``, ``is_duplicate`` columns loads:
the bundled partial file, Quora's ``quora_duplicate_questions.tsv`` and Kaggle's ``train.csv``.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from qsearch.errors import QsearchError

PAIR_COLUMNS = ("question1", "question2", "is_duplicate")
KIND_COLUMN = "kind"  # optional: what sort of pair a row is (hand-written sets: other-words, typo, near-miss, ...)
SPLIT_RULE = "sha256(str(id)) % 100: <80 train, <90 validation, else test"
SPLITS = ("train", "validation", "test")
log = logging.getLogger("qsearch")


@dataclass
class Table:
    """A loaded file and what was skipped while reading it (never dropped silently)."""

    frame: pd.DataFrame
    skipped_rows: int


def open_text(path: Path) -> io.TextIOBase:
    """Open a text file, gzip or not, as UTF-8 (undecodable bytes become U+FFFD)."""
    opener = gzip.open if path.suffix == ".gz" else open
    return opener(path, "rt", encoding="utf-8", errors="replace", newline="")


def check_file(path: Path) -> None:
    """A clear error for a missing path or a folder where a file is expected."""
    if not path.exists():
        raise QsearchError(f"file not found: {path}")
    if path.is_dir():
        raise QsearchError(f"expected a file, got a folder: {path}")


def read_table(path: Path | str) -> Table:
    """Read a CSV or TSV (separator sniffed from the header), gzip allowed.

    Malformed rows (wrong field count) are skipped and counted; undecodable bytes become U+FFFD.
    """
    path = Path(path)
    check_file(path)
    try:
        with open_text(path) as f:
            header = f.readline()
            if not header.strip():
                raise QsearchError(f"{path} is empty")
            sep = "\t" if header.count("\t") > header.count(",") else ","
            f.seek(0)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                frame = pd.read_csv(
                    f, sep=sep, dtype=str, keep_default_na=False, on_bad_lines="warn", engine="c",
                )
    except (OSError, EOFError, UnicodeError, csv.Error, pd.errors.ParserError) as e:
        raise QsearchError(f"cannot read {path}: {str(e).splitlines()[0]}") from None
    except pd.errors.EmptyDataError:
        raise QsearchError(f"{path} is empty") from None
    skipped = [line for w in caught for line in str(w.message).splitlines() if line.startswith("Skipping line")]
    if skipped:  # said where every caller sees it: build-index, add --file and dedup return only the questions
        first = skipped[0].removeprefix("Skipping ")
        log.warning("%s: %d row(s) with the wrong number of fields skipped (%s%s)", path, len(skipped), first, "; ..." if len(skipped) > 1 else "")
    frame.columns = [c.strip() for c in frame.columns]
    return Table(frame, len(skipped))


def load_pairs(path: Path | str) -> Table:
    """Labelled pairs with columns ``id, question1, question2, is_duplicate`` (int 0/1), and
    ``kind`` when the file has that column (``qsearch evaluate`` then reports each kind).

    Files without an ``id`` column get one from a hash of the two texts, so the split stays
    stable. Rows whose label is not 0/1 are skipped and counted; empty questions are kept.
    """
    table = read_table(path)
    frame = table.frame
    missing = [c for c in PAIR_COLUMNS if c not in frame.columns]
    if missing:
        raise QsearchError(f"{path} has no column(s) {', '.join(missing)}; need {', '.join(PAIR_COLUMNS)}")
    if frame.empty:
        raise QsearchError(f"{path} has a header but no rows")
    label = pd.to_numeric(frame["is_duplicate"].str.strip(), errors="coerce")
    good = label.isin([0, 1])
    if "id" in frame.columns:
        ids = frame["id"].str.strip()
    else:
        ids = pd.Series([_text_id(a, b) for a, b in zip(frame["question1"], frame["question2"])], index=frame.index)
    out = pd.DataFrame(
        {
            "id": ids[good].to_numpy(),
            "question1": frame.loc[good, "question1"].to_numpy(),
            "question2": frame.loc[good, "question2"].to_numpy(),
            "is_duplicate": label[good].astype(np.int8).to_numpy(),
        }
    )
    if KIND_COLUMN in frame.columns:
        out[KIND_COLUMN] = frame.loc[good, KIND_COLUMN].str.strip().to_numpy()
    if out.empty:
        raise QsearchError(f"{path} has no row with is_duplicate 0 or 1")
    return Table(out, table.skipped_rows + int((~good).sum()))


def _text_id(q1: str, q2: str) -> str:
    return "t" + hashlib.sha256(f"{q1}\x00{q2}".encode("utf-8")).hexdigest()[:16]


def split_of(ids: pd.Series | list) -> np.ndarray:
    """'train' / 'validation' / 'test' for each pair id, from a hash of the id alone.

    Row order and other rows play no part, so adding rows never moves a pair between parts.
    """
    buckets = np.array([int.from_bytes(hashlib.sha256(str(i).encode()).digest()[:8], "big") % 100 for i in ids])
    return np.where(buckets < 80, "train", np.where(buckets < 90, "validation", "test"))


def split_pairs(pairs: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The three parts of a pairs frame, each reindexed from 0."""
    parts = split_of(pairs["id"])
    return {name: pairs[parts == name].reset_index(drop=True) for name in SPLITS}


def readable_duplicates(parts: dict[str, pd.DataFrame], part: str) -> tuple[list[str], list[str]]:
    """The first and second questions of the duplicate pairs whose labels a measure of ``part``
    may read: those of ``part`` and of the parts before it in ``SPLITS``, so that a validation
    measure (which chooses models) never reads a test label."""
    read = pd.concat([parts[p] for p in SPLITS[: SPLITS.index(part) + 1]])
    read = read[read["is_duplicate"] == 1]
    return read["question1"].tolist(), read["question2"].tolist()


def duplicate_components(q1: list[str], q2: list[str]) -> dict[str, int]:
    """Connected components of the 'is a duplicate of' graph: question text -> component id."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in zip(q1, q2):
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[ra] = rb
    roots: dict[str, int] = {}
    return {q: roots.setdefault(find(q), len(roots)) for q in parent}


def transitive_pairs(q1: list[str], q2: list[str], max_component: int = 50) -> list[tuple[str, str]]:
    """Duplicate pairs implied by transitivity (a~b, b~c => a~c) that are not already given.

    Components larger than ``max_component`` are skipped: they come from a few very generic
    questions and would flood the batches with one topic.
    """
    given = {frozenset(p) for p in zip(q1, q2)}
    members: dict[int, list[str]] = {}
    for q, c in duplicate_components(q1, q2).items():
        members.setdefault(c, []).append(q)
    extra = []
    for group in members.values():
        if 2 < len(group) <= max_component:
            for i, a in enumerate(group):
                for b in group[i + 1 :]:
                    if frozenset((a, b)) not in given:
                        extra.append((a, b))
    return extra


def load_questions(path: Path | str, column: str | None = None) -> list[str]:
    """Questions from a CSV/TSV column (``question`` by default) or a plain-text file (one a line).

    A ``.txt`` file, or a file whose first line has no such column, is read as plain text.
    Blank lines and blank cells are skipped (they are not questions).
    """
    path = Path(path)
    check_file(path)
    name = path.name.removesuffix(".gz")
    if not name.endswith(".txt"):
        table = read_table(path)
        col = column or "question"
        if col in table.frame.columns:
            return [q for q in table.frame[col].tolist() if q.strip()]
        if column is not None:
            raise QsearchError(f"{path} has no column {column!r}; columns: {', '.join(table.frame.columns)}")
        if name.endswith((".csv", ".tsv")):
            raise QsearchError(f"{path} has no 'question' column; name one with --column")
    try:
        with open_text(path) as f:
            return [line.strip() for line in f if line.strip()]
    except (OSError, EOFError) as e:
        raise QsearchError(f"cannot read {path}: {e}") from None


def pair_questions(path: Path | str) -> list[str]:
    """Every question text of a pairs file (both columns), in file order."""
    pairs = load_pairs(path).frame
    return pairs["question1"].tolist() + pairs["question2"].tolist()


def default_questions() -> list[str]:
    """Every question of the bundled data: both columns of the pairs, then the corpus."""
    from qsearch.paths import DEFAULT_CORPUS, DEFAULT_PAIRS

    return pair_questions(DEFAULT_PAIRS) + load_questions(DEFAULT_CORPUS)
