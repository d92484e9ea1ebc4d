#!/usr/bin/env python
"""Side-by-side speed benchmark: cnnlab against PyTorch (CPU) and ONNX Runtime.

Usage::

    python benchmarks/speed.py                 # the full suite (a few minutes)
    python benchmarks/speed.py --quick         # a short version (well under a minute)
    python benchmarks/speed.py --markdown      # the tables as Markdown, for the README
    python benchmarks/speed.py --rows train infer --json out.json
    python benchmarks/speed.py --time-to-accuracy --data-dir DIR   # long: MNIST to 99.0%
    python benchmarks/speed.py --profile       # where cnnlab's time goes (needs pyinstrument)
    python benchmarks/speed.py --threads 1 --clock cpu   # load-independent, on a shared machine
    python benchmarks/speed.py --render benchmarks/results/speed.json --markdown
    python benchmarks/speed.py --rows zoo resnet8 --threads 1 --clock cpu   # torchvision-like models

Method
------
* Same architecture, same initial weights (PyTorch's initialisation, copied
  into cnnlab through ``load_state_dict``), same data, same thread count
  (``torch.set_num_threads`` and OpenBLAS's pool through threadpoolctl).
* Everything is measured in one process, warm-up first, then the frameworks
  take turns call by call (see ``_timing.py``); every number is the median of
  repeated runs, with the min-max range.
* Ratios are *speed* ratios, paired run by run: ``time(PyTorch) / time(cnnlab)``
  (for throughput rows that is cnnlab's images/s over PyTorch's).  Above 1
  means cnnlab is faster.  Memory ratios are ``cnnlab / PyTorch`` (below 1
  means cnnlab uses less).
* OpenBLAS tuning overrides (``OPENBLAS_CORETYPE``, ``OPENBLAS_L2_SIZE``) are
  removed from the environment before NumPy loads: the script re-executes
  itself without them and prints what it removed and which kernel it runs.
  It also sets ``OPENBLAS_THREAD_TIMEOUT=20`` unless already set: by default an
  idle OpenBLAS worker busy-waits ~0.1 s after each threaded call, which on a
  2-core machine steals a core from the PyTorch call that follows it.
* Peak memory is measured in a separate child process per framework, so the
  peaks do not mix; import times in fresh interpreters.
* Other processes on the machine ruin multi-threaded timings (a thread pool
  waits at every barrier for its descheduled workers).  Each row records the
  share of the CPUs that other processes used while it ran ("Busy");
  ``--wait-quiet`` waits for an idle machine; ``--threads 1 --clock cpu``
  times the calling thread's CPU time, which does not count the time spent
  descheduled.
* The ``zoo`` row builds torchvision-like networks in PyTorch (random weights,
  ``_zoo.py``; torchvision is not needed), exports each to ONNX in memory and
  imports it with ``cnnlab.onnx``: cnnlab's NumPy engine, ONNX Runtime and
  PyTorch eager at batch 1 on the same weights, interleaved in one process, then
  each framework once more alone in a fresh process ("alone" columns).  The
  ``resnet8`` row trains ``cnnlab.models.resnet8`` against its PyTorch twin
  (same spec and weights, ``torch_reference.py``).
"""
from __future__ import annotations

import os
import sys

_OPENBLAS_OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
_REMOVED_ENV = "CNNLAB_BENCH_REMOVED_ENV"
# OpenBLAS's idle worker threads busy-wait for 2^28 TSC cycles (~0.1 s) after every
# threaded call before they sleep.  Interleaved with PyTorch call by call on a
# 2-core machine, that spinning worker takes a core away from PyTorch's next
# call.  2^20 cycles (~0.4 ms) still covers the gaps between the GEMMs of one
# cnnlab step.  A value set by the user is kept.
_OPENBLAS_TIMEOUT = ("OPENBLAS_THREAD_TIMEOUT", "20")


def _reexec_without_openblas_overrides() -> None:
    """Restart this script without the OpenBLAS overrides (they must be gone before NumPy loads)."""
    if _REMOVED_ENV in os.environ:
        return
    removed = {k: os.environ[k] for k in _OPENBLAS_OVERRIDES if k in os.environ}
    marker = ";".join(f"{k}={v}" for k, v in removed.items())
    key, value = _OPENBLAS_TIMEOUT
    if "numpy" in sys.modules or (not removed and key in os.environ):
        os.environ[_REMOVED_ENV] = marker
        return
    env = {k: v for k, v in os.environ.items() if k not in _OPENBLAS_OVERRIDES}
    env.setdefault(key, value)
    env[_REMOVED_ENV] = marker
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable] + sys.argv, env)


if __name__ == "__main__":
    _reexec_without_openblas_overrides()

import argparse  # noqa: E402  (after the re-exec on purpose)
import datetime  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from typing import Dict, List, Optional  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
SRC = os.path.join(REPO, "src")
if HERE not in sys.path:
    sys.path.insert(0, HERE)
if os.path.isdir(os.path.join(SRC, "cnnlab")) and SRC not in sys.path:
    sys.path.insert(0, SRC)  # benchmark the checkout this script lives in

import numpy as np  # noqa: E402

import _nets as nets  # noqa: E402
from _timing import Stats, TimingConfig, best_of, measure_interleaved  # noqa: E402

ROWS = ("train", "infer", "graph", "engine", "ops", "memory", "import", "flops", "zoo", "resnet8")
FRAMEWORKS = ("cnnlab", "torch", "ort")
LABEL = {"cnnlab": "cnnlab", "torch": "PyTorch", "ort": "ORT"}

_KEEP_ALIVE: list = []   # threadpoolctl limiters must outlive the measurements


# ==========================================================================
# settings
# ==========================================================================
class Settings:
    """Sizes and repeat counts of one suite run (``quick`` shrinks them)."""

    def __init__(self, quick: bool = False, threads: int = 2, interleave: str = "step", clock: str = "wall"):
        if clock not in ("wall", "cpu"):
            raise ValueError(f"clock must be 'wall' or 'cpu', got {clock!r}")
        if clock == "cpu" and threads != 1:
            raise ValueError(f"the cpu clock counts the calling thread only, so it needs threads=1, "
                             f"got threads={threads}")
        self.quick, self.threads, self.interleave, self.clock = quick, threads, interleave, clock
        self.clock_fn = time.thread_time if clock == "cpu" else time.perf_counter
        self.train_timing = TimingConfig(warmup=1 if quick else 3, repeats=3 if quick else 7,
                                         min_run_time=0.05 if quick else 0.25, max_calls=100)
        self.big_timing = TimingConfig(warmup=1 if quick else 2, repeats=3 if quick else 5,
                                       min_run_time=0.0, max_calls=1)       # VGG training steps
        self.infer_timing = TimingConfig(warmup=1 if quick else 5, repeats=3 if quick else 7,
                                         min_run_time=0.05 if quick else 0.2, max_calls=300)
        self.op_timing = TimingConfig(warmup=1 if quick else 2, repeats=3 if quick else 5,
                                      min_run_time=0.02 if quick else 0.05, max_calls=100)
        self.lenet_batches = (1, 64, 256)
        self.vgg_batch = 128
        self.infer_batches = (1, 256)
        # the peak is reached in the first steps (the optimizer state appears at step 1)
        self.memory_runs = [("lenet5", 256, 5 if quick else 50), ("vgg", 128, 2 if quick else 10)]
        self.import_repeats = 3 if quick else 7
        self.gemm_size, self.gemm_repeats = (1024, 3) if quick else (2048, 5)
        self.op_scale = 1.0
        # torchvision-like models at batch 1 (the zoo row); scale < 1 shrinks widths and depths
        self.zoo_models = ("resnet18", "mobilenet_v3_small", "mnasnet0_5", "efficientnet_b0", "densenet")
        self.zoo_size, self.zoo_scale = 224, 1.0
        self.zoo_timing = TimingConfig(warmup=1 if quick else 3, repeats=3 if quick else 7,
                                       min_run_time=0.05 if quick else 0.3, max_calls=100)
        self.zoo_alone = True           # also time each framework alone, in its own process
        self.resnet8_batch, self.resnet8_width = 128, 32


# ==========================================================================
# environment: threads and machine
# ==========================================================================
def setup_threads(threads: int) -> dict:
    """Set PyTorch's and OpenBLAS's thread counts; return what each reports."""
    info = {"requested": threads}
    try:
        from threadpoolctl import threadpool_limits
        _KEEP_ALIVE.append(threadpool_limits(limits=threads, user_api="blas"))
    except ImportError:
        info["threadpoolctl"] = "not installed: OpenBLAS threads left at their default"
    try:
        import torch
        torch.set_num_threads(threads)
        info["torch_threads"] = torch.get_num_threads()
    except ImportError:
        pass
    info["blas"] = blas_info()
    return info


def blas_info() -> List[dict]:
    """NumPy's BLAS as threadpoolctl sees it: library, version, kernel (architecture), threads."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    keep = ("internal_api", "version", "architecture", "num_threads", "threading_layer", "prefix")
    return [{k: d.get(k) for k in keep} for d in threadpool_info() if d.get("user_api") == "blas"]


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _cpu_flags() -> List[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = line.split(":", 1)[1].split()
                    return [f for f in ("sse4_2", "avx", "avx2", "fma", "avx512f") if f in flags]
    except OSError:
        pass
    return []


def _git_revision() -> str:
    try:
        rev = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--", "src/cnnlab"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return rev + (" (src/cnnlab has uncommitted changes)" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _busy_jiffies() -> Optional[int]:
    """All CPUs' busy time so far, in clock ticks (from /proc/stat)."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields[:8]) - idle


def _own_cpu_seconds() -> float:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


class LoadMonitor:
    """How much CPU *other* processes used while the suite ran (a shared machine skews timings)."""

    def __init__(self):
        self.t0, self.busy0, self.own0 = time.time(), _busy_jiffies(), _own_cpu_seconds()
        self.load0 = os.getloadavg()

    def report(self) -> dict:
        wall = time.time() - self.t0
        out = {"wall_s": wall, "loadavg_start": self.load0, "loadavg_end": os.getloadavg()}
        share = self.others_share()
        if share is not None:
            out["others_cpu_share"] = share
        return out

    def others_share(self) -> Optional[float]:
        """Share of all CPUs that other processes kept busy since this monitor started."""
        wall = time.time() - self.t0
        busy1 = _busy_jiffies()
        if self.busy0 is None or busy1 is None or wall <= 0:
            return None
        others = (busy1 - self.busy0) / os.sysconf("SC_CLK_TCK") - (_own_cpu_seconds() - self.own0)
        return min(1.0, max(0.0, others / (wall * (os.cpu_count() or 1))))


def wait_until_quiet(max_wait: float, threshold: float = 0.2, window: float = 1.0, log=print) -> float:
    """Wait (at most ``max_wait`` s) until other processes use < ``threshold`` of the CPUs.

    Returns the last measured share.  A shared machine makes multi-threaded
    timings meaningless: thread pools that must meet at barriers wait for
    descheduled workers.
    """
    deadline = time.time() + max_wait
    while True:
        mon = LoadMonitor()
        time.sleep(window)
        share = mon.others_share()
        if share is None or share < threshold or time.time() >= deadline:
            return share if share is not None else 0.0
        log(f"    waiting for a quieter machine (others use {share:.0%} of the CPUs)", flush=True)


def machine_info(thread_info: dict) -> dict:
    info = {
        "cpu": _cpu_model(), "cpu_flags": _cpu_flags(), "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "python": platform.python_version(), "numpy": np.__version__,
        "removed_env": os.environ.get(_REMOVED_ENV, ""),
        "thread_env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "OPENBLAS_NUM_THREADS",
                                                  "OPENBLAS_THREAD_TIMEOUT", "MKL_NUM_THREADS", "GOMP_SPINCOUNT")
                       if k in os.environ},
        "threads": thread_info, "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "git": _git_revision(),
    }
    import cnnlab
    where = os.path.dirname(os.path.abspath(cnnlab.__file__))
    inside = os.path.commonpath([where, REPO]) == REPO
    info["cnnlab"] = f"{cnnlab.__version__} ({os.path.relpath(where, REPO) + ' of this checkout' if inside else 'installed'})"
    try:
        import torch
        info["torch"] = torch.__version__
        cfg = torch.__config__.show()
        found = re.search(r"BLAS_INFO=(\w+)", cfg)
        info["torch_blas"] = found.group(1) if found else "?"
        info["torch_cpu_capability"] = next((line.split(":", 1)[1].strip() for line in cfg.splitlines()
                                             if "CPU capability usage" in line), "?")
        info["torch_mkldnn"] = bool(torch.backends.mkldnn.is_available())
    except ImportError:
        info["torch"] = None
    try:
        import onnxruntime
        info["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        info["onnxruntime"] = None
    return info


# ==========================================================================
# rows
# ==========================================================================
def _value(stats: Stats, items: int, unit: str) -> dict:
    """Median and range of a timing in the row's unit."""
    if unit == "ms":
        f = 1e3
        return {"median": stats.median * f, "min": stats.min * f, "max": stats.max * f}
    # throughput: the slowest run gives the lowest rate
    return {"median": items / stats.median, "min": items / stats.max, "max": items / stats.min}


def _paired_ratio(slow: Stats, fast: Stats) -> dict:
    """Per-run ``slow / fast`` time ratios (same run, same machine state): median and range."""
    r = [a / b for a, b in zip(slow.per_call, fast.per_call)]
    # best/best: the ratio of each side's fastest run, the least disturbed by other processes
    return {"median": statistics.median(r), "min": min(r), "max": max(r), "best": slow.min / fast.min}


def _speed_row(section: str, name: str, stats: Dict[str, Stats], items: int, unit: str,
               target: Optional[float], note: str = "") -> dict:
    row = {"section": section, "name": name, "unit": unit, "items_per_call": items,
           "values": {fw: _value(s, items, unit) for fw, s in stats.items()},
           "timings": {fw: s.to_json() for fw, s in stats.items()}, "note": note,
           "ratio_torch": _paired_ratio(stats["torch"], stats["cnnlab"]) if "torch" in stats else None,
           "ratio_ort": _paired_ratio(stats["ort"], stats["cnnlab"]) if "ort" in stats else None,
           "target": f">= {target:g}x" if target else "", "met": None}
    if target and row["ratio_torch"]:
        row["met"] = row["ratio_torch"]["median"] >= target
    return row


def bench_training(key: str, batch: int, settings: Settings, target: Optional[float]) -> dict:
    spec = nets.NETS[key]
    cmodel, tmodel = nets.twin_models(spec)
    batches = nets.synthetic_batches(spec, batch)
    diff = nets.check_same_outputs(cmodel, tmodel, batches[0][0])
    cmodel.train()
    tmodel.train()
    fns = {"cnnlab": nets.cnnlab_train_step(cmodel, nets.make_optimizer("cnnlab", spec, cmodel), batches),
           "torch": nets.torch_train_step(tmodel, nets.make_optimizer("torch", spec, tmodel), batches)}
    timing = settings.big_timing if key == "vgg" else settings.train_timing
    stats = measure_interleaved(fns, timing, settings.interleave, settings.clock_fn)
    opt = "SGD momentum 0.9" if spec.optimizer == "sgd" else "Adam"
    row = _speed_row("train", f"{spec.name} train b{batch} ({opt})", stats, batch, "img/s", target)
    row.update(net=key, batch=batch, initial_logits_max_abs_diff=diff,
               flops_per_call=nets.training_flops(spec) * batch)
    return row


def bench_inference(key: str, batch: int, settings: Settings, target: Optional[float]) -> dict:
    spec = nets.NETS[key]
    cmodel, tmodel = nets.twin_models(spec)
    batches = nets.synthetic_batches(spec, batch)
    fns = {"cnnlab": nets.cnnlab_infer(cmodel, batches), "torch": nets.torch_infer(tmodel, batches)}
    note = ""
    try:
        session = nets.onnx_session(tmodel, spec, batch, settings.threads)
        fns["ort"] = nets.ort_infer(session, batches)
    except ImportError as err:
        note = f"ONNX Runtime unavailable: {err}"
    diff = nets.check_same_outputs(cmodel, tmodel, batches[0][0])
    stats = measure_interleaved(fns, settings.infer_timing, settings.interleave, settings.clock_fn)
    if batch == 1:
        row = _speed_row("infer", f"{spec.name} inference b1 latency", stats, 1, "ms", target, note)
    else:
        row = _speed_row("infer", f"{spec.name} inference b{batch}", stats, batch, "img/s", target, note)
    row.update(net=key, batch=batch, logits_max_abs_diff=diff,
               flops_per_call=nets.forward_flops(spec) * batch)
    return row


def bench_engine(key: str, batch: int, settings: Settings) -> dict:
    """cnnlab's two engines on one cnnlab model: its own NumPy code and ``--engine onnxruntime``
    (``cnnlab.onnx._saved.OrtEngine``: exported in memory once, one session), against ONNX Runtime
    called directly on the same exported model, and PyTorch on the same weights."""
    import cnnlab
    from cnnlab.onnx._export import to_model_proto
    from cnnlab.onnx._saved import OrtEngine
    import onnxruntime as ort

    spec = nets.NETS[key]
    cmodel, tmodel = nets.twin_models(spec)
    cmodel.eval()
    batches = nets.synthetic_batches(spec, batch)
    engine = OrtEngine(cmodel, spec.input_shape, threads=settings.threads)
    options = ort.SessionOptions()
    options.intra_op_num_threads = settings.threads
    direct = ort.InferenceSession(to_model_proto(cmodel, spec.input_shape).SerializeToString(), options,
                                  providers=["CPUExecutionProvider"])
    name = direct.get_inputs()[0].name
    state = {"i": 0}

    def run_direct():
        x = batches[state["i"] % len(batches)][0]
        state["i"] += 1
        direct.run(None, {name: x})

    with cnnlab.no_grad():
        diff = float(abs(engine(cnnlab.Tensor(batches[0][0])).data - cmodel(cnnlab.Tensor(batches[0][0])).data).max())
    # The engine and the bare session are timed as a pair, by themselves: run right after cnnlab's
    # or PyTorch's step, either would find the caches cold and look slower than it is.
    stats = measure_interleaved({"engine": nets.cnnlab_infer(engine, batches), "ort": run_direct},
                                settings.infer_timing, settings.interleave, settings.clock_fn)
    stats.update(measure_interleaved({"cnnlab": nets.cnnlab_infer(cmodel, batches),
                                      "torch": nets.torch_infer(tmodel, batches)},
                                     settings.infer_timing, settings.interleave, settings.clock_fn))
    unit, items = ("ms", 1) if batch == 1 else ("img/s", batch)
    label = f"{spec.name} b1 latency" if batch == 1 else f"{spec.name} b{batch}"
    row = _speed_row("engine", label, stats, items, unit, None)
    row.update(net=key, batch=batch, engine_vs_cnnlab_max_abs_diff=diff,
               ratio_engine_ort=_paired_ratio(stats["engine"], stats["ort"]),
               ratio_cnnlab_engine=_paired_ratio(stats["cnnlab"], stats["engine"]),
               ratio_torch_engine=_paired_ratio(stats["torch"], stats["engine"]),
               target="engine <= 1.10x ORT direct")
    row["met"] = row["ratio_engine_ort"]["median"] <= 1.10
    return row
# --- torchvision-like models imported from ONNX (the zoo row) ---------------------------------
#: cnnlab within this factor of ONNX Runtime's time on the depthwise models (issue aim: 3x)
ZOO_ORT_FACTOR = 3.0


def _zoo_callables(name: str, settings: Settings, frameworks=FRAMEWORKS):
    """``{framework: run-once callable}`` for zoo model ``name`` at batch 1, plus the largest
    relative difference of cnnlab's and PyTorch's logits from ONNX Runtime's."""
    import _zoo
    import torch

    import cnnlab
    import cnnlab.onnx

    shape = (3, settings.zoo_size, settings.zoo_size)
    tmodel = _zoo.build(name, settings.zoo_scale)
    proto = _zoo.to_onnx(tmodel, shape)
    x = np.random.default_rng(0).random((1,) + shape, dtype=np.float32)
    fns, outs = {}, {}
    if "cnnlab" in frameworks:
        cmodel = cnnlab.onnx.load(proto)
        cmodel.eval()

        def run_cnnlab():
            with cnnlab.no_grad():
                return cmodel(cnnlab.Tensor(x)).data
        fns["cnnlab"] = run_cnnlab
    if "ort" in frameworks:
        import onnxruntime as ort
        options = ort.SessionOptions()
        options.intra_op_num_threads = settings.threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        session = ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
        fns["ort"] = lambda: session.run(None, {"x": x})[0]
    if "torch" in frameworks:
        tx = torch.from_numpy(x)

        def run_torch():
            with torch.inference_mode():
                return tmodel(tx).numpy()
        fns["torch"] = run_torch
    for fw, fn in fns.items():
        outs[fw] = fn()
    diff = {}
    if "ort" in outs:
        scale = float(np.abs(outs["ort"]).max()) or 1.0
        diff = {fw: float(np.abs(o - outs["ort"]).max()) / scale for fw, o in outs.items() if fw != "ort"}
    return fns, diff


def zoo_child(name: str, framework: str, settings: Settings) -> dict:
    """Run in a fresh process: one framework alone on zoo model ``name`` (seconds per call)."""
    setup_threads(settings.threads)
    fns, _ = _zoo_callables(name, settings, (framework,))
    stats = measure_interleaved(fns, settings.zoo_timing, "step", settings.clock_fn)[framework]
    return stats.to_json()


def bench_zoo(name: str, settings: Settings) -> dict:
    import _zoo
    fns, diff = _zoo_callables(name, settings)
    stats = measure_interleaved(fns, settings.zoo_timing, settings.interleave, settings.clock_fn)
    scale = "" if settings.zoo_scale == 1.0 else f" (scale {settings.zoo_scale:g})"
    row = _speed_row("zoo", f"{name}{scale} b1 {settings.zoo_size}x{settings.zoo_size}", stats, 1, "ms", None)
    row.update(net=name, batch=1, max_rel_diff_from_ort=diff, depthwise=name in _zoo.DEPTHWISE)
    if name in _zoo.DEPTHWISE:
        row["target"] = f"<= {ZOO_ORT_FACTOR:g}x ORT time"
        row["met"] = 1.0 / row["ratio_ort"]["median"] <= ZOO_ORT_FACTOR
    if settings.zoo_alone:
        alone = {}
        for fw in FRAMEWORKS:
            res = _run_child(["--_child-zoo", name, fw, "--threads", str(settings.threads),
                              "--clock", settings.clock] + (["--quick"] if settings.quick else [])
                             + ["--_zoo-size", str(settings.zoo_size), "--_zoo-scale", repr(settings.zoo_scale)],
                             settings.threads)
            alone[fw] = {"median": res["median"] * 1e3, "min": res["min"] * 1e3, "max": res["max"] * 1e3}
        row["alone"] = alone
        row["alone_ort_over_cnnlab"] = alone["ort"]["median"] / alone["cnnlab"]["median"]
    return row


# --- resnet8 training, cnnlab against its PyTorch twin -------------------------------------------
def bench_resnet8(settings: Settings, target: float = 0.8) -> dict:
    """``cnnlab.models.resnet8`` and the same spec built in PyTorch (``torch_reference``), same
    initial weights and batches, SGD with momentum 0.9, one training step per call."""
    import torch

    import cnnlab
    from cnnlab.models import model_to_spec, resnet8
    from torch_reference import _load_weights, torch_model

    batch, width = settings.resnet8_batch, settings.resnet8_width
    cnnlab.manual_seed(0)
    cmodel = resnet8(in_channels=1, num_classes=10, input_size=28, width=width)
    tmodel = torch_model(model_to_spec(cmodel))
    _load_weights(tmodel, {k: np.asarray(v) for k, v in cmodel.state_dict().items()})
    spec = NetSpecLike(input_shape=(1, 28, 28))
    batches = nets.synthetic_batches(spec, batch)
    cmodel.train()
    tmodel.train()
    with cnnlab.no_grad():
        a = cmodel(cnnlab.Tensor(batches[0][0])).data
    with torch.no_grad():
        b = tmodel(torch.from_numpy(batches[0][0])).numpy()
    diff = float(np.abs(a - b).max())
    fns = {"cnnlab": nets.cnnlab_train_step(cmodel, cnnlab.optim.SGD(cmodel.parameters(), lr=0.01, momentum=0.9),
                                            batches),
           "torch": nets.torch_train_step(tmodel, torch.optim.SGD(tmodel.parameters(), lr=0.01, momentum=0.9),
                                          batches)}
    stats = measure_interleaved(fns, settings.big_timing if batch >= 64 else settings.train_timing,
                                settings.interleave, settings.clock_fn)
    row = _speed_row("train", f"resnet8 (width {width}) train b{batch} (SGD momentum 0.9)", stats, batch,
                     "img/s", target)
    row.update(net="resnet8", batch=batch, initial_logits_max_abs_diff=diff)
    return row


class NetSpecLike:
    """The one field of ``_nets.NetSpec`` that ``synthetic_batches`` reads."""

    def __init__(self, input_shape):
        self.input_shape = input_shape


def bench_graph(mode: str, batch: int, settings: Settings) -> dict:
    """LeNet-5 run three ways over the very same layers: as a Sequential, as its Graph, and
    as a user's own Module (a hand-written ``forward``); the graph must cost no more."""
    import cnnlab
    import cnnlab.functional as F
    from cnnlab import nn
    from cnnlab.models import lenet5

    cnnlab.manual_seed(0)
    seq = lenet5()
    graph = nn.as_graph(seq)

    class LeNet(nn.Module):
        def __init__(self, layers):
            super().__init__()
            self.conv1, self.conv2, self.fc1, self.fc2, self.fc3 = (layers[i] for i in (0, 3, 7, 9, 11))

        def forward(self, x):
            x = F.max_pool2d(F.relu(self.conv1(x)), 2)
            x = F.max_pool2d(F.relu(self.conv2(x)), 2)
            x = F.relu(self.fc1(x.reshape(x.shape[0], -1)))
            return self.fc3(F.relu(self.fc2(x)))

    models = {"sequential": seq, "graph": graph, "module": LeNet(seq)}
    batches = nets.synthetic_batches(nets.NETS["lenet5"], batch)
    if mode == "train":
        fns = {k: nets.cnnlab_train_step(m, cnnlab.optim.SGD(m.parameters(), lr=1e-9, momentum=0.9), batches)
               for k, m in models.items()}
        timing, unit, name = settings.train_timing, "img/s", f"LeNet-5 train b{batch}"
    else:
        fns = {k: nets.cnnlab_infer(m, batches) for k, m in models.items()}
        timing, unit, name = settings.infer_timing, ("ms" if batch == 1 else "img/s"), \
            f"LeNet-5 inference b{batch}"
    stats = measure_interleaved(fns, timing, settings.interleave, settings.clock_fn)
    ratios = {k: _paired_ratio(stats["sequential"], stats[k]) for k in ("graph", "module")}
    return {"section": "graph", "name": name, "unit": unit, "items_per_call": batch,
            "values": {k: _value(v, batch, unit) for k, v in stats.items()},
            "timings": {k: v.to_json() for k, v in stats.items()}, "ratios": ratios,
            "target": ">= 0.95x", "met": ratios["graph"]["median"] >= 0.95, "note": ""}


def bench_ops(settings: Settings) -> List[dict]:
    rows = []
    for case in nets.op_cases(quick=settings.quick, scale=settings.op_scale):
        fns = {"cnnlab fwd": case.cnnlab_fwd, "torch fwd": case.torch_fwd,
               "cnnlab bwd": case.cnnlab_bwd, "torch bwd": case.torch_bwd}
        s = measure_interleaved(fns, settings.op_timing, settings.interleave, settings.clock_fn)
        ms = {k: v.median * 1e3 for k, v in s.items()}
        ratio_c = ms["cnnlab bwd"] / ms["cnnlab fwd"]
        rows.append({
            "section": "ops", "name": case.name, "shape": case.shape, "note": case.note,
            "ms": ms, "ms_range": {k: [v.min * 1e3, v.max * 1e3] for k, v in s.items()},
            "fwd_ratio": _paired_ratio(s["torch fwd"], s["cnnlab fwd"]),
            "bwd_ratio": _paired_ratio(s["torch bwd"], s["cnnlab bwd"]),
            "bwd_over_fwd": {"cnnlab": ratio_c, "torch": ms["torch bwd"] / ms["torch fwd"]},
            "target": "bwd <= 2x fwd", "met": ratio_c <= 2.0,
            "timings": {k: v.to_json() for k, v in s.items()}})
    return rows


# --- peak memory, in child processes --------------------------------------------------
def _child_env(threads: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in _OPENBLAS_OVERRIDES}
    env[_REMOVED_ENV] = os.environ.get(_REMOVED_ENV, "")
    env["PYTHONPATH"] = os.pathsep.join([SRC] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env["OPENBLAS_NUM_THREADS"] = str(threads)
    return env


def _proc_status_mb(field: str) -> Optional[float]:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0
    except (OSError, ValueError):
        pass
    return None


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) to the current RSS (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def memory_child(framework: str, key: str, batch: int, steps: int, threads: int) -> dict:
    """Run in a fresh process: peak RSS of ``steps`` training steps, and the baseline after imports.

    After the imports the kernel's peak mark is reset, so the peak is that of
    model building + training (``ru_maxrss`` alone would also hold the
    import's transient peak and, after a ``vfork``/``exec``, even the parent's).
    The baseline is the resident size right after the imports.
    """
    def ru_maxrss_mb():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0   # KiB on Linux
    spec = nets.NETS[key]
    if framework == "torch":
        import torch
        torch.set_num_threads(threads)
        torch.manual_seed(0)
    else:
        import cnnlab
        cnnlab.manual_seed(0)
    reset = _reset_peak_rss()
    base = _proc_status_mb("VmRSS") if reset else None
    base = ru_maxrss_mb() if base is None else base
    if framework == "torch":
        model = nets.build_torch(spec)
        step = nets.torch_train_step(model, nets.make_optimizer("torch", spec, model),
                                     nets.synthetic_batches(spec, batch))
    else:
        model = nets.build_cnnlab(spec)
        step = nets.cnnlab_train_step(model, nets.make_optimizer("cnnlab", spec, model),
                                      nets.synthetic_batches(spec, batch))
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    elapsed = time.perf_counter() - t0
    hwm = _proc_status_mb("VmHWM") if reset else None
    return {"baseline_mb": base, "peak_mb": hwm if hwm is not None else ru_maxrss_mb(),
            "ru_maxrss_mb": ru_maxrss_mb(), "peak_source": "VmHWM after reset" if hwm is not None
            else "ru_maxrss", "steps": steps, "seconds": elapsed, "torch_loaded": "torch" in sys.modules}


def _run_child(args: List[str], threads: int, timeout: float = 900) -> dict:
    proc = subprocess.run([sys.executable, os.path.abspath(__file__)] + args, capture_output=True,
                          text=True, env=_child_env(threads), timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"child {args} failed with exit code {proc.returncode}:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bench_memory(settings: Settings) -> List[dict]:
    rows = []
    for key, batch, steps in settings.memory_runs:
        spec = nets.NETS[key]
        res = {fw: _run_child(["--_child-memory", fw, key, str(batch), str(steps)], settings.threads)
               for fw in ("cnnlab", "torch")}
        if res["cnnlab"]["torch_loaded"]:
            raise RuntimeError("the cnnlab memory child imported torch; its peak would be wrong")
        grow = {fw: r["peak_mb"] - r["baseline_mb"] for fw, r in res.items()}
        name = f"{spec.name} train b{batch}, {steps} steps"
        rows.append({
            "section": "memory", "name": name + ": peak RSS above import", "unit": "MB",
            "values": {fw: {"median": v, "min": v, "max": v} for fw, v in grow.items()},
            "ratio_torch": {"median": grow["cnnlab"] / max(grow["torch"], 1e-9)}, "ratio_ort": None,
            "target": "<= 1x", "met": grow["cnnlab"] <= grow["torch"], "children": res,
            "note": "ratio = cnnlab / PyTorch (lower is better); peak (VmHWM, reset after the imports) "
                    "minus the resident size after the imports"})
        total = {fw: r["peak_mb"] for fw, r in res.items()}
        rows.append({
            "section": "memory", "name": name + ": peak RSS total", "unit": "MB",
            "values": {fw: {"median": v, "min": v, "max": v} for fw, v in total.items()},
            "ratio_torch": {"median": total["cnnlab"] / total["torch"]}, "ratio_ort": None,
            "target": "", "met": None, "note": "includes the framework's import"})
    return rows


_IMPORT_CODE = """
import sys, time
t0 = time.perf_counter()
import {module}
t1 = time.perf_counter()
heavy = sorted(m for m in ("torch", "PIL", "matplotlib", "sklearn", "scipy", "tqdm", "yaml", "pandas")
               if m in sys.modules)
print('{{"seconds": %r, "heavy": %r}}' % (t1 - t0, heavy))
"""


def _compiled_copy(folder: str) -> str:
    """Copy the checkout's cnnlab package into ``folder`` with its bytecode compiled.

    An installed package has its ``.pyc`` files; the checkout may have none (for
    instance under ``PYTHONDONTWRITEBYTECODE``), and then every import would
    compile the sources.  NumPy and PyTorch are imported from site-packages,
    which holds their bytecode.
    """
    import compileall
    import shutil
    target = os.path.join(folder, "cnnlab")
    shutil.copytree(os.path.join(SRC, "cnnlab"), target, ignore=shutil.ignore_patterns("__pycache__"))
    compileall.compile_dir(target, quiet=1)
    return folder


def bench_import(settings: Settings) -> List[dict]:
    modules = {"numpy": "numpy", "cnnlab": "cnnlab", "cnnlab (no .pyc)": "cnnlab", "torch": "torch"}
    if settings.quick:
        del modules["cnnlab (no .pyc)"]
    times: Dict[str, List[float]] = {k: [] for k in modules}
    heavy: List[str] = []
    base_env = _child_env(settings.threads)
    with tempfile.TemporaryDirectory(prefix="cnnlab-import-") as tmp:
        compiled_env = dict(base_env, PYTHONPATH=os.pathsep.join(
            [_compiled_copy(tmp)] + base_env["PYTHONPATH"].split(os.pathsep)[1:]))
        nocache_env = dict(base_env, PYTHONDONTWRITEBYTECODE="1")
        envs = {"numpy": base_env, "cnnlab": compiled_env, "cnnlab (no .pyc)": nocache_env,
                "torch": base_env}
        for _ in range(settings.import_repeats):
            for key, module in modules.items():   # interleaved, each in a fresh interpreter
                proc = subprocess.run([sys.executable, "-c", _IMPORT_CODE.format(module=module)],
                                      capture_output=True, text=True, env=envs[key], timeout=300)
                if proc.returncode != 0:
                    raise RuntimeError(f"import {module} failed:\n{proc.stderr[-2000:]}")
                out = json.loads(proc.stdout.strip().splitlines()[-1].replace("'", '"'))
                times[key].append(out["seconds"])
                if key == "cnnlab":
                    heavy = out["heavy"]
    vals = {m: {"median": statistics.median(t), "min": min(t), "max": max(t)} for m, t in times.items()}
    uncompiled = vals.get("cnnlab (no .pyc)")
    note = (f"fresh interpreter each, median of {settings.import_repeats}, cnnlab with compiled bytecode "
            f"as installed" + (f" ({uncompiled['median']:.3f} s when it must compile its sources)"
                               if uncompiled else "")
            + f"; 'import numpy' alone: {vals['numpy']['median']:.3f} s")
    if heavy:
        note += f"; WARNING: import cnnlab also loaded {', '.join(heavy)}"
    return [{"section": "import", "name": "import time", "unit": "s",
             "values": {"cnnlab": vals["cnnlab"], "torch": vals["torch"]},
             "ratio_torch": {"median": vals["torch"]["median"] / vals["cnnlab"]["median"]},
             "ratio_ort": None, "target": "cnnlab < 0.2 s", "met": vals["cnnlab"]["median"] < 0.2,
             "note": note, "samples": times, "all": vals, "heavy_modules_loaded_by_cnnlab": heavy}]


# --- GFLOP/s against the measured GEMM peak ------------------------------------------------
def gemm_peak(settings: Settings) -> dict:
    n = settings.gemm_size
    rng = np.random.default_rng(0)
    a = rng.random((n, n), dtype=np.float32)
    b = rng.random((n, n), dtype=np.float32)
    out = np.empty((n, n), dtype=np.float32)
    flops = 2.0 * n ** 3
    peak = {"size": n, "clock": settings.clock,
            "numpy_gflops": flops / best_of(lambda: np.matmul(a, b, out=out), settings.gemm_repeats,
                                            settings.clock_fn) / 1e9}
    try:
        import torch
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        peak["torch_gflops"] = flops / best_of(lambda: torch.mm(ta, tb), settings.gemm_repeats,
                                               settings.clock_fn) / 1e9
    except ImportError:
        pass
    return peak


def flops_rows(speed_rows: List[dict], peak: dict) -> List[dict]:
    rows = []
    for r in speed_rows:
        if r.get("flops_per_call") is None or r["unit"] != "img/s":
            continue
        gf = {fw: {k: v * r["flops_per_call"] / r["items_per_call"] / 1e9 for k, v in val.items()}
              for fw, val in r["values"].items()}
        share = {fw: g["median"] / peak["numpy_gflops"] for fw, g in gf.items()}
        rows.append({"section": "flops", "name": r["name"], "unit": "GFLOP/s", "values": gf,
                     "share_of_peak": share, "ratio_torch": None, "ratio_ort": None,
                     "target": "", "met": None,
                     "note": "conv+linear FLOPs counted analytically (2*MACs; x3 for training)"})
    return rows


# --- time to accuracy (off by default) --------------------------------------------------
def time_to_accuracy(data_dir: str, settings: Settings, target: float = 0.99, max_epochs: int = 20,
                     batch: int = 64, train_limit: Optional[int] = None, log=print) -> dict:
    """LeNet-5 on MNIST, both frameworks from the same weights, epochs interleaved.

    SGD (momentum 0.9, lr 0.01, no schedule), batch 64, standardised pixels.
    cnnlab trains through its training API, ``cnnlab.train.fit`` (one call per
    epoch, with the test set as validation data), when that module exists,
    else through the same minimal loop as PyTorch.  The test accuracy is
    checked after every epoch; its time counts towards the wall time.
    """
    import torch

    import cnnlab
    try:
        from cnnlab.train import fit as cnnlab_fit
    except ImportError:
        cnnlab_fit = None
    (xtr, ytr), (xte, yte) = nets.load_mnist_arrays(data_dir)
    if train_limit:
        xtr, ytr = xtr[:train_limit], ytr[:train_limit]
    spec = nets.NETS["lenet5"]
    cmodel, tmodel = nets.twin_models(spec)
    copt, topt = nets.make_optimizer("cnnlab", spec, cmodel), nets.make_optimizer("torch", spec, tmodel)
    rng = np.random.default_rng(0)
    status = {fw: {"seconds": 0.0, "epochs": 0, "accuracy": [], "reached": None}
              for fw in ("cnnlab", "torch")}
    status["cnnlab"]["loop"] = "cnnlab.train.fit" if cnnlab_fit else "minimal loop (no cnnlab.train)"

    def accuracy(fw):
        correct = 0
        for i in range(0, len(xte), 1000):
            x = xte[i:i + 1000]
            if fw == "cnnlab":
                cmodel.eval()
                with cnnlab.no_grad():
                    pred = cmodel(cnnlab.Tensor(x)).data.argmax(1)
            else:
                tmodel.eval()
                with torch.inference_mode():
                    pred = tmodel(torch.from_numpy(x)).numpy().argmax(1)
            correct += int((pred == yte[i:i + 1000]).sum())
        return correct / len(xte)

    def manual_epoch(fw):
        order = rng.permutation(len(xtr))
        batches = [(xtr[order[i:i + batch]], ytr[order[i:i + batch]]) for i in range(0, len(xtr), batch)]
        if fw == "cnnlab":
            cmodel.train()
            step = nets.cnnlab_train_step(cmodel, copt, batches)
        else:
            tmodel.train()
            step = nets.torch_train_step(tmodel, topt, batches)
        for _ in batches:
            step()
        return accuracy(fw)

    for epoch in range(1, max_epochs + 1):
        for fw in ("cnnlab", "torch"):
            st = status[fw]
            if st["reached"] is not None:
                continue
            t0 = time.perf_counter()
            if fw == "cnnlab" and cnnlab_fit is not None:
                history = cnnlab_fit(cmodel, (xtr, ytr), (xte, yte), epochs=1, batch_size=batch,
                                     optimizer=copt, schedule=None, seed=epoch, verbose=0,
                                     restore_best=False)
                acc = float(history.row(-1)["val_accuracy"])
            else:
                acc = manual_epoch(fw)
            st["seconds"] += time.perf_counter() - t0
            st["epochs"] = epoch
            st["accuracy"].append(acc)
            log(f"    {LABEL[fw]:8s} epoch {epoch}: test accuracy {acc:.4f}, {st['seconds']:.1f} s so far",
                flush=True)
            if acc >= target:
                st["reached"] = st["seconds"]
        if all(s["reached"] is not None for s in status.values()):
            break
    vals = {fw: {"median": s["reached"]} for fw, s in status.items()}
    ok = all(s["reached"] is not None for s in status.values())
    epochs = {fw: (f"{s['epochs']}" if s["reached"] is not None else f"not reached in {s['epochs']}")
              for fw, s in status.items()}
    return {"section": "tta", "name": f"LeNet-5 MNIST to {target:.1%} test accuracy", "unit": "s",
            "values": {fw: dict(v, min=v["median"], max=v["median"]) for fw, v in vals.items()},
            "ratio_torch": {"median": vals["torch"]["median"] / vals["cnnlab"]["median"]} if ok else None,
            "ratio_ort": None, "target": "reported", "met": None, "detail": status,
            "note": f"batch {batch}, SGD lr 0.01 momentum 0.9, epochs interleaved; cnnlab trains with "
                    f"{status['cnnlab']['loop']}; epochs to target: cnnlab {epochs['cnnlab']}, "
                    f"PyTorch {epochs['torch']}; final test accuracy: cnnlab "
                    f"{status['cnnlab']['accuracy'][-1]:.4f}, PyTorch {status['torch']['accuracy'][-1]:.4f}"}


# ==========================================================================
# rendering
# ==========================================================================
def _num(v: Optional[float]) -> str:
    if v is None or v != v:
        return "-"
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def _cell(val: Optional[dict], with_range: bool = True) -> str:
    if not val:
        return "-"
    s = _num(val["median"])
    if with_range and "min" in val and val["min"] != val["max"]:
        s += f" [{_num(val['min'])}-{_num(val['max'])}]"
    return s


def _ratio(val: Optional[dict], best: bool = False) -> str:
    if not val:
        return "-"
    if best and "best" in val:
        return f"{val['median']:.2f}x (best {val['best']:.2f}x)"
    return f"{val['median']:.2f}x"


def _met(m) -> str:
    return "-" if m is None else ("yes" if m else "NO")


def _notes(rows: List[dict]) -> List[str]:
    """Each distinct note once, after the names of the rows it belongs to (all rows: no names)."""
    names: Dict[str, List[str]] = {}
    for r in rows:
        if r.get("note"):
            names.setdefault(r["note"], []).append(r["name"])
    return [note if len(who) == len(rows) > 1 else f"{', '.join(who)}: {note}"
            for note, who in names.items()]


def _busy(row: dict) -> str:
    share = row.get("others_cpu_share")
    return "-" if share is None else f"{share:.0%}"


def _table(headers: List[str], rows: List[List[str]], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(
            "---" if i == 0 else "---:" for i in range(len(headers))) + "|"]
        lines += ["| " + " | ".join(c.replace("|", "/") for c in r) + " |" for r in rows]
        return "\n".join(lines)
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def fmt(cells):
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    return "\n".join([fmt(headers), "  ".join("-" * w for w in widths)] + [fmt(r) for r in rows])


SECTION_TITLES = {
    "train": "Training throughput (forward + backward + optimizer step)",
    "infer": "Inference (cnnlab: no_grad + eval; PyTorch: inference_mode; ORT: exported from PyTorch)",
    "memory": "Peak memory (RSS) of a training run, each framework in its own process",
    "import": "Import time",
    "flops": "Achieved GFLOP/s",
    "graph": "The same layers as a Sequential, as a Graph and as a user's own Module (cnnlab only)",
    "tta": "Time to accuracy",
    "zoo": "Torchvision-like models from ONNX at batch 1: cnnlab's NumPy engine, ONNX Runtime, PyTorch eager",
}


def render(result: dict, markdown: bool = False) -> str:
    out: List[str] = []
    h = (lambda s: f"### {s}") if markdown else (lambda s: f"== {s} ==")
    m = result["machine"]
    blas = "; ".join(f"{b.get('internal_api')} {b.get('version')} kernel={b.get('architecture')} "
                     f"threads={b.get('num_threads')}" for b in m["threads"].get("blas", [])) or "unknown"
    out.append(h("Machine"))
    lines = [
        f"CPU: {m['cpu']} ({m['logical_cores']} logical cores, {m['usable_cores']} usable; "
        f"{' '.join(m['cpu_flags'])})",
        f"Python {m['python']}, NumPy {m['numpy']}, PyTorch {m.get('torch')} "
        f"(BLAS {m.get('torch_blas')}, {m.get('torch_cpu_capability')}), ONNX Runtime {m.get('onnxruntime')}",
        f"cnnlab {m['cnnlab']} at git {m['git']}",
        f"Threads: PyTorch {m['threads'].get('torch_threads')}, NumPy BLAS: {blas}, ORT intra-op "
        f"{result['settings']['threads']}",
        "Removed from the environment before NumPy loaded: " + (m["removed_env"] or "nothing (none set)")
        + "; thread variables: " + (", ".join(f"{k}={v}" for k, v in m.get("thread_env", {}).items()) or "none"),
        f"Mode: {'quick' if result['settings']['quick'] else 'full'}; interleaving: "
        f"{result['settings']['interleave']}; clock: "
        + ("CPU time of the calling thread (load-independent; 1 thread)"
           if result["settings"].get("clock") == "cpu" else "wall") + f"; {m['date']}",
    ]
    load = result.get("load")
    if load:
        share = load.get("others_cpu_share")
        lines.append(f"Load: other processes used {share:.0%} of the CPUs during the run"
                     if share is not None else "Load: unknown")
        if share is not None and share > 0.15 and result["settings"].get("clock") != "cpu":
            lines.append("WARNING: the machine was shared during the run; multi-threaded wall-clock timings "
                         "are unreliable (see the Busy column; '--threads 1 --clock cpu' is load-independent)")
    out.append("\n".join(("- " + s) if markdown else s for s in lines))
    out.append("Values: median [min-max] over repeated runs.  Speed ratio = time(other)/time(cnnlab), "
               "paired run by run: > 1 means cnnlab is faster; (best) = ratio of the two fastest runs.  Busy = share of the CPUs that other "
               "processes used while the row ran (above ~20% the multi-threaded timings are unreliable).")

    rows = result["rows"]
    for section in ("train", "infer", "memory", "import", "tta"):
        sec = [r for r in rows if r["section"] == section]
        if not sec:
            continue
        out.append("")
        out.append(h(SECTION_TITLES[section]))
        has_ort = any(r.get("ratio_ort") for r in sec)
        headers = ["Row", "Unit", "cnnlab", "PyTorch"] + (["ORT"] if has_ort else []) + \
            ["cnnlab vs PyTorch"] + (["cnnlab vs ORT"] if has_ort else []) + ["Target", "Met", "Busy"]
        body = []
        for r in sec:
            v = r["values"]
            cells = [r["name"], r["unit"], _cell(v.get("cnnlab")), _cell(v.get("torch"))]
            if has_ort:
                cells.append(_cell(v.get("ort")))
            cells.append(_ratio(r.get("ratio_torch"), best=True))
            if has_ort:
                cells.append(_ratio(r.get("ratio_ort"), best=True))
            cells += [r.get("target", ""), _met(r.get("met")), _busy(r)]
            body.append(cells)
        out.append(_table(headers, body, markdown))
        notes = _notes(sec)
        if section == "train" and any(r.get("net") == "lenet5" for r in sec):
            notes.insert(0, "LeNet-5: conv1 with padding 2 (classic MNIST version), same for both")
        if notes:
            out.append("\n".join(("- " if markdown else "  note: ") + n for n in notes))

    eng = [r for r in rows if r["section"] == "engine"]
    if eng:
        out.append("")
        out.append(h("Inference engines on one cnnlab model: cnnlab (NumPy), cnnlab --engine onnxruntime, "
                     "ONNX Runtime called directly, PyTorch"))
        headers = ["Row", "Unit", "cnnlab", "engine onnxruntime", "ORT direct", "PyTorch",
                   "engine time / ORT time", "engine vs cnnlab", "engine vs PyTorch", "Met", "Busy"]
        body = [[r["name"], r["unit"], _cell(r["values"].get("cnnlab")), _cell(r["values"].get("engine")),
                 _cell(r["values"].get("ort")), _cell(r["values"].get("torch")),
                 _ratio(r.get("ratio_engine_ort")), _ratio(r.get("ratio_cnnlab_engine")),
                 _ratio(r.get("ratio_torch_engine")), _met(r.get("met")), _busy(r)] for r in eng]
        out.append(_table(headers, body, markdown))
        out.append(("- " if markdown else "  note: ") + "engine time / ORT time <= 1.10 is the target "
                   "(the engine's overhead over a bare session.run); 'vs' ratios > 1: the engine is faster")
    zoo = [r for r in rows if r["section"] == "zoo"]
    if zoo:
        out.append("")
        out.append(h(SECTION_TITLES["zoo"]))
        headers = ["Row", "cnnlab ms", "ORT ms", "PyTorch ms", "cnnlab time / ORT time", "cnnlab vs PyTorch",
                   "alone: cnnlab", "ORT", "PyTorch", "Target", "Met", "Busy"]
        body = []
        for r in zoo:
            v, alone = r["values"], r.get("alone") or {}
            body.append([r["name"], _cell(v.get("cnnlab")), _cell(v.get("ort")), _cell(v.get("torch")),
                         f"{1 / r['ratio_ort']['median']:.2f}x", _ratio(r.get("ratio_torch")),
                         _cell(alone.get("cnnlab"), False), _cell(alone.get("ort"), False),
                         _cell(alone.get("torch"), False), r.get("target", ""), _met(r.get("met")), _busy(r)])
        out.append(_table(headers, body, markdown))
        out.append(("- " if markdown else "  note: ") + "batch 1, random weights, exported from PyTorch to ONNX "
                   "in memory and imported with cnnlab.onnx; 'cnnlab time / ORT time' is paired run by run "
                   "(lower is better); 'alone' = each framework by itself in a fresh process")
    graph_rows = [r for r in rows if r["section"] == "graph"]
    if graph_rows:
        out.append("")
        out.append(h(SECTION_TITLES["graph"]))
        headers = ["Row", "Unit", "Sequential", "Graph", "own Module", "Graph vs Sequential",
                   "Module vs Sequential", "Target", "Met", "Busy"]
        body = [[r["name"], r["unit"], _cell(r["values"]["sequential"]), _cell(r["values"]["graph"]),
                 _cell(r["values"]["module"]), _ratio(r["ratios"]["graph"], best=True),
                 _ratio(r["ratios"]["module"], best=True), r["target"], _met(r["met"]), _busy(r)]
                for r in graph_rows]
        out.append(_table(headers, body, markdown))
        out.append(("- " if markdown else "  note: ") + "ratio = time(Sequential) / time(other): >= 0.95 means "
                   "at most 5% slower; the three share the same layer objects")

    ops = [r for r in rows if r["section"] == "ops"]
    if ops:
        out.append("")
        out.append(h("Single ops, forward (with graph recording) and backward (the op's rule alone), ms"))
        headers = ["Op", "Shape", "cnnlab fwd", "PyTorch fwd", "fwd vs PyTorch", "cnnlab bwd",
                   "PyTorch bwd", "bwd vs PyTorch", "cnnlab bwd/fwd", "PyTorch bwd/fwd", "Met (bwd<=2x)",
                   "Busy"]
        body = [[r["name"], r["shape"], _num(r["ms"]["cnnlab fwd"]), _num(r["ms"]["torch fwd"]),
                 _ratio(r["fwd_ratio"]), _num(r["ms"]["cnnlab bwd"]), _num(r["ms"]["torch bwd"]),
                 _ratio(r["bwd_ratio"]), f"{r['bwd_over_fwd']['cnnlab']:.2f}",
                 f"{r['bwd_over_fwd']['torch']:.2f}", _met(r["met"]), _busy(r)] for r in ops]
        out.append(_table(headers, body, markdown))
        notes = _notes(ops)
        if notes:
            out.append("\n".join(("- " if markdown else "  note: ") + n for n in notes))

    fl = [r for r in rows if r["section"] == "flops"]
    if fl or result.get("peak"):
        out.append("")
        peak = result.get("peak") or {}
        out.append(h(SECTION_TITLES["flops"]))
        if peak:
            out.append(f"GEMM peak (float32 {peak['size']}x{peak['size']} matmul, best of several): "
                       f"NumPy {peak['numpy_gflops']:.1f} GFLOP/s"
                       + (f", torch.mm {peak['torch_gflops']:.1f} GFLOP/s" if "torch_gflops" in peak else ""))
        if fl:
            has_ort = any("ort" in r["values"] for r in fl)
            headers = ["Row", "cnnlab GFLOP/s", "% of peak", "PyTorch GFLOP/s", "% of peak"] + \
                (["ORT GFLOP/s", "% of peak"] if has_ort else [])
            body = []
            for r in fl:
                cells = []
                for fw in ("cnnlab", "torch") + (("ort",) if has_ort else ()):
                    if fw in r["values"]:
                        cells += [_num(r["values"][fw]["median"]), f"{r['share_of_peak'][fw]:.1%}"]
                    else:
                        cells += ["-", "-"]
                body.append([r["name"]] + cells)
            out.append(_table(headers, body, markdown))
            out.append(("- " if markdown else "  note: ") + fl[0]["note"])

    judged = [r for r in rows if r.get("met") is not None]
    if judged:
        met = sum(bool(r["met"]) for r in judged)
        out.append("")
        out.append(h("Targets"))
        out.append(f"{met} of {len(judged)} targets met.  Not met: " +
                   (", ".join(r["name"] for r in judged if not r["met"]) or "none"))
    return "\n".join(out)


def write_json(result: dict, path: str) -> None:
    """Write ``result`` atomically (temp file in the same folder, then rename)."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".speed-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(result, f, indent=1, default=float)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# ==========================================================================
# profile: where cnnlab's time goes
# ==========================================================================
def profile_cnnlab(settings: Settings) -> str:
    """pyinstrument profiles and a per-layer/per-op breakdown of cnnlab training steps."""
    try:
        from pyinstrument import Profiler
    except ImportError:
        raise SystemExit("--profile needs pyinstrument (pip install pyinstrument)") from None
    from _breakdown import breakdown, hot_lines
    texts = []
    for key, batch, steps in (("lenet5", 1, 200), ("lenet5", 64, 40), ("vgg", 128, 3)):
        spec = nets.NETS[key]
        cmodel, _ = nets.twin_models(spec)
        cmodel.train()
        opt, batches = nets.make_optimizer("cnnlab", spec, cmodel), nets.synthetic_batches(spec, batch)
        step = nets.cnnlab_train_step(cmodel, opt, batches)
        for _ in range(2):
            step()
        prof = Profiler(interval=0.0005)
        prof.start()
        for _ in range(steps):
            step()
        prof.stop()
        texts.append(f"==== pyinstrument: {spec.name} training, batch {batch}, {steps} steps ====")
        texts.append(prof.output_text(unicode=False, color=False, show_all=False))
        texts.append(f"==== breakdown: {spec.name} training, batch {batch} (ms per step) ====")
        texts.append(breakdown(cmodel, opt, batches, steps, cpu_clock=settings.threads == 1))
        texts.append(f"==== hot lines: {spec.name} training, batch {batch} ====")
        texts.append(hot_lines(step, max(2, steps // 2), cpu_clock=settings.threads == 1))
    return "\n".join(texts)


# ==========================================================================
# main
# ==========================================================================
def run_suite(settings: Settings, rows: List[str], data_dir: Optional[str] = None,
              log=print, wait_quiet: float = 0.0) -> dict:
    monitor = LoadMonitor()
    thread_info = setup_threads(settings.threads)
    result = {"settings": {"quick": settings.quick, "threads": settings.threads,
                           "interleave": settings.interleave, "clock": settings.clock, "rows": list(rows)},
              "machine": machine_info(thread_info), "rows": []}
    out = result["rows"]

    def timed(label, fn, *args):
        if wait_quiet > 0:
            wait_until_quiet(wait_quiet, log=log)
        log(f"... {label}", flush=True)
        t0 = time.perf_counter()
        mon = LoadMonitor()
        res = fn(*args)
        share = mon.others_share()
        for r in (res if isinstance(res, list) else [res]):
            if isinstance(r, dict) and "section" in r:
                r["others_cpu_share"] = share
        log(f"    done in {time.perf_counter() - t0:.1f} s"
            + (f" (other processes used {share:.0%} of the CPUs)" if share is not None else ""), flush=True)
        return res

    if "train" in rows:
        for b in settings.lenet_batches:
            out.append(timed(f"LeNet-5 training, batch {b}", bench_training, "lenet5", b, settings,
                             2.0 if b == 1 else 1.5))
        out.append(timed(f"small VGG training, batch {settings.vgg_batch}", bench_training, "vgg",
                         settings.vgg_batch, settings, 1.2))
    if "infer" in rows:
        for key in ("lenet5", "vgg"):
            for b in settings.infer_batches:
                out.append(timed(f"{nets.NETS[key].name} inference, batch {b}", bench_inference, key, b,
                                 settings, 2.0))
    if "engine" in rows:
        for key in ("lenet5", "vgg"):
            for b in settings.infer_batches:
                out.append(timed(f"{nets.NETS[key].name} engines, batch {b}", bench_engine, key, b, settings))
    if "graph" in rows:
        for mode, b in (("train", 64), ("infer", 1), ("infer", 256)):
            out.append(timed(f"LeNet-5 {mode} as Sequential, Graph and own Module, batch {b}", bench_graph,
                             mode, b, settings))
    if "ops" in rows:
        out.extend(timed("single ops", bench_ops, settings))
    if "flops" in rows:
        result["peak"] = timed("GEMM peak", gemm_peak, settings)
        out.extend(flops_rows([r for r in out if r["section"] in ("train", "infer")], result["peak"]))
    if "zoo" in rows:
        for name in settings.zoo_models:
            out.append(timed(f"zoo: {name} at batch 1 (cnnlab, ONNX Runtime, PyTorch)", bench_zoo, name, settings))
    if "resnet8" in rows:
        out.append(timed(f"resnet8 training, batch {settings.resnet8_batch}", bench_resnet8, settings))
    if "memory" in rows:
        out.extend(timed("peak memory (child processes)", bench_memory, settings))
    if "import" in rows:
        out.extend(timed("import times (fresh interpreters)", bench_import, settings))
    if "tta" in rows:
        if not data_dir:
            raise SystemExit("--time-to-accuracy needs --data-dir or the CNNLAB_DATA_DIR environment variable")
        out.append(timed("time to accuracy (long)", lambda: time_to_accuracy(data_dir, settings, log=log)))
    result["load"] = monitor.report()
    return result


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="fewer repeats and shapes (well under a minute)")
    p.add_argument("--json", metavar="PATH", help="where to write the results "
                   "(default: benchmarks/results/speed[-quick].json)")
    p.add_argument("--rows", nargs="+", choices=ROWS + ("tta",), metavar="ROW",
                   help=f"which rows to run, from {', '.join(ROWS)}, tta (default: all but tta)")
    p.add_argument("--markdown", action="store_true", help="print the tables as Markdown")
    p.add_argument("--threads", type=int, default=2, help="threads for every framework (default 2)")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="wall clock (default) or the calling thread's CPU time, which ignores other "
                        "processes on a shared machine (needs --threads 1)")
    p.add_argument("--interleave", choices=("step", "run"), default="step",
                   help="alternate frameworks every call (default) or every run of calls")
    p.add_argument("--time-to-accuracy", action="store_true",
                   help="also train LeNet-5 on MNIST to 99.0%% test accuracy in both (long)")
    p.add_argument("--data-dir", default=os.environ.get("CNNLAB_DATA_DIR"),
                   help="folder with the MNIST IDX files (default: $CNNLAB_DATA_DIR)")
    p.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                   help="before each row, wait up to SECONDS for other processes to leave the CPUs idle")
    p.add_argument("--profile", action="store_true",
                   help="profile cnnlab's LeNet-5 (b1, b64) and VGG (b128) training steps and exit "
                        "(with --threads 1 the per-layer table uses CPU time, robust on a busy machine)")
    p.add_argument("--render", metavar="PATH", help="print the tables of a saved JSON file and exit")
    p.add_argument("--_child-memory", nargs=4, metavar=("FW", "NET", "BATCH", "STEPS"),
                   help=argparse.SUPPRESS)
    p.add_argument("--_child-zoo", nargs=2, metavar=("MODEL", "FW"), help=argparse.SUPPRESS)
    p.add_argument("--_zoo-size", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--_zoo-scale", type=float, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.clock == "cpu" and args.threads != 1:
        p.error(f"--clock cpu measures the calling thread only: use it with --threads 1 (got --threads {args.threads})")
    settings = Settings(quick=args.quick, threads=args.threads, interleave=args.interleave, clock=args.clock)
    if args.render:
        with open(args.render) as f:
            print(render(json.load(f), markdown=args.markdown))
        return 0
    if args._zoo_size:
        settings.zoo_size = args._zoo_size
    if args._zoo_scale:
        settings.zoo_scale = args._zoo_scale
    if args._child_zoo:
        name, fw = args._child_zoo
        print(json.dumps(zoo_child(name, fw, settings)))
        return 0
    if args._child_memory:
        fw, key, batch, steps = args._child_memory   # OpenBLAS threads: set by the parent's env
        print(json.dumps(memory_child(fw, key, int(batch), int(steps), args.threads)))
        return 0
    if args.profile:
        setup_threads(args.threads)
        print(profile_cnnlab(settings))
        return 0

    rows = list(args.rows) if args.rows else list(ROWS)
    if args.time_to_accuracy and "tta" not in rows:
        rows.append("tta")
    result = run_suite(settings, rows, args.data_dir, log=lambda *a, **k: print(*a, file=sys.stderr, **k),
                       wait_quiet=args.wait_quiet)
    path = args.json or os.path.join(HERE, "results", "speed-quick.json" if args.quick else "speed.json")
    write_json(result, path)
    print(render(result, markdown=args.markdown))
    print(f"\n(results written to {os.path.relpath(path)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
