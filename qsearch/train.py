"""Train the Siamese LSTM on the duplicate pairs of the train part (nanoGPT-style: one loop).

Pairs -> batches with no two pairs of one duplicate cluster (so no false in-batch negatives)
-> a sum of objectives (batch-hard triplet, ranking over labelled non-duplicates, and with a
teacher, distillation) -> validation ROC-AUC after every epoch -> the best epoch is kept, its
threshold chosen on validation, then validation and test metrics go into the manifest.

With a teacher (training time only) there are four steps before that: the teacher encodes
every question the student may learn from (cached on disk), its near pairs of training
questions in other words join the duplicates (``qsearch.silver``), and so do some questions
with a statement of another question before them (``qsearch.detail``), the embedding table starts
from the teacher's vectors of single words (reduced by PCA), and a distillation-only stage
teaches the LSTM to carry those meanings into sentence vectors; and one after: a square map
fitted onto the teacher's space follows the pooling (``qsearch.alignment``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import torch

from qsearch import checkpoint as ckpt
from qsearch.alignment import OUTPUT_WEIGHT, fit_output_map
from qsearch.augment import augment, teacher_copies, word_neighbours
from qsearch.config import DISTILL_KINDS, MAX_NEIGHBOURS, SELECT_BY, ModelConfig, TrainConfig
from qsearch.data import SPLIT_RULE, check_file, duplicate_components, load_pairs, load_questions, readable_duplicates, split_pairs, transitive_pairs
from qsearch.detail import detail_copies
from qsearch.encoder import MODEL_FORMAT_VERSION, Encoder, from_stored, stored
from qsearch.errors import QsearchError, disk_full
from qsearch.evaluate import choose_threshold, classification_metrics, duplicate_retrieval, format_auc, pair_scores, roc_auc
from qsearch.lexical import Lexicon
from qsearch.manifest import sha256_file
from qsearch.model import LSTMEncoder, batch_tensors
from qsearch.objectives import Batch, MemoryNegatives, MinedNegatives, ProjectionDistillation, Ranking, SimilarityDistillation, Triplet
from qsearch.pair_map import MIN_PAIRS, PAIR_WEIGHT, SHRINK, difference_covariances, enough_pairs, fit_pair_map
from qsearch.paths import check_writable_folder
from qsearch.silver import silver_pairs
from qsearch.teacher import Teacher, cached_encode, teacher_name
from qsearch.text import PIECES_NAME, SPELLING_CHECKED_NAME, TOKENIZER_NAME, Vocabulary, english_words
from qsearch.word_pairs import WordPairs
from qsearch.word_init import initial_embeddings


_NO_BATCH = {
    "distill": "fewer than {size} texts to distil: lower --batch-size",
    "train": "no batch of {size} pairs from different duplicate clusters could be made: the training duplicates are too few "
    "or their clusters too large (silver pairs merge clusters); lower --batch-size or raise --silver-cosine",
}
NEIGHBOUR_WORDS = 20000  # replacement words come from this many most frequent training words
FUSED_ADAMW = ("cpu", "cuda")  # one kernel for every parameter: on 2 CPU cores 10 ms a step, not 115 (the 71k-row embedding table)


def _make_batches(pairs: list, batch_size: int, rng: np.random.Generator) -> Iterator[list]:
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
    questions: list[str]  # every distinct question the student may learn from
    ids: dict[str, list]  # each of them (and each teacher copy) tokenized once
    pairs: list[tuple]  # (ids a, ids b, cluster, question row a, question row b, weight in the triplet loss)
    negatives: list[tuple]
    extra: list[str] = field(default_factory=list)  # texts beyond the questions the teacher encoded: changed copies, then single words
    detail: list[str] = field(default_factory=list)  # texts only the triplet stage reads (``_add_detail_pairs``), after the distilled rows

    @property
    def distilled_rows(self) -> int:
        """Rows of the teacher's table: the questions, then the extra texts."""
        return len(self.questions) + len(self.extra)

    def distilled(self, n: int) -> str:
        """Row ``n`` of the teacher's table."""
        return self.questions[n] if n < len(self.questions) else self.extra[n - len(self.questions)]


def _training_data(config: TrainConfig, with_teacher: bool, log) -> _Data:
    """Pairs file -> split -> vocabulary -> token ids of each distinct question (never a test pair)."""
    table = load_pairs(config.data)
    parts = split_pairs(table.frame)
    train_part, val = parts["train"], parts["validation"]
    dups = train_part[train_part["is_duplicate"] == 1]
    if dups.empty:
        raise QsearchError(f"{config.data} has no duplicate pairs (is_duplicate = 1) in its train part")
    if val.empty or val["is_duplicate"].nunique() < 2:
        raise QsearchError(f"{config.data} is too small: its validation part needs duplicate and non-duplicate pairs")
    q1, q2 = dups["question1"].str.strip().tolist(), dups["question2"].str.strip().tolist()
    given = list(zip(q1, q2))
    extra = transitive_pairs(q1, q2) if config.transitive else []
    cluster = duplicate_components(q1, q2)
    texts = _vocabulary_texts(config, parts)
    general = english_words(config.english_words) if with_teacher else []
    vocab = Vocabulary.build(texts, config.min_count, config.max_vocab, config.buckets, extra=general)
    questions = list(dict.fromkeys(t.strip() for t in texts if t.strip()))
    row = {q: n for n, q in enumerate(questions)}
    ids = {q: vocab.ids(q, config.model.max_len) for q in questions}
    pairs = [(ids[a], ids[b], cluster[a], row[a], row[b], 1.0) for a, b in given + extra if a and b]
    pairs += [(b, a, c, rb, ra, w) for a, b, c, ra, rb, w in pairs]
    negatives = []
    if config.labelled_negatives:
        non_dups = train_part[train_part["is_duplicate"] == 0]
        for a, b in zip(non_dups["question1"].str.strip(), non_dups["question2"].str.strip()):
            if a and b:
                negatives.append((ids[a], ids[b]))
    log(
        f"data: {Path(config.data).name}: {len(table.frame)} pairs ({table.skipped_rows} unreadable rows skipped); "
        f"train {len(train_part)}, validation {len(val)}, test {len(parts['test'])}; "
        f"{len(given)} duplicate + {len(extra)} transitive training pairs "
        f"({len(given) + len(extra) - len(pairs) // 2} with an empty question left out), both directions; "
        f"{len(negatives)} labelled non-duplicates; {len(questions)} distinct questions; "
        f"vocabulary {len(vocab.tokens)} words (the training texts'"
        + (f" and a general list of {len(general)}" if general else "")
        + f") + {vocab.buckets} piece buckets"
    )
    return _Data(parts, vocab, questions, ids, pairs, negatives)


def _add_silver_pairs(data: _Data, vectors: np.ndarray, lexicon: Lexicon, min_cosine: float, weight: float = 1.0) -> int:
    """Add ``silver_pairs`` as duplicates in both directions, each counting ``weight`` in the
    triplet loss (a labelled pair counts 1), and merge duplicate clusters across them so that a
    batch still holds no false negative. A question of a training pair may also be in a
    validation or test pair, so no labelled pair of any part can become a silver one."""
    q = data.questions
    row = {text: n for n, text in enumerate(q)}
    labelled = [
        (row[a], row[b])
        for part in data.parts.values()
        for a, b in zip(part["question1"].str.strip(), part["question2"].str.strip())
        if a in row and b in row
    ]
    found = [(a, b) for a, b in silver_pairs(q, vectors, lexicon, min_cosine, labelled) if data.ids[q[a]] and data.ids[q[b]]]
    links = [(p[3], p[4]) for p in data.pairs] + found
    cluster = duplicate_components([q[a] for a, _ in links], [q[b] for _, b in links])
    new = [(data.ids[q[a]], data.ids[q[b]], -1, a, b, weight) for a, b in found]
    new += [(y, x, c, b, a, w) for x, y, c, a, b, w in new]
    data.pairs = [(x, y, cluster[q[a]], a, b, w) for x, y, _, a, b, w in data.pairs + new]
    return len(found)


def _add_detail_pairs(data: _Data, n: int, max_len: int, rng: np.random.Generator) -> list[str]:
    """Pair up to ``n`` questions with a copy that has another question's statement before it
    (``qsearch.detail``), as duplicates in both directions in the question's duplicate cluster
    (a new one if it has none). The copies' rows follow the distilled rows of the teacher's
    table, so the triplet stage's teacher terms see them and distillation does not."""
    cluster = {p[3]: p[2] for p in data.pairs}
    fresh = max(cluster.values(), default=-1) + 1
    first = data.distilled_rows + len(data.detail)
    found = detail_copies(data.questions, n, rng)
    for i, (row, copy) in enumerate(found):
        ids = data.ids[copy] = data.vocab.ids(copy, max_len)
        if row not in cluster:
            cluster[row], fresh = fresh, fresh + 1
        own = data.ids[data.questions[row]]
        data.pairs += [(own, ids, cluster[row], row, first + i, 1.0), (ids, own, cluster[row], first + i, row, 1.0)]
    copies = [copy for _, copy in found]
    data.detail += copies
    return copies


def _distill_batch(data: _Data, config: TrainConfig, rng: np.random.Generator, rows) -> list:
    """(ids of a question or of a noisy copy, its row in the teacher's table) for each row."""
    batch = []
    for n in rows:
        q = data.distilled(n)
        noisy = augment(q, rng) if n < len(data.questions) and rng.random() < config.augment else q
        ids = data.ids[q] if noisy == q else data.vocab.ids(noisy, config.model.max_len)
        batch.append((ids or data.ids[q], n))
    return [b for b in batch if b[0]]


BUCKET_BATCHES = 50  # distillation: rows are sorted by length within runs of this many batches


def _distill_batches(data: _Data, config: TrainConfig, rng: np.random.Generator) -> Iterator[list]:
    """One epoch of distillation batches over every question the student may learn from.

    Rows of similar length share a batch (sorted within runs of ``BUCKET_BATCHES`` shuffled
    batches, the batches then shuffled): the projection loss is per question, so this does not
    change what is learnt, and a packed LSTM step costs the batch's longest row (2.4x faster).
    """
    order = rng.permutation(data.distilled_rows)
    size = config.batch_size
    usable = len(order) - len(order) % size
    lengths = np.array([len(data.ids.get(data.distilled(n)) or ()) for n in order[:usable]])
    batches = []
    for start in range(0, usable, size * BUCKET_BATCHES):
        run = order[start : start + size * BUCKET_BATCHES]
        run = run[np.argsort(lengths[start : start + len(run)], kind="stable")]
        batches += [run[i : i + size] for i in range(0, len(run), size)]
    for n in rng.permutation(len(batches)):
        yield _distill_batch(data, config, rng, batches[n])


RECORDED_PACKAGES = ("qsearch", "torch", "numpy", "sentence-transformers", "transformers")


def package_versions() -> dict[str, str]:
    """The installed version of each package that a trained model's last digits depend on (those
    of ``RECORDED_PACKAGES`` that are installed), for its manifest: two runs of one recipe and
    seed that end a little apart can then be told apart by what was installed."""
    found = {}
    for name in RECORDED_PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def _validate(encoder: Encoder, data: _Data) -> dict[str, float]:
    """Validation ROC-AUC of the pairs, and Recall@1/@10 of their duplicates searched among
    every training and corpus question (what a search user feels; never a test question), and
    how often a known duplicate comes first (one the train and validation pairs make a
    duplicate of the query, partner or not: ``qsearch.evaluate.known_duplicates``)."""
    val = data.parts["validation"]
    dups = val[val["is_duplicate"] == 1]
    found = duplicate_retrieval(
        encoder, data.questions, dups["question1"].tolist(), dups["question2"].tolist(), labelled=readable_duplicates(data.parts, "validation")
    )
    auc = roc_auc(pair_scores(encoder, val["question1"].tolist(), val["question2"].tolist()), val["is_duplicate"].to_numpy())
    return {"roc_auc": auc, "recall@1": found["recall@1"], "recall@10": found["recall@10"], "known@1": found["known@1"]}


def _schedule(optimizer, total: int):
    """Linear warm-up over 5% of the steps, then cosine decay to zero."""
    warmup = max(1, total // 20)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, total) / total))
    )


def _student_batch(model: LSTMEncoder, stage: str, batch: list, device) -> Batch:
    """Run the student on a batch: one side for distillation, both sides of the pairs otherwise."""
    if stage == "distill":
        return Batch([model(*batch_tensors([b[0] for b in batch], device))], [np.array([b[1] for b in batch])])
    a = model(*batch_tensors([p[0] for p in batch], device))
    b = model(*batch_tensors([p[1] for p in batch], device))
    weights = torch.tensor([p[5] for p in batch], dtype=a.dtype, device=a.device)
    clusters = np.array([p[2] for p in batch], dtype=np.int64)
    return Batch([a, b], [np.array([p[3] for p in batch]), np.array([p[4] for p in batch])], weights, clusters)


def _step(model, optimizer, schedule, objectives, stage: str, batch: list, device) -> float:
    """One optimisation step on the weighted sum of the stage's objectives; the loss per question."""
    student = _student_batch(model, stage, batch, device)
    loss = sum(weight * objective(student) for weight, objective in objectives)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], 1.0)
    optimizer.step()
    schedule.step()
    return loss.item() / len(batch)


def _check(config: TrainConfig, teacher: Teacher | None) -> None:
    if config.epochs < 1:
        raise QsearchError("epochs must be at least 1: the kept model is the best epoch of the triplet stage")
    if config.select not in SELECT_BY:
        raise QsearchError(f"unknown selection measure {config.select!r}; pick one of: {', '.join(SELECT_BY)}")
    if config.distill not in DISTILL_KINDS:
        raise QsearchError(f"unknown distillation {config.distill!r}; pick one of: {', '.join(DISTILL_KINDS)}")
    if config.batch_size < 2:
        raise QsearchError("batch size must be at least 2 (the other pairs of a batch are the negatives)")
    if not 0 < config.silver_weight <= 1:
        raise QsearchError("the silver pairs' weight must be above 0 and at most 1 (a labelled pair's)")
    if config.map_power < 0:
        raise QsearchError("the map's power must be 0 (no map) or more")
    if config.pair_map_power < 0:
        raise QsearchError("the pair map's power must be 0 (no map) or more")
    if config.word_gap < 0:
        raise QsearchError("the word gap's weight must be 0 (none) or more")
    if not 0 <= config.map_neighbours <= MAX_NEIGHBOURS:
        raise QsearchError(f"the map's neighbours must be from 0 (fit on the questions themselves) to {MAX_NEIGHBOURS}")
    if teacher is not None and not callable(getattr(teacher, "encode", None)):
        raise QsearchError("a teacher needs an encode(list[str]) -> array method")


def resolve_device(name: str = "auto") -> torch.device:
    """``auto``: a CUDA GPU when torch sees one, then Apple's MPS, else the CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        return torch.device("mps" if mps is not None and mps.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise QsearchError("no CUDA device was found (torch sees no GPU); --device auto or --device cpu works")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise QsearchError("no MPS device was found (Apple GPUs only); --device auto or --device cpu works")
    if name not in ("cpu", "cuda", "mps"):
        raise QsearchError(f"unknown device {name!r}; pick auto, cpu, cuda or mps")
    return torch.device(name)


@dataclass
class _State:
    """What a checkpoint restores beside the weights: where the run is and the best so far."""

    stage: str = ""
    epoch: int = 0
    stopped: bool = False
    best_weights: dict | None = None
    best_score: float = -1.0
    best_epoch: int = 0
    history: list = field(default_factory=list)


def _teacher_rows(
    config: TrainConfig, data: _Data, lexicon: Lexicon, teacher: Teacher, max_len: int, cache_dir: Path | None,
    log: Callable[[str], None], progress: Callable | None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """The teacher's vectors of every row the student distils, in ``data``'s order (the
    questions, then, as ``config`` asks, changed copies, single words and detail copies), and
    of the vocabulary's words (None when nothing needs them). On the way the teacher's near
    pairs in other words (silver) and the detail pairs join ``data``'s duplicates."""
    vectors = cached_encode(teacher, data.questions, "questions", cache_dir, log, progress)
    if config.silver_cosine:
        added = _add_silver_pairs(data, vectors, lexicon, config.silver_cosine, config.silver_weight)
        log(
            f"silver pairs: {added} of the teacher's near pairs in other words (cosine >= {config.silver_cosine:g}) "
            f"join the duplicates, at weight {config.silver_weight:g}"
        )
    words = None
    if config.word_init or config.teacher_copies or config.distill_words:
        words = cached_encode(teacher, data.vocab.tokens[2:], "words", cache_dir, log, progress)
    if config.teacher_copies:
        near = word_neighbours(data.vocab.tokens[2:NEIGHBOUR_WORDS], words[: NEIGHBOUR_WORDS - 2])
        copies = teacher_copies(data.questions, config.teacher_copies, near, np.random.default_rng(config.seed + 1))
        data.extra += copies
        data.ids.update((c, data.vocab.ids(c, max_len)) for c in copies)
        vectors = np.concatenate([vectors, cached_encode(teacher, copies, "copies", cache_dir, log, progress)])
    if config.distill_words:
        pick = np.sort(np.random.default_rng(config.seed + 2).choice(len(words), int(config.distill_words * len(words)), replace=False))
        alone = [data.vocab.tokens[2 + n] for n in pick]
        data.extra += alone
        data.ids.update((w, data.vocab.ids(w, max_len)) for w in alone)
        vectors = np.concatenate([vectors, words[pick]])
    if config.detail_pairs:
        detail = _add_detail_pairs(data, config.detail_pairs, max_len, np.random.default_rng(config.seed + 7))
        log(f"detail pairs: {len(detail)} questions with a statement of another question before them join the duplicates")
        if detail:
            vectors = np.concatenate([vectors, cached_encode(teacher, detail, "detail copies", cache_dir, log, progress)])
    return vectors, words


def _objectives(
    config: TrainConfig, data: _Data, model: LSTMEncoder, vectors: torch.Tensor | None, rng: np.random.Generator, device
) -> tuple[list, list, torch.nn.Module | None, MinedNegatives | None]:
    """Each stage's weighted objectives (the triplet stage's, the distillation stage's), the
    projection head to train beside the student (dropped after training) and the mined
    negatives to refresh each epoch, if any. ``vectors``: the teacher's rows, or None."""
    objectives: list = [(1.0, Triplet(config.margin))]
    if data.negatives:
        objectives.append((1.0, Ranking(model, data.negatives, config.margin, rng, device)))
    distill_objectives: list = []
    head = None
    if vectors is not None:
        if config.distill == "projection":
            distiller = ProjectionDistillation(vectors, model.config.dim)
            head = distiller.head
        else:
            distiller = SimilarityDistillation(vectors)
        distill_objectives = [(1.0, distiller)]
        if config.distill_weight:
            objectives.append((config.distill_weight, distiller))
        if config.similarity_weight:
            objectives.append((config.similarity_weight, SimilarityDistillation(vectors)))
    mined = None
    if config.mined_weight:
        mined = MinedNegatives(model, [data.ids[q] for q in data.questions], data.pairs, config.margin, rng, vectors, device=device)
        objectives.append((config.mined_weight, mined))
    if config.memory_weight and vectors is not None:  # screened by the teacher, like the silver and detail pairs: the triplet-only recipe stays as it was
        objectives.append((config.memory_weight, MemoryNegatives(config.margin, vectors)))
    return objectives, distill_objectives, head, mined


def _manifest(mcfg: ModelConfig, vocab: Vocabulary) -> dict:
    """A new model's manifest: its format, shape and reading; training adds the rest."""
    return {
        "format": "qsearch-model",
        "format_version": MODEL_FORMAT_VERSION,
        "name": "qsearch-lstm",
        "model": mcfg.to_dict(),
        "tokenizer": TOKENIZER_NAME,
        "pieces": PIECES_NAME,
        "vocab_size": len(vocab),
        "vocab_sha256": vocab.sha256,
        "threshold": 0.5,
    }


def train(
    config: TrainConfig,
    log: Callable[[str], None] = print,
    progress: Callable | None = None,
    teacher: Teacher | None = None,
    cache_dir: Path | None = None,
    checkpoints: Path | None = None,
    resume: bool = False,
    device: str | torch.device = "cpu",
) -> Encoder:
    """Train a model; ``progress(iterable, total, desc)`` may wrap each epoch's batches in a bar.

    ``teacher`` is any object with ``encode(list[str]) -> ndarray``; it runs at training time
    only, and its vectors are cached under ``cache_dir`` (see ``qsearch.teacher``). With
    ``checkpoints`` (a folder), the training state is written there after every epoch;
    ``resume`` continues from it. ``device`` runs the student and the losses there.
    """
    _check(config, teacher)
    device = torch.device(device)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    if config.threads:
        torch.set_num_threads(config.threads)
    started = time.perf_counter()
    check_file(Path(config.data))
    if checkpoints is not None and not resume:
        check_writable_folder(checkpoints, "the checkpoint folder")
    data_sha256 = sha256_file(Path(config.data))
    mark = ckpt.fingerprint(config, data_sha256, teacher_name(teacher) if teacher is not None else None)
    saved = ckpt.load(checkpoints) if resume else None
    if saved is not None and ckpt.differences(saved["fingerprint"], mark):
        raise QsearchError(f"the checkpoint in {checkpoints} comes from other data or options: " + "; ".join(ckpt.differences(saved["fingerprint"], mark)))
    data = _training_data(config, teacher is not None, log)
    lexicon = Lexicon.count(data.vocab, data.questions)  # word counts: silver pairs' overlap, then the saved model's ranking
    mcfg = replace(config.model, vocab_size=len(data.vocab))
    model = LSTMEncoder(mcfg).to(device)
    teacher_info: dict = {"name": None}
    vectors = None
    if teacher is not None:
        t0 = time.perf_counter()
        vectors, words = _teacher_rows(config, data, lexicon, teacher, mcfg.max_len, cache_dir, log, progress)
        teacher_info = {"name": teacher_name(teacher), "dim": int(vectors.shape[1]), "seconds": round(time.perf_counter() - t0, 1)}
        if config.word_init:
            model.embedding.weight.data.copy_(torch.from_numpy(initial_embeddings(data.vocab, words, mcfg.embed_dim, rng)))
        vectors = torch.from_numpy(vectors).to(device)
    objectives, distill_objectives, head, mined = _objectives(config, data, model, vectors, rng, device)
    if config.freeze_embeddings:
        model.embedding.weight.requires_grad_(False)
    manifest = _manifest(mcfg, data.vocab)
    state = _State()
    if saved is not None:
        state = _State(**saved["state"])
        model.load_state_dict(saved["model"])
        if head is not None:
            head.load_state_dict(saved["head"])
        rng.bit_generator.state = saved["numpy_rng"]
        torch.set_rng_state(saved["torch_rng"])
        log(f"resuming after {state.stage} epoch {state.epoch} from {checkpoints}")
    stages = [("distill", config.distill_epochs if distill_objectives else 0, distill_objectives), ("train", config.epochs, objectives)]
    order = [name for name, _, _ in stages]
    for stage, epochs, stage_objectives in stages:
        done_here = state.epoch if stage == state.stage else (epochs if state.stage and order.index(stage) < order.index(state.stage) else 0)
        if not epochs or done_here >= epochs or (stage == "train" and state.stopped):
            continue
        count = data.distilled_rows if stage == "distill" else len(data.pairs)
        steps = max(1, count // config.batch_size)
        params = [p for p in model.parameters() if p.requires_grad] + (list(head.parameters()) if head is not None else [])
        optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=0.01, fused=device.type in FUSED_ADAMW)
        schedule = _schedule(optimizer, steps * epochs)
        if saved is not None and saved["state"]["stage"] == stage:
            optimizer.load_state_dict(saved["optimizer"])
            schedule.load_state_dict(saved["schedule"])
        log(f"{stage}: {epochs} epochs of {steps} steps; objectives: " + ", ".join(f"{w:g} x {o.name}" for w, o in stage_objectives))
        for epoch in range(done_here + 1, epochs + 1):
            model.train()
            if stage == "distill":
                batches = _distill_batches(data, config, rng)
            else:
                if mined is not None:
                    current = Encoder(manifest, data.vocab, model.numpy_weights())
                    mined.refresh(current.encode(data.questions))
                # listed now: fewer than ``steps`` when the largest duplicate clusters' pairs wait
                # (about 180 of 203 on the bundled data), and the progress bar should know how many
                batches = list(_make_batches(data.pairs, config.batch_size, rng))
            if progress:
                batches = progress(batches, steps if stage == "distill" else len(batches), f"{stage} epoch {epoch}")
            losses = [_step(model, optimizer, schedule, stage_objectives, stage, batch, device) for batch in batches]
            if not losses:
                raise QsearchError(_NO_BATCH[stage].format(size=config.batch_size))
            model.eval()
            encoder = Encoder(manifest, data.vocab, model.numpy_weights())
            scores = _validate(encoder, data)
            log(
                f"{stage} epoch {epoch}: loss {np.mean(losses):.4f}  validation ROC-AUC {scores['roc_auc']:.4f}  "
                f"Recall@1 {scores['recall@1']:.4f}  Recall@10 {scores['recall@10']:.4f}  known@1 {scores['known@1']:.4f}  ({time.perf_counter() - started:.0f}s)"
            )
            state.history.append({"stage": stage, "epoch": epoch, "loss": float(np.mean(losses)), **{f"validation_{k}": v for k, v in scores.items()}})
            state.stage, state.epoch = stage, epoch
            if stage == "train":
                if scores[config.select] > state.best_score:
                    state.best_weights, state.best_score, state.best_epoch = encoder.weights, scores[config.select], epoch
                elif epoch - state.best_epoch >= config.patience:
                    log(f"validation {config.select} has not improved for {config.patience} epochs: stopping")
                    state.stopped = True
            if checkpoints is not None:
                ckpt.save(checkpoints, {
                    "fingerprint": mark, "state": asdict(state), "model": model.state_dict(),
                    "head": head.state_dict() if head is not None else None,
                    "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
                    "numpy_rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
                })
            if state.stopped:
                break
    weights, vocab = state.best_weights, data.vocab
    if teacher is not None:
        weights, vocab = _after_training(config, manifest, data, weights, vectors[: len(data.questions)].cpu().numpy(), log)
    manifest["training"] = {
        **{k: v for k, v in asdict(config).items() if k not in ("data", "corpus", "model")},
        "teacher": teacher_info,
        "device": device.type,
        "corpus_file": Path(config.corpus).name if config.corpus else None,
        "data_file": Path(config.data).name,
        "data_sha256": data_sha256,
        "split_rule": SPLIT_RULE,
        "training_pairs": len(data.pairs),
        "labelled_non_duplicates": len(data.negatives),
        "best_epoch": state.best_epoch,
        "epochs_run": sum(1 for h in state.history if h["stage"] == "train"),
        "training_seconds": round(time.perf_counter() - started, 1),
        "packages": package_versions(),
        "history": state.history,
    }
    return Encoder(manifest, vocab, weights, lexicon)


def _after_training(
    config: TrainConfig, manifest: dict, data: _Data, weights: dict, teacher_vectors: np.ndarray, log: Callable[[str], None]
) -> tuple[dict, Vocabulary]:
    """What a teacher-trained model gets once its epoch is kept, as ``config`` asks: the output
    map onto the teacher's vectors of the questions, the pair map behind it, and the spelling
    correction with its word pairs (after the maps, which are fitted on the texts as training
    read them). Returns the weights and the vocabulary the model reads with."""
    if config.map_power:
        weights = _with_output_map(manifest, data, weights, teacher_vectors, config.map_power, config.map_neighbours)
        log(
            f"output map fitted onto the teacher's vectors of {len(data.questions)} questions (power {config.map_power:g}"
            + (f", on differences to each one's {config.map_neighbours} nearest)" if config.map_neighbours else ")")
        )
    if config.pair_map_power:
        weights = _with_pair_map(manifest, data, weights, config.pair_map_power, log)
    vocab = data.vocab
    if config.spelling:
        manifest["spelling"] = SPELLING_CHECKED_NAME
        vocab = vocab.reading(False, WordPairs.count(vocab, data.questions).with_near(vocab))
        log(
            "spelling: the finished model reads an unknown word one edit from known words as the one that fits "
            "between its neighbours best, and a known word as another one edit away only where its neighbours fit "
            "that one far better and it fits the question's other words at least as well "
            f"({len(vocab.context.keys)} word pairs of the training texts, "
            f"{len(vocab.context.near_ids)} words one edit apart)"
        )
    if config.word_gap:
        manifest["word_gap"] = config.word_gap
        log(f"verdicts: the cosine less {config.word_gap:g} x the pair's word gap, how far the words one question lacks are from the other's")
    return weights, vocab


def _as_saved(manifest: dict, data: _Data, weights: dict) -> Encoder:
    """The encoder that a folder saved with ``weights`` will load (float16, int8 rows), reading
    the texts as training did (no spelling correction): the maps are fitted on its vectors, so
    a map fitted again from a saved folder is the same."""
    return Encoder({k: v for k, v in manifest.items() if k != "spelling"}, data.vocab, from_stored(stored(weights)))


def _with_output_map(manifest: dict, data: _Data, weights: dict, teacher_vectors: np.ndarray, power: float, neighbours: int) -> dict:
    """The kept weights plus the map fitted on the training questions (recorded in
    ``manifest``); fitted on the vectors the saved weights give, so a map fitted again from a
    saved folder is the same."""
    student = _as_saved(manifest, data, weights).encode(data.questions)
    manifest["output_map"] = {"power": power, "neighbours": neighbours, "texts": len(data.questions)}
    return {**weights, OUTPUT_WEIGHT: fit_output_map(student, teacher_vectors, power, neighbours)}


def _with_pair_map(manifest: dict, data: _Data, weights: dict, power: float, log: Callable[[str], None]) -> dict:
    """The weights with the map of the train part's labelled pairs (``qsearch.pair_map``) beside
    the output map, recorded in ``manifest``; fitted, like the output map, on the vectors the
    saved weights give. Without enough pairs of each label the weights stay as they are."""
    part = data.parts["train"]
    duplicate = part["is_duplicate"].to_numpy() == 1
    counts = {"duplicates": int(duplicate.sum()), "non_duplicates": int((~duplicate).sum())}
    dim = int(manifest["model"]["dim"])
    if not enough_pairs(counts["duplicates"], counts["non_duplicates"], dim):
        log(f"no pair map: it needs {MIN_PAIRS * dim} labelled duplicates and as many non-duplicates in the train part")
        return weights
    same, other = difference_covariances(_as_saved(manifest, data, weights).encode, part["question1"].tolist(), part["question2"].tolist(), duplicate)
    manifest["pair_map"] = {"power": power, "shrink": SHRINK, **counts}
    log(f"pair map fitted on {counts['duplicates']} labelled duplicates and {counts['non_duplicates']} non-duplicates (power {power:g})")
    return {**weights, PAIR_WEIGHT: fit_pair_map(same, other, power)}


def refit_output_map(
    encoder: Encoder,
    config: TrainConfig,
    teacher: Teacher,
    power: float,
    cache_dir: Path | None = None,
    log: Callable[[str], None] = print,
    neighbours: int | None = None,
    pair_power: float | None = None,
) -> Encoder:
    """``encoder`` with its output map fitted again at ``power`` (0: none), and the pair map
    after it at ``pair_power``, without training.

    Both maps are fitted after training (``qsearch.alignment``, ``qsearch.pair_map``), so their
    powers and fit can be chosen on a trained model: this gives what ``--map-power``,
    ``--map-neighbours`` and ``--pair-map-power`` (by default ``config``'s) would have given
    the same weights. ``config`` is the model's training data and vocabulary settings; the
    thresholds stay the old ones until ``calibrate_and_save`` chooses them again.
    """
    neighbours = config.map_neighbours if neighbours is None else neighbours
    pair_power = config.pair_map_power if pair_power is None else pair_power
    _check(replace(config, map_power=power, map_neighbours=neighbours, pair_map_power=pair_power), teacher)
    data = _training_data(config, True, lambda m: None)
    if data.vocab.sha256 != encoder.vocab.sha256:
        raise QsearchError(f"the model's vocabulary is not the one {Path(config.data).name} gives with these settings: pass the data it was trained on")
    training = {**encoder.manifest.get("training", {}), "map_power": power, "map_neighbours": neighbours, "pair_map_power": pair_power}
    manifest = {**encoder.manifest, "training": training}
    weights = {k: v for k, v in encoder.weights.items() if k not in (OUTPUT_WEIGHT, PAIR_WEIGHT)}
    manifest.pop("output_map", None)
    manifest.pop("pair_map", None)
    if power:
        vectors = cached_encode(teacher, data.questions, "questions", cache_dir, log)
        weights = _with_output_map(manifest, data, weights, vectors, power, neighbours)
    if pair_power:
        weights = _with_pair_map(manifest, data, weights, pair_power, log)
    return Encoder(manifest, encoder.vocab, weights, encoder.lexicon)


def _save(encoder: Encoder, out: Path) -> None:
    """Write the model folder; on a full disk the training checkpoint, still in ``out``, lets ``--resume`` finish the job."""
    try:
        encoder.save(out)
    except Exception as e:
        raise disk_full(e, out, f"the training checkpoint is kept for `qsearch train --resume {out}`") or e


def calibrate_and_save(trained: Encoder, config: TrainConfig, out: Path, log: Callable[[str], None] = print) -> Encoder:
    """Save, reload the saved model, pick its threshold on validation, store val/test metrics."""
    _save(trained, out)
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
    _save(encoder, out)
    for name, m in encoder.manifest["metrics"].items():
        log(f"{name}: accuracy {m['accuracy']:.4f}  F1 {m['f1']:.4f}  ROC-AUC {format_auc(m['roc_auc'])}  (threshold {m['threshold']:.4f})")
    return Encoder.load(out)
