"""Optimisers and LR schedules against PyTorch, checkpoints, clipping, and a training smoke test."""
import math

import numpy as np
import pytest

import cnnlab
import cnnlab.functional as F
from cnnlab import Tensor, nn, optim

RNG = np.random.default_rng(31)
SHAPES = [(3, 4), (5,), (2, 1, 3)]


def _params(dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    return [nn.Parameter(rng.standard_normal(s).astype(dtype)) for s in SHAPES]


def _grads(step, seed=100):
    rng = np.random.default_rng(seed + step)
    return [rng.standard_normal(s) for s in SHAPES]


def run_both(torch, make_ours, make_theirs, steps=6, skip_grad_of=None):
    """Apply the same gradients to the same parameters in cnnlab and torch; compare after every step."""
    ours = _params()
    theirs = [torch.tensor(p.data.copy(), requires_grad=True) for p in ours]
    opt, t_opt = make_ours(ours), make_theirs(theirs)
    for step in range(steps):
        for i, (p, tp, g) in enumerate(zip(ours, theirs, _grads(step))):
            if i == skip_grad_of:
                p.grad, tp.grad = None, None
                continue
            p.grad = g.copy()
            tp.grad = torch.tensor(g)
        opt.step()
        t_opt.step()
        for p, tp in zip(ours, theirs):
            np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=1e-12, atol=1e-14,
                                       err_msg=f"step {step}")
    return ours, opt


SGD_CONFIGS = [dict(lr=0.1), dict(lr=0.05, momentum=0.9), dict(lr=0.05, momentum=0.9, dampening=0.5),
               dict(lr=0.05, momentum=0.8, nesterov=True), dict(lr=0.1, weight_decay=0.01),
               dict(lr=0.02, momentum=0.9, weight_decay=0.05, nesterov=True),
               dict(lr=0.02, momentum=0.7, dampening=0.3, weight_decay=0.1)]


@pytest.mark.parametrize("cfg", SGD_CONFIGS, ids=[str(c) for c in SGD_CONFIGS])
def test_sgd_matches_torch(torch, cfg):
    run_both(torch, lambda p: optim.SGD(p, **cfg), lambda p: torch.optim.SGD(p, **cfg))


ADAM_CONFIGS = [dict(lr=0.01), dict(lr=0.05, betas=(0.8, 0.99)), dict(lr=0.01, weight_decay=0.1),
                dict(lr=0.02, eps=1e-3, betas=(0.5, 0.9), weight_decay=0.01)]


@pytest.mark.parametrize("cfg", ADAM_CONFIGS, ids=[str(c) for c in ADAM_CONFIGS])
def test_adam_and_adamw_match_torch(torch, cfg):
    run_both(torch, lambda p: optim.Adam(p, **cfg), lambda p: torch.optim.Adam(p, **cfg))
    run_both(torch, lambda p: optim.AdamW(p, **cfg), lambda p: torch.optim.AdamW(p, **cfg))


def test_adamw_default_weight_decay_matches_torch(torch):
    run_both(torch, lambda p: optim.AdamW(p, lr=0.01), lambda p: torch.optim.AdamW(p, lr=0.01))


def test_parameters_without_grad_are_skipped(torch):
    run_both(torch, lambda p: optim.SGD(p, lr=0.1, momentum=0.9), lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9),
             skip_grad_of=1)
    run_both(torch, lambda p: optim.Adam(p, lr=0.01), lambda p: torch.optim.Adam(p, lr=0.01), skip_grad_of=0)


def test_sgd_by_hand():
    p = nn.Parameter(np.array([1.0, -2.0]))
    opt = optim.SGD([p], lr=0.5, momentum=0.9)
    p.grad = np.array([1.0, 1.0])
    opt.step()  # buf = g
    np.testing.assert_allclose(p.data, [0.5, -2.5])
    p.grad = np.array([1.0, 1.0])
    opt.step()  # buf = 0.9 * 1 + 1 = 1.9
    np.testing.assert_allclose(p.data, [0.5 - 0.95, -2.5 - 0.95])


def test_float32_parameters_stay_float32():
    ps = _params(np.float32)
    for opt in (optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.1), optim.Adam(ps), optim.AdamW(ps)):
        for p, g in zip(ps, _grads(0)):
            p.grad = g  # a float64 gradient
        opt.step()
        assert all(p.dtype == np.float32 for p in ps)


def test_zero_grad():
    ps = _params()
    opt = optim.Adam(ps)
    for p in ps:
        p.grad = np.ones(p.shape)
    opt.zero_grad()
    assert all(p.grad is None for p in ps)


@pytest.mark.parametrize("make", [lambda p: optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True),
                                  lambda p: optim.Adam(p, lr=0.01), lambda p: optim.AdamW(p, lr=0.01)])
def test_optimizer_state_dict_resumes_exactly(make):
    a = _params()
    opt_a = make(a)
    b = _params()
    opt_b = make(b)
    for step in range(3):
        for p, q, g in zip(a, b, _grads(step)):
            p.grad, q.grad = g.copy(), g.copy()
        opt_a.step()
        opt_b.step()
    state = opt_a.state_dict()
    assert all(isinstance(v, np.ndarray) for v in state["state"].values())
    c = [nn.Parameter(p.data.copy()) for p in a]
    opt_c = make(c)
    opt_c.load_state_dict({"lr": state["lr"], "step_count": state["step_count"],
                           "state": {k: np.array(v) for k, v in state["state"].items()}})
    for step in range(3, 6):
        for p, q, g in zip(b, c, _grads(step)):
            p.grad, q.grad = g.copy(), g.copy()
        opt_b.step()
        opt_c.step()
    for p, q in zip(b, c):
        np.testing.assert_array_equal(p.data, q.data)


def test_optimizer_errors():
    with pytest.raises(ValueError, match=r"optimizer got an empty parameter list"):
        optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match=r"Invalid learning rate: -0.1"):
        optim.Adam(_params(), lr=-0.1)
    with pytest.raises(ValueError, match=r"Nesterov momentum requires a momentum and zero dampening"):
        optim.SGD(_params(), lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match=r"Nesterov momentum requires a momentum and zero dampening"):
        optim.SGD(_params(), lr=0.1, momentum=0.9, dampening=0.1, nesterov=True)


def test_clip_grad_norm_matches_torch(torch):
    for max_norm in (0.5, 100.0):
        ours = _params()
        theirs = [torch.tensor(p.data.copy()) for p in ours]
        for p, tp, g in zip(ours, theirs, _grads(0)):
            p.grad, tp.grad = g.copy(), torch.tensor(g)
        total = optim.clip_grad_norm_(ours, max_norm)
        t_total = torch.nn.utils.clip_grad_norm_(theirs, max_norm)
        assert math.isclose(total, float(t_total), rel_tol=1e-12)
        for p, tp in zip(ours, theirs):
            np.testing.assert_allclose(p.grad, tp.grad.numpy(), rtol=1e-12)
    assert optim.clip_grad_norm_(_params(), 1.0) == 0.0


# --- learning-rate schedules -----------------------------------------------------------------------
def _lr_sequences(torch, make_ours, make_theirs, steps, lr=0.1):
    opt = optim.SGD(_params(), lr=lr, momentum=0.9)
    t_opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr, momentum=0.9)
    sched, t_sched = make_ours(opt), make_theirs(t_opt)
    ours, theirs = [opt.lr], [t_opt.param_groups[0]["lr"]]
    for _ in range(steps):
        t_opt.step()
        sched.step()
        t_sched.step()
        ours.append(opt.lr)
        theirs.append(t_opt.param_groups[0]["lr"])
    return np.array(ours), np.array(theirs), sched


@pytest.mark.parametrize("step_size,gamma", [(1, 0.5), (3, 0.1), (7, 0.9)])
def test_step_lr_matches_torch(torch, step_size, gamma):
    ours, theirs, sched = _lr_sequences(torch, lambda o: optim.StepLR(o, step_size, gamma),
                                        lambda o: torch.optim.lr_scheduler.StepLR(o, step_size, gamma), 20)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)
    assert sched.get_last_lr() == ours[-1]


@pytest.mark.parametrize("T_max,eta_min", [(10, 0.0), (7, 0.01), (1, 0.0)])
def test_cosine_annealing_matches_torch(torch, T_max, eta_min):
    ours, theirs, _ = _lr_sequences(torch, lambda o: optim.CosineAnnealingLR(o, T_max, eta_min),
                                    lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max, eta_min),
                                    T_max)
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-15)
    assert math.isclose(ours[-1], eta_min, abs_tol=1e-15)


@pytest.mark.parametrize("total,pct,div,final", [(20, 0.3, 25.0, 1e4), (11, 0.5, 10.0, 100.0), (7, 0.25, 5.0, 1e3),
                                                 (100, 0.1, 25.0, 1e4)])
def test_one_cycle_matches_torch(torch, total, pct, div, final):
    ours, theirs, _ = _lr_sequences(
        torch, lambda o: optim.OneCycleLR(o, 0.5, total, pct, div, final),
        lambda o: torch.optim.lr_scheduler.OneCycleLR(o, 0.5, total_steps=total, pct_start=pct, div_factor=div,
                                                      final_div_factor=final, cycle_momentum=False),
        total - 1)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)
    assert math.isclose(ours[0], 0.5 / div) and max(ours) <= 0.5 * (1 + 1e-12)
    assert math.isclose(ours[-1], 0.5 / div / final, rel_tol=1e-9)


def test_schedule_drives_optimizer_updates_like_torch(torch):
    ours = _params()
    theirs = [torch.tensor(p.data.copy(), requires_grad=True) for p in ours]
    opt, t_opt = optim.SGD(ours, lr=0.2, momentum=0.5), torch.optim.SGD(theirs, lr=0.2, momentum=0.5)
    sched = optim.StepLR(opt, 2, 0.5)
    t_sched = torch.optim.lr_scheduler.StepLR(t_opt, 2, 0.5)
    for step in range(7):
        for p, tp, g in zip(ours, theirs, _grads(step)):
            p.grad, tp.grad = g.copy(), torch.tensor(g)
        opt.step()
        t_opt.step()
        sched.step()
        t_sched.step()
    for p, tp in zip(ours, theirs):
        np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=1e-12)


def test_scheduler_state_dict_and_constant_lr():
    opt = optim.SGD(_params(), lr=0.1)
    sched = optim.CosineAnnealingLR(opt, 10)
    for _ in range(4):
        sched.step()
    state = sched.state_dict()
    opt2 = optim.SGD(_params(), lr=0.1)
    sched2 = optim.CosineAnnealingLR(opt2, 10)
    sched2.load_state_dict(state)
    assert opt2.lr == opt.lr
    sched.step()
    sched2.step()
    assert opt2.lr == opt.lr
    const = optim.ConstantLR(optim.SGD(_params(), lr=0.3))  # PyTorch's rule: lr * 1/3 for 5 steps
    lrs = [const.get_last_lr()]
    for _ in range(6):
        const.step()
        lrs.append(const.get_last_lr())
    assert lrs == pytest.approx([0.1] * 5 + [0.3] * 2)


def test_scheduler_errors():
    opt = optim.SGD(_params(), lr=0.1)
    with pytest.raises(ValueError, match=r"step_size must be >= 1, got 0"):
        optim.StepLR(opt, 0)
    with pytest.raises(ValueError, match=r"T_max must be >= 1, got 0"):
        optim.CosineAnnealingLR(opt, 0)
    with pytest.raises(ValueError, match=r"total_steps must be >= 2, got 1"):
        optim.OneCycleLR(opt, 0.1, 1)


# --- training smoke test -------------------------------------------------------------------------------
def _separable_images(n=64, seed=0):
    """Class 0: bright top half; class 1: bright bottom half; plus noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n)
    x = rng.standard_normal((n, 1, 8, 8)).astype(np.float32) * 0.5
    x[y == 0, :, :4] += 1.0
    x[y == 1, :, 4:] += 1.0
    return x, y


def _small_cnn():
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(64, 2))


@pytest.mark.parametrize("make_opt", [lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9),
                                      lambda ps: optim.Adam(ps, lr=0.01)], ids=["sgd", "adam"])
def test_training_reduces_loss(make_opt):
    cnnlab.manual_seed(0)
    x, y = _separable_images()
    model = _small_cnn()
    opt = make_opt(list(model.parameters()))
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(float(loss.data))
    assert np.isfinite(losses).all()
    assert losses[-1] < 0.5 * losses[0], losses
    model.eval()
    with cnnlab.no_grad():
        accuracy = (model(Tensor(x)).data.argmax(axis=1) == y).mean()
    assert accuracy > 0.9
