"""flatten, linear, dropout and batch_norm: references, gradient checks, PyTorch parity, errors."""
import numpy as np
import pytest

import cnnlab.functional as F
from cnnlab import Tensor

from conftest import gradcheck, torch_parity

RNG = np.random.default_rng(21)


# --- flatten ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("start,end,shape", [(1, -1, (2, 3, 4, 5)), (0, -1, (2, 3, 4)), (1, 2, (2, 3, 4, 5)),
                                             (2, 3, (2, 3, 4, 5)), (-2, -1, (2, 3, 4)), (1, 1, (2, 3, 4))])
def test_flatten_values_shape_and_grad(start, end, shape):
    x = RNG.standard_normal(shape)
    out = F.flatten(x, start, end)
    s, e = start % len(shape), end % len(shape)
    want_shape = shape[:s] + (int(np.prod(shape[s:e + 1])),) + shape[e + 1:]
    assert out.shape == want_shape
    np.testing.assert_array_equal(out.numpy(), x.reshape(want_shape))
    gradcheck(lambda t: F.flatten(t, start, end), [x])


def test_flatten_of_a_conv_output_view_is_in_nchw_order():
    """conv2d returns an NCHW view of (C, H, W, N) memory; flatten must still follow NCHW order."""
    x, w = RNG.standard_normal((3, 2, 4, 4)), RNG.standard_normal((2, 2, 3, 3))
    h = F.conv2d(x, w)
    flat = F.flatten(h)
    np.testing.assert_array_equal(flat.numpy(), np.ascontiguousarray(h.numpy()).reshape(3, -1))
    gradcheck(lambda a, b: F.flatten(F.conv2d(a, b)), [x, w])


def test_flatten_matches_torch(torch):
    x = RNG.standard_normal((2, 3, 4, 2))
    for start, end in ((1, -1), (0, 2), (2, 3)):
        torch_parity(torch, lambda t: F.flatten(t, start, end), lambda t: torch.flatten(t, start, end), [x])


def test_flatten_bad_dims():
    with pytest.raises(ValueError, match=r"flatten: start_dim 2 comes after end_dim 1 for a 4-D input"):
        F.flatten(np.zeros((2, 3, 4, 5)), 2, 1)


# --- linear ----------------------------------------------------------------------------------------
def naive_linear(x, w, b=None):
    """Every output neuron: sum over inputs of input value times its weight, plus the bias."""
    flat = x.reshape(-1, x.shape[-1])
    out = np.zeros((flat.shape[0], w.shape[0]))
    for n in range(flat.shape[0]):
        for o in range(w.shape[0]):
            total = 0.0 if b is None else b[o]
            for i in range(w.shape[1]):
                total += flat[n, i] * w[o, i]
            out[n, o] = total
    return out.reshape(x.shape[:-1] + (w.shape[0],))


@pytest.mark.parametrize("xshape", [(4,), (1, 4), (3, 4), (2, 3, 4)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_reference_and_gradcheck(xshape, bias):
    x, w = RNG.standard_normal(xshape), RNG.standard_normal((5, 4))
    b = RNG.standard_normal(5) if bias else None
    np.testing.assert_allclose(F.linear(x, w, b).numpy(), naive_linear(x, w, b), rtol=1e-13, atol=1e-14)
    if bias:
        gradcheck(F.linear, [x, w, b])
    else:
        gradcheck(F.linear, [x, w])


def test_linear_matches_torch(torch):
    for trial, (xshape, out) in enumerate([((3, 7), 4), ((1, 2), 1), ((2, 5, 3), 6), ((3,), 2)]):
        x, w, b = RNG.standard_normal(xshape), RNG.standard_normal((out, xshape[-1])), RNG.standard_normal(out)
        torch_parity(torch, F.linear, torch.nn.functional.linear, [x, w, b], seed=trial)
        torch_parity(torch, F.linear, torch.nn.functional.linear, [x, w], seed=trial)


def test_linear_errors():
    with pytest.raises(ValueError, match=r"linear: input of shape \(2, 5\) has 5 features, but weight of shape "
                                         r"\(3, 4\) expects 4"):
        F.linear(np.zeros((2, 5)), np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"linear: expected weight of shape \(out_features, in_features\), "
                                         r"got \(4,\)"):
        F.linear(np.zeros((2, 4)), np.zeros(4))
    with pytest.raises(ValueError, match=r"linear: expected bias of shape \(3,\), got \(4,\)"):
        F.linear(np.zeros((2, 4)), np.zeros((3, 4)), np.zeros(4))
    with pytest.raises(TypeError, match=r"input and weight must have the same dtype, got input float32 and "
                                        r"weight float64"):
        F.linear(np.zeros((2, 4), np.float32), np.zeros((3, 4)))


# --- dropout ----------------------------------------------------------------------------------------
def test_dropout_zeroes_about_p_and_scales_the_rest():
    x = np.ones((200, 100))
    out = F.dropout(x, 0.3, True, np.random.default_rng(0)).numpy()
    kept = out != 0
    assert abs(kept.mean() - 0.7) < 0.01
    np.testing.assert_allclose(out[kept], 1 / 0.7)
    assert abs(out.mean() - 1.0) < 0.02


def test_dropout_is_reproducible_with_a_fixed_rng():
    x = RNG.standard_normal((4, 5))
    a = F.dropout(x, 0.5, True, np.random.default_rng(3)).numpy()
    b = F.dropout(x, 0.5, True, np.random.default_rng(3)).numpy()
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("p", [0.2, 0.5, 0.9])
def test_dropout_gradcheck_fixed_rng(p):
    x = RNG.standard_normal((3, 6))
    grads = gradcheck(lambda t: F.dropout(t, p, True, np.random.default_rng(11)), [x])
    mask = F.dropout(np.ones((3, 6)), p, True, np.random.default_rng(11)).numpy()
    assert np.array_equal(grads[0] == 0, mask == 0)


def test_dropout_identity_in_eval_and_p0_and_zero_at_p1():
    x = Tensor(RNG.standard_normal((3, 4)), requires_grad=True)
    np.testing.assert_array_equal(F.dropout(x, 0.5, training=False).numpy(), x.numpy())
    np.testing.assert_array_equal(F.dropout(x, 0.0).numpy(), x.numpy())
    out = F.dropout(x, 1.0)
    np.testing.assert_array_equal(out.numpy(), 0.0)
    out.sum().backward()
    np.testing.assert_array_equal(x.grad, 0.0)
    assert F.dropout(x.numpy().astype(np.float32), 0.5, True, np.random.default_rng(0)).dtype == np.float32


def test_dropout_bad_probability():
    with pytest.raises(ValueError, match=r"dropout probability has to be between 0 and 1, but got 1.5"):
        F.dropout(np.zeros(3), 1.5)
    with pytest.raises(ValueError, match=r"dropout probability has to be between 0 and 1, but got -0.1"):
        F.dropout(np.zeros(3), -0.1)


# --- batch norm -----------------------------------------------------------------------------------------
def naive_batch_norm(x, mean, var, weight, bias, eps):
    """Channel by channel: (x - mean) / sqrt(var + eps) * weight + bias."""
    out = np.zeros_like(x)
    for c in range(x.shape[1]):
        scale = 1.0 if weight is None else weight[c]
        shift = 0.0 if bias is None else bias[c]
        out[:, c] = (x[:, c] - mean[c]) / np.sqrt(var[c] + eps) * scale + shift
    return out


def _channel_stats(x):
    axes = (0,) if x.ndim == 2 else (0, 2, 3)
    count = x.size // x.shape[1]
    mean = x.mean(axis=axes)
    var = x.var(axis=axes)
    return mean, var, count


@pytest.mark.parametrize("shape", [(4, 3), (2, 3, 4, 5), (1, 2, 3, 3)])
@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm_training_reference_and_running_stats(shape, affine):
    x = RNG.standard_normal(shape) * 2 + 1
    C = shape[1]
    w, b = (RNG.standard_normal(C), RNG.standard_normal(C)) if affine else (None, None)
    rm, rv = RNG.standard_normal(C), RNG.uniform(0.5, 2, C)
    rm0, rv0 = rm.copy(), rv.copy()
    out = F.batch_norm(x, rm, rv, w, b, training=True, momentum=0.2, eps=1e-3)
    mean, var, count = _channel_stats(x)
    np.testing.assert_allclose(out.numpy(), naive_batch_norm(x, mean, var, w, b, 1e-3), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(rm, 0.8 * rm0 + 0.2 * mean, rtol=1e-13)
    np.testing.assert_allclose(rv, 0.8 * rv0 + 0.2 * var * count / (count - 1), rtol=1e-13)


@pytest.mark.parametrize("shape", [(4, 3), (2, 3, 4, 5)])
def test_batch_norm_eval_uses_running_stats_and_leaves_them(shape):
    x = RNG.standard_normal(shape)
    C = shape[1]
    w, b = RNG.standard_normal(C), RNG.standard_normal(C)
    rm, rv = RNG.standard_normal(C), RNG.uniform(0.5, 2, C)
    rm0, rv0 = rm.copy(), rv.copy()
    out = F.batch_norm(x, rm, rv, w, b, training=False)
    np.testing.assert_allclose(out.numpy(), naive_batch_norm(x, rm, rv, w, b, 1e-5), rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(rm, rm0)
    np.testing.assert_array_equal(rv, rv0)


@pytest.mark.parametrize("shape", [(5, 3), (2, 2, 3, 3)])
@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_gradcheck_input_weight_bias(shape, training):
    x = RNG.standard_normal(shape)
    C = shape[1]
    w, b = RNG.standard_normal(C), RNG.standard_normal(C)
    rm, rv = RNG.standard_normal(C), RNG.uniform(0.5, 2, C)

    def fn(x, w, b):
        # fresh copies: running statistics are updated in place in training mode
        return F.batch_norm(x, rm.copy(), rv.copy(), w, b, training=training)

    gradcheck(fn, [x, w, b])
    gradcheck(lambda x: F.batch_norm(x, rm.copy(), rv.copy(), training=training), [x])
    if training:
        gradcheck(lambda x: F.batch_norm(x, None, None, training=True), [x])


def test_batch_norm_of_a_conv_output_view():
    x, k = RNG.standard_normal((2, 2, 5, 5)), RNG.standard_normal((3, 2, 3, 3))
    w, b = RNG.standard_normal(3), RNG.standard_normal(3)
    gradcheck(lambda x, k, w, b: F.batch_norm(F.conv2d(x, k), None, None, w, b, training=True), [x, k, w, b])


@pytest.mark.parametrize("shape", [(6, 4), (3, 4, 5, 2), (1, 4, 2, 2)])
def test_batch_norm_matches_torch_incl_running_stats(torch, shape):
    C = shape[1]
    x = RNG.standard_normal(shape) * 3 - 1
    w, b = RNG.standard_normal(C), RNG.standard_normal(C)
    for training in (True, False):
        rm, rv = RNG.standard_normal(C), RNG.uniform(0.5, 2, C)
        t_rm, t_rv = torch.tensor(rm), torch.tensor(rv)
        torch_parity(torch, lambda x, w, b: F.batch_norm(x, rm, rv, w, b, training, 0.3, 1e-4),
                     lambda x, w, b: torch.nn.functional.batch_norm(x, t_rm, t_rv, w, b, training, 0.3, 1e-4),
                     [x, w, b])
        np.testing.assert_allclose(rm, t_rm.numpy(), rtol=1e-12)
        np.testing.assert_allclose(rv, t_rv.numpy(), rtol=1e-12)


def test_batch_norm_float32_stays_float32():
    x = RNG.standard_normal((2, 3, 4, 4)).astype(np.float32)
    rm, rv = np.zeros(3, np.float32), np.ones(3, np.float32)
    w = Tensor(np.ones(3, np.float32), requires_grad=True)
    xt = Tensor(x, requires_grad=True)
    for training in (True, False):
        out = F.batch_norm(xt, rm, rv, w, None, training)
        assert out.dtype == np.float32
        out.sum().backward()
    assert xt.grad.dtype == np.float32 and w.grad.dtype == np.float32
    assert rm.dtype == rv.dtype == np.float32


def test_batch_norm_errors():
    with pytest.raises(ValueError, match=r"batch_norm: expected a 2-D \(N, C\) or 4-D \(N, C, H, W\) input, "
                                         r"got \(2, 3, 4\)"):
        F.batch_norm(np.zeros((2, 3, 4)), np.zeros(3), np.ones(3))
    with pytest.raises(ValueError, match=r"batch_norm: expected running_mean of shape \(3,\) for input of shape "
                                         r"\(2, 3, 4, 4\), got \(4,\)"):
        F.batch_norm(np.zeros((2, 3, 4, 4)), np.zeros(4), np.ones(3))
    with pytest.raises(ValueError, match=r"batch_norm: expected weight of shape \(3,\) for input of shape "
                                         r"\(2, 3\), got \(2,\)"):
        F.batch_norm(np.zeros((2, 3)), np.zeros(3), np.ones(3), weight=np.ones(2))
    with pytest.raises(ValueError, match=r"expected more than 1 value per channel when training, got input of "
                                         r"shape \(1, 3\)"):
        F.batch_norm(np.zeros((1, 3)), None, None, training=True)
    with pytest.raises(ValueError, match=r"running_mean and running_var are required when training=False"):
        F.batch_norm(np.zeros((2, 3)), None, None, training=False)
