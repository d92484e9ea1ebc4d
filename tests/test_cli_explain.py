"""The explain commands through the real entry point: ``python -m cnnlab explain ...``, ``filter``, ``report``.

The arithmetic printed is checked against the articles' worked examples and
against the engine (the printed feature map of a trained layer equals the
layer's output); the picture commands run on a tiny run trained for one
epoch on a few of the built-in 8x8 digits, and (when the files are present)
on an untrained LeNet-5 with MNIST test images.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("PIL")

ROOT = Path(__file__).resolve().parents[1]
PNG = b"\x89PNG\r\n\x1a\n"


def cli(*args, cwd=None):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "cnnlab", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=300)


def ok(*args, cwd=None) -> str:
    r = cli(*args, cwd=cwd)
    assert r.returncode == 0, f"exit {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    return r.stdout


def fails(code: int, *args) -> str:
    r = cli(*args)
    assert r.returncode == code, f"exit {r.returncode}, expected {code}\n{r.stdout}\n{r.stderr}"
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    return lines[0]


def matrix_after(text: str, heading: str) -> np.ndarray:
    """The numbers printed under a heading such as 'feature map (2x2):'."""
    lines = text.split("\n")
    start = next(i for i, line in enumerate(lines) if line.startswith(heading)) + 1
    rows = []
    for line in lines[start:]:
        if not line.strip() or not re.fullmatch(r"[\s\d.eE+-]+", line):
            break
        rows.append([float(v) for v in line.split()])
    return np.array(rows)


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """A digitsnet run trained for 1 epoch on 80 digits, with a few test images written as PNG files."""
    pytest.importorskip("sklearn")
    from cnnlab.data import load_digits
    from cnnlab.explain.images import save_png
    from cnnlab.train import train
    root = tmp_path_factory.mktemp("digits")
    run = root / "run"
    train("digits", epochs=1, limit=80, out_dir=run, verbose=0, download=False, augment=False)
    test = load_digits("test")
    images = []
    for i in range(2):
        images.append(save_png(test.images[i], root / f"digit{i}.png"))
    rgb = np.stack([test.images[0, 0], test.images[1, 0], np.full((8, 8), 0.5, np.float32)])
    images.append(save_png(np.kron(rgb, np.ones((1, 4, 4), np.float32)), root / "rgb.png"))  # 32x32 RGB
    return run, images


# ------------------------------------------------------------------ arithmetic traces
def test_conv_prints_the_articles_worked_example():
    out = ok("explain", "conv", "--input", "0 1 2; 3 4 5; 6 7 8", "--kernel", "0 1; 2 3")
    for line in ("(0x0) + (1x1) + (3x2) + (4x3) = 19", "(1x0) + (2x1) + (4x2) + (5x3) = 25",
                 "(3x0) + (4x1) + (6x2) + (7x3) = 37", "(4x0) + (5x1) + (7x2) + (8x3) = 43",
                 "height: (3 + 2*0 - 2) / 1 + 1 = 2"):
        assert line in out
    np.testing.assert_array_equal(matrix_after(out, "feature map (2x2):"), [[19, 25], [37, 43]])
    assert "check: cnnlab.functional.conv2d computes the same feature map (largest difference 0)" in out


def test_conv_positions_stride_and_padding():
    out = ok("explain", "conv", "--input", "0 1 2; 3 4 5; 6 7 8", "--kernel", "0 1; 2 3", "--positions", "0,0; 1,1")
    assert "out[0, 0]" in out and "out[1, 1]" in out and "out[0, 1]" not in out and "= 25" not in out
    # 'same' with stride 2 on 5x5: output ceil(5/2) = 3, padding 1 + 1 ... the engine agrees
    out = ok("explain", "conv", "--input", "1 2 3 4 5; 6 7 8 9 10; 1 0 1 0 1; 2 2 2 2 2; 0 1 0 1 0",
             "--kernel", "1 0 -1; 1 0 -1; 1 0 -1", "--stride", "2", "--padding", "same")
    assert "height: (5 + 2*1 - 3) / 2 + 1 = 3" in out and "padded with zeros (7x7)" in out
    assert matrix_after(out, "feature map (3x3):").shape == (3, 3)
    assert "largest difference 0" in out
    # asymmetric padding: top 0, bottom 1, left 0, right 1
    out = ok("explain", "conv", "--input", "0 1 2; 3 4 5; 6 7 8", "--kernel", "0 1; 2 3", "--padding", "0,1,0,1")
    assert "(3 + 0 + 1 - 2) / 1 + 1 = 3" in out and "(8x0) + (0x1) + (0x2) + (0x3) = 0" in out
    padded = np.pad(np.arange(9.0).reshape(3, 3), ((0, 1), (0, 1)))
    kernel = np.array([[0.0, 1], [2, 3]])
    naive = [[sum(padded[r + i, c + j] * kernel[i, j] for i in range(2) for j in range(2)) for c in range(3)]
             for r in range(3)]
    np.testing.assert_array_equal(matrix_after(out, "feature map (3x3):"), naive)
    # a stride that does not divide evenly is flagged
    out = ok("explain", "conv", "--input", "1 2 3 4 5; 1 2 3 4 5; 1 2 3 4 5; 1 2 3 4 5; 1 2 3 4 5",
             "--kernel", "1 1; 1 1", "--stride", "2")
    assert "floor(3 / 2) + 1 = 2" in out and "warning:" in out and "never covered" in out


def test_conv_on_an_image_with_a_named_filter(digits_run, tmp_path):
    _, images = digits_run
    out = ok("explain", "conv", "--input", images[0], "--kernel", "sobel-x", "--positions", "0,0",
             "--output", tmp_path / "map.png")
    assert "kernel: classic filter sobel-x" in out and "grayscale pixel values 0-255" in out
    assert "input (8x8):" in out and "feature map (6x6):" in out and "largest difference 0" in out
    assert (tmp_path / "map.png").read_bytes().startswith(PNG)
    # a 32x32 image is shrunk to 16 pixels unless told otherwise; --crop picks a region
    out = ok("explain", "conv", "--input", images[2], "--kernel", "laplacian", "--positions", "0,0")
    assert "resized to 16x16" in out and "feature map (14x14):" in out
    out = ok("explain", "conv", "--input", images[2], "--kernel", "blur", "--size", "full", "--crop", "4,4,6,6",
             "--pixel-range", "1")
    assert "input (6x6):" in out and "feature map (4x4):" in out
    out = ok("explain", "conv", "--input", images[2], "--kernel", "gaussian", "--param", "size=3", "--size", "full")
    assert "input (32x32): too large to print" in out and "feature map (30x30): too large to print" in out


def test_conv_with_a_trained_layer_matches_the_model(digits_run):
    from cnnlab.explain.features import layer_outputs
    from cnnlab.explain.runs import model_input, open_run
    run_dir, images = digits_run
    run = open_run(run_dir)
    _, x = model_input(run.saved, images[1])
    outs = layer_outputs(run.model, x)
    for layer, channel in (("0", 5), ("3", 2)):  # first conv (on the image), second conv (on 32 maps)
        out = ok("explain", "conv", "--input", images[1], "--run", run_dir, "--layer", layer,
                 "--channel", channel, "--positions", "2,3")
        assert f"layer {layer} (Conv2d(" in out and "padding from layer" in out
        printed = matrix_after(out, "feature map (8x8):")
        expected = outs[int(layer)].output[0, channel]
        np.testing.assert_allclose(printed, expected, atol=6e-4, rtol=1e-3)
    out = ok("explain", "conv", "--input", images[1], "--run", run_dir, "--layer", "3", "--channel", "0",
             "--in-channel", "7", "--positions", "0,0")
    assert "only input channel 7 is traced" in out and "input channel 7 of 32" in out


def test_pool_activation_softmax_dense_sigmoid():
    out = ok("explain", "pool", "--input", "1 0 2 3; 4 6 6 8; 3 1 1 0; 1 2 2 4", "--mode", "max")
    assert "max(1, 0, 4, 6) = 6 at input (1, 1)" in out
    np.testing.assert_array_equal(matrix_after(out, "pooled map (2x2):"), [[6, 8], [3, 4]])
    assert "check: cnnlab.functional.max_pool2d computes the same map (largest difference 0)" in out
    out = ok("explain", "pool", "--input", "1 0; 4 6", "--mode", "avg")
    assert "(1 + 0 + 4 + 6) / 4 = 11 / 4 = 2.75" in out
    out = ok("explain", "pool", "--input", "1 0 2; 4 6 6; 3 1 1", "--mode", "min", "--padding", "1")
    assert "pad" in out and "largest difference 0" in out
    out = ok("explain", "activation", "--", "-39.5", "2")
    assert "relu(-39.5) = max(0, -39.5) = 0" in out and "relu(2) = max(0, 2) = 2" in out
    out = ok("explain", "activation", "--input=-2 0.5", "--function", "leaky-relu")
    assert "leaky_relu(-2) = (0.01x-2) = -0.02" in out
    out = ok("explain", "softmax", "2.5", "1.8", "0.2", "--labels", "cat,dog,elephant")
    for text in ("cat       e^2.5 = 12.1825", "sum: 12.1825 + 6.0496 + 1.2214 = 19.4535",
                 "= 12.1825 / 19.4535 = 0.6262", "= 6.0496 / 19.4535 = 0.311", "prediction: cat"):
        assert text in out
    out = ok("explain", "dense", "155", "60", "--weights", "0.27 0.2")
    assert "(155x0.27) + (60x0.2) = 53.85" in out and "relu(53.85) = max(0, 53.85) = 53.85" in out
    out = ok("explain", "sigmoid", "0", "--labels", "cat,dog")
    assert "sigmoid(0) = 1 / (1 + e^0) = 1 / (1 + 1) = 0.5" in out


def test_softmax_of_a_trained_models_scores(digits_run):
    run_dir, images = digits_run
    out = ok("explain", "softmax", "--run", run_dir, "--input", images[0])
    assert "scores: the output of layer 13 (Linear)" in out
    assert re.search(r"^  0\s+e\^", out, re.M) and "sum of probabilities: 1" in out


# ------------------------------------------------------------------ filter
def test_filter_gray_and_rgb(digits_run, tmp_path):
    from PIL import Image
    _, images = digits_run
    out = ok("filter", images[0], "--kernel", "sobel-x", "--output", tmp_path / "sx.png")
    assert "8x8 grayscale" in out and "-> 6x6" in out and "diverging scale" in out
    assert (tmp_path / "sx.png").read_bytes().startswith(PNG)
    out = ok("filter", images[2], "--kernel", "gaussian", "--padding", "same", "--raw", "--output", tmp_path / "g.png")
    assert "RGB, each channel filtered on its own" in out and "-> 32x32" in out and "clipped to [0, 1]" in out
    with Image.open(tmp_path / "g.png") as im:
        assert im.size == (32, 32) and im.mode == "RGB"
    out = ok("filter", images[2], "--kernel", "laplacian", "--scale", "abs", "--stride", "2", "--raw",
             "--output", tmp_path / "lap.png")
    assert "absolute-value scale" in out and "-> 15x15" in out
    out = ok("filter", images[2], "--kernel", "gabor", "--param", "size=7", "--param", "theta=0.785", cwd=tmp_path)
    assert (tmp_path / "rgb_gabor.png").is_file() and "per channel" in out


# ------------------------------------------------------------------ trained runs
def test_features_and_saliency(digits_run, tmp_path):
    run_dir, images = digits_run
    out = ok("explain", "features", run_dir, images[0], "--output-dir", tmp_path / "f", "--max-channels", "8")
    names = sorted(p.name for p in (tmp_path / "f").iterdir())
    assert names[0] == "00_input.png" and names[1] == "01_kernels_layer0.png"
    assert "02_layer0_conv2d.png" in names and "04_layer2_relu.png" in names and "08_layer6_maxpool2d.png" in names
    assert "13_layer11_flatten.png" in names and names[-1] == "16_probabilities.png"
    assert all((tmp_path / "f" / n).read_bytes().startswith(PNG) for n in names)
    assert "prediction for digit0.png:" in out
    out = ok("explain", "saliency", run_dir, images[1], "--class", "3", "--output", tmp_path / "s.png")
    assert "explained class: 3" in out and "Grad-CAM layer: 9 (ReLU())" in out
    assert (tmp_path / "s.png").read_bytes().startswith(PNG)
    ok("explain", "saliency", run_dir, images[1])  # default output inside the run
    assert (run_dir / "explain" / "saliency_digit1.png").is_file()


def test_curves_confusion_mistakes(digits_run, tmp_path):
    run_dir, _ = digits_run
    ok("explain", "curves", run_dir, "--output", tmp_path / "c.png")
    out = ok("explain", "confusion", run_dir, "--output", tmp_path / "cm.png")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert f"({metrics['test_correct']}/{metrics['test_size']})" in out  # same test images as training's test
    out = ok("explain", "mistakes", run_dir, "--count", "4", "--output", tmp_path / "m.png")
    assert re.search(r"\d+ of \d+ test images are misclassified; showing [0-4]", out)
    for name in ("c.png", "cm.png", "m.png"):
        assert (tmp_path / name).read_bytes().startswith(PNG)


@pytest.fixture(scope="module")
def digits_report(digits_run, tmp_path_factory):
    run_dir, _ = digits_run
    path = tmp_path_factory.mktemp("report") / "r.html"
    ok("report", run_dir, "--samples", "1", "--output", path)
    return path


def test_report_is_one_self_contained_html_file(digits_run, digits_report):
    run_dir, _ = digits_run
    page = digits_report.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    for section in ("Architecture and shape arithmetic", "(8 + 2*1 - 3) / 1 + 1 = 8", "Training", "Test results",
                    "Sample predictions", "most confidently wrong", "What the first layer learned",
                    "Inside the network", "Grad-CAM"):
        assert section in page
    assert page.count("data:image/png;base64,") >= 10
    assert "<script" not in page.lower() and "<link" not in page.lower() and "@import" not in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//|file:)""", page, re.I)
    ok("report", run_dir, "--samples", "0", "--limit", "20")
    assert (run_dir / "report.html").is_file()


def test_report_renders_in_headless_chromium(digits_report, tmp_path):
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import render_report
    finally:
        sys.path.pop(0)
    if render_report.find_chromium() is None:
        pytest.skip("no Chromium installed")
    png = render_report.render(digits_report, tmp_path / "r.png", 1200, 3000)
    from PIL import Image
    with Image.open(png) as im:
        assert im.size == (1200, 3000)
        gray = np.asarray(im.convert("L"), dtype=np.float64)
    assert gray.std() > 20  # text and pictures, not a blank or error page


# ------------------------------------------------------------------ errors
def test_errors_are_one_line_without_traceback(digits_run, tmp_path):
    run_dir, images = digits_run
    assert "unknown filter 'sobel'" in fails(2, "explain", "conv", "--input", "1 2; 3 4", "--kernel", "sobel")
    assert "--positions takes 'row,column' pairs" in fails(2, "explain", "conv", "--input", "1 2; 3 4",
                                                           "--kernel", "1", "--positions", "1")
    assert "row 2 has 1 value(s) but row 1 has 2" in fails(2, "explain", "conv", "--input", "1 2; 3",
                                                           "--kernel", "1")
    assert "give a kernel" in fails(2, "explain", "conv", "--input", "1 2; 3 4")
    assert "position (5, 5) is outside the 2x2 output" in fails(1, "explain", "conv", "--input", "0 1 2; 3 4 5; 6 7 8",
                                                                 "--kernel", "0 1; 2 3", "--positions", "5,5")
    assert "does not exist" in fails(1, "explain", "conv", "--input", tmp_path / "nope.png", "--kernel", "blur")
    assert "does not exist" in fails(1, "explain", "features", tmp_path / "norun", images[0])
    assert "layer 2 is ReLU, not a Conv2d" in fails(1, "explain", "conv", "--input", images[0], "--run", run_dir,
                                                     "--layer", "2")
    assert "--class 12 is out of range" in fails(2, "explain", "saliency", run_dir, images[0], "--class", "12")
    assert "unknown activation 'relux'" in fails(2, "explain", "activation", "1", "--function", "relux")
    assert "ending in .html" in fails(1, "report", run_dir, "--samples", "0", "--output", tmp_path / "r.txt")
    r = cli("--debug", "explain", "conv", "--input", "1 2; 3 4", "--kernel", "sobel")
    assert r.returncode != 0 and "Traceback" in r.stderr


# ------------------------------------------------------------------ MNIST
def _mnist_dir():
    for base in (os.environ.get("CNNLAB_DATA_DIR"), str(ROOT.parent / "shared" / "data")):
        if base and (Path(base) / "mnist" / "t10k-images-idx3-ubyte.gz").is_file():
            return Path(base) / "mnist"
    return None


def test_commands_on_an_mnist_lenet5(tmp_path):
    data_dir = _mnist_dir()
    if data_dir is None:
        pytest.skip("MNIST files not found (set CNNLAB_DATA_DIR)")
    from cnnlab.data import load_mnist
    from cnnlab.explain.images import save_png
    from cnnlab.io import save_model, write_json
    from cnnlab.models import lenet5
    from cnnlab.random import manual_seed
    manual_seed(0)
    run = tmp_path / "mnist-run"
    save_model(lenet5(), run, (1, 28, 28), mean=[0.1307], std=[0.3081], name="lenet5")
    write_json(run / "config.json", {"dataset": "mnist", "data_dir": str(data_dir), "val_fraction": 0.1, "seed": 0})
    test = load_mnist(data_dir, "mnist", "test", download=False)
    image = save_png(test.images[0], tmp_path / "seven.png")
    out = ok("explain", "conv", "--input", image, "--run", run, "--channel", "2", "--crop", "10,10,6,6")
    assert "input (6x6):" in out and "padding from layer 0" in out
    out = ok("explain", "saliency", run, image, "--output", tmp_path / "s.png")
    assert "Grad-CAM layer: 4 (ReLU()), maps 10x10" in out
    out = ok("explain", "confusion", run, "--limit", "50", "--output", tmp_path / "cm.png")
    assert "/50)" in out
    ok("report", run, "--limit", "40", "--samples", "0", "--output", tmp_path / "r.html")
    page = (tmp_path / "r.html").read_text()
    assert "(28 + 2*2 - 5) / 1 + 1 = 28" in page and "No history.csv" in page and "test images<b>40</b>" in page
