"""Export every zoo model and graph models to ONNX, run them in ONNX Runtime, load them back."""
from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import cnnlab.onnx as cnnonnx  # noqa: E402
from cnnlab import Tensor, manual_seed, nn, no_grad  # noqa: E402
from cnnlab.models import DEFAULT_INPUT_SHAPES, MODELS, create_model  # noqa: E402
from cnnlab.onnx._nn import Add, Concat, Graph  # noqa: E402

OPSETS = [13, 17, 21]


def _randomise_bn(model):
    """Non-trivial running statistics, so batch norm export is really tested."""
    rng = np.random.default_rng(5)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean[...] = rng.normal(0, 0.5, m.num_features)
            m.running_var[...] = rng.uniform(0.5, 2.0, m.num_features)
            m.weight.numpy()[...] = rng.uniform(0.5, 1.5, m.num_features)
            m.bias.numpy()[...] = rng.normal(0, 0.2, m.num_features)
    return model.eval()


def residual_model():
    return Graph([
        ("stem", nn.Conv2d(1, 8, 3, padding=1), ("input",)),
        ("bn", nn.BatchNorm2d(8), ("stem",)),
        ("relu", nn.ReLU(), ("bn",)),
        ("conv1", nn.Conv2d(8, 8, 3, padding=1), ("relu",)),
        ("relu1", nn.ReLU(), ("conv1",)),
        ("add", Add(), ("relu", "relu1")),
        ("down", nn.Conv2d(8, 16, 3, stride=2, padding=1), ("add",)),
        ("pool", nn.GlobalAvgPool2d(), ("down",)),
        ("fc", nn.Linear(16, 10), ("pool",)),
    ])


def concat_model():
    return Graph([
        ("a", nn.Conv2d(1, 4, 3, padding=1), ("input",)),
        ("b", nn.Conv2d(1, 6, 5, padding=2), ("input",)),
        ("cat", Concat(1), ("a", "b")),
        ("act", nn.LeakyReLU(0.1), ("cat",)),
        ("pool", nn.MaxPool2d(2), ("act",)),
        ("flat", nn.Flatten(), ("pool",)),
        ("fc", nn.Linear(10 * 7 * 7, 10), ("flat",)),
        ("prob", nn.LogSoftmax(1), ("fc",)),
    ])


def _models():
    out = []
    for name in sorted(MODELS):
        shape = DEFAULT_INPUT_SHAPES[name]
        out.append((name, lambda name=name, shape=shape: create_model(name, shape, 10)[0], shape))
    out.append(("residual", residual_model, (1, 14, 14)))
    out.append(("concat", concat_model, (1, 14, 14)))
    return out


MODEL_CASES = _models()


def _session(path):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("opset", OPSETS)
@pytest.mark.parametrize("name, build, shape", MODEL_CASES, ids=[c[0] for c in MODEL_CASES])
def test_round_trip(tmp_path, name, build, shape, opset):
    manual_seed(0)
    model = _randomise_bn(build())
    path = tmp_path / f"{name}.onnx"
    cnnonnx.export(model, path, shape, opset=opset)
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    assert proto.opset_import[0].version == opset
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"
    assert {i.name for i in proto.graph.initializer} >= set(model.state_dict()) - {
        k for k in model.state_dict() if k.endswith("num_batches_tracked")}
    session = _session(path)
    loaded = cnnonnx.load(path)
    state = model.state_dict()
    for key, value in loaded.state_dict().items():
        if key in state:
            np.testing.assert_array_equal(value, state[key], err_msg=key)
    assert {k for k in state if not k.endswith("num_batches_tracked")} <= set(loaded.state_dict())
    rng = np.random.default_rng(1)
    for batch in (1, 7):
        x = rng.standard_normal((batch, *shape)).astype(np.float32)
        with no_grad():
            expected = model(Tensor(x)).numpy()
            again = loaded(Tensor(x)).numpy()
        got = session.run(None, {"input": x})[0]
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())
        np.testing.assert_allclose(again, expected, rtol=1e-6, atol=1e-6 * np.abs(expected).max())


LAYERS = [
    ("conv_asym", lambda: nn.Conv2d(3, 4, (3, 2), stride=2, padding=((0, 1), (1, 0))), (3, 9, 8)),
    ("conv_same", lambda: nn.Conv2d(3, 4, 4, padding="same"), (3, 9, 8)),
    ("conv_reflect", lambda: nn.Conv2d(3, 4, 3, padding=1, padding_mode="reflect"), (3, 8, 8)),
    ("conv_grouped_dilated", lambda: nn.Conv2d(4, 6, 3, padding=2, dilation=2, groups=2), (4, 9, 9)),
    ("maxpool_ceil", lambda: nn.MaxPool2d(3, 2, 1, ceil_mode=True), (2, 8, 8)),
    ("maxpool_dilated", lambda: nn.MaxPool2d(2, 1, 0, dilation=2), (2, 7, 7)),
    ("minpool", lambda: nn.MinPool2d(2), (2, 8, 8)),
    ("avgpool_pad", lambda: nn.AvgPool2d(3, 2, 1, count_include_pad=False), (2, 9, 9)),
    ("avgpool_pad_incl", lambda: nn.AvgPool2d(3, 2, 1), (2, 9, 9)),
    ("avgpool_asym", lambda: nn.AvgPool2d(2, 2, ((0, 1), (1, 0))), (2, 7, 7)),
    ("adaptive_avg", lambda: nn.AdaptiveAvgPool2d(2), (3, 8, 8)),
    ("adaptive_max", lambda: nn.AdaptiveMaxPool2d((1, 1)), (3, 8, 8)),
    ("global_max", lambda: nn.GlobalMaxPool2d(), (3, 5, 5)),
    ("gelu", lambda: nn.GELU(), (2, 4, 4)),
    ("gelu_tanh", lambda: nn.GELU("tanh"), (2, 4, 4)),
    ("glu", lambda: nn.GLU(1), (4, 3, 3)),
    ("softmax", lambda: nn.Softmax(1), (3, 4, 4)),
    ("sigmoid", lambda: nn.Sigmoid(), (3, 4, 4)),
    ("tanh", lambda: nn.Tanh(), (3, 4, 4)),
    ("hardswish", lambda: nn.Hardswish(), (3, 4, 4)),
    ("hardsigmoid", lambda: nn.Hardsigmoid(), (3, 4, 4)),
    ("relu6", lambda: nn.ReLU6(), (3, 4, 4)),
    ("hardtanh", lambda: nn.Hardtanh(-0.5, 0.7), (3, 4, 4)),
    ("prelu", lambda: nn.PReLU(3, 0.1), (3, 4, 4)),
    ("pad_reflect", lambda: nn.Pad((1, 2, 2, 0), "reflect"), (3, 5, 5)),
    ("pad_const", lambda: nn.Pad((1, 1, 0, 2), "constant", 0.5), (3, 5, 5)),
    ("permute", lambda: nn.Permute((0, 2, 3, 1)), (3, 4, 5)),
    ("flatten_partial", lambda: nn.Flatten(2), (3, 4, 5)),
    ("dropout", lambda: nn.Dropout(0.3), (3, 4, 5)),
    ("erf", lambda: nn.Erf(), (3, 4, 5)),
    ("conv_transpose", lambda: nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2), (4, 5, 6)),
    ("upsample_nearest", lambda: nn.Upsample(scale_factor=2), (2, 3, 4)),
    ("upsample_nearest_exact", lambda: nn.Upsample(scale_factor=(2, 3), mode="nearest-exact"), (2, 3, 4)),
    ("upsample_bilinear", lambda: nn.Upsample(size=(7, 5), mode="bilinear"), (2, 3, 4)),
    ("upsample_bilinear_corners", lambda: nn.UpsamplingBilinear2d(scale_factor=2), (2, 3, 4)),
    ("layer_norm_last", lambda: _randomise_affine(nn.LayerNorm(5, eps=1e-6)), (3, 4, 5)),
    ("layer_norm_chw", lambda: _randomise_affine(nn.LayerNorm((3, 4, 5), bias=False)), (3, 4, 5)),
    ("layer_norm_plain", lambda: nn.LayerNorm((4, 5), elementwise_affine=False), (3, 4, 5)),
    ("group_norm", lambda: _randomise_affine(nn.GroupNorm(2, 4, eps=1e-3)), (4, 3, 5)),
    ("group_norm_plain", lambda: nn.GroupNorm(2, 4, affine=False), (4, 3, 5)),
    ("instance_norm", lambda: _randomise_affine(nn.InstanceNorm2d(3, affine=True)), (3, 4, 5)),
    ("instance_norm_plain", lambda: nn.InstanceNorm2d(3), (3, 4, 5)),
    ("slice_channels", lambda: nn.Slice(1, 1, 3), (4, 3, 5)),
    ("slice_reversed", lambda: nn.Slice(-1, -2, None, -2), (3, 4, 5)),
]


def _randomise_affine(layer):
    for p in layer.parameters():
        p.numpy()[...] = np.random.default_rng(5).uniform(-1.5, 1.5, p.shape)
    return layer


NOT_IMPORTED = set()


@pytest.mark.parametrize("opset", [13, 21])
@pytest.mark.parametrize("name, build, shape", LAYERS, ids=[c[0] for c in LAYERS])
def test_every_layer_round_trips(tmp_path, name, build, shape, opset):
    manual_seed(0)
    model = nn.Sequential(build()).eval()
    path = tmp_path / "m.onnx"
    cnnonnx.export(model, path, shape, opset=opset)
    x = np.random.default_rng(2).standard_normal((3, *shape)).astype(np.float32) * 2
    with no_grad():
        expected = model(Tensor(x)).numpy()
    got = _session(path).run(None, {"input": x})[0]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    if name in NOT_IMPORTED:
        return
    imported = cnnonnx.load(path)
    with no_grad():
        again = imported(Tensor(x)).numpy()
    np.testing.assert_allclose(again, expected, rtol=1e-6, atol=1e-6)
    if name.startswith(("group_norm", "instance_norm", "slice")) or name.startswith("layer_norm") and opset >= 17:
        # the same layer comes back (a LayerNorm written out for opsets before 17 comes back written out)
        assert [type(n.module) for n in imported.nodes] == [type(model[0])], imported


def test_elementwise_round_trip(tmp_path):
    layer = nn.Elementwise("sub", (1, 3, 1, 1), reverse=True)
    layer.load_state_dict({"constant": np.array([1.0, 2.0, 3.0]).reshape(1, 3, 1, 1)})
    path = tmp_path / "e.onnx"
    cnnonnx.export(nn.Sequential(layer), path, (3, 2, 2))
    x = np.random.default_rng(0).standard_normal((2, 3, 2, 2)).astype(np.float32)
    np.testing.assert_allclose(_session(path).run(None, {"input": x})[0], layer(Tensor(x)).numpy(), rtol=1e-6)


def test_export_errors(tmp_path):
    with pytest.raises(ValueError, match=r"opset must be an int from 13 to 21, got 12"):
        cnnonnx.export(nn.Sequential(nn.ReLU()), tmp_path / "x.onnx", (1, 4, 4), opset=12)
    with pytest.raises(ValueError, match=r"layer 0 \(FractionalMaxPool2d\) has no ONNX form; cnnlab exports: "):
        cnnonnx.export(nn.Sequential(nn.FractionalMaxPool2d(2, output_size=3)), tmp_path / "x.onnx", (1, 8, 8))
    with pytest.raises(ValueError, match=r"windows of unequal size for input \(1, 1, 7, 7\)"):
        cnnonnx.export(nn.Sequential(nn.AdaptiveAvgPool2d(4)), tmp_path / "x.onnx", (1, 7, 7))


def test_dense_layers_on_feature_maps_keep_their_own_weights(tmp_path):
    """Two Linear layers on (N, H, W, C) maps (ConvNeXt's pointwise layers) are written with transposed
    weights; each must keep its own initializer even when the transposed copies are temporaries."""
    manual_seed(0)
    model = nn.Sequential(nn.Permute((0, 2, 3, 1)), *[nn.Linear(4, 4) for _ in range(6)],
                          nn.Permute((0, 3, 1, 2))).eval()  # (without the fix: silently wrong numbers)
    path = tmp_path / "pointwise.onnx"
    cnnonnx.export(model, path, (4, 3, 3))
    x = np.random.default_rng(0).standard_normal((2, 4, 3, 3)).astype(np.float32)
    with no_grad():
        expected = model(Tensor(x)).numpy()
    np.testing.assert_allclose(_session(path).run(None, {"input": x})[0], expected, rtol=1e-5, atol=1e-6)
