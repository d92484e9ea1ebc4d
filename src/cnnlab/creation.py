"""PyTorch's top-level functions: ``cnnlab.tensor``, ``zeros``, ``randn``, ``cat``, ``stack``, ...

Every function here has PyTorch's name, argument names and defaults.  Floating
results are float32 unless a ``dtype`` says otherwise; integer ranges and
``randint`` give int64, as in PyTorch.  Random tensors come from cnnlab's one
generator, so ``cnnlab.manual_seed(0)`` makes them repeatable.  ``device`` is
accepted for PyTorch code and must be the CPU.

(Some names here shadow Python builtins -- ``sum``, ``max``, ``min``, ``abs``
-- as ``torch.sum`` does: this module uses ``builtins.`` where it needs those.)
"""
from __future__ import annotations

import builtins
import operator
import types as _types
from typing import Sequence

import numpy as np

from . import tensor as _t  # (imported before cnnlab/__init__.py finishes: always the module)
from .random import get_rng
from .tensor import Tensor, as_tensor, _check_device, _wrap_dim

# ``tensor`` is not listed: ``cnnlab.tensor`` stays the module cnnlab/tensor.py, which is callable
# (``cnnlab.tensor([1.0, 2.0])`` calls :func:`tensor` below), so both uses work.
__all__ = [
    "as_tensor", "from_numpy", "is_tensor", "numel",
    "zeros", "ones", "full", "empty", "zeros_like", "ones_like", "full_like", "empty_like",
    "arange", "linspace", "eye", "rand", "randn", "randint", "rand_like", "randn_like",
    "cat", "concat", "concatenate", "stack",
    "flatten", "reshape", "squeeze", "unsqueeze", "transpose", "permute",
    "where", "maximum", "minimum", "clamp", "clip", "exp", "log", "sqrt", "abs", "pow",
    "sigmoid", "tanh", "relu", "softmax", "log_softmax", "matmul", "mm", "add", "sub", "mul", "div",
    "sum", "mean", "max", "min", "amax", "amin", "argmax", "argmin", "std", "var", "prod", "norm",
    "allclose", "equal",
]


# --- dtypes and sizes --------------------------------------------------------------------
def _dtype(dtype, default=np.float32) -> np.dtype:
    return np.dtype(default if dtype is None else dtype)


def _shape(size, name: str) -> tuple:
    """``zeros(2, 3)`` and ``zeros((2, 3))`` alike; PyTorch's error for a negative size."""
    if len(size) == 1 and isinstance(size[0], (tuple, list, Tensor, np.ndarray)):
        size = tuple(size[0].tolist() if isinstance(size[0], (Tensor, np.ndarray)) else size[0])
    try:
        shape = tuple(operator.index(n) for n in size)
    except TypeError:
        raise TypeError(f"{name}(): `size` must be integers, got {tuple(size)!r}") from None
    if builtins.any(n < 0 for n in shape):
        raise RuntimeError(f"{name}: Dimension size must be non-negative, got size {list(shape)}")
    return shape


def _new(data: np.ndarray, requires_grad: bool, device) -> Tensor:
    _check_device(device)
    return Tensor(data, requires_grad=requires_grad)


# --- from data ---------------------------------------------------------------------------
def tensor(data, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A new tensor holding a copy of ``data`` (lists, numbers, arrays, tensors).

    Python floats give float32 and Python ints int64, as in PyTorch; NumPy
    arrays keep float32/float64/integer/bool dtypes.
    """
    if isinstance(data, Tensor):
        data = data._data
    if dtype is not None:
        return _new(np.array(data, dtype=np.dtype(dtype)), requires_grad, device)
    array = _t._as_array(data)
    if array is data or (isinstance(data, np.ndarray) and np.shares_memory(array, data)):
        array = array.copy()
    return _new(array, requires_grad, device)


def from_numpy(ndarray: np.ndarray) -> Tensor:
    """A tensor sharing memory with ``ndarray`` (float16 and other float types are converted to float32)."""
    if not isinstance(ndarray, np.ndarray):
        raise TypeError(f"expected np.ndarray (got {type(ndarray).__name__})")
    return Tensor(ndarray)


def is_tensor(obj) -> bool:
    return isinstance(obj, Tensor)


def numel(input) -> int:
    return as_tensor(input).numel()


# --- filled tensors ----------------------------------------------------------------------
def zeros(*size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return _new(np.zeros(_shape(size, "zeros"), dtype=_dtype(dtype)), requires_grad, device)


def ones(*size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return _new(np.ones(_shape(size, "ones"), dtype=_dtype(dtype)), requires_grad, device)


def empty(*size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return _new(np.empty(_shape(size, "empty"), dtype=_dtype(dtype)), requires_grad, device)


def _fill_dtype(value) -> np.dtype:
    if isinstance(value, (bool, np.bool_)):
        return np.dtype(np.bool_)
    if isinstance(value, (int, np.integer)):
        return np.dtype(np.int64)
    if isinstance(value, np.floating) and value.dtype == np.float64:
        return np.dtype(np.float64)
    return np.dtype(np.float32)


def full(size, fill_value, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A tensor of ``size`` filled with ``fill_value``; the dtype follows the value (int64, bool, float32)."""
    dt = _fill_dtype(fill_value) if dtype is None else np.dtype(dtype)
    return _new(np.full(_shape((size,), "full"), fill_value, dtype=dt), requires_grad, device)


def _like(input, dtype) -> tuple:
    x = as_tensor(input)
    return x.shape, (x.dtype if dtype is None else np.dtype(dtype))


def zeros_like(input, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    shape, dt = _like(input, dtype)
    return _new(np.zeros(shape, dtype=dt), requires_grad, device)


def ones_like(input, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    shape, dt = _like(input, dtype)
    return _new(np.ones(shape, dtype=dt), requires_grad, device)


def empty_like(input, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    shape, dt = _like(input, dtype)
    return _new(np.empty(shape, dtype=dt), requires_grad, device)


def full_like(input, fill_value, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    shape, dt = _like(input, dtype)
    return _new(np.full(shape, fill_value, dtype=dt), requires_grad, device)


# --- ranges ------------------------------------------------------------------------------
def arange(start, end=None, step=1, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """``arange(5)``, ``arange(1, 4)``, ``arange(0, 1, 0.25)``: int64 for integer arguments, else float32."""
    if end is None:
        start, end = 0, start
    values = (start, end, step)
    if step == 0:
        raise RuntimeError("arange: step must be nonzero")
    is_float = builtins.any(isinstance(v, (float, np.floating)) for v in values)
    dt = np.dtype(dtype) if dtype is not None else np.dtype(np.float32 if is_float else np.int64)
    if is_float or dt.kind == "f":
        data = np.arange(start, end, step, dtype=np.float64).astype(dt)
    else:
        data = np.arange(start, end, step, dtype=dt)
    return _new(data, requires_grad, device)


def linspace(start, end, steps: int, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    if operator.index(steps) < 0:
        raise RuntimeError(f"linspace: number of steps must be non-negative, got {steps}")
    return _new(np.linspace(start, end, steps).astype(_dtype(dtype)), requires_grad, device)


def eye(n: int, m=None, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return _new(np.eye(n, n if m is None else m, dtype=_dtype(dtype)), requires_grad, device)


# --- random ------------------------------------------------------------------------------
def _rng(generator):
    return get_rng() if generator is None else generator


def rand(*size, generator=None, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Uniform on [0, 1), from cnnlab's seeded generator (``cnnlab.manual_seed``)."""
    dt = _dtype(dtype)
    data = _rng(generator).random(_shape(size, "rand"), dtype=np.float64 if dt == np.float64 else np.float32)
    return _new(data.astype(dt, copy=False), requires_grad, device)


def randn(*size, generator=None, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Standard normal, from cnnlab's seeded generator (``cnnlab.manual_seed``)."""
    dt = _dtype(dtype)
    data = _rng(generator).standard_normal(_shape(size, "randn"),
                                           dtype=np.float64 if dt == np.float64 else np.float32)
    return _new(data.astype(dt, copy=False), requires_grad, device)


def randint(*args, size=None, generator=None, dtype=None, device=None, requires_grad: bool = False,
            low=None, high=None) -> Tensor:
    """``randint(high, size)`` or ``randint(low, high, size)``: integers in ``[low, high)``, int64."""
    args = list(args)
    if size is None:
        if not args:
            raise TypeError("randint() missing the `size` argument")
        size = args.pop()
    if len(args) == 2:
        low, high = args
    elif len(args) == 1:
        low, high = (0 if low is None else low), args[0]
    elif len(args) > 2:
        raise TypeError(f"randint() takes (high, size) or (low, high, size), got {len(args) + 1} arguments")
    low = 0 if low is None else low
    if high is None:
        raise TypeError("randint() missing the `high` argument")
    if not low < high:
        raise RuntimeError(f"random_ expects 'from' to be less than 'to', but got from={low} >= to={high}")
    shape = _shape((size,), "randint")
    data = _rng(generator).integers(low, high, size=shape, dtype=np.int64)
    return _new(data.astype(_dtype(dtype, np.int64), copy=False), requires_grad, device)


def rand_like(input, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    shape, dt = _like(input, dtype)
    return rand(shape, dtype=dt, device=device, requires_grad=requires_grad)


def randn_like(input, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    shape, dt = _like(input, dtype)
    return randn(shape, dtype=dt, device=device, requires_grad=requires_grad)


# --- joining -----------------------------------------------------------------------------
def _tensors(tensors, name: str) -> list:
    if isinstance(tensors, (Tensor, np.ndarray)):
        raise TypeError(f"{name}(): expected a sequence of Tensors, got a single {type(tensors).__name__}")
    ts = [as_tensor(t) for t in tensors]
    if not ts:
        raise ValueError(f"{name}(): expected a non-empty list of Tensors")
    floats = [t.dtype for t in ts if t.dtype.kind == "f"]
    if floats:  # PyTorch's promotion: integer tensors join the floating dtype
        target = np.result_type(*floats)
        ts = [t if t.dtype == target else t._cast(target) for t in ts]
    return ts


def cat(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    """Join tensors along an existing dimension ``dim``; every other dimension must match."""
    ts = _tensors(tensors, "cat")
    first = ts[0]
    if first.ndim == 0:
        raise RuntimeError("zero-dimensional tensor (at position 0) cannot be concatenated")
    d = _wrap_dim(dim, first.ndim)
    for i, t in enumerate(ts):
        if t.ndim != first.ndim:
            raise RuntimeError(f"Tensors must have same number of dimensions: got {first.ndim} and {t.ndim}")
        for k in range(first.ndim):
            if k != d and t.shape[k] != first.shape[k]:
                raise RuntimeError(f"Sizes of tensors must match except in dimension {d}. Expected size "
                                   f"{first.shape[k]} but got size {t.shape[k]} for tensor number {i} in the list.")
    return _t.concatenate(ts, axis=d)


concat = concatenate = cat


def stack(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    """Join same-shaped tensors along a new dimension ``dim``."""
    ts = _tensors(tensors, "stack")
    shape = ts[0].shape
    for i, t in enumerate(ts):
        if t.shape != shape:
            raise RuntimeError(f"stack expects each tensor to be equal size, but got {list(shape)} at entry 0 "
                               f"and {list(t.shape)} at entry {i}")
    d = _wrap_dim(dim, len(shape) + 1)
    n = len(ts)

    def backward(g):
        return tuple(np.take(g, i, axis=d) for i in range(n))

    return Tensor.from_op(np.stack([t._data for t in ts], axis=d), ts, backward, "stack")


# --- the Tensor methods as functions -----------------------------------------------------
def flatten(input, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    return as_tensor(input).flatten(start_dim, end_dim)


def reshape(input, shape) -> Tensor:
    return as_tensor(input).reshape(shape)


def squeeze(input, dim=None) -> Tensor:
    return as_tensor(input).squeeze(dim)


def unsqueeze(input, dim: int) -> Tensor:
    return as_tensor(input).unsqueeze(dim)


def transpose(input, dim0: int, dim1: int) -> Tensor:
    return as_tensor(input).transpose(dim0, dim1)


def permute(input, dims) -> Tensor:
    return as_tensor(input).permute(dims)


def where(condition, input, other) -> Tensor:
    return _t.where(condition, input, other)


def maximum(input, other) -> Tensor:
    return _t.maximum(input, other)


def minimum(input, other) -> Tensor:
    return _t.minimum(input, other)


def clamp(input, min=None, max=None) -> Tensor:
    return _t.clamp(input, min, max)


clip = clamp


def exp(input) -> Tensor:
    return _t.exp(input)


def log(input) -> Tensor:
    return _t.log(input)


def sqrt(input) -> Tensor:
    return as_tensor(input).sqrt()


def abs(input) -> Tensor:
    return _t.tabs(input)


def pow(input, exponent) -> Tensor:
    return _t.power(input, exponent)


def sigmoid(input) -> Tensor:
    return as_tensor(input).sigmoid()


def tanh(input) -> Tensor:
    return as_tensor(input).tanh()


def relu(input) -> Tensor:
    return as_tensor(input).relu()


def softmax(input, dim: int, dtype=None) -> Tensor:
    return as_tensor(input).softmax(dim, dtype)


def log_softmax(input, dim: int, dtype=None) -> Tensor:
    return as_tensor(input).log_softmax(dim, dtype)


def matmul(input, other, *, out=None) -> Tensor:
    """``torch.matmul``: vectors, matrices and broadcast batches of matrices; ``out=`` receives the result."""
    result = _t.matmul(input, other)
    if out is None:
        return result
    return _write_out(result, out, "matmul")


def mm(input, mat2, *, out=None) -> Tensor:
    """``torch.mm``: the product of two matrices (2-D only)."""
    input, mat2 = as_tensor(input), as_tensor(mat2)
    if input.ndim != 2 or mat2.ndim != 2:
        raise RuntimeError(f"mm: both arguments must be matrices, got shapes {tuple(input.shape)} and "
                           f"{tuple(mat2.shape)}")
    return matmul(input, mat2, out=out)


def add(input, other, *, alpha=1, out=None) -> Tensor:
    """``torch.add``: ``input + alpha * other`` (``out=`` receives the result)."""
    result = as_tensor(input) + (other if alpha == 1 else other * alpha)
    return result if out is None else _write_out(result, out, "add")


def sub(input, other, *, alpha=1, out=None) -> Tensor:
    """``torch.sub``: ``input - alpha * other``."""
    result = as_tensor(input) - (other if alpha == 1 else other * alpha)
    return result if out is None else _write_out(result, out, "sub")


def mul(input, other, *, out=None) -> Tensor:
    """``torch.mul``: the elementwise product."""
    result = as_tensor(input) * other
    return result if out is None else _write_out(result, out, "mul")


def div(input, other, *, rounding_mode=None, out=None) -> Tensor:
    """``torch.div``: the elementwise quotient (``rounding_mode`` ``"trunc"``/``"floor"`` without gradient)."""
    result = as_tensor(input) / other
    if rounding_mode is not None:
        if rounding_mode not in ("trunc", "floor"):
            raise ValueError(f"div expected rounding_mode to be one of None, 'trunc', or 'floor' but found "
                             f"{rounding_mode!r}")
        rounded = (np.trunc if rounding_mode == "trunc" else np.floor)(result._data)
        both_int = as_tensor(input).dtype.kind in "iu" and np.asarray(getattr(other, "_data", other)).dtype.kind in "iu"
        result = Tensor(rounded.astype(np.int64) if both_int else rounded)
    return result if out is None else _write_out(result, out, "div")


def _write_out(result: Tensor, out, name: str) -> Tensor:
    """Put ``result`` into the tensor ``out`` (PyTorch's ``out=``): in place when the shape fits."""
    if not isinstance(out, Tensor):
        raise TypeError(f"{name}(): argument 'out' must be a Tensor, got {type(out).__name__}")
    if result.requires_grad or out.requires_grad:
        raise RuntimeError(f"{name}(): functions with out=... arguments don't support automatic "
                           f"differentiation, but one of the arguments requires grad.")
    if out.shape == result.shape and out.dtype == result.dtype and out._data.flags.writeable:
        out._data[...] = result._data
    else:
        out._data = result._data.astype(out.dtype if out.dtype.kind == result.dtype.kind else result.dtype)
    return out


def sum(input, dim=None, keepdim: bool = False, dtype=None) -> Tensor:
    return as_tensor(input).sum(dim, keepdim, dtype)


def mean(input, dim=None, keepdim: bool = False, dtype=None) -> Tensor:
    return as_tensor(input).mean(dim, keepdim, dtype)


def max(input, dim=None, keepdim: bool = False):
    return as_tensor(input).max(dim, keepdim)


def min(input, dim=None, keepdim: bool = False):
    return as_tensor(input).min(dim, keepdim)


def amax(input, dim=(), keepdim: bool = False) -> Tensor:
    return as_tensor(input).amax(dim, keepdim)


def amin(input, dim=(), keepdim: bool = False) -> Tensor:
    return as_tensor(input).amin(dim, keepdim)


def argmax(input, dim=None, keepdim: bool = False) -> Tensor:
    return as_tensor(input).argmax(dim, keepdim)


def argmin(input, dim=None, keepdim: bool = False) -> Tensor:
    return as_tensor(input).argmin(dim, keepdim)


def std(input, dim=None, unbiased=None, keepdim: bool = False, *, correction=None) -> Tensor:
    return as_tensor(input).std(dim, unbiased, keepdim, correction=correction)


def var(input, dim=None, unbiased=None, keepdim: bool = False, *, correction=None) -> Tensor:
    return as_tensor(input).var(dim, unbiased, keepdim, correction=correction)


def prod(input, dim=None, keepdim: bool = False, dtype=None) -> Tensor:
    return as_tensor(input).prod(dim, keepdim, dtype)


def norm(input, p="fro", dim=None, keepdim: bool = False) -> Tensor:
    return as_tensor(input).norm(p, dim, keepdim)


def allclose(input, other, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False) -> bool:
    return as_tensor(input).allclose(other, rtol, atol, equal_nan)


def equal(input, other) -> bool:
    return as_tensor(input).equal(other)


class _CallableModule(_types.ModuleType):
    """``cnnlab.tensor(data)`` makes a tensor (PyTorch's ``torch.tensor``, see :func:`tensor`) while
    ``cnnlab.tensor`` stays the module (``from cnnlab.tensor import Tensor`` keeps working)."""

    def __call__(self, data, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
        return tensor(data, dtype=dtype, device=device, requires_grad=requires_grad)


_t.__class__ = _CallableModule
