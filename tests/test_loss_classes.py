"""cross_entropy / nll_loss beyond the basics: per-class weights, ignore_index, label smoothing,
per-pixel (N, C, d1, ...) and unbatched (C,) inputs, class-probability targets -- against a plain
loop reference, float64 gradient checks and PyTorch."""
import itertools
import math

import numpy as np
import pytest

import cnnlab.functional as F
from cnnlab import Tensor

from conftest import gradcheck, torch_parity

RNG = np.random.default_rng(11)
REDUCTIONS = ("mean", "sum", "none")


def naive_cross_entropy(x, t, weight=None, ignore_index=-100, reduction="mean", eps=0.0, log_probs=False):
    """One target at a time; ``log_probs`` makes it nll_loss (x already log-probabilities, eps unused)."""
    unbatched = x.ndim == 1
    if unbatched:
        x, t = x[None], np.array([t])
    n, c = x.shape[:2]
    w = np.ones(c) if weight is None else weight
    losses = np.zeros((n,) + x.shape[2:])
    denominator = 0.0
    for i in range(n):
        for pos in np.ndindex(*x.shape[2:]):
            y = int(t[(i,) + pos])
            if y == ignore_index:
                continue
            scores = [x[(i, k) + pos] for k in range(c)]
            if log_probs:
                logp = scores
            else:
                m = max(scores)
                log_z = m + math.log(sum(math.exp(s - m) for s in scores))
                logp = [s - log_z for s in scores]
            loss = -(1 - eps) * w[y] * logp[y] - eps / c * sum(w[k] * logp[k] for k in range(c))
            losses[(i,) + pos] = loss
            denominator += w[y]
    if reduction == "none":
        return losses[0] if unbatched else losses
    if reduction == "sum":
        return losses.sum()
    return losses.sum() / denominator if denominator else float("nan")


def naive_soft_cross_entropy(x, q, weight=None, reduction="mean", eps=0.0):
    unbatched = x.ndim == 1
    if unbatched:
        x, q = x[None], q[None]
    n, c = x.shape[:2]
    w = np.ones(c) if weight is None else weight
    losses = np.zeros((n,) + x.shape[2:])
    for i in range(n):
        for pos in np.ndindex(*x.shape[2:]):
            scores = [x[(i, k) + pos] for k in range(c)]
            log_z = math.log(sum(math.exp(s) for s in scores))
            losses[(i,) + pos] = -sum(w[k] * ((1 - eps) * q[(i, k) + pos] + eps / c) * (scores[k] - log_z)
                                      for k in range(c))
    if reduction == "none":
        return losses[0] if unbatched else losses
    return losses.sum() / (losses.size if reduction == "mean" else 1)


def _case(shape, ignore_index=-100, n_ignored=0, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) * 2
    c = shape[1] if len(shape) > 1 else shape[0]
    t_shape = shape[:1] + shape[2:] if len(shape) > 1 else ()
    t = rng.integers(0, c, size=t_shape)
    if n_ignored:
        flat = t.reshape(-1)
        flat[rng.choice(flat.size, n_ignored, replace=False)] = ignore_index
    return x, t, rng.uniform(0.2, 3.0, size=c)


SHAPES = [(5, 4), (3, 4, 2, 3), (2, 3, 5), (4,), (1, 2, 1, 1)]
CONFIGS = [dict(), dict(weight=True), dict(ignore_index=-100, n_ignored=2), dict(ignore_index=1, weight=True),
           dict(eps=0.2), dict(eps=0.3, weight=True, n_ignored=2), dict(ignore_index=0, eps=0.1)]


def _unpack(shape, cfg, seed=0):
    ignore_index = cfg.get("ignore_index", -100)
    n = cfg.get("n_ignored", 0)
    n = 0 if len(shape) == 1 else min(n, int(np.prod(shape[:1] + shape[2:])) - 1)
    x, t, w = _case(shape, ignore_index, n, seed)
    return x, t, (w if cfg.get("weight") else None), ignore_index, cfg.get("eps", 0.0)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("cfg", CONFIGS, ids=str)
def test_cross_entropy_against_the_loop_reference(shape, cfg, reduction):
    x, t, w, ignore_index, eps = _unpack(shape, cfg)
    got = F.cross_entropy(x, t, weight=w, ignore_index=ignore_index, reduction=reduction, label_smoothing=eps)
    want = naive_cross_entropy(x, t, w, ignore_index, reduction, eps)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-14)
    assert got.shape == np.shape(want)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("cfg", [c for c in CONFIGS if not c.get("eps")], ids=str)
def test_nll_loss_against_the_loop_reference(shape, cfg, reduction):
    x, t, w, ignore_index, _ = _unpack(shape, cfg)
    logp = F.log_softmax(x, 1 if x.ndim > 1 else 0).numpy()
    got = F.nll_loss(logp, t, weight=w, ignore_index=ignore_index, reduction=reduction)
    np.testing.assert_allclose(got.numpy(), naive_cross_entropy(logp, t, w, ignore_index, reduction, log_probs=True),
                               rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("cfg", CONFIGS, ids=str)
def test_cross_entropy_gradcheck(shape, cfg):
    x, t, w, ignore_index, eps = _unpack(shape, cfg, seed=1)
    everything_ignored = int((t == ignore_index).all())  # a nan mean, tested below
    for reduction in REDUCTIONS[everything_ignored:]:
        gradcheck(lambda a: F.cross_entropy(a, t, weight=w, ignore_index=ignore_index, reduction=reduction,
                                            label_smoothing=eps), [x])
        if not eps:
            gradcheck(lambda a: F.nll_loss(a, t, weight=w, ignore_index=ignore_index, reduction=reduction), [x])


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("cfg", CONFIGS, ids=str)
def test_cross_entropy_and_nll_match_torch(torch, shape, cfg):
    x, t, w, ignore_index, eps = _unpack(shape, cfg, seed=2)
    tt = torch.from_numpy(t)
    tw = None if w is None else torch.from_numpy(w)
    tF = torch.nn.functional
    for seed, reduction in enumerate(REDUCTIONS):
        torch_parity(torch, lambda a: F.cross_entropy(a, t, w, ignore_index=ignore_index, reduction=reduction,
                                                      label_smoothing=eps),
                     lambda a: tF.cross_entropy(a, tt, tw, ignore_index=ignore_index, reduction=reduction,
                                                label_smoothing=eps), [x], seed=seed)
        torch_parity(torch, lambda a: F.nll_loss(a, t, w, ignore_index=ignore_index, reduction=reduction),
                     lambda a: tF.nll_loss(a, tt, tw, ignore_index=ignore_index, reduction=reduction), [x], seed=seed)


@pytest.mark.parametrize("shape", [(5, 4), (2, 3, 4, 2), (3,)], ids=str)
@pytest.mark.parametrize("weighted,eps", [(False, 0.0), (True, 0.0), (False, 0.25), (True, 0.1)])
def test_probability_targets(torch, shape, weighted, eps):
    x = RNG.standard_normal(shape)
    c = shape[1] if len(shape) > 1 else shape[0]
    q = RNG.uniform(0, 1, size=shape)
    q /= q.sum(axis=1 if len(shape) > 1 else 0, keepdims=True)
    w = RNG.uniform(0.5, 2, size=c) if weighted else None
    for seed, reduction in enumerate(REDUCTIONS):
        got = F.cross_entropy(x, q, weight=w, reduction=reduction, label_smoothing=eps)
        np.testing.assert_allclose(got.numpy(), naive_soft_cross_entropy(x, q, w, reduction, eps), rtol=1e-12)
        gradcheck(lambda a: F.cross_entropy(a, q, weight=w, reduction=reduction, label_smoothing=eps), [x])
        torch_parity(torch, lambda a: F.cross_entropy(a, q, weight=w, reduction=reduction, label_smoothing=eps),
                     lambda a: torch.nn.functional.cross_entropy(
                         a, torch.from_numpy(q), weight=None if w is None else torch.from_numpy(w),
                         reduction=reduction, label_smoothing=eps), [x], seed=seed)


def test_one_hot_probabilities_equal_class_indices():
    x, t, w = _case((6, 4, 3))
    one_hot = np.moveaxis(np.eye(4)[t], -1, 1)
    np.testing.assert_allclose(F.cross_entropy(x, one_hot, reduction="none").numpy(),
                               F.cross_entropy(x, t, reduction="none").numpy(), rtol=1e-13)


def test_per_pixel_equals_flattened_rows():
    """(N, C, H, W) classification == the same pixels as rows of an (N*H*W, C) batch."""
    x, t, w = _case((2, 3, 4, 5), ignore_index=2, n_ignored=6)
    rows, labels = np.moveaxis(x, 1, -1).reshape(-1, 3), t.reshape(-1)
    for kwargs in (dict(), dict(weight=w), dict(weight=w, ignore_index=2, label_smoothing=0.2)):
        np.testing.assert_allclose(F.cross_entropy(x, t, **kwargs).numpy(), F.cross_entropy(rows, labels, **kwargs).numpy(),
                                   rtol=1e-13)


def test_weighted_mean_divides_by_the_weights_of_counted_targets():
    x = np.zeros((3, 2))  # every -log p = log 2
    t = np.array([0, 1, 1])
    w = np.array([1.0, 3.0])
    assert F.cross_entropy(x, t, weight=w).item() == pytest.approx(math.log(2))  # (1 + 3 + 3) log2 / 7
    assert F.cross_entropy(x, t, weight=w, reduction="sum").item() == pytest.approx(7 * math.log(2))
    assert F.cross_entropy(x, t, weight=w, ignore_index=1).item() == pytest.approx(math.log(2))
    assert F.cross_entropy(x, np.array([0, -100, -100])).item() == pytest.approx(math.log(2))


def test_every_target_ignored_gives_nan_like_torch(torch):
    x = RNG.standard_normal((3, 4))
    t = np.full(3, -100)
    xt = Tensor(x, requires_grad=True)
    loss = F.cross_entropy(xt, t)
    t_loss = torch.nn.functional.cross_entropy(torch.from_numpy(x), torch.from_numpy(t))
    assert math.isnan(loss.item()) and math.isnan(float(t_loss))
    assert F.cross_entropy(x, t, reduction="sum").item() == 0.0
    np.testing.assert_array_equal(F.nll_loss(x, t, reduction="none").numpy(), np.zeros(3))


def test_ignored_targets_get_no_gradient():
    x, t, w = _case((4, 3, 2), ignore_index=7, n_ignored=3)
    xt = Tensor(x, requires_grad=True)
    F.cross_entropy(xt, t, weight=w, ignore_index=7, label_smoothing=0.3).backward()
    ignored = t == 7
    assert not np.moveaxis(xt.grad, 1, -1)[ignored].any()
    assert np.moveaxis(xt.grad, 1, -1)[~ignored].all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_kept(dtype):
    x, t, w = _case((2, 3, 2, 2), ignore_index=1)
    xt = Tensor(x.astype(dtype), requires_grad=True)
    out = F.cross_entropy(xt, t, weight=w, ignore_index=1, label_smoothing=0.1)
    out.backward()
    assert out.dtype == dtype and xt.grad.dtype == dtype
    q = np.full(x.shape, 1 / 3)
    assert F.cross_entropy(x.astype(dtype), q).dtype == dtype
    assert F.nll_loss(x.astype(dtype), t, weight=w, reduction="none").dtype == dtype


# --- errors ---------------------------------------------------------------------------------------------
def test_class_loss_errors():
    x = np.zeros((2, 3, 4))
    with pytest.raises(ValueError, match=r"cross_entropy: labels must be in \[0, 3\) for 3 classes, got label 5 "
                                         r"\(ignore_index=1\)"):
        F.cross_entropy(x, np.array([[0, 1, 5, 1], [0, 0, 0, 0]]), ignore_index=1)
    with pytest.raises(ValueError, match=r"nll_loss: labels must be in \[0, 3\) for 3 classes, got label -1$"):
        F.nll_loss(x, np.array([[0, 1, -1, -100], [0, 0, 0, 0]]))
    with pytest.raises(ValueError, match=r"cross_entropy: weight should be defined for all 3 classes: expected shape "
                                         r"\(3,\), got weight of shape \(4,\)"):
        F.cross_entropy(x, np.zeros((2, 4), dtype=int), weight=np.ones(4))
    with pytest.raises(TypeError, match=r"cross_entropy: a target of the input's shape \(2, 3, 4\) holds class "
                                        r"probabilities and must be floating point, got dtype int64"):
        F.cross_entropy(x, np.zeros((2, 3, 4), dtype=np.int64))
    with pytest.raises(TypeError, match=r"cross_entropy: expected integer class labels, got target of dtype float64 "
                                        r"\(class probabilities need the input's shape \(2, 3, 4\)\)"):
        F.cross_entropy(x, np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"cross_entropy: ignore_index is not supported for class-probability "
                                         r"targets, got ignore_index=0"):
        F.cross_entropy(x, np.zeros((2, 3, 4)), ignore_index=0)
    with pytest.raises(TypeError, match=r"nll_loss: ignore_index must be an integer, got 1.5"):
        F.nll_loss(x, np.zeros((2, 4), dtype=int), ignore_index=1.5)


def test_a_reduction_in_the_weight_slot_is_refused():
    """PyTorch's positional order: (input, target, weight, size_average, ignore_index, reduce, reduction, ...)."""
    x, t = np.zeros((2, 3)), np.array([0, 1])
    with pytest.raises(TypeError, match=r"cross_entropy: weight must be an array of weights, got 'sum'; pass the "
                                        r"reduction by name: reduction='sum'"):
        F.cross_entropy(x, t, "sum")
    with pytest.raises(TypeError, match=r"nll_loss: size_average must be True, False or None \(deprecated; use "
                                        r"reduction=\), got 'none'; pass the reduction by name"):
        F.nll_loss(x, t, None, "none")


def test_deprecated_size_average_and_reduce(torch):
    x, t, w = _case((4, 3))
    for size_average, reduce in itertools.product([None, True, False], repeat=2):
        if size_average is None and reduce is None:
            continue
        with pytest.warns(UserWarning, match="size_average and reduce args will be deprecated"):
            got = F.cross_entropy(x, t, w, size_average, -100, reduce)
        with pytest.warns(UserWarning):
            want = torch.nn.functional.cross_entropy(torch.from_numpy(x), torch.from_numpy(t), torch.from_numpy(w),
                                                     size_average, -100, reduce)
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-12)


def test_numpy_scalars_are_accepted_as_arguments():
    x, t, w = _case((3, 4))
    want = F.cross_entropy(x, t, ignore_index=1, label_smoothing=0.1).numpy()
    got = F.cross_entropy(x, t, ignore_index=np.int64(1), label_smoothing=np.float32(0.1)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-6)
