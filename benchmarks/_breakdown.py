"""Where a cnnlab training step spends its time, layer by layer (forward and backward).

Times the phases of a step (zero_grad, forward, loss, backward, optimizer)
and, inside them, every layer's forward and every recorded op's backward
rule.  It wraps the layers' ``forward`` and ``Tensor.from_op`` for the
duration of the measurement and restores them afterwards; the engine's code
is not changed.
"""
from __future__ import annotations

import time
from collections import defaultdict
from typing import List, Tuple

import numpy as np


def breakdown(model, opt, batches: List[Tuple[np.ndarray, np.ndarray]], steps: int,
              cpu_clock: bool = False) -> str:
    """The table of medians per step; ``cpu_clock`` times with the main thread's CPU clock.

    The CPU clock ignores time spent descheduled, so with one BLAS thread (all
    work on the main thread) it measures the work itself even on a busy machine.
    """
    import cnnlab
    import cnnlab.functional as F
    from cnnlab.tensor import Tensor

    clock = time.thread_time if cpu_clock else time.perf_counter
    fwd = defaultdict(float)
    bwd = defaultdict(float)
    phase = defaultdict(float)
    current = ["loss"]
    order: List[str] = []

    layers = list(model._modules.items())
    for name, layer in layers:
        key = f"{name} {type(layer).__name__}"
        order.append(key)
        method = layer.forward

        def timed_forward(*args, _m=method, _key=key, **kwargs):
            previous, current[0] = current[0], _key
            t0 = clock()
            try:
                return _m(*args, **kwargs)
            finally:
                fwd[_key] += clock() - t0
                current[0] = previous
        object.__setattr__(layer, "forward", timed_forward)

    original_from_op = Tensor.__dict__["from_op"]

    def from_op(data, parents, backward, op=""):
        key = current[0]

        def timed_backward(g, _b=backward, _key=key):
            t0 = clock()
            try:
                return _b(g)
            finally:
                bwd[_key] += clock() - t0
        return original_from_op.__func__(data, parents, timed_backward, op)

    Tensor.from_op = staticmethod(from_op)
    per_step: List[dict] = []
    try:
        for i in range(steps):
            fwd.clear()
            bwd.clear()
            phase.clear()
            x, y = batches[i % len(batches)]
            t0 = clock()
            opt.zero_grad()
            t1 = clock()
            out = model(cnnlab.Tensor(x))
            t2 = clock()
            loss = F.cross_entropy(out, y)
            t3 = clock()
            loss.backward()
            t4 = clock()
            opt.step()
            t5 = clock()
            for k, dt in (("zero_grad", t1 - t0), ("forward", t2 - t1), ("loss forward", t3 - t2),
                          ("backward", t4 - t3), ("optimizer step", t5 - t4)):
                phase[k] += dt
            per_step.append({"fwd": dict(fwd), "bwd": dict(bwd), "phase": dict(phase)})
    finally:
        Tensor.from_op = original_from_op
        for _, layer in layers:
            object.__delattr__(layer, "forward")

    # medians over the steps: one slow step (a page fault storm, another process) does not skew them
    def med(kind, key):
        return float(np.median([d[kind].get(key, 0.0) for d in per_step]))
    phase = {k: med("phase", k) for k in per_step[0]["phase"]}
    fwd = {k: med("fwd", k) for k in order}
    bwd = {k: med("bwd", k) for k in order + ["loss"]}
    ms = 1e3
    total = sum(phase.values())
    lines = [f"medians over {steps} steps, " + ("main-thread CPU time" if cpu_clock else "wall time"), f"{'phase':<16}{'ms/step':>10}{'share':>8}"]
    for k in ("zero_grad", "forward", "loss forward", "backward", "optimizer step"):
        lines.append(f"{k:<16}{phase[k] * ms:>10.3f}{phase[k] / total:>8.1%}")
    closures = float(np.median([sum(d["bwd"].values()) for d in per_step]))
    lines.append(f"  of which autograd bookkeeping (backward minus op rules): "
                 f"{(phase['backward'] - closures) * ms:.3f} ms")
    lines.append(f"{'total':<16}{total * ms:>10.3f}")
    lines.append("")
    lines.append(f"{'layer':<22}{'fwd ms':>9}{'bwd ms':>9}{'bwd/fwd':>9}{'share':>8}")
    for key in order + ["loss"]:
        f = fwd.get(key, 0.0) if key != "loss" else phase["loss forward"]
        b = bwd.get(key, 0.0)
        ratio = f"{b / f:.2f}" if f > 0 else "-"
        lines.append(f"{key:<22}{f * ms:>9.3f}{b * ms:>9.3f}{ratio:>9}{(f + b) / total:>8.1%}")
    return "\n".join(lines)


def hot_lines(step, steps: int, cpu_clock: bool = False, limit: int = 20) -> str:
    """The cnnlab source lines that take the most time, exclusive of the cnnlab lines they call.

    A ``sys.settrace`` line timer restricted to the cnnlab package: time spent
    in NumPy (or any code outside cnnlab) is charged to the cnnlab line that
    called it.  Tracing adds about a microsecond per executed cnnlab line, so
    the shares of cheap lines are slightly inflated.
    """
    import linecache
    import os
    import sys

    import cnnlab

    package = os.path.dirname(os.path.abspath(cnnlab.__file__))
    clock = time.thread_time if cpu_clock else time.perf_counter
    spent = defaultdict(float)
    stack: List[list] = []          # [line key or None, start time] per active cnnlab frame

    def charge(now):
        if stack and stack[-1][0] is not None:
            spent[stack[-1][0]] += now - stack[-1][1]

    def local(frame, event, arg):
        now = clock()
        charge(now)
        if event == "line":
            stack[-1][0] = (frame.f_code.co_filename, frame.f_lineno)
        elif event == "return":
            stack.pop()
            if stack:
                stack[-1][1] = clock()
                return local
        if stack:
            stack[-1][1] = clock()
        return local

    def global_trace(frame, event, arg):
        if event != "call" or not frame.f_code.co_filename.startswith(package):
            return None
        charge(clock())
        stack.append([None, clock()])
        return local

    step()  # warm-up, untraced
    sys.settrace(global_trace)
    try:
        for _ in range(steps):
            step()
    finally:
        sys.settrace(None)
    total = sum(spent.values())
    lines = [f"{'share':>6} {'ms/step':>8}  location / source (exclusive time, {steps} steps, "
             + ("CPU" if cpu_clock else "wall") + " clock)"]
    for (path, lineno), t in sorted(spent.items(), key=lambda kv: -kv[1])[:limit]:
        src = linecache.getline(path, lineno).strip()
        rel = os.path.relpath(path, os.path.dirname(package))
        lines.append(f"{t / total:>6.1%} {t / steps * 1e3:>8.3f}  {rel}:{lineno}  {src[:90]}")
    return "\n".join(lines)
