"""Real clients: PyTorch models exported by both of PyTorch's ONNX exporters, imported into cnnlab.

Each model is exported in the test (no committed binaries) with the TorchScript
exporter (``dynamo=False``, dynamic batch axis) and the ``torch.export`` based
one (``dynamo=True``), at several opsets; cnnlab's outputs must match ONNX
Runtime's within 1e-4, and the batch size baked into a static export must not
stop cnnlab from running other batch sizes.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")
pytest.importorskip("onnxscript")

import cnnlab.onnx as cnnonnx  # noqa: E402
from cnnlab import Tensor, no_grad  # noqa: E402

tnn = torch.nn


class LeNet5(tnn.Module):
    def __init__(self):
        super().__init__()
        self.features = tnn.Sequential(tnn.Conv2d(1, 6, 5, padding=2), tnn.ReLU(), tnn.MaxPool2d(2),
                                       tnn.Conv2d(6, 16, 5), tnn.ReLU(), tnn.MaxPool2d(2))
        self.classifier = tnn.Sequential(tnn.Linear(400, 120), tnn.ReLU(), tnn.Linear(120, 84), tnn.ReLU(),
                                         tnn.Linear(84, 10))

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


class Block(tnn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = tnn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = tnn.BatchNorm2d(cout)
        self.conv2 = tnn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = tnn.BatchNorm2d(cout)
        self.down = (tnn.Sequential(tnn.Conv2d(cin, cout, 1, stride, bias=False), tnn.BatchNorm2d(cout))
                     if stride != 1 or cin != cout else tnn.Identity())

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(y)) + self.down(x))


class ResNet(tnn.Module):
    def __init__(self):
        super().__init__()
        self.stem = tnn.Sequential(tnn.Conv2d(1, 8, 3, padding=1, bias=False), tnn.BatchNorm2d(8), tnn.ReLU())
        self.layer1 = Block(8, 8, 1)
        self.layer2 = Block(8, 16, 2)
        self.pool = tnn.AdaptiveAvgPool2d(1)
        self.fc = tnn.Linear(16, 10)

    def forward(self, x):
        x = self.pool(self.layer2(self.layer1(self.stem(x))))
        return self.fc(x.view(x.size(0), -1))


class Branches(tnn.Module):
    def __init__(self):
        super().__init__()
        self.a = tnn.Conv2d(3, 4, 1)
        self.b = tnn.Sequential(tnn.Conv2d(3, 4, 3, padding=1), tnn.Hardswish())
        self.c = tnn.Sequential(tnn.MaxPool2d(3, 1, 1), tnn.Conv2d(3, 4, 1), tnn.PReLU(4))
        self.head = tnn.Sequential(tnn.ReLU6(), tnn.AvgPool2d(2), tnn.Flatten(), tnn.Linear(12 * 6 * 6, 5),
                                   tnn.Hardsigmoid(), tnn.Softmax(dim=1))

    def forward(self, x):
        return self.head(torch.cat([self.a(x), self.b(x), self.c(x)], dim=1))


class Geometry(tnn.Module):
    """Strided, grouped and dilated convolutions, ceil-mode pooling, reflection padding, GELU."""

    def __init__(self):
        super().__init__()
        self.pad = tnn.ReflectionPad2d((1, 2, 0, 1))
        self.conv1 = tnn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.pool1 = tnn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = tnn.Conv2d(8, 8, 3, padding=2, dilation=2, groups=4)
        self.pool2 = tnn.AvgPool2d(3, 2, padding=1, ceil_mode=True, count_include_pad=False)
        self.act = tnn.GELU()
        self.leaky = tnn.LeakyReLU(0.2)
        self.fc = tnn.Linear(8 * 3 * 4, 4)

    def forward(self, x):
        x = self.pool1(self.leaky(self.conv1(self.pad(x))))
        x = self.pool2(self.act(self.conv2(x)))
        return torch.log_softmax(self.fc(torch.flatten(x, 1)), dim=1)


class Decoder(tnn.Module):
    """Transposed convolution and upsampling (nearest and bilinear), as in segmentation heads."""

    def __init__(self):
        super().__init__()
        self.conv = tnn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.up1 = tnn.ConvTranspose2d(8, 6, 3, stride=2, padding=1, output_padding=1)
        self.up2 = tnn.Upsample(scale_factor=2, mode="nearest")
        self.up3 = tnn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
        self.fc = tnn.Linear(6, 3)

    def forward(self, x):
        x = self.up3(self.up2(torch.relu(self.up1(torch.relu(self.conv(x))))))
        return self.fc(x.mean(dim=(2, 3)))


MODELS = {"decoder": (Decoder, (3, 8, 10)), "lenet5": (LeNet5, (1, 28, 28)), "resnet": (ResNet, (1, 16, 16)), "branches": (Branches, (3, 12, 12)),
          "geometry": (Geometry, (3, 21, 23))}


def _build(name):
    torch.manual_seed(0)
    cls, shape = MODELS[name]
    model = cls()
    with torch.no_grad():  # non-trivial batch-norm statistics
        for m in model.modules():
            if isinstance(m, tnn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return model.eval(), shape


def _export(model, shape, path, dynamo, opset, dynamic=True, batch=2):
    x = torch.randn(batch, *shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            kwargs = {"dynamic_shapes": {"x": {0: torch.export.Dim("batch", min=1, max=1024)}}} if dynamic else {}
            torch.onnx.export(model, (x,), str(path), dynamo=True, opset_version=opset, input_names=["x"],
                              verbose=False, **kwargs)
        else:
            kwargs = {"dynamic_axes": {"x": {0: "N"}}} if dynamic else {}
            torch.onnx.export(model, (x,), str(path), dynamo=False, opset_version=opset, input_names=["x"],
                              **kwargs)


def _ort(path, x):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def _check(path, model, shape, batches=(1, 7), ort_batches=None):
    imported = cnnonnx.load(path)
    rng = np.random.default_rng(0)
    for batch in batches:
        x = rng.standard_normal((batch, *shape)).astype(np.float32)
        with no_grad():
            got = imported(Tensor(x)).numpy()
        with torch.no_grad():
            expected_torch = model(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(got, expected_torch, rtol=1e-4, atol=1e-4)
        if ort_batches is None or batch in ort_batches:
            np.testing.assert_allclose(got, _ort(path, x), rtol=1e-4, atol=1e-4)
    return imported


@pytest.mark.parametrize("opset", [11, 13, 17])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_torchscript_exporter(tmp_path, name, opset):
    model, shape = _build(name)
    path = tmp_path / f"{name}.onnx"
    _export(model, shape, path, dynamo=False, opset=opset)
    imported = _check(path, model, shape)
    if name == "geometry":  # GELU written out with Erf is one GELU layer again
        from cnnlab import nn
        kinds = {type(n.module) for n in imported.nodes}
        assert nn.GELU in kinds and nn.Erf not in kinds, kinds
    if name == "resnet":  # names and weights are PyTorch's
        state = imported.state_dict()
        np.testing.assert_array_equal(state["fc.weight"], model.fc.weight.detach().numpy())
        assert "layer1.conv1.weight" in state or any(k.startswith("layer1.") for k in state)


@pytest.mark.parametrize("opset", [18, 20])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_dynamo_exporter(tmp_path, name, opset):
    model, shape = _build(name)
    path = tmp_path / f"{name}.onnx"
    _export(model, shape, path, dynamo=True, opset=opset)
    imported = _check(path, model, shape)
    names = [n.name for n in imported.nodes]
    assert any(n.startswith(("features", "classifier", "layer", "stem", "fc", "head", "conv", "pool", "a", "b", "c"))
               for n in names), names


@pytest.mark.parametrize("dynamo", [False, True])
def test_batch_size_baked_in(tmp_path, dynamo):
    """Exported without a dynamic batch, the Reshape holds batch 2: cnnlab still runs any batch."""
    model, shape = _build("resnet")
    path = tmp_path / "static.onnx"
    _export(model, shape, path, dynamo=dynamo, opset=18 if dynamo else 13, dynamic=False, batch=2)
    _check(path, model, shape, batches=(2, 1, 5), ort_batches=(2,))


def test_module_paths_become_layer_names(tmp_path):
    model, shape = _build("resnet")
    path = tmp_path / "r.onnx"
    _export(model, shape, path, dynamo=False, opset=17)
    names = [n.name for n in cnnonnx.load(path).nodes]
    assert "layer2.conv1" in names and "fc" in names, names


def test_imported_model_saves_as_a_cnnlab_run(tmp_path):
    """An imported model is a plain cnnlab graph: save_model / load_model keep it exactly."""
    from cnnlab.io import load_model, save_model
    model, shape = _build("branches")
    path = tmp_path / "b.onnx"
    _export(model, shape, path, dynamo=False, opset=17)
    imported = cnnonnx.load(path)
    save_model(imported, tmp_path / "run", shape)
    back = load_model(tmp_path / "run").model
    x = np.random.default_rng(3).standard_normal((2, *shape)).astype(np.float32)
    with no_grad():
        np.testing.assert_array_equal(back(Tensor(x)).numpy(), imported(Tensor(x)).numpy())
