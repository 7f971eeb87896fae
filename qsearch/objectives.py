"""What a training step minimises: a weighted sum of objectives, each a small callable.

An objective turns a ``Batch`` (the student's vectors for the batch, and where each question
sits in the teacher's table) into a loss tensor. The triplet stage sums triplet, ranking, (with
a teacher) distillation and, when asked for, mined and memory negatives; the distillation stage
uses distillation alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from qsearch.evaluate import nearest
from qsearch.loss import batch_hard_triplet_loss, pair_ranking_loss, projection_distillation_loss, similarity_distillation_loss
from qsearch.model import batch_tensors


@dataclass
class Batch:
    """One step's student vectors: ``vectors[0]`` (and ``vectors[1]``, the duplicates of its
    rows, in a pair batch), with each question's row in the teacher's table (``rows``) and, in
    a pair batch, each pair's weight in the triplet loss (``weights``) and duplicate cluster
    (``clusters``)."""

    vectors: list[torch.Tensor]
    rows: list[np.ndarray]
    weights: torch.Tensor | None = None
    clusters: np.ndarray | None = None


class Triplet:
    """Batch-hard triplet loss over in-batch negatives: the core objective."""

    name = "triplet"

    def __init__(self, margin: float):
        self.margin = margin

    def __call__(self, batch: Batch) -> torch.Tensor:
        return batch_hard_triplet_loss(batch.vectors[0], batch.vectors[1], self.margin, batch.weights)


class Ranking:
    """Every duplicate of the batch should outscore labelled non-duplicates drawn at random."""

    name = "ranking"

    def __init__(self, model: torch.nn.Module, negatives: list, margin: float, rng: np.random.Generator, device="cpu"):
        self.model, self.negatives, self.margin, self.rng, self.device = model, negatives, margin, rng, device

    def __call__(self, batch: Batch) -> torch.Tensor:
        a, b = batch.vectors
        picked = [self.negatives[i] for i in self.rng.integers(0, len(self.negatives), len(a))]
        n1 = self.model(*batch_tensors([p[0] for p in picked], self.device))
        n2 = self.model(*batch_tensors([p[1] for p in picked], self.device))
        return pair_ranking_loss((a * b).sum(dim=1), (n1 * n2).sum(dim=1), self.margin)


class SimilarityDistillation:
    """The student's cosine matrix over the batch's questions matches the teacher's."""

    name = "distill-similarity"

    def __init__(self, teacher_vectors: torch.Tensor):
        self.teacher = teacher_vectors

    def __call__(self, batch: Batch) -> torch.Tensor:
        rows = torch.from_numpy(np.concatenate(batch.rows)).to(self.teacher.device)
        return similarity_distillation_loss(torch.cat(batch.vectors), self.teacher[rows])


class ProjectionDistillation:
    """A linear head maps the student's vector onto the teacher's; dropped after training."""

    name = "distill-projection"

    def __init__(self, teacher_vectors: torch.Tensor, dim: int):
        self.teacher = teacher_vectors
        self.head = torch.nn.Linear(dim, teacher_vectors.shape[1]).to(teacher_vectors.device)

    def __call__(self, batch: Batch) -> torch.Tensor:
        rows = torch.from_numpy(np.concatenate(batch.rows)).to(self.teacher.device)
        return projection_distillation_loss(self.head(torch.cat(batch.vectors)), self.teacher[rows])


class MinedNegatives:
    """Each anchor should outscore, by the margin, a question the student itself now puts close
    to it: what Recall@1 counts as a miss. Before every triplet epoch ``refresh`` searches every
    training and corpus question for each anchor's nearest ``k``; a candidate is used only if it
    is outside the anchor's duplicate cluster and, with a teacher, the teacher puts it further
    from the anchor than the anchor's duplicate (so unlabelled duplicates are not pushed away).

    ``ids`` are the questions' token ids; ``pairs`` the training pairs (ids a, ids b, cluster,
    row a, row b, weight). A row at or past ``len(ids)`` is a text that is not a question to
    search among (a detail copy): it has no cluster here, is never searched for, never mined.
    """

    name = "mined"

    def __init__(self, model: torch.nn.Module, ids: list, pairs: list, margin: float, rng: np.random.Generator,
                 teacher_vectors: torch.Tensor | None = None, k: int = 10, device="cpu"):
        self.model, self.ids, self.margin, self.rng = model, ids, margin, rng
        self.teacher, self.k, self.device = teacher_vectors, k, device
        self.clusters = np.full(len(ids), -1, dtype=np.int64)
        for pair in pairs:
            for row in pair[3:5]:
                if row < len(ids):
                    self.clusters[row] = pair[2]
        self.anchors = np.unique([p[3] for p in pairs if p[3] < len(ids)]).astype(np.int64)
        self.candidates = np.full((len(ids), k), -1, dtype=np.int64)
        self.empty = np.array([not x for x in ids] + [True])  # row -1 (no candidate) reads as empty

    def refresh(self, vectors: np.ndarray, chunk: int = 2048) -> None:
        """Nearest ``k`` other questions of each anchor, by the student's ``vectors`` (unit rows, one per question)."""
        k = min(self.k, len(vectors) - 1)
        for start, top, _ in nearest(vectors[self.anchors], vectors, self.anchors, k, chunk):
            self.candidates[self.anchors[start : start + len(top)], :k] = top

    def __call__(self, batch: Batch) -> torch.Tensor:
        anchors, duplicates = batch.rows
        known = anchors < len(self.ids)
        own = np.where(known, anchors, 0)
        cand = np.where(known[:, None], self.candidates[own], -1)
        usable = ~self.empty[cand] & (self.clusters[np.maximum(cand, 0)] != self.clusters[own][:, None])
        if self.teacher is not None:
            t_a = self.teacher[torch.from_numpy(anchors).to(self.teacher.device)]
            t_pos = (t_a * self.teacher[torch.from_numpy(duplicates).to(self.teacher.device)]).sum(dim=1)
            t_neg = torch.einsum("bd,bkd->bk", t_a, self.teacher[torch.from_numpy(np.maximum(cand, 0)).to(self.teacher.device)])
            usable &= (t_neg < t_pos.unsqueeze(1)).cpu().numpy()
        keep = np.flatnonzero(usable.any(axis=1))
        if not len(keep):
            return batch.vectors[0].sum() * 0.0
        picked = [self.rng.choice(np.flatnonzero(usable[i])) for i in keep]
        negative = self.model(*batch_tensors([self.ids[cand[i, j]] for i, j in zip(keep, picked)], self.device))
        a, p = batch.vectors[0][keep], batch.vectors[1][keep]
        return torch.relu(self.margin - (a * p).sum(dim=1) + (a * negative).sum(dim=1)).sum()


class MemoryNegatives:
    """Negatives from a memory of past batches (cross-batch memory, XBM; Wang et al., 2020).

    A batch of 64 pairs offers each duplicate 63 negatives, few of them near; the memory keeps
    the first side's vectors of the last ``size`` pairs (detached: they cost no backward pass)
    with their duplicate cluster and teacher row. Each duplicate side ``vectors[1]`` should
    outscore its pair ``vectors[0]`` by the margin over the closest entry that is outside its
    cluster, scores below the positive (the core loss's hard-negative rule) and, with a
    teacher, is further from it by the teacher than its duplicate (so unlabelled duplicates
    are not pushed away). The memory starts empty in each training run, a resumed one too.
    """

    name = "memory"

    def __init__(self, margin: float, teacher_vectors: torch.Tensor | None = None, size: int = 2048):
        self.margin, self.teacher, self.size = margin, teacher_vectors, size
        self.vectors: torch.Tensor | None = None
        self.clusters = np.empty(0, dtype=np.int64)
        self.rows = np.empty(0, dtype=np.int64)

    def __call__(self, batch: Batch) -> torch.Tensor:
        first, second = batch.vectors
        loss = self._term(second, (first * second).sum(dim=1), batch) if self.vectors is not None else second.sum() * 0.0
        self.vectors = first.detach() if self.vectors is None else torch.cat([self.vectors, first.detach()])[-self.size :]
        self.clusters = np.concatenate([self.clusters, batch.clusters])[-self.size :]
        self.rows = np.concatenate([self.rows, batch.rows[0]])[-self.size :]
        return loss

    def _term(self, anchor: torch.Tensor, positive: torch.Tensor, batch: Batch) -> torch.Tensor:
        scores = anchor @ self.vectors.T
        usable = torch.from_numpy(batch.clusters[:, None] != self.clusters[None, :]).to(scores.device)
        usable &= scores < positive.unsqueeze(1)
        if self.teacher is not None:
            rows = [torch.from_numpy(r).to(self.teacher.device) for r in (batch.rows[1], batch.rows[0], self.rows)]
            t_anchor = self.teacher[rows[0]]
            t_positive = (t_anchor * self.teacher[rows[1]]).sum(dim=1)
            usable &= ((t_anchor @ self.teacher[rows[2]].T) < t_positive.unsqueeze(1)).to(scores.device)
        closest = scores.masked_fill(~usable, -2.0).max(dim=1).values
        return torch.relu(self.margin - positive + closest).sum()
