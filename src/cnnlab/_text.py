"""Printing text that came from a file: control characters are shown, never obeyed.

Class names, layer and node names come from model files, ``model.json`` and ONNX
metadata, so a hostile file could hold terminal escape sequences (rewrite the
screen, set the window title, hide text) or bidirectional overrides.
:func:`printable` turns each such character into a visible ``\\x1b`` /
``\\u202e`` escape; :func:`escaped_output` applies it to everything the command
line prints.
"""
from __future__ import annotations

import contextlib
import re
import sys

# C0 and C1 controls (tab, newline and carriage return excepted: layout), DEL, bidirectional
# embeddings/overrides/isolates and marks, and the Unicode line and paragraph separators
_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_UNSAFE_LINE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _escape(match) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text, keep_layout: bool = False) -> str:
    """``text`` with every control character shown as an escape (``"\\x1b[2J"`` stays visible as
    ``\\x1b[2J``); ``keep_layout`` keeps tabs, newlines and carriage returns as they are.

    >>> printable("cat\\x1b]0;owned\\x07")
    'cat\\\\x1b]0;owned\\\\x07'
    """
    return (_UNSAFE if keep_layout else _UNSAFE_LINE).sub(_escape, str(text))


class _EscapingStream:
    """A text stream that writes :func:`printable` text (layout kept) to the stream it wraps."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text):
        self._stream.write(printable(text, keep_layout=True))
        return len(text)

    def __getattr__(self, name):  # flush, isatty, encoding, fileno, ...
        return getattr(self._stream, name)


@contextlib.contextmanager
def escaped_output():
    """Within the block, everything written to ``sys.stdout`` and ``sys.stderr`` is :func:`printable`."""
    old = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _EscapingStream(old[0]), _EscapingStream(old[1])
    try:
        yield
    finally:
        sys.stdout, sys.stderr = old
