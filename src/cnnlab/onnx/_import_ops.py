"""What each ONNX op becomes in cnnlab: one converter per op type, registered in ``CONVERTERS``.

A converter takes a :class:`~._context.Context` and returns a
:class:`~._context.Layer` (a cnnlab module and the values it reads), an
:class:`~._context.Alias` (the output is an existing value) or an ndarray
(the output is a constant).  Ops whose inputs are all constants never get
here: :mod:`._shapes` evaluates them.
"""
from __future__ import annotations

from typing import Callable, Dict

import numpy as np

from .. import nn
from ._context import Alias, Context, Layer
from ._nn import Add, Concat, Div, Mul, Reshape, Sub
from ..nn.merge import Mean

CONVERTERS: Dict[str, Callable[[Context], object]] = {}


def converter(*op_types: str):
    """Register a function as the converter of ``op_types`` (onnx2torch's ``add_converter``)."""
    def register(fn):
        for op in op_types:
            CONVERTERS[op] = fn
        return fn
    return register


def _f32(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float32)


def _size(*shapes) -> float:
    """The number of values in arrays of these shapes multiplied (a float: no overflow)."""
    return float(np.prod([float(s) for shape in shapes for s in shape], dtype=np.float64))


def _set(module: nn.Module, **arrays) -> nn.Module:
    """Copy weights into a fresh layer (names as in its state_dict)."""
    module.load_state_dict({k: _f32(v) for k, v in arrays.items()}, strict=False)
    return module


# --- padding geometry ------------------------------------------------------------------------
def _spatial_pads(ctx: Context, kernel, stride, dilation) -> tuple:
    """ONNX ``pads``/``auto_pad`` -> ((top, bottom), (left, right)) for the node's input size."""
    auto = ctx.attrs.get("auto_pad", "NOTSET")
    if auto in ("NOTSET", ""):
        pads = [int(p) for p in ctx.attrs.get("pads", [0, 0, 0, 0])]
        if len(pads) != 4:
            ctx.fail(f"pads {pads} are not those of a 2-D (image) op")
        return (pads[0], pads[2]), (pads[1], pads[3])
    if auto == "VALID":
        return (0, 0), (0, 0)
    if auto not in ("SAME_UPPER", "SAME_LOWER"):
        ctx.fail(f"auto_pad {auto!r} is not one of NOTSET, VALID, SAME_UPPER, SAME_LOWER")
    _, _, h, w = ctx.shape(0)
    out = []
    for size, k, s, d in zip((h, w), kernel, stride, dilation):
        total = max((-(-size // s) - 1) * s + d * (k - 1) + 1 - size, 0)
        small, big = total // 2, total - total // 2
        out.append((small, big) if auto == "SAME_UPPER" else (big, small))
    return tuple(out)


def _geometry(ctx: Context, kernel):
    if len(kernel) != 2:
        ctx.fail(f"kernel_shape {list(kernel)} is not 2-D; cnnlab runs 2-D image models")
    stride = tuple(int(s) for s in ctx.attrs.get("strides", [1, 1]))
    dilation = tuple(int(d) for d in ctx.attrs.get("dilations", [1, 1]))
    return tuple(int(k) for k in kernel), stride, dilation, _spatial_pads(ctx, kernel, stride, dilation)


def _image(ctx: Context):
    shape = ctx.shape(0)
    if len(shape) != 4:
        ctx.fail(f"expected a 4-D (N, C, H, W) input, got shape {shape}")
    return shape


# --- convolution, dense ---------------------------------------------------------------------
@converter("Conv")
def conv(ctx: Context):
    _image(ctx)
    w = ctx.const(1)
    if w is None:
        ctx.fail("the weights are computed at run time; cnnlab needs them as initializers")
    if w.ndim != 4:
        ctx.fail(f"weight of shape {w.shape} is not that of a 2-D convolution")
    kernel, stride, dilation, ((t, b), (l, r)) = _geometry(ctx, ctx.attrs.get("kernel_shape", w.shape[2:]))
    groups = int(ctx.attrs.get("group", 1))
    padding = (t, l) if (t == b and l == r) else ((t, b), (l, r))
    bias = ctx.const(2) if ctx.has(2) else None
    if ctx.has(2) and bias is None:
        ctx.fail("the bias is computed at run time; cnnlab needs it as an initializer")
    ctx.parameters(_size(w.shape[:2], kernel) + (w.shape[0] if bias is not None else 0), "Conv2d")
    layer = nn.Conv2d(w.shape[1] * groups, w.shape[0], kernel, stride, padding, dilation, groups,
                      bias=bias is not None)
    return Layer(_set(layer, weight=w, **({} if bias is None else {"bias": bias})), (ctx.var(0),))


def _linear(ctx: Context, weight: np.ndarray, bias, source: str):
    """``Linear`` from an (out, in) weight."""
    weight = np.asarray(weight)
    if weight.ndim != 2:
        ctx.fail(f"weight of shape {weight.shape} is not that of a dense layer (out, in)")
    if 0 in weight.shape:
        ctx.fail(f"weight of shape {weight.shape} has no values (a dense layer needs out, in >= 1)")
    ctx.parameters(_size(weight.shape) + (weight.shape[0] if bias is not None else 0), "Linear")
    layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    arrays = {"weight": weight}
    if bias is not None:
        arrays["bias"] = np.broadcast_to(np.asarray(bias).reshape(-1) if np.size(bias) > 1 else bias,
                                         (weight.shape[0],))
    return Layer(_set(layer, **arrays), (source,))


@converter("Gemm")
def gemm(ctx: Context):
    if ctx.attrs.get("transA", 0):
        ctx.fail("transA=1 (a transposed batch) is not supported")
    b = ctx.const(1)
    if b is None:
        ctx.fail("B is computed at run time; cnnlab needs the weights as an initializer")
    if len(ctx.shape(0)) != 2:
        ctx.fail(f"expected a 2-D input, got shape {ctx.shape(0)}")
    weight = b if ctx.attrs.get("transB", 0) else b.T
    weight = weight * np.float32(ctx.attrs.get("alpha", 1.0))
    c = ctx.const(2) if ctx.has(2) else None
    if ctx.has(2) and c is None:
        ctx.fail("C is computed at run time; cnnlab needs the bias as an initializer")
    if c is not None:
        c = np.asarray(c) * np.float32(ctx.attrs.get("beta", 1.0))
        if c.ndim == 2 and c.shape[0] != 1:
            ctx.fail(f"a bias C of shape {c.shape} that differs per row is not supported")
    return _linear(ctx, weight, c, ctx.var(0))


@converter("MatMul")
def matmul(ctx: Context):
    b = ctx.const(1)
    if ctx.is_const(0) or b is None or b.ndim != 2:
        ctx.fail("only input @ constant matrix (a dense layer) is supported")
    return _linear(ctx, b.T, None, ctx.var(0))


# --- pooling ------------------------------------------------------------------------------------
def _pool_padding(pads, kernel):
    (t, b), (l, r) = pads
    if t == b and l == r and t <= kernel[0] // 2 and l <= kernel[1] // 2:
        return (t, l)
    return ((t, b), (l, r))


@converter("MaxPool")
def max_pool(ctx: Context):
    _image(ctx)
    if ctx.attrs.get("storage_order", 0):
        ctx.fail("storage_order=1 (indices in column-major order) is not supported")
    kernel, stride, dilation, pads = _geometry(ctx, ctx.attrs["kernel_shape"])
    layer = nn.MaxPool2d(kernel, stride, _pool_padding(pads, kernel), dilation, bool(ctx.attrs.get("ceil_mode", 0)))
    return Layer(layer, (ctx.var(0),))


@converter("AveragePool")
def avg_pool(ctx: Context):
    _image(ctx)
    kernel, stride, dilation, pads = _geometry(ctx, ctx.attrs["kernel_shape"])
    if dilation != (1, 1):
        ctx.fail(f"dilations {list(dilation)} are not supported for average pooling")
    layer = nn.AvgPool2d(kernel, stride, _pool_padding(pads, kernel), bool(ctx.attrs.get("ceil_mode", 0)),
                         bool(ctx.attrs.get("count_include_pad", 0)))
    return Layer(layer, (ctx.var(0),))


@converter("GlobalAveragePool")
def global_avg_pool(ctx: Context):
    _image(ctx)
    return Layer(nn.AdaptiveAvgPool2d(1), (ctx.var(0),))


@converter("GlobalMaxPool")
def global_max_pool(ctx: Context):
    _image(ctx)
    return Layer(nn.AdaptiveMaxPool2d(1), (ctx.var(0),))


@converter("ReduceMean", "ReduceMax")
def reduce_hw(ctx: Context):
    """Mean/max over H and W: how PyTorch's new exporter writes adaptive/global pooling."""
    shape = ctx.shape(0)
    axes = ctx.attrs.get("axes")
    if axes is None and ctx.has(1):
        axes = ctx.const(1)
        if axes is None:
            ctx.fail("the axes are computed at run time")
    if axes is None:
        ctx.fail("reducing over every axis (the batch too) is not supported")
    if np.size(axes) == 0:
        if ctx.attrs.get("noop_with_empty_axes", 0):
            return Alias(ctx.inputs[0])
        ctx.fail("reducing over every axis (the batch too) is not supported")
    axes = sorted(int(a) % len(shape) for a in np.asarray(axes).reshape(-1))
    keep = bool(ctx.attrs.get("keepdims", 1))
    if ctx.op == "ReduceMean" and 0 not in axes and (len(shape) != 4 or axes != [2, 3]):
        return Layer(Mean(tuple(axes), keep), (ctx.var(0),))
    if len(shape) != 4 or axes != [2, 3]:
        ctx.fail(f"only a reduction over H and W of an (N, C, H, W) input is supported, got axes {axes} "
                 f"of shape {shape}")
    if ctx.op == "ReduceMean":
        layer = nn.AdaptiveAvgPool2d(1) if keep else nn.GlobalAvgPool2d()
    else:
        layer = nn.AdaptiveMaxPool2d(1) if keep else nn.GlobalMaxPool2d()
    return Layer(layer, (ctx.var(0),))


# --- activations ------------------------------------------------------------------------------
def _simple(module_factory):
    def convert(ctx: Context):
        return Layer(module_factory(ctx), (ctx.var(0),))
    return convert


CONVERTERS["Relu"] = _simple(lambda ctx: nn.ReLU())
CONVERTERS["Sigmoid"] = _simple(lambda ctx: nn.Sigmoid())
CONVERTERS["Tanh"] = _simple(lambda ctx: nn.Tanh())
CONVERTERS["Erf"] = _simple(lambda ctx: nn.Erf())
CONVERTERS["HardSwish"] = _simple(lambda ctx: nn.Hardswish())
CONVERTERS["LeakyRelu"] = _simple(lambda ctx: nn.LeakyReLU(float(ctx.attrs.get("alpha", 0.01))))
CONVERTERS["HardSigmoid"] = _simple(lambda ctx: nn.Hardsigmoid(float(ctx.attrs.get("alpha", 0.2)),
                                                                float(ctx.attrs.get("beta", 0.5))))


@converter("Gelu")
def gelu(ctx: Context):
    return Layer(nn.GELU(ctx.attrs.get("approximate", "none")), (ctx.var(0),))


@converter("Softmax", "LogSoftmax")
def softmax(ctx: Context):
    axis = int(ctx.attrs.get("axis", -1))
    return Layer((nn.Softmax if ctx.op == "Softmax" else nn.LogSoftmax)(axis), (ctx.var(0),))


@converter("PRelu")
def prelu(ctx: Context):
    slope = ctx.const(1)
    if slope is None:
        ctx.fail("the slope is computed at run time")
    shape = ctx.shape(0)
    flat = np.asarray(slope).reshape(-1)
    if flat.size != 1 and (len(shape) < 2 or flat.size != shape[1]
                           or np.asarray(slope).shape not in ((shape[1],) + (1,) * k for k in range(len(shape) - 1))
                           and np.asarray(slope).shape != (1, shape[1]) + (1,) * (len(shape) - 2)):
        ctx.fail(f"a slope of shape {np.asarray(slope).shape} is neither one value nor one per channel")
    ctx.parameters(flat.size, "PReLU")
    return Layer(_set(nn.PReLU(flat.size), weight=flat), (ctx.var(0),))


@converter("Clip")
def clip(ctx: Context):
    low = ctx.const(1) if ctx.has(1) else ctx.attrs.get("min")
    high = ctx.const(2) if ctx.has(2) else ctx.attrs.get("max")
    if (ctx.has(1) and low is None) or (ctx.has(2) and high is None):
        ctx.fail("the bounds are computed at run time")
    low = -np.inf if low is None else float(np.asarray(low))
    high = np.inf if high is None else float(np.asarray(high))
    if low == 0.0 and high == 6.0:
        return Layer(nn.ReLU6(), (ctx.var(0),))
    if low == 0.0 and high == np.inf:
        return Layer(nn.ReLU(), (ctx.var(0),))
    if high <= low:
        ctx.fail(f"min {low} is not below max {high}")
    return Layer(nn.Hardtanh(low, high), (ctx.var(0),))


# --- normalisation, regularisation, no-ops -------------------------------------------------
@converter("BatchNormalization")
def batch_norm(ctx: Context):
    shape = _image(ctx)
    if ctx.attrs.get("training_mode", 0):
        ctx.fail("training_mode=1 is not supported (import models exported for inference)")
    values = [ctx.const(i) for i in range(1, 5)]
    if any(v is None for v in values):
        ctx.fail("scale, bias, mean and variance must be initializers")
    scale, bias, mean, var = values
    layer = nn.BatchNorm2d(shape[1], eps=float(ctx.attrs.get("epsilon", 1e-5)),
                           momentum=1 - float(ctx.attrs.get("momentum", 0.9)))
    return Layer(_set(layer, weight=scale, bias=bias, running_mean=mean, running_var=var), (ctx.var(0),))


@converter("Identity", "Dropout")
def identity(ctx: Context):
    return Alias(ctx.inputs[0])


@converter("Cast")
def cast(ctx: Context):
    from ._shapes import onnx_dtype
    if np.dtype(onnx_dtype(ctx.attrs["to"])).kind != "f":
        ctx.fail(f"casting image values to {np.dtype(onnx_dtype(ctx.attrs['to']))} is not supported")
    return Alias(ctx.inputs[0])


# --- elementwise arithmetic ------------------------------------------------------------------
_MERGE = {"Add": Add, "Sub": Sub, "Mul": Mul, "Div": Div}
_NEUTRAL = {"Add": 0.0, "Sub": 0.0, "Mul": 1.0, "Div": 1.0, "Pow": 1.0}


@converter("Add", "Sub", "Mul", "Div", "Pow")
def arithmetic(ctx: Context):
    a, b = ctx.const(0), ctx.const(1)
    if a is None and b is None:
        if ctx.op == "Pow":
            ctx.fail("a power with a run-time exponent is not supported")
        return Layer(_MERGE[ctx.op](), (ctx.var(0), ctx.var(1)))
    reverse = a is not None
    constant = np.asarray(a if reverse else b)
    var_index = 1 if reverse else 0
    if ctx.op == "Pow" and reverse:
        ctx.fail("a constant raised to a run-time power is not supported")
    if not reverse and constant.size == 1 and float(constant.reshape(())) == _NEUTRAL[ctx.op]:
        return Alias(ctx.inputs[0])
    # Add right after a bias-free dense layer: its bias (PyTorch's MatMul + Add)
    producer = ctx.producer(var_index)
    if (ctx.op == "Add" and isinstance(producer, nn.Linear) and producer.bias is None
            and ctx.consumers(var_index) == 1 and constant.size in (1, producer.out_features)
            and constant.ndim <= 2 and constant.shape[-1:] in ((), (1,), (producer.out_features,))):
        from .. import nn as _nn
        producer.bias = _nn.Parameter(np.broadcast_to(_f32(constant).reshape(-1), (producer.out_features,)).copy())
        return Alias(ctx.inputs[var_index])
    if constant.size == 1 and ctx.op != "Pow" and len(constant.shape) <= len(ctx.shape(var_index)):
        return Layer(_MERGE[ctx.op](float(constant.reshape(())), reverse), (ctx.var(var_index),))
    ctx.parameters(constant.size, "Elementwise")
    layer = nn.Elementwise(ctx.op.lower(), constant.shape, reverse)
    return Layer(_set(layer, constant=constant), (ctx.var(var_index),))


@converter("Neg")
def neg(ctx: Context):
    layer = nn.Elementwise("mul", ())
    return Layer(_set(layer, constant=np.array(-1.0)), (ctx.var(0),))


@converter("Concat")
def concat(ctx: Context):
    if any(ctx.is_const(i) for i in range(len(ctx.inputs))):
        ctx.fail("concatenating run-time values with constants is not supported")
    return Layer(Concat(int(ctx.attrs["axis"])), tuple(ctx.var(i) for i in range(len(ctx.inputs))))


# --- shapes ------------------------------------------------------------------------------------
def _flatten_or_reshape(ctx: Context, rest: tuple):
    """A layer giving ``(N, *rest)`` from the input; a Flatten when ``rest`` is one dimension."""
    source = ctx.var(0)
    shape = ctx.shape(0)
    total = int(np.prod(shape[1:]))
    if len(rest) == 1 and rest[0] in (-1, total):
        return Layer(nn.Flatten(), (source,))
    return Layer(Reshape(rest), (source,))


@converter("Flatten")
def flatten(ctx: Context):
    axis = int(ctx.attrs.get("axis", 1)) % max(len(ctx.shape(0)), 1)
    if axis != 1:
        ctx.fail(f"axis={axis} would merge the batch with other dimensions; only axis=1 is supported")
    return _flatten_or_reshape(ctx, (-1,))


@converter("Reshape")
def reshape(ctx: Context):
    target = ctx.const(1)
    if target is None:
        ctx.fail("the target shape is computed from run-time values")
    shape = ctx.shape(0)
    target = [int(s) for s in np.asarray(target).reshape(-1)]
    if not ctx.attrs.get("allowzero", 0):
        target = [shape[i] if s == 0 and i < len(shape) else s for i, s in enumerate(target)]
    if not target:
        ctx.fail("reshaping an image batch to a scalar is not supported")
    rest = tuple(target[1:])  # the first dimension is the batch (baked in as 1 by some exporters)
    if not rest:
        gathered = _flatten_then_gather(ctx, target)
        if gathered is not None:
            return gathered
        ctx.fail(f"target shape {target} drops the per-image dimensions")
    total = int(np.prod(shape[1:]))
    known = int(np.prod([s for s in rest if s != -1]))
    if (-1 not in rest and known != total) or (-1 in rest and (known == 0 or total % known)):
        ctx.fail(f"cannot reshape an input of shape (N, {', '.join(map(str, shape[1:]))}) to "
                 f"(N, {', '.join(map(str, rest))}): the batch must stay the first dimension")
    if rest == tuple(shape[1:]):
        return Alias(ctx.inputs[0])
    return _flatten_or_reshape(ctx, rest)


def _flatten_then_gather(ctx: Context, target: list):
    """``Reshape`` to ``[-1]`` read only by a ``Gather`` (axis 0) whose constant indices ``(1, *S)``
    take every value in order: how PyTorch's dynamo exporter writes ConvNeXt's pooling before the
    classifier, with the batch of 1 it traced.  Per image that is a flatten to ``(1, *S)``, so it
    imports batch-preserving as ``(N, *S)`` (the Gather becomes an alias of it); None for any other
    use of the Reshape."""
    shape = ctx.shape(0)
    total = int(np.prod(shape[1:]))
    readers = ctx.importer.readers.get(ctx.node.output[0], [])
    if target not in ([-1], [total]) or shape[0] != 1 or len(readers) != 1 or readers[0].op_type != "Gather":
        return None
    gather = readers[0]
    axis = next((a.i for a in gather.attribute if a.name == "axis"), 0)
    indices = ctx.importer.consts.get(gather.input[1]) if len(gather.input) > 1 else None
    if gather.input[0] != ctx.node.output[0] or axis not in (0, -1) or indices is None:
        return None
    indices = np.asarray(indices)
    if indices.ndim < 2 or indices.shape[0] != 1:
        ctx.fail(f"target shape {target} and the Gather {gather.name!r} after it with indices of shape "
                 f"{indices.shape} drop the per-image dimensions (expected indices of shape (1, ...))")
    taken = np.where(indices < 0, indices + total, indices).reshape(-1)
    if taken.size != total or not np.array_equal(taken, np.arange(total)):
        ctx.fail(f"the Gather {gather.name!r} after this Reshape to {target} picks the flattened values in "
                 f"another order or a part of them; only every value in order (a flatten) is supported")
    ctx.importer.gathered.add(ctx.node.output[0])
    rest = tuple(int(s) for s in indices.shape[1:])
    if rest == tuple(shape[1:]):
        return Alias(ctx.inputs[0])
    return _flatten_or_reshape(ctx, rest)


@converter("Gather")
def gather(ctx: Context):
    """Gather on run-time values: only after a Reshape to ``[-1]`` (see :func:`_flatten_then_gather`)."""
    if ctx.inputs[0] in ctx.importer.gathered:
        return Alias(ctx.inputs[0])
    ctx.fail("Gather with run-time data is supported only right after a Reshape to [-1] (a flatten)")


def _shape_only(ctx: Context, out_shape: tuple):
    shape = ctx.shape(0)
    if not out_shape or out_shape[0] != shape[0]:
        ctx.fail(f"it would move the batch dimension (shape {shape} -> {out_shape})")
    if tuple(out_shape) == tuple(shape):
        return Alias(ctx.inputs[0])
    return _flatten_or_reshape(ctx, tuple(out_shape[1:]))


@converter("Squeeze")
def squeeze(ctx: Context):
    shape = ctx.shape(0)
    axes = ctx.attrs.get("axes")
    if axes is None and ctx.has(1):
        axes = ctx.const(1)
    if axes is None:
        ctx.fail("squeezing every size-1 axis would drop a batch of 1; give the axes")
    axes = {int(a) % len(shape) for a in np.asarray(axes).reshape(-1)}
    if 0 in axes:
        ctx.fail("squeezing the batch axis is not supported")
    return _shape_only(ctx, tuple(s for i, s in enumerate(shape) if i not in axes))


@converter("Unsqueeze")
def unsqueeze(ctx: Context):
    shape = list(ctx.shape(0))
    axes = ctx.attrs.get("axes")
    if axes is None:
        axes = ctx.const(1)
    rank = len(shape) + len(np.asarray(axes).reshape(-1))
    for a in sorted(int(a) % rank for a in np.asarray(axes).reshape(-1)):
        if a == 0:
            ctx.fail("inserting an axis before the batch is not supported")
        shape.insert(a, 1)
    return _shape_only(ctx, tuple(shape))


@converter("Transpose")
def transpose(ctx: Context):
    shape = ctx.shape(0)
    perm = tuple(int(p) for p in ctx.attrs.get("perm", reversed(range(len(shape)))))
    if perm == tuple(range(len(shape))):
        return Alias(ctx.inputs[0])
    if perm[0] != 0:
        ctx.fail(f"perm {list(perm)} moves the batch dimension")
    return Layer(nn.Permute(perm), (ctx.var(0),))


@converter("Pad")
def pad(ctx: Context):
    shape = ctx.shape(0)
    mode = ctx.attrs.get("mode", "constant")
    modes = {"constant": "constant", "reflect": "reflect", "edge": "replicate", "wrap": "circular"}
    if mode not in modes:
        ctx.fail(f"mode {mode!r} is not one of {sorted(modes)}")
    pads = ctx.attrs.get("pads") if "pads" in ctx.attrs else ctx.const(1)
    if pads is None:
        ctx.fail("the pads are computed at run time")
    pads = [int(p) for p in np.asarray(pads).reshape(-1)]
    axes = ctx.const(3) if ctx.has(3) else None
    axes = list(range(len(shape))) if axes is None else [int(a) % len(shape) for a in axes]
    if len(pads) != 2 * len(axes):
        ctx.fail(f"{len(pads)} pads for {len(axes)} axes")
    if min(pads, default=0) < 0:
        ctx.fail(f"negative pads (cropping) {pads} are not supported")
    value = ctx.const(2) if ctx.has(2) else ctx.attrs.get("value", 0.0)
    value = 0.0 if value is None or np.size(value) == 0 else float(np.asarray(value).reshape(-1)[0])
    widths = dict(zip(axes, zip(pads[:len(axes)], pads[len(axes):])))
    if widths.get(0, (0, 0)) != (0, 0):
        ctx.fail("padding the batch dimension is not supported")
    if not any(a or b for a, b in widths.values()):
        return Alias(ctx.inputs[0])
    first = min(a for a, (x, y) in widths.items() if x or y)
    torch_order = []
    for axis in range(len(shape) - 1, first - 1, -1):  # PyTorch's order: last dimension first
        torch_order += list(widths.get(axis, (0, 0)))
    return Layer(nn.Pad(tuple(torch_order), modes[mode], value), (ctx.var(0),))


# --- transposed convolution, resizing ---------------------------------------------------------
@converter("ConvTranspose")
def conv_transpose(ctx: Context):
    _image(ctx)
    w = ctx.const(1)
    if w is None or w.ndim != 4:
        ctx.fail("the weights must be a 4-D initializer")
    if ctx.attrs.get("output_shape") or ctx.attrs.get("auto_pad", "NOTSET") not in ("NOTSET", "", "VALID"):
        ctx.fail("output_shape and SAME auto_pad are not supported; give pads")
    kernel, stride, dilation, ((t, b), (l, r)) = _geometry(ctx, ctx.attrs.get("kernel_shape", w.shape[2:]))
    if t != b or l != r:
        ctx.fail(f"asymmetric pads {[t, l, b, r]} are not supported for transposed convolution")
    groups = int(ctx.attrs.get("group", 1))
    bias = ctx.const(2) if ctx.has(2) else None
    ctx.parameters(_size(w.shape[:2], kernel) + (w.shape[1] * groups if bias is not None else 0), "ConvTranspose2d")
    layer = nn.ConvTranspose2d(w.shape[0], w.shape[1] * groups, kernel, stride, (t, l),
                               tuple(int(p) for p in ctx.attrs.get("output_padding", [0, 0])), groups,
                               bias is not None, dilation)
    return Layer(_set(layer, weight=w, **({} if bias is None else {"bias": bias})), (ctx.var(0),))


_RESIZE = {("nearest", "asymmetric", "floor"): ("nearest", None),
           ("nearest", "half_pixel", "round_prefer_ceil"): ("nearest-exact", None),
           ("linear", "pytorch_half_pixel"): ("bilinear", False),
           ("linear", "half_pixel"): ("bilinear", False),
           ("linear", "align_corners"): ("bilinear", True)}


@converter("Resize", "Upsample")
def resize(ctx: Context):
    shape = _image(ctx)
    mode = ctx.attrs.get("mode", "nearest")
    coords = ctx.attrs.get("coordinate_transformation_mode", "half_pixel" if ctx.op == "Resize" else "asymmetric")
    key = (mode, coords, ctx.attrs.get("nearest_mode", "round_prefer_floor")) if mode == "nearest" else (mode, coords)
    if key not in _RESIZE:
        ctx.fail(f"mode {mode!r} with coordinate_transformation_mode {coords!r}"
                 f"{' and nearest_mode ' + repr(key[2]) if mode == 'nearest' else ''} has no cnnlab Upsample")
    cn_mode, align = _RESIZE[key]
    scales = ctx.const(2) if ctx.has(2) else None
    sizes = ctx.const(3) if ctx.has(3) else None
    if ctx.attrs.get("antialias", 0) or ctx.attrs.get("axes") is not None:
        ctx.fail("antialias and axes are not supported")
    if ((scales is not None and scales.size == 4 and min(scales[2:]) < 1)
            or (sizes is not None and sizes.size == 4 and (sizes[2] < shape[2] or sizes[3] < shape[3]))):
        ctx.fail("downsampling is not supported (cnnlab's Upsample enlarges images)")
    if scales is not None and scales.size == 4:
        if tuple(np.asarray(scales[:2], dtype=float)) != (1.0, 1.0):
            ctx.fail(f"scales {scales.tolist()} resize the batch or channels")
        layer = nn.Upsample(scale_factor=tuple(float(s) for s in scales[2:]), mode=cn_mode, align_corners=align)
    elif sizes is not None and sizes.size == 4:
        if tuple(int(s) for s in sizes[1:2]) != (shape[1],):
            ctx.fail(f"sizes {sizes.tolist()} resize the channels")
        layer = nn.Upsample(size=tuple(int(s) for s in sizes[2:]), mode=cn_mode, align_corners=align)
    else:
        ctx.fail("the output size must be constant scales or sizes for the four dimensions")
    return Layer(layer, (ctx.var(0),))


# --- per-sample normalisation, slicing, splitting (ConvNeXt, ShuffleNetV2) --------------------
#: ops whose converter returns one result per node output (a list; None for an unused output)
MULTI_OUTPUT = {"Split"}


def _slice_layer(ctx: Context, axis: int, start: int, end, step: int):
    """A ``Slice`` of axis ``axis`` with bounds resolved for the input's (fixed) size; None if it keeps all."""
    from ..nn.norm_layers import slice_bounds
    shape = ctx.shape(0)
    if axis == 0:  # the batch size is not known at import: only "all of it" is fine
        if int(step) == 1 and (int(start) == 0 or int(start) <= -2 ** 31) and (end is None or int(end) >= 2 ** 31 - 1):
            return None
        ctx.fail(f"slicing the batch dimension (start {start}, end {end}, step {step}) is not supported")
    bounds = slice_bounds(shape[axis], int(start), None if end is None else int(end), int(step))
    start, stop, step = bounds.indices(shape[axis])
    if bounds.stop is None:
        stop = None
    if step == 1 and start == 0 and stop == shape[axis]:
        return None
    return nn.Slice(axis, start, stop, step)


@converter("Slice")
def slice_(ctx: Context):
    """``x[..., start:end:step]`` on run-time values; several axes become a chain of Slice layers."""
    shape = ctx.shape(0)
    if "starts" in ctx.attrs:  # opset < 10 (normalised away, kept for safety)
        starts, ends, axes, steps = ctx.attrs["starts"], ctx.attrs["ends"], ctx.attrs.get("axes"), None
    else:
        values = [ctx.const(i) for i in range(1, 5)]
        for i, v in enumerate(values):
            if ctx.has(i + 1) and v is None:
                ctx.fail(f"its {('starts', 'ends', 'axes', 'steps')[i]} are computed from run-time values")
        starts, ends, axes, steps = [None if v is None else np.asarray(v).reshape(-1).tolist() for v in values]
    axes = list(range(len(starts))) if axes is None else [int(a) % len(shape) for a in axes]
    steps = [1] * len(starts) if steps is None else steps
    if len({len(starts), len(ends), len(axes), len(steps)}) != 1:
        ctx.fail(f"starts {starts}, ends {ends}, axes {axes} and steps {steps} differ in length")
    if any(int(s) == 0 for s in steps):
        ctx.fail(f"steps {steps} contain 0")
    layers = [layer for layer in (_slice_layer(ctx, a, s, e, st) for s, e, a, st in zip(starts, ends, axes, steps))
              if layer is not None]
    if not layers:
        return Alias(ctx.inputs[0])
    return Layer(layers[0] if len(layers) == 1 else nn.Sequential(*layers), (ctx.var(0),))


@converter("Split")
def split(ctx: Context):
    """One ``Slice`` per output: sizes from the ``split`` input (or attribute), else equal parts."""
    shape = ctx.shape(0)
    axis = int(ctx.attrs.get("axis", 0)) % len(shape)
    outputs = len(ctx.node.output)
    sizes = ctx.attrs.get("split")
    if sizes is None and ctx.has(1):
        sizes = ctx.const(1)
        if sizes is None:
            ctx.fail("the split sizes are computed from run-time values")
    if sizes is not None:
        sizes = [int(s) for s in np.asarray(sizes).reshape(-1)]
        if len(sizes) != outputs or sum(sizes) != shape[axis] or min(sizes) < 0:
            ctx.fail(f"split sizes {sizes} do not cut dimension {axis} of size {shape[axis]} into {outputs} parts")
    else:  # equal parts; with num_outputs (opset 18) the last part may be smaller
        part = -(-shape[axis] // outputs)
        sizes = [min(part, max(shape[axis] - k * part, 0)) for k in range(outputs)]
    if axis == 0:
        ctx.fail("splitting the batch dimension is not supported")
    results, begin = [], 0
    for out, size in zip(ctx.node.output, sizes):  # unused parts are pruned with the rest of the graph
        results.append(Layer(nn.Slice(axis, begin, begin + size), (ctx.var(0),)) if out else None)
        begin += size
    return results


@converter("LayerNormalization")
def layer_normalization(ctx: Context):
    shape = ctx.shape(0)
    axis = int(ctx.attrs.get("axis", -1)) % len(shape)
    if axis == 0:
        ctx.fail("axis 0 normalises over the batch; cnnlab normalises each sample on its own")
    normalized = tuple(shape[axis:])
    scale, bias = ctx.const(1), ctx.const(2) if ctx.has(2) else None
    if scale is None or (ctx.has(2) and bias is None):
        ctx.fail("scale and bias must be initializers")
    ctx.parameters(2 * _size(normalized), "LayerNorm")
    layer = nn.LayerNorm(normalized, eps=float(ctx.attrs.get("epsilon", 1e-5)), bias=bias is not None)
    try:
        arrays = {"weight": np.broadcast_to(scale, normalized)}
        if bias is not None:
            arrays["bias"] = np.broadcast_to(bias, normalized)
    except ValueError:
        ctx.fail(f"scale {np.shape(scale)} or bias {np.shape(bias)} does not broadcast to the normalised "
                 f"shape {normalized}")
    return Layer(_set(layer, **arrays), (ctx.var(0),))


@converter("InstanceNormalization")
def instance_normalization(ctx: Context):
    shape = ctx.shape(0)
    if len(shape) not in (3, 4):
        ctx.fail(f"expected an (N, C, L) or (N, C, H, W) input, got shape {shape}")
    scale, bias = ctx.const(1), ctx.const(2)
    if scale is None or bias is None:
        ctx.fail("scale and bias must be initializers")
    cls = nn.InstanceNorm2d if len(shape) == 4 else nn.InstanceNorm1d
    layer = cls(shape[1], eps=float(ctx.attrs.get("epsilon", 1e-5)), affine=True)
    return Layer(_set(layer, weight=np.reshape(scale, -1), bias=np.reshape(bias, -1)), (ctx.var(0),))


@converter("GroupNormalization")
def group_normalization(ctx: Context):
    """Opset 18 gives scale and bias per group, opset 21 per channel; both become a GroupNorm."""
    shape = ctx.shape(0)
    groups = int(ctx.attrs["num_groups"])
    if len(shape) < 3 or shape[1] % groups:
        ctx.fail(f"{groups} groups do not divide the channels of an input of shape {shape}")
    scale, bias = ctx.const(1), ctx.const(2)
    if scale is None or bias is None:
        ctx.fail("scale and bias must be initializers")
    c = shape[1]
    scale, bias = np.reshape(scale, -1), np.reshape(bias, -1)
    if scale.size == groups and groups != c:
        scale, bias = np.repeat(scale, c // groups), np.repeat(bias, c // groups)
    if scale.size != c or bias.size != c:
        ctx.fail(f"scale {scale.size} and bias {bias.size} values are neither one per group ({groups}) nor "
                 f"one per channel ({c})")
    layer = nn.GroupNorm(groups, c, eps=float(ctx.attrs.get("epsilon", 1e-5)))
    return Layer(_set(layer, weight=scale, bias=bias), (ctx.var(0),))


@converter("Sqrt", "Reciprocal")
def sqrt_reciprocal(ctx: Context):
    """``x ** 0.5`` and ``1 / x`` (a per-channel LayerNorm written out in NCHW)."""
    if ctx.op == "Sqrt":
        return Layer(_set(nn.Elementwise("pow", ()), constant=np.array(0.5)), (ctx.var(0),))
    return Layer(Div(1.0, reverse=True), (ctx.var(0),))


@converter("ReduceSum")
def reduce_sum(ctx: Context):
    """A sum over non-batch axes: the mean times the count."""
    shape = ctx.shape(0)
    axes = ctx.attrs.get("axes")
    if axes is None and ctx.has(1):
        axes = ctx.const(1)
        if axes is None:
            ctx.fail("the axes are computed at run time")
    if axes is None or np.size(axes) == 0:
        if ctx.attrs.get("noop_with_empty_axes", 0) and axes is not None:
            return Alias(ctx.inputs[0])
        ctx.fail("summing over every axis (the batch too) is not supported")
    axes = sorted({int(a) % len(shape) for a in np.asarray(axes).reshape(-1)})
    if 0 in axes:
        ctx.fail(f"summing over the batch axis (axes {axes}) is not supported")
    count = float(np.prod([shape[a] for a in axes]))
    return Layer(nn.Sequential(Mean(tuple(axes), bool(ctx.attrs.get("keepdims", 1))), Mul(count)), (ctx.var(0),))


@converter("Expand")
def expand(ctx: Context):
    """Broadcast a run-time value to a constant shape: adding zeros of that shape (batch kept)."""
    target = ctx.const(1)
    if target is None:
        ctx.fail("the target shape is computed from run-time values")
    shape = ctx.shape(0)
    target = tuple(int(s) for s in np.asarray(target).reshape(-1))
    try:
        out = np.broadcast_shapes(shape, target)
    except ValueError:
        ctx.fail(f"shape {shape} does not broadcast to {target}")
    if len(out) != len(shape) or out[0] != shape[0]:
        ctx.fail(f"expanding shape {shape} to {target} changes the batch dimension")
    if out == tuple(shape):
        return Alias(ctx.inputs[0])
    ctx.parameters(_size(out[1:]), "Elementwise")
    return Layer(nn.Elementwise("add", (1,) + tuple(out[1:])), (ctx.var(0),))


@converter("Tile")
def tile(ctx: Context):
    """Repeat a run-time value along one non-batch axis: a Concat of the value with itself."""
    repeats = ctx.const(1)
    if repeats is None:
        ctx.fail("the repeats are computed from run-time values")
    repeats = [int(r) for r in np.asarray(repeats).reshape(-1)]
    tiled = [a for a, r in enumerate(repeats) if r != 1]
    if not tiled:
        return Alias(ctx.inputs[0])
    if len(tiled) > 1 or tiled[0] == 0 or repeats[tiled[0]] < 1:
        ctx.fail(f"repeats {repeats}: cnnlab tiles one non-batch axis")
    return Layer(Concat(tiled[0]), (ctx.var(0),) * repeats[tiled[0]])
