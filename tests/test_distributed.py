"""Data-parallel training and prediction (cnnlab.distributed).

The math (gradient sums, synchronised batch norm, sharded loaders, split
evaluation) is checked in-process with a fake communicator that runs the ranks
as threads.  The end-to-end tests launch ``mpiexec -n 2 python -m cnnlab`` and
skip when mpi4py or mpiexec is missing (``pip install ".[mpi]"`` brings both).
"""
from __future__ import annotations

import copy
import csv
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from cnnlab import distributed, nn
from cnnlab import functional as F
from cnnlab.data import DataLoader
from cnnlab.data.transforms import Compose, Normalize, RandomCrop, RandomHorizontalFlip, RandomRotation
from cnnlab.distributed import Group, batch_share, launched_by_mpi, session
from cnnlab.tensor import Tensor


# --- an in-process communicator: ranks are threads ----------------------------------------------
class _World:
    def __init__(self, size):
        self.size = size
        self.barrier = threading.Barrier(size, timeout=60)
        self.slots = [None] * size


class FakeComm:
    """The part of ``mpi4py.MPI.Comm`` that cnnlab uses; sums in rank order."""

    def __init__(self, world, rank):
        self.world, self.rank = world, rank
        self.allreduce_calls = 0

    def Get_rank(self):
        return self.rank

    def Get_size(self):
        return self.world.size

    def _exchange(self, value):
        self.world.slots[self.rank] = value
        self.world.barrier.wait()
        values = list(self.world.slots)
        self.world.barrier.wait()
        return values

    def Allreduce(self, send, recv):
        self.allreduce_calls += 1
        values = self._exchange(np.array(send, copy=True))
        total = values[0].copy()
        for v in values[1:]:
            total += v
        recv[...] = total

    def bcast(self, obj, root=0):
        return copy.deepcopy(self._exchange(obj)[root])

    def gather(self, obj, root=0):
        values = self._exchange(obj)
        return values if self.rank == root else None

    def Abort(self, status):
        raise SystemExit(status)


def run_ranks(size, fn):
    """``[fn(rank) for each rank]``, the ranks running at once as threads in a fake session."""
    world = _World(size)
    results, errors = [None] * size, []

    def target(rank):
        try:
            with session(comm=FakeComm(world, rank)) as group:
                results[rank] = fn(group)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
            world.barrier.abort()

    threads = [threading.Thread(target=target, args=(r,)) for r in range(size)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


# --- pure helpers ----------------------------------------------------------------------------------
def test_batch_share_is_contiguous_and_complete():
    for total in (1, 2, 7, 64, 255):
        for parts in (1, 2, 3, 5):
            shares = [batch_share(total, p, parts) for p in range(parts)]
            assert shares[0][0] == 0 and shares[-1][1] == total
            assert all(a[1] == b[0] for a, b in zip(shares, shares[1:]))
            sizes = [b - a for a, b in shares]
            assert max(sizes) - min(sizes) <= 1


def test_no_mpi_detection_without_launcher_variables(monkeypatch):
    for name in distributed.LAUNCHER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert not launched_by_mpi()
    with session() as group:
        assert group is None
    monkeypatch.setenv("PMI_RANK", "1")
    assert launched_by_mpi() and distributed.launcher_rank() == 1
    with session(False) as group:  # forbidden: no MPI import either
        assert group is None


def test_import_cnnlab_does_not_import_mpi4py():
    code = "import sys, cnnlab, cnnlab.train, cnnlab.cli; print('mpi4py' in sys.modules)"
    env = {k: v for k, v in os.environ.items() if k not in distributed.LAUNCHER_VARIABLES}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "False"


def test_sum_gradients_packs_one_allreduce_and_returns_extras():
    def work(group):
        params = [nn.Parameter(np.zeros((2, 3), np.float32)), nn.Parameter(np.zeros(4, np.float32)),
                  nn.Parameter(np.zeros(1, np.float32))]
        params[0].grad = np.full((2, 3), group.rank + 1, np.float32)
        params[1].grad = np.arange(4, dtype=np.float32) * (group.rank + 1)
        params[2].grad = None  # no gradient: left out
        calls = group.comm.allreduce_calls
        extras = group.sum_gradients(params, [0.5 * (group.rank + 1), 3])
        return params, extras, group.comm.allreduce_calls - calls

    for params, extras, calls in run_ranks(3, work):
        assert calls == 1
        np.testing.assert_array_equal(params[0].grad, np.full((2, 3), 6, np.float32))
        np.testing.assert_array_equal(params[1].grad, np.arange(4) * 6.0)
        assert params[0].grad.dtype == np.float32 and params[2].grad is None
        np.testing.assert_allclose(extras, [3.0, 9.0])


# --- synchronised batch norm -----------------------------------------------------------------------
@pytest.mark.parametrize("split", [(3, 5), (1, 7), (4, 4)])
def test_sync_batch_norm_equals_batch_norm_of_the_whole_batch(split):
    rng = np.random.default_rng(0)
    n = sum(split)
    x = (rng.standard_normal((n, 3, 4, 5)) * 2 + 5).astype(np.float64)
    gy = rng.standard_normal(x.shape)
    w, b = rng.standard_normal(3) + 1, rng.standard_normal(3)

    def reference():
        xt, wt, bt = Tensor(x, requires_grad=True), Tensor(w, requires_grad=True), Tensor(b, requires_grad=True)
        rm, rv = np.zeros(3), np.ones(3)
        y = F.batch_norm(xt, rm, rv, wt, bt, training=True)
        (y * Tensor(gy)).sum().backward()
        return y.data, xt.grad, wt.grad, bt.grad, rm, rv

    def work(group):
        lo = 0 if group.rank == 0 else split[0]
        hi = split[0] if group.rank == 0 else n
        xt, wt, bt = Tensor(x[lo:hi], requires_grad=True), Tensor(w, requires_grad=True), Tensor(b, requires_grad=True)
        rm, rv = np.zeros(3), np.ones(3)
        y = F.batch_norm(xt, rm, rv, wt, bt, training=True, process_group=group)
        (y * Tensor(gy[lo:hi])).sum().backward()
        return y.data, xt.grad, wt.grad, bt.grad, rm, rv

    y, gx, gw, gb, rm, rv = reference()
    parts = run_ranks(2, work)
    np.testing.assert_allclose(np.concatenate([p[0] for p in parts]), y, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(np.concatenate([p[1] for p in parts]), gx, rtol=1e-9, atol=1e-10)
    # parameter gradients are per-rank parts: their sum is the whole batch's
    np.testing.assert_allclose(parts[0][2] + parts[1][2], gw, rtol=1e-10)
    np.testing.assert_allclose(parts[0][3] + parts[1][3], gb, rtol=1e-10)
    for p in parts:  # the running statistics move identically on every rank
        np.testing.assert_allclose(p[4], rm, rtol=1e-10)
        np.testing.assert_allclose(p[5], rv, rtol=1e-10)


def test_sync_batch_norm_needs_two_values_over_all_ranks():
    def work(group):
        x = Tensor(np.ones((1, 2, 1, 1)))
        return F.batch_norm(x, None, None, training=True, process_group=group)

    with pytest.raises(ValueError, match=r"more than 1 value per channel when training, got 1 over 1 processes"):
        run_ranks(1, work)
    out = run_ranks(2, work)  # 2 values in all: fine
    assert out[0].shape == (1, 2, 1, 1)


def test_batch_norm_layer_consults_the_session_group_only_in_training():
    def work(group):
        layer = nn.BatchNorm2d(2)
        x = Tensor(np.full((1, 2, 2, 2), float(group.rank), np.float32))
        calls = group.comm.allreduce_calls
        layer(x)
        train_calls = group.comm.allreduce_calls - calls
        layer.eval()
        layer(x)
        return train_calls, group.comm.allreduce_calls - calls - train_calls, layer.running_mean.copy()

    for train_calls, eval_calls, running_mean in run_ranks(2, work):
        assert (train_calls, eval_calls) == (1, 0)
        np.testing.assert_allclose(running_mean, [0.05, 0.05])  # 0.1 * global mean 0.5


# --- loaders and dropout ---------------------------------------------------------------------------
def _augment():
    return Compose([RandomCrop(6, padding=1), RandomHorizontalFlip(), RandomRotation(10), Normalize(0.5, 0.25)])


@pytest.mark.parametrize("parts", [2, 3])
def test_sharded_loader_yields_the_shares_of_the_whole_batches(parts):
    rng = np.random.default_rng(1)
    images = rng.random((23, 1, 6, 6), dtype=np.float32)
    labels = np.arange(23)
    whole = DataLoader((images, labels), batch_size=8, shuffle=True, transform=_augment(), seed=5)
    whole.set_epoch(3)
    shards = [DataLoader((images, labels), batch_size=8, shuffle=True, transform=_augment(), seed=5,
                         shard=(p, parts)) for p in range(parts)]
    for loader in shards:
        loader.set_epoch(3)
    for b, ((x, y), *pieces) in enumerate(zip(whole, *shards)):
        np.testing.assert_array_equal(np.concatenate([p[1] for p in pieces]), y)
        np.testing.assert_allclose(np.concatenate([p[0] for p in pieces]), x, rtol=1e-6, atol=1e-6)
        for part, loader in enumerate(shards):
            lo, hi, total = loader.batch_slice(b)
            assert (lo, hi) == batch_share(total, part, parts) and total == x.shape[0]
    # another epoch, another order; the same epoch again, the same batches
    first3 = next(iter(whole))[1]
    whole.set_epoch(4)
    assert not np.array_equal(next(iter(whole))[1], first3)
    whole.set_epoch(3)
    np.testing.assert_array_equal(next(iter(whole))[1], first3)


def test_seeded_loader_state_is_its_epoch():
    images = np.zeros((10, 1, 2, 2), np.float32)
    loader = DataLoader((images, np.arange(10)), batch_size=4, shuffle=True, seed=1)
    loader.set_epoch(7)
    other = DataLoader((images, np.arange(10)), batch_size=4, shuffle=True, seed=1)
    other.load_state_dict(loader.state_dict())
    assert other.epoch == 7
    np.testing.assert_array_equal(next(iter(other))[1], next(iter(loader))[1])
    with pytest.raises(ValueError, match="shard needs seed"):
        DataLoader((images, np.arange(10)), shard=(0, 2))
    with pytest.raises(ValueError, match=r"shard must be \(part, parts\) with 0 <= part < parts, got \(2, 2\)"):
        DataLoader((images, np.arange(10)), seed=0, shard=(2, 2))


def test_sharded_loader_with_an_unknown_random_transform_cuts_the_whole_batch():
    images = np.random.default_rng(0).random((9, 1, 3, 3), dtype=np.float32)

    def noisy(batch, rng):  # draws per batch: only exact on the whole batch
        return batch + rng.random(batch.shape, dtype=np.float32)

    whole = DataLoader((images, np.arange(9)), batch_size=9, transform=noisy, seed=2)
    shards = [DataLoader((images, np.arange(9)), batch_size=9, transform=noisy, seed=2, shard=(p, 2))
              for p in range(2)]
    x = next(iter(whole))[0]
    np.testing.assert_array_equal(np.concatenate([next(iter(s))[0] for s in shards]), x)


def test_dropout_draws_the_mask_of_the_whole_batch():
    x = np.ones((6, 50), np.float32)
    full = F.dropout(Tensor(x), 0.5, True, np.random.default_rng(3)).data
    parts = [F.dropout(Tensor(x[lo:hi]), 0.5, True, np.random.default_rng(3), batch_slice=(lo, hi, 6)).data
             for lo, hi in ((0, 4), (4, 6))]
    np.testing.assert_array_equal(np.concatenate(parts), full)


# --- fit: N ranks reproduce one process --------------------------------------------------------------
def _fit_digitsnet(initial):
    from cnnlab.data import get_dataset
    from cnnlab.models import digitsnet
    from cnnlab.train import default_augmentation, fit

    train, val = get_dataset("digits", download=False, progress=False)
    train = train.subset(np.arange(150), name="digits")
    val = val.subset(np.arange(60), name="digits-val")
    # batch norm; no dropout here: the ranks are threads sharing cnnlab's one generator
    # (dropout's split masks are tested above and in the MPI runs below)
    model = digitsnet(dropout=0)
    model.load_state_dict(initial)
    history = fit(model, train, val, epochs=1, batch_size=32, optimizer="sgd", lr=0.05, momentum=0.0,
                  schedule="constant", augment=default_augmentation("digits", (1, 8, 8)), seed=3, verbose=0,
                  restore_best=False)
    return model.state_dict(), history.history


@pytest.mark.parametrize("ranks", [2, 3])
def test_fit_on_several_ranks_reproduces_one_process(ranks):
    from cnnlab.models import digitsnet
    initial = digitsnet(dropout=0).state_dict()
    weights, history = _fit_digitsnet(initial)
    results = run_ranks(ranks, lambda group: _fit_digitsnet(initial))
    for state, hist in results:
        for key, value in weights.items():
            np.testing.assert_allclose(state[key], value, rtol=1e-4, atol=2e-5, err_msg=key)
        np.testing.assert_allclose(hist["train_loss"], history["train_loss"], rtol=1e-5)
        assert hist["train_accuracy"] == history["train_accuracy"]
        np.testing.assert_allclose(hist["val_loss"], history["val_loss"], rtol=1e-4)
        assert hist["val_accuracy"] == history["val_accuracy"]
    for key in weights:  # and the ranks agree bit for bit
        np.testing.assert_array_equal(results[0][0][key], results[-1][0][key])
