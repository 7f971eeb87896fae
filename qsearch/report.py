"""What ``qsearch evaluate`` reports: pair metrics on a part of a pairs file, retrieval, plots."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from qsearch.data import KIND_COLUMN, SPLITS, load_pairs, readable_duplicates, split_pairs
from qsearch.encoder import Encoder
from qsearch.errors import QsearchError
from qsearch.evaluate import classification_metrics, duplicate_partners, format_auc, known_duplicates, known_for, metrics_by_kind, pair_scores, retrieval_metrics, roc_auc, roc_auc_interval, roc_curve, threshold_sweep
from qsearch.files import replacing
from qsearch.paths import DEFAULT_INDEX, DEFAULT_PAIRS


def select_pairs(data: Path | None, part: str | None):
    """The pairs to evaluate (the test part of the bundled data unless told otherwise), the
    part's name, and how many rows of the file could not be read as a labelled pair."""
    part = part or ("all" if data else "test")
    if part not in ("all", *SPLITS):
        raise QsearchError(f"--part must be all, train, validation or test, not {part!r}")
    table = load_pairs(data or DEFAULT_PAIRS)
    pairs = table.frame
    if part != "all":
        pairs = split_pairs(pairs)[part]
    if pairs.empty:
        raise QsearchError(f"the {part} part of {data or DEFAULT_PAIRS} has no pairs")
    return pairs, part, table.skipped_rows


def evaluate_pairs(
    data: Path | None = None,
    part: str | None = None,
    model: Path | None = None,
    threshold: float | None = None,
    plot: Path | None = None,
) -> dict:
    """Score the pairs with the model and measure them at the model's (or the given) threshold."""
    pairs, part, skipped = select_pairs(data, part)
    encoder = Encoder.load(model)
    q1, q2 = pairs["question1"].tolist(), pairs["question2"].tolist()
    scores = pair_scores(encoder, q1, q2)
    labels = pairs["is_duplicate"].to_numpy()
    cut = encoder.threshold if threshold is None else threshold
    result = {
        "model": str(model or "bundled"),
        "data": str(data or DEFAULT_PAIRS),
        "part": part,
        **classification_metrics(scores, labels, cut),
        "pairs_with_an_empty_question": int(sum(not a.strip() or not b.strip() for a, b in zip(q1, q2))),
        "rows_skipped": skipped,
    }
    if result["roc_auc"] is not None:
        result["roc_auc_interval"] = roc_auc_interval(scores, labels)
    if KIND_COLUMN in pairs.columns:
        result["by_kind"] = metrics_by_kind(scores, labels, pairs[KIND_COLUMN].tolist(), cut)
    if plot:
        if result["roc_auc"] is None:
            raise QsearchError("--plot draws a ROC curve, which needs both duplicates and non-duplicates among the pairs")
        plot_scores(scores, labels, cut, plot, title=f"{Path(result['data']).name} ({part})")
        result["plot"] = str(plot)
    return result


def plot_scores(scores: np.ndarray, labels: np.ndarray, threshold: float, path: Path, title: str) -> None:
    """ROC curve on the left; accuracy and F1 against the threshold on the right."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fpr, tpr, _ = roc_curve(scores, labels)
    cuts, acc, f1 = threshold_sweep(scores, labels)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2))
    left.plot(fpr, tpr, label=f"qsearch (AUC {roc_auc(scores, labels):.3f})")
    left.plot([0, 1], [0, 1], ":", color="grey", label="chance")
    left.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    left.legend(loc="lower right")
    keep = np.isfinite(cuts) & (cuts > -1.01) & (cuts < 1.01)
    right.plot(cuts[keep], acc[keep], label="accuracy")
    right.plot(cuts[keep], f1[keep], label="F1")
    right.axvline(threshold, color="grey", ls="--", label=f"threshold {threshold:.3f}")
    right.set(xlabel="cosine threshold", ylabel="score", title="accuracy and F1 by threshold")
    right.legend(loc="lower left")
    fig.suptitle(title)
    fig.tight_layout()
    try:
        with replacing(path) as tmp:  # whole or not at all: a full disk leaves no empty file behind
            fig.savefig(tmp, dpi=110, format=Path(path).suffix[1:] or None)
    except OSError as e:
        raise QsearchError(f"cannot write {path}: {e.strerror or e}") from None
    finally:
        plt.close(fig)


def evaluate_retrieval(data: Path | None = None, index: Path = DEFAULT_INDEX, k: int = 10) -> dict:
    """Recall@1, Recall@10, MRR@10: each test duplicate's first question against the index.

    The query's own entry is left out of its results; relevant are the questions paired with
    it as duplicates in the test part. Queries whose partner is not indexed are counted apart.
    ``known@1``/``known@10`` count any indexed question that the file's duplicate pairs, of
    every part, make a duplicate of the query (``known_duplicates``) as found.
    """
    from qsearch.search import SearchEngine

    parts = split_pairs(load_pairs(data or DEFAULT_PAIRS).frame)
    dups = parts["test"][parts["test"]["is_duplicate"] == 1]
    labelled = readable_duplicates(parts, "test")  # every part's
    engine = SearchEngine.open(index)
    ids = engine.ids_of([q.strip() for q in labelled[0] + labelled[1]])
    relevant = duplicate_partners(dups["question1"].tolist(), dups["question2"].tolist(), ids)
    queries = list(relevant)
    if not queries:
        raise QsearchError(f"no test duplicate of {data or DEFAULT_PAIRS} has its partner in the index {index}")
    found = engine.search(queries, k + 1)
    ranked = np.array([[m.id for m in ms if m.id != ids.get(q)][:k] + [-1] * k for q, ms in zip(queries, found)])[:, :k]
    known = known_duplicates(*labelled, ids)
    result = retrieval_metrics(ranked, [relevant[q] for q in queries], known_for(queries, relevant, known))
    result.update({"index": str(index), "indexed_questions": len(engine), "skipped_not_indexed": int(len(dups) - sum(map(len, relevant.values())))})
    return result


def format_evaluation(r: dict) -> str:
    (tn, fp), (fn, tp) = r["confusion_matrix"]
    lines = [
        f"model {r['model']}  data {r['data']}  part {r['part']}  ({r['pairs']} pairs)",
        f"threshold   {r['threshold']:.4f}",
        f"accuracy    {r['accuracy']:.4f}",
        f"precision   {r['precision']:.4f}",
        f"recall      {r['recall']:.4f}",
        f"F1          {r['f1']:.4f}",
        f"ROC-AUC     {format_auc(r['roc_auc'])}" + ("  (95% interval {:.4f} to {:.4f})".format(*r["roc_auc_interval"]) if "roc_auc_interval" in r else ""),
        f"confusion   [[tn fp] [fn tp]] = [[{tn} {fp}] [{fn} {tp}]]",
    ]
    if "by_kind" in r:
        width = max(len("kind"), *map(len, r["by_kind"]))
        lines.append("by kind     mean score, share judged right at the threshold, ROC-AUC against the pairs of the other label")
        lines.append(f"  {'kind':<{width}}  {'pairs':>5}  {'mean':>6}  {'right':>6}  {'ROC-AUC':>7}")
        for kind, k in r["by_kind"].items():
            label = "duplicates" if k["duplicates"] == k["pairs"] else "non-duplicates" if not k["duplicates"] else "both labels"
            auc = "n/a" if k["roc_auc"] is None else f"{k['roc_auc']:.4f}"
            lines.append(f"  {kind:<{width}}  {k['pairs']:>5}  {k['mean_score']:.4f}  {k['accuracy']:.4f}  {auc:>7}  {label}")
    if r["rows_skipped"]:
        lines.append(f"note        {r['rows_skipped']} rows of the file skipped: unreadable, or is_duplicate not 0 or 1")
    if r["pairs_with_an_empty_question"]:
        lines.append(f"note        {r['pairs_with_an_empty_question']} pairs have an empty question (scored 0, not duplicate)")
    if "plot" in r:
        lines.append(f"plot        {r['plot']}")
    if "retrieval" in r:
        x = r["retrieval"]
        lines.append(
            f"retrieval   Recall@1 {x['recall@1']:.4f}  Recall@10 {x['recall@10']:.4f}  MRR@10 {x['mrr@10']:.4f}  "
            f"({x['queries']} queries against {x['indexed_questions']} questions)"
        )
        lines.append(f"            a known duplicate first {x['known@1']:.4f}, in the first ten {x['known@10']:.4f}  (any question the labelled pairs make a duplicate)")
    return "\n".join(lines)
