"""One training run per run directory: an exclusive lock file held for the whole run.

``run_lock(directory)`` creates ``directory/.cnnlab-lock``, takes an exclusive
``fcntl.flock`` on it (POSIX) and writes the holder's pid, host and start time
into it.  The kernel drops the lock when the process ends, however it ends
(kill -9 included), so a lock file left by a dead process is simply taken over.
A clean exit (also Ctrl-C, and SIGTERM where ``cnnlab train`` turns it into an
interrupt) releases the lock and removes the file.  Without ``fcntl`` (Windows)
the file is created exclusively and a file naming a dead process on this host is
taken over.  The lock is re-entrant within one process (``train`` holds it and
``fit`` takes it again).
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
from datetime import datetime
from pathlib import Path
from typing import Dict, Optional, Tuple

from .._files import refuse_links

LOCK_NAME = ".cnnlab-lock"

_held: Dict[str, Tuple[int, int]] = {}  # resolved lock path -> (fd, depth) held by this process


class RunLocked(RuntimeError):
    """Another process is training into the same run directory."""


def _holder_text(path: Path) -> str:
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        return f"pid {info['pid']} on {info['host']}, started {info['started']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "holder unknown"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def _open_lock(path: Path, flags: int) -> int:
    """``os.open`` that never follows a symbolic link planted at the lock's path."""
    refuse_links(path)
    try:
        return os.open(path, flags | _NOFOLLOW, 0o644)
    except OSError as exc:
        if os.path.islink(path):  # ELOOP from O_NOFOLLOW: a link created in between
            refuse_links(path)
        raise


def _acquire(path: Path) -> int:
    """An open file descriptor of ``path`` holding the lock; raises :class:`RunLocked`."""
    try:
        import fcntl
    except ImportError:  # no flock: exclusive creation, stale files of dead local processes taken over
        fcntl = None
    while True:
        if fcntl is None:
            try:
                fd = _open_lock(path, os.O_RDWR | os.O_CREAT | os.O_EXCL)
            except FileExistsError:
                try:
                    info = json.loads(path.read_text(encoding="utf-8"))
                    stale = info["host"] == socket.gethostname() and not _pid_alive(int(info["pid"]))
                except (OSError, ValueError, KeyError, TypeError):
                    stale = False
                if not stale:
                    raise RunLocked(_busy(path)) from None
                path.unlink()
                continue
            return fd
        fd = _open_lock(path, os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # BlockingIOError: held by a live process
            os.close(fd)
            raise RunLocked(_busy(path)) from None
        try:
            same = os.fstat(fd).st_ino == os.lstat(path).st_ino
        except FileNotFoundError:  # the previous holder removed the file after we opened it
            same = False
        if same:
            return fd
        os.close(fd)


def _busy(path: Path) -> str:
    return (f"{path.parent} is in use by another training run ({_holder_text(path)}; lock file {path}); "
            "wait for it to finish, or train into another --out directory")


@contextlib.contextmanager
def run_lock(directory, remove_if_empty: Optional[bool] = None):
    """Hold the run directory's lock for the ``with`` block.  The folder is created if missing, and
    removed again if it is still empty at the end (``remove_if_empty``: say whether it was new)."""
    directory = Path(directory)
    created = not directory.exists() if remove_if_empty is None else remove_if_empty
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / LOCK_NAME
    key = str(path.resolve())
    if key in _held:
        fd, depth = _held[key]
        _held[key] = (fd, depth + 1)
    else:
        fd = _acquire(path)
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "started": datetime.now().isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(info).encode("utf-8"))
        _held[key] = (fd, 1)
    try:
        yield path
    finally:
        fd, depth = _held[key]
        if depth > 1:
            _held[key] = (fd, depth - 1)
        else:
            del _held[key]
            with contextlib.suppress(OSError):
                path.unlink()
            os.close(fd)  # closing the descriptor releases the flock
            if created:  # a run that failed before writing anything leaves no empty folder behind
                with contextlib.suppress(OSError):
                    directory.rmdir()
