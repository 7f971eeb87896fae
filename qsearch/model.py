"""The trainable Siamese encoder (torch): embedding -> LSTM -> masked mean -> L2 norm.

Only training imports this module; inference runs the same maths in numpy (``qsearch.encoder``)
so that a query never pays torch's two-second import.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from qsearch.config import ModelConfig


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

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``ids`` (b, t, pieces) padded with 0, ``lengths`` (b,) >= 1 -> (b, dim) unit vectors.

        A token's embedding is the mean of its pieces' rows (one piece for a known word).
        """
        if ids.shape[2] == 1:
            x = self.embedding(ids[:, :, 0])
        else:
            counts = (ids > 0).sum(dim=2, keepdim=True).clamp(min=1)
            x = self.embedding(ids).sum(dim=2) / counts.to(self.embedding.weight.dtype)
        packed = pack_padded_sequence(self.dropout(x), lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=ids.shape[1])
        mean = out.sum(dim=1) / lengths.to(out.device).unsqueeze(1).to(out.dtype)
        return nn.functional.normalize(mean, dim=1)

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
