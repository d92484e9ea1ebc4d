"""conv2d three ways: a plain-loop reference, float64 gradient checks, and PyTorch parity."""
import numpy as np
import pytest

import cnnlab.functional as F
from cnnlab import Tensor

from conftest import gradcheck, torch_parity

MODES = ("zeros", "reflect", "replicate", "circular")


@pytest.fixture(params=["kept columns", "row bands", "short rows"])
def conv_path(request, monkeypatch):
    """Run a test on every conv2d path: all im2col columns built at once and kept for the
    backward pass (small layers), one output row at a time, rebuilt from the padded input in
    the backward pass (what layers with more than 32 MiB of columns do), and the short-row
    path of small batches (depthwise forward as taps gathered in contiguous runs and a
    matrix-vector product per channel).  The first two take the depthwise kernel's
    multiply-add per tap forward."""
    from cnnlab.functional import conv
    if request.param == "short rows":
        monkeypatch.setattr(conv, "_WIDE_ROW", 1 << 30)
    else:
        monkeypatch.setattr(conv, "_WIDE_ROW", 0)
    if request.param == "row bands":
        monkeypatch.setattr(conv, "_KEEP_BYTES", 0)
        monkeypatch.setattr(conv, "_BLOCK_ELEMENTS", 1)
    return request.param


# --- the plain-loop reference ------------------------------------------------------------
def _source_index(i, size, mode):
    """Which input pixel a padded position ``i`` copies (None: a zero)."""
    if 0 <= i < size:
        return i
    if mode == "zeros":
        return None
    if mode == "replicate":
        return min(max(i, 0), size - 1)
    if mode == "circular":
        return i % size
    # reflect: mirror around the edge pixel, without repeating it
    return -i if i < 0 else 2 * (size - 1) - i


def naive_conv2d(x, w, b=None, stride=(1, 1), padding=((0, 0), (0, 0)), dilation=(1, 1), groups=1,
                 padding_mode="zeros"):
    """Slide each kernel over the (padded) image; at every stop multiply each kernel value with
    the pixel under it and add them up (plus the bias).  Plain loops, no NumPy tricks."""
    N, C, H, W = x.shape
    O, Cg, kh, kw = w.shape
    (top, bottom), (left, right) = padding
    sh, sw = stride
    dh, dw = dilation
    Hp, Wp = H + top + bottom, W + left + right
    padded = np.zeros((N, C, Hp, Wp))
    for n in range(N):
        for c in range(C):
            for r in range(Hp):
                for q in range(Wp):
                    si, sj = _source_index(r - top, H, padding_mode), _source_index(q - left, W, padding_mode)
                    if si is not None and sj is not None:
                        padded[n, c, r, q] = x[n, c, si, sj]
    out_h = (Hp - dh * (kh - 1) - 1) // sh + 1
    out_w = (Wp - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((N, O, out_h, out_w))
    per_group = O // groups
    for n in range(N):
        for o in range(O):
            g = o // per_group
            for oy in range(out_h):
                for ox in range(out_w):
                    total = 0.0 if b is None else b[o]
                    for ci in range(Cg):
                        for ky in range(kh):
                            for kx in range(kw):
                                pixel = padded[n, g * Cg + ci, oy * sh + ky * dh, ox * sw + kx * dw]
                                total += w[o, ci, ky, kx] * pixel
                    out[n, o, oy, ox] = total
    return out


def _pad4(padding):
    if isinstance(padding, int):
        return (padding, padding), (padding, padding)
    if isinstance(padding[0], int):
        return (padding[0], padding[0]), (padding[1], padding[1])
    return tuple(padding[0]), tuple(padding[1])


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


# (N, C, H, W), (O, kh, kw), stride, padding, dilation, groups, bias, padding_mode
CASES = [
    ((1, 1, 3, 3), (1, 2, 2), 1, 0, 1, 1, False, "zeros"),
    ((2, 3, 7, 6), (4, 3, 3), 1, 1, 1, 1, True, "zeros"),
    ((2, 3, 7, 6), (4, 3, 3), 2, 1, 1, 1, True, "zeros"),
    ((1, 2, 9, 8), (3, 3, 2), (2, 3), (1, 2), 1, 1, True, "zeros"),
    ((2, 2, 7, 7), (2, 3, 3), 1, 2, 2, 1, True, "zeros"),
    ((1, 4, 6, 7), (6, 3, 3), 1, 1, 1, 2, True, "zeros"),
    ((2, 4, 5, 5), (4, 3, 3), 1, 1, 1, 4, False, "zeros"),  # depthwise
    ((1, 2, 6, 5), (2, 3, 3), 1, ((0, 2), (1, 0)), 1, 1, True, "zeros"),  # asymmetric
    ((1, 2, 6, 5), (2, 2, 3), (2, 1), ((2, 1), (0, 3)), (1, 2), 1, True, "zeros"),
    ((1, 2, 5, 6), (3, 3, 3), 1, 1, 1, 1, True, "reflect"),
    ((2, 2, 5, 6), (3, 3, 3), 2, (2, 1), 1, 1, True, "replicate"),
    ((1, 2, 5, 6), (2, 3, 3), 1, ((1, 2), (2, 0)), 1, 2, True, "circular"),
    ((1, 2, 5, 4), (2, 3, 3), 1, ((0, 2), (1, 2)), 1, 1, False, "reflect"),
    ((1, 3, 8, 8), (2, 1, 1), 3, 0, 1, 1, True, "zeros"),  # 1x1 kernel, stride > kernel
    ((1, 1, 4, 4), (1, 4, 4), 1, 0, 1, 1, True, "zeros"),  # kernel as large as the image
    ((2, 4, 5, 6), (6, 1, 1), 1, 0, 1, 2, True, "zeros"),  # 1x1 stride 1: the input is the columns
    ((2, 3, 5, 6), (2, 1, 1), 1, 1, 1, 1, True, "reflect"),  # 1x1 on a padded input
    ((2, 3, 7, 6), (6, 3, 3), 2, 1, 1, 3, True, "zeros"),  # depthwise, channel multiplier 2, stride 2
    ((1, 2, 8, 7), (6, 3, 2), 1, (2, 1), (2, 1), 2, False, "replicate"),  # depthwise x3, dilated
]


@pytest.mark.parametrize("case", CASES, ids=[str(i) for i in range(len(CASES))])
def test_conv2d_matches_plain_loop_reference(conv_path, case):
    xshape, (O, kh, kw), stride, padding, dilation, groups, bias, mode = case
    rng = np.random.default_rng(hash(str(case)) % 2**32)
    x = rng.standard_normal(xshape)
    w = rng.standard_normal((O, xshape[1] // groups, kh, kw))
    b = rng.standard_normal(O) if bias else None
    got = F.conv2d(x, w, b, stride, padding, dilation, groups, mode)
    want = naive_conv2d(x, w, b, _pair(stride), _pad4(padding), _pair(dilation), groups, mode)
    assert got.shape == want.shape
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-12)


def _random_config(rng, allow_modes=True):
    groups = int(rng.choice([1, 1, 2, 3]))
    C = groups * int(rng.integers(1, 3))
    O = groups * int(rng.integers(1, 3))
    N = int(rng.integers(1, 3))
    kh, kw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    sh, sw = int(rng.integers(1, 3)), int(rng.integers(1, 4))
    dh, dw = int(rng.integers(1, 3)), int(rng.integers(1, 3))
    H, W = int(rng.integers(3, 8)), int(rng.integers(3, 8))
    mode = str(rng.choice(MODES)) if allow_modes else "zeros"
    limit_h, limit_w = (H - 1, W - 1) if mode == "reflect" else (3, 3)
    pad = ((int(rng.integers(0, min(3, limit_h) + 1)), int(rng.integers(0, min(3, limit_h) + 1))),
           (int(rng.integers(0, min(3, limit_w) + 1)), int(rng.integers(0, min(3, limit_w) + 1))))
    # keep the dilated kernel inside the padded input
    while dh * (kh - 1) + 1 > H + sum(pad[0]):
        kh -= 1
    while dw * (kw - 1) + 1 > W + sum(pad[1]):
        kw -= 1
    bias = bool(rng.integers(0, 2))
    return dict(x=(N, C, H, W), w=(O, C // groups, kh, kw), stride=(sh, sw), padding=pad,
                dilation=(dh, dw), groups=groups, bias=bias, mode=mode)


def test_conv2d_random_configs_match_plain_loop_reference(conv_path):
    rng = np.random.default_rng(7)
    for _ in range(20):
        cfg = _random_config(rng)
        x, w = rng.standard_normal(cfg["x"]), rng.standard_normal(cfg["w"])
        b = rng.standard_normal(cfg["w"][0]) if cfg["bias"] else None
        got = F.conv2d(x, w, b, cfg["stride"], cfg["padding"], cfg["dilation"], cfg["groups"], cfg["mode"])
        want = naive_conv2d(x, w, b, cfg["stride"], cfg["padding"], cfg["dilation"], cfg["groups"], cfg["mode"])
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-12, err_msg=str(cfg))


def test_conv2d_float32_matches_float64_and_keeps_dtype():
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((2, 3, 6, 6)), rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)
    out32 = F.conv2d(x.astype(np.float32), w.astype(np.float32), b.astype(np.float32), padding=1)
    out64 = F.conv2d(x, w, b, padding=1)
    assert out32.dtype == np.float32 and out64.dtype == np.float64
    np.testing.assert_allclose(out32.numpy(), out64.numpy(), rtol=1e-4, atol=1e-4)


def test_conv2d_accepts_layout_views_from_a_previous_conv():
    """The output of conv2d is an NCHW view of (C, H, W, N) memory; feeding it on must not matter."""
    rng = np.random.default_rng(1)
    x, w1, w2 = rng.standard_normal((3, 2, 7, 7)), rng.standard_normal((4, 2, 3, 3)), rng.standard_normal((2, 4, 2, 2))
    h = F.conv2d(x, w1, padding=1)
    out = F.conv2d(h, w2, stride=2)
    ref = naive_conv2d(naive_conv2d(x, w1, padding=((1, 1), (1, 1))), w2, stride=(2, 2))
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-12, atol=1e-12)
    # and a plain non-contiguous NCHW slice as input
    xs = rng.standard_normal((2, 3, 8, 9))[:, ::2, 1:, ::2]
    w3 = rng.standard_normal((4, 2, 3, 3))
    np.testing.assert_allclose(F.conv2d(xs, w3, stride=(1, 2)).numpy(), naive_conv2d(xs, w3, stride=(1, 2)),
                               rtol=1e-12, atol=1e-12)


# --- gradients ------------------------------------------------------------------------------
GRAD_CASES = [
    dict(x=(2, 2, 5, 5), w=(3, 2, 3, 3), stride=1, padding=0),
    dict(x=(1, 2, 6, 5), w=(2, 2, 3, 2), stride=(2, 1), padding=1),
    dict(x=(1, 4, 5, 5), w=(4, 2, 3, 3), groups=2, padding=1),
    dict(x=(1, 3, 4, 4), w=(3, 1, 2, 2), groups=3),
    dict(x=(1, 2, 7, 6), w=(2, 2, 3, 2), dilation=(2, 1), padding=(2, 1)),
    dict(x=(1, 2, 5, 5), w=(2, 2, 3, 3), padding=((0, 2), (1, 0))),
    dict(x=(2, 1, 5, 6), w=(2, 1, 3, 3), padding="same"),
    dict(x=(1, 1, 5, 6), w=(2, 1, 2, 3), padding="same", stride=2),
    dict(x=(1, 2, 5, 4), w=(2, 2, 3, 3), padding="valid"),
] + [dict(x=(1, 2, 5, 4), w=(2, 2, 3, 3), padding=((1, 2), (2, 1)), padding_mode=m, stride=(1, 2))
     for m in MODES] + [dict(x=(2, 2, 4, 5), w=(2, 1, 3, 2), padding=1, padding_mode=m, groups=2)
                        for m in ("reflect", "replicate", "circular")]


@pytest.mark.parametrize("case", GRAD_CASES, ids=[str(i) for i in range(len(GRAD_CASES))])
def test_conv2d_gradcheck_input_weight_bias(conv_path, case):
    case = dict(case)
    rng = np.random.default_rng(3)
    xs, ws = case.pop("x"), case.pop("w")
    x, w, b = rng.standard_normal(xs), rng.standard_normal(ws), rng.standard_normal(ws[0])
    gradcheck(lambda x, w, b: F.conv2d(x, w, b, **case), [x, w, b])
    gradcheck(lambda x, w: F.conv2d(x, w, **case), [x, w])


def test_conv2d_grad_only_where_required(conv_path):
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((1, 2, 4, 4)), requires_grad=True)
    w = Tensor(rng.standard_normal((3, 2, 3, 3)))
    b = Tensor(rng.standard_normal(3))
    F.conv2d(x, w, b).sum().backward()
    assert x.grad is not None and w.grad is None and b.grad is None
    x2 = Tensor(x.numpy())
    w2 = Tensor(w.numpy(), requires_grad=True)
    F.conv2d(x2, w2, b).sum().backward()
    assert x2.grad is None and w2.grad.shape == w2.shape


def test_conv2d_second_backward_through_the_same_graph_is_a_clear_error(conv_path):
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((2, 2, 5, 5)), requires_grad=True)
    w = Tensor(rng.standard_normal((3, 2, 3, 3)), requires_grad=True)
    y = F.conv2d(x, w, padding=1)
    y.backward(np.ones(y.shape))
    with pytest.raises(RuntimeError, match="backward through the (same )?graph a second time"):
        y.backward(np.ones(y.shape))


def test_conv2d_float32_grads_are_float32(conv_path):
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((2, 2, 5, 5)).astype(np.float32), requires_grad=True)
    w = Tensor(rng.standard_normal((3, 2, 3, 3)).astype(np.float32), requires_grad=True)
    b = Tensor(np.zeros(3, np.float32), requires_grad=True)
    F.conv2d(x, w, b, padding=1).sum().backward()
    assert x.grad.dtype == w.grad.dtype == b.grad.dtype == np.float32


# --- PyTorch parity ---------------------------------------------------------------------------
_TORCH_MODE = {"zeros": "constant", "reflect": "reflect", "replicate": "replicate", "circular": "circular"}


def test_conv2d_matches_torch_random_configs(conv_path, torch):
    tF = torch.nn.functional
    rng = np.random.default_rng(2024)
    for trial in range(40):
        cfg = _random_config(rng)
        (t, bo), (l, r) = cfg["padding"]
        x, w = rng.standard_normal(cfg["x"]), rng.standard_normal(cfg["w"])
        inputs = [x, w] + ([rng.standard_normal(cfg["w"][0])] if cfg["bias"] else [])

        def ours(x, w, b=None):
            return F.conv2d(x, w, b, cfg["stride"], cfg["padding"], cfg["dilation"], cfg["groups"], cfg["mode"])

        def theirs(x, w, b=None):
            xp = tF.pad(x, (l, r, t, bo), mode=_TORCH_MODE[cfg["mode"]])
            return tF.conv2d(xp, w, b, cfg["stride"], 0, cfg["dilation"], cfg["groups"])

        torch_parity(torch, ours, theirs, inputs, seed=trial)


@pytest.mark.parametrize("mode", MODES)
def test_conv2d_symmetric_padding_modes_match_torch_layer(torch, mode):
    rng = np.random.default_rng(5)
    layer = torch.nn.Conv2d(4, 6, (3, 2), stride=(2, 1), padding=(2, 1), dilation=(1, 2), groups=2,
                            padding_mode=mode).double()
    x = rng.standard_normal((2, 4, 7, 6))
    torch_parity(torch, lambda x, w, b: F.conv2d(x, w, b, (2, 1), (2, 1), (1, 2), 2, mode),
                 layer._conv_forward, [x, layer.weight.detach().numpy(), layer.bias.detach().numpy()])


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kernel,dilation", [((3, 3), (1, 1)), ((2, 4), (1, 1)), ((3, 2), (2, 3))])
def test_conv2d_same_stride1_matches_torch_same(torch, mode, kernel, dilation):
    rng = np.random.default_rng(11)
    layer = torch.nn.Conv2d(2, 3, kernel, padding="same", dilation=dilation, padding_mode=mode).double()
    x = rng.standard_normal((2, 2, 6, 7))
    out, _ = torch_parity(torch, lambda x, w, b: F.conv2d(x, w, b, 1, "same", dilation, 1, mode),
                          layer._conv_forward,
                          [x, layer.weight.detach().numpy(), layer.bias.detach().numpy()])
    assert out.shape[2:] == x.shape[2:]


def test_conv2d_functional_same_matches_torch(torch):
    rng = np.random.default_rng(12)
    x, w, b = rng.standard_normal((1, 3, 5, 8)), rng.standard_normal((4, 3, 4, 3)), rng.standard_normal(4)
    torch_parity(torch, lambda x, w, b: F.conv2d(x, w, b, padding="same"),
                 lambda x, w, b: torch.nn.functional.conv2d(x, w, b, padding="same"), [x, w, b])


def test_conv2d_float32_close_to_torch(torch):
    rng = np.random.default_rng(13)
    x = rng.standard_normal((2, 3, 9, 9)).astype(np.float32)
    w = rng.standard_normal((5, 3, 3, 3)).astype(np.float32)
    ours = F.conv2d(x, w, stride=2, padding=1).numpy()
    theirs = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w), stride=2, padding=1).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)


# --- 'same' with stride 2 -----------------------------------------------------------------------
@pytest.mark.parametrize("H,W,k", [(7, 8, 3), (8, 7, 2), (5, 5, 4), (6, 9, 5), (1, 3, 3)])
def test_same_padding_stride2_is_ceil_with_extra_pixel_bottom_right(H, W, k):
    rng = np.random.default_rng(H * 10 + W)
    x, w = rng.standard_normal((1, 2, H, W)), rng.standard_normal((3, 2, k, k))
    out = F.conv2d(x, w, stride=2, padding="same")
    assert out.shape == (1, 3, -(-H // 2), -(-W // 2))
    total_h = max((-(-H // 2) - 1) * 2 + k - H, 0)
    total_w = max((-(-W // 2) - 1) * 2 + k - W, 0)
    pads = ((total_h // 2, total_h - total_h // 2), (total_w // 2, total_w - total_w // 2))
    manual = np.pad(x, ((0, 0), (0, 0)) + pads)
    np.testing.assert_allclose(out.numpy(), F.conv2d(manual, w, stride=2).numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(out.numpy(), naive_conv2d(x, w, stride=(2, 2), padding=pads), rtol=1e-12, atol=1e-12)


# --- errors -------------------------------------------------------------------------------------
def test_wrong_channel_count_message_is_pytorchs():
    x = np.zeros((1, 32, 28, 28), np.float32)
    w = np.zeros((32, 3, 3, 3), np.float32)
    with pytest.raises(ValueError, match=r"^Given groups=1, weight of size \[32, 3, 3, 3\], expected "
                                         r"input\[1, 32, 28, 28\] to have 3 channels, but got 32 channels "
                                         r"instead$"):
        F.conv2d(x, w)
    with pytest.raises(ValueError, match=r"Given groups=2, weight of size \[4, 2, 3, 3\], expected "
                                         r"input\[1, 3, 5, 5\] to have 4 channels, but got 3 channels instead"):
        F.conv2d(np.zeros((1, 3, 5, 5)), np.zeros((4, 2, 3, 3)), groups=2)


def test_kernel_larger_than_padded_input():
    with pytest.raises(ValueError, match=r"kernel of size 5 \(dilated span 5\) is larger than the padded "
                                         r"input of size 4 \(input 4 \+ padding 0\+0\)"):
        F.conv2d(np.zeros((1, 1, 4, 4)), np.zeros((1, 1, 5, 5)))
    with pytest.raises(ValueError, match=r"dilated span 5\) is larger than the padded input of size 4"):
        F.conv2d(np.zeros((1, 1, 4, 4)), np.zeros((1, 1, 3, 3)), dilation=2)
    # padding makes it fit
    assert F.conv2d(np.zeros((1, 1, 4, 4)), np.zeros((1, 1, 5, 5)), padding=1).shape == (1, 1, 2, 2)


def test_non_positive_sizes_are_rejected():
    # an empty spatial axis can never give a positive output size
    with pytest.raises(ValueError, match=r"`size` must be an integer >= 1, got 0"):
        F.conv2d(np.zeros((1, 1, 0, 4)), np.zeros((1, 1, 1, 1)))
    with pytest.raises(ValueError, match=r"`stride` must be positive, got 0"):
        F.conv2d(np.zeros((1, 1, 4, 4)), np.zeros((1, 1, 1, 1)), stride=0)
    with pytest.raises(ValueError, match=r"`dilation` must be positive, got \(1, -1\)"):
        F.conv2d(np.zeros((1, 1, 4, 4)), np.zeros((1, 1, 1, 1)), dilation=(1, -1))
    with pytest.raises(ValueError, match=r"padding must be non-negative, got -1"):
        F.conv2d(np.zeros((1, 1, 4, 4)), np.zeros((1, 1, 1, 1)), padding=-1)


def test_bad_padding_string_and_mode():
    x, w = np.zeros((1, 1, 4, 4)), np.zeros((1, 1, 3, 3))
    with pytest.raises(ValueError, match=r"padding string must be 'valid' or 'same', got 'full'"):
        F.conv2d(x, w, padding="full")
    with pytest.raises(ValueError, match=r"padding_mode must be one of \('zeros', 'reflect', 'replicate', "
                                         r"'circular'\), got 'mirror'"):
        F.conv2d(x, w, padding=1, padding_mode="mirror")
    with pytest.raises(TypeError, match=r"`padding` must be an int, \(ph, pw\), \(\(top, bottom\), "
                                        r"\(left, right\)\), 'valid' or 'same', got 1.5"):
        F.conv2d(x, w, padding=1.5)


def test_non_float_and_mismatched_dtypes():
    with pytest.raises(TypeError, match=r"conv2d: expected a floating point input \(float32 or float64\), "
                                        r"got dtype int64"):
        F.conv2d(np.zeros((1, 1, 4, 4), np.int64), np.zeros((1, 1, 3, 3)))
    with pytest.raises(TypeError, match=r"input and weight must have the same dtype, got input float32 and "
                                        r"weight float64"):
        F.conv2d(np.zeros((1, 1, 4, 4), np.float32), np.zeros((1, 1, 3, 3)))


def test_bad_ranks_groups_and_bias():
    with pytest.raises(ValueError, match=r"conv2d: expected a 4-D input \(N, C, H, W\), got shape \(1, 4, 4\)"):
        F.conv2d(np.zeros((1, 4, 4)), np.zeros((1, 1, 3, 3)))
    with pytest.raises(ValueError, match=r"expected weight of shape \(out_channels, in_channels/groups, kH, kW\), "
                                         r"got shape \(1, 3, 3\)"):
        F.conv2d(np.zeros((1, 1, 4, 4)), np.zeros((1, 3, 3)))
    with pytest.raises(ValueError, match=r"`out_channels` \(=3\) must be divisible by `groups` \(=2\)"):
        F.conv2d(np.zeros((1, 4, 4, 4)), np.zeros((3, 2, 3, 3)), groups=2)
    with pytest.raises(ValueError, match=r"`groups` must be a positive int, got 0"):
        F.conv2d(np.zeros((1, 4, 4, 4)), np.zeros((3, 2, 3, 3)), groups=0)
    with pytest.raises(ValueError, match=r"conv2d: expected bias of shape \(3,\), got \(4,\)"):
        F.conv2d(np.zeros((1, 1, 4, 4)), np.zeros((3, 1, 3, 3)), np.zeros(4))
