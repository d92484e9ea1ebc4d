"""Evaluating ONNX nodes whose inputs are all known at import (constant folding).

Exporters compute shapes inside the graph: ``Shape -> Gather -> Unsqueeze ->
Concat -> Reshape`` is how PyTorch writes ``x.view(x.size(0), -1)``.  At import
every image size is fixed, so such chains are evaluated here, in NumPy, and the
result (a constant) becomes an argument of the layer that uses it.  The batch
dimension is taken as 1 while folding; the layers that read shapes (Reshape)
treat their first dimension as the batch, so the model accepts any batch size.
"""
from __future__ import annotations

from typing import Callable, Dict, List, Optional

import numpy as np

__all__ = ["FOLDERS", "fold", "onnx_dtype"]

FOLDERS: Dict[str, Callable] = {}


def folder(*op_types: str):
    def register(fn):
        for op in op_types:
            FOLDERS[op] = fn
        return fn
    return register


def onnx_dtype(code: int):
    from onnx import helper
    return helper.tensor_dtype_to_np_dtype(int(code))


def _axes(attrs, inputs, index: int) -> Optional[List[int]]:
    """Axes from the attribute (old opsets) or the input ``index`` (new opsets)."""
    if "axes" in attrs:
        return [int(a) for a in attrs["axes"]]
    if len(inputs) > index and inputs[index] is not None:
        return [int(a) for a in np.asarray(inputs[index]).reshape(-1)]
    return None


def fold(op_type: str, attrs: dict, inputs: List[Optional[np.ndarray]]) -> List[np.ndarray]:
    """Outputs of node ``op_type`` for constant ``inputs`` (None for an omitted optional input)."""
    _check_folded_size(op_type, inputs)
    return FOLDERS[op_type](attrs, inputs)


def _check_folded_size(op_type: str, inputs) -> None:
    """The size budget for constants built at import: refuse before allocating a huge one."""
    from .._schema import check_tensor_size
    try:
        if op_type == "ConstantOfShape":
            shape = [int(v) for v in np.ravel(inputs[0])]
        elif op_type == "Expand":
            a, b = list(np.shape(inputs[0])), [int(v) for v in np.ravel(inputs[1])]
            n = max(len(a), len(b))
            a, b = [1] * (n - len(a)) + a, [1] * (n - len(b)) + b
            shape = [max(x, y) for x, y in zip(a, b)]
        elif op_type == "Tile":
            shape = [x * int(r) for x, r in zip(np.shape(inputs[0]), np.ravel(inputs[1]))]
        elif op_type == "Range":
            start, limit, delta = (float(np.ravel(v)[0]) for v in inputs[:3])
            shape = [max(0.0, np.ceil((limit - start) / delta))] if delta else [0]
        else:
            return
    except (TypeError, ValueError, IndexError, OverflowError):
        return  # the folder's own checks say what is wrong
    check_tensor_size(shape, f"the constant {op_type} builds")


@folder("Identity", "Dropout")
def _identity(attrs, inputs):
    return [inputs[0]]


@folder("Shape")
def _shape(attrs, inputs):
    shape = np.array(np.shape(inputs[0]), dtype=np.int64)
    start, end = attrs.get("start", 0), attrs.get("end", None)
    return [shape[start:end]]


@folder("Size")
def _size(attrs, inputs):
    return [np.array(np.size(inputs[0]), dtype=np.int64)]


@folder("Gather")
def _gather(attrs, inputs):
    return [np.take(inputs[0], np.asarray(inputs[1]).astype(np.int64), axis=attrs.get("axis", 0))]


@folder("Unsqueeze")
def _unsqueeze(attrs, inputs):
    x = np.asarray(inputs[0])
    axes = _axes(attrs, inputs, 1)
    rank = x.ndim + len(axes)
    for a in sorted(a % rank for a in axes):
        x = np.expand_dims(x, a)
    return [x]


@folder("Squeeze")
def _squeeze(attrs, inputs):
    x = np.asarray(inputs[0])
    axes = _axes(attrs, inputs, 1)
    return [np.squeeze(x) if axes is None else np.squeeze(x, axis=tuple(a % x.ndim for a in axes))]


@folder("Concat")
def _concat(attrs, inputs):
    return [np.concatenate([np.asarray(i) for i in inputs], axis=attrs["axis"])]


@folder("Cast")
def _cast(attrs, inputs):
    return [np.asarray(inputs[0]).astype(onnx_dtype(attrs["to"]))]


@folder("Reshape")
def _reshape(attrs, inputs):
    x, shape = np.asarray(inputs[0]), [int(s) for s in np.asarray(inputs[1]).reshape(-1)]
    if not attrs.get("allowzero", 0):
        if any(s == 0 and i >= x.ndim for i, s in enumerate(shape)):
            raise ValueError(f"the target shape {shape} copies (0) a dimension the constant of shape "
                             f"{tuple(x.shape)} does not have")
        shape = [x.shape[i] if s == 0 else s for i, s in enumerate(shape)]
    known = int(np.prod([s for s in shape if s != -1], dtype=np.int64))
    if shape.count(-1) > 1 or any(s < -1 for s in shape) or (
            x.size != known if -1 not in shape else (known == 0 or x.size % known)):
        raise ValueError(f"the constant of shape {tuple(x.shape)} holds {x.size:,} values, which the target shape "
                         f"{shape} cannot hold" + ("" if -1 in shape else f" ({known:,} values)"))
    return [x.reshape(shape)]


@folder("Flatten")
def _flatten(attrs, inputs):
    x = np.asarray(inputs[0])
    axis = attrs.get("axis", 1) % max(x.ndim, 1)
    return [x.reshape(int(np.prod(x.shape[:axis])), -1)]


@folder("Transpose")
def _transpose(attrs, inputs):
    return [np.transpose(inputs[0], attrs.get("perm"))]


@folder("Slice")
def _slice(attrs, inputs):
    x = np.asarray(inputs[0])
    if "starts" in attrs:  # opset < 10
        starts, ends, axes, steps = attrs["starts"], attrs["ends"], attrs.get("axes"), None
    else:
        starts, ends = (np.asarray(inputs[i]).reshape(-1).tolist() for i in (1, 2))
        axes = np.asarray(inputs[3]).reshape(-1).tolist() if len(inputs) > 3 and inputs[3] is not None else None
        steps = np.asarray(inputs[4]).reshape(-1).tolist() if len(inputs) > 4 and inputs[4] is not None else None
    axes = list(range(len(starts))) if axes is None else axes
    steps = [1] * len(starts) if steps is None else steps
    from ..nn.norm_layers import slice_bounds
    index = [slice(None)] * x.ndim
    for s, e, a, st in zip(starts, ends, axes, steps):
        index[a] = slice_bounds(x.shape[a], int(s), int(e), int(st))
    return [x[tuple(index)]]


@folder("ConstantOfShape")
def _constant_of_shape(attrs, inputs):
    value = attrs.get("value")
    value = np.zeros(1, dtype=np.float32) if value is None else np.asarray(value).reshape(-1)
    return [np.full([int(s) for s in np.asarray(inputs[0]).reshape(-1)], value[0], dtype=value.dtype)]


@folder("Range")
def _range(attrs, inputs):
    start, limit, delta = (np.asarray(i) for i in inputs)
    return [np.arange(start, limit, delta, dtype=start.dtype)]


@folder("Expand")
def _expand(attrs, inputs):
    x = np.asarray(inputs[0])
    shape = np.broadcast_shapes(x.shape, tuple(int(s) for s in np.asarray(inputs[1]).reshape(-1)))
    return [np.broadcast_to(x, shape).copy()]


@folder("Tile")
def _tile(attrs, inputs):
    return [np.tile(inputs[0], np.asarray(inputs[1]).astype(np.int64))]


def _binary(fn):
    def apply(attrs, inputs):
        a, b = np.asarray(inputs[0]), np.asarray(inputs[1])
        out = fn(a, b)
        return [np.asarray(out).astype(np.result_type(a.dtype, b.dtype) if out.dtype != bool else bool)]
    return apply


def _int_div(a, b):
    if a.dtype.kind in "iu" and b.dtype.kind in "iu":
        return np.trunc(a / b).astype(np.result_type(a, b))
    return a / b


for _op, _fn in {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": _int_div,
                 "Pow": np.power, "Max": np.maximum, "Min": np.minimum, "Equal": np.equal,
                 "Less": np.less, "Greater": np.greater, "Mod": np.mod, "And": np.logical_and,
                 "Or": np.logical_or}.items():
    FOLDERS[_op] = _binary(_fn)


def _unary(fn):
    return lambda attrs, inputs: [np.asarray(fn(np.asarray(inputs[0])))]


for _op, _fn in {"Neg": np.negative, "Abs": np.abs, "Sqrt": np.sqrt, "Exp": np.exp, "Log": np.log,
                 "Floor": np.floor, "Ceil": np.ceil, "Reciprocal": np.reciprocal, "Not": np.logical_not,
                 "Relu": lambda x: np.maximum(x, 0), "Sigmoid": lambda x: 1 / (1 + np.exp(-x)),
                 "Tanh": np.tanh}.items():
    FOLDERS[_op] = _unary(_fn)


@folder("Where")
def _where(attrs, inputs):
    return [np.where(*[np.asarray(i) for i in inputs])]


def _reduce(fn):
    def apply(attrs, inputs):
        x = np.asarray(inputs[0])
        axes = _axes(attrs, inputs, 1)
        keep = bool(attrs.get("keepdims", 1))
        if axes is None or (not axes and attrs.get("noop_with_empty_axes", 0)):
            if axes is not None:
                return [x]
            axes = list(range(x.ndim))
        return [np.asarray(fn(x, axis=tuple(a % x.ndim for a in axes), keepdims=keep))]
    return apply


for _op, _fn in {"ReduceProd": np.prod, "ReduceSum": np.sum, "ReduceMean": np.mean, "ReduceMax": np.max,
                 "ReduceMin": np.min}.items():
    FOLDERS[_op] = _reduce(_fn)


@folder("MatMul")
def _matmul(attrs, inputs):
    return [np.matmul(inputs[0], inputs[1])]
