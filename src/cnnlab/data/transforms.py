"""Batch transforms: normalisation and training-time augmentation.

Every transform is a callable ``transform(batch, rng=None) -> batch`` working
on a whole float batch of shape (B, C, H, W) at once, with no Python loop over
images: the random transforms draw one parameter per image from ``rng`` (a
``numpy.random.Generator``, an int seed, or ``None`` for fresh entropy) and
apply them all with vectorised indexing.  The same generator state always
gives the same output, which is what makes a training run reproducible and
resumable (the :class:`~cnnlab.data.DataLoader` passes its own generator).

Random transforms split the work in two, like torchvision's ``get_params``:
``sample_params(batch_shape, rng)`` draws the per-image parameters and
``apply(batch, params)`` uses them deterministically; ``__call__`` does both.
Inputs are never modified in place (except ``Normalize(inplace=True)``).
"""
from __future__ import annotations

import numbers
from typing import Sequence, Tuple

import numpy as np

from ..random import as_generator

__all__ = [
    "Transform", "Compose", "Normalize", "RandomCrop", "RandomHorizontalFlip", "RandomVerticalFlip",
    "RandomShift", "RandomRotation", "pad", "crop", "rotate",
]

_PAD_MODES = {"constant": "constant", "edge": "edge", "reflect": "reflect", "symmetric": "symmetric",
              "replicate": "edge"}


def _check_batch(batch, name: str) -> np.ndarray:
    if not isinstance(batch, np.ndarray):
        raise TypeError(f"{name} expects a NumPy array of shape (B, C, H, W), got {type(batch).__name__}")
    if batch.ndim != 4:
        raise ValueError(f"{name} expects a batch of shape (B, C, H, W), got shape {batch.shape}")
    if batch.dtype.kind != "f":
        raise TypeError(f"{name} expects a float batch (float32 in [0, 1]), got dtype {batch.dtype}")
    return batch


def _pair(value, name: str, minimum: int = 0) -> Tuple[int, int]:
    if isinstance(value, numbers.Integral):
        value = (int(value), int(value))
    try:
        pair = tuple(int(v) for v in value)
    except TypeError:
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}") from None
    if len(pair) != 2 or min(pair) < minimum:
        raise ValueError(f"{name} must be an int or a pair of ints >= {minimum}, got {value!r}")
    return pair


def _padding4(padding) -> Tuple[int, int, int, int]:
    """torchvision's padding forms -> (left, top, right, bottom)."""
    if padding is None:
        return (0, 0, 0, 0)
    if isinstance(padding, numbers.Integral):
        p = int(padding)
        values = (p, p, p, p)
    else:
        values = tuple(int(v) for v in padding)
        if len(values) == 2:  # (left/right, top/bottom)
            values = (values[0], values[1], values[0], values[1])
        elif len(values) != 4:
            raise ValueError(f"padding must be an int, (left/right, top/bottom) or "
                             f"(left, top, right, bottom), got {padding!r}")
    if min(values) < 0:
        raise ValueError(f"padding must be non-negative, got {padding!r}")
    return values


class Transform:
    """Base class: ``__call__(batch, rng=None)`` maps a (B, C, H, W) batch to a new batch."""

    def __call__(self, batch: np.ndarray, rng=None) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"


class Compose(Transform):
    """Apply transforms in order, all drawing from the same generator.

    Args:
        transforms: a sequence of callables ``t(batch, rng)``.
    """

    def __init__(self, transforms: Sequence):
        transforms = list(transforms)
        for t in transforms:
            if not callable(t):
                raise TypeError(f"Compose expects callables t(batch, rng), got {type(t).__name__}")
        self.transforms = transforms

    def __call__(self, batch, rng=None):
        rng = as_generator(rng)
        for t in self.transforms:
            batch = t(batch, rng)
        return batch

    def __repr__(self) -> str:
        inner = ", ".join(repr(t) for t in self.transforms)
        return f"Compose([{inner}])"


class Normalize(Transform):
    """Per-channel ``(x - mean) / std``, as ``torchvision.transforms.Normalize``.

    Args:
        mean, std: one value per channel (or a single value for all channels).
        inplace: write into the input batch instead of a new array.

    Shape:
        - input: (B, C, H, W), float
        - output: same shape and dtype
    """

    def __init__(self, mean, std, inplace: bool = False):
        self.mean = tuple(float(v) for v in np.atleast_1d(np.asarray(mean, dtype=np.float64)))
        self.std = tuple(float(v) for v in np.atleast_1d(np.asarray(std, dtype=np.float64)))
        if len(self.mean) != len(self.std):
            raise ValueError(f"mean and std must have the same length, got {len(self.mean)} and {len(self.std)}")
        if min(self.std) <= 0:
            raise ValueError(f"std must be positive, got {self.std}")
        self.inplace = bool(inplace)

    def _stats(self, batch):
        channels = batch.shape[1]
        if len(self.mean) not in (1, channels):
            raise ValueError(f"Normalize has {len(self.mean)} channel statistics, the batch has "
                             f"{channels} channels (shape {batch.shape})")
        mean = np.asarray(self.mean, dtype=batch.dtype).reshape(1, -1, 1, 1)
        std = np.asarray(self.std, dtype=batch.dtype).reshape(1, -1, 1, 1)
        return mean, std

    def __call__(self, batch, rng=None):
        batch = _check_batch(batch, "Normalize")
        mean, std = self._stats(batch)
        if self.inplace:
            batch -= mean
            batch /= std
            return batch
        return (batch - mean) / std

    def inverse(self, batch):
        """Undo the normalisation: ``x * std + mean`` (for showing images)."""
        batch = _check_batch(batch, "Normalize.inverse")
        mean, std = self._stats(batch)
        return batch * std + mean


# ---------------------------------------------------------------------------
# Vectorised building blocks
# ---------------------------------------------------------------------------

def pad(batch, padding, fill: float = 0.0, padding_mode: str = "constant") -> np.ndarray:
    """Pad the two spatial axes of a batch.

    Args:
        padding: int, ``(left/right, top/bottom)`` or ``(left, top, right, bottom)``.
        fill: value for ``padding_mode="constant"``.
        padding_mode: ``"constant"``, ``"edge"`` (alias ``"replicate"``), ``"reflect"`` or ``"symmetric"``.

    Shape:
        - input: (B, C, H, W)
        - output: (B, C, H + top + bottom, W + left + right)
    """
    batch = _check_batch(batch, "pad")
    left, top, right, bottom = _padding4(padding)
    if padding_mode not in _PAD_MODES:
        raise ValueError(f"padding_mode must be one of {sorted(_PAD_MODES)}, got {padding_mode!r}")
    if not (left or top or right or bottom):
        return batch
    widths = ((0, 0), (0, 0), (top, bottom), (left, right))
    if padding_mode == "constant":
        return np.pad(batch, widths, mode="constant", constant_values=fill)
    return np.pad(batch, widths, mode=_PAD_MODES[padding_mode])


def crop(batch, top, left, size) -> np.ndarray:
    """Cut a ``size`` window out of each image, at a per-image offset.

    Args:
        top, left: int arrays of shape (B,): the window's upper-left corner in each image.
        size: ``(h, w)`` or an int.

    Shape:
        - input: (B, C, H, W)
        - output: (B, C, h, w)
    """
    batch = _check_batch(batch, "crop")
    h, w = _pair(size, "size", minimum=1)
    n, _, height, width = batch.shape
    top = np.asarray(top, dtype=np.intp)
    left = np.asarray(left, dtype=np.intp)
    if top.shape != (n,) or left.shape != (n,):
        raise ValueError(f"top and left must have shape ({n},), got {top.shape} and {left.shape}")
    if n and (top.min() < 0 or left.min() < 0 or top.max() + h > height or left.max() + w > width):
        raise ValueError(f"crop windows of size {(h, w)} at tops {top.min()}..{top.max()} and lefts "
                         f"{left.min()}..{left.max()} do not fit images of size {(height, width)}")
    # windows[b, c, i, j] is the (h, w) window whose corner is (i, j); one gather picks
    # each image's own window (advanced indices around a slice put the batch axis first).
    windows = np.lib.stride_tricks.sliding_window_view(batch, (h, w), axis=(2, 3))
    return windows[np.arange(n), :, top, left]


def rotate(batch, angles, interpolation: str = "bilinear", fill: float = 0.0, center=None) -> np.ndarray:
    """Rotate each image by its own angle (degrees, counter-clockwise as displayed).

    Pixel (y, x) of the output samples the input at the point that the rotation
    maps onto it, about ``center`` = (cy, cx) in pixel coordinates (default:
    the image centre ((H - 1) / 2, (W - 1) / 2)).  Samples outside the image
    read ``fill``.  Matches ``torch.nn.functional.grid_sample`` with
    ``align_corners=False`` and zero padding (for ``fill=0`` and square images).

    Args:
        angles: array of shape (B,) or a scalar, in degrees.
        interpolation: ``"bilinear"`` or ``"nearest"``.

    Shape:
        - input: (B, C, H, W)
        - output: (B, C, H, W)
    """
    batch = _check_batch(batch, "rotate")
    if interpolation not in ("bilinear", "nearest"):
        raise ValueError(f"interpolation must be 'bilinear' or 'nearest', got {interpolation!r}")
    n, c, height, width = batch.shape
    angles = np.broadcast_to(np.asarray(angles, dtype=np.float64), (n,))
    if center is None:
        cy, cx = (height - 1) / 2.0, (width - 1) / 2.0
    else:
        cy, cx = (float(v) for v in center)
    theta = np.deg2rad(angles)[:, None, None]
    cos, sin = np.cos(theta), np.sin(theta)
    dy = (np.arange(height, dtype=np.float64) - cy)[None, :, None]
    dx = (np.arange(width, dtype=np.float64) - cx)[None, None, :]
    # inverse rotation: the input point that lands on output pixel (y, x); (B, H*W) each
    sx = (cos * dx - sin * dy + cx).reshape(n, -1)
    sy = (sin * dx + cos * dy + cy).reshape(n, -1)
    dtype = batch.dtype
    flat = np.ascontiguousarray(batch).reshape(-1)
    # start of each (image, channel) plane in ``flat``: (B, C, 1); a pixel is plane + y * W + x
    plane = (np.arange(n * c, dtype=np.intp) * (height * width)).reshape(n, c, 1)

    if interpolation == "nearest":
        xi = np.rint(sx).astype(np.intp)
        yi = np.rint(sy).astype(np.intp)
        valid = (xi >= 0) & (xi < width) & (yi >= 0) & (yi < height)
        index = np.clip(yi, 0, height - 1) * width + np.clip(xi, 0, width - 1)
        values = np.take(flat, plane + index[:, None, :])
        out = np.where(valid[:, None, :], values, dtype.type(fill))
        return out.reshape(n, c, height, width)

    def taps(s, size):
        """Both neighbouring indices along one axis (clipped) and their weights (0 outside)."""
        s0 = np.floor(s)
        w1 = s - s0
        i0 = s0.astype(np.intp)
        i1 = i0 + 1
        w0 = (1.0 - w1) * ((i0 >= 0) & (i0 < size))
        w1 = w1 * ((i1 >= 0) & (i1 < size))
        return ((np.clip(i0, 0, size - 1), w0), (np.clip(i1, 0, size - 1), w1))

    x_taps = taps(sx, width)
    out = np.zeros((n, c, height * width), dtype=dtype)
    covered = np.zeros_like(sx) if fill != 0 else None
    for yi, wy in taps(sy, height):  # the 4 corner taps
        row = yi * width
        for xi, wx in x_taps:
            weight = wy * wx
            out += weight.astype(dtype)[:, None, :] * np.take(flat, plane + (row + xi)[:, None, :])
            if covered is not None:
                covered += weight
    if covered is not None:
        out += (fill * (1.0 - covered)).astype(dtype)[:, None, :]
    return out.reshape(n, c, height, width)


# ---------------------------------------------------------------------------
# Random transforms
# ---------------------------------------------------------------------------

class RandomCrop(Transform):
    """Pad, then cut a ``size`` window at a random offset per image (``torchvision.transforms.RandomCrop``).

    Args:
        size: ``(h, w)`` of the output, or an int for a square.
        padding: added first: int, ``(left/right, top/bottom)`` or ``(left, top, right, bottom)``.
        pad_if_needed: pad further when the (padded) image is smaller than ``size``.
        fill: value of constant padding.
        padding_mode: ``"constant"``, ``"edge"``, ``"reflect"`` or ``"symmetric"``.

    Parameters drawn per image: the window corner ``(top, left)`` in the padded
    image, uniform over all positions that fit.

    Shape:
        - input: (B, C, H, W)
        - output: (B, C, h, w)
    """

    def __init__(self, size, padding=None, pad_if_needed: bool = False, fill: float = 0.0,
                 padding_mode: str = "constant"):
        self.size = _pair(size, "size", minimum=1)
        self.padding = _padding4(padding)
        if padding_mode not in _PAD_MODES:
            raise ValueError(f"padding_mode must be one of {sorted(_PAD_MODES)}, got {padding_mode!r}")
        self.pad_if_needed = bool(pad_if_needed)
        self.fill = float(fill)
        self.padding_mode = padding_mode

    def _full_padding(self, shape) -> Tuple[int, int, int, int]:
        left, top, right, bottom = self.padding
        height = shape[2] + top + bottom
        width = shape[3] + left + right
        h, w = self.size
        if self.pad_if_needed:  # as torchvision: pad both sides by the shortfall
            if height < h:
                top, bottom = top + h - height, bottom + h - height
            if width < w:
                left, right = left + w - width, right + w - width
        height = shape[2] + top + bottom
        width = shape[3] + left + right
        if height < h or width < w:
            raise ValueError(f"RandomCrop of size {self.size} does not fit images of shape {tuple(shape)} "
                             f"padded to {(height, width)}; add padding or pad_if_needed=True")
        return left, top, right, bottom

    def sample_params(self, batch_shape, rng=None) -> Tuple[np.ndarray, np.ndarray]:
        """``(top, left)``: int64 arrays of shape (B,), corners in the padded images."""
        rng = as_generator(rng)
        left, top, right, bottom = self._full_padding(batch_shape)
        n = batch_shape[0]
        top_max = batch_shape[2] + top + bottom - self.size[0]
        left_max = batch_shape[3] + left + right - self.size[1]
        return rng.integers(0, top_max + 1, size=n), rng.integers(0, left_max + 1, size=n)

    def apply(self, batch, params) -> np.ndarray:
        batch = _check_batch(batch, "RandomCrop")
        padded = pad(batch, self._full_padding(batch.shape), self.fill, self.padding_mode)
        return crop(padded, params[0], params[1], self.size)

    def __call__(self, batch, rng=None):
        batch = _check_batch(batch, "RandomCrop")
        return self.apply(batch, self.sample_params(batch.shape, rng))


class RandomHorizontalFlip(Transform):
    """Mirror each image left-right with probability ``p``.

    Parameters drawn per image: a bool "flip".

    Shape:
        - input: (B, C, H, W)
        - output: (B, C, H, W)
    """

    _axis = 3

    def __init__(self, p: float = 0.5):
        if not 0.0 <= float(p) <= 1.0:
            raise ValueError(f"p must be a probability in [0, 1], got {p}")
        self.p = float(p)

    def sample_params(self, batch_shape, rng=None) -> np.ndarray:
        """Bool array of shape (B,): which images to flip."""
        return as_generator(rng).random(batch_shape[0]) < self.p

    def apply(self, batch, params) -> np.ndarray:
        batch = _check_batch(batch, type(self).__name__)
        flipped = np.flip(batch, axis=self._axis)
        return np.where(np.asarray(params, dtype=bool)[:, None, None, None], flipped, batch)

    def __call__(self, batch, rng=None):
        batch = _check_batch(batch, type(self).__name__)
        return self.apply(batch, self.sample_params(batch.shape, rng))


class RandomVerticalFlip(RandomHorizontalFlip):
    """Mirror each image top-bottom with probability ``p``."""

    _axis = 2


class RandomShift(Transform):
    """Translate each image by a random whole number of pixels, filling the uncovered border.

    Args:
        max_pixels: largest shift, an int or ``(max_dy, max_dx)``.
        fill: value of the uncovered border.

    Parameters drawn per image: ``(dy, dx)`` uniform integers in
    ``[-max_dy, max_dy]`` x ``[-max_dx, max_dx]``; output pixel (y, x) is input
    pixel (y - dy, x - dx).

    Shape:
        - input: (B, C, H, W)
        - output: (B, C, H, W)
    """

    def __init__(self, max_pixels, fill: float = 0.0):
        self.max_pixels = _pair(max_pixels, "max_pixels", minimum=0)
        self.fill = float(fill)

    def sample_params(self, batch_shape, rng=None) -> Tuple[np.ndarray, np.ndarray]:
        """``(dy, dx)``: int64 arrays of shape (B,)."""
        rng = as_generator(rng)
        my, mx = self.max_pixels
        n = batch_shape[0]
        return rng.integers(-my, my + 1, size=n), rng.integers(-mx, mx + 1, size=n)

    def apply(self, batch, params) -> np.ndarray:
        batch = _check_batch(batch, "RandomShift")
        my, mx = self.max_pixels
        dy, dx = (np.asarray(p) for p in params)
        padded = pad(batch, (mx, my, mx, my), self.fill)
        return crop(padded, my - dy, mx - dx, batch.shape[2:])

    def __call__(self, batch, rng=None):
        batch = _check_batch(batch, "RandomShift")
        return self.apply(batch, self.sample_params(batch.shape, rng))


class RandomRotation(Transform):
    """Rotate each image by its own random angle (``torchvision.transforms.RandomRotation``).

    Args:
        degrees: ``d`` for angles uniform in ``[-d, d]``, or ``(min, max)``.
        interpolation: ``"bilinear"`` or ``"nearest"``.
        fill: value for pixels rotated in from outside the image.
        center: ``(cy, cx)`` in pixels; default the image centre.

    Parameters drawn per image: the angle in degrees (counter-clockwise as displayed).
    See :func:`rotate` for the sampling.

    Shape:
        - input: (B, C, H, W)
        - output: (B, C, H, W)
    """

    def __init__(self, degrees, interpolation: str = "bilinear", fill: float = 0.0, center=None):
        if isinstance(degrees, numbers.Real):
            if degrees < 0:
                raise ValueError(f"degrees must be non-negative when a single number, got {degrees}")
            degrees = (-float(degrees), float(degrees))
        else:
            degrees = tuple(float(d) for d in degrees)
            if len(degrees) != 2 or degrees[0] > degrees[1]:
                raise ValueError(f"degrees must be a number or a (min, max) pair, got {degrees!r}")
        if interpolation not in ("bilinear", "nearest"):
            raise ValueError(f"interpolation must be 'bilinear' or 'nearest', got {interpolation!r}")
        self.degrees = degrees
        self.interpolation = interpolation
        self.fill = float(fill)
        self.center = center

    def sample_params(self, batch_shape, rng=None) -> np.ndarray:
        """Float64 array of shape (B,): the angles in degrees."""
        return as_generator(rng).uniform(self.degrees[0], self.degrees[1], size=batch_shape[0])

    def apply(self, batch, params) -> np.ndarray:
        return rotate(batch, params, self.interpolation, self.fill, self.center)

    def __call__(self, batch, rng=None):
        batch = _check_batch(batch, "RandomRotation")
        return self.apply(batch, self.sample_params(batch.shape, rng))
