"""Learning-rate schedulers against PyTorch: get_last_lr() over 30+ steps with two parameter groups,
momentum cycling, ReduceLROnPlateau on scripted metrics, state dicts, chaining, errors."""
import json
import math
import warnings

import numpy as np
import pytest

from cnnlab import nn, optim


def _params():
    rng = np.random.default_rng(0)
    return [nn.Parameter(rng.standard_normal(s)) for s in [(3, 2), (4,)]]


def _two_groups(params, lr):
    return [{"params": params[:1]}, {"params": params[1:], "lr": lr * 0.3}]


def _optimizers(torch, opt_name, lr, opt_kwargs):
    ours = getattr(optim, opt_name)(_two_groups(_params(), lr), lr=lr, **opt_kwargs)
    t_params = [torch.zeros(3, 2, requires_grad=True), torch.zeros(4, requires_grad=True)]
    theirs = getattr(torch.optim, opt_name)(_two_groups(t_params, lr), lr=lr, **opt_kwargs)
    return ours, theirs


def compare_schedules(torch, make_ours, make_theirs, steps=30, lr=0.1, opt_name="SGD", opt_kwargs=None,
                      keys=("lr",), metrics=None):
    """Step both schedulers ``steps`` times (after an optimizer step, as PyTorch wants); compare
    ``get_last_lr()`` and the groups' ``keys`` after every step.  Returns our sequence of rates."""
    opt, t_opt = _optimizers(torch, opt_name, lr, dict(momentum=0.9) if opt_kwargs is None else opt_kwargs)
    sched, t_sched = make_ours(opt), make_theirs(t_opt)
    seen = []
    for step in range(steps + 1):
        ours, theirs = sched.get_last_lr(), t_sched.get_last_lr()
        assert isinstance(ours, list) and len(ours) == 2
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-16, err_msg=f"after {step} steps")
        for key in keys:
            for g, tg in zip(opt.param_groups, t_opt.param_groups):
                np.testing.assert_allclose(np.array(g[key], float), np.array(tg[key], float), rtol=1e-12,
                                           atol=1e-16, err_msg=f"{key} after {step} steps")
        seen.append(ours)
        if step == steps:
            break
        t_opt.step()
        if metrics is None:
            sched.step()
            t_sched.step()
        else:
            sched.step(metrics[step])
            t_sched.step(metrics[step])
    return np.array(seen)


CASES = {
    "StepLR(3, 0.5)": (lambda o: optim.StepLR(o, 3, 0.5), lambda t, o: t.optim.lr_scheduler.StepLR(o, 3, 0.5)),
    "StepLR(1)": (lambda o: optim.StepLR(o, step_size=1), lambda t, o: t.optim.lr_scheduler.StepLR(o, 1)),
    "StepLR(7, 0.9)": (lambda o: optim.StepLR(o, 7, gamma=0.9), lambda t, o: t.optim.lr_scheduler.StepLR(o, 7, 0.9)),
    "MultiStepLR": (lambda o: optim.MultiStepLR(o, [3, 8, 8, 20], 0.5),
                    lambda t, o: t.optim.lr_scheduler.MultiStepLR(o, [3, 8, 8, 20], 0.5)),
    "ExponentialLR": (lambda o: optim.ExponentialLR(o, 0.9), lambda t, o: t.optim.lr_scheduler.ExponentialLR(o, 0.9)),
    "CosineAnnealingLR(10)": (lambda o: optim.CosineAnnealingLR(o, 10),
                              lambda t, o: t.optim.lr_scheduler.CosineAnnealingLR(o, 10)),
    "CosineAnnealingLR(7, 0.01)": (lambda o: optim.CosineAnnealingLR(o, 7, eta_min=0.01),
                                   lambda t, o: t.optim.lr_scheduler.CosineAnnealingLR(o, 7, 0.01)),
    "CosineAnnealingLR(1)": (lambda o: optim.CosineAnnealingLR(o, T_max=1),
                             lambda t, o: t.optim.lr_scheduler.CosineAnnealingLR(o, 1)),
    "CosineAnnealingLR(30)": (lambda o: optim.CosineAnnealingLR(o, T_max=30),
                              lambda t, o: t.optim.lr_scheduler.CosineAnnealingLR(o, 30)),
    "ConstantLR": (lambda o: optim.ConstantLR(o), lambda t, o: t.optim.lr_scheduler.ConstantLR(o)),
    "ConstantLR(0.5, 3)": (lambda o: optim.ConstantLR(o, 0.5, 3),
                           lambda t, o: t.optim.lr_scheduler.ConstantLR(o, 0.5, 3)),
    "LinearLR": (lambda o: optim.LinearLR(o), lambda t, o: t.optim.lr_scheduler.LinearLR(o)),
    "LinearLR(1, 0.1, 10)": (lambda o: optim.LinearLR(o, 1.0, 0.1, 10),
                             lambda t, o: t.optim.lr_scheduler.LinearLR(o, 1.0, 0.1, 10)),
    "LambdaLR": (lambda o: optim.LambdaLR(o, lambda e: 0.95 ** e),
                 lambda t, o: t.optim.lr_scheduler.LambdaLR(o, lambda e: 0.95 ** e)),
    "LambdaLR per group": (
        lambda o: optim.LambdaLR(o, [lambda e: 1 / (e + 1), lambda e: e // 5 + 1]),
        lambda t, o: t.optim.lr_scheduler.LambdaLR(o, [lambda e: 1 / (e + 1), lambda e: e // 5 + 1])),
    "MultiplicativeLR": (lambda o: optim.MultiplicativeLR(o, lambda e: 0.9 if e % 2 else 1.05),
                         lambda t, o: t.optim.lr_scheduler.MultiplicativeLR(o, lambda e: 0.9 if e % 2 else 1.05)),
    "PolynomialLR": (lambda o: optim.PolynomialLR(o), lambda t, o: t.optim.lr_scheduler.PolynomialLR(o)),
    "PolynomialLR(12, 2)": (lambda o: optim.PolynomialLR(o, total_iters=12, power=2.0),
                            lambda t, o: t.optim.lr_scheduler.PolynomialLR(o, total_iters=12, power=2.0)),
    "SequentialLR warm-up then cosine": (
        lambda o: optim.SequentialLR(o, [optim.LinearLR(o, 0.1, total_iters=5), optim.CosineAnnealingLR(o, 20)],
                                     milestones=[5]),
        lambda t, o: t.optim.lr_scheduler.SequentialLR(
            o, [t.optim.lr_scheduler.LinearLR(o, 0.1, total_iters=5), t.optim.lr_scheduler.CosineAnnealingLR(o, 20)],
            milestones=[5])),
    "SequentialLR three": (
        lambda o: optim.SequentialLR(o, [optim.ConstantLR(o, 0.5, 3), optim.ExponentialLR(o, 0.9),
                                         optim.StepLR(o, 4, 0.5)], milestones=[3, 10]),
        lambda t, o: t.optim.lr_scheduler.SequentialLR(
            o, [t.optim.lr_scheduler.ConstantLR(o, 0.5, 3), t.optim.lr_scheduler.ExponentialLR(o, 0.9),
                t.optim.lr_scheduler.StepLR(o, 4, 0.5)], milestones=[3, 10])),
    "CosineAnnealingWarmRestarts(5)": (lambda o: optim.CosineAnnealingWarmRestarts(o, 5),
                                       lambda t, o: t.optim.lr_scheduler.CosineAnnealingWarmRestarts(o, 5)),
    "CosineAnnealingWarmRestarts(3, 2, 0.01)": (
        lambda o: optim.CosineAnnealingWarmRestarts(o, 3, T_mult=2, eta_min=0.01),
        lambda t, o: t.optim.lr_scheduler.CosineAnnealingWarmRestarts(o, 3, T_mult=2, eta_min=0.01)),
    "ChainedScheduler": (
        lambda o: optim.ChainedScheduler([optim.ConstantLR(o, 0.1, 4), optim.ExponentialLR(o, 0.9)]),
        lambda t, o: t.optim.lr_scheduler.ChainedScheduler([t.optim.lr_scheduler.ConstantLR(o, 0.1, 4),
                                                            t.optim.lr_scheduler.ExponentialLR(o, 0.9)])),
}


@pytest.mark.parametrize("name", CASES)
def test_schedule_matches_torch(torch, name):
    ours, theirs = CASES[name]
    compare_schedules(torch, ours, lambda o: theirs(torch, o))


ONE_CYCLE = [dict(total_steps=30), dict(total_steps=31, pct_start=0.5, div_factor=10.0, final_div_factor=100.0),
             dict(epochs=3, steps_per_epoch=10, pct_start=0.25, anneal_strategy="linear"),
             dict(total_steps=30, three_phase=True), dict(total_steps=40, pct_start=0.1, max_momentum=0.99,
                                                          base_momentum=0.8),
             dict(total_steps=30, cycle_momentum=False)]


@pytest.mark.parametrize("kwargs", ONE_CYCLE, ids=[str(k) for k in ONE_CYCLE])
@pytest.mark.parametrize("opt_name,opt_kwargs,key", [("SGD", dict(momentum=0.9), "momentum"),
                                                     ("Adam", dict(), "betas"), ("RMSprop", dict(), "momentum")])
def test_one_cycle_matches_torch_with_momentum(torch, kwargs, opt_name, opt_kwargs, key):
    seen = compare_schedules(torch, lambda o: optim.OneCycleLR(o, [0.5, 0.05], **kwargs),
                             lambda o: torch.optim.lr_scheduler.OneCycleLR(o, [0.5, 0.05], **kwargs),
                             steps=29, opt_name=opt_name, opt_kwargs=opt_kwargs, keys=("lr", key))
    assert seen[:, 0].max() <= 0.5 * (1 + 1e-12)


def test_one_cycle_ends_at_the_floor_and_refuses_more_steps(torch):
    opt = optim.SGD(_params(), lr=0.1)
    sched = optim.OneCycleLR(opt, 0.5, total_steps=7, pct_start=0.25, div_factor=5.0, final_div_factor=1e3)
    assert math.isclose(sched.get_last_lr()[0], 0.1)
    for _ in range(6):
        sched.step()
    assert math.isclose(sched.get_last_lr()[0], 0.5 / 5 / 1e3, rel_tol=1e-9)
    sched.step()  # step 7 of 7: PyTorch extrapolates once more
    with pytest.raises(ValueError, match=r"Tried to step 8 times. The specified number of total steps is 7"):
        sched.step()


def test_one_cycle_with_a_phase_of_length_zero():
    opt = optim.SGD(_params(), lr=0.1)
    sched = optim.OneCycleLR(opt, 0.5, total_steps=10, pct_start=0.1, cycle_momentum=False)
    assert sched.get_last_lr()[0] == pytest.approx(0.5)  # PyTorch divides by zero here


@pytest.mark.parametrize("kwargs", [dict(), dict(patience=2), dict(mode="max", patience=1, factor=0.5),
                                    dict(threshold_mode="abs", threshold=0.05, patience=1),
                                    dict(mode="max", threshold_mode="abs", threshold=0.1, patience=0),
                                    dict(patience=1, cooldown=2, factor=0.3),
                                    dict(patience=0, min_lr=[0.02, 0.001]), dict(patience=0, min_lr=0.05),
                                    dict(patience=0, factor=0.5, eps=0.02), dict(patience=3, threshold=0.2)],
                         ids=str)
def test_reduce_lr_on_plateau_matches_torch(torch, kwargs):
    rng = np.random.default_rng(3)
    metrics = list(np.concatenate([np.linspace(1, 0.5, 6), 0.5 + 0.01 * rng.standard_normal(10),
                                   np.linspace(0.5, 0.2, 5), np.full(14, 0.2), [float("nan"), 0.1, 0.1]]))
    seen = compare_schedules(torch, lambda o: optim.ReduceLROnPlateau(o, **kwargs),
                             lambda o: torch.optim.lr_scheduler.ReduceLROnPlateau(o, **kwargs),
                             steps=len(metrics), metrics=metrics)
    assert seen[-1, 0] < seen[0, 0]


def test_reduce_lr_on_plateau_by_hand():
    opt = optim.SGD(_params(), lr=1.0)
    sched = optim.ReduceLROnPlateau(opt, patience=2, factor=0.5)
    lrs = []
    for metric in [1.0, 0.9, 0.95, 0.95, 0.95, 0.8, 0.9]:
        sched.step(metric)
        lrs.append(sched.get_last_lr()[0])
    assert lrs == [1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5]
    assert sched.best == 0.8 and sched.num_bad_epochs == 1


def test_manual_lr_changes_carry_on_like_torch(torch):
    """Schedulers are chainable: a rate set by hand (or by another scheduler) is what the next step scales."""
    opt, t_opt = _optimizers(torch, "SGD", 0.1, dict(momentum=0.9))
    sched, t_sched = optim.StepLR(opt, 2, 0.5), torch.optim.lr_scheduler.StepLR(t_opt, 2, 0.5)
    second, t_second = optim.ExponentialLR(opt, 0.9), torch.optim.lr_scheduler.ExponentialLR(t_opt, 0.9)
    for step in range(12):
        if step == 5:
            opt.param_groups[0]["lr"] = t_opt.param_groups[0]["lr"] = 0.7
        t_opt.step()
        for s in (sched, second, t_sched, t_second):
            s.step()
        np.testing.assert_allclose(second.get_last_lr(), t_second.get_last_lr(), rtol=1e-12)
        np.testing.assert_allclose([g["lr"] for g in opt.param_groups], [g["lr"] for g in t_opt.param_groups],
                                   rtol=1e-12)


def test_schedule_drives_optimizer_updates_like_torch(torch):
    rng = np.random.default_rng(1)
    ours = _params()
    theirs = [torch.tensor(p.numpy().copy(), requires_grad=True) for p in ours]
    opt, t_opt = optim.SGD(ours, lr=0.2, momentum=0.5), torch.optim.SGD(theirs, lr=0.2, momentum=0.5)
    sched = optim.StepLR(opt, 2, 0.5)
    t_sched = torch.optim.lr_scheduler.StepLR(t_opt, 2, 0.5)
    for _ in range(7):
        for p, tp in zip(ours, theirs):
            g = rng.standard_normal(p.shape)
            p.grad, tp.grad = g.copy(), torch.tensor(g)
        opt.step()
        t_opt.step()
        sched.step()
        t_sched.step()
    for p, tp in zip(ours, theirs):
        np.testing.assert_allclose(p.numpy(), tp.detach().numpy(), rtol=1e-12)


def test_initial_lr_and_base_lrs():
    opt = optim.Adam(_two_groups(_params(), 0.1), lr=0.1)
    sched = optim.CosineAnnealingLR(opt, 10)
    assert sched.base_lrs == [0.1, pytest.approx(0.03)]
    assert [g["initial_lr"] for g in opt.param_groups] == sched.base_lrs
    with pytest.raises(KeyError, match=r"param 'initial_lr' is not specified in param_groups\[0\] when resuming a "
                                       r"scheduler with last_epoch=4"):
        optim.StepLR(optim.SGD(_params(), lr=0.1), 2, last_epoch=4)


def test_step_with_an_epoch_uses_the_closed_form(torch):
    opt = optim.SGD(_params(), lr=0.1)
    sched = optim.StepLR(opt, 3, 0.5)
    with pytest.warns(UserWarning, match="The epoch parameter in `scheduler.step\\(\\)`"):
        sched.step(7)
    assert sched.get_last_lr() == [pytest.approx(0.025)]


@pytest.mark.parametrize("T_mult", [1, 2, 3])
def test_warm_restarts_with_fractional_epochs_match_torch(torch, T_mult):
    opt, t_opt = _optimizers(torch, "SGD", 0.1, dict(momentum=0.9))
    sched = optim.CosineAnnealingWarmRestarts(opt, 4, T_mult=T_mult)
    t_sched = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(t_opt, 4, T_mult=T_mult)
    for epoch in range(12):
        for batch in range(3):
            t_opt.step()
            sched.step(epoch + batch / 3)
            t_sched.step(epoch + batch / 3)
            np.testing.assert_allclose(sched.get_last_lr(), t_sched.get_last_lr(), rtol=1e-12, atol=1e-16)
    with pytest.raises(ValueError, match=r"Expected non-negative epoch, but got -1"):
        sched.step(-1)


# --- state dicts ---------------------------------------------------------------------------------------
STATEFUL = {
    "cosine": lambda o: optim.CosineAnnealingLR(o, 10, 0.001),
    "multistep": lambda o: optim.MultiStepLR(o, [2, 5, 5]),
    "onecycle": lambda o: optim.OneCycleLR(o, 0.5, total_steps=20),
    "linear": lambda o: optim.LinearLR(o, 0.2, 1.0, 8),
    "lambda": lambda o: optim.LambdaLR(o, lambda e: 1 / (1 + e)),
    "plateau": lambda o: optim.ReduceLROnPlateau(o, patience=1, cooldown=1),
    "sequential": lambda o: optim.SequentialLR(o, [optim.LinearLR(o, 0.1, total_iters=4),
                                                   optim.CosineAnnealingLR(o, 10)], [4]),
    "restarts": lambda o: optim.CosineAnnealingWarmRestarts(o, 3, T_mult=2),
    "chained": lambda o: optim.ChainedScheduler([optim.StepLR(o, 3), optim.ExponentialLR(o, 0.95)]),
}


def _advance(sched, steps):
    for k in steps:
        if isinstance(sched, optim.ReduceLROnPlateau):
            sched.step(1.0 if k % 3 else 0.5 ** k)
        else:
            sched.step()


@pytest.mark.parametrize("name", STATEFUL)
def test_scheduler_state_dict_resumes_exactly(name):
    make = STATEFUL[name]
    opt = optim.SGD(_two_groups(_params(), 0.1), lr=0.1, momentum=0.9)
    sched = make(opt)
    _advance(sched, range(6))
    saved_sched = json.loads(json.dumps(sched.state_dict(), allow_nan=False))  # strict JSON
    saved_opt = json.loads(json.dumps(opt.state_dict()["param_groups"]))
    opt2 = optim.SGD(_two_groups(_params(), 0.1), lr=0.1, momentum=0.9)
    sched2 = make(opt2)
    opt2.load_state_dict({"state": {}, "param_groups": saved_opt})
    sched2.load_state_dict(saved_sched)
    assert sched2.get_last_lr() == sched.get_last_lr()
    for k in range(6, 12):
        _advance(sched, [k])
        _advance(sched2, [k])
        assert sched2.get_last_lr() == sched.get_last_lr()
        assert [g["lr"] for g in opt2.param_groups] == [g["lr"] for g in opt.param_groups]


def test_earlier_scheduler_state_still_loads():
    """cnnlab checkpoints before parameter groups stored {"last_epoch", "base_lr"} (and the optimizer's lr)."""
    opt = optim.SGD(_params(), lr=0.1)
    sched = optim.CosineAnnealingLR(opt, 10)
    opt.param_groups[0]["lr"] = 0.1 * (1 + math.cos(math.pi * 4 / 10)) / 2  # as the optimizer's state restores it
    sched.load_state_dict({"last_epoch": 4, "base_lr": 0.1})
    assert sched.base_lrs == [0.1] and sched.last_epoch == 4
    sched.step()
    assert sched.get_last_lr()[0] == pytest.approx(0.1 * (1 + math.cos(math.pi * 5 / 10)) / 2, rel=1e-12)


def test_scheduler_state_errors():
    sched = optim.StepLR(optim.SGD(_params(), lr=0.1), 2)
    with pytest.raises(ValueError, match=r"StepLR state: unknown field 'gama'"):
        sched.load_state_dict({"gama": 0.1})
    with pytest.raises(ValueError, match=r"StepLR state: 'last_epoch' must be a number, got '3'"):
        sched.load_state_dict({"last_epoch": "3"})
    with pytest.raises(ValueError, match=r"StepLR state: 'base_lrs' must list one rate per parameter group \(1\), "
                                         r"got \[0.1, 0.2\]"):
        sched.load_state_dict({"base_lrs": [0.1, 0.2]})


# --- errors ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("make,message", [
    (lambda o: optim.StepLR(o, 0), r"step_size must be >= 1, got 0"),
    (lambda o: optim.CosineAnnealingLR(o, 0), r"T_max must be >= 1, got 0"),
    (lambda o: optim.OneCycleLR(o, 0.1, 0), r"Expected positive integer total_steps, but got 0"),
    (lambda o: optim.OneCycleLR(o, 0.1), r"You must define either total_steps OR \(epochs AND steps_per_epoch\)"),
    (lambda o: optim.OneCycleLR(o, 0.1, epochs=0, steps_per_epoch=3), r"Expected positive integer epochs, but got 0"),
    (lambda o: optim.OneCycleLR(o, 0.1, 10, pct_start=1.5), r"Expected float between 0 and 1 pct_start, but got 1.5"),
    (lambda o: optim.OneCycleLR(o, 0.1, 10, anneal_strategy="cosine"), r"anneal_strategy must be one of 'cos' or "
                                                                      r"'linear', instead got 'cosine'"),
    (lambda o: optim.OneCycleLR(o, [0.1, 0.2], 10), r"max_lr must have the same length as optimizer.param_groups. "
                                                    r"max_lr has 2 values, param_groups has 1."),
    (lambda o: optim.OneCycleLR(optim.Adagrad(_params()), 0.1, 10), r"optimizer must support momentum or beta1"),
    (lambda o: optim.ConstantLR(o, factor=1.5), r"Constant multiplicative factor expected to be between 0 and 1, got "
                                                r"factor=1.5"),
    (lambda o: optim.LinearLR(o, start_factor=0), r"Starting multiplicative factor expected to be greater than 0"),
    (lambda o: optim.LambdaLR(o, [lambda e: 1, lambda e: 2]), r"Expected 1 lr_lambdas, but got 2"),
    (lambda o: optim.MultiStepLR(o, [2.5]), r"milestones must be integers \(epoch numbers\), got \[2.5\]"),
    (lambda o: optim.CosineAnnealingWarmRestarts(o, 0), r"Expected positive integer T_0, but got 0"),
    (lambda o: optim.CosineAnnealingWarmRestarts(o, 2, T_mult=1.5), r"Expected integer T_mult >= 1, but got 1.5"),
    (lambda o: optim.PolynomialLR(o, total_iters=0), r"total_iters must be an integer >= 1, got 0"),
    (lambda o: optim.ReduceLROnPlateau(o, factor=1.5), r"Factor should be < 1.0 \(and >= 0\), got factor=1.5"),
    (lambda o: optim.ReduceLROnPlateau(o, mode="avg"), r"mode 'avg' is unknown! Expected 'min' or 'max'"),
    (lambda o: optim.ReduceLROnPlateau(o, threshold_mode="pct"), r"threshold mode 'pct' is unknown!"),
    (lambda o: optim.ReduceLROnPlateau(o, min_lr=[0.1, 0.1]), r"expected 1 min_lrs, got 2"),
    (lambda o: optim.ReduceLROnPlateau(o, patience=-1), r"patience must be an integer >= 0, got -1"),
])
def test_scheduler_errors(make, message):
    with pytest.raises(ValueError, match=message):
        make(optim.SGD(_params(), lr=0.1, momentum=0.9))


def test_composite_scheduler_errors():
    opt, other = optim.SGD(_params(), lr=0.1), optim.SGD(_params(), lr=0.1)
    with pytest.raises(ValueError, match=r"Sequential Schedulers expects number of schedulers provided to be one more "
                                         r"than the number of milestone points, but got number of schedulers 2 and "
                                         r"the number of milestones to be equal to 2"):
        optim.SequentialLR(opt, [optim.StepLR(opt, 2), optim.StepLR(opt, 3)], [2, 4])
    with pytest.raises(ValueError, match=r"SequentialLR does not support `ReduceLROnPlateau`"):
        optim.SequentialLR(opt, [optim.StepLR(opt, 2), optim.ReduceLROnPlateau(opt)], [2])
    with pytest.raises(ValueError, match=r"ChainedScheduler expects all schedulers to belong to the same optimizer, "
                                         r"but got scheduler StepLR at index 1 with another optimizer"):
        optim.ChainedScheduler([optim.StepLR(opt, 2), optim.StepLR(other, 2)])
    with pytest.raises(ValueError, match=r"ChainedScheduler expects at least one scheduler"):
        optim.ChainedScheduler([])


def test_a_group_added_after_the_scheduler_is_an_error():
    ps = _params()
    opt = optim.SGD(ps[:1], lr=0.1)
    sched = optim.LambdaLR(opt, lambda e: 0.5 ** e)
    opt.add_param_group({"params": ps[1:]})
    with pytest.raises(ValueError, match=r"LambdaLR: the optimizer has 2 parameter groups but the scheduler was made "
                                         r"for 1; create the scheduler after add_param_group"):
        sched.step()


def test_scheduler_needs_an_optimizer():
    with pytest.raises(TypeError, match=r"list is not an Optimizer"):
        optim.StepLR([], 2)
    with pytest.raises(TypeError, match=r"list is not an Optimizer"):
        optim.ReduceLROnPlateau([])
    with pytest.raises(TypeError, match=r"lr_lambda must be a function of the epoch"):
        optim.LambdaLR(optim.SGD(_params(), lr=0.1), 0.5)


def test_no_warnings_in_normal_use():
    opt = optim.SGD(_params(), lr=0.1, momentum=0.9)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sched = optim.OneCycleLR(opt, 0.1, total_steps=5)
        for _ in range(4):
            opt.step()
            sched.step()
