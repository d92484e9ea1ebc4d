"""Reductions (sum, mean, var, std, max, min, amax, argmax, prod, norm) and sorting, with their gradients.

Every ``dim`` follows PyTorch: an int, a sequence of ints, or None (every
dimension); out of range it raises ``IndexError``; a 0-d tensor accepts 0 and -1.
"""
from __future__ import annotations

from collections import namedtuple

import numpy as np

from .tensor import Tensor, _axes, _wrap_dim, as_tensor, tabs

_MaxResult = namedtuple("max", ["values", "indices"])
_MinResult = namedtuple("min", ["values", "indices"])
_SortResult = namedtuple("sort", ["values", "indices"])
_TopkResult = namedtuple("topk", ["values", "indices"])


def _sort(a: Tensor, dim, descending: bool, k):
    """Stable sort along ``dim`` (descending keeps ties in order too); the first ``k`` when given."""
    d = _wrap_dim(dim, a.ndim)
    if a.ndim == 0:
        return _SortResult(a.clone(), Tensor(np.zeros((), dtype=np.int64)))
    x = a._data
    if descending:  # a stable descending order: sort the reversed axis ascending, then reverse back
        n = x.shape[d]
        idx = n - 1 - np.flip(np.argsort(np.flip(x, d), axis=d, kind="stable"), d)
    else:
        idx = np.argsort(x, axis=d, kind="stable")
    if k is not None:
        idx = np.take(idx, np.arange(k), axis=d)
    values = np.take_along_axis(x, idx, axis=d)

    def backward(g):
        out = np.zeros(a.shape, dtype=g.dtype)
        np.put_along_axis(out, idx, g, axis=d)
        return (out,)

    return _SortResult(Tensor.from_op(values, (a,), backward, "sort"), Tensor(idx.astype(np.int64)))


# --- helpers of the Tensor methods ---------------------------------------------------------
def _expand(g: np.ndarray, axes: tuple, keepdim: bool) -> np.ndarray:
    return g if keepdim or not axes else np.expand_dims(g, axes)


def tsum(a, axis=None, keepdims=False) -> Tensor:
    a = as_tensor(a)
    axes = _axes(axis, a.ndim)

    def backward(g):
        return (np.broadcast_to(_expand(g, axes, keepdims), a.shape),)

    return Tensor.from_op(a._data.sum(axis=axes, keepdims=keepdims), (a,), backward, "sum")


def mean(a, axis=None, keepdims=False) -> Tensor:
    a = as_tensor(a)
    axes = _axes(axis, a.ndim)
    count = 1
    for ax in axes:
        count *= a.shape[ax]

    def backward(g):
        return (np.broadcast_to(_expand(g, axes, keepdims) / count, a.shape),)

    with np.errstate(invalid="ignore", divide="ignore"):  # an empty mean is NaN, as in PyTorch
        out = a._data.mean(axis=axes, keepdims=keepdims) if count else \
            np.full(np.sum(a._data, axis=axes, keepdims=keepdims).shape, np.nan, dtype=_float_dtype(a.dtype))
    return Tensor.from_op(out, (a,), backward, "mean")


def _float_dtype(dtype):
    return dtype if dtype.kind == "f" else np.dtype(np.float64)


def _correction(unbiased, correction) -> float:
    if isinstance(unbiased, (tuple, list)) or (unbiased is not None and not isinstance(unbiased, (bool, np.bool_))):
        raise TypeError(f"`unbiased` must be True or False, got {unbiased!r}")
    if correction is not None:
        if unbiased is not None:
            raise TypeError("give `unbiased` or `correction`, not both")
        return float(correction)
    return 0.0 if unbiased is False else 1.0


def _var_parts(a: Tensor, dim, unbiased, keepdim, correction, op: str):
    if a.dtype.kind != "f":
        raise RuntimeError(f"{op}(): std and var only support floating point dtypes, got {a.dtype}")
    if isinstance(dim, (bool, np.bool_)):  # x.var(False): PyTorch's positional `unbiased`
        dim, unbiased = None, dim
    axes = _axes(dim, a.ndim)
    count = 1
    for ax in axes:
        count *= a.shape[ax]
    dof = count - _correction(unbiased, correction)
    centered = a._data - a._data.mean(axis=axes, keepdims=True) if count else a._data
    with np.errstate(invalid="ignore", divide="ignore"):  # dof <= 0 gives inf or NaN, as in PyTorch
        v = (centered * centered).sum(axis=axes, keepdims=keepdim) / a.dtype.type(dof)
    if count == 0:
        v = np.full_like(v, np.nan)
    return axes, centered, v, dof


def var(a, dim=None, unbiased=None, keepdim=False, correction=None) -> Tensor:
    """Variance over ``dim`` with Bessel's correction by default (``correction=1``), as PyTorch."""
    a = as_tensor(a)
    axes, centered, v, dof = _var_parts(a, dim, unbiased, keepdim, correction, "var")

    def backward(g):
        with np.errstate(invalid="ignore", divide="ignore"):
            return (_expand(g, axes, keepdim) * centered * a.dtype.type(2.0 / dof),)

    return Tensor.from_op(v, (a,), backward, "var")


def std(a, dim=None, unbiased=None, keepdim=False, correction=None) -> Tensor:
    """Standard deviation over ``dim`` (``correction=1`` by default), as PyTorch."""
    a = as_tensor(a)
    axes, centered, v, dof = _var_parts(a, dim, unbiased, keepdim, correction, "std")
    s = np.sqrt(v)

    def backward(g):
        with np.errstate(invalid="ignore", divide="ignore"):
            local = _expand(np.where(s == 0, 0, g / (s * a.dtype.type(dof))), axes, keepdim)
        return (local * centered,)

    return Tensor.from_op(s, (a,), backward, "std")


def _extreme(a: Tensor, dim, keepdim: bool, which: str):
    """``max``/``min``: over everything (a 0-d tensor), or along ``dim`` as ``(values, indices)``."""
    reduce_ = np.max if which == "max" else np.min
    if dim is None:
        if a._data.size == 0:
            raise RuntimeError(f"{which}(): Expected reduction dim to be specified for input.numel() == 0. "
                               f"Specify the reduction dim with the 'dim' argument.")
        return _amax(a, None, False, reduce_)
    if isinstance(dim, (tuple, list)):
        raise TypeError(f"{which}(): `dim` must be one integer (use amax/amin for several dims), got {dim!r}")
    d = _wrap_dim(dim, a.ndim)
    result = _MaxResult if which == "max" else _MinResult
    if a.ndim == 0:
        return result(Tensor.from_op(a._data.copy(), (a,), lambda g: (g,), which),
                      Tensor(np.zeros((), dtype=np.int64)))
    if a.shape[d] == 0:
        raise IndexError(f"{which}(): Expected reduction dim {d} to have non-zero size.")
    arg = np.argmax if which == "max" else np.argmin
    idx = np.expand_dims(arg(a._data, axis=d), d)
    values = np.take_along_axis(a._data, idx, axis=d)

    def backward(g):
        out = np.zeros(a.shape, dtype=g.dtype)
        np.put_along_axis(out, idx, g if keepdim else np.expand_dims(g, d), axis=d)
        return (out,)

    if not keepdim:
        values, idx_out = values.squeeze(d), idx.squeeze(d)
    else:
        idx_out = idx
    return result(Tensor.from_op(values, (a,), backward, which), Tensor(idx_out.astype(np.int64)))


def _amax(a, dim, keepdim: bool, reduce_) -> Tensor:
    """``amax``/``amin``: the gradient is shared evenly between tied extremes, as in PyTorch."""
    a = as_tensor(a)
    axes = _axes(dim, a.ndim)
    empty = [ax for ax in axes if a.shape[ax] == 0]
    if empty:
        name = "amax" if reduce_ is np.max else "amin"
        raise IndexError(f"{name}(): Expected reduction dim {empty[0]} to have non-zero size.")
    kept = reduce_(a._data, axis=axes, keepdims=True)

    def backward(g):
        mask = a._data == kept
        count = mask.sum(axis=axes, keepdims=True)
        return (_expand(g, axes, keepdim) * mask / count.astype(g.dtype),)

    out = kept if keepdim else kept.reshape([n for i, n in enumerate(kept.shape) if i not in axes])
    return Tensor.from_op(out, (a,), backward, "amax" if reduce_ is np.max else "amin")


def _argext(a: Tensor, dim, keepdim: bool, arg) -> Tensor:
    if dim is None:
        if a._data.size == 0:
            raise IndexError(f"{arg.__name__}(): Expected reduction dim to be specified for input.numel() == 0.")
        out = np.asarray(arg(a._data), dtype=np.int64)
        return Tensor(out.reshape((1,) * a.ndim) if keepdim else out)
    d = _wrap_dim(dim, a.ndim)
    if a.ndim == 0:
        return Tensor(np.zeros((), dtype=np.int64))
    if a.shape[d] == 0:
        raise IndexError(f"{arg.__name__}(): Expected reduction dim {d} to have non-zero size.")
    return Tensor(arg(a._data, axis=d, keepdims=keepdim).astype(np.int64))


def prod(a, dim=None, keepdim=False) -> Tensor:
    """Product over all elements or along one ``dim``; the gradient is exact with zeros in the input."""
    a = as_tensor(a)
    if dim is None:
        flat = prod(a.reshape(-1), 0)
        return flat.reshape((1,) * a.ndim) if keepdim else flat
    d = _wrap_dim(dim, a.ndim)
    if a.ndim == 0:
        return Tensor.from_op(a._data.copy(), (a,), lambda g: (g,), "prod")
    out = a._data.prod(axis=d, keepdims=True)

    def backward(g):
        x = np.moveaxis(a._data, d, -1)
        ones = np.ones_like(x[..., :1])
        before = np.cumprod(np.concatenate([ones, x[..., :-1]], axis=-1), axis=-1)
        after = np.flip(np.cumprod(np.flip(np.concatenate([x[..., 1:], ones], axis=-1), -1), axis=-1), -1)
        others = np.moveaxis(before * after, -1, d)   # product of every element but this one
        return ((g if keepdim else np.expand_dims(g, d)) * others,)

    return Tensor.from_op(out if keepdim else out.squeeze(d), (a,), backward, "prod")


def norm(a, p="fro", dim=None, keepdim=False) -> Tensor:
    """The p-norm over ``dim`` (all elements by default): ``p`` = 'fro', 2, 1, inf or any positive number."""
    a = as_tensor(a)
    if p == "fro":
        p = 2
    p = float(p)
    if p == np.inf:
        return _amax(tabs(a), dim, keepdim, np.max)
    if p <= 0:
        raise ValueError(f"norm: `p` must be positive, 'fro' or inf, got {p}")
    axes = _axes(dim, a.ndim)
    x = a._data
    if p == 1:
        out = np.abs(x).sum(axis=axes, keepdims=True)
    else:  # scaled by the largest magnitude, so tiny and huge values neither underflow nor overflow
        scale = np.abs(x).max(axis=axes, keepdims=True) if x.size else np.zeros_like(x.sum(axis=axes, keepdims=True))
        scale = np.where(scale == 0, 1, scale).astype(x.dtype)
        r = np.abs(x / scale)
        out = scale * (np.sqrt((r * r).sum(axis=axes, keepdims=True)) if p == 2 else
                       (r ** p).sum(axis=axes, keepdims=True) ** (1.0 / p))

    def backward(g):
        g = _expand(g, axes, keepdim)
        if p == 1:
            return (g * np.sign(x),)
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = x / out   # d|x|_p / dx = (x / |x|_p) * |x / |x|_p|^(p-2)
            local = ratio if p == 2 else ratio * np.abs(ratio) ** (p - 2)
        return (g * np.where(out == 0, 0, local),)

    kept = out if keepdim else out.reshape([n for i, n in enumerate(out.shape) if i not in axes])
    return Tensor.from_op(kept, (a,), backward, "norm")
