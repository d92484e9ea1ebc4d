"""Pooling ops: naive-loop references, the seed articles' examples, gradient checks,
PyTorch parity on randomly drawn configurations, error messages and output shapes."""
from __future__ import annotations

import math

import numpy as np
import pytest

from cnnlab import Tensor, no_grad
from cnnlab.functional._layout import to_nchw
from cnnlab.functional.pool import (adaptive_avg_pool2d, adaptive_max_pool2d, avg_pool2d,
                                    fractional_max_pool2d, global_avg_pool2d, global_max_pool2d,
                                    max_pool2d, min_pool2d)
from cnnlab.functional.shape import conv_output_size

from conftest import gradcheck, torch_parity


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------
def distinct(shape, rng, dtype=np.float64):
    """Tie-free input: a random permutation of evenly spaced values."""
    n = int(np.prod(shape))
    return ((rng.permutation(n) - n / 2) * (8.0 / n)).reshape(shape).astype(dtype)


def pair_arg(v):
    """Pass ints where both axes agree, pairs otherwise (both forms get exercised)."""
    return v[0] if v[0] == v[1] else v


def naive_out_size(size, k, s, p, d, ceil_mode):
    span = d * (k - 1) + 1
    if ceil_mode:
        out = math.ceil((size + 2 * p - span) / s) + 1
        if (out - 1) * s >= size + p:
            out -= 1
        return out
    return (size + 2 * p - span) // s + 1


def naive_extreme_pool(x, kernel, stride, padding, dilation, ceil_mode, pick):
    """Plain loops: the highest (pick=max) or lowest (pick=min) value of each window.

    Returns the output and the flat ``h * W + w`` index of the chosen pixel
    (Python's max/min keep the first of equal candidates: row-major order).
    """
    N, C, H, W = x.shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    OH = naive_out_size(H, kh, sh, ph, dh, ceil_mode)
    OW = naive_out_size(W, kw, sw, pw, dw, ceil_mode)
    out = np.zeros((N, C, OH, OW), dtype=x.dtype)
    index = np.zeros((N, C, OH, OW), dtype=np.int64)
    for n in range(N):
        for c in range(C):
            for oh in range(OH):
                for ow in range(OW):
                    window = []
                    for i in range(kh):
                        for j in range(kw):
                            h, w = oh * sh - ph + i * dh, ow * sw - pw + j * dw
                            if 0 <= h < H and 0 <= w < W:
                                window.append((x[n, c, h, w], h * W + w))
                    value, where = pick(window, key=lambda item: item[0])
                    out[n, c, oh, ow], index[n, c, oh, ow] = value, where
    return out, index


def naive_avg_pool(x, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override=None):
    """Plain loops with PyTorch's rules: a window is clipped at the padded edge; the
    divisor counts padding (count_include_pad) or only real pixels."""
    N, C, H, W = x.shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    OH = naive_out_size(H, kh, sh, ph, 1, ceil_mode)
    OW = naive_out_size(W, kw, sw, pw, 1, ceil_mode)
    out = np.zeros((N, C, OH, OW), dtype=x.dtype)
    for n in range(N):
        for c in range(C):
            for oh in range(OH):
                for ow in range(OW):
                    h0, w0 = oh * sh - ph, ow * sw - pw
                    h1, w1 = min(h0 + kh, H + ph), min(w0 + kw, W + pw)
                    with_padding = (h1 - h0) * (w1 - w0)
                    total, real = 0.0, 0
                    for h in range(max(h0, 0), min(h1, H)):
                        for w in range(max(w0, 0), min(w1, W)):
                            total += x[n, c, h, w]
                            real += 1
                    if divisor_override is not None:
                        divisor = divisor_override
                    else:
                        divisor = with_padding if count_include_pad else real
                    out[n, c, oh, ow] = total / divisor
    return out


def naive_adaptive_pool(x, out_h, out_w, reduce):
    N, C, H, W = x.shape
    out = np.zeros((N, C, out_h, out_w), dtype=x.dtype)
    index = np.zeros((N, C, out_h, out_w), dtype=np.int64)
    for n in range(N):
        for c in range(C):
            for oh in range(out_h):
                for ow in range(out_w):
                    h0, h1 = math.floor(oh * H / out_h), math.ceil((oh + 1) * H / out_h)
                    w0, w1 = math.floor(ow * W / out_w), math.ceil((ow + 1) * W / out_w)
                    window = [(x[n, c, h, w], h * W + w) for h in range(h0, h1) for w in range(w0, w1)]
                    if reduce == "max":
                        out[n, c, oh, ow], index[n, c, oh, ow] = max(window, key=lambda item: item[0])
                    else:
                        out[n, c, oh, ow] = sum(v for v, _ in window) / len(window)
    return out, index


def naive_fractional_starts(u, in_size, out_size, k):
    if out_size == 1:
        return [in_size - k]
    alpha = (in_size - k) / (out_size - 1)
    return [int((i + u) * alpha) - int(u * alpha) for i in range(out_size - 1)] + [in_size - k]


def naive_fractional_max_pool(x, kernel, out_size, samples):
    N, C, H, W = x.shape
    (kh, kw), (OH, OW) = kernel, out_size
    out = np.zeros((N, C, OH, OW), dtype=x.dtype)
    index = np.zeros((N, C, OH, OW), dtype=np.int64)
    for n in range(N):
        for c in range(C):
            rows = naive_fractional_starts(float(samples[n, c, 1]), H, OH, kh)   # [..., 1]: height
            cols = naive_fractional_starts(float(samples[n, c, 0]), W, OW, kw)   # [..., 0]: width
            for oh, r in enumerate(rows):
                for ow, q in enumerate(cols):
                    window = [(x[n, c, h, w], h * W + w) for h in range(r, r + kh) for w in range(q, q + kw)]
                    out[n, c, oh, ow], index[n, c, oh, ow] = max(window, key=lambda item: item[0])
    return out, index


def scatter_grad(shape, index, g):
    """Gradient of sum(out * g) when out[n, c, o] = x[n, c].flat[index[n, c, o]]."""
    N, C, H, W = shape
    grad = np.zeros((N, C, H * W))
    for n in range(N):
        for c in range(C):
            for o, where in enumerate(index[n, c].ravel()):
                grad[n, c, where] += g[n, c].ravel()[o]
    return grad.reshape(shape)


def empty_window(size, k, s, p, d, out):
    """True if some window (with dilation) holds no real pixel at all."""
    return any(not any(0 <= o * s - p + i * d < size for i in range(k)) for o in range(out))


def draw_window_config(rng, dilation=True):
    """A random valid sliding-window configuration (odd sizes, stride > 1, padding...)."""
    while True:
        k = tuple(int(v) for v in rng.integers(1, 5, 2))
        s = tuple(int(v) for v in rng.integers(1, 4, 2))
        d = tuple(int(v) for v in rng.integers(1, 3, 2)) if dilation else (1, 1)
        p = tuple(int(rng.integers(0, ki // 2 + 1)) for ki in k)
        ceil_mode = bool(rng.integers(2))
        lows = [max(1, di * (ki - 1) + 1 - 2 * pi) for ki, di, pi in zip(k, d, p)]
        size = tuple(int(rng.integers(low, low + 8)) for low in lows)
        outs = [naive_out_size(*args, ceil_mode) for args in zip(size, k, s, p, d)]
        if any(empty_window(*args) for args in zip(size, k, s, p, d, outs)):
            continue  # PyTorch itself mishandles those (out-of-range indices)
        shape = (int(rng.choice([1, 1, 2, 3])), int(rng.integers(1, 4))) + size
        return dict(shape=shape, kernel=k, stride=s, padding=p, dilation=d, ceil_mode=ceil_mode)


def _call_extreme(op, x, cfg, **extra):
    return op(x, pair_arg(cfg["kernel"]), pair_arg(cfg["stride"]), pair_arg(cfg["padding"]),
              pair_arg(cfg["dilation"]), cfg["ceil_mode"], **extra)


FIXED_WINDOW_CONFIGS = [
    dict(shape=(2, 3, 7, 9), kernel=(3, 3), stride=(2, 2), padding=(1, 1), dilation=(1, 1), ceil_mode=False),
    dict(shape=(1, 2, 9, 7), kernel=(3, 2), stride=(2, 3), padding=(1, 0), dilation=(2, 1), ceil_mode=True),
    dict(shape=(3, 1, 5, 5), kernel=(2, 2), stride=(2, 2), padding=(0, 0), dilation=(1, 1), ceil_mode=True),
    dict(shape=(2, 2, 8, 11), kernel=(4, 3), stride=(3, 2), padding=(2, 1), dilation=(1, 2), ceil_mode=True),
    dict(shape=(1, 1, 6, 6), kernel=(1, 1), stride=(1, 1), padding=(0, 0), dilation=(1, 1), ceil_mode=False),
    dict(shape=(2, 3, 11, 13), kernel=(3, 5), stride=(1, 2), padding=(1, 2), dilation=(2, 2), ceil_mode=False),
]
RANDOM_WINDOW_CONFIGS = [draw_window_config(np.random.default_rng(100 + i)) for i in range(12)]


# ---------------------------------------------------------------------------
# 1. naive references
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("cfg", FIXED_WINDOW_CONFIGS + RANDOM_WINDOW_CONFIGS)
@pytest.mark.parametrize("op,pick", [(max_pool2d, max), (min_pool2d, min)])
def test_max_min_pool_match_naive_loops(cfg, op, pick):
    rng = np.random.default_rng(0)
    x = distinct(cfg["shape"], rng)
    expected, index = naive_extreme_pool(x, cfg["kernel"], cfg["stride"], cfg["padding"],
                                         cfg["dilation"], cfg["ceil_mode"], pick)
    X = Tensor(x, requires_grad=True)
    out, ind = _call_extreme(op, X, cfg, return_indices=True)
    np.testing.assert_array_equal(out.numpy(), expected)
    np.testing.assert_array_equal(ind.numpy(), index)
    assert ind.dtype == np.int64
    g = rng.standard_normal(out.shape)
    out.backward(g)
    np.testing.assert_allclose(X.grad, scatter_grad(x.shape, index, g), rtol=0, atol=1e-12)


@pytest.mark.parametrize("cfg", FIXED_WINDOW_CONFIGS + RANDOM_WINDOW_CONFIGS)
@pytest.mark.parametrize("count_include_pad", [True, False])
def test_avg_pool_matches_naive_loops(cfg, count_include_pad):
    x = np.random.default_rng(1).standard_normal(cfg["shape"])
    args = (cfg["kernel"], cfg["stride"], cfg["padding"], cfg["ceil_mode"], count_include_pad)
    expected = naive_avg_pool(x, *args)
    out = avg_pool2d(x, *(pair_arg(a) if isinstance(a, tuple) else a for a in args))
    np.testing.assert_allclose(out.numpy(), expected, rtol=0, atol=1e-12)
    overridden = avg_pool2d(x, *args, divisor_override=3)
    np.testing.assert_allclose(overridden.numpy(), naive_avg_pool(x, *args, divisor_override=3),
                               rtol=0, atol=1e-12)


def test_avg_pool_ceil_mode_divisor_clips_at_padded_edge():
    # H = 5, kernel 3, stride 2, padding 1, ceil_mode: windows start at -1, 1, 3 and the
    # last one covers rows 3, 4 and the padding row 5 (row 6 lies beyond the padded input).
    x = np.ones((1, 1, 5, 5))
    with_pad = avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=True).numpy()[0, 0]
    real_only = avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False).numpy()[0, 0]
    np.testing.assert_allclose(with_pad[0], [4 / 9, 6 / 9, 4 / 9])
    np.testing.assert_allclose(with_pad[1], [6 / 9, 1.0, 6 / 9])
    np.testing.assert_allclose(real_only, np.ones((3, 3)))


@pytest.mark.parametrize("shape,out_size", [
    ((2, 3, 7, 9), (3, 4)), ((1, 2, 5, 5), (3, 3)), ((2, 1, 4, 6), (2, 3)), ((1, 2, 3, 5), (7, 8)),
    ((2, 2, 10, 7), (1, 1)), ((1, 1, 6, 6), (6, 6)), ((3, 2, 9, 4), (4, 4)), ((1, 1, 1, 5), (3, 2)),
])
def test_adaptive_pools_match_naive_loops(shape, out_size):
    rng = np.random.default_rng(2)
    x = distinct(shape, rng)
    expected_max, index = naive_adaptive_pool(x, *out_size, "max")
    expected_avg, _ = naive_adaptive_pool(x, *out_size, "avg")
    X = Tensor(x, requires_grad=True)
    out, ind = adaptive_max_pool2d(X, out_size, return_indices=True)
    np.testing.assert_array_equal(out.numpy(), expected_max)
    np.testing.assert_array_equal(ind.numpy(), index)
    g = rng.standard_normal(out.shape)
    out.backward(g)
    np.testing.assert_allclose(X.grad, scatter_grad(shape, index, g), rtol=0, atol=1e-12)
    np.testing.assert_allclose(adaptive_avg_pool2d(x, out_size).numpy(), expected_avg, rtol=0, atol=1e-12)


def test_adaptive_output_size_forms():
    x = np.random.default_rng(3).standard_normal((2, 3, 7, 5))
    assert adaptive_avg_pool2d(x, 3).shape == (2, 3, 3, 3)
    assert adaptive_max_pool2d(x, (None, 2)).shape == (2, 3, 7, 2)
    assert adaptive_avg_pool2d(x, [4, None]).shape == (2, 3, 4, 5)
    np.testing.assert_allclose(adaptive_avg_pool2d(x, (None, None)).numpy(), x, atol=1e-15)


def test_global_pools_match_naive_loops():
    rng = np.random.default_rng(4)
    x = distinct((3, 4, 5, 7), rng)
    N, C = x.shape[:2]
    expected_max = np.array([[max(x[n, c].ravel()) for c in range(C)] for n in range(N)])
    expected_avg = np.array([[sum(x[n, c].ravel()) / x[n, c].size for c in range(C)] for n in range(N)])
    X = Tensor(x, requires_grad=True)
    out = global_max_pool2d(X)
    assert out.shape == (N, C)
    np.testing.assert_array_equal(out.numpy(), expected_max)
    g = rng.standard_normal((N, C))
    out.backward(g)
    argmax = np.array([[np.argmax(x[n, c]) for c in range(C)] for n in range(N)])[..., None]
    np.testing.assert_allclose(X.grad, scatter_grad(x.shape, argmax, g[..., None]), atol=1e-12)
    avg = global_avg_pool2d(x)
    assert avg.shape == (N, C)
    np.testing.assert_allclose(avg.numpy(), expected_avg, rtol=0, atol=1e-12)


@pytest.mark.parametrize("batch", [1, 3])
def test_global_average_pooling_by_product_keeps_the_mean(batch):
    """Global average pooling (adaptive to 1x1) sums each channel with a product by a vector of
    ones: it matches the plain loop in float64, stays close in float32 and propagates inf and NaN
    as the mean does (the gradient spreads evenly)."""
    rng = np.random.default_rng(6)
    x = rng.standard_normal((batch, 5, 9, 7))
    want = np.array([[sum(x[n, c].ravel()) / 63 for c in range(5)] for n in range(batch)])[..., None, None]
    X = Tensor(x, requires_grad=True)
    out = adaptive_avg_pool2d(X, 1)
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-12, atol=1e-12)
    out.backward(np.ones(out.shape))
    np.testing.assert_allclose(X.grad, np.full(x.shape, 1 / 63), rtol=1e-12)
    big = rng.standard_normal((batch, 8, 56, 56)).astype(np.float32) + 3
    np.testing.assert_allclose(adaptive_avg_pool2d(big, 1).numpy(),
                               big.astype(np.float64).mean(axis=(2, 3), keepdims=True), rtol=1e-5)
    x[0, 0, 1, 1], x[0, 1, 2, 2], x[0, 2, 0, 0], x[0, 2, 3, 3], x[0, 3, 4, 4] = np.inf, np.nan, np.inf, -np.inf, -np.inf
    with np.errstate(invalid="ignore"):   # inf - inf warns, as in ndarray.sum
        got = adaptive_avg_pool2d(x, 1).numpy()[0, :, 0, 0]
    np.testing.assert_array_equal(got[:4], [np.inf, np.nan, np.nan, -np.inf])
    assert np.isfinite(got[4])


@pytest.mark.parametrize("shape,kernel,out_size", [
    ((2, 3, 9, 11), (2, 2), (6, 7)), ((1, 2, 7, 7), (3, 2), (4, 6)), ((2, 1, 10, 6), (2, 3), (9, 4)),
    ((1, 1, 5, 8), (1, 2), (5, 7)), ((3, 2, 6, 6), (2, 2), (1, 3)), ((1, 2, 13, 9), (3, 3), (5, 4)),
])
def test_fractional_max_pool_matches_naive_loops(shape, kernel, out_size):
    rng = np.random.default_rng(5)
    x = distinct(shape, rng)
    samples = rng.random(shape[:2] + (2,))
    expected, index = naive_fractional_max_pool(x, kernel, out_size, samples)
    X = Tensor(x, requires_grad=True)
    out, ind = fractional_max_pool2d(X, pair_arg(kernel), output_size=pair_arg(out_size),
                                     samples=samples, return_indices=True)
    np.testing.assert_array_equal(out.numpy(), expected)
    np.testing.assert_array_equal(ind.numpy(), index)
    g = rng.standard_normal(out.shape)
    out.backward(g)
    np.testing.assert_allclose(X.grad, scatter_grad(shape, index, g), rtol=0, atol=1e-12)


def test_fractional_max_pool_output_ratio_and_rng():
    x = distinct((2, 3, 10, 9), np.random.default_rng(6))
    out = fractional_max_pool2d(x, 2, output_ratio=0.5, rng=np.random.default_rng(7))
    assert out.shape == (2, 3, 5, 4)                                  # int(10 * .5), int(9 * .5)
    assert fractional_max_pool2d(x, 2, output_ratio=(0.7, 0.6)).shape == (2, 3, 7, 5)
    # Without samples they are drawn as rng.random((N, C, 2)).
    samples = np.random.default_rng(7).random((2, 3, 2))
    np.testing.assert_array_equal(out.numpy(),
                                  fractional_max_pool2d(x, 2, output_size=(5, 4), samples=samples).numpy())
    again = fractional_max_pool2d(x, 2, output_ratio=0.5, rng=np.random.default_rng(7))
    np.testing.assert_array_equal(out.numpy(), again.numpy())


# ---------------------------------------------------------------------------
# 2. the seed articles' examples
# ---------------------------------------------------------------------------
def test_article_average_of_window_is_2_75():
    window = np.array([[[[1.0, 0.0], [4.0, 6.0]]]])
    assert avg_pool2d(window, 2).numpy().item() == pytest.approx(2.75)
    assert global_avg_pool2d(window).numpy().item() == pytest.approx(2.75)
    assert adaptive_avg_pool2d(window, 1).numpy().item() == pytest.approx(2.75)


def test_article_4x4_max_pool_kernel_2_stride_2_keeps_channels():
    # three channels, each a 4x4 map; the pool takes the largest value of each 2x2 quadrant
    base = np.array([[1, 1, 2, 4],
                     [5, 6, 7, 8],
                     [3, 2, 1, 0],
                     [1, 2, 3, 4]], dtype=np.float64)
    x = np.stack([base, -base, base * 10])[None]            # (1, 3, 4, 4)
    out = max_pool2d(x, kernel_size=2, stride=2)
    assert out.shape == (1, 3, 2, 2)                           # channel count unchanged
    np.testing.assert_array_equal(out.numpy()[0, 0], [[6, 8], [3, 4]])
    np.testing.assert_array_equal(out.numpy()[0, 1], [[-1, -2], [-1, 0]])
    np.testing.assert_array_equal(out.numpy()[0, 2], [[60, 80], [30, 40]])
    np.testing.assert_array_equal(min_pool2d(x, 2).numpy()[0, 0], [[1, 2], [1, 0]])


# ---------------------------------------------------------------------------
# 3. float64 central-difference gradient checks
# ---------------------------------------------------------------------------
GRADCHECK_CASES = {
    "max_pool2d": lambda t: max_pool2d(t, 3, 2, 1, 1, True),
    "max_pool2d_dilated": lambda t: max_pool2d(t, (2, 3), (1, 2), (1, 1), (2, 1)),
    "min_pool2d": lambda t: min_pool2d(t, (3, 2), (2, 1), (1, 0), 1, True),
    "avg_pool2d": lambda t: avg_pool2d(t, 3, 2, 1, ceil_mode=True),
    "avg_pool2d_no_pad_count": lambda t: avg_pool2d(t, (3, 2), (2, 1), (1, 1), True, False),
    "avg_pool2d_divisor": lambda t: avg_pool2d(t, 2, 1, divisor_override=3),
    "adaptive_avg_pool2d": lambda t: adaptive_avg_pool2d(t, (3, 4)),
    "adaptive_avg_pool2d_even": lambda t: adaptive_avg_pool2d(t, (5, 3)),
    "adaptive_max_pool2d": lambda t: adaptive_max_pool2d(t, (3, 4)),
    "adaptive_max_pool2d_up": lambda t: adaptive_max_pool2d(t, (7, 8)),
    "global_avg_pool2d": global_avg_pool2d,
    "global_max_pool2d": global_max_pool2d,
    "fractional_max_pool2d": lambda t: fractional_max_pool2d(
        t, 2, output_size=(3, 4), samples=np.array([[[0.3, 0.8], [0.55, 0.1]], [[0.9, 0.45], [0.0, 0.7]]])),
}


@pytest.mark.parametrize("name", sorted(GRADCHECK_CASES))
def test_gradcheck(name):
    x = distinct((2, 2, 5, 6), np.random.default_rng(8))
    gradcheck(GRADCHECK_CASES[name], [x])


# ---------------------------------------------------------------------------
# 4. PyTorch parity on randomly drawn configurations
# ---------------------------------------------------------------------------
N_RANDOM = 40


@pytest.fixture
def torch1(torch):
    """PyTorch on one thread: on a busy machine its thread pool makes tiny ops slow."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield torch
    torch.set_num_threads(threads)


@pytest.mark.usefixtures("torch1")
@pytest.mark.parametrize("mode", ["max", "min"])
def test_torch_parity_max_min_pool(torch, mode):
    F = torch.nn.functional
    rng = np.random.default_rng(10)
    for trial in range(N_RANDOM):
        cfg = draw_window_config(rng)
        x = distinct(cfg["shape"], rng)
        args = (cfg["kernel"], cfg["stride"], cfg["padding"], cfg["dilation"], cfg["ceil_mode"])
        if mode == "max":
            ours = lambda t: _call_extreme(max_pool2d, t, cfg)  # noqa: E731
            theirs = lambda t: F.max_pool2d(t, *args)  # noqa: E731
        else:
            ours = lambda t: _call_extreme(min_pool2d, t, cfg)  # noqa: E731
            theirs = lambda t: -F.max_pool2d(-t, *args)  # noqa: E731
        torch_parity(torch, ours, theirs, [x], seed=trial)
        if mode == "max":
            _, ind = _call_extreme(max_pool2d, x, cfg, return_indices=True)
            _, t_ind = F.max_pool2d(torch.tensor(x), *args, return_indices=True)
            np.testing.assert_array_equal(ind.numpy(), t_ind.numpy(), err_msg=str(cfg))


@pytest.mark.usefixtures("torch1")
def test_torch_parity_avg_pool(torch):
    F = torch.nn.functional
    rng = np.random.default_rng(11)
    for trial in range(N_RANDOM):
        cfg = draw_window_config(rng, dilation=False)
        count_include_pad = bool(rng.integers(2))
        divisor = None if rng.random() < 0.7 else int(rng.integers(1, 6))
        args = (cfg["kernel"], cfg["stride"], cfg["padding"], cfg["ceil_mode"], count_include_pad, divisor)
        x = rng.standard_normal(cfg["shape"])
        torch_parity(torch, lambda t: avg_pool2d(t, *args), lambda t: F.avg_pool2d(t, *args), [x], seed=trial)


def draw_adaptive_config(rng):
    shape = (int(rng.choice([1, 2, 3])), int(rng.integers(1, 4))) + tuple(int(v) for v in rng.integers(1, 13, 2))
    sizes = [int(v) for v in rng.integers(1, 10, 2)]
    if rng.random() < 0.2:
        sizes[int(rng.integers(2))] = None
    output_size = sizes[0] if sizes[0] == sizes[1] and rng.random() < 0.5 else tuple(sizes)
    return shape, output_size


@pytest.mark.usefixtures("torch1")
@pytest.mark.parametrize("mode", ["avg", "max"])
def test_torch_parity_adaptive_pools(torch, mode):
    F = torch.nn.functional
    rng = np.random.default_rng(12)
    for trial in range(N_RANDOM):
        shape, output_size = draw_adaptive_config(rng)
        x = distinct(shape, rng)
        if mode == "avg":
            torch_parity(torch, lambda t: adaptive_avg_pool2d(t, output_size),
                         lambda t: F.adaptive_avg_pool2d(t, output_size), [x], seed=trial)
        else:
            torch_parity(torch, lambda t: adaptive_max_pool2d(t, output_size),
                         lambda t: F.adaptive_max_pool2d(t, output_size), [x], seed=trial)
            _, ind = adaptive_max_pool2d(x, output_size, return_indices=True)
            _, t_ind = F.adaptive_max_pool2d(torch.tensor(x), output_size, return_indices=True)
            np.testing.assert_array_equal(ind.numpy(), t_ind.numpy(), err_msg=f"{shape} -> {output_size}")


@pytest.mark.usefixtures("torch1")
def test_torch_parity_global_pools(torch):
    rng = np.random.default_rng(13)
    for trial, shape in enumerate([(1, 1, 1, 1), (2, 3, 5, 7), (1, 4, 6, 6), (3, 2, 1, 9)]):
        x = distinct(shape, rng)
        torch_parity(torch, global_avg_pool2d, lambda t: t.mean(dim=(2, 3)), [x], seed=trial)
        torch_parity(torch, global_max_pool2d, lambda t: torch.nn.functional.adaptive_max_pool2d(t, 1)
                     .flatten(1), [x], seed=trial)


def draw_fractional_config(rng):
    while True:
        kernel = tuple(int(v) for v in rng.integers(1, 4, 2))
        size = tuple(int(k + rng.integers(0, 10)) for k in kernel)
        shape = (int(rng.choice([1, 2, 3])), int(rng.integers(1, 4))) + size
        if rng.random() < 0.5:
            out = tuple(int(rng.integers(1, s - k + 2)) for s, k in zip(size, kernel))
            return shape, kernel, dict(output_size=out), out
        ratio = tuple(float(rng.uniform(0.3, 0.95)) for _ in range(2))
        out = tuple(int(s * r) for s, r in zip(size, ratio))
        if min(out) >= 1 and all(o + k - 1 <= s for o, k, s in zip(out, kernel, size)):
            return shape, kernel, dict(output_ratio=ratio), out


@pytest.mark.usefixtures("torch1")
def test_torch_parity_fractional_max_pool(torch):
    F = torch.nn.functional
    rng = np.random.default_rng(14)
    for trial in range(N_RANDOM):
        shape, kernel, size_arg, out = draw_fractional_config(rng)
        x = distinct(shape, rng)
        samples = rng.random(shape[:2] + (2,))
        cn_out, _ = torch_parity(
            torch, lambda t: fractional_max_pool2d(t, kernel, samples=samples, **size_arg),
            lambda t: F.fractional_max_pool2d(t, kernel, _random_samples=torch.tensor(samples), **size_arg),
            [x], seed=trial)
        assert cn_out.shape == shape[:2] + out
        _, ind = fractional_max_pool2d(x, kernel, samples=samples, return_indices=True, **size_arg)
        _, t_ind = F.fractional_max_pool2d(torch.tensor(x), kernel, _random_samples=torch.tensor(samples),
                                           return_indices=True, **size_arg)
        np.testing.assert_array_equal(ind.numpy(), t_ind.numpy())


@pytest.mark.usefixtures("torch1")
def test_torch_parity_float32_exact_windows(torch):
    """In float32 the window choice (and so every max) must match PyTorch exactly,
    including the float32 arithmetic of the fractional intervals."""
    F = torch.nn.functional
    rng = np.random.default_rng(15)
    x = distinct((3, 4, 23, 19), rng, np.float32)
    samples = rng.random((3, 4, 2)).astype(np.float32)
    ours = fractional_max_pool2d(x, 3, output_size=(14, 11), samples=samples).numpy()
    theirs = F.fractional_max_pool2d(torch.tensor(x), 3, output_size=(14, 11),
                                     _random_samples=torch.tensor(samples)).numpy()
    assert ours.dtype == np.float32
    np.testing.assert_array_equal(ours, theirs)
    np.testing.assert_array_equal(max_pool2d(x, 3, 2, 1, ceil_mode=True).numpy(),
                                  F.max_pool2d(torch.tensor(x), 3, 2, 1, ceil_mode=True).numpy())
    np.testing.assert_allclose(avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False).numpy(),
                               F.avg_pool2d(torch.tensor(x), 3, 2, 1, ceil_mode=True,
                                            count_include_pad=False).numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.usefixtures("torch1")
def test_torch_parity_chained_pools(torch):
    """A pool's output (an NCHW view of (C, H, W, N) memory) feeding the next pool."""
    F = torch.nn.functional
    x = distinct((3, 2, 13, 12), np.random.default_rng(16))
    torch_parity(torch,
                 lambda t: adaptive_max_pool2d(avg_pool2d(max_pool2d(t, 3, 1, 1), 2, 2, ceil_mode=True), (2, 3)),
                 lambda t: F.adaptive_max_pool2d(F.avg_pool2d(F.max_pool2d(t, 3, 1, 1), 2, 2, ceil_mode=True),
                                                 (2, 3)),
                 [x])


@pytest.mark.usefixtures("torch1")
def test_torch_parity_nan_and_infinite_gradient(torch):
    """NaN wins a max (gradient to the last NaN of the window); an infinite upstream
    gradient reaches only the chosen pixels."""
    F = torch.nn.functional
    x = distinct((1, 2, 6, 6), np.random.default_rng(17))
    x[0, 0, 1, 1] = x[0, 0, 2, 2] = x[0, 1, 0, 3] = np.nan
    X, xt = Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    out, t_out = max_pool2d(X, 3, 1), F.max_pool2d(xt, 3, 1)
    np.testing.assert_array_equal(out.numpy(), t_out.detach().numpy())
    g = np.random.default_rng(18).standard_normal(out.shape)
    g[0, 1, 0, 0] = np.inf
    out.backward(g)
    t_out.backward(torch.tensor(g))
    np.testing.assert_allclose(X.grad, xt.grad.numpy(), rtol=0, atol=1e-12)


# ---------------------------------------------------------------------------
# 5. errors
# ---------------------------------------------------------------------------
def test_errors_bad_input():
    with pytest.raises(ValueError, match=r"max_pool2d: expected a 4-D input \(N, C, H, W\), got shape \(3, 4, 4\)"):
        max_pool2d(np.zeros((3, 4, 4)), 2)
    with pytest.raises(TypeError, match=r"avg_pool2d: expected a floating point input .*got dtype int64"):
        avg_pool2d(Tensor(np.zeros((1, 1, 4, 4), dtype=np.int64)), 2)
    with pytest.raises(ValueError, match=r"global_max_pool2d: expected a 4-D input"):
        global_max_pool2d(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"fractional_max_pool2d: expected a 4-D input"):
        fractional_max_pool2d(np.zeros((1, 4, 4)), 2, output_size=2)


def test_errors_window_arguments():
    x = np.zeros((1, 1, 3, 3))
    with pytest.raises(ValueError, match=r"max_pool2d: height of input \(1, 1, 3, 3\): kernel of size 5 "
                                         r"\(dilated span 5\) is larger than the padded input of size 3"):
        max_pool2d(x, 5)
    with pytest.raises(ValueError, match=r"min_pool2d: width of input .*dilated span 5\) is larger than the "
                                         r"padded input of size 3"):
        min_pool2d(x, (1, 3), dilation=(1, 2))
    with pytest.raises(ValueError, match=r"avg_pool2d: height of input \(1, 1, 3, 3\): pad should be at most "
                                         r"half of the effective kernel size, got padding=2 and kernel_size=3"):
        avg_pool2d(x, 3, padding=2)
    with pytest.raises(ValueError, match=r"max_pool2d: `stride` must be >= 1 on both axes, got \(1, 0\)"):
        max_pool2d(x, 2, stride=(1, 0))
    with pytest.raises(ValueError, match=r"max_pool2d: `kernel_size` must be >= 1 on both axes, got 0"):
        max_pool2d(x, 0)
    with pytest.raises(ValueError, match=r"avg_pool2d: `padding` must be >= 0 on both axes, got -1"):
        avg_pool2d(x, 2, padding=-1)
    with pytest.raises(ValueError, match=r"max_pool2d: `dilation` must be >= 1 on both axes, got 0"):
        max_pool2d(x, 2, dilation=0)
    with pytest.raises(TypeError, match=r"max_pool2d: `kernel_size` must be an int or a pair of ints, got '2'"):
        max_pool2d(x, "2")
    with pytest.raises(ValueError, match=r"avg_pool2d: `divisor_override` must not be zero, got 0"):
        avg_pool2d(x, 2, divisor_override=0)
    with pytest.raises(TypeError, match=r"avg_pool2d: `divisor_override` must be None or an int, got 1.5"):
        avg_pool2d(x, 2, divisor_override=1.5)


def test_errors_adaptive_output_size():
    x = np.zeros((1, 2, 4, 4))
    with pytest.raises(ValueError, match=r"adaptive_avg_pool2d: `output_size` must be positive, got 0 "
                                         r"for input of shape \(1, 2, 4, 4\)"):
        adaptive_avg_pool2d(x, 0)
    with pytest.raises(ValueError, match=r"adaptive_max_pool2d: `output_size` must be positive, got \(2, -1\)"):
        adaptive_max_pool2d(x, (2, -1))
    with pytest.raises(TypeError, match=r"adaptive_max_pool2d: `output_size` must be an int or a pair of "
                                        r"ints/None, got \(2, 3, 4\)"):
        adaptive_max_pool2d(x, (2, 3, 4))
    with pytest.raises(TypeError, match=r"adaptive_avg_pool2d: `output_size` must be an int or a pair"):
        adaptive_avg_pool2d(x, 2.5)


def test_errors_fractional():
    x = np.zeros((2, 3, 8, 8))
    op = fractional_max_pool2d
    with pytest.raises(ValueError, match=r"give exactly one of `output_size` and `output_ratio`, got "
                                         r"output_size=None and output_ratio=None"):
        op(x, 2)
    with pytest.raises(ValueError, match=r"give exactly one of .*output_size=4 and output_ratio=0.5"):
        op(x, 2, output_size=4, output_ratio=0.5)
    with pytest.raises(ValueError, match=r"`output_ratio` must be a float or a pair of floats in \(0, 1\), "
                                         r"got 1.5"):
        op(x, 2, output_ratio=1.5)
    with pytest.raises(ValueError, match=r"output_ratio=0.1 gives an empty output \(0, 0\) for input of "
                                         r"shape \(2, 3, 8, 8\)"):
        op(x, 2, output_ratio=0.1)
    with pytest.raises(ValueError, match=r"`output_size` must be >= 1 on both axes, got \(0, 3\)"):
        op(x, 2, output_size=(0, 3))
    with pytest.raises(ValueError, match=r"output width 7 with kernel width 3 needs an input width of at least "
                                         r"9, got input of shape \(2, 3, 8, 8\)"):
        op(x, 3, output_size=(4, 7))
    with pytest.raises(ValueError, match=r"`samples` must have shape \(N, C, 2\) = \(2, 3, 2\), got \(3, 2, 2\)"):
        op(x, 2, output_size=4, samples=np.zeros((3, 2, 2)))
    with pytest.raises(ValueError, match=r"`samples` must lie in \[0, 1\), got values from 0.0 to 1.0"):
        op(x, 2, output_size=4, samples=np.concatenate([np.zeros((2, 3, 1)), np.ones((2, 3, 1))], axis=2))
    with pytest.raises(ValueError, match=r"`samples` must lie in \[0, 1\), got values from -0.1"):
        op(x, 2, output_size=4, samples=np.full((2, 3, 2), -0.1))


# ---------------------------------------------------------------------------
# 6. output shape = conv_output_size; layouts, dtypes and the no-grad path
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("cfg", FIXED_WINDOW_CONFIGS + RANDOM_WINDOW_CONFIGS)
def test_output_shape_is_conv_output_size(cfg):
    x = np.zeros(cfg["shape"])
    N, C, H, W = cfg["shape"]
    expected = (N, C) + tuple(
        conv_output_size(size, k, s, p, d, cfg["ceil_mode"])
        for size, k, s, p, d in zip((H, W), cfg["kernel"], cfg["stride"], cfg["padding"], cfg["dilation"]))
    assert _call_extreme(max_pool2d, x, cfg).shape == expected
    assert _call_extreme(min_pool2d, x, cfg).shape == expected
    expected_avg = (N, C) + tuple(
        conv_output_size(size, k, s, p, 1, cfg["ceil_mode"])
        for size, k, s, p in zip((H, W), cfg["kernel"], cfg["stride"], cfg["padding"]))
    assert avg_pool2d(x, cfg["kernel"], cfg["stride"], cfg["padding"], cfg["ceil_mode"]).shape == expected_avg
    # adaptive pooling with equal windows is the plain pool with kernel = stride = H / OH
    assert adaptive_avg_pool2d(np.zeros((N, C, 12, 10)), (4, 5)).shape == (
        N, C, conv_output_size(12, 3, 3), conv_output_size(10, 2, 2))


@pytest.mark.parametrize("name,op", [
    ("max", lambda t: max_pool2d(t, 3, 2, 1)), ("min", lambda t: min_pool2d(t, 2, 1, dilation=2)),
    ("avg", lambda t: avg_pool2d(t, 3, 2, 1, ceil_mode=True, count_include_pad=False)),
    ("adaptive_avg", lambda t: adaptive_avg_pool2d(t, (3, 4))),
    ("adaptive_max", lambda t: adaptive_max_pool2d(t, (3, 4))),
    ("global_avg", global_avg_pool2d), ("global_max", global_max_pool2d),
    ("fractional", lambda t: fractional_max_pool2d(t, 2, output_size=(5, 4),
                                                   samples=np.full((3, 2, 2), 0.4))),
])
def test_non_contiguous_float32_and_no_grad(name, op):
    rng = np.random.default_rng(19)
    contiguous = distinct((3, 2, 9, 8), rng)
    reference = op(Tensor(contiguous, requires_grad=True))
    g = rng.standard_normal(reference.shape)
    reference.backward(g)

    # transposed memory, a strided slice, and a (C, H, W, N) memory view
    views = [np.ascontiguousarray(contiguous.transpose(0, 1, 3, 2)).transpose(0, 1, 3, 2),
             np.repeat(contiguous, 2, axis=3)[..., ::2],
             to_nchw(np.ascontiguousarray(contiguous.transpose(1, 2, 3, 0)))]
    for view in views:
        assert not view.flags.c_contiguous
        X = Tensor(view, requires_grad=True)
        out = op(X)
        np.testing.assert_allclose(out.numpy(), reference.numpy(), rtol=0, atol=1e-12)
        out.backward(g)
        np.testing.assert_allclose(X.grad, reference_grad(reference, contiguous, op, g), rtol=0, atol=1e-12)

    X32 = Tensor(contiguous.astype(np.float32), requires_grad=True)
    out32 = op(X32)
    assert out32.dtype == np.float32
    np.testing.assert_allclose(out32.numpy(), reference.numpy(), rtol=1e-5, atol=1e-5)
    out32.backward(g.astype(np.float32))
    assert X32.grad.dtype == np.float32
    np.testing.assert_allclose(X32.grad, reference_grad(reference, contiguous, op, g), rtol=1e-5, atol=1e-5)

    with no_grad():
        plain = op(Tensor(contiguous, requires_grad=True))
    assert not plain.requires_grad
    np.testing.assert_array_equal(plain.numpy(), reference.numpy())
    assert not op(contiguous).requires_grad                      # ndarray input: nothing recorded


def reference_grad(reference, x, op, g):
    X = Tensor(x.copy(), requires_grad=True)
    op(X).backward(g)
    return X.grad


def test_backward_through_two_consumers_accumulates():
    x = distinct((2, 2, 6, 6), np.random.default_rng(20))
    X = Tensor(x, requires_grad=True)
    (max_pool2d(X, 2).sum() + min_pool2d(X, 2).sum()).backward()
    expected = np.zeros_like(x)
    for pick in (max, min):
        _, index = naive_extreme_pool(x, (2, 2), (2, 2), (0, 0), (1, 1), False, pick)
        expected += scatter_grad(x.shape, index, np.ones(index.shape))
    np.testing.assert_array_equal(X.grad, expected)


@pytest.mark.usefixtures("torch1")
def test_torch_parity_ties_go_to_the_first_pixel_in_row_major_order(torch):
    F = torch.nn.functional
    rng = np.random.default_rng(21)
    x = rng.integers(0, 3, (2, 3, 9, 10)).astype(np.float64)     # many equal values per window
    samples = rng.random((2, 3, 2))
    cases = [
        (lambda t: max_pool2d(t, 3, 2, 1, 1, True), lambda t: F.max_pool2d(t, 3, 2, 1, 1, True)),
        (lambda t: max_pool2d(t, (2, 3), 1, 0, 2), lambda t: F.max_pool2d(t, (2, 3), 1, 0, 2)),
        (lambda t: adaptive_max_pool2d(t, (4, 3)), lambda t: F.adaptive_max_pool2d(t, (4, 3))),
        (lambda t: adaptive_max_pool2d(t, (5, 4)), lambda t: F.adaptive_max_pool2d(t, (5, 4))),  # uneven
        (lambda t: fractional_max_pool2d(t, 2, output_size=(6, 7), samples=samples),
         lambda t: F.fractional_max_pool2d(t, 2, output_size=(6, 7), _random_samples=torch.tensor(samples))),
        (global_max_pool2d, lambda t: F.adaptive_max_pool2d(t, 1).flatten(1)),
    ]
    for seed, (ours, theirs) in enumerate(cases):
        torch_parity(torch, ours, theirs, [x], seed=seed)
    _, index = naive_extreme_pool(x, (3, 3), (2, 2), (1, 1), (1, 1), True, min)
    np.testing.assert_array_equal(min_pool2d(x, 3, 2, 1, ceil_mode=True, return_indices=True)[1].numpy(), index)


# --- windows that tile the input: one reduction, not a step per tap -------------------------
TILING = [(lambda x: adaptive_avg_pool2d(x, 1), "adaptive_avg_pool2d", (1,)),
          (lambda x: adaptive_avg_pool2d(x, (2, 3)), "adaptive_avg_pool2d", ((2, 3),)),
          (lambda x: avg_pool2d(x, 3), "avg_pool2d", (3,))]


@pytest.mark.parametrize("fn,name,args", TILING, ids=["global", "adaptive 2x3", "avg 3x3"])
def test_avg_pool_tiling_windows_reduce_once(monkeypatch, torch, fn, name, args):
    """Global average pooling of a 12x18 map (the squeeze of squeeze-and-excitation blocks) took
    216 Python steps, one per kernel tap; windows that tile the input take one reduction."""
    from cnnlab.functional import pool
    calls = []
    original = pool.tap
    monkeypatch.setattr(pool, "tap", lambda *a, **k: calls.append(1) or original(*a, **k))
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 12, 18))
    torch_parity(torch, fn, lambda t: getattr(torch.nn.functional, name)(t, *args), [x])
    gradcheck(fn, [x])
    assert calls == []
