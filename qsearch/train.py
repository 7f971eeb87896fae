"""Train the Siamese LSTM on the duplicate pairs of the train part (nanoGPT-style: one loop).

Pairs -> batches with no two pairs of one duplicate cluster (so no false in-batch negatives)
-> batch-hard triplet loss -> validation ROC-AUC after every epoch -> the best epoch is kept,
its threshold chosen on validation, then validation and test metrics go into the manifest.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from qsearch.data import SPLIT_RULE, duplicate_components, load_pairs, load_questions, split_pairs, transitive_pairs
from qsearch.encoder import MODEL_FORMAT_VERSION, Encoder
from qsearch.errors import QsearchError
from qsearch.evaluate import choose_threshold, classification_metrics, pair_scores, roc_auc
from qsearch.loss import batch_hard_triplet_loss, pair_ranking_loss
from qsearch.manifest import sha256_file
from qsearch.model import LSTMEncoder, ModelConfig, batch_tensors
from qsearch.paths import DEFAULT_CORPUS, DEFAULT_PAIRS
from qsearch.text import TOKENIZER_NAME, Vocabulary


@dataclass
class TrainConfig:
    """Everything that decides the trained model; stored in its manifest."""

    data: Path = DEFAULT_PAIRS
    corpus: Path | None = DEFAULT_CORPUS
    epochs: int = 12
    batch_size: int = 256
    lr: float = 2e-3
    dim: int = 128
    embed_dim: int = 128
    bidirectional: bool = True
    dropout: float = 0.1
    margin: float = 0.25
    transitive: bool = True
    labelled_negatives: bool = True
    min_count: int = 2
    max_vocab: int = 30000
    oov_buckets: int = 2000
    max_len: int = 64
    patience: int = 3
    pretrain_epochs: int = 0
    seed: int = 0
    threads: int = 0  # torch threads; 0 leaves torch's own choice


def _make_batches(pairs: list[tuple[list[int], list[int], int]], batch_size: int, rng: np.random.Generator):
    """Shuffle, then yield full batches in which no duplicate cluster appears twice.

    A pair whose cluster is already in the batch (it would be a false negative there) waits
    for the next batch; what is still waiting at the end waits for the next epoch's shuffle.
    So an epoch has at most ``len(pairs) // batch_size`` steps, all of full size.
    """
    batch, seen, waiting = [], set(), []
    for i in rng.permutation(len(pairs)):
        pair = pairs[i]
        if pair[2] in seen:
            waiting.append(pair)
            continue
        batch.append(pair)
        seen.add(pair[2])
        while len(batch) == batch_size:
            yield batch
            batch, seen, still = [], set(), []
            for p in waiting:
                if p[2] in seen or len(batch) == batch_size:
                    still.append(p)
                else:
                    batch.append(p)
                    seen.add(p[2])
            waiting = still


def _vocabulary_texts(config: TrainConfig, parts: dict) -> list[str]:
    """Train-part questions plus unlabelled corpus questions that no validation/test pair uses."""
    texts = parts["train"]["question1"].tolist() + parts["train"]["question2"].tolist()
    if config.corpus is None:
        return texts
    held_out = {q for name in ("validation", "test") for col in ("question1", "question2") for q in parts[name][col]}
    return texts + [q for q in load_questions(config.corpus) if q not in held_out]


@dataclass
class _Data:
    parts: dict
    vocab: Vocabulary
    pairs: list[tuple[list[int], list[int], int]]
    negatives: list[tuple[list[int], list[int]]]
    pretrain: list[list[int]]


def _training_data(config: TrainConfig, log) -> _Data:
    """Pairs file -> split -> vocabulary -> token-id training pairs (never a test pair)."""
    table = load_pairs(config.data)
    parts = split_pairs(table.frame)
    train_part, val = parts["train"], parts["validation"]
    dups = train_part[train_part["is_duplicate"] == 1]
    if dups.empty:
        raise QsearchError(f"{config.data} has no duplicate pairs (is_duplicate = 1) in its train part")
    if val.empty or val["is_duplicate"].nunique() < 2:
        raise QsearchError(f"{config.data} is too small: its validation part needs duplicate and non-duplicate pairs")
    q1, q2 = dups["question1"].tolist(), dups["question2"].tolist()
    given = list(zip(q1, q2))
    extra = transitive_pairs(q1, q2) if config.transitive else []
    cluster = duplicate_components(q1, q2)
    texts = _vocabulary_texts(config, parts)
    vocab = Vocabulary.build(texts, config.min_count, config.max_vocab, config.oov_buckets)
    ids = {q: vocab.ids(q, config.max_len) for q in cluster}
    pairs = [(ids[a], ids[b], cluster[a]) for a, b in given + extra if ids[a] and ids[b]]
    pairs += [(b, a, c) for a, b, c in pairs]
    negatives = []
    if config.labelled_negatives:
        non_dups = train_part[train_part["is_duplicate"] == 0]
        for a, b in zip(non_dups["question1"], non_dups["question2"]):
            x, y = vocab.ids(a, config.max_len), vocab.ids(b, config.max_len)
            if x and y:
                negatives.append((x, y))
    pretrain = [x for x in (vocab.ids(t, config.max_len) for t in dict.fromkeys(texts)) if len(x) >= 3] if config.pretrain_epochs else []
    log(
        f"data: {Path(config.data).name}: {len(table.frame)} pairs ({table.skipped_rows} unreadable rows skipped); "
        f"train {len(train_part)}, validation {len(val)}, test {len(parts['test'])}; "
        f"{len(given)} duplicate + {len(extra)} transitive training pairs "
        f"({len(given) + len(extra) - len(pairs) // 2} with an empty question left out), both directions; "
        f"{len(negatives)} labelled non-duplicates; vocabulary {len(vocab)}"
        + (f"; {len(pretrain)} questions for pretraining" if pretrain else "")
    )
    return _Data(parts, vocab, pairs, negatives, pretrain)


def _denoising_pairs(questions: list[list[int]], rng: np.random.Generator, drop: float = 0.15):
    """(question, the question with ~15% of its tokens dropped) pairs for unlabelled pretraining."""
    pairs = []
    for n, ids in enumerate(questions):
        keep = rng.random(len(ids)) >= drop
        view = [t for t, k in zip(ids, keep) if k] or ids[:1]
        pairs.append((ids, view, n))
    return pairs


def _schedule(optimizer, total: int):
    """Linear warm-up over 5% of the steps, then cosine decay to zero."""
    warmup = max(1, total // 20)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, total) / total))
    )


def _step(model, optimizer, schedule, batch, negatives, margin: float, rng) -> float:
    """One optimisation step: triplet loss on the batch, plus the ranking term if negatives."""
    x1, l1 = batch_tensors([p[0] for p in batch])
    x2, l2 = batch_tensors([p[1] for p in batch])
    v1, v2 = model(x1, l1), model(x2, l2)
    loss = batch_hard_triplet_loss(v1, v2, margin)
    if negatives:
        picked = [negatives[i] for i in rng.integers(0, len(negatives), len(batch))]
        n1, m1 = batch_tensors([p[0] for p in picked])
        n2, m2 = batch_tensors([p[1] for p in picked])
        loss = loss + pair_ranking_loss((v1 * v2).sum(dim=1), (model(n1, m1) * model(n2, m2)).sum(dim=1), margin)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    schedule.step()
    return loss.item() / len(batch)


def train(config: TrainConfig, log: Callable[[str], None] = print, progress: Callable | None = None) -> Encoder:
    """Train a model; ``progress(iterable, total, desc)`` may wrap the batches in a progress bar."""
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    if config.threads:
        torch.set_num_threads(config.threads)
    data = _training_data(config, log)
    val = data.parts["validation"]
    mcfg = ModelConfig(len(data.vocab), config.embed_dim, config.dim, config.bidirectional, config.dropout, config.max_len)
    manifest = {
        "format": "qsearch-model",
        "format_version": MODEL_FORMAT_VERSION,
        "name": "qsearch-lstm",
        "model": mcfg.to_dict(),
        "tokenizer": TOKENIZER_NAME,
        "vocab_size": len(data.vocab),
        "vocab_sha256": data.vocab.sha256,
        "threshold": 0.5,
    }
    model = LSTMEncoder(mcfg)
    started = time.perf_counter()
    stages = [("pretrain", config.pretrain_epochs), ("train", config.epochs)]
    best, best_auc, best_epoch, history = None, -1.0, 0, []
    for stage, epochs in stages:
        if not epochs:
            continue
        steps = max(1, (len(data.pretrain) if stage == "pretrain" else len(data.pairs)) // config.batch_size)
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.01)
        schedule = _schedule(optimizer, steps * epochs)
        for epoch in range(1, epochs + 1):
            model.train()
            pairs = _denoising_pairs(data.pretrain, rng) if stage == "pretrain" else data.pairs
            negatives = data.negatives if stage == "train" else []
            batches = _make_batches(pairs, config.batch_size, rng)
            if progress:
                batches = progress(batches, steps, f"{stage} epoch {epoch}")
            losses = []
            for batch in batches:
                losses.append(_step(model, optimizer, schedule, batch, negatives, config.margin, rng))
                if hasattr(batches, "set_postfix"):
                    batches.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}")
            model.eval()
            encoder = Encoder(manifest, data.vocab, model.numpy_weights())
            auc = roc_auc(pair_scores(encoder, val["question1"].tolist(), val["question2"].tolist()), val["is_duplicate"].to_numpy())
            log(f"{stage} epoch {epoch}: loss {np.mean(losses):.4f}  validation ROC-AUC {auc:.4f}  ({time.perf_counter() - started:.0f}s)")
            if stage == "pretrain":
                continue
            history.append({"epoch": epoch, "loss": float(np.mean(losses)), "validation_roc_auc": auc})
            if auc > best_auc:
                best, best_auc, best_epoch = encoder, auc, epoch
            elif epoch - best_epoch >= config.patience:
                log(f"validation ROC-AUC has not improved for {config.patience} epochs: stopping")
                break
    manifest["training"] = {
        **{k: v for k, v in asdict(config).items() if k not in ("data", "corpus")},
        "corpus_file": Path(config.corpus).name if config.corpus else None,
        "data_file": Path(config.data).name,
        "data_sha256": sha256_file(Path(config.data)),
        "split_rule": SPLIT_RULE,
        "training_pairs": len(data.pairs),
        "labelled_non_duplicates": len(data.negatives),
        "best_epoch": best_epoch,
        "epochs_run": len(history),
        "training_seconds": round(time.perf_counter() - started, 1),
        "history": history,
    }
    return Encoder(manifest, data.vocab, best.weights)


def calibrate_and_save(trained: Encoder, config: TrainConfig, out: Path, log: Callable[[str], None] = print) -> Encoder:
    """Save, reload the float16 model, pick its threshold on validation, store val/test metrics."""
    trained.save(out)
    encoder = Encoder.load(out)
    parts = split_pairs(load_pairs(config.data).frame)
    scored = {
        name: (pair_scores(encoder, part["question1"].tolist(), part["question2"].tolist()), part["is_duplicate"].to_numpy())
        for name, part in parts.items()
        if name != "train" and len(part)
    }
    thresholds = choose_threshold(*scored["validation"])
    encoder.manifest["threshold"] = thresholds["accuracy"]
    encoder.manifest["threshold_f1"] = thresholds["f1"]
    encoder.manifest["threshold_cluster"] = thresholds["cluster"]
    encoder.manifest["metrics"] = {name: classification_metrics(s, y, thresholds["accuracy"]) for name, (s, y) in scored.items()}
    encoder.save(out)
    for name, m in encoder.manifest["metrics"].items():
        log(f"{name}: accuracy {m['accuracy']:.4f}  F1 {m['f1']:.4f}  ROC-AUC {m['roc_auc']:.4f}  (threshold {m['threshold']:.4f})")
    return Encoder.load(out)
