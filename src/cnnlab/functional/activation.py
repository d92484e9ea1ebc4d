"""Activation functions: forward and hand-written backward side by side.

All are elementwise except softmax, log_softmax and glu.  Each is written to
stay finite at extreme inputs (logits of +-1e4 give no warnings and exact
limits): sigmoid never evaluates ``exp`` of a large positive number, softmax
subtracts the maximum first.

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


def relu(input) -> Tensor:
    """``max(0, x)``: keeps positive values, zeroes the rest."""
    x = _float(input, "relu")
    out = np.maximum(x.data, 0)
    return Tensor.from_op(out, (x,), lambda g: (g * (out > 0),), "relu")


def leaky_relu(input, negative_slope: float = 0.01) -> Tensor:
    """``x`` if ``x > 0`` else ``negative_slope * x``: a small gradient for inactive units."""
    x = _float(input, "leaky_relu")
    positive = x.data > 0
    out = np.where(positive, x.data, x.data * x.dtype.type(negative_slope))
    slope = x.dtype.type(negative_slope)
    return Tensor.from_op(out, (x,), lambda g: (np.where(positive, g, g * slope),), "leaky_relu")


def _sigmoid(z: np.ndarray) -> np.ndarray:
    """Stable logistic function: only ever exponentiates non-positive numbers."""
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e))


def sigmoid(input) -> Tensor:
    """``1 / (1 + e^-x)``, in (0, 1): the probability of a binary or multi-label output."""
    x = _float(input, "sigmoid")
    out = _sigmoid(x.data)
    return Tensor.from_op(out, (x,), lambda g: (g * out * (1 - out),), "sigmoid")


def tanh(input) -> Tensor:
    """Hyperbolic tangent, in (-1, 1)."""
    x = _float(input, "tanh")
    out = np.tanh(x.data)
    return Tensor.from_op(out, (x,), lambda g: (g * (1 - out * out),), "tanh")


def softmax(input, dim: int = -1) -> Tensor:
    """``e^x_i / sum_j e^x_j`` along ``dim``: scores -> probabilities that sum to 1.

    The maximum is subtracted before exponentiating (the result is unchanged,
    and ``e^x`` can no longer overflow).  The seeds' example: scores 2.5, 1.8,
    0.2 give probabilities 0.63, 0.31, 0.06.
    """
    x = _float(input, "softmax")
    shifted = x.data - x.data.max(axis=dim, keepdims=True)
    e = np.exp(shifted)
    out = e / e.sum(axis=dim, keepdims=True)

    def backward(g):
        return (out * (g - (g * out).sum(axis=dim, keepdims=True)),)

    return Tensor.from_op(out, (x,), backward, "softmax")


def log_softmax(input, dim: int = -1) -> Tensor:
    """``x_i - log(sum_j e^x_j)`` along ``dim``, computed without overflow or log(0)."""
    x = _float(input, "log_softmax")
    shifted = x.data - x.data.max(axis=dim, keepdims=True)
    out = shifted - np.log(np.exp(shifted).sum(axis=dim, keepdims=True))

    def backward(g):
        return (g - np.exp(out) * g.sum(axis=dim, keepdims=True),)

    return Tensor.from_op(out, (x,), backward, "log_softmax")


def erf(x: np.ndarray) -> np.ndarray:
    """The error function to double precision, vectorised (NumPy has none).

    ``|x| < 3``: the series ``2/sqrt(pi) e^(-x^2) sum_n 2^n x^(2n+1) / (2n+1)!!``
    (all terms positive, so no cancellation).  ``|x| >= 3``: the continued
    fraction of ``erfc``.  Beyond 6, ``erf = +-1`` to the last bit.
    """
    x = np.asarray(x)
    z = np.abs(x).astype(np.float64)
    small = np.minimum(z, 3.0)
    term = small.copy()
    total = small.copy()
    z2 = small * small
    for n in range(1, 80):
        term = term * 2 * z2 / (2 * n + 1)
        total += term
    series = 2 / math.sqrt(math.pi) * np.exp(-z2) * total
    big = np.clip(z, 3.0, 6.0)
    t = big.copy()
    for k in range(60, 0, -1):
        t = big + (k / 2) / t
    tail = 1 - np.exp(-big * big) / math.sqrt(math.pi) / t
    result = np.where(z < 3.0, series, np.where(z < 6.0, tail, 1.0))
    return (np.sign(x) * result).astype(x.dtype if x.dtype.kind == "f" else np.float64)


def gelu(input, approximate: str = "none") -> Tensor:
    """Gaussian error linear unit ``x * Phi(x)``.

    ``approximate='none'``: ``Phi(x) = (1 + erf(x / sqrt 2)) / 2``;
    ``'tanh'``: ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``.
    """
    x = _float(input, "gelu")
    d = x.data
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
    size = x.shape[dim]
    if size % 2:
        raise ValueError(f"glu: halving dimension {dim} needs an even size, got {size} (input shape {x.shape})")
    a, b = np.split(x.data, 2, axis=dim)
    s = _sigmoid(b)
    out = a * s

    def backward(g):
        return (np.concatenate([g * s, g * a * s * (1 - s)], axis=dim),)

    return Tensor.from_op(out, (x,), backward, "glu")


def identity(input) -> Tensor:
    """Returns its input unchanged (a linear output layer)."""
    return as_tensor(input)
