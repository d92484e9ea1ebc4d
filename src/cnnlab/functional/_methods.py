"""The ``Tensor`` methods that are ops of the functional layer: activations, reductions, sorting.

They are written here as plain functions and bound to :class:`~cnnlab.tensor.Tensor` (as PyTorch binds
its ``torch.*`` functions to ``torch.Tensor``), so that ``tensor.py`` needs nothing from above it:
``x.relu()``, ``x.softmax(1)``, ``x.mean(0)``, ``x.max(dim=1)``, ``x.topk(3)``.  Imported by
``cnnlab.functional``, which ``import cnnlab`` loads.
"""
from __future__ import annotations

import numpy as np

from .._reductions import _TopkResult, _amax, _argext, _extreme, _sort, mean, norm, prod, std, tsum, var
from ..tensor import Tensor, _dim_arg, _wrap_dim, maximum, minimum

__all__: list = []


def tensor_sigmoid(self):
    from .activation import sigmoid
    return sigmoid(self)

def tensor_tanh(self):
    from .activation import tanh
    return tanh(self)

def tensor_relu(self):
    from .activation import relu
    return relu(self)

def tensor_softmax(self, dim, dtype=None):
    from .activation import softmax
    x = self if dtype is None else self.to(dtype)
    d = _wrap_dim(dim, x.ndim)
    return softmax(x, d) if x.ndim else softmax(x.reshape(1), 0).reshape(())

def tensor_log_softmax(self, dim, dtype=None):
    from .activation import log_softmax
    x = self if dtype is None else self.to(dtype)
    d = _wrap_dim(dim, x.ndim)
    return log_softmax(x, d) if x.ndim else log_softmax(x.reshape(1), 0).reshape(())


def tensor_sum(self, dim=None, keepdim=False, dtype=None, *, axis=None, keepdims=None):
    x = self if dtype is None else self.to(dtype)
    return tsum(x, _dim_arg(dim, axis), keepdim if keepdims is None else keepdims)

def tensor_mean(self, dim=None, keepdim=False, dtype=None, *, axis=None, keepdims=None):
    x = self if dtype is None else self.to(dtype)
    return mean(x, _dim_arg(dim, axis), keepdim if keepdims is None else keepdims)

def tensor_var(self, dim=None, unbiased=None, keepdim=False, *, correction=None, axis=None, keepdims=None):
    return var(self, _dim_arg(dim, axis), unbiased, keepdim if keepdims is None else keepdims, correction)

def tensor_std(self, dim=None, unbiased=None, keepdim=False, *, correction=None, axis=None, keepdims=None):
    return std(self, _dim_arg(dim, axis), unbiased, keepdim if keepdims is None else keepdims, correction)

def tensor_max(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
    """No ``dim``: the largest value.  With ``dim``: ``(values, indices)``.  A tensor: ``maximum``."""
    if isinstance(dim, (Tensor, np.ndarray)):
        return maximum(self, dim)
    return _extreme(self, _dim_arg(dim, axis), keepdim if keepdims is None else keepdims, "max")

def tensor_min(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
    """No ``dim``: the smallest value.  With ``dim``: ``(values, indices)``.  A tensor: ``minimum``."""
    if isinstance(dim, (Tensor, np.ndarray)):
        return minimum(self, dim)
    return _extreme(self, _dim_arg(dim, axis), keepdim if keepdims is None else keepdims, "min")

def tensor_amax(self, dim=(), keepdim=False):
    return _amax(self, dim, keepdim, np.max)

def tensor_amin(self, dim=(), keepdim=False):
    return _amax(self, dim, keepdim, np.min)

def tensor_argmax(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
    return _argext(self, _dim_arg(dim, axis), keepdim if keepdims is None else keepdims, np.argmax)

def tensor_argmin(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
    return _argext(self, _dim_arg(dim, axis), keepdim if keepdims is None else keepdims, np.argmin)

def tensor_prod(self, dim=None, keepdim=False, dtype=None):
    x = self if dtype is None else self.to(dtype)
    return prod(x, dim, keepdim)

def tensor_norm(self, p="fro", dim=None, keepdim=False):
    return norm(self, p, dim, keepdim)


def tensor_sort(self, dim: int = -1, descending: bool = False, stable: bool = False):
    """``(values, indices)`` sorted along ``dim`` (ties keep their order)."""
    return _sort(self, dim, descending, None)

def tensor_argsort(self, dim: int = -1, descending: bool = False, stable: bool = False):
    return _sort(self, dim, descending, None).indices

def tensor_topk(self, k: int, dim: int = -1, largest: bool = True, sorted: bool = True):
    """``(values, indices)`` of the ``k`` largest (or smallest) entries along ``dim``."""
    n = self._data.shape[_wrap_dim(dim, self._data.ndim)] if self._data.ndim else 1
    if not 0 <= k <= n:
        raise RuntimeError(f"selected index k out of range: k={k} for a dimension of size {n}")
    result = _sort(self, dim, largest, k)
    return _TopkResult(result.values, result.indices)


for _name in ('sigmoid', 'tanh', 'relu', 'softmax', 'log_softmax', 'sum', 'mean', 'var', 'std', 'max', 'min', 'amax', 'amin', 'argmax', 'argmin', 'prod', 'norm', 'sort', 'argsort', 'topk'):
    _method = globals()[f"tensor_{_name}"]
    _method.__name__, _method.__qualname__ = _name, f"Tensor.{_name}"
    setattr(Tensor, _name, _method)
