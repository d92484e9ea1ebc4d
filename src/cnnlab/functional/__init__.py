"""Pure, differentiable ops: ``import cnnlab.functional as F``.

Each op takes Tensors (or ndarrays) and returns a Tensor whose backward rule
is written beside its forward in the op's module.
"""
from .shape import conv_output_size, conv_transpose_output_size
from .conv import conv2d, conv_transpose2d
from .upsample import interpolate, upsample
from .pad import pad
from .pool import (max_pool2d, min_pool2d, avg_pool2d, adaptive_avg_pool2d, adaptive_max_pool2d,
                   global_avg_pool2d, global_max_pool2d, fractional_max_pool2d)
from .activation import (relu, relu6, hardtanh, leaky_relu, sigmoid, silu, tanh, softmax, log_softmax, gelu,
                         glu, identity)
from .loss import cross_entropy, nll_loss, binary_cross_entropy_with_logits, mse_loss
from .basic import flatten, linear, dropout, dropout2d, batch_norm
from .loss import binary_cross_entropy, l1_loss, smooth_l1_loss, huber_loss
from .norm import layer_norm, group_norm, instance_norm
from . import _methods  # noqa: F401  (binds x.relu(), x.mean(), x.max(), x.topk(), ... to Tensor)

__all__ = [
    "conv_output_size", "conv_transpose_output_size", "conv2d", "conv_transpose2d", "interpolate",
    "upsample", "pad",
    "max_pool2d", "min_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "adaptive_max_pool2d",
    "global_avg_pool2d", "global_max_pool2d", "fractional_max_pool2d",
    "relu", "relu6", "hardtanh", "leaky_relu", "sigmoid", "silu", "tanh", "softmax", "log_softmax", "gelu", "glu",
    "identity",
    "cross_entropy", "nll_loss", "binary_cross_entropy_with_logits", "mse_loss",
    "flatten", "linear", "dropout", "dropout2d", "batch_norm",
    "binary_cross_entropy", "l1_loss", "smooth_l1_loss", "huber_loss",
    "layer_norm", "group_norm", "instance_norm",
]
