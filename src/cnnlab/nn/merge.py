"""Layers that join or reshape values in a graph model: Add, Sub, Mul, Div, Concat, Reshape, Mean.

A residual block adds its input to its output (:class:`Add`); an Inception-style
block concatenates branches along the channels (:class:`Concat`).  These layers
take several inputs, so they live in a :class:`~cnnlab.nn.Graph` whose nodes
name the values they read.  Each one says its output shape without running, and
refuses shapes that cannot meet with a message naming both.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np

from ..tensor import as_tensor, concatenate
from .module import Module

__all__ = ["Add", "Sub", "Mul", "Div", "Concat", "Reshape", "Mean"]


def _broadcast(layer: Module, shapes: Sequence[tuple]) -> tuple:
    try:
        return tuple(np.broadcast_shapes(*[tuple(s) for s in shapes]))
    except ValueError:
        listed = " and ".join(str(tuple(s)) for s in shapes)
        raise ValueError(f"{type(layer).__name__} cannot combine inputs of shapes {listed}: "
                         "they must be equal (or broadcast)") from None


class _Elementwise(Module):
    """Two inputs combined elementwise (with broadcasting), or one input and a constant."""

    symbol = "?"

    def __init__(self, constant: Optional[float] = None, reverse: bool = False):
        super().__init__()
        if constant is not None:
            if isinstance(constant, bool) or not isinstance(constant, (int, float, np.integer, np.floating)):
                raise TypeError(f"`constant` must be a number, got {constant!r}")
            constant = float(constant)
        self.constant = constant
        self.reverse = bool(reverse)

    @property
    def num_inputs(self) -> int:
        return 2 if self.constant is None else 1

    def _apply(self, a, b):
        raise NotImplementedError

    def forward(self, *inputs):
        if len(inputs) != self.num_inputs:
            raise TypeError(f"{type(self).__name__} takes {self.num_inputs} input(s), got {len(inputs)}")
        if self.constant is None:
            return self._apply(as_tensor(inputs[0]), as_tensor(inputs[1]))
        x = as_tensor(inputs[0])
        return self._apply(self.constant, x) if self.reverse else self._apply(x, self.constant)

    def output_shape(self, *input_shapes):
        if len(input_shapes) != self.num_inputs:
            raise ValueError(f"{type(self).__name__} takes {self.num_inputs} input(s), got {len(input_shapes)}")
        return _broadcast(self, input_shapes)

    def extra_repr(self) -> str:
        if self.constant is None:
            return ""
        return f"constant={self.constant}" + (", reverse=True" if self.reverse else "")


class Add(_Elementwise):
    """``a + b`` (a residual connection), or ``x + constant``.

    Shape:
        - inputs: two tensors of the same shape (or shapes that broadcast)
        - output: their common shape
    """

    symbol = "+"

    def _apply(self, a, b):
        return a + b


class Sub(_Elementwise):
    """``a - b``, or ``x - constant`` (``constant - x`` with ``reverse=True``). Shape: as :class:`Add`."""

    symbol = "-"

    def _apply(self, a, b):
        return a - b


class Mul(_Elementwise):
    """``a * b`` (a gate, an attention mask), or ``x * constant``. Shape: as :class:`Add`."""

    symbol = "*"

    def _apply(self, a, b):
        return a * b


class Div(_Elementwise):
    """``a / b``, or ``x / constant`` (``constant / x`` with ``reverse=True``). Shape: as :class:`Add`."""

    symbol = "/"

    def _apply(self, a, b):
        return a / b


def _check_dim(dim: int, ndim: int) -> int:
    if not -ndim <= dim < ndim:
        raise IndexError(f"Dimension out of range (expected to be in range of [{-ndim}, {ndim - 1}], "
                         f"but got {dim})")
    return dim % ndim


class Concat(Module):
    """Inputs joined along ``dim`` (channels by default), as ``torch.cat``.

    Shape:
        - inputs: any number of tensors equal in every dimension but ``dim``
        - output: the same, with ``dim`` the sum of the inputs' sizes
    """

    def __init__(self, dim: int = 1):
        super().__init__()
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)):
            raise TypeError(f"`dim` must be an int, got {dim!r}")
        self.dim = int(dim)

    def forward(self, *inputs):
        if not inputs:
            raise TypeError("Concat needs at least one input")
        axis = _check_dim(self.dim, as_tensor(inputs[0]).ndim)
        self.output_shape(*[tuple(as_tensor(t).shape) for t in inputs])
        return concatenate(inputs, axis=axis)

    def output_shape(self, *input_shapes):
        if not input_shapes:
            raise ValueError("Concat needs at least one input")
        first = tuple(input_shapes[0])
        axis = _check_dim(self.dim, len(first))
        for shape in input_shapes[1:]:
            shape = tuple(shape)
            if len(shape) != len(first) or any(a != b for i, (a, b) in enumerate(zip(first, shape)) if i != axis):
                raise ValueError(f"Concat along dim {self.dim} needs inputs equal in every other dimension, "
                                 f"got shapes {first} and {shape}")
        return first[:axis] + (sum(int(s[axis]) for s in input_shapes),) + first[axis + 1:]

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class Reshape(Module):
    """Each sample reshaped to ``shape`` (the batch dimension is kept): ``x.view(x.size(0), *shape)``.

    Shape:
        - input ``(N, *)``; output ``(N, *shape)``, one entry of ``shape`` may be -1
    """

    def __init__(self, shape: Sequence[int]):
        super().__init__()
        if isinstance(shape, (int, np.integer)):
            shape = (shape,)
        try:
            shape = tuple(int(s) for s in shape)
        except (TypeError, ValueError):
            raise TypeError(f"`shape` must be a sequence of ints, got {shape!r}") from None
        if sum(s == -1 for s in shape) > 1 or any(s < -1 or s == 0 for s in shape):
            raise ValueError(f"`shape` must hold positive sizes and at most one -1, got {list(shape)}")
        self.shape = shape

    def _target(self, input_shape) -> tuple:
        per_sample = int(np.prod(input_shape[1:], dtype=np.int64))
        known = int(np.prod([s for s in self.shape if s != -1], dtype=np.int64))
        if -1 in self.shape:
            if known == 0 or per_sample % known:
                raise ValueError(f"Reshape cannot view {tuple(input_shape[1:])} per sample as {list(self.shape)}")
            return tuple(per_sample // known if s == -1 else s for s in self.shape)
        if known != per_sample:
            raise ValueError(f"Reshape to {list(self.shape)} needs {known} values per sample, "
                             f"got input of shape {tuple(input_shape)} ({per_sample} per sample)")
        return self.shape

    def forward(self, x):
        x = as_tensor(x)
        return x.reshape((x.shape[0],) + self._target(x.shape))

    def output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        return (input_shape[0],) + self._target(input_shape)

    def extra_repr(self) -> str:
        return f"shape={list(self.shape)}"


class Mean(Module):
    """The mean over ``dim`` (never the batch dimension): ``x.mean(dim, keepdim)``.

    Shape:
        - input ``(N, *)``; output without the dimensions in ``dim`` (kept as 1 with ``keepdim``)
    """

    def __init__(self, dim: Sequence[int], keepdim: bool = False):
        super().__init__()
        dims = (dim,) if isinstance(dim, (int, np.integer)) else tuple(dim)
        try:
            self.dim: Tuple[int, ...] = tuple(int(d) for d in dims)
        except (TypeError, ValueError):
            raise TypeError(f"`dim` must be an int or a sequence of ints, got {dim!r}") from None
        self.keepdim = bool(keepdim)

    def _axes(self, ndim: int) -> Tuple[int, ...]:
        axes = tuple(_check_dim(d, ndim) for d in self.dim)
        if 0 in axes:
            raise ValueError("Mean over the batch dimension (0) mixes images; a model cannot do that")
        return axes

    def forward(self, x):
        x = as_tensor(x)
        return x.mean(axis=self._axes(x.ndim), keepdims=self.keepdim)

    def output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        axes = self._axes(len(input_shape))
        if self.keepdim:
            return tuple(1 if i in axes else s for i, s in enumerate(input_shape))
        return tuple(s for i, s in enumerate(input_shape) if i not in axes)

    def extra_repr(self) -> str:
        return f"dim={list(self.dim)}" + (", keepdim=True" if self.keepdim else "")

