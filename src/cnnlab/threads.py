"""How many threads cnnlab uses: BLAS's for matrix products, and cnnlab's own for large copies.

The matrix products run in NumPy's BLAS, on every core.  Large copies and
scatter-adds (im2col and its inverse) are split across cnnlab's own worker
threads: NumPy releases the interpreter lock inside them, so the pieces run
on the cores at the same time.  :func:`set_num_threads` sets cnnlab's count
(default: the CPUs this process may use, or ``OMP_NUM_THREADS`` when set).

For small images the threads barely help, and on a machine whose cores are
busy with other work they hurt badly: measured with one other busy process
on 2 cores, the default digits run took 176 s with 2 BLAS threads and 13 s
with 1.  ``auto`` therefore uses one thread for images of at most 16x16
pixels, and the defaults above.
"""
from __future__ import annotations

import contextlib
import os
from typing import Callable, Optional, Sequence

SMALL_IMAGE_PIXELS = 16 * 16
#: below this many elements a copy is not split (a hand-off to a worker costs ~20-50 us)
MIN_PARALLEL_ELEMENTS = 1 << 19


def _default_threads() -> int:
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count() or 1
    env = os.environ.get("OMP_NUM_THREADS", "")
    return max(1, min(usable, int(env))) if env.isdigit() and int(env) > 0 else usable


_threads = _default_threads()
_pool = None


def get_num_threads() -> int:
    """Threads cnnlab's own parallel copies use."""
    return _threads


def set_num_threads(threads: int) -> None:
    """Use ``threads`` threads for cnnlab's own parallel copies (1: none)."""
    global _threads
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive integer, got {threads!r}")
    _threads = threads


def parallel_for(n: int, body: Callable[[int, int], None], elements: int) -> None:
    """Run ``body(lo, hi)`` over ``range(n)`` split into one piece per thread.

    The pieces must touch disjoint memory; the result is then the same for
    any thread count.  Work of fewer than ``MIN_PARALLEL_ELEMENTS`` elements
    runs as one piece on the calling thread.
    """
    workers = min(_threads, n)
    if workers < 2 or elements < MIN_PARALLEL_ELEMENTS:
        body(0, n)
        return
    global _pool
    if _pool is None or _pool._max_workers < workers - 1:
        from concurrent.futures import ThreadPoolExecutor
        _pool = ThreadPoolExecutor(max_workers=workers - 1, thread_name_prefix="cnnlab")
    bounds = [n * k // workers for k in range(workers + 1)]
    futures = [_pool.submit(body, bounds[k], bounds[k + 1]) for k in range(1, workers)]
    try:
        body(bounds[0], bounds[1])
    finally:
        for future in futures:
            future.result()


def auto_threads(input_shape: Sequence[int]) -> Optional[int]:
    """1 for small images (C, H, W), else None (the defaults)."""
    height, width = input_shape[-2], input_shape[-1]
    return 1 if height * width <= SMALL_IMAGE_PIXELS else None


@contextlib.contextmanager
def blas_threads(threads: Optional[int]):
    """Limit BLAS and cnnlab's own copies to ``threads`` inside the block (None: no limit)."""
    if threads is None:
        yield
        return
    if isinstance(threads, bool) or int(threads) < 1:
        raise ValueError(f"threads must be a positive integer, got {threads!r}")
    from threadpoolctl import threadpool_limits  # installed with scikit-learn

    previous = _threads
    set_num_threads(int(threads))
    try:
        with threadpool_limits(limits=int(threads), user_api="blas"):
            yield
    finally:
        set_num_threads(previous)
