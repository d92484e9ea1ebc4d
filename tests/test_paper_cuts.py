"""Paper cuts: raw library texts, raw Python warnings and odd echoes, each now one clear line naming the file."""
import contextlib
import io
import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from cnnlab.cli import main

Image = pytest.importorskip("PIL.Image")


def run_cli(argv):
    """``(status, stdout, stderr)`` of ``cnnlab argv`` run in-process, Python warnings made errors."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
        warnings.simplefilter("error")
        status = main([str(a) for a in argv])
    return status, out.getvalue(), err.getvalue()


def one_error(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip() and not line.startswith(" ")]
    lines = [line for line in lines if not line.startswith("usage:")]
    assert len(lines) == 1 and "error:" in lines[0] and "Traceback" not in stderr, stderr
    return lines[0]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    pytest.importorskip("sklearn")
    out = tmp_path_factory.mktemp("cuts") / "run"
    status, _, err = run_cli(["train", "--epochs", 1, "--limit", 100, "--out", out, "--quiet"])
    assert status == 0, err
    return out


# --- the explorer's warnings name the page's controls, never cnnlab predict's options -------------------
def test_explorer_upload_warnings_name_no_command_line_options(run):
    from cnnlab.explore.engine import Explorer, load_target
    saved, run_dir = load_target(run)
    ex = Explorer(saved, run_dir)
    small = np.zeros((40, 20), np.uint8)  # a small dot off-centre, light on dark; and stretched
    small[2:5, 2:5] = 255
    bar = np.zeros((40, 20), np.uint8)  # a large stroke, dark on light (the digits are light on dark)
    bar[5:35, 7:13] = 255
    buffers = []
    for pixels in (small, 255 - bar):
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, format="PNG")
        buffers.append(buf.getvalue())
    notes = [w for data in buffers for w in ex.prepare_upload(data).warnings]
    notes += ex.prepare_upload(buffers[1], invert=True).warnings
    assert len(notes) >= 3, notes
    assert not [w for w in notes if "--" in w], notes
    assert any("crop it" in w for w in notes) and any("'invert'" in w for w in notes), notes


def test_predict_warnings_still_name_the_options(run, tmp_path):
    bar = np.zeros((40, 20), np.uint8)
    bar[5:35, 7:13] = 255
    Image.fromarray(255 - bar).save(tmp_path / "x.png")
    status, _, err = run_cli(["predict", run, tmp_path / "x.png"])
    assert status == 0 and "--center keeps it" in err and "--invert flips it" in err, err


def test_explorer_sample_below_zero_names_only_the_bound_it_has(run):
    import warnings as w
    with w.catch_warnings():
        w.simplefilter("ignore")
        from starlette.testclient import TestClient
    from cnnlab.explore.engine import load_target
    from cnnlab.explore.server import create_app
    saved, run_dir = load_target(run)
    with TestClient(create_app(saved, run_dir)) as c:
        got = c.post("/api/predict?sample=-3")
    assert got.status_code == 400
    text = json.dumps(got.json())
    assert "sample must be at least 0, got -3" in text and "None" not in text
