"""The trainable Siamese encoder (torch): embedding -> LSTM -> masked mean -> L2 norm.

Only training imports this module; inference runs the same maths in numpy (``qsearch.encoder``)
so that a query never pays torch's two-second import.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


@dataclass
class ModelConfig:
    """Shape of the network; saved in the model manifest."""

    vocab_size: int
    embed_dim: int = 128
    dim: int = 128
    bidirectional: bool = True
    dropout: float = 0.1
    max_len: int = 64

    @property
    def hidden(self) -> int:
        return self.dim // 2 if self.bidirectional else self.dim

    def to_dict(self) -> dict:
        return asdict(self)


class LSTMEncoder(nn.Module):
    """Both questions of a pair go through this one module (shared weights)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        if config.bidirectional and config.dim % 2:
            raise ValueError("a bidirectional encoder needs an even --dim")
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embed_dim, padding_idx=0)
        self.dropout = nn.Dropout(config.dropout)
        self.lstm = nn.LSTM(config.embed_dim, config.hidden, batch_first=True, bidirectional=config.bidirectional)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``ids`` (b, t) padded with 0, ``lengths`` (b,) >= 1 -> (b, dim) unit vectors."""
        x = self.dropout(self.embedding(ids))
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=ids.shape[1])
        mean = out.sum(dim=1) / lengths.unsqueeze(1).to(out.dtype)
        return nn.functional.normalize(mean, dim=1)

    def numpy_weights(self) -> dict[str, np.ndarray]:
        """A copy of the state dict as float32 numpy arrays, the form ``Encoder`` saves and runs."""
        return {k: v.detach().cpu().float().numpy().copy() for k, v in self.state_dict().items()}


def batch_tensors(ids: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad non-empty id lists into a (b, t) tensor of ids and a (b,) tensor of lengths."""
    lengths = torch.tensor([len(x) for x in ids])
    padded = torch.zeros((len(ids), int(lengths.max())), dtype=torch.long)
    for row, x in enumerate(ids):
        padded[row, : len(x)] = torch.tensor(x)
    return padded, lengths
