"""How many threads the matrix products (BLAS) may use.

Only NumPy's BLAS runs on more than one core.  For small images its threads
barely help, and on a machine whose cores are busy with other work they hurt
badly: measured with one other busy process on 2 cores, the default digits
run took 176 s with 2 BLAS threads and 13 s with 1.  ``auto`` therefore uses
one thread for images of at most 16x16 pixels, and BLAS's own default above.

Defaults, as PyTorch chooses them (see ``docs/threads.md``):

- at most one BLAS thread per *physical* core (BLAS's own default counts
  hyper-threads); applied at the first matrix product, so ``import cnnlab``
  stays light;
- a matrix product smaller than :data:`SMALL_WORK` multiply-adds runs on one
  thread (waking other threads costs more than it saves, and much more on a busy
  machine): a plain training loop with 4 images of 32x32 per batch gets this
  without asking;
- ``set_num_threads(n)`` / ``--threads n`` above the machine's cores is capped to
  the core count, with a one-line note.

An ``OMP_NUM_THREADS``/``OPENBLAS_NUM_THREADS``/``MKL_NUM_THREADS`` setting in
the environment is the user's choice and is left alone (the small-op rule still
applies below it).  Limit threads with :func:`set_num_threads` or
:func:`blas_threads` (a ``threadpoolctl`` limit set directly is not seen by the
small-op rule, which may raise BLAS back to the core count for a large product).
"""
from __future__ import annotations

import contextlib
import os
import sys
from typing import Optional, Sequence

SMALL_IMAGE_PIXELS = 16 * 16
#: a matrix product of fewer multiply-adds (m * k * n) than this runs on one BLAS thread
SMALL_WORK = 1 << 22
_ENV_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS")

# cap: the most threads a large product may use (None until the first product decides it);
# current: what BLAS was last set to by this module; setters: BLAS libraries' set_num_threads
_state = {"cap": None, "current": None, "setters": None}


def physical_cores() -> int:
    """Physical cores this process may run on (hyper-threads of one core counted once)."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1
    cores = set()
    for cpu in cpus:
        try:
            with open(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list") as f:
                cores.add(f.read().strip())
        except OSError:
            cores.add(str(cpu))
    return max(1, len(cores))


def cap_threads(n: int, what: str = "threads") -> int:
    """``n``, or the core count when ``n`` is larger (with a one-line note on stderr)."""
    cores = physical_cores()
    if n > cores:
        print(f"cnnlab: note: {what} {n} capped to {cores}, the number of physical cores this process may use "
              "(more threads than cores only wait for each other)", file=sys.stderr)
        return cores
    return n


def _setters():
    if _state["setters"] is None:
        from threadpoolctl import ThreadpoolController  # installed with scikit-learn; loaded at first use
        _state["setters"] = [c.set_num_threads for c in ThreadpoolController().lib_controllers
                             if c.user_api == "blas"]
    return _state["setters"]


def _set_blas(n: int) -> None:
    if _state["current"] != n:
        for setter in _setters():
            setter(n)
        _state["current"] = n


def _default_cap() -> int:
    for var in _ENV_VARS:
        value = os.environ.get(var, "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    return physical_cores()


def for_work(work: int) -> None:
    """Before a matrix product of ``work`` multiply-adds: one BLAS thread if it is small, else the cap."""
    cap = _state["cap"]
    if cap is None:
        cap = _state["cap"] = _default_cap()
    want = 1 if work < SMALL_WORK else cap
    if want != _state["current"]:
        _set_blas(want)


def auto_threads(input_shape: Sequence[int]) -> Optional[int]:
    """1 for small images (C, H, W), else None (BLAS decides)."""
    height, width = input_shape[-2], input_shape[-1]
    return 1 if height * width <= SMALL_IMAGE_PIXELS else None


@contextlib.contextmanager
def blas_threads(threads: Optional[int]):
    """Limit BLAS to ``threads`` inside the block (None: no limit; more than the cores: capped, with a note)."""
    if threads is None:
        yield
        return
    if int(threads) < 1:
        raise ValueError(f"threads must be a positive integer, got {threads!r}")
    from threadpoolctl import threadpool_limits  # installed with scikit-learn

    threads = cap_threads(int(threads), "threads")
    saved = dict(_state)
    with threadpool_limits(limits=threads, user_api="blas"):
        _state["cap"] = _state["current"] = int(threads)
        try:
            yield
        finally:
            _state["cap"], _state["current"] = saved["cap"], None  # threadpoolctl restores BLAS itself


def set_num_threads(n: int) -> None:
    """Let BLAS use up to ``n`` threads from now on (``torch.set_num_threads``).

    ``n`` above the physical core count is capped to it (one note on stderr).
    Products smaller than :data:`SMALL_WORK` multiply-adds still run on one
    thread.  ``cnnlab.train.fit`` may still limit them for one run (its
    ``threads`` option).
    """
    if isinstance(n, bool) or not isinstance(n, int) and not hasattr(n, "__index__") or int(n) < 1:
        raise ValueError(f"set_num_threads: `n` must be a positive integer, got {n!r}")
    n = cap_threads(int(n), "set_num_threads:")
    _state["cap"] = n
    _state["current"] = None
    _set_blas(n)  # applies now and stays in force


def get_num_threads() -> int:
    """How many threads BLAS may use for a large product (``torch.get_num_threads``)."""
    from threadpoolctl import threadpool_info

    if _state["cap"] is not None:
        return int(_state["cap"])
    counts = [pool["num_threads"] for pool in threadpool_info() if pool.get("user_api") == "blas"]
    return min(max(counts), _default_cap()) if counts else _default_cap()
