"""Depthwise and grouped conv2d: the depthwise kernel (a multiply-add per kernel tap) and the
short-row paths against a plain-loop reference, float64 gradient checks and PyTorch parity."""
import numpy as np
import pytest

import cnnlab.functional as F
from cnnlab import Tensor
from cnnlab.functional import conv

from conftest import gradcheck, torch_parity
from test_conv import MODES, naive_conv2d

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

PATHS = {"taps": 0, "short rows": 1 << 30}   # conv._WIDE_ROW for each depthwise forward


@pytest.fixture(params=list(PATHS))
def path(request, monkeypatch):
    monkeypatch.setattr(conv, "_WIDE_ROW", PATHS[request.param])
    return request.param


@st.composite
def grouped_configs(draw, depthwise=True):
    """A random conv2d: depthwise (one input channel per group, multiplier 1-3) or grouped."""
    groups = draw(st.integers(1, 4))
    per_group = 1 if depthwise else draw(st.integers(2, 3))
    mult = draw(st.integers(1, 3))
    N = draw(st.integers(1, 3))
    H, W = draw(st.integers(3, 9)), draw(st.integers(3, 9))
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    mode = draw(st.sampled_from(MODES))
    limit_h, limit_w = (H - 1, W - 1) if mode == "reflect" else (3, 3)
    pad = ((draw(st.integers(0, min(3, limit_h))), draw(st.integers(0, min(3, limit_h)))),
           (draw(st.integers(0, min(3, limit_w))), draw(st.integers(0, min(3, limit_w)))))
    while dilation[0] * (kh - 1) + 1 > H + sum(pad[0]):
        kh -= 1
    while dilation[1] * (kw - 1) + 1 > W + sum(pad[1]):
        kw -= 1
    return dict(x=(N, groups * per_group, H, W), w=(groups * mult, per_group, kh, kw), stride=stride,
                padding=pad, dilation=dilation, groups=groups, bias=draw(st.booleans()), mode=mode,
                seed=draw(st.integers(0, 2 ** 16)))


def _inputs(cfg):
    rng = np.random.default_rng(cfg["seed"])
    x, w = rng.standard_normal(cfg["x"]), rng.standard_normal(cfg["w"])
    return [x, w] + ([rng.standard_normal(cfg["w"][0])] if cfg["bias"] else [])


def _ours(cfg):
    def fn(x, w, b=None):
        return F.conv2d(x, w, b, cfg["stride"], cfg["padding"], cfg["dilation"], cfg["groups"], cfg["mode"])
    return fn


_TORCH_MODE = {"zeros": "constant", "reflect": "reflect", "replicate": "replicate", "circular": "circular"}


def _theirs(torch, cfg):
    (t, bo), (l, r) = cfg["padding"]

    def fn(x, w, b=None):
        xp = torch.nn.functional.pad(x, (l, r, t, bo), mode=_TORCH_MODE[cfg["mode"]])
        return torch.nn.functional.conv2d(xp, w, b, cfg["stride"], 0, cfg["dilation"], cfg["groups"])
    return fn


FEW = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.mark.parametrize("wide", [0, 1 << 30], ids=["taps", "short rows"])
@FEW
@given(cfg=grouped_configs())
def test_depthwise_matches_plain_loop_reference(wide, cfg):
    old = conv._WIDE_ROW
    conv._WIDE_ROW = wide
    try:
        x, w, *b = _inputs(cfg)
        got = _ours(cfg)(x, w, *b).numpy()
    finally:
        conv._WIDE_ROW = old
    want = naive_conv2d(x, w, b[0] if b else None, cfg["stride"], cfg["padding"], cfg["dilation"],
                        cfg["groups"], cfg["mode"])
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("wide", [0, 1 << 30], ids=["taps", "short rows"])
@pytest.mark.parametrize("depthwise", [True, False], ids=["depthwise", "grouped"])
@FEW
@given(data=st.data())
def test_grouped_and_depthwise_match_torch(torch, wide, depthwise, data):
    cfg = data.draw(grouped_configs(depthwise=depthwise))
    old = conv._WIDE_ROW
    conv._WIDE_ROW = wide
    try:
        torch_parity(torch, _ours(cfg), _theirs(torch, cfg), _inputs(cfg), seed=cfg["seed"])
    finally:
        conv._WIDE_ROW = old


@pytest.mark.parametrize("cfg", [
    dict(x=(2, 3, 6, 7), w=(3, 1, 3, 3), stride=1, padding=1, dilation=1, groups=3),
    dict(x=(1, 2, 7, 6), w=(6, 1, 3, 2), stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2),
    dict(x=(2, 2, 5, 5), w=(4, 1, 2, 3), stride=1, padding=((0, 2), (1, 0)), dilation=(2, 1), groups=2),
    dict(x=(1, 3, 6, 6), w=(3, 1, 3, 3), stride=2, padding=1, dilation=1, groups=3, padding_mode="reflect"),
], ids=["3x3", "multiplier 3, stride 2", "asymmetric, dilated", "stride 2, reflect"])
def test_depthwise_gradcheck(path, cfg):
    cfg = dict(cfg)
    xs, ws = cfg.pop("x"), cfg.pop("w")
    rng = np.random.default_rng(3)
    inputs = [rng.standard_normal(xs), rng.standard_normal(ws), rng.standard_normal(ws[0])]
    gradcheck(lambda x, w, b: F.conv2d(x, w, b, **cfg), inputs)


def test_depthwise_backward_runs_no_matrix_products(monkeypatch):
    """The depthwise backward pass is a multiply-add per kernel tap (both gradients, any stride):
    no per-channel matrix products and no kH*kW-times-the-input scatter."""
    def no_gemm(*args, **kwargs):
        raise AssertionError("a matrix product ran in the depthwise backward pass")
    rng = np.random.default_rng(0)
    for stride, wide in ((1, 0), (2, 0), (1, 1 << 30), (2, 1 << 30)):
        monkeypatch.setattr(conv, "_WIDE_ROW", wide)
        x = Tensor(rng.standard_normal((4, 6, 9, 9)).astype(np.float32), requires_grad=True)
        w = Tensor(rng.standard_normal((12, 1, 3, 3)).astype(np.float32), requires_grad=True)
        b = Tensor(np.zeros(12, np.float32), requires_grad=True)
        y = F.conv2d(x, w, b, stride=stride, padding=1, groups=6)
        with monkeypatch.context() as m:
            m.setattr(conv, "_matmul", no_gemm)
            m.setattr(conv, "_scatter_taps", no_gemm)
            y.backward(np.ones(y.shape, np.float32))
        assert x.grad.shape == x.shape and w.grad.shape == w.shape and b.grad.shape == (12,)
        assert x.grad.dtype == w.grad.dtype == np.float32


def test_pointwise_conv_copies_no_columns(monkeypatch):
    """A 1x1 stride-1 convolution multiplies the input itself: no im2col or wide copy."""
    def no_copy(*args, **kwargs):
        raise AssertionError("columns were copied for a 1x1 convolution")
    monkeypatch.setattr(conv, "_im2col", no_copy)
    monkeypatch.setattr(conv._Wide, "columns", no_copy)
    rng = np.random.default_rng(1)
    inputs = [rng.standard_normal((2, 4, 5, 3)), rng.standard_normal((6, 2, 1, 1)), rng.standard_normal(6)]
    want = naive_conv2d(*inputs, groups=2)
    np.testing.assert_allclose(F.conv2d(*inputs, groups=2).numpy(), want, rtol=1e-12, atol=1e-12)
    gradcheck(lambda x, w, b: F.conv2d(x, w, b, groups=2), inputs)


def test_depthwise_backward_twice_says_why(path):
    x = Tensor(np.ones((1, 2, 4, 4)), requires_grad=True)
    w = Tensor(np.ones((2, 1, 3, 3)), requires_grad=True)
    y = F.conv2d(x, w, padding=1, groups=2)
    node_backward = y._backward
    node_backward(np.ones(y.shape))
    with pytest.raises(RuntimeError, match="backward through the same graph a second time"):
        node_backward(np.ones(y.shape))


@pytest.mark.parametrize("block", [1, 700, 1 << 20], ids=["one channel", "a few channels", "default"])
@pytest.mark.parametrize("stride", [1, 2])
def test_depthwise_channel_blocks_match_plain_loop_reference(monkeypatch, block, stride):
    """The short-row forward gathers and multiplies a block of channels at a time; every block
    size (one channel, a partial last block, all channels) gives the plain loop's result."""
    monkeypatch.setattr(conv, "_DEPTHWISE_BLOCK", block)
    monkeypatch.setattr(conv, "_WIDE_ROW", 1 << 30)
    rng = np.random.default_rng(7)
    x, w, b = rng.standard_normal((2, 7, 9, 8)), rng.standard_normal((14, 1, 3, 3)), rng.standard_normal(14)
    got = F.conv2d(x, w, b, stride=stride, padding=1, groups=7).numpy()
    want = naive_conv2d(x, w, b, (stride, stride), ((1, 1), (1, 1)), (1, 1), 7, "zeros")
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
