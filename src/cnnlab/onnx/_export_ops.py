"""What each cnnlab layer becomes in ONNX: one exporter per layer class, in ``EXPORTERS``.

An exporter ``fn(b, layer, name, inputs, output, shapes)`` appends the ONNX
nodes that compute ``output`` from the value names ``inputs`` (whose shapes,
batch 1, are ``shapes``) to the builder ``b``; weights go in as initializers
named as in the model's state_dict (``"3.weight"``).  The main node of a layer
is named like the layer; helper nodes ``"<layer>:<what>"``.
"""
from __future__ import annotations

import math
from typing import Callable, Dict

import numpy as np

from .. import nn
from ._nn import Add, Concat, Div, Mul, Reshape, Sub
from ..nn.merge import Mean


class OnnxExportError(ValueError):
    """A model cnnlab cannot write as ONNX (one line naming the layer and why)."""


EXPORTERS: Dict[type, Callable] = {}


def exporter(*classes: type):
    def register(fn):
        for cls in classes:
            EXPORTERS[cls] = fn
        return fn
    return register


def _f32(a) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(getattr(a, "_data", a), dtype=np.float32))


def _pads(padding) -> list:
    """cnnlab ((top, bottom), (left, right)) or (ph, pw) -> ONNX [top, left, bottom, right]."""
    if isinstance(padding[0], (tuple, list)):
        (t, b), (l, r) = padding
    else:
        (t, l), (b, r) = padding, padding
    return [int(t), int(l), int(b), int(r)]


# --- convolution, dense ---------------------------------------------------------------------------
@exporter(nn.Conv2d)
def conv(b, layer, name, inputs, output, shapes):
    _, _, h, w = shapes[0]
    (t, bt), (l, r) = layer.resolved_padding(h, w)
    x = inputs[0]
    if layer.padding_mode != "zeros" and (t or bt or l or r):
        mode = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}[layer.padding_mode]
        if mode == "wrap" and b.opset < 19:
            raise OnnxExportError(f"layer {name} ({layer!r}): circular padding needs opset 19 or newer, "
                                  f"got {b.opset}")
        padded = b.tmp(f"{name}:pad")
        b.node("Pad", [x, b.const(f"{name}:pads", np.array([0, 0, t, l, 0, 0, bt, r], dtype=np.int64))],
               [padded], f"{name}:pad", mode=mode)
        x, (t, bt), (l, r) = padded, (0, 0), (0, 0)
    ins = [x, b.init(f"{name}.weight", layer.weight)]
    if layer.bias is not None:
        ins.append(b.init(f"{name}.bias", layer.bias))
    b.node("Conv", ins, [output], name, kernel_shape=list(layer.kernel_size), strides=list(layer.stride),
           pads=[t, l, bt, r], dilations=list(layer.dilation), group=layer.groups)


@exporter(nn.Linear)
def linear(b, layer, name, inputs, output, shapes):
    if len(shapes[0]) == 2:
        ins = [inputs[0], b.init(f"{name}.weight", layer.weight)]
        if layer.bias is not None:
            ins.append(b.init(f"{name}.bias", layer.bias))
        b.node("Gemm", ins, [output], name, transB=1)
        return
    # (*, in_features): MatMul by W^T (stored transposed), then the bias
    product = output if layer.bias is None else b.tmp(f"{name}:matmul")
    b.node("MatMul", [inputs[0], b.init(f"{name}.weight", _f32(layer.weight).T)], [product], name)
    if layer.bias is not None:
        b.node("Add", [product, b.init(f"{name}.bias", layer.bias)], [output], f"{name}:bias")


# --- shapes --------------------------------------------------------------------------------------
def _reshape_to(b, name, x, out_shape, output):
    b.node("Reshape", [x, b.const(f"{name}:shape", np.array([0, *out_shape[1:]], dtype=np.int64))],
           [output], name)


@exporter(nn.Flatten)
def flatten(b, layer, name, inputs, output, shapes):
    nd = len(shapes[0])
    if layer.start_dim % nd == 1 and layer.end_dim % nd == nd - 1:
        b.node("Flatten", inputs[:1], [output], name, axis=1)
    elif layer.start_dim % nd == 0:
        raise OnnxExportError(f"layer {name} ({layer!r}) flattens the batch dimension")
    else:
        _reshape_to(b, name, inputs[0], layer.output_shape(shapes[0]), output)


@exporter(Reshape)
def reshape(b, layer, name, inputs, output, shapes):
    b.node("Reshape", [inputs[0], b.const(f"{name}:shape", np.array([0, *layer.shape], dtype=np.int64))],
           [output], name)


@exporter(nn.Permute)
def permute(b, layer, name, inputs, output, shapes):
    if layer.dims[0] != 0:
        raise OnnxExportError(f"layer {name} ({layer!r}) moves the batch dimension")
    b.node("Transpose", inputs[:1], [output], name, perm=list(layer.dims))


@exporter(nn.Unflatten)
def unflatten(b, layer, name, inputs, output, shapes):
    if layer.dim % len(shapes[0]) == 0:
        raise OnnxExportError(f"layer {name} ({layer!r}) splits the batch dimension")
    _reshape_to(b, name, inputs[0], layer.output_shape(shapes[0]), output)


@exporter(nn.Pad, nn.ConstantPad2d, nn.ZeroPad2d, nn.ReflectionPad2d, nn.ReplicationPad2d)
def pad(b, layer, name, inputs, output, shapes):
    nd = len(shapes[0])
    begin, end = [0] * nd, [0] * nd
    for k in range(len(layer.padding) // 2):
        begin[nd - 1 - k], end[nd - 1 - k] = layer.padding[2 * k], layer.padding[2 * k + 1]
    mode = {"constant": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}[layer.mode]
    if mode == "wrap" and b.opset < 19:
        raise OnnxExportError(f"layer {name} ({layer!r}): circular padding needs opset 19 or newer, got {b.opset}")
    ins = [inputs[0], b.const(f"{name}:pads", np.array(begin + end, dtype=np.int64))]
    if layer.mode == "constant" and getattr(layer, "value", 0.0):
        ins.append(b.const(f"{name}:value", np.array(layer.value, dtype=np.float32)))
    b.node("Pad", ins, [output], name, mode=mode)


# --- pooling -------------------------------------------------------------------------------------
def _pool(b, op, layer, name, x, output, dilation=True, **extra):
    attrs = dict(kernel_shape=list(layer.kernel_size), strides=list(layer.stride), pads=_pads(layer.padding),
                 ceil_mode=int(layer.ceil_mode), **extra)
    if dilation and tuple(layer.dilation) != (1, 1):
        attrs["dilations"] = list(layer.dilation)
    b.node(op, [x], [output], name, **attrs)


@exporter(nn.MaxPool2d)
def max_pool(b, layer, name, inputs, output, shapes):
    _pool(b, "MaxPool", layer, name, inputs[0], output)


@exporter(nn.MinPool2d)
def min_pool(b, layer, name, inputs, output, shapes):
    neg, pooled = b.tmp(f"{name}:neg"), b.tmp(f"{name}:pool")
    b.node("Neg", inputs[:1], [neg], f"{name}:neg")
    _pool(b, "MaxPool", layer, name, neg, pooled)
    b.node("Neg", [pooled], [output], f"{name}:negback")


@exporter(nn.AvgPool2d)
def avg_pool(b, layer, name, inputs, output, shapes):
    _pool(b, "AveragePool", layer, name, inputs[0], output, dilation=False,
          count_include_pad=int(layer.count_include_pad))


def _adaptive(b, layer, name, inputs, output, shapes, op, global_op):
    from ..functional.pool import _uniform_windows
    _, _, h, w = shapes[0]
    oh, ow = layer.output_shape(shapes[0])[2:]
    if (oh, ow) == (1, 1):
        b.node(global_op, inputs[:1], [output], name)
        return
    uh, uw = _uniform_windows(h, oh), _uniform_windows(w, ow)
    if uh is None or uw is None:
        raise OnnxExportError(f"layer {name} ({layer!r}): windows of unequal size for input {shapes[0]} have no "
                              f"ONNX pooling op; use an input size divisible by the output size")
    b.node(op, inputs[:1], [output], name, kernel_shape=[uh[0], uw[0]], strides=[uh[1], uw[1]])


@exporter(nn.AdaptiveAvgPool2d)
def adaptive_avg(b, layer, name, inputs, output, shapes):
    _adaptive(b, layer, name, inputs, output, shapes, "AveragePool", "GlobalAveragePool")


@exporter(nn.AdaptiveMaxPool2d)
def adaptive_max(b, layer, name, inputs, output, shapes):
    _adaptive(b, layer, name, inputs, output, shapes, "MaxPool", "GlobalMaxPool")


@exporter(nn.GlobalAvgPool2d, nn.GlobalMaxPool2d)
def global_pool(b, layer, name, inputs, output, shapes):
    pooled = b.tmp(f"{name}:pool")
    op = "GlobalMaxPool" if isinstance(layer, nn.GlobalMaxPool2d) else "GlobalAveragePool"
    b.node(op, inputs[:1], [pooled], name)
    b.node("Flatten", [pooled], [output], f"{name}:flatten", axis=1)


# --- activations -------------------------------------------------------------------------------
def _same(op):
    def export(b, layer, name, inputs, output, shapes):
        b.node(op, inputs[:1], [output], name)
    return export


for _cls, _op in ((nn.ReLU, "Relu"), (nn.Sigmoid, "Sigmoid"), (nn.Tanh, "Tanh"), (nn.Erf, "Erf"),
                  (nn.Identity, "Identity"), (nn.Dropout, "Identity"), (nn.Dropout2d, "Identity")):
    EXPORTERS[_cls] = _same(_op)


@exporter(nn.LeakyReLU)
def leaky_relu(b, layer, name, inputs, output, shapes):
    b.node("LeakyRelu", inputs[:1], [output], name, alpha=float(layer.negative_slope))


@exporter(nn.Softmax, nn.LogSoftmax)
def softmax(b, layer, name, inputs, output, shapes):
    op = "LogSoftmax" if isinstance(layer, nn.LogSoftmax) else "Softmax"
    b.node(op, inputs[:1], [output], name, axis=int(layer.dim))


@exporter(nn.Hardtanh, nn.ReLU6)
def hardtanh(b, layer, name, inputs, output, shapes):
    b.node("Clip", [inputs[0], b.const(f"{name}:min", np.array(layer.min_val, dtype=np.float32)),
                    b.const(f"{name}:max", np.array(layer.max_val, dtype=np.float32))], [output], name)


@exporter(nn.Hardsigmoid)
def hardsigmoid(b, layer, name, inputs, output, shapes):
    b.node("HardSigmoid", inputs[:1], [output], name, alpha=layer.alpha, beta=layer.beta)


@exporter(nn.Hardswish)
def hardswish(b, layer, name, inputs, output, shapes):
    if b.opset >= 14:
        b.node("HardSwish", inputs[:1], [output], name)
        return
    gate = b.tmp(f"{name}:gate")
    b.node("HardSigmoid", inputs[:1], [gate], f"{name}:gate", alpha=1 / 6, beta=0.5)
    b.node("Mul", [inputs[0], gate], [output], name)


@exporter(nn.PReLU)
def prelu(b, layer, name, inputs, output, shapes):
    weight = _f32(layer.weight)
    if layer.num_parameters > 1:
        weight = weight.reshape((-1,) + (1,) * (len(shapes[0]) - 2))
    b.node("PRelu", [inputs[0], b.init(f"{name}.weight", weight)], [output], name)


@exporter(nn.GELU)
def gelu(b, layer, name, inputs, output, shapes):
    x = inputs[0]
    if b.opset >= 20:
        b.node("Gelu", [x], [output], name, approximate=layer.approximate)
        return
    half = b.const(f"{name}:half", np.array(0.5, dtype=np.float32))
    one = b.const(f"{name}:one", np.array(1.0, dtype=np.float32))
    if layer.approximate == "none":  # x * 0.5 * (1 + erf(x / sqrt 2)), as PyTorch's exporter writes it
        scaled, e, e1, hx = (b.tmp(f"{name}:{k}") for k in ("scaled", "erf", "erf1", "halfx"))
        b.node("Div", [x, b.const(f"{name}:sqrt2", np.array(math.sqrt(2), dtype=np.float32))], [scaled],
               f"{name}:div")
        b.node("Erf", [scaled], [e], f"{name}:erf")
        b.node("Add", [e, one], [e1], f"{name}:add")
        b.node("Mul", [x, half], [hx], f"{name}:half")
        b.node("Mul", [hx, e1], [output], name)
        return
    cube, inner, inner2, th, th1, hx = (b.tmp(f"{name}:{k}") for k in ("cube", "in", "in2", "tanh", "t1", "hx"))
    b.node("Pow", [x, b.const(f"{name}:three", np.array(3.0, dtype=np.float32))], [cube], f"{name}:pow")
    c3 = b.tmp(f"{name}:c3")
    b.node("Mul", [cube, b.const(f"{name}:k", np.array(0.044715, dtype=np.float32))], [c3], f"{name}:mulk")
    b.node("Add", [x, c3], [inner], f"{name}:addc")
    b.node("Mul", [inner, b.const(f"{name}:s", np.array(math.sqrt(2 / math.pi), dtype=np.float32))], [inner2],
           f"{name}:muls")
    b.node("Tanh", [inner2], [th], f"{name}:tanh")
    b.node("Add", [th, one], [th1], f"{name}:add1")
    b.node("Mul", [x, half], [hx], f"{name}:half")
    b.node("Mul", [hx, th1], [output], name)


@exporter(nn.GLU)
def glu(b, layer, name, inputs, output, shapes):
    half = shapes[0][layer.dim] // 2
    a, g, s = b.tmp(f"{name}:a"), b.tmp(f"{name}:b"), b.tmp(f"{name}:sig")
    b.node("Split", [inputs[0], b.const(f"{name}:split", np.array([half, half], dtype=np.int64))], [a, g],
           f"{name}:split", axis=int(layer.dim))
    b.node("Sigmoid", [g], [s], f"{name}:sigmoid")
    b.node("Mul", [a, s], [output], name)


# --- normalisation ------------------------------------------------------------------------------
@exporter(nn.BatchNorm2d, nn.BatchNorm1d)
def batch_norm(b, layer, name, inputs, output, shapes):
    if not layer.track_running_stats:
        raise OnnxExportError(f"layer {name} ({layer!r}) has no running statistics (track_running_stats=False)")
    c = layer.num_features
    weight = layer.weight if layer.weight is not None else np.ones(c, np.float32)
    bias = layer.bias if layer.bias is not None else np.zeros(c, np.float32)
    b.node("BatchNormalization", [inputs[0], b.init(f"{name}.weight", weight), b.init(f"{name}.bias", bias),
                                  b.init(f"{name}.running_mean", layer.running_mean),
                                  b.init(f"{name}.running_var", layer.running_var)],
           [output], name, epsilon=float(layer.eps), momentum=1 - float(layer.momentum or 0.1))


# --- arithmetic and merges ----------------------------------------------------------------------
@exporter(nn.Elementwise)
def elementwise(b, layer, name, inputs, output, shapes):
    c = b.init(f"{name}.constant", layer.constant)
    op = {"add": "Add", "sub": "Sub", "mul": "Mul", "div": "Div", "pow": "Pow"}[layer.op]
    b.node(op, [c, inputs[0]] if layer.reverse else [inputs[0], c], [output], name)


_MERGE_OPS = {Add: "Add", Sub: "Sub", Mul: "Mul", Div: "Div"}


@exporter(*_MERGE_OPS)
def merge(b, layer, name, inputs, output, shapes):
    op = _MERGE_OPS[type(layer)]
    if getattr(layer, "constant", None) is None:
        b.node(op, list(inputs), [output], name)
        return
    c = b.const(f"{name}:constant", np.array(layer.constant, dtype=np.float32))
    b.node(op, [c, inputs[0]] if layer.reverse else [inputs[0], c], [output], name)


@exporter(Mean)
def mean(b, layer, name, inputs, output, shapes):
    axes = [d % len(shapes[0]) for d in layer.dim]
    if b.opset >= 18:
        b.node("ReduceMean", [inputs[0], b.const(f"{name}:axes", np.array(axes, dtype=np.int64))], [output],
               name, keepdims=int(layer.keepdim))
    else:
        b.node("ReduceMean", inputs[:1], [output], name, axes=axes, keepdims=int(layer.keepdim))


@exporter(Concat)
def concat(b, layer, name, inputs, output, shapes):
    b.node("Concat", list(inputs), [output], name, axis=int(layer.dim))


# --- transposed convolution, resizing ---------------------------------------------------------
@exporter(nn.ConvTranspose2d)
def conv_transpose(b, layer, name, inputs, output, shapes):
    (ph, pw), (oph, opw) = layer.padding, layer.output_padding
    ins = [inputs[0], b.init(f"{name}.weight", layer.weight)]
    if layer.bias is not None:
        ins.append(b.init(f"{name}.bias", layer.bias))
    b.node("ConvTranspose", ins, [output], name, kernel_shape=list(layer.kernel_size), strides=list(layer.stride),
           pads=[ph, pw, ph, pw], output_padding=[oph, opw], dilations=list(layer.dilation), group=layer.groups)


_RESIZE_MODES = {  # cnnlab mode, align_corners -> ONNX (mode, coordinate_transformation_mode, nearest_mode)
    ("nearest", None): ("nearest", "asymmetric", "floor"),
    ("nearest-exact", None): ("nearest", "half_pixel", "round_prefer_ceil"),
    ("bilinear", None): ("linear", "pytorch_half_pixel", "floor"),
    ("bilinear", False): ("linear", "pytorch_half_pixel", "floor"),
    ("bilinear", True): ("linear", "align_corners", "floor"),
}


@exporter(nn.Upsample, nn.UpsamplingNearest2d, nn.UpsamplingBilinear2d)
def upsample(b, layer, name, inputs, output, shapes):
    mode, coords, nearest = _RESIZE_MODES[(layer.mode, layer.align_corners)]
    empty = b.const(f"{name}:roi", np.zeros(0, dtype=np.float32))
    if layer.size is None and not layer.recompute_scale_factor:
        sf = layer.scale_factor if isinstance(layer.scale_factor, tuple) else (layer.scale_factor,) * 2
        scales = b.const(f"{name}:scales", np.array([1.0, 1.0, *sf], dtype=np.float32))
        ins = [inputs[0], empty, scales]
    else:  # a fixed size: (N, C) from the input's shape, then (H_out, W_out)
        h, w = layer.output_shape(shapes[0])[2:]
        shape, nc, sizes = b.tmp(f"{name}:shape"), b.tmp(f"{name}:nc"), b.tmp(f"{name}:sizes")
        b.node("Shape", inputs[:1], [shape], f"{name}:shape")
        b.node("Slice", [shape, b.const(f"{name}:start", np.array([0], dtype=np.int64)),
                         b.const(f"{name}:end", np.array([2], dtype=np.int64))], [nc], f"{name}:nc")
        b.node("Concat", [nc, b.const(f"{name}:hw", np.array([h, w], dtype=np.int64))], [sizes], f"{name}:sizes",
               axis=0)
        ins = [inputs[0], empty, b.const(f"{name}:noscales", np.zeros(0, dtype=np.float32)), sizes]
    b.node("Resize", ins, [output], name, mode=mode, coordinate_transformation_mode=coords, nearest_mode=nearest)


# --- per-sample normalisation and slicing ---------------------------------------------------------
_INT64_MAX, _INT64_MIN = np.iinfo(np.int64).max, np.iinfo(np.int64).min


@exporter(nn.Slice)
def slice_(b, layer, name, inputs, output, shapes):
    end = layer.end if layer.end is not None else (_INT64_MAX if layer.step > 0 else _INT64_MIN)
    consts = [b.const(f"{name}:{k}", np.array([v], dtype=np.int64))
              for k, v in (("starts", layer.start), ("ends", end), ("axes", layer.dim), ("steps", layer.step))]
    b.node("Slice", [inputs[0], *consts], [output], name)


def _affine_or(b, layer, name, attr, shape, fill):
    value = getattr(layer, attr)
    if value is not None:
        return b.init(f"{name}.{attr}", value)
    return b.const(f"{name}:{attr}", np.full(shape, fill, dtype=np.float32))


@exporter(nn.LayerNorm)
def layer_norm(b, layer, name, inputs, output, shapes):
    k = len(layer.normalized_shape)
    shape = layer.normalized_shape
    scale = _affine_or(b, layer, name, "weight", shape, 1.0)
    if b.opset >= 17:
        ins = [inputs[0], scale] + ([b.init(f"{name}.bias", layer.bias)] if layer.bias is not None else [])
        b.node("LayerNormalization", ins, [output], name, axis=-k, epsilon=float(layer.eps))
        return
    # opsets 13-16: written out (mean, centred square, mean, sqrt, divide, scale, shift)
    axes = list(range(len(shapes[0]) - k, len(shapes[0])))
    mu, centred, sq, var, std, normed = (b.tmp(f"{name}:{t}") for t in ("mean", "centred", "sq", "var", "std",
                                                                            "normed"))
    b.node("ReduceMean", [inputs[0]], [mu], f"{name}:mean", axes=axes, keepdims=1)
    b.node("Sub", [inputs[0], mu], [centred], f"{name}:sub")
    b.node("Mul", [centred, centred], [sq], f"{name}:square")
    b.node("ReduceMean", [sq], [var], f"{name}:var", axes=axes, keepdims=1)
    veps = b.tmp(f"{name}:veps")
    b.node("Add", [var, b.const(f"{name}:eps", np.array(layer.eps, dtype=np.float32))], [veps], f"{name}:eps")
    b.node("Sqrt", [veps], [std], f"{name}:sqrt")
    b.node("Div", [centred, std], [normed], f"{name}:div")
    if layer.bias is None:
        b.node("Mul", [normed, scale], [output], name)
        return
    scaled = b.tmp(f"{name}:scaled")
    b.node("Mul", [normed, scale], [scaled], f"{name}:scale")
    b.node("Add", [scaled, b.init(f"{name}.bias", layer.bias)], [output], name)


@exporter(nn.InstanceNorm1d, nn.InstanceNorm2d)
def instance_norm(b, layer, name, inputs, output, shapes):
    c = layer.num_features
    b.node("InstanceNormalization", [inputs[0], _affine_or(b, layer, name, "weight", (c,), 1.0),
                                     _affine_or(b, layer, name, "bias", (c,), 0.0)],
           [output], name, epsilon=float(layer.eps))


@exporter(nn.GroupNorm)
def group_norm(b, layer, name, inputs, output, shapes):
    """As PyTorch writes it for every opset: instance norm of (N, G, -1), then the per-channel affine."""
    g, c = layer.num_groups, layer.num_channels
    grouped, normed, back = b.tmp(f"{name}:grouped"), b.tmp(f"{name}:normed"), b.tmp(f"{name}:back")
    b.node("Reshape", [inputs[0], b.const(f"{name}:groups", np.array([0, g, -1], dtype=np.int64))], [grouped],
           f"{name}:group")
    b.node("InstanceNormalization", [grouped, b.const(f"{name}:ones", np.ones(g, np.float32)),
                                     b.const(f"{name}:zeros", np.zeros(g, np.float32))],
           [normed], f"{name}:norm", epsilon=float(layer.eps))
    if not layer.affine:
        _reshape_to(b, name, normed, shapes[0], output)
        return
    _reshape_to(b, f"{name}:ungroup", normed, shapes[0], back)
    per_channel = (c,) + (1,) * (len(shapes[0]) - 2)
    scaled = b.tmp(f"{name}:scaled")
    b.node("Mul", [back, b.const(f"{name}.weight", _f32(layer.weight).reshape(per_channel))], [scaled],
           f"{name}:scale")
    b.node("Add", [scaled, b.const(f"{name}.bias", _f32(layer.bias).reshape(per_channel))], [output], name)
