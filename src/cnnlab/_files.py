"""Atomic file writes: a temporary file in the target's folder, then ``os.replace``.

A reader never sees a half-written file, and a failed or interrupted write
leaves the previous file (if any) untouched.  No write goes through a symbolic
link: :func:`refuse_links` is the one check every writer (atomic files, the run
lock, output folders) makes before creating or replacing anything.
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


class SymlinkRefused(ValueError):
    """A file or folder cnnlab was about to write is a symbolic link."""


def refuse_links(path, root=None) -> Path:
    """Raise :class:`SymlinkRefused` if ``path`` is a symbolic link, or (with ``root``) if any folder
    from ``root`` (excluded: the folder the user named) down to ``path`` is one.  Outputs go where
    the user named them, never through a link planted inside a run folder."""
    path = Path(path)
    todo = [path]
    if root is not None:
        root = Path(root)
        try:
            parts = path.relative_to(root).parts
        except ValueError:
            parts = ()
        todo += [root.joinpath(*parts[:i]) for i in range(1, len(parts))]
    for p in todo:
        if os.path.islink(p):
            raise SymlinkRefused(f"{p} is a symbolic link; cnnlab never writes through a link "
                                 "(remove it, or choose another path)")
    return path


def make_dirs(path, root) -> Path:
    """``mkdir -p path`` refusing a symbolic link at ``path`` or at any folder below ``root``."""
    path = refuse_links(path, root)
    path.mkdir(parents=True, exist_ok=True)
    return refuse_links(path, root)  # created concurrently as a link: still refused


@contextlib.contextmanager
def atomic_open(path, suffix: str = ".tmp", root=None):
    """Yield ``(file, temporary_path)`` open for binary writing; on a clean exit the
    temporary file replaces ``path``, on an exception it is removed.  A symbolic link at ``path``
    (or below ``root``) is refused: never replaced, never followed."""
    path = refuse_links(path, root)
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
