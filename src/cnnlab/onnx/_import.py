"""``load(path)``: an ONNX file -> a cnnlab graph model (eval mode).

The walk over the ONNX graph is generic; what each op becomes is decided by
the converter registered for it in :mod:`._import_ops` (one small function
per op type).  Values known at import (initializers, ``Constant`` nodes and
everything computed from them alone, shape chains included) are folded with
:mod:`._shapes`; every other value is the output of one graph node.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from .. import nn
from ._nn import Graph, Node
from . import _shapes
from ._context import Alias, Context, Layer, OnnxImportError  # noqa: F401  (OnnxImportError: its home for callers)

MIN_OPSET = 11
NORMALISED_OPSET = 13  # older models are converted to this opset before import


@dataclass
class _Importer:
    source: str
    opset: int
    consts: Dict[str, np.ndarray] = field(default_factory=dict)
    shapes: Dict[str, tuple] = field(default_factory=dict)
    modules: Dict[str, nn.Module] = field(default_factory=dict)
    values: Dict[str, str] = field(default_factory=dict)   # ONNX value name -> graph value name
    consumers: Dict[str, int] = field(default_factory=dict)
    readers: Dict[str, list] = field(default_factory=dict)  # ONNX value name -> the ONNX nodes reading it
    gathered: set = field(default_factory=set)  # Reshape-to-[-1] outputs whose Gather is already converted
    nodes: List[Node] = field(default_factory=list)
    used_names: set = field(default_factory=lambda: {"input"})
    parameters: float = 0.0  # of the layers built so far (the size budget)

    def resolve(self, value: str) -> str:
        """The graph value (node name or ``"input"``) holding ONNX value ``value``."""
        return self.values[value]

    def unique(self, name: str) -> str:
        name = name or "node"
        candidate, k = name, 1
        while candidate in self.used_names:
            candidate = f"{name}_{k}"
            k += 1
        self.used_names.add(candidate)
        return candidate


def layer_name(node, initializers=()) -> str:
    """The module path a node came from, else its ONNX name.

    A node reading an initializer named after a parameter (``conv1.weight``) is that
    module's (``conv1``): the dynamo exporter folds a batch norm into the conv before it
    and keeps the batch norm's scope on the fused node, while the weights keep the conv's name.

    PyTorch's dynamo exporter stores the path in ``metadata_props``
    (``pkg.torch.onnx.name_scopes``: ``['', 'block', 'block.0', 'conv2d_1']``; or
    ``namespace``: ``': Net/block: Sequential/block.0: Conv2d/conv2d_1: aten.conv2d'``);
    the TorchScript exporter names nodes ``/block/block.0/Conv``.  The last entry is
    the op, the one before it the module: ``block.0``.
    """
    for value in list(node.input)[1:2]:  # the weight of Conv/Gemm/ConvTranspose/MatMul
        if value in initializers and value.endswith(".weight") and len(value) > len(".weight"):
            return value[:-len(".weight")]
    meta = {p.key: p.value for p in getattr(node, "metadata_props", [])}
    parts: List[str] = []
    if "pkg.torch.onnx.name_scopes" in meta:
        try:
            parts = [str(p) for p in ast.literal_eval(meta["pkg.torch.onnx.name_scopes"])]
        except (ValueError, SyntaxError):
            parts = []
    if not parts and "namespace" in meta:
        parts = [seg.split(":")[0].strip() for seg in meta["namespace"].split("/")]
    parts = [p for p in parts if p]
    if parts:
        return parts[-2] if len(parts) >= 2 else parts[-1]
    # TorchScript: scopes are attribute names, Sequential children full paths ("/layer2/down/down.0/Conv")
    parts = [p for p in node.name.split("/") if p]
    if len(parts) < 2:
        return parts[0] if parts else node.op_type.lower()
    path: List[str] = []
    for part in parts[:-1]:
        if path and part.startswith(path[-1] + "."):
            path[-1] = part
        else:
            path.append(part)
    return ".".join(path)


def _read_model(path):
    import onnx
    from google.protobuf.message import DecodeError

    if isinstance(path, onnx.ModelProto):
        return path
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ONNX file {path} does not exist")
    data = path.read_bytes()
    try:
        model = onnx.ModelProto()
        model.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise OnnxImportError(f"{path} is not an ONNX model (truncated or another format): "
                              f"{' '.join(str(exc).split()) or type(exc).__name__}") from None
    if not model.HasField("graph") or not model.graph.node:
        raise OnnxImportError(f"{path} is not an ONNX model (truncated or another format): it holds no graph")
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer):
        from onnx.external_data_helper import load_external_data_for_model
        load_external_data_for_model(model, str(path.parent))
    return model


def _opset(model, source: str) -> int:
    versions = {o.domain: o.version for o in model.opset_import}
    version = versions.get("", versions.get("ai.onnx"))
    if version is None:
        raise OnnxImportError(f"{source}: the model imports no standard ONNX opset (domains: {sorted(versions)})")
    return int(version)


def _normalise(model, source: str):
    """Convert models older than ``NORMALISED_OPSET`` (as ``onnx.version_converter`` can)."""
    import onnx
    from onnx import version_converter

    opset = _opset(model, source)
    newest = onnx.defs.onnx_opset_version()
    if opset > newest:
        raise OnnxImportError(f"{source}: opset {opset} is newer than the installed onnx package knows "
                              f"({newest}): upgrade onnx")
    if opset >= NORMALISED_OPSET:
        return model, opset
    if opset < MIN_OPSET:
        # still try: the converter handles most old models
        pass
    try:
        converted = version_converter.convert_version(model, NORMALISED_OPSET)
    except Exception as exc:  # the converter raises bare RuntimeErrors / its own C++ errors
        raise OnnxImportError(f"{source}: cannot convert opset {opset} to {NORMALISED_OPSET} with "
                              f"onnx.version_converter: {' '.join(str(exc).split())}") from None
    return converted, opset


def _attributes(node) -> dict:
    from onnx import helper, numpy_helper
    out = {}
    for a in node.attribute:
        value = helper.get_attribute_value(a)
        if hasattr(value, "raw_data") or hasattr(value, "dims"):  # a TensorProto
            value = numpy_helper.to_array(value)
        elif isinstance(value, bytes):
            value = value.decode("utf-8")
        elif isinstance(value, list):
            value = [v.decode("utf-8") if isinstance(v, bytes) else v for v in value]
        out[a.name] = value
    return out


def _graph_input(model, initializer_names, source: str, images_only: bool = True):
    """The one real graph input: (name, (C, H, W)); any (N, *) float input without ``images_only``."""
    inputs = [i for i in model.graph.input if i.name not in initializer_names]
    if len(inputs) != 1:
        raise OnnxImportError(f"{source}: cnnlab models take one image batch, but the graph has {len(inputs)} "
                              f"inputs ({', '.join(i.name for i in inputs) or 'none'})")
    value = inputs[0]
    tensor = value.type.tensor_type
    dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tensor.shape.dim]
    from onnx import TensorProto
    if tensor.elem_type not in (TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16):
        raise OnnxImportError(f"{source}: graph input {value.name!r} has element type "
                              f"{TensorProto.DataType.Name(tensor.elem_type)}; cnnlab takes float images")
    if (len(dims) != 4 and images_only) or len(dims) < 2 or not all(isinstance(d, int) and d > 0 for d in dims[1:]):
        raise OnnxImportError(f"{source}: graph input {value.name!r} has shape ({', '.join(map(str, dims))}); "
                              f"cnnlab takes an image batch (N, C, H, W) with fixed C, H and W")
    return value.name, tuple(int(d) for d in dims[1:])


def load(path) -> Graph:
    """Read an ONNX model into a cnnlab graph model (eval mode).

    Raises:
        FileNotFoundError: no such file.
        OnnxImportError (a ValueError): not an ONNX file, an unsupported op, an input
            that is not an image batch, a missing initializer (each one line).
    """
    graph, _ = load_with_info(path)
    return graph


def load_with_info(path, images_only: bool = True) -> Tuple[Graph, dict]:
    """``load`` plus ``{"input_shape": (C, H, W), "metadata": {...}, "opset": N}``.

    ``images_only=False`` accepts any ``(N, *)`` float input (ONNX's operator tests use such inputs).
    """
    from onnx import numpy_helper
    from ._import_ops import CONVERTERS, MULTI_OUTPUT

    source = "model" if not isinstance(path, (str, Path)) else str(path)
    model = _read_model(path)
    model, original_opset = _normalise(model, source)
    opset = _opset(model, source)
    g = model.graph
    imp = _Importer(source, opset)
    for init in g.initializer:
        imp.consts[init.name] = _real(numpy_helper.to_array(init), f"initializer {init.name!r}", source)
    for init in g.sparse_initializer:
        raise OnnxImportError(f"{source}: sparse initializer {init.values.name!r} is not supported")
    input_name, chw = _graph_input(model, set(imp.consts), source, images_only)
    for node in g.node:
        for i in node.input:
            imp.consumers[i] = imp.consumers.get(i, 0) + 1
            imp.readers.setdefault(i, []).append(node)

    imp.values[input_name] = "input"
    imp.shapes["input"] = (1, *chw)
    from .._schema import MAX_ACTIVATION_ELEMENTS, check_tensor_size
    try:
        check_tensor_size(chw, f"{source}: one input image", MAX_ACTIVATION_ELEMENTS)
    except ValueError as exc:
        raise OnnxImportError(str(exc)) from None

    produced = set(imp.consts) | {input_name}
    for node in g.node:
        for i in node.input:
            if i and i not in produced:
                raise OnnxImportError(f"{source}: node {node.name or node.op_type!r} ({node.op_type}) reads "
                                      f"{i!r}, which is no graph input, initializer or earlier node's output "
                                      f"(a missing initializer?)")
        produced.update(node.output)
        attrs = _attributes(node)
        if node.domain not in ("", "ai.onnx"):
            _unsupported(node, opset, source, f"custom domain {node.domain!r}")
        inputs_known = [i == "" or i in imp.consts for i in node.input]
        if node.op_type == "Constant":
            imp.consts[node.output[0]] = _real(_constant_value(attrs), f"Constant node {node.name!r}", source)
            continue
        if node.op_type in _shapes.FOLDERS and all(inputs_known) and node.input:
            values = [None if i == "" else imp.consts[i] for i in node.input]
            try:
                outs = _shapes.fold(node.op_type, attrs, values)
            except Exception as exc:
                raise OnnxImportError(f"{source}: node {node.name!r} ({node.op_type}, opset {opset}): cannot "
                                      f"evaluate it at import: {exc}") from None
            for name, value in zip(node.output, outs):
                imp.consts[name] = np.asarray(value)
            continue
        if node.op_type == "Shape" and not inputs_known[0]:
            shape = np.array(imp.shapes[imp.resolve(node.input[0])], dtype=np.int64)
            imp.consts[node.output[0]] = shape[attrs.get("start", 0):attrs.get("end", None)]
            continue
        converter = CONVERTERS.get(node.op_type)
        if converter is None:
            _unsupported(node, opset, source)
        ctx = Context(node, attrs, opset, imp, layer_name(node, imp.consts))
        if node.op_type in MULTI_OUTPUT:  # one result per output (Split)
            for out, result in zip(node.output, converter(ctx)):
                if out and result is not None:
                    _apply(imp, ctx, node, result, out)
            continue
        for extra in node.output[1:]:
            if extra and imp.consumers.get(extra, 0):
                ctx.fail(f"its output {extra!r} (output {list(node.output).index(extra)}) is used, and cnnlab "
                         f"layers give one output")
        result = converter(ctx)
        _apply(imp, ctx, node, result)

    outputs = [o.name for o in g.output]
    if len(outputs) != 1:
        raise OnnxImportError(f"{source}: the graph has {len(outputs)} outputs; cnnlab models give one")
    if outputs[0] in imp.consts:
        raise OnnxImportError(f"{source}: the graph's output {outputs[0]!r} does not depend on its input")
    if outputs[0] not in produced:
        raise OnnxImportError(f"{source}: the graph's output {outputs[0]!r} is no node's output (nor the graph "
                              "input)")
    out = imp.resolve(outputs[0])
    if out == "input" or not imp.nodes:
        imp.nodes.append(Node(imp.unique("identity"), nn.Identity(), ("input",)))
        out = imp.nodes[-1].name
    from ._fold import fold_layout
    nodes, out, chw = fold_layout(_prune(imp.nodes, out), out, chw)
    graph = Graph(nodes, output=out)
    graph.eval()
    meta = {p.key: p.value for p in model.metadata_props}
    return graph, {"input_shape": chw, "metadata": meta, "opset": original_opset,
                   "producer": f"{model.producer_name} {model.producer_version}".strip()}


def _real(value: np.ndarray, what: str, source: str) -> np.ndarray:
    """Refuse complex constants: cnnlab's layers would cast them to their real part (silently, but for
    NumPy's ComplexWarning on stderr)."""
    if np.asarray(value).dtype.kind == "c":
        raise OnnxImportError(f"{source}: {what} holds complex numbers ({np.asarray(value).dtype}); cnnlab "
                              "models take real weights")
    return value


def _prune(nodes: List[Node], output: str) -> List[Node]:
    """Drop nodes the output does not depend on (e.g. a Shape source's branch)."""
    needed, keep = {output}, []
    for node in reversed(nodes):
        if node.name in needed:
            keep.append(node)
            needed.update(node.inputs)
    return list(reversed(keep))


def _constant_value(attrs: dict) -> np.ndarray:
    for key, dtype in (("value", None), ("value_float", np.float32), ("value_floats", np.float32),
                       ("value_int", np.int64), ("value_ints", np.int64)):
        if key in attrs:
            return np.asarray(attrs[key], dtype=dtype)
    raise OnnxImportError(f"Constant node with attributes {sorted(attrs)}: only tensors and numbers are supported")


def _apply(imp: _Importer, ctx: Context, node, result, out: Optional[str] = None) -> None:
    out = node.output[0] if out is None else out
    if isinstance(result, Alias):
        if result.value in imp.consts:
            imp.consts[out] = imp.consts[result.value]
        else:
            imp.values[out] = imp.resolve(result.value)
        return
    if isinstance(result, np.ndarray):
        imp.consts[out] = result
        return
    module, inputs = result.module, tuple(result.inputs)
    name = imp.unique(ctx.name)
    module.eval()
    try:
        shape = module.output_shape(*[imp.shapes[i] for i in inputs])
    except (ValueError, TypeError, IndexError) as exc:
        ctx.fail(f"the {type(module).__name__} it becomes cannot take inputs of shapes "
                 f"{[imp.shapes[i] for i in inputs]}: {exc}")
    from .._schema import MAX_ACTIVATION_ELEMENTS, check_tensor_size
    try:  # the size budget, by shape inference before anything runs
        check_tensor_size(tuple(shape)[1:], "its output for one image", MAX_ACTIVATION_ELEMENTS)
    except ValueError as exc:
        ctx.fail(str(exc))
    imp.nodes.append(Node(name, module, inputs))
    imp.modules[name] = module
    imp.shapes[name] = tuple(shape)
    imp.values[out] = name


def supported_ops() -> list:
    """ONNX op types the importer turns into layers (on run-time values)."""
    from ._import_ops import CONVERTERS
    return sorted(set(CONVERTERS) | {"Constant", "Shape"})


def _unsupported(node, opset: int, source: str, why: str = "") -> None:
    raise OnnxImportError(f"{source}: unsupported op {node.op_type} (node {node.name!r}, opset {opset})"
                          f"{' from ' + why if why else ''}; cnnlab imports {', '.join(supported_ops())} "
                          f"(and shape computations on constants)")
