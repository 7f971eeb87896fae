"""The output map's power and fit (``--map-power``, ``--map-neighbours``) and the pair map's power
(``--pair-map-power``) measured on a trained model, without training again.

The maps after the pooling are fitted after training (``qsearch.alignment``,
``qsearch.pair_map``), so any power can be fitted again on a model's saved weights
(``qsearch.train.refit_output_map``; the teacher's vectors of the training questions come from
its cache), on the questions themselves (neighbours 0) or on their differences to their nearest
questions by the teacher. Each map gets its threshold chosen on validation and is measured by the rule that chooses the bundled model (docs/model-card.md):
validation ROC-AUC, Recall@1 and Recall@10 of the validation duplicates ranked as search ranks
them against the bundled corpus, and ROC-AUC of the development paraphrase set. The 234-pair
paraphrase set and the test part are printed for the record; read validation to choose. Needs
the teacher extra (pip install -e '.[teacher]').

    python benchmarks/map_power.py
    python benchmarks/map_power.py --model models/mine --powers 0 0.5 1
    python benchmarks/map_power.py --powers 0.5 --neighbours 0 5 10
    python benchmarks/map_power.py --powers 0.5 --pair-powers 0 0.5 1 1.5
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import PARAPHRASES, PARAPHRASES_DEV, PARAPHRASES_MORE, machine, save
from ranking import known_sets, recall_by_weight, searches
from qsearch import Encoder, QsearchError
from qsearch.checkpoint import config_of
from qsearch.data import default_questions, load_pairs, split_pairs
from qsearch.evaluate import choose_threshold, classification_metrics, pair_scores, roc_auc
from qsearch.hubness import measure_vectors
from qsearch.paths import DEFAULT_CORPUS, DEFAULT_PAIRS
from qsearch.teacher import load_teacher, teacher_spec
from qsearch.train import refit_output_map


def scored(encoder: Encoder, frame) -> tuple:
    return pair_scores(encoder, frame["question1"].tolist(), frame["question2"].tolist()), frame["is_duplicate"].to_numpy()


def measure(encoder: Encoder, parts: dict, corpus: list[str], paraphrases: dict) -> dict:
    """The rule's four terms, their sum, and the record: the reported paraphrase sets and test.
    ``paraphrases``: the development set's, the 234-pair set's and (optional) the 251-pair set's
    pairs, by name; with the last, both reported sets together are scored too."""
    vectors = encoder.encode(corpus)
    hubs = {"exact": measure_vectors(vectors)}
    search = {}
    for name in ("validation", "test"):
        queries, relevant, scores = searches(encoder, parts[name], corpus, vectors)
        hub, words = encoder.search_weights
        known = known_sets(parts, name, queries, relevant, corpus)
        search[name] = recall_by_weight(queries, corpus, relevant, scores, hubs, encoder.lexicon, ((hub, words),), known)[f"exact {hub} {words}"]
    val, test = scored(encoder, parts["validation"]), scored(encoder, parts["test"])
    threshold = choose_threshold(*val)["accuracy"]
    on_test = classification_metrics(*test, threshold)
    out = {
        "validation_roc_auc": roc_auc(*val),
        "validation_recall@1": search["validation"]["recall@1"],
        "validation_recall@10": search["validation"]["recall@10"],
        "development_set_roc_auc": roc_auc(*scored(encoder, paraphrases["development"])),
    }
    out["sum"] = sum(out.values())
    reported = scored(encoder, paraphrases["reported"])
    out["paraphrase_set_roc_auc"] = roc_auc(*reported)
    if "more" in paraphrases:  # both reported sets together: their scores and labels joined, each set scored once
        more = scored(encoder, paraphrases["more"])
        out["both_reported_sets_roc_auc"] = roc_auc(np.concatenate([reported[0], more[0]]), np.concatenate([reported[1], more[1]]))
    out.update({
        "threshold": threshold,
        "test_roc_auc": on_test["roc_auc"],
        "test_accuracy": on_test["accuracy"],
        "test_recall@1": search["test"]["recall@1"],
        "test_recall@10": search["test"]["recall@10"],
        **{f"{name}_known@{k}": search[name][f"known@{k}"] for name in ("validation", "test") for k in (1, 10)},
    })
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="model folder trained with a teacher (default: the bundled model)")
    parser.add_argument("--powers", type=float, nargs="+", default=[0.0, 0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 1.0])
    parser.add_argument("--neighbours", type=int, nargs="+", default=None,
                        help="fit on differences to this many nearest questions (0: on the questions); default: the model's own")
    parser.add_argument("--pair-powers", type=float, nargs="+", default=None,
                        help="the pair map's powers (0: none); default: the model's own")
    args = parser.parse_args()

    model = Encoder.load(args.model)
    if not model.manifest.get("training", {}).get("teacher", {}).get("name"):
        sys.exit(f"{args.model or 'the bundled model'} was trained without a teacher: it has no map to fit")
    training = {**model.manifest["training"], "model": model.manifest["model"], "data": DEFAULT_PAIRS, "corpus": DEFAULT_CORPUS}
    config = config_of(training)
    teacher = load_teacher(teacher_spec(model.manifest["training"]["teacher"]["name"]))
    parts = split_pairs(load_pairs(DEFAULT_PAIRS).frame)
    corpus = list(dict.fromkeys(t.strip() for t in default_questions() if t.strip()))
    paraphrases = {"development": load_pairs(PARAPHRASES_DEV).frame, "reported": load_pairs(PARAPHRASES).frame, "more": load_pairs(PARAPHRASES_MORE).frame}
    columns = ["validation_roc_auc", "validation_recall@1", "validation_recall@10", "development_set_roc_auc", "sum",
               "paraphrase_set_roc_auc", "both_reported_sets_roc_auc", "test_roc_auc", "test_accuracy", "test_recall@1", "test_recall@10"]
    fitted = model.manifest.get("output_map", {})
    trained = (fitted.get("power", 0.0), fitted.get("neighbours", 0), model.manifest.get("pair_map", {}).get("power", 0.0))
    print(f"{model.name}: trained at power {trained[0]:g}, neighbours {trained[1]}, pair map power {trained[2]:g}; "
          "rule = the first four columns summed; the paraphrase sets and test are for the record")
    short = {"validation": "val", "development_set": "dev", "paraphrase_set": "234", "both_reported_sets": "485"}
    print(f"{'power':>6} {'near':>4} {'pair':>5} " + " ".join(f"{short_name(c, short):>14}" for c in columns))
    results = {}
    start = time.perf_counter()
    for neighbours in args.neighbours if args.neighbours is not None else [trained[1]]:
        for pair in args.pair_powers if args.pair_powers is not None else [trained[2]]:
            for power in args.powers:
                if (power, neighbours, pair) == trained or (power == trained[0] == 0 and pair == trained[2] == 0):
                    row = measure(model, parts, corpus, paraphrases)  # as it is: a map fitted again differs in float16's last digit, which moves a tie
                else:
                    with tempfile.TemporaryDirectory() as tmp:  # measured as a saved folder holds it (a float16 map)
                        refit_output_map(model, config, teacher, power, log=lambda m: None, neighbours=neighbours, pair_power=pair).save(tmp)
                        row = measure(Encoder.load(tmp), parts, corpus, paraphrases)
                results[f"{power:g} {neighbours}" + (f" {pair:g}" if args.pair_powers is not None else "")] = row
                print(f"{power:>6g} {neighbours:>4} {pair:>5g} " + " ".join(f"{row[c]:>14.4f}" for c in columns), flush=True)
    best = max(results, key=lambda p: results[p]["sum"])
    print(f"highest sum: {best} ({results[best]['sum']:.4f}); {time.perf_counter() - start:.0f} s")
    name = "pair_map" if args.pair_powers is not None else "map_neighbours" if args.neighbours is not None else "map_power"
    save(name, {"machine": machine(), "model": model.name, "results": results})


def short_name(column: str, short: dict) -> str:
    """A column's name shortened for the printed table."""
    for long, brief in short.items():
        column = column.replace(long, brief)
    return column


if __name__ == "__main__":
    try:
        main()
    except QsearchError as e:  # a missing model, another model's data, a negative power: one line, no traceback
        sys.exit(f"error: {e}")
