"""PyTorch's autograd tutorials (the blitz's "A gentle introduction to torch.autograd" and "Learn the
basics: Automatic differentiation"), step by step with only the imports changed."""
import numpy as np
import pytest

import cnnlab as torch
import cnnlab.nn as nn
import cnnlab.optim as optim


@pytest.fixture
def pt(torch):  # noqa: F811  (the real PyTorch; this module's ``torch`` is cnnlab)
    return torch


def test_gradients_of_a_polynomial():
    a = torch.tensor([2., 3.], requires_grad=True)
    b = torch.tensor([6., 4.], requires_grad=True)
    Q = 3 * a ** 3 - b ** 2
    external_grad = torch.tensor([1., 1.])
    Q.backward(gradient=external_grad)
    assert (9 * a ** 2 == a.grad).all() and (-2 * b == b.grad).all()
    assert isinstance(a.grad, torch.Tensor) and a.grad.requires_grad is False


def test_what_the_graph_records():
    x = torch.rand(5, 5)
    y = torch.rand(5, 5)
    z = torch.rand((5, 5), requires_grad=True)
    a = x + y
    assert a.requires_grad is False and a.grad_fn is None
    b = x + z
    assert b.requires_grad is True
    x = torch.ones(2, 2, requires_grad=True)
    y = x + 2
    assert y.grad_fn.name() == "AddBackward0" and x.grad_fn is None and x.is_leaf and not y.is_leaf
    z = y * y * 3
    out = z.mean()
    assert out.grad_fn.name() == "MeanBackward0" and repr(out.grad_fn).startswith("<MeanBackward0 object at")
    (mul_node, _), = out.grad_fn.next_functions
    assert mul_node.name() == "MulBackward0" and mul_node == z.grad_fn
    (inner, _), (constant, _) = mul_node.next_functions
    assert inner.name() == "MulBackward0" and constant is None
    leaf = inner.next_functions[0][0].next_functions[0][0]
    assert leaf.name() == "torch::autograd::AccumulateGrad" and leaf.variable is x
    out.backward()
    np.testing.assert_allclose(x.grad.numpy(), np.full((2, 2), 4.5))
    with torch.no_grad():
        assert (x ** 2).requires_grad is False
    assert x.detach().requires_grad is False


def test_freezing_a_model_for_finetuning():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 5))
    for param in model.parameters():
        param.requires_grad = False
    model[3] = nn.Linear(4 * 6 * 6, 10)  # the new classifier is the only part that learns
    optimizer = optim.SGD(model.parameters(), lr=1e-2, momentum=0.9)
    model(torch.rand(2, 3, 8, 8)).sum().backward()
    assert model[0].weight.grad is None and model[3].weight.grad.shape == (10, 144)
    before = model[0].weight.clone()
    optimizer.step()
    assert torch.equal(model[0].weight, before)


def test_basics_one_layer_network_gradients(pt):
    torch.manual_seed(0)
    x = torch.ones(5)  # input tensor
    y = torch.zeros(3)  # expected output
    w = torch.randn(5, 3, requires_grad=True)
    b = torch.randn(3, requires_grad=True)
    z = torch.matmul(x, w) + b
    loss = torch.nn.functional.binary_cross_entropy_with_logits(z, y)
    assert z.grad_fn.name() == "AddBackward0"
    assert loss.grad_fn.name() == "BinaryCrossEntropyWithLogitsBackward0"
    loss.backward()
    tw, tb = pt.tensor(w.numpy(), requires_grad=True), pt.tensor(b.numpy(), requires_grad=True)
    t_loss = pt.nn.functional.binary_cross_entropy_with_logits(pt.matmul(pt.ones(5), tw) + tb, pt.zeros(3))
    t_loss.backward()
    np.testing.assert_allclose(loss.item(), t_loss.item(), rtol=1e-6)
    np.testing.assert_allclose(w.grad.numpy(), tw.grad.numpy(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(b.grad.numpy(), tb.grad.numpy(), rtol=1e-5, atol=1e-7)
    with torch.no_grad():
        z = torch.matmul(x, w) + b
    assert z.requires_grad is False
    z = torch.matmul(x, w) + b
    z_det = z.detach()
    assert z_det.requires_grad is False


def test_backward_twice_needs_retain_graph_and_grads_accumulate(pt):
    inp = torch.eye(4, 5, requires_grad=True)
    out = (inp + 1).pow(2).t()
    out.backward(torch.ones_like(out), retain_graph=True)
    first = inp.grad.clone()
    out.backward(torch.ones_like(out), retain_graph=True)
    second = inp.grad.clone()
    inp.grad.zero_()
    out.backward(torch.ones_like(out), retain_graph=True)
    call = torch.eye(4, 5) * 2 + 2
    assert torch.equal(first, call) and torch.equal(second, 2 * call) and torch.equal(inp.grad, call)
    out.backward(torch.ones_like(out))  # the last use: the graph is released
    with pytest.raises(RuntimeError, match="Trying to backward through the graph a second time"):
        out.backward(torch.ones_like(out))
    t_inp = pt.eye(4, 5, requires_grad=True)
    t_out = (t_inp + 1).pow(2).t()
    t_out.backward(pt.ones_like(t_out))
    with pytest.raises(RuntimeError, match="Trying to backward through the graph a second time"):
        t_out.backward(pt.ones_like(t_out))


def test_grad_is_a_tensor_with_tensor_methods():
    w = torch.tensor([1.0, -2.0], requires_grad=True)
    (w * w).sum().backward()
    g = w.grad.clone()
    assert torch.equal(g, torch.tensor([2.0, -4.0]))
    w.grad.zero_()
    assert w.grad.tolist() == [0.0, 0.0] and g.tolist() == [2.0, -4.0]
    w.grad = np.array([1.0, 1.0])  # an array is wrapped
    assert isinstance(w.grad, torch.Tensor)
    with torch.no_grad():
        w -= 0.5 * w.grad
    assert w.tolist() == [0.5, -2.5]
    with pytest.raises(RuntimeError, match=r"expected shape \(2,\), got \(3,\)"):
        w.grad = np.zeros(3)
    with pytest.raises(RuntimeError, match=r"expected shape \(2,\), got \(1, 2\)"):
        w.grad = torch.zeros(1, 2)
    del w.grad
    assert w.grad is None
