"""`cnnlab explore`'s JSON API, through Starlette's TestClient and a live uvicorn on 127.0.0.1.

Every number is checked against the engine: predictions against `cnnlab predict --json`, traces against
the feature maps of `layer_outputs`, the written-out convolution against `cnnlab explain conv`.
"""
from __future__ import annotations

import base64
import io
import json
import os
import re
import struct
import subprocess
import sys
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")
pytest.importorskip("multipart")

import warnings  # noqa: E402

with warnings.catch_warnings():  # newer Starlette suggests another HTTP client for its TestClient
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient  # noqa: E402

from cnnlab import nn  # noqa: E402
from cnnlab.explain.features import layer_outputs, named_layers  # noqa: E402
from cnnlab.explain.saliency import grad_cam, saliency_map  # noqa: E402
from cnnlab.explore.engine import Explorer, load_target  # noqa: E402
from cnnlab.explore.server import create_app  # noqa: E402
from cnnlab.io import load_model, save_model  # noqa: E402

SRC = str(Path(__file__).resolve().parents[1] / "src")
LOCAL = "http://127.0.0.1:8000"  # the explorer answers only requests addressed to this machine


def _cli(*args, cwd=None, check=True):
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, "-m", "cnnlab", *args], capture_output=True, text=True, env=env, cwd=cwd)
    if check and r.returncode:
        raise AssertionError(f"cnnlab {' '.join(args)} failed ({r.returncode}): {r.stdout}\n{r.stderr}")
    return r


def decode(a) -> np.ndarray:
    return np.frombuffer(base64.b64decode(a["data"]), dtype="<f4").reshape(a["shape"])


def png(array_hw3_or_hw: np.ndarray) -> bytes:
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(array_hw3_or_hw).save(buf, format="PNG")
    return buf.getvalue()


def big_png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height (the pixel data is a few bytes: never decoded)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("explore") / "digits-run"
    _cli("train", "--epochs", "1", "--out", str(out), "-q")
    return out


@pytest.fixture(scope="module")
def digit_png(tmp_path_factory):
    """A 24x20 RGB image of a light stroke on black (resized and grayed by the model's preprocessing)."""
    rng = np.random.default_rng(0)
    a = np.zeros((24, 20, 3), np.uint8)
    a[4:20, 8:12] = 230
    a[4:7, 5:14] = 200
    a += rng.integers(0, 20, a.shape, dtype=np.uint8)
    path = tmp_path_factory.mktemp("img") / "digit.png"
    path.write_bytes(png(a))
    return path


@pytest.fixture(scope="module")
def client(digits_run):
    saved, run_dir = load_target(digits_run)
    with TestClient(create_app(saved, run_dir), base_url=LOCAL) as c:
        yield c


@pytest.fixture(scope="module")
def zoo_model_dir(tmp_path_factory):
    """A model with every traced layer kind (no run: no test images)."""
    import cnnlab
    cnnlab.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.LeakyReLU(0.1), nn.AvgPool2d(2),
        nn.Conv2d(4, 4, 3, stride=2, padding="same", padding_mode="reflect"), nn.Tanh(), nn.MaxPool2d(2, padding=1),
        nn.Conv2d(4, 6, 1, groups=2), nn.Sigmoid(), nn.GlobalAvgPool2d(), nn.Flatten(), nn.Linear(6, 5), nn.GELU(),
        nn.Linear(5, 3), nn.Softmax(dim=1))
    bn = model[1]
    bn.running_mean[...] = np.array([0.1, -0.2, 0.3, 0.0], np.float32)
    bn.running_var[...] = np.array([1.5, 0.5, 2.0, 1.0], np.float32)
    model.eval()
    out = tmp_path_factory.mktemp("zoo") / "model"
    save_model(model, out, (3, 12, 12), classes=["cat", "dog", "bird"], mean=[0.5, 0.5, 0.5], std=[0.25, 0.25, 0.25],
               name="mixed")
    return out


# ---------------------------------------------------------------------------------------- model
def test_model_lists_every_layer_with_shapes_and_inputs(client, digits_run):
    r = client.get("/api/model")
    assert r.status_code == 200
    info = r.json()
    saved = load_model(digits_run)
    names = [n for n, _ in named_layers(saved.model)]
    assert [layer["name"] for layer in info["layers"]] == names
    assert info["input_shape"] == [1, 8, 8]
    assert info["classes"] == [str(i) for i in range(10)]
    outs = layer_outputs(saved.model, np.zeros((1, 1, 8, 8), np.float32))
    for layer, lo, prev in zip(info["layers"], outs, ["input"] + names[:-1]):
        assert layer["output_shape"] == list(lo.output.shape[1:])
        assert layer["inputs"] == [prev]
        assert layer["type"] == type(lo.layer).__name__
    assert info["layers"][0]["arithmetic"] == ["(8 + 2*1 - 3) / 1 + 1 = 8"]


def test_layers_get_readable_labels_and_convolutions_their_groups(client, zoo_model_dir, residual_dir):
    """Positions ("0", "2") read as conv1/pool1; a graph's own names stay; a family of one has no number."""
    info = client.get("/api/model").json()
    labels = [layer["label"] for layer in info["layers"]]
    assert labels == ["conv1", "bn1", "relu1", "conv2", "bn2", "relu2", "pool1", "conv3", "bn3", "relu3", "pool2",
                      "flatten", "dropout", "fc"]
    assert [layer["groups"] for layer in info["layers"] if layer["type"] == "Conv2d"] == [1, 1, 1]
    saved, run_dir = load_target(zoo_model_dir)
    zoo = Explorer(saved, run_dir).model_info()["layers"]
    assert [d["label"] for d in zoo] == ["conv1", "bn", "leakyrelu", "pool1", "conv2", "tanh", "pool2", "conv3",
                                         "sigmoid", "pool3", "flatten", "fc1", "gelu", "fc2", "softmax"]
    assert [d["groups"] for d in zoo if d["type"] == "Conv2d"] == [1, 1, 2]
    assert info["has_test_images"] is True
    saved, run_dir = load_target(residual_dir)
    graph_info = Explorer(saved, run_dir).model_info()
    graph = graph_info["layers"]
    assert [d["label"] for d in graph] == [d["name"] for d in graph]
    assert graph_info["has_test_images"] is False          # no run: the page does not ask for test images
    from cnnlab.explore.engine import display_labels
    assert display_labels(["features.0", "features.1", "classifier.0"], ["Conv2d", "ReLU", "Linear"]) == \
        ["features.conv", "features.relu", "classifier.fc"]


def test_page_and_static_files_are_served(client):
    r = client.get("/")
    assert r.status_code == 200 and "explorer.js" in r.text
    for name in ("explorer.js", "explorer.css"):
        assert client.get(f"/static/{name}").status_code == 200
    # nothing on the page comes from another host
    for name in ("index.html", "explorer.js", "explorer.css"):
        text = (Path(SRC) / "cnnlab" / "explore" / "static" / name).read_text()
        assert "http://" not in text.replace("http://www.w3.org/2000/svg", "") and "https://" not in text


# ---------------------------------------------------------------------------------------- predict
def test_predict_upload_equals_cnnlab_predict_json(client, digits_run, digit_png):
    r = client.post("/api/predict", files={"image": ("digit.png", digit_png.read_bytes(), "image/png")})
    assert r.status_code == 200, r.text
    got = r.json()
    cli = json.loads(_cli("predict", str(digits_run), str(digit_png), "--json", "--top-k", "10").stdout)[0]
    expected = {p["class"]: p["probability"] for p in cli["predictions"]}
    assert set(got["probabilities"]) == set(expected)
    for cls, p in expected.items():
        assert got["probabilities"][cls] == pytest.approx(p, rel=1e-5, abs=1e-7)
    assert got["prediction"] == cli["predictions"][0]["class"]
    steps = " ".join(got["input"]["steps"])
    assert "converted RGB to grayscale" in steps and "resized 24x20 -> 8x8" in steps and "normalised" in steps


def test_predict_inverted_upload_equals_cnnlab_predict_invert(client, digits_run, digit_png):
    r = client.post("/api/predict?invert=1", files={"image": ("d.png", digit_png.read_bytes(), "image/png")})
    cli = json.loads(_cli("predict", str(digits_run), str(digit_png), "--json", "--top-k", "10", "--invert").stdout)[0]
    for p in cli["predictions"]:
        assert r.json()["probabilities"][p["class"]] == pytest.approx(p["probability"], rel=1e-5, abs=1e-7)
    assert "inverted (1 - x)" in r.json()["input"]["steps"]


def test_predict_sample_with_maps_equals_the_engine(client, digits_run):
    from cnnlab.explain.runs import load_test_data, open_run
    run = open_run(digits_run)
    data = load_test_data(run, limit=10)
    x = run.saved.preprocess(data.images[7:8])
    outs = layer_outputs(run.model, x)
    r = client.post("/api/predict?maps=1", json={"sample": 7})
    assert r.status_code == 200
    got = r.json()
    assert got["input"]["label"] == str(int(data.labels[7]))
    np.testing.assert_array_equal(decode(got["input"]["model_input"]), x[0])
    assert [layer["name"] for layer in got["layers"]] == [lo.name for lo in outs]
    for layer, lo in zip(got["layers"], outs):
        np.testing.assert_array_equal(decode(layer), lo.output[0].astype(np.float32))
    logits = outs[-1].output[0].astype(np.float64)
    p = np.exp(logits - logits.max())
    p /= p.sum()
    assert [got["probabilities"][str(k)] for k in range(10)] == pytest.approx(p.tolist(), rel=1e-6)


# ---------------------------------------------------------------------------------------- trace
def test_trace_value_equals_the_feature_map_for_every_layer(client, digits_run):
    from cnnlab.explain.runs import load_test_data, open_run
    run = open_run(digits_run)
    x = run.saved.preprocess(load_test_data(run, limit=3).images[2:3])
    outs = layer_outputs(run.model, x)
    rng = np.random.default_rng(1)
    for lo in outs:
        out = lo.output[0]
        for _ in range(3):
            if out.ndim == 3:
                c, y, xx = (int(rng.integers(0, n)) for n in out.shape)
                value = float(out[c, y, xx])
            else:
                c, y, xx = int(rng.integers(0, out.shape[0])), 0, 0
                value = float(out[c])
            r = client.post(f"/api/trace?layer={lo.name}&channel={c}&y={y}&x={xx}", json={"sample": 2})
            assert r.status_code == 200, r.text
            t = r.json()
            assert t["value"] == value, (lo.name, c, y, xx)
            assert t["total"] == pytest.approx(value, rel=1e-4, abs=1e-5), (lo.name, t["expression"])
            assert t["type"] == type(lo.layer).__name__


def test_trace_conv_is_written_as_cnnlab_explain_conv_writes_it(client, digits_run, digit_png):
    r = client.post("/api/trace?layer=0&channel=5&y=3&x=4",
                    files={"image": ("digit.png", digit_png.read_bytes(), "image/png")})
    t = r.json()
    assert t["expression"].startswith("(") and " + " in t["expression"] and "x" in t["expression"]
    out = _cli("explain", "conv", "--run", str(digits_run), "--layer", "0", "--channel", "5", "--input",
               str(digit_png), "--positions", "3,4").stdout
    assert "  " + t["expression"] in out.splitlines()
    assert len(t["terms"]) == 9
    assert sum(term["product"] for term in t["terms"]) + t["bias"] == pytest.approx(t["total"], rel=1e-9)
    assert t["window"] == {"y0": 2, "x0": 3, "height": 3, "width": 3, "channels": [0, 0]}
    # the receptive field reaches back to the input
    assert t["receptive_field"]["input"] == [2, 4, 3, 5]


def test_trace_multichannel_conv_and_pool_and_dense(client):
    t = client.post("/api/trace?layer=3&channel=2&y=0&x=0", json={"sample": 0}).json()
    assert t["expression"].count("channel ") == 32 and "total: " in t["expression"]
    assert len(t["terms"]) == 32 * 9 and sum(term["padding"] for term in t["terms"]) == 32 * 5
    t = client.post("/api/trace?layer=6&channel=1&y=1&x=2", json={"sample": 0}).json()
    assert t["expression"].startswith("max(") and t["window"]["height"] == 2 and t["picked"] is not None
    t = client.post("/api/trace?layer=13&channel=4", json={"sample": 0}).json()
    assert len(t["terms"]) == 10 and "more" in t["expression"] and t["rest"]["count"] == 246
    t = client.post("/api/trace?layer=probabilities&channel=3", json={"sample": 0}).json()
    assert t["expression"].startswith("e^") and len(t["exponentials"]) == 10 and t["sum"]
    assert t["value"] == pytest.approx(t["probabilities"][3])


def test_trace_every_kind_on_a_mixed_model(zoo_model_dir):
    saved, _ = load_target(zoo_model_dir)
    ex = Explorer(saved)
    rng = np.random.default_rng(3)
    data = png(rng.integers(0, 255, (12, 12, 3), dtype=np.uint8))
    with TestClient(create_app(ex), base_url=LOCAL) as c:
        info = c.get("/api/model").json()
        assert not info["softmax_added"] and info["has_run"] is False
        img = ex.prepare_upload(data)
        outs = layer_outputs(saved.model, img.x)
        for lo in outs:
            out = lo.output[0]
            pos = [(0, 0, 0), tuple(n - 1 for n in out.shape)] if out.ndim == 3 else [(0, 0, 0), (out.shape[0] - 1, 0, 0)]
            for ch, y, x in pos:
                r = c.post(f"/api/trace?layer={lo.name}&channel={ch}&y={y}&x={x}",
                           files={"image": ("i.png", data, "image/png")})
                assert r.status_code == 200, r.text
                t = r.json()
                value = float(out[ch, y, x] if out.ndim == 3 else out[ch])
                assert t["value"] == value
                assert t["expression"], (lo.name, t)
                assert t["total"] == pytest.approx(value, rel=1e-4, abs=1e-5), (lo.name, t["expression"])
        assert c.get("/api/samples").status_code == 404
        assert "error" in c.get("/api/samples").json()


# ---------------------------------------------------------------------------------------- overlays and the rest
def test_explain_saliency_and_gradcam_equal_the_engine(client, digits_run):
    from cnnlab.explain.runs import load_test_data, open_run
    run = open_run(digits_run)
    x = run.saved.preprocess(load_test_data(run, limit=5).images[4:5])
    r = client.post("/api/explain?method=gradcam&class=3", json={"sample": 4}).json()
    g = grad_cam(run.model, x, 3)
    np.testing.assert_allclose(decode(r["heatmap"]), g.heatmap[0], atol=1e-6)
    assert r["class"] == "3" and r["layer"] == g.layer
    r = client.post("/api/explain?method=saliency", json={"sample": 4}).json()
    s = saliency_map(run.model, x)
    np.testing.assert_allclose(decode(r["heatmap"]), s.saliency[0] / s.saliency[0].max(), atol=1e-6)
    assert r["index"] == int(s.target[0])


def test_samples_run_shape_kernels_and_pngs(client, digits_run):
    r = client.get("/api/samples?class=3&limit=5").json()
    assert r["count"] >= 5 and len(r["samples"]) == 5 and all(s["label"] == "3" for s in r["samples"])
    wrong = client.get("/api/samples?wrong=1").json()
    assert all(not s["correct"] for s in wrong["samples"])
    run = client.get("/api/run").json()
    cm = np.array(run["confusion"])
    assert cm.shape == (10, 10) and cm.sum() == run["test_count"]
    assert np.trace(cm) == run["test_count"] - wrong["count"]
    assert run["history"]["epoch"] == [1] and run["metrics"]["test_accuracy"] > 0
    assert "run_dir" not in run["metrics"]   # no server paths go out
    first = client.get("/api/samples/0.png?scale=3")
    assert first.status_code == 200 and first.headers["content-type"] == "image/png" and first.content[:4] == b"\x89PNG"
    from PIL import Image
    assert Image.open(io.BytesIO(first.content)).size == (24, 24)
    k = client.get("/api/kernels?layer=0").json()
    saved = load_model(digits_run)
    np.testing.assert_array_equal(decode(k["weight"]), saved.model[0].weight.numpy())
    fm = client.post("/api/featuremap?layer=0&channel=2&scale=4", json={"sample": 1})
    assert fm.status_code == 200 and Image.open(io.BytesIO(fm.content)).size == (32, 32)


def test_shape_playground_uses_the_output_size_rule(client):
    from cnnlab.functional import conv_output_size
    r = client.get("/api/shape?size=28&kernel=5&stride=1&padding=2").json()
    assert r["output"] == 28 and r["formula"] == "(28 + 2*2 - 5) / 1 + 1 = 28" and r["warning"] is None
    r = client.get("/api/shape?size=7&kernel=2&stride=2").json()
    assert r["output"] == conv_output_size(7, 2, 2) == 3 and r["dropped"] == 1 and "never" in r["warning"]
    r = client.get("/api/shape?size=7&kernel=3&stride=2&padding=same").json()
    assert r["padding"] == [1, 1] and r["output"] == 4
    r = client.get("/api/shape?size=10&kernel=3&padding=0,2&dilation=2").json()
    assert r["output"] == conv_output_size(10, 3, 1, (0, 2), 2) and r["span"] == 5
    r = client.get("/api/shape?size=5&kernel=2&stride=2&pool=1&ceil_mode=1").json()
    assert r["output"] == conv_output_size(5, 2, 2, 0, 1, True) == 3
    assert len(r["windows"]) == 3


# ---------------------------------------------------------------------------------------- bad requests
BAD_REQUESTS = [
    ("not an image", "post", "/api/predict", {"files": {"image": ("x.png", b"hello, not a picture", "image/png")}}, 400,
     "not an image"),
    ("truncated png", "post", "/api/predict", {"files": {"image": ("x.png", None, "image/png")}}, 400, "truncated"),
    ("30000x30000 png", "post", "/api/predict",
     {"files": {"image": ("x.png", big_png_header(30000, 30000), "image/png")}}, 413, "over the limit"),
    ("empty file", "post", "/api/predict", {"files": {"image": ("x.png", b"", "image/png")}}, 400, "empty"),
    ("no image field", "post", "/api/predict", {"files": {"picture": ("x.png", b"abc", "image/png")}}, 400,
     "field named 'image'"),
    ("no body", "post", "/api/predict", {}, 400, "expected a multipart"),
    ("plain text body", "post", "/api/predict", {"content": b"abc", "headers": {"content-type": "text/plain"}}, 415,
     "expected a multipart"),
    ("bad json", "post", "/api/predict", {"content": b"{nope", "headers": {"content-type": "application/json"}}, 400,
     "not valid JSON"),
    ("a file path", "post", "/api/predict", {"json": {"sample": "/etc/passwd"}}, 400, "integer index"),
    ("a path key", "post", "/api/predict", {"json": {"path": "/etc/passwd"}}, 400, "sample"),
    ("sample out of range", "post", "/api/predict", {"json": {"sample": 10 ** 6}}, 400, "does not exist"),
    ("unknown layer", "post", "/api/trace?layer=99&channel=0&y=0&x=0", {"json": {"sample": 0}}, 404,
     "has no layer '99'"),
    ("position outside", "post", "/api/trace?layer=0&channel=0&y=8&x=0", {"json": {"sample": 0}}, 400,
     "outside layer 0's 32x8x8 output"),
    ("channel outside", "post", "/api/trace?layer=0&channel=32&y=0&x=0", {"json": {"sample": 0}}, 400, "outside"),
    ("vector position", "post", "/api/trace?layer=13&channel=0&y=1&x=0", {"json": {"sample": 0}}, 400, "vector"),
    ("not a number", "post", "/api/trace?layer=0&channel=a&y=0&x=0", {"json": {"sample": 0}}, 400,
     "channel must be an integer"),
    ("no layer", "post", "/api/trace", {"json": {"sample": 0}}, 400, "layer"),
    ("bad method", "post", "/api/explain?method=lime", {"json": {"sample": 0}}, 400, "saliency"),
    ("bad class", "post", "/api/explain?class=10", {"json": {"sample": 0}}, 400, "does not exist"),
    ("kernels of relu", "get", "/api/kernels?layer=2", {}, 400, "no weights"),
    ("shape kernel too big", "get", "/api/shape?size=3&kernel=5", {}, 400, "larger than the padded input"),
    ("shape bad padding", "get", "/api/shape?size=3&kernel=1&padding=x", {}, 400, "padding"),
    ("unknown endpoint", "get", "/api/nothing", {}, 404, "no such API endpoint"),
    ("wrong method", "get", "/api/predict", {}, 405, "not allowed"),
    ("missing sample png", "get", "/api/samples/99999.png", {}, 404, "does not exist"),
]


@pytest.mark.parametrize("what,method,url,kwargs,status,message", BAD_REQUESTS, ids=[b[0] for b in BAD_REQUESTS])
def test_bad_requests_get_json_errors_and_the_server_keeps_serving(client, digit_png, what, method, url, kwargs,
                                                                   status, message):
    if what == "truncated png":
        data = digit_png.read_bytes()
        kwargs = {"files": {"image": ("x.png", data[:len(data) // 2], "image/png")}}
    r = getattr(client, method)(url, **kwargs)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert message in r.json()["error"]
    assert client.get("/api/model").status_code == 200
    assert client.post("/api/predict", json={"sample": 0}).status_code == 200


def test_body_over_the_size_limit_is_refused(digits_run, digit_png):
    saved, run_dir = load_target(digits_run)
    with TestClient(create_app(saved, run_dir, max_upload_bytes=2000), base_url=LOCAL) as c:
        r = c.post("/api/predict", files={"image": ("x.png", b"\0" * 5000, "image/png")})
        assert r.status_code == 413 and "over the limit of 2,000 bytes" in r.json()["error"]
        assert c.post("/api/predict", json={"sample": 0}).status_code == 200


def test_image_warnings(client):
    light = np.full((28, 28), 255, np.uint8)
    light[5:22, 12:16] = 0
    r = client.post("/api/predict", files={"image": ("l.png", png(light), "image/png")}).json()
    assert any("light background" in w for w in r["input"]["warnings"])
    r = client.post("/api/predict?invert=1", files={"image": ("l.png", png(light), "image/png")}).json()
    assert not any("light background" in w for w in r["input"]["warnings"])
    empty = np.zeros((16, 16), np.uint8)
    r = client.post("/api/predict", files={"image": ("e.png", png(empty), "image/png")}).json()
    assert any("almost empty" in w for w in r["input"]["warnings"])
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[4:12, 6:10, 3] = 255
    r = client.post("/api/predict", files={"image": ("a.png", png(rgba), "image/png")}).json()
    assert any("alpha channel" in w for w in r["input"]["warnings"])


# ---------------------------------------------------------------------------------------- live server, 40 at once
def test_40_concurrent_requests_on_a_live_server(digits_run, digit_png):
    import httpx
    import uvicorn

    import socket
    saved, run_dir = load_target(digits_run)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))      # a free port, held from the start (no race with other programs)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(saved, run_dir), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                httpx.get(base + "/api/model", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        image = digit_png.read_bytes()
        jobs = []
        for i in range(40):
            kind = i % 4
            if kind == 0:
                jobs.append(("post", f"/api/predict", {"json": {"sample": i}}))
            elif kind == 1:
                jobs.append(("post", f"/api/trace?layer=3&channel={i % 32}&y=2&x=5", {"json": {"sample": i}}))
            elif kind == 2:
                jobs.append(("post", "/api/explain?method=saliency",
                             {"files": {"image": ("d.png", image, "image/png")}}))
            else:
                jobs.append(("post", "/api/predict", {"files": {"image": ("d.png", b"junk", "image/png")}}))

        def call(job):
            method, url, kw = job
            with httpx.Client(base_url=base, timeout=60) as c:
                return getattr(c, method)(url, **kw)

        with ThreadPoolExecutor(max_workers=40) as pool:
            results = list(pool.map(call, jobs))
        with TestClient(create_app(saved, run_dir), base_url=LOCAL) as serial:
            for job, r in zip(jobs, results):
                if job[2].get("files", {}).get("image", (None, b""))[1] == b"junk":
                    assert r.status_code == 400
                    continue
                assert r.status_code == 200, r.text
                expected = getattr(serial, job[0])(job[1], **job[2]).json()
                got = r.json()
                if "heatmap" in got:
                    assert got["heatmap"]["data"] == expected["heatmap"]["data"]
                elif "expression" in got:
                    assert (got["value"], got["expression"]) == (expected["value"], expected["expression"])
                else:
                    assert got["probabilities"] == expected["probabilities"]
        assert httpx.get(base + "/api/model").status_code == 200
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


# ---------------------------------------------------------------------------------------- the command
def test_command_serves_prints_its_address_and_stops_on_ctrl_c(digits_run, tmp_path):
    import httpx

    from _browser import start_server, stop_server
    proc, url = start_server(digits_run)
    try:
        assert url.startswith("http://127.0.0.1:")
        assert httpx.get(url + "/api/model", timeout=10).json()["input_shape"] == [1, 8, 8]
    finally:
        status = stop_server(proc)
    rest = proc.stdout.read()
    assert status == 0 and "stopped" in rest and "Traceback" not in rest


def test_command_without_a_run_trains_the_default_then_takes_the_newest(tmp_path):
    from _browser import start_server, stop_server
    proc, url = start_server(None, cwd=tmp_path, timeout=300)
    stop_server(proc)
    assert (tmp_path / "runs" / "digits-explore" / "model.json").is_file()
    # a newer run is picked next time
    _cli("train", "--epochs", "1", "--out", str(tmp_path / "runs" / "newer"), "-q")
    proc, url = start_server(None, cwd=tmp_path)
    stop_server(proc)
    assert proc.returncode == 0


def test_command_warns_when_not_on_127_0_0_1_and_refuses_a_busy_port(digits_run):
    import socket

    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-m", "cnnlab", "explore", str(digits_run), "--no-browser", "--host",
                             "127.0.0.2", "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    try:
        line = proc.stderr.readline()
        assert "warning: listening on 127.0.0.2, not 127.0.0.1" in line
        served = proc.stdout.readline()
        assert re.match(rf"serving {re.escape(str(digits_run))} on http://127\.0\.0\.2:\d+$", served.strip()), served
        assert not served.strip().endswith(":0")
    finally:
        proc.send_signal(__import__("signal").SIGINT)
        proc.wait(timeout=15)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        busy = s.getsockname()[1]
        r = _cli("explore", str(digits_run), "--no-browser", "--port", str(busy), check=False)
    assert r.returncode == 1 and f"cannot listen on 127.0.0.1:{busy}" in r.stderr
    r = _cli("explore", "/nonexistent/run", "--no-browser", check=False)
    assert r.returncode == 1 and "does not exist" in r.stderr


# ---------------------------------------------------------------------------------------- graph models
@pytest.fixture(scope="module")
def residual_dir(tmp_path_factory):
    if not hasattr(nn, "Graph"):
        pytest.skip("graph models are not in this cnnlab")
    import cnnlab
    cnnlab.manual_seed(1)
    model = nn.Graph([
        ("stem", nn.Conv2d(1, 4, 3, padding=1), ["input"]),
        ("stem_relu", nn.ReLU(), ["stem"]),
        ("conv_a", nn.Conv2d(4, 4, 3, padding=1), ["stem_relu"]),
        ("relu_a", nn.ReLU(), ["conv_a"]),
        ("conv_b", nn.Conv2d(4, 4, 3, padding=1), ["relu_a"]),
        ("add", nn.Add(), ["conv_b", "stem_relu"]),
        ("relu", nn.ReLU(), ["add"]),
        ("down", nn.Conv2d(4, 4, 1, stride=2), ["relu"]),
        ("pool", nn.MaxPool2d(2), ["relu"]),
        ("cat", nn.Concat(dim=1), ["down", "pool"]),
        ("gap", nn.GlobalAvgPool2d(), ["cat"]),
        ("flat", nn.Flatten(), ["gap"]),
        ("fc", nn.Linear(8, 10), ["flat"]),
    ])
    model.eval()
    out = tmp_path_factory.mktemp("graph") / "residual"
    save_model(model, out, (1, 8, 8), name="tiny-residual")
    return out


def test_graph_model_branches_merges_and_traces(residual_dir, digit_png):
    saved, run_dir = load_target(residual_dir)
    data = digit_png.read_bytes()
    with TestClient(create_app(saved, run_dir), base_url=LOCAL) as c:
        info = c.get("/api/model").json()
        by_name = {layer["name"]: layer for layer in info["layers"]}
        assert by_name["add"]["inputs"] == ["conv_b", "stem_relu"]
        assert by_name["cat"]["inputs"] == ["down", "pool"] and by_name["cat"]["output_shape"] == [8, 4, 4]
        assert by_name["stem"]["inputs"] == ["input"]
        got = c.post("/api/predict?maps=1", files={"image": ("d.png", data, "image/png")}).json()
        maps = {layer["name"]: decode(layer) for layer in got["layers"]}
        ex = Explorer(saved, run_dir)
        img = ex.prepare_upload(data)
        from cnnlab.tensor import Tensor, no_grad
        with no_grad():
            values = saved.model.run_all(Tensor(img.x))
        for name, m in maps.items():
            np.testing.assert_array_equal(m, values[name].numpy()[0])
        for layer, (ch, y, x) in [("add", (1, 2, 3)), ("cat", (5, 1, 2)), ("cat", (1, 3, 3)), ("conv_b", (2, 0, 7)),
                                  ("down", (3, 3, 3)), ("gap", (6, 0, 0)), ("fc", (4, 0, 0))]:
            t = c.post(f"/api/trace?layer={layer}&channel={ch}&y={y}&x={x}",
                       files={"image": ("d.png", data, "image/png")}).json()
            assert "value" in t, t
            out = values[layer].numpy()[0]
            value = float(out[ch, y, x] if out.ndim == 3 else out[ch])
            assert t["value"] == value and t["total"] == pytest.approx(value, rel=1e-4, abs=1e-6), t
        t = c.post("/api/trace?layer=add&channel=0&y=0&x=0", files={"image": ("d.png", data, "image/png")}).json()
        assert t["expression"].count(" + ") == 1 and t["inputs"] == ["conv_b", "stem_relu"]
        # the receptive field follows both branches of the residual block back to the input
        t = c.post("/api/trace?layer=relu&channel=0&y=4&x=4", files={"image": ("d.png", data, "image/png")}).json()
        rf = t["receptive_field"]
        assert rf["conv_b"] == [4, 4, 4, 4] and rf["stem_relu"] == [2, 6, 2, 6] and rf["input"] == [1, 7, 1, 7]
        r = c.post("/api/explain?method=gradcam", files={"image": ("d.png", data, "image/png")})
        assert r.status_code == 200, r.text
        assert r.json()["heatmap"]["shape"] == [8, 8]


# ---------------------------------------------------------------------------------------- .onnx files
def test_onnx_files_go_through_cnnlab_onnx(tmp_path, monkeypatch, digits_run):
    import types

    import cnnlab
    onnx_file = tmp_path / "model.onnx"
    onnx_file.write_bytes(b"not really onnx: the loader is replaced below")
    saved = load_model(digits_run)
    fake = types.ModuleType("cnnlab.onnx")
    fake.load_saved = lambda path: saved if Path(path) == onnx_file else None
    monkeypatch.setitem(sys.modules, "cnnlab.onnx", fake)
    monkeypatch.setattr(cnnlab, "onnx", fake, raising=False)
    got, run_dir = load_target(onnx_file)
    assert got is saved and run_dir is None
    # a loader that gives only the module: the input shape comes from the model
    del fake.load_saved
    model = saved.model
    model.input_shape = (1, 8, 8)
    fake.load = lambda path: model
    got, run_dir = load_target(onnx_file)
    assert got.input_shape == (1, 8, 8) and got.classes == [str(i) for i in range(10)] and got.name == "model"
    with TestClient(create_app(got, run_dir), base_url=LOCAL) as c:
        assert c.get("/api/model").json()["input_shape"] == [1, 8, 8]
    with pytest.raises(FileNotFoundError, match="ONNX file .*missing.onnx does not exist"):
        load_target(tmp_path / "missing.onnx")


def test_the_web_framework_is_imported_only_by_the_explorer():
    code = ("import sys, cnnlab, cnnlab.cli, cnnlab.explore, cnnlab.explore.engine; "
            "from cnnlab.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('starlette', 'uvicorn', 'multipart', 'httpx') if m in sys.modules))")
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert out.strip() == "[]"


def test_a_pytorch_model_exported_to_onnx_is_explored(tmp_path):
    """With cnnlab's ONNX import (the onnx extra) and PyTorch: an imported LeNet-5 predicts as PyTorch."""
    import importlib.util
    if importlib.util.find_spec("cnnlab.onnx") is None:
        pytest.skip("cnnlab.onnx is not in this cnnlab")
    pytest.importorskip("onnx")
    torch = pytest.importorskip("torch")
    tn = torch.nn
    torch.manual_seed(0)
    net = tn.Sequential(tn.Conv2d(1, 6, 5, padding=2), tn.ReLU(), tn.MaxPool2d(2), tn.Conv2d(6, 16, 5), tn.ReLU(),
                        tn.MaxPool2d(2), tn.Flatten(), tn.Linear(400, 10)).eval()
    path = tmp_path / "lenet.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, torch.zeros(1, 1, 28, 28), str(path), dynamo=False, input_names=["x"],
                          dynamic_axes={"x": {0: "n"}})
    saved, run_dir = load_target(path)
    assert tuple(saved.input_shape) == (1, 28, 28) and run_dir is None
    rng = np.random.default_rng(0)
    data = png(rng.integers(0, 255, (28, 28), dtype=np.uint8))
    with TestClient(create_app(saved, run_dir), base_url=LOCAL) as c:
        got = c.post("/api/predict", files={"image": ("x.png", data, "image/png")}).json()
        ex = Explorer(saved, run_dir)
        x = torch.tensor(ex.prepare_upload(data).x)
        with torch.no_grad():
            ref = torch.softmax(net(x), 1)[0].numpy()
        assert [got["probabilities"][k] for k in saved.classes] == pytest.approx(ref.tolist(), abs=1e-6)
        first = c.get("/api/model").json()["layers"][0]
        t = c.post(f"/api/trace?layer={first['name']}&channel=2&y=10&x=11",
                   files={"image": ("x.png", data, "image/png")}).json()
        with torch.no_grad():
            assert t["value"] == pytest.approx(float(net[0](x)[0, 2, 10, 11]), abs=1e-5)


def test_a_resnet8_run_every_node_traced(tmp_path):
    """The zoo's residual network (a graph model) trained briefly on the digits: every node's value."""
    from cnnlab.models import MODELS
    if "resnet8" not in MODELS:
        pytest.skip("no resnet8 in this cnnlab's zoo")
    run = tmp_path / "res8"
    _cli("train", "--model", "resnet8", "--epochs", "1", "--limit", "200", "--out", str(run), "-q")
    saved, run_dir = load_target(run)
    with TestClient(create_app(saved, run_dir), base_url=LOCAL) as c:
        info = c.get("/api/model").json()
        adds = [layer for layer in info["layers"] if layer["type"] == "Add"]
        assert len(adds) == 3 and all(len(layer["inputs"]) == 2 for layer in adds)
        got = c.post("/api/predict?maps=1", json={"sample": 5}).json()
        maps = {layer["name"]: decode(layer) for layer in got["layers"]}
        for layer in info["layers"]:
            m = maps[layer["name"]]
            pos = (m.shape[0] - 1, m.shape[1] // 2, m.shape[2] - 1) if m.ndim == 3 else (m.shape[0] - 1, 0, 0)
            t = c.post(f"/api/trace?layer={layer['name']}&channel={pos[0]}&y={pos[1]}&x={pos[2]}",
                       json={"sample": 5}).json()
            assert t["value"] == float(m[pos] if m.ndim == 3 else m[pos[0]]), layer["name"]
            assert t["total"] == pytest.approx(t["value"], rel=1e-4, abs=1e-5), (layer["name"], t["expression"])
            assert t["expression"], layer["name"]
        r = c.post("/api/explain?method=gradcam", json={"sample": 5})
        assert r.status_code == 200 and r.json()["heatmap"]["shape"] == [8, 8]
        assert len(c.get("/api/run").json()["confusion"]) == 10


def test_engine_onnxruntime_gives_the_live_prediction_of_cnnlab(digits_run, digit_png, client):
    """--engine onnxruntime: the prediction runs in ONNX Runtime and equals cnnlab's; the maps stay cnnlab's."""
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    saved, run_dir = load_target(digits_run)
    files = {"image": ("digit.png", digit_png.read_bytes(), "image/png")}
    with TestClient(create_app(saved, run_dir, engine="onnxruntime"), base_url=LOCAL) as fast:
        got = fast.post("/api/predict", files=files).json()
        with_maps = fast.post("/api/predict?maps=1", files=files).json()
    want = client.post("/api/predict", files=files).json()
    assert got["engine"] == "onnxruntime" and got["prediction"] == want["prediction"]
    for cls, p in want["probabilities"].items():
        assert got["probabilities"][cls] == pytest.approx(p, rel=1e-5, abs=1e-7)
    assert "layers" in with_maps and "engine" not in with_maps
