"""Activation functions: forward and hand-written backward side by side.

All are elementwise except softmax, log_softmax and glu.  Each is written to
stay finite at extreme inputs (logits of +-1e4 give no warnings and exact
limits): sigmoid is ``1 / (1 + e^-x)`` with an overflow to infinity allowed, softmax subtracts the maximum
first.

Shape: every elementwise activation keeps its input's shape (and memory layout).
"""
from __future__ import annotations

import math

import numpy as np

from ..tensor import Tensor, as_tensor

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_INV_SQRT_2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _float(x, name: str) -> Tensor:
    x = as_tensor(x)
    if x.dtype.kind != "f":
        raise TypeError(f"{name}: expected a floating point input (float32 or float64), got dtype {x.dtype}")
    return x


def _axis(x: Tensor, dim, name: str) -> int:
    """``dim`` checked as PyTorch does: an int in ``[-ndim, ndim)`` (a 0-d input counts as 1-d)."""
    if isinstance(dim, (bool, np.bool_)) or not isinstance(dim, (int, np.integer)):
        raise TypeError(f"{name}: `dim` must be an int, got {dim!r} ({type(dim).__name__})")
    n = max(x.ndim, 1)
    if not -n <= dim < n:
        raise IndexError(f"{name}: dimension out of range (expected to be in range of [{-n}, {n - 1}], "
                         f"but got {dim}) for input of shape {tuple(x.shape)}")
    return int(dim) if x.ndim else None


def relu(input) -> Tensor:
    """``max(0, x)``: keeps positive values, zeroes the rest."""
    x = _float(input, "relu")
    out = np.maximum(x._data, 0)
    return Tensor.from_op(out, (x,), lambda g: (g * (out > 0),), "relu")


def hardtanh(input, min_val: float = -1.0, max_val: float = 1.0) -> Tensor:
    """``x`` clipped to ``[min_val, max_val]``; the gradient passes strictly inside only (as PyTorch)."""
    if max_val < min_val:
        raise ValueError(f"hardtanh: max_val ({max_val}) must be at least min_val ({min_val})")
    x = _float(input, "hardtanh")
    lo, hi = x.dtype.type(min_val), x.dtype.type(max_val)
    out = np.clip(x._data, lo, hi)
    return Tensor.from_op(out, (x,), lambda g: (g * ((x._data > lo) & (x._data < hi)),), "hardtanh")


def relu6(input) -> Tensor:
    """``min(max(0, x), 6)``: :func:`hardtanh` between 0 and 6."""
    return hardtanh(input, 0.0, 6.0)


def leaky_relu(input, negative_slope: float = 0.01) -> Tensor:
    """``x`` if ``x > 0`` else ``negative_slope * x``: a small gradient for inactive units."""
    x = _float(input, "leaky_relu")
    slope = x.dtype.type(negative_slope)
    # max(x, slope*x) picks x for x > 0 and slope*x below, for any slope <= 1 (min above 1);
    # ufuncs keep the input's memory layout and are ~3x faster than a masked copy.
    pick = np.maximum if slope <= 1 else np.minimum
    out = np.multiply(x._data, slope, out=np.empty_like(x._data))  # an array even for a 0-d input
    pick(out, x._data, out=out)

    def backward(g):
        local = (x._data > 0).astype(g.dtype)   # 1 where x > 0, else slope
        local *= 1 - slope
        local += slope
        return (g * local,)

    return Tensor.from_op(out, (x,), backward, "leaky_relu")


def _sigmoid(z: np.ndarray) -> np.ndarray:
    """The logistic function ``1 / (1 + e^-z)``, stable for any input, dtype kept.

    ``e^-z`` overflows to infinity for very negative ``z`` and ``1 / inf`` is the exact limit 0;
    close to it the result keeps full relative precision.  Three NumPy passes over the array
    are ~5x faster than SciPy's ``expit`` ufunc on float32, which stays for scalars and ints.
    """
    z = np.asarray(z)
    if z.ndim == 0 or z.dtype.kind != "f":
        from scipy.special import expit  # SciPy comes with scikit-learn; loaded on first use
        return expit(z)
    with np.errstate(over="ignore"):
        out = np.negative(z)
        np.exp(out, out=out)
    out += 1
    return np.reciprocal(out, out=out)


def sigmoid(input) -> Tensor:
    """``1 / (1 + e^-x)``, in (0, 1): the probability of a binary or multi-label output."""
    x = _float(input, "sigmoid")
    out = _sigmoid(x._data)
    return Tensor.from_op(out, (x,), lambda g: (g * out * (1 - out),), "sigmoid")


def silu(input) -> Tensor:
    """``x * sigmoid(x)`` (SiLU, also called Swish): EfficientNet's activation.

    Computed as ``x / (1 + e^-x)`` in four passes and one array besides the output, instead of
    :func:`sigmoid` and a product (five passes, two arrays): ~30% less time on float32.  ``e^-x``
    may overflow to infinity for very negative ``x``, giving the exact limit 0 (-0.0).
    The gradient is ``sigmoid(x) * (1 + x * (1 - sigmoid(x)))``.
    """
    x = _float(input, "silu")
    z = x._data
    with np.errstate(over="ignore"):
        d = np.negative(z, out=np.empty_like(z))   # an array even for a 0-d input
        np.exp(d, out=d)
    d += 1                                            # 1 + e^-x = 1 / sigmoid(x)
    out = np.divide(z, d, out=np.empty_like(z))

    def backward(g):
        s = np.reciprocal(d)
        local = np.subtract(1, s, dtype=s.dtype)
        local *= z
        local += 1
        local *= s
        return (g * local,)

    return Tensor.from_op(out, (x,), backward, "silu")


def tanh(input) -> Tensor:
    """Hyperbolic tangent, in (-1, 1)."""
    x = _float(input, "tanh")
    out = np.tanh(x._data)
    return Tensor.from_op(out, (x,), lambda g: (g * (1 - out * out),), "tanh")


def softmax(input, dim: int = -1) -> Tensor:
    """``e^x_i / sum_j e^x_j`` along ``dim``: scores -> probabilities that sum to 1.

    The maximum is subtracted before exponentiating (the result is unchanged,
    and ``e^x`` can no longer overflow).  The seeds' example: scores 2.5, 1.8,
    0.2 give probabilities 0.63, 0.31, 0.06.
    """
    x = _float(input, "softmax")
    dim = _axis(x, dim, "softmax")
    # initial=-inf: a zero-length dim gives an empty result, as in PyTorch
    shifted = x._data - x._data.max(axis=dim, keepdims=True, initial=-np.inf)
    e = np.exp(shifted)
    out = e / e.sum(axis=dim, keepdims=True)

    def backward(g):
        return (out * (g - (g * out).sum(axis=dim, keepdims=True)),)

    return Tensor.from_op(out, (x,), backward, "softmax")


def log_softmax(input, dim: int = -1) -> Tensor:
    """``x_i - log(sum_j e^x_j)`` along ``dim``, computed without overflow or log(0)."""
    x = _float(input, "log_softmax")
    dim = _axis(x, dim, "log_softmax")
    shifted = x._data - x._data.max(axis=dim, keepdims=True, initial=-np.inf)
    with np.errstate(divide="ignore"):  # log(0) only for a zero-length dim (an empty result)
        out = shifted - np.log(np.exp(shifted).sum(axis=dim, keepdims=True))

    def backward(g):
        return (g - np.exp(out) * g.sum(axis=dim, keepdims=True),)

    return Tensor.from_op(out, (x,), backward, "log_softmax")


def erf(x: np.ndarray) -> np.ndarray:
    """The error function (NumPy has none): SciPy's ``erf`` ufunc, float32 stays float32."""
    from scipy.special import erf as _erf  # loaded on first use
    x = np.asarray(x)
    return _erf(x if x.dtype.kind == "f" else x.astype(np.float64))


def gelu(input, approximate: str = "none") -> Tensor:
    """Gaussian error linear unit ``x * Phi(x)``.

    ``approximate='none'``: ``Phi(x) = (1 + erf(x / sqrt 2)) / 2``;
    ``'tanh'``: ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``.
    """
    x = _float(input, "gelu")
    d = x._data
    if approximate == "none":
        cdf = 0.5 * (1 + erf(d * _INV_SQRT_2))
        out = d * cdf

        def backward(g):
            pdf = np.exp(-0.5 * d * d) * _INV_SQRT_2PI
            return (g * (cdf + d * pdf),)
    elif approximate == "tanh":
        inner = _SQRT_2_OVER_PI * (d + 0.044715 * d ** 3)
        th = np.tanh(inner)
        out = 0.5 * d * (1 + th)

        def backward(g):
            dinner = _SQRT_2_OVER_PI * (1 + 3 * 0.044715 * d * d)
            return (g * (0.5 * (1 + th) + 0.5 * d * (1 - th * th) * dinner),)
    else:
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return Tensor.from_op(out.astype(d.dtype, copy=False), (x,), backward, "gelu")


def glu(input, dim: int = -1) -> Tensor:
    """Gated linear unit: split ``dim`` into halves ``a, b`` and return ``a * sigmoid(b)``.

    Shape: ``(*, 2M, *) -> (*, M, *)`` along ``dim``.
    """
    x = _float(input, "glu")
    if x.ndim == 0:
        raise ValueError("glu: expected an input with at least one dimension, got a 0-d input")
    dim = _axis(x, dim, "glu")
    size = x.shape[dim]
    if size % 2:
        raise ValueError(f"glu: halving dimension {dim} needs an even size, got {size} (input shape {x.shape})")
    a, b = np.split(x._data, 2, axis=dim)
    s = _sigmoid(b)
    out = a * s

    def backward(g):
        return (np.concatenate([g * s, g * a * s * (1 - s)], axis=dim),)

    return Tensor.from_op(out, (x,), backward, "glu")


def identity(input) -> Tensor:
    """Returns its input unchanged (a linear output layer)."""
    return as_tensor(input)
