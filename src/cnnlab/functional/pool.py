"""Pooling: max, min, average, adaptive, global and fractional max pooling.

A pooling layer slides a small window over every channel of an image and
replaces the pixels under it by one number: the highest one (max pooling),
the lowest one (min pooling) or their average.  Channels are pooled
separately, so the channel count never changes; only height and width shrink.

How the ops run
---------------
All ops work on the (C, H, W, N) memory view of the input (batch innermost,
see ``_layout``) and return NCHW views of (C, OH, OW, N) memory.  Nothing
loops over pixels, images or channels: the loops run over the *kernel taps*.
Tap (i, j) of a kernel is the strided view of the (padded) input that holds
pixel (i, j) of every window at once, a (C, OH, OW, N) array.  A max pool is a
running ``np.maximum`` over the taps; an average pool a running sum.

Backward rules
--------------
* max/min: the forward pass remembers, per output element, which tap won (a
  ``uint8`` array for kernels of up to 256 taps).  The gradient of an output
  element goes to that one input element; the backward pass scatter-adds the
  upstream gradient tap by tap into a zero (padded) gradient buffer.  Ties go
  to the first tap in row-major order, NaN wins over numbers (the last NaN),
  exactly as PyTorch's CPU kernels do.
* average: every pixel of a window receives ``grad / divisor``.
"""
from __future__ import annotations

from numbers import Integral, Real
from typing import Callable, Optional, Tuple

import numpy as np

from ..tensor import Tensor, as_tensor, is_grad_enabled
from ._layout import check_image_batch, pad_chwn, pad_chwn_backward, tap, to_chwn, to_nchw
from .shape import adaptive_windows, conv_output_size, pair, pool_output_size

__all__ = ["max_pool2d", "min_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "adaptive_max_pool2d",
           "global_avg_pool2d", "global_max_pool2d", "fractional_max_pool2d"]


# --------------------------------------------------------------------------
# argument checking
# --------------------------------------------------------------------------
def _image_input(input, op: str) -> Tensor:
    x = as_tensor(input)
    check_image_batch(x._data, op)
    return x


def _nonempty_plane(x: Tensor, op: str) -> None:
    """Pooling a whole (or adaptive part of a) feature map needs pixels, as in PyTorch."""
    if x.shape[2] == 0 or x.shape[3] == 0:
        raise ValueError(f"{op}: expected feature maps with at least one pixel (non-zero H and W), got "
                         f"input of shape {tuple(x.shape)}")


def _int_pair(op: str, value, name: str, low: int) -> Tuple[int, int]:
    try:
        result = pair(value, name)
    except TypeError as err:
        raise TypeError(f"{op}: {err}") from None
    if min(result) < low:
        raise ValueError(f"{op}: `{name}` must be >= {low} on both axes, got {value!r}")
    return result


def _stride_pair(op: str, stride, kernel: Tuple[int, int]) -> Tuple[int, int]:
    if stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0):
        return kernel
    return _int_pair(op, stride, "stride", 1)


def _axis_out(op: str, axis: str, size: int, kernel: int, stride: int, padding: int,
              dilation: int, ceil_mode: bool, shape) -> int:
    try:
        return pool_output_size(size, kernel, stride, padding, dilation, ceil_mode)
    except ValueError as err:
        raise ValueError(f"{op}: {axis} of input {tuple(shape)}: {err}") from None


def _grad_needed(x: Tensor) -> bool:
    return x.requires_grad and is_grad_enabled()


def _tap_index_dtype(n_taps: int):
    if n_taps <= 256:
        return np.uint8
    return np.uint16 if n_taps <= 65536 else np.int32


# --------------------------------------------------------------------------
# shared kernels
# --------------------------------------------------------------------------
def _extreme_over_taps(n_taps: int, get_tap: Callable[[int], np.ndarray], fresh: bool,
                       mode: str, track: bool):
    """Running max (``mode='max'``) or min over ``get_tap(0..n_taps-1)``.

    Returns the extreme and, with ``track``, the index of the winning tap per
    element: the first tap holding the extreme (strict comparison), or the
    last NaN tap where the result is NaN (``np.maximum`` propagates NaN).
    ``fresh`` says ``get_tap`` returns new arrays that may be written to.
    """
    compare, combine = (np.greater, np.maximum) if mode == "max" else (np.less, np.minimum)
    first = get_tap(0)
    out = first if fresh else first.copy()
    if not track:
        for t in range(1, n_taps):
            combine(out, get_tap(t), out=out)
        return out, None
    idx = np.zeros(out.shape, dtype=_tap_index_dtype(n_taps))
    wins = np.empty(out.shape, dtype=bool)
    stamp = np.empty(out.shape, dtype=idx.dtype)
    for t in range(1, n_taps):
        v = get_tap(t)
        compare(v, out, out=wins)
        # Taps come in increasing order, so "idx = t where the tap wins" is
        # max(idx, wins * t): two fast ufuncs instead of a slow masked copy.
        np.multiply(wins, idx.dtype.type(t), out=stamp)
        np.maximum(idx, stamp, out=idx)
        combine(out, v, out=out)
    if np.isnan(out).any():  # rare: follow PyTorch, the gradient goes to the last NaN
        for t in range(n_taps):
            np.copyto(idx, np.asarray(t, dtype=idx.dtype), where=np.isnan(get_tap(t)))
    return out, idx


def _tap_selector(g: np.ndarray, idx: np.ndarray):
    """``select(t)``: ``g`` where tap ``t`` won, else 0 (the gradient routed through tap t).

    Multiplying by the boolean mask is about 10x faster than ``np.where`` on
    random masks; it is exact unless ``g`` holds inf/NaN (inf * 0 = NaN), so
    such gradients take the ``np.where`` path.
    """
    mask = np.empty(idx.shape, dtype=bool)
    if np.isfinite(g).all():
        scratch = np.empty(g.shape, dtype=g.dtype)

        def select(t, out=None):
            np.equal(idx, t, out=mask)
            return np.multiply(g, mask, out=scratch if out is None else out)
    else:
        def select(t, out=None):
            np.equal(idx, t, out=mask)
            result = np.where(mask, g, 0)
            if out is None:
                return result
            out[...] = result
            return out
    return select


def is_asymmetric_padding(padding) -> bool:
    """True for the ``((top, bottom), (left, right))`` form of a pooling ``padding``."""
    return (isinstance(padding, (tuple, list)) and len(padding) == 2
            and all(isinstance(p, (tuple, list)) for p in padding))


def _asymmetric_padding(op: str, padding) -> Tuple[Tuple[int, int], Tuple[int, int]]:
    try:
        result = tuple(pair(tuple(p), "padding") for p in padding)
    except TypeError:
        raise TypeError(f"{op}: `padding` must be an int, (ph, pw) or ((top, bottom), (left, right)), "
                        f"got {padding!r}") from None
    if min(min(result[0]), min(result[1])) < 0:
        raise ValueError(f"{op}: `padding` must be >= 0 on every side, got {padding!r}")
    return result


def _asymmetric_axis_out(op, axis, size, kernel, stride, pads, dilation, ceil_mode, shape) -> int:
    """Output length for (before, after) padding (ONNX's ``pads``): a window may not lie
    entirely in the padding, but the half-kernel limit of symmetric padding does not apply."""
    span = dilation * (kernel - 1) + 1
    if max(pads) >= span:
        raise ValueError(f"{op}: {axis} padding {pads} must be smaller than the dilated kernel span "
                         f"{span} (a window would hold padding only)")
    try:
        return conv_output_size(size, kernel, stride, pads, dilation, ceil_mode)
    except ValueError as err:
        raise ValueError(f"{op}: {axis} of input {tuple(shape)}: {err}") from None


def _pool_geometry(op, shape, kernel_size, stride, padding, dilation, ceil_mode):
    """Checked geometry; ``padding`` comes back as the (top, left) *before* amounts.

    The amounts after the input are implied by the output size (``_padding_amounts``);
    ``_padding_after`` gives the declared ones.
    """
    kernel = _int_pair(op, kernel_size, "kernel_size", 1)
    stride = _stride_pair(op, stride, kernel)
    dilation = _int_pair(op, dilation, "dilation", 1)
    _, _, H, W = shape
    if is_asymmetric_padding(padding):
        (pt, pb), (pl, pr) = _asymmetric_padding(op, padding)
        out_h = _asymmetric_axis_out(op, "height", H, kernel[0], stride[0], (pt, pb), dilation[0],
                                     ceil_mode, shape)
        out_w = _asymmetric_axis_out(op, "width", W, kernel[1], stride[1], (pl, pr), dilation[1],
                                     ceil_mode, shape)
        return kernel, stride, (pt, pl), dilation, (out_h, out_w)
    padding = _int_pair(op, padding, "padding", 0)
    out_h = _axis_out(op, "height", H, kernel[0], stride[0], padding[0], dilation[0], ceil_mode, shape)
    out_w = _axis_out(op, "width", W, kernel[1], stride[1], padding[1], dilation[1], ceil_mode, shape)
    return kernel, stride, padding, dilation, (out_h, out_w)


def _padding_after(padding) -> Tuple[int, int]:
    """(bottom, right) padding of a symmetric or asymmetric ``padding`` argument."""
    if is_asymmetric_padding(padding):
        return int(padding[0][1]), int(padding[1][1])
    return pair(padding, "padding")


def _padding_amounts(size: int, out: int, kernel: int, stride: int, pad: int, dilation: int):
    """(before, after) padding so that every window fits; with ``ceil_mode`` the
    last window may hang past the padded input, and the extra rows get the fill
    value too (they never win a max and add nothing to a sum)."""
    needed = (out - 1) * stride + dilation * (kernel - 1) + 1
    return pad, max(needed - size - pad, 0)


def _window_flat_index(tap_idx, kernel, stride, padding, dilation, out_hw, W):
    """Flat ``h * W + w`` input index of the winning tap, as PyTorch's ``return_indices``."""
    ti, tj = np.divmod(tap_idx.astype(np.int64), kernel[1])
    rows = (np.arange(out_hw[0]) * stride[0] - padding[0])[None, :, None, None] + ti * dilation[0]
    cols = (np.arange(out_hw[1]) * stride[1] - padding[1])[None, None, :, None] + tj * dilation[1]
    return rows * W + cols


def _extreme_pool_core(x: Tensor, kernel, stride, padding, dilation, out_hw, mode: str,
                       return_indices: bool, op: str):
    """Max/min pooling of ``x`` for a checked geometry (shared by max, min and adaptive)."""
    N, C, H, W = x.shape
    (kh, kw), (oh, ow) = kernel, out_hw
    m = to_chwn(x._data)
    pad_h = _padding_amounts(H, oh, kh, stride[0], padding[0], dilation[0])
    pad_w = _padding_amounts(W, ow, kw, stride[1], padding[1], dilation[1])
    fill = -np.inf if mode == "max" else np.inf
    mp = pad_chwn(m, pad_h, pad_w, value=fill)
    taps = [(i, j) for i in range(kh) for j in range(kw)]
    track = return_indices or _grad_needed(x)

    out, idx = _extreme_over_taps(
        len(taps), lambda t: tap(mp, *taps[t], oh, ow, stride, dilation), False, mode, track)
    del mp
    if track and sum(pad_h) + sum(pad_w):
        _never_pick_padding(idx, out, fill, (H, W), kernel, stride, padding, dilation, out_hw)

    # Windows that do not overlap (stride >= dilated kernel span on both axes)
    # let each tap write its share of the gradient directly, without adding.
    disjoint = all(s >= d * (k - 1) + 1 for s, d, k in zip(stride, dilation, kernel))

    def backward(g):
        gm = to_chwn(g)
        gp = np.zeros((C, H + sum(pad_h), W + sum(pad_w), N), dtype=gm.dtype)
        select = _tap_selector(gm, idx)
        for t, (i, j) in enumerate(taps):
            view = tap(gp, i, j, oh, ow, stride, dilation)
            if disjoint:
                select(t, out=view)
            else:
                np.add(view, select(t), out=view)
        return (to_nchw(pad_chwn_backward(gp, (C, H, W, N), pad_h, pad_w)),)

    result = Tensor.from_op(to_nchw(out), (x,), backward, op)
    if return_indices:
        flat = _window_flat_index(idx, kernel, stride, padding, dilation, out_hw, W)
        return result, Tensor(to_nchw(flat))
    return result


def _never_pick_padding(idx, out, fill, size, kernel, stride, padding, dilation, out_hw) -> None:
    """Where a window's extreme is the padding value (all its pixels are -inf for max pooling), the
    first tap may be padding; PyTorch then picks the window's first real pixel: so do we."""
    mask = out == fill
    if not mask.any():
        return
    firsts, valids = [], []
    for n_in, k, s, p, d, n_out in zip(size, kernel, stride, padding, dilation, out_hw):
        pos = (np.arange(n_out) * s - p)[:, None] + np.arange(k)[None, :] * d   # (out, k) input positions
        real = (pos >= 0) & (pos < n_in)
        firsts.append(real.argmax(axis=1))
        valids.append(real.any(axis=1))
    first_tap = firsts[0][:, None] * kernel[1] + firsts[1][None, :]              # (OH, OW)
    mask &= (valids[0][:, None] & valids[1][None, :])[None, :, :, None]
    np.copyto(idx, first_tap.astype(idx.dtype)[None, :, :, None], where=mask)


def _extreme_pool(op, mode, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices):
    x = _image_input(input, op)
    kernel, stride, padding, dilation, out_hw = _pool_geometry(
        op, x.shape, kernel_size, stride, padding, dilation, ceil_mode)
    return _extreme_pool_core(x, kernel, stride, padding, dilation, out_hw, mode, return_indices, op)


# --------------------------------------------------------------------------
# max / min pooling
# --------------------------------------------------------------------------
def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
               return_indices: bool = False):
    """2-D max pooling: the highest value of every window, channel by channel.

    Args:
        input: Tensor or array of shape (N, C, H, W), float32 or float64.
        kernel_size: window size, an int or ``(kh, kw)``.
        stride: step between windows; defaults to ``kernel_size``.
        padding: implicit ``-inf`` added on both sides, at most half the kernel;
            or ``((top, bottom), (left, right))`` (ONNX's asymmetric ``pads``;
            each side smaller than the dilated kernel).
        dilation: spacing between the pixels of a window.
        ceil_mode: round the output size up instead of down (the last window
            may then hang over the edge; it only looks at real pixels).
        return_indices: also return, per output element, the flat index
            ``h * W + w`` of the chosen pixel in its input plane (int64), as
            PyTorch does.

    Returns:
        The pooled Tensor, or ``(pooled, indices)`` with ``return_indices``.
        The gradient of each output element flows to the chosen pixel (ties:
        the first one in row-major window order).  With dilation a window
        can fall entirely into the padding (e.g. H=1, kernel 2, dilation 2,
        padding 1): its output is ``-inf``, it passes no gradient and its
        index points outside ``[0, H*W)``.

    Shape:
        - Input: ``(N, C, H, W)``
        - Output: ``(N, C, OH, OW)`` with, per axis,
          ``OH = conv_output_size(H, kh, sh, ph, dh, ceil_mode)``
          ``= floor((H + 2*ph - dh*(kh-1) - 1) / sh) + 1`` (ceil with
          ``ceil_mode``, dropping a last window that starts in the padding).

    Example:
        >>> x = Tensor(np.arange(16.0).reshape(1, 1, 4, 4))
        >>> max_pool2d(x, 2).data[0, 0]
        array([[ 5.,  7.],
               [13., 15.]])
    """
    return _extreme_pool("max_pool2d", "max", input, kernel_size, stride, padding, dilation,
                         ceil_mode, return_indices)


def min_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
               return_indices: bool = False):
    """2-D min pooling: the lowest value of every window, channel by channel.

    Same arguments and output size as :func:`max_pool2d`; the implicit
    padding is ``+inf``.  Runs the same tap loop as max pooling with
    ``np.minimum`` (no negated copies).

    Shape:
        - Input: ``(N, C, H, W)``
        - Output: ``(N, C, OH, OW)``,
          ``OH = conv_output_size(H, kh, sh, ph, dh, ceil_mode)``, likewise OW.
    """
    return _extreme_pool("min_pool2d", "min", input, kernel_size, stride, padding, dilation,
                         ceil_mode, return_indices)


# --------------------------------------------------------------------------
# average pooling
# --------------------------------------------------------------------------
def _avg_window_counts(size: int, out: int, kernel: int, stride: int, pad: int, pad_after=None):
    """Per output position along one axis: window length counting padding
    (clipped at the padded edge) and the number of real pixels (PyTorch's rule)."""
    start = np.arange(out) * stride - pad
    end = np.minimum(start + kernel, size + (pad if pad_after is None else pad_after))
    with_pad = end - start
    real = np.minimum(end, size) - np.maximum(start, 0)
    return with_pad, real


def _avg_pool_core(x: Tensor, kernel, stride, padding, out_hw, divisor: np.ndarray, op: str) -> Tensor:
    """Window sums over kernel taps divided by ``divisor`` (an (OH, OW) array)."""
    N, C, H, W = x.shape
    (kh, kw), (oh, ow) = kernel, out_hw
    m = to_chwn(x._data)
    pad_h = _padding_amounts(H, oh, kh, stride[0], padding[0], 1)
    pad_w = _padding_amounts(W, ow, kw, stride[1], padding[1], 1)
    mp = pad_chwn(m, pad_h, pad_w)
    div = divisor.astype(m.dtype)[None, :, :, None]

    # Windows that tile the input exactly (global pooling, adaptive pooling to a divisor of
    # the size): one reduction over the window axes instead of a Python step per tap.
    tiles = (pad_h == (0, 0) and pad_w == (0, 0) and oh * kh == H and ow * kw == W and kh * kw > 4
             and (oh == 1 or stride[0] == kh) and (ow == 1 or stride[1] == kw))
    if tiles and oh == ow == 1:
        # Global pooling (every squeeze-and-excitation block, every head): a product with a vector
        # of ones sums each channel with BLAS, 2-4x faster than ndarray.sum at batch 1 and more
        # at training batches, where the sum runs over a strided middle axis.
        out = np.matmul(np.ones(H * W, dtype=m.dtype), m.reshape(C, H * W, N)).reshape(C, 1, 1, N)
    elif tiles:
        out = m.reshape(C, oh, kh, ow, kw, N).sum(axis=(2, 4))
    else:
        taps = [(i, j) for i in range(kh) for j in range(kw)]
        out = tap(mp, 0, 0, oh, ow, stride).copy()
        for i, j in taps[1:]:
            np.add(out, tap(mp, i, j, oh, ow, stride), out=out)
    out /= div
    del mp

    def backward(g):
        gm = to_chwn(g) / div
        if tiles:  # every pixel of a window gets its window's share
            spread = np.broadcast_to(gm[:, :, None, :, None, :], (C, oh, kh, ow, kw, N))
            return (to_nchw(spread.reshape(C, H, W, N)),)
        gp = np.zeros((C, H + sum(pad_h), W + sum(pad_w), N), dtype=gm.dtype)
        for i, j in taps:
            view = tap(gp, i, j, oh, ow, stride)
            np.add(view, gm, out=view)
        return (to_nchw(pad_chwn_backward(gp, (C, H, W, N), pad_h, pad_w)),)

    return Tensor.from_op(to_nchw(out), (x,), backward, op)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True, divisor_override: Optional[int] = None) -> Tensor:
    """2-D average pooling: the mean of every window, channel by channel.

    Args:
        input: Tensor or array of shape (N, C, H, W), float32 or float64.
        kernel_size: window size, an int or ``(kh, kw)``.
        stride: step between windows; defaults to ``kernel_size``.
        padding: implicit zeros on both sides, at most half the kernel; or
            ``((top, bottom), (left, right))`` (each side smaller than the kernel).
        ceil_mode: round the output size up; windows hanging past the padded
            input are clipped to it.
        count_include_pad: divide by the window size including padding
            (but never the part of a ``ceil_mode`` window beyond the padded
            input); with False, by the number of real pixels only.
        divisor_override: divide every window sum by this non-zero int instead.

    Shape:
        - Input: ``(N, C, H, W)``
        - Output: ``(N, C, OH, OW)``, ``OH = conv_output_size(H, kh, sh, ph,
          ceil_mode=ceil_mode) = floor((H + 2*ph - kh) / sh) + 1``, likewise OW.

    Example:
        >>> avg_pool2d(Tensor(np.array([[[[1.0, 0.0], [4.0, 6.0]]]])), 2).data.item()
        2.75
    """
    op = "avg_pool2d"
    x = _image_input(input, op)
    padding_arg = padding
    kernel, stride, padding, _, out_hw = _pool_geometry(op, x.shape, kernel_size, stride, padding,
                                                         1, ceil_mode)
    if divisor_override is not None:
        if isinstance(divisor_override, bool) or not isinstance(divisor_override, Integral):
            raise TypeError(f"{op}: `divisor_override` must be None or an int, got {divisor_override!r}")
        if divisor_override == 0:
            raise ValueError(f"{op}: `divisor_override` must not be zero, got {divisor_override!r}")
        divisor = np.full(out_hw, float(divisor_override))
    else:
        _, _, H, W = x.shape
        after = _padding_after(padding_arg)
        pad_h, real_h = _avg_window_counts(H, out_hw[0], kernel[0], stride[0], padding[0], after[0])
        pad_w, real_w = _avg_window_counts(W, out_hw[1], kernel[1], stride[1], padding[1], after[1])
        divisor = np.outer(pad_h, pad_w) if count_include_pad else np.outer(real_h, real_w)
    return _avg_pool_core(x, kernel, stride, padding, out_hw, divisor.astype(np.float64), op)


# --------------------------------------------------------------------------
# adaptive pooling
# --------------------------------------------------------------------------
def _adaptive_output_size(op: str, output_size, shape) -> Tuple[int, int]:
    H, W = shape[2], shape[3]
    if isinstance(output_size, bool):
        raise TypeError(f"{op}: `output_size` must be an int or a pair of ints/None, got {output_size!r}")
    if isinstance(output_size, Integral):
        sizes = (int(output_size), int(output_size))
    elif isinstance(output_size, (tuple, list)) and len(output_size) == 2 and all(
            v is None or (isinstance(v, Integral) and not isinstance(v, bool)) for v in output_size):
        sizes = (H if output_size[0] is None else int(output_size[0]),
                 W if output_size[1] is None else int(output_size[1]))
    else:
        raise TypeError(f"{op}: `output_size` must be an int or a pair of ints/None, got {output_size!r}")
    if min(sizes) < 1:
        raise ValueError(f"{op}: `output_size` must be positive, got {output_size!r} "
                         f"for input of shape {tuple(shape)}")
    from .._schema import check_tensor_size
    check_tensor_size((shape[0], shape[1]) + sizes, f"{op} with output_size {output_size!r}")  # before allocating
    return sizes


def _adaptive_input(input, output_size, op: str):
    """The checked input, ``(OH, OW)``, and ``((kh, kw), (sh, sw))`` when the adaptive windows are
    a plain pooling's (equally long and equally spaced along both axes), else None."""
    x = _image_input(input, op)
    _nonempty_plane(x, op)
    oh, ow = _adaptive_output_size(op, output_size, x.shape)
    uh, uw = _uniform_windows(x.shape[2], oh), _uniform_windows(x.shape[3], ow)
    uniform = None if uh is None or uw is None else ((uh[0], uw[0]), (uh[1], uw[1]))
    return x, (oh, ow), uniform


def _uniform_windows(in_size: int, out_size: int):
    """``(kernel, stride)`` when the adaptive windows are equally long and equally
    spaced (e.g. when ``out_size`` divides ``in_size``), else None."""
    starts, ends = (np.array(a) for a in adaptive_windows(in_size, out_size))
    lengths = ends - starts
    if np.any(lengths != lengths[0]):
        return None
    if out_size == 1:
        return int(lengths[0]), 1
    steps = np.diff(starts)
    if steps[0] < 1 or np.any(steps != steps[0]):
        return None
    return int(lengths[0]), int(steps[0])


def _adaptive_matrix(in_size: int, out_size: int, dtype) -> np.ndarray:
    """(out, in) matrix whose row o averages adaptive window o."""
    starts, ends = adaptive_windows(in_size, out_size)
    a = np.zeros((out_size, in_size), dtype=dtype)
    for o, (s, e) in enumerate(zip(starts, ends)):  # out_size rows of a tiny matrix, not pixels
        a[o, s:e] = 1.0 / (e - s)
    return a


def _adaptive_tap_table(in_size: int, out_size: int):
    """(K, out) table of input positions: tap k of window o is ``start_o + k``,
    clamped to the window's last pixel (repeats never win a strict max)."""
    starts, ends = (np.array(a) for a in adaptive_windows(in_size, out_size))
    k = int((ends - starts).max())
    table = np.minimum(starts[None, :] + np.arange(k)[:, None], ends[None, :] - 1)
    unique = out_size == 1 or bool(np.all(np.diff(table, axis=1) > 0))
    return table, unique


def _scatter_add(buf: np.ndarray, axis: int, positions: np.ndarray, values: np.ndarray, unique: bool):
    index = (slice(None),) * axis + (positions,)
    if unique:
        buf[index] += values
    else:  # overlapping windows (output larger than input): positions repeat
        np.add.at(buf, index, values)


def adaptive_avg_pool2d(input, output_size) -> Tensor:
    """Average pooling to a fixed output size, whatever the input size.

    Output row ``o`` averages input rows ``floor(o*H/OH)`` to
    ``ceil((o+1)*H/OH) - 1`` (PyTorch's windows), likewise for columns.

    Args:
        input: Tensor or array of shape (N, C, H, W).
        output_size: ``OH`` (square) or ``(OH, OW)``; None in a pair keeps
            that input size.

    Shape:
        - Input: ``(N, C, H, W)``
        - Output: ``(N, C, OH, OW)``.  When the windows are equal and equally
          spaced (e.g. H divisible by OH) this is :func:`avg_pool2d` with
          kernel ``k`` and stride ``s``, and ``OH = conv_output_size(H, k, s)``.
    """
    op = "adaptive_avg_pool2d"
    x, (oh, ow), uniform = _adaptive_input(input, output_size, op)
    N, C, H, W = x.shape
    if uniform is not None:
        kernel, stride = uniform
        return _avg_pool_core(x, kernel, stride, (0, 0), (oh, ow),
                              np.full((oh, ow), float(kernel[0] * kernel[1])), op)

    # General windows: averaging is separable, so the op is two small matrix
    # products, over H then over W, with (OH, H) and (OW, W) averaging matrices.
    m = to_chwn(x._data)
    a_h = _adaptive_matrix(H, oh, m.dtype)
    a_w = _adaptive_matrix(W, ow, m.dtype)
    if np.isfinite(m).all():
        rows = np.matmul(a_h, m.reshape(C, H, W * N))                       # (C, OH, W*N)
        out = np.matmul(a_w, rows.reshape(C * oh, W, N)).reshape(C, oh, ow, N)
    else:  # inf * 0 = NaN in a matrix product: sum the windows tap by tap (only theirs change)
        out = _adaptive_window_mean(_adaptive_window_mean(m, 2, W, ow), 1, H, oh)

    def backward(g):
        gm = to_chwn(g).reshape(C * oh, ow, N)
        g_rows = np.matmul(a_w.T, gm).reshape(C, oh, W * N)
        return (to_nchw(np.matmul(a_h.T, g_rows).reshape(C, H, W, N)),)

    return Tensor.from_op(to_nchw(out), (x,), backward, op)


def _adaptive_window_mean(m: np.ndarray, axis: int, in_size: int, out_size: int) -> np.ndarray:
    """Mean over the adaptive windows along ``axis``, a running sum over taps (no products)."""
    table, _ = _adaptive_tap_table(in_size, out_size)
    starts, ends = (np.array(a) for a in adaptive_windows(in_size, out_size))
    shape = [1] * m.ndim
    shape[axis] = out_size
    total = None
    for k in range(table.shape[0]):
        v = np.take(m, table[k], axis=axis)
        inside = (starts + k < ends).reshape(shape)   # shorter windows repeat their last pixel: skip it
        if not inside.all():
            v = np.where(inside, v, 0)
        total = v if total is None else total + v
    return total / (ends - starts).astype(m.dtype).reshape(shape)


def adaptive_max_pool2d(input, output_size, return_indices: bool = False):
    """Max pooling to a fixed output size, whatever the input size.

    Windows as in :func:`adaptive_avg_pool2d`.  With ``return_indices`` also
    returns the flat ``h * W + w`` index of each chosen pixel (int64).

    Shape:
        - Input: ``(N, C, H, W)``
        - Output: ``(N, C, OH, OW)``.  When the windows are equal and equally
          spaced this is :func:`max_pool2d` with kernel ``k`` and stride ``s``,
          and ``OH = conv_output_size(H, k, s)``.
    """
    op = "adaptive_max_pool2d"
    x, (oh, ow), uniform = _adaptive_input(input, output_size, op)
    N, C, H, W = x.shape
    if uniform is not None:
        kernel, stride = uniform
        return _extreme_pool_core(x, kernel, stride, (0, 0), (1, 1), (oh, ow), "max", return_indices, op)

    # General windows: a max over a rectangle is a max over its rows of the
    # maxima over its columns.  Stage 1 reduces columns -> (C, H, OW, N), stage 2
    # rows -> (C, OH, OW, N); each stage loops over the taps of the longest
    # window.  Columns first keeps PyTorch's row-major tie rule.
    m = to_chwn(x._data)
    cols, cols_unique = _adaptive_tap_table(W, ow)
    rows, rows_unique = _adaptive_tap_table(H, oh)
    track = return_indices or _grad_needed(x)
    col_max, col_idx = _extreme_over_taps(len(cols), lambda t: m[:, :, cols[t]], True, "max", track)
    out, row_idx = _extreme_over_taps(len(rows), lambda t: col_max[:, rows[t]], True, "max", track)
    del col_max

    def backward(g):
        gm = to_chwn(g)
        g_cols = np.zeros((C, H, ow, N), dtype=gm.dtype)
        select = _tap_selector(gm, row_idx)
        for t in range(len(rows)):
            _scatter_add(g_cols, 1, rows[t], select(t), rows_unique)
        gx = np.zeros((C, H, W, N), dtype=gm.dtype)
        select = _tap_selector(g_cols, col_idx)
        for t in range(len(cols)):
            _scatter_add(gx, 2, cols[t], select(t), cols_unique)
        return (to_nchw(gx),)

    result = Tensor.from_op(to_nchw(out), (x,), backward, op)
    if return_indices:
        h = rows[row_idx, np.arange(oh)[None, :, None, None]]                    # (C, OH, OW, N)
        c_tap = np.take_along_axis(col_idx, h, axis=1)                           # column tap at row h
        w = cols[c_tap, np.arange(ow)[None, None, :, None]]
        return result, Tensor(to_nchw(h.astype(np.int64) * W + w))
    return result


# --------------------------------------------------------------------------
# global pooling
# --------------------------------------------------------------------------
def global_avg_pool2d(input) -> Tensor:
    """Mean of every channel over all its pixels.

    Shape:
        - Input: ``(N, C, H, W)``
        - Output: ``(N, C)`` (the kernel covers the whole image:
          ``conv_output_size(H, H) == 1``, then the 1x1 axes are dropped).
    """
    op = "global_avg_pool2d"
    x = _image_input(input, op)
    _nonempty_plane(x, op)
    N, C, H, W = x.shape
    m = to_chwn(x._data).reshape(C, H * W, N)
    out = m.mean(axis=1)  # (C, N)

    def backward(g):
        gcn = np.asarray(g).T / (H * W)  # (C, N)
        full = np.broadcast_to(gcn[:, None, None, :], (C, H, W, N))
        return (to_nchw(np.ascontiguousarray(full)),)

    return Tensor.from_op(out.T, (x,), backward, op)


def global_max_pool2d(input) -> Tensor:
    """Highest value of every channel over all its pixels.

    The gradient goes to the (first, in row-major order) maximal pixel.

    Shape:
        - Input: ``(N, C, H, W)``
        - Output: ``(N, C)`` (``conv_output_size(H, H) == 1``, 1x1 axes dropped).
    """
    op = "global_max_pool2d"
    x = _image_input(input, op)
    _nonempty_plane(x, op)
    N, C, H, W = x.shape
    m = to_chwn(x._data).reshape(C, H * W, N)
    arg = m.argmax(axis=1)[:, None, :]  # (C, 1, N); NaN counts as the maximum, as in np.max
    out = np.take_along_axis(m, arg, axis=1)[:, 0, :]

    def backward(g):
        gm = np.zeros((C, H * W, N), dtype=g.dtype)
        np.put_along_axis(gm, arg, np.asarray(g).T[:, None, :], axis=1)
        return (to_nchw(gm.reshape(C, H, W, N)),)

    return Tensor.from_op(out.T, (x,), backward, op)


# --------------------------------------------------------------------------
# fractional max pooling
# --------------------------------------------------------------------------
def _fractional_intervals(u: np.ndarray, in_size: int, out_size: int, kernel: int) -> np.ndarray:
    """Window starts (N, C, out) for samples ``u`` (N, C), in ``u``'s float type.

    ``alpha = (in - k) / (out - 1)``; ``start_i = int((i + u) * alpha) - int(u * alpha)``
    for ``i < out - 1`` and the last window ends at the input's edge.
    """
    dtype = u.dtype.type
    seq = np.empty(u.shape + (out_size,), dtype=np.int64)
    if out_size > 1:
        alpha = dtype(in_size - kernel) / dtype(out_size - 1)
        i = np.arange(out_size - 1, dtype=u.dtype)
        seq[..., :-1] = (((i + u[..., None]) * alpha).astype(np.int64)
                         - (u * alpha).astype(np.int64)[..., None])
    seq[..., -1] = in_size - kernel
    return seq


def fractional_max_pool2d(input, kernel_size, output_size=None, output_ratio=None, samples=None,
                          rng: Optional[np.random.Generator] = None, return_indices: bool = False):
    """Fractional max pooling (Graham, 2014): pseudo-random window positions.

    The output size need not divide the input size: window starts follow
    ``start_i = int((i + u) * alpha) - int(u * alpha)``, ``alpha = (in - k) /
    (out - 1)``, with one random ``u`` in [0, 1) per image, channel and axis;
    the last window touches the bottom/right edge.  Equals
    ``torch.nn.functional.fractional_max_pool2d(x, k, output_size=...,
    _random_samples=samples)``.

    Args:
        input: Tensor or array of shape (N, C, H, W).
        kernel_size: window size, an int or ``(kh, kw)``.
        output_size: ``OH`` or ``(OH, OW)``; give this or ``output_ratio``.
        output_ratio: a float or pair in (0, 1); ``OH = int(H * ratio)``.
        samples: (N, C, 2) values in [0, 1); ``samples[..., 0]`` drives the
            width, ``samples[..., 1]`` the height (PyTorch's convention).
            Drawn from ``rng`` when omitted.
        rng: a ``numpy.random.Generator``; default ``np.random.default_rng()``.
        return_indices: also return the flat ``h * W + w`` input index of
            every chosen pixel (int64).

    Shape:
        - Input: ``(N, C, H, W)``
        - Output: ``(N, C, OH, OW)``; requires ``OH + kh - 1 <= H`` (and
          likewise for W), so that windows never leave the input.
    """
    op = "fractional_max_pool2d"
    x = _image_input(input, op)
    N, C, H, W = x.shape
    kh, kw = _int_pair(op, kernel_size, "kernel_size", 1)
    if (output_size is None) == (output_ratio is None):
        raise ValueError(f"{op}: give exactly one of `output_size` and `output_ratio`, got "
                         f"output_size={output_size!r} and output_ratio={output_ratio!r}")
    if output_size is not None:
        oh, ow = _int_pair(op, output_size, "output_size", 1)
    else:
        ratio = output_ratio if isinstance(output_ratio, (tuple, list)) else (output_ratio, output_ratio)
        if len(ratio) != 2 or not all(isinstance(r, Real) and not isinstance(r, bool) and 0 < r < 1
                                      for r in ratio):
            raise ValueError(f"{op}: `output_ratio` must be a float or a pair of floats in (0, 1), "
                             f"got {output_ratio!r}")
        oh, ow = int(H * ratio[0]), int(W * ratio[1])
        if min(oh, ow) < 1:
            raise ValueError(f"{op}: output_ratio={output_ratio!r} gives an empty output "
                             f"({oh}, {ow}) for input of shape {tuple(x.shape)}")
    for axis, size, out, k in (("height", H, oh, kh), ("width", W, ow, kw)):
        if out + k - 1 > size:
            raise ValueError(f"{op}: output {axis} {out} with kernel {axis} {k} needs an input {axis} "
                             f"of at least {out + k - 1}, got input of shape {tuple(x.shape)}")

    if samples is None:
        rng = np.random.default_rng() if rng is None else rng
        u = rng.random((N, C, 2)).astype(x.dtype)
    else:
        u = np.asarray(samples._data if isinstance(samples, Tensor) else samples)
        if u.shape != (N, C, 2):
            raise ValueError(f"{op}: `samples` must have shape (N, C, 2) = {(N, C, 2)}, got {u.shape}")
        if u.dtype.kind not in "fiu":
            raise TypeError(f"{op}: `samples` must be floats in [0, 1), got dtype {u.dtype}")
        if not np.all((u >= 0) & (u < 1)):
            raise ValueError(f"{op}: `samples` must lie in [0, 1), got values from {u.min()} to {u.max()}")
        u = u.astype(x.dtype)
    starts_w = _fractional_intervals(u[..., 0], W, ow, kw)  # (N, C, OW)
    starts_h = _fractional_intervals(u[..., 1], H, oh, kh)  # (N, C, OH)

    # Windows differ per (image, channel): gather each kernel tap with one flat
    # index array.  Element (c, r, w, n) of the (C, H, W, N) memory sits at
    # ((c*H + r)*W + w)*N + n, and tap (i, j) adds the constant (i*W + j)*N.
    m = to_chwn(x._data)
    flat_m = m.reshape(-1)
    c_ = np.arange(C)[:, None, None, None]
    n_ = np.arange(N)[None, None, None, :]
    base = (((c_ * H + starts_h.transpose(1, 2, 0)[:, :, None, :]) * W
             + starts_w.transpose(1, 2, 0)[:, None, :, :]) * N + n_)       # (C, OH, OW, N)
    offsets = np.array([(i * W + j) * N for i in range(kh) for j in range(kw)])
    track = return_indices or _grad_needed(x)
    # flat_m[off:].take(base) == flat_m[base + off]: no index arithmetic per tap
    out, idx = _extreme_over_taps(len(offsets), lambda t: flat_m[offsets[t]:].take(base), True,
                                  "max", track)

    def backward(g):
        # Each output element sends its gradient to one input element; overlapping
        # windows may pick the same one, so accumulate with a weighted bincount.
        winners = base + offsets[idx]
        gm = to_chwn(g)
        gflat = np.bincount(winners.ravel(), weights=gm.ravel(), minlength=C * H * W * N)
        return (to_nchw(gflat.astype(gm.dtype, copy=False).reshape(C, H, W, N)),)

    result = Tensor.from_op(to_nchw(out), (x,), backward, op)
    if return_indices:
        ti, tj = np.divmod(idx.astype(np.int64), kw)
        h = starts_h.transpose(1, 2, 0)[:, :, None, :] + ti
        w = starts_w.transpose(1, 2, 0)[:, None, :, :] + tj
        return result, Tensor(to_nchw(h * W + w))
    return result
