"""Activations: plain-math references, float64 gradient checks, PyTorch parity, extreme inputs."""
import math
import warnings

import numpy as np
import pytest

import cnnlab.functional as F
from cnnlab import Tensor
from cnnlab.functional.activation import erf

from conftest import gradcheck, torch_parity

RNG = np.random.default_rng(99)


def away_from_zero(shape, margin=0.05):
    """Random values at least ``margin`` away from 0 (finite differences across a kink are wrong)."""
    x = RNG.uniform(-2, 2, size=shape)
    return np.where(np.abs(x) < margin, np.sign(x + 1e-12) * margin * 2, x)


def _error_if_warned():
    """No NumPy overflow/divide/invalid flags and no Python warnings (underflow to 0 is exact here)."""
    return np.errstate(over="raise", divide="raise", invalid="raise")


# --- values against plain per-element math ----------------------------------------------------
def test_elementwise_values_against_math():
    xs = [-3.0, -0.5, 0.0, 0.25, 2.0, 7.5]
    x = np.array(xs)
    np.testing.assert_allclose(F.relu(x).numpy(), [max(0.0, v) for v in xs])
    np.testing.assert_allclose(F.leaky_relu(x, 0.2).numpy(), [v if v > 0 else 0.2 * v for v in xs])
    np.testing.assert_allclose(F.leaky_relu(x).numpy(), [v if v > 0 else 0.01 * v for v in xs])
    for slope in (-0.5, 1.0, 1.5, 3.0):  # the max/min formulation must hold for any slope
        np.testing.assert_allclose(F.leaky_relu(x, slope).numpy(), [v if v > 0 else slope * v for v in xs])
    np.testing.assert_allclose(F.sigmoid(x).numpy(), [1 / (1 + math.exp(-v)) for v in xs], rtol=1e-15)
    np.testing.assert_allclose(F.tanh(x).numpy(), [math.tanh(v) for v in xs], rtol=1e-15)
    np.testing.assert_allclose(F.gelu(x).numpy(), [v * 0.5 * (1 + math.erf(v / math.sqrt(2))) for v in xs],
                               rtol=1e-14, atol=2e-15)  # 1 + erf(x) cancels for x < 0 in the reference too
    tanh_ref = [0.5 * v * (1 + math.tanh(math.sqrt(2 / math.pi) * (v + 0.044715 * v ** 3))) for v in xs]
    np.testing.assert_allclose(F.gelu(x, approximate="tanh").numpy(), tanh_ref, rtol=1e-14, atol=1e-16)
    assert F.identity(x) is not None and np.array_equal(F.identity(x).numpy(), x)


def test_softmax_and_log_softmax_against_math():
    x = RNG.standard_normal((3, 4))
    for dim in (0, 1, -1):
        axis = dim % 2
        ref = np.zeros_like(x)
        for idx in np.ndindex(x.shape):
            line = x[:, idx[1]] if axis == 0 else x[idx[0], :]
            ref[idx] = math.exp(x[idx]) / sum(math.exp(v) for v in line)
        np.testing.assert_allclose(F.softmax(x, dim).numpy(), ref, rtol=1e-14)
        np.testing.assert_allclose(F.log_softmax(x, dim).numpy(), np.log(ref), rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(F.softmax(x, dim).numpy().sum(axis=axis), 1.0, rtol=1e-15)


def test_glu_values():
    x = RNG.standard_normal((2, 6, 3))
    a, b = x[:, :3], x[:, 3:]
    np.testing.assert_allclose(F.glu(x, dim=1).numpy(), a / (1 + np.exp(-b)), rtol=1e-14)
    assert F.glu(x, dim=1).shape == (2, 3, 3)
    assert F.glu(RNG.standard_normal((2, 4))).shape == (2, 2)


def test_erf_matches_math_erf():
    xs = np.concatenate([np.linspace(-7, 7, 281), [2.999999, 3.0, 3.000001, 5.999999, 6.0, 1e-10, -1e-300, 0.0,
                                                   30.0, -1e4]])
    ref = np.array([math.erf(v) for v in xs])
    np.testing.assert_allclose(erf(xs), ref, rtol=2e-15, atol=2e-16)
    assert erf(xs.astype(np.float32)).dtype == np.float32


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_and_shape_preserved(dtype):
    x = RNG.standard_normal((2, 3, 4, 4)).astype(dtype)
    for fn in (F.relu, F.leaky_relu, F.sigmoid, F.tanh, F.softmax, F.log_softmax, F.gelu,
               lambda t: F.gelu(t, approximate="tanh"), lambda t: F.softmax(t, dim=1)):
        out = fn(x)
        assert out.dtype == dtype and out.shape == x.shape
    assert F.glu(x, dim=2).dtype == dtype


# --- gradients ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name,fn", [
    ("relu", F.relu),
    ("leaky_relu", F.leaky_relu),
    ("leaky_relu_0.3", lambda t: F.leaky_relu(t, 0.3)),
    ("leaky_relu_neg", lambda t: F.leaky_relu(t, -0.5)),
    ("leaky_relu_steep", lambda t: F.leaky_relu(t, 2.5)),
    ("sigmoid", F.sigmoid),
    ("tanh", F.tanh),
    ("gelu", F.gelu),
    ("gelu_tanh", lambda t: F.gelu(t, approximate="tanh")),
    ("identity", lambda t: F.identity(t) * 1.0),
])
def test_elementwise_gradcheck(name, fn):
    gradcheck(fn, [away_from_zero((3, 5))])


def test_gelu_gradcheck_wide_range():
    x = np.linspace(-8, 8, 41)
    gradcheck(F.gelu, [x])
    gradcheck(lambda t: F.gelu(t, approximate="tanh"), [x])


@pytest.mark.parametrize("shape,dim", [((4,), 0), ((3, 4), 0), ((3, 4), 1), ((3, 4), -1), ((2, 3, 2, 2), 1),
                                       ((2, 3, 2, 2), -2), ((2, 3, 4), 0)])
def test_softmax_log_softmax_gradcheck(shape, dim):
    x = RNG.standard_normal(shape) * 2
    gradcheck(lambda t: F.softmax(t, dim), [x])
    gradcheck(lambda t: F.log_softmax(t, dim), [x])


@pytest.mark.parametrize("shape,dim", [((3, 4), -1), ((4, 3), 0), ((2, 6, 3), 1), ((2, 2, 3, 4), -1)])
def test_glu_gradcheck(shape, dim):
    gradcheck(lambda t: F.glu(t, dim), [RNG.standard_normal(shape)])


def test_relu_gradient_at_zero_is_zero_and_leaky_is_slope():
    x = Tensor(np.array([0.0, -1.0, 1.0]), requires_grad=True)
    F.relu(x).sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 0.0, 1.0])
    y = Tensor(np.array([0.0, -1.0, 1.0]), requires_grad=True)
    F.leaky_relu(y, 0.1).sum().backward()
    np.testing.assert_allclose(y.grad, [0.1, 0.1, 1.0])


# --- PyTorch parity ------------------------------------------------------------------------------
def test_activations_match_torch(torch):
    tF = torch.nn.functional
    x = RNG.standard_normal((2, 3, 4, 5)) * 3
    x[0, 0, 0, :3] = 0.0  # exact zeros: the subgradient convention must match too
    pairs = [
        (F.relu, tF.relu),
        (F.leaky_relu, tF.leaky_relu),
        (lambda t: F.leaky_relu(t, 0.2), lambda t: tF.leaky_relu(t, 0.2)),
        (F.sigmoid, torch.sigmoid),
        (F.tanh, torch.tanh),
        (F.gelu, tF.gelu),
        (lambda t: F.gelu(t, approximate="tanh"), lambda t: tF.gelu(t, approximate="tanh")),
    ]
    for i, (ours, theirs) in enumerate(pairs):
        torch_parity(torch, ours, theirs, [x], seed=i, rtol=1e-12, atol=1e-13)
    for dim in (0, 1, 2, 3, -1):
        torch_parity(torch, lambda t: F.softmax(t, dim), lambda t: tF.softmax(t, dim), [x], seed=dim + 10)
        torch_parity(torch, lambda t: F.log_softmax(t, dim), lambda t: tF.log_softmax(t, dim), [x], seed=dim + 20)
    for dim in (1, 3, -1):
        y = RNG.standard_normal((2, 4, 3, 6))
        torch_parity(torch, lambda t: F.glu(t, dim), lambda t: tF.glu(t, dim), [y], seed=dim + 30)


def test_float32_activations_close_to_torch(torch):
    tF = torch.nn.functional
    x = (RNG.standard_normal((4, 7)) * 4).astype(np.float32)
    for ours, theirs in [(F.gelu, tF.gelu), (F.sigmoid, torch.sigmoid), (F.log_softmax, lambda t: tF.log_softmax(t, -1))]:
        np.testing.assert_allclose(ours(x).numpy(), theirs(torch.from_numpy(x)).numpy(), rtol=2e-6, atol=2e-6)


# --- extreme inputs ------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_extreme_logits_no_warnings_and_exact_limits(dtype):
    x = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [1e4, 1e4, -1e4]], dtype=dtype)
    with _error_if_warned(), warnings.catch_warnings():
        warnings.simplefilter("error")
        s = F.softmax(Tensor(x, requires_grad=True), dim=1)
        ls = F.log_softmax(Tensor(x, requires_grad=True), dim=1)
        sig = F.sigmoid(Tensor(x, requires_grad=True))
        s.backward(np.ones_like(x))
        ls.backward(np.ones_like(x))
        sig.backward(np.ones_like(x))
        g = F.gelu(Tensor(x, requires_grad=True))
        g.backward(np.ones_like(x))
        gt = F.gelu(Tensor(x, requires_grad=True), approximate="tanh")
        gt.backward(np.ones_like(x))
    np.testing.assert_allclose(s.numpy(), [[1, 0, 0], [1 / 3, 1 / 3, 1 / 3], [0.5, 0.5, 0]], atol=1e-7)
    np.testing.assert_allclose(ls.numpy(), [[0, -2e4, -1e4], [-math.log(3)] * 3, [-math.log(2), -math.log(2), -2e4 - math.log(2)]],
                               rtol=1e-6)
    np.testing.assert_array_equal(sig.numpy(), [[1, 0, 0.5], [0, 0, 0], [1, 1, 0]])
    np.testing.assert_array_equal(g.numpy(), [[1e4, 0, 0], [0, 0, 0], [1e4, 1e4, 0]])
    np.testing.assert_array_equal(gt.numpy(), [[1e4, 0, 0], [0, 0, 0], [1e4, 1e4, 0]])
    for t in (s, ls, sig, g, gt):
        assert np.all(np.isfinite(t.numpy()))


# --- errors ------------------------------------------------------------------------------------
def test_non_float_input_is_a_type_error():
    for name, fn in [("relu", F.relu), ("sigmoid", F.sigmoid), ("softmax", F.softmax),
                     ("log_softmax", F.log_softmax), ("gelu", F.gelu), ("tanh", F.tanh),
                     ("leaky_relu", F.leaky_relu), ("glu", F.glu)]:
        with pytest.raises(TypeError, match=rf"{name}: expected a floating point input \(float32 or float64\), "
                                            r"got dtype int64"):
            fn(np.array([[1, 2]], dtype=np.int64))


def test_glu_odd_size_and_gelu_bad_mode():
    with pytest.raises(ValueError, match=r"glu: halving dimension -1 needs an even size, got 3 \(input shape "
                                         r"\(2, 3\)\)"):
        F.glu(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"gelu: approximate must be 'none' or 'tanh', got 'erf'"):
        F.gelu(np.zeros(2), approximate="erf")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_keeps_relative_precision_in_the_tails(dtype):
    """1 / (1 + e^-x) with e^-x allowed to overflow: exact limits, no warnings, and the tiny
    values of the far negative tail keep their relative precision (not rounded to 0)."""
    import warnings
    x = np.array([-1e4, -80, -30, -5, 0, 5, 30, 1e4], dtype=dtype)
    exact = np.array([1 / (1 + math.exp(-v)) if v > -700 else 0.0 for v in x.astype(np.float64)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = F.sigmoid(Tensor(x)).numpy()
    assert got.dtype == dtype
    tiny = np.finfo(dtype).tiny
    np.testing.assert_allclose(got[exact > tiny], exact[exact > tiny], rtol=4 * np.finfo(dtype).eps)
    assert got[0] == 0 and got[-1] == 1


# --- SiLU (x * sigmoid(x)), fused --------------------------------------------------------------
def test_silu_against_math_gradcheck_and_extremes():
    xs = [-30.0, -3.0, -0.5, 0.0, 0.25, 2.0, 7.5]
    np.testing.assert_allclose(F.silu(np.array(xs)).numpy(), [v / (1 + math.exp(-v)) for v in xs],
                               rtol=1e-15, atol=1e-300)
    gradcheck(F.silu, [RNG.uniform(-4, 4, size=(3, 5))])
    for dtype in (np.float32, np.float64):
        x = Tensor(np.array([-1e4, -80, 0, 80, 1e4], dtype=dtype), requires_grad=True)
        with _error_if_warned(), warnings.catch_warnings():
            warnings.simplefilter("error")
            y = F.silu(x)
            y.backward(np.ones(5, dtype))
        assert y.dtype == x.grad.dtype == dtype
        assert y.numpy()[0] == 0 and y.numpy()[-1] == dtype(1e4) and y.numpy()[1] < 0 and np.isfinite(y.numpy()).all()
        np.testing.assert_array_equal(x.grad[[0, 2, 4]], [0, 0.5, 1])
    assert F.silu(np.float64(2.0)).numpy() == pytest.approx(2 / (1 + math.exp(-2)), rel=1e-15)


def test_silu_matches_torch(torch):
    x = RNG.standard_normal((2, 3, 4, 5)) * 3
    torch_parity(torch, F.silu, torch.nn.functional.silu, [x], rtol=1e-12, atol=1e-13)
    x32 = (RNG.standard_normal((4, 7)) * 4).astype(np.float32)
    np.testing.assert_allclose(F.silu(x32).numpy(), torch.nn.functional.silu(torch.from_numpy(x32)).numpy(),
                               rtol=2e-6, atol=2e-6)
