"""Losses: plain-loop references, float64 gradient checks, PyTorch parity, extreme logits, errors."""
import math
import warnings

import numpy as np
import pytest

import cnnlab.functional as F
from cnnlab import Tensor

from conftest import gradcheck, torch_parity

RNG = np.random.default_rng(5)
REDUCTIONS = ("mean", "sum", "none")


def _reduce(values, reduction):
    if reduction == "none":
        return np.array(values)
    return sum(values) / (len(values) if reduction == "mean" else 1)


def naive_cross_entropy(x, t, reduction="mean", label_smoothing=0.0):
    N, C = x.shape
    losses = []
    for i in range(N):
        log_z = math.log(sum(math.exp(v) for v in x[i]))
        loss = 0.0
        for c in range(C):
            q = (1 - label_smoothing) * (c == t[i]) + label_smoothing / C
            loss -= q * (x[i, c] - log_z)
        losses.append(loss)
    return _reduce(losses, reduction)


def naive_bce_with_logits(x, t, reduction="mean", pos_weight=None):
    flat_x, flat_t = x.ravel(), t.ravel()
    pw = np.broadcast_to(1.0 if pos_weight is None else np.asarray(pos_weight, float), x.shape).ravel()
    losses = []
    for v, y, p in zip(flat_x, flat_t, pw):
        s = 1 / (1 + math.exp(-v))
        losses.append(-(p * y * math.log(s) + (1 - y) * math.log(1 - s)))
    out = _reduce(losses, reduction)
    return out.reshape(x.shape) if reduction == "none" else out


def labels(n, c):
    return RNG.integers(0, c, size=n)


# --- values ----------------------------------------------------------------------------------
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("smoothing", [0.0, 0.1, 1.0])
def test_cross_entropy_against_plain_loops(reduction, smoothing):
    x, t = RNG.standard_normal((5, 4)) * 2, labels(5, 4)
    got = F.cross_entropy(x, t, reduction=reduction, label_smoothing=smoothing)
    np.testing.assert_allclose(got.numpy(), naive_cross_entropy(x, t, reduction, smoothing), rtol=1e-13)
    assert got.shape == ((5,) if reduction == "none" else ())


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_nll_loss_against_plain_loops(reduction):
    x, t = F.log_softmax(RNG.standard_normal((6, 3)), 1).numpy(), labels(6, 3)
    want = _reduce([-x[i, t[i]] for i in range(6)], reduction)
    np.testing.assert_allclose(F.nll_loss(x, t, reduction=reduction).numpy(), want, rtol=1e-14)
    # log_softmax + nll_loss == cross_entropy
    logits = RNG.standard_normal((6, 3))
    np.testing.assert_allclose(F.nll_loss(F.log_softmax(logits, 1), t, reduction=reduction).numpy(),
                               F.cross_entropy(logits, t, reduction=reduction).numpy(), rtol=1e-14)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("pos_weight", [None, 3.0, "vector"])
def test_bce_with_logits_against_plain_loops(reduction, pos_weight):
    x = RNG.standard_normal((4, 3)) * 3
    t = RNG.integers(0, 2, size=(4, 3)).astype(float)
    t[0, 0] = 0.3  # soft targets are allowed
    pw = RNG.uniform(0.5, 4, size=3) if pos_weight == "vector" else pos_weight
    got = F.binary_cross_entropy_with_logits(x, t, reduction=reduction, pos_weight=pw)
    np.testing.assert_allclose(got.numpy(), naive_bce_with_logits(x, t, reduction, pw), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_mse_against_plain_loops(reduction):
    x, t = RNG.standard_normal((3, 4)), RNG.standard_normal((3, 4))
    want = _reduce([(a - b) ** 2 for a, b in zip(x.ravel(), t.ravel())], reduction)
    want = want.reshape(3, 4) if reduction == "none" else want
    np.testing.assert_allclose(F.mse_loss(x, t, reduction=reduction).numpy(), want, rtol=1e-14)


def test_targets_may_be_tensors_and_int32():
    x = RNG.standard_normal((4, 3))
    t = labels(4, 3)
    ref = F.cross_entropy(x, t).numpy()
    np.testing.assert_allclose(F.cross_entropy(x, Tensor(t)).numpy(), ref)
    np.testing.assert_allclose(F.cross_entropy(x, t.astype(np.int32)).numpy(), ref)
    np.testing.assert_allclose(F.cross_entropy(x, t.astype(np.uint8)).numpy(), ref)
    y = RNG.standard_normal((4, 3))
    np.testing.assert_allclose(F.mse_loss(x, Tensor(y)).numpy(), F.mse_loss(x, y).numpy())


def test_float32_losses_stay_float32():
    x = RNG.standard_normal((4, 3)).astype(np.float32)
    t = labels(4, 3)
    assert F.cross_entropy(x, t).dtype == np.float32
    assert F.cross_entropy(x, t, label_smoothing=0.1).dtype == np.float32
    assert F.nll_loss(x, t).dtype == np.float32
    assert F.binary_cross_entropy_with_logits(x, (x > 0).astype(np.float32)).dtype == np.float32
    assert F.mse_loss(x, x * 0).dtype == np.float32
    xt = Tensor(x, requires_grad=True)
    F.cross_entropy(xt, t, label_smoothing=0.2).backward()
    assert xt.grad.dtype == np.float32


# --- gradients -------------------------------------------------------------------------------
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("smoothing", [0.0, 0.15, 1.0])
def test_cross_entropy_gradcheck(reduction, smoothing):
    x, t = RNG.standard_normal((4, 5)), labels(4, 5)
    gradcheck(lambda a: F.cross_entropy(a, t, reduction=reduction, label_smoothing=smoothing), [x])


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_nll_loss_gradcheck(reduction):
    x, t = RNG.standard_normal((4, 3)), np.array([0, 2, 2, 1])
    gradcheck(lambda a: F.nll_loss(a, t, reduction=reduction), [x])
    gradcheck(lambda a: F.nll_loss(F.log_softmax(a, 1), t, reduction=reduction), [x])


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("pos_weight", [None, 2.5, "vector"])
def test_bce_with_logits_gradcheck(reduction, pos_weight):
    x = RNG.standard_normal((3, 4)) * 2
    t = RNG.uniform(0, 1, size=(3, 4))
    pw = RNG.uniform(0.5, 3, size=4) if pos_weight == "vector" else pos_weight
    gradcheck(lambda a: F.binary_cross_entropy_with_logits(a, t, reduction=reduction, pos_weight=pw), [x])


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_mse_gradcheck(reduction):
    x, t = RNG.standard_normal((2, 3, 2)), RNG.standard_normal((2, 3, 2))
    gradcheck(lambda a: F.mse_loss(a, t, reduction=reduction), [x])


def test_loss_of_a_shared_input_accumulates():
    x, t = RNG.standard_normal((3, 4)), labels(3, 4)
    gradcheck(lambda a: F.cross_entropy(a, t) + F.mse_loss(a, a.numpy() * 0) * 0.5
              + F.binary_cross_entropy_with_logits(a, (a.numpy() > 0).astype(float), reduction="sum"), [x])


# --- PyTorch parity -----------------------------------------------------------------------------
def test_losses_match_torch(torch):
    tF = torch.nn.functional
    for trial in range(3):
        N, C = int(RNG.integers(1, 6)), int(RNG.integers(2, 6))
        x = RNG.standard_normal((N, C)) * 3
        t = labels(N, C)
        tt = torch.from_numpy(t)
        for reduction in REDUCTIONS:
            for eps in (0.0, 0.1, 0.7):
                torch_parity(torch, lambda a: F.cross_entropy(a, t, reduction=reduction, label_smoothing=eps),
                             lambda a: tF.cross_entropy(a, tt, reduction=reduction, label_smoothing=eps),
                             [x], seed=trial)
            torch_parity(torch, lambda a: F.nll_loss(F.log_softmax(a, 1), t, reduction=reduction),
                         lambda a: tF.nll_loss(tF.log_softmax(a, 1), tt, reduction=reduction), [x], seed=trial)
            y = RNG.uniform(0, 1, size=(N, C))
            pw = RNG.uniform(0.2, 5, size=C)
            for weight in (None, pw):
                torch_parity(torch, lambda a: F.binary_cross_entropy_with_logits(a, y, reduction=reduction,
                                                                                 pos_weight=weight),
                             lambda a: tF.binary_cross_entropy_with_logits(
                                 a, torch.from_numpy(y), reduction=reduction,
                                 pos_weight=None if weight is None else torch.from_numpy(weight)),
                             [x], seed=trial)
            torch_parity(torch, lambda a: F.mse_loss(a, y, reduction=reduction),
                         lambda a: tF.mse_loss(a, torch.from_numpy(y), reduction=reduction), [x], seed=trial)


# --- extreme logits --------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_extreme_logits_are_stable(dtype):
    x = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4], [0.0, 0.0, 0.0]], dtype=dtype)
    t = np.array([0, 0, 2])
    y = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0]], dtype=dtype)
    with np.errstate(over="raise", divide="raise", invalid="raise"), warnings.catch_warnings():
        warnings.simplefilter("error")
        xt = Tensor(x, requires_grad=True)
        ce = F.cross_entropy(xt, t, reduction="none")
        ce.backward(np.ones(3, dtype))
        ce_s = F.cross_entropy(Tensor(x, requires_grad=True), t, label_smoothing=0.1)
        ce_s.backward()
        xb = Tensor(x, requires_grad=True)
        bce = F.binary_cross_entropy_with_logits(xb, y, reduction="none", pos_weight=np.array([2.0, 1, 1]))
        bce.backward(np.ones_like(x))
    np.testing.assert_allclose(ce.numpy(), [0.0, 2e4 + math.log(2), math.log(3)], rtol=1e-6)
    np.testing.assert_allclose(xt.grad, [[0, 0, 0], [-1, 0.5, 0.5], [1 / 3, 1 / 3, -2 / 3]], atol=1e-6)
    assert np.isfinite(ce_s.numpy())
    np.testing.assert_allclose(bce.numpy(), [[0, 0, math.log(2)], [0, 0, 1e4],
                                         [2 * math.log(2), math.log(2), math.log(2)]], rtol=1e-6)
    np.testing.assert_allclose(xb.grad, [[0, 0, -0.5], [0, 0, 1], [-1, -0.5, 0.5]], atol=1e-6)


# --- errors ----------------------------------------------------------------------------------------
def test_mismatched_loss_shapes():
    with pytest.raises(ValueError, match=r"mse_loss: target shape \(3,\) must equal input shape \(3, 1\)"):
        F.mse_loss(np.zeros((3, 1)), np.zeros(3))
    with pytest.raises(ValueError, match=r"binary_cross_entropy_with_logits: target shape \(2, 3\) must equal "
                                         r"input shape \(2, 4\)"):
        F.binary_cross_entropy_with_logits(np.zeros((2, 4)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"cross_entropy: expected target of shape \(4,\) for input of shape "
                                         r"\(4, 3\), got target of shape \(4, 1\)"):
        F.cross_entropy(np.zeros((4, 3)), np.zeros((4, 1), dtype=int))
    with pytest.raises(ValueError, match=r"cross_entropy: expected target of shape \(2, 4\) for input of shape "
                                         r"\(2, 3, 4\), got target of shape \(2,\)"):
        F.cross_entropy(np.zeros((2, 3, 4)), np.zeros(2, dtype=int))
    with pytest.raises(ValueError, match=r"cross_entropy: expected input of shape \(N, C\), \(N, C, d1, ...\) or "
                                         r"\(C,\) with C >= 1 classes, got \(\)"):
        F.cross_entropy(np.zeros(()), np.zeros((), dtype=int))
    with pytest.raises(ValueError, match=r"nll_loss: expected target of shape \(2,\) for input of shape "
                                         r"\(2, 5\), got target of shape \(3,\)"):
        F.nll_loss(np.zeros((2, 5)), np.zeros(3, dtype=int))


def test_labels_out_of_range():
    with pytest.raises(ValueError, match=r"cross_entropy: labels must be in \[0, 3\) for 3 classes, got label 3"):
        F.cross_entropy(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ValueError, match=r"cross_entropy: labels must be in \[0, 3\) for 3 classes, got label -1"):
        F.cross_entropy(np.zeros((2, 3)), np.array([-1, 0]))
    with pytest.raises(ValueError, match=r"nll_loss: labels must be in \[0, 2\) for 2 classes, got label 7"):
        F.nll_loss(np.zeros((2, 2)), np.array([1, 7]))


def test_float_labels_for_cross_entropy():
    with pytest.raises(TypeError, match=r"cross_entropy: expected integer class labels, got target of dtype "
                                        r"float64"):
        F.cross_entropy(np.zeros((2, 3)), np.array([0.0, 1.0]))
    with pytest.raises(TypeError, match=r"nll_loss: expected integer class labels, got target of dtype float32"):
        F.nll_loss(np.zeros((2, 3)), Tensor([0.0, 1.0]))


def test_bad_reduction_smoothing_and_dtype():
    with pytest.raises(ValueError, match=r"reduction must be one of \('mean', 'sum', 'none'\), got 'avg'"):
        F.cross_entropy(np.zeros((2, 3)), np.array([0, 1]), reduction="avg")
    with pytest.raises(ValueError, match=r"reduction must be one of .* got 'max'"):
        F.mse_loss(np.zeros(2), np.zeros(2), reduction="max")
    with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\], got 1.5"):
        F.cross_entropy(np.zeros((2, 3)), np.array([0, 1]), label_smoothing=1.5)
    with pytest.raises(TypeError, match=r"cross_entropy: expected floating point input, got dtype int64"):
        F.cross_entropy(np.zeros((2, 3), dtype=np.int64), np.array([0, 1]))
    with pytest.raises(TypeError, match=r"mse_loss: expected floating point input, got dtype int64"):
        F.mse_loss(np.zeros(3, dtype=np.int64), np.zeros(3))
