"""A fixed linear map after the student's pooling that brings its cosines nearer the teacher's.

After training, the student's vectors of its training texts are regressed onto the teacher's
(least squares, ``S W ~ T``). Cosines after ``x W`` equal cosines after ``x U S^1`` (W = U S V^T,
V^T has orthonormal rows), so the map kept is ``U S^power``: square, as wide as the student,
no teacher at query time. Power 0 is a rotation and changes no cosine; power 1 scores pairs
as the fitted map onto the teacher would. The map reweights the student's directions by how
much of the teacher each one carries: pairs that differ in a word that matters move apart.
"""

from __future__ import annotations

import numpy as np

OUTPUT_WEIGHT = "output.weight"  # the map's name among a model's weights


def fit_output_map(student: np.ndarray, teacher: np.ndarray, power: float) -> np.ndarray:
    """The (d, d) float32 map ``U S^power`` of the least-squares ``student @ W ~ teacher``.

    ``student`` (n, d) and ``teacher`` (n, D) are vectors of the same n texts; rows of zeros
    (texts without a word) carry no information and may stay in.
    """
    if student.shape[0] != teacher.shape[0]:
        raise ValueError(f"{student.shape[0]} student rows against {teacher.shape[0]} teacher rows")
    w = np.linalg.lstsq(student.astype(np.float64), teacher.astype(np.float64), rcond=None)[0]
    u, s, _ = np.linalg.svd(w, full_matrices=False)
    s = s / s.max() if s.max() > 0 else s  # only the directions' relative weights matter to a cosine
    return (u * s**power).astype(np.float32)
