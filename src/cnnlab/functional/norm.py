"""Normalisations over each sample's own values: layer, group and instance norm.

Unlike batch norm, these never mix images: each one normalises groups of one
sample's values to zero mean and unit (biased) variance, then scales and shifts,
in training and evaluation alike.  They differ only in which values form a group:

* ``layer_norm``: the last dimensions (``normalized_shape``): ConvNeXt, transformers;
* ``group_norm``: ``C / num_groups`` channels of one image, with their pixels;
* ``instance_norm``: one channel of one image.

Forward and backward side by side, as everywhere in ``cnnlab.functional``; the
shared backward of the normalisation step is
``dx = rstd * (g - mean(g) - y * mean(g * y))`` over each group.
"""
from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np

from ..tensor import Tensor, as_tensor

__all__ = ["layer_norm", "group_norm", "instance_norm"]


def _float(input, op: str) -> Tensor:
    x = as_tensor(input)
    if x.dtype.kind != "f":
        raise TypeError(f"{op}: expected a floating point input (float32 or float64), got dtype {x.dtype}")
    return x


def _normalise(x: Tensor, axes: Tuple[int, ...], eps: float) -> Tensor:
    """``(x - mean) / sqrt(var + eps)`` over ``axes`` (biased variance)."""
    d = x._data
    mu = d.mean(axis=axes, keepdims=True)
    centered = d - mu
    var = np.mean(centered * centered, axis=axes, keepdims=True)
    rstd = (1.0 / np.sqrt(var + eps)).astype(d.dtype, copy=False)
    y = centered * rstd

    def backward(g):
        gy = np.mean(g * y, axis=axes, keepdims=True)
        return (rstd * (g - g.mean(axis=axes, keepdims=True) - y * gy),)

    return Tensor.from_op(y, (x,), backward, "normalise")


def _affine(y: Tensor, weight, bias, shape: tuple) -> Tensor:
    """``y * weight + bias`` with the two reshaped to ``shape`` (broadcasting against ``y``)."""
    if weight is not None:
        y = y * as_tensor(weight).reshape(shape)
    if bias is not None:
        y = y + as_tensor(bias).reshape(shape)
    return y


def _check_param(op: str, name: str, value, expected: tuple, input_shape: tuple) -> None:
    if value is not None and tuple(np.shape(getattr(value, "_data", value))) != tuple(expected):
        raise ValueError(f"{op}: expected {name} of shape {tuple(expected)} for input of shape {input_shape}, "
                         f"got {tuple(np.shape(getattr(value, '_data', value)))}")


def layer_norm(input, normalized_shape: Sequence[int], weight=None, bias=None, eps: float = 1e-5) -> Tensor:
    """Normalise over the last ``len(normalized_shape)`` dimensions, as ``torch.nn.functional.layer_norm``.

    Shape: input ``(*, *normalized_shape)``; weight and bias ``normalized_shape``; output as the input.
    """
    x = _float(input, "layer_norm")
    shape = (int(normalized_shape),) if isinstance(normalized_shape, (int, np.integer)) else \
        tuple(int(s) for s in normalized_shape)
    k = len(shape)
    if k == 0 or x.ndim < k or tuple(x.shape[x.ndim - k:]) != shape:
        raise ValueError(f"layer_norm: input of shape {tuple(x.shape)} does not end with normalized_shape "
                         f"{shape}")
    for name, value in (("weight", weight), ("bias", bias)):
        _check_param("layer_norm", name, value, shape, tuple(x.shape))
    y = _normalise(x, tuple(range(x.ndim - k, x.ndim)), eps)
    return _affine(y, weight, bias, shape)


def group_norm(input, num_groups: int, weight=None, bias=None, eps: float = 1e-5) -> Tensor:
    """Normalise groups of ``C / num_groups`` channels of each sample, as ``torch.nn.functional.group_norm``.

    Shape: input ``(N, C, *)`` with ``C`` divisible by ``num_groups``; weight and bias ``(C,)``.
    """
    x = _float(input, "group_norm")
    if x.ndim < 2:
        raise ValueError(f"group_norm: expected an input of shape (N, C, *), got {tuple(x.shape)}")
    n, c = x.shape[:2]
    if not isinstance(num_groups, (int, np.integer)) or num_groups < 1 or c % num_groups:
        raise ValueError(f"group_norm: num_groups must be a positive int dividing the {c} channels of input "
                         f"{tuple(x.shape)}, got {num_groups!r}")
    for name, value in (("weight", weight), ("bias", bias)):
        _check_param("group_norm", name, value, (c,), tuple(x.shape))
    grouped = x.reshape((n, int(num_groups), -1))
    y = _normalise(grouped, (2,), eps).reshape(x.shape)
    return _affine(y, weight, bias, (c,) + (1,) * (x.ndim - 2))


def instance_norm(input, weight=None, bias=None, eps: float = 1e-5) -> Tensor:
    """Normalise each channel of each sample over its positions (``torch.nn.functional.instance_norm``
    with ``use_input_stats=True``).

    Shape: input ``(N, C, *)`` with at least one position dimension; weight and bias ``(C,)``.
    """
    x = _float(input, "instance_norm")
    if x.ndim < 3:
        raise ValueError(f"instance_norm: expected an input of shape (N, C, L) or (N, C, H, W), got "
                         f"{tuple(x.shape)}")
    c = x.shape[1]
    for name, value in (("weight", weight), ("bias", bias)):
        _check_param("instance_norm", name, value, (c,), tuple(x.shape))
    y = _normalise(x, tuple(range(2, x.ndim)), eps)
    return _affine(y, weight, bias, (c,) + (1,) * (x.ndim - 2))
