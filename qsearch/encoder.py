"""Text -> unit vectors with a trained model folder, in numpy (no torch needed at query time).

A model folder holds ``model.json`` (manifest), ``model.safetensors`` (weights, float16) and
``vocab.txt``. The LSTM runs as in torch (gate order i, f, g, o). The first layer's input
projection is linear, so each distinct token of an ``encode`` call is projected once (a token
made of pieces is the mean of its pieces' projections) and each step gathers its rows, then
does one small matmul.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from qsearch.config import ModelConfig
from qsearch.errors import QsearchError
from qsearch.manifest import read_manifest, write_json
from qsearch.paths import DEFAULT_MODEL
from qsearch.text import Vocabulary

MODEL_FORMAT_VERSION = 2
_HINT = "train one with `qsearch train --out DIR` or omit --model to use the bundled one"


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * np.tanh(0.5 * x) + 0.5


class Encoder:
    """A trained Siamese LSTM encoder: ``encode(texts)`` gives L2-normalised float32 rows."""

    def __init__(self, manifest: dict, vocab: Vocabulary, weights: dict[str, np.ndarray]):
        self.manifest = manifest
        self.vocab = vocab
        self.weights = weights
        cfg = ModelConfig.from_dict(manifest["model"])
        self.dim: int = cfg.dim
        self.max_len: int = cfg.max_len
        self.hidden: int = cfg.hidden
        self._emb = weights["embedding.weight"].astype(np.float32)
        if self._emb.shape != (len(vocab), cfg.embed_dim):
            raise QsearchError("model weights do not match its vocabulary; retrain the model")
        h = self.hidden
        # torch orders the gates i, f, g, o; reordered to i, f, o, g, one sigmoid covers three of them
        order = np.r_[0 : 2 * h, 3 * h : 4 * h, 2 * h : 3 * h]
        f32 = lambda name: weights[name].astype(np.float32)[order]  # noqa: E731
        self._layers = [
            [
                (np.ascontiguousarray(f32(f"lstm.weight_ih_l{n}{sfx}").T), f32(f"lstm.bias_ih_l{n}{sfx}") + f32(f"lstm.bias_hh_l{n}{sfx}"),
                 np.ascontiguousarray(f32(f"lstm.weight_hh_l{n}{sfx}").T))
                for sfx in ["", "_reverse"][: 2 if cfg.bidirectional else 1]
            ]
            for n in range(cfg.layers)
        ]

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
        manifest = read_manifest(path / "model.json", "model", MODEL_FORMAT_VERSION, _HINT)
        try:
            vocab = Vocabulary.load(path / "vocab.txt")
            weights = load_file(str(path / "model.safetensors"))
        except (OSError, ValueError, SafetensorError) as e:
            raise QsearchError(f"cannot read model in {path}: {e}; {_HINT}") from None
        if vocab.sha256 != manifest["vocab_sha256"]:
            raise QsearchError(f"{path}/vocab.txt does not match its manifest; retrain or restore the model")
        try:
            return cls(manifest, vocab, weights)
        except KeyError as e:
            raise QsearchError(f"model in {path} lacks weight {e}; {_HINT}") from None

    def save(self, path: Path | str) -> None:
        """Write the folder: float16 weights (half the size, same vectors to ~1e-3), vocab, manifest."""
        from safetensors.numpy import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        save_file({k: v.astype(np.float16) for k, v in self.weights.items()}, str(path / "model.safetensors"))
        self.vocab.save(path / "vocab.txt")
        write_json(path / "model.json", self.manifest)

    def token_ids(self, texts: list[str]) -> list[list[tuple[int, ...]]]:
        """Piece ids per token of each text, as the model reads them."""
        return [self.vocab.ids(t, self.max_len) for t in texts]

    def encode(self, texts: list[str], batch_size: int = 1024) -> np.ndarray:
        """Encode questions into an (n, dim) float32 array of unit rows.

        Questions longer than the model's maximum length are truncated; a question with no
        tokens at all (empty or only whitespace) gives a zero row, which matches nothing.
        """
        if isinstance(texts, str):
            raise TypeError("encode takes a list of questions, not a single string")
        ids = self.token_ids(list(texts))
        lengths = np.array([len(x) for x in ids], dtype=np.int64)
        out = np.zeros((len(ids), self.dim), dtype=np.float32)
        order = np.argsort(-lengths, kind="stable")
        order = order[lengths[order] > 0]
        if not len(order):
            return out
        rows, tables = self._token_tables(ids)
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            out[batch] = self._encode_sorted([rows[r] for r in batch], lengths[batch], tables)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, norms, out=out, where=norms > 0)
        return out

    def _token_tables(self, ids: list[list[tuple[int, ...]]]) -> tuple[list[list[int]], list[np.ndarray]]:
        """Each distinct token of the call gets a row (row 0 is padding, all zeros); returns each
        text's rows and, per direction, the first layer's projected input for every row."""
        index: dict[tuple[int, ...], int] = {}
        rows = [[index.setdefault(p, len(index) + 1) for p in q] for q in ids]
        tokens = list(index)
        sizes = np.fromiter((len(p) for p in tokens), dtype=np.int64, count=len(tokens))
        pieces = np.fromiter((i for p in tokens for i in p), dtype=np.int64, count=int(sizes.sum()))
        emb = np.zeros((len(tokens) + 1, self._emb.shape[1]), dtype=np.float32)
        if len(tokens):
            starts = np.r_[0, np.cumsum(sizes)[:-1]]
            emb[1:] = np.add.reduceat(self._emb[pieces], starts, axis=0) / sizes[:, None].astype(np.float32)
        tables = []
        for w_ih, bias, _ in self._layers[0]:
            table = emb @ w_ih + bias
            table[0] = 0.0
            tables.append(table)
        return rows, tables

    def _encode_sorted(self, rows: list[list[int]], lengths: np.ndarray, tables: list[np.ndarray]) -> np.ndarray:
        """Mean top-layer LSTM output of sequences sorted by length, longest first.

        ``rows`` index ``tables`` (see ``_token_tables``). Rows shorter than a step are left out
        of that step, so no padding is ever computed.
        """
        b, t_max = len(rows), int(lengths[0])
        padded = np.zeros((b, t_max), dtype=np.int64)
        for n, r in enumerate(rows):
            padded[n, : len(r)] = r
        x = None
        active = np.searchsorted(-lengths, -np.arange(t_max), side="left")  # rows with length > t
        h = self.hidden
        for n, directions in enumerate(self._layers):
            last = n == len(self._layers) - 1
            outputs = []
            for d, (w_ih, bias, w_hh) in enumerate(directions):
                if n == 0:
                    table, tokens = tables[d], padded
                else:  # deeper layers read the layer below: project every position
                    table, tokens = (x.reshape(b * t_max, -1) @ w_ih + bias), np.arange(b * t_max).reshape(b, t_max)
                state = np.zeros((b, h), dtype=np.float32)
                cell = np.zeros((b, h), dtype=np.float32)
                out = np.zeros((b, h) if last else (b, t_max, h), dtype=np.float32)
                for t in range(t_max - 1, -1, -1) if d == 1 else range(t_max):
                    k = active[t]
                    gates = table[tokens[:k, t]]
                    gates += state[:k] @ w_hh
                    ifo = _sigmoid(gates[:, : 3 * h])
                    c = cell[:k]
                    c *= ifo[:, h : 2 * h]
                    c += ifo[:, :h] * np.tanh(gates[:, 3 * h :])
                    np.multiply(ifo[:, 2 * h :], np.tanh(c), out=state[:k])
                    if last:
                        out[:k] += state[:k]
                    else:
                        out[:k, t] = state[:k]
                outputs.append(out)
            x = np.concatenate(outputs, axis=-1)
        return x / lengths[:, None].astype(np.float32)
