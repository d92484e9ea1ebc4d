"""A full disk during training keeps the last good checkpoint (a real, small tmpfs; skipped where the
machine does not let a test mount one)."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _cli(*args, cwd=None):
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "cnnlab", *map(str, args)], capture_output=True, text=True,
                          timeout=600, env=env, cwd=cwd)


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MiB tmpfs at tmp_path/disk."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode(errors='replace').strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _fill(disk: Path, leave: int) -> Path:
    """Fill the disk up to ``leave`` free bytes with one file."""
    stat = os.statvfs(disk)
    free = stat.f_bavail * stat.f_frsize
    filler = disk / "filler.bin"
    with open(filler, "wb") as f:
        f.write(b"\0" * max(free - leave, 0))
    return filler


def test_full_disk_keeps_the_last_good_checkpoint_and_the_run_resumes(small_disk):
    run = small_disk / "run"
    first = _cli("train", "--epochs", "1", "--limit", "300", "--quiet", "--out", run)
    assert first.returncode == 0, first.stderr
    checkpoint = run / "checkpoint.npz"
    before = {p.name: _sha(p) for p in run.iterdir() if p.is_file() and not p.name.startswith(".cnnlab-lock")}

    filler = _fill(small_disk, leave=8 * 1024)  # far less than one checkpoint
    second = _cli("train", "--resume", run, "--epochs", "2", "--quiet")
    assert second.returncode != 0
    assert "Traceback" not in second.stderr and "internal error" not in second.stderr
    assert "No space left on device" in second.stderr, second.stderr
    assert len(second.stderr.strip().splitlines()) <= 3, second.stderr
    # the last good files are untouched, nothing half-written is left
    assert _sha(checkpoint) == before["checkpoint.npz"]
    assert _sha(run / "model.npz") == before["model.npz"]
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]

    filler.unlink()  # space again: the run continues from its last good checkpoint
    third = _cli("train", "--resume", run, "--epochs", "2", "--quiet")
    assert third.returncode == 0, third.stderr
    history = (run / "history.csv").read_text().strip().splitlines()
    assert [line.split(",")[0] for line in history[1:]] == ["1", "2"]
