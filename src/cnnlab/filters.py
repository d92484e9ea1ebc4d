"""Classic hand-made convolution kernels: edges, blurs, sharpening, Gabor stripes.

Before networks learned their filters, image processing used kernels written
by hand.  The first layer of a trained CNN often ends up looking like them, so
they are a good way to see what a convolution does: apply one to an image and
look at the feature map.

Every function returns a 2-D ``float32`` array of shape ``(kh, kw)``.  Rows run
top to bottom and columns left to right, exactly as the kernel is laid over the
image by :func:`cnnlab.functional.conv2d` (which, like every deep-learning
library, computes a cross-correlation: the kernel is *not* flipped).  Turn a
kernel into conv weights with :func:`as_weight`::

    >>> from cnnlab import filters
    >>> filters.as_weight(filters.sobel_x(), in_channels=3).shape
    (1, 3, 3, 3)

The command line names are in :data:`NAMES`; :func:`get` maps a name to its
kernel.
"""
from __future__ import annotations

import inspect
import math
from numbers import Real
from typing import Callable, Dict, Tuple

import numpy as np

__all__ = ["sobel_x", "sobel_y", "gaussian", "gabor", "laplacian", "box_blur", "sharpen",
           "as_weight", "get", "NAMES"]


# --------------------------------------------------------------------------- checks
def _check_size(size, name: str = "size") -> int:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)):
        raise TypeError(f"`{name}` must be an odd positive int, got {size!r} "
                        f"of type {type(size).__name__}")
    if size < 1 or size % 2 == 0:
        raise ValueError(f"`{name}` must be an odd positive int (1, 3, 5, ...) so the kernel has a "
                         f"centre pixel, got {size}")
    return int(size)


def _check_real(value, name: str, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"`{name}` must be a real number, got {value!r} of type {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"`{name}` must be finite, got {value}")
    if positive and value <= 0:
        raise ValueError(f"`{name}` must be > 0, got {value}")
    return value


def _grid(size: int) -> Tuple[np.ndarray, np.ndarray]:
    """Pixel offsets from the centre: ``x`` grows to the right, ``y`` grows downwards."""
    r = np.arange(size, dtype=np.float64) - size // 2
    y, x = np.meshgrid(r, r, indexing="ij")
    return x, y


# --------------------------------------------------------------------------- kernels
def sobel_x() -> np.ndarray:
    """Sobel kernel for horizontal change (responds to *vertical* edges)::

        [[-1, 0, 1],
         [-2, 0, 2],
         [-1, 0, 1]]

    Positive where the image gets brighter from left to right, negative where
    it gets darker, zero on flat regions (the values sum to 0).

    Shape:
        ``(3, 3)``, float32.
    """
    return np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float32)


def sobel_y() -> np.ndarray:
    """Sobel kernel for vertical change (responds to *horizontal* edges)::

        [[-1, -2, -1],
         [ 0,  0,  0],
         [ 1,  2,  1]]

    The transpose of :func:`sobel_x`: positive where the image gets brighter
    from top to bottom.

    Shape:
        ``(3, 3)``, float32.
    """
    return sobel_x().T.copy()


def gaussian(size: int = 5, sigma: float = 1.0) -> np.ndarray:
    """Gaussian blur kernel, normalised so its values sum to 1::

        k[y, x] = exp(-(x^2 + y^2) / (2 sigma^2)) / sum over the kernel

    with ``x`` and ``y`` the offsets from the centre pixel.  Summing to 1 keeps
    the brightness of flat regions unchanged.

    Args:
        size: odd kernel width and height.
        sigma: standard deviation in pixels (> 0).

    Shape:
        ``(size, size)``, float32.
    """
    size = _check_size(size)
    sigma = _check_real(sigma, "sigma", positive=True)
    x, y = _grid(size)
    k = np.exp(-(x ** 2 + y ** 2) / (2.0 * sigma ** 2))
    return (k / k.sum()).astype(np.float32)


def gabor(size: int = 21, sigma: float = 4.0, theta: float = 0.0, wavelength: float = 10.0,
          gamma: float = 0.5, phase: float = 0.0) -> np.ndarray:
    """Real Gabor kernel: a stripe pattern seen through a Gaussian window::

        x' =  x cos(theta) + y sin(theta)
        y' = -x sin(theta) + y cos(theta)
        k[y, x] = exp(-(x'^2 + gamma^2 y'^2) / (2 sigma^2)) * cos(2 pi x' / wavelength + phase)

    Convention: ``x`` is the column offset from the centre (growing to the
    right) and ``y`` the row offset (growing *downwards*, as row indices do).
    The stripes vary along ``x'``: ``theta = 0`` gives vertical stripes (the
    kernel responds to vertical edges and bars), ``theta = pi/2`` gives
    horizontal stripes and is exactly the transpose of ``theta = 0``.  The
    kernel is not normalised (its peak is 1 at the centre when ``phase = 0``).

    Args:
        size: odd kernel width and height.
        sigma: width of the Gaussian window in pixels (> 0).
        theta: orientation in radians (the CLI also takes degrees: ``--param theta=45deg``).
        wavelength: stripe period in pixels (> 0).
        gamma: aspect ratio of the window (> 0); below 1 the window is longer
            along the stripes.
        phase: phase offset in radians (0: even, cosine-like; pi/2: odd, sine-like).

    Shape:
        ``(size, size)``, float32.
    """
    size = _check_size(size)
    sigma = _check_real(sigma, "sigma", positive=True)
    theta = _check_real(theta, "theta")
    wavelength = _check_real(wavelength, "wavelength", positive=True)
    gamma = _check_real(gamma, "gamma", positive=True)
    phase = _check_real(phase, "phase")
    x, y = _grid(size)
    xr = x * math.cos(theta) + y * math.sin(theta)
    yr = -x * math.sin(theta) + y * math.cos(theta)
    k = np.exp(-(xr ** 2 + gamma ** 2 * yr ** 2) / (2.0 * sigma ** 2)) \
        * np.cos(2.0 * math.pi * xr / wavelength + phase)
    return k.astype(np.float32)


def laplacian(diagonal: bool = False) -> np.ndarray:
    """Discrete Laplacian (second derivative; responds to edges in every direction)::

        diagonal=False:          diagonal=True:
        [[0,  1, 0],             [[1,  1, 1],
         [1, -4, 1],              [1, -8, 1],
         [0,  1, 0]]              [1,  1, 1]]

    The values sum to 0, so flat regions give 0.

    Shape:
        ``(3, 3)``, float32.
    """
    if not isinstance(diagonal, (bool, np.bool_)):
        raise TypeError(f"`diagonal` must be a bool, got {diagonal!r}")
    if diagonal:
        k = np.ones((3, 3), dtype=np.float32)
        k[1, 1] = -8
        return k
    return np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=np.float32)


def box_blur(size: int = 3) -> np.ndarray:
    """Box (mean) blur: every value is ``1 / size^2``, so each output pixel is
    the average of the ``size x size`` window (the values sum to 1).

    Shape:
        ``(size, size)``, float32.
    """
    size = _check_size(size)
    return np.full((size, size), 1.0 / (size * size), dtype=np.float32)


def sharpen() -> np.ndarray:
    """Sharpening kernel: the pixel plus its difference from its 4 neighbours::

        [[ 0, -1,  0],
         [-1,  5, -1],
         [ 0, -1,  0]]

    Equal to the identity kernel minus :func:`laplacian`; the values sum to 1,
    so flat regions keep their brightness while edges are exaggerated.

    Shape:
        ``(3, 3)``, float32.
    """
    return np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], dtype=np.float32)


# --------------------------------------------------------------------------- helpers
def as_weight(kernel, in_channels: int = 1, average: bool = False) -> np.ndarray:
    """Conv weights ``(out_channels=1, in_channels, kh, kw)`` that apply ``kernel`` to every channel.

    The output of a convolution sums over input channels, so with the kernel
    copied to ``in_channels`` channels the feature map is the kernel applied to
    the *sum* of the channels.  With ``average=True`` each copy is divided by
    ``in_channels``: the kernel is applied to the channel mean (a grey image),
    which keeps blurs at the input's brightness.

    Args:
        kernel: a 2-D array ``(kh, kw)``, e.g. from :func:`sobel_x`.
        in_channels: number of input channels (1 for grey, 3 for RGB).
        average: divide by ``in_channels`` (see above).

    Shape:
        kernel ``(kh, kw)`` -> ``(1, in_channels, kh, kw)``, float32.
    """
    k = np.asarray(kernel)
    if k.ndim != 2:
        raise ValueError(f"kernel must be a 2-D array (kh, kw), got shape {tuple(k.shape)}")
    if k.dtype.kind not in "fiu":
        raise TypeError(f"kernel must be numeric, got dtype {k.dtype}")
    if isinstance(in_channels, bool) or not isinstance(in_channels, (int, np.integer)) or in_channels < 1:
        raise ValueError(f"`in_channels` must be a positive int, got {in_channels!r}")
    w = np.broadcast_to(k.astype(np.float32), (1, int(in_channels)) + k.shape).copy()
    if average:
        w /= np.float32(in_channels)
    return w


_FACTORIES: Dict[str, Callable[..., np.ndarray]] = {
    "sobel-x": sobel_x,
    "sobel-y": sobel_y,
    "gaussian": gaussian,
    "gabor": gabor,
    "laplacian": laplacian,
    "sharpen": sharpen,
    "blur": box_blur,
}

#: The kernel names accepted by :func:`get` and the command line.
NAMES: Tuple[str, ...] = tuple(_FACTORIES)


def get(name: str, **kwargs) -> np.ndarray:
    """The kernel called ``name`` (one of :data:`NAMES`), built with ``kwargs``.

    ``get("gaussian", size=7, sigma=2.0)`` is ``gaussian(size=7, sigma=2.0)``;
    ``"blur"`` is :func:`box_blur`.  Underscores are accepted for hyphens
    (``"sobel_x"``) and case is ignored.

    Raises:
        ValueError: for an unknown name (the message lists the valid ones).
        TypeError: for a keyword the kernel does not take (the message lists
            the ones it does).
    """
    if not isinstance(name, str):
        raise TypeError(f"filter name must be a string, got {name!r}")
    key = name.strip().lower().replace("_", "-")
    if key == "box-blur":
        key = "blur"
    if key not in _FACTORIES:
        raise ValueError(f"unknown filter {name!r}; valid names: {', '.join(NAMES)}")
    factory = _FACTORIES[key]
    params = list(inspect.signature(factory).parameters)
    unknown = sorted(set(kwargs) - set(params))
    if unknown:
        accepted = ", ".join(params) if params else "no arguments"
        raise TypeError(f"filter {key!r} got unexpected argument(s) {', '.join(unknown)}; "
                        f"it accepts: {accepted}")
    return factory(**kwargs)
