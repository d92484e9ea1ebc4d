#!/usr/bin/env python
"""Data-parallel training speed on MPI: images/s with 1 and 2 ranks, and a scaling model.

Usage::

    python benchmarks/distributed.py                  # LeNet-5 and smallnet, a few minutes
    python benchmarks/distributed.py --quick          # fewer steps
    python benchmarks/distributed.py --markdown       # the tables as Markdown, for the README
    python benchmarks/distributed.py --bandwidth 25   # the scaling model for 25 Gbit/s

What it measures (global batch 256 by default, synthetic 1x28x28 images):

* the training step of ``fit`` -- forward, backward, the one gradient allreduce
  (:func:`cnnlab.distributed.backward`), the optimizer step -- in three set-ups:
  one process with 1 BLAS thread, one process with 2 BLAS threads, and
  ``mpiexec -n 2`` with 1 BLAS thread per rank.  The set-ups take turns, round
  after round, and each figure is the median over the rounds, so a change in
  the machine's load hits all of them alike;
* the allreduce's share of a 2-rank step: the time inside the gradient
  allreduce (which includes waiting for the slower rank) and the time of the
  same allreduce alone, after a barrier (the pure cost of moving the bytes);
* a model of N ranks on a network: compute per step = (1-rank step time) / N
  (the global batch is split), allreduce per step = parameters x 4 bytes x
  2 (N - 1) / N / bandwidth (a ring allreduce moves that much per rank).  The
  batch-norm layers' small allreduces (2 per layer per step) and network
  latency are left out: they add a few microseconds per call.

The model's "residual network" row uses smallnet when cnnlab.models has no
resnet8 (conv-BN-ReLU blocks with global average pooling, no skip connections).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


# --- the worker: runs inside each rank ----------------------------------------------------------------
def worker(args) -> None:
    sys.path.insert(0, str(SRC))
    import numpy as np

    from cnnlab import functional as F
    from cnnlab import manual_seed
    from cnnlab.data import DataLoader
    from cnnlab.distributed import backward, session
    from cnnlab.models import create_model
    from cnnlab.tensor import Tensor
    from cnnlab.threads import blas_threads
    from cnnlab.train import make_optimizer

    with session(True if args.ranks > 1 else False) as group, blas_threads(args.threads):
        manual_seed(0)
        # resnet8 at width 16 (78k parameters), the published figures' model
        model, _ = create_model(args.model, (1, 28, 28), 10, **({"width": 16} if args.model == "resnet8" else {}))
        model.train()
        params = list(model.parameters())
        opt = make_optimizer("adam", params, 1e-3)
        rng = np.random.default_rng(0)
        n = args.batch * 4
        images = rng.random((n, 1, 28, 28), dtype=np.float32)
        labels = rng.integers(0, 10, n)
        loader = DataLoader((images, labels), batch_size=args.batch, shuffle=True, seed=0,
                            shard=None if group is None else (group.rank, group.size))

        def step(b, x, y):
            if group is not None:
                group.batch = loader.batch_slice(b)
            logits = model(Tensor(x))
            loss = F.cross_entropy(logits, y)
            opt.zero_grad()
            if group is None:
                loss.backward()
            else:
                backward(group, model, loss, logits, y, args.batch)
            opt.step()

        batches = []
        while len(batches) < args.warmup + args.steps:
            loader.set_epoch(len(batches))
            batches += list(enumerate(loader))
        for b, (x, y) in batches[:args.warmup]:
            step(b, x, y)
        if group is not None:
            group.comm.Barrier()
            group.allreduce_seconds = 0.0
        t0 = time.perf_counter()
        for b, (x, y) in batches[args.warmup:args.warmup + args.steps]:
            step(b, x, y)
        seconds = time.perf_counter() - t0
        result = {"model": args.model, "ranks": args.ranks, "threads": args.threads,
                  "step_seconds": seconds / args.steps, "images_per_second": args.batch * args.steps / seconds,
                  "parameters": int(sum(p.data.size for p in params))}
        if group is not None:
            result["allreduce_seconds"] = group.allreduce_seconds / args.steps
            flat = np.zeros(result["parameters"] + 2, np.float32)
            pure = []
            for _ in range(20):  # the same allreduce alone, every rank ready
                group.comm.Barrier()
                t = time.perf_counter()
                group.allreduce_sum(flat)
                pure.append(time.perf_counter() - t)
            result["pure_allreduce_seconds"] = statistics.median(pure)
            result["seconds"] = group.gather(seconds)
        if group is None or group.is_root:
            print("RESULT " + json.dumps(result), flush=True)


# --- the driver ------------------------------------------------------------------------------------------
def run_setup(model: str, ranks: int, threads: int, settings) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PMI_RANK", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "MPI_LOCALRANKID")}
    cmd = [sys.executable, __file__, "--worker", "--model", model, "--ranks", str(ranks), "--threads",
           str(threads), "--batch", str(settings.batch), "--steps", str(settings.steps_for[model]),
           "--warmup", "2"]
    if ranks > 1:
        cmd = [settings.mpiexec, "-n", str(ranks)] + cmd
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    if out.returncode != 0 or not lines:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stderr}")
    return json.loads(lines[-1][7:])


def scaling_table(parameters: int, step_1rank: float, bandwidth_gbit: float, batch: int):
    rows = []
    bytes_per_second = bandwidth_gbit * 1e9 / 8
    for n in (1, 2, 4, 8, 16, 32, 64):
        compute = step_1rank / n
        comm = parameters * 4 * 2 * (n - 1) / n / bytes_per_second
        step = compute + comm
        rows.append({"ranks": n, "compute_ms": 1e3 * compute, "allreduce_ms": 1e3 * comm,
                     "allreduce_share": comm / step, "images_per_second": batch / step,
                     "speedup": step_1rank / step, "efficiency": step_1rank / step / n})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model", default="lenet5", help=argparse.SUPPRESS)
    parser.add_argument("--ranks", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=10, help=argparse.SUPPRESS)
    parser.add_argument("--warmup", type=int, default=2, help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=256, help="global batch (default 256)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the three set-ups (default 3)")
    parser.add_argument("--quick", action="store_true", help="fewer steps and rounds")
    parser.add_argument("--bandwidth", type=float, default=10.0, help="network Gbit/s of the model (default 10)")
    parser.add_argument("--markdown", action="store_true", help="print Markdown tables")
    parser.add_argument("--json", metavar="FILE", help="also write every measurement as JSON")
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return

    sys.path.insert(0, str(SRC))
    from cnnlab.models import MODELS
    residual = "resnet8" if "resnet8" in MODELS else "smallnet"
    args.mpiexec = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which("mpiexec")
    if args.mpiexec is None:
        raise SystemExit("mpiexec not found: pip install '.[mpi]' (mpi4py and the mpich wheel)")
    rounds = 2 if args.quick else args.rounds
    args.steps_for = {"lenet5": 6 if args.quick else 20, residual: 2 if args.quick else 5}
    setups = [(1, 1), (1, 2), (2, 1)]  # (ranks, threads per rank)
    load = os.getloadavg()
    measured = {m: {s: [] for s in setups} for m in ("lenet5", residual)}
    for r in range(rounds):
        for model in measured:
            order = setups if r % 2 == 0 else setups[::-1]
            for ranks, threads in order:
                measured[model][(ranks, threads)].append(run_setup(model, ranks, threads, args))
    load_after = os.getloadavg()

    def median(model, setup, key):
        return statistics.median(m[key] for m in measured[model][setup])

    md = args.markdown
    print(f"machine: {os.cpu_count()} cores, load average {load[0]:.1f} before and {load_after[0]:.1f} after; "
          f"global batch {args.batch}; median of {rounds} rounds\n")
    header = ["model", "parameters", "1 rank, 1 thread", "1 process, 2 threads", "2 ranks, 1 thread each",
              "2 ranks / 1 rank", "allreduce share of a 2-rank step (pure)"]
    rows = []
    for model in measured:
        one, two_threads, two_ranks = (median(model, s, "images_per_second") for s in setups)
        share = median(model, (2, 1), "allreduce_seconds") / median(model, (2, 1), "step_seconds")
        pure = median(model, (2, 1), "pure_allreduce_seconds") / median(model, (2, 1), "step_seconds")
        params = measured[model][(1, 1)][0]["parameters"]
        rows.append([model, f"{params:,}", f"{one:,.0f} img/s", f"{two_threads:,.0f} img/s",
                     f"{two_ranks:,.0f} img/s", f"{two_ranks / one:.2f}x", f"{100 * share:.1f}% ({100 * pure:.2f}%)"])
    _print_table(header, rows, md)
    print()
    print("allreduce share: time inside the gradient allreduce, which includes waiting for the slower rank; "
          "(pure): the same allreduce alone after a barrier.\n")
    for model in measured:
        params = measured[model][(1, 1)][0]["parameters"]
        step1 = median(model, (1, 1), "step_seconds")
        table = scaling_table(params, step1, args.bandwidth, args.batch)
        print(f"model of {model} on N ranks, {args.bandwidth:g} Gbit/s: compute = 1-rank step "
              f"{1e3 * step1:.0f} ms / N, allreduce = {params:,} x 4 B x 2(N-1)/N / bandwidth")
        _print_table(["ranks", "compute ms", "allreduce ms", "allreduce share", "img/s", "speed-up",
                      "efficiency"],
                     [[r["ranks"], f"{r['compute_ms']:.2f}", f"{r['allreduce_ms']:.3f}",
                       f"{100 * r['allreduce_share']:.1f}%", f"{r['images_per_second']:,.0f}",
                       f"{r['speedup']:.1f}x", f"{100 * r['efficiency']:.0f}%"] for r in table], md)
        dominated = [r["ranks"] for r in table if r["allreduce_share"] > 0.5]
        # the allreduce time tends to params*8/bandwidth; compute falls as 1/N: they cross at
        crossing = step1 / (params * 8 / (args.bandwidth * 1e9 / 8))
        where = (f"from {dominated[0]} ranks" if dominated else
                 f"not up to 64 ranks (compute and allreduce cross near N = {crossing:,.0f})")
        print(f"the allreduce dominates the step {where}\n")
    if args.json:
        Path(args.json).write_text(json.dumps({"load": [load, load_after], "batch": args.batch,
                                               "measured": {m: {f"{r}x{t}": v for (r, t), v in s.items()}
                                                            for m, s in measured.items()}}, indent=2))


def _print_table(header, rows, markdown: bool) -> None:
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    if markdown:
        print("| " + " | ".join(cells[0]) + " |")
        print("|" + "|".join("---" for _ in header) + "|")
        for row in cells[1:]:
            print("| " + " | ".join(row) + " |")
        return
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    for k, row in enumerate(cells):
        print("  ".join(c.rjust(w) if k and i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))))


if __name__ == "__main__":
    main()
