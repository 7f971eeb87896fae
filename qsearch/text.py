"""Tokenizer and vocabulary: text -> token ids, the same way at training and query time."""

from __future__ import annotations

import copy
import hashlib
import re
import string
import unicodedata
import zlib
from collections import Counter
from collections.abc import Iterable
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from qsearch.errors import QsearchError

if TYPE_CHECKING:
    from qsearch.word_meaning import WordMeaning
    from qsearch.word_pairs import WordPairs

PAD, UNK = "<pad>", "<unk>"
_TOKEN = re.compile(r"\w+|[^\w\s]")
TOKENIZER_NAME = "nfkc-lower-words-punct-v1"
PIECES_NAME = "known-word-or-crc32(word,char3)-v2"
MAX_PIECES = 12
SPELLING_NAME = "unknown-ascii-word-to-most-frequent-known-at-one-edit-v1"
SPELLING_IN_CONTEXT_NAME = "unknown-ascii-word-to-known-at-one-edit-by-bigram-context-v1"
SPELLING_REAL_WORDS_NAME = "ascii-word-to-known-at-one-edit-by-bigram-context-and-noisy-channel-v1"
SPELLING_CHECKED_NAME = "ascii-word-to-known-at-one-edit-by-bigram-context-and-noisy-channel-checked-by-meaning-v1"
REAL_WORD_PRIOR = 0.9999  # the noisy channel's chance that a known word is the one meant (benchmarks/training_history.md)
MIN_CORRECTED = 3  # letters; screened against 4 on the bundled model (benchmarks/training_history.md)
EDGE = 0  # a question's start or end as a neighbour in the spelling correction's context: <pad>'s id, which no text holds


def tokenize(text: str) -> list[str]:
    """Split a question into lower-cased word and punctuation tokens.

    NFKC folds look-alike Unicode forms (full-width letters, ligatures) onto one spelling;
    ``\\w`` is Unicode-aware, so accented and non-Latin words stay whole; each punctuation
    mark is its own token because "?" vs "." or "c++" vs "c" carry meaning in questions.
    """
    return _TOKEN.findall(unicodedata.normalize("NFKC", text).lower())


class Vocabulary:
    """Token <-> id table. Id 0 is padding, id 1 the unknown token.

    A known token is one id. An unknown token (a typo, a rare name, a number) is a few hashed
    *pieces* in ``buckets`` extra ids after the known ones: the whole token and its character
    3-grams (fastText's idea), whose embeddings are averaged. So "112" and "436" get different
    vectors, and "lern" shares most pieces with other spellings of its word. With no buckets,
    every unknown token is <unk>.

    With ``spelling`` (a finished model's reading, never training's), an unknown word of ASCII
    letters that is one edit from a known word is read as that word first (``correct``); with
    ``context`` too (the training texts' word pairs), the one its neighbours fit best; with
    ``real_words`` as well (the noisy channel's prior, ``REAL_WORD_PRIOR``), a known word is read
    as another one edit away where its neighbours fit that one far better ("lean python"); with
    ``meaning`` too, only where that one also fits the question's other words at least as well
    (``qsearch.word_meaning``: "butter for dogs" stays).
    """

    def __init__(
        self,
        tokens: list[str],
        buckets: int = 0,
        spelling: bool = False,
        context: WordPairs | None = None,
        real_words: float = 0.0,
        meaning: WordMeaning | None = None,
    ):
        if tokens[:2] != [PAD, UNK]:
            raise ValueError("a vocabulary starts with <pad> and <unk>")
        self.tokens = tokens
        self.buckets = buckets
        self.spelling = spelling
        self.context = context
        self.real_words = real_words
        self.meaning = meaning
        self.index = {t: i for i, t in enumerate(tokens)}
        self._one = [(i,) for i in range(len(tokens))]  # shared, so a tokenized question is a list of references
        self._unknown: dict[str, tuple[int, ...]] = {}
        self._near: dict[str, tuple[int, ...]] = {}

    def reading(
        self, spelling: bool, context: WordPairs | None = None, real_words: float = 0.0, meaning: WordMeaning | None = None
    ) -> "Vocabulary":
        """This vocabulary, reading unknown words with or without spelling correction (with
        ``context``: choosing among a typo's candidates by its neighbours; with ``real_words``
        too, a known word's prior in the noisy channel that checks known words as well; with
        ``meaning`` as well, the channel's readings checked against the question's other words):
        itself when that is how it reads already, else a copy sharing its tables (not its caches)."""
        real_words = real_words if spelling and context is not None else 0.0
        meaning = meaning if real_words else None
        if real_words and context.near_starts is None:
            raise QsearchError(
                "the model checks known words by the noisy channel but its table of words one edit apart is missing; retrain or restore the model"
            )
        if spelling == self.spelling and context is self.context and real_words == self.real_words and meaning is self.meaning:
            return self
        other = copy.copy(self)
        other.spelling, other.context, other.real_words, other.meaning = spelling, context, real_words, meaning
        other._unknown, other._near = {}, {}
        return other

    @classmethod
    def build(
        cls, texts: Iterable[str], min_count: int = 2, max_size: int = 30000, buckets: int = 0, extra: Iterable[str] = ()
    ) -> "Vocabulary":
        """Keep tokens seen at least ``min_count`` times, most frequent first, at most ``max_size``;
        then the ``extra`` words (a general word list) that are not in yet."""
        counts = Counter(t for text in texts for t in tokenize(text))
        kept = [t for t, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if c >= min_count][: max_size - 2]
        known = set(kept)
        kept += [w for w in dict.fromkeys(extra) if w not in known and w not in (PAD, UNK)]
        return cls([PAD, UNK] + kept, buckets)

    def __len__(self) -> int:
        """Number of ids (known tokens plus hash buckets): the embedding table's row count."""
        return len(self.tokens) + self.buckets

    def pieces(self, token: str, before: int | None = None, after: int | None = None) -> tuple[int, ...]:
        """Ids whose mean embedding stands for ``token``: its own id; with spelling, the known
        word ``correct`` reads it as (``before``, ``after``: its neighbours' ids, for context);
        else its hashed pieces."""
        known = self.index.get(token)
        if known is not None:
            return self._one[known]
        if self.spelling:
            corrected = self.correct(token, before, after)
            if corrected is not None:
                return self._one[corrected]
        found = self._unknown.get(token)
        if found is None:
            found = unknown_pieces(token, len(self.tokens), self.buckets) if self.buckets else (1,)
            if len(self._unknown) < 100_000:
                self._unknown[token] = found
        return found

    def near(self, token: str) -> tuple[int, ...]:
        """The known words one edit from ``token`` (a letter deleted, two neighbours swapped,
        one replaced or inserted: Norvig's candidates), lowest id (most frequent) first: training
        words come by count, the general list by its rank.

        Empty for a word of fewer than ``MIN_CORRECTED`` letters or not all ASCII letters, so
        names and non-Latin words are left to their pieces. A misspelt word read as a known word
        takes that word's row, which starts from the teacher's vector of it, instead of pieces
        that training taught only roughly.
        """
        found = self._near.get(token)
        if found is None:
            found = self.known_at_one_edit(token)
            if len(self._near) < 100_000:
                self._near[token] = found
        return found

    def known_at_one_edit(self, token: str) -> tuple[int, ...]:
        """``near`` without its cache: for tables built once over the whole vocabulary."""
        if not MIN_CORRECTED <= len(token) <= self._longest_word + 1 or not (token.isascii() and token.isalpha()):
            return ()
        return tuple(sorted({i for c in one_edit(token) if (i := self.index.get(c, 0)) > 1}))

    def correct(self, token: str, before: int | None = None, after: int | None = None) -> int | None:
        """The id of the known word ``token`` is read as, or None when ``near`` has none: the
        most frequent one; with ``context``, the one that fits between the ``before`` and
        ``after`` ids best (``EDGE`` for a question's start or end, None for a word not known)."""
        near = self.near(token)
        if not near:
            return None
        if self.context is None or len(near) == 1:
            return near[0]
        return self.context.best(near, before, after)

    def read_as(self, text: str, max_len: int) -> dict[str, str]:
        """The words of ``text`` (its first ``max_len`` tokens) that are read as another known
        word, each with that word: what spelling correction changed, so that a user can see it
        (a name read as a common word, say). Empty without spelling correction. Taken from
        ``ids``, so what is shown is what the model reads."""
        if not self.spelling:
            return {}
        out = {}
        for t, found in zip(tokenize(text), self.ids(text, max_len)):
            if len(found) == 1 and 1 < found[0] < len(self.tokens) and found[0] != self.index.get(t):
                out[t] = self.tokens[found[0]]
        return out

    def _neighbours(self, tokens: list[str], n: int) -> tuple[int | None, int | None]:
        """The ids of token ``n``'s neighbours for the spelling correction's context (``EDGE``
        at either end, None for an unknown word); both None without context."""
        if self.context is None:
            return None, None
        get = self.index.get
        return (get(tokens[n - 1]) if n else EDGE), (get(tokens[n + 1]) if n + 1 < len(tokens) else EDGE)

    @cached_property
    def _longest_word(self) -> int:
        """Letters in the longest known ASCII word: a longer token by two or more is no edit
        from any, so ``near`` skips it rather than build its edits (quadratic in length)."""
        return max((len(t) for t in self.tokens if t.isascii() and t.isalpha()), default=0)

    def ids(self, text: str, max_len: int) -> list[tuple[int, ...]]:
        """One tuple of piece ids per token of ``text``, truncated to ``max_len`` tokens."""
        return self.ids_of([text], max_len)[0]

    def ids_of(self, texts: list[str], max_len: int) -> list[list[tuple[int, ...]]]:
        """``ids`` of each text; the noisy channel, when this vocabulary reads with one, weighs
        the known words of all of them in one pass."""
        get, pieces, one, channel = self.index.get, self.pieces, self._one, bool(self.real_words)
        out, written, lengths = [], [], []
        for text in texts:
            tokens = tokenize(text)
            known = [get(t, -1) for t in tokens[: max_len + 1]]  # one token past the kept ones: the last kept word's neighbour
            out.append([one[i] if i >= 0 else pieces(t, *self._neighbours(tokens, n)) for n, (t, i) in enumerate(zip(tokens[:max_len], known))])
            if channel:
                written.extend(known)
                lengths.append(len(known))
        if channel and written:
            self._check_real_words(np.array(written, dtype=np.int64), np.array(lengths, dtype=np.int64), out)
        return out

    def _check_real_words(self, written: np.ndarray, lengths: np.ndarray, out: list[list[tuple[int, ...]]]) -> None:
        """Replace in ``out`` each known word (as written) that the noisy channel
        (``WordPairs.read_known``) reads as another known word one edit away: a typo that
        spells a word ("lean python" for "learn python"). ``written``: every text's token ids
        (-1: not known) end to end, ``lengths`` tokens each."""
        text = np.repeat(np.arange(len(lengths)), lengths)
        offsets = np.cumsum(lengths) - lengths
        first = offsets[lengths > 0]
        position = np.arange(len(written)) - offsets[text]
        before, after = np.roll(written, 1), np.roll(written, -1)
        before[first] = EDGE
        after[first + lengths[lengths > 0] - 1] = EDGE
        kept = np.array([len(ids) for ids in out], dtype=np.int64)[text]
        starts = self.context.near_starts
        own = np.maximum(written, 0)
        at = np.flatnonzero((written > 1) & (position < kept) & (starts[own + 1] > starts[own]))
        if not len(at):
            return
        read = self.context.read_known(written[at], before[at], after[at], self.real_words)
        changed = read != written[at]
        for j, i in zip(at[changed].tolist(), read[changed].tolist()):
            if self.meaning is not None:
                start = offsets[text[j]]
                others = np.delete(written[start : start + kept[j]], position[j])
                if not self.meaning.agrees(int(written[j]), i, others):
                    continue
            out[text[j]][position[j]] = self._one[i]

    @property
    def sha256(self) -> str:
        """Fingerprint stored in model and index manifests to catch a model/index mismatch."""
        return hashlib.sha256(self._serialised().encode("utf-8")).hexdigest()

    def _serialised(self) -> str:
        return f"#buckets {self.buckets}\n" + "\n".join(self.tokens) + "\n"

    def save(self, path: Path) -> None:
        path.write_text(self._serialised(), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> "Vocabulary":
        head, _, body = path.read_text(encoding="utf-8").partition("\n")
        if not head.startswith("#buckets "):
            raise ValueError(f"{path} does not start with a '#buckets N' line")
        return cls(body.split("\n")[:-1], int(head.split()[1]))


def english_words(n: int) -> list[str]:
    """The ``n`` most frequent English words (wordfreq) that the tokenizer keeps whole.

    With a teacher, these give the vocabulary words no training question uses, each starting
    from the teacher's own vector of it, so a question in other words still lands near its meaning.
    """
    if n <= 0:
        return []
    try:
        import wordfreq
    except ImportError:
        raise QsearchError("a vocabulary beyond the training texts needs wordfreq: pip install 'qsearch[teacher]'") from None
    return [w for w in wordfreq.top_n_list("en", n) if w.isalpha() and tokenize(w) == [w]]


def one_edit(word: str) -> set[str]:
    """Every string one edit from ``word`` with the letters a-z: deletes, swaps of neighbours,
    replacements and insertions."""
    letters = string.ascii_lowercase
    splits = [(word[:i], word[i:]) for i in range(len(word) + 1)]
    return (
        {a + b[1:] for a, b in splits if b}
        | {a + b[1] + b[0] + b[2:] for a, b in splits if len(b) > 1}
        | {a + c + b[1:] for a, b in splits if b for c in letters}
        | {a + c + b for a, b in splits for c in letters}
    )


def unknown_pieces(token: str, first: int, buckets: int) -> tuple[int, ...]:
    """The whole token and its character 3-grams (with < > marking the ends), hashed (CRC32)
    into ``buckets`` ids from ``first``; at most ``MAX_PIECES``, the whole token first."""
    marked = f"<{token}>"
    grams = [f"\x01{token}"] + [marked[i : i + 3] for i in range(max(1, len(marked) - 2))]
    return tuple(dict.fromkeys(first + zlib.crc32(g.encode("utf-8", "surrogatepass")) % buckets for g in grams[:MAX_PIECES]))
