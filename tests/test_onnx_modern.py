"""Modern CNN blocks from PyTorch through both ONNX exporters into cnnlab.

Small stand-ins for torchvision's ShuffleNetV2 (channel split, branch, channel
shuffle) and ConvNeXt (depthwise 7x7, LayerNorm channels-last and in NCHW,
Linear, GELU, layer scale), plus GroupNorm and InstanceNorm, written here with
random weights, exported with the TorchScript exporter (``dynamo=False``) and
the ``torch.export`` one, imported, and compared with ONNX Runtime and PyTorch;
then exported back by cnnlab and compared again.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")

import cnnlab.onnx as cnnonnx  # noqa: E402
from cnnlab import Tensor, nn, no_grad  # noqa: E402

tnn = torch.nn


def channel_shuffle(x, groups):
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).contiguous().view(n, c, h, w)


class ShuffleUnit(tnn.Module):
    """ShuffleNetV2's stride-1 unit: split the channels, transform one half, concatenate, shuffle."""

    def __init__(self, c):
        super().__init__()
        h = c // 2
        self.branch2 = tnn.Sequential(tnn.Conv2d(h, h, 1, bias=False), tnn.BatchNorm2d(h), tnn.ReLU(),
                                      tnn.Conv2d(h, h, 3, padding=1, groups=h, bias=False), tnn.BatchNorm2d(h),
                                      tnn.Conv2d(h, h, 1, bias=False), tnn.BatchNorm2d(h), tnn.ReLU())

    def forward(self, x):
        x1, x2 = x.chunk(2, dim=1)
        return channel_shuffle(torch.cat((x1, self.branch2(x2)), dim=1), 2)


class ShuffleNet(tnn.Module):
    def __init__(self, classes=5):
        super().__init__()
        self.conv1 = tnn.Sequential(tnn.Conv2d(3, 8, 3, 2, 1, bias=False), tnn.BatchNorm2d(8), tnn.ReLU())
        self.stage2 = tnn.Sequential(ShuffleUnit(8), ShuffleUnit(8))
        self.conv5 = tnn.Sequential(tnn.Conv2d(8, 16, 1, bias=False), tnn.BatchNorm2d(16), tnn.ReLU())
        self.fc = tnn.Linear(16, classes)

    def forward(self, x):
        x = self.conv5(self.stage2(self.conv1(x)))
        return self.fc(x.mean([2, 3]))


class LayerNorm2d(tnn.LayerNorm):
    """torchvision's: LayerNorm over the channels of an NCHW map, by permuting them last."""

    def forward(self, x):
        x = x.permute(0, 2, 3, 1)
        x = torch.nn.functional.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class ChannelsFirstLayerNorm(tnn.Module):
    """The ConvNeXt paper's NCHW LayerNorm, written out with means over dimension 1."""

    def __init__(self, c, eps=1e-6):
        super().__init__()
        self.weight, self.bias, self.eps = tnn.Parameter(torch.ones(c)), tnn.Parameter(torch.zeros(c)), eps

    def forward(self, x):
        u = x.mean(1, keepdim=True)
        s = (x - u).pow(2).mean(1, keepdim=True)
        x = (x - u) / torch.sqrt(s + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class CNBlock(tnn.Module):
    """ConvNeXt's block: depthwise 7x7, LayerNorm (channels last), Linear, GELU, Linear, layer scale."""

    def __init__(self, c):
        super().__init__()
        self.dwconv = tnn.Conv2d(c, c, 7, padding=3, groups=c)
        self.norm = tnn.LayerNorm(c, eps=1e-6)
        self.pwconv1, self.act, self.pwconv2 = tnn.Linear(c, 4 * c), tnn.GELU(), tnn.Linear(4 * c, c)
        self.layer_scale = tnn.Parameter(torch.full((c, 1, 1), 0.5))

    def forward(self, x):
        y = self.dwconv(x).permute(0, 2, 3, 1)
        y = self.pwconv2(self.act(self.pwconv1(self.norm(y)))).permute(0, 3, 1, 2)
        return x + self.layer_scale * y


class ConvNeXt(tnn.Module):
    def __init__(self, classes=5):
        super().__init__()
        self.stem = tnn.Sequential(tnn.Conv2d(3, 8, 2, stride=2), LayerNorm2d(8, eps=1e-6))
        self.stage1 = tnn.Sequential(CNBlock(8), CNBlock(8))
        self.down = tnn.Sequential(ChannelsFirstLayerNorm(8), tnn.Conv2d(8, 16, 2, stride=2))
        self.stage2 = CNBlock(16)
        # (a mean over H and W: the dynamo exporter writes AdaptiveAvgPool2d + Flatten with Reshape [-1] + Gather)
        self.head = tnn.Sequential(tnn.LayerNorm(16, eps=1e-6), tnn.Linear(16, classes))

    def forward(self, x):
        return self.head(self.stage2(self.down(self.stage1(self.stem(x)))).mean([2, 3]))


class Norms(tnn.Module):
    def __init__(self):
        super().__init__()
        self.conv = tnn.Conv2d(3, 8, 3, padding=1)
        self.gn = tnn.GroupNorm(4, 8)
        self.inorm = tnn.InstanceNorm2d(8, affine=True)
        self.fc = tnn.Linear(8, 3)

    def forward(self, x):
        x = torch.relu(self.inorm(self.gn(self.conv(x))))
        return self.fc(x.mean([2, 3]))


MODELS = {"shufflenet": ShuffleNet, "convnext": ConvNeXt, "norms": Norms}
SHAPE = (3, 16, 16)


def _build(name):
    torch.manual_seed(0)
    model = MODELS[name]()
    with torch.no_grad():  # weights away from their initial ones/zeros
        for p_name, p in model.named_parameters():
            if p_name.endswith(("norm.weight", "norm.bias", "gn.weight", "gn.bias", "stem.1.weight",
                                "stem.1.bias", "down.0.weight", "down.0.bias", "head.0.weight", "head.0.bias")):
                p.uniform_(-1.5, 1.5)
        for m in model.modules():
            if isinstance(m, tnn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    return model.eval()


def _export(model, path, dynamo, opset):
    x = torch.randn(2, *SHAPE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            pytest.importorskip("onnxscript")
            torch.onnx.export(model, (x,), str(path), dynamo=True, opset_version=opset, input_names=["x"],
                              dynamic_shapes={"x": {0: torch.export.Dim("batch", min=1, max=1024)}}, verbose=False)
        else:
            torch.onnx.export(model, (x,), str(path), dynamo=False, opset_version=opset, input_names=["x"],
                              dynamic_axes={"x": {0: "N"}})


def _ort(path, x):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


# dynamo at opset 17 writes ShuffleNet's split as Split with num_outputs, an opset-18 attribute that ONNX
# Runtime refuses; at 18 the file is valid
EXPORTS = [(False, 17), (False, 13), (True, 18)]


@pytest.mark.parametrize("dynamo, opset", EXPORTS, ids=[f"{'dynamo' if d else 'torchscript'}{o}" for d, o in EXPORTS])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_modern_blocks_import_and_match_onnx_runtime(tmp_path, name, dynamo, opset):
    model = _build(name)
    path = tmp_path / f"{name}.onnx"
    _export(model, path, dynamo, opset)
    imported = cnnonnx.load(path)
    x = np.random.default_rng(1).standard_normal((3, *SHAPE)).astype(np.float32)
    with no_grad():
        got = imported(Tensor(x)).numpy()
    np.testing.assert_allclose(got, _ort(path, x), rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        np.testing.assert_allclose(got, model(torch.from_numpy(x)).numpy(), rtol=1e-5, atol=1e-5)
    kinds = {type(n.module) for n in imported.nodes}
    if name == "shufflenet":
        assert nn.Slice in kinds, kinds
    if name == "convnext" and opset >= 17:
        assert nn.LayerNorm in kinds, kinds
    if name == "norms":  # Reshape, InstanceNormalization, Reshape, Mul, Add: one GroupNorm with PyTorch's keys
        assert nn.GroupNorm in kinds and nn.InstanceNorm1d not in kinds, kinds
        np.testing.assert_array_equal(imported.state_dict()["gn.weight"], model.gn.weight.detach().numpy())
    if name == "convnext":  # GELU written out with Erf (both exporters' orders of the products) is one GELU
        assert nn.GELU in kinds and nn.Erf not in kinds, kinds

    # and back out: cnnlab's own export runs in ONNX Runtime with the same numbers
    again = tmp_path / "again.onnx"
    cnnonnx.export(imported, again, SHAPE, opset=17)
    np.testing.assert_allclose(_ort(again, x), got, rtol=1e-5, atol=1e-5)


def test_imported_convnext_trains(tmp_path):
    """Gradients flow through every imported layer: one SGD step lowers the loss on a fixed batch."""
    import cnnlab
    model = _build("convnext")
    path = tmp_path / "c.onnx"
    _export(model, path, False, 17)
    imported = cnnonnx.load(path)
    imported.train()
    x = Tensor(np.random.default_rng(2).standard_normal((4, *SHAPE)).astype(np.float32))
    y = Tensor(np.array([0, 1, 2, 3]))
    opt = cnnlab.optim.SGD(imported.parameters(), lr=0.05)
    losses = []
    for _ in range(3):
        loss = cnnlab.functional.cross_entropy(imported(x), y)
        opt.zero_grad()
        loss.backward()
        assert all(p.grad is not None for p in imported.parameters())
        opt.step()
        losses.append(float(loss.numpy()))
    assert losses[-1] < losses[0], losses
