"""Paper cuts: raw library texts, raw Python warnings and odd echoes, each now one clear line naming the file."""
import contextlib
import io
import json
import re
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
    with TestClient(create_app(saved, run_dir), base_url="http://127.0.0.1:8000") as c:
        got = c.post("/api/predict?sample=-3")
    assert got.status_code == 400
    text = json.dumps(got.json())
    assert re.search(r"sample must be (at least 0|between 0 and \d+), got -3", text) and "None" not in text


# --- image files: raw Pillow texts and warnings ------------------------------------------------------------
def _exif_with_a_tag_past_the_end() -> bytes:
    import struct
    ifd = (b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 2) + struct.pack("<HHII", 0x010E, 2, 100, 1000)
           + struct.pack("<HHII", 0x0112, 3, 1, 1) + struct.pack("<I", 0))
    return b"Exif\x00\x00" + ifd


def test_image_with_a_damaged_exif_block_gives_no_raw_warning(run, tmp_path):
    Image.fromarray(np.full((8, 8), 30, np.uint8)).save(tmp_path / "e.jpg", exif=_exif_with_a_tag_past_the_end())
    status, out, err = run_cli(["predict", run, tmp_path / "e.jpg"])  # warnings are errors in run_cli
    assert status == 0 and "e.jpg:" in out and "Warning" not in err, err


@pytest.mark.parametrize("mode", ["LAB", "HSV"])
def test_image_in_a_colour_mode_cnnlab_cannot_convert_is_one_line_naming_the_file(run, tmp_path, mode):
    path = tmp_path / ("x.tif" if mode == "LAB" else "x.png")
    image = Image.new(mode, (8, 8))
    try:
        image.save(path)
    except (OSError, KeyError, ValueError):
        pytest.skip(f"this Pillow cannot write {mode} files")
    status, _, err = run_cli(["predict", run, path])
    line = one_error(err)
    assert status == 1 and str(path) in line and f"colour mode is {mode}" in line


@pytest.mark.parametrize("suffix", ["gif", "webp", "png"])
def test_animated_image_says_only_the_first_frame_is_used(run, tmp_path, suffix):
    frames = [Image.fromarray(np.full((8, 8), 40 * k, np.uint8)) for k in range(3)]
    path = tmp_path / f"anim.{suffix}"
    try:
        frames[0].save(path, save_all=True, append_images=frames[1:])
    except (OSError, KeyError, ValueError):
        pytest.skip(f"this Pillow cannot write animated {suffix}")
    status, out, err = run_cli(["predict", run, path])
    assert status == 0 and "an animated image of 3 frames: only the first frame is used" in err, err
    single = tmp_path / f"one.{suffix}"
    frames[0].save(single)
    assert "frames: only the first" not in run_cli(["predict", run, single])[2]


# --- ONNX files ------------------------------------------------------------------------------------------
def test_onnx_graph_output_naming_no_value_is_one_line(run, tmp_path):
    onnx = pytest.importorskip("onnx")
    assert run_cli(["export", run, tmp_path / "m.onnx"])[0] == 0
    model = onnx.load(str(tmp_path / "m.onnx"))
    model.graph.output[0].name = "nowhere"
    onnx.save(model, str(tmp_path / "bad.onnx"))
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "d.png")
    status, _, err = run_cli(["predict", tmp_path / "bad.onnx", tmp_path / "d.png"])
    line = one_error(err)
    assert status in (1, 2) and "bad.onnx: the graph's output 'nowhere' is no node's output" in line


# --- zip members NumPy cannot read -----------------------------------------------------------------------
def patch_zip_headers(data: bytes, flag_bits: int = 0, method=None) -> bytes:
    """``data`` (a zip file) with ``flag_bits`` OR-ed into, or ``method`` written over, every header."""
    import struct
    out = bytearray(data)
    for magic, flag_at, method_at in ((b"PK\x03\x04", 6, 8), (b"PK\x01\x02", 8, 10)):
        i = out.find(magic)
        while i >= 0:
            out[i + flag_at] |= flag_bits
            if method is not None:
                out[i + method_at:i + method_at + 2] = struct.pack("<H", method)
            i = out.find(magic, i + 4)
    return bytes(out)


@pytest.mark.parametrize("patch, text", [(dict(flag_bits=1), "is encrypted"),
                                         (dict(method=99), "uses zip compression method 99"),
                                         (dict(method=9), "uses zip compression method 9")])
def test_model_npz_with_encrypted_or_oddly_compressed_members_is_one_line_naming_the_file(run, tmp_path,
                                                                                          patch, text):
    import shutil
    bad = tmp_path / "run"
    shutil.copytree(run, bad)
    (bad / "model.npz").write_bytes(patch_zip_headers((run / "model.npz").read_bytes(), **patch))
    status, _, err = run_cli(["predict", bad, tmp_path / "x.png"])
    line = one_error(err)
    assert status == 1 and str(bad / "model.npz") in line and text in line


# --- echoes of long arguments ------------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["9" * 5000, str(2 ** 64), "-1", "x" * 300])
def test_seed_is_bounded_and_a_long_value_is_not_echoed_in_full(value):
    status, out, err = run_cli(["train", "--seed", value, "--epochs", 1])
    line = one_error(err)
    assert status == 2 and "argument --seed: expected an integer from 0 to 2**64 - 1" in line and len(line) < 200


def test_seed_at_the_top_of_its_range_trains(tmp_path):
    pytest.importorskip("sklearn")
    status, _, err = run_cli(["train", "--seed", 2 ** 64 - 1, "--epochs", 1, "--limit", 60, "--out",
                              tmp_path / "r", "--quiet"])
    assert status == 0, err
    assert json.loads((tmp_path / "r" / "config.json").read_text())["seed"] == 2 ** 64 - 1


def test_explorer_upload_that_is_no_image_names_no_python_object(run):
    import warnings as w
    with w.catch_warnings():
        w.simplefilter("ignore")
        from starlette.testclient import TestClient
    from cnnlab.explore.engine import load_target
    from cnnlab.explore.server import create_app
    saved, run_dir = load_target(run)
    with TestClient(create_app(saved, run_dir), base_url="http://127.0.0.1:8000") as c:
        got = c.post("/api/predict", files={"image": ("x.png", b"not an image at all", "image/png")})
    text = json.dumps(got.json())
    assert got.status_code == 400 and "is not an image" in text
    assert "BytesIO" not in text and " object at 0x" not in text


def test_onnx_complex_initializer_is_refused_not_cast_with_a_raw_complex_warning(run, tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper
    assert run_cli(["export", run, tmp_path / "m.onnx"])[0] == 0
    model = onnx.load(str(tmp_path / "m.onnx"))
    init = model.graph.initializer[0]
    value = numpy_helper.to_array(init)
    init.CopyFrom(numpy_helper.from_array((value + 1j).astype(np.complex64), init.name))
    onnx.save(model, str(tmp_path / "c.onnx"))
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "d.png")
    status, _, err = run_cli(["predict", tmp_path / "c.onnx", tmp_path / "d.png"])  # warnings are errors here
    line = one_error(err)
    assert status in (1, 2) and f"c.onnx: initializer {init.name!r} holds complex numbers (complex64)" in line
