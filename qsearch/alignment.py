"""A fixed linear map after the student's pooling that brings its cosines nearer the teacher's.

After training, the student's vectors of its training texts are regressed onto the teacher's
(least squares, ``S W ~ T``). Cosines after ``x W`` equal cosines after ``x U S^1`` (W = U S V^T,
V^T has orthonormal rows), so the map kept is ``U S^power``: square, as wide as the student,
no teacher at query time. Power 0 is a rotation and changes no cosine; power 1 scores pairs
as the fitted map onto the teacher would. The map reweights the student's directions by how
much of the teacher each one carries: pairs that differ in a word that matters move apart.

Fitted on the texts themselves, the least squares is ruled by what sets topics apart (most of
the variance); a duplicate search decides between questions of one topic. With ``neighbours``
= k the fit is on each text's difference to its k nearest texts by the teacher, in both spaces,
so the map weights the directions that tell near questions apart as the teacher does.
"""

from __future__ import annotations

import numpy as np

from qsearch.silver import nearest_rows

OUTPUT_WEIGHT = "output.weight"  # the map's name among a model's weights


def fit_output_map(student: np.ndarray, teacher: np.ndarray, power: float, neighbours: int = 0) -> np.ndarray:
    """The (d, d) float32 map ``U S^power`` of the least-squares ``student @ W ~ teacher``.

    ``student`` (n, d) and ``teacher`` (n, D) are vectors of the same n texts; rows of zeros
    (texts without a word) carry no information and may stay in. ``neighbours`` > 0 fits the
    differences of each text to its nearest texts by the teacher instead (``neighbour_fit``).
    """
    if student.shape[0] != teacher.shape[0]:
        raise ValueError(f"{student.shape[0]} student rows against {teacher.shape[0]} teacher rows")
    if neighbours > 0 and len(student) > 1:
        w = neighbour_fit(student, teacher, neighbours)
    else:
        w = np.linalg.lstsq(student.astype(np.float64), teacher.astype(np.float64), rcond=None)[0]
    u, s, _ = np.linalg.svd(w, full_matrices=False)
    s = s / s.max() if s.max() > 0 else s  # only the directions' relative weights matter to a cosine
    return (u * s**power).astype(np.float32)


def neighbour_fit(student: np.ndarray, teacher: np.ndarray, k: int, block: int = 20480) -> np.ndarray:
    """Least squares ``(s_i - s_j) W ~ (t_i - t_j)`` over each text i and its ``k`` nearest texts j
    by the teacher's cosine. The normal equations are summed about ``block`` differences at a
    time, so memory stays that of the (d, d) and (d, D) sums however many texts there are."""
    k = min(k, len(student) - 1)
    block = max(1, block // k)  # texts per step
    unit = teacher / np.maximum(np.linalg.norm(teacher, axis=1, keepdims=True), 1e-12)
    near, _ = nearest_rows(unit, k)
    s, t = student.astype(np.float64), teacher.astype(np.float64)
    gram = np.zeros((s.shape[1], s.shape[1]))
    cross = np.zeros((s.shape[1], t.shape[1]))
    for start in range(0, len(s), block):
        rows = np.arange(start, min(start + block, len(s)))
        ds = (s[rows, None, :] - s[near[rows]]).reshape(-1, s.shape[1])
        dt = (t[rows, None, :] - t[near[rows]]).reshape(-1, t.shape[1])
        gram += ds.T @ ds
        cross += ds.T @ dt
    return np.linalg.lstsq(gram, cross, rcond=None)[0]
