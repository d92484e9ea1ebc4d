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

import contextlib
from typing import Callable, Iterable, Sequence

import numpy as np

_GRAD_ENABLED = True


@contextlib.contextmanager
def no_grad():
    """Context manager that stops graph recording (like ``torch.no_grad``)."""
    global _GRAD_ENABLED
    previous = _GRAD_ENABLED
    _GRAD_ENABLED = False
    try:
        yield
    finally:
        _GRAD_ENABLED = previous


@contextlib.contextmanager
def enable_grad():
    """Context manager that turns graph recording back on inside ``no_grad``."""
    global _GRAD_ENABLED
    previous = _GRAD_ENABLED
    _GRAD_ENABLED = True
    try:
        yield
    finally:
        _GRAD_ENABLED = previous


def is_grad_enabled() -> bool:
    return _GRAD_ENABLED


def _as_array(data, dtype=None) -> np.ndarray:
    if isinstance(data, Tensor):
        data = data.data
    if dtype is not None:
        return np.asarray(data, dtype=dtype)
    if isinstance(data, np.ndarray):
        if data.dtype in (np.float32, np.float64) or data.dtype.kind in "iub":
            return data
        if data.dtype.kind == "f":
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


class Tensor:
    """An n-dimensional array that can record how it was computed.

    Args:
        data: anything ``numpy.asarray`` accepts.  Floating data is kept as
            float32 or float64 (other float types become float32; Python
            floats and lists of floats become float32).  Integer and boolean
            data keep their dtype (useful for class labels).
        requires_grad: whether ``backward`` should fill ``.grad`` for it.
    """

    __slots__ = ("data", "grad", "requires_grad", "_backward", "_parents", "op", "__weakref__")
    __array_priority__ = 1000  # make ``ndarray + Tensor`` call Tensor.__radd__

    def __init__(self, data, requires_grad: bool = False, dtype=None):
        self.data: np.ndarray = _as_array(data, dtype)
        if requires_grad and self.data.dtype.kind != "f":
            raise TypeError(
                f"only floating point tensors can require gradients, got dtype {self.data.dtype}")
        self.grad: np.ndarray | None = None
        self.requires_grad = bool(requires_grad)
        self._backward: Callable | None = None
        self._parents: tuple = ()
        self.op = ""

    # --- basic properties -------------------------------------------------
    @property
    def shape(self) -> tuple:
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> int:
        return self.data.size

    @property
    def is_leaf(self) -> bool:
        return self._backward is None

    def numpy(self) -> np.ndarray:
        return self.data

    def item(self):
        return self.data.item()

    def detach(self) -> "Tensor":
        return Tensor(self.data)

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        grad = ", requires_grad=True" if self.requires_grad else ""
        body = np.array2string(self.data, precision=4, separator=", ", prefix="Tensor(")
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
        out.data = data
        out.grad = None
        out.op = op
        if _GRAD_ENABLED and any(p.requires_grad for p in parents):
            out.requires_grad = True
            out._backward = backward
            out._parents = tuple(parents)
        else:
            out.requires_grad = False
            out._backward = None
            out._parents = ()
        return out

    def backward(self, grad=None) -> None:
        """Accumulate d(self)/d(leaf) into ``.grad`` of every leaf that requires it.

        Args:
            grad: the gradient of some scalar with respect to this tensor, an
                array of this tensor's shape.  May be omitted for a scalar.
        """
        if not self.requires_grad:
            raise RuntimeError("backward() called on a tensor that does not require grad "
                               "(no input of its graph has requires_grad=True)")
        if grad is None:
            if self.data.size != 1:
                raise ValueError(f"grad can be omitted only for a scalar output, "
                                 f"got output of shape {self.shape}")
            grad = np.ones_like(self.data)
        else:
            grad = np.asarray(grad.data if isinstance(grad, Tensor) else grad, dtype=self.dtype)
            if grad.shape != self.shape:
                raise ValueError(f"grad must have the output's shape {self.shape}, got {grad.shape}")

        order: list[Tensor] = []
        seen: set[int] = set()
        stack = [(self, False)]
        while stack:  # iterative post-order DFS (deep graphs must not hit the recursion limit)
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

        grads: dict[int, np.ndarray] = {id(self): grad}
        for node in reversed(order):
            g = grads.pop(id(node), None)
            if g is None:
                continue
            if node._backward is None:
                node.grad = g.copy(order="K") if node.grad is None else node.grad + g
                continue
            for parent, pg in zip(node._parents, node._backward(g)):
                if pg is None or not parent.requires_grad:
                    continue
                if pg.dtype != parent.data.dtype:  # mixed precision: gradients take their input's dtype
                    pg = pg.astype(parent.data.dtype)
                key = id(parent)
                grads[key] = pg if key not in grads else grads[key] + pg

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

    def __pow__(self, exponent):
        return power(self, exponent)

    def __matmul__(self, other):
        return matmul(self, other)

    def __getitem__(self, index):
        return getitem(self, index)

    def sum(self, axis=None, keepdims=False):
        return tsum(self, axis, keepdims)

    def mean(self, axis=None, keepdims=False):
        return mean(self, axis, keepdims)

    def reshape(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return reshape(self, shape)

    def transpose(self, *axes):
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return transpose(self, axes or None)

    permute = transpose

    @property
    def T(self):
        return transpose(self, None)

    def exp(self):
        return exp(self)

    def log(self):
        return log(self)

    def sqrt(self):
        return power(self, 0.5)

    def abs(self):
        return tabs(self)

    def argmax(self, axis=None):
        return self.data.argmax(axis=axis)

    # comparisons return plain boolean arrays (no gradient flows through them)
    def __lt__(self, other):
        return self.data < _as_array(other)

    def __gt__(self, other):
        return self.data > _as_array(other)

    def __le__(self, other):
        return self.data <= _as_array(other)

    def __ge__(self, other):
        return self.data >= _as_array(other)


def as_tensor(x) -> Tensor:
    """Return ``x`` if it is a Tensor, else wrap it (no gradient)."""
    return x if isinstance(x, Tensor) else Tensor(x)


def _pair(a, b):
    a = as_tensor(a)
    b = b if isinstance(b, Tensor) else Tensor(np.asarray(b, dtype=a.dtype) if a.dtype.kind == "f" else b)
    if a.dtype.kind != "f" and b.dtype.kind == "f":
        a = Tensor(a.data.astype(b.dtype))
    return a, b


def add(a, b) -> Tensor:
    a, b = _pair(a, b)

    def backward(g):
        return unbroadcast(g, a.shape), unbroadcast(g, b.shape)

    return Tensor.from_op(a.data + b.data, (a, b), backward, "add")


def mul(a, b) -> Tensor:
    a, b = _pair(a, b)

    def backward(g):
        return (unbroadcast(g * b.data, a.shape) if a.requires_grad else None,
                unbroadcast(g * a.data, b.shape) if b.requires_grad else None)

    return Tensor.from_op(a.data * b.data, (a, b), backward, "mul")


def div(a, b) -> Tensor:
    a, b = _pair(a, b)

    def backward(g):
        ga = unbroadcast(g / b.data, a.shape) if a.requires_grad else None
        gb = unbroadcast(-g * a.data / (b.data * b.data), b.shape) if b.requires_grad else None
        return ga, gb

    return Tensor.from_op(a.data / b.data, (a, b), backward, "div")


def neg(a) -> Tensor:
    a = as_tensor(a)
    return Tensor.from_op(-a.data, (a,), lambda g: (-g,), "neg")


def power(a, exponent: float) -> Tensor:
    a = as_tensor(a)
    if isinstance(exponent, Tensor):
        raise TypeError("power() supports a constant exponent only")
    p = float(exponent)

    def backward(g):
        return (g * p * a.data ** (p - 1),)

    return Tensor.from_op(a.data ** p, (a,), backward, "pow")


def exp(a) -> Tensor:
    a = as_tensor(a)
    out = np.exp(a.data)
    return Tensor.from_op(out, (a,), lambda g: (g * out,), "exp")


def log(a) -> Tensor:
    a = as_tensor(a)
    return Tensor.from_op(np.log(a.data), (a,), lambda g: (g / a.data,), "log")


def tabs(a) -> Tensor:
    a = as_tensor(a)
    return Tensor.from_op(np.abs(a.data), (a,), lambda g: (g * np.sign(a.data),), "abs")


def matmul(a, b) -> Tensor:
    a, b = _pair(a, b)
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"matmul supports 2-D operands, got shapes {a.shape} and {b.shape}")
    if a.shape[1] != b.shape[0]:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not align "
                         f"({a.shape[1]} != {b.shape[0]})")

    def backward(g):
        return (g @ b.data.T if a.requires_grad else None,
                a.data.T @ g if b.requires_grad else None)

    return Tensor.from_op(a.data @ b.data, (a, b), backward, "matmul")


def _norm_axis(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    return tuple(ax % ndim for ax in axes)


def tsum(a, axis=None, keepdims=False) -> Tensor:
    a = as_tensor(a)
    axes = _norm_axis(axis, a.ndim)

    def backward(g):
        if not keepdims:
            g = np.expand_dims(g, axes)
        return (np.broadcast_to(g, a.shape),)

    return Tensor.from_op(a.data.sum(axis=axes, keepdims=keepdims), (a,), backward, "sum")


def mean(a, axis=None, keepdims=False) -> Tensor:
    a = as_tensor(a)
    axes = _norm_axis(axis, a.ndim)
    count = int(np.prod([a.shape[ax] for ax in axes])) if axes else 1

    def backward(g):
        if not keepdims:
            g = np.expand_dims(g, axes)
        return (np.broadcast_to(g / count, a.shape),)

    return Tensor.from_op(a.data.mean(axis=axes, keepdims=keepdims), (a,), backward, "mean")


def reshape(a, shape) -> Tensor:
    a = as_tensor(a)
    return Tensor.from_op(a.data.reshape(shape), (a,), lambda g: (g.reshape(a.shape),), "reshape")


def transpose(a, axes=None) -> Tensor:
    a = as_tensor(a)
    if axes is None:
        axes = tuple(reversed(range(a.ndim)))
    axes = tuple(ax % a.ndim for ax in axes)
    if sorted(axes) != list(range(a.ndim)):
        raise ValueError(f"transpose: axes {axes} are not a permutation of the {a.ndim} axes of shape {a.shape}")
    inverse = tuple(np.argsort(axes))
    return Tensor.from_op(a.data.transpose(axes), (a,), lambda g: (g.transpose(inverse),), "transpose")


def getitem(a, index) -> Tensor:
    a = as_tensor(a)
    if isinstance(index, Tensor):
        index = index.data

    def backward(g):
        out = np.zeros(a.shape, dtype=g.dtype)
        np.add.at(out, index, g)
        return (out,)

    return Tensor.from_op(a.data[index], (a,), backward, "getitem")


def concatenate(tensors: Iterable[Tensor], axis: int = 0) -> Tensor:
    tensors = [as_tensor(t) for t in tensors]
    sizes = np.cumsum([t.shape[axis] for t in tensors])[:-1]

    def backward(g):
        return tuple(np.split(g, sizes, axis=axis))

    return Tensor.from_op(np.concatenate([t.data for t in tensors], axis=axis), tensors,
                          backward, "concatenate")
