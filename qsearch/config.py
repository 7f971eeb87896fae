"""The settings that decide a model: its shape (read by training and by numpy inference) and
its training recipe. Torch-free, so the command line can take its defaults from here cheaply."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from qsearch.paths import DEFAULT_CORPUS, DEFAULT_PAIRS

DISTILL_KINDS = ("similarity", "projection")
POOLINGS = ("mean", "attention")
POOL_QUERY = "pool_query"  # the attention pooling's query vector, in the weights
SELECT_BY = ("recall@1", "roc_auc")  # validation measures that pick the kept epoch
MAX_NEIGHBOURS = 100  # --map-neighbours: each text's neighbours are an (n, k) table, beyond this too large for a laptop on big data


@dataclass
class ModelConfig:
    """Shape of the network; saved in the model manifest. ``vocab_size`` is set by training."""

    vocab_size: int = 0
    embed_dim: int = 192
    dim: int = 320
    layers: int = 1
    bidirectional: bool = True
    dropout: float = 0.1
    max_len: int = 64
    pooling: str = "attention"  # mean over real tokens, or attention: weights softmax(q . h_t) over them (q starts at 0: the mean)

    def __post_init__(self) -> None:
        if self.pooling not in POOLINGS:
            shown = self.pooling if len(self.pooling) <= 40 else self.pooling[:40] + "..."
            raise ValueError(f"pooling is one of {', '.join(POOLINGS)}, not {shown!r}")
        if self.bidirectional and self.dim % 2:
            raise ValueError("a bidirectional encoder needs an even dim")
        if self.layers < 1:
            raise ValueError("an encoder needs at least one LSTM layer")

    @property
    def hidden(self) -> int:
        """LSTM units per direction (the output is ``dim`` wide either way)."""
        return self.dim // 2 if self.bidirectional else self.dim

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ModelConfig":
        """Read a manifest's ``model`` entry; models saved before ``layers`` existed had one."""
        names = {f.name for f in fields(cls)}
        return cls(**{"layers": 1, "pooling": "mean", **{k: v for k, v in data.items() if k in names}})


@dataclass
class TrainConfig:
    """Everything that decides the trained model; stored in its manifest."""

    data: Path = DEFAULT_PAIRS
    corpus: Path | None = DEFAULT_CORPUS
    model: ModelConfig = field(default_factory=ModelConfig)
    epochs: int = 4
    batch_size: int = 256
    lr: float = 4e-3
    margin: float = 0.25
    transitive: bool = True
    labelled_negatives: bool = True
    min_count: int = 2
    max_vocab: int = 30000
    buckets: int = 20000
    english_words: int = 50000  # with a teacher: general words beyond the training texts
    distill_epochs: int = 8  # with a teacher: distillation-only epochs before the triplet stage
    distill: str = "projection"  # projection (a head onto the teacher, dropped after) or similarity (cosine matrix)
    distill_weight: float = 1.0  # weight of distillation beside the triplet loss
    similarity_weight: float = 5.0  # with a teacher, triplet stage: weight of matching its in-batch cosines too
    silver_cosine: float = 0.75  # with a teacher: add its near pairs in other words at or above this cosine as duplicates (0: none)
    silver_weight: float = 1.0  # a silver pair's weight in the triplet loss, where a labelled pair's is 1
    detail_pairs: int = 4000  # with a teacher: questions paired in the triplet stage with a copy that states a situation first
    mined_weight: float = 0.0  # triplet stage: weight of negatives mined from the student's own nearest questions
    memory_weight: float = 1.0  # with a teacher, triplet stage: weight of negatives from a memory of the last 2,048 pairs (XBM)
    teacher_copies: float = 2.0  # with a teacher: changed copies per question that the teacher encodes too (up to 1: the share given one)
    distill_words: float = 1.0  # with a teacher: share of vocabulary words distilled alone, as one-word questions
    augment: float = 0.5  # share of distillation questions given a dropped word, swap or typo
    map_power: float = 0.5  # with a teacher: strength of the fitted map onto the teacher's space after pooling (0: none)
    map_neighbours: int = 0  # the map is fitted on each question's differences to its nearest by the teacher (0: on the questions)
    pair_map_power: float = 1.5  # with a teacher: strength of the map fitted on the labelled pairs after the output map (0: none)
    word_gap: float = 0.2  # with a teacher: verdicts subtract this times the pair's word gap (qsearch.word_gap; 0: none)
    word_init: bool = True  # with a teacher: embeddings start from its word vectors
    spelling: bool = True  # with a teacher: the finished model reads an unknown word one edit from known ones as the one its neighbours fit best; a known word as another only where they fit that one far better
    freeze_embeddings: bool = False
    patience: int = 3
    select: str = "roc_auc"  # the kept epoch is the best on this validation measure (recall@1 follows search but is noisier)
    seed: int = 0
    threads: int = 0  # torch threads; 0 leaves torch's own choice
