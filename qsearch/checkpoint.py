"""Training checkpoints: after every epoch the whole training state is written atomically into
the output folder, so ``qsearch train --resume OUT`` continues an interrupted run and ends with
the model an uninterrupted run with the same seed would have given.

The state: model and optimiser weights, the learning-rate schedule, the random generators,
stage and epoch, the best epoch so far and the history; and a fingerprint of the options and
data it was made with, so a resume with other data or options is refused with what differs.
"""

from __future__ import annotations

from dataclasses import MISSING, asdict, fields
from pathlib import Path

import torch

from qsearch.config import ModelConfig, TrainConfig
from qsearch.errors import QsearchError, disk_full
from qsearch.files import replacing

CHECKPOINT = "checkpoint.pt"
_DEFAULTS = {f.name: f.default for f in fields(TrainConfig) if f.default is not MISSING}


def fingerprint(config: TrainConfig, data_sha256: str, teacher: str | None) -> dict:
    """What decides the trained model: every option, the data's sha256 and the teacher's name."""
    options = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items() if k != "threads"}
    return {**options, "data_sha256": data_sha256, "teacher": teacher}


def differences(saved: dict, current: dict) -> list[str]:
    """``name: saved -> current`` for each setting that differs. An option that ``saved`` lacks
    (added to qsearch after that checkpoint was written) counts as its default, which is what
    the older run did, so an upgrade in the middle of a run does not strand its checkpoint."""
    saved = {**{k: v for k, v in _DEFAULTS.items() if k in current and k not in saved}, **saved}
    return [f"{k}: {saved.get(k)!r} -> {current.get(k)!r}" for k in sorted(set(saved) | set(current)) if saved.get(k) != current.get(k)]


def save(folder: Path, state: dict) -> None:
    """Write whole or not at all (``files.replacing``): a kill leaves the previous checkpoint,
    and a full disk no half-written file taking the space."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        with replacing(folder / CHECKPOINT) as tmp, open(tmp, "wb") as f:
            torch.save(state, f)
    except (OSError, RuntimeError) as e:
        raise disk_full(e, folder, f"the checkpoint of the last finished epoch, if any, is kept for `qsearch train --resume {folder}`") or e


def load(folder: Path) -> dict:
    path = Path(folder) / CHECKPOINT
    if not path.exists():
        raise QsearchError(f"no checkpoint in {folder}: nothing to resume (train without --resume to start afresh)")
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # a damaged file: any unpickling error
        raise QsearchError(f"cannot read {path} ({type(e).__name__}); delete it to start afresh") from None


def remove(folder: Path) -> None:
    (Path(folder) / CHECKPOINT).unlink(missing_ok=True)


def config_of(saved: dict) -> TrainConfig:
    """The TrainConfig a checkpoint was made with (for ``--resume`` without repeating options)."""
    names = {f.name for f in fields(TrainConfig)}
    options = {k: v for k, v in saved.items() if k in names}
    options["model"] = ModelConfig.from_dict(options["model"])
    options["data"] = Path(options["data"])
    options["corpus"] = Path(options["corpus"]) if options["corpus"] else None
    return TrainConfig(**options)
