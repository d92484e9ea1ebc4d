"""A NumPy array with reverse-mode automatic differentiation.

Every operation that produces a :class:`Tensor` records, next to its result,
a small function that maps the gradient of the result to the gradients of its
inputs.  ``Tensor.backward`` walks that recorded graph in reverse topological
order, so any model shape works: branches, shared layers, residual additions.

Memory layout
-------------
The public layout of image tensors is NCHW, as in PyTorch.  The *memory*
behind a tensor may be any strided NumPy view: convolution and pooling return
NCHW views whose memory is ordered (C, H, W, N), batch innermost, because
NumPy's copies and reductions run 10-70x faster over long contiguous runs than
over the short image rows of an NCHW buffer.  NumPy's elementwise operations
keep the memory order of their inputs, so the layout travels through the
network without any explicit bookkeeping.
"""
from __future__ import annotations

import functools
import operator
import threading
from typing import Callable, Iterable, Sequence

import numpy as np

from ._device import CPU as _CPU, device as _device_type


class _GradState(threading.local):
    """Whether ops record the graph, per thread (``no_grad`` in one thread leaves the others alone)."""
    enabled = True


_grad = _GradState()


class _GradMode:
    """Base of ``no_grad`` / ``enable_grad``: a context manager that is also a decorator.

    ``with no_grad(): ...``, ``@no_grad()`` and ``@no_grad`` all work, as in PyTorch.
    """

    _enabled = False
    __slots__ = ("_previous", "__weakref__")

    def __new__(cls, func=None):
        self = object.__new__(cls)
        self._previous = []
        if func is not None:  # used as ``@no_grad`` without parentheses
            return self(func)
        return self

    def __enter__(self):
        self._previous.append(_grad.enabled)
        _grad.enabled = self._enabled

    def __exit__(self, *exc):
        _grad.enabled = self._previous.pop()
        return False

    def __call__(self, func):
        if not callable(func):
            raise TypeError(f"{type(self).__name__} decorates a function, got {type(func).__name__}")
        fresh = self._fresh

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            with fresh():
                return func(*args, **kwargs)
        return wrapper

    def _fresh(self):
        return type(self)()


class no_grad(_GradMode):
    """Stop graph recording inside the block or decorated function (like ``torch.no_grad``)."""

    _enabled = False


class enable_grad(_GradMode):
    """Turn graph recording back on inside ``no_grad`` (like ``torch.enable_grad``)."""

    _enabled = True


class inference_mode(_GradMode):
    """``torch.inference_mode``: here the same as ``no_grad`` (``inference_mode(False)`` records)."""

    def __new__(cls, mode=True):
        if callable(mode):
            return super().__new__(cls, mode)
        self = super().__new__(cls)
        self._enabled = not bool(mode)
        return self

    def _fresh(self):
        return inference_mode(not self._enabled)


class set_grad_enabled(_GradMode):
    """``set_grad_enabled(False)`` switches recording off now; used with ``with`` it restores the mode."""

    def __new__(cls, mode):
        self = _GradMode.__new__(cls)
        self._enabled = bool(mode)
        self._previous.append(_grad.enabled)  # restored by __exit__
        _grad.enabled = self._enabled
        return self

    def __enter__(self):
        pass  # the mode was set when the object was made

    def _fresh(self):
        return set_grad_enabled(self._enabled)


def is_grad_enabled() -> bool:
    return _grad.enabled


def _as_array(data, dtype=None) -> np.ndarray:
    if isinstance(data, Tensor):
        data = data._data
    if dtype is not None:
        return np.asarray(data, dtype=dtype)
    if isinstance(data, np.ndarray):  # the common case, kept cheap (every op's result passes here)
        dt = data.dtype
        if dt.char in "fd" or dt.kind in "iub":   # float32, float64, ints, bools: as they are
            return data
        if dt.kind == "f":
            return data.astype(np.float32)
        raise TypeError(f"Tensor data must be numeric, got an array of dtype {data.dtype}")
    if isinstance(data, (np.floating, float)):
        return np.asarray(data, dtype=np.float64 if isinstance(data, np.float64) else np.float32)
    array = np.asarray(data)
    if array.dtype.kind == "f":
        return array.astype(np.float32)
    if array.dtype.kind in "iub":
        return array
    raise TypeError(f"Tensor data must be numeric, got {type(data).__name__} of dtype {array.dtype}")


def unbroadcast(grad: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum ``grad`` over the axes that broadcasting added to reach it from ``shape``."""
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad


_SECOND_BACKWARD = (
    "Trying to backward through the graph a second time (or directly access saved tensors after they "
    "have already been freed). Saved intermediate values of the graph are freed when you call .backward() "
    "or autograd.grad(). Specify retain_graph=True if you need to backward through the graph a second time "
    "or if you need to access saved tensors after calling backward.")


def _freed_backward(grad):
    """The backward of an op whose graph a ``backward`` without ``retain_graph`` has gone through
    (the op's own backward, and the arrays it saved, are released)."""
    raise RuntimeError(_SECOND_BACKWARD)


def _backward_name(op: str) -> str:
    """PyTorch-style node name for an op name: ``"add"`` -> ``"AddBackward0"``."""
    words = [w for w in op.replace("-", "_").split("_") if w]
    return "".join(w[:1].upper() + w[1:] for w in words or ["Op"]) + "Backward0"


class _GradFn:
    """``tensor.grad_fn``: the op that made a tensor, PyTorch's way of showing the recorded graph.

    ``name()`` is PyTorch-like (``"MulBackward0"``); ``next_functions`` lists, per input of the op,
    ``(node, 0)``: the input's own ``grad_fn``, an ``AccumulateGrad`` node for a leaf that requires
    grad, or ``(None, 0)`` for an input that needs no gradient.
    """

    __slots__ = ("_tensor",)

    def __init__(self, tensor):
        self._tensor = tensor

    def name(self) -> str:
        return _backward_name(self._tensor.op)

    @property
    def next_functions(self) -> tuple:
        out = []
        for parent in self._tensor._parents:
            if not parent.requires_grad:
                out.append((None, 0))
            elif parent._backward is None:
                out.append((_AccumulateGrad(parent), 0))
            else:
                out.append((_GradFn(parent), 0))
        return tuple(out)

    def __eq__(self, other):
        return type(other) is type(self) and other._tensor is self._tensor

    def __hash__(self):
        return hash((type(self), id(self._tensor)))

    def __repr__(self) -> str:
        return f"<{self.name()} object at {id(self._tensor):#x}>"


class _AccumulateGrad(_GradFn):
    """The graph node of a leaf that requires grad: ``backward`` adds into its ``.grad``."""

    __slots__ = ()

    def name(self) -> str:
        return "torch::autograd::AccumulateGrad"

    @property
    def variable(self):
        return self._tensor

    @property
    def next_functions(self) -> tuple:
        return ()

    def __repr__(self) -> str:
        return f"<AccumulateGrad object at {id(self._tensor):#x}>"


class Size(tuple):
    """The shape of a tensor, as ``Tensor.size()`` returns it (a tuple, like ``torch.Size``)."""

    __slots__ = ()

    def numel(self) -> int:
        n = 1
        for s in self:
            n *= s
        return n

    def __repr__(self) -> str:
        return f"cnnlab.Size({list(self)})"


_LEAF_IN_PLACE = "a leaf Variable that requires grad is being used in an in-place operation."


class Tensor:
    """An n-dimensional array that can record how it was computed.

    Args:
        data: anything ``numpy.asarray`` accepts.  Floating data is kept as
            float32 or float64 (other float types become float32; Python
            floats and lists of floats become float32).  Integer and boolean
            data keep their dtype (useful for class labels).
        requires_grad: whether ``backward`` should fill ``.grad`` for it.

    The methods follow PyTorch's names, argument names (``dim``, ``keepdim``)
    and semantics; NumPy's ``axis=`` / ``keepdims=`` are accepted as aliases.
    A dimension out of range raises ``IndexError`` as in PyTorch.

    In-place operations (``+=``, ``add_``, ``zero_``, ``x[i] = v``, ...) change
    ``.data`` in place and keep the object, when no gradient is being recorded
    for them (inside ``no_grad``, or when neither operand requires grad): so
    ``with no_grad(): p -= lr * p.grad`` updates a Parameter in place.  When a
    gradient would be recorded: on a leaf that requires grad they raise
    PyTorch's RuntimeError; otherwise ``x += y`` (and ``-=``, ``*=``, ``/=``)
    computes ``x + y`` out of place and rebinds the name (other references keep
    the old value), and the method forms (``add_``, ...) and ``x[i] = v`` raise.
    As in PyTorch, a tensor changed in place must not be one an earlier op
    still needs for its backward (PyTorch detects that; cnnlab does not).

    ``.grad`` is a Tensor (``p.grad.zero_()``, ``p.grad.clone()`` work); it may
    be assigned a Tensor, a NumPy array or None.  ``grad_fn`` shows the op that
    made a tensor (``grad_fn.next_functions`` walks the graph).  ``backward``
    releases the graph's ops unless ``retain_graph=True``: a second backward
    through them raises PyTorch's RuntimeError.

    ``.data`` is, as in PyTorch, a Tensor sharing this tensor's memory but
    outside autograd (``f.data.sub_(f.grad.data * lr)`` updates ``f`` in place);
    assigning ``t.data = other`` replaces the values (any shape).  The NumPy
    array itself is ``t.numpy()`` (or ``np.asarray(t)``).

    Where cnnlab differs from PyTorch: ``view`` is ``reshape`` (it copies when the memory layout needs it, never
    raises); only float32/float64 floating tensors exist; the device is always
    the CPU; ``transpose()`` with no argument or a whole permutation keeps
    NumPy's meaning besides PyTorch's ``transpose(dim0, dim1)``.
    """

    __slots__ = ("_data", "_grad", "requires_grad", "_backward", "_parents", "op", "__weakref__")
    __array_priority__ = 1000  # make ``ndarray + Tensor`` call Tensor.__radd__

    def __init__(self, data, requires_grad: bool = False, dtype=None):
        self._data: np.ndarray = _as_array(data, dtype)
        if requires_grad and self._data.dtype.kind != "f":
            raise TypeError(
                f"only floating point tensors can require gradients, got dtype {self._data.dtype}")
        self._grad: Tensor | None = None
        self.requires_grad = bool(requires_grad)
        self._backward: Callable | None = None
        self._parents: tuple = ()
        self.op = ""

    # --- basic properties -------------------------------------------------
    @property
    def data(self) -> "Tensor":
        """A Tensor with the same memory, detached from autograd (PyTorch's ``.data``)."""
        out = Tensor.__new__(Tensor)
        out._data = _writable(self)  # a read-only view gets its own copy first, so changes reach self
        out._grad, out.requires_grad, out._backward, out._parents, out.op = None, False, None, (), ""
        return out

    @data.setter
    def data(self, value) -> None:
        array = value._data if isinstance(value, Tensor) else _as_array(value, None)
        if self.requires_grad and array.dtype.kind != "f":
            raise TypeError(f"only floating point tensors can require gradients, got dtype {array.dtype}")
        self._data = array

    @property
    def shape(self) -> tuple:
        return self._data.shape

    @property
    def dtype(self):
        return self._data.dtype

    @property
    def ndim(self) -> int:
        return self._data.ndim

    def dim(self) -> int:
        return self._data.ndim

    ndimension = dim

    def size(self, dim=None):
        """The shape as a :class:`Size` (a tuple), or the length of dimension ``dim``."""
        if dim is None:
            return Size(self._data.shape)
        if self._data.ndim == 0:
            raise IndexError(f"Dimension specified as {dim} but tensor has no dimensions")
        return self._data.shape[_wrap_dim(dim, self._data.ndim)]

    def numel(self) -> int:
        return self._data.size

    nelement = numel

    def element_size(self) -> int:
        return self._data.itemsize

    @property
    def is_leaf(self) -> bool:
        return self._backward is None

    @property
    def device(self) -> _device_type:
        """Always ``device(type='cpu')`` (equal to the string ``"cpu"``)."""
        return _CPU

    is_cuda = False

    def is_floating_point(self) -> bool:
        return self._data.dtype.kind == "f"

    def is_contiguous(self) -> bool:
        return self._data.flags.c_contiguous

    def numpy(self) -> np.ndarray:
        return self._data

    def __array__(self, dtype=None, copy=None):
        if dtype is None or dtype == self._data.dtype:
            return self._data.copy() if copy else self._data
        return self._data.astype(dtype)

    def item(self):
        if self._data.size != 1:
            raise RuntimeError(f"a Tensor with {self._data.size} elements cannot be converted to Scalar")
        return self._data.item()

    def tolist(self):
        return self._data.tolist()

    def detach(self) -> "Tensor":
        """The same data (shared memory), cut from the graph."""
        return Tensor(self._data)

    def detach_(self) -> "Tensor":
        self._backward, self._parents, self.requires_grad = None, (), False
        return self

    def requires_grad_(self, requires_grad: bool = True) -> "Tensor":
        if requires_grad and self._data.dtype.kind != "f":
            raise RuntimeError("only Tensors of floating point dtype can require gradients")
        if not requires_grad and self._backward is not None:
            raise RuntimeError("you can only change requires_grad flags of leaf variables. If you want to "
                               "use a computed variable in a subgraph that doesn't require differentiation "
                               "use var_no_grad = var.detach().")
        self.requires_grad = bool(requires_grad)
        return self

    @property
    def grad(self) -> "Tensor | None":
        """The accumulated gradient, a Tensor of this tensor's shape (None before any ``backward``)."""
        return self._grad

    @grad.setter
    def grad(self, value) -> None:
        if value is None:
            self._grad = None
            return
        array = value._data if isinstance(value, Tensor) else np.asarray(value)
        if array.shape != self._data.shape:
            raise RuntimeError(f"assigned grad has data of a different size: expected shape "
                               f"{tuple(self._data.shape)}, got {tuple(array.shape)}")
        self._grad = value if isinstance(value, Tensor) else Tensor(array)

    @grad.deleter
    def grad(self) -> None:
        self._grad = None

    @property
    def grad_fn(self):
        """The op that made this tensor, as a node with ``name()`` and ``next_functions`` (None for leaves)."""
        if self._backward is None:
            return None
        return _GradFn(self)

    def __len__(self) -> int:
        if self._data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return len(self._data)

    def __iter__(self):
        if self._data.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(len(self._data)))

    def __bool__(self) -> bool:
        if self._data.size != 1:
            what = "no values" if self._data.size == 0 else "more than one value"
            raise RuntimeError(f"Boolean value of Tensor with {what} is ambiguous")
        return bool(self._data)

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __index__(self) -> int:
        if self._data.dtype.kind not in "iub" or self._data.size != 1:
            raise TypeError("only integer tensors of a single element can be converted to an index")
        return int(self._data.item())

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        grad = ", requires_grad=True" if self.requires_grad else ""
        body = np.array2string(self._data, precision=4, separator=", ", prefix="Tensor(")
        return f"Tensor({body}{grad})"

    # --- graph construction ----------------------------------------------
    @staticmethod
    def from_op(data: np.ndarray, parents: Sequence["Tensor"], backward: Callable,
                op: str = "") -> "Tensor":
        """Wrap an op's result, recording ``backward`` if any parent needs a gradient.

        ``backward(grad)`` receives the gradient of the result and returns one
        gradient (or None) per parent, in order.
        """
        out = Tensor.__new__(Tensor)
        out._data = data
        out._grad = None
        out.op = op
        if _grad.enabled and any(p.requires_grad for p in parents):
            out.requires_grad = True
            out._backward = backward
            out._parents = tuple(parents)
        else:
            out.requires_grad = False
            out._backward = None
            out._parents = ()
        return out

    def backward(self, gradient=None, retain_graph=None, create_graph: bool = False, *, grad=None) -> None:
        """Accumulate d(self)/d(leaf) into ``.grad`` of every leaf that requires it.

        Args:
            gradient: the gradient of some scalar with respect to this tensor,
                an array of this tensor's shape.  May be omitted for a scalar.
                (``grad=`` is accepted too.)
            retain_graph: keep the graph for another ``backward`` through it.
                Without it the graph's ops are released, and a second
                ``backward`` through them raises PyTorch's RuntimeError.
            create_graph: higher-order gradients are not supported.
        """
        if create_graph:
            raise NotImplementedError("backward(create_graph=True): cnnlab computes first-order gradients only")
        if grad is None:
            grad = gradient
        elif gradient is not None:
            raise TypeError("give `gradient` or its alias `grad`, not both")
        if not self.requires_grad:
            raise RuntimeError("backward() called on a tensor that does not require grad "
                               "(no input of its graph has requires_grad=True)")
        if grad is None:
            if self._data.size != 1:
                raise ValueError(f"grad can be omitted only for a scalar output, "
                                 f"got output of shape {self.shape}")
            grad = np.ones_like(self._data)
        else:
            grad = np.asarray(grad._data if isinstance(grad, Tensor) else grad, dtype=self.dtype)
            if grad.shape != self.shape:
                raise ValueError(f"grad must have the output's shape {self.shape}, got {grad.shape}")

        _backpropagate([(self, grad)], keep=bool(retain_graph))

    def zero_grad(self) -> None:
        self.grad = None

    # --- arithmetic --------------------------------------------------------
    def __add__(self, other):
        return add(self, other)

    def __radd__(self, other):
        return add(other, self)

    def __sub__(self, other):
        return add(self, neg(other))

    def __rsub__(self, other):
        return add(other, neg(self))

    def __mul__(self, other):
        return mul(self, other)

    def __rmul__(self, other):
        return mul(other, self)

    def __truediv__(self, other):
        return div(self, other)

    def __rtruediv__(self, other):
        return div(other, self)

    def __neg__(self):
        return neg(self)

    def __pos__(self):
        return self

    def __pow__(self, exponent):
        return power(self, exponent)

    def __rpow__(self, base):
        return power(base, self)

    def __matmul__(self, other):
        return matmul(self, other)

    def __rmatmul__(self, other):
        return matmul(other, self)

    def __abs__(self):
        return tabs(self)

    def __floordiv__(self, other):
        return _stepwise(np.floor_divide, self, other)

    def __rfloordiv__(self, other):
        return _stepwise(np.floor_divide, other, self)

    def __mod__(self, other):
        return remainder(self, other)

    def __rmod__(self, other):
        return remainder(other, self)

    def __format__(self, spec: str) -> str:
        if self._data.ndim == 0:  # f"{loss:.4f}" as in PyTorch
            return self._data.item().__format__(spec)
        return object.__format__(self, spec)

    def floor(self):
        return _stepwise(np.floor, self)

    def ceil(self):
        return _stepwise(np.ceil, self)

    def round(self, decimals: int = 0):
        return _stepwise(lambda x: np.round(x, decimals), self)

    def sign(self):
        return _stepwise(np.sign, self)

    def floor_divide(self, other):
        return _stepwise(np.floor_divide, self, other)

    def remainder(self, other):
        return remainder(self, other)

    def add(self, other, *, alpha=1):
        return add(self, other if alpha == 1 else mul(other, alpha))

    def sub(self, other, *, alpha=1):
        return add(self, neg(other if alpha == 1 else mul(other, alpha)))

    def mul(self, other):
        return mul(self, other)

    def div(self, other):
        return div(self, other)

    multiply, divide, subtract = mul, div, sub

    def neg(self):
        return neg(self)

    def matmul(self, other):
        return matmul(self, other)

    def pow(self, exponent):
        return power(self, exponent)

    def exp(self):
        return exp(self)

    def log(self):
        return log(self)

    def sqrt(self):
        return power(self, 0.5)

    def rsqrt(self):
        return power(self, -0.5)

    def square(self):
        return mul(self, self)

    def reciprocal(self):
        return power(self, -1.0)

    def abs(self):
        return tabs(self)

    def clamp(self, min=None, max=None):
        return clamp(self, min, max)

    clip = clamp

    def maximum(self, other):
        return maximum(self, other)

    def minimum(self, other):
        return minimum(self, other)

    def where(self, condition, other):
        return where(condition, self, other)

    # --- comparisons and logic: boolean tensors, no gradient ----------------
    def __lt__(self, other):
        return Tensor(self._data < _operand(other))

    def __gt__(self, other):
        return Tensor(self._data > _operand(other))

    def __le__(self, other):
        return Tensor(self._data <= _operand(other))

    def __ge__(self, other):
        return Tensor(self._data >= _operand(other))

    def __eq__(self, other):
        return Tensor(self._data == _operand(other))

    def __ne__(self, other):
        return Tensor(self._data != _operand(other))

    lt, gt, le, ge, eq, ne = __lt__, __gt__, __le__, __ge__, __eq__, __ne__

    def equal(self, other) -> bool:
        other = _operand(other)
        return self._data.shape == np.shape(other) and bool(np.array_equal(self._data, other))

    def allclose(self, other, rtol=1e-05, atol=1e-08, equal_nan=False) -> bool:
        return bool(np.allclose(self._data, _operand(other), rtol=rtol, atol=atol, equal_nan=equal_nan))

    def isnan(self):
        return Tensor(np.isnan(self._data))

    def isfinite(self):
        return Tensor(np.isfinite(self._data))

    def __invert__(self):
        return Tensor(~self._data)

    def __and__(self, other):
        return Tensor(self._data & _operand(other))

    def __or__(self, other):
        return Tensor(self._data | _operand(other))

    def __xor__(self, other):
        return Tensor(self._data ^ _operand(other))

    __rand__, __ror__, __rxor__ = __and__, __or__, __xor__

    def logical_not(self):
        return Tensor(np.logical_not(self._data))

    def any(self, dim=None, keepdim=False):
        return Tensor(np.any(self._data, axis=_axes(dim, self._data.ndim), keepdims=keepdim))

    def all(self, dim=None, keepdim=False):
        return Tensor(np.all(self._data, axis=_axes(dim, self._data.ndim), keepdims=keepdim))

    # --- shape -------------------------------------------------------------
    def reshape(self, *shape):
        """``reshape(2, -1)`` or ``reshape((2, -1))``; one dimension may be -1."""
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        try:
            data = self._data.reshape(shape)
        except (ValueError, TypeError):
            _check_shape(shape, self._data.size)
            raise
        a = self
        return Tensor.from_op(data, (a,), lambda g: (g.reshape(a.shape),), "reshape")

    view = reshape

    def view_as(self, other):
        return self.reshape(other.shape)

    reshape_as = view_as

    def flatten(self, start_dim: int = 0, end_dim: int = -1):
        """Merge dims ``start_dim..end_dim`` into one (all of them by default)."""
        return self.reshape(flatten_shape(self._data.shape, start_dim, end_dim))

    def unflatten(self, dim: int, sizes):
        shape = self._data.shape
        d = _wrap_dim(dim, len(shape))
        return self.reshape(shape[:d] + tuple(sizes) + shape[d + 1:])

    def unsqueeze(self, dim: int):
        d = _wrap_dim(dim, self._data.ndim + 1)
        shape = self._data.shape
        return self.reshape(shape[:d] + (1,) + shape[d:])

    def squeeze(self, dim=None):
        """Drop dimensions of length 1 (all of them, or those of ``dim``, an int or a tuple)."""
        shape = self._data.shape
        if dim is None:
            keep = [n for n in shape if n != 1]
        else:
            dims = set(_axes(dim, len(shape)))
            keep = [n for i, n in enumerate(shape) if not (i in dims and n == 1)]
        return self if len(keep) == len(shape) else self.reshape(tuple(keep))

    def permute(self, *dims):
        if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
            dims = tuple(dims[0])
        nd = self._data.ndim
        if len(dims) != nd:
            raise RuntimeError(f"permute(): the number of dims ({len(dims)}) does not match the number of "
                               f"dimensions of the tensor ({nd}, shape {self.shape})")
        axes = tuple(_wrap_dim(d, nd) for d in dims)
        if len(set(axes)) != nd:
            raise RuntimeError(f"permute(): duplicate dims are not allowed, got {tuple(dims)}")
        return transpose(self, axes)

    def transpose(self, *dims):
        """``transpose(dim0, dim1)`` swaps two dimensions, as in PyTorch.

        For NumPy habits, ``transpose()`` reverses the dimensions and
        ``transpose((2, 0, 1))`` (or three or more dims) permutes them.
        """
        nd = self._data.ndim
        if len(dims) == 2 and not isinstance(dims[0], (tuple, list)):
            d0, d1 = _wrap_dim(dims[0], nd), _wrap_dim(dims[1], nd)
            if nd == 0:
                return transpose(self, ())
            axes = list(range(nd))
            axes[d0], axes[d1] = d1, d0
            return transpose(self, tuple(axes))
        if not dims:
            return transpose(self, None)
        return self.permute(*dims)

    swapaxes = swapdims = transpose

    def t(self):
        if self._data.ndim > 2:
            raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is {self._data.ndim}D")
        return transpose(self, None)

    @property
    def T(self):
        return transpose(self, None)

    @property
    def mT(self):
        return self.transpose(-2, -1)

    def contiguous(self):
        if self._data.flags.c_contiguous:
            return self
        return Tensor.from_op(np.ascontiguousarray(self._data), (self,), lambda g: (g,), "contiguous")

    def clone(self):
        return Tensor.from_op(self._data.copy(order="K"), (self,), lambda g: (g,), "clone")

    def expand(self, *sizes):
        """Broadcast length-1 dims to ``sizes`` (-1 keeps a dim), sharing memory as in PyTorch."""
        if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)):
            sizes = tuple(sizes[0])
        shape = self._data.shape
        lead = len(sizes) - len(shape)
        if lead < 0:
            raise RuntimeError(f"expand: the number of sizes provided ({len(sizes)}) must be greater or "
                               f"equal to the number of dimensions in the tensor ({len(shape)})")
        target = tuple(n if n != -1 or i < lead else shape[i - lead] for i, n in enumerate(sizes))
        for i, n in enumerate(shape):
            if n != 1 and target[i + lead] != n:
                raise RuntimeError(f"The expanded size of the tensor ({target[i + lead]}) must match the existing "
                                   f"size ({n}) at non-singleton dimension {i + lead}.  Target sizes: "
                                   f"{list(sizes)}.  Tensor sizes: {list(shape)}")
        a = self
        return Tensor.from_op(np.broadcast_to(self._data, target), (a,),
                              lambda g: (unbroadcast(g, a.shape),), "expand")

    def expand_as(self, other):
        return self.expand(other.shape)

    def repeat(self, *sizes):
        if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)):
            sizes = tuple(sizes[0])
        shape = self._data.shape
        if len(sizes) < len(shape):
            raise RuntimeError("Number of dimensions of repeat dims can not be smaller than number of "
                               "dimensions of tensor")
        shape = (1,) * (len(sizes) - len(shape)) + shape
        a = self

        def backward(g):
            split = []
            for r, n in zip(sizes, shape):
                split += [r, n]
            return (g.reshape(split).sum(axis=tuple(range(0, 2 * len(shape), 2))).reshape(a.shape),)

        return Tensor.from_op(np.tile(self._data.reshape(shape), sizes), (a,), backward, "repeat")

    def chunk(self, chunks: int, dim: int = 0):
        n = self._data.shape[_wrap_dim(dim, self._data.ndim)]
        if chunks <= 0:
            raise RuntimeError(f"chunk expects `chunks` to be greater than 0, got: {chunks}")
        return self.split(max(-(-n // chunks), 1), dim)

    def split(self, split_size, dim: int = 0):
        d = _wrap_dim(dim, self._data.ndim)
        n = self._data.shape[d]
        if isinstance(split_size, (tuple, list)):
            sizes = list(split_size)
            if sum(sizes) != n or any(s < 0 for s in sizes):
                raise RuntimeError(f"split_with_sizes expects split_sizes to sum exactly to {n} (input tensor's "
                                   f"size at dimension {d}), but got split_sizes={sizes}")
        else:
            if split_size < 0:
                raise RuntimeError(f"split expects split_size be non-negative, but got split_size={split_size}")
            if split_size == 0:
                if n:
                    raise RuntimeError(f"split_size can only be 0 if dimension size is 0, but got dimension size "
                                       f"of {n}")
                return (self,)
            sizes = [split_size] * (n // split_size) + ([n % split_size] if n % split_size else [])
        out, start = [], 0
        for s in sizes:
            index = (slice(None),) * d + (slice(start, start + s),)
            out.append(self[index])
            start += s
        return tuple(out)

    def unbind(self, dim: int = 0):
        d = _wrap_dim(dim, self._data.ndim)
        return tuple(self[(slice(None),) * d + (i,)] for i in range(self._data.shape[d]))

    def flip(self, *dims):
        if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
            dims = tuple(dims[0])
        axes = _axes(dims, self._data.ndim) if dims else ()
        return Tensor.from_op(np.flip(self._data, axes), (self,), lambda g: (np.flip(g, axes),), "flip")

    # --- sorting and running sums ---------------------------------------------
    def cumsum(self, dim: int):
        d = _wrap_dim(dim, self._data.ndim)
        if self._data.ndim == 0:
            return self.clone()
        out = np.cumsum(self._data, axis=d)

        def backward(g):
            return (np.flip(np.cumsum(np.flip(g, d), axis=d), d),)

        return Tensor.from_op(out, (self,), backward, "cumsum")

    def masked_fill(self, mask, value):
        """``value`` where ``mask`` is True, else this tensor (the gradient flows where it is kept)."""
        return where(mask, value, self)

    # --- new tensors like this one ----------------------------------------------
    def new_zeros(self, *size, dtype=None, requires_grad: bool = False):
        return Tensor(np.zeros(_size_args(size), dtype=dtype or self._data.dtype), requires_grad=requires_grad)

    def new_ones(self, *size, dtype=None, requires_grad: bool = False):
        return Tensor(np.ones(_size_args(size), dtype=dtype or self._data.dtype), requires_grad=requires_grad)

    def new_empty(self, *size, dtype=None, requires_grad: bool = False):
        return Tensor(np.empty(_size_args(size), dtype=dtype or self._data.dtype), requires_grad=requires_grad)

    def new_full(self, size, fill_value, dtype=None, requires_grad: bool = False):
        return Tensor(np.full(_size_args((size,)), fill_value, dtype=dtype or self._data.dtype),
                      requires_grad=requires_grad)

    def new_tensor(self, data, dtype=None, requires_grad: bool = False):
        return Tensor(np.array(_operand(data), dtype=dtype or self._data.dtype), requires_grad=requires_grad)

    # --- indexing ----------------------------------------------------------
    def __getitem__(self, index):
        return getitem(self, index)

    def __setitem__(self, index, value):
        _check_in_place(self, value, "__setitem__")
        _writable(self)[_index(index)] = _operand(value)

    # --- dtype and device --------------------------------------------------
    def to(self, *args, **kwargs):
        """``to(dtype)``, ``to('cpu')``, ``to('cpu', dtype)``, ``to(other_tensor)``: the device is always the CPU."""
        dtype = kwargs.pop("dtype", None)
        device = kwargs.pop("device", None)
        kwargs.pop("non_blocking", None)
        kwargs.pop("copy", None)
        if kwargs:
            raise TypeError(f"to() got unexpected keyword arguments {sorted(kwargs)}")
        for a in args:
            if isinstance(a, Tensor):
                dtype = a.dtype
            elif isinstance(a, _device_type) or (isinstance(a, str) and not _is_dtype_name(a)):
                device = a
            else:
                dtype = a
        _check_device(device)
        return self if dtype is None else self._cast(dtype)

    def cpu(self):
        return self

    def cuda(self, device=None, non_blocking: bool = False):
        """There is no GPU: raises (``cnnlab.cuda.is_available()`` is False)."""
        raise RuntimeError("cnnlab runs on the CPU only: cuda() is not available (cnnlab.cuda.is_available() "
                           "is False); use .to(device) with device = 'cpu', or leave it out")

    def type_as(self, other):
        return self._cast(other.dtype)

    def type(self, dtype=None):
        if dtype is None:
            return str(self._data.dtype)
        return self._cast(dtype)

    def _cast(self, dtype):
        dtype = np.dtype(dtype)
        if dtype == self._data.dtype:
            return self
        data = self._data.astype(dtype)
        if dtype.kind != "f":  # integer and boolean results carry no gradient
            return Tensor(data)
        return Tensor.from_op(data, (self,), lambda g: (g,), "to")

    def half(self):
        raise TypeError("cnnlab computes in float32 or float64; float16 tensors are not supported")

    # --- in-place operations (see the class docstring) ----------------------
    def __iadd__(self, other):
        if _grad.enabled and (self.requires_grad or _needs_grad(other)):
            return _rebind(self, add, other)
        _in_place(self, np.add, other)
        return self

    def __isub__(self, other):
        if _grad.enabled and (self.requires_grad or _needs_grad(other)):
            return _rebind(self, Tensor.__sub__, other)
        _in_place(self, np.subtract, other)
        return self

    def __imul__(self, other):
        if _grad.enabled and (self.requires_grad or _needs_grad(other)):
            return _rebind(self, mul, other)
        _in_place(self, np.multiply, other)
        return self

    def __itruediv__(self, other):
        if _grad.enabled and (self.requires_grad or _needs_grad(other)):
            return _rebind(self, div, other)
        _in_place(self, np.true_divide, other)
        return self

    def add_(self, other, *, alpha=1):
        _check_in_place(self, other, "add_")
        _in_place(self, np.add, other if alpha == 1 else _operand(other) * alpha)
        return self

    def sub_(self, other, *, alpha=1):
        _check_in_place(self, other, "sub_")
        _in_place(self, np.subtract, other if alpha == 1 else _operand(other) * alpha)
        return self

    def mul_(self, other):
        _check_in_place(self, other, "mul_")
        _in_place(self, np.multiply, other)
        return self

    def div_(self, other):
        _check_in_place(self, other, "div_")
        _in_place(self, np.true_divide, other)
        return self

    def pow_(self, exponent):
        _check_in_place(self, exponent, "pow_")
        _in_place(self, np.power, exponent)
        return self

    def clamp_(self, min=None, max=None):
        _check_in_place(self, None, "clamp_")
        if min is None and max is None:
            raise RuntimeError("clamp_: at least one of 'min' or 'max' must not be None")
        data = _writable(self)
        np.clip(data, _operand(min) if min is not None else None, _operand(max) if max is not None else None,
                out=data)
        return self

    clip_ = clamp_

    def zero_(self):
        _check_in_place(self, None, "zero_")
        _writable(self)[...] = 0
        return self

    def fill_(self, value):
        _check_in_place(self, value, "fill_")
        _writable(self)[...] = _operand(value)
        return self

    def scatter_(self, dim: int, index, src=None, *, value=None, reduce=None):
        """``self[index[i][j]][j] = src[i][j]`` along ``dim`` (or ``value``), in place; no gradient."""
        if reduce is not None:
            raise NotImplementedError("scatter_(reduce=...) is not supported; use scatter_reduce-free code")
        if (src is None) == (value is None):
            raise TypeError("scatter_() needs exactly one of `src` or `value`")
        _check_in_place(self, src if src is not None else value, "scatter_")
        data = _writable(self)
        d = _wrap_dim(dim, max(data.ndim, 1))
        idx = np.asarray(index._data if isinstance(index, Tensor) else index)
        if idx.dtype.kind not in "iu":
            raise RuntimeError(f"scatter_(): Expected dtype int64 for index, got {idx.dtype}")
        if idx.ndim == 0:
            idx = idx.reshape(1)
        if idx.ndim != data.ndim:
            raise RuntimeError(f"Index tensor must have the same number of dimensions as self tensor "
                               f"({idx.ndim} != {data.ndim})")
        if idx.size and (idx.min() < -data.shape[d] or idx.max() >= data.shape[d]):
            raise RuntimeError(f"index {int(idx.max())} is out of bounds for dimension {d} with size "
                               f"{data.shape[d]}")
        if value is not None:
            values = np.broadcast_to(np.asarray(_operand(value), dtype=data.dtype), idx.shape)
        else:
            values = np.asarray(_operand(src))
            values = values[tuple(slice(0, n) for n in idx.shape)] if values.ndim == idx.ndim else values
        target = data[tuple(slice(0, n) if i != d else slice(None) for i, n in enumerate(idx.shape))]
        np.put_along_axis(target, idx, values.astype(data.dtype, copy=False), axis=d)
        return self

    def copy_(self, src):
        _check_in_place(self, src, "copy_")
        data = _writable(self)
        try:
            np.copyto(data, _operand(src), casting="unsafe")
        except ValueError:
            raise RuntimeError(f"copy_: the source of shape {list(np.shape(_operand(src)))} cannot be "
                               f"broadcast to the shape {list(data.shape)} of the tensor") from None
        return self

    def uniform_(self, a: float = 0.0, b: float = 1.0):
        from .random import get_rng
        _check_in_place(self, None, "uniform_")
        _writable(self)[...] = get_rng().uniform(a, b, size=self._data.shape)
        return self

    def normal_(self, mean: float = 0.0, std: float = 1.0):
        from .random import get_rng
        _check_in_place(self, None, "normal_")
        _writable(self)[...] = get_rng().normal(mean, std, size=self._data.shape)
        return self

    # --- dtype conversions (last: the names shadow builtins in the class body) ----
    def float(self):
        return self._cast(np.float32)

    def double(self):
        return self._cast(np.float64)

    def long(self):
        return self._cast(np.int64)

    def int(self):
        return self._cast(np.int32)

    def bool(self):
        return self._cast(np.bool_)


def _size_args(size) -> tuple:
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    return tuple(operator.index(n) for n in size)


def _wrap_dim(dim, ndim: int) -> int:
    """PyTorch's dimension rule: ``-ndim <= dim < ndim`` (a 0-d tensor accepts 0 and -1)."""
    try:
        d = operator.index(dim)
    except TypeError:
        raise TypeError(f"a dimension must be an integer, got {dim!r} ({type(dim).__name__})") from None
    n = ndim if ndim > 0 else 1
    if not -n <= d < n:
        raise IndexError(f"Dimension out of range (expected to be in range of [{-n}, {n - 1}], but got {dim})")
    return d + n if d < 0 else d


def _axes(dim, ndim: int) -> tuple:
    """``dim`` (None, an int or a sequence of ints) as a tuple of NumPy axes; () for a 0-d tensor.

    None or an empty sequence means every dimension, as in PyTorch.
    """
    if dim is None:
        return tuple(range(ndim))
    if isinstance(dim, (tuple, list)):
        if not dim:
            return tuple(range(ndim))
        axes = tuple(_wrap_dim(d, ndim) for d in dim)
        if len(set(axes)) != len(axes):
            repeated = next(a for a in axes if axes.count(a) > 1)
            raise RuntimeError(f"dim {repeated} appears multiple times in the list of dims")
    else:
        axes = (_wrap_dim(dim, ndim),)
    return axes if ndim else ()


def _dim_arg(dim, axis):
    if axis is None:
        return dim
    if dim is not None:
        raise TypeError("give `dim` or its NumPy alias `axis`, not both")
    return axis


def flatten_shape(shape: tuple, start_dim: int = 0, end_dim: int = -1) -> tuple:
    """The shape ``flatten(start_dim, end_dim)`` gives, with PyTorch's dimension checks."""
    shape = tuple(shape)
    nd = len(shape)
    s, e = _wrap_dim(start_dim, nd), _wrap_dim(end_dim, nd)
    if nd == 0:
        return (1,)
    if s > e:
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim} for a {nd}-D input")
    n = 1
    for size in shape[s:e + 1]:
        n *= size
    return shape[:s] + (n,) + shape[e + 1:]


def _check_shape(shape, numel: int) -> None:
    """Raise PyTorch's error for a shape that ``reshape``/``view`` cannot produce."""
    try:
        dims = [operator.index(n) for n in shape]
    except TypeError:
        raise TypeError(f"reshape: a shape is a sequence of integers, got {tuple(shape)!r}") from None
    if dims.count(-1) > 1:
        raise RuntimeError("only one dimension can be inferred")
    bad = [n for n in dims if n < -1]
    if bad:
        raise RuntimeError(f"invalid shape dimension {bad[0]}")
    raise RuntimeError(f"shape '{list(dims)}' is invalid for input of size {numel}")


def _operand(x):
    """A Tensor's array, or ``x`` itself (numbers, arrays)."""
    return x._data if isinstance(x, Tensor) else x


def _needs_grad(x) -> bool:
    return isinstance(x, Tensor) and x.requires_grad


def _index(index):
    """Tensors inside an index become their arrays."""
    if isinstance(index, Tensor):
        return index._data
    if isinstance(index, tuple) and any(isinstance(i, Tensor) for i in index):
        return tuple(i._data if isinstance(i, Tensor) else i for i in index)
    return index


def _check_in_place(t: Tensor, other, name: str) -> None:
    """Refuse an in-place change a gradient would have to flow through (see the Tensor docstring)."""
    if not _grad.enabled or not (t.requires_grad or _needs_grad(other)):
        return
    if t.requires_grad and t._backward is None:
        raise RuntimeError(_LEAF_IN_PLACE)
    raise RuntimeError(f"{name}: cnnlab does not record in-place operations in the autograd graph; "
                       f"use the out-of-place form (for example `x = x + y` instead of `x.add_(y)`), "
                       f"or run it under `cnnlab.no_grad()`")


def _rebind(t: Tensor, op, other) -> Tensor:
    """``x op= y`` while recording: a new node (the name is rebound), or PyTorch's leaf error."""
    if t.requires_grad and t._backward is None:
        raise RuntimeError(_LEAF_IN_PLACE)
    return op(t, other)



def _graph_order(roots) -> list:
    """Every tensor that requires grad reachable from ``roots``, parents before children (an
    iterative post-order DFS: deep graphs must not hit the recursion limit)."""
    order: list = []
    seen: set = set()
    for root in roots:
        stack = [(root, False)]
        while stack:
            node, done = stack.pop()
            if done:
                order.append(node)
                continue
            if id(node) in seen:
                continue
            seen.add(id(node))
            stack.append((node, True))
            for parent in node._parents:
                if parent.requires_grad and id(parent) not in seen:
                    stack.append((parent, False))
    return order


def _backpropagate(seeds, keep: bool, capture=None) -> dict:
    """Send the gradients ``seeds`` (``[(tensor, ndarray)]``) back through their graph.

    Without ``capture`` every leaf that requires grad accumulates its gradient into ``.grad``
    (``backward``).  With ``capture`` (a set of ``id()`` values) no ``.grad`` changes: the gradients of
    those tensors, leaves or not, are returned by ``id`` (``autograd.grad``).  Unless ``keep``,
    the ops' saved values are released on the way."""
    grads: dict = {}
    for tensor, g in seeds:
        key = id(tensor)
        grads[key] = g if key not in grads else grads[key] + g
    captured: dict = {}
    for node in reversed(_graph_order([t for t, _ in seeds])):
        g = grads.pop(id(node), None)
        if g is None:
            continue
        if capture is not None and id(node) in capture:
            captured[id(node)] = g
        if node._backward is None:
            if capture is None:
                node._grad = Tensor(g.copy(order="K")) if node._grad is None else Tensor(node._grad._data + g)
            continue
        backward = node._backward
        if not keep:  # free what the op saved for its backward, as PyTorch does
            node._backward = _freed_backward
        for parent, pg in zip(node._parents, backward(g)):
            if pg is None or not parent.requires_grad:
                continue
            if pg.dtype != parent._data.dtype:  # mixed precision: gradients take their input's dtype
                pg = pg.astype(parent._data.dtype)
            key = id(parent)
            grads[key] = pg if key not in grads else grads[key] + pg
    return captured

def _writable(t: Tensor) -> np.ndarray:
    if not t._data.flags.writeable:  # e.g. a broadcast view: take an own copy first
        t._data = t._data.copy()
    return t._data


def _in_place(t: Tensor, ufunc, other) -> None:
    data = _writable(t)
    value = _operand(other)
    try:
        ufunc(data, value, out=data)
    except TypeError as exc:  # NumPy's UFuncTypeError: the result does not fit the dtype
        raise RuntimeError(f"result type {np.result_type(data, value)} can't be cast to the desired output "
                           f"type {data.dtype}") from exc
    except ValueError as exc:
        raise RuntimeError(f"output with shape {list(data.shape)} doesn't match the broadcast shape "
                           f"{list(np.broadcast_shapes(data.shape, np.shape(value)))}"
                           if _broadcastable(data.shape, np.shape(value)) else
                           f"the size of the operand of shape {list(np.shape(value))} does not match the "
                           f"tensor's shape {list(data.shape)}") from exc


def _broadcastable(a, b) -> bool:
    try:
        np.broadcast_shapes(a, b)
        return True
    except ValueError:
        return False


def _is_dtype_name(name: str) -> bool:
    if name in ("cpu", "cuda", "mps", "meta") or ":" in name:
        return False
    try:
        np.dtype(name)
        return True
    except TypeError:
        return False


def _check_device(device) -> None:
    if device is None:
        return
    name = str(device)
    if name != "cpu" and not name.startswith("cpu:"):
        raise RuntimeError(f"cnnlab runs on the CPU only; got device {name!r} (cnnlab.cuda.is_available() "
                           f"is False)")


def as_tensor(data, dtype=None, device=None) -> Tensor:
    """Return ``data`` if it is a Tensor (of ``dtype``), else wrap it without copying when possible."""
    if isinstance(data, Tensor) and dtype is None and device is None:
        return data
    _check_device(device)
    if isinstance(data, Tensor):
        return data if dtype is None else data._cast(dtype)
    return Tensor(data, dtype=None if dtype is None else np.dtype(dtype))


def _pair(a, b):
    if not isinstance(a, Tensor):  # a number or array on the left takes the tensor's float dtype
        a = Tensor(np.asarray(a, dtype=b.dtype) if isinstance(b, Tensor) and b.dtype.kind == "f" else a)
    b = b if isinstance(b, Tensor) else Tensor(np.asarray(b, dtype=a.dtype) if a.dtype.kind == "f" else b)
    if a.dtype.kind != "f" and b.dtype.kind == "f":
        a = Tensor(a._data.astype(b.dtype))
    return a, b


def add(a, b) -> Tensor:
    a, b = _pair(a, b)

    def backward(g):
        return unbroadcast(g, a.shape), unbroadcast(g, b.shape)

    return Tensor.from_op(a._data + b._data, (a, b), backward, "add")


def mul(a, b) -> Tensor:
    a, b = _pair(a, b)

    def backward(g):
        return (unbroadcast(g * b._data, a.shape) if a.requires_grad else None,
                unbroadcast(g * a._data, b.shape) if b.requires_grad else None)

    return Tensor.from_op(a._data * b._data, (a, b), backward, "mul")


def div(a, b) -> Tensor:
    a, b = _pair(a, b)

    def backward(g):
        ga = unbroadcast(g / b._data, a.shape) if a.requires_grad else None
        gb = unbroadcast(-g * a._data / (b._data * b._data), b.shape) if b.requires_grad else None
        return ga, gb

    return Tensor.from_op(a._data / b._data, (a, b), backward, "div")


def neg(a) -> Tensor:
    a = as_tensor(a)
    return Tensor.from_op(-a._data, (a,), lambda g: (-g,), "neg")


def power(a, exponent) -> Tensor:
    """``a ** exponent`` for a constant or tensor exponent (either side may be a number)."""
    if not isinstance(exponent, Tensor):
        a = as_tensor(a)
        if isinstance(exponent, np.ndarray) and exponent.ndim:
            return power(a, Tensor(exponent.astype(a.dtype) if a.dtype.kind == "f" else exponent))
        p = float(exponent)

        def backward(g):
            if p == 0:
                return (np.zeros_like(g),)
            return (g * p * a._data ** (p - 1),)

        return Tensor.from_op(a._data ** p, (a,), backward, "pow")
    a, b = _pair(a, exponent)
    out = a._data ** b._data

    def backward_tensor(g):
        ga = gb = None
        if a.requires_grad:
            with np.errstate(divide="ignore", invalid="ignore"):
                local = b._data * a._data ** (b._data - 1)
            ga = unbroadcast(g * np.where(b._data == 0, 0, local), a.shape)
        if b.requires_grad:
            with np.errstate(divide="ignore", invalid="ignore"):
                local = out * np.log(a._data)
            # PyTorch: no gradient for the exponent where the base is 0 and the exponent >= 0
            gb = unbroadcast(g * np.where((a._data == 0) & (b._data >= 0), 0, local), b.shape)
        return ga, gb

    return Tensor.from_op(out, (a, b), backward_tensor, "pow")


def _stepwise(fn, a, b=None) -> Tensor:
    """A piecewise-constant op (floor, round, sign, ``//``): its gradient is zero, as in PyTorch."""
    if b is None:
        a = as_tensor(a)
        return Tensor.from_op(fn(a._data), (a,), lambda g: (np.zeros_like(g),), fn.__name__)
    a, b = _pair(a, b)

    def backward(g):
        return np.zeros(a.shape, g.dtype), np.zeros(b.shape, g.dtype)

    return Tensor.from_op(fn(a._data, b._data), (a, b), backward, getattr(fn, "__name__", "stepwise"))


def remainder(a, b) -> Tensor:
    """``a % b`` with the sign of ``b`` (Python's and PyTorch's rule); d/da = 1, d/db = -floor(a / b)."""
    a, b = _pair(a, b)

    def backward(g):
        return (unbroadcast(g, a.shape) if a.requires_grad else None,
                unbroadcast(-g * np.floor_divide(a._data, b._data), b.shape) if b.requires_grad else None)

    return Tensor.from_op(np.remainder(a._data, b._data), (a, b), backward, "remainder")


def exp(a) -> Tensor:
    a = as_tensor(a)
    out = np.exp(a._data)
    return Tensor.from_op(out, (a,), lambda g: (g * out,), "exp")


def log(a) -> Tensor:
    a = as_tensor(a)
    return Tensor.from_op(np.log(a._data), (a,), lambda g: (g / a._data,), "log")


def tabs(a) -> Tensor:
    a = as_tensor(a)
    return Tensor.from_op(np.abs(a._data), (a,), lambda g: (g * np.sign(a._data),), "abs")


def matmul(a, b) -> Tensor:
    """PyTorch's (and NumPy's) ``matmul``: 1-D operands are vectors, leading dimensions broadcast."""
    a, b = _pair(a, b)
    if a.ndim == 0 or b.ndim == 0:
        raise RuntimeError(f"both arguments to matmul need to be at least 1D, but they are "
                           f"{a.ndim}D and {b.ndim}D")
    if a.ndim == 2 and b.ndim == 2:  # the common case, kept direct
        if a.shape[1] != b.shape[0]:
            raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not align "
                             f"({a.shape[1]} != {b.shape[0]})")

        def backward(g):
            return (g @ b._data.T if a.requires_grad else None,
                    a._data.T @ g if b.requires_grad else None)

        return Tensor.from_op(a._data @ b._data, (a, b), backward, "matmul")
    am = a._data.reshape(1, -1) if a.ndim == 1 else a._data      # a vector on the left is a row
    bm = b._data.reshape(-1, 1) if b.ndim == 1 else b._data      # a vector on the right is a column
    if am.shape[-1] != bm.shape[-2]:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not align "
                         f"({am.shape[-1]} != {bm.shape[-2]})")
    try:
        np.broadcast_shapes(am.shape[:-2], bm.shape[:-2])
    except ValueError:
        raise ValueError(f"matmul: the batch dimensions of shapes {a.shape} and {b.shape} do not broadcast "
                         f"({am.shape[:-2]} and {bm.shape[:-2]})") from None
    full = am @ bm
    out = full
    if a.ndim == 1:
        out = out[..., 0, :]
    if b.ndim == 1:
        out = out[..., 0]

    def backward(g):
        g = g.reshape(full.shape)
        ga = gb = None
        if a.requires_grad:
            ga = unbroadcast(g @ np.swapaxes(bm, -1, -2), am.shape).reshape(a.shape)
        if b.requires_grad:
            gb = unbroadcast(np.swapaxes(am, -1, -2) @ g, bm.shape).reshape(b.shape)
        return ga, gb

    return Tensor.from_op(np.ascontiguousarray(out) if out.ndim else out, (a, b), backward, "matmul")


def clamp(a, min=None, max=None) -> Tensor:
    """Limit values to ``[min, max]`` (either may be None); the gradient passes where ``min <= a <= max``."""
    a = as_tensor(a)
    if min is None and max is None:
        raise RuntimeError("clamp: at least one of 'min' or 'max' must not be None")
    lo = None if min is None else _operand(min)
    hi = None if max is None else _operand(max)
    if a.dtype.kind == "f":
        lo = None if lo is None else np.asarray(lo, dtype=a.dtype)
        hi = None if hi is None else np.asarray(hi, dtype=a.dtype)
    out = np.clip(a._data, lo, hi)

    def backward(g):
        keep = np.ones(a.shape, dtype=bool)
        if lo is not None:
            keep &= a._data >= lo
        if hi is not None:
            keep &= a._data <= hi
        return (g * keep,)

    return Tensor.from_op(out, (a,), backward, "clamp")


def maximum(a, b) -> Tensor:
    """Elementwise maximum; ties share the gradient equally, as in PyTorch."""
    return _pick(a, b, np.maximum, np.greater)


def minimum(a, b) -> Tensor:
    """Elementwise minimum; ties share the gradient equally, as in PyTorch."""
    return _pick(a, b, np.minimum, np.less)


def _pick(a, b, ufunc, wins) -> Tensor:
    a, b = _pair(a, b)

    def backward(g):
        share = np.where(wins(a._data, b._data), 1.0, np.where(a._data == b._data, 0.5, 0.0)).astype(g.dtype)
        return (unbroadcast(g * share, a.shape) if a.requires_grad else None,
                unbroadcast(g * (1 - share), b.shape) if b.requires_grad else None)

    return Tensor.from_op(ufunc(a._data, b._data), (a, b), backward, ufunc.__name__)


def where(condition, input, other) -> Tensor:
    """``input`` where ``condition`` holds, else ``other`` (gradients flow to the chosen side)."""
    cond = np.asarray(_operand(condition), dtype=bool)
    a, b = _pair(input, other)

    def backward(g):
        return (unbroadcast(np.where(cond, g, 0), a.shape) if a.requires_grad else None,
                unbroadcast(np.where(cond, 0, g), b.shape) if b.requires_grad else None)

    return Tensor.from_op(np.where(cond, a._data, b._data), (a, b), backward, "where")


def reshape(a, shape) -> Tensor:
    a = as_tensor(a)
    return Tensor.from_op(a._data.reshape(shape), (a,), lambda g: (g.reshape(a.shape),), "reshape")


def transpose(a, axes=None) -> Tensor:
    """Permute the dimensions by ``axes`` (NumPy's meaning; None reverses them)."""
    a = as_tensor(a)
    if axes is None:
        axes = tuple(reversed(range(a.ndim)))
    axes = tuple(_wrap_dim(ax, a.ndim) for ax in axes) if a.ndim else tuple(axes)
    if sorted(axes) != list(range(a.ndim)):
        raise ValueError(f"transpose: axes {axes} are not a permutation of the {a.ndim} axes of shape {a.shape}")
    inverse = tuple(np.argsort(axes))
    return Tensor.from_op(a._data.transpose(axes), (a,), lambda g: (g.transpose(inverse),), "transpose")


_BASIC = (int, slice, type(None), type(Ellipsis), np.integer)


def getitem(a, index) -> Tensor:
    a = as_tensor(a)
    index = _index(index)
    basic = isinstance(index, _BASIC) or (isinstance(index, tuple) and all(isinstance(i, _BASIC) for i in index))

    def backward(g):
        out = np.zeros(a.shape, dtype=g.dtype)
        if basic:  # a view: every element is picked at most once
            out[index] = g
        else:
            np.add.at(out, index, g)
        return (out,)

    return Tensor.from_op(a._data[index], (a,), backward, "getitem")


def concatenate(tensors: Iterable[Tensor], axis: int = 0) -> Tensor:
    tensors = [as_tensor(t) for t in tensors]
    sizes = np.cumsum([t.shape[axis] for t in tensors])[:-1]

    def backward(g):
        return tuple(np.split(g, sizes, axis=axis))

    return Tensor.from_op(np.concatenate([t._data for t in tensors], axis=axis), tensors,
                          backward, "concatenate")

