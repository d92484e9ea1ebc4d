"""Data-parallel training and prediction on several processes with MPI (mpi4py).

The design is Horovod's: every process (a *rank*) holds the whole model, computes
the gradient of its contiguous share of the same global batch, and one
``Allreduce`` on a flat buffer per step sums the shares, so every rank takes the
same optimizer step.  ``mpiexec -n 4 cnnlab train ...`` is all it takes.

- ``--batch-size`` stays the *global* batch.  Each rank's loss is
  ``sum(loss of its images) / global batch``, so the summed gradient is the
  gradient of the global batch's mean loss whatever the split, uneven shares and
  the last short batch included: N ranks reproduce one process up to rounding.
- Shuffling, augmentation and dropout draw the numbers of the *global* batch
  from streams derived from the seed, the epoch and the batch index (never the
  rank), and each rank keeps its share of them (:class:`cnnlab.data.DataLoader`
  with ``seed=``, and :func:`current_group` consulted by ``Dropout``).
- Batch norm in training uses the mean and variance of the global batch, as
  PyTorch's ``SyncBatchNorm``: one small allreduce per layer forward and one in
  backward (:func:`cnnlab.functional.batch_norm`'s ``process_group``).
- Rank 0 alone writes the run directory, the log and the progress; every rank
  reads the data (and, to resume, the run directory) itself.

Nothing here imports mpi4py until a distributed session starts, and
:func:`launched_by_mpi` looks only at the launcher's environment variables, so
``import cnnlab`` and single-process runs never load MPI.  Outside a session
:func:`current_group` is ``None`` and every hook costs one function call.
"""
from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from typing import Any, Iterator, List, Optional, Sequence, Tuple

import numpy as np

__all__ = ["Group", "current_group", "session", "backward", "launched_by_mpi", "launcher_rank", "batch_share",
           "is_root", "rank_label", "report_error", "finish", "ROOT"]

ROOT = 0
#: environment variables that MPI launchers set in every process they start
#: (MPICH/Hydra and Intel MPI: PMI_*, MPI_LOCALRANKID; Open MPI: OMPI_*; PMIx launchers: PMIX_RANK)
LAUNCHER_VARIABLES = ("PMI_RANK", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "MPI_LOCALRANKID")
_RANK_VARIABLES = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK")

_ERROR_TAG = 7
_state = threading.local()  # .group: the current Group (per thread, so tests can run ranks as threads)
_world: Optional[Tuple[int, int]] = None  # (rank, size) of the last multi-rank session, for finish()
_errors = None  # a duplicate of COMM_WORLD that carries a failing rank's message to rank 0


def launched_by_mpi() -> bool:
    """Whether an MPI launcher (``mpiexec``, ``srun``) started this process; no MPI import."""
    return any(name in os.environ for name in LAUNCHER_VARIABLES)


def launcher_rank() -> int:
    """This process's rank according to the launcher's variables (0 when not under MPI)."""
    for name in _RANK_VARIABLES:
        value = os.environ.get(name)
        if value is not None and value.strip().isdigit():
            return int(value)
    return 0


def batch_share(total: int, part: int, parts: int) -> Tuple[int, int]:
    """``(start, stop)`` of part ``part`` of ``parts`` contiguous, near-equal shares of ``total`` items."""
    return (total * part) // parts, (total * (part + 1)) // parts


def current_group() -> Optional["Group"]:
    """The process group of the running distributed session, or ``None`` (single process)."""
    return getattr(_state, "group", None)


def is_root() -> bool:
    """True on rank 0 of a session and in every single-process run."""
    group = current_group()
    return group is None or group.rank == ROOT


def in_multi_rank_job() -> bool:
    """Whether a session with more than one rank has started in this process."""
    return _world is not None


def rank_label() -> str:
    """``""`` on rank 0 and in single runs, ``" (rank 2 of 4)"`` on the others (for error lines)."""
    if _world is None or _world[0] == ROOT:
        return ""
    return f" (rank {_world[0]} of {_world[1]})"


class Group:
    """A communicator seen as cnnlab needs it: sums of arrays, broadcasts, gathers.

    Args:
        comm: an ``mpi4py.MPI.Comm`` (or any object with ``Get_rank``, ``Get_size``,
            ``Allreduce(sendbuf, recvbuf)`` summing, ``bcast``, ``gather`` and
            ``Abort``, such as the tests' in-process fake).

    ``batch`` is ``(start, stop, total)``: this rank's rows of the current global
    batch, set by the training loop around each step (``Dropout`` reads it).
    ``allreduce_seconds`` adds up the time spent in the per-step gradient sums.
    """

    def __init__(self, comm):
        self.comm = comm
        self.rank = int(comm.Get_rank())
        self.size = int(comm.Get_size())
        self.batch: Optional[Tuple[int, int, int]] = None
        self.allreduce_seconds = 0.0
        self.allreduce_calls = 0

    def __repr__(self) -> str:
        return f"Group(rank={self.rank}, size={self.size})"

    @property
    def is_root(self) -> bool:
        return self.rank == ROOT

    def share(self, total: int) -> Tuple[int, int]:
        """``(start, stop)`` of this rank's contiguous share of ``total`` items."""
        return batch_share(total, self.rank, self.size)

    def allreduce_sum(self, array: np.ndarray) -> np.ndarray:
        """The element-wise sum of ``array`` over all ranks (a new contiguous array, same dtype)."""
        send = np.ascontiguousarray(array)
        out = np.empty_like(send)
        self.comm.Allreduce(send, out)
        return out

    def sum_gradients(self, params: Sequence, extras: Sequence[float] = ()) -> np.ndarray:
        """Replace every parameter's ``grad`` with its sum over all ranks, in ONE allreduce.

        The gradients (and the numbers in ``extras``, e.g. the step's loss sum and
        correct count) are packed into one flat buffer, summed, and unpacked;
        returns the summed ``extras``.  Parameters without a gradient are left out
        (the same on every rank: the model is the same).
        """
        t0 = time.perf_counter()
        grads = [p for p in params if p.grad is not None]
        dtype = np.result_type(np.float32, *(p.grad._data.dtype for p in grads)) if grads else np.float64
        sizes = [p.grad._data.size for p in grads]
        flat = np.empty(sum(sizes) + len(extras), dtype=dtype)
        offset = 0
        for p, size in zip(grads, sizes):
            flat[offset:offset + size] = p.grad._data.reshape(-1)
            offset += size
        flat[offset:] = extras
        total = self.allreduce_sum(flat)
        offset = 0
        for p, size in zip(grads, sizes):
            p.grad = total[offset:offset + size].reshape(p.grad.shape).astype(p.grad._data.dtype, copy=False)
            offset += size
        self.allreduce_seconds += time.perf_counter() - t0
        self.allreduce_calls += 1
        return total[offset:].astype(np.float64)

    def bcast(self, obj: Any = None) -> Any:
        """Rank 0's ``obj`` on every rank."""
        return self.comm.bcast(obj, root=ROOT)

    def gather(self, obj: Any) -> Optional[List[Any]]:
        """Every rank's ``obj`` in rank order on rank 0 (``None`` on the others)."""
        return self.comm.gather(obj, root=ROOT)

    def same_on_all_ranks(self, arrays: Sequence[np.ndarray]) -> bool:
        """Whether ``arrays`` (e.g. the weights) agree on every rank (compares float64 checksums)."""
        digest = np.array([float(np.sum(a, dtype=np.float64)) for a in arrays], dtype=np.float64)
        root_digest = self.bcast(digest if self.is_root else None)
        differs = np.array([0.0 if np.array_equal(digest, root_digest) else 1.0])
        return float(self.allreduce_sum(differs)[0]) == 0.0

    def abort(self, status: int) -> None:
        """End every rank of the job now (``MPI_Abort``) with exit status ``status``."""
        self.comm.Abort(int(status))


def backward(group: Group, model, loss, logits, labels: np.ndarray, total: int) -> Tuple[float, int]:
    """One data-parallel backward pass: this rank's share of the global batch's gradient, summed.

    ``loss`` is the mean loss of this rank's ``n`` images; back-propagating
    ``loss * n / total`` gives this rank's part of the gradient of the global
    batch's mean loss, and one allreduce sums the parts (with the step's loss sum
    and correct count riding in the same buffer).

    Returns:
        ``(mean loss of the global batch, correct predictions in it)``.
    """
    n = int(labels.shape[0])
    if n:
        (loss * (n / total)).backward()
    else:  # a last batch smaller than the ranks leaves this rank no image: it still takes part in the
        (logits.sum() * 0.0).backward()  # collectives of the backward pass (batch norm), adding zeros
    right = int((logits._data.argmax(axis=1) == labels).sum())
    sums = group.sum_gradients(list(model.parameters()), [float(loss.item()) * n if n else 0.0, right])
    return float(sums[0]) / total, int(round(sums[1]))


def _mpi_world():
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise ImportError("distributed runs need mpi4py: pip install \"cnnlab[mpi]\" (it brings mpi4py and "
                          f"the mpich wheel with mpiexec) ({exc})") from None
    return MPI.COMM_WORLD


@contextlib.contextmanager
def session(distributed: Optional[bool] = None, comm=None,
            abort_on_error: bool = False) -> Iterator[Optional[Group]]:
    """Make a process group current inside the block; yields it, or ``None`` for a single run.

    In a script started with ``mpiexec -n 4 python train_me.py``::

        with cnnlab.distributed.session(abort_on_error=True):
            history = fit(model, train_set, val_set, epochs=5, batch_size=256)

    Args:
        distributed: ``None`` (auto): distributed when an MPI launcher started more
            than one process; ``True``: always (imports mpi4py, even for one
            rank); ``False``: never (every process works alone).
        comm: a communicator to use instead of ``MPI.COMM_WORLD`` (tests).
        abort_on_error: when an exception leaves the block on a rank of a multi-rank
            job, print its traceback and end the whole job (``MPI_Abort``) instead of
            letting the other ranks wait for this one for ever.  (``cnnlab`` commands
            do this themselves, after printing a one-line message.)
    """
    global _world
    if distributed is False or (comm is None and distributed is None and not launched_by_mpi()):
        yield None
        return
    world = comm is None
    group = Group(_mpi_world() if world else comm)
    if distributed is None and world and group.size == 1:
        yield None
        return
    previous, _state.group = current_group(), group
    watcher = None
    if group.size > 1 and world:
        _world = (group.rank, group.size)
        watcher = _start_error_watch(group.comm)
    try:
        yield group
    except BaseException:
        if abort_on_error and group.size > 1:
            import traceback
            traceback.print_exc()
            sys.stderr.flush()
            group.abort(1)
        raise
    finally:
        _state.group = previous
        if watcher is not None:  # stopped before MPI is finalised at exit
            watcher[0].set()
            watcher[1].join(timeout=5)


_deferred: List[str] = []


def _start_error_watch(comm) -> Optional[Tuple[threading.Event, threading.Thread]]:
    """Rank 0 listens (a thread polling twice a second) for another rank's error line.

    Rank 0 may be waiting in a collective call for the rank that failed; the
    thread prints that rank's message and ends the job, so the message comes from
    rank 0 as for any other error.  Returns the event that stops the thread, and the thread.
    """
    global _errors
    from mpi4py import MPI
    if _errors is None:
        _errors = comm.Dup()  # collective: every rank enters the session at the same point
    if comm.Get_rank() != ROOT or MPI.Query_thread() != MPI.THREAD_MULTIPLE:
        return None
    stop, errors = threading.Event(), _errors

    def watch():
        status = MPI.Status()
        while not stop.is_set():
            if errors.Iprobe(source=MPI.ANY_SOURCE, tag=_ERROR_TAG, status=status):
                line, code = errors.recv(source=status.Get_source(), tag=_ERROR_TAG)
                print(line, file=sys.stderr, flush=True)
                errors.Abort(int(code))
            stop.wait(0.5)

    thread = threading.Thread(target=watch, name="cnnlab-mpi-errors", daemon=True)
    thread.start()
    return stop, thread


def _other_rank() -> bool:
    """Whether this process is an MPI rank other than 0 (by its session, or else its launcher)."""
    if _world is not None:
        return _world[0] != ROOT
    return launched_by_mpi() and launcher_rank() != ROOT


@contextlib.contextmanager
def deferred_stderr() -> Iterator[None]:
    """On ranks other than 0, hold what the block writes to stderr until :func:`finish` (argparse)."""
    if not _other_rank():
        yield
        return
    import io
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stderr(buffer):
            yield
    finally:
        if buffer.getvalue():
            _deferred.append(buffer.getvalue())


def report_error(line: str, stream=None) -> None:
    """Print a command's error line: now on rank 0 or a single run, at :func:`finish` on other ranks."""
    if _other_rank():
        _deferred.append(line)
        return
    print(line, file=stream if stream is not None else sys.stderr, flush=True)


def finish(status: int) -> int:
    """End a command: after a failure on a multi-rank job, abort every rank (never a hang).

    A rank that failed while the others wait in a collective call would wait for
    ever; ``MPI_Abort`` ends the whole job with ``status``.  Rank 0 prints its
    error at once; another rank waits a moment first, so that when every rank
    fails the same way (a missing data folder, a bad option) rank 0's message is
    the only one shown, and otherwise prints its own, naming its rank.
    """
    if status == 0 or not (_world is not None or launched_by_mpi()):
        return status
    # even before any session: the other ranks may be waiting in MPI_Init or a collective call
    world = _mpi_world()  # (MPI_Init waits for every rank: rank 0 can abort only after this)
    if _other_rank():
        if _errors is not None and _deferred:  # rank 0 tells it (see _start_error_watch)
            rank, size = _world
            # "cnnlab (rank 1 of 2): error: X" -> "cnnlab: error on rank 1 of 2: X"
            line = _deferred[-1].strip().replace(rank_label(), "", 1)
            line = line.replace("error:", f"error on rank {rank} of {size}:", 1)  # (Ctrl-C: as it is)
            with contextlib.suppress(Exception):
                _errors.isend((line, status), dest=ROOT, tag=_ERROR_TAG)
            time.sleep(2.0)  # rank 0 ends the job meanwhile; if it cannot, say it here
        else:
            time.sleep(1.0)
        for line in _deferred:
            print(line, file=sys.stderr, end="" if line.endswith("\n") else "\n", flush=True)
    for s in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            s.flush()
    world.Abort(int(status))
    return status
