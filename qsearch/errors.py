"""The one exception type a user sees: the CLI prints its message on one line, no traceback."""


class QsearchError(Exception):
    """A problem caused by the input or the environment, not a bug; the message says what to do."""
