"""Questions with a situation stated before them, as duplicates of the bare question.

People often say who they are or what happened before they ask ("I have never run more than
5 km but signed up for a marathon. How should I train?"), and the question is still the bare
one. Quora's duplicates rarely show that, so the student learned to let an extra sentence pull
a question away from its duplicate. Training with a teacher pairs some questions with a copy
that has a statement sentence before it, taken from another training question's own text: the
statement is unrelated to the question, so what the pair teaches is that a sentence of
circumstance does not change what is asked.
"""

from __future__ import annotations

import re

import numpy as np

from qsearch.text import tokenize

QUESTION_WORDS = frozenset(
    "how what why when where which who whom whose is are can could do does did should will would was were has have am may shall".split()
)
MIN_WORDS, MAX_WORDS = 4, 25  # a statement's length
MAX_COPY_WORDS = 50  # statement and question together, well inside the encoder's 64 tokens


def statements(texts: list[str]) -> list[tuple[int, str]]:
    """(row, sentence) for each statement inside a multi-sentence text: a sentence before the
    last that ends in a full stop, has 4 to 25 words, and does not start with a question word."""
    found = []
    for row, text in enumerate(texts):
        for sentence in re.split(r"(?<=[.!?])\s+", text)[:-1]:
            words = sentence.split()
            if (
                sentence.endswith(".")
                and not sentence.endswith("e.g.")
                and MIN_WORDS <= len(words) <= MAX_WORDS
                and words[0].lower().strip("'\"(") not in QUESTION_WORDS
            ):
                found.append((row, sentence))
    return found


def detail_copies(questions: list[str], n: int, rng: np.random.Generator) -> list[tuple[int, str]]:
    """Up to ``n`` (row, copy) pairs: questions in random order, each given a random statement
    of another question's text before it (none when no text has a statement)."""
    found = statements(questions)
    copies: list[tuple[int, str]] = []
    if not found:
        return copies
    for row in rng.permutation(len(questions)):
        if len(copies) == n:
            break
        source, sentence = found[rng.integers(len(found))]
        question = questions[row]
        if source == row or len(sentence.split()) + len(question.split()) > MAX_COPY_WORDS or not tokenize(question):
            continue
        copies.append((int(row), f"{sentence} {question}"))
    return copies
