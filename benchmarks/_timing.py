"""Interleaved wall-clock timing with warm-up, repeated runs, medians and ranges.

The frameworks under comparison run in one process, one call each in turn
("step by step"), so a change in machine load during a measurement hits all
of them alike.  The order rotates every step so that none always follows the
same neighbour.  A *run* is ``calls`` such rounds; each framework's time per
call in a run is its summed time over the run divided by ``calls``.  The
report gives, per framework, the median over runs and the min-max range.
"""
from __future__ import annotations

import math
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, List


@dataclass
class Stats:
    """Seconds per call over repeated runs (one value per run)."""
    per_call: List[float] = field(default_factory=list)
    calls_per_run: int = 0

    @property
    def median(self) -> float:
        return statistics.median(self.per_call)

    @property
    def min(self) -> float:
        return min(self.per_call)

    @property
    def max(self) -> float:
        return max(self.per_call)

    def to_json(self) -> dict:
        d = asdict(self)
        d.update(median=self.median, min=self.min, max=self.max)
        return d


@dataclass
class TimingConfig:
    warmup: int = 3            # calls of each framework before timing
    repeats: int = 7           # runs
    min_run_time: float = 0.2  # seconds the slowest framework spends per run (sets ``calls``)
    max_calls: int = 200       # cap on calls per run (batch-1 latencies are microseconds)
    min_calls: int = 1


def measure_interleaved(fns: Dict[str, object], cfg: TimingConfig, mode: str = "step",
                        clock: Callable[[], float] = time.perf_counter) -> Dict[str, Stats]:
    """Time every callable in ``fns``; see the module docstring.

    A value of ``fns`` is either a callable, timed as a whole, or a pair
    ``(setup, fn)``: ``setup()`` runs untimed before every call and its result
    is passed to ``fn``, which alone is timed (e.g. setup records a fresh
    graph, fn runs its backward pass).

    ``mode='step'`` alternates the callables call by call; ``mode='run'``
    gives each callable its ``calls`` calls in a row, alternating per run
    (useful to check whether one framework's idle worker threads, still
    spinning after its call, slow down the next framework).

    ``clock`` is the wall clock by default; ``time.thread_time`` (the calling
    thread's CPU time) measures single-threaded work without the time spent
    descheduled, i.e. independently of other processes on the machine.
    """
    if mode not in ("step", "run"):
        raise ValueError(f"mode must be 'step' or 'run', got {mode!r}")
    names = list(fns)

    def once(name: str) -> float:
        entry = fns[name]
        if isinstance(entry, tuple):
            setup, fn = entry
            arg = setup()
            t0 = clock()
            fn(arg)
            return clock() - t0
        t0 = clock()
        entry()
        return clock() - t0

    for _ in range(max(cfg.warmup, 1)):
        for name in names:
            once(name)
    # calibrate: the slowest framework's single-call time sets the calls per run
    slowest = max(once(name) for name in names)
    calls = int(min(cfg.max_calls, max(cfg.min_calls, math.ceil(cfg.min_run_time / max(slowest, 1e-9)))))
    stats = {name: Stats(calls_per_run=calls) for name in names}
    k = len(names)
    for r in range(cfg.repeats):
        total = dict.fromkeys(names, 0.0)
        if mode == "step":
            for c in range(calls):
                shift = (r + c) % k
                for name in names[shift:] + names[:shift]:
                    total[name] += once(name)
        else:
            shift = r % k
            for name in names[shift:] + names[:shift]:
                for c in range(calls):
                    total[name] += once(name)
        for name in names:
            stats[name].per_call.append(total[name] / calls)
    return stats


def best_of(fn: Callable[[], object], repeats: int, clock: Callable[[], float] = time.perf_counter) -> float:
    """The fastest of ``repeats`` calls of ``fn`` (after one untimed call), in seconds of ``clock``."""
    fn()
    best = math.inf
    for _ in range(repeats):
        t0 = clock()
        fn()
        best = min(best, clock() - t0)
    return best
