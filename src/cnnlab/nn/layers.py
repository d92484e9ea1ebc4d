"""Layers: each one holds its settings (and parameters) and calls one functional op.

Every layer knows its ``output_shape(input_shape)`` before it runs (computed
with the same :func:`~cnnlab.functional.conv_output_size` rule the op uses),
and prints like its PyTorch counterpart.
"""
from __future__ import annotations

import math

import numpy as np

from .. import functional as F
from ..functional.pool import is_asymmetric_padding
from ..functional.shape import (conv_output_size, conv_padding, conv_transpose_output_size, pair,
                                pool_output_size, positive_pair)
from ..functional.upsample import MODES as _UPSAMPLE_MODES, check_resize_args, output_size as interpolate_size
from ..distributed import current_group
from ..random import get_rng
from ..tensor import Tensor
from .module import Module, Parameter


def _uniform(shape, bound: float, dtype) -> Parameter:
    return Parameter(get_rng().uniform(-bound, bound, size=shape).astype(dtype))


# --- constructor argument checks (Equinox-style messages: "`name` (=value) must be ...") ---------
def _positive_int(value, name: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"`{name}` must be a positive int, got {value!r} ({type(value).__name__})")
    if value < 1:
        raise ValueError(f"`{name}` (={value}) must be a positive int")
    return int(value)


def _flag(value, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"`{name}` must be True or False, got {value!r} ({type(value).__name__})")
    return bool(value)


def _real(value, name: str, low=None, high=None, low_open: bool = False, text: str = "") -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"`{name}` must be a number, got {value!r} ({type(value).__name__})")
    if not math.isfinite(value) or (low is not None and (value <= low if low_open else value < low)) \
            or (high is not None and value > high):
        raise ValueError(f"`{name}` (={value}) must be {text or 'a finite number'}")
    return value


def _dim(value, name: str = "dim") -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"`{name}` must be an int, got {value!r} ({type(value).__name__})")
    return int(value)


def _check_dim(layer, dim: int, input_shape) -> None:
    n = len(tuple(input_shape))
    if not -max(n, 1) <= dim < max(n, 1):
        raise ValueError(f"{type(layer).__name__}(dim={dim}) needs dim in [{-max(n, 1)}, {max(n, 1) - 1}] for a "
                         f"{n}-D input, got shape {tuple(input_shape)}")


def _check_shape(layer: Module, input_shape, ndim: int, what: str) -> tuple:
    shape = tuple(input_shape)
    if len(shape) != ndim:
        raise ValueError(f"{type(layer).__name__} expects a {ndim}-D input {what}, got shape {shape}")
    return shape


# --- convolution and dense -------------------------------------------------------------
class Conv2d(Module):
    """2-D convolution layer: ``out_channels`` kernels slide over the input.

    Weights start as PyTorch's (uniform in +-1/sqrt(fan_in), fan_in = in_channels/groups * kH * kW).

    Shape:
        - input ``(N, C_in, H, W)``, output ``(N, C_out, H_out, W_out)`` with
          ``H_out = floor((H + P_top + P_bottom - dilation*(kH-1) - 1) / stride) + 1``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 dilation=1, groups: int = 1, bias: bool = True, padding_mode: str = "zeros",
                 dtype=np.float32):
        super().__init__()
        in_channels = _positive_int(in_channels, "in_channels")
        out_channels = _positive_int(out_channels, "out_channels")
        groups = _positive_int(groups, "groups")
        bias = _flag(bias, "bias")
        if in_channels % groups:
            raise ValueError(f"`in_channels` (={in_channels}) must be divisible by `groups` (={groups})")
        if out_channels % groups:
            raise ValueError(f"`out_channels` (={out_channels}) must be divisible by `groups` (={groups})")
        if not isinstance(padding_mode, str) or padding_mode not in ("zeros", "reflect", "replicate", "circular"):
            raise ValueError(f"padding_mode must be one of ('zeros', 'reflect', 'replicate', 'circular'), "
                             f"got {padding_mode!r}")
        if isinstance(padding, str) and padding not in ("same", "valid"):
            raise ValueError(f"padding string must be 'valid' or 'same', got {padding!r}")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size = positive_pair(kernel_size, "kernel_size")
        self.stride = positive_pair(stride, "stride")
        self.dilation = positive_pair(dilation, "dilation")
        if isinstance(padding, (list, tuple)) and len(padding) == 2 and any(
                isinstance(p, (list, tuple)) for p in padding):
            if not all(isinstance(p, (list, tuple)) and len(p) == 2 and all(
                    isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 0 for v in p)
                       for p in padding):
                raise ValueError(f"`padding` (={padding!r}) must be an int, a pair of ints, 'same', 'valid' or "
                                 "((top, bottom), (left, right)) of non-negative ints")
            padding = tuple(tuple(int(v) for v in p) for p in padding)
        elif not isinstance(padding, str):
            padding = pair(tuple(padding) if isinstance(padding, list) else padding, "padding")
        conv_padding(padding, (1, 1), self.kernel_size, self.stride, self.dilation)  # validates early
        self.padding = padding
        self.groups, self.padding_mode = int(groups), padding_mode
        fan_in = in_channels // groups * self.kernel_size[0] * self.kernel_size[1]
        bound = 1 / math.sqrt(fan_in)
        self.weight = _uniform((out_channels, in_channels // groups) + self.kernel_size, bound, dtype)
        self.bias = _uniform((out_channels,), bound, dtype) if bias else None

    def forward(self, x):
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation,
                        self.groups, self.padding_mode)

    def resolved_padding(self, height: int, width: int):
        """``((top, bottom), (left, right))`` for an input of this size."""
        return conv_padding(self.padding, (height, width), self.kernel_size, self.stride, self.dilation)

    def output_shape(self, input_shape):
        n, c, h, w = _check_shape(self, input_shape, 4, "(N, C, H, W)")
        if c != self.in_channels:
            raise ValueError(f"{self!r} expects {self.in_channels} input channels, got input shape {tuple(input_shape)}")
        ph, pw = self.resolved_padding(h, w)
        from ..functional._layout import check_padding_fits
        check_padding_fits(self.padding_mode, ph, pw, h, w, "Conv2d")
        return (n, self.out_channels,
                conv_output_size(h, self.kernel_size[0], self.stride[0], ph, self.dilation[0]),
                conv_output_size(w, self.kernel_size[1], self.stride[1], pw, self.dilation[1]))

    def extra_repr(self):
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding not in ((0, 0), "valid"):
            s += f", padding={self.padding!r}" if isinstance(self.padding, str) else f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s


class Linear(Module):
    """Dense (fully connected) layer ``y = x W^T + b``; also reachable as ``Dense``.

    Shape: input ``(*, in_features)``, output ``(*, out_features)``.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, dtype=np.float32):
        super().__init__()
        in_features = _positive_int(in_features, "in_features")
        out_features = _positive_int(out_features, "out_features")
        bias = _flag(bias, "bias")
        self.in_features, self.out_features = int(in_features), int(out_features)
        bound = 1 / math.sqrt(in_features)
        self.weight = _uniform((out_features, in_features), bound, dtype)
        self.bias = _uniform((out_features,), bound, dtype) if bias else None

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)

    def output_shape(self, input_shape):
        shape = tuple(input_shape)
        if not shape or shape[-1] != self.in_features:
            raise ValueError(f"{self!r} expects inputs with {self.in_features} features in the last "
                             f"dimension, got shape {shape}")
        return shape[:-1] + (self.out_features,)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


Dense = Linear


class Flatten(Module):
    """Lines feature maps up into one vector per image. Shape: ``(N, C, H, W) -> (N, C*H*W)``."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x):
        return F.flatten(x, self.start_dim, self.end_dim)

    def output_shape(self, input_shape):
        from ..tensor import flatten_shape  # IndexError for a dim out of range, as PyTorch
        return flatten_shape(tuple(input_shape), self.start_dim, self.end_dim)

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


# --- pooling -----------------------------------------------------------------------------
class _Pool2d(Module):
    """Shared settings of the sliding-window pools. Shape: ``(N, C, H, W) -> (N, C, H_out, W_out)``."""

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
        super().__init__()
        self.kernel_size = positive_pair(kernel_size, "kernel_size")
        self.stride = self.kernel_size if stride is None else positive_pair(stride, "stride")
        if is_asymmetric_padding(padding):  # ((top, bottom), (left, right)), as ONNX's pads
            self.padding = tuple(pair(tuple(p), "padding") for p in padding)
        else:
            self.padding = pair(padding, "padding")
        self.dilation = positive_pair(dilation, "dilation")
        for p, k in zip(self.padding, self.kernel_size):  # PyTorch's rule; ONNX's pads only must not be negative
            if (min(p) < 0) if isinstance(p, tuple) else not 0 <= p <= k // 2:
                raise ValueError(f"`padding` (={padding!r}) must be at least 0 and at most half the kernel size "
                                 f"(kernel_size={self.kernel_size})")
        self.ceil_mode = _flag(ceil_mode, "ceil_mode")

    def output_shape(self, input_shape):
        n, c, h, w = _check_shape(self, input_shape, 4, "(N, C, H, W)")
        if is_asymmetric_padding(self.padding):
            sizes = [conv_output_size(size, k, s, p, d, self.ceil_mode) for size, k, s, p, d in
                     zip((h, w), self.kernel_size, self.stride, self.padding, self.dilation)]
        else:
            sizes = [pool_output_size(size, k, s, p, d, self.ceil_mode) for size, k, s, p, d in
                     zip((h, w), self.kernel_size, self.stride, self.padding, self.dilation)]
        return (n, c, *sizes)

    def extra_repr(self):
        s = f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        return s + (", ceil_mode=True" if self.ceil_mode else "")


class MaxPool2d(_Pool2d):
    """Keeps the largest value of each window, channel by channel (channels never reduced)."""

    def forward(self, x):
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode)


class MinPool2d(_Pool2d):
    """Keeps the smallest value of each window (dark strokes on a light background)."""

    def forward(self, x):
        return F.min_pool2d(x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode)


class AvgPool2d(_Pool2d):
    """Averages each window, channel by channel."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
        super().__init__(kernel_size, stride, padding, 1, ceil_mode)
        self.count_include_pad = _flag(count_include_pad, "count_include_pad")

    def forward(self, x):
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad)

    def extra_repr(self):
        return super().extra_repr() + ("" if self.count_include_pad else ", count_include_pad=False")


class _AdaptivePool2d(Module):
    """Pools to a fixed output size whatever the input size. Shape: ``(N, C, H, W) -> (N, C, oH, oW)``."""

    def __init__(self, output_size):
        super().__init__()
        size = tuple(output_size) if isinstance(output_size, (tuple, list)) else (output_size, output_size)
        if len(size) != 2 or any(v is not None and (isinstance(v, (bool, np.bool_)) or not isinstance(
                v, (int, np.integer)) or v < 1) for v in size):
            raise ValueError(f"output_size must be a positive int or a pair of positive ints (or None), "
                             f"got {output_size!r}")
        self.output_size = size

    def output_shape(self, input_shape):
        n, c, h, w = _check_shape(self, input_shape, 4, "(N, C, H, W)")
        oh, ow = self.output_size
        return (n, c, h if oh is None else oh, w if ow is None else ow)

    def extra_repr(self):
        return f"output_size={self.output_size}"


class AdaptiveAvgPool2d(_AdaptivePool2d):
    def forward(self, x):
        return F.adaptive_avg_pool2d(x, self.output_size)


class AdaptiveMaxPool2d(_AdaptivePool2d):
    def forward(self, x):
        return F.adaptive_max_pool2d(x, self.output_size)


class GlobalAvgPool2d(Module):
    """Average of each whole feature map. Shape: ``(N, C, H, W) -> (N, C)``."""

    def forward(self, x):
        return F.global_avg_pool2d(x)

    def output_shape(self, input_shape):
        n, c, _, _ = _check_shape(self, input_shape, 4, "(N, C, H, W)")
        return (n, c)


class GlobalMaxPool2d(GlobalAvgPool2d):
    """Maximum of each whole feature map. Shape: ``(N, C, H, W) -> (N, C)``."""

    def forward(self, x):
        return F.global_max_pool2d(x)


class FractionalMaxPool2d(Module):
    """Graham's fractional max pooling: pseudo-random window starts, non-integer shrink ratio.

    Shape: ``(N, C, H, W) -> (N, C, oH, oW)``; ``oH = output_size`` or ``floor(H * output_ratio)``.
    """

    def __init__(self, kernel_size, output_size=None, output_ratio=None, rng=None, samples=None):
        super().__init__()
        if (output_size is None) == (output_ratio is None):
            raise ValueError("FractionalMaxPool2d requires specifying exactly one of output_size or "
                             f"output_ratio, got output_size={output_size!r}, output_ratio={output_ratio!r}")
        self.kernel_size = positive_pair(kernel_size, "kernel_size")
        self.output_size = None if output_size is None else positive_pair(output_size, "output_size")
        self.output_ratio = None if output_ratio is None else (
            tuple(output_ratio) if isinstance(output_ratio, (tuple, list)) else (output_ratio, output_ratio))
        if self.output_ratio is not None:
            if len(self.output_ratio) != 2:
                raise ValueError(f"`output_ratio` (={output_ratio!r}) must be a number or a pair in (0, 1)")
            for r in self.output_ratio:
                _real(r, "output_ratio", 0, 1, low_open=True, text="in (0, 1)")
                if r == 1:
                    raise ValueError(f"`output_ratio` (={output_ratio!r}) must be in (0, 1)")
        self.rng, self.samples = rng, samples

    def forward(self, x):
        return F.fractional_max_pool2d(x, self.kernel_size, self.output_size, self.output_ratio,
                                       samples=self.samples,
                                       rng=self.rng if self.rng is not None else get_rng())

    def output_shape(self, input_shape):
        n, c, h, w = _check_shape(self, input_shape, 4, "(N, C, H, W)")
        if self.output_size is not None:
            out = self.output_size
        else:
            out = (int(h * self.output_ratio[0]), int(w * self.output_ratio[1]))
        for axis, size, o, k in (("height", h, out[0], self.kernel_size[0]), ("width", w, out[1], self.kernel_size[1])):
            if o < 1 or o + k - 1 > size:
                raise ValueError(f"{self!r} gives output {axis} {o} with kernel {axis} {k}, which needs an output "
                                 f"of at least 1 and an input {axis} of at least {max(o, 1) + k - 1}; got input "
                                 f"shape {tuple(input_shape)}")
        return (n, c) + tuple(out)

    def extra_repr(self):
        target = (f"output_size={self.output_size}" if self.output_size is not None
                  else f"output_ratio={self.output_ratio}")
        return f"kernel_size={self.kernel_size}, {target}"


# --- activations ----------------------------------------------------------------------
class ReLU(Module):
    """``max(0, x)``. Shape: unchanged."""

    def forward(self, x):
        return F.relu(x)


class LeakyReLU(Module):
    """``x if x > 0 else negative_slope * x``. Shape: unchanged."""

    def __init__(self, negative_slope: float = 0.01):
        super().__init__()
        self.negative_slope = _real(negative_slope, "negative_slope")

    def forward(self, x):
        return F.leaky_relu(x, self.negative_slope)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}"


class Sigmoid(Module):
    """``1 / (1 + e^-x)``. Shape: unchanged."""

    def forward(self, x):
        return F.sigmoid(x)


class Tanh(Module):
    """Hyperbolic tangent. Shape: unchanged."""

    def forward(self, x):
        return F.tanh(x)


class Hardtanh(Module):
    """``x`` clipped to ``[min_val, max_val]``. Shape: unchanged."""

    def __init__(self, min_val: float = -1.0, max_val: float = 1.0):
        super().__init__()
        if max_val <= min_val:
            raise ValueError(f"`max_val` (={max_val}) must be larger than `min_val` (={min_val})")
        self.min_val, self.max_val = min_val, max_val

    def forward(self, x):
        return F.hardtanh(x, self.min_val, self.max_val)

    def extra_repr(self):
        return f"min_val={self.min_val}, max_val={self.max_val}"


class ReLU6(Hardtanh):
    """``min(max(0, x), 6)`` (MobileNet's activation). Shape: unchanged."""

    def __init__(self):
        super().__init__(0.0, 6.0)

    def extra_repr(self):
        return ""


class Softmax(Module):
    """Probabilities along ``dim``. Shape: unchanged."""

    def __init__(self, dim: int = -1):
        super().__init__()
        self.dim = _dim(dim)

    def forward(self, x):
        return F.softmax(x, self.dim)

    def output_shape(self, input_shape):
        _check_dim(self, self.dim, input_shape)
        if len(tuple(input_shape)) >= 2 and self.dim % len(tuple(input_shape)) == 0:  # a batch of images
            raise ValueError(f"{type(self).__name__}(dim={self.dim}) normalises over dim 0, the batch axis: each "
                             "image's scores would depend on the other images of its batch; a classifier's "
                             "softmax runs over the class axis (dim=1 or -1)")
        return tuple(input_shape)

    def extra_repr(self):
        return f"dim={self.dim}"


class LogSoftmax(Softmax):
    """Log-probabilities along ``dim``. Shape: unchanged."""

    def forward(self, x):
        return F.log_softmax(x, self.dim)


class GELU(Module):
    """Gaussian error linear unit. Shape: unchanged."""

    def __init__(self, approximate: str = "none"):
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, x):
        return F.gelu(x, self.approximate)

    def extra_repr(self):
        return f"approximate='{self.approximate}'"


class GLU(Module):
    """Gated linear unit along ``dim``. Shape: that dimension halves."""

    def __init__(self, dim: int = -1):
        super().__init__()
        self.dim = _dim(dim)

    def forward(self, x):
        return F.glu(x, self.dim)

    def output_shape(self, input_shape):
        shape = list(input_shape)
        if not -len(shape) <= self.dim < len(shape):
            raise ValueError(f"GLU(dim={self.dim}) needs dim in [{-len(shape)}, {len(shape) - 1}] for a "
                             f"{len(shape)}-D input, got shape {tuple(input_shape)}")
        if shape[self.dim] % 2:
            raise ValueError(f"GLU halves dimension {self.dim}, which must be even; got shape {tuple(input_shape)}")
        shape[self.dim] //= 2
        return tuple(shape)

    def extra_repr(self):
        return f"dim={self.dim}"


class Identity(Module):
    """Returns its input. Shape: unchanged."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, x):
        return x


# --- regularisation and normalisation ------------------------------------------------
class Dropout(Module):
    """Randomly zeroes elements with probability ``p`` while training. Shape: unchanged."""

    def __init__(self, p: float = 0.5, rng=None):
        super().__init__()
        if isinstance(p, (bool, np.bool_)) or not isinstance(p, (int, float, np.integer, np.floating)):
            raise TypeError(f"`p` must be a number between 0 and 1, got {p!r} ({type(p).__name__})")
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p, self.rng = p, rng

    def forward(self, x):
        group = current_group()  # data-parallel training: masks of the global batch
        return F.dropout(x, self.p, self.training, self.rng if self.rng is not None else get_rng(),
                         batch_slice=None if group is None else group.batch)

    def extra_repr(self):
        return f"p={self.p}"


class _BatchNorm(Module):
    """Shared state of the batch norms: running statistics and momentum as PyTorch."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1, affine: bool = True,
                 track_running_stats: bool = True, dtype=np.float32):
        super().__init__()
        num_features = _positive_int(num_features, "num_features")
        eps = _real(eps, "eps", 0, low_open=True, text="a positive number")
        if momentum is not None:
            momentum = _real(momentum, "momentum", 0, 1, text="None or a number in [0, 1]")
        affine, track_running_stats = _flag(affine, "affine"), _flag(track_running_stats, "track_running_stats")
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        self.weight = Parameter(np.ones(num_features, dtype=dtype)) if affine else None
        self.bias = Parameter(np.zeros(num_features, dtype=dtype)) if affine else None
        if track_running_stats:
            self.register_buffer("running_mean", np.zeros(num_features, dtype=dtype))
            self.register_buffer("running_var", np.ones(num_features, dtype=dtype))
            self.register_buffer("num_batches_tracked", np.zeros((), dtype=np.int64))
        else:
            self.running_mean = self.running_var = None

    def _normalise(self, x):
        use_batch_stats = self.training or not self.track_running_stats
        momentum = self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked[...] += 1
            if momentum is None:  # cumulative moving average, as PyTorch
                momentum = 1.0 / float(self.num_batches_tracked)
        return F.batch_norm(x, self.running_mean if self.track_running_stats else None,
                            self.running_var if self.track_running_stats else None,
                            self.weight, self.bias, use_batch_stats,
                            0.0 if momentum is None else momentum, self.eps,
                            process_group=current_group() if self.training else None)  # data-parallel

    def extra_repr(self):
        s = f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}"
        return s + ("" if self.track_running_stats else ", track_running_stats=False")


class BatchNorm2d(_BatchNorm):
    """Per-channel normalisation with learned scale and shift. Shape: ``(N, C, H, W)``, unchanged."""

    def forward(self, x):
        shape = getattr(x, "shape", None)
        if shape is None or len(shape) != 4 or shape[1] != self.num_features:
            raise ValueError(f"{self!r} expects input of shape (N, {self.num_features}, H, W), got {shape}")
        return self._normalise(x)

    def output_shape(self, input_shape):
        n, c, h, w = _check_shape(self, input_shape, 4, "(N, C, H, W)")
        if c != self.num_features:
            raise ValueError(f"{self!r} expects {self.num_features} channels, got shape {tuple(input_shape)}")
        return tuple(input_shape)


class BatchNorm1d(_BatchNorm):
    """Per-feature normalisation of vectors or sequences, with learned scale and shift.

    In training, each of the ``C`` features is normalised with the mean and
    (biased) variance over the batch (and the length ``L``); the running
    estimates move by ``momentum`` towards them (unbiased variance), and are
    used in evaluation, as in PyTorch.

    Shape: ``(N, C)`` or ``(N, C, L)``, unchanged.
    """

    def forward(self, x):
        shape = getattr(x, "shape", None)
        if shape is None or len(shape) not in (2, 3) or shape[1] != self.num_features:
            raise ValueError(f"{self!r} expects input of shape (N, {self.num_features}) or "
                             f"(N, {self.num_features}, L), got {shape}")
        if len(shape) == 2:
            return self._normalise(x)
        x = x if isinstance(x, Tensor) else Tensor(x)
        return self._normalise(x.reshape(shape + (1,))).reshape(shape)

    def output_shape(self, input_shape):
        shape = tuple(input_shape)
        if len(shape) not in (2, 3) or shape[1] != self.num_features:
            raise ValueError(f"{self!r} expects input of shape (N, {self.num_features}) or "
                             f"(N, {self.num_features}, L), got shape {shape}")
        return shape


class Dropout2d(Dropout):
    """Zeroes whole channels (feature maps) with probability ``p`` while training, scaling the
    kept ones by ``1/(1-p)``; one draw per image and channel.

    Shape: ``(N, C, H, W)``, unchanged.
    """

    def forward(self, x):
        return F.dropout2d(x, self.p, self.training, self.rng if self.rng is not None else get_rng())

    def output_shape(self, input_shape):
        return _check_shape(self, input_shape, 4, "(N, C, H, W)")


# --- transposed convolution and resizing ---------------------------------------------------
class ConvTranspose2d(Module):
    """Transposed convolution: each input pixel paints a weighted copy of the kernel; a
    stride of ``s`` enlarges the image about ``s`` times (decoders, segmentation heads).

    Weights start as PyTorch's: uniform in +-1/sqrt(fan_in) with, for this layer,
    ``fan_in = out_channels/groups * kH * kW`` (the weight is ``(C_in, C_out/groups, kH, kW)``).

    Shape:
        - input ``(N, C_in, H, W)``, output ``(N, C_out, H_out, W_out)`` with
          ``H_out = (H - 1)*stride - 2*padding + dilation*(kH - 1) + output_padding + 1``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 output_padding=0, groups: int = 1, bias: bool = True, dilation=1,
                 padding_mode: str = "zeros", dtype=np.float32):
        super().__init__()
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels), ("groups", groups)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"`{name}` must be a positive int, got {value!r}")
        if in_channels % groups:
            raise ValueError(f"`in_channels` (={in_channels}) must be divisible by `groups` (={groups})")
        if out_channels % groups:
            raise ValueError(f"`out_channels` (={out_channels}) must be divisible by `groups` (={groups})")
        if padding_mode != "zeros":
            raise ValueError(f'Only "zeros" padding mode is supported for ConvTranspose2d, got {padding_mode!r}')
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size = positive_pair(kernel_size, "kernel_size")
        self.stride = positive_pair(stride, "stride")
        self.dilation = positive_pair(dilation, "dilation")
        self.padding = pair(padding, "padding")
        self.output_padding = pair(output_padding, "output_padding")
        if min(self.padding) < 0 or min(self.output_padding) < 0:
            raise ValueError(f"`padding` and `output_padding` must be non-negative, got padding={padding!r}, "
                             f"output_padding={output_padding!r}")
        for op, s, d in zip(self.output_padding, self.stride, self.dilation):
            if op >= s and op >= d:
                raise ValueError(f"output padding must be smaller than either stride or dilation, got "
                                 f"output_padding={self.output_padding}, stride={self.stride}, "
                                 f"dilation={self.dilation}")
        self.groups, self.padding_mode = int(groups), padding_mode
        fan_in = out_channels // groups * self.kernel_size[0] * self.kernel_size[1]
        bound = 1 / math.sqrt(fan_in)
        self.weight = _uniform((in_channels, out_channels // groups) + self.kernel_size, bound, dtype)
        self.bias = _uniform((out_channels,), bound, dtype) if bias else None

    def forward(self, x):
        return F.conv_transpose2d(x, self.weight, self.bias, self.stride, self.padding, self.output_padding,
                                  self.groups, self.dilation)

    def output_shape(self, input_shape):
        n, c, h, w = _check_shape(self, input_shape, 4, "(N, C, H, W)")
        if c != self.in_channels:
            raise ValueError(f"{self!r} expects {self.in_channels} input channels, "
                             f"got input shape {tuple(input_shape)}")
        return (n, self.out_channels) + tuple(
            conv_transpose_output_size(size, k, s, p, op, d) for size, k, s, p, op, d in
            zip((h, w), self.kernel_size, self.stride, self.padding, self.output_padding, self.dilation))

    def extra_repr(self):
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.output_padding != (0, 0):
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        return s + (", bias=False" if self.bias is None else "")


class Upsample(Module):
    """Resizes images to ``size`` or by ``scale_factor`` (:func:`~cnnlab.functional.interpolate`).

    ``mode``: ``'nearest'``, ``'nearest-exact'`` or ``'bilinear'``; ``align_corners``
    (bilinear only) as in PyTorch.

    Shape: ``(N, C, H, W) -> (N, C, H_out, W_out)`` with ``H_out = size[0]`` or
    ``floor(H * scale_factor)``.
    """

    def __init__(self, size=None, scale_factor=None, mode: str = "nearest", align_corners=None,
                 recompute_scale_factor=None):
        super().__init__()
        if mode not in _UPSAMPLE_MODES:
            raise ValueError(f"Upsample: mode must be one of {_UPSAMPLE_MODES}, got {mode!r}")
        self.size = tuple(size) if isinstance(size, (tuple, list)) else size
        self.scale_factor = (tuple(float(_real(f, "scale_factor")) for f in scale_factor)
                             if isinstance(scale_factor, (tuple, list))
                             else float(_real(scale_factor, "scale_factor")) if scale_factor else None)
        self.mode, self.align_corners = mode, align_corners
        self.recompute_scale_factor = recompute_scale_factor
        check_resize_args(self.size, self.scale_factor, recompute_scale_factor)
        if mode != "bilinear" and align_corners is not None:
            raise ValueError("align_corners option can only be set with the interpolating modes: "
                             f"linear | bilinear | bicubic | trilinear, got mode={mode!r}")

    def forward(self, x):
        return F.interpolate(x, self.size, self.scale_factor, self.mode, self.align_corners,
                             self.recompute_scale_factor)

    def output_shape(self, input_shape):
        shape = _check_shape(self, input_shape, 4, "(N, C, H, W)")
        (h, w), _ = interpolate_size(shape, self.size, self.scale_factor, self.recompute_scale_factor)
        return shape[:2] + (h, w)

    def extra_repr(self):
        target = f"scale_factor={self.scale_factor!r}" if self.size is None else f"size={self.size!r}"
        return f"{target}, mode={self.mode!r}"


class UpsamplingNearest2d(Upsample):
    """:class:`Upsample` with ``mode='nearest'``. Shape: ``(N, C, H, W) -> (N, C, H_out, W_out)``."""

    def __init__(self, size=None, scale_factor=None):
        super().__init__(size, scale_factor, mode="nearest")


class UpsamplingBilinear2d(Upsample):
    """:class:`Upsample` with ``mode='bilinear', align_corners=True``.
    Shape: ``(N, C, H, W) -> (N, C, H_out, W_out)``."""

    def __init__(self, size=None, scale_factor=None):
        super().__init__(size, scale_factor, mode="bilinear", align_corners=True)


# --- shapes and padding ------------------------------------------------------------------------
class Unflatten(Module):
    """Splits dimension ``dim`` into ``unflattened_size`` (one entry may be -1), the inverse of
    :class:`Flatten`.

    Shape: ``(*, S, *) -> (*, *unflattened_size, *)`` with ``prod(unflattened_size) = S``;
    e.g. ``Unflatten(1, (16, 7, 7))``: ``(N, 784) -> (N, 16, 7, 7)``.
    """

    def __init__(self, dim: int, unflattened_size):
        super().__init__()
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)):
            raise TypeError(f"`dim` must be an int, got {dim!r}")
        if not isinstance(unflattened_size, (tuple, list)) or not unflattened_size or any(
                isinstance(v, bool) or not isinstance(v, (int, np.integer)) or (v < 1 and v != -1)
                for v in unflattened_size) or list(unflattened_size).count(-1) > 1:
            raise TypeError(f"`unflattened_size` must be a tuple of positive ints (one may be -1), "
                            f"got {unflattened_size!r}")
        self.dim, self.unflattened_size = int(dim), tuple(int(v) for v in unflattened_size)

    def output_shape(self, input_shape):
        shape = tuple(input_shape)
        if not -len(shape) <= self.dim < len(shape):
            raise IndexError(f"Dimension out of range (expected to be in range of [{-len(shape)}, "
                             f"{len(shape) - 1}], but got {self.dim})")
        dim = self.dim % len(shape)
        sizes = list(self.unflattened_size)
        known = math.prod(v for v in sizes if v != -1)
        if -1 in sizes and known and shape[dim] % known == 0:
            sizes[sizes.index(-1)] = shape[dim] // known
        if math.prod(sizes) != shape[dim] or -1 in sizes:
            raise ValueError(f"unflatten: Provided sizes {list(self.unflattened_size)} don't multiply up to the "
                             f"size of dim {self.dim} ({shape[dim]}) in the input tensor of shape {shape}")
        return shape[:dim] + tuple(sizes) + shape[dim + 1:]

    def forward(self, x):
        x = x if isinstance(x, Tensor) else Tensor(x)
        return x.reshape(self.output_shape(x.shape))

    def extra_repr(self):
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"


def _quadruple(padding, name: str = "padding"):
    values = tuple(padding) if isinstance(padding, (tuple, list)) else (padding,) * 4
    if len(values) != 4 or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0
                               for v in values):
        raise ValueError(f"`{name}` must be a non-negative int or (left, right, top, bottom), got {padding!r}")
    return tuple(int(v) for v in values)


class _Pad2d(Module):
    """Adds pixels around each image. Shape: ``(N, C, H, W) -> (N, C, H + top + bottom, W + left + right)``."""

    mode = "constant"

    def __init__(self, padding):
        super().__init__()
        self.padding = _quadruple(padding)

    def forward(self, x):
        return F.pad(x, self.padding, self.mode, getattr(self, "value", None))

    def output_shape(self, input_shape):
        n, c, h, w = _check_shape(self, input_shape, 4, "(N, C, H, W)")
        left, right, top, bottom = self.padding
        return (n, c, h + top + bottom, w + left + right)

    def extra_repr(self):
        return f"{self.padding}"


class ConstantPad2d(_Pad2d):
    """Pads with the constant ``value``; ``padding`` is an int or ``(left, right, top, bottom)``.

    Shape: ``(N, C, H, W) -> (N, C, H + top + bottom, W + left + right)``.
    """

    def __init__(self, padding, value: float):
        super().__init__(padding)
        self.value = float(value)

    def extra_repr(self):
        return f"padding={self.padding}, value={self.value}"


class ZeroPad2d(_Pad2d):
    """Pads with zeros; ``padding`` is an int or ``(left, right, top, bottom)``.

    Shape: ``(N, C, H, W) -> (N, C, H + top + bottom, W + left + right)``.
    """

    value = 0.0


class ReflectionPad2d(_Pad2d):
    """Pads with the mirror image of the border (edge pixel not repeated).

    Shape: ``(N, C, H, W) -> (N, C, H + top + bottom, W + left + right)``.
    """

    mode = "reflect"


class ReplicationPad2d(_Pad2d):
    """Pads by repeating the edge pixels. Shape: ``(N, C, H, W) -> (N, C, H + top + bottom, W + left + right)``."""

    mode = "replicate"
