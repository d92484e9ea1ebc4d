"""BLAS threads that fit the machine: at most the physical cores, one thread for small products,
requests above the core count capped with a note, ``import cnnlab`` still light."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import cnnlab
import cnnlab.functional as F
from cnnlab import threads


def _blas_threads() -> int:
    from threadpoolctl import threadpool_info
    return max(p["num_threads"] for p in threadpool_info() if p.get("user_api") == "blas")


@pytest.fixture
def restore_threads():
    state = dict(threads._state)
    yield
    threads._state.update(cap=state["cap"], current=None)
    if state["cap"] is not None:
        threads._set_blas(state["cap"])


def test_set_num_threads_above_the_cores_is_capped_with_a_note(restore_threads, capsys):
    cores = threads.physical_cores()
    cnnlab.set_num_threads(cores + 62)
    assert "capped to" in capsys.readouterr().err
    assert cnnlab.get_num_threads() == cores
    assert _blas_threads() == cores
    cnnlab.set_num_threads(1)
    assert capsys.readouterr().err == ""
    assert cnnlab.get_num_threads() == 1


def test_small_products_run_on_one_thread_large_ones_on_the_cap(restore_threads):
    if threads.physical_cores() < 2:
        pytest.skip("one core: nothing to choose")
    cnnlab.set_num_threads(2)
    x = cnnlab.randn(4, 3, 32, 32)
    F.conv2d(x, cnnlab.randn(6, 3, 5, 5))          # 6 x 75 x 3136: a small product
    assert _blas_threads() == 1
    big = cnnlab.randn(512, 1024)
    F.linear(big, cnnlab.randn(1024, 1024))        # 512 x 1024 x 1024 multiply-adds
    assert _blas_threads() == 2


def test_physical_cores_counts_each_core_once():
    import os
    n = threads.physical_cores()
    assert 1 <= n <= len(os.sched_getaffinity(0))


def test_train_threads_above_the_cores_is_capped_with_one_note(tmp_path):
    result = subprocess.run([sys.executable, "-m", "cnnlab", "train", "--threads", "64", "--epochs", "1",
                             "--limit", "120", "--quiet", "--out", str(tmp_path / "run")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    notes = [line for line in result.stderr.splitlines() if "capped to" in line]
    assert len(notes) == 1 and "threads 64" in notes[0]


def test_import_cnnlab_loads_no_thread_library():
    code = "import sys, cnnlab; print('threadpoolctl' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stderr


def test_set_num_threads_is_documented():
    docs = Path(__file__).resolve().parents[1] / "docs" / "threads.md"
    text = docs.read_text(encoding="utf-8")
    assert "set_num_threads" in text and "physical" in text
    assert "docs/threads.md" in (docs.parents[1] / "README.md").read_text(encoding="utf-8")
