"""Weight initialisation schemes, in place, with ``torch.nn.init``'s names and formulas.

Each function fills a :class:`~cnnlab.nn.Parameter` (or any Tensor or float
ndarray) *in place* -- the array object stays the same, so optimizers and
``state_dict`` keep seeing it -- draws from cnnlab's seeded generator
(``cnnlab.manual_seed``) unless ``generator=`` (a ``numpy.random.Generator``)
is given, and returns its argument::

    def init_weights(m):
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(m.bias)
    model.apply(init_weights)

Fans, as PyTorch: for a weight of shape ``(out, in, *kernel)``,
``fan_in = in * prod(kernel)`` and ``fan_out = out * prod(kernel)``
(a Linear weight ``(out_features, in_features)`` has no kernel dims).
"""
from __future__ import annotations

import math
import warnings
from typing import Optional

import numpy as np

from ..random import get_rng
from ..tensor import Tensor

_LINEAR = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
           "conv_transpose3d", "sigmoid")


def _array(tensor) -> np.ndarray:
    array = tensor._data if isinstance(tensor, Tensor) else tensor
    if not isinstance(array, np.ndarray):
        raise TypeError(f"nn.init expects a Parameter, Tensor or ndarray, got {type(tensor).__name__}")
    if array.dtype.kind != "f":
        raise TypeError(f"nn.init fills floating point tensors only, got dtype {array.dtype}")
    return array


def _fill(tensor, values):
    array = _array(tensor)
    array[...] = values
    return tensor


def _rng(generator: Optional[np.random.Generator]) -> np.random.Generator:
    return get_rng() if generator is None else generator


def calculate_gain(nonlinearity: str, param: Optional[float] = None) -> float:
    """The recommended gain for a nonlinearity (``torch.nn.init.calculate_gain``).

    ==================  ===================================
    linear, conv*, sigmoid  1
    tanh                5/3
    relu                sqrt(2)
    leaky_relu          sqrt(2 / (1 + negative_slope^2))  (``param``, default 0.01)
    selu                3/4
    ==================  ===================================
    """
    if nonlinearity in _LINEAR:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif not isinstance(param, bool) and isinstance(param, (int, float)):
            slope = param
        else:
            raise ValueError(f"negative_slope {param} not a valid number")
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"Unsupported nonlinearity {nonlinearity}; expected one of "
                     f"{', '.join(_LINEAR + ('tanh', 'relu', 'leaky_relu', 'selu'))}")


def _calculate_fan_in_and_fan_out(tensor):
    """``(fan_in, fan_out)`` of a weight of shape ``(out, in, *kernel)``."""
    shape = _array(tensor).shape
    if len(shape) < 2:
        raise ValueError(f"Fan in and fan out can not be computed for tensor with fewer than 2 "
                         f"dimensions, got shape {shape}")
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def _calculate_correct_fan(tensor, mode: str) -> int:
    mode = mode.lower()
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"Mode {mode} not supported, please use one of fan_in, fan_out")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


# --- plain distributions and constants ------------------------------------------------------
def uniform_(tensor, a: float = 0.0, b: float = 1.0, generator=None):
    """Fill with values drawn uniformly from ``[a, b)``."""
    return _fill(tensor, _rng(generator).uniform(a, b, size=_array(tensor).shape))


def normal_(tensor, mean: float = 0.0, std: float = 1.0, generator=None):
    """Fill with values drawn from ``N(mean, std^2)``."""
    return _fill(tensor, _rng(generator).normal(mean, std, size=_array(tensor).shape))


def trunc_normal_(tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0,
                  generator=None):
    """Fill from ``N(mean, std^2)`` truncated to ``[a, b]`` (absolute bounds, as PyTorch),
    by inverting the normal CDF on a uniform draw between ``cdf(a)`` and ``cdf(b)``."""
    from scipy.special import ndtr, ndtri

    if not a < b:
        raise ValueError(f"trunc_normal_: expected a < b, got a={a}, b={b}")
    lo, hi = ndtr((a - mean) / std), ndtr((b - mean) / std)
    u = _rng(generator).uniform(lo, hi, size=_array(tensor).shape)
    return _fill(tensor, np.clip(mean + std * ndtri(u), a, b))


def constant_(tensor, val: float):
    """Fill with ``val``."""
    return _fill(tensor, val)


def ones_(tensor):
    return _fill(tensor, 1.0)


def zeros_(tensor):
    return _fill(tensor, 0.0)


def eye_(tensor):
    """The identity matrix in a 2-D tensor (as many ones as fit on the diagonal)."""
    array = _array(tensor)
    if array.ndim != 2:
        raise ValueError(f"Only tensors with 2 dimensions are supported, got shape {array.shape}")
    return _fill(tensor, np.eye(*array.shape))


# --- scaled by the fans ------------------------------------------------------------------------
def xavier_uniform_(tensor, gain: float = 1.0, generator=None):
    """Glorot uniform: ``U(-a, a)`` with ``a = gain * sqrt(6 / (fan_in + fan_out))``."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    bound = gain * math.sqrt(6.0 / float(fan_in + fan_out))
    return uniform_(tensor, -bound, bound, generator)


def xavier_normal_(tensor, gain: float = 1.0, generator=None):
    """Glorot normal: ``N(0, std^2)`` with ``std = gain * sqrt(2 / (fan_in + fan_out))``."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / float(fan_in + fan_out)), generator)


def _kaiming_std(tensor, a, mode, nonlinearity) -> Optional[float]:
    if 0 in _array(tensor).shape:
        warnings.warn("Initializing zero-element tensors is a no-op")
        return None
    fan = _calculate_correct_fan(tensor, mode)
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def kaiming_uniform_(tensor, a: float = 0, mode: str = "fan_in", nonlinearity: str = "leaky_relu",
                     generator=None):
    """He uniform: ``U(-bound, bound)``, ``bound = gain * sqrt(3 / fan_mode)``.

    ``a`` is the negative slope of the leaky ReLU that follows (used by its gain);
    ``mode='fan_in'`` keeps the forward variance, ``'fan_out'`` the backward one.
    PyTorch's default Conv2d/Linear weights are ``kaiming_uniform_(w, a=math.sqrt(5))``.
    """
    std = _kaiming_std(tensor, a, mode, nonlinearity)
    if std is None:
        return tensor
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(tensor, a: float = 0, mode: str = "fan_in", nonlinearity: str = "leaky_relu",
                    generator=None):
    """He normal: ``N(0, std^2)``, ``std = gain / sqrt(fan_mode)``."""
    std = _kaiming_std(tensor, a, mode, nonlinearity)
    if std is None:
        return tensor
    return normal_(tensor, 0.0, std, generator)


def orthogonal_(tensor, gain: float = 1.0, generator=None):
    """A (semi-)orthogonal matrix (the weight flattened to ``(shape[0], -1)``), times ``gain``."""
    array = _array(tensor)
    if array.ndim < 2:
        raise ValueError(f"Only tensors with 2 or more dimensions are supported, got shape {array.shape}")
    if array.size == 0:
        return tensor
    rows = array.shape[0]
    cols = array.size // rows
    flat = _rng(generator).standard_normal((rows, cols))
    if rows < cols:
        flat = flat.T
    q, r = np.linalg.qr(flat)
    q *= np.sign(np.diag(r))  # a uniform distribution over orthogonal matrices
    if rows < cols:
        q = q.T
    return _fill(tensor, (gain * q).reshape(array.shape))


__all__ = ["calculate_gain", "uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_",
           "eye_", "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_",
           "orthogonal_"]
