"""conv_transpose2d and ConvTranspose2d three ways: a scatter-loop reference, float64 gradient
checks, and PyTorch parity (values and gradients of input, weight and bias)."""
import numpy as np
import pytest

import cnnlab.functional as F
from cnnlab import Tensor, nn
from cnnlab.functional.shape import conv_transpose_output_size

from conftest import gradcheck, torch_parity


@pytest.fixture(params=["one band", "row bands"])
def bands(request, monkeypatch):
    """Run a test with all input rows in one band (small layers) and one input row per band
    (what layers whose painted kernels would exceed ~4 MiB do)."""
    if request.param == "row bands":
        from cnnlab.functional import conv
        monkeypatch.setattr(conv, "_BLOCK_ELEMENTS", 1)
    return request.param


def naive_conv_transpose2d(x, w, b=None, stride=(1, 1), padding=(0, 0), output_padding=(0, 0), groups=1,
                           dilation=(1, 1)):
    """Every input pixel, times its kernel, added onto the output where each kernel tap lands;
    then ``padding`` rows/columns cut from each border.  Plain loops, no NumPy tricks."""
    N, C, H, W = x.shape
    _, Og, kh, kw = w.shape
    sh, sw = stride
    dh, dw = dilation
    ph, pw = padding
    out_h = (H - 1) * sh - 2 * ph + dh * (kh - 1) + output_padding[0] + 1
    out_w = (W - 1) * sw - 2 * pw + dw * (kw - 1) + output_padding[1] + 1
    Cg = C // groups
    out = np.zeros((N, Og * groups, out_h, out_w))
    for n in range(N):
        for c in range(C):
            g = c // Cg
            for y in range(H):
                for xx in range(W):
                    for o in range(Og):
                        for i in range(kh):
                            for j in range(kw):
                                r, q = y * sh + i * dh - ph, xx * sw + j * dw - pw
                                if 0 <= r < out_h and 0 <= q < out_w:
                                    out[n, g * Og + o, r, q] += x[n, c, y, xx] * w[c, o, i, j]
    if b is not None:
        out += np.asarray(b).reshape(1, -1, 1, 1)
    return out


def random_config(rng):
    """A random valid configuration: groups, kernel, stride, padding, output_padding, dilation."""
    while True:
        groups = int(rng.integers(1, 4))
        cfg = dict(groups=groups,
                   stride=tuple(int(v) for v in rng.integers(1, 4, 2)),
                   dilation=tuple(int(v) for v in rng.integers(1, 3, 2)),
                   padding=tuple(int(v) for v in rng.integers(0, 3, 2)))
        cfg["output_padding"] = tuple(int(rng.integers(0, max(s, d))) for s, d in zip(cfg["stride"], cfg["dilation"]))
        C, Og = groups * int(rng.integers(1, 3)), int(rng.integers(1, 3))
        kh, kw = (int(v) for v in rng.integers(1, 4, 2))
        N, H, W = int(rng.integers(1, 3)), int(rng.integers(1, 6)), int(rng.integers(1, 6))
        try:
            for size, k, s, p, op, d in zip((H, W), (kh, kw), cfg["stride"], cfg["padding"],
                                            cfg["output_padding"], cfg["dilation"]):
                conv_transpose_output_size(size, k, s, p, op, d)
        except ValueError:
            continue
        x = rng.standard_normal((N, C, H, W))
        w = rng.standard_normal((C, Og, kh, kw))
        b = rng.standard_normal(Og * groups)
        return x, w, b, cfg


# --- the loop reference -------------------------------------------------------------------------
def test_stride2_doubles_the_size_and_paints_each_pixel_times_the_kernel():
    x = np.zeros((1, 1, 2, 2))
    x[0, 0, 1, 0] = 2.0
    w = np.arange(9.0).reshape(1, 1, 3, 3)
    out = F.conv_transpose2d(x, w, stride=2, padding=1, output_padding=1).numpy()
    assert out.shape == (1, 1, 4, 4)
    expected = np.zeros((1, 1, 4, 4))
    # the pixel at (1, 0) lands at (2, 0) (stride 2); the 3x3 kernel centred there, cut at the border
    expected[0, 0, 1:4, 0:2] = 2.0 * w[0, 0, :, 1:3]
    np.testing.assert_allclose(out, expected)


def test_conv_transpose2d_random_configs_match_scatter_loop_reference(bands):
    rng = np.random.default_rng(0)
    for _ in range(25):
        x, w, b, cfg = random_config(rng)
        got = F.conv_transpose2d(x, w, b, **cfg).numpy()
        np.testing.assert_allclose(got, naive_conv_transpose2d(x, w, b, **cfg), atol=1e-12, err_msg=str(cfg))


def test_conv_transpose2d_is_the_adjoint_of_conv2d():
    """<conv2d(y), x> == <y, conv_transpose2d(x)> for the same weight and settings."""
    rng = np.random.default_rng(1)
    w = rng.standard_normal((6, 2, 3, 3))                   # conv2d: 6 <- 4 (groups 2); transposed: 6 -> 4
    y = rng.standard_normal((2, 4, 9, 8))
    x = F.conv2d(y, w, stride=2, padding=1, groups=2).numpy()
    z = rng.standard_normal(x.shape)
    back = F.conv_transpose2d(z, w, stride=2, padding=1, groups=2, output_padding=(0, 1)).numpy()
    assert back.shape == y.shape
    np.testing.assert_allclose(np.sum(x * z), np.sum(y * back), rtol=1e-12)


# --- gradients ---------------------------------------------------------------------------------
@pytest.mark.parametrize("cfg", [dict(), dict(stride=2, padding=1, output_padding=1),
                                 dict(stride=(2, 1), dilation=(1, 2), groups=2, padding=(0, 1))])
def test_conv_transpose2d_gradcheck_input_weight_bias(bands, cfg):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 4, 3, 3))
    w = rng.standard_normal((4, 3, 2, 3))
    b = rng.standard_normal(3 * cfg.get("groups", 1))
    gradcheck(lambda x, w, b: F.conv_transpose2d(x, w, b, **cfg), [x, w, b])


def test_conv_transpose2d_float32_keeps_dtype_and_grads():
    rng = np.random.default_rng(3)
    x = Tensor(rng.standard_normal((2, 3, 4, 4)).astype(np.float32), requires_grad=True)
    w = Tensor(rng.standard_normal((3, 2, 3, 3)).astype(np.float32), requires_grad=True)
    out = F.conv_transpose2d(x, w, stride=2)
    assert out.dtype == np.float32
    out.sum().backward()
    assert x.grad.dtype == np.float32 and w.grad.dtype == np.float32
    ref = F.conv_transpose2d(x.numpy().astype(np.float64), w.numpy().astype(np.float64), stride=2).numpy()
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-5, atol=1e-5)


def test_conv_transpose2d_grad_only_where_required(bands):
    rng = np.random.default_rng(6)
    x = Tensor(rng.standard_normal((2, 2, 3, 3)))
    w = Tensor(rng.standard_normal((2, 3, 3, 3)), requires_grad=True)
    F.conv_transpose2d(x, w, stride=2).sum().backward()
    assert x.grad is None and w.grad.shape == w.shape
    x.requires_grad, w.requires_grad, w.grad = True, False, None
    F.conv_transpose2d(x, w, stride=2).sum().backward()
    assert w.grad is None and x.grad.shape == x.shape


# --- PyTorch parity --------------------------------------------------------------------------------
def test_conv_transpose2d_matches_torch_random_configs(bands, torch):
    rng = np.random.default_rng(4)
    for seed in range(40):
        x, w, b, cfg = random_config(rng)
        args = (cfg["stride"], cfg["padding"], cfg["output_padding"], cfg["groups"], cfg["dilation"])
        torch_parity(torch, lambda x, w, b: F.conv_transpose2d(x, w, b, *args),
                     lambda x, w, b: torch.nn.functional.conv_transpose2d(x, w, b, *args), [x, w, b], seed=seed)


def test_conv_transpose2d_layer_matches_torch_and_has_torchs_parameter_shapes(torch):
    rng = np.random.default_rng(5)
    kwargs = dict(kernel_size=(3, 2), stride=2, padding=(1, 0), output_padding=(1, 0), groups=2, dilation=(1, 2))
    ours, theirs = nn.ConvTranspose2d(4, 6, **kwargs).double(), torch.nn.ConvTranspose2d(4, 6, **kwargs).double()
    assert {k: v.shape for k, v in ours.state_dict().items()} == {
        k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    x = rng.standard_normal((2, 4, 5, 4))
    out, ref = ours(Tensor(x)), theirs(torch.tensor(x))
    np.testing.assert_allclose(out.numpy(), ref.detach().numpy(), atol=1e-12)
    g = rng.standard_normal(out.shape)
    out.backward(g)
    ref.backward(torch.tensor(g))
    np.testing.assert_allclose(ours.weight.grad, theirs.weight.grad.numpy(), atol=1e-11)
    np.testing.assert_allclose(ours.bias.grad, theirs.bias.grad.numpy(), atol=1e-11)
    assert ours.output_shape(x.shape) == out.shape == tuple(ref.shape)
    assert repr(ours) == repr(theirs)


def test_conv_transpose2d_default_init_bounds_follow_pytorch():
    layer = nn.ConvTranspose2d(3, 8, 3, groups=1)
    bound = 1 / np.sqrt(8 * 3 * 3)    # fan_in of the (in, out, kH, kW) weight: out * kH * kW
    assert layer.weight.shape == (3, 8, 3, 3) and layer.weight.dtype == np.float32
    assert np.abs(layer.weight.numpy()).max() <= bound and np.abs(layer.weight.numpy()).max() > 0.8 * bound
    assert np.abs(layer.bias.numpy()).max() <= bound


@pytest.mark.parametrize("shape,kwargs", [((1, 2, 7, 7), dict(kernel_size=4, stride=2, padding=1)),
                                          ((3, 2, 1, 5), dict(kernel_size=(1, 3), stride=3, output_padding=2)),
                                          ((2, 2, 4, 4), dict(kernel_size=2, dilation=3, output_padding=(0, 2)))])
def test_output_shape_equals_actual_shape(shape, kwargs):
    layer = nn.ConvTranspose2d(2, 3, **kwargs)
    assert layer.output_shape(shape) == layer(np.zeros(shape, np.float32)).shape


# --- errors --------------------------------------------------------------------------------------
def test_constructor_errors_name_the_argument_and_value():
    with pytest.raises(ValueError, match=r"`in_channels` \(=3\) must be divisible by `groups` \(=2\)"):
        nn.ConvTranspose2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match=r"`out_channels` \(=3\) must be divisible by `groups` \(=2\)"):
        nn.ConvTranspose2d(4, 3, 3, groups=2)
    with pytest.raises(ValueError, match=r"output padding must be smaller than either stride or dilation"):
        nn.ConvTranspose2d(1, 1, 3, stride=2, output_padding=2)
    with pytest.raises(ValueError, match=r'Only "zeros" padding mode is supported for ConvTranspose2d'):
        nn.ConvTranspose2d(1, 1, 3, padding_mode="reflect")
    with pytest.raises(ValueError, match=r"`out_channels` must be a positive int, got 0"):
        nn.ConvTranspose2d(1, 0, 3)


def test_functional_errors():
    x, w = np.zeros((1, 4, 3, 3)), np.zeros((4, 2, 3, 3))
    with pytest.raises(ValueError, match=r"weight of size \[3, 2, 3, 3\], expected input\[1, 4, 3, 3\] to have 3 "
                                         r"channels, but got 4 channels instead"):
        F.conv_transpose2d(x, np.zeros((3, 2, 3, 3)))
    with pytest.raises(ValueError, match=r"`in_channels` \(=4\) must be divisible by `groups` \(=3\)"):
        F.conv_transpose2d(x, w, groups=3)
    with pytest.raises(ValueError, match=r"computed output size -3 is not positive"):
        F.conv_transpose2d(x, w, padding=4)
    with pytest.raises(ValueError, match=r"expected bias of shape \(4,\), got \(2,\)"):
        F.conv_transpose2d(x, w, np.zeros(2), groups=2)
    with pytest.raises(ValueError, match=r"expected a 4-D input \(N, C, H, W\), got shape \(4, 3, 3\)"):
        F.conv_transpose2d(x[0], w)
    with pytest.raises(TypeError, match=r"input and weight must have the same dtype"):
        F.conv_transpose2d(x.astype(np.float32), w)
    with pytest.raises(ValueError, match=r"expects 4 input channels, got input shape \(1, 3, 3, 3\)"):
        nn.ConvTranspose2d(4, 2, 3).output_shape((1, 3, 3, 3))
