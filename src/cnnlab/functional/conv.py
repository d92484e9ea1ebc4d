"""2-D convolution (cross-correlation, as in every deep-learning library).

The seed articles' arithmetic: a kernel slides over the image; at each stop
the overlapping numbers are multiplied and summed into one pixel of the
feature map, e.g. ``(0x0) + (1x1) + (3x2) + (4x3) = 19``.  Done pixel by pixel
that is millions of Python steps, so cnnlab gathers, for every kernel tap
(i, j), the strided view of the input that tap sees ("im2col", one copy per
tap, never per pixel) and turns the multiply-and-sum of all stops into a
single matrix product (GEMM) that BLAS runs on every core.
"""
from __future__ import annotations

import numpy as np

from ..tensor import Tensor, as_tensor
from ._layout import (PADDING_MODES, check_image_batch, pad_chwn, pad_chwn_backward, tap, to_chwn,
                      to_nchw)
from ._workspace import give, take
from .shape import conv_output_size, conv_padding, positive_pair


def _im2col(xp: np.ndarray, kh: int, kw: int, out_h: int, out_w: int, stride, dilation) -> np.ndarray:
    """(C, kh, kw, OH, OW, N) columns of padded (C, H, W, N) memory, one copy per kernel tap."""
    C, N = xp.shape[0], xp.shape[3]
    cols = take((C, kh, kw, out_h, out_w, N), xp.dtype)
    for i in range(kh):
        for j in range(kw):
            cols[:, i, j] = tap(xp, i, j, out_h, out_w, stride, dilation)
    return cols


_BLOCK_ELEMENTS = 1 << 20  # ~4 MiB of float32 column gradients per block: stays in cache


def _input_grad(w_mat: np.ndarray, g_mat: np.ndarray, cols_shape, padded_shape, stride,
                dilation) -> np.ndarray:
    """Gradient of the padded input: ``W^T @ grad`` scattered back tap by tap (col2im).

    Done a band of output rows at a time, so each band's column gradients are
    added into the input gradient while still in cache, instead of writing
    and re-reading a buffer kH*kW times the size of the input.
    """
    G, Og, K = w_mat.shape
    C, kh, kw, out_h, out_w, N = cols_shape
    (sh, sw), (dh, dw) = stride, dilation
    row = out_w * N
    band = max(1, min(out_h, _BLOCK_ELEMENTS // (G * K * row)))
    w_t = w_mat.transpose(0, 2, 1)
    g_rows = g_mat.reshape(G, Og, out_h, row)
    dxp = np.zeros(padded_shape, dtype=g_mat.dtype)
    for r0 in range(0, out_h, band):
        rows = min(band, out_h - r0)
        g_band = g_rows[:, :, r0:r0 + rows].reshape(G, Og, rows * row)
        d = np.matmul(w_t, g_band) if G > 1 else (w_t[0] @ g_band[0])[None]
        d = d.reshape(C, kh, kw, rows, out_w, N)
        for i in range(kh):
            top = r0 * sh + i * dh
            for j in range(kw):
                left = j * dw
                dxp[:, top:top + sh * (rows - 1) + 1:sh, left:left + sw * (out_w - 1) + 1:sw] += d[:, i, j]
    return dxp


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups: int = 1,
           padding_mode: str = "zeros") -> Tensor:
    """Slide ``weight`` over ``input``: multiply-and-sum at every stop.

    Args:
        input: ``(N, C_in, H, W)`` images.
        weight: ``(C_out, C_in / groups, kH, kW)`` kernels, one per output channel.
        bias: optional ``(C_out,)``, added to every pixel of its feature map.
        stride: step between stops, int or ``(sH, sW)``.
        padding: int, ``(pH, pW)``, asymmetric ``((top, bottom), (left, right))``,
            ``'valid'`` (none) or ``'same'`` (output ``ceil(H / sH)``, also with
            stride > 1; an odd extra pixel goes to the bottom/right, as
            TensorFlow and ONNX SAME_UPPER).
        dilation: spacing between kernel taps, int or pair.
        groups: split channels into this many independent convolutions.
        padding_mode: ``'zeros'``, ``'reflect'``, ``'replicate'`` or ``'circular'``.

    Shape:
        - input: ``(N, C_in, H, W)``; weight ``(C_out, C_in/groups, kH, kW)``
        - output: ``(N, C_out, H_out, W_out)`` where, with padding ``P_top + P_bottom``,
          ``H_out = floor((H + P_top + P_bottom - dilation*(kH - 1) - 1) / sH) + 1``
          (the seeds' ``(W + 2P - K) / S + 1``; see :func:`conv_output_size`).

    The returned tensor is an NCHW view of (C, H, W, N) memory (see ``tensor.py``).
    """
    x, w = as_tensor(input), as_tensor(weight)
    b = None if bias is None else as_tensor(bias)
    check_image_batch(x.data, "conv2d")
    if w.ndim != 4:
        raise ValueError(f"conv2d: expected weight of shape (out_channels, in_channels/groups, kH, kW), "
                         f"got shape {tuple(w.shape)}")
    if w.dtype != x.dtype:
        raise TypeError(f"conv2d: input and weight must have the same dtype, got input {x.dtype} "
                        f"and weight {w.dtype}")
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")
    if not isinstance(groups, int) or groups < 1:
        raise ValueError(f"`groups` must be a positive int, got {groups!r}")
    N, C, H, W = x.shape
    O, Cg, kh, kw = w.shape
    if C != Cg * groups:
        raise ValueError(f"Given groups={groups}, weight of size {list(w.shape)}, expected input"
                         f"{list(x.shape)} to have {Cg * groups} channels, but got {C} channels instead")
    if O % groups:
        raise ValueError(f"`out_channels` (={O}) must be divisible by `groups` (={groups})")
    if b is not None and b.shape != (O,):
        raise ValueError(f"conv2d: expected bias of shape ({O},), got {tuple(b.shape)}")
    stride, dilation = positive_pair(stride, "stride"), positive_pair(dilation, "dilation")
    pad_h, pad_w = conv_padding(padding, (H, W), (kh, kw), stride, dilation)
    out_h = conv_output_size(H, kh, stride[0], pad_h, dilation[0])
    out_w = conv_output_size(W, kw, stride[1], pad_w, dilation[1])

    xp = pad_chwn(to_chwn(x.data), pad_h, pad_w, padding_mode)
    cols = _im2col(xp, kh, kw, out_h, out_w, stride, dilation)
    positions = out_h * out_w * N
    G, Og, K = groups, O // groups, Cg * kh * kw
    w_mat = w.data.reshape(G, Og, K)
    col_mat = cols.reshape(G, K, positions)
    out = np.matmul(w_mat, col_mat) if G > 1 else (w_mat[0] @ col_mat[0])[None]
    if b is not None:
        out += b.data.reshape(G, Og, 1)
    out = out.reshape(O, out_h, out_w, N)

    released = False

    def backward(g):
        nonlocal released
        if released:
            raise RuntimeError("conv2d: backward through the same graph a second time; the saved "
                               "columns were freed after the first backward (run the forward again)")
        g_mat = to_chwn(g).reshape(G, Og, positions)
        gx = gw = gb = None
        if w.requires_grad:
            gw = np.matmul(g_mat, col_mat.transpose(0, 2, 1)).reshape(w.shape)
        if b is not None and b.requires_grad:
            gb = g_mat.sum(axis=2).reshape(O)
        if x.requires_grad:
            dxp = _input_grad(w_mat, g_mat, cols.shape, xp.shape, stride, dilation)
            gx = to_nchw(pad_chwn_backward(dxp, (C, H, W, N), pad_h, pad_w, padding_mode))
        released = True
        give(cols)
        return (gx, gw) if b is None else (gx, gw, gb)

    parents = (x, w) if b is None else (x, w, b)
    result = Tensor.from_op(to_nchw(out), parents, backward, "conv2d")
    if result._backward is None:  # no graph recorded: nothing will read the columns again
        give(cols)
    return result
