"""PyTorch's dynamo exporter writes ConvNeXt's pooling before the classifier as ``Reshape`` to
``[-1]`` followed by ``Gather``: a flatten of the one image it traced.  cnnlab imports it
batch-preserving.  The tiny models that exporter writes here keep a plain ``Reshape``, so the
pattern is built by hand with ``onnx.helper``."""
from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from cnnlab import Tensor, no_grad  # noqa: E402
from cnnlab.onnx._import import OnnxImportError, load_with_info  # noqa: E402


def _model(indices: np.ndarray, target=(-1,), axis: int = 0, batch="N"):
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w"),
             numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "b"),
             numpy_helper.from_array(np.array(target, dtype=np.int64), "target"),
             numpy_helper.from_array(np.asarray(indices, dtype=np.int64), "idx"),
             numpy_helper.from_array(rng.standard_normal((5, 4)).astype(np.float32), "fc_w"),
             numpy_helper.from_array(rng.standard_normal(5).astype(np.float32), "fc_b")]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("GlobalAveragePool", ["c"], ["p"], name="avgpool"),
             helper.make_node("Reshape", ["p", "target"], ["flat"], name="view"),
             helper.make_node("Gather", ["flat", "idx"], ["g"], name="index", axis=axis),
             helper.make_node("Gemm", ["g", "fc_w", "fc_b"], ["y"], name="fc", transB=1)]
    graph = helper.make_graph(nodes, "pool", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 5])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _reference(model, x: np.ndarray) -> np.ndarray:
    """ONNX Runtime one image at a time (the graph folds the batch into its flatten), else NumPy."""
    try:
        import onnxruntime as ort
    except ImportError:
        ort = None
    if ort is not None:
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        return np.concatenate([session.run(None, {"x": x[i:i + 1]})[0] for i in range(len(x))])
    w, b, _, _, fw, fb = (numpy_helper.to_array(t) for t in model.graph.initializer)
    pad = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    conv = np.zeros((len(x), 4, 8, 8))
    for i in range(3):
        for j in range(3):
            conv += np.einsum("nchw,oc->nohw", pad[:, :, i:i + 8, j:j + 8], w[:, :, i, j])
    pooled = conv.mean(axis=(2, 3)) + b
    return pooled @ fw.T + fb


@pytest.mark.parametrize("indices", [np.arange(4)[None], np.arange(-4, 0)[None]])
def test_reshape_to_minus_one_then_gather_imports_batch_preserving(indices):
    model = _model(indices)
    graph, _ = load_with_info(model)
    x = np.random.default_rng(1).standard_normal((3, 3, 8, 8)).astype(np.float32)
    with no_grad():
        got = graph(Tensor(x)).numpy()
    assert got.shape == (3, 5)
    np.testing.assert_allclose(got, _reference(model, x), rtol=1e-5, atol=1e-5)
    assert not any(type(n.module).__name__ == "Gather" for n in graph.nodes)


def test_the_pattern_with_a_batch_of_one_in_the_file():
    model = _model(np.arange(4)[None], target=(4,), batch=1)
    graph, _ = load_with_info(model)
    x = np.random.default_rng(2).standard_normal((2, 3, 8, 8)).astype(np.float32)
    with no_grad():
        np.testing.assert_allclose(graph(Tensor(x)).numpy(), _reference(_model(np.arange(4)[None]), x),
                                   rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("indices, axis, message", [
    (np.array([[1, 0, 2, 3]]), 0, r"picks the flattened values in another order or a part of them"),
    (np.array([[0, 1]]), 0, r"picks the flattened values in another order or a part of them"),
    (np.arange(4), 0, r"drop the per-image dimensions \(expected indices of shape \(1, \.\.\.\)\)"),
])
def test_other_gathers_after_a_flatten_are_refused_in_one_line(indices, axis, message):
    with pytest.raises(OnnxImportError, match=message):
        load_with_info(_model(indices, axis=axis))


def test_reshape_to_minus_one_without_the_gather_is_still_refused():
    model = _model(np.arange(4)[None])
    model.graph.node[3].op_type = "Identity"
    del model.graph.node[3].input[1:]
    del model.graph.node[3].attribute[:]
    with pytest.raises(OnnxImportError, match=r"target shape \[-1\] drops the per-image dimensions"):
        load_with_info(model)
