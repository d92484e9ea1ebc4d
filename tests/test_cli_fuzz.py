"""Fuzzing the command line: random argument lists and corrupted run folders.

Whatever the arguments and whatever a run folder's files hold, ``cnnlab`` ends
with exit status 0, 1 or 2; on failure it prints one ``error:`` line, never a
traceback and never "internal error".  ``cnnlab.cli.main`` runs in-process (a
subprocess per example would be far too slow).
"""
from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
pytest.importorskip("sklearn")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from cnnlab.cli import build_parser, main  # noqa: E402
from cnnlab.io import load_bundle, save_bundle  # noqa: E402

FUZZ = settings(max_examples=int(os.environ.get("CNNLAB_FUZZ_EXAMPLES", 40)), deadline=None,
                derandomize=os.environ.get("CNNLAB_PROPERTY_SEED") != "random", database=None,
                suppress_health_check=list(HealthCheck))


def run_cli(argv):
    """``(status, stdout, stderr)`` of ``cnnlab argv`` run in-process."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main([str(a) for a in argv])
        except SystemExit as exc:  # never expected: main returns the status
            status = f"SystemExit({exc.code})"
    return status, out.getvalue(), err.getvalue()


# messages of Python's own errors: they say nothing to a user about the file or argument at fault
RAW_PYTHON_MESSAGES = ("not enough values to unpack", "too many values to unpack", "object is not",
                       "unsupported operand", "has no attribute", "index out of range", "invalid literal for int",
                       "'NoneType'", "can't multiply", "unhashable type", "object cannot be interpreted",
                       "must be real number", "argument must be", "zero-size array", "division by zero",
                       "out of bounds for axis", "could not broadcast", "operands could not be")


def assert_clean(argv, status, stderr):
    where = f"cnnlab {' '.join(map(str, argv))}\n{stderr[-2000:]}"
    assert status in (0, 1, 2), f"exit status {status!r}: {where}"
    assert "Traceback" not in stderr, where
    assert "internal error" not in stderr, where
    if status != 0:
        errors = [line for line in stderr.splitlines() if "error:" in line]
        assert len(errors) == 1, f"expected one error line: {where}"
        assert len(errors[0]) < 2000, where
        raw = [text for text in RAW_PYTHON_MESSAGES if text in errors[0]]
        assert not raw, f"a raw Python message reached the user ({raw[0]!r}): {where}"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A tiny trained run, an image, a model file, and a scratch folder as the working directory."""
    from PIL import Image
    root = tmp_path_factory.mktemp("fuzz")
    old = os.getcwd()
    os.chdir(root)  # commands that write default output files write them here
    try:
        status, _, err = run_cli(["train", "--epochs", 1, "--limit", 100, "--out", root / "run", "--quiet"])
        assert status == 0, err
        Image.fromarray((np.random.default_rng(0).random((8, 8)) * 255).astype(np.uint8)).save(root / "digit.png")
        (root / "model.json").write_text(json.dumps({"input_shape": [1, 8, 8], "layers": [
            {"type": "Flatten"}, {"type": "Linear", "out_features": 10}]}))
        yield root
    finally:
        os.chdir(old)


# --- random argument lists ------------------------------------------------------------------------
def _commands():
    """(argv prefix, option strings, positional count) of every command, from the real parser."""
    import argparse
    parser = build_parser()
    found = []

    def walk(p, prefix):
        subs = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
        if subs:
            for name, sub in subs[0].choices.items():
                walk(sub, prefix + [name])
            return
        options = sorted(s for a in p._actions for s in a.option_strings if s not in ("--debug",))
        positionals = [a for a in p._actions if not a.option_strings]
        found.append((prefix, options, len(positionals)))

    walk(parser, [])
    return found


COMMANDS = [c for c in _commands() if c[0][0] != "train" and c[0] != ["report"]]
JUNK = ["", "-", "--", "nan", "inf", "-inf", "-1", "0", "1", "2", "3", "1e9", "0.5", "-0.5", "abc", "1,2,3",
        "3x3", "1,1,28,28", "45deg", "theta=45", "sigma=x", "=", "--nope", "-x", "é", "\x00", "a" * 300,
        "sobel", "relu", "gabor", "max", "avg", "1 2 3", "[[1,2],[3,4]]"]


@FUZZ
@given(data=st.data())
def test_random_argument_lists_never_crash(workspace, data):
    prefix, options, npos = data.draw(st.sampled_from(COMMANDS), "command")
    paths = [str(workspace / "run"), str(workspace / "digit.png"), str(workspace / "model.json"),
             str(workspace / "missing"), str(workspace / "out.png"), str(workspace)]
    token = st.one_of(st.sampled_from(options or ["--help"]), st.sampled_from(JUNK), st.sampled_from(paths),
                      st.integers(-3, 40).map(str), st.floats(allow_nan=True).map(repr),
                      st.text(max_size=8))
    argv = prefix + data.draw(st.lists(token, max_size=8), "arguments")
    if "--debug" in argv:
        return
    status, _, err = run_cli(argv)
    assert_clean(argv, status, err)


@settings(max_examples=int(os.environ.get("CNNLAB_FUZZ_EXAMPLES", 40)) // 4, deadline=None,
          derandomize=os.environ.get("CNNLAB_PROPERTY_SEED") != "random", database=None,
          suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_random_train_options_never_crash(workspace, data):
    """``train`` with random options, kept tiny by a fixed suffix (the last value of an option wins)."""
    prefix, options, _ = next(c for c in _commands() if c[0] == ["train"])
    values = st.one_of(st.sampled_from(JUNK[:20]), st.sampled_from(["digits", str(workspace / "model.json"),
                                                                      "lenet5", "mnist", str(workspace)]))
    args = data.draw(st.lists(st.one_of(st.sampled_from([o for o in options if o not in ("--help", "-h")]),
                                        values), max_size=6), "arguments")
    out = workspace / f"train-{abs(hash(tuple(args))) % 10**8}"
    argv = ["train", *args, "--epochs", "1", "--limit", "40", "--no-download", "--quiet", "--out", str(out)]
    if "--resume" in args:
        argv.remove("--out")
        argv.remove(str(out))
    status, _, err = run_cli(argv)
    assert_clean(argv, status, err)


# --- corrupted run folders ------------------------------------------------------------------------
JSON_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-2, 12), st.sampled_from([10**30, -10**30]),
                        st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=6),
                        st.lists(st.integers(-1, 3), max_size=4), st.just({}), st.just({"a": [1]}),
                        st.just(["a"] * 10), st.just("../../etc/passwd"), st.just("/etc/passwd"))


def _paths(doc, prefix=()):
    """Every (path, value) inside a JSON document."""
    yield prefix, doc
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _paths(v, prefix + (i,))


def _edit_json(doc, data):
    paths = [p for p, _ in _paths(doc) if p]
    if not paths:
        return data.draw(JSON_VALUES, "whole document")
    path = data.draw(st.sampled_from(paths), "field")
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    if data.draw(st.booleans(), "delete") and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = data.draw(JSON_VALUES, "value")
    return doc


def _corrupt_bytes(path: Path, data):
    raw = path.read_bytes()
    how = data.draw(st.sampled_from(["truncate", "garble", "empty", "text"]), "how")
    if how == "truncate":
        raw = raw[:data.draw(st.integers(0, max(len(raw) - 1, 0)), "length")]
    elif how == "garble":
        raw = bytearray(raw)
        for _ in range(data.draw(st.integers(1, 8), "bytes")):
            if raw:
                raw[data.draw(st.integers(0, len(raw) - 1), "at")] = data.draw(st.integers(0, 255), "byte")
        raw = bytes(raw)
    elif how == "empty":
        raw = b""
    else:
        raw = data.draw(st.binary(max_size=40), "text")
    path.write_bytes(raw)


def _corrupt_npz(path: Path, data):
    arrays = dict(np.load(path, allow_pickle=False))
    meta = None
    if "__meta_json__" in arrays:
        arrays, meta = load_bundle(path)
    how = data.draw(st.sampled_from(["drop", "reshape", "strings", "extra", "meta"] if meta is not None
                                    else ["drop", "reshape", "strings", "extra"]), "how")
    key = data.draw(st.sampled_from(sorted(arrays)), "array")
    if how == "drop":
        del arrays[key]
    elif how == "reshape":
        arrays[key] = np.zeros(data.draw(st.lists(st.integers(0, 3), max_size=3), "shape"), np.float32)
    elif how == "strings":
        arrays[key] = np.array(["x"] * max(arrays[key].size, 1))
    elif how == "extra":
        arrays[data.draw(st.sampled_from(["evil", "model/evil", "optim/7.x", "best/0.weight"]), "name")] = np.ones(3)
    else:
        meta = _edit_json(meta, data)
    if meta is not None:
        save_bundle(path, arrays, meta)
    else:
        np.savez(path, **arrays)


FILES = ["model.json", "model.npz", "metrics.json", "config.json", "history.csv", "checkpoint.npz"]


def _command(run: Path, workspace: Path, data):
    return data.draw(st.sampled_from([
        ["evaluate", run, "--limit", 30], ["predict", run, workspace / "digit.png"], ["summary", run],
        ["explain", "curves", run, "--output", run / "c.png"], ["explain", "softmax", "--run", run, "--input", workspace / "digit.png"],
        ["explain", "features", run, workspace / "digit.png", "--output-dir", run / "f"],
        ["explain", "conv", "--run", run, "--input", workspace / "digit.png", "--output", run / "conv.png"],
        ["train", "--resume", run, "--epochs", 2, "--quiet"],
        ["report", run, "--samples", 0, "--limit", 20, "--output", run / "report.html"],
    ]), "command")


@FUZZ
@given(data=st.data())
def test_corrupted_run_folders_never_crash(workspace, data, tmp_path_factory):
    run = tmp_path_factory.mktemp("corrupt") / "run"
    shutil.copytree(workspace / "run", run)
    name = data.draw(st.sampled_from(FILES), "file")
    path = run / name
    kind = data.draw(st.sampled_from(["bytes", "edit"]), "kind")
    if kind == "bytes":
        _corrupt_bytes(path, data)
    elif name.endswith(".json"):
        path.write_text(json.dumps(_edit_json(json.loads(path.read_text()), data)))
    elif name.endswith(".npz"):
        _corrupt_npz(path, data)
    else:
        lines = path.read_text().splitlines()
        row = data.draw(st.integers(0, len(lines) - 1), "line")
        lines[row] = data.draw(st.sampled_from(["", "epoch", "1,2,3,4,5,6,7,8,9", "x,y", "nan,nan", "-1,0",
                                                "epoch,epoch", "\x00", "1e999,1"]), "new line")
        path.write_text("\n".join(lines) + "\n")
    argv = _command(run, workspace, data)
    status, _, err = run_cli(argv)
    assert_clean(argv, status, err)


# --- model files ----------------------------------------------------------------------------------
LAYER = st.fixed_dictionaries({"type": st.sampled_from(["Conv2d", "Linear", "Flatten", "MaxPool2d", "AvgPool2d",
                                                        "AdaptiveAvgPool2d", "GlobalMaxPool2d", "ReLU", "GLU",
                                                        "Softmax", "BatchNorm2d", "Dropout", "Sequential",
                                                        "FractionalMaxPool2d", "LeakyReLU", "nope", 3])},
                              optional={k: JSON_VALUES for k in ("out_channels", "kernel_size", "stride", "padding",
                                                                  "dilation", "groups", "out_features", "dim", "p",
                                                                  "output_size", "output_ratio", "in_channels",
                                                                  "negative_slope", "ceil_mode", "bias", "eps",
                                                                  "padding_mode", "layers", "start_dim")})


@FUZZ
@given(layers=st.lists(LAYER, max_size=5), shape=st.one_of(st.none(), st.just([1, 8, 8]), JSON_VALUES),
       fmt=st.sampled_from(["json", "yaml", "toml"]), classes=st.sampled_from([None, "10", "0", "-1", "x"]))
def test_random_model_files_never_crash(workspace, layers, shape, fmt, classes):
    spec = {"layers": layers} if shape is None else {"input_shape": shape, "layers": layers}
    path = workspace / f"fuzz-model.{fmt}"
    if fmt == "json":
        path.write_text(json.dumps(spec))
    elif fmt == "yaml":
        import yaml
        path.write_text(yaml.safe_dump(spec))
    else:  # TOML has no null: drop the None values
        def toml_value(v):
            if isinstance(v, bool):
                return "true" if v else "false"
            if isinstance(v, (int, float)):
                return repr(v) if math.isfinite(v) else ("nan" if v != v else ("inf" if v > 0 else "-inf"))
            if isinstance(v, str):
                return json.dumps(v)
            if isinstance(v, list):
                return "[" + ", ".join(toml_value(x) for x in v if x is not None) + "]"
            return "{}"
        lines = [] if not isinstance(shape, list) else [f"input_shape = {toml_value(shape)}"]
        for layer in layers:
            lines.append("[[layers]]")
            lines += [f"{k} = {toml_value(v)}" for k, v in layer.items() if v is not None and not isinstance(v, dict)]
        path.write_text("\n".join(lines) + "\n")
    argv = ["summary", path, "--input-shape", "1,8,8"] + ([] if classes is None else ["--num-classes", classes])
    status, _, err = run_cli(argv)
    assert_clean(argv, status, err)


# --- silent wrong answers and paper cuts: generated image files, values and weights --------------------------
IMAGE_MODES = ["1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "YCbCr", "LAB", "HSV", "I", "I;16", "F"]


def _image_file(folder: Path, data) -> Path:
    """An image in a random colour mode and format, maybe animated, maybe with a damaged EXIF block."""
    from PIL import Image
    mode = data.draw(st.sampled_from(IMAGE_MODES), "mode")
    fmt = data.draw(st.sampled_from(["png", "gif", "tiff", "webp", "jpeg", "bmp"]), "format")
    frames = data.draw(st.integers(1, 3), "frames")
    size = (data.draw(st.integers(1, 40), "width"), data.draw(st.integers(1, 40), "height"))
    rng = np.random.default_rng(data.draw(st.integers(0, 9), "pixels"))
    images = []
    for _ in range(frames):
        base = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8), "RGB")
        try:
            images.append(base.convert(mode))
        except ValueError:
            images.append(Image.new(mode, size))
    path = folder / f"image.{fmt}"
    options = {}
    if data.draw(st.booleans(), "damaged EXIF"):
        import struct
        options["exif"] = (b"Exif\x00\x00II*\x00" + struct.pack("<IH", 8, 1) + struct.pack("<HHII", 0x010E, 2, 99, 999)
                           + struct.pack("<I", 0))
    try:
        if frames > 1:
            images[0].save(path, save_all=True, append_images=images[1:], **options)
        else:
            images[0].save(path, **options)
    except (OSError, KeyError, ValueError, TypeError):
        path.write_bytes(b"")  # a format Pillow cannot write in this mode: an empty file instead
    return path


@FUZZ
@given(data=st.data())
def test_generated_image_files_give_a_result_or_one_clean_line_and_no_raw_warning(workspace, data, tmp_path_factory):
    import warnings
    folder = tmp_path_factory.mktemp("images")
    path = _image_file(folder, data)
    argv = data.draw(st.sampled_from([["predict", workspace / "run", path],
                                      ["predict", workspace / "run", path, "--json"],
                                      ["explain", "features", workspace / "run", path, "--output-dir", folder / "f"]]),
                     "command")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a raw Python warning would be printed on stderr: here an error
        status, _, err = run_cli(argv)
    assert_clean(argv, status, err)
    assert "Warning:" not in err and " object at 0x" not in err, err
    if status != 0:
        assert str(path) in err, err  # the one line names the file


NUMBER_TEXTS = st.one_of(st.sampled_from(["inf", "-inf", "nan", "0", "-0", "-1", "1e309", "1e-320", "0.5", "3",
                                           "1,inf", "0.1,0.2,nan", "", ",", "x", "9" * 5000]),
                         st.floats(allow_nan=True, allow_infinity=True).map(repr))


@FUZZ
@given(data=st.data())
def test_generated_normalisation_and_seed_values_never_pass_silently(workspace, data, tmp_path_factory):
    onnx_file = workspace / "run.onnx"
    if not onnx_file.exists():
        pytest.importorskip("onnx")
        assert run_cli(["export", workspace / "run", onnx_file])[0] == 0
    flag = data.draw(st.sampled_from(["--std", "--mean", "--seed"]), "flag")
    value = data.draw(NUMBER_TEXTS, "value")
    if flag == "--seed":
        argv = ["train", f"--seed={value}", "--epochs", 1, "--limit", 40, "--quiet",
                "--out", tmp_path_factory.mktemp("seed") / "r"]
    else:
        argv = ["predict", onnx_file, workspace / "digit.png", f"{flag}={value}", "--json"]
    status, out, err = run_cli(argv)
    assert_clean(argv, status, err)
    assert len(err) < 2000, "a long value was echoed back in full"
    if status == 0 and flag != "--seed":
        numbers = [float(v) for v in value.split(",") if v.strip()]
        assert all(math.isfinite(v) for v in numbers) and (flag == "--mean" or all(v > 0 for v in numbers))
        assert "NaN" not in out


# --- planted symbolic links -----------------------------------------------------------------------
LINK_CASES = {  # link planted at (relative to a copy of the run) -> the command that would write through it
    ".cnnlab-lock": lambda run, ws: ["train", "--epochs", 1, "--limit", 50, "--out", run, "--quiet"],
    "explain": lambda run, ws: ["explain", "features", run, ws / "digit.png"],
    "explain/features_digit": lambda run, ws: ["explain", "features", run, ws / "digit.png"],
    "explain/curves.png": lambda run, ws: ["explain", "curves", run],
    "out.csv": lambda run, ws: ["predict", run, ws / "digit.png", "--output", run / "out.csv"],
    "model.onnx": lambda run, ws: ["export", run, run / "model.onnx"],
}


@pytest.mark.parametrize("where", sorted(LINK_CASES))
@pytest.mark.parametrize("target_kind", ["file", "folder"])
def test_no_write_goes_through_a_planted_symlink(workspace, tmp_path, where, target_kind):
    run = tmp_path / "run"
    shutil.copytree(workspace / "run", run)
    outside = tmp_path / "outside"
    outside.mkdir()
    target = outside / "victim"
    if target_kind == "file":
        target.write_text("keep me")
    else:
        target.mkdir()
    link = run / where
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target)
    argv = LINK_CASES[where](run, workspace)
    status, _, err = run_cli(argv)
    assert_clean(argv, status, err)
    assert status != 0 and "symbolic link" in err and str(link) in err, err
    assert link.is_symlink()
    assert (target.read_text() == "keep me") if target_kind == "file" else list(target.iterdir()) == []


# --- the explorer: same origin only, bounded numbers, no computing on the event loop --------------
@pytest.fixture(scope="module")
def explorer_client(workspace):
    pytest.importorskip("starlette")
    pytest.importorskip("httpx")
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient
    from cnnlab.explore.engine import load_target
    from cnnlab.explore.server import create_app
    saved, run_dir = load_target(workspace / "run")
    with TestClient(create_app(saved, run_dir), base_url="http://127.0.0.1:8000") as client:
        yield client


FOREIGN_ORIGINS = st.one_of(
    st.sampled_from(["null", "http://evil.example", "http://127.0.0.1:9999", "http://127.0.0.1", "file://",
                     "http://localhost.evil.example:8000", "http://127.0.0.1:8000.evil.example", "chrome-extension://x",
                     "https://127.0.0.1:8000@evil.example"]),
    st.builds(lambda host, port: f"http://{host}:{port}", st.from_regex(r"[a-z]{1,12}\.[a-z]{2,4}", fullmatch=True),
              st.integers(1, 65535)))
ENDPOINTS = [("post", "/api/predict", {"json": {"sample": 0}}), ("get", "/api/model", {}),
             ("get", "/api/shape?size=8&kernel=3", {}), ("post", "/api/explain", {"json": {"sample": 0}}),
             ("get", "/", {})]


@FUZZ
@given(origin=FOREIGN_ORIGINS, endpoint=st.sampled_from(ENDPOINTS))
def test_explorer_refuses_cross_origin_requests(explorer_client, origin, endpoint):
    method, url, kw = endpoint
    r = getattr(explorer_client, method)(url, headers={"Origin": origin}, **kw)
    assert r.status_code == 403, (origin, url, r.text)
    assert "cross-origin request refused" in r.json()["error"]


@FUZZ
@given(host=st.one_of(st.sampled_from(["evil.example", "evil.example:8000", "127.0.0.1.evil.example", "0",
                                        "localhost.evil.example:8000", "[::2]:8000"]),
                      st.from_regex(r"[a-z]{1,12}\.[a-z]{2,4}(:[0-9]{1,5})?", fullmatch=True)),
       endpoint=st.sampled_from(ENDPOINTS))
def test_explorer_refuses_other_host_names(explorer_client, host, endpoint):
    """DNS rebinding: a foreign name resolving to 127.0.0.1 still sends its own name as Host."""
    method, url, kw = endpoint
    r = getattr(explorer_client, method)(url, headers={"Host": host}, **kw)
    assert r.status_code == 403 and "addressed to this server" in r.json()["error"], (host, r.text)


@pytest.mark.parametrize("host,origin", [("127.0.0.1:8000", None), ("127.0.0.1:8000", "http://127.0.0.1:8000"),
                                         ("localhost:5000", "http://localhost:5000"), ("[::1]:80", "http://[::1]:80")])
def test_explorer_serves_its_own_page(explorer_client, host, origin):
    headers = {"Host": host, **({"Origin": origin} if origin else {})}
    assert explorer_client.post("/api/predict", json={"sample": 0}, headers=headers).status_code == 200
    assert explorer_client.get("/api/model", headers=headers).status_code == 200


NUMBERS = st.one_of(st.integers(-10**30, 10**30), st.sampled_from(["99999999", "-1", "1e9", "nan", "", "0x10",
                                                                   "9" * 30, "99999999,99999999", "same", "1,2,3"]))
NUMERIC_PARAMS = [("get", "/api/shape?size=8&kernel=3", "size"), ("get", "/api/shape?size=8&kernel=3", "kernel"),
                  ("get", "/api/shape?size=8&kernel=3", "stride"), ("get", "/api/shape?size=8&kernel=3", "padding"),
                  ("get", "/api/shape?size=8&kernel=3", "dilation"), ("get", "/api/samples?", "limit"),
                  ("get", "/api/samples/0.png?", "scale"), ("post", "/api/trace?layer=0", "channel"),
                  ("post", "/api/trace?layer=0", "y"), ("post", "/api/trace?layer=0", "x"),
                  ("post", "/api/featuremap?layer=0", "channel"), ("post", "/api/featuremap?layer=0", "scale"),
                  ("post", "/api/explain?method=saliency", "class"), ("post", "/api/predict?", "sample")]


@FUZZ
@given(param=st.sampled_from(NUMERIC_PARAMS), value=NUMBERS)
def test_explorer_numbers_are_bounded(explorer_client, param, value):
    """Every number of every endpoint: a clear 4xx (or an answer), never a 500, never a huge allocation."""
    import time
    method, url, name = param
    kw = {"json": {"sample": 0}} if method == "post" and name != "sample" else {}
    start = time.process_time()
    r = getattr(explorer_client, method)(f"{url}&{name}={value}", **kw)
    assert r.status_code in (200, 400, 404, 413, 415), (param, value, r.text)
    if r.status_code != 200:
        assert r.json()["error"] and len(r.json()["error"]) < 500
    assert time.process_time() - start < 5, (param, value)


def test_explorer_shape_padding_is_bounded(explorer_client):
    r = explorer_client.get("/api/shape?size=8&kernel=3&padding=99999999")
    assert r.status_code == 400 and "padding must be at most 10,000" in r.json()["error"]


@pytest.mark.parametrize("url,patched", [("/api/shape?size=8&kernel=3", "shape_arithmetic"),
                                         ("/api/model", "Explorer.model_info"),
                                         ("/api/kernels?layer=0", "Explorer.kernels")])
def test_explorer_computes_off_the_event_loop(explorer_client, monkeypatch, url, patched):
    import asyncio

    import cnnlab.explore.server as server
    from cnnlab.explore import engine
    owner = server if "." not in patched else engine.Explorer
    name = patched.split(".")[-1]
    original = getattr(owner, name)
    seen = []

    def spy(*args, **kwargs):
        try:
            asyncio.get_running_loop()
            seen.append("event loop")
        except RuntimeError:
            seen.append("worker thread")
        return original(*args, **kwargs)
    monkeypatch.setattr(owner, name, spy)
    explorer_client.get(url)
    assert seen == ["worker thread"]


# --- text from files is printed, its control characters never obeyed -------------------------------
HOSTILE_TEXT = st.one_of(
    st.sampled_from(["\x1b[2J\x1b[H", "\x1b]0;owned\x07", "cat\x1b[31mred", "\u202egnp.exe", "a\rb", "\x9b31m",
                     "line\nbreak", "\x00", "\x7f"]),
    st.text(alphabet=st.characters(codec="utf-8", categories=("Cc", "Ll")) | st.sampled_from("\u202a\u2066\u2028"),
            min_size=1, max_size=12).filter(lambda t: any(not c.isprintable() for c in t)))
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _no_raw_controls(text):
    assert not CONTROL.search(text.replace("\n", "").replace("\r", "").replace("\t", "")), repr(text[-500:])


@settings(max_examples=int(os.environ.get("CNNLAB_FUZZ_EXAMPLES", 40)) // 2, deadline=None, database=None,
          derandomize=os.environ.get("CNNLAB_PROPERTY_SEED") != "random", suppress_health_check=list(HealthCheck))
@given(name=HOSTILE_TEXT)
def test_class_names_from_model_json_are_escaped_when_printed(workspace, tmp_path_factory, name):
    run = tmp_path_factory.mktemp("escape") / "run"
    shutil.copytree(workspace / "run", run, dirs_exist_ok=True)
    info = json.loads((run / "model.json").read_text())
    info["classes"] = [name + str(k) for k in range(len(info["classes"]))]
    (run / "model.json").write_text(json.dumps(info))
    for argv in (["predict", run, workspace / "digit.png", "--top-k", 10], ["summary", run]):
        status, out, err = run_cli(argv)
        assert_clean(argv, status, err)
        _no_raw_controls(out + err)


@settings(max_examples=int(os.environ.get("CNNLAB_FUZZ_EXAMPLES", 40)) // 2, deadline=None, database=None,
          derandomize=os.environ.get("CNNLAB_PROPERTY_SEED") != "random", suppress_health_check=list(HealthCheck))
@given(name=HOSTILE_TEXT)
def test_layer_names_from_model_files_are_escaped_when_printed(workspace, name):
    path = workspace / "named.json"
    path.write_text(json.dumps({"input_shape": [1, 8, 8], "layers": [
        {"type": "Flatten", "name": name}, {"type": "Linear", "out_features": 3, "name": name + "!"}]}))
    argv = ["summary", path]
    status, out, err = run_cli(argv)
    assert_clean(argv, status, err)
    _no_raw_controls(out + err)


def test_escape_sequences_show_as_text():
    from cnnlab._text import printable
    assert printable("cat\x1b[2J\u202e") == "cat\\x1b[2J\\u202e"
    assert printable("a\tb\nc", keep_layout=True) == "a\tb\nc"
    status, out, err = run_cli(["summary", "/nonexistent/\x1b[2J.json"])
    assert "\x1b" not in err and "\\x1b[2J" in err
