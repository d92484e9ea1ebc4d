"""``export(model, path, input_shape)``: a cnnlab model -> an ONNX file.

The model is seen as a graph (:func:`cnnlab.nn.as_graph`); each node is
written by the exporter registered for its layer class (:mod:`._export_ops`).
The input is ``"input"`` with a symbolic batch ``"N"``; value names are the
graph's node names; initializers carry the state_dict's key names.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from .. import nn
from ._export_ops import EXPORTERS, OnnxExportError, _f32
from ._nn import Graph, as_graph

MIN_OPSET, MAX_OPSET = 13, 21
INPUT_NAME = "input"


class Builder:
    """Collects ONNX nodes and initializers with unique names."""

    def __init__(self, opset: int):
        self.opset = opset
        self.nodes: list = []
        self.initializers: list = []
        self.names: set = {INPUT_NAME}
        self._shared: dict = {}  # id of a parameter -> its initializer (a layer used by several nodes)

    def _unique(self, base: str) -> str:
        name, k = base, 1
        while name in self.names:
            name = f"{base}_{k}"
            k += 1
        self.names.add(name)
        return name

    def init(self, name: str, array) -> str:
        from onnx import numpy_helper
        key = id(array)
        if key in self._shared:
            return self._shared[key][0]
        name = self._unique(name)
        self.initializers.append(numpy_helper.from_array(_f32(array), name))
        if hasattr(array, "_data") or isinstance(array, np.ndarray):
            # keep the array alive: a temporary's id (a transposed weight) could otherwise be reused
            self._shared[key] = (name, array)
        return name

    def const(self, name: str, array: np.ndarray) -> str:
        from onnx import numpy_helper
        name = self._unique(name)
        self.initializers.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def tmp(self, base: str) -> str:
        return self._unique(base)

    def node(self, op: str, inputs: List[str], outputs: List[str], name: str, **attrs) -> None:
        from onnx import helper
        self.nodes.append(helper.make_node(op, inputs, outputs, name=name, **attrs))


def _graph_of(model: nn.Module, input_shape) -> Graph:
    if isinstance(model, Graph) or isinstance(model, nn.Sequential):
        return as_graph(model, input_shape)
    if type(model) in EXPORTERS:  # a single layer
        return Graph([("0", model, ("input",))])
    return as_graph(model, input_shape)


def to_model_proto(model: nn.Module, input_shape, opset: int = 17, metadata: Optional[Dict[str, str]] = None):
    """The ``onnx.ModelProto`` of ``model`` for images of ``input_shape`` = (C, H, W)."""
    import onnx
    from onnx import TensorProto, helper

    from .. import __version__

    if not isinstance(opset, int) or not MIN_OPSET <= opset <= MAX_OPSET:
        raise ValueError(f"opset must be an int from {MIN_OPSET} to {MAX_OPSET}, got {opset!r}")
    shape = tuple(int(s) for s in input_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"input_shape must be (C, H, W) of positive ints, got {tuple(input_shape)}")
    graph = _graph_of(model, (1, *shape))
    shapes = graph.shapes((1, *shape))
    b = Builder(opset)
    for node in graph.nodes:
        b.names.add(node.name)
    for node in graph.nodes:
        fn = EXPORTERS.get(type(node.module))
        if fn is None:
            raise OnnxExportError(f"layer {node.name} ({type(node.module).__name__}) has no ONNX form; cnnlab "
                                  f"exports: {', '.join(sorted(c.__name__ for c in EXPORTERS))}")
        fn(b, node.module, node.name, list(node.inputs), node.name, [shapes[i] for i in node.inputs])
    out_shape = shapes[graph.output]
    inputs = [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["N", *shape])]
    outputs = [helper.make_tensor_value_info(graph.output, TensorProto.FLOAT, ["N", *out_shape[1:]])]
    g = helper.make_graph(b.nodes, "cnnlab", inputs, outputs, b.initializers)
    proto = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], producer_name="cnnlab",
                              producer_version=__version__)
    proto.ir_version = min(proto.ir_version, _IR_FOR_OPSET.get(opset, proto.ir_version))
    meta = {"cnnlab.input_shape": json.dumps(list(shape)),
            "cnnlab.layers": json.dumps({n.name: type(n.module).__name__ for n in graph.nodes})}
    meta.update({str(k): str(v) for k, v in (metadata or {}).items()})
    helper.set_model_props(proto, meta)
    onnx.checker.check_model(proto, full_check=True)
    return proto


# ONNX Runtime reads models up to a given IR version; keep the IR version the opset needs
_IR_FOR_OPSET = {13: 7, 14: 7, 15: 8, 16: 8, 17: 8, 18: 8, 19: 9, 20: 9, 21: 10}


def export(model: nn.Module, path, input_shape, opset: int = 17, metadata: Optional[Dict[str, str]] = None) -> Path:
    """Write ``model`` to ``path`` as ONNX (atomically); returns the path."""
    from ..runs.files import atomic_write_bytes
    proto = to_model_proto(model, input_shape, opset, metadata)
    return atomic_write_bytes(path, proto.SerializeToString())


def saved_metadata(saved) -> Dict[str, str]:
    """``metadata_props`` for a :class:`cnnlab.io.SavedModel`: classes, mean, std, name."""
    meta = {"cnnlab.classes": json.dumps(list(saved.classes))}
    if saved.mean is not None:
        meta["cnnlab.mean"] = json.dumps([float(v) for v in saved.mean])
    if saved.std is not None:
        meta["cnnlab.std"] = json.dumps([float(v) for v in saved.std])
    if saved.name:
        meta["cnnlab.name"] = str(saved.name)
    return meta
