"""Changed copies of questions: a dropped word, two words swapped, a typo, or a word replaced
by one of its nearest words ("capital of Peru" -> "capital of Chile").

Two uses in training with a teacher. On the fly, the student reads a noisy copy and is pulled
towards the teacher's vector of the clean question: people type "lern pyhton" and mean "learn
python". And as *copies* the teacher reads itself (``teacher_copies``): then the teacher says
whether the change kept the meaning (a typo, mostly) or not (Chile is not Peru; converting
Fahrenheit to Celsius is not the reverse), which clean targets alone would teach wrongly.
"""

from __future__ import annotations

import numpy as np
from threadpoolctl import threadpool_limits

from qsearch.silver import nearest_rows

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


def word_neighbours(words: list[str], vectors: np.ndarray, k: int = 8, skip: int = 150) -> dict[str, list[str]]:
    """Each word's ``k`` nearest other words by the teacher's cosine (``vectors``: one unit row
    per word). The ``skip`` first words (the most frequent, mostly function words) and words
    that are not alphabetic or shorter than three letters neither get nor give neighbours.

    Computed on one BLAS thread, so the neighbours, the teacher copies made from them and the
    copies' cache key are the same whatever ``--threads`` a run takes (20,000 words: seconds)."""
    keep = [n for n, w in enumerate(words) if n >= skip and len(w) >= 3 and w.isalpha()]
    if len(keep) <= k:
        return {}
    with threadpool_limits(1, user_api="blas"):  # BLAS sums in another order on more threads, flipping near-ties
        index, _ = nearest_rows(vectors[keep], k)
    return {words[keep[row]]: [words[keep[j]] for j in near] for row, near in enumerate(index.tolist())}


def augment(question: str, rng: np.random.Generator, neighbours: dict[str, list[str]] | None = None) -> str:
    """A copy with one random change; questions of fewer than four words come back unchanged.

    With ``neighbours``, half of the copies replace a word that has neighbours by one of them
    (if the question has such a word)."""
    words = question.split()
    if len(words) < 4:
        return question
    if neighbours and rng.random() < 0.5:
        bare = [w.strip("?.,!\"'()").lower() for w in words]
        candidates = [n for n, w in enumerate(bare) if w in neighbours]
        if candidates:
            i = candidates[int(rng.integers(len(candidates)))]
            near = neighbours[bare[i]]
            words[i] = words[i].lower().replace(bare[i], near[int(rng.integers(len(near)))])
            return " ".join(words)
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


def teacher_copies(questions: list[str], share: float, neighbours: dict[str, list[str]], rng: np.random.Generator) -> list[str]:
    """Changed copies for the teacher to encode (none equal to a question or to another copy):
    see the module's docstring. ``share`` is copies per question: up to 1, the share of the
    questions given one; above 1, rounds of one copy each (2.0: two copies of every question;
    the first round draws as ``share`` 1.0 does)."""
    known = set(questions)
    copies = []
    for round_ in range(int(np.ceil(share))):
        chance = min(1.0, share - round_)
        for q in questions:
            if rng.random() < chance:
                copy = augment(q, rng, neighbours)
                if copy not in known:
                    known.add(copy)
                    copies.append(copy)
    return copies
