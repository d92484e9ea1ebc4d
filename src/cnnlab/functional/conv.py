"""2-D convolution (cross-correlation, as in every deep-learning library).

The seed articles' arithmetic: a kernel slides over the image; at each stop
the overlapping numbers are multiplied and summed into one pixel of the
feature map, e.g. ``(0x0) + (1x1) + (3x2) + (4x3) = 19``.  Done pixel by pixel
that is millions of Python steps, so cnnlab copies every stop's window into
one column of a matrix ("im2col": a strided view of the input and one copy,
never a loop over pixels) and turns the multiply-and-sum of all stops into a
single matrix product (GEMM) that BLAS runs on every core.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..threads import for_work
from ..tensor import Tensor, as_tensor
from ._layout import (PADDING_MODES, check_image_batch, check_padding_fits, pad_chwn, pad_chwn_backward, tap,
                      to_chwn, to_nchw)
from ._workspace import give, take
from .shape import (conv_output_size, conv_padding, conv_transpose_output_size, pair,
                    positive_pair)


def _im2col(xp: np.ndarray, kh: int, kw: int, r0: int, rows: int, out_w: int, stride, dilation,
            out: np.ndarray = None) -> np.ndarray:
    """(C, kh, kw, rows, out_w, N) columns for output rows ``r0 .. r0+rows`` of padded
    (C, H, W, N) memory (written into ``out``'s memory if given).

    Column ``[c, i, j, y, x, n]`` is pixel ``xp[c, (r0 + y)*sH + i*dH, x*sW + j*dW, n]``:
    a read-only strided view of ``xp`` says so without moving data, and one copy
    gathers it (a copy per kernel tap does the same with kH*kW calls).
    """
    C, N = xp.shape[0], xp.shape[3]
    shape = (C, kh, kw, rows, out_w, N)
    (sh, sw), (dh, dw) = stride, dilation
    band = xp[:, r0 * sh:]
    c_, h_, w_, n_ = band.strides
    windows = as_strided(band, shape, (c_, dh * h_, dw * w_, sh * h_, sw * w_, n_), writeable=False)
    if out is None:
        cols = take(shape, xp.dtype)
    else:
        cols = out[:int(np.prod(shape))].reshape(shape)
    np.copyto(cols, windows)
    return cols


# Columns are built, multiplied and dropped a band of output rows at a time (about
# 4 MiB each, so they stay in cache) unless all of them fit in _KEEP_BYTES: then
# they are built once and kept for the backward pass.  Big layers thus never hold
# kH*kW copies of their input in memory; they keep the padded input instead.
_BLOCK_ELEMENTS = 1 << 20
_KEEP_BYTES = 32 << 20


def _band_rows(K: int, row: int, out_h: int) -> int:
    """Output rows per band: ``K`` column rows of ``row`` positions each, ~_BLOCK_ELEMENTS."""
    return max(1, min(out_h, _BLOCK_ELEMENTS // max(K * row, 1)))  # an empty batch: one band


def _bands(out_h: int, band: int):
    for r0 in range(0, out_h, band):
        yield r0, min(band, out_h - r0)


# Depthwise columns are gathered and multiplied in blocks of channels of about this many bytes
# (about a core's L2 cache; 256 KiB to 2 MiB measured within ~10% of each other).
_DEPTHWISE_BLOCK = 1 << 20
# Depthwise output rows shorter than this (out_w * N positions) gather wide columns (see _Wide).
_WIDE_ROW = 512


class _Wide:
    """The "wide rows" geometry of one (depthwise) convolution on padded (C, Hp, Wp, N) memory.

    With stride 1, the flat index within a channel of output ``(y, x, n)`` seen by tap ``(i, j)``
    is ``((y + i*dH)*Wp + x + j*dW)*N + n``: the output's "wide" flat index ``(y*Wp + x)*N + n``
    shifted by ``(i*dH*Wp + j*dW)*N``.  So every tap reads one contiguous run of
    ``span = ((out_h - 1)*Wp + out_w)*N`` values (one long copy instead of one per output row);
    the wide grid's positions ``x >= out_w`` are spare, computed and dropped.

    A stride ``(sH, sW)`` first splits the input into its sH*sW phases (rows ``a::sH``, columns
    ``b::sW``, each ``Hq x Wq``): tap ``(i, j)`` reads phase ``(i*dH % sH, j*dW % sW)`` with stride 1
    at offset ``(i*dH // sH, j*dW // sW)``, so the same holds with ``Wq`` for ``Wp``.
    """

    def __init__(self, shape, kernel, out_hw, stride, dilation):
        self.C, self.Hp, self.Wp, self.N = shape
        (kh, kw), (self.oh, self.ow) = kernel, out_hw
        self.stride, self.dilation = stride, dilation
        sh, sw = stride
        self.Hq, self.Wq = -(-self.Hp // sh), -(-self.Wp // sw)
        self.span = ((self.oh - 1) * self.Wq + self.ow) * self.N
        self.taps = []   # (i, j, phase row, phase column, offset of the run)
        for i in range(kh):
            for j in range(kw):
                r, c = i * dilation[0], j * dilation[1]
                self.taps.append((i, j, r % sh, c % sw, ((r // sh) * self.Wq + c // sw) * self.N))

    @staticmethod
    def fits(Wp: int, out_w: int, stride_w: int) -> bool:
        """Few spare columns: the wide grid is at most about twice the output's width.  (Depthwise
        convolutions only: for the others the product, which grows with every spare column,
        outweighs the faster copy; measured at batch 1 on ResNet-18 and DenseNet layers.)"""
        return -(-Wp // stride_w) <= 2 * out_w + 8

    def phases(self, xp: np.ndarray) -> np.ndarray:
        """(sH, sW, C, Hq*Wq*N) phases of padded memory (with stride 1, a view of it)."""
        C, N = xp.shape[0], self.N   # all channels, or a block of them
        sh, sw = self.stride
        if (sh, sw) == (1, 1):
            return xp.reshape(1, 1, C, -1)
        q = np.zeros((sh, sw, C, self.Hq, self.Wq, N), dtype=xp.dtype)
        for a in range(sh):
            for b in range(sw):
                part = xp[:, a::sh, b::sw]
                q[a, b, :, :part.shape[1], :part.shape[2]] = part
        return q.reshape(sh, sw, C, -1)

    def unphase(self, dq: np.ndarray, dxp: np.ndarray) -> None:
        """Adjoint of :meth:`phases`: add the phases' gradient (as returned there) into ``dxp``."""
        sh, sw = self.stride
        if (sh, sw) == (1, 1):
            return   # dq was a view of dxp
        dq = dq.reshape(sh, sw, self.C, self.Hq, self.Wq, self.N)
        for a in range(sh):
            for b in range(sw):
                part = dxp[:, a::sh, b::sw]
                part += dq[a, b, :, :part.shape[1], :part.shape[2]]

    def columns(self, xp: np.ndarray, c0: int = 0, c1: int = None, q: np.ndarray = None,
                out: np.ndarray = None) -> np.ndarray:
        """(c1 - c0, kh*kw, span) columns of channels ``c0 .. c1``: tap t's row is one contiguous
        run of its phase (``q``: :meth:`phases` of ``xp``, if already made; ``out``: memory to use)."""
        c1 = self.C if c1 is None else c1
        n, span, K = c1 - c0, self.span, len(self.taps)
        cols = np.empty((n, K, span), dtype=xp.dtype) if out is None else out[:n * K * span].reshape(n, K, span)
        if self.stride == (1, 1):  # one copy from a strided view of every run
            kh, kw = self.taps[-1][0] + 1, self.taps[-1][1] + 1
            c_, h_, w_, _ = xp.strides
            dh, dw = self.dilation
            windows = as_strided(xp[c0:], (n, kh, kw, span), (c_, dh * h_, dw * w_, xp.itemsize),
                                 writeable=False)
            np.copyto(cols.reshape(n, kh, kw, span), windows)
            return cols
        q = self.phases(xp) if q is None else q
        for t, (_, _, a, b, start) in enumerate(self.taps):
            cols[:, t] = q[a, b, c0:c1, start:start + span]
        return cols

    def correlate(self, xp: np.ndarray, w_cmk: np.ndarray) -> np.ndarray:
        """Depthwise correlation of padded memory with (C, M, kh*kw) kernels: (C*M, oh, ow, N).

        The columns are built and multiplied a block of channels at a time (about _DEPTHWISE_BLOCK
        bytes, so they are still in cache when the product reads them): gathering all channels'
        columns at once moved kH*kW times the output through main memory, 2-4x slower on
        EfficientNet's kernel-5 layers at batch 1.
        """
        C, M, K = w_cmk.shape
        span = self.span
        wide = self.new_output(C * M, xp.dtype).reshape(C, M, -1)
        per = max(1, min(C, _DEPTHWISE_BLOCK // max(K * span * xp.itemsize, 1)))
        buf = np.empty(per * K * span, dtype=xp.dtype)
        for c0 in range(0, C, per):
            c1 = min(C, c0 + per)
            if self.stride == (1, 1):
                cols = self.columns(xp, c0, c1, out=buf)
            else:  # the block's phases, then its columns, while both are in cache
                cols = self.columns(xp, 0, c1 - c0, self.phases(xp[c0:c1]), out=buf)
            _matmul(w_cmk[c0:c1], cols, out=wide[c0:c1, :, :span])
        return self.crop(wide.reshape(C * M, -1))

    def to_wide(self, g: np.ndarray) -> np.ndarray:
        """(O, out_h, out_w, N) -> (O, span) on the wide grid, zero in the spare columns."""
        O = g.shape[0]
        wide = np.zeros((O, self.oh, self.Wq, self.N), dtype=g.dtype)
        wide[:, :, :self.ow] = g
        return wide.reshape(O, -1)[:, :self.span]

    def new_output(self, O: int, dtype) -> np.ndarray:
        """An (O, oh*Wq*N) buffer for a product on the wide grid (fill ``[:, :span]``)."""
        return np.empty((O, self.oh * self.Wq * self.N), dtype=dtype)

    def crop(self, wide: np.ndarray) -> np.ndarray:
        """(O, oh*Wq*N) wide output -> contiguous (O, oh, ow, N)."""
        O = wide.shape[0]
        return np.ascontiguousarray(wide.reshape(O, self.oh, self.Wq, self.N)[:, :, :self.ow])


def _depthwise(x: Tensor, w: Tensor, b, xp: np.ndarray, shape, kernel, out_hw, stride, dilation,
               pad_h, pad_w, padding_mode) -> Tensor:
    """Depthwise convolution (one input channel per group).

    Output channel ``c*M + q`` (channel multiplier ``M``) is
    ``sum over taps (i, j) of weight[c*M + q, 0, i, j] * tap_ij(x)[c]``, where ``tap_ij`` is the
    (C, out_h, out_w, N) view of the padded input seen by tap (i, j).

    Backward: a multiply-add per kernel tap, each one vectorised NumPy operation over channels,
    pixels and images (kH*kW of them for each gradient), on contiguous runs of the flat input
    (see _Wide) when the wide grid fits.  Forward: the kH*kW taps gathered into columns and one
    matrix-vector product per channel (batched: one BLAS call each); NumPy has no fused
    multiply-add, and the tap loop (two passes per tap) measured 1.5-2.5x slower than this.
    """
    C, H, W, N = shape
    (kh, kw), (oh, ow) = kernel, out_hw
    O = w.shape[0]
    M = O // C
    taps = [(i, j) for i in range(kh) for j in range(kw)]
    wt = w._data.reshape(C, M, kh * kw, 1, 1, 1)           # per tap: a (C, M, 1, 1, 1) column
    geo = None
    if ow * N < _WIDE_ROW and _Wide.fits(xp.shape[2], ow, stride[1]):
        geo = _Wide(xp.shape, kernel, out_hw, stride, dilation)
    if geo is not None:
        # Short output rows (small batches): the taps gathered into columns as contiguous runs
        # (one long copy each instead of one per output row), a block of channels at a time.
        out = geo.correlate(xp, w._data.reshape(C, M, kh * kw))
    else:  # long rows: the same products over bands of im2col columns (memory stays bounded)
        out = _correlate(xp, w._data.reshape(C, M, kh * kw), kh, kw, oh, ow, dilation, stride)
    if b is not None:
        out += b._data.reshape(O, 1, 1, 1)
    saved = [xp]

    def backward(g):
        if saved[0] is None:
            raise RuntimeError("conv2d: backward through the same graph a second time; the saved "
                               "input was freed after the first backward (run the forward again)")
        xs = saved[0]
        saved[0] = None
        gm = to_chwn(g).reshape(C, M, oh, ow, N)
        gx = gw = gb = None
        if b is not None and b.requires_grad:
            gb = gm.reshape(O, -1).sum(axis=1)
        need_w, need_x = w.requires_grad, x.requires_grad
        dxp = np.zeros(xs.shape, dtype=gm.dtype) if need_x else None
        if _Wide.fits(xs.shape[2], ow, stride[1]):
            # The wide grid (see _Wide): every tap reads and writes one contiguous run of its
            # phase of the flat input; the gradient is zero in the spare columns.
            geo = _Wide(xs.shape, kernel, out_hw, stride, dilation)
            span = geo.span
            g_taps = geo.to_wide(gm.reshape(O, oh, ow, N)).reshape(C, M, span)
            x_q = geo.phases(xs)
            d_q = None
            if dxp is not None:
                d_q = (dxp.reshape(1, 1, C, -1) if stride == (1, 1)
                       else np.zeros(x_q.shape, dtype=gm.dtype))
            runs = {(i, j): (a, b, start) for i, j, a, b, start in geo.taps}

            def x_tap(i, j):
                a, b, start = runs[i, j]
                return x_q[a, b, :, start:start + span]

            def d_tap(i, j):
                a, b, start = runs[i, j]
                return d_q[a, b, :, start:start + span]
            scale = wt[..., 0, 0]                               # (C, M, K, 1)
            dims = "l"
        else:
            geo = None
            g_taps = gm

            def x_tap(i, j):
                return tap(xs, i, j, oh, ow, stride, dilation)

            def d_tap(i, j):
                return tap(dxp, i, j, oh, ow, stride, dilation)
            scale = wt
            dims = "hwn"
        if need_w:
            gw = np.empty((C, M, kh * kw), dtype=gm.dtype)
            for t, (i, j) in enumerate(taps):
                gw[:, :, t] = np.einsum(f"cm{dims},c{dims}->cm", g_taps, x_tap(i, j))
            gw = gw.reshape(w.shape)
        if need_x:
            tmp = np.empty(g_taps.shape[:1] + g_taps.shape[2:], dtype=gm.dtype)
            for t, (i, j) in enumerate(taps):
                if M == 1:
                    np.multiply(g_taps[:, 0], scale[:, 0, t], out=tmp)
                else:
                    np.einsum(f"cm{dims},cm->c{dims}", g_taps, wt[:, :, t, 0, 0, 0], out=tmp)
                target = d_tap(i, j)
                target += tmp
            if geo is not None:
                geo.unphase(d_q, dxp)
            gx = to_nchw(pad_chwn_backward(dxp, (C, H, W, N), pad_h, pad_w, padding_mode))
        return (gx, gw) if b is None else (gx, gw, gb)

    parents = (x, w) if b is None else (x, w, b)
    return Tensor.from_op(to_nchw(out), parents, backward, "conv2d")


def _scatter_taps(dxp: np.ndarray, d: np.ndarray, r0: int, stride, dilation) -> None:
    """col2im of one band: add each tap's (C, rows, out_w, N) gradient where that tap looked."""
    _, kh, kw, rows, out_w, _ = d.shape
    (sh, sw), (dh, dw) = stride, dilation
    for i in range(kh):
        top = r0 * sh + i * dh
        for j in range(kw):
            left = j * dw
            dxp[:, top:top + sh * (rows - 1) + 1:sh, left:left + sw * (out_w - 1) + 1:sw] += d[:, i, j]


def _matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray = None) -> np.ndarray:
    """Batched (G, m, k) @ (G, k, n); one plain BLAS call when G == 1."""
    for_work(a.shape[0] * a.shape[1] * a.shape[2] * b.shape[2])  # small products: one BLAS thread
    if a.shape[0] == 1:
        r = np.matmul(a[0], b[0], out=None if out is None else out[0])
        return r[None]
    return np.matmul(a, b, out=out)


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
    check_image_batch(x._data, "conv2d")
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
    check_padding_fits(padding_mode, pad_h, pad_w, H, W, "conv2d")
    try:
        out_h = conv_output_size(H, kh, stride[0], pad_h, dilation[0])
        out_w = conv_output_size(W, kw, stride[1], pad_w, dilation[1])
    except ValueError as exc:  # say which input and weight the sizes come from
        raise ValueError(f"conv2d: input of shape {tuple(x.shape)} and weight of shape {tuple(w.shape)}: "
                         f"{exc}") from None

    xp = pad_chwn(to_chwn(x._data), pad_h, pad_w, padding_mode)
    G, Og, K = groups, O // groups, Cg * kh * kw
    row = out_w * N                     # positions in one output row
    positions = out_h * row
    w_mat = w._data.reshape(G, Og, K)
    if Cg == 1 and G > 1:   # depthwise: the direct kernel
        return _depthwise(x, w, b, xp, (C, H, W, N), (kh, kw), (out_h, out_w), stride, dilation,
                          pad_h, pad_w, padding_mode)
    # How the columns are laid out:
    #   "view"  1x1 kernel, stride 1: the (padded) input itself is the column matrix, no copy;
    #   "im2col" / bands: the general strided copy (all at once, or a band of rows at a time).
    if kh == kw == 1 and stride == (1, 1):
        mode = "view"
    else:
        mode = "im2col"
    band = _band_rows(G * K, row, out_h)
    keep = mode != "im2col" or G * K * positions * xp.itemsize <= _KEEP_BYTES or band >= out_h
    if mode == "view":
        cols = xp.reshape(G, K, positions)
        out = _matmul(w_mat, cols)
    elif keep:  # all columns at once, kept for backward
        cols = _im2col(xp, kh, kw, 0, out_h, out_w, stride, dilation)
        out = _matmul(w_mat, cols.reshape(G, K, positions))
    else:     # a band of rows at a time; backward rebuilds them from xp
        cols = None
        out = np.empty((G, Og, positions), dtype=xp.dtype)
        buf = np.empty(G * K * band * row, dtype=xp.dtype)
        for r0, rows in _bands(out_h, band):
            c = _im2col(xp, kh, kw, r0, rows, out_w, stride, dilation, out=buf)
            _matmul(w_mat, c.reshape(G, K, rows * row), out=out[:, :, r0 * row:(r0 + rows) * row])
        del buf
    out = out.reshape(O, out_h, out_w, N)
    if b is not None:
        out += b._data.reshape(O, 1, 1, 1)

    released = False

    def backward(g):
        nonlocal released, cols, xp
        if released:
            raise RuntimeError("conv2d: backward through the same graph a second time; the saved "
                               "input and columns were freed after the first backward (run the "
                               "forward again)")
        g_chwn = to_chwn(g)
        need_w = w.requires_grad
        need_x = x.requires_grad
        gx = gw = gb = None
        if b is not None and b.requires_grad:
            gb = g_chwn.reshape(O, positions).sum(axis=1)
        if mode == "view":
            g_mat = g_chwn.reshape(G, Og, positions)
            if need_w:
                gw = _matmul(g_mat, cols.transpose(0, 2, 1)).reshape(w.shape)
            if need_x:
                dxp = _matmul(w_mat.transpose(0, 2, 1), g_mat).reshape(xp.shape)
        else:
            g_mat = g_chwn.reshape(G, Og, positions)
            if need_w:
                gw = (_matmul(g_mat, cols.reshape(G, K, positions).transpose(0, 2, 1)) if keep
                      else np.zeros((G, Og, K), dtype=g_mat.dtype))
            # Stride 1: the input gradient is the gradient correlated with the flipped kernels
            # (a "full" convolution): columns of the gradient and one GEMM of the forward's shape,
            # instead of W^T @ grad (kH*kW times the input's size) scattered back tap by tap.
            transposed = need_x and stride == (1, 1)
            dxp = gx_chwn = None
            if transposed:
                gx_chwn = _input_gradient_stride1(g_chwn, w._data, G, (C, H, W, N), pad_h, pad_w, padding_mode,
                                                  dilation)
            elif need_x:
                dxp = np.zeros(xp.shape, dtype=g_mat.dtype)
            w_t = w_mat.transpose(0, 2, 1)
            buf = None if keep else np.empty(G * K * band * row, dtype=xp.dtype)
            # One pass over bands of output rows: weight gradient (grad @ columns^T) and the
            # input gradient (W^T @ grad, scattered back tap by tap) while the band is in cache.
            for r0, rows in _bands(out_h, band):
                if keep and dxp is None:
                    break
                g_band = g_mat[:, :, r0 * row:(r0 + rows) * row]
                if need_w and not keep:
                    c = _im2col(xp, kh, kw, r0, rows, out_w, stride, dilation, out=buf)
                    gw += _matmul(g_band, c.reshape(G, K, rows * row).transpose(0, 2, 1))
                if dxp is not None:
                    d = _matmul(w_t, g_band).reshape(Cg * G, kh, kw, rows, out_w, N)
                    _scatter_taps(dxp, d, r0, stride, dilation)
            if need_w:
                gw = gw.reshape(w.shape)
            if gx_chwn is not None:
                gx = to_nchw(gx_chwn)
        if need_x and gx is None:
            gx = to_nchw(pad_chwn_backward(dxp, (C, H, W, N), pad_h, pad_w, padding_mode))
        released = True
        if mode == "im2col" and cols is not None:
            give(cols)
        cols = xp = None
        return (gx, gw) if b is None else (gx, gw, gb)

    parents = (x, w) if b is None else (x, w, b)
    result = Tensor.from_op(to_nchw(out), parents, backward, "conv2d")
    if result._backward is None and mode == "im2col" and cols is not None:  # no graph: nothing reads them
        give(cols)
    return result


def _correlate(xp: np.ndarray, w_mat: np.ndarray, kh: int, kw: int, out_h: int, out_w: int,
               dilation, stride=(1, 1)) -> np.ndarray:
    """Correlation of padded (C, Hp, Wp, N) memory (any strides) with (G, Og, K) kernels:
    (G*Og, out_h, out_w, N), a band of output rows at a time (columns stay ~4 MiB)."""
    N = xp.shape[3]
    G, Og, K = w_mat.shape
    row = out_w * N
    band = _band_rows(G * K, row, out_h)
    out = np.empty((G, Og, out_h * row), dtype=xp.dtype)
    buf = np.empty(G * K * band * row, dtype=xp.dtype)
    for r0, rows in _bands(out_h, band):
        c = _im2col(xp, kh, kw, r0, rows, out_w, stride, dilation, out=buf)
        _matmul(w_mat, c.reshape(G, K, rows * row), out=out[:, :, r0 * row:(r0 + rows) * row])
    return out.reshape(G * Og, out_h, out_w, N)


def _input_gradient_stride1(g: np.ndarray, weight: np.ndarray, G: int, shape, pad_h, pad_w, padding_mode,
                            dilation) -> np.ndarray:
    """conv2d's (C, H, W, N) input gradient for stride 1, from the (O, oh, ow, N) output gradient.

    Padded pixel ``(p, q)`` was seen by tap ``(i, j)`` at output ``(p - i*dH, q - j*dW)``, so its
    gradient is the output gradient, padded by the dilated kernel's extent, correlated with the
    kernels turned by 180 degrees and with in- and out-channels swapped.
    """
    C, H, W, N = shape
    O, Cg, kh, kw = weight.shape
    Og = O // G
    a, c = (kh - 1) * dilation[0], (kw - 1) * dilation[1]
    gp = pad_chwn(g, (a, a), (c, c))
    flipped = weight.reshape(G, Og, Cg, kh, kw)[:, :, :, ::-1, ::-1].transpose(0, 2, 1, 3, 4)
    w_mat = np.ascontiguousarray(flipped).reshape(G, Cg, Og * kh * kw)
    if padding_mode == "zeros":   # only the rows and columns of the unpadded input
        (top, _), (left, _) = pad_h, pad_w
        return _correlate(gp[:, top:top + H + a, left:left + W + c], w_mat, kh, kw, H, W, dilation)
    Hp, Wp = H + sum(pad_h), W + sum(pad_w)
    return pad_chwn_backward(_correlate(gp, w_mat, kh, kw, Hp, Wp, dilation), shape, pad_h, pad_w, padding_mode)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups: int = 1,
                     dilation=1) -> Tensor:
    """Transposed convolution ("deconvolution"): every input pixel paints a copy of the kernel.

    Each input pixel ``x[n, c, y, x]`` adds ``x[n, c, y, x] * weight[c, o]`` onto the
    output at rows ``y*sH + i*dH`` and columns ``x*sW + j*dW`` (kernel taps ``i, j``),
    and ``padding`` rows/columns are then cut from each border: the adjoint of
    :func:`conv2d` with the same settings, so a stride of 2 doubles the size.
    One matrix product gives every pixel's painted kernel; a scatter-add per
    kernel tap (col2im) lays them down -- conv2d's input gradient, run forward.

    Args:
        input: ``(N, C_in, H, W)``.
        weight: ``(C_in, C_out / groups, kH, kW)`` (in-channels first, as PyTorch).
        bias: optional ``(C_out,)``.
        stride, padding, output_padding, dilation: ints or pairs; ``output_padding``
            adds rows/columns at the bottom/right and must be smaller than the stride
            or the dilation.
        groups: channels split into this many independent transposed convolutions.

    Shape:
        - output ``(N, C_out, H_out, W_out)`` with
          ``H_out = (H - 1)*sH - 2*pH + dH*(kH - 1) + output_padding_H + 1``
          (see :func:`~cnnlab.functional.shape.conv_transpose_output_size`).
    """
    x, w = as_tensor(input), as_tensor(weight)
    b = None if bias is None else as_tensor(bias)
    check_image_batch(x._data, "conv_transpose2d")
    if w.ndim != 4:
        raise ValueError(f"conv_transpose2d: expected weight of shape (in_channels, out_channels/groups, "
                         f"kH, kW), got shape {tuple(w.shape)}")
    if w.dtype != x.dtype:
        raise TypeError(f"conv_transpose2d: input and weight must have the same dtype, got input "
                        f"{x.dtype} and weight {w.dtype}")
    if not isinstance(groups, (int, np.integer)) or isinstance(groups, bool) or groups < 1:
        raise ValueError(f"`groups` must be a positive int, got {groups!r}")
    N, C, H, W = x.shape
    Cw, Og, kh, kw = w.shape
    if C != Cw:
        raise ValueError(f"Given transposed=1, weight of size {list(w.shape)}, expected input"
                         f"{list(x.shape)} to have {Cw} channels, but got {C} channels instead")
    if C % groups:
        raise ValueError(f"`in_channels` (={C}) must be divisible by `groups` (={groups})")
    G, Cg, O = int(groups), C // groups, Og * groups
    if b is not None and b.shape != (O,):
        raise ValueError(f"conv_transpose2d: expected bias of shape ({O},), got {tuple(b.shape)}")
    stride, dilation = positive_pair(stride, "stride"), positive_pair(dilation, "dilation")
    padding, output_padding = pair(padding, "padding"), pair(output_padding, "output_padding")
    if min(padding) < 0 or min(output_padding) < 0:
        raise ValueError(f"padding and output_padding must be non-negative, got padding={padding}, "
                         f"output_padding={output_padding}")
    out_h = conv_transpose_output_size(H, kh, stride[0], padding[0], output_padding[0], dilation[0])
    out_w = conv_transpose_output_size(W, kw, stride[1], padding[1], output_padding[1], dilation[1])
    # the uncropped canvas every tap paints on; output_padding beyond the padding adds zero rows
    full_h = (H - 1) * stride[0] + dilation[0] * (kh - 1) + 1 + max(0, output_padding[0] - padding[0])
    full_w = (W - 1) * stride[1] + dilation[1] * (kw - 1) + 1 + max(0, output_padding[1] - padding[1])
    crop = (slice(None), slice(padding[0], padding[0] + out_h), slice(padding[1], padding[1] + out_w))

    xm = to_chwn(x._data).reshape(G, Cg, H * W * N)
    w_mat = w._data.reshape(G, Cg, Og * kh * kw)
    w_t = np.ascontiguousarray(w_mat.transpose(0, 2, 1))
    row = W * N                                   # positions in one input row
    band = _band_rows(G * Og * kh * kw, row, H)   # input rows per band (bounded memory, as conv2d)
    canvas = np.zeros((O, full_h, full_w, N), dtype=x.dtype)
    for r0, rows in _bands(H, band):
        painted = _matmul(w_t, xm[:, :, r0 * row:(r0 + rows) * row]).reshape(O, kh, kw, rows, W, N)
        _scatter_taps(canvas, painted, r0, stride, dilation)
    del painted
    out = np.ascontiguousarray(canvas[crop])
    del canvas
    if b is not None:
        out += b._data.reshape(O, 1, 1, 1)

    def backward(g):
        gm = to_chwn(g)
        gcanvas = np.zeros((O, full_h, full_w, N), dtype=gm.dtype)
        gcanvas[crop] = gm
        gx = np.empty((G, Cg, H * row), dtype=gm.dtype) if x.requires_grad else None
        gw = np.zeros((G, Cg, Og * kh * kw), dtype=gm.dtype) if w.requires_grad else None
        buf = np.empty(G * Og * kh * kw * band * row, dtype=gm.dtype)
        for r0, rows in _bands(H, band):
            # what each tap painted from these input rows: conv2d's im2col of the gradient
            cols = _im2col(gcanvas, kh, kw, r0, rows, W, stride, dilation, out=buf)
            cols = cols.reshape(G, Og * kh * kw, rows * row)
            if gx is not None:
                _matmul(w_mat, cols, out=gx[:, :, r0 * row:(r0 + rows) * row])
            if gw is not None:
                gw += _matmul(xm[:, :, r0 * row:(r0 + rows) * row], cols.transpose(0, 2, 1))
        gb = gm.reshape(O, -1).sum(axis=1) if b is not None and b.requires_grad else None
        gx = None if gx is None else to_nchw(gx.reshape(C, H, W, N))
        gw = None if gw is None else gw.reshape(w.shape)
        return (gx, gw) if b is None else (gx, gw, gb)

    parents = (x, w) if b is None else (x, w, b)
    return Tensor.from_op(to_nchw(out), parents, backward, "conv_transpose2d")
