"""Reuse of large scratch buffers (im2col columns) from one training step to the next.

Buffers above glibc's mmap threshold come fresh from the kernel, and the
first touch of every 4 KiB page costs a page fault: for the 150 MB columns of
a 32-channel 3x3 convolution at batch 128 that made the im2col copy run at a
third of memory speed.  (conv2d now keeps columns only up to 32 MiB and works
in row bands above that; buffers between 8 and 32 MiB still gain from reuse.)
An op ``take``s a buffer, and
``give``s it back once nothing can read it any more (after its backward, or
at once when no graph is recorded); the next step gets the same pages.
"""
from __future__ import annotations

import numpy as np

MIN_BYTES = 8 << 20       # smaller buffers are cheap to get from malloc
MAX_BYTES = 2 << 30       # never hold more than this in idle buffers
_free: dict = {}
_held = 0


def take(shape, dtype) -> np.ndarray:
    """An uninitialised array of ``shape`` and ``dtype``, reused when one is idle."""
    global _held
    stack = _free.get((tuple(shape), np.dtype(dtype).str))
    if stack:
        try:
            array = stack.pop()
        except IndexError:  # another thread took it first
            return np.empty(shape, dtype)
        _held -= array.nbytes
        return array
    return np.empty(shape, dtype)


def give(array: np.ndarray) -> None:
    """Hand ``array`` back for reuse; the caller must hold no other reference to it."""
    global _held
    if array.nbytes < MIN_BYTES or array.base is not None:
        return
    if _held + array.nbytes > MAX_BYTES:
        clear()
    _free.setdefault((array.shape, array.dtype.str), []).append(array)
    _held += array.nbytes


def clear() -> None:
    """Release every idle buffer to the allocator."""
    global _held
    _free.clear()
    _held = 0
