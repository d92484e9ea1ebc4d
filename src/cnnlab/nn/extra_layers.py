"""Layers that imported networks (ONNX, PyTorch, Keras) use beyond the classic CNN set.

Padding of any dimension, axis permutations, hard activations, PReLU, erf, and
arithmetic with a constant tensor (a buffer loaded from the state dict, as
a layer's weights are).
"""
from __future__ import annotations

import numpy as np

from ..functional import extra as FX
from ..tensor import as_tensor
from .layers import _real
from .module import Module, Parameter

__all__ = ["Pad", "Permute", "Hardsigmoid", "Hardswish", "PReLU", "Erf", "Elementwise"]


class Pad(Module):
    """Pads dimensions with a constant, a mirror image, the edge value or a wrap-around.

    Args:
        padding: PyTorch's order, last dimension first: ``(left, right)``,
            ``(left, right, top, bottom)``, ... (one pair per padded dimension).
        mode: ``'constant'``, ``'reflect'``, ``'replicate'`` or ``'circular'``.
        value: the fill value of ``'constant'``.

    Shape:
        - input ``(N, C, H, W)`` (any rank), output with each padded dimension grown by its
          two amounts: ``W_out = W + left + right``, ``H_out = H + top + bottom``.
    """

    def __init__(self, padding, mode: str = "constant", value: float = 0.0):
        super().__init__()
        if mode not in FX.PAD_MODES:
            raise ValueError(f"Pad: mode must be one of {FX.PAD_MODES}, got {mode!r}")
        def is_int(v):
            return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))
        if is_int(padding):
            padding = (int(padding),) * 4
        elif isinstance(padding, (tuple, list)) and all(is_int(p) for p in padding):
            padding = tuple(int(p) for p in padding)
        else:
            raise TypeError(f"Pad: padding must be an int or a list of ints, got {padding!r}")
        if len(padding) % 2 or min(padding, default=0) < 0:
            raise ValueError(f"Pad: padding must be an even number of non-negative ints, got {padding}")
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise TypeError(f"Pad: `value` must be a number, got {value!r} ({type(value).__name__})")
        self.padding, self.mode, self.value = padding, mode, float(value)  # -inf allowed (max pooling's pad)

    def forward(self, x):
        return FX.pad(x, self.padding, self.mode, self.value)

    def output_shape(self, input_shape):
        shape = list(input_shape)
        if len(self.padding) // 2 > len(shape):
            raise ValueError(f"{self!r} pads {len(self.padding) // 2} dimensions, input shape {tuple(shape)} "
                             f"has {len(shape)}")
        for k in range(len(self.padding) // 2):
            shape[-1 - k] += self.padding[2 * k] + self.padding[2 * k + 1]
        return tuple(shape)

    def extra_repr(self):
        return f"padding={self.padding}, mode='{self.mode}'" + (f", value={self.value}" if self.value else "")


class Permute(Module):
    """Reorders dimensions, as ``torch.permute`` (ONNX's ``Transpose``), batch included.

    Shape: output dimension ``i`` is input dimension ``dims[i]``.
    """

    def __init__(self, dims):
        super().__init__()
        if not isinstance(dims, (tuple, list)) or not all(
                isinstance(d, (int, np.integer)) and not isinstance(d, (bool, np.bool_)) for d in dims):
            raise TypeError(f"Permute: dims must be a list of ints such as [0, 2, 3, 1], got {dims!r}")
        self.dims = tuple(int(d) for d in dims)
        if sorted(self.dims) != list(range(len(self.dims))):
            raise ValueError(f"Permute: dims must be a permutation of 0..{len(self.dims) - 1}, got {self.dims}")

    def forward(self, x):
        return as_tensor(x).transpose(self.dims)

    def output_shape(self, input_shape):
        if len(input_shape) != len(self.dims):
            raise ValueError(f"{self!r} expects a {len(self.dims)}-D input, got shape {tuple(input_shape)}")
        return tuple(input_shape[d] for d in self.dims)

    def extra_repr(self):
        return f"dims={self.dims}"


class Hardsigmoid(Module):
    """``max(0, min(1, alpha * x + beta))``; PyTorch's slope 1/6 by default (ONNX's is 0.2).

    Shape: unchanged.
    """

    def __init__(self, alpha: float = 1 / 6, beta: float = 0.5):
        super().__init__()
        self.alpha, self.beta = float(_real(alpha, "alpha")), float(_real(beta, "beta"))

    def forward(self, x):
        return FX.hardsigmoid(x, self.alpha, self.beta)

    def extra_repr(self):
        return f"alpha={self.alpha:.6g}, beta={self.beta:.6g}"


class Hardswish(Module):
    """``x * relu6(x + 3) / 6`` (MobileNetV3). Shape: unchanged."""

    def forward(self, x):
        return FX.hardswish(x)


class PReLU(Module):
    """``x if x > 0 else a * x`` with a learned slope ``a``, one, or one per channel.

    Shape: input ``(N, C, *)``, unchanged; ``weight`` is ``(num_parameters,)``.
    """

    def __init__(self, num_parameters: int = 1, init: float = 0.25, dtype=np.float32):
        super().__init__()
        if not isinstance(num_parameters, (int, np.integer)) or num_parameters < 1:
            raise ValueError(f"`num_parameters` must be a positive int, got {num_parameters!r}")
        self.num_parameters, self.init = int(num_parameters), float(_real(init, "init"))
        self.weight = Parameter(np.full(self.num_parameters, init, dtype=dtype))

    def forward(self, x):
        return FX.prelu(x, self.weight)

    def output_shape(self, input_shape):
        if self.num_parameters != 1 and (len(input_shape) < 2 or input_shape[1] != self.num_parameters):
            raise ValueError(f"{self!r} expects {self.num_parameters} channels, got shape {tuple(input_shape)}")
        return tuple(input_shape)

    def extra_repr(self):
        return f"num_parameters={self.num_parameters}"


class Erf(Module):
    """The error function, elementwise (the exact GELU written out). Shape: unchanged."""

    def forward(self, x):
        return FX.erf(x)


_OPS = ("add", "sub", "mul", "div", "pow")


def _power(x, exponent: np.ndarray):
    """``x ** exponent`` for a constant array exponent (broadcasting); gradient with respect to ``x``."""
    from ..tensor import Tensor, unbroadcast
    e = exponent.astype(x.dtype, copy=False)
    out = np.power(x._data, e)
    return Tensor.from_op(out, (x,), lambda g: (unbroadcast(g * e * np.power(x._data, e - 1), x.shape),), "pow")


class Elementwise(Module):
    """Arithmetic between the input and a constant tensor: ``x op c`` (or ``c op x`` with ``reverse``).

    The constant is the buffer ``constant`` (saved and loaded with the weights); it
    broadcasts against the input as NumPy and PyTorch broadcast.

    Args:
        op: ``'add'``, ``'sub'``, ``'mul'``, ``'div'`` or ``'pow'`` (constant exponent only).
        shape: the constant's shape, e.g. ``(1, C, 1, 1)`` or ``()``.
        reverse: compute ``c op x`` instead (``1 - x``, ``2 / x``).

    Shape: ``broadcast(input, shape)``.
    """

    def __init__(self, op: str, shape=(), reverse: bool = False, dtype=np.float32):
        super().__init__()
        if op not in _OPS:
            raise ValueError(f"Elementwise: op must be one of {_OPS}, got {op!r}")
        if op == "pow" and reverse:
            raise ValueError("Elementwise: 'pow' takes a constant exponent only (reverse=False)")
        self.op, self.shape, self.reverse = op, tuple(int(s) for s in shape), bool(reverse)
        self.register_buffer("constant", np.zeros(self.shape, dtype=dtype))

    def forward(self, x):
        c = self.constant
        if self.op == "pow":
            if c.size == 1:
                return as_tensor(x) ** float(c.reshape(()))
            return _power(as_tensor(x), c)
        a, b = (c, as_tensor(x)) if self.reverse else (as_tensor(x), c)
        if self.op == "add":
            return a + b
        if self.op == "sub":
            return a - b
        if self.op == "mul":
            return a * b
        return a / b

    def output_shape(self, input_shape):
        try:
            return tuple(np.broadcast_shapes(tuple(input_shape), self.shape))
        except ValueError:
            raise ValueError(f"{self!r}: a constant of shape {self.shape} does not broadcast with input "
                             f"shape {tuple(input_shape)}") from None

    def extra_repr(self):
        if self.constant.size == 1:
            value = f"{float(self.constant.reshape(())):.6g}"
            return f"{value} {self.op} x" if self.reverse else f"x {self.op} {value}"
        return f"op='{self.op}', shape={self.shape}" + (", reverse=True" if self.reverse else "")
