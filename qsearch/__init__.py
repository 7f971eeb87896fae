"""qsearch: find the questions that already mean the same thing as a new one.

>>> from qsearch import Encoder, SearchEngine
>>> engine = SearchEngine.open()                     # indexes/default, built by `qsearch build-index`
>>> engine.search(["How old are you?"], k=3)[0][0].text
"""

from qsearch.encoder import Encoder
from qsearch.errors import QsearchError
from qsearch.search import Match, SearchEngine

__all__ = ["Encoder", "Match", "QsearchError", "SearchEngine"]
