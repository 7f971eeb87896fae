"""Shared fixtures: small real slices of the bundled Quora data and a tiny trained model."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
import tempfile
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
    config = TrainConfig(data=pairs_slice, epochs=1, model=ModelConfig(dim=16, embed_dim=16, layers=1), batch_size=64, threads=1)
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


def project_version() -> str:
    """The version pyproject.toml gives: what ``--version``, ``/health`` and the metrics must report."""
    import tomllib

    return tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]["version"]


def write_gz(path: Path, text: str) -> Path:
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write(text)
    return path


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RunningServer:
    """A real ``qsearch serve`` process on a free loopback port; ``url`` is its base address."""

    def __init__(self, index: Path, *args: str, start_timeout: float = 60):
        import time
        import urllib.request

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "qsearch.cli", "serve", "--index", str(index), "--port", str(self.port), *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        deadline = time.time() + start_timeout
        while True:
            try:
                urllib.request.urlopen(f"{self.url}/health", timeout=2).read()
                return
            except OSError:
                if time.time() > deadline or self.proc.poll() is not None:
                    self.stop()
                    raise AssertionError(f"server did not start: {self.output}") from None
                time.sleep(0.2)

    def request(self, path: str, body: dict | None = None, headers: dict | None = None, timeout: float = 30):
        """(status, decoded JSON or text) of a GET, or of a POST when ``body`` is given."""
        import json
        import urllib.error
        import urllib.request

        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, headers={"content-type": "application/json", **(headers or {})})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as response:
                status, raw, kind = response.status, response.read().decode(), response.headers.get("content-type", "")
        except urllib.error.HTTPError as e:
            status, raw, kind = e.code, e.read().decode(), e.headers.get("content-type", "")
        return status, json.loads(raw) if kind.startswith("application/json") else raw

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM, wait for the graceful shutdown, return the exit status (output kept in ``output``)."""
        if self.proc.poll() is None:
            self.proc.terminate()
        out, err = self.proc.communicate(timeout=timeout)
        self.output = (out or "") + (err or "")
        return self.proc.returncode

    def __enter__(self) -> "RunningServer":
        return self

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:
            self.stop()


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in a Prometheus text exposition (0 when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        sample, _, value = line.rpartition(" ")
        if sample.split("{")[0] == name and ",".join(sorted(sample.partition("{")[2].rstrip("}").split(","))) == want:
            return float(value)
    return 0.0


def readonly_copy(index: Path) -> Path:
    """A copy of the index that only root could write to, readable by everyone."""
    top = Path(tempfile.mkdtemp(prefix="qsearch-ro-"))
    copy = top / "idx"
    shutil.copytree(index, copy)
    for path in [top, *copy.rglob("*"), copy]:
        path.chmod(0o555 if path.is_dir() else 0o444)
    return copy


def as_unprivileged(args: list[str]) -> list[str]:
    """Run as nobody when we are root, so that file permissions apply as for a user."""
    if os.geteuid() != 0:
        return args
    if not shutil.which("setpriv"):
        pytest.skip("setpriv (util-linux) is needed to drop root for a read-only test")
    return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *args]
