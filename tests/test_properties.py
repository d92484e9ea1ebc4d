"""Property-based tests (Hypothesis) of the functional ops.

For random shapes, strides, paddings (symmetric, asymmetric, 'same'), dilations,
groups, dtypes (float32, float64, int), NaN/inf values, empty and non-contiguous
inputs, every op either

* returns what a plain-loop reference computes (and PyTorch, when installed, for
  the configurations PyTorch can express; backward too), or
* raises a clean ``ValueError``/``TypeError``/``IndexError`` -- and then PyTorch
  must refuse the same input too when it can express it.

Never another exception.  Sizes stay tiny and ``max_examples`` small so that the
whole file runs in well under a minute on one core.
"""
from __future__ import annotations

import math
import os
import warnings

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import cnnlab.functional as F  # noqa: E402
from cnnlab import Tensor  # noqa: E402
from test_conv import naive_conv2d  # noqa: E402
from test_pool import (naive_adaptive_pool, naive_avg_pool, naive_extreme_pool,  # noqa: E402
                       naive_fractional_max_pool)

try:
    import torch
    import torch.nn.functional as TF
except ImportError:  # the properties still run against the plain-loop references
    torch = TF = None

# the plain references do IEEE arithmetic on NaN/inf (the ops' own warnings are checked in `outcome`)
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")
CLEAN = (ValueError, TypeError, IndexError)
# CNNLAB_PROPERTY_EXAMPLES=1000 (and CNNLAB_PROPERTY_SEED=random) for a longer hunt than CI's
PROPERTY = settings(max_examples=int(os.environ.get("CNNLAB_PROPERTY_EXAMPLES", 150)), deadline=None,
                    derandomize=os.environ.get("CNNLAB_PROPERTY_SEED") != "random", database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])
DTYPES = st.sampled_from([np.float64, np.float64, np.float32, np.int64])
SPECIALS = st.lists(st.tuples(st.integers(0, 10_000), st.sampled_from([np.nan, np.inf, -np.inf])), max_size=2)


def make_array(shape, dtype, seed: int, specials=(), strided: bool = False) -> np.ndarray:
    """Random values of ``shape``; ``specials`` put NaN/inf at some positions (float only);
    ``strided`` returns a non-contiguous view holding the same values."""
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        a = rng.standard_normal(shape).astype(dtype)
        if a.size:
            for where, value in specials:
                a.flat[where % a.size] = value
    else:
        a = rng.integers(-5, 6, size=shape).astype(dtype)
    if strided and a.ndim:
        big = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), dtype=a.dtype)
        big[..., ::2] = a
        a = big[..., ::2]
        assert not a.flags.c_contiguous or a.size <= 1
    return a


def outcome(fn, *inputs):
    """``(result, None)`` or ``(None, clean error)``; any other exception fails the test.  On finite
    ``inputs`` a NumPy RuntimeWarning is a defect too (with NaN/inf it is IEEE arithmetic at work)."""
    finite = all(np.isfinite(a).all() for a in inputs if a is not None and a.dtype.kind == "f")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error" if finite else "ignore", RuntimeWarning)
            return fn(), None
    except CLEAN as exc:
        return None, exc


def torch_outcome(fn):
    if torch is None:
        return None, None
    try:
        return fn(), None
    except (RuntimeError, ValueError, TypeError, IndexError) as exc:
        return None, exc


def assert_close(got, want, dtype, what):
    tol = 1e-4 if np.dtype(dtype) == np.float32 else 1e-9
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol, equal_nan=True, err_msg=what)


def check_against_torch(got, err, t_result, t_err, what, x=None):
    """cnnlab refuses exactly what PyTorch refuses (when PyTorch ran).  Empty inputs are left out:
    PyTorch skips some of its checks for them (a kernel larger than the input of an empty batch)."""
    if torch is None or (t_result is None and t_err is None) or (x is not None and x.size == 0):
        return
    if err is not None:
        assert t_err is not None, f"{what}: cnnlab refused ({err}) an input PyTorch accepts"
        return
    assert t_err is None, f"{what}: cnnlab accepted an input PyTorch refuses ({t_err})"


# --- conv2d ---------------------------------------------------------------------------------------
PADDINGS = st.one_of(
    st.integers(0, 2), st.tuples(st.integers(0, 2), st.integers(0, 2)),
    st.tuples(st.tuples(st.integers(0, 2), st.integers(0, 2)), st.tuples(st.integers(0, 2), st.integers(0, 2))),
    st.sampled_from(["same", "valid"]), st.just(-1))


def _padding4(padding, size, kernel, stride, dilation):
    """((top, bottom), (left, right)) of any padding form, computed independently of cnnlab."""
    if padding == "valid":
        return (0, 0), (0, 0)
    if padding == "same":
        out = []
        for n, k, s, d in zip(size, kernel, stride, dilation):
            total = max((-(-n // s) - 1) * s + d * (k - 1) + 1 - n, 0)
            out.append((total // 2, total - total // 2))
        return tuple(out)
    if isinstance(padding, int):
        return (padding, padding), (padding, padding)
    if isinstance(padding[0], int):
        return (padding[0], padding[0]), (padding[1], padding[1])
    return padding


@PROPERTY
@given(n=st.integers(0, 2), groups=st.integers(1, 2), cg=st.integers(1, 2), og=st.integers(1, 2),
       h=st.integers(1, 6), w=st.integers(1, 6), kh=st.integers(1, 3), kw=st.integers(1, 3),
       stride=st.tuples(st.integers(1, 3), st.integers(1, 3)), dilation=st.tuples(st.integers(1, 2), st.integers(1, 2)),
       padding=PADDINGS, mode=st.sampled_from(["zeros", "zeros", "reflect", "replicate", "circular"]),
       bias=st.booleans(), dtype=DTYPES, seed=st.integers(0, 2**16), specials=SPECIALS, strided=st.booleans())
def test_conv2d_property(n, groups, cg, og, h, w, kh, kw, stride, dilation, padding, mode, bias, dtype, seed,
                         specials, strided):
    x = make_array((n, groups * cg, h, w), dtype, seed, specials, strided)
    weight = make_array((groups * og, cg, kh, kw), dtype, seed + 1)
    b = make_array((groups * og,), dtype, seed + 2) if bias else None
    what = f"conv2d x{x.shape} w{weight.shape} s{stride} p{padding} d{dilation} g{groups} {mode} {x.dtype}"

    def run():
        xt = Tensor(x, requires_grad=x.dtype.kind == "f")
        y = F.conv2d(xt, weight, b, stride, padding, dilation, groups, mode)
        y.backward(np.ones(y.shape, y.dtype))
        return y.numpy(), xt.grad

    (got, err) = outcome(run, x)
    if np.dtype(dtype).kind != "f":
        assert isinstance(err, TypeError), what
        return
    if err is None:
        pad = _padding4(padding, (h, w), (kh, kw), stride, dilation)
        want = naive_conv2d(x.astype(np.float64), weight.astype(np.float64),
                            None if b is None else b.astype(np.float64), stride, pad, dilation, groups, mode)
        assert_close(got[0], want, dtype, what)
        assert got[1].shape == x.shape
    # PyTorch takes symmetric int/pair padding ('same' only with stride 1)
    if isinstance(padding, (int, tuple)) and not (isinstance(padding, tuple) and isinstance(padding[0], tuple)) \
            and mode == "zeros":
        t_out, t_err = torch_outcome(lambda: TF.conv2d(
            torch.tensor(x), torch.tensor(weight), None if b is None else torch.tensor(b), stride, padding,
            dilation, groups).numpy())
        check_against_torch(got, err, t_out, t_err, what, x)
        if err is None and t_out is not None:
            assert_close(got[0], t_out, dtype, what + " vs torch")


# --- pooling --------------------------------------------------------------------------------------
@PROPERTY
@given(n=st.integers(0, 2), c=st.integers(0, 2), h=st.integers(0, 6), w=st.integers(1, 6),
       kernel=st.tuples(st.integers(1, 3), st.integers(1, 3)), stride=st.tuples(st.integers(1, 3), st.integers(1, 3)),
       padding=st.tuples(st.integers(-1, 2), st.integers(0, 2)), dilation=st.tuples(st.integers(1, 2), st.integers(1, 2)),
       ceil_mode=st.booleans(), mode=st.sampled_from(["max", "min"]), dtype=DTYPES, seed=st.integers(0, 2**16),
       specials=SPECIALS, strided=st.booleans(), fill=st.sampled_from([None, None, -np.inf, np.inf]))
def test_max_min_pool_property(n, c, h, w, kernel, stride, padding, dilation, ceil_mode, mode, dtype, seed,
                               specials, strided, fill):
    x = make_array((n, c, h, w), dtype, seed, specials, strided)
    if fill is not None and x.dtype.kind == "f":
        x[...] = fill
    fn = F.max_pool2d if mode == "max" else F.min_pool2d
    what = f"{mode}_pool2d x{x.shape} k{kernel} s{stride} p{padding} d{dilation} ceil={ceil_mode} {x.dtype}"

    def run():
        xt = Tensor(x, requires_grad=x.dtype.kind == "f")
        y, idx = fn(xt, kernel, stride, padding, dilation, ceil_mode, return_indices=True)
        y.backward(np.ones(y.shape, y.dtype))
        return y.numpy(), idx.numpy(), xt.grad

    got, err = outcome(run, x)
    if np.dtype(dtype).kind != "f":
        assert isinstance(err, TypeError), what
        return
    finite = bool(np.isfinite(x).all()) or fill is not None
    if err is None and finite and x.size:
        try:
            want, index = naive_extreme_pool(x.astype(np.float64), kernel, stride, padding, dilation, ceil_mode,
                                             max if mode == "max" else min)
        except ValueError:  # a window entirely in the padding (dilation): no reference
            want = None
        if want is not None:
            assert_close(got[0], want, dtype, what)
            np.testing.assert_array_equal(got[1], index, err_msg=what)
            assert got[2].sum() == got[0].size, what  # each output's gradient reaches one pixel
    if mode == "max":
        t_out, t_err = torch_outcome(lambda: TF.max_pool2d(torch.tensor(x), kernel, stride, padding, dilation,
                                                           ceil_mode, return_indices=True))
        check_against_torch(got, err, t_out, t_err, what, x)
        if err is None and t_out is not None and x.size:
            assert_close(got[0], t_out[0].numpy(), dtype, what + " vs torch")
            if np.isfinite(got[0]).all():
                np.testing.assert_array_equal(got[1], t_out[1].numpy(), err_msg=what + " vs torch")


@PROPERTY
@given(n=st.integers(0, 2), c=st.integers(1, 2), h=st.integers(0, 6), w=st.integers(1, 6),
       kernel=st.tuples(st.integers(1, 3), st.integers(1, 3)), stride=st.tuples(st.integers(1, 3), st.integers(1, 3)),
       padding=st.tuples(st.integers(0, 2), st.integers(-1, 1)), ceil_mode=st.booleans(),
       count_include_pad=st.booleans(), dtype=DTYPES, seed=st.integers(0, 2**16), specials=SPECIALS,
       strided=st.booleans())
def test_avg_pool_property(n, c, h, w, kernel, stride, padding, ceil_mode, count_include_pad, dtype, seed,
                           specials, strided):
    x = make_array((n, c, h, w), dtype, seed, specials, strided)
    what = f"avg_pool2d x{x.shape} k{kernel} s{stride} p{padding} ceil={ceil_mode} cip={count_include_pad}"

    def run():
        xt = Tensor(x, requires_grad=x.dtype.kind == "f")
        y = F.avg_pool2d(xt, kernel, stride, padding, ceil_mode, count_include_pad)
        y.backward(np.ones(y.shape, y.dtype))
        return y.numpy(), xt.grad

    got, err = outcome(run, x)
    if np.dtype(dtype).kind != "f":
        assert isinstance(err, TypeError), what
        return
    if err is None:
        want = naive_avg_pool(x.astype(np.float64), kernel, stride, padding, ceil_mode, count_include_pad)
        assert_close(got[0], want, dtype, what)
    t_out, t_err = torch_outcome(lambda: TF.avg_pool2d(torch.tensor(x), kernel, stride, padding, ceil_mode,
                                                       count_include_pad).numpy())
    check_against_torch(got, err, t_out, t_err, what, x)


@PROPERTY
@given(n=st.integers(0, 2), c=st.integers(1, 2), h=st.integers(0, 7), w=st.integers(1, 7),
       out=st.tuples(st.integers(0, 5), st.one_of(st.none(), st.integers(1, 5))), reduce=st.sampled_from(["avg", "max"]),
       dtype=DTYPES, seed=st.integers(0, 2**16), specials=SPECIALS, strided=st.booleans())
def test_adaptive_pool_property(n, c, h, w, out, reduce, dtype, seed, specials, strided):
    x = make_array((n, c, h, w), dtype, seed, specials, strided)
    fn = F.adaptive_avg_pool2d if reduce == "avg" else F.adaptive_max_pool2d
    what = f"adaptive_{reduce}_pool2d x{x.shape} out{out} {x.dtype}"

    def run():
        xt = Tensor(x, requires_grad=x.dtype.kind == "f")
        y = fn(xt, out)
        y.backward(np.ones(y.shape, y.dtype))
        return y.numpy(), xt.grad

    got, err = outcome(run, x)
    if np.dtype(dtype).kind != "f":
        assert isinstance(err, TypeError), what
        return
    oh, ow = out[0], w if out[1] is None else out[1]
    if err is None and (reduce == "avg" or np.isfinite(x).all()):
        want, _ = naive_adaptive_pool(x.astype(np.float64), oh, ow, reduce)
        assert_close(got[0], want, dtype, what)
    if h == 0 or out[0] == 0:  # PyTorch averages zero pixels into NaN, or gives an empty output;
        assert isinstance(err, ValueError), what  # cnnlab refuses both with a clear error
        return
    name = f"adaptive_{reduce}_pool2d"  # looked up only when PyTorch is installed
    t_out, t_err = torch_outcome(lambda: getattr(TF, name)(torch.tensor(x), out))
    check_against_torch(got, err, t_out, t_err, what, x)
    if err is None and t_out is not None:
        assert_close(got[0], t_out.numpy(), dtype, what + " vs torch")


@PROPERTY
@given(n=st.integers(0, 2), c=st.integers(0, 2), h=st.integers(0, 4), w=st.integers(0, 4),
       reduce=st.sampled_from(["avg", "max"]), dtype=DTYPES, seed=st.integers(0, 2**16), specials=SPECIALS,
       strided=st.booleans())
def test_global_pool_property(n, c, h, w, reduce, dtype, seed, specials, strided):
    x = make_array((n, c, h, w), dtype, seed, specials, strided)
    fn = F.global_avg_pool2d if reduce == "avg" else F.global_max_pool2d
    what = f"global_{reduce}_pool2d x{x.shape} {x.dtype}"

    def run():
        xt = Tensor(x, requires_grad=x.dtype.kind == "f")
        y = fn(xt)
        y.backward(np.ones(y.shape, y.dtype))
        return y.numpy(), xt.grad

    got, err = outcome(run, x)
    if np.dtype(dtype).kind != "f":
        assert isinstance(err, TypeError), what
        return
    if h == 0 or w == 0:
        assert isinstance(err, ValueError), what
        return
    assert err is None, f"{what}: {err}"
    x64 = x.astype(np.float64).reshape(n, c, h * w)
    want = x64.mean(axis=2) if reduce == "avg" else np.array(
        [[max(x64[i, j], key=lambda v: (math.isnan(v), v)) for j in range(c)] for i in range(n)]).reshape(n, c)
    assert_close(got[0], want, dtype, what)


@PROPERTY
@given(n=st.integers(0, 2), c=st.integers(1, 2), h=st.integers(1, 7), w=st.integers(1, 7),
       kernel=st.tuples(st.integers(1, 3), st.integers(1, 3)),
       size=st.one_of(st.tuples(st.integers(0, 5), st.integers(1, 5)), st.floats(-0.5, 1.5)),
       dtype=DTYPES, seed=st.integers(0, 2**16), specials=SPECIALS, strided=st.booleans())
def test_fractional_max_pool_property(n, c, h, w, kernel, size, dtype, seed, specials, strided):
    x = make_array((n, c, h, w), dtype, seed, specials, strided)
    samples = np.random.default_rng(seed).random((n, c, 2))
    by_ratio = isinstance(size, float)
    what = f"fractional_max_pool2d x{x.shape} k{kernel} {'ratio' if by_ratio else 'size'}={size} {x.dtype}"

    def run():
        xt = Tensor(x, requires_grad=x.dtype.kind == "f")
        y, idx = F.fractional_max_pool2d(xt, kernel, None if by_ratio else size, size if by_ratio else None,
                                         samples=samples.astype(x.dtype) if x.dtype.kind == "f" else samples,
                                         return_indices=True)
        y.backward(np.ones(y.shape, y.dtype))
        return y.numpy(), idx.numpy(), xt.grad

    got, err = outcome(run, x)
    if np.dtype(dtype).kind != "f":
        assert isinstance(err, TypeError), what
        return
    if err is None and np.isfinite(x).all():
        want, index = naive_fractional_max_pool(x.astype(np.float64), kernel, got[0].shape[2:],
                                                samples.astype(x.dtype))
        assert_close(got[0], want, dtype, what)
        np.testing.assert_array_equal(got[1], index, err_msg=what)
    if not by_ratio and 0 in size:  # PyTorch returns an empty output; cnnlab refuses, as for adaptive pooling
        assert isinstance(err, ValueError), what
        return
    if torch is not None and x.size and not by_ratio:
        t_out, t_err = torch_outcome(lambda: TF.fractional_max_pool2d(
            torch.tensor(x), kernel, output_size=size, _random_samples=torch.tensor(samples.astype(x.dtype))))
        check_against_torch(got, err, t_out, t_err, what, x)
        if err is None and t_out is not None:
            assert_close(got[0], t_out.numpy(), dtype, what + " vs torch")


# --- activations, softmax, batch norm, linear, flatten -------------------------------------------
def _ref_activation(name, a):
    """Plain per-element references (math module), NaN/inf included."""
    def one(v):
        if name == "relu":
            return v if v > 0 or math.isnan(v) else 0.0
        if name == "leaky_relu":
            return v if v > 0 or math.isnan(v) else 0.01 * v
        if name == "sigmoid":
            if math.isnan(v):
                return v
            return 1 / (1 + math.exp(-v)) if v >= 0 else math.exp(v) / (1 + math.exp(v)) if v > -745 else 0.0
        if name == "tanh":
            return math.tanh(v)
        if name == "gelu":
            return v * 0.5 * (1 + math.erf(v / math.sqrt(2))) if math.isfinite(v) else (
                v if v > 0 else math.nan)  # -inf * 0 is NaN, as in PyTorch
        raise AssertionError(name)
    flat = [one(float(v)) for v in a.ravel()]
    return np.array(flat, dtype=np.float64).reshape(a.shape)


@PROPERTY
@given(shape=st.lists(st.integers(0, 4), min_size=0, max_size=4).map(tuple),
       name=st.sampled_from(["relu", "leaky_relu", "sigmoid", "tanh", "gelu"]), dtype=DTYPES,
       seed=st.integers(0, 2**16), specials=SPECIALS, strided=st.booleans())
def test_elementwise_activation_property(shape, name, dtype, seed, specials, strided):
    x = make_array(shape, dtype, seed, specials, strided)
    what = f"{name} x{x.shape} {x.dtype}"

    def run():
        xt = Tensor(x, requires_grad=x.dtype.kind == "f")
        y = getattr(F, name)(xt)
        y.backward(np.ones(y.shape, y.dtype))
        return y.numpy(), xt.grad

    got, err = outcome(run, x)
    if np.dtype(dtype).kind != "f":
        assert isinstance(err, TypeError), what
        return
    assert err is None, f"{what}: {err}"
    assert got[0].dtype == x.dtype and got[0].shape == x.shape
    assert_close(got[0], _ref_activation(name, x.astype(np.float64)), dtype, what)
    if torch is not None:  # at finite inputs (PyTorch's float32 gelu(inf) is NaN, float64's inf)
        finite = np.isfinite(x)
        assert_close(got[0][finite], getattr(TF, name)(torch.tensor(x)).numpy()[finite], dtype, what + " vs torch")


@PROPERTY
@given(shape=st.lists(st.integers(0, 4), min_size=0, max_size=3).map(tuple), dim=st.integers(-4, 3),
       log=st.booleans(), dtype=DTYPES, seed=st.integers(0, 2**16), specials=SPECIALS, strided=st.booleans())
def test_softmax_property(shape, dim, log, dtype, seed, specials, strided):
    x = make_array(shape, dtype, seed, specials, strided)
    fn = F.log_softmax if log else F.softmax
    what = f"{'log_' if log else ''}softmax x{x.shape} dim={dim} {x.dtype}"

    def run():
        xt = Tensor(x, requires_grad=x.dtype.kind == "f")
        y = fn(xt, dim=dim)
        y.backward(np.ones(y.shape, y.dtype))
        return y.numpy(), xt.grad

    got, err = outcome(run, x)
    if np.dtype(dtype).kind != "f":
        assert isinstance(err, TypeError), what
        return
    ndim = max(len(shape), 1)
    if not -ndim <= dim < ndim:
        assert isinstance(err, IndexError), what
        return
    assert err is None, f"{what}: {err}"
    # plain reference: per slice along dim, in float64
    x64 = x.astype(np.float64).reshape(shape or (1,))
    moved = np.moveaxis(x64, dim, -1)
    want = np.empty_like(moved)
    for index in np.ndindex(moved.shape[:-1]):
        row = moved[index]
        top = max(row, default=0.0) if not np.isnan(row).any() else np.nan
        with np.errstate(invalid="ignore", divide="ignore"):
            e = [math.exp(v - top) if math.isfinite(v - top) else (0.0 if v - top == -math.inf else math.nan)
                 for v in row]
            total = sum(e)
            want[index] = [math.nan] * len(e) if math.isnan(total) else [math.log(v / total) if v > 0 else (-math.inf if v == 0 else math.nan)
                           for v in e] if log else [v / total if total else math.nan for v in e]
    want = np.moveaxis(want, -1, dim).reshape(shape)
    assert_close(got[0], want, dtype, what)
    if torch is not None:
        t = (TF.log_softmax if log else TF.softmax)(torch.tensor(x), dim=dim).numpy()
        assert_close(got[0], t, dtype, what + " vs torch")


@PROPERTY
@given(n=st.integers(0, 3), c=st.integers(1, 3), hw=st.sampled_from([None, (1, 1), (2, 3)]),
       training=st.booleans(), affine=st.booleans(), dtype=DTYPES, seed=st.integers(0, 2**16),
       specials=SPECIALS, strided=st.booleans())
def test_batch_norm_property(n, c, hw, training, affine, dtype, seed, specials, strided):
    shape = (n, c) if hw is None else (n, c) + hw
    x = make_array(shape, dtype, seed, specials, strided)
    rng = np.random.default_rng(seed)
    ftype = x.dtype if x.dtype.kind == "f" else np.float64
    mean, var = rng.standard_normal(c).astype(ftype), rng.random(c).astype(ftype) + 0.5
    weight, bias = (rng.standard_normal(c).astype(ftype), rng.standard_normal(c).astype(ftype)) if affine else (None, None)
    what = f"batch_norm x{x.shape} training={training} {x.dtype}"
    rm, rv = mean.copy(), var.copy()

    def run():
        return F.batch_norm(Tensor(x), rm, rv, weight, bias, training, 0.1, 1e-5).numpy()

    got, err = outcome(run, x)
    if np.dtype(dtype).kind != "f":
        assert isinstance(err, TypeError), what
        return
    count = x.size // c
    if training and count <= 1:
        assert isinstance(err, ValueError), what
        return
    assert err is None, f"{what}: {err}"
    x64 = np.moveaxis(x.astype(np.float64), 1, -1).reshape(-1, c)
    want = np.empty_like(x64)
    for j in range(c):
        col = x64[:, j]
        mu = sum(col) / len(col) if training else float(mean[j])
        v = sum((e - mu) ** 2 for e in col) / len(col) if training else float(var[j])
        want[:, j] = [(e - mu) / math.sqrt(v + 1e-5) if math.isfinite(v) else math.nan for e in col]
        if affine:
            want[:, j] = want[:, j] * float(weight[j]) + float(bias[j])
    want = np.moveaxis(want.reshape((n,) + shape[2:] + (c,)), -1, 1)
    assert_close(got, want, dtype, what)


@PROPERTY
@given(lead=st.lists(st.integers(0, 3), min_size=1, max_size=3).map(tuple), k=st.integers(0, 4),
       o=st.integers(1, 3), bias=st.booleans(), dtype=DTYPES, seed=st.integers(0, 2**16),
       specials=SPECIALS, strided=st.booleans(), wrong=st.booleans())
def test_linear_property(lead, k, o, bias, dtype, seed, specials, strided, wrong):
    x = make_array(lead + (k,), dtype, seed, specials, strided)
    weight = make_array((o, k + int(wrong)), dtype, seed + 1)
    b = make_array((o,), dtype, seed + 2) if bias else None
    what = f"linear x{x.shape} w{weight.shape} {x.dtype}"

    def run():
        xt = Tensor(x, requires_grad=x.dtype.kind == "f")
        y = F.linear(xt, weight, b)
        y.backward(np.ones(y.shape, y.dtype))
        return y.numpy(), xt.grad

    got, err = outcome(run, x)
    if np.dtype(dtype).kind != "f":
        assert isinstance(err, (TypeError, ValueError) if wrong else TypeError), what
        return
    if wrong:
        assert isinstance(err, (ValueError, TypeError)), what
        return
    assert err is None, f"{what}: {err}"
    x2 = x.astype(np.float64).reshape(int(np.prod(lead)), k)
    want = np.array([[sum(x2[r, i] * float(weight[j, i]) for i in range(k)) + (float(b[j]) if bias else 0.0)
                      for j in range(o)] for r in range(x2.shape[0])]).reshape(lead + (o,))
    assert_close(got[0], want, dtype, what)


@PROPERTY
@given(shape=st.lists(st.integers(0, 3), min_size=1, max_size=4).map(tuple), data=st.data(),
       dtype=DTYPES, seed=st.integers(0, 2**16), strided=st.booleans())
def test_flatten_property(shape, data, dtype, seed, strided):
    nd = len(shape)
    start = data.draw(st.integers(-nd, nd - 1), "start_dim")
    end = data.draw(st.integers(-nd, nd - 1), "end_dim")
    x = make_array(shape, dtype, seed, (), strided)
    got, err = outcome(lambda: F.flatten(Tensor(x), start, end).numpy())
    s, e = start % nd, end % nd
    if s > e:
        assert isinstance(err, (ValueError, IndexError)), (shape, start, end)
        return
    assert err is None, err
    want_shape = shape[:s] + (int(np.prod(shape[s:e + 1])),) + shape[e + 1:]
    np.testing.assert_array_equal(got, x.reshape(want_shape))
    if torch is not None:
        assert tuple(torch.flatten(torch.tensor(x), start, end).shape) == got.shape


# --- layers: output_shape agrees with forward --------------------------------------------------
def _layer(kind, data):
    from cnnlab import nn
    ints = st.integers(1, 3)
    if kind == "Conv2d":
        return nn.Conv2d(data.draw(st.integers(1, 3), "cin"), data.draw(ints, "cout"), data.draw(ints, "k"),
                         stride=data.draw(ints, "s"), padding=data.draw(st.one_of(st.integers(0, 2),
                                                                                  st.sampled_from(["same", "valid"]))),
                         dilation=data.draw(st.integers(1, 2), "d"),
                         padding_mode=data.draw(st.sampled_from(["zeros", "reflect", "replicate", "circular"])))
    if kind in ("MaxPool2d", "AvgPool2d", "MinPool2d"):
        k = data.draw(ints, "k")
        return getattr(nn, kind)(k, stride=data.draw(st.one_of(st.none(), ints), "s"),
                                 padding=data.draw(st.integers(0, k // 2), "p"), ceil_mode=data.draw(st.booleans()))
    if kind in ("AdaptiveAvgPool2d", "AdaptiveMaxPool2d"):
        return getattr(nn, kind)(data.draw(st.one_of(ints, st.tuples(st.one_of(st.none(), ints), ints)), "size"))
    if kind == "FractionalMaxPool2d":
        if data.draw(st.booleans(), "by size"):
            return nn.FractionalMaxPool2d(data.draw(ints, "k"), output_size=data.draw(ints, "size"))
        return nn.FractionalMaxPool2d(data.draw(ints, "k"), output_ratio=data.draw(st.floats(0.1, 0.9), "ratio"))
    if kind in ("GLU", "Softmax", "LogSoftmax"):
        return getattr(nn, kind)(data.draw(st.integers(-5, 4), "dim"))
    if kind == "BatchNorm2d":
        return nn.BatchNorm2d(data.draw(st.integers(1, 3), "features"))
    if kind == "Linear":
        return nn.Linear(data.draw(st.integers(1, 4), "in"), data.draw(ints, "out"))
    return getattr(nn, kind)()


@PROPERTY
@given(kind=st.sampled_from(["Conv2d", "MaxPool2d", "AvgPool2d", "MinPool2d", "AdaptiveAvgPool2d",
                             "AdaptiveMaxPool2d", "FractionalMaxPool2d", "GlobalAvgPool2d", "GlobalMaxPool2d",
                             "GLU", "Softmax", "LogSoftmax", "BatchNorm2d", "Linear", "ReLU", "GELU", "Flatten"]),
       shape=st.lists(st.integers(1, 6), min_size=1, max_size=4).map(tuple), data=st.data())
def test_layer_output_shape_agrees_with_forward(kind, shape, data):
    """Model files are built with ``output_shape``: it must refuse exactly the inputs forward refuses,
    and give forward's shape otherwise."""
    layer = _layer(kind, data)
    layer.eval()
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)  # the layers' dtype
    shape_out, shape_err = outcome(lambda: layer.output_shape(shape))
    y, err = outcome(lambda: layer(Tensor(x)).shape)
    what = f"{layer!r} on input {shape}: output_shape {shape_out or shape_err!r}, forward {y or err!r}"
    if kind in ("Softmax", "LogSoftmax") and len(shape) >= 2 and -len(shape) <= layer.dim < len(shape) \
            and layer.dim % len(shape) == 0:
        # deliberate: a model's softmax over the batch axis is refused when the model is built (it would
        # mix the images of a batch), while F.softmax(x, 0) on a tensor stays what PyTorch computes
        assert shape_err is not None and "batch axis" in str(shape_err), what
        return
    if err is None:
        assert shape_err is None and tuple(shape_out) == tuple(y), what
    else:
        assert shape_err is not None, what
