"""Per-sample normalisation layers (LayerNorm, GroupNorm, InstanceNorm) and Slice.

ConvNeXt normalises with ``LayerNorm``, diffusion and detection models with
``GroupNorm``, style transfer with ``InstanceNorm2d``; ShuffleNetV2 splits its
channels in two with slices.  Signatures and semantics are PyTorch's.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from ..functional import norm as FN
from ..tensor import as_tensor
from .layers import _check_shape, _flag, _positive_int, _real
from .module import Module, Parameter

__all__ = ["LayerNorm", "GroupNorm", "InstanceNorm1d", "InstanceNorm2d", "Slice"]


class LayerNorm(Module):
    """Normalises the last dimensions of each sample, then scales and shifts elementwise.

    ``y = (x - mean) / sqrt(var + eps) * weight + bias`` with mean and (biased) variance over
    the last ``len(normalized_shape)`` dimensions, as ``torch.nn.LayerNorm``.  On an
    ``(N, C, H, W)`` feature map, ``LayerNorm(C)`` needs the channels last
    (``Permute((0, 2, 3, 1))`` before, ``Permute((0, 3, 1, 2))`` after), as ConvNeXt does.

    Shape: input ``(*, *normalized_shape)``, unchanged; weight and bias ``normalized_shape``.
    """

    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True, bias: bool = True,
                 dtype=np.float32):
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, (int, np.integer)) else tuple(normalized_shape)
        if not shape:
            raise ValueError("`normalized_shape` must name at least one dimension, got ()")
        self.normalized_shape = tuple(_positive_int(s, "normalized_shape") for s in shape)
        self.eps = _real(eps, "eps", 0, low_open=True, text="a positive number")
        self.elementwise_affine = _flag(elementwise_affine, "elementwise_affine")
        affine_bias = _flag(bias, "bias") and self.elementwise_affine
        self.weight = Parameter(np.ones(self.normalized_shape, dtype=dtype)) if self.elementwise_affine else None
        self.bias = Parameter(np.zeros(self.normalized_shape, dtype=dtype)) if affine_bias else None

    def forward(self, x):
        return FN.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def output_shape(self, input_shape):
        shape, k = tuple(input_shape), len(self.normalized_shape)
        if len(shape) <= k or shape[len(shape) - k:] != self.normalized_shape:
            raise ValueError(f"{self!r} expects an input of shape (N, ..., {', '.join(map(str, self.normalized_shape))}), "
                             f"got {shape}")
        return shape

    def extra_repr(self):
        return (f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"
                + ("" if self.bias is not None or not self.elementwise_affine else ", bias=False"))


class GroupNorm(Module):
    """Normalises groups of ``num_channels / num_groups`` channels of each image (with their pixels),
    then scales and shifts each channel, as ``torch.nn.GroupNorm``.

    Shape: input ``(N, C, *)``, unchanged; weight and bias ``(C,)``.
    """

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True,
                 dtype=np.float32):
        super().__init__()
        self.num_groups = _positive_int(num_groups, "num_groups")
        self.num_channels = _positive_int(num_channels, "num_channels")
        if self.num_channels % self.num_groups:
            raise ValueError(f"num_channels ({num_channels}) must be divisible by num_groups ({num_groups})")
        self.eps = _real(eps, "eps", 0, low_open=True, text="a positive number")
        self.affine = _flag(affine, "affine")
        self.weight = Parameter(np.ones(self.num_channels, dtype=dtype)) if self.affine else None
        self.bias = Parameter(np.zeros(self.num_channels, dtype=dtype)) if self.affine else None

    def forward(self, x):
        return FN.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)

    def output_shape(self, input_shape):
        shape = tuple(input_shape)
        if len(shape) < 2 or shape[1] != self.num_channels:
            raise ValueError(f"{self!r} expects an input of shape (N, {self.num_channels}, *), got {shape}")
        return shape

    def extra_repr(self):
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"


class _InstanceNorm(Module):
    ndim = 4
    layout = "(N, C, H, W)"

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1, affine: bool = False,
                 track_running_stats: bool = False, dtype=np.float32):
        super().__init__()
        self.num_features = _positive_int(num_features, "num_features")
        self.eps = _real(eps, "eps", 0, low_open=True, text="a positive number")
        self.momentum = momentum
        self.affine = _flag(affine, "affine")
        self.track_running_stats = _flag(track_running_stats, "track_running_stats")
        if self.track_running_stats:
            raise ValueError(f"{type(self).__name__}: track_running_stats=True is not supported; cnnlab's "
                             "instance norms use each image's own statistics in training and evaluation")
        self.weight = Parameter(np.ones(self.num_features, dtype=dtype)) if self.affine else None
        self.bias = Parameter(np.zeros(self.num_features, dtype=dtype)) if self.affine else None

    def forward(self, x):
        shape = getattr(x, "shape", None)
        if shape is None or len(shape) != self.ndim or shape[1] != self.num_features:
            raise ValueError(f"{self!r} expects input of shape {self.layout.replace('C', str(self.num_features))}, "
                             f"got {shape}")
        return FN.instance_norm(x, self.weight, self.bias, self.eps)

    def output_shape(self, input_shape):
        shape = _check_shape(self, input_shape, self.ndim, self.layout)
        if shape[1] != self.num_features:
            raise ValueError(f"{self!r} expects {self.num_features} channels, got shape {shape}")
        return shape

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}, affine={self.affine}"


class InstanceNorm2d(_InstanceNorm):
    """Normalises each channel of each image over its pixels, as ``torch.nn.InstanceNorm2d``
    (``affine=False`` by default; running statistics are not supported).

    Shape: ``(N, C, H, W)``, unchanged.
    """


class InstanceNorm1d(_InstanceNorm):
    """Normalises each channel of each sequence over its length, as ``torch.nn.InstanceNorm1d``.

    Shape: ``(N, C, L)``, unchanged.
    """

    ndim = 3
    layout = "(N, C, L)"


def slice_bounds(size: int, start: int, end: Optional[int], step: int) -> slice:
    """ONNX ``Slice`` bounds for one axis of ``size`` -> the equivalent Python ``slice``.

    Negative ``start``/``end`` count from the end; out-of-range values are clamped as
    ONNX clamps them (``end`` below ``-size`` with a negative step means "through index 0").
    """
    if step == 0:
        raise ValueError("slice step must not be 0")
    start = start + size if start < 0 else start
    if step > 0:
        start = min(max(start, 0), size)
        end = size if end is None else min(max(end + size if end < 0 else end, 0), size)
        return slice(start, end, step)
    start = min(max(start, 0), size - 1)
    end = -1 if end is None else min(max(end + size if end < 0 else end, -1), size - 1)
    return slice(start, None if end == -1 else end, step)


class Slice(Module):
    """``x[:, ..., start:end:step]`` along dimension ``dim`` (never the batch): a channel split,
    a crop, a reversal (negative ``step``).  Bounds follow Python and ONNX: negative values count
    from the end, values out of range are clamped; ``end=None`` goes to the edge.

    Shape: dimension ``dim`` becomes ``len(range(size)[start:end:step])``; the others are unchanged.
    """

    def __init__(self, dim: int, start: int = 0, end: Optional[int] = None, step: int = 1):
        super().__init__()
        for name, value in (("dim", dim), ("start", start), ("step", step)) + ((("end", end),) if end is not None else ()):
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
                raise TypeError(f"Slice: `{name}` must be an int, got {value!r} ({type(value).__name__})")
        if step == 0:
            raise ValueError("Slice: `step` must not be 0")
        self.dim, self.start, self.step = int(dim), int(start), int(step)
        self.end = None if end is None else int(end)

    def _index(self, shape) -> tuple:
        dim = self.dim + len(shape) if self.dim < 0 else self.dim
        if not 1 <= dim < len(shape):
            raise ValueError(f"{self!r}: dim {self.dim} is not a non-batch dimension of an input of shape "
                             f"{tuple(shape)}")
        return (slice(None),) * dim + (slice_bounds(shape[dim], self.start, self.end, self.step),)

    def forward(self, x):
        x = as_tensor(x)
        return x[self._index(x.shape)]

    def output_shape(self, input_shape):
        shape = tuple(input_shape)
        index = self._index(shape)
        dim = len(index) - 1
        return shape[:dim] + (len(range(shape[dim])[index[-1]]),) + shape[dim + 1:]

    def extra_repr(self):
        return f"dim={self.dim}, start={self.start}, end={self.end}" + (f", step={self.step}" if self.step != 1 else "")
