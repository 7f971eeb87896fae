"""Checkpoints and --resume: a killed run continues to the same model; other options are refused."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from safetensors.numpy import load_file

from conftest import run_cli

ARGS = ["--epochs", "2", "--dim", "16", "--embed-dim", "16", "--batch-size", "32", "--teacher", "none",
        "--corpus", "none", "--device", "cpu", "--seed", "5"]


@pytest.mark.slow
def test_a_run_killed_after_its_first_checkpoint_resumes_to_the_same_model(pairs_slice, tmp_path):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    run_cli("train", "--data", str(pairs_slice), "--out", str(whole), *ARGS)
    assert not (whole / "checkpoint.pt").exists(), "a finished run removes its checkpoint"
    proc = subprocess.Popen([sys.executable, "-m", "qsearch.cli", "train", "--data", str(pairs_slice), "--out", str(killed), *ARGS],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (killed / "checkpoint.pt").exists():
        assert proc.poll() is None and time.time() < deadline, "the run ended before its first checkpoint"
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (killed / "model.json").exists(), "killed before it finished"
    result = run_cli("train", "--resume", str(killed))
    assert "resuming after train epoch" in result.stderr
    a, b = load_file(str(whole / "model.safetensors")), load_file(str(killed / "model.safetensors"))
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_resume_with_other_options_or_data_is_refused_with_what_differs(pairs_slice, tmp_path):
    out = tmp_path / "m"
    proc = subprocess.Popen([sys.executable, "-m", "qsearch.cli", "train", "--data", str(pairs_slice), "--out", str(out), *ARGS],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (out / "checkpoint.pt").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    proc.kill()
    proc.wait()
    if not (out / "checkpoint.pt").exists():
        pytest.skip("the run finished before it could be interrupted")
    result = run_cli("train", "--resume", str(out), "--epochs", "9", check=False)
    assert result.returncode == 1 and "epochs: 2 -> 9" in result.stderr and len(result.stderr.strip().splitlines()) <= 2
    other = tmp_path / "other.csv"
    other.write_text(pairs_slice.read_text().replace("?", "!", 5))
    result = run_cli("train", "--resume", str(out), "--data", str(other), check=False)
    assert result.returncode == 1 and "data_sha256" in result.stderr


def test_resume_without_a_checkpoint_is_one_line(tmp_path):
    result = run_cli("train", "--resume", str(tmp_path), check=False)
    assert result.returncode == 1 and "no checkpoint in" in result.stderr


def test_asking_for_cuda_without_a_gpu_says_what_works(pairs_slice, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    result = run_cli("train", "--data", str(pairs_slice), "--out", str(tmp_path / "m"), "--device", "cuda", "--teacher", "none", check=False)
    assert result.returncode == 1 and "no CUDA device was found" in result.stderr and "--device auto" in result.stderr


def test_train_refuses_a_checkpoint_folder_it_cannot_write_before_any_epoch(pairs_slice, tmp_path):
    from qsearch.config import ModelConfig, TrainConfig
    from qsearch.errors import QsearchError
    from qsearch.train import train

    taken = tmp_path / "model.csv"
    taken.write_text("mine\n")
    config = TrainConfig(data=pairs_slice, corpus=None, epochs=1, model=ModelConfig(dim=8, embed_dim=8), threads=1)
    lines = []
    with pytest.raises(QsearchError, match="is a file; give a folder"):
        train(config, log=lines.append, checkpoints=taken)
    assert lines == [] and taken.read_text() == "mine\n"


def test_a_checkpoint_written_before_an_option_existed_counts_that_option_at_its_default():
    from dataclasses import replace

    from qsearch import checkpoint as ckpt
    from qsearch.config import TrainConfig

    current = ckpt.fingerprint(TrainConfig(), "sha", "teacher")
    older = {k: v for k, v in current.items() if k != "map_neighbours"}
    assert ckpt.differences(older, current) == []
    other = ckpt.fingerprint(replace(TrainConfig(), map_neighbours=5), "sha", "teacher")
    assert ckpt.differences(older, other) == ["map_neighbours: 0 -> 5"]
    assert ckpt.differences({**older, "seed": 1}, current) == ["seed: 1 -> 0"]
