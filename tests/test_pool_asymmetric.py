"""Pooling with asymmetric padding ``((top, bottom), (left, right))`` (ONNX's ``pads``).

Reference: PyTorch pooling of an explicitly padded input (-inf for max, 0 for
average); without ``count_include_pad`` the divisor is the number of real
pixels, computed by pooling a mask of ones.
"""
from __future__ import annotations

import numpy as np
import pytest

from cnnlab import Tensor, nn
from cnnlab.functional import avg_pool2d, max_pool2d, min_pool2d
from conftest import gradcheck

CASES = [
    # shape, kernel, stride, ((top, bottom), (left, right)), dilation, ceil_mode
    ((2, 3, 7, 9), (3, 3), (2, 2), ((0, 1), (1, 0)), (1, 1), False),
    ((1, 2, 8, 8), (2, 2), (2, 2), ((0, 1), (0, 1)), (1, 1), False),
    ((2, 2, 9, 7), (3, 2), (2, 3), ((2, 0), (0, 1)), (1, 1), True),
    ((1, 3, 10, 11), (3, 3), (1, 2), ((1, 2), (2, 1)), (2, 1), False),
    ((2, 1, 6, 5), (4, 3), (3, 2), ((3, 1), (2, 2)), (1, 1), True),
]


def _torch_reference(torch, x, kernel, stride, pads, dilation, ceil_mode, kind, count_include_pad=True):
    (t, b), (l, r) = pads
    xt = torch.from_numpy(x)
    tf = torch.nn.functional
    if kind == "max":
        padded = tf.pad(xt, (l, r, t, b), value=-float("inf"))
        return tf.max_pool2d(padded, kernel, stride, 0, dilation, ceil_mode).numpy()
    if kind == "min":
        padded = tf.pad(-xt, (l, r, t, b), value=-float("inf"))
        return -tf.max_pool2d(padded, kernel, stride, 0, dilation, ceil_mode).numpy()
    padded = tf.pad(xt, (l, r, t, b), value=0.0)
    sums = tf.avg_pool2d(padded, kernel, stride, 0, ceil_mode, divisor_override=1)
    if count_include_pad:
        ones = torch.ones((1, 1) + padded.shape[2:], dtype=xt.dtype)
    else:
        ones = tf.pad(torch.ones((1, 1) + xt.shape[2:], dtype=xt.dtype), (l, r, t, b), value=0.0)
    # ceil_mode: the part of a window beyond the padded input never counts
    counts = tf.avg_pool2d(ones, kernel, stride, 0, ceil_mode, divisor_override=1)
    return (sums / counts).numpy()


@pytest.mark.parametrize("shape, kernel, stride, pads, dilation, ceil_mode", CASES)
@pytest.mark.parametrize("kind", ["max", "min"])
def test_extreme_pool_asymmetric_matches_torch(torch, shape, kernel, stride, pads, dilation, ceil_mode, kind):
    x = np.random.default_rng(0).standard_normal(shape)
    op = max_pool2d if kind == "max" else min_pool2d
    out = op(Tensor(x), kernel, stride, pads, dilation, ceil_mode)
    np.testing.assert_allclose(out.numpy(), _torch_reference(torch, x, kernel, stride, pads, dilation,
                                                          ceil_mode, kind), rtol=1e-12)


@pytest.mark.parametrize("shape, kernel, stride, pads, dilation, ceil_mode",
                         [c for c in CASES if c[4] == (1, 1)])
@pytest.mark.parametrize("count_include_pad", [True, False])
def test_avg_pool_asymmetric_matches_torch(torch, shape, kernel, stride, pads, dilation, ceil_mode,
                                           count_include_pad):
    x = np.random.default_rng(1).standard_normal(shape)
    out = avg_pool2d(Tensor(x), kernel, stride, pads, ceil_mode, count_include_pad)
    np.testing.assert_allclose(out.numpy(), _torch_reference(torch, x, kernel, stride, pads, dilation, ceil_mode,
                                                          "avg", count_include_pad), rtol=1e-12)


def test_asymmetric_equals_symmetric_when_sides_agree():
    x = np.random.default_rng(2).standard_normal((2, 3, 7, 8))
    for op, args in ((max_pool2d, (3, 2)), (avg_pool2d, (3, 2))):
        a = op(Tensor(x), *args, ((1, 1), (1, 1)))
        b = op(Tensor(x), *args, 1)
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_asymmetric_pool_gradients():
    x = np.random.default_rng(3).standard_normal((1, 2, 6, 5))
    gradcheck(lambda t: max_pool2d(t, 3, 2, ((0, 2), (1, 0)), 1, True), [x])
    gradcheck(lambda t: avg_pool2d(t, 3, 2, ((0, 2), (1, 0)), True, False), [x])
    gradcheck(lambda t: avg_pool2d(t, (2, 3), 1, ((1, 0), (0, 2))), [x])


def test_layers_accept_asymmetric_padding():
    x = np.random.default_rng(4).standard_normal((2, 3, 7, 9)).astype(np.float32)
    for layer in (nn.MaxPool2d(3, 2, ((0, 1), (1, 0))), nn.AvgPool2d(3, 2, ((0, 1), (1, 0)), count_include_pad=False)):
        out = layer(Tensor(x))
        assert layer.padding == ((0, 1), (1, 0))
        assert layer.output_shape(x.shape) == out.shape == (2, 3, 3, 4)


def test_asymmetric_padding_errors():
    x = Tensor(np.zeros((1, 1, 5, 5)))
    with pytest.raises(ValueError, match=r"max_pool2d: height padding \(3, 0\) must be smaller than the dilated "
                                         r"kernel span 3"):
        max_pool2d(x, 3, 1, ((3, 0), (0, 0)))
    with pytest.raises(ValueError, match=r"avg_pool2d: `padding` must be >= 0 on every side, got"):
        avg_pool2d(x, 3, 1, ((0, -1), (0, 0)))
