"""Padding the borders of images (``torch.nn.functional.pad`` for 4-D inputs)."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..tensor import Tensor, as_tensor
from ._layout import check_image_batch, pad_chwn, pad_chwn_backward, to_chwn, to_nchw

_MODES = {"constant": "zeros", "reflect": "reflect", "replicate": "replicate", "circular": "circular"}


def pad(input, pad: Sequence[int], mode: str = "constant", value: float = None) -> Tensor:
    """Add ``pad = (left, right, top, bottom)`` pixels around each image (or ``(left, right)``).

    Args:
        input: ``(N, C, H, W)``.
        pad: 2 or 4 non-negative ints, last dimension first, as PyTorch.
        mode: ``'constant'`` (filled with ``value``, default 0), ``'reflect'``,
            ``'replicate'`` or ``'circular'``.

    Shape: ``(N, C, H, W) -> (N, C, H + top + bottom, W + left + right)``.
    """
    x = as_tensor(input)
    check_image_batch(x._data, "pad")
    if mode not in _MODES:
        raise ValueError(f"pad: mode must be one of {tuple(_MODES)}, got {mode!r}")
    pads = tuple(pad) if isinstance(pad, (tuple, list)) else None
    if pads is None or len(pads) not in (2, 4) or any(
            isinstance(p, bool) or not isinstance(p, (int, np.integer)) or p < 0 for p in pads):
        raise ValueError(f"pad: expected `pad` = (left, right) or (left, right, top, bottom) of "
                         f"non-negative ints for a 4-D input, got {pad!r}")
    if value is not None and mode != "constant":
        raise ValueError(f"pad: padding mode {mode!r} doesn't take in value argument")
    left, right, top, bottom = (tuple(int(p) for p in pads) + (0, 0))[:4]
    N, C, H, W = x.shape
    if mode == "reflect" and (max(top, bottom) >= max(H, 1) or max(left, right) >= W):
        raise ValueError(f"pad: reflect padding (left={left}, right={right}, top={top}, bottom={bottom}) "
                         f"must be smaller than the input size {(H, W)}")
    pad_h, pad_w = (top, bottom), (left, right)
    out = pad_chwn(to_chwn(x._data), pad_h, pad_w, _MODES[mode], 0.0 if value is None else value)

    def backward(g):
        return (to_nchw(pad_chwn_backward(to_chwn(g), (C, H, W, N), pad_h, pad_w, _MODES[mode])),)

    return Tensor.from_op(to_nchw(out), (x,), backward, "pad")


__all__ = ["pad"]
