"""ONNX's own operator test cases (``onnx.backend.test.case.node``) through cnnlab's importer.

Every case whose nodes are all ops the importer supports is imported and run:
the first graph input stays the model's input, the others become initializers
(cnnlab models take one input; weights are initializers), and integer inputs of
the data-movement ops (Pad, MaxPool) are fed as floats.  A case either matches
ONNX's expected output, or fails with a message from one of the out-of-scope
categories below, each with its reason; the test fails on anything else, and on
a supported op none of whose cases passes.
"""
from __future__ import annotations

import re
import warnings
from collections import Counter, defaultdict

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

from onnx import TensorProto, numpy_helper  # noqa: E402

from cnnlab import Tensor, no_grad  # noqa: E402
from cnnlab.onnx._import import OnnxImportError, load_with_info, supported_ops  # noqa: E402

#: out-of-scope cases: pattern of the importer's message (or of the harness's) -> why
OUT_OF_SCOPE = {
    r"has element type|dtype": "integer, float16, bfloat16 or float8 tensors: cnnlab runs float32/float64 images",
    r"graph input '\w+' has shape \(\d*\)": "a 0-D or 1-D input has no batch dimension",
    r"graph input '\w+' has shape \([\d, ]*\b0\b": "empty tensors (a dimension of size 0)",
    r"expected a 4-D \(N, C, H, W\) input": "1-D and 3-D convolution/pooling: cnnlab is 2-D",
    r"unsupported op": "the case also uses an op outside the supported set (e.g. an expanded function)",
    r"concatenating run-time values with constants": "the harness turns every input but the first into a constant",
    r"training_mode=1|the graph has 2 outputs|its output .* is used": "training-mode outputs (batch statistics, "
                                                                      "dropout masks, pooling indices)",
    r"training_dropout": "dropout in training mode is random; imported models run in eval mode",
    r"moves the batch dimension|merge the batch|batch must stay the first|drops the per-image|"
    r"squeezing the batch|before the batch|reducing over every axis|with run-time|only a reduction over H and W|"
    r"over dim 0, the batch axis":
        "ops that move, merge or reduce the batch dimension, or reduce other axes with max",
    r"transA=1|differs per row|only input @ constant matrix": "matrix products that are not a dense layer on the batch",
    r"does not depend on its input|0 inputs": "graphs whose output is a constant (Shape, Constant)",
    r"storage_order=1": "column-major pooling indices",
    r"dilations .* not supported for average pooling": "dilated average pooling (cnnlab's avg_pool2d has no dilation)",
    r"neither one value nor one per channel": "PReLU slopes per element or per column (cnnlab's PReLU: 1 or per channel)",
    r"casting image values to": "casts to non-float types",
    r"Unrecognized object in the object array": "test data the onnx helpers cannot serialise (float8/int4 arrays)",
    r"output_shape and SAME auto_pad": "ConvTranspose sized by output_shape or SAME auto_pad (cnnlab takes pads)",
    r"has no cnnlab Upsample|antialias|downsampling is not supported":
        "Resize modes PyTorch's Upsample lacks (cubic, ONNX's default half_pixel nearest, tf_crop_and_resize, "
        "antialias) and downsampling",
    r"asymmetric pads .* transposed": "ConvTranspose with asymmetric pads",
    r"changes the batch dimension|slicing the batch dimension|normalises over the batch|summing over every axis":
        "Expand, Slice, LayerNormalization or ReduceSum over the batch dimension (its size is not known at import)",
    r"tiles one non-batch axis": "Tile of the batch or of several axes (cnnlab tiles one non-batch axis)",
    r"the graph has 3 outputs": "LayerNormalization's mean and inverse deviation, or three Split parts, as graph "
                                "outputs",
    r"test_(rotary_embedding|flexattention)\w*_expanded": "attention functions written out in plain ops, whose "
                                                          "weights the harness turns into batch-1 constants",
}

_FLOAT_FED = {"Pad", "MaxPool"}


def _cases():
    from onnx.backend.test.case.node import collect_testcases
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return collect_testcases(None)


def _run(case):
    model = case.model
    inputs, outputs = case.data_sets[0]
    if not inputs:
        raise OnnxImportError("the graph has 0 inputs")
    new = onnx.ModelProto()
    new.CopyFrom(model)
    names = [i.name for i in model.graph.input]
    del new.graph.input[1:]
    for name, value in zip(names[1:], inputs[1:]):
        if value is not None:
            new.graph.initializer.append(numpy_helper.from_array(np.asarray(value), name))
    x, expected = np.asarray(inputs[0]), np.asarray(outputs[0])
    ops = {n.op_type for n in model.graph.node}
    if x.dtype.kind in "iu" and ops <= _FLOAT_FED:
        new.graph.input[0].type.tensor_type.elem_type = TensorProto.FLOAT
        x, expected = x.astype(np.float32), expected.astype(np.float32)
    graph, _ = load_with_info(new, images_only=False)
    with no_grad():
        got = graph(Tensor(x)).numpy()
    np.testing.assert_allclose(got, expected, rtol=max(case.rtol, 1e-5), atol=max(case.atol, 1e-6))


def test_onnx_node_cases():
    supported = set(supported_ops())
    passed, out_of_scope, unexpected = Counter(), defaultdict(list), []
    tried = Counter()
    for case in _cases():
        ops = {n.op_type for n in case.model.graph.node}
        if not ops <= supported or not case.data_sets:
            continue
        main_op = case.model.graph.node[0].op_type
        tried[main_op] += 1
        try:
            _run(case)
            passed[main_op] += 1
        except (OnnxImportError, ValueError, TypeError, NotImplementedError, AssertionError) as exc:
            message = f"{case.name}: {' '.join(str(exc).split())}"
            reason = next((why for pattern, why in OUT_OF_SCOPE.items() if re.search(pattern, message)), None)
            if reason is None or isinstance(exc, AssertionError) and "training_dropout" not in case.name:
                unexpected.append(message[:300])
            else:
                out_of_scope[reason].append(case.name)
    assert not unexpected, "\n".join(unexpected)
    assert sum(passed.values()) >= 110, passed
    for op in ("Conv", "MaxPool", "AveragePool", "Gemm", "BatchNormalization", "Relu", "LeakyRelu", "Sigmoid",
               "Tanh", "HardSigmoid", "HardSwish", "Clip", "Softmax", "LogSoftmax", "Flatten", "Reshape", "Pad",
               "Transpose", "Add", "Sub", "Mul", "Div", "Gelu", "Erf", "GlobalAveragePool", "GlobalMaxPool",
               "ReduceMean", "Unsqueeze", "Squeeze", "Identity", "Dropout", "Neg", "Pow", "MatMul", "Slice", "ReduceSum", "GroupNormalization",
               "InstanceNormalization", "Sqrt", "Reciprocal"):
        assert passed[op] >= 1, f"no ONNX test case of {op} passes (tried {tried[op]}): {dict(passed)}"
