"""Binary and regression losses (BCE, BCE with logits, MSE, L1, smooth L1, Huber): plain-loop
references, float64 gradient checks (input and target), PyTorch parity with weights and
broadcast pos_weight, and the errors."""
import math
import warnings

import numpy as np
import pytest

import cnnlab.functional as F
from cnnlab import Tensor

from conftest import gradcheck, torch_parity

RNG = np.random.default_rng(23)
REDUCTIONS = ("mean", "sum", "none")


def _reduce(losses, reduction, denominator=None):
    losses = np.asarray(losses)
    if reduction == "none":
        return losses
    return losses.sum() / ((losses.size if denominator is None else denominator) if reduction == "mean" else 1)


def _loop(fn, *arrays):
    out = np.zeros(arrays[0].shape)
    for idx in np.ndindex(*out.shape):
        out[idx] = fn(*(float(a[idx]) for a in arrays))
    return out


def naive_smooth_l1(d, beta):
    return 0.5 * d * d / beta if abs(d) < beta else abs(d) - 0.5 * beta


def naive_huber(d, delta):
    return 0.5 * d * d if abs(d) < delta else delta * (abs(d) - 0.5 * delta)


def _log(v):
    return math.log(v) if v > 0 else -math.inf


def naive_bce(x, t, w=1.0):
    return -w * (t * max(_log(x), -100) + (1 - t) * max(_log(1 - x), -100))


def naive_bce_logits(x, t, w=1.0, p=1.0):
    s = 1 / (1 + math.exp(-x))
    return -w * (p * t * math.log(s) + (1 - t) * math.log(1 - s))


SHAPE = (3, 4, 2)


def _pair(shape=SHAPE):
    return RNG.standard_normal(shape) * 2, RNG.standard_normal(shape) * 2


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
def test_regression_losses_against_plain_loops(reduction, weighted):
    x, t = _pair()
    w = RNG.uniform(0.1, 2, size=SHAPE) if weighted else None
    ones = np.ones(SHAPE) if w is None else w
    for got, per_element, denominator in [
        (F.mse_loss(x, t, reduction=reduction, weight=w), _loop(lambda a, b, c: c * (a - b) ** 2, x, t, ones),
         ones.sum()),
        (F.l1_loss(x, t, reduction=reduction, weight=w), _loop(lambda a, b, c: c * abs(a - b), x, t, ones),
         ones.sum()),
        (F.huber_loss(x, t, reduction=reduction, delta=0.7, weight=w),
         _loop(lambda a, b, c: c * naive_huber(a - b, 0.7), x, t, ones), None),
    ]:
        np.testing.assert_allclose(got.numpy(), _reduce(per_element, reduction, denominator), rtol=1e-13)
    for beta in (0.0, 0.5, 2.0):
        f = (lambda a, b: abs(a - b)) if beta == 0 else (lambda a, b: naive_smooth_l1(a - b, beta))
        np.testing.assert_allclose(F.smooth_l1_loss(x, t, reduction=reduction, beta=beta).numpy(),
                                   _reduce(_loop(f, x, t), reduction), rtol=1e-13)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_against_plain_loops(reduction):
    x = RNG.uniform(0.01, 0.99, size=SHAPE)
    x.flat[:2] = [0.0, 1.0]  # log clamped at -100, as PyTorch
    t = RNG.uniform(0, 1, size=SHAPE)
    w = RNG.uniform(0.5, 2, size=(4, 1))
    np.testing.assert_allclose(F.binary_cross_entropy(x, t, reduction=reduction).numpy(),
                               _reduce(_loop(naive_bce, x, t), reduction), rtol=1e-13)
    np.testing.assert_allclose(F.binary_cross_entropy(x, t, w, reduction=reduction).numpy(),
                               _reduce(_loop(naive_bce, x, t, np.broadcast_to(w, SHAPE)), reduction), rtol=1e-13)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_with_logits_weight_and_pos_weight_against_plain_loops(reduction):
    x = RNG.standard_normal((2, 3, 4, 4)) * 2
    t = RNG.integers(0, 2, size=x.shape).astype(float)
    w = RNG.uniform(0.5, 2, size=(1, 1, 4, 4))
    pw = RNG.uniform(0.5, 4, size=(3, 1, 1))  # one per channel of an (N, C, H, W) multi-label map
    want = _reduce(_loop(naive_bce_logits, x, t, np.broadcast_to(w, x.shape), np.broadcast_to(pw, x.shape)),
                   reduction)
    got = F.binary_cross_entropy_with_logits(x, t, w, reduction=reduction, pos_weight=pw)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)


# --- gradients ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_regression_gradchecks_input_and_target(reduction):
    x, t = _pair((2, 3, 2))
    w = RNG.uniform(0.1, 2, size=(2, 3, 2))
    for fn in [lambda a, b: F.mse_loss(a, b, reduction=reduction), lambda a, b: F.mse_loss(a, b, reduction=reduction,
                                                                                           weight=w),
               lambda a, b: F.l1_loss(a, b, reduction=reduction, weight=w),
               lambda a, b: F.smooth_l1_loss(a, b, reduction=reduction, beta=0.8),
               lambda a, b: F.smooth_l1_loss(a, b, reduction=reduction, beta=0.0),
               lambda a, b: F.huber_loss(a, b, reduction=reduction, delta=1.3, weight=w)]:
        gradcheck(fn, [x, t])


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_binary_gradchecks(reduction):
    p = RNG.uniform(0.05, 0.95, size=(3, 4))
    t = RNG.uniform(0, 1, size=(3, 4))
    w = RNG.uniform(0.5, 2, size=4)
    gradcheck(lambda a: F.binary_cross_entropy(a, t, w, reduction=reduction), [p])
    x = RNG.standard_normal((2, 3, 2, 2))
    y = RNG.uniform(0, 1, size=x.shape)
    gradcheck(lambda a: F.binary_cross_entropy_with_logits(a, y, np.full((2, 2), 0.7), reduction=reduction,
                                                            pos_weight=np.array([[[1.5]], [[0.5]], [[3.0]]])), [x])


# --- PyTorch --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_regression_losses_match_torch(torch, reduction):
    tF = torch.nn.functional
    x, t = _pair()
    w = RNG.uniform(0.1, 2, size=SHAPE)
    tw = torch.from_numpy(w)
    cases = [(lambda a, b: F.mse_loss(a, b, reduction=reduction), lambda a, b: tF.mse_loss(a, b, reduction=reduction)),
             (lambda a, b: F.mse_loss(a, b, reduction=reduction, weight=w),
              lambda a, b: tF.mse_loss(a, b, reduction=reduction, weight=tw)),
             (lambda a, b: F.l1_loss(a, b, reduction=reduction), lambda a, b: tF.l1_loss(a, b, reduction=reduction)),
             (lambda a, b: F.l1_loss(a, b, reduction=reduction, weight=w),
              lambda a, b: tF.l1_loss(a, b, reduction=reduction, weight=tw)),
             (lambda a, b: F.huber_loss(a, b, reduction=reduction, delta=0.6, weight=w),
              lambda a, b: tF.huber_loss(a, b, reduction=reduction, delta=0.6, weight=tw)),
             (lambda a, b: F.huber_loss(a, b, reduction=reduction),
              lambda a, b: tF.huber_loss(a, b, reduction=reduction))]
    cases += [(lambda a, b, beta=beta: F.smooth_l1_loss(a, b, reduction=reduction, beta=beta),
               lambda a, b, beta=beta: tF.smooth_l1_loss(a, b, reduction=reduction, beta=beta))
              for beta in (0.0, 0.5, 1.0, 3.0)]
    for seed, (ours, theirs) in enumerate(cases):
        torch_parity(torch, ours, theirs, [x, t], seed=seed)  # input and target gradients


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_binary_losses_match_torch(torch, reduction):
    tF = torch.nn.functional
    p = RNG.uniform(0.02, 0.98, size=(4, 3))
    t = RNG.uniform(0, 1, size=(4, 3))
    for w in (None, RNG.uniform(0.5, 2, size=3), RNG.uniform(0.5, 2, size=(4, 1))):
        tw = None if w is None else torch.from_numpy(w)
        torch_parity(torch, lambda a: F.binary_cross_entropy(a, t, w, reduction=reduction),
                     lambda a: tF.binary_cross_entropy(a, torch.from_numpy(t), tw, reduction=reduction), [p])
    x = RNG.standard_normal((2, 3, 4, 5)) * 3
    y = RNG.integers(0, 2, size=x.shape).astype(float)
    for w, pw in [(None, None), (RNG.uniform(0.5, 2, size=(4, 5)), None), (None, RNG.uniform(0.5, 4, size=5)),
                  (RNG.uniform(0.5, 2, size=(2, 1, 1, 1)), RNG.uniform(0.5, 4, size=(3, 1, 1)))]:
        torch_parity(torch, lambda a: F.binary_cross_entropy_with_logits(a, y, w, reduction=reduction, pos_weight=pw),
                     lambda a: tF.binary_cross_entropy_with_logits(
                         a, torch.from_numpy(y), None if w is None else torch.from_numpy(w), reduction=reduction,
                         pos_weight=None if pw is None else torch.from_numpy(pw)), [x])


def test_empty_inputs_give_torchs_values(torch):
    x = np.zeros((0, 3))
    for ours, theirs in [(F.mse_loss, torch.nn.functional.mse_loss), (F.l1_loss, torch.nn.functional.l1_loss),
                         (F.binary_cross_entropy_with_logits, torch.nn.functional.binary_cross_entropy_with_logits)]:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            got = ours(x, x)
        assert math.isnan(got.item()) and math.isnan(float(theirs(torch.from_numpy(x), torch.from_numpy(x))))
        assert ours(x, x, reduction="sum").item() == 0.0


def test_bce_at_the_edges_is_finite():
    x = Tensor(np.array([0.0, 1.0, 0.0, 1.0]), requires_grad=True)
    t = np.array([0.0, 1.0, 1.0, 0.0])
    with np.errstate(all="raise"):
        loss = F.binary_cross_entropy(x, t, reduction="none")
        loss.backward(np.ones(4))
    np.testing.assert_allclose(loss.numpy(), [0, 0, 100, 100])
    np.testing.assert_allclose(x.grad, [0, 0, -1e12, 1e12])


# --- errors -------------------------------------------------------------------------------------------
def test_pos_weight_of_the_wrong_shape_names_both_shapes():
    x, y = np.zeros((2, 3)), np.zeros((2, 3))
    with pytest.raises(ValueError, match=r"binary_cross_entropy_with_logits: pos_weight of shape \(4,\) does not "
                                         r"broadcast to the input's shape \(2, 3\) \(e.g. one weight per class of "
                                         r"the last dimension: shape \(3,\)\)"):
        F.binary_cross_entropy_with_logits(x, y, pos_weight=np.ones(4))
    with pytest.raises(ValueError, match=r"pos_weight of shape \(2, 2, 3\) does not broadcast to the input's shape "
                                         r"\(2, 3\)"):
        F.binary_cross_entropy_with_logits(x, y, pos_weight=np.ones((2, 2, 3)))  # would grow the output
    with pytest.raises(ValueError, match=r"binary_cross_entropy_with_logits: weight of shape \(3, 1\) does not "
                                         r"broadcast to the input's shape \(2, 3\)"):
        F.binary_cross_entropy_with_logits(x, y, np.ones((3, 1)))
    with pytest.raises(ValueError, match=r"binary_cross_entropy: weight of shape \(2,\) does not broadcast"):
        F.binary_cross_entropy(np.full((2, 3), 0.5), y, np.ones(2))


def test_elementwise_loss_errors():
    with pytest.raises(ValueError, match=r"binary_cross_entropy: all elements of input should be between 0 and 1, "
                                         r"got 1.5 \(for raw scores use binary_cross_entropy_with_logits\)"):
        F.binary_cross_entropy(np.array([0.5, 1.5]), np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"all elements of input should be between 0 and 1, got nan"):
        F.binary_cross_entropy(np.array([0.5, np.nan]), np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"binary_cross_entropy: all elements of target should be between 0 and 1, "
                                         r"got -1.0$"):
        F.binary_cross_entropy(np.array([0.5, 0.5]), np.array([-1.0, 1.0]))
    with pytest.raises(ValueError, match=r"l1_loss: target shape \(3,\) must equal input shape \(3, 1\)"):
        F.l1_loss(np.zeros((3, 1)), np.zeros(3))
    with pytest.raises(ValueError, match=r"mse_loss: weight of shape \(3,\) must have the input's shape \(2, 3\)"):
        F.mse_loss(np.zeros((2, 3)), np.zeros((2, 3)), weight=np.ones(3))
    with pytest.raises(ValueError, match=r"smooth_l1_loss: beta must be a number >= 0, got -1"):
        F.smooth_l1_loss(np.zeros(2), np.zeros(2), beta=-1)
    with pytest.raises(ValueError, match=r"huber_loss: delta must be a number > 0, got 0"):
        F.huber_loss(np.zeros(2), np.zeros(2), delta=0)
    with pytest.raises(ValueError, match=r"huber_loss: reduction must be one of \('mean', 'sum', 'none'\), got 'avg'"):
        F.huber_loss(np.zeros(2), np.zeros(2), "avg")
    with pytest.raises(TypeError, match=r"mse_loss: size_average must be True, False or None \(deprecated; use "
                                        r"reduction=\), got 'sum'; pass the reduction by name: reduction='sum'"):
        F.mse_loss(np.zeros(2), np.zeros(2), "sum")
    with pytest.raises(TypeError, match=r"binary_cross_entropy_with_logits: weight must be an array of weights, got "
                                        r"'none'"):
        F.binary_cross_entropy_with_logits(np.zeros(2), np.zeros(2), "none")
    with pytest.raises(TypeError, match=r"l1_loss: expected floating point input, got dtype int64"):
        F.l1_loss(np.zeros(2, dtype=np.int64), np.zeros(2))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_target_gradients_match_torch_and_central_differences(torch, reduction):
    """As PyTorch, a float target that requires a gradient gets one (soft targets, distillation)."""
    tF = torch.nn.functional
    x = RNG.standard_normal((3, 4)) * 2
    y = RNG.uniform(0.05, 0.95, size=(3, 4))
    p = RNG.uniform(0.05, 0.95, size=(3, 4))
    w, pw = RNG.uniform(0.5, 2, size=4), RNG.uniform(0.5, 3, size=4)
    cases = [
        (lambda a, b: F.binary_cross_entropy_with_logits(a, b, reduction=reduction),
         lambda a, b: tF.binary_cross_entropy_with_logits(a, b, reduction=reduction), [x, y]),
        (lambda a, b: F.binary_cross_entropy_with_logits(a, b, w, reduction=reduction, pos_weight=pw),
         lambda a, b: tF.binary_cross_entropy_with_logits(a, b, torch.from_numpy(w), reduction=reduction,
                                                          pos_weight=torch.from_numpy(pw)), [x, y]),
        (lambda a, b: F.binary_cross_entropy(a, b, w, reduction=reduction),
         lambda a, b: tF.binary_cross_entropy(a, b, torch.from_numpy(w), reduction=reduction), [p, y]),
        (lambda a, b: F.cross_entropy(a, b, reduction=reduction),
         lambda a, b: tF.cross_entropy(a, b, reduction=reduction), [x, y]),
        (lambda a, b: F.cross_entropy(a, b, w, reduction=reduction, label_smoothing=0.2),
         lambda a, b: tF.cross_entropy(a, b, torch.from_numpy(w), reduction=reduction, label_smoothing=0.2), [x, y]),
        (lambda a, b: F.cross_entropy(a[0], b[0], reduction=reduction),
         lambda a, b: tF.cross_entropy(a[0], b[0], reduction=reduction), [x, y]),
    ]
    for seed, (ours, theirs, inputs) in enumerate(cases):
        torch_parity(torch, ours, theirs, inputs, seed=seed)
        gradcheck(ours, inputs)
