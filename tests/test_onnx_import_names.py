"""Layer names of imported ONNX models follow the parameters' names, also where an exporter folded layers."""
from __future__ import annotations

import numpy as np
import pytest


def test_a_folded_batch_norm_keeps_the_convs_name(tmp_path):
    """PyTorch's dynamo exporter folds ``bn`` into ``conv1`` and leaves the batch norm's name scope on the
    fused Conv node; its weights are still ``conv1.weight``, so the layer is ``conv1``, not ``bn``."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    from cnnlab.onnx import load
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((4, 1, 3, 3)).astype(np.float32), "conv1.weight"),
             numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "conv1.bias"),
             numpy_helper.from_array(rng.standard_normal((10, 64)).astype(np.float32), "fc.weight"),
             numpy_helper.from_array(rng.standard_normal(10).astype(np.float32), "fc.bias"),
             numpy_helper.from_array(np.array([0, -1], dtype=np.int64), "val_11")]
    conv = helper.make_node("Conv", ["x", "conv1.weight", "conv1.bias"], ["getitem"], name="node_Conv_12",
                            pads=[1, 1, 1, 1])
    conv.metadata_props.add(key="pkg.torch.onnx.name_scopes",
                            value="['', 'bn', '_native_batch_norm_legit_no_training']")
    relu = helper.make_node("Relu", ["getitem"], ["relu"], name="node_relu")
    relu.metadata_props.add(key="pkg.torch.onnx.name_scopes", value="['', 'relu']")
    view = helper.make_node("Reshape", ["relu", "val_11"], ["view"], name="node_view")
    view.metadata_props.add(key="pkg.torch.onnx.name_scopes", value="['', 'view']")
    gemm = helper.make_node("Gemm", ["view", "fc.weight", "fc.bias"], ["out"], name="node_linear", transB=1)
    gemm.metadata_props.add(key="pkg.torch.onnx.name_scopes", value="['', 'fc', 'linear']")
    graph = helper.make_graph([conv, relu, view, gemm], "net",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 4, 4])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 10])], inits)
    path = tmp_path / "folded.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    model = load(path)
    assert list(model.state_dict()) == ["conv1.weight", "conv1.bias", "fc.weight", "fc.bias"]
