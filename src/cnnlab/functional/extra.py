"""Ops that imported networks use: padding of any axis, hard activations, PReLU, erf.

Forward and backward side by side, as everywhere in ``cnnlab.functional``.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..tensor import Tensor, as_tensor
from .activation import _float, erf as _erf_array

__all__ = ["pad", "hardsigmoid", "hardswish", "prelu", "erf", "PAD_MODES"]

PAD_MODES = ("constant", "reflect", "replicate", "circular")
_NUMPY_PAD = {"constant": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def _pad_widths(pad: Sequence[int], ndim: int, shape) -> list:
    """PyTorch's ``pad`` (last dimension first: ``(left, right, top, bottom, ...)``) -> NumPy's widths."""
    pad = [int(p) for p in pad]
    if len(pad) % 2 or len(pad) // 2 > ndim:
        raise ValueError(f"pad: padding length must be even and at most 2 * {ndim} (the input's "
                         f"dimensions), got {len(pad)} values {tuple(pad)} for input of shape {tuple(shape)}")
    if min(pad, default=0) < 0:
        raise ValueError(f"pad: negative padding (cropping) is not supported, got {tuple(pad)}")
    widths = [(0, 0)] * ndim
    for k in range(len(pad) // 2):
        widths[ndim - 1 - k] = (pad[2 * k], pad[2 * k + 1])
    from .._schema import check_tensor_size
    check_tensor_size([n + a + b for n, (a, b) in zip(shape, widths)], f"pad by {tuple(pad)}")  # before allocating
    return widths


def pad(input, pad: Sequence[int], mode: str = "constant", value: float = 0.0) -> Tensor:
    """Pad any dimensions, as ``torch.nn.functional.pad``.

    Args:
        pad: ``(left, right)`` for the last dimension, then ``(top, bottom)`` for the one
            before it, and so on (PyTorch's order).
        mode: ``'constant'`` (``value``), ``'reflect'`` (mirror without the edge),
            ``'replicate'`` (repeat the edge; ONNX's ``edge``) or ``'circular'`` (wrap).

    Shape: every padded dimension grows by its two amounts.
    """
    x = as_tensor(input)
    if mode not in PAD_MODES:
        raise ValueError(f"pad: mode must be one of {PAD_MODES}, got {mode!r}")
    widths = _pad_widths(pad, x.ndim, x.shape)
    if mode == "reflect":
        for axis, (a, b) in enumerate(widths):
            if max(a, b) >= x.shape[axis] and (a or b):
                raise ValueError(f"pad: reflect padding {(a, b)} of dimension {axis} must be smaller than its "
                                 f"size {x.shape[axis]} (input shape {tuple(x.shape)})")
    if mode == "constant":
        out = np.pad(x._data, widths, mode="constant", constant_values=x.dtype.type(value))
    else:
        out = np.pad(x._data, widths, mode=_NUMPY_PAD[mode])

    def backward(g):
        if mode == "constant":
            return (g[tuple(slice(a, a + n) for (a, _), n in zip(widths, x.shape))],)
        # Every padded position copies one source position: fold the gradient back axis by
        # axis with a scatter-add over the source index of each position (loops over axes only).
        for axis, (a, b) in enumerate(widths):
            if not (a or b):
                continue
            source = np.pad(np.arange(x.shape[axis]), (a, b), mode=_NUMPY_PAD[mode])
            moved = np.moveaxis(g, axis, 0)
            folded = np.zeros((x.shape[axis],) + moved.shape[1:], dtype=g.dtype)
            np.add.at(folded, source, moved)
            g = np.moveaxis(folded, 0, axis)
        return (g,)

    return Tensor.from_op(out, (x,), backward, "pad")


def hardsigmoid(input, alpha: float = 1 / 6, beta: float = 0.5) -> Tensor:
    """``max(0, min(1, alpha * x + beta))``; PyTorch's defaults (ONNX's are alpha=0.2, beta=0.5)."""
    x = _float(input, "hardsigmoid")
    a, b = x.dtype.type(alpha), x.dtype.type(beta)
    z = np.multiply(x._data, a, out=np.empty_like(x._data))   # an array even for a 0-d input
    z += b
    out = np.maximum(z, 0, out=np.empty_like(z))   # two ufuncs: faster than np.clip's wrapper
    np.minimum(out, 1, out=out)

    def backward(g):
        return (g * (((z > 0) & (z < 1)) * a),)

    return Tensor.from_op(out, (x,), backward, "hardsigmoid")


def hardswish(input) -> Tensor:
    """``x * relu6(x + 3) / 6``."""
    x = _float(input, "hardswish")
    d = x._data
    gate = np.divide(d, 6, out=np.empty_like(d))   # an array even for a 0-d input
    gate += x.dtype.type(0.5)
    np.maximum(gate, 0, out=gate)     # clip in place, without np.clip's wrapper
    np.minimum(gate, 1, out=gate)
    out = d * gate

    def backward(g):
        inside = (d > -3) & (d < 3)
        return (g * (gate + inside * (d / 6)),)

    return Tensor.from_op(out, (x,), backward, "hardswish")


def prelu(input, weight) -> Tensor:
    """``x if x > 0 else weight * x``; ``weight`` has 1 value or one per channel (dimension 1).

    Shape: input ``(N, C, *)``, weight ``(1,)`` or ``(C,)``; output as the input.
    """
    x, w = _float(input, "prelu"), as_tensor(weight)
    if w.ndim != 1 or (w.shape[0] != 1 and (x.ndim < 2 or w.shape[0] != x.shape[1])):
        raise ValueError(f"prelu: weight must have shape (1,) or (C,) with C = input.shape[1], got weight "
                         f"{tuple(w.shape)} for input {tuple(x.shape)}")
    shape = (1, -1) + (1,) * (x.ndim - 2) if x.ndim >= 2 else (-1,)
    slope = w._data.reshape(shape).astype(x.dtype, copy=False)
    positive = x._data > 0
    out = np.where(positive, x._data, x._data * slope)

    def backward(g):
        gx = g * np.where(positive, 1, slope) if x.requires_grad else None
        gw = None
        if w.requires_grad:
            per = np.where(positive, 0, g * x._data)
            axes = tuple(i for i in range(x.ndim) if i != 1 or w.shape[0] == 1)
            gw = per.sum(axis=axes).reshape(w.shape)
        return gx, gw

    return Tensor.from_op(out, (x, w), backward, "prelu")


def erf(input) -> Tensor:
    """The error function, elementwise; gradient ``2 / sqrt(pi) * exp(-x^2)``."""
    x = _float(input, "erf")
    out = _erf_array(x._data).astype(x.dtype, copy=False)
    scale = x.dtype.type(2 / np.sqrt(np.pi))
    return Tensor.from_op(out, (x,), lambda g: (g * scale * np.exp(-x._data * x._data),), "erf")
