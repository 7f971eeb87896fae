"""The trainable Siamese encoder (torch): embedding -> LSTM -> pooling over the real tokens
(their mean, or attention: softmax(q . h_t) weights) -> L2 norm.

Only training imports this module; inference runs the same maths in numpy (``qsearch.encoder``)
so that a query never pays torch's two-second import.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from qsearch.config import ModelConfig

LSTM_CHUNK = 64  # rows per packed LSTM call (sorted by length): 64 was faster on 2 CPU cores than 32, 128 or 256


class LSTMEncoder(nn.Module):
    """Both questions of a pair go through this one module (shared weights)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embed_dim, padding_idx=0)
        self.dropout = nn.Dropout(config.dropout)
        self.lstm = nn.LSTM(
            config.embed_dim, config.hidden, num_layers=config.layers, batch_first=True, bidirectional=config.bidirectional
        )
        if config.pooling == "attention":
            self.pool_query = nn.Parameter(torch.zeros(config.dim))

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``ids`` (b, t, pieces) padded with 0, ``lengths`` (b,) >= 1 -> (b, dim) unit vectors.

        A token's embedding is the mean of its pieces' rows (one piece for a known word), summed
        by ``embedding_bag``: the same numbers as gathering every piece's row and adding, without
        the (b, t, pieces, embed_dim) tensor that made the gather and its gradient a quarter of a
        training step. The LSTM then runs on rows sorted by length, ``LSTM_CHUNK`` at a time:
        the same function of each row, a quarter less time than one packed batch of 256 on a CPU.
        """
        b, t, width = ids.shape
        if width == 1:
            x = self.embedding(ids[:, :, 0])
        else:
            summed = nn.functional.embedding_bag(ids.reshape(b * t, width), self.embedding.weight, mode="sum", padding_idx=0)
            counts = (ids > 0).sum(dim=2, keepdim=True).clamp(min=1)
            x = summed.reshape(b, t, -1) / counts.to(self.embedding.weight.dtype)
        x = self.dropout(x)
        order = torch.argsort(lengths, descending=True, stable=True)
        means = []
        for start in range(0, b, LSTM_CHUNK):
            rows = order[start : start + LSTM_CHUNK]
            chunk_lengths = lengths[rows]
            longest = int(chunk_lengths[0])
            packed = pack_padded_sequence(x[rows.to(x.device), :longest], chunk_lengths, batch_first=True)
            out, _ = pad_packed_sequence(self.lstm(packed)[0], batch_first=True, total_length=longest)
            means.append(self._pool(out, chunk_lengths.to(out.device)))
        mean = torch.cat(means)[torch.argsort(order).to(x.device)]
        return nn.functional.normalize(mean, dim=1)

    def _pool(self, out: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(b, t, dim) LSTM outputs -> (b, dim): the mean over each row's real positions, or with
        attention pooling their softmax(q . h_t)-weighted sum (padding gets no weight)."""
        if self.config.pooling == "mean":
            return out.sum(dim=1) / lengths.unsqueeze(1).to(out.dtype)
        real = torch.arange(out.shape[1], device=out.device).unsqueeze(0) < lengths.unsqueeze(1)
        weights = torch.softmax((out @ self.pool_query).masked_fill(~real, float("-inf")), dim=1)
        return (weights.unsqueeze(2) * out).sum(dim=1)

    def numpy_weights(self) -> dict[str, np.ndarray]:
        """A copy of the state dict as float32 numpy arrays, the form ``Encoder`` saves and runs."""
        return {k: v.detach().cpu().float().numpy().copy() for k, v in self.state_dict().items()}


def batch_tensors(questions: list[list[tuple[int, ...]]], device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Pad non-empty questions (piece tuples per token) into (b, t, pieces) ids and (b,) lengths."""
    lengths = [len(q) for q in questions]
    width = max(len(p) for q in questions for p in q)
    padded = np.zeros((len(questions), max(lengths), width), dtype=np.int64)
    for row, q in enumerate(questions):
        if width == 1:
            padded[row, : len(q), 0] = [p[0] for p in q]
        else:
            for col, p in enumerate(q):
                padded[row, col, : len(p)] = p
    return torch.from_numpy(padded).to(device), torch.tensor(lengths)
