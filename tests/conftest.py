"""Shared test helpers: float64 central-difference gradient checks and PyTorch parity.

``gradcheck(fn, inputs)`` compares the gradients that ``Tensor.backward``
computes with central differences ``(f(x + eps) - f(x - eps)) / 2 eps`` of the
scalar ``sum(fn(*inputs) * w)`` for a fixed random ``w``; every input gets
checked, element by element.

``torch_parity(torch, cn_fn, torch_fn, inputs)`` runs the same computation in
cnnlab and in PyTorch on identical float64 inputs and compares the forward
values and the gradients of every input.  Tests that use it take the
``torch`` fixture, which skips them when PyTorch is not installed.
"""
from __future__ import annotations

import numpy as np
import pytest

from cnnlab import Tensor, no_grad


@pytest.fixture
def torch():
    """The ``torch`` module, or skip the test when it is not installed."""
    return pytest.importorskip("torch")


def _weights(shape, seed):
    return np.random.default_rng(seed).standard_normal(shape)


def gradcheck(fn, inputs, eps: float = 1e-6, atol: float = 1e-7, rtol: float = 1e-5, seed: int = 0,
              wrt=None):
    """Check ``Tensor.backward`` of ``fn`` against float64 central differences.

    Args:
        fn: ``fn(*tensors) -> Tensor`` (any output shape).
        inputs: arrays, converted to float64.
        wrt: indices of the inputs to check (default: all of them).
    Returns:
        the list of analytic gradients (for extra checks by the caller).
    """
    arrays = [np.array(a, dtype=np.float64) for a in inputs]
    wrt = range(len(arrays)) if wrt is None else wrt
    tensors = [Tensor(a.copy(), requires_grad=i in wrt) for i, a in enumerate(arrays)]
    out = fn(*tensors)
    assert out.dtype == np.float64, f"float64 inputs gave a {out.dtype} output"
    w = _weights(out.shape, seed)
    out.backward(w)

    def objective():
        with no_grad():
            return float(np.sum(fn(*[Tensor(a) for a in arrays]).numpy() * w))

    grads = []
    for i in wrt:
        a = arrays[i]
        numeric = np.zeros_like(a)
        for idx in np.ndindex(a.shape):
            orig = a[idx]
            a[idx] = orig + eps
            plus = objective()
            a[idx] = orig - eps
            minus = objective()
            a[idx] = orig
            numeric[idx] = (plus - minus) / (2 * eps)
        analytic = tensors[i].grad
        assert analytic is not None, f"input {i} received no gradient"
        assert analytic.shape == a.shape, f"input {i}: gradient shape {analytic.shape} != {a.shape}"
        np.testing.assert_allclose(analytic, numeric, atol=atol, rtol=rtol,
                                   err_msg=f"gradient of input {i} (shape {a.shape})")
        grads.append(analytic)
    return grads


def torch_parity(torch, cn_fn, torch_fn, inputs, atol: float = 1e-10, rtol: float = 1e-9, seed: int = 0,
                 grad: bool = True):
    """Same float64 inputs through cnnlab and PyTorch: equal outputs and equal input gradients.

    ``cn_fn(*cnnlab_tensors)`` and ``torch_fn(*torch_tensors)`` must compute the same thing.
    Returns ``(cnnlab_output_array, torch_output_array)``.
    """
    arrays = [np.array(a, dtype=np.float64) for a in inputs]
    cn_in = [Tensor(a.copy(), requires_grad=grad) for a in arrays]
    t_in = [torch.tensor(a, requires_grad=grad) for a in arrays]
    cn_out = cn_fn(*cn_in)
    t_out = torch_fn(*t_in)
    assert tuple(cn_out.shape) == tuple(t_out.shape), f"shape {cn_out.shape} != torch {tuple(t_out.shape)}"
    np.testing.assert_allclose(cn_out.numpy(), t_out.detach().numpy(), atol=atol, rtol=rtol,
                               err_msg="forward values differ from PyTorch")
    if grad:
        w = _weights(cn_out.shape, seed)
        cn_out.backward(w)
        t_out.backward(torch.tensor(w))
        for i, (c, t) in enumerate(zip(cn_in, t_in)):
            if t.grad is None:
                continue
            assert c.grad is not None, f"input {i} has a PyTorch gradient but no cnnlab gradient"
            np.testing.assert_allclose(c.grad, t.grad.numpy(), atol=atol, rtol=rtol,
                                       err_msg=f"gradient of input {i} differs from PyTorch")
    return cn_out.numpy(), t_out.detach().numpy()
