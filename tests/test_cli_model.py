import json
import os
from pathlib import Path

import numpy as np
import pytest

from qsearch import Encoder
from conftest import project_version, run_cli


@pytest.mark.slow
def test_train_cli_writes_a_model_folder_with_a_manifest(pairs_slice, tmp_path):
    out = tmp_path / "model"
    result = run_cli("train", "--data", str(pairs_slice), "--out", str(out), "--epochs", "1", "--dim", "16", "--embed-dim", "16", "--batch-size", "64", "--teacher", "none", "--threads", "1", "--pooling", "mean")
    assert "training on cpu, 1 CPU thread\n" in result.stderr
    manifest = json.loads((out / "model.json").read_text())
    assert manifest["format_version"] == 7 and manifest["model"]["dim"] == 16
    assert manifest["model"]["pooling"] == "mean" and Encoder.load(out).pooling == "mean"
    assert manifest["training"]["teacher"]["name"] is None
    assert manifest["training"]["threads"] == 1
    import torch

    assert manifest["training"]["packages"]["torch"] == torch.__version__ and manifest["training"]["packages"]["numpy"] == np.__version__
    assert manifest["training"]["data_file"] == "pairs.csv" and len(manifest["training"]["data_sha256"]) == 64
    assert {"validation", "test"} <= set(manifest["metrics"])
    assert manifest["threshold"] == manifest["metrics"]["validation"]["threshold"]
    assert sorted(p.name for p in out.iterdir()) == ["document_frequency.npy", "model.json", "model.safetensors", "vocab.txt"]
    assert manifest["lexicon"]["file"] == "document_frequency.npy" and manifest["lexicon"]["documents"] > 0


def test_each_epoch_logs_and_records_how_often_a_known_duplicate_comes_first(pairs_slice, tmp_path):
    out = tmp_path / "model"
    result = run_cli("train", "--data", str(pairs_slice), "--out", str(out), "--epochs", "1", "--dim", "16", "--embed-dim", "16", "--batch-size", "64", "--teacher", "none", "--threads", "1")
    [line] = [line for line in result.stderr.splitlines() if line.startswith("train epoch 1: loss")]
    assert "  known@1 " in line
    [epoch] = json.loads((out / "model.json").read_text())["training"]["history"]
    # a labelled partner first is a known duplicate first, never the other way round
    assert 0 < epoch["validation_recall@1"] <= epoch["validation_known@1"] <= 1


def test_same_seed_gives_the_same_model(pairs_slice, tmp_path):
    from qsearch.config import ModelConfig, TrainConfig
    from qsearch.train import train

    config = TrainConfig(data=pairs_slice, corpus=None, epochs=1, model=ModelConfig(dim=8, embed_dim=8, layers=1), batch_size=64, threads=1, seed=3)
    a, b = train(config, log=lambda m: None), train(config, log=lambda m: None)
    texts = ["How old are you?", "What is love?"]
    assert np.array_equal(a.encode(texts), b.encode(texts))


def test_the_progress_bar_of_every_epoch_ends_at_its_total(pairs_frame, tmp_path):
    """A triplet epoch yields fewer batches than its pairs would fill when a large duplicate
    cluster's pairs must wait (no cluster twice in a batch); the bar is told the number that
    will come, and the trained model is the same with or without it."""
    import pandas as pd

    from qsearch.config import ModelConfig, TrainConfig
    from qsearch.data import split_of
    from qsearch.train import train

    hub = "How can I learn to cook well?"
    ids = [i for i in (f"cluster-{n}" for n in range(200)) if split_of([i])[0] == "train"][:15]
    star = pd.DataFrame({"id": ids, "question1": hub, "question2": [f"How do I learn cooking, step {n}?" for n in range(15)], "is_duplicate": 1})
    data = tmp_path / "pairs.csv"
    pd.concat([pairs_frame.head(1500), star]).to_csv(data, index=False)  # 15 duplicates of one question: 240 pair rows in one cluster
    seen = []

    def progress(batches, total, desc):
        n = 0
        for n, batch in enumerate(batches, 1):
            yield batch
        seen.append((desc, total, n))

    config = TrainConfig(data=data, corpus=None, epochs=2, model=ModelConfig(dim=8, embed_dim=8, layers=1), batch_size=32, threads=1, seed=3)
    with_bar = train(config, log=lambda m: None, progress=progress)
    assert [d for d, _, _ in seen] == ["train epoch 1", "train epoch 2"]
    assert all(total == n for _, total, n in seen), seen
    assert seen[0][1] < (856 + 240) // 32  # fewer than the pairs would fill: the cluster's pairs wait
    without = train(config, log=lambda m: None)
    assert np.array_equal(with_bar.encode(["How old are you?"]), without.encode(["How old are you?"]))


def test_evaluate_json_reports_every_metric(tiny_model, pairs_slice, tmp_path):
    plot = tmp_path / "roc.png"
    out = run_cli("evaluate", "--model", str(tiny_model), "--data", str(pairs_slice), "--part", "test", "--json", "--plot", str(plot))
    result = json.loads(out.stdout)
    for key in ("accuracy", "precision", "recall", "f1", "roc_auc", "threshold", "confusion_matrix"):
        assert key in result
    (tn, fp), (fn, tp) = result["confusion_matrix"]
    assert tn + fp + fn + tp == result["pairs"]
    assert result["threshold"] == Encoder.load(tiny_model).threshold
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_threshold_override(tiny_model, pairs_slice):
    out = run_cli("evaluate", "--model", str(tiny_model), "--data", str(pairs_slice), "--threshold", "2", "--json")
    result = json.loads(out.stdout)
    assert result["threshold"] == 2 and result["recall"] == 0


def test_evaluate_counts_the_rows_it_could_not_read(tiny_model, tmp_path):
    data = tmp_path / "rough.csv"
    data.write_text(
        "question1,question2,is_duplicate\n"
        "How old are you?,What is your age?,1\n"
        "How old are you?,Where do you live?,0\n"
        "Is this a label?,No it is not,2\n"
        "One field too many,here,1,extra\n"
    )
    text = run_cli("evaluate", "--model", str(tiny_model), "--data", str(data)).stdout
    assert "(2 pairs)" in text and "2 rows of the file skipped" in text
    result = json.loads(run_cli("evaluate", "--model", str(tiny_model), "--data", str(data), "--json").stdout)
    assert result["pairs"] == 2 and result["rows_skipped"] == 2


def test_evaluate_reports_each_kind_of_a_hand_written_set():
    """The bundled model on the 234-pair paraphrase set: one row per kind, which together
    make up the whole confusion matrix."""
    paraphrases = Path(__file__).resolve().parents[1] / "benchmarks" / "data" / "paraphrases.csv"
    result = json.loads(run_cli("evaluate", "--data", str(paraphrases), "--json").stdout)
    kinds = result["by_kind"]
    assert {k: (v["pairs"], v["duplicates"]) for k, v in kinds.items()} == {"other-words": (60, 60), "near-miss": (128, 0), "typo": (25, 25), "detail": (21, 21)}
    (tn, fp), (fn, tp) = result["confusion_matrix"]
    assert round(sum(v["accuracy"] * v["pairs"] for v in kinds.values())) == tn + tp
    assert kinds["near-miss"]["roc_auc"] == result["roc_auc"]  # the only non-duplicates, against every duplicate
    low, high = result["roc_auc_interval"]
    assert 0.05 < result["roc_auc"] - low < 0.1 and 0.05 < high - result["roc_auc"] < 0.1  # 234 pairs tell ROC-AUC to about ±0.07
    text = run_cli("evaluate", "--data", str(paraphrases)).stdout
    assert f"ROC-AUC     {result['roc_auc']:.4f}  (95% interval {low:.4f} to {high:.4f})" in text
    row = next(line.split() for line in text.splitlines() if line.startswith("  near-miss "))
    assert row == ["near-miss", "128", f"{kinds['near-miss']['mean_score']:.4f}", f"{kinds['near-miss']['accuracy']:.4f}", f"{result['roc_auc']:.4f}", "non-duplicates"]


def test_evaluate_on_pairs_of_one_label_has_no_roc_auc_and_stays_valid_json(tiny_model, tmp_path):
    data = tmp_path / "duplicates_only.csv"
    data.write_text("question1,question2,is_duplicate\nHow old are you?,What is your age?,1\nWhat is love?,What does love mean?,1\n")
    out = run_cli("evaluate", "--model", str(tiny_model), "--data", str(data), "--json").stdout
    assert "NaN" not in out and json.loads(out)["roc_auc"] is None and "roc_auc_interval" not in json.loads(out)
    assert "ROC-AUC     n/a (needs both duplicates and non-duplicates)" in run_cli("evaluate", "--model", str(tiny_model), "--data", str(data)).stdout


def test_compare_prints_cosine_and_verdict(tiny_model):
    out = run_cli("compare", "When will I see you?", "When will I see you?", "--model", str(tiny_model))
    assert out.stdout.startswith("cosine 1.0000") and out.stdout.strip().endswith("duplicate")


def test_compare_says_which_words_the_model_read_as_others():
    out = run_cli("compare", "How do I get better at pyhton progamming?", "How do I get better at python programming?")
    assert out.stdout.splitlines()[1:] == ["question 1 read as: pyhton → python, progamming → programming"]


def test_training_on_a_file_without_duplicates_is_a_clear_error(tmp_path):
    data = tmp_path / "nodups.csv"
    data.write_text("id,question1,question2,is_duplicate\n" + "".join(f"{i},q{i} a,q{i} b,0\n" for i in range(50)))
    result = run_cli("train", "--data", str(data), "--out", str(tmp_path / "m"), "--teacher", "none", check=False)
    assert result.returncode == 1 and "no duplicate pairs" in result.stderr
    assert "Traceback" not in result.stderr


def test_training_on_a_missing_file_says_so_before_loading_anything(tmp_path):
    result = run_cli("train", "--data", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "m"), check=False)
    assert result.returncode == 1 and result.stderr.strip() == f"error: file not found: {tmp_path / 'missing.csv'}"
    assert not (tmp_path / "m").exists()


def test_an_out_that_is_a_file_is_refused_before_any_training(pairs_slice, tmp_path):
    taken = tmp_path / "model.csv"
    taken.write_text("mine\n")
    result = run_cli("train", "--data", str(pairs_slice), "--out", str(taken), "--teacher", "none", check=False)
    assert result.returncode == 1 and result.stderr.strip() == f"error: --out {taken} is a file; give a folder"
    assert taken.read_text() == "mine\n"


def test_an_out_folder_holding_other_files_is_refused_before_any_training(pairs_slice, tmp_path):
    (tmp_path / "notes.txt").write_text("mine\n")
    result = run_cli("train", "--data", str(pairs_slice), "--out", str(tmp_path), "--teacher", "none", check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: --out {tmp_path} holds other files and no model; give a new or empty folder, or a model folder to replace"
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_evaluate_a_file_without_the_columns_is_a_clear_error(tmp_path):
    data = tmp_path / "wrong.csv"
    data.write_text("a,b\n1,2\n")
    result = run_cli("evaluate", "--data", str(data), check=False)
    assert result.returncode == 1 and "no column(s)" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_version_prints_the_projects_version_and_runs_no_command():
    result = run_cli("--version")
    assert result.stdout == f"qsearch {project_version()}\n" and not result.stderr


def test_every_command_has_an_example_in_its_help():
    import typer.main
    from typer.testing import CliRunner

    from qsearch.cli import app

    commands = sorted(typer.main.get_command(app).commands)
    assert {"train", "evaluate", "compare", "build-index", "query", "add", "serve", "dedup"} <= set(commands)
    for args in [[command, "--help"] for command in commands] + [["--help"]]:
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0 and "Example" in result.output, args


def test_help_wraps_a_paragraph_to_the_terminal_not_at_the_docstrings_line_ends():
    result = run_cli("repair", "--help", env={**os.environ, "COLUMNS": "240"})
    assert "run it to force a rebuild, or after many adds, since it also measures every question's hubness again" in result.stdout


def test_evaluate_retrieval_reports_recall_and_mrr(pairs_slice, tmp_path):
    from qsearch.data import pair_questions

    questions = tmp_path / "questions.txt"
    questions.write_text("\n".join(q.replace("\n", " ") for q in pair_questions(pairs_slice)))
    index = str(tmp_path / "idx")
    run_cli("build-index", "--questions", str(questions), "--index", index)
    out = run_cli("evaluate", "--data", str(pairs_slice), "--retrieval", "--index", index, "--json")
    retrieval = json.loads(out.stdout)["retrieval"]
    assert retrieval["queries"] > 20
    assert 0 < retrieval["recall@1"] <= retrieval["recall@10"] <= 1
    assert retrieval["recall@1"] <= retrieval["mrr@10"] <= 1
    assert retrieval["recall@1"] <= retrieval["known@1"] <= retrieval["known@10"] <= 1


