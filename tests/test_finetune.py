"""Fine-tuning an ONNX model from PyTorch on an image folder: new head, frozen features, run, export."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")
Image = pytest.importorskip("PIL.Image")

import cnnlab.onnx as cnnonnx  # noqa: E402
from cnnlab import Tensor, nn, no_grad  # noqa: E402
from cnnlab.finetune import find_head, freeze, replace_head  # noqa: E402

tnn = torch.nn


class Block(tnn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1, self.bn1 = tnn.Conv2d(c, c, 3, padding=1, bias=False), tnn.BatchNorm2d(c)
        self.conv2, self.bn2 = tnn.Conv2d(c, c, 3, padding=1, bias=False), tnn.BatchNorm2d(c)

    def forward(self, x):
        return torch.relu(x + self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))))


class TinyResNet(tnn.Module):
    """torchvision's ResNet layout, small: stem, a residual block, global pooling, fc for 10 classes."""

    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = tnn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False), tnn.BatchNorm2d(8)
        self.layer1 = Block(8)
        self.avgpool = tnn.AdaptiveAvgPool2d(1)
        self.fc = tnn.Linear(8, 10)

    def forward(self, x):
        x = self.layer1(torch.relu(self.bn1(self.conv1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class SqueezeHead(tnn.Module):
    """SqueezeNet's classifier: a 1x1 convolution, ReLU, global pooling."""

    def __init__(self):
        super().__init__()
        self.features = tnn.Sequential(tnn.Conv2d(3, 8, 3, stride=2), tnn.ReLU())
        self.classifier = tnn.Sequential(tnn.Dropout(0.5), tnn.Conv2d(8, 10, 1), tnn.ReLU(), tnn.AdaptiveAvgPool2d(1))

    def forward(self, x):
        return torch.flatten(self.classifier(self.features(x)), 1)


class NoHead(tnn.Module):
    def forward(self, x):
        return torch.flatten(torch.nn.functional.adaptive_avg_pool2d(x, 1), 1)


def _export(model, path, shape=(3, 16, 16)):
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), (torch.randn(2, *shape),), str(path), dynamo=False, opset_version=17,
                          input_names=["x"], dynamic_axes={"x": {0: "N"}})
    return path


@pytest.fixture(scope="module")
def resnet_onnx(tmp_path_factory):
    torch.manual_seed(0)
    return _export(TinyResNet(), tmp_path_factory.mktemp("model") / "resnet.onnx")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """3 classes of 20x20 RGB images (red, green, blue tints), 8 each: resized to the model's 16x16."""
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for k, name in enumerate(("red", "green", "blue")):
        (root / name).mkdir()
        for i in range(8):
            pixels = (rng.random((20, 20, 3)) * 90).astype(np.uint8)
            pixels[..., k] += 150
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


def test_find_and_replace_the_head(resnet_onnx, tmp_path):
    model = cnnonnx.load(resnet_onnx, trainable=True)
    assert model.training
    head = find_head(model)
    assert head.name == "fc" and isinstance(head.module, nn.Linear)
    new = replace_head(model, 3, (3, 16, 16))
    assert model.output_shape((1, 3, 16, 16)) == (1, 3) and new.out_features == 3
    assert "fc.weight" in model.state_dict() and model.state_dict()["fc.weight"].shape == (3, 8)
    trainable = freeze(model, keep=[new])
    assert trainable == 3 * 8 + 3
    assert [p.requires_grad for p in model.parameters()].count(True) == 2

    # a 1x1-convolution classifier behind ReLU and pooling (SqueezeNet)
    squeeze = cnnonnx.load(_export(SqueezeHead(), tmp_path / "s.onnx"))
    assert isinstance(find_head(squeeze).module, nn.Conv2d)
    replace_head(squeeze, 4, (3, 16, 16))
    assert squeeze.output_shape((1, 3, 16, 16)) == (1, 4)

    with pytest.raises(ValueError, match="no classifier head to replace.*dense layer .*1x1 convolution"):
        find_head(cnnonnx.load(_export(NoHead(), tmp_path / "n.onnx")))


def test_frozen_features_do_not_move(resnet_onnx):
    """One training step with the features frozen changes the head only."""
    import cnnlab
    model = cnnonnx.load(resnet_onnx, trainable=True)
    head = replace_head(model, 3)
    freeze(model, keep=[head])
    before = {k: v.copy() for k, v in model.state_dict().items()}
    opt = cnnlab.optim.SGD(model.parameters(), lr=0.1)
    x = Tensor(np.random.default_rng(0).standard_normal((4, 3, 16, 16)).astype(np.float32))
    loss = cnnlab.functional.cross_entropy(model(x), Tensor(np.array([0, 1, 2, 0])))
    loss.backward()
    opt.step()
    after = model.state_dict()
    changed = {k for k in before if not np.array_equal(before[k], after[k])}
    assert {"fc.weight", "fc.bias"} <= changed
    weights = {k for k in changed if k.endswith(("weight", "bias")) and not k.startswith("fc.")}
    assert not weights, weights  # running statistics of batch norms may move (as in PyTorch)


def _cli(*args, cwd):
    import cnnlab
    env = dict(os.environ)
    src = str(Path(cnnlab.__file__).resolve().parents[1])
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    return subprocess.run([sys.executable, "-m", "cnnlab", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=300)


def test_cli_fine_tunes_an_onnx_model_and_exports_it(resnet_onnx, folder, tmp_path):
    run = tmp_path / "run"
    result = _cli("train", "--dataset", folder, "--model", resnet_onnx, "--new-head", "--freeze", "--epochs", "2",
                  "--batch-size", "4", "--lr", "0.01", "--out", run, "--quiet", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    assert metrics["epochs"] == 2 and metrics["model"] == "resnet"
    config = json.loads((run / "config.json").read_text())
    assert config["new_head"] is True and config["freeze"] is True

    from cnnlab.io import load_model
    saved = load_model(run)
    assert saved.classes == ["blue", "green", "red"] and saved.input_shape == (3, 16, 16)
    original = cnnonnx.load(resnet_onnx)
    state, old = saved.model.state_dict(), original.state_dict()
    assert np.array_equal(state["layer1.conv1.weight"], old["layer1.conv1.weight"])  # frozen
    assert state["fc.weight"].shape == (3, 8)

    # --resume continues with the run's own head and frozen layers
    result = _cli("train", "--resume", run, "--epochs", "3", "--quiet", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["epochs"] == 3
    saved = load_model(run)
    assert np.array_equal(saved.model.state_dict()["layer1.conv1.weight"], old["layer1.conv1.weight"])
    result = _cli("train", "--resume", run, "--epochs", "4", "--freeze", "--quiet", cwd=tmp_path)
    assert result.returncode != 0 and "cannot change when resuming" in result.stderr

    out = tmp_path / "tuned.onnx"
    result = _cli("export", run, out, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    x = np.random.default_rng(1).standard_normal((2, 3, 16, 16)).astype(np.float32)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    with no_grad():
        expected = saved.model(Tensor(x)).numpy()
    np.testing.assert_allclose(session.run(None, {session.get_inputs()[0].name: x})[0], expected,
                               rtol=1e-5, atol=1e-5)


def test_cli_errors_are_one_line(resnet_onnx, folder, tmp_path):
    result = _cli("train", "--dataset", folder, "--model", resnet_onnx, "--epochs", "1", "--quiet", cwd=tmp_path)
    assert result.returncode != 0 and "--new-head" in result.stderr and "3 classes" in result.stderr
    result = _cli("train", "--dataset", folder, "--model", "smallnet", "--freeze", "--quiet", cwd=tmp_path)
    assert result.returncode != 0 and "fine-tune an ONNX model" in result.stderr
    result = _cli("train", "--dataset", folder, "--model", tmp_path / "missing.onnx", "--new-head", "--quiet",
                  cwd=tmp_path)
    assert result.returncode != 0 and "does not exist" in result.stderr
    for r in (result,):
        assert "Traceback" not in r.stderr
