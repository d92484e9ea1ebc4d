"""The one output-size rule, and the argument normalisation every spatial op shares.

The seed articles give the size of a convolution's output as::

    output = (W + 2P - K) / S + 1

for an input of width W, padding P on each side, a kernel of width K and a
stride S.  Generalised the way PyTorch does it (dilation D spreads the kernel
taps apart, so the kernel covers D*(K-1)+1 pixels; padding may differ between
the two sides; the division is a floor, or a ceiling with ``ceil_mode``)::

    output = floor((W + P_before + P_after - D*(K-1) - 1) / S) + 1

Every op, layer, summary and test in cnnlab computes sizes with
:func:`conv_output_size`.
"""
from __future__ import annotations

from typing import Sequence, Tuple, Union

import numpy as np

IntPair = Union[int, Tuple[int, int]]


def conv_output_size(size: int, kernel_size: int, stride: int = 1, padding=0,
                     dilation: int = 1, ceil_mode: bool = False) -> int:
    """Output length of a sliding window along one axis.

    Args:
        size: input length W.
        kernel_size: window length K.
        stride: step S between windows.
        padding: P added on both sides (an int), or ``(before, after)``.
        dilation: spacing D between window taps.
        ceil_mode: round the division up instead of down; as in PyTorch,
            a last window that would start inside the right padding only is
            dropped.

    Returns:
        ``floor((size + P_before + P_after - D*(K-1) - 1) / S) + 1``.

    Raises:
        ValueError: if an argument is out of range or the output would be empty.

    Example:
        >>> conv_output_size(28, 5, padding=2)   # (28 + 2*2 - 5) / 1 + 1
        28
        >>> conv_output_size(4, 3)               # the articles' 4x4 image, 3x3 filter
        2
    """
    before, after = (padding, padding) if isinstance(padding, int) else tuple(padding)
    for name, value, low in (("size", size, 1), ("kernel_size", kernel_size, 1), ("stride", stride, 1),
                             ("dilation", dilation, 1), ("padding", min(before, after), 0)):
        if int(value) != value or value < low:
            raise ValueError(f"`{name}` must be an integer >= {low}, got {value!r}")
    span = dilation * (kernel_size - 1) + 1
    padded = size + before + after
    if span > padded:
        raise ValueError(f"kernel of size {kernel_size} (dilated span {span}) is larger than the "
                         f"padded input of size {padded} (input {size} + padding {before}+{after})")
    numerator = padded - span
    if ceil_mode:
        out = -(-numerator // stride) + 1
        if (out - 1) * stride >= size + before:  # last window starts in the right padding
            out -= 1
    else:
        out = numerator // stride + 1
    if out < 1:
        raise ValueError(f"computed output size {out} is not positive (input {size}, kernel {kernel_size}, "
                         f"stride {stride}, padding {before}+{after}, dilation {dilation})")
    return int(out)


def conv_transpose_output_size(size: int, kernel_size: int, stride: int = 1, padding: int = 0,
                               output_padding: int = 0, dilation: int = 1) -> int:
    """Output length of a transposed convolution along one axis (PyTorch's ConvTranspose2d rule).

    The inverse of :func:`conv_output_size`: ``(size - 1) * S - 2P + D*(K-1) + output_padding + 1``.
    ``output_padding`` (smaller than the stride or the dilation) picks one of the
    ``S`` input sizes that a strided convolution maps to ``size``.

    Example:
        >>> conv_transpose_output_size(14, 4, stride=2, padding=1)   # doubles 14 -> 28
        28
    """
    for name, value, low in (("size", size, 1), ("kernel_size", kernel_size, 1), ("stride", stride, 1),
                             ("dilation", dilation, 1), ("padding", padding, 0),
                             ("output_padding", output_padding, 0)):
        if int(value) != value or value < low:
            raise ValueError(f"`{name}` must be an integer >= {low}, got {value!r}")
    if output_padding >= stride and output_padding >= dilation:
        raise ValueError(f"output padding must be smaller than either stride or dilation, but got "
                         f"output_padding={output_padding}, stride={stride}, dilation={dilation}")
    out = (size - 1) * stride - 2 * padding + dilation * (kernel_size - 1) + output_padding + 1
    if out < 1:
        raise ValueError(f"computed output size {out} is not positive (input {size}, kernel {kernel_size}, "
                         f"stride {stride}, padding {padding}, output_padding {output_padding}, "
                         f"dilation {dilation})")
    return int(out)


def _is_int(value) -> bool:
    """Python and NumPy integers (anything with ``__index__``), but not bools."""
    return not isinstance(value, (bool, np.bool_)) and hasattr(value, "__index__") and not hasattr(value, "__len__")


def pair(value, name: str = "value") -> Tuple[int, int]:
    """``3 -> (3, 3)``; ``(2, 3) -> (2, 3)``; anything else is a clear error."""
    kind = type(value)  # fast path for what layers pass on every call (exact types: no bools)
    if kind is int:
        return value, value
    if kind is tuple and len(value) == 2 and type(value[0]) is int and type(value[1]) is int:
        return value
    if _is_int(value):
        return int(value), int(value)
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(_is_int(v) for v in value):
        return int(value[0]), int(value[1])
    raise TypeError(f"`{name}` must be an int or a pair of ints, got {value!r}")


def positive_pair(value, name: str) -> Tuple[int, int]:
    out = pair(value, name)
    if min(out) < 1:
        raise ValueError(f"`{name}` must be positive, got {value!r}")
    return out


def same_padding(size: int, kernel_size: int, stride: int = 1, dilation: int = 1) -> Tuple[int, int]:
    """(before, after) padding that makes the output ``ceil(size / stride)`` long.

    The odd pixel goes after (bottom/right), as TensorFlow and ONNX SAME_UPPER do.
    """
    out = -(-size // stride)
    total = max((out - 1) * stride + dilation * (kernel_size - 1) + 1 - size, 0)
    return total // 2, total - total // 2


def conv_padding(padding, size: Tuple[int, int], kernel: Tuple[int, int], stride: Tuple[int, int],
                 dilation: Tuple[int, int]) -> Tuple[Tuple[int, int], Tuple[int, int]]:
    """Normalise a conv ``padding`` argument to ``((top, bottom), (left, right))``.

    Accepts an int, ``(ph, pw)``, ``((top, bottom), (left, right))``, ``'valid'`` or ``'same'``.
    """
    if type(padding) is int and padding >= 0:  # the common cases, checked first
        return (padding, padding), (padding, padding)
    if (type(padding) is tuple and len(padding) == 2 and type(padding[0]) is int
            and type(padding[1]) is int and padding[0] >= 0 and padding[1] >= 0):
        return (padding[0], padding[0]), (padding[1], padding[1])
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0), (0, 0)
        if padding == "same":
            return (same_padding(size[0], kernel[0], stride[0], dilation[0]),
                    same_padding(size[1], kernel[1], stride[1], dilation[1]))
        raise ValueError(f"padding string must be 'valid' or 'same', got {padding!r}")
    if isinstance(padding, Sequence) and len(padding) == 2 and all(
            isinstance(p, Sequence) and not isinstance(p, str) for p in padding):
        (t, b), (l, r) = padding
        result = ((int(t), int(b)), (int(l), int(r)))
    else:
        try:
            ph, pw = pair(padding, "padding")
        except TypeError:
            raise TypeError("`padding` must be an int, (ph, pw), ((top, bottom), (left, right)), "
                            f"'valid' or 'same', got {padding!r}") from None
        result = ((ph, ph), (pw, pw))
    if min(min(result[0]), min(result[1])) < 0:
        raise ValueError(f"padding must be non-negative, got {padding!r}")
    return result


def pool_output_size(size: int, kernel_size: int, stride: int, padding: int, dilation: int = 1,
                     ceil_mode: bool = False) -> int:
    """:func:`conv_output_size` with PyTorch's pooling check that padding <= kernel/2."""
    if padding > kernel_size // 2:
        raise ValueError(f"pad should be at most half of the effective kernel size, "
                         f"got padding={padding} and kernel_size={kernel_size}")
    return conv_output_size(size, kernel_size, stride, padding, dilation, ceil_mode)


def adaptive_windows(in_size: int, out_size: int):
    """Start and end index of each adaptive-pooling window (PyTorch's rule).

    ``start = floor(i * in / out)``, ``end = ceil((i + 1) * in / out)``.
    """
    starts = [(i * in_size) // out_size for i in range(out_size)]
    ends = [-((-(i + 1) * in_size) // out_size) for i in range(out_size)]
    return starts, ends


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


__all__ = ["conv_output_size", "conv_transpose_output_size", "pair", "positive_pair", "same_padding", "conv_padding",
           "pool_output_size", "adaptive_windows", "ceil_div"]
