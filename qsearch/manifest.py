"""Small JSON manifests that travel with model and index folders and catch mismatches."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from qsearch.errors import QsearchError
from qsearch.files import replacing


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_json(path: Path, data: dict) -> None:
    """Write whole or not at all (``files.replacing``): a kill or a power cut leaves the old
    file or the new one, never half."""
    with replacing(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def read_manifest(path: Path, kind: str, version: int | tuple[int, ...], hint: str) -> dict:
    """Read a manifest and check its format (one version, or any of several); ``hint`` says
    what to run when it is wrong."""
    versions = version if isinstance(version, tuple) else (version,)
    if not path.exists():
        raise QsearchError(f"{path.parent} is not a qsearch {kind} folder (no {path.name}); {hint}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise QsearchError(f"cannot read {path}: {e}; {hint}") from None
    if data.get("format") != f"qsearch-{kind}":
        raise QsearchError(f"{path} is not a qsearch {kind} manifest; {hint}")
    if data.get("format_version") not in versions:
        raise QsearchError(
            f"{path} has format version {data.get('format_version')}, this qsearch reads {_listed(versions)}; {hint}"
        )
    return data


def _listed(versions: tuple) -> str:
    """Versions as a sentence says them: 2; 2 or 3; 2, 3 or 4."""
    names = [str(v) for v in versions]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
