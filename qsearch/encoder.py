"""Text -> unit vectors with a trained model folder, in numpy (no torch needed at query time).

A model folder holds ``model.json`` (manifest), ``model.safetensors`` (weights: the embedding
table as int8 rows, each with a float16 scale, since it is nearly all of the folder; the rest
float16),
``vocab.txt`` and, for search's ranking, how many training texts hold each word
(``qsearch.lexical``; models trained before it have none and rank without it). A model
trained with a teacher also has a square map applied after pooling (``qsearch.alignment``;
older models have none), and from format 4 a second one, the pair map (``qsearch.pair_map``),
kept apart: ``encode`` gives the vectors search ranks by, ``to_verdict`` carries them into the
space whose cosines decide "duplicate" (format 3 folded it into the first, one space for both).
From format 5 a model may name a spelling correction in its manifest (``"spelling"``): an
unknown word one edit from a known one is then read as that word (``qsearch.text``), chosen by
its neighbours when the folder holds the training texts' word pairs (``qsearch.word_pairs``),
and, with the noisy channel's table beside them, a known word is read as another one edit
away where its neighbours fit that one far better (a typo that spells a word), and, from the
channel checked by meaning (``qsearch.word_meaning``), only where that one fits the question's
other words at least as well by the model's own embedding rows.
From format 6 a manifest may give verdicts a word gap (``"word_gap"``, its weight): a pair's
verdict is its cosine less that weight times how far the words one question lacks are from
the other's (``qsearch.word_gap``), so near-misses that differ in one word score lower.
From format 7 the manifest's model may pool by attention (``"pooling": "attention"``, with
the weight ``pool_query``): each real position's state weighted by softmax(q . h_t) over the
question, where older models take the mean; an older qsearch refuses such a model rather than
read it as a mean. The LSTM
runs as in torch (gate order i, f, g, o). The first layer's input projection is linear, so
each distinct token of an ``encode`` call is projected once (a token made of pieces is the
mean of its pieces' projections) and each step gathers its rows, then does one small matmul.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from qsearch.alignment import OUTPUT_WEIGHT
from qsearch.config import POOL_QUERY, ModelConfig
from qsearch.errors import QsearchError
from qsearch.lexical import Lexicon
from qsearch.manifest import read_manifest, write_json
from qsearch.pair_map import PAIR_WEIGHT
from qsearch.ranking import SEARCH_WEIGHTS
from qsearch.paths import DEFAULT_MODEL
from qsearch.text import REAL_WORD_PRIOR, SPELLING_CHECKED_NAME, SPELLING_IN_CONTEXT_NAME, SPELLING_NAME, SPELLING_REAL_WORDS_NAME, Vocabulary
from qsearch.word_gap import WordGap
from qsearch.word_meaning import WordMeaning
from qsearch.word_pairs import WordPairs

MODEL_FORMAT_VERSION = 7  # 7: may pool by attention; 6: verdicts may subtract the word gap; 5: may read unknown words with spelling correction; 4: the pair map kept apart; 3: int8 embedding rows; 2 (float16 throughout) still loads
READABLE_VERSIONS = (2, 3, 4, 5, 6, 7)
EMBEDDING = "embedding.weight"
EMBEDDING_SCALE = "embedding.scale"
_HINT = "train one with `qsearch train --out DIR` or omit --model to use the bundled one"
_threads = 1


def set_threads(n: int) -> None:
    """How many threads ``Encoder.encode`` spreads a long list's batches over (1 at first).

    The batches are independent and numpy lets go of the GIL in their matmuls and tanh, so up
    to the number of cores each thread adds speed; the vectors are the same. BLAS itself should
    stay at one thread (``OMP_NUM_THREADS=1``, as the command line sets) so the two do not
    multiply. Process-wide, like ``faiss.omp_set_num_threads``: set it once, at the entry point.
    """
    global _threads
    _threads = max(1, int(n))


def stored(weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The weights as a model folder holds them: each embedding row as int8 times its own
    float16 scale (its largest magnitude / 127), everything else float16. A quarter of float32's
    size for the table that is nearly all of a model; a cosine moves by about 1e-3."""
    out = {k: v.astype(np.float16) for k, v in weights.items() if k != EMBEDDING}
    table = weights[EMBEDDING].astype(np.float32)
    scale = (np.abs(table).max(axis=1) / 127.0).astype(np.float16)
    safe = np.where(scale > 0, scale.astype(np.float32), 1.0)[:, None]
    out[EMBEDDING] = np.clip(np.rint(table / safe), -127, 127).astype(np.int8)
    out[EMBEDDING_SCALE] = scale
    return out


def from_stored(weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Float32 weights from a folder's (``stored``'s form, or the older all-float16 one)."""
    out = {k: v.astype(np.float32) for k, v in weights.items() if k != EMBEDDING_SCALE}
    if EMBEDDING_SCALE in weights and EMBEDDING in weights:
        out[EMBEDDING] *= weights[EMBEDDING_SCALE].astype(np.float32)[:, None]
    return out


def _unit_rows(rows: np.ndarray) -> np.ndarray:
    """``rows`` scaled in place to unit length; a zero row (a text without tokens) stays zero."""
    norms = np.sqrt(np.einsum("ij,ij->i", rows, rows))[:, None]  # no n x d temporary, unlike np.linalg.norm: 10x faster on a corpus
    np.divide(rows, norms, out=rows, where=norms > 0)
    return rows


class Encoder:
    """A trained Siamese LSTM encoder: ``encode(texts)`` gives L2-normalised float32 rows."""

    def __init__(self, manifest: dict, vocab: Vocabulary, weights: dict[str, np.ndarray], lexicon: Lexicon | None = None):
        self.manifest = manifest
        spelling = manifest.get("spelling")
        if spelling not in (None, SPELLING_NAME, SPELLING_IN_CONTEXT_NAME, SPELLING_REAL_WORDS_NAME, SPELLING_CHECKED_NAME):
            raise QsearchError(f"the model reads words with {spelling!r}, which this qsearch does not know; upgrade qsearch")
        in_context = spelling in (SPELLING_IN_CONTEXT_NAME, SPELLING_REAL_WORDS_NAME, SPELLING_CHECKED_NAME)
        if in_context and vocab.context is None:
            raise QsearchError("the model corrects spelling by context but its word-pair counts are missing; retrain or restore the model")
        real_words = REAL_WORD_PRIOR if spelling in (SPELLING_REAL_WORDS_NAME, SPELLING_CHECKED_NAME) else 0.0
        self.weights = weights
        self.lexicon = lexicon
        cfg = ModelConfig.from_dict(manifest["model"])
        self.dim: int = cfg.dim
        self.max_len: int = cfg.max_len
        self.hidden: int = cfg.hidden
        self.pooling: str = cfg.pooling
        self._emb = np.asarray(weights[EMBEDDING], dtype=np.float32)  # no copy of a float32 table
        if self._emb.shape != (len(vocab), cfg.embed_dim):
            raise QsearchError("model weights do not match its vocabulary; retrain the model")
        meaning = WordMeaning.of(vocab, self._emb, lexicon) if spelling == SPELLING_CHECKED_NAME else None
        self.vocab = vocab.reading(spelling is not None, vocab.context if in_context else None, real_words, meaning)
        self._layers = [self._fused_layer(weights, n, 2 if cfg.bidirectional else 1) for n in range(cfg.layers)]
        self._pool_query = weights[POOL_QUERY].astype(np.float32) if cfg.pooling == "attention" else None
        if self._pool_query is not None and self._pool_query.shape != (cfg.dim,):
            raise QsearchError(f"model's pooling query is {self._pool_query.shape}, not ({cfg.dim},); retrain the model")
        self._output = weights[OUTPUT_WEIGHT].astype(np.float32) if OUTPUT_WEIGHT in weights else None
        if self._output is not None and self._output.shape != (cfg.dim, cfg.dim):
            raise QsearchError(f"model's output map is {self._output.shape}, not ({cfg.dim}, {cfg.dim}); retrain the model")
        self._pair = weights[PAIR_WEIGHT].astype(np.float32) if PAIR_WEIGHT in weights else None
        if self._pair is not None and self._pair.shape != (cfg.dim, cfg.dim):
            raise QsearchError(f"model's pair map is {self._pair.shape}, not ({cfg.dim}, {cfg.dim}); retrain the model")
        gap = manifest.get("word_gap", 0.0)
        if isinstance(gap, bool) or not isinstance(gap, (int, float)) or not 0 <= gap < float("inf"):
            raise QsearchError(f"the model's word gap weight is {gap!r}, not a number of 0 or more; retrain or restore the model")
        self._gap = WordGap(self._emb, lexicon) if gap and lexicon is not None else None

    def _fused_layer(self, weights: dict[str, np.ndarray], n: int, directions: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Layer ``n``'s weights with the directions stacked, so one step runs them all.

        Input columns: each direction's gates i, f, o, g in turn (torch orders them i, f, g, o);
        the recurrent matrices are stacked (directions, h, 4h) for one batched matmul. The i, f,
        o columns are halved, so that one tanh serves all four gates (sigmoid(x) = 0.5 tanh(x/2)
        + 0.5).
        """
        h = self.hidden
        order = np.r_[0 : 2 * h, 3 * h : 4 * h, 2 * h : 3 * h]
        scale = np.r_[np.full(3 * h, 0.5), np.ones(h)].astype(np.float32)

        def get(name: str) -> np.ndarray:
            w = weights[f"lstm.{name}"].astype(np.float32)[order]
            return w * (scale[:, None] if w.ndim == 2 else scale)

        names = [f"l{n}{sfx}" for sfx in ["", "_reverse"][:directions]]
        w_in = np.concatenate([get(f"weight_ih_{d}").T for d in names], axis=1)
        bias = np.concatenate([get(f"bias_ih_{d}") + get(f"bias_hh_{d}") for d in names])
        w_hh = np.stack([get(f"weight_hh_{d}").T for d in names])
        return np.ascontiguousarray(w_in), bias, np.ascontiguousarray(w_hh)

    @property
    def threshold(self) -> float:
        """Cosine above which two questions count as duplicates (chosen on validation)."""
        return float(self.manifest["threshold"])

    @property
    def cluster_threshold(self) -> float:
        """Stricter cut for grouping duplicates (validation precision >= 0.8); dedup's default."""
        return float(self.manifest.get("threshold_cluster", self.threshold))

    @property
    def name(self) -> str:
        return str(self.manifest.get("name", "qsearch-lstm"))

    @classmethod
    def load(cls, path: Path | str | None = None) -> "Encoder":
        """Load a model folder; ``None`` loads the bundled default model."""
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        path = Path(path) if path is not None else DEFAULT_MODEL
        if not path.is_dir():
            raise QsearchError(f"model folder not found: {path}; {_HINT}")
        manifest = read_manifest(path / "model.json", "model", READABLE_VERSIONS, _HINT)
        try:
            vocab = Vocabulary.load(path / "vocab.txt")
            weights = from_stored(load_file(str(path / "model.safetensors")))
        except (OSError, ValueError, SafetensorError) as e:
            raise QsearchError(f"cannot read model in {path}: {e}; {_HINT}") from None
        if vocab.sha256 != manifest["vocab_sha256"]:
            raise QsearchError(f"{path}/vocab.txt does not match its manifest; retrain or restore the model")
        lexicon = Lexicon.load(path, vocab, manifest["lexicon"]) if "lexicon" in manifest else None
        if manifest.get("word_gap") and lexicon is None:
            raise QsearchError(f"the model in {path} weighs word gaps but its manifest names no word counts; retrain or restore the model")
        if "word_pairs" in manifest:
            vocab = vocab.reading(vocab.spelling, WordPairs.load(path, vocab, manifest["word_pairs"]))
        try:
            return cls(manifest, vocab, weights, lexicon)
        except KeyError as e:
            raise QsearchError(f"model in {path} lacks weight {e}; {_HINT}") from None

    def save(self, path: Path | str) -> None:
        """Write the folder: weights as ``stored`` gives them, vocab, word counts, manifest."""
        from safetensors.numpy import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        save_file(stored(self.weights), str(path / "model.safetensors"))
        self.manifest["format_version"] = MODEL_FORMAT_VERSION
        self.vocab.save(path / "vocab.txt")
        self.manifest.pop("lexicon", None)
        if self.lexicon is not None:
            self.manifest["lexicon"] = self.lexicon.save(path)
        else:
            self.manifest.pop("word_gap", None)  # the gap weighs words by their counts: none without them
        self.manifest.pop("word_pairs", None)
        if self.vocab.context is not None:
            self.manifest["word_pairs"] = self.vocab.context.save(path)
        write_json(path / "model.json", self.manifest)

    @property
    def search_weights(self) -> tuple[float, float]:
        """Search's weights of hubness and shared words for this model's pooling (``qsearch.ranking``)."""
        return SEARCH_WEIGHTS[self.pooling]

    @property
    def has_pair_map(self) -> bool:
        """Whether verdicts are cosines in a space of their own (``to_verdict``), not search's."""
        return self._pair is not None

    def to_verdict(self, vectors: np.ndarray) -> np.ndarray:
        """The unit vectors, given ``encode``'s, whose cosines are the model's verdicts: the ones
        the threshold applies to. Search ranks by ``encode``'s cosines, which keep the topic
        directions that the pair map weights down; a model without a pair map uses one space."""
        if self._pair is None:
            return vectors
        return _unit_rows(np.asarray(vectors, dtype=np.float32) @ self._pair)

    def read_as(self, text: str) -> dict[str, str]:
        """The words of ``text`` this model reads as other words (its spelling correction), each
        with the word it reads: ``{"pyhton": "python"}``; empty when it reads every word as written."""
        return self.vocab.read_as(text, self.max_len)

    def pair_vectors(self, texts: list[str]) -> np.ndarray:
        """``to_verdict(encode(texts))``: what two questions' verdict cosine is taken from."""
        return self.to_verdict(self.encode(texts))

    @property
    def word_gap_weight(self) -> float:
        """How much of a pair's word gap (``qsearch.word_gap``) its verdict loses; 0 for models
        without one (or, built in memory, without the word counts it needs)."""
        return float(self.manifest.get("word_gap", 0.0)) if self._gap is not None else 0.0

    def verdicts(
        self, first: list[str], second: list[str], cosines: np.ndarray | None = None, tokens: tuple[list, list] | None = None
    ) -> np.ndarray:
        """The verdict score of each pair (``first[i]``, ``second[i]``), the one the threshold
        applies to: the cosine of their ``pair_vectors`` (or the given ``cosines`` of them, when
        search has them already) less ``word_gap_weight`` times their word gap (``tokens``: both
        sides' ``token_ids``, when the caller has read them already)."""
        if len(first) != len(second):
            raise ValueError(f"{len(first)} first questions but {len(second)} second ones")
        if cosines is None:
            cosines = (self.pair_vectors(first) * self.pair_vectors(second)).sum(axis=1) if first else np.zeros(0, dtype=np.float32)
        cosines = np.asarray(cosines, dtype=np.float32)
        if self._gap is None:
            return cosines
        return cosines - np.float32(self.word_gap_weight) * self.word_gaps(first, second, tokens)

    def word_gaps(self, first: list[str], second: list[str], tokens: tuple[list, list] | None = None) -> np.ndarray:
        """Each pair's word gap (``qsearch.word_gap``), from 0 (the same words) to 1; zeros for
        a model without one. ``tokens``: both sides' ``token_ids``, when already read."""
        if self._gap is None:
            return np.zeros(len(first), dtype=np.float32)
        if tokens is None:
            texts = list(dict.fromkeys(first + second))  # a query beside its k results is read once
            ids = dict(zip(texts, self.token_ids(texts)))
            tokens = [ids[t] for t in first], [ids[t] for t in second]
        return self._gap.gaps(*tokens)

    def token_ids(self, texts: list[str]) -> list[list[tuple[int, ...]]]:
        """Piece ids per token of each text, as the model reads them."""
        return self.vocab.ids_of(texts, self.max_len)

    def encode(self, texts: list[str], batch_size: int = 256) -> np.ndarray:
        """Encode questions into an (n, dim) float32 array of unit rows: the vectors an index
        holds and search ranks by (``pair_vectors`` gives the ones verdicts are taken from).

        Questions longer than the model's maximum length are truncated; a question with no
        tokens at all (empty or only whitespace) gives a zero row, which matches nothing.
        Batches run on ``set_threads`` threads.
        """
        if isinstance(texts, str):
            raise TypeError("encode takes a list of questions, not a single string")
        return self.encode_tokens(self.token_ids(list(texts)), batch_size)

    def encode_tokens(self, ids: list[list[tuple[int, ...]]], batch_size: int = 256) -> np.ndarray:
        """``encode`` of questions already read by ``token_ids``, for a caller that needs both
        (``dedup`` reads every question once for its vectors and its links' word gaps)."""
        lengths = np.array([len(x) for x in ids], dtype=np.int64)
        out = np.zeros((len(ids), self.dim), dtype=np.float32)
        order = np.argsort(-lengths, kind="stable")
        order = order[lengths[order] > 0]
        if not len(order):
            return out
        rows, table = self._token_tables(ids)
        batches = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]

        def run(batch: np.ndarray) -> None:
            out[batch] = self._encode_sorted([rows[r] for r in batch], lengths[batch], table)

        if _threads > 1 and len(batches) > 1:
            with ThreadPoolExecutor(min(_threads, len(batches))) as pool:
                list(pool.map(run, batches))
        else:
            for batch in batches:
                run(batch)
        return _unit_rows(out @ self._output if self._output is not None else out)

    def _token_tables(self, ids: list[list[tuple[int, ...]]]) -> tuple[list[list[int]], np.ndarray]:
        """Each distinct token of the call gets a row (row 0 is padding, all zeros); returns each
        text's rows and the first layer's projected input of every row, all directions."""
        index: dict[tuple[int, ...], int] = {}
        rows = [[index.setdefault(p, len(index) + 1) for p in q] for q in ids]
        tokens = list(index)
        sizes = np.fromiter((len(p) for p in tokens), dtype=np.int64, count=len(tokens))
        pieces = np.fromiter((i for p in tokens for i in p), dtype=np.int64, count=int(sizes.sum()))
        emb = np.zeros((len(tokens) + 1, self._emb.shape[1]), dtype=np.float32)
        if len(pieces) == len(tokens):  # every token a known word: one row each
            emb[1:] = self._emb[pieces]
        elif len(tokens):
            starts = np.r_[0, np.cumsum(sizes)[:-1]]
            emb[1:] = np.add.reduceat(self._emb[pieces], starts, axis=0) / sizes[:, None].astype(np.float32)
        w_in, bias, _ = self._layers[0]
        table = emb @ w_in
        table += bias
        table[0] = 0.0
        return rows, table

    def _encode_sorted(self, rows: list[list[int]], lengths: np.ndarray, table: np.ndarray) -> np.ndarray:
        """Pooled top-layer LSTM output of sequences sorted by length, longest first: the mean
        over real positions, or their attention-weighted sum (``ModelConfig.pooling``).

        ``rows`` index ``table`` (see ``_token_tables``). At step t the forward direction reads
        position t and the backward one position length - 1 - t, in one fused step; rows
        shorter than a step are left out of it, so no padding is ever computed. The mean over
        positions does not care in which step a position's output came.
        """
        b, t_max, h = len(rows), int(lengths[0]), self.hidden
        forward = np.zeros((b, t_max), dtype=np.int64)
        for n, r in enumerate(rows):
            forward[n, : len(r)] = r
        steps = np.arange(t_max)
        mirrored = np.clip(lengths[:, None] - 1 - steps, 0, None)  # position read backwards at each step
        rowsel = np.arange(b)[:, None]
        active = np.searchsorted(-lengths, -steps, side="left")  # rows with length > t
        x = None
        for n, (w_in, bias, w_hh) in enumerate(self._layers):
            dirs = len(w_hh)
            last = n == len(self._layers) - 1
            summed = last and self._pool_query is None  # the mean needs only a running sum; attention every position
            if n == 0:
                projected, where = table, forward
            else:  # deeper layers read the layer below: project every position
                projected, where = (x.reshape(b * t_max, -1) @ w_in + bias), rowsel * t_max + steps
            inputs = np.empty((dirs, t_max, b, 4 * h), dtype=np.float32)
            for d in range(dirs):
                at = where if d == 0 else np.take_along_axis(where, mirrored, axis=1)
                inputs[d] = projected[:, 4 * h * d : 4 * h * (d + 1)][at.T]
            state = np.zeros((dirs, b, h), dtype=np.float32)
            cell = np.zeros((dirs, b, h), dtype=np.float32)
            total = np.zeros((dirs, b, h), dtype=np.float32)
            gates = np.empty((dirs, b, 4 * h), dtype=np.float32)
            scratch = np.empty((dirs, b, h), dtype=np.float32)
            out = None if last else np.zeros((b, t_max, dirs * h), dtype=np.float32)
            by_step = np.zeros((dirs, t_max, b, h), dtype=np.float32) if last and not summed else None  # attention: every state
            k = -1
            for t in range(t_max):
                if active[t] != k:  # fewer rows from here on: new views (a handful per batch)
                    k = active[t]
                    st, c, g, tmp, tot = state[:, :k], cell[:, :k], gates[:, :k], scratch[:, :k], total[:, :k]
                    ifo, i_g, f_g, o_g, g_g = g[:, :, : 3 * h], g[:, :, :h], g[:, :, h : 2 * h], g[:, :, 2 * h : 3 * h], g[:, :, 3 * h :]
                np.matmul(st, w_hh, out=g)
                g += inputs[:, t, :k]
                np.tanh(g, out=g)
                ifo *= 0.5
                ifo += 0.5
                c *= f_g
                np.multiply(i_g, g_g, out=tmp)
                c += tmp
                np.tanh(c, out=tmp)
                np.multiply(o_g, tmp, out=st)
                if summed:
                    tot += st
                elif last:
                    by_step[:, t, :k] = st
                else:
                    out[:k, t, :h] = st[0]
                    if dirs == 2:
                        out[rowsel[:k, 0], mirrored[:k, t], h:] = st[1]
            x = out
        if by_step is not None:
            return self._attention(by_step, lengths, mirrored)
        return total.transpose(1, 0, 2).reshape(b, -1) / lengths[:, None].astype(np.float32)

    def _attention(self, by_step: np.ndarray, lengths: np.ndarray, mirrored: np.ndarray) -> np.ndarray:
        """Attention pooling of the top layer's states, kept by step as (directions, t, b, h):
        the forward direction's step t is position t, the backward one's position length - 1 - t
        (``mirrored``), so a position's score adds the two and each direction's sum reads its
        weights in its own order. Padding gets no weight (its states are zeros too)."""
        dirs, t_max, b, h = by_step.shape
        query = self._pool_query.reshape(dirs, 1, h, 1)
        step_scores = (by_step @ query)[..., 0].transpose(0, 2, 1)  # (directions, b, step)
        scores = step_scores[0].copy()
        if dirs == 2:
            scores += np.take_along_axis(step_scores[1], mirrored, axis=1)
        real = np.arange(t_max)[None, :] < lengths[:, None]
        scores[~real] = -np.inf
        scores -= scores.max(axis=1, keepdims=True)
        weights = np.exp(scores)
        weights /= weights.sum(axis=1, keepdims=True)
        pooled = [np.einsum("bt,tbh->bh", weights, by_step[0])]
        if dirs == 2:
            pooled.append(np.einsum("bt,tbh->bh", np.take_along_axis(weights, mirrored, axis=1) * real, by_step[1]))
        return np.concatenate(pooled, axis=1)
