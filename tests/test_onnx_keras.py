"""A Keras 3 model (channels-last) exported to ONNX and imported: the NHWC transposes fold away.

Keras runs here on its PyTorch backend (no TensorFlow needed); ``Model.export(format="onnx")``
writes a graph whose input is NHWC and whose every convolution and pooling sits between
``Transpose`` nodes.  cnnlab's import gives a plain NCHW graph with no Permute left.
"""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest

pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("torch")
if "keras" not in sys.modules:
    os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")
if keras.backend.backend() != "torch":
    pytest.skip("Keras runs on another backend in this process", allow_module_level=True)

import cnnlab.onnx as cnnonnx  # noqa: E402
from cnnlab import Tensor, nn, no_grad  # noqa: E402


def _keras_model():
    keras.utils.set_random_seed(0)
    inp = keras.Input((12, 12, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inp)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Conv2D(6, 3, strides=2, padding="same")(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Activation("relu")(x)
    x = keras.layers.Flatten()(x)
    out = keras.layers.Dense(5, activation="softmax")(x)
    model = keras.Model(inp, out)
    model(np.zeros((1, 12, 12, 3), dtype="float32"))
    bn = model.layers[4]
    bn.moving_mean.assign(np.linspace(-0.5, 0.5, 6).astype("float32"))
    bn.moving_variance.assign(np.linspace(0.5, 2.0, 6).astype("float32"))
    return model


def test_keras_nhwc_model(tmp_path):
    model = _keras_model()
    path = tmp_path / "keras.onnx"
    model.export(str(path), format="onnx", verbose=False)
    graph = cnnonnx.load(path)
    assert not any(isinstance(n.module, nn.Permute) for n in graph.nodes), graph
    assert graph.output_shape((1, 3, 12, 12)) == (1, 5)  # takes NCHW images now
    x = np.random.default_rng(0).random((4, 12, 12, 3), dtype=np.float32)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    expected = session.run(None, {session.get_inputs()[0].name: x})[0]
    with no_grad():
        got = graph(Tensor(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got, keras.ops.convert_to_numpy(model.predict(x, verbose=0)), rtol=1e-4, atol=1e-5)


def test_keras_import_saves_as_a_cnnlab_run(tmp_path):
    from cnnlab.io import load_model, save_model
    path = tmp_path / "keras.onnx"
    _keras_model().export(str(path), format="onnx", verbose=False)
    graph = cnnonnx.load(path)
    save_model(graph, tmp_path / "run", (3, 12, 12))
    x = np.random.default_rng(1).random((2, 3, 12, 12), dtype=np.float32)
    with no_grad():
        np.testing.assert_array_equal(load_model(tmp_path / "run").model(Tensor(x)).numpy(), graph(Tensor(x)).numpy())
