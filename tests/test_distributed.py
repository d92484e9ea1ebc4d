"""Data-parallel training and prediction (cnnlab.distributed).

The math (gradient sums, synchronised batch norm, sharded loaders, split
evaluation) is checked in-process with a fake communicator that runs the ranks
as threads.  The end-to-end tests launch ``mpiexec -n 2 python -m cnnlab`` and
skip when mpi4py or mpiexec is missing (``pip install ".[mpi]"`` brings both).
"""
from __future__ import annotations

import copy
import json
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


def test_session_abort_on_error_ends_the_job(capsys):
    world = _World(2)
    with pytest.raises(SystemExit) as exc:  # FakeComm.Abort raises SystemExit(status)
        with session(comm=FakeComm(world, 1), abort_on_error=True):
            raise ValueError("boom")
    assert exc.value.code == 1 and "ValueError: boom" in capsys.readouterr().err
    with pytest.raises(ValueError, match="boom"):  # by default the exception goes on
        with session(comm=FakeComm(world, 1)):
            raise ValueError("boom")


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
        return y.numpy(), xt.grad, wt.grad, bt.grad, rm, rv

    def work(group):
        lo = 0 if group.rank == 0 else split[0]
        hi = split[0] if group.rank == 0 else n
        xt, wt, bt = Tensor(x[lo:hi], requires_grad=True), Tensor(w, requires_grad=True), Tensor(b, requires_grad=True)
        rm, rv = np.zeros(3), np.ones(3)
        y = F.batch_norm(xt, rm, rv, wt, bt, training=True, process_group=group)
        (y * Tensor(gy[lo:hi])).sum().backward()
        return y.numpy(), xt.grad, wt.grad, bt.grad, rm, rv

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
    full = F.dropout(Tensor(x), 0.5, True, np.random.default_rng(3)).numpy()
    parts = [F.dropout(Tensor(x[lo:hi]), 0.5, True, np.random.default_rng(3), batch_slice=(lo, hi, 6)).numpy()
             for lo, hi in ((0, 4), (4, 6))]
    np.testing.assert_array_equal(np.concatenate(parts), full)


# --- fit: N ranks reproduce one process --------------------------------------------------------------
def _fit_digitsnet(initial, n_train=150):
    from cnnlab.data import get_dataset
    from cnnlab.models import digitsnet
    from cnnlab.train import default_augmentation, fit

    train, val = get_dataset("digits", download=False, progress=False)
    train = train.subset(np.arange(n_train), name="digits")
    val = val.subset(np.arange(60), name="digits-val")
    # batch norm; no dropout here: the ranks are threads sharing cnnlab's one generator
    # (dropout's split masks are tested above and in the MPI runs below)
    model = digitsnet(dropout=0)
    model.load_state_dict(initial)
    history = fit(model, train, val, epochs=1, batch_size=32, optimizer="sgd", lr=0.05, momentum=0.0,
                  schedule="constant", augment=default_augmentation("digits", (1, 8, 8)), seed=3, verbose=0,
                  restore_best=False)
    return model.state_dict(), history.history


@pytest.fixture
def threadsafe_no_grad():
    """Ranks run as threads here; cnnlab's grad mode is per thread, so one rank's ``no_grad``
    (evaluation) never switches recording off for another rank's training step."""
    import cnnlab
    seen = []
    thread = threading.Thread(target=lambda: seen.append(cnnlab.is_grad_enabled()))
    with cnnlab.no_grad():
        thread.start()
        thread.join()
    assert seen == [True]


@pytest.mark.parametrize("ranks", [2, 3])
def test_fit_on_several_ranks_reproduces_one_process(ranks, threadsafe_no_grad):
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


# --- end to end: mpiexec -n 2 python -m cnnlab ... ---------------------------------------------------
SRC = str(Path(__file__).resolve().parents[1] / "src")
MPIEXEC = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which("mpiexec")
needs_mpi = pytest.mark.skipif(importlib.util.find_spec("mpi4py") is None or MPIEXEC is None,
                               reason="needs mpi4py and mpiexec (pip install '.[mpi]')")


def _env():
    env = {k: v for k, v in os.environ.items() if k not in distributed.LAUNCHER_VARIABLES}
    env["PYTHONPATH"] = SRC + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    return env


def cnnlab(*args, cwd=None, timeout=600):
    return subprocess.run([sys.executable, "-m", "cnnlab", *map(str, args)], capture_output=True, text=True,
                          env=_env(), cwd=cwd, timeout=timeout)


def mpi_command(n, *args, script=None):
    program = [str(script)] if script else ["-m", "cnnlab"]
    return [MPIEXEC, "-n", str(n), sys.executable, *program, *map(str, args)]


def mpirun(n, *args, cwd=None, timeout=600, script=None):
    return subprocess.run(mpi_command(n, *args, script=script), capture_output=True, text=True, env=_env(),
                          cwd=cwd, timeout=timeout)


def _mnist_base():
    base = os.environ.get("CNNLAB_DATA_DIR")
    if base and (Path(base) / "mnist" / "train-images-idx3-ubyte.gz").is_file():
        return Path(base) / "mnist"
    return None


def _weights(run):
    with np.load(Path(run) / "model.npz", allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def _assert_close_weights(a, b, rel):
    assert a.keys() == b.keys()
    for key in a:
        if a[key].dtype.kind != "f":
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
            continue
        diff = np.linalg.norm((a[key] - b[key]).ravel()) / max(np.linalg.norm(a[key].ravel()), 1e-12)
        assert diff < rel, f"{key}: relative difference {diff:.2e}"


def _metrics(result):
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@needs_mpi
def test_lenet5_on_mnist_two_ranks_equal_one_process(tmp_path):
    data = _mnist_base()
    if data is None:
        pytest.skip("MNIST files not found (set CNNLAB_DATA_DIR)")
    args = ["train", "--dataset", "mnist", "--data-dir", data, "--model", "lenet5", "--epochs", 1, "--limit", 10000,
            "--batch-size", 64, "--no-download", "--json", "--quiet"]
    one = _metrics(cnnlab(*args, "--out", tmp_path / "one", "--threads", 1))
    two = _metrics(mpirun(2, *args, "--out", tmp_path / "two"))
    assert two["processes"] == 2 and one["processes"] == 1
    assert one["test_size"] == two["test_size"] == 10000
    assert abs(one["test_accuracy"] - two["test_accuracy"]) <= 0.003
    assert abs(one["final_train_loss"] - two["final_train_loss"]) < 1e-3 * one["final_train_loss"]
    _assert_close_weights(_weights(tmp_path / "one"), _weights(tmp_path / "two"), rel=2e-3)


@needs_mpi
def test_batch_norm_model_two_ranks_equal_one_process_and_only_rank_0_writes(tmp_path):
    args = ["train", "--epochs", 2, "--limit", 600, "--batch-size", 32, "--optimizer", "sgd", "--lr", "0.01",
            "--json", "--quiet"]  # digits, digitsnet: batch norm and dropout
    one = _metrics(cnnlab(*args, "--out", tmp_path / "one", "--threads", 1))
    (tmp_path / "cwd").mkdir()
    two = _metrics(mpirun(2, *args, cwd=tmp_path / "cwd"))  # the default run directory: runs/<name>-<time>
    runs = list((tmp_path / "cwd" / "runs").iterdir())
    assert len(runs) == 1 and Path(two["run_dir"]).name == runs[0].name  # one directory, rank 0's name
    assert sorted(p.name for p in runs[0].iterdir()) == sorted(p.name for p in (tmp_path / "one").iterdir())
    assert sorted(p.name for p in (tmp_path / "cwd").iterdir()) == ["runs"]
    assert two["model"] == "digitsnet" and two["processes"] == 2
    assert abs(one["test_accuracy"] - two["test_accuracy"]) <= 0.003
    _assert_close_weights(_weights(tmp_path / "one"), _weights(runs[0]), rel=1e-4)
    with open(tmp_path / "one" / "history.csv") as a, open(runs[0] / "history.csv") as b:
        rows_a, rows_b = list(csv.DictReader(a)), list(csv.DictReader(b))
    for ra, rb in zip(rows_a, rows_b):
        assert abs(float(ra["train_loss"]) - float(rb["train_loss"])) < 1e-4
        assert abs(float(ra["val_accuracy"]) - float(rb["val_accuracy"])) <= 0.01


def _wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _rank_pids(marker):
    """Process ids of the python ranks whose command line holds ``marker``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if cmd and Path(cmd[0].decode(errors="replace")).name.startswith("python") \
                    and marker.encode() in b" ".join(cmd):
                pids.append(int(entry.name))
    return pids


@needs_mpi
def test_resume_after_kill_9_of_the_job_with_another_number_of_ranks(tmp_path):
    run = tmp_path / "run"
    args = ["train", "--epochs", 4, "--limit", 800, "--batch-size", 32, "--optimizer", "sgd", "--lr", "0.01",
            "--quiet", "--out", run]
    job = subprocess.Popen(mpi_command(2, *args), env=_env(), stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_for(lambda: (run / "checkpoint.npz").is_file() or job.poll() is not None, 300, "a checkpoint")
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)  # kill -9 of every process of the job
        job.wait(timeout=60)
    from cnnlab.io import load_bundle
    _, meta = load_bundle(run / "checkpoint.npz", "checkpoint")  # whole: written atomically
    assert 1 <= meta["epoch"] <= 4
    resumed = _metrics(mpirun(3, "train", "--resume", run, "--json", "--quiet"))  # 3 ranks now
    assert resumed["epochs"] == 4 and resumed["processes"] == 3
    whole = _metrics(cnnlab(*args[:-1], tmp_path / "whole", "--threads", 1, "--json"))
    assert abs(resumed["test_accuracy"] - whole["test_accuracy"]) <= 0.01
    _assert_close_weights(_weights(tmp_path / "whole"), _weights(run), rel=1e-3)


@needs_mpi
def test_a_killed_rank_ends_the_job_within_a_minute(tmp_path):
    marker = str(tmp_path / "killed")
    job = subprocess.Popen(mpi_command(2, "train", "--epochs", 200, "--quiet", "--out", marker), env=_env(),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        _wait_for(lambda: (Path(marker) / "checkpoint.npz").is_file() or job.poll() is not None, 300,
                  "the first epoch")
        pids = _rank_pids(marker)
        assert len(pids) == 2, pids
        os.kill(max(pids), signal.SIGKILL)
        start = time.monotonic()
        job.wait(timeout=60)
        assert time.monotonic() - start < 60
        assert job.returncode != 0
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
            job.wait()
    assert (Path(marker) / "checkpoint.npz").is_file()  # the last good checkpoint stays


@needs_mpi
def test_ctrl_c_on_mpiexec_behaves_like_ctrl_c_on_a_single_run(tmp_path):
    run = tmp_path / "run"
    job = subprocess.Popen(mpi_command(2, "train", "--epochs", 200, "--quiet", "--out", run), env=_env(),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _wait_for(lambda: (run / "checkpoint.npz").is_file() or job.poll() is not None, 300, "the first epoch")
        job.send_signal(signal.SIGINT)  # what Ctrl-C in the terminal sends to mpiexec
        _, err = job.communicate(timeout=60)
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
            job.wait()
    assert job.returncode == 130, err
    assert f"cnnlab: interrupted: the checkpoint of the last finished epoch is in {run}" in err
    assert "rank 1" not in err  # one message, rank 0's
    resumed = _metrics(cnnlab("train", "--resume", run, "--epochs", 2, "--json", "--quiet"))
    assert resumed["epochs"] == 2


@needs_mpi
def test_an_exception_on_one_rank_ends_the_job_with_rank_0_telling_it(tmp_path):
    script = tmp_path / "fail.py"
    script.write_text(
        "import sys\n"
        "import cnnlab.distributed as d\n"
        "real, calls = d.backward, [0]\n"
        "def failing(group, *args):\n"
        "    calls[0] += 1\n"
        "    if group.rank == 1 and calls[0] == 3:\n"
        "        raise RuntimeError('injected failure')\n"
        "    return real(group, *args)\n"
        "d.backward = failing\n"
        "from cnnlab.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n")
    start = time.monotonic()
    result = mpirun(2, "train", "--epochs", 3, "--limit", 300, "--quiet", "--out", tmp_path / "run",
                    script=script, timeout=120)
    assert time.monotonic() - start < 60
    assert result.returncode != 0
    assert "cnnlab: error on rank 1 of 2: injected failure" in result.stderr  # told by rank 0
    assert "Traceback" not in result.stderr


@needs_mpi
def test_an_error_on_every_rank_is_reported_once_by_rank_0(tmp_path):
    result = mpirun(2, "train", "--dataset", tmp_path / "nowhere", timeout=120)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and errors[0].startswith("cnnlab: error: unknown data set"), result.stderr


@needs_mpi
def test_distributed_predict_writes_the_same_csv_as_one_process(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    run = tmp_path / "run"
    assert cnnlab("train", "--epochs", 1, "--limit", 200, "--quiet", "--out", run).returncode == 0
    rng = np.random.default_rng(0)
    for i in range(27):
        folder = tmp_path / "scans" / f"box{i % 3}"
        folder.mkdir(parents=True, exist_ok=True)
        pixels = (rng.random((8 + 4 * (i % 2), 8)) * 255).astype(np.uint8)
        image = Image.fromarray(np.stack([pixels] * 3, -1) if i % 5 == 0 else pixels)
        image.save(folder / f"{i:02d}.png")
    one = cnnlab("predict", run, tmp_path / "scans", "--batch-size", 4, "--output", tmp_path / "one.csv")
    two = mpirun(2, "predict", run, tmp_path / "scans", "--batch-size", 4, "--output", tmp_path / "two.csv")
    assert one.returncode == 0 and two.returncode == 0, two.stderr
    text = (tmp_path / "one.csv").read_text()
    assert (tmp_path / "two.csv").read_text() == text
    rows = list(csv.DictReader(text.splitlines()))
    assert list(rows[0]) == ["file", "class", "probability", "warnings"] and len(rows) == 27
    assert [r["file"] for r in rows] == sorted(r["file"] for r in rows)
    # row 0 is an RGB file of gray pixels (nothing lost: no colour warning); row 1 is 8 wide, 12 high
    assert "colour" not in rows[0]["warnings"] and "stretched to 8x8" in rows[1]["warnings"]
    assert all(0 < float(r["probability"]) <= 1 and r["class"] in [str(k) for k in range(10)] for r in rows)
    # the same probabilities as cnnlab predict --json
    listed = json.loads(cnnlab("predict", run, tmp_path / "scans" / "box0", "--json", "--top-k", 1).stdout)
    box0 = [r for r in rows if "box0" in r["file"]]
    assert [p["predictions"][0]["class"] for p in listed] == [r["class"] for r in box0]
    np.testing.assert_allclose([p["predictions"][0]["probability"] for p in listed],
                               [float(r["probability"]) for r in box0], atol=2e-6)


@pytest.mark.parametrize("ranks, n_train", [(2, 129), (3, 130)])
def test_last_batch_smaller_than_the_ranks_is_trained_as_by_one_process(ranks, n_train, threadsafe_no_grad):
    """A last global batch of fewer images than ranks (some ranks get none) is still one step."""
    from cnnlab.models import digitsnet
    initial = digitsnet(dropout=0).state_dict()
    weights, history = _fit_digitsnet(initial, n_train)
    results = run_ranks(ranks, lambda group: _fit_digitsnet(initial, n_train))
    for state, hist in results:
        for key, value in weights.items():
            np.testing.assert_allclose(state[key], value, rtol=1e-4, atol=2e-5, err_msg=key)
        np.testing.assert_allclose(hist["train_loss"], history["train_loss"], rtol=1e-5)
        assert hist["train_accuracy"] == history["train_accuracy"]


@needs_mpi
def test_last_batch_of_one_image_two_ranks_equal_one_process(tmp_path):
    """161 training images in batches of 32 leave a last batch of 1 image: 2 ranks train it too."""
    args = ["train", "--epochs", 1, "--limit", 161, "--val-fraction", 0, "--batch-size", 32, "--optimizer", "sgd",
            "--lr", "0.05", "--no-augment", "--json", "--quiet"]  # digits, digitsnet: batch norm
    one = _metrics(cnnlab(*args, "--out", tmp_path / "one", "--threads", 1))
    two = _metrics(mpirun(2, *args, "--out", tmp_path / "two"))
    assert one["train_size"] == two["train_size"] == 161 and two["processes"] == 2
    _assert_close_weights(_weights(tmp_path / "one"), _weights(tmp_path / "two"), rel=1e-4)
    with np.load(tmp_path / "two" / "model.npz") as z:
        tracked = [int(z[k]) for k in z.files if k.endswith("num_batches_tracked")]
    assert tracked and all(t == 6 for t in tracked)  # 5 full batches and the last one of 1 image
