"""Where the bundled data, the bundled model and the default index live."""

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
ROOT = PACKAGE_DIR.parent
DATA_DIR = ROOT / "data"
DEFAULT_PAIRS = DATA_DIR / "quora_pairs_partial.csv.gz"
DEFAULT_CORPUS = DATA_DIR / "quora_questions_corpus.csv.gz"
DEFAULT_MODEL = PACKAGE_DIR / "default_model"
DEFAULT_INDEX = ROOT / "indexes" / "default"
