"""Pair classification and retrieval metrics, and the validation-chosen threshold.

Plain numpy so that ``qsearch evaluate`` needs neither torch nor scikit-learn.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from statistics import NormalDist
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from qsearch.encoder import Encoder


def pair_scores(encoder: Encoder, q1: list[str], q2: list[str]) -> np.ndarray:
    """The verdict score of each pair (``Encoder.verdicts``: the cosine of their verdict vectors,
    less the word gap for a model that has one)."""
    return encoder.verdicts(q1, q2)


def roc_curve(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False-positive rate, true-positive rate and thresholds, one point per distinct score."""
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], labels[order].astype(np.float64)
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tps, fps = np.cumsum(y)[last], np.cumsum(1 - y)[last]
    pos, neg = max(tps[-1], 1), max(fps[-1], 1)
    return np.r_[0, fps / neg], np.r_[0, tps / pos], np.r_[np.inf, s[last]]


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (ties count one half), via the trapezoid rule."""
    fpr, tpr, _ = roc_curve(scores, labels)
    return float(np.trapezoid(tpr, fpr))


def _midranks(values: np.ndarray) -> np.ndarray:
    """Ranks from 1, ties sharing the mean of their ranks."""
    order = np.argsort(values, kind="mergesort")
    ranked = values[order]
    starts = np.r_[0, np.flatnonzero(np.diff(ranked)) + 1]
    ends = np.r_[starts[1:], len(values)]
    out = np.empty(len(values))
    out[order] = np.repeat((starts + ends + 1) / 2, ends - starts)
    return out


def roc_auc_covariance(scores: list[np.ndarray], labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ROC-AUC of each score vector on the same labelled pairs, and their covariance matrix
    (DeLong et al. 1988, by midranks as in Sun and Xu 2014): what a small hand-written set's
    ROC-AUC is worth, and whether two models differ on it by more than the set can tell."""
    labels = labels.astype(bool)
    m, n = int(labels.sum()), int((~labels).sum())
    if not m or not n:
        raise ValueError("a ROC-AUC needs both duplicates and non-duplicates")
    v10, v01 = [], []
    for s in scores:
        s = np.asarray(s, dtype=np.float64)
        x, y = s[labels], s[~labels]
        tz = _midranks(np.r_[x, y])
        v10.append((tz[:m] - _midranks(x)) / n)
        v01.append(1.0 - (tz[m:] - _midranks(y)) / m)
    v10, v01 = np.array(v10), np.array(v01)
    cov = (np.cov(v10, ddof=1) / m if m > 1 else 0.0) + (np.cov(v01, ddof=1) / n if n > 1 else 0.0)
    return v10.mean(axis=1), np.atleast_2d(cov)


def roc_auc_interval(scores: np.ndarray, labels: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The two ends of a ``level`` confidence interval of ROC-AUC (DeLong's variance, normal
    approximation, clipped to [0, 1])."""
    auc, cov = roc_auc_covariance([scores], labels)
    half = _z(level) * float(np.sqrt(cov[0, 0]))
    return max(0.0, float(auc[0]) - half), min(1.0, float(auc[0]) + half)


def roc_auc_difference(first: np.ndarray, second: np.ndarray, labels: np.ndarray, level: float = 0.95) -> dict:
    """First model's ROC-AUC minus the second's on the same pairs, with its ``level`` interval
    and the two-sided p-value of DeLong's paired test (the pairs are shared, so the two
    ROC-AUCs are correlated and the interval is narrower than either one's alone)."""
    auc, cov = roc_auc_covariance([first, second], labels)
    diff = float(auc[0] - auc[1])
    sd = float(np.sqrt(max(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1], 0.0)))
    if sd > 0:
        p = math.erfc(abs(diff) / sd / math.sqrt(2))
    else:
        p = 1.0 if diff == 0 else 0.0
    half = _z(level) * sd
    return {"difference": diff, "interval": (diff - half, diff + half), "p_value": p}


def _z(level: float) -> float:
    """The standard normal quantile that leaves (1 - level) / 2 in each tail."""
    return NormalDist().inv_cdf((1 + level) / 2)


def _cut_counts(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True and false positives of 'duplicate if score > t' for each distinct cut t.

    Each cut lies midway between two neighbouring distinct scores (the first one at the top
    score: nothing predicted; the last one below the lowest: everything predicted).
    """
    fpr, tpr, thr = roc_curve(scores, labels)
    distinct = thr[1:]
    below = np.r_[distinct[1:], distinct[-1] - 1.0]
    cuts = np.r_[distinct[0], (distinct + below) / 2]
    pos = labels.sum()
    return cuts, tpr * pos, fpr * (len(labels) - pos)


def _accuracy_f1(tp: np.ndarray, fp: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pos, n = labels.sum(), len(labels)
    acc = (tp + (n - pos - fp)) / n
    f1 = np.divide(2 * tp, tp + fp + pos, out=np.zeros_like(tp), where=(tp + fp + pos) > 0)
    return acc, f1


def threshold_sweep(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Accuracy and F1 of 'duplicate if score > t' for each distinct cut of the scores."""
    cuts, tp, fp = _cut_counts(scores, labels)
    return (cuts, *_accuracy_f1(tp, fp, labels))


CLUSTER_PRECISION = 0.8


def choose_threshold(scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Thresholds picked on labelled pairs (validation, never test).

    ``accuracy``: the accuracy-best one, used for every duplicate verdict. ``f1``: the F1-best
    one, reported. ``cluster``: the lowest one whose precision reaches ``CLUSTER_PRECISION``
    (with at least 30 pairs predicted duplicate), used by dedup: a connected component
    grows through every false pair, so clustering needs fewer false pairs than a verdict does.
    """
    thr, tp, fp = _cut_counts(scores, labels)
    acc, f1 = _accuracy_f1(tp, fp, labels)
    predicted = tp + fp
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    ok = (precision >= CLUSTER_PRECISION) & (predicted >= 30)
    cluster = float(thr[np.flatnonzero(ok)[-1]]) if ok.any() else float(thr[1])
    return {"accuracy": float(thr[np.argmax(acc)]), "f1": float(thr[np.argmax(f1)]), "cluster": cluster}


def classification_metrics(scores: np.ndarray, labels: np.ndarray, threshold: float) -> dict:
    """Accuracy, confusion matrix [[tn fp] [fn tp]], precision, recall, F1, ROC-AUC.

    ROC-AUC is None when the pairs carry one label only: it compares duplicates with
    non-duplicates, and None stays valid JSON where NaN does not."""
    labels = labels.astype(bool)
    pred = scores > threshold
    tp = int((pred & labels).sum())
    fp = int((pred & ~labels).sum())
    fn = int((~pred & labels).sum())
    tn = int((~pred & ~labels).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "pairs": int(len(labels)),
        "threshold": float(threshold),
        "accuracy": (tp + tn) / len(labels),
        "confusion_matrix": [[tn, fp], [fn, tp]],
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "roc_auc": roc_auc(scores, labels) if 0 < labels.sum() < len(labels) else None,
    }


def metrics_by_kind(scores: np.ndarray, labels: np.ndarray, kinds: list[str], threshold: float) -> dict[str, dict]:
    """Each kind of pair (a pairs file's ``kind`` column) on its own: how many pairs and how
    many of them duplicates, their mean score, the share the threshold judges right, and the
    ROC-AUC of the kind's pairs against every pair of the other label (within the kind when
    it holds both). A hand-written set's kinds each hold one label, so "other-words against
    the near-misses" is the question this answers; None when there is nothing to compare."""
    labels = labels.astype(bool)
    kinds = np.array([k or "(none)" for k in kinds], dtype=object)
    out = {}
    for kind in dict.fromkeys(kinds.tolist()):
        own = kinds == kind
        others = ~np.isin(labels, np.unique(labels[own]))
        both = own | others
        duplicates = int(labels[own].sum())
        out[kind] = {
            "pairs": int(own.sum()),
            "duplicates": duplicates,
            "mean_score": float(scores[own].mean()),
            "accuracy": float(((scores[own] > threshold) == labels[own]).mean()),
            "roc_auc": roc_auc(scores[both], labels[both]) if 0 < labels[both].sum() < both.sum() else None,
        }
    return out


def format_auc(value: float | None) -> str:
    """A ROC-AUC for people: four decimals, or why there is none."""
    return "n/a (needs both duplicates and non-duplicates)" if value is None else f"{value:.4f}"


def retrieval_metrics(ranked_ids: np.ndarray, relevant: list[set[int]], known: list[set[int]] | None = None) -> dict:
    """Recall@1, Recall@10 and MRR@10 for ranked result ids (one row per query), relevant being
    each query's labelled partners; with ``known`` (each query's known duplicates, its partners
    among them: ``known_for``), also ``known@1`` and ``known@10``, the share of queries whose
    first result, or one of whose first ten, is a known duplicate."""
    r1 = r10 = mrr = 0.0
    for row, rel in zip(ranked_ids, relevant):
        hits = [rank for rank, i in enumerate(row[:10]) if i in rel]
        r1 += bool(hits) and hits[0] == 0
        r10 += len(hits) / len(rel) if rel else 0.0
        mrr += 1.0 / (hits[0] + 1) if hits else 0.0
    n = max(len(relevant), 1)
    out = {"queries": len(relevant), "recall@1": r1 / n, "recall@10": r10 / n, "mrr@10": mrr / n}
    if known is not None:
        out["known@1"] = sum(len(row) > 0 and row[0] in k for row, k in zip(ranked_ids, known)) / n
        out["known@10"] = sum(any(i in k for i in row[:10]) for row, k in zip(ranked_ids, known)) / n
    return out


def duplicate_partners(first: list[str], second: list[str], ids: Mapping[str, int]) -> dict[str, set[int]]:
    """For each first question of a duplicate pair (stripped), the ids of its partners.

    Pairs with an empty question, of a question with itself, or whose partner has no id are
    left out: every retrieval measure here asks the same questions.
    """
    partners: dict[str, set[int]] = {}
    for a, b in zip(first, second):
        a, b = a.strip(), b.strip()
        if a and b and a != b and b in ids:
            partners.setdefault(a, set()).add(ids[b])
    return partners


def known_duplicates(first: list[str], second: list[str], ids: Mapping[str, int]) -> dict[str, set[int]]:
    """For each question of the duplicate pairs ``first``/``second`` (stripped), the ids of every
    other question those pairs make its duplicate, directly or through others (a~b and b~c: a~c).

    Quora's questions recur across pairs: a test query often has duplicates labelled in other
    pairs (352 of the bundled data's 1,152 test queries do), and a search that puts one of them
    first has found a duplicate, which Recall@1 (the labelled partner alone) counts as a miss.
    """
    from qsearch.data import duplicate_components  # here, not above: qsearch.data loads pandas, which search never needs

    pairs = [(a.strip(), b.strip()) for a, b in zip(first, second)]
    pairs = [(a, b) for a, b in pairs if a and b and a != b]
    component = duplicate_components([a for a, _ in pairs], [b for _, b in pairs])
    members: dict[int, set[int]] = {}
    for text, c in component.items():
        if text in ids:
            members.setdefault(c, set()).add(ids[text])
    return {text: members.get(c, set()) - {ids.get(text, -1)} for text, c in component.items()}


def known_for(queries: list[str], relevant: Mapping[str, set[int]], known: Mapping[str, set[int]]) -> list[set[int]]:
    """Each query's known duplicates: its labelled partners and ``known_duplicates``'s ids."""
    return [relevant[q] | known.get(q, set()) for q in queries]


def duplicate_retrieval(
    encoder: Encoder, pool: list[str], first: list[str], second: list[str], k: int = 10, labelled: tuple[list[str], list[str]] | None = None
) -> dict:
    """Recall@1/@10 of exact search: each pair's first question among ``pool`` plus the pairs'
    own questions, its own entry left out; relevant are its duplicates' second questions. With
    ``labelled`` (the first and second questions of every duplicate pair whose labels may be
    read, these among them), also ``known@1``/``known@10`` (``retrieval_metrics``).

    Plain numpy (no index), so training can follow the measure that search users feel.
    """
    texts = list(dict.fromkeys([t.strip() for t in pool] + [t.strip() for t in first + second]))
    position = {t: i for i, t in enumerate(texts)}
    relevant = duplicate_partners(first, second, position)
    queries = list(relevant)
    k = min(k, len(texts) - 1)
    known = None if labelled is None else known_for(queries, relevant, known_duplicates(*labelled, position))
    if not queries:
        return retrieval_metrics(np.zeros((0, k), dtype=np.int64), [], known)
    vectors, asked = encoder.encode(texts), encoder.encode(queries)
    ranked = np.empty((len(queries), k), dtype=np.int64)
    for start, top, scores in nearest(asked, vectors, np.array([position[q] for q in queries]), k):
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
        ranked[start : start + len(top)] = np.take_along_axis(top, order, axis=1)
    return retrieval_metrics(ranked, [relevant[q] for q in queries], known)


SCORE_BYTES = 1 << 30  # a chunk's float32 scores stay under this: 4,096 rows of the bundled data's 55k, 335 of a full release's 800k


def nearest(asked: np.ndarray, vectors: np.ndarray, own: np.ndarray, k: int, chunk: int = 256, max_bytes: int = SCORE_BYTES):
    """Exact search in chunks of ``asked`` rows, each row's ``own`` entry of ``vectors`` left out:
    yields (first row, the chunk's k best columns, the chunk's scores); the columns come best
    first for k up to ``ARGMAX_PASSES``, in no order beyond. A chunk has at most ``chunk`` rows,
    fewer where its scores would pass ``max_bytes``, so memory stays flat as ``vectors`` grow."""
    chunk = max(1, min(chunk, max_bytes // (4 * max(1, len(vectors)))))
    for start in range(0, len(asked), chunk):
        scores = asked[start : start + chunk] @ vectors.T
        scores[np.arange(len(scores)), own[start : start + chunk]] = -np.inf
        yield start, _top_columns(scores, k), scores


ARGMAX_PASSES = 4


def _top_columns(scores: np.ndarray, k: int) -> np.ndarray:
    """Each row's ``k`` best columns. Up to ``ARGMAX_PASSES`` (silver pairs' 3), k passes of
    argmax, each a tenth of a partial sort of every row (55k x 55k scores: 23 s instead of
    50-57); beyond that (word neighbours' 8, retrieval's 10) the partial sort is as fast."""
    if k > ARGMAX_PASSES:
        return np.argpartition(-scores, k - 1, axis=1)[:, :k]
    rows = np.arange(len(scores))
    top = np.empty((len(scores), k), dtype=np.int64)
    kept = np.empty((len(scores), k), dtype=scores.dtype)
    for j in range(k):
        top[:, j] = scores.argmax(axis=1)
        kept[:, j] = scores[rows, top[:, j]]
        scores[rows, top[:, j]] = -np.inf
    scores[rows[:, None], top] = kept
    return top
