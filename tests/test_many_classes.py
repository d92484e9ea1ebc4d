"""Models with a thousand classes: bounded pictures, a small report, one data/model check.

The model is generated here (random weights, 1x8x8 input, 1,000 classes); its test folder holds
two tiny images of each class.
"""
from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib")
Image = pytest.importorskip("PIL.Image")

ROOT = Path(__file__).resolve().parents[1]
K = 1000
REPORT_BYTES = 1_500_000      # the page, pictures included
REPORT_SECONDS = 120.0        # wall time on a small folder, a shared 2-core machine included
MAX_PICTURE_PIXELS = 1200     # no side of a features picture grows with the number of classes


def cli(*args):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "cnnlab", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=600)


def png_size(data: bytes):
    with Image.open(io.BytesIO(data)) as im:
        return im.size


def _names(k: int):
    return [f"class{j:04d}" for j in range(k)]


@pytest.fixture(scope="module")
def wide_model(tmp_path_factory):
    """A 1,000-class model with a 96-channel convolution (wider than 64), random weights."""
    from cnnlab import nn
    from cnnlab.io import save_model
    from cnnlab.random import manual_seed
    manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 96, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(96 * 4 * 4, K))
    folder = tmp_path_factory.mktemp("thousand") / "model"
    save_model(model, folder, (1, 8, 8), classes=_names(K), mean=(0.5,), std=(0.25,), name="thousand")
    return folder


def _folder(root: Path, classes, per_class: int = 2) -> Path:
    rng = np.random.default_rng(0)
    for name in classes:
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray((rng.random((8, 8)) * 255).astype(np.uint8)).save(root / name / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def thousand_folder(tmp_path_factory):
    return _folder(tmp_path_factory.mktemp("data") / "thousand", _names(K))


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    path = tmp_path_factory.mktemp("img") / "x.png"
    Image.fromarray((np.random.default_rng(1).random((8, 8)) * 255).astype(np.uint8)).save(path)
    return path


def test_probability_picture_shows_the_top_k_and_the_rest_in_one_bar():
    from cnnlab.explain.plots import figure_png, probability_figure
    p = np.random.default_rng(0).random(K)
    p /= p.sum()
    small = png_size(figure_png(probability_figure(p[:10] / p[:10].sum(), _names(10))))
    fig = probability_figure(p, _names(K), true_class=int(np.argmin(p)))
    assert png_size(figure_png(fig)) == (small[0], small[1] + 2 * 30 + 20)  # 10 bars + the true class + the rest
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    top = np.argsort(-p)[:10]
    assert labels[:10] == [f"class{j:04d}" for j in top]
    assert labels[10] == f"class{int(np.argmin(p)):04d} (true)" and labels[11] == "the other 989 classes"
    widths = [b.get_width() for b in ax.patches]
    np.testing.assert_allclose(widths[:10], p[top])
    np.testing.assert_allclose(widths[11], 1 - p[top].sum() - p.min())
    # up to k classes: every class, in class order, as before
    few = probability_figure([0.1, 0.7, 0.2], ["cat", "dog", "elephant"])
    assert [t.get_text() for t in few.axes[0].get_yticklabels()] == ["cat", "dog", "elephant"]
    with pytest.raises(ValueError, match="top_k must be a positive"):
        probability_figure(p, _names(K), top_k=0)


def test_features_on_a_wide_thousand_class_model(wide_model, image, tmp_path):
    out = tmp_path / "f"
    result = cli("explain", "features", wide_model, image, "--output-dir", out)
    assert result.returncode == 0, result.stderr
    first = result.stdout.splitlines()[0]
    names = sorted(p.name for p in out.iterdir())
    assert first.startswith(f"writing {len(names)} pictures to {out}")
    assert "up to 16 channels each" in first  # a 96-channel layer: 16 maps per picture by default
    assert names[-1] == "07_probabilities.png" and "02_layer0_conv2d.png" in names
    for name in names:
        w, h = png_size((out / name).read_bytes())
        assert w <= MAX_PICTURE_PIXELS and h <= MAX_PICTURE_PIXELS, (name, w, h)
    result = cli("explain", "features", wide_model, image, "--output-dir", tmp_path / "g", "--top-k", "3",
                 "--max-channels", "4")
    assert result.returncode == 0, result.stderr
    assert "up to 4 channels each" in result.stdout
    small = png_size((tmp_path / "g" / "07_probabilities.png").read_bytes())
    assert small[1] < png_size((out / "07_probabilities.png").read_bytes())[1]


def test_feature_file_names_do_not_glue_layer_to_a_name(tmp_path, image):
    from cnnlab import nn
    from cnnlab.io import save_model

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 2, 3, padding=1)
            self.layer1 = nn.Sequential(nn.Conv2d(2, 2, 3, padding=1), nn.ReLU())
            self.fc = nn.Linear(2 * 8 * 8, 3)

        def forward(self, x):
            return self.fc(self.layer1(self.conv1(x)).flatten(1))

    save_model(Net(), tmp_path / "m", (1, 8, 8))
    result = cli("explain", "features", tmp_path / "m", image, "--output-dir", tmp_path / "f")
    assert result.returncode == 0, result.stderr
    names = sorted(p.name for p in (tmp_path / "f").iterdir())
    assert "01_kernels_conv1.png" in names and "02_conv1_conv2d.png" in names
    assert "03_layer1-0_conv2d.png" in names and "04_layer1-1_relu.png" in names
    assert not any("layerconv" in n or "layerlayer" in n for n in names), names


def test_report_on_a_thousand_class_model_stays_small(wide_model, thousand_folder, tmp_path):
    start = time.perf_counter()
    result = cli("report", wide_model, "--dataset", thousand_folder, "--output", tmp_path / "r.html",
                 "--samples", "2", "--limit", "40")
    seconds = time.perf_counter() - start
    assert result.returncode == 0, result.stderr
    page = (tmp_path / "r.html").read_text()
    assert len(page.encode()) < REPORT_BYTES, len(page.encode())
    assert seconds < REPORT_SECONDS, seconds
    assert "confusion matrix" not in page and "The most frequent confusions" in page
    assert "of the model&#x27;s 1,000 classes" in page or "of the model's 1,000 classes" in page
    import re
    present = int(re.search(r"The test data holds images of ([\d,]+) of", page).group(1).replace(",", ""))
    assert 0 < present <= 40
    table = page[page.index("classes present in the test data</summary>"):]
    assert table[:table.index("</table>")].count("<tr>") == present + 1  # header + one row per present class
    for b64 in re.findall(r'src="data:image/png;base64,([^"]+)"', page):
        import base64
        w, h = png_size(base64.b64decode(b64))
        assert h <= 2000, (w, h)


def test_report_and_evaluate_refuse_the_same_mismatched_folder(wide_model, tmp_path):
    other = _folder(tmp_path / "three", ["cat", "dog", "fox"])
    messages = []
    for command in (("evaluate", wide_model, "--dataset", other),
                    ("report", wide_model, "--dataset", other, "--output", tmp_path / "r.html")):
        result = cli(*command)
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        messages.append(result.stderr.strip().splitlines()[-1])
    assert messages[0] == messages[1]
    assert "the class names differ, so the scores would be compared with the wrong labels" in messages[0]
    assert "has 1000 classes (class0000, class0001" in messages[0] and "has 3 (cat, dog, fox)" in messages[0]
    assert not (tmp_path / "r.html").exists()


def test_report_and_evaluate_refuse_other_image_sizes_alike(tmp_path):
    from cnnlab import nn
    from cnnlab.io import save_model
    save_model(nn.Sequential(nn.Flatten(), nn.Linear(64, 2)), tmp_path / "m", (1, 8, 8), classes=["a", "b"])
    root = tmp_path / "big"
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
        for i in range(3):
            Image.fromarray((rng.random((12, 12)) * 255).astype(np.uint8)).save(root / name / f"{i}.png")
    messages = []
    for command in (("evaluate", tmp_path / "m", "--dataset", root),
                    ("report", tmp_path / "m", "--dataset", root, "--output", tmp_path / "r.html")):
        result = cli(*command)
        messages.append(result.stderr.strip().splitlines()[-1] if result.returncode else result.stdout)
    assert messages[0] == messages[1], messages
