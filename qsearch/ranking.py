"""The order of search results: cosine, less the neighbour's hubness, plus shared rare words.

Search fetches a few more nearest questions than asked (``candidates``) and orders them by

    cos(q, d) - β * hub(d) + γ * overlap(q, d)

``hub(d)`` (``qsearch.hubness``) is d's mean cosine to its nearest other questions: a question
close to very many others is not every query's best match (CSLS, Conneau et al., 2018, whose
own weight 0.5 was also the best on validation). ``overlap(q, d)`` (``qsearch.lexical``) is the
idf-weighted cosine of their word sets: duplicates tend to share their rarest words. Both
weights were chosen on validation searches against the bundled corpus (benchmarks/ranking.py),
for each way a model pools its LSTM states (``SEARCH_WEIGHTS``): β 0.5 and γ 0.15 for the mean;
a model that pools by attention ranks best with more of both, β 0.75 and γ 0.25.
The cosine here is the search space's (``Encoder.encode``); the scores reported, and the
duplicate verdict (cosine above the threshold), are the verdict space's (``Encoder.to_verdict``),
the same for a model without a pair map. A question identical to the query always comes first.
"""

from __future__ import annotations

from typing import TypeVar

from qsearch.hubness import HUB_NEIGHBOURS
from qsearch.lexical import Lexicon

SEARCH_WEIGHTS = {"mean": (0.5, 0.15), "attention": (0.75, 0.25)}  # (hubness, word overlap) for a model's pooling
EXTRA_CANDIDATES = 10  # results fetched beyond k, for the reordering to choose from
SAME_QUESTION = 1.0 - 1e-4  # a cosine this high is the query itself, which always stays first

Row = TypeVar("Row", bound=tuple)


def candidates(k: int) -> int:
    """How many nearest questions to fetch so that the best ``k`` after reordering are among them."""
    return max(k + EXTRA_CANDIDATES, HUB_NEIGHBOURS + 1)


def overlaps(lexicon: Lexicon | None, question: str, texts: list[str]) -> list[float]:
    """The word overlap of ``question`` with each text; zeros for a model without a lexicon."""
    return lexicon.overlaps(question, texts) if lexicon is not None else [0.0] * len(texts)


def rank(rows: list[Row], k: int, overlap: list[float] | None, weights: tuple[float, float]) -> list[Row]:
    """The best ``k`` of one query's (id, score, text, hub) rows, given each row's word overlap
    with the query (None: 0): the query's own stored copy first, then by the formula above with
    ``weights`` (hubness, word overlap: the model's ``Encoder.search_weights``)."""
    overlap = overlap or [0.0] * len(rows)
    hub, words = weights
    keyed = sorted(
        zip(rows, overlap),
        key=lambda ro: (ro[0][1] < SAME_QUESTION, -(ro[0][1] - hub * ro[0][3] + words * ro[1])),
    )
    return [row for row, _ in keyed[:k]]


def rank_for(question: str, rows: list[Row], k: int, lexicon: Lexicon | None, weights: tuple[float, float]) -> list[Row]:
    """``rank`` of ``question``'s rows, each row's word overlap with it measured by ``lexicon``."""
    return rank(rows, k, overlaps(lexicon, question, [row[2] for row in rows]), weights)
