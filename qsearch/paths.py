"""Where the bundled data, the bundled model and the default index live.

In a source checkout (an editable install) the bundled data is the repository's ``data/``
folder and the default index is ``indexes/default`` beside it. Installed from a wheel, the
same data files ship inside the package (``qsearch/bundled/``, mapped from ``data/`` at build
time) and the default index goes to the user's data directory (platformdirs: on Linux
``~/.local/share/qsearch/indexes/default``), never into site-packages. ``QSEARCH_INDEX``
names another default index folder; ``--index`` names one per command.
"""

import os
from pathlib import Path

from qsearch.errors import QsearchError

PACKAGE_DIR = Path(__file__).resolve().parent
ROOT = PACKAGE_DIR.parent
PAIRS_FILE = "quora_pairs_partial.csv.gz"
CORPUS_FILE = "quora_questions_corpus.csv.gz"
IN_CHECKOUT = (ROOT / "pyproject.toml").is_file() and (ROOT / "data" / PAIRS_FILE).is_file()
DATA_DIR = ROOT / "data" if IN_CHECKOUT else PACKAGE_DIR / "bundled"
DEFAULT_PAIRS = DATA_DIR / PAIRS_FILE
DEFAULT_CORPUS = DATA_DIR / CORPUS_FILE
DEFAULT_MODEL = PACKAGE_DIR / "default_model"
LITE_FILE = "milvus.db"  # an index folder's own Milvus Lite file, unless --milvus-uri names another


def _default_index() -> Path:
    if os.environ.get("QSEARCH_INDEX"):
        return Path(os.environ["QSEARCH_INDEX"])
    if IN_CHECKOUT:
        return ROOT / "indexes" / "default"
    from platformdirs import user_data_dir

    return Path(user_data_dir("qsearch")) / "indexes" / "default"


DEFAULT_INDEX = _default_index()


def check_writable_folder(folder: Path, what: str) -> None:
    """Refuse a folder that cannot be made or written (``what`` names it in the one-line error),
    so that work whose result goes there fails before it starts rather than after."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise QsearchError(f"{what} {folder} is a file; give a folder")
    nearest = next(p for p in (folder.absolute(), *folder.absolute().parents) if p.exists())
    if not nearest.is_dir() or not os.access(nearest, os.W_OK | os.X_OK):
        raise QsearchError(f"cannot write {what} {folder}: {nearest} is not a folder this user may write to")


def check_model_out(folder: Path) -> None:
    """Refuse, before training, an ``--out`` that cannot be written or that holds other files:
    a model's files would land among them. A new or empty folder, a model folder (replaced) or
    an interrupted run's folder (its checkpoint) are fine."""
    check_writable_folder(folder, "--out")
    folder = Path(folder)
    if folder.is_dir() and any(folder.iterdir()) and not any((folder / f).exists() for f in ("model.json", "checkpoint.pt")):
        raise QsearchError(f"--out {folder} holds other files and no model; give a new or empty folder, or a model folder to replace")
