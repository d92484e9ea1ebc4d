"""cnnlab.autograd.grad / backward: gradients by hand (the chain rule written out), PyTorch parity."""
import numpy as np
import pytest

import cnnlab
from cnnlab import autograd


def test_grad_of_a_leaf_is_the_chain_rule_and_touches_no_grad():
    x = cnnlab.tensor([1.0, -2.0, 3.0], requires_grad=True)
    w = cnnlab.tensor([0.5, 0.25, 2.0], requires_grad=True)
    loss = ((x * w) ** 2).sum()
    gx, gw = autograd.grad(loss, [x, w])
    xs, ws = x.numpy(), w.numpy()
    np.testing.assert_allclose(gx.numpy(), 2 * xs * ws * ws, rtol=1e-6)   # d/dx (xw)^2 = 2 x w^2
    np.testing.assert_allclose(gw.numpy(), 2 * ws * xs * xs, rtol=1e-6)
    assert x.grad is None and w.grad is None


def test_grad_of_an_intermediate_tensor_and_a_leaf_behind_it():
    x = cnnlab.tensor([1.0, 2.0], requires_grad=True)
    h = x * 3          # dh/dx = 3
    y = (h * h).sum()  # dy/dh = 2h
    gh, gx = autograd.grad(y, (h, x))
    np.testing.assert_allclose(gh.numpy(), 2 * 3 * x.numpy())
    np.testing.assert_allclose(gx.numpy(), 2 * 9 * x.numpy())


def test_several_outputs_with_their_gradients_and_released_graph():
    x = cnnlab.tensor([1.0, 2.0, 3.0], requires_grad=True)
    a, b = x * 2, x.exp()
    (g,) = autograd.grad([a, b], x, grad_outputs=[cnnlab.ones(3), cnnlab.tensor([1.0, 0.0, 2.0])],
                         retain_graph=True)
    np.testing.assert_allclose(g.numpy(), 2 + np.exp(x.numpy()) * [1, 0, 2], rtol=1e-6)
    autograd.grad(a.sum(), x)  # the graph was kept, then released
    with pytest.raises(RuntimeError, match="second time"):
        autograd.grad(a.sum(), x)


def test_unused_inputs_and_bad_arguments():
    x = cnnlab.tensor([1.0], requires_grad=True)
    z = cnnlab.tensor([2.0], requires_grad=True)
    y = (x * 2).sum()
    with pytest.raises(RuntimeError, match="allow_unused"):
        autograd.grad(y, [x, z], retain_graph=True)
    gx, gz = autograd.grad(y, [x, z], allow_unused=True, retain_graph=True)
    assert gz is None and gx.item() == 2.0
    assert autograd.grad(y, [z], materialize_grads=True, retain_graph=True)[0].numpy().tolist() == [0.0]
    with pytest.raises(RuntimeError, match="does not require grad"):
        autograd.grad(y, [cnnlab.tensor([1.0])])
    v = cnnlab.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="scalar outputs"):
        autograd.grad(v * 2, v)
    with pytest.raises(RuntimeError, match="Mismatch in shape"):
        autograd.grad(v * 2, v, grad_outputs=cnnlab.ones(3))
    with pytest.raises(TypeError, match="inputs"):
        autograd.grad(y, [np.ones(1)])


def test_backward_of_several_tensors_and_only_some_inputs():
    x = cnnlab.tensor([1.0, 2.0], requires_grad=True)
    w = cnnlab.tensor([3.0, 4.0], requires_grad=True)
    autograd.backward([(x * w).sum(), (x * x).sum()])
    np.testing.assert_allclose(x.grad.numpy(), w.numpy() + 2 * x.numpy())
    np.testing.assert_allclose(w.grad.numpy(), x.numpy())
    autograd.backward((x * w).sum(), inputs=[w])
    np.testing.assert_allclose(x.grad.numpy(), w.numpy() + 2 * x.numpy())  # unchanged
    np.testing.assert_allclose(w.grad.numpy(), 2 * x.numpy())                # accumulated


def test_grad_matches_torch_through_a_small_cnn(torch):
    rng = np.random.default_rng(0)
    x0 = rng.normal(size=(2, 1, 6, 6))
    w0, b0 = rng.normal(size=(3, 1, 3, 3)), rng.normal(size=(3,))
    results = []
    for lib, F in ((cnnlab, cnnlab.functional), (torch, torch.nn.functional)):
        x = lib.tensor(x0, requires_grad=True)
        w = lib.tensor(w0, requires_grad=True)
        b = lib.tensor(b0, requires_grad=True)
        h = F.relu(F.conv2d(x, w, b, padding=1))
        loss = F.max_pool2d(h, 2).pow(2).mean()
        grads = lib.autograd.grad(loss, [x, w, b, h])
        results.append([g.detach().numpy() for g in grads] + [w.grad])
    for ours, theirs in zip(results[0][:4], results[1][:4]):
        np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-12)
    assert results[0][4] is None and results[1][4] is None
