"""Train one model per variant of the default recipe; report quality beside speed and size.

Each variant changes one thing from the default TrainConfig (with or without the teacher).
Models are compared on the validation part and on the hand-written paraphrase set
(benchmarks/data/paraphrases.csv, never trained on); the test part stays untouched. Encoding
speed is measured on 20,000 corpus questions, batched, one thread, beside each row.

    pip install -e '.[teacher]'
    python benchmarks/ablations.py --only teacher_default triplet_only
    python benchmarks/ablations.py --only teacher_default --epochs 6 --distill-epochs 2   # quicker
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch

from common import PARAPHRASES, PARAPHRASES_DEV, RESULTS, machine
from qsearch import Encoder
from qsearch.config import ModelConfig
from qsearch.data import load_pairs, load_questions, split_pairs
from qsearch.evaluate import choose_threshold, classification_metrics, pair_scores, roc_auc
from qsearch.paths import DEFAULT_CORPUS, DEFAULT_PAIRS
from qsearch.config import TrainConfig
from qsearch.train import train


# name: (uses the teacher, TrainConfig changes, ModelConfig changes)
VARIANTS = {
    "triplet_only": (False, {}, {}),
    "course_recipe": (False, {"labelled_negatives": False, "buckets": 0, "corpus": None, "transitive": False}, {}),
    "teacher_default": (True, {}, {}),
    "teacher_no_word_init": (True, {"word_init": False, "english_words": 0}, {}),
    "teacher_no_general_words": (True, {"english_words": 0}, {}),
    "teacher_no_distill_stage": (True, {"distill_epochs": 0}, {}),
    "teacher_no_distill_in_triplet": (True, {"distill_weight": 0.0}, {}),
    "teacher_similarity": (True, {"distill": "similarity", "distill_weight": 10.0}, {}),
    "teacher_frozen_embeddings": (True, {"freeze_embeddings": True}, {}),
    "teacher_no_augment": (True, {"augment": 0.0}, {}),
    "teacher_dim256": (True, {}, {"dim": 256}),
    "teacher_dim384": (True, {}, {"dim": 384}),
    "teacher_2_layers": (True, {}, {"layers": 2}),
}


def encoding_speed(encoder: Encoder, questions: list[str]) -> float:
    """Questions per second, batched, on one thread (as compare.py measures qsearch)."""
    encoder.encode(questions[:500])
    start = time.perf_counter()
    encoder.encode(questions)
    return len(questions) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--epochs", type=int, help="triplet-stage epochs for every variant (default: TrainConfig's)")
    parser.add_argument("--distill-epochs", type=int, help="distillation epochs for every teacher variant")
    parser.add_argument("--out", type=Path, default=RESULTS / "ablations.json")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads for training")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    val = split_pairs(load_pairs(DEFAULT_PAIRS).frame)["validation"]
    para = load_pairs(PARAPHRASES).frame
    dev = load_pairs(PARAPHRASES_DEV).frame
    labels = val["is_duplicate"].to_numpy()
    corpus = load_questions(DEFAULT_CORPUS)[:20000]
    done = json.loads(args.out.read_text()) if args.out.exists() else {}
    teacher = None
    for name in args.only:
        uses_teacher, changes, model_changes = VARIANTS[name]
        if uses_teacher and teacher is None:
            from qsearch.teacher import load_teacher

            teacher = load_teacher("minilm")
        config = TrainConfig(**changes, model=ModelConfig(**model_changes))
        if args.epochs:
            config.epochs = args.epochs
        if args.distill_epochs is not None:
            config.distill_epochs = args.distill_epochs
        start = time.perf_counter()
        encoder = train(config, log=lambda m, name=name: print(f"  [{name}] {m}", flush=True), teacher=teacher if uses_teacher else None)
        seconds = time.perf_counter() - start
        with tempfile.TemporaryDirectory() as tmp:  # score the float16 model that would ship
            encoder.save(tmp)
            encoder = Encoder.load(tmp)
            size = sum(p.stat().st_size for p in Path(tmp).iterdir()) / 2**20
        scores = pair_scores(encoder, val["question1"].tolist(), val["question2"].tolist())
        m = classification_metrics(scores, labels, choose_threshold(scores, labels)["accuracy"])
        para_scores = pair_scores(encoder, para["question1"].tolist(), para["question2"].tolist())
        dev_scores = pair_scores(encoder, dev["question1"].tolist(), dev["question2"].tolist())
        torch.set_num_threads(1)
        speed = encoding_speed(encoder, corpus)
        torch.set_num_threads(args.threads)
        done[name] = {
            "teacher": uses_teacher,
            "change": {k: str(v) for k, v in {**changes, **model_changes}.items()},
            "epochs": config.epochs, "distill_epochs": config.distill_epochs if uses_teacher else 0,
            "validation_roc_auc": m["roc_auc"], "validation_accuracy": m["accuracy"], "validation_f1": m["f1"],
            "paraphrase_roc_auc": roc_auc(para_scores, para["is_duplicate"].to_numpy()),
            "paraphrase_dev_roc_auc": roc_auc(dev_scores, dev["is_duplicate"].to_numpy()),
            "encode_questions_per_s": round(speed), "model_mib": round(size, 1),
            "best_epoch": encoder.manifest["training"]["best_epoch"], "train_seconds": round(seconds),
        }
        print(f"{name}: {done[name]}", flush=True)
        args.out.parent.mkdir(exist_ok=True)
        args.out.write_text(json.dumps({"machine": machine(), **done}, indent=2) + "\n")
    print("\n| variant | teacher | change | epochs | val ROC-AUC | val accuracy | paraphrase ROC-AUC | dev paraphrase ROC-AUC | encode q/s | MiB | train s |")
    print("|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in done.items():
        if name == "machine":
            continue
        print(f"| {name} | {'yes' if r['teacher'] else 'no'} | {r['change'] or 'the default'} | {r['distill_epochs']}+{r['epochs']} | "
              f"{r['validation_roc_auc']:.4f} | {r['validation_accuracy']:.4f} | {r['paraphrase_roc_auc']:.4f} | {r.get('paraphrase_dev_roc_auc', float('nan')):.4f} | "
              f"{r['encode_questions_per_s']} | {r['model_mib']} | {r['train_seconds']} |")


if __name__ == "__main__":
    main()
