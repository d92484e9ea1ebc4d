"""How many threads the matrix products (BLAS) may use.

Only NumPy's BLAS runs on more than one core.  For small images its threads
barely help, and on a machine whose cores are busy with other work they hurt
badly: measured with one other busy process on 2 cores, the default digits
run took 176 s with 2 BLAS threads and 13 s with 1.  ``auto`` therefore uses
one thread for images of at most 16x16 pixels, and BLAS's own default above.
"""
from __future__ import annotations

import contextlib
from typing import Optional, Sequence

SMALL_IMAGE_PIXELS = 16 * 16


def auto_threads(input_shape: Sequence[int]) -> Optional[int]:
    """1 for small images (C, H, W), else None (BLAS decides)."""
    height, width = input_shape[-2], input_shape[-1]
    return 1 if height * width <= SMALL_IMAGE_PIXELS else None


@contextlib.contextmanager
def blas_threads(threads: Optional[int]):
    """Limit BLAS to ``threads`` inside the block (None: no limit)."""
    if threads is None:
        yield
        return
    if int(threads) < 1:
        raise ValueError(f"threads must be a positive integer, got {threads!r}")
    from threadpoolctl import threadpool_limits  # installed with scikit-learn

    with threadpool_limits(limits=int(threads), user_api="blas"):
        yield


def set_num_threads(n: int) -> None:
    """Let BLAS use ``n`` threads from now on (``torch.set_num_threads``).

    ``cnnlab.train.fit`` may still limit them for one run (its ``threads`` option).
    """
    if isinstance(n, bool) or not isinstance(n, int) and not hasattr(n, "__index__") or int(n) < 1:
        raise ValueError(f"set_num_threads: `n` must be a positive integer, got {n!r}")
    from threadpoolctl import threadpool_limits  # installed with scikit-learn

    threadpool_limits(limits=int(n), user_api="blas")  # applies now and stays in force


def get_num_threads() -> int:
    """How many threads BLAS may use (``torch.get_num_threads``)."""
    import os

    from threadpoolctl import threadpool_info

    counts = [pool["num_threads"] for pool in threadpool_info() if pool.get("user_api") == "blas"]
    return max(counts) if counts else (os.cpu_count() or 1)
