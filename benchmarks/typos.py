"""How often the spelling correction gives back the word meant, for one random typo a word.

A word of running text (validation questions of the bundled pairs, so frequent words come up as
often as users type them) gets one random edit of each kind: a letter deleted, two neighbours
swapped, one replaced or one inserted (Norvig's four). The question is then read with the typo
in its place, so a corrector that looks at the neighbours has them. The model's reading of the
misspelt token is then one of: the word meant; another known word (the typo is one edit from
another word too, and the corrector took that one); hashed pieces (nothing known is one edit
away, or the word is too short or not ASCII); or, before any correction, a known word
already, read as written (the typo spells another word, "form" for "from": only the noisy
channel of a model that has one reads such a word as another, where its neighbours fit that
one far better). Prints the shares by kind and by the word's length, and writes results/typos.json.

    python benchmarks/typos.py
    python benchmarks/typos.py --model models/mine --words 4000
"""

from __future__ import annotations

import argparse
import random
import string
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import machine, save
from qsearch import Encoder
from qsearch.data import load_pairs, split_pairs
from qsearch.paths import DEFAULT_PAIRS
from qsearch.text import MIN_CORRECTED, tokenize

KINDS = ("delete", "swap", "replace", "insert")
OUTCOMES = ("the word meant", "another known word", "pieces", "known, read as written")
BANDS = ((MIN_CORRECTED, 4), (5, 7), (8, 99))


def misspell(word: str, kind: str, rng: random.Random) -> str | None:
    """``word`` with one random edit of ``kind`` that changes it; None when none can."""
    i = rng.randrange(len(word))
    if kind == "delete":
        return word[:i] + word[i + 1 :] if len(word) > 1 else None
    if kind == "swap":
        spots = [j for j in range(len(word) - 1) if word[j] != word[j + 1]]
        if not spots:
            return None
        j = rng.choice(spots)
        return word[:j] + word[j + 1] + word[j] + word[j + 2 :]
    if kind == "replace":
        return word[:i] + rng.choice([c for c in string.ascii_lowercase if c != word[i]]) + word[i + 1 :]
    return word[:i] + rng.choice(string.ascii_lowercase) + word[i:]


def outcome(encoder: Encoder, tokens: list[str], n: int, typo: str) -> str:
    """What the model reads ``typo`` as in place of token ``n`` of a question's ``tokens``."""
    word = tokens[n]
    read = encoder.read_as(" ".join([*tokens[:n], typo, *tokens[n + 1 :]])).get(typo)
    if read is None:
        return "known, read as written" if typo in encoder.vocab.index else "pieces"
    return "the word meant" if read == word else "another known word"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="model folder (default: the bundled model)")
    parser.add_argument("--words", type=int, default=4000, help="words drawn, each misspelt once of each kind")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    encoder = Encoder.load(args.model)
    if not encoder.vocab.spelling:
        sys.exit(f"{args.model or 'the bundled model'} reads every word as written: it has no spelling correction to measure")
    validation = split_pairs(load_pairs(DEFAULT_PAIRS).frame)["validation"]
    questions = [tokenize(q)[: encoder.max_len] for q in validation["question1"].tolist() + validation["question2"].tolist()]
    spots = [
        (tokens, n) for tokens in questions for n, t in enumerate(tokens)
        if len(t) >= MIN_CORRECTED and t.isascii() and t.isalpha() and t in encoder.vocab.index
    ]
    rng = random.Random(args.seed)
    drawn = [rng.choice(spots) for _ in range(args.words)]

    counts: dict[str, Counter] = {}
    for tokens, n in drawn:
        word = tokens[n]
        band = next(f"{lo}-{hi}" if hi < 99 else f"{lo}+" for lo, hi in BANDS if lo <= len(word) <= hi)
        for kind in KINDS:
            typo = misspell(word, kind, rng)
            if typo is None or typo == word:
                continue
            got = outcome(encoder, tokens, n, typo)
            for key in (kind, f"{band} letters", "all"):
                counts.setdefault(key, Counter())[got] += 1

    print(f"{encoder.name}: {args.words} words of the validation questions' running text, each misspelt once of each kind")
    print(f"{'':>12}" + "".join(f"{o:>26}" for o in OUTCOMES) + f"{'typos':>8}")
    table = {}
    for key in [*KINDS, *(f"{lo}-{hi} letters" if hi < 99 else f"{lo}+ letters" for lo, hi in BANDS), "all"]:
        c = counts.get(key, Counter())
        n = sum(c.values())
        if not n:
            continue
        table[key] = {"typos": n, **{o: c[o] / n for o in OUTCOMES}}
        print(f"{key:>12}" + "".join(f"{c[o] / n:>26.3f}" for o in OUTCOMES) + f"{n:>8}")
    save("typos", {"machine": machine(), "model": encoder.name, "words": args.words, "seed": args.seed, "results": table})


if __name__ == "__main__":
    main()
