"""Figures, image files and run-directory helpers of cnnlab.explain: every picture is produced,
is a real PNG, and the numbers behind it (filter responses, confusion counts, history) are right."""
from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("PIL")

from cnnlab.explain import images, plots, runs

PNG = b"\x89PNG\r\n\x1a\n"
SRC = str(Path(__file__).resolve().parents[1] / "src")


def _png_size(data: bytes):
    from PIL import Image
    import io
    with Image.open(io.BytesIO(data)) as im:
        return im.size


def test_import_cnnlab_and_explain_load_numpy_only():
    code = ("import sys, cnnlab, cnnlab.explain, cnnlab.explain.features, cnnlab.explain.saliency, "
            "cnnlab.explain.plots, cnnlab.explain.report, cnnlab.explain.images, cnnlab.explain.runs; "
            "bad = [m for m in ('matplotlib', 'PIL', 'sklearn', 'torch') if m in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": SRC}, check=True)
    assert out.stdout.strip() == "[]"


def test_value_scale():
    assert plots.value_scale([-1.0, 3.0]) == (plots.DIVERGING, -3.0, 3.0)
    assert plots.value_scale([0.0, 2.0]) == (plots.SEQUENTIAL, 0.0, 2.0)
    assert plots.value_scale([0.0, 0.0]) == (plots.SEQUENTIAL, 0.0, 1.0)
    assert plots.value_scale([1.0, 2.0], signed=True) == (plots.DIVERGING, -2.0, 2.0)


@pytest.mark.parametrize("maker", [
    lambda: plots.feature_map_figure(np.random.default_rng(0).standard_normal((6, 9, 7)), "layer 0: Conv2d"),
    lambda: plots.feature_map_figure(np.random.default_rng(0).random((70, 2, 2)), "layer 5", max_channels=64),
    lambda: plots.kernel_figure(np.random.default_rng(0).standard_normal((6, 1, 5, 5)), "layer 0"),
    lambda: plots.kernel_figure(np.random.default_rng(0).standard_normal((8, 3, 3, 3)), "layer 0"),
    lambda: plots.kernel_figure(np.random.default_rng(0).standard_normal((4, 16, 3, 3)), "layer 3"),
    lambda: plots.vector_figure(np.arange(-5, 20.0), "flatten"),
    lambda: plots.probability_figure([0.1, 0.7, 0.2], ["cat", "dog", "elephant"], true_class=0),
    lambda: plots.conv_figure(np.arange(9.0).reshape(3, 3), [[0, 1], [2, 3]], [[19, 25], [37, 43]], "conv"),
    lambda: plots.pool_figure(np.arange(16.0).reshape(4, 4), [[5, 7], [13, 15]], "pool"),
    lambda: plots.history_figure({"epoch": [1, 2], "train_loss": [1.0, 0.5], "val_loss": [None, 0.6],
                                  "train_accuracy": [0.5, 0.8], "val_accuracy": [None, 0.7]}),
    lambda: plots.confusion_figure(np.array([[5, 1], [0, 4]]), ["a", "b"]),
    lambda: plots.mistakes_figure(np.random.default_rng(0).random((3, 1, 8, 8)), [0, 1, 2],
                                  np.eye(3)[[1, 2, 0]] * 0.9 + 0.1 / 3, ["x", "y", "z"]),
    lambda: plots.mistakes_figure(np.zeros((0, 1, 8, 8)), [], np.zeros((0, 3)), ["x", "y", "z"]),
    lambda: plots.predictions_figure(np.random.default_rng(0).random((2, 3, 8, 8)), [0, 1],
                                     np.array([[0.9, 0.1], [0.8, 0.2]]), ["a", "b"]),
    lambda: plots.saliency_figure(np.random.default_rng(0).random((3, 8, 8)), np.random.default_rng(1).random((8, 8)),
                                  np.random.default_rng(2).random((8, 8)), "why", np.ones((2, 2)), "4"),
    lambda: plots.network_figure(np.random.default_rng(0).random((1, 8, 8)),
                                 [("layer 1: ReLU", np.random.default_rng(1).random((12, 8, 8))),
                                  ("layer 2: MaxPool2d", np.random.default_rng(2).random((12, 4, 4)))], "path"),
])
def test_every_figure_renders_to_png(maker):
    data = plots.figure_png(maker())
    assert data.startswith(PNG)
    w, h = _png_size(data)
    assert 200 <= w <= 2200 and 100 <= h <= 3000


def test_save_figure_is_atomic_with_normal_permissions(tmp_path):
    fig = plots.vector_figure(np.arange(5.0), "v")
    path = plots.save_figure(fig, tmp_path / "sub" / "v.png")
    assert path.read_bytes().startswith(PNG)
    assert stat.S_IMODE(path.stat().st_mode) & 0o044  # readable by others, not mkstemp's 0600
    assert [p.name for p in path.parent.iterdir()] == ["v.png"]  # no temporary file left
    assert plots.save_figure(fig, tmp_path / "v.svg").read_text().lstrip().startswith("<?xml")
    with pytest.raises(ValueError, match=r"use a \.png, \.svg, \.pdf or \.jpg file name"):
        plots.save_figure(fig, tmp_path / "v.txt")


def test_filter_scales():
    r = np.array([[[-2.0, 0.0], [1.0, 2.0]]])
    px, text = plots.filter_image(r, "abs")
    np.testing.assert_array_equal(px, [[255, 0], [128, 255]])
    assert "absolute-value" in text
    px, text = plots.filter_image(r, "diverging")
    assert px.shape == (2, 2, 3) and "blue = -2" in text and "red = +2" in text
    assert px[0, 1].min() > 240  # 0 -> (nearly) white
    assert px[0, 0, 2] > px[0, 0, 0] and px[1, 1, 0] > px[1, 1, 2]  # -2 blue, +2 red
    px, text = plots.filter_image(np.full((3, 2, 2), 1.5), "image")
    assert px.shape == (2, 2, 3) and (px == 255).all() and "clipped" in text
    assert plots._resolve_scale("auto", np.full((3, 3), 1 / 9)) == "image"
    assert plots._resolve_scale("auto", [[-1, 0, 1]]) == "diverging"
    fig, used, sentence = plots.filter_figure(np.random.default_rng(0).random((3, 10, 10)),
                                              np.array([[-1.0, 0, 1]] * 3), np.ones((3, 8, 8)) - 0.5, "sobel-x")
    assert used == "diverging" and "per channel" in sentence
    assert plots.figure_png(fig).startswith(PNG)


# ------------------------------------------------------------------ image files
def test_image_round_trip_crop_and_sizes(tmp_path):
    rgb = np.random.default_rng(0).random((3, 12, 20)).astype(np.float32)
    path = images.save_png(rgb, tmp_path / "rgb.png")
    assert images.image_channels(path) == ((12, 20), 3)
    back = images.load_image(path)
    assert back.shape == (3, 12, 20)
    np.testing.assert_allclose(back, np.round(rgb * 255) / 255, atol=1e-6)
    gray = images.load_image(path, channels=1, size=(6, 10))
    assert gray.shape == (1, 6, 10)
    assert images.fit_size((12, 20), 8) == (5, 8)
    assert images.parse_size("8") == (8, 8) and images.parse_size("8x12") == (8, 12)
    assert images.parse_crop("1,2,3,4") == (1, 2, 3, 4)
    np.testing.assert_array_equal(images.crop(back, (1, 2, 3, 4)), back[:, 1:4, 2:6])
    with pytest.raises(ValueError, match=r"does not fit inside the 12x20 image"):
        images.crop(back, (10, 0, 5, 5))
    with pytest.raises(ValueError, match=r"crop must be 'top,left,height,width'"):
        images.parse_crop("1,2")
    with pytest.raises(ValueError, match=r"size must be a positive int N or HxW"):
        images.parse_size("0")
    with pytest.raises(FileNotFoundError, match=r"image file .*nope.png does not exist"):
        images.load_image(tmp_path / "nope.png")
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match=r"cannot read image .*bad.png"):
        images.image_channels(tmp_path / "bad.png")
    assert images.png_bytes(np.zeros((1, 2, 2)), scale=3).startswith(PNG)
    assert _png_size(images.png_bytes(np.zeros((1, 2, 2)), scale=3)) == (6, 6)


# ------------------------------------------------------------------ runs
def test_read_history_and_confusion(tmp_path):
    (tmp_path / "history.csv").write_text("epoch,train_loss,val_loss\n1,0.5,\n2,0.25,0.3\n")
    h = runs.read_history(tmp_path / "history.csv")
    assert h == {"epoch": [1, 2], "train_loss": [0.5, 0.25], "val_loss": [None, 0.3]}
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match=r"including 'epoch'"):
        runs.read_history(tmp_path / "bad.csv")
    (tmp_path / "bad2.csv").write_text("epoch,loss\n1,abc\n")
    with pytest.raises(ValueError, match=r"line 2, column 'loss': 'abc' is not a number"):
        runs.read_history(tmp_path / "bad2.csv")
    cm = runs.confusion_matrix([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 0, 2], 3)
    ref = np.zeros((3, 3), int)
    for t, p in zip([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 0, 2]):  # plain loop
        ref[t, p] += 1
    np.testing.assert_array_equal(cm, ref)


def test_open_run_and_test_data_of_a_saved_model(tmp_path):
    pytest.importorskip("sklearn")
    from cnnlab.io import save_model
    from cnnlab.models import digitsnet
    from cnnlab.random import manual_seed
    manual_seed(0)
    save_model(digitsnet(), tmp_path, (1, 8, 8), name="digitsnet")
    run = runs.open_run(tmp_path)
    assert run.history is None and run.metrics is None and run.classes == [str(i) for i in range(10)]
    with pytest.raises(ValueError, match=r"does not say which data set it was trained on"):
        runs.load_test_data(run)
    data = runs.load_test_data(run, dataset="digits", limit=30)
    assert data.images.shape == (30, 1, 8, 8)
    ev = runs.evaluate_test(run, data)
    assert ev.confusion.sum() == 30 and ev.probabilities.shape == (30, 10)
    assert ev.accuracy == pytest.approx(float((ev.predictions == data.labels).mean()))
    wrong = ev.most_confident_mistakes(5)
    conf = ev.probabilities[wrong, ev.predictions[wrong]]
    assert (np.diff(conf) <= 0).all() and (ev.predictions[wrong] != data.labels[wrong]).all()
    raw, x = runs.model_input(run.saved, images.save_png(data.images[0], tmp_path / "d.png"))
    assert raw.shape == (1, 8, 8) and x.shape == (1, 1, 8, 8)
    np.testing.assert_allclose(x, run.saved.preprocess(raw[None]))
    with pytest.raises(FileNotFoundError, match=r"run directory .*missing does not exist"):
        runs.open_run(tmp_path / "missing")
