"""PyTorch's tensor tutorials (the blitz's "Tensors" and "Learn the basics: Tensors"), step by step,
with only the imports changed.  Values are checked by hand and, where PyTorch is installed, against it."""
import numpy as np
import pytest

import cnnlab as torch


@pytest.fixture
def pt(torch):  # noqa: F811  (the real PyTorch, from conftest's fixture; this module's ``torch`` is cnnlab)
    return torch


def test_initialising_tensors():
    data = [[1, 2], [3, 4]]
    x_data = torch.tensor(data)
    assert x_data.dtype == torch.int64 and x_data.shape == (2, 2)
    np_array = np.array(data)
    x_np = torch.from_numpy(np_array)
    assert np.shares_memory(x_np.numpy(), np_array)
    x_ones = torch.ones_like(x_data)
    assert x_ones.dtype == x_data.dtype and x_ones.tolist() == [[1, 1], [1, 1]]
    x_rand = torch.rand_like(x_data, dtype=torch.float)
    assert x_rand.dtype == torch.float32 and ((0 <= x_rand) & (x_rand < 1)).all()
    shape = (2, 3,)
    for t, value in ((torch.rand(shape), None), (torch.ones(shape), 1.0), (torch.zeros(shape), 0.0)):
        assert t.shape == (2, 3) and t.dtype == torch.float32
        if value is not None:
            assert (t == value).all()


def test_attributes_and_device():
    tensor = torch.rand(3, 4)
    assert tensor.shape == torch.Size([3, 4]) and tensor.dtype == torch.float32
    assert tensor.device == "cpu" and str(tensor.device) == "cpu" and tensor.device == torch.device("cpu")
    assert torch.cuda.is_available() is False
    if torch.cuda.is_available():
        tensor = tensor.to("cuda")  # never taken: cnnlab has no GPU
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert tensor.to(device) is tensor and repr(device) == "device(type='cpu')"
    accelerator = torch.accelerator.current_accelerator().type if torch.accelerator.is_available() else "cpu"
    mps = "mps" if torch.backends.mps.is_available() else "cpu"
    assert accelerator == mps == "cpu"
    with pytest.raises(RuntimeError, match="CPU only"):
        tensor.to(torch.device("cuda:0"))


def test_indexing_joining_and_arithmetic():
    tensor = torch.ones(4, 4)
    assert tensor[0].tolist() == [1.0] * 4 and tensor[:, 0].tolist() == [1.0] * 4
    assert tensor[..., -1].tolist() == [1.0] * 4
    tensor[:, 1] = 0
    assert tensor.sum().item() == 12.0
    t1 = torch.cat([tensor, tensor, tensor], dim=1)
    assert t1.shape == (4, 12)
    y1 = tensor @ tensor.T
    y2 = tensor.matmul(tensor.T)
    y3 = torch.rand_like(y1)
    result = torch.matmul(tensor, tensor.T, out=y3)
    assert result is y3
    np.testing.assert_array_equal(y1.numpy(), y2.numpy())
    np.testing.assert_array_equal(y3.numpy(), np.full((4, 4), 3.0))
    z1 = tensor * tensor
    z2 = tensor.mul(tensor)
    z3 = torch.rand_like(tensor)
    torch.mul(tensor, tensor, out=z3)
    np.testing.assert_array_equal(z1.numpy(), z2.numpy())
    np.testing.assert_array_equal(z3.numpy(), tensor.numpy())
    agg = tensor.sum()
    agg_item = agg.item()
    assert agg_item == 12.0 and isinstance(agg_item, float)
    tensor.add_(5)
    assert tensor[0, 1].item() == 5.0 and tensor[0, 0].item() == 6.0


def test_numpy_bridge_shares_memory():
    t = torch.ones(5)
    n = t.numpy()
    t.add_(1)
    assert n.tolist() == [2.0] * 5
    n = np.ones(5)
    t = torch.from_numpy(n)
    np.add(n, 1, out=n)
    assert t.tolist() == [2.0] * 5


def test_matmul_rules_match_pytorch(pt):
    rng = np.random.default_rng(0)
    shapes = [((5,), (5,)), ((5,), (5, 3)), ((4, 5), (5,)), ((2, 4, 5), (5,)), ((5,), (2, 5, 3)),
              ((2, 4, 5), (2, 5, 3)), ((2, 1, 4, 5), (3, 5, 2)), ((4, 5), (3, 5, 2)), ((3, 4, 5), (5, 2))]
    for sa, sb in shapes:
        a, b = rng.standard_normal(sa), rng.standard_normal(sb)
        ours_a, ours_b = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
        theirs_a, theirs_b = pt.tensor(a, requires_grad=True), pt.tensor(b, requires_grad=True)
        ours, theirs = torch.matmul(ours_a, ours_b), pt.matmul(theirs_a, theirs_b)
        assert tuple(ours.shape) == tuple(theirs.shape), (sa, sb)
        np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=1e-12, atol=1e-12)
        g = rng.standard_normal(tuple(theirs.shape))
        ours.backward(torch.tensor(g))
        theirs.backward(pt.tensor(g))
        np.testing.assert_allclose(ours_a.grad.numpy(), theirs_a.grad.numpy(), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(ours_b.grad.numpy(), theirs_b.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_matmul_with_vectors_by_hand_and_errors():
    x = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    w = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=torch.float64, requires_grad=True)
    y = torch.matmul(x, w)
    assert y.tolist() == [4.0, 5.0] and torch.matmul(x, x).item() == 14.0
    y.sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), np.outer([1.0, 2.0, 3.0], [1.0, 1.0]))
    with pytest.raises(ValueError, match=r"shapes \(3,\) and \(2,\) do not align"):
        torch.matmul(x, torch.ones(2, dtype=torch.float64))
    with pytest.raises(ValueError, match="batch dimensions"):
        torch.matmul(torch.ones(2, 3, 4), torch.ones(3, 4, 5))
    with pytest.raises(RuntimeError, match="at least 1D"):
        torch.matmul(torch.tensor(2.0), x)
    with pytest.raises(RuntimeError, match="out=... arguments don't support automatic differentiation"):
        torch.matmul(x, w, out=torch.zeros(2, dtype=torch.float64))
