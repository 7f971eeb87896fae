"""Tokenizer and vocabulary: text -> token ids, the same way at training and query time."""

from __future__ import annotations

import hashlib
import re
import unicodedata
import zlib
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

PAD, UNK = "<pad>", "<unk>"
_TOKEN = re.compile(r"\w+|[^\w\s]")
TOKENIZER_NAME = "nfkc-lower-words-punct-v1"


def tokenize(text: str) -> list[str]:
    """Split a question into lower-cased word and punctuation tokens.

    NFKC folds look-alike Unicode forms (full-width letters, ligatures) onto one spelling;
    ``\\w`` is Unicode-aware, so accented and non-Latin words stay whole; each punctuation
    mark is its own token because "?" vs "." or "c++" vs "c" carry meaning in questions.
    """
    return _TOKEN.findall(unicodedata.normalize("NFKC", text).lower())


class Vocabulary:
    """Token <-> id table. Id 0 is padding, id 1 the unknown token.

    Unknown tokens are hashed (CRC32) into ``buckets`` extra ids after the known ones, so two
    different rare words (two city names, say) still get different vectors; with no buckets
    they all share <unk>.
    """

    def __init__(self, tokens: list[str], buckets: int = 0):
        if tokens[:2] != [PAD, UNK]:
            raise ValueError("a vocabulary starts with <pad> and <unk>")
        self.tokens = tokens
        self.buckets = buckets
        self.index = {t: i for i, t in enumerate(tokens)}

    @classmethod
    def build(cls, texts: Iterable[str], min_count: int = 2, max_size: int = 30000, buckets: int = 0) -> "Vocabulary":
        """Keep tokens seen at least ``min_count`` times, most frequent first, at most ``max_size``."""
        counts = Counter(t for text in texts for t in tokenize(text))
        kept = [t for t, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if c >= min_count]
        return cls([PAD, UNK] + kept[: max_size - 2], buckets)

    def __len__(self) -> int:
        """Number of ids (known tokens plus hash buckets): the embedding table's row count."""
        return len(self.tokens) + self.buckets

    def _unknown(self, token: str) -> int:
        if not self.buckets:
            return 1
        return len(self.tokens) + zlib.crc32(token.encode("utf-8")) % self.buckets

    def ids(self, text: str, max_len: int) -> list[int]:
        """Token ids of ``text`` (unknown tokens hashed into buckets), truncated to ``max_len``."""
        get = self.index.get
        return [get(t) or self._unknown(t) for t in tokenize(text)[:max_len]]

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
