"""Noisy copies of questions (a dropped word, two words swapped, a typo) to teach robustness.

With a teacher, the student reads the noisy copy and is pulled towards the teacher's vector of
the clean question: people type "lern pyhton" and mean "learn python".
"""

from __future__ import annotations

import numpy as np

_LETTERS = "abcdefghijklmnopqrstuvwxyz"


def typo(word: str, rng: np.random.Generator) -> str:
    """One keyboard slip in a word of three letters or more: a letter dropped, doubled,
    replaced, or two neighbours swapped."""
    if len(word) < 3 or not word.isalpha():
        return word
    i = int(rng.integers(1, len(word) - 1))
    kind = int(rng.integers(4))
    if kind == 0:
        return word[:i] + word[i + 1 :]
    if kind == 1:
        return word[:i] + word[i] + word[i:]
    if kind == 2:
        return word[:i] + _LETTERS[int(rng.integers(26))] + word[i + 1 :]
    return word[: i - 1] + word[i] + word[i - 1] + word[i + 1 :]


def augment(question: str, rng: np.random.Generator) -> str:
    """A copy with one random change; questions of fewer than four words come back unchanged."""
    words = question.split()
    if len(words) < 4:
        return question
    kind = int(rng.integers(3))
    i = int(rng.integers(len(words)))
    if kind == 0:
        del words[i]
    elif kind == 1:
        j = min(i + 1, len(words) - 1) if i < len(words) - 1 else i - 1
        words[i], words[j] = words[j], words[i]
    else:
        words[i] = typo(words[i], rng)
    return " ".join(words)
