"""The seed articles' worked examples, reproduced number for number."""
import math

import numpy as np
import pytest

import cnnlab.functional as F
from cnnlab import Tensor, nn
from cnnlab.functional import conv_output_size


def test_conv_3x3_input_2x2_kernel_gives_19_25_37_43():
    image = np.array([[0, 1, 2], [3, 4, 5], [6, 7, 8]], dtype=np.float64)
    kernel = np.array([[0, 1], [2, 3]], dtype=np.float64)
    # the articles' arithmetic for the first stop: (0x0) + (1x1) + (3x2) + (4x3)
    assert 0 * 0 + 1 * 1 + 3 * 2 + 4 * 3 == 19
    out = F.conv2d(image[None, None], kernel[None, None])
    assert out.shape == (1, 1, 2, 2)
    np.testing.assert_array_equal(out.numpy()[0, 0], [[19, 25], [37, 43]])
    # the same through a layer, in float32
    layer = nn.Conv2d(1, 1, 2, bias=False)
    layer.load_state_dict({"weight": kernel[None, None]})
    np.testing.assert_array_equal(layer(image[None, None].astype(np.float32)).numpy()[0, 0], [[19, 25], [37, 43]])


def test_softmax_of_2_5_1_8_0_2():
    scores = np.array([2.5, 1.8, 0.2])
    probs = F.softmax(scores).numpy()
    exact = [math.exp(s) / sum(math.exp(t) for t in scores) for s in scores]
    np.testing.assert_allclose(probs, exact, rtol=1e-15)
    # Rounded to 2 decimals as the articles print them: 0.63, 0.31, 0.06.  (One article writes
    # ~0.62 for "cat"; the exact value is e^2.5 / (e^2.5 + e^1.8 + e^0.2) = 0.62624, i.e. 0.63.)
    np.testing.assert_array_equal(np.round(probs, 2), [0.63, 0.31, 0.06])
    assert abs(probs[0] - 0.62624) < 1e-5
    assert math.isclose(probs.sum(), 1.0, rel_tol=1e-15)
    assert int(np.argmax(probs)) == 0


@pytest.mark.parametrize("W,K,S,P,expected", [
    (4, 3, 1, 0, 2),     # a 4x4 image with a 3x3 filter -> a 2x2 feature map
    (28, 5, 1, 2, 28),   # 28 with a 5x5 kernel and padding 2 keeps 28
    (7, 3, 2, 0, 3),     # stride 2
    (32, 3, 2, 1, 16),
    (6, 2, 2, 0, 3),
])
def test_output_size_formula(W, K, S, P, expected):
    assert (W + 2 * P - K) // S + 1 == expected
    assert conv_output_size(W, K, S, P) == expected
    x = np.zeros((1, 1, W, W))
    assert F.conv2d(x, np.zeros((1, 1, K, K)), stride=S, padding=P).shape[2:] == (expected, expected)


def test_output_size_ceil_mode_dilation_asymmetric_padding():
    assert conv_output_size(7, 2, 2) == 3 and conv_output_size(7, 2, 2, ceil_mode=True) == 4
    assert conv_output_size(7, 3, dilation=2) == 3          # a 3-tap kernel with dilation 2 spans 5 pixels
    assert conv_output_size(5, 3, padding=(0, 2)) == 5       # 2 extra pixels on one side only
    out = F.conv2d(np.zeros((1, 1, 5, 5)), np.zeros((1, 1, 3, 3)), padding=((0, 2), (1, 1)))
    assert out.shape == (1, 1, 5, 5)


def test_relu_of_the_neuron_example():
    """Inputs 155 and 60; neuron 1 weights 0.27, 0.2; neuron 2 weights -0.1, -0.4."""
    x = np.array([[155.0, 60.0]])
    w = np.array([[0.27, 0.2], [-0.1, -0.4]])
    z = F.linear(x, w)
    np.testing.assert_allclose(z.numpy(), [[155 * 0.27 + 60 * 0.2, 155 * -0.1 + 60 * -0.4]])
    np.testing.assert_allclose(z.numpy(), [[53.85, -39.5]], rtol=1e-14)
    np.testing.assert_allclose(F.relu(z).numpy(), [[53.85, 0.0]], rtol=1e-14)


@pytest.mark.parametrize("H,W", [(7, 7), (8, 8), (7, 10), (5, 6)])
def test_same_padding_stride_2_gives_ceil_half_with_extra_pixel_bottom_right(H, W):
    rng = np.random.default_rng(H * 100 + W)
    x, k = rng.standard_normal((1, 1, H, W)), rng.standard_normal((1, 1, 3, 3))
    out = F.conv2d(x, k, stride=2, padding="same")
    assert out.shape[2:] == (math.ceil(H / 2), math.ceil(W / 2))
    # total padding (out - 1) * 2 + 3 - size, the odd pixel at the bottom / right
    pads = []
    for size in (H, W):
        total = (math.ceil(size / 2) - 1) * 2 + 3 - size
        pads.append((total // 2, total - total // 2))
    manual = np.pad(x, ((0, 0), (0, 0), pads[0], pads[1]))
    np.testing.assert_allclose(out.numpy(), F.conv2d(manual, k, stride=2).numpy(), rtol=1e-14, atol=1e-14)
    if H % 2 == 0:
        assert pads[0] == (0, 1)   # even height: the single extra row goes to the bottom
    # the layer agrees
    layer = nn.Conv2d(1, 1, 3, stride=2, padding="same", bias=False, dtype=np.float64)
    layer.load_state_dict({"weight": k})
    np.testing.assert_allclose(layer(Tensor(x)).numpy(), out.numpy())
    assert layer.output_shape(x.shape) == out.shape
