"""Resizing feature maps: nearest-neighbour and bilinear interpolation (``F.interpolate``).

Both modes are separable: rows are resized, then columns.  Along one axis
each output pixel reads one input pixel (nearest) or blends two neighbours
(bilinear), so the forward is one or two gathers per axis (``np.take``) and
the backward adds each output gradient back onto the pixels it read
(``np.add.reduceat`` over runs of equal source index, which is valid because
the source indices only ever grow along the axis).  Source positions follow
PyTorch exactly (its ``align_corners`` and ``scale_factor`` conventions).
"""
from __future__ import annotations

import math
from typing import List, Optional, Tuple

import numpy as np

from ..tensor import Tensor, as_tensor
from ._layout import check_image_batch, to_chwn, to_nchw

MODES = ("nearest", "nearest-exact", "bilinear")


def _nearest_index(in_size: int, out_size: int, scale: Optional[float], exact: bool) -> np.ndarray:
    """Source pixel of each output pixel, computed in float32 as PyTorch's CPU kernel does."""
    dst = np.arange(out_size)
    if not exact and out_size == in_size:  # PyTorch copies an axis whose size does not change
        return dst
    if not exact and out_size == 2 * in_size:
        return dst >> 1
    ratio = np.float32(1.0 / scale) if scale else np.float32(in_size) / np.float32(out_size)
    pos = (dst.astype(np.float32) + np.float32(0.5)) * ratio if exact else dst.astype(np.float32) * ratio
    return np.minimum(np.floor(pos).astype(np.int64), in_size - 1)


def _linear_taps(in_size: int, out_size: int, scale: Optional[float], align_corners: bool):
    """``(i0, i1, w0, w1)``: output pixel = ``w0 * x[i0] + w1 * x[i1]`` (PyTorch's source positions)."""
    dst = np.arange(out_size, dtype=np.float64)
    if out_size == in_size:  # PyTorch copies an axis whose size does not change, whatever the scale
        index = np.arange(in_size)
        return index, index, np.ones(in_size), np.zeros(in_size)
    if align_corners:
        src = dst * ((in_size - 1) / (out_size - 1)) if out_size > 1 else np.zeros(out_size)
    else:
        ratio = 1.0 / scale if scale else in_size / out_size
        src = np.maximum((dst + 0.5) * ratio - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    i1 = np.minimum(i0 + 1, in_size - 1)
    w1 = src - i0
    return i0, i1, 1.0 - w1, w1


def _take(m: np.ndarray, index: np.ndarray, weight, axis: int) -> np.ndarray:
    out = np.take(m, index, axis=axis)
    if weight is not None:
        out *= weight.reshape((-1,) + (1,) * (m.ndim - axis - 1)).astype(m.dtype)
    return out


def _take_backward(g: np.ndarray, index: np.ndarray, weight, axis: int, in_size: int) -> np.ndarray:
    """Adjoint of :func:`_take`: add every output gradient onto the input pixel it read."""
    if weight is not None:
        g = g * weight.reshape((-1,) + (1,) * (g.ndim - axis - 1)).astype(g.dtype)
    sources, starts = np.unique(index, return_index=True)  # index is non-decreasing
    shape = list(g.shape)
    shape[axis] = in_size
    out = np.zeros(shape, dtype=g.dtype)
    where = [slice(None)] * g.ndim
    where[axis] = sources
    out[tuple(where)] = np.add.reduceat(g, starts, axis=axis)
    return out


def check_resize_args(size, scale_factor, recompute_scale_factor=None):
    """Validate ``size`` / ``scale_factor``; returns ``(sizes, scales)`` as pairs (one of them None)."""
    if (size is None) == (scale_factor is None):
        raise ValueError("only one of size or scale_factor should be defined" if size is not None
                         else "either size or scale_factor should be defined")
    if size is not None:
        sizes = tuple(size) if isinstance(size, (tuple, list)) else (size, size)
        if len(sizes) != 2 or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1
                                  for s in sizes):
            raise ValueError(f"`size` must be a positive int or a pair of positive ints (H, W), got {size!r}")
        if recompute_scale_factor:
            raise ValueError("recompute_scale_factor is not meaningful with an explicit size.")
        return (int(sizes[0]), int(sizes[1])), None
    scales = tuple(scale_factor) if isinstance(scale_factor, (tuple, list)) else (scale_factor, scale_factor)
    if len(scales) != 2 or any(isinstance(s, bool) or not isinstance(s, (int, float, np.number)) or not s > 0
                               for s in scales):
        raise ValueError(f"`scale_factor` must be a positive number or a pair of them, got {scale_factor!r}")
    return None, (float(scales[0]), float(scales[1]))


def output_size(x_shape, size=None, scale_factor=None, recompute_scale_factor=None) -> Tuple[Tuple[int, int], List]:
    """``((H_out, W_out), scales)`` for an input of ``x_shape`` ``(N, C, H, W)``; ``scales`` are what
    the kernel divides by (None: the ratio of the sizes)."""
    from .._schema import check_tensor_size
    sizes, scales = check_resize_args(size, scale_factor, recompute_scale_factor)
    if sizes is not None:
        check_tensor_size(tuple(x_shape[:2]) + tuple(sizes), f"interpolate to size {size!r}")
        return sizes, [None, None]
    out = tuple(int(math.floor(float(n) * s)) for n, s in zip(x_shape[2:], scales))
    if min(out) < 1:
        raise ValueError(f"interpolate: scale_factor {scale_factor!r} turns input of size {tuple(x_shape[2:])} "
                         f"into an empty output {out}")
    check_tensor_size(tuple(x_shape[:2]) + out, f"interpolate with scale_factor {scale_factor!r}")
    return out, [None, None] if recompute_scale_factor else list(scales)


def interpolate(input, size=None, scale_factor=None, mode: str = "nearest",
                align_corners: Optional[bool] = None,
                recompute_scale_factor: Optional[bool] = None) -> Tensor:
    """Resize images to ``size`` or by ``scale_factor`` (``torch.nn.functional.interpolate``, 2-D).

    Args:
        input: ``(N, C, H, W)``.
        size: output ``(H_out, W_out)`` or one int for both.
        scale_factor: a number or ``(sH, sW)``; ``H_out = floor(H * sH)``.
        mode: ``'nearest'`` (source ``floor(dst * H / H_out)``), ``'nearest-exact'``
            (``floor((dst + 0.5) * H / H_out)``) or ``'bilinear'``.
        align_corners: bilinear only: True maps the corner pixels onto each other
            (source ``dst * (H - 1) / (H_out - 1)``); False (default) maps pixel
            centres (``(dst + 0.5) * H / H_out - 0.5``).
        recompute_scale_factor: use the output size rather than ``scale_factor``
            to place the source pixels.

    Shape: ``(N, C, H, W) -> (N, C, H_out, W_out)``.
    """
    x = as_tensor(input)
    check_image_batch(x._data, "interpolate")
    if mode not in MODES:
        raise ValueError(f"interpolate: mode must be one of {MODES}, got {mode!r}")
    if mode != "bilinear" and align_corners is not None:
        raise ValueError("align_corners option can only be set with the interpolating modes: "
                         f"linear | bilinear | bicubic | trilinear, got mode={mode!r}")
    (out_h, out_w), scales = output_size(x.shape, size, scale_factor, recompute_scale_factor)
    N, C, H, W = x.shape
    if mode == "bilinear":
        taps = [_linear_taps(n, o, s, bool(align_corners)) for n, o, s in zip((H, W), (out_h, out_w), scales)]
        plan = [[(i0, w0), (i1, w1)] for i0, i1, w0, w1 in taps]
    else:
        exact = mode == "nearest-exact"
        plan = [[(_nearest_index(n, o, s, exact), None)] for n, o, s in zip((H, W), (out_h, out_w), scales)]

    def resize(m, axis, reads):
        out = _take(m, *reads[0], axis)
        for index, weight in reads[1:]:
            out += _take(m, index, weight, axis)
        return out

    m = to_chwn(x._data)                      # (C, H, W, N): axis 1 is H, axis 2 is W
    rows = resize(m, 1, plan[0])
    out = resize(rows, 2, plan[1])
    del rows

    def backward(g):
        gm = to_chwn(g)
        g_rows = sum(_take_backward(gm, index, weight, 2, W) for index, weight in plan[1])
        return (to_nchw(sum(_take_backward(g_rows, index, weight, 1, H) for index, weight in plan[0])),)

    return Tensor.from_op(to_nchw(out), (x,), backward, "interpolate")


def upsample(input, size=None, scale_factor=None, mode: str = "nearest", align_corners=None) -> Tensor:
    """Deprecated name in PyTorch, kept for old scripts: :func:`interpolate`."""
    return interpolate(input, size, scale_factor, mode, align_corners)


__all__ = ["interpolate", "upsample", "output_size", "check_resize_args", "MODES"]
