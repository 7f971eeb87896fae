"""Shared fixtures: small real slices of the bundled Quora data and a tiny trained model."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from qsearch.paths import DEFAULT_CORPUS, DEFAULT_PAIRS

os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def pairs_frame() -> pd.DataFrame:
    return pd.read_csv(DEFAULT_PAIRS, dtype={"id": str}, keep_default_na=False)


@pytest.fixture(scope="session")
def pairs_slice(tmp_path_factory, pairs_frame) -> Path:
    """The first 1,500 bundled pairs as an uncompressed CSV (real text, both labels)."""
    path = tmp_path_factory.mktemp("data") / "pairs.csv"
    pairs_frame.head(1500).to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def corpus_questions() -> list[str]:
    return pd.read_csv(DEFAULT_CORPUS, keep_default_na=False)["question"].head(400).tolist()


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, pairs_slice) -> Path:
    """A model trained for one epoch on the slice with 16-dimensional vectors (seconds)."""
    from qsearch.config import ModelConfig, TrainConfig
    from qsearch.train import calibrate_and_save, train

    out = tmp_path_factory.mktemp("models") / "tiny"
    config = TrainConfig(data=pairs_slice, epochs=1, model=ModelConfig(dim=16, embed_dim=16), batch_size=64, threads=1)
    calibrate_and_save(train(config, log=lambda m: None), config, out, log=lambda m: None)
    return out


class HashTeacher:
    """A small stand-in teacher: bag-of-words vectors hashed into 48 dimensions (deterministic)."""

    name = "hash-bag-of-words-48"

    def encode(self, texts: list[str]):
        import zlib

        import numpy as np

        out = np.zeros((len(texts), 48), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().split():
                out[row, zlib.crc32(word.encode()) % 48] += 1.0
        return out


def run_cli(*args: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    """Run the real ``qsearch`` command line in a subprocess, as a user would."""
    result = subprocess.run(
        [sys.executable, "-m", "qsearch.cli", *args], capture_output=True, text=True, timeout=600, **kwargs
    )
    if check and result.returncode != 0:
        raise AssertionError(f"qsearch {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def write_gz(path: Path, text: str) -> Path:
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write(text)
    return path
