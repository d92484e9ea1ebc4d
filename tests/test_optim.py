"""Optimisers against PyTorch (float64, several steps and configurations, parameter groups),
state dicts and checkpoints, validation messages, clipping, and a training smoke test.
The learning-rate schedulers are tested in test_lr_scheduler.py."""
import json
import math

import numpy as np
import pytest

import cnnlab
import cnnlab.functional as F
from cnnlab import Tensor, nn, optim

SHAPES = [(3, 4), (5,), (2, 1, 3)]


def _params(dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    return [nn.Parameter(rng.standard_normal(s).astype(dtype)) for s in SHAPES]


def _grads(step, seed=100):
    rng = np.random.default_rng(seed + step)
    return [rng.standard_normal(s) for s in SHAPES]


def _groups(params, group_options, torch=None):
    """Split 3 parameters into groups [p0, p1] and [p2] with per-group options (torch tensors if torch)."""
    first, second = group_options
    return [dict(params=params[:2], **first), dict(params=params[2:], **second)]


def run_both(torch, make_ours, make_theirs, steps=6, skip_grad_of=None, groups=None, between=None):
    """Apply the same gradients to the same parameters in cnnlab and torch; compare after every step.

    ``groups``: per-group options (two dicts) -> both optimisers get parameter groups.
    ``between(step, opt, t_opt)``: called after each step (to change hyper-parameters in both).
    """
    ours = _params()
    theirs = [torch.tensor(p.numpy().copy(), requires_grad=True) for p in ours]
    if groups is None:
        opt, t_opt = make_ours(ours), make_theirs(theirs)
    else:
        opt, t_opt = make_ours(_groups(ours, groups)), make_theirs(_groups(theirs, groups))
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
            np.testing.assert_allclose(p.numpy(), tp.detach().numpy(), rtol=1e-12, atol=1e-14,
                                       err_msg=f"step {step}")
        if between is not None:
            between(step, opt, t_opt)
    return ours, opt, theirs, t_opt


SGD_CONFIGS = [dict(lr=0.1), dict(lr=0.05, momentum=0.9), dict(lr=0.05, momentum=0.9, dampening=0.5),
               dict(lr=0.05, momentum=0.8, nesterov=True), dict(lr=0.1, weight_decay=0.01),
               dict(lr=0.02, momentum=0.9, weight_decay=0.05, nesterov=True),
               dict(lr=0.02, momentum=0.7, dampening=0.3, weight_decay=0.1),
               dict(lr=0.03, momentum=0.9, maximize=True), dict()]
ADAM_CONFIGS = [dict(lr=0.01), dict(lr=0.05, betas=(0.8, 0.99)), dict(lr=0.01, weight_decay=0.1),
                dict(lr=0.02, eps=1e-3, betas=(0.5, 0.9), weight_decay=0.01), dict(lr=0.03, amsgrad=True),
                dict(lr=0.02, amsgrad=True, weight_decay=0.05, betas=(0.7, 0.8)), dict(lr=0.01, maximize=True),
                dict(lr=0.02, betas=(0.0, 0.5))]
RMSPROP_CONFIGS = [dict(), dict(lr=0.05), dict(lr=0.01, alpha=0.9, eps=1e-6), dict(lr=0.01, centered=True),
                   dict(lr=0.01, momentum=0.9), dict(lr=0.005, momentum=0.5, centered=True, weight_decay=0.1),
                   dict(lr=0.02, weight_decay=0.01, alpha=0.5), dict(lr=0.01, maximize=True, momentum=0.3)]
ADAGRAD_CONFIGS = [dict(), dict(lr=0.1), dict(lr=0.1, lr_decay=0.05), dict(lr=0.05, weight_decay=0.1),
                   dict(lr=0.1, initial_accumulator_value=0.5, eps=1e-4), dict(lr=0.1, maximize=True)]


def _ids(configs):
    return [str(c) for c in configs]


@pytest.mark.parametrize("cfg", SGD_CONFIGS, ids=_ids(SGD_CONFIGS))
def test_sgd_matches_torch(torch, cfg):
    run_both(torch, lambda p: optim.SGD(p, **cfg), lambda p: torch.optim.SGD(p, **cfg))


@pytest.mark.parametrize("cfg", ADAM_CONFIGS, ids=_ids(ADAM_CONFIGS))
def test_adam_and_adamw_match_torch(torch, cfg):
    run_both(torch, lambda p: optim.Adam(p, **cfg), lambda p: torch.optim.Adam(p, **cfg))
    run_both(torch, lambda p: optim.AdamW(p, **cfg), lambda p: torch.optim.AdamW(p, **cfg))


def test_adam_decoupled_weight_decay_is_adamw(torch):
    cfg = dict(lr=0.01, weight_decay=0.1)
    run_both(torch, lambda p: optim.Adam(p, decoupled_weight_decay=True, **cfg), lambda p: torch.optim.AdamW(p, **cfg))


def test_adamw_default_weight_decay_matches_torch(torch):
    run_both(torch, lambda p: optim.AdamW(p, lr=0.01), lambda p: torch.optim.AdamW(p, lr=0.01))
    assert optim.AdamW(_params()).defaults["weight_decay"] == 0.01


@pytest.mark.parametrize("cfg", RMSPROP_CONFIGS, ids=_ids(RMSPROP_CONFIGS))
def test_rmsprop_matches_torch(torch, cfg):
    run_both(torch, lambda p: optim.RMSprop(p, **cfg), lambda p: torch.optim.RMSprop(p, **cfg), steps=8)


@pytest.mark.parametrize("cfg", ADAGRAD_CONFIGS, ids=_ids(ADAGRAD_CONFIGS))
def test_adagrad_matches_torch(torch, cfg):
    run_both(torch, lambda p: optim.Adagrad(p, **cfg), lambda p: torch.optim.Adagrad(p, **cfg))


def test_defaults_are_pytorchs(torch):
    ps = _params()
    t = [torch.zeros(1, requires_grad=True)]
    for ours, theirs in [(optim.SGD(ps), torch.optim.SGD(t)), (optim.Adam(ps), torch.optim.Adam(t)),
                         (optim.AdamW(ps), torch.optim.AdamW(t)), (optim.RMSprop(ps), torch.optim.RMSprop(t)),
                         (optim.Adagrad(ps), torch.optim.Adagrad(t))]:
        for key, value in ours.defaults.items():
            assert theirs.defaults[key] == value, (type(ours).__name__, key)


# --- parameter groups: the one source of truth ------------------------------------------------------
GROUP_CASES = [
    ("SGD", dict(momentum=0.9), [dict(lr=0.1), dict(lr=0.01, nesterov=True)]),
    ("SGD", dict(lr=0.05), [dict(), dict(lr=0.2, weight_decay=0.1, momentum=0.5)]),
    ("Adam", dict(lr=0.01), [dict(), dict(lr=0.1, betas=(0.5, 0.9), amsgrad=True)]),
    ("AdamW", dict(), [dict(lr=0.02, weight_decay=0.5), dict(lr=0.002)]),
    ("RMSprop", dict(), [dict(lr=0.02, centered=True), dict(lr=0.001, momentum=0.9)]),
    ("Adagrad", dict(lr=0.1), [dict(lr_decay=0.1), dict(lr=0.3)]),
]


@pytest.mark.parametrize("name,defaults,groups", GROUP_CASES, ids=[f"{c[0]}-{c[2]}" for c in GROUP_CASES])
def test_param_groups_match_torch(torch, name, defaults, groups):
    ours, opt, _, t_opt = run_both(torch, lambda p: getattr(optim, name)(p, **defaults),
                                   lambda p: getattr(torch.optim, name)(p, **defaults), groups=groups)
    assert len(opt.param_groups) == 2
    for g, tg in zip(opt.param_groups, t_opt.param_groups):
        assert {k: v for k, v in g.items() if k != "params"}.items() <= {
            k: v for k, v in tg.items() if k != "params"}.items()
    assert opt.param_groups[0]["params"] == ours[:2] and opt.param_groups[1]["params"] == [ours[2]]


@pytest.mark.parametrize("name,defaults", [("SGD", dict(lr=0.1, momentum=0.9)), ("Adam", dict(lr=0.01)),
                                           ("RMSprop", dict(lr=0.01, momentum=0.5)), ("Adagrad", dict(lr=0.1))])
def test_editing_param_groups_changes_the_next_step_like_torch(torch, name, defaults):
    def between(step, opt, t_opt):
        for g, tg in zip(opt.param_groups, t_opt.param_groups):
            g["lr"] = tg["lr"] = tg["lr"] * 0.5 + 0.001 * step
            g["weight_decay"] = tg["weight_decay"] = 0.01 * step
        if "betas" in opt.param_groups[0]:
            opt.param_groups[0]["betas"] = t_opt.param_groups[0]["betas"] = (0.8, 0.95)
    run_both(torch, lambda p: getattr(optim, name)(p, **defaults),
             lambda p: getattr(torch.optim, name)(p, **defaults), steps=6, between=between)


def test_lr_shortcut_reads_and_writes_the_groups():
    ps = _params()
    opt = optim.SGD([{"params": ps[:1], "lr": 0.5}, {"params": ps[1:]}], lr=0.1)
    assert opt.lr == 0.5 and opt.param_groups[1]["lr"] == 0.1
    opt.lr = 0.3
    assert [g["lr"] for g in opt.param_groups] == [0.3, 0.3]


def test_add_param_group_matches_torch(torch):
    ours = _params()
    theirs = [torch.tensor(p.numpy().copy(), requires_grad=True) for p in ours]
    opt = optim.Adam(ours[:2], lr=0.01)
    t_opt = torch.optim.Adam(theirs[:2], lr=0.01)
    for step in range(5):
        if step == 2:
            opt.add_param_group({"params": ours[2], "lr": 0.1})
            t_opt.add_param_group({"params": theirs[2], "lr": 0.1})
        for p, tp, g in zip(ours, theirs, _grads(step)):
            p.grad, tp.grad = g.copy(), torch.tensor(g)
        opt.step()
        t_opt.step()
        for p, tp in zip(ours, theirs):
            np.testing.assert_allclose(p.numpy(), tp.detach().numpy(), rtol=1e-12)
    assert opt.param_groups[1]["betas"] == (0.9, 0.999) and opt.param_groups[1]["lr"] == 0.1


def test_named_parameters_are_accepted():
    model = nn.Linear(3, 2)
    opt = optim.SGD(model.named_parameters(), lr=0.1)
    assert opt.param_groups[0]["param_names"] == ["weight", "bias"]
    assert opt.param_groups[0]["params"] == [model.weight, model.bias]


def test_parameters_without_grad_are_skipped(torch):
    run_both(torch, lambda p: optim.SGD(p, lr=0.1, momentum=0.9), lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9),
             skip_grad_of=1)
    run_both(torch, lambda p: optim.Adam(p, lr=0.01), lambda p: torch.optim.Adam(p, lr=0.01), skip_grad_of=0)
    run_both(torch, lambda p: optim.RMSprop(p), lambda p: torch.optim.RMSprop(p), skip_grad_of=2)


def test_sgd_by_hand():
    p = nn.Parameter(np.array([1.0, -2.0]))
    opt = optim.SGD([p], lr=0.5, momentum=0.9)
    p.grad = np.array([1.0, 1.0])
    opt.step()  # buf = g
    np.testing.assert_allclose(p.numpy(), [0.5, -2.5])
    p.grad = np.array([1.0, 1.0])
    opt.step()  # buf = 0.9 * 1 + 1 = 1.9
    np.testing.assert_allclose(p.numpy(), [0.5 - 0.95, -2.5 - 0.95])


def test_rmsprop_by_hand():
    p = nn.Parameter(np.array([1.0]))
    opt = optim.RMSprop([p], lr=0.1, alpha=0.5, eps=0.0)
    p.grad = np.array([2.0])
    opt.step()  # v = 0.5 * 4 = 2; p -= 0.1 * 2 / sqrt(2)
    np.testing.assert_allclose(p.numpy(), [1.0 - 0.1 * 2 / math.sqrt(2)])
    opt = optim.RMSprop([p], lr=0.1, alpha=0.5, eps=0.0, centered=True)
    p.numpy()[:] = 1.0
    opt.step()  # v = 2, a = 1: p -= 0.1 * 2 / sqrt(2 - 1)
    np.testing.assert_allclose(p.numpy(), [0.8])


def test_parameters_update_in_place():
    ps = _params()
    arrays = [p.numpy() for p in ps]
    for opt in (optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.1), optim.Adam(ps), optim.AdamW(ps),
                optim.RMSprop(ps, centered=True, momentum=0.5), optim.Adagrad(ps)):
        for p, g in zip(ps, _grads(0)):
            p.grad = g
        opt.step()
    assert all(p.numpy() is a for p, a in zip(ps, arrays))


def test_float32_parameters_stay_float32():
    ps = _params(np.float32)
    for opt in (optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.1), optim.Adam(ps), optim.AdamW(ps, amsgrad=True),
                optim.RMSprop(ps, centered=True, momentum=0.5), optim.Adagrad(ps)):
        for _ in range(2):
            for p, g in zip(ps, _grads(0)):
                p.grad = g  # a float64 gradient
            opt.step()
        assert all(p.dtype == np.float32 for p in ps)
        assert all(v.dtype == np.float32 for s in opt.state.values() for k, v in s.items() if k != "step")


def test_zero_grad_sets_to_none_by_default_or_zeros_in_place():
    ps = _params()
    opt = optim.Adam(ps)
    for p in ps:
        p.grad = np.ones(p.shape)
    opt.zero_grad()
    assert all(p.grad is None for p in ps)
    grads = [np.ones(p.shape) for p in ps]
    for p, g in zip(ps, grads):
        p.grad = g
    ps[1].grad = None
    opt.zero_grad(set_to_none=False)
    assert ps[0].grad.numpy() is grads[0] and not ps[0].grad.any() and not ps[2].grad.any() and ps[1].grad is None


def test_step_with_closure_returns_the_loss(torch):
    x = np.random.default_rng(0).standard_normal((6, 3))
    ours = nn.Parameter(np.array([[0.5], [-1.0], [2.0]]))
    theirs = torch.tensor(ours.numpy().copy(), requires_grad=True)
    opt, t_opt = optim.SGD([ours], lr=0.1, momentum=0.5), torch.optim.SGD([theirs], lr=0.1, momentum=0.5)

    def closure():
        opt.zero_grad()
        loss = ((Tensor(x) @ ours) * (Tensor(x) @ ours)).mean()
        loss.backward()
        return loss

    def t_closure():
        t_opt.zero_grad()
        loss = ((torch.tensor(x) @ theirs) ** 2).mean()
        loss.backward()
        return loss

    for _ in range(4):
        with cnnlab.no_grad():  # the closure runs with gradients on, as in PyTorch
            loss = opt.step(closure)
        t_loss = t_opt.step(t_closure)
        assert math.isclose(float(loss.numpy()), float(t_loss.detach()), rel_tol=1e-12)
    np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=1e-12)
    assert opt.step() is None


def test_state_is_keyed_by_parameter(torch):
    ps = _params()
    opt = optim.SGD(ps, lr=0.1, momentum=0.9)
    assert ps[0] not in opt.state and len(opt.state) == 0
    for p, g in zip(ps, _grads(0)):
        p.grad = g
    opt.step()
    assert set(opt.state[ps[0]]) == {"momentum_buffer"} and len(opt.state) == 3
    np.testing.assert_array_equal(opt.state[ps[1]]["momentum_buffer"], _grads(0)[1])
    assert "Parameter Group 0" in repr(opt) and "momentum: 0.9" in repr(opt)


# --- state dicts and checkpoints -------------------------------------------------------------------------
MAKERS = {
    "sgd": lambda p: optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True),
    "adam": lambda p: optim.Adam(p, lr=0.01, amsgrad=True),
    "adamw": lambda p: optim.AdamW(p, lr=0.01),
    "rmsprop": lambda p: optim.RMSprop(p, lr=0.01, momentum=0.5, centered=True),
    "adagrad": lambda p: optim.Adagrad(p, lr=0.1, lr_decay=0.01),
    "groups": lambda p: optim.Adam([{"params": p[:1], "lr": 0.1}, {"params": p[1:], "betas": (0.5, 0.6)}]),
}


def _train(opt, params, steps):
    for step in steps:
        for p, g in zip(params, _grads(step)):
            p.grad = g.copy()
        opt.step()


@pytest.mark.parametrize("name", MAKERS)
def test_optimizer_state_dict_resumes_exactly(name):
    make = MAKERS[name]
    a, b = _params(), _params()
    opt_a, opt_b = make(a), make(b)
    _train(opt_a, a, range(3))
    _train(opt_b, b, range(3))
    state = opt_a.state_dict()
    assert all(isinstance(v, np.ndarray) for bufs in state["state"].values() for v in bufs.values())
    groups = json.loads(json.dumps(state["param_groups"]))  # JSON-able
    assert groups[0]["params"] == ([0] if name == "groups" else [0, 1, 2])
    # as a checkpoint stores it: flat "index.name" array keys, groups through JSON
    flat = {f"{i}.{k}": np.array(v) for i, bufs in state["state"].items() for k, v in bufs.items()}
    c = [nn.Parameter(p.numpy().copy()) for p in a]
    opt_c = make(c)
    opt_c.load_state_dict({"state": flat, "param_groups": groups})
    assert opt_c.param_groups[-1].get("betas", (0, 0)) == opt_a.param_groups[-1].get("betas", (0, 0))
    _train(opt_b, b, range(3, 6))
    _train(opt_c, c, range(3, 6))
    for p, q in zip(b, c):
        np.testing.assert_array_equal(p.numpy(), q.numpy())
    # the nested form also loads, and the loaded arrays are copies
    d = [nn.Parameter(p.numpy().copy()) for p in a]
    opt_d = make(d)
    opt_d.load_state_dict(opt_a.state_dict())
    assert all(opt_d.state[q][k] is not v for p, q in zip(a, d) for k, v in opt_a.state[p].items())


def test_load_state_dict_matches_torch_layout(torch):
    ours, _, theirs, t_opt = run_both(torch, lambda p: optim.Adam(_groups(p, [dict(), dict(lr=0.1)]), lr=0.01),
                                      lambda p: torch.optim.Adam(_groups(p, [dict(), dict(lr=0.1)]), lr=0.01),
                                      steps=2)
    opt = optim.Adam(_groups(ours, [dict(), dict(lr=0.1)]), lr=0.01)
    t_state = t_opt.state_dict()
    opt.load_state_dict({"state": {i: {k: v.numpy() for k, v in s.items()} for i, s in t_state["state"].items()},
                         "param_groups": t_state["param_groups"]})
    assert int(opt.state[ours[2]]["step"]) == 2 and opt.param_groups[1]["lr"] == 0.1
    assert sorted(opt.state_dict()["state"][0]) == sorted(t_state["state"][0])


def test_earlier_checkpoint_format_still_loads():
    a = _params()
    opt_a = optim.SGD(a, lr=0.1, momentum=0.9)
    _train(opt_a, a, range(2))
    legacy = {"lr": 0.05, "step_count": 2,
              "state": {f"{i}.momentum_buffer": opt_a.state[p]["momentum_buffer"] for i, p in enumerate(a)}}
    b = _params()
    opt_b = optim.SGD(b, lr=0.1, momentum=0.9)
    opt_b.load_state_dict(legacy)
    assert opt_b.param_groups[0]["lr"] == 0.05
    np.testing.assert_array_equal(opt_b.state[b[2]]["momentum_buffer"], opt_a.state[a[2]]["momentum_buffer"])


def test_load_state_dict_errors():
    opt = optim.Adam(_params())
    good = optim.Adam(_params()).state_dict()
    with pytest.raises(ValueError, match=r"loaded state dict has a different number of parameter groups \(2\) than "
                                         r"the optimizer \(1\)"):
        opt.load_state_dict({"state": {}, "param_groups": good["param_groups"] * 2})
    bad = json.loads(json.dumps(good["param_groups"]))
    bad[0]["params"] = [0, 1]
    with pytest.raises(ValueError, match=r"doesn't match the size of optimizer's group: param_groups\[0\] has 2 "
                                         r"parameters, expected 3"):
        opt.load_state_dict({"state": {}, "param_groups": bad})
    with pytest.raises(ValueError, match=r"optimizer state for parameter 1: 'exp_avg' has shape \(3, 4\), expected "
                                         r"\(5,\)"):
        opt.load_state_dict({"state": {"1.exp_avg": np.zeros((3, 4))}, "param_groups": good["param_groups"]})
    with pytest.raises(ValueError, match=r"optimizer state refers to parameter 7, but the optimizer has 3 parameters"):
        opt.load_state_dict({"state": {7: {"exp_avg": np.zeros(3)}}, "param_groups": good["param_groups"]})
    bad = json.loads(json.dumps(good["param_groups"]))
    bad[0]["lr"] = -1
    with pytest.raises(ValueError, match=r"Invalid learning rate: -1 .* in the loaded param_groups\[0\]"):
        opt.load_state_dict({"state": {}, "param_groups": bad})
    with pytest.raises(ValueError, match=r"optimizer state has no 'param_groups'"):
        opt.load_state_dict({"state": {}})


# --- validation, with PyTorch's messages -------------------------------------------------------------
@pytest.mark.parametrize("make,message", [
    (lambda p: optim.SGD(p, lr=float("nan")), r"Invalid learning rate: nan \(lr must be a finite number >= 0\)"),
    (lambda p: optim.SGD(p, lr=-0.1), r"Invalid learning rate: -0.1"),
    (lambda p: optim.Adam(p, lr=float("inf")), r"Invalid learning rate: inf"),
    (lambda p: optim.SGD(p, lr=0.1, momentum=-0.5), r"Invalid momentum value: -0.5"),
    (lambda p: optim.SGD(p, lr=0.1, weight_decay=-1e-4), r"Invalid weight_decay value: -0.0001"),
    (lambda p: optim.Adam(p, betas=(1.5, 0.999)), r"Invalid beta parameter at index 0: 1.5 \(betas\[0\] must be in "
                                                   r"\[0, 1\)\)"),
    (lambda p: optim.AdamW(p, betas=(0.9, 1.0)), r"Invalid beta parameter at index 1: 1.0"),
    (lambda p: optim.Adam(p, betas=(0.9,)), r"betas must be a pair \(beta1, beta2\), got \(0.9,\)"),
    (lambda p: optim.Adam(p, eps=-1e-8), r"Invalid epsilon value: -1e-08"),
    (lambda p: optim.AdamW(p, weight_decay=-0.01), r"Invalid weight_decay value: -0.01"),
    (lambda p: optim.RMSprop(p, alpha=1.5),
     r"Invalid alpha value: 1.5 \(alpha must be a finite number >= 0 and <= 1\)"),
    (lambda p: optim.RMSprop(p, momentum=-1), r"Invalid momentum value: -1"),
    (lambda p: optim.Adagrad(p, lr_decay=-1), r"Invalid lr_decay value: -1"),
    (lambda p: optim.Adagrad(p, initial_accumulator_value=-1), r"Invalid initial_accumulator_value value: -1"),
    (lambda p: optim.SGD(p, lr=0.1, nesterov=True), r"Nesterov momentum requires a momentum and zero dampening "
                                                     r"\(got momentum=0.0, dampening=0.0\)"),
    (lambda p: optim.SGD(p, lr=0.1, momentum=0.9, dampening=0.1, nesterov=True),
     r"Nesterov momentum requires a momentum and zero dampening"),
    (lambda p: optim.SGD([], lr=0.1), r"optimizer got an empty parameter list"),
    (lambda p: optim.SGD([{"params": p[:1]}, {"params": p[:2]}], lr=0.1),
     r"some parameters appear in more than one parameter group"),
    (lambda p: optim.SGD([{"params": p, "lr": -2}], lr=0.1), r"Invalid learning rate: -2 .* in param_groups\[0\]"),
    (lambda p: optim.SGD([{"params": p[:1]}, {"params": p[1:], "momentum": 0.0, "nesterov": True}], lr=0.1,
                         momentum=0.9), r"Nesterov momentum .* in param_groups\[1\]"),
    (lambda p: optim.Adam([{"lr": 0.1}]), r"a parameter group needs a 'params' entry"),
])
def test_bad_hyper_parameters_are_value_errors(make, message):
    with pytest.raises(ValueError, match=message):
        make(_params())


@pytest.mark.parametrize("make,message", [
    (lambda p: optim.SGD(p, lr="0.1"), r"lr must be a number, got '0.1' \(str\)"),
    (lambda p: optim.SGD(p[0], lr=0.1), r"params argument given to the optimizer should be an iterable of Tensors or "
                                        r"dicts, but got Parameter"),
    (lambda p: optim.SGD([np.zeros(3)], lr=0.1), r"optimizer can only optimize Tensors, but one of the params is "
                                                 r"numpy.ndarray"),
    (lambda p: optim.SGD({p[0], p[1]}, lr=0.1), r"ordered collections"),
    (lambda p: optim.SGD([{"params": {p[0], p[1]}}], lr=0.1), r"ordered collections"),
    (lambda p: optim.Adam(p, amsgrad="yes"), r"amsgrad must be True or False, got 'yes'"),
])
def test_bad_arguments_are_type_errors(make, message):
    with pytest.raises(TypeError, match=message):
        make(_params())


def test_gradient_of_the_wrong_shape():
    ps = _params()
    with pytest.raises(RuntimeError, match=r"assigned grad has data of a different size: expected shape \(3, 4\), "
                                           r"got \(5,\)"):
        ps[0].grad = np.zeros(5)
    ps[0].grad = np.zeros((3, 4))
    ps[0].grad.data = np.zeros(5)  # past the check: step still names both shapes
    with pytest.raises(ValueError, match=r"SGD.step: a parameter of shape \(3, 4\) has a gradient of shape \(5,\)"):
        optim.SGD(ps, lr=0.1).step()


# --- clipping -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf])
def test_clip_grad_norm_matches_torch(torch, norm_type):
    for max_norm in (0.5, 100.0):
        ours = _params()
        theirs = [torch.tensor(p.numpy().copy()) for p in ours]
        for p, tp, g in zip(ours, theirs, _grads(0)):
            p.grad, tp.grad = g.copy(), torch.tensor(g)
        total = optim.clip_grad_norm_(ours, max_norm, norm_type)
        t_total = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type)
        assert math.isclose(total, float(t_total), rel_tol=1e-12)
        for p, tp in zip(ours, theirs):
            np.testing.assert_allclose(p.grad, tp.grad.numpy(), rtol=1e-12)
    assert optim.clip_grad_norm_(_params(), 1.0) == 0.0


def test_clip_grad_norm_non_finite():
    ps = _params()
    for p in ps:
        p.grad = np.ones(p.shape)
    ps[0].grad[0, 0] = np.nan
    assert math.isnan(optim.clip_grad_norm_(ps, 1.0))
    with pytest.raises(RuntimeError, match=r"The total norm of order 2.0 for gradients from `parameters` is "
                                           r"non-finite"):
        optim.clip_grad_norm_(ps, 1.0, error_if_nonfinite=True)


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
        losses.append(float(loss.numpy()))
    assert np.isfinite(losses).all()
    assert losses[-1] < 0.5 * losses[0], losses
    model.eval()
    with cnnlab.no_grad():
        accuracy = (model(Tensor(x)).numpy().argmax(axis=1) == y).mean()
    assert accuracy > 0.9


# --- Adadelta (PyTorch's MNIST example) -----------------------------------------------------------
ADADELTA_CONFIGS = [dict(), dict(lr=0.5, rho=0.8), dict(lr=1.0, eps=1e-3, weight_decay=0.1),
                    dict(lr=0.3, maximize=True)]


@pytest.mark.parametrize("cfg", ADADELTA_CONFIGS, ids=[str(c) for c in ADADELTA_CONFIGS])
def test_adadelta_matches_torch(torch, cfg):
    run_both(torch, lambda p: optim.Adadelta(p, **cfg), lambda p: torch.optim.Adadelta(p, **cfg), steps=8)


def test_adadelta_groups_and_defaults_match_torch(torch):
    run_both(torch, lambda p: optim.Adadelta(p), lambda p: torch.optim.Adadelta(p),
             groups=[dict(lr=0.1), dict(rho=0.5)])
    ours, theirs = optim.Adadelta(_params()), torch.optim.Adadelta([torch.zeros(1, requires_grad=True)])
    for key, value in ours.defaults.items():
        assert theirs.defaults[key] == value, key


def test_adadelta_by_hand_and_state_dict_round_trip():
    p = nn.Parameter(np.array([1.0, -2.0]))
    opt = optim.Adadelta([p], lr=1.0, rho=0.9, eps=1e-6)
    p.grad = np.array([0.5, -1.0])
    opt.step()
    v = 0.1 * np.array([0.25, 1.0])
    delta = np.sqrt(1e-6) / np.sqrt(v + 1e-6) * np.array([0.5, -1.0])
    np.testing.assert_allclose(p.numpy(), np.array([1.0, -2.0]) - delta)
    np.testing.assert_allclose(opt.state[p]["acc_delta"], 0.1 * delta ** 2)
    other = optim.Adadelta([nn.Parameter(np.array([1.0, -2.0]))])
    other.load_state_dict(opt.state_dict())
    np.testing.assert_allclose(next(iter(other.state.values()))["square_avg"], v)
    with pytest.raises(ValueError, match="Invalid rho value: 1.5"):
        optim.Adadelta([p], rho=1.5)
