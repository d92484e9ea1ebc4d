"""How the commands report errors: :class:`UsageError` (exit status 2) and one-line messages."""
from __future__ import annotations


class UsageError(Exception):
    """A command was called wrongly (exit status 2), found after argparse accepted the arguments."""


def _message(exc: BaseException) -> str:
    if isinstance(exc, KeyError) and exc.args:
        text = str(exc.args[0])
    elif isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        text = f"{exc.filename}: {exc.strerror}"
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())  # one line
