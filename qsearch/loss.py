"""Batch-hard triplet loss over in-batch negatives (the course's Siamese-network loss)."""

from __future__ import annotations

import torch


def batch_hard_triplet_loss(
    v1: torch.Tensor, v2: torch.Tensor, margin: float = 0.25, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Sum over the batch of the mean-negative and closest-negative triplet losses.

    ``v1[i]`` and ``v2[i]`` are L2-normalised vectors of a duplicate pair; every ``v1[j]``
    (j != i) is a negative for ``v2[i]``. With ``scores = v2 @ v1.T``:
    ``mean_neg`` is the mean off-diagonal score of a row, ``closest_neg`` the largest
    off-diagonal score still below the row's positive (hard-negative mining). Returns
    ``sum_i relu(margin - pos_i + mean_neg_i) + relu(margin - pos_i + closest_neg_i)``, each
    row's term times ``weights[i]`` when given (pairs trusted less, such as silver ones, count less).
    """
    scores = v2 @ v1.T
    b = scores.shape[0]
    eye = torch.eye(b, dtype=torch.bool, device=scores.device)
    positive = scores.diagonal()
    off_diagonal = scores.masked_fill(eye, 0.0)
    mean_negative = off_diagonal.sum(dim=1) / (b - 1)
    exclude = eye | (off_diagonal > positive.unsqueeze(1))
    closest_negative = (off_diagonal - 2.0 * exclude.to(scores.dtype)).max(dim=1).values
    loss_closest = torch.relu(margin - positive + closest_negative)
    loss_mean = torch.relu(margin - positive + mean_negative)
    per_row = loss_closest + loss_mean
    return (per_row if weights is None else per_row * weights).sum()


def pair_ranking_loss(positive: torch.Tensor, negative: torch.Tensor, margin: float = 0.25) -> torch.Tensor:
    """Hinge surrogate of ROC-AUC over labelled pairs: every duplicate should outscore every
    labelled non-duplicate by ``margin``. Sum over the duplicates of the mean over non-duplicates.

    In-batch negatives are random questions, mostly on other topics; Quora's labelled
    non-duplicates share the topic and most words, which is what evaluation pairs look like.
    """
    return torch.relu(margin - positive.unsqueeze(1) + negative.unsqueeze(0)).mean(dim=1).sum()


def similarity_distillation_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """The student's in-batch cosine matrix should equal the teacher's (no extra weights).

    ``student`` (b, d) and ``teacher`` (b, D) are unit rows of the same b questions; d and D may
    differ. Returns the sum over rows of the mean squared difference of their cosines to the
    batch, so it grows with the batch as the triplet loss does.
    """
    diff = student @ student.T - teacher @ teacher.T
    return diff.pow(2).mean(dim=1).sum()


def projection_distillation_loss(projected: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Sum over rows of ``1 - cos(projected_i, teacher_i)``: the student's vector, mapped by a
    linear head onto the teacher's space, should point where the teacher's does. The head is
    dropped after training, so inference is unchanged.
    """
    return (1.0 - torch.nn.functional.cosine_similarity(projected, teacher, dim=1)).sum()
