"""Internal memory layout of image batches: (C, H, W, N), batch innermost.

The public layout is NCHW.  Spatial ops take an NCHW array (any strides),
work on its (C, H, W, N) view, and hand back an NCHW *view* of (C, H, W, N)
memory.  With the batch innermost, every copy, scatter-add and max over a
kernel tap runs over long contiguous rows instead of short image rows.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
_NUMPY_MODE = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def to_chwn(x: np.ndarray) -> np.ndarray:
    """Contiguous (C, H, W, N) memory of an NCHW array (no copy when already so laid out)."""
    m = x.transpose(1, 2, 3, 0)
    return m if m.flags.c_contiguous else np.ascontiguousarray(m)


def to_nchw(m: np.ndarray) -> np.ndarray:
    """NCHW view of (C, H, W, N) memory."""
    return m.transpose(3, 0, 1, 2)


def pad_chwn(m: np.ndarray, pad_h: Tuple[int, int], pad_w: Tuple[int, int],
             mode: str = "zeros", value: float = 0.0) -> np.ndarray:
    """Pad (C, H, W, N) memory on H and W; ``mode`` as in ``torch.nn.functional.conv2d``."""
    (t, b), (l, r) = pad_h, pad_w
    if t == b == l == r == 0:
        return m
    C, H, W, N = m.shape
    from .._schema import check_tensor_size
    check_tensor_size((N, C, H + t + b, W + l + r), f"padding by {(t, b)} rows and {(l, r)} columns")
    if mode == "zeros":
        out = np.full((C, H + t + b, W + l + r, N), value, dtype=m.dtype)
        out[:, t:t + H, l:l + W] = m
        return out
    return np.pad(m, ((0, 0), (t, b), (l, r), (0, 0)), mode=_NUMPY_MODE[mode])


def pad_chwn_backward(g: np.ndarray, shape: Tuple[int, ...], pad_h: Tuple[int, int],
                      pad_w: Tuple[int, int], mode: str = "zeros") -> np.ndarray:
    """Adjoint of :func:`pad_chwn`: gradient of the padded memory -> gradient of ``shape`` memory."""
    (t, b), (l, r) = pad_h, pad_w
    if t == b == l == r == 0:
        return g
    C, H, W, N = shape
    if mode == "zeros":
        return g[:, t:t + H, l:l + W]
    # Each padded row/column copies one source row/column: fold them back with
    # two small one-hot matrix products (no loop over pixels).
    np_mode = _NUMPY_MODE[mode]
    rows = np.pad(np.arange(H), (t, b), mode=np_mode)
    cols = np.pad(np.arange(W), (l, r), mode=np_mode)
    fold_h = np.zeros((H, rows.size), dtype=g.dtype)
    fold_h[rows, np.arange(rows.size)] = 1
    fold_w = np.zeros((W, cols.size), dtype=g.dtype)
    fold_w[cols, np.arange(cols.size)] = 1
    out = np.einsum("hp,cpqn->chqn", fold_h, g, optimize=True)
    return np.einsum("wq,chqn->chwn", fold_w, out, optimize=True)


def tap(m: np.ndarray, i: int, j: int, out_h: int, out_w: int, stride: Tuple[int, int],
        dilation: Tuple[int, int] = (1, 1)) -> np.ndarray:
    """The strided (C, out_h, out_w, N) view of padded memory seen by kernel tap (i, j)."""
    sh, sw = stride
    r0, c0 = i * dilation[0], j * dilation[1]
    return m[:, r0:r0 + sh * (out_h - 1) + 1:sh, c0:c0 + sw * (out_w - 1) + 1:sw]


def check_padding_fits(mode: str, pad_h: Tuple[int, int], pad_w: Tuple[int, int], height: int, width: int,
                       op: str) -> None:
    """'reflect' padding must be smaller than the input and 'circular' at most its size (PyTorch's rule):
    a mirror or a wrap of more than the image itself is not defined."""
    if mode not in ("reflect", "circular"):
        return
    for axis, pads, size in (("height", pad_h, height), ("width", pad_w, width)):
        too_big = max(pads) >= size if mode == "reflect" else max(pads) > size
        if too_big:
            bound = "smaller than" if mode == "reflect" else "at most"
            raise ValueError(f"{op}: padding_mode='{mode}' needs padding {bound} the input {axis}, got padding "
                             f"{tuple(pads)} for input {axis} {size}")


def check_image_batch(x: np.ndarray, op: str) -> None:
    """Clear errors for a wrong rank or dtype before any NumPy arithmetic."""
    if x.ndim != 4:
        raise ValueError(f"{op}: expected a 4-D input (N, C, H, W), got shape {tuple(x.shape)}")
    if x.dtype.kind != "f":
        raise TypeError(f"{op}: expected a floating point input (float32 or float64), got dtype {x.dtype}")
