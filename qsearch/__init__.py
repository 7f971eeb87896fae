"""qsearch: find the questions that already mean the same thing as a new one.

>>> from qsearch import Encoder, SearchEngine
>>> engine = SearchEngine.open()                     # indexes/default, built by `qsearch build-index`
>>> engine.search(["How old are you?"], k=3)[0][0].text
"""

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _installed_version

from qsearch.encoder import Encoder
from qsearch.errors import QsearchError
from qsearch.search import Match, SearchEngine

try:
    __version__ = _installed_version("qsearch")  # pyproject.toml's, as installed: the one place it is written
except PackageNotFoundError:  # imported from a source tree that pip never installed
    __version__ = "0+unknown"

__all__ = ["Encoder", "Match", "QsearchError", "SearchEngine", "__version__"]
