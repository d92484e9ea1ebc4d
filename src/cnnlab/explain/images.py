"""Image files in and out for the explain commands: read, crop, shrink, write PNG.

Arrays are ``(C, H, W)`` float in ``[0, 1]`` (C = 1 grayscale, 3 RGB), the
layout of :mod:`cnnlab.data`.  Reading goes through
:func:`cnnlab.data.folder.read_image` (Pillow, EXIF orientation, antialiased
resizing); Pillow is imported only inside these functions.
"""
from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Optional, Tuple

import numpy as np

from ..runs.files import atomic_write_bytes
from ..runs.model import image_file as _check_file

__all__ = ["image_channels", "load_image", "parse_crop", "parse_size", "crop", "fit_size",
           "to_uint8", "png_bytes", "save_png", "atomic_write"]

_GRAY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"}


atomic_write = atomic_write_bytes  # one atomic writer for the whole project (cnnlab.io)


def image_channels(path) -> Tuple[Tuple[int, int], int]:
    """``((H, W), channels)`` of an image file: 1 when it is grayscale, else 3.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not an image Pillow can read.
    """
    from PIL import Image, UnidentifiedImageError
    from ..data.folder import open_image
    path = _check_file(path)
    try:
        with open_image(path) as image:
            image.load()
            mode, size = image.mode, (image.height, image.width)
            gray = mode in _GRAY_MODES
            if mode == "P":
                rgb = np.asarray(image.convert("RGB"))
                gray = bool((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all())
    except Image.DecompressionBombError as exc:
        from ..data.folder import _too_large
        raise _too_large(path, exc) from None
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ValueError(f"cannot read image {path}: {exc}") from None
    return size, 1 if gray else 3


def load_image(path, channels: Optional[int] = None, size: Optional[Tuple[int, int]] = None) -> np.ndarray:
    """Read an image file as float32 ``(C, H, W)`` in ``[0, 1]``.

    Args:
        path: PNG, JPEG, BMP, GIF, TIFF or WebP file.
        channels: 1 (converted to grayscale), 3 (RGB) or None (1 for a
            grayscale file, else 3).
        size: ``(H, W)`` to resize to (antialiased), or None.

    Shape:
        output ``(channels, H, W)``.
    """
    from ..data.folder import read_image
    path = _check_file(path)
    if channels is None:
        _, channels = image_channels(path)
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels!r}")
    try:
        return read_image(path, channels, size)
    except ValueError as exc:
        raise ValueError(str(exc)) from None


def parse_size(text) -> Tuple[int, int]:
    """``"8"`` -> ``(8, 8)``; ``"8x12"`` or ``"8,12"`` -> ``(8, 12)`` (height, width)."""
    if isinstance(text, (int, np.integer)) and not isinstance(text, bool):
        values = [int(text)]
    else:
        parts = [p for p in re.split(r"[x,\s]+", str(text).strip().lower()) if p]
        try:
            values = [int(p) for p in parts]
        except ValueError:
            values = []
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or min(values) < 1:
        raise ValueError(f"size must be a positive int N or HxW (like 8 or 8x12), got {text!r}")
    return values[0], values[1]


def parse_crop(text) -> Tuple[int, int, int, int]:
    """``"top,left,height,width"`` (e.g. ``"10,12,8,8"``) -> a tuple of 4 ints."""
    parts = [p for p in re.split(r"[,\s]+", str(text).strip()) if p]
    try:
        values = [int(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != 4 or min(values[:2]) < 0 or min(values[2:]) < 1:
        raise ValueError(f"crop must be 'top,left,height,width' with top, left >= 0 and height, width >= 1 "
                         f"(like '10,12,8,8'), got {text!r}")
    return values[0], values[1], values[2], values[3]


def crop(image: np.ndarray, box: Tuple[int, int, int, int]) -> np.ndarray:
    """``image[:, top:top+height, left:left+width]``, checked against the image size.

    Shape:
        ``(C, H, W)`` -> ``(C, height, width)``.
    """
    top, left, height, width = box
    _, H, W = image.shape
    if top + height > H or left + width > W:
        raise ValueError(f"crop rows {top}-{top + height - 1}, columns {left}-{left + width - 1} does not fit "
                         f"inside the {H}x{W} image (rows 0-{H - 1}, columns 0-{W - 1})")
    return image[:, top:top + height, left:left + width]


def fit_size(shape: Tuple[int, int], longest: int) -> Tuple[int, int]:
    """``(H, W)`` scaled so the longer side is ``longest`` pixels (aspect ratio kept, at least 1)."""
    h, w = shape
    scale = longest / max(h, w)
    return max(1, int(round(h * scale))), max(1, int(round(w * scale)))


def to_uint8(image: np.ndarray) -> np.ndarray:
    """``(C, H, W)`` or ``(H, W)`` floats in [0, 1] -> ``(H, W)`` or ``(H, W, 3)`` uint8 (clipped)."""
    a = np.asarray(image, dtype=np.float64)
    if a.ndim == 3:
        a = a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)
    return np.round(np.clip(a, 0.0, 1.0) * 255.0).astype(np.uint8)


def png_bytes(image: np.ndarray, scale: int = 1) -> bytes:
    """PNG bytes of an image in [0, 1] (``(C, H, W)``, ``(H, W)`` or ``(H, W, 3)`` uint8), each pixel
    repeated ``scale`` times in both directions (nearest neighbour, so small images stay crisp)."""
    from PIL import Image
    a = np.asarray(image)
    if a.dtype != np.uint8:
        a = to_uint8(a)
    if scale > 1:
        a = np.repeat(np.repeat(a, scale, axis=0), scale, axis=1)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def save_png(image: np.ndarray, path, scale: int = 1) -> Path:
    """Write :func:`png_bytes` to ``path`` atomically."""
    return atomic_write(path, png_bytes(image, scale))
