"""Train one model per variant of the default recipe and report validation metrics.

Each variant changes one thing from the default TrainConfig; the README's model card table
comes from this script. Only the validation part is used to compare (test stays untouched).

    python benchmarks/ablations.py                       # every variant (about 6 min each here)
    python benchmarks/ablations.py --only default no_transitive
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch

from common import RESULTS, machine
from qsearch.data import load_pairs, split_pairs
from qsearch.evaluate import choose_threshold, classification_metrics, pair_scores
from qsearch.paths import DEFAULT_PAIRS
from qsearch.train import TrainConfig, train

VARIANTS = {
    "default": {},
    "course_recipe": {"labelled_negatives": False, "oov_buckets": 0, "corpus": None, "transitive": False},
    "no_labelled_negatives": {"labelled_negatives": False},
    "no_transitive": {"transitive": False},
    "no_oov_buckets_no_corpus_vocab": {"oov_buckets": 0, "corpus": None},
    "unidirectional": {"bidirectional": False},
    "dropout_0.3": {"dropout": 0.3},
    "batch_512": {"batch_size": 512},
    "dim_256": {"dim": 256, "embed_dim": 256},
    "pretrain_2": {"pretrain_epochs": 2},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    val = split_pairs(load_pairs(DEFAULT_PAIRS).frame)["validation"]
    labels = val["is_duplicate"].to_numpy()
    path = RESULTS / "ablations.json"
    done = json.loads(path.read_text()) if path.exists() else {}
    for name in args.only:
        config = TrainConfig(**VARIANTS[name])
        start = time.perf_counter()
        encoder = train(config, log=lambda m, name=name: print(f"  [{name}] {m}", flush=True))
        seconds = time.perf_counter() - start
        with tempfile.TemporaryDirectory() as tmp:  # score the float16 model that would ship
            encoder.save(tmp)
            from qsearch import Encoder

            encoder = Encoder.load(tmp)
        scores = pair_scores(encoder, val["question1"].tolist(), val["question2"].tolist())
        m = classification_metrics(scores, labels, choose_threshold(scores, labels)["accuracy"])
        done[name] = {
            "change": VARIANTS[name] and {k: str(v) for k, v in VARIANTS[name].items()},
            "validation_roc_auc": m["roc_auc"], "validation_accuracy": m["accuracy"], "validation_f1": m["f1"],
            "best_epoch": encoder.manifest["training"]["best_epoch"], "train_seconds": round(seconds),
        }
        print(f"{name}: {done[name]}", flush=True)
        RESULTS.mkdir(exist_ok=True)
        path.write_text(json.dumps({"machine": machine(), **done}, indent=2) + "\n")
    print("\n| variant | change | val ROC-AUC | val accuracy | val F1 | best epoch | train s |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name, r in done.items():
        if name == "machine":
            continue
        print(f"| {name} | {r['change'] or 'the default'} | {r['validation_roc_auc']:.4f} | {r['validation_accuracy']:.4f} | "
              f"{r['validation_f1']:.4f} | {r['best_epoch']} | {r['train_seconds']} |")


if __name__ == "__main__":
    main()
