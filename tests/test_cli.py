"""The real ``cnnlab`` entry point (``python -m cnnlab``) end to end, on tiny data."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SRC = str(Path(__file__).resolve().parents[1] / "src")


def cnnlab(*args, cwd=None):
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    return subprocess.run([sys.executable, "-m", "cnnlab", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=300)


def assert_one_line_error(result, code, pattern):
    import re
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    if code == 2 and lines and lines[0].startswith("usage:"):  # argparse prints the usage first
        lines = [line for line in lines if "error:" in line]
    assert len(lines) == 1, result.stderr
    assert re.search(pattern, lines[0]), lines[0]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    pytest.importorskip("sklearn")
    out = tmp_path_factory.mktemp("runs") / "digits-run"
    result = cnnlab("train", "--epochs", 1, "--limit", 150, "--out", out, "--quiet", "--json")
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    assert metrics["epochs"] == 1 and metrics["model"] == "digitsnet"
    return out


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """A tiny image folder: 8x8 gray PNGs of horizontal vs vertical bars, plus a broken file."""
    Image = pytest.importorskip("PIL.Image")
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for name, axis in (("horizontal", 0), ("vertical", 1)):
        (root / "data" / name).mkdir(parents=True)
        for i in range(10):
            pixels = (rng.random((8, 8)) * 40).astype(np.uint8)
            if axis == 0:
                pixels[i % 8, :] = 255
            else:
                pixels[:, i % 8] = 255
            Image.fromarray(pixels).save(root / "data" / name / f"{i}.png")
    (root / "broken.png").write_text("this is not a PNG")
    return root


def test_version_and_help():
    result = cnnlab("--version")
    assert result.returncode == 0 and result.stdout.strip() == "cnnlab 0.1.0"
    for command in ("train", "evaluate", "predict", "summary"):
        result = cnnlab(command, "--help")
        assert result.returncode == 0 and f"usage: cnnlab {command}" in result.stdout
    assert "--data-dir" in cnnlab("train", "--help").stdout
    result = cnnlab()
    assert result.returncode == 2 and "usage: cnnlab" in result.stderr


def test_train_writes_a_run_directory(run_dir):
    names = {p.name for p in run_dir.iterdir()}
    assert names >= {"model.npz", "model.json", "history.csv", "metrics.json", "checkpoint.npz", "config.json"}
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert 0 <= metrics["test_accuracy"] <= 1 and metrics["dataset"] == "digits"
    assert (run_dir / "history.csv").read_text().splitlines()[0] == \
        "epoch,train_loss,train_accuracy,val_loss,val_accuracy,lr,seconds"


def test_train_progress_is_a_line_per_epoch_when_not_a_terminal(tmp_path):
    pytest.importorskip("sklearn")
    result = cnnlab("train", "--epochs", 2, "--limit", 60, "--out", tmp_path / "r")
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert lines[0].startswith("digits: ") and lines[1].startswith("epoch 1/2: loss ")
    assert lines[2].startswith("epoch 2/2: loss ") and "img/s" in lines[2]
    assert result.stdout.startswith("test accuracy ")


def test_evaluate(run_dir):
    result = cnnlab("evaluate", run_dir)
    assert result.returncode == 0, result.stderr
    assert "accuracy" in result.stdout and "confusion matrix" in result.stdout and "precision" in result.stdout
    report = json.loads(cnnlab("evaluate", run_dir, "--json").stdout)
    assert report["total"] == 150 and 0 <= report["accuracy"] <= 1
    matrix = np.array(report["confusion_matrix"])
    assert matrix.shape == (10, 10) and matrix.sum() == 150 and np.trace(matrix) == report["correct"]
    assert len(report["per_class"]) == 10 and {"precision", "recall", "f1", "support"} <= set(report["per_class"][0])
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert report["accuracy"] == pytest.approx(metrics["test_accuracy"])


def test_predict(run_dir, images):
    image = images / "data" / "vertical" / "3.png"
    result = cnnlab("predict", run_dir, image, "--top-k", 2)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{image}: ") and result.stdout.count("%") == 2
    out = json.loads(cnnlab("predict", run_dir, image, image, "--json", "--top-k", 3).stdout)
    assert len(out) == 2 and len(out[0]["predictions"]) == 3
    probs = [p["probability"] for p in out[0]["predictions"]]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0 + 1e-6
    assert out[0] == out[1]


def test_summary_shows_the_arithmetic(run_dir, tmp_path):
    result = cnnlab("summary", "lenet5")
    assert result.returncode == 0
    assert "(28 + 2*2 - 5) / 1 + 1 = 28" in result.stdout and "61,706" in result.stdout
    assert "(14 + 2*0 - 5) / 1 + 1 = 10" in result.stdout and "16*5*5 = 400" in result.stdout
    assert "Conv2d 1->32" in cnnlab("summary", run_dir).stdout
    odd = cnnlab("summary", "tinyvgg", "--input-shape", "3,63,63")
    assert "floor((59 + 2*0 - 2) / 2) + 1 = 29" in odd.stdout and "warning: layer 4" in odd.stdout
    spec = tmp_path / "net.json"
    spec.write_text(json.dumps({"layers": [{"type": "Conv2d", "out_channels": 4, "kernel_size": 3, "stride": 2},
                                           {"type": "Flatten"}, {"type": "Linear", "out_features": 2}]}))
    data = json.loads(cnnlab("summary", spec, "--input-shape", "1x9x9", "--json").stdout)
    assert data["layers"][0]["arithmetic"] == ["(9 + 2*0 - 3) / 2 + 1 = 4"]
    assert data["total_parameters"] == 4 * 9 + 4 + 64 * 2 + 2
    assert_one_line_error(cnnlab("summary", spec), 2, r"net\.json has no input_shape: give --input-shape")


def test_train_on_an_image_folder_then_predict(images, tmp_path):
    out = tmp_path / "folder-run"
    result = cnnlab("train", "--dataset", images / "data", "--epochs", 2, "--out", out, "--quiet")
    assert result.returncode == 0, result.stderr
    info = json.loads((out / "model.json").read_text())
    assert info["classes"] == ["horizontal", "vertical"] and info["preprocessing"]["input_shape"] == [1, 8, 8]
    result = cnnlab("predict", out, images / "data" / "horizontal" / "0.png", "--json")
    assert result.returncode == 0 and json.loads(result.stdout)[0]["predictions"][0]["class"] in info["classes"]


def test_train_with_a_yaml_model_file(images, tmp_path):
    pytest.importorskip("yaml")
    spec = tmp_path / "tiny.yaml"
    spec.write_text("name: tiny\nlayers:\n  - {type: Conv2d, out_channels: 4, kernel_size: 3, padding: 1}\n"
                    "  - {type: ReLU}\n  - {type: MaxPool2d, kernel_size: 2}\n  - {type: Flatten}\n"
                    "  - {type: Linear, out_features: 2}\n")
    out = tmp_path / "run"
    result = cnnlab("train", "--dataset", images / "data", "--model", spec, "--epochs", 1, "--out", out, "--quiet")
    assert result.returncode == 0, result.stderr
    info = json.loads((out / "model.json").read_text())
    assert info["name"] == "tiny" and info["architecture"]["layers"][0]["in_channels"] == 1
    assert json.loads((out / "metrics.json").read_text())["model"] == "tiny"
    bad = tmp_path / "bad.yaml"
    bad.write_text("layers:\n  - {type: Conv2d, out_channels: 4, kernel: 3}\n")
    assert_one_line_error(cnnlab("train", "--dataset", images / "data", "--model", bad), 1,
                          r"^cnnlab: error: .*bad\.yaml: layer 0 \(Conv2d\): unknown argument 'kernel'")


def test_resume_from_the_command_line_matches_a_straight_run(tmp_path):
    pytest.importorskip("sklearn")
    common = ["--limit", 80, "--schedule", "constant", "--quiet"]
    assert cnnlab("train", "--epochs", 2, "--out", tmp_path / "a", *common).returncode == 0
    assert cnnlab("train", "--epochs", 1, "--out", tmp_path / "b", *common).returncode == 0
    result = cnnlab("train", "--resume", tmp_path / "b", "--epochs", 2, "--quiet")
    assert result.returncode == 0, result.stderr
    with np.load(tmp_path / "a" / "model.npz", allow_pickle=False) as a, \
            np.load(tmp_path / "b" / "model.npz", allow_pickle=False) as b:
        assert a.files == b.files
        for key in a.files:
            np.testing.assert_array_equal(a[key], b[key])
    assert_one_line_error(cnnlab("train", "--resume", tmp_path / "b", "--lr", "0.1"), 2,
                          r"cnnlab train: error: --lr cannot change when resuming")


@pytest.mark.parametrize("args, code, pattern", [
    (("predict", "{run}", "{images}/missing.png"), 1, r"^cnnlab: error: image .*missing\.png does not exist$"),
    (("predict", "{run}", "{images}/broken.png"), 1, r"^cnnlab: error: cannot read image .*broken\.png"),
    (("evaluate", "{images}"), 1, r"^cnnlab: error: .* is not a cnnlab run or model folder: it has no model.json"),
    (("evaluate", "{images}/nowhere"), 1, r"^cnnlab: error: model .*nowhere does not exist"),
    (("train", "--model", "resnet999"), 1, r"^cnnlab: error: unknown model 'resnet999'"),
    (("train", "--model", "lenet5", "--limit", "30"), 1,
     r"^cnnlab: error: model lenet5 does not fit 1x8x8 images: .*--model digitsnet"),
    (("train", "--dataset", "{images}/nowhere"), 1, r"^cnnlab: error: unknown data set"),
    (("train", "--resume", "{images}"), 1, r"^cnnlab: error: cannot resume: .* is not a cnnlab run directory"),
    (("summary", "nosuchmodel"), 1, r"^cnnlab: error: unknown model 'nosuchmodel'"),
    (("evaluate", "{run}", "--dataset", "{images}/data"), 1,
     r"^cnnlab: error: the class names differ.*: the model in .* has 10 classes \(0, 1, .*\), "
     r".*data has 2 \(horizontal, vertical\)"),
    (("summary", "lenet5", "--input-shape", "1,8,8"), 1, r"^cnnlab: error: model lenet5 does not fit 1x8x8"),
    (("summary", "lenet5", "--input-shape", "1,2"), 2, r"argument --input-shape: expected three positive sizes"),
    (("train", "--epochs", "0"), 2, r"argument --epochs: expected a positive integer, got '0'"),
    (("explode",), 2, r"invalid choice: 'explode'"),
])
def test_errors_are_one_line_without_traceback(run_dir, images, args, code, pattern):
    args = [a.format(run=run_dir, images=images) for a in args]
    assert_one_line_error(cnnlab(*args), code, pattern)


def test_debug_shows_the_traceback(run_dir, images):
    result = cnnlab("--debug", "predict", run_dir, images / "missing.png")
    assert result.returncode == 1 and "Traceback" in result.stderr and "FileNotFoundError" in result.stderr
    result = cnnlab("predict", run_dir, images / "missing.png", "--debug")
    assert result.returncode == 1 and "Traceback" in result.stderr
