"""Atomic file writes: a temporary file in the target's folder, then ``os.replace``.

A reader never sees a half-written file, and a failed or interrupted write
leaves the previous file (if any) untouched.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_open(path, suffix: str = ".tmp"):
    """Yield ``(file, temporary_path)`` open for binary writing; on a clean exit the
    temporary file replaces ``path``, on an exception it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f, tmp
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def safe_name(name, default: str = "model", max_length: int = 64) -> str:
    """``name`` as one safe folder-name part: letters, digits, ``-``, ``_``, ``.`` and ``+`` kept,
    anything else (``/``, ``\\``, spaces, control characters) becomes ``_``; no leading dot, so
    ``..`` or ``.hidden`` never come out; at most ``max_length`` characters; ``default`` if empty.

    >>> safe_name("../../../../escaped")
    'escaped'
    """
    import re
    text = re.sub(r"[^A-Za-z0-9._+-]+", "_", str(name))
    text = text.strip("._-")[:max_length].rstrip("._-")
    return text or default
