"""Text -> unit vectors with a trained model folder, in numpy (no torch needed at query time).

A model folder holds ``model.json`` (manifest), ``model.safetensors`` (weights, float16) and
``vocab.txt``. The LSTM runs as in torch (gate order i, f, g, o); the input projection is
folded into a per-token table at load time, so each step is one small matmul.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from qsearch.errors import QsearchError
from qsearch.manifest import read_manifest, write_json
from qsearch.paths import DEFAULT_MODEL
from qsearch.text import Vocabulary

MODEL_FORMAT_VERSION = 1
_HINT = "train one with `qsearch train --out DIR` or omit --model to use the bundled one"


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * np.tanh(0.5 * x) + 0.5


class Encoder:
    """A trained Siamese LSTM encoder: ``encode(texts)`` gives L2-normalised float32 rows."""

    def __init__(self, manifest: dict, vocab: Vocabulary, weights: dict[str, np.ndarray]):
        self.manifest = manifest
        self.vocab = vocab
        self.weights = weights
        cfg = manifest["model"]
        self.dim: int = cfg["dim"]
        self.max_len: int = cfg["max_len"]
        self.hidden: int = cfg["dim"] // 2 if cfg["bidirectional"] else cfg["dim"]
        emb = weights["embedding.weight"].astype(np.float32)
        if emb.shape != (len(vocab), cfg["embed_dim"]):
            raise QsearchError("model weights do not match its vocabulary; retrain the model")
        self._dirs = []
        for suffix in ["_l0", "_l0_reverse"][: 2 if cfg["bidirectional"] else 1]:
            w_ih = weights[f"lstm.weight_ih{suffix}"].astype(np.float32)
            bias = weights[f"lstm.bias_ih{suffix}"].astype(np.float32) + weights[f"lstm.bias_hh{suffix}"].astype(np.float32)
            table = emb @ w_ih.T + bias
            table[0] = 0.0
            self._dirs.append((table, np.ascontiguousarray(weights[f"lstm.weight_hh{suffix}"].astype(np.float32).T)))

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

    def token_ids(self, texts: list[str]) -> list[list[int]]:
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
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            out[rows] = self._encode_sorted([ids[r] for r in rows], lengths[rows])
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, norms, out=out, where=norms > 0)
        return out

    def _encode_sorted(self, ids: list[list[int]], lengths: np.ndarray) -> np.ndarray:
        """Mean LSTM output of sequences sorted by length, longest first (no padding computed)."""
        b, t_max = len(ids), int(lengths[0])
        padded = np.zeros((b, t_max), dtype=np.int64)
        for row, x in enumerate(ids):
            padded[row, : len(x)] = x
        active = np.searchsorted(-lengths, -np.arange(t_max), side="left")  # rows with length > t
        h = self.hidden
        parts = []
        for d, (table, w_hh) in enumerate(self._dirs):
            state = np.zeros((b, h), dtype=np.float32)
            cell = np.zeros((b, h), dtype=np.float32)
            total = np.zeros((b, h), dtype=np.float32)
            for t in range(t_max - 1, -1, -1) if d == 1 else range(t_max):
                n = active[t]
                gates = table[padded[:n, t]]
                gates += state[:n] @ w_hh
                i = _sigmoid(gates[:, :h])
                f = _sigmoid(gates[:, h : 2 * h])
                g = np.tanh(gates[:, 2 * h : 3 * h])
                o = _sigmoid(gates[:, 3 * h :])
                cell[:n] = f * cell[:n] + i * g
                state[:n] = o * np.tanh(cell[:n])
                total[:n] += state[:n]
            parts.append(total)
        return np.concatenate(parts, axis=1) / lengths[:, None].astype(np.float32)
