"""``cnnlab.vision.utils.make_grid``: a batch of images laid out as one image (torchvision's layout)."""
from __future__ import annotations

import math

import numpy as np

from ..tensor import Tensor

__all__ = ["make_grid"]


def make_grid(tensor, nrow: int = 8, padding: int = 2, normalize: bool = False, value_range=None,
              scale_each: bool = False, pad_value: float = 0.0) -> Tensor:
    """Tile ``(B, C, H, W)`` images into one ``(3 or C, H', W')`` image, ``nrow`` images per row.

    Each image sits in a cell of ``(H + padding) x (W + padding)`` with ``padding`` pixels of
    ``pad_value`` before it, plus one more border at the bottom and right, as torchvision does;
    one-channel images become three-channel.  ``normalize`` scales the values to [0, 1] using
    ``value_range`` (default: the batch's min and max; per image with ``scale_each``).  A single
    image comes back as it is (three channels), without a border.
    """
    images = np.asarray(tensor._data if isinstance(tensor, Tensor) else tensor)
    if isinstance(tensor, (list, tuple)):
        images = np.stack([np.asarray(t._data if isinstance(t, Tensor) else t) for t in tensor])
    if images.ndim == 2:
        images = images[None]
    if images.ndim == 3:  # one (C, H, W) image
        images = images[None]
    if images.ndim != 4:
        raise ValueError(f"make_grid expects images of shape (B, C, H, W), (C, H, W) or (H, W), "
                         f"got shape {images.shape}")
    if images.shape[1] == 1:
        images = np.repeat(images, 3, axis=1)
    images = images.astype(np.float32) if images.dtype.kind != "f" else images.copy()
    if normalize:
        axes = (1, 2, 3) if scale_each else None
        low = np.min(images, axis=axes, keepdims=True) if value_range is None else value_range[0]
        high = np.max(images, axis=axes, keepdims=True) if value_range is None else value_range[1]
        images = (np.clip(images, low, high) - low) / np.maximum(high - low, 1e-5)
    b, c, h, w = images.shape
    if b == 1:  # a single image is returned without a border, as torchvision does
        return Tensor(images[0])
    xmaps = min(int(nrow), b)
    ymaps = int(math.ceil(b / xmaps))
    cell_h, cell_w = h + padding, w + padding
    cells = np.full((ymaps * xmaps, c, cell_h, cell_w), pad_value, dtype=images.dtype)
    cells[:b, :, padding:, padding:] = images
    rows = cells.reshape(ymaps, xmaps, c, cell_h, cell_w).transpose(2, 0, 3, 1, 4)
    grid = np.full((c, ymaps * cell_h + padding, xmaps * cell_w + padding), pad_value, dtype=images.dtype)
    grid[:, :ymaps * cell_h, :xmaps * cell_w] = rows.reshape(c, ymaps * cell_h, xmaps * cell_w)
    return Tensor(grid)
