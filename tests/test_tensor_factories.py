"""cnnlab's top level as PyTorch's: tensor, zeros, ones, arange, rand*, cat, stack, dtype names, threads."""
import numpy as np
import pytest

import cnnlab
from cnnlab import Tensor

from conftest import gradcheck, torch_parity

RNG = np.random.default_rng(99)


def rand(*shape):
    return RNG.uniform(-1, 1, size=shape)


def torch_dtype_name(t):
    return str(t.dtype).replace("torch.", "")


# --- creation: dtypes and values as PyTorch ------------------------------------------------------------------
@pytest.mark.parametrize("call", [
    lambda m: m.tensor([1.5, 2.0]), lambda m: m.tensor([1, 2]), lambda m: m.tensor(3.0), lambda m: m.tensor(7),
    lambda m: m.tensor([True, False]), lambda m: m.tensor([[1, 2]], dtype=m.float64),
    lambda m: m.tensor(np.arange(3.0)), lambda m: m.tensor(np.arange(3, dtype=np.float32)),
    lambda m: m.zeros(2, 3), lambda m: m.zeros((2, 3)), lambda m: m.ones([4]), lambda m: m.ones(2, dtype=m.int64),
    lambda m: m.zeros(()), lambda m: m.zeros(0, 3),
    lambda m: m.full((2, 2), 3), lambda m: m.full((2,), 1.5), lambda m: m.full((2,), True),
    lambda m: m.full((2,), 2, dtype=m.float64),
    lambda m: m.arange(5), lambda m: m.arange(1, 7, 2), lambda m: m.arange(0, 1, 0.25), lambda m: m.arange(5.0),
    lambda m: m.arange(3, dtype=m.float32), lambda m: m.arange(10, 0, -3),
    lambda m: m.linspace(0, 1, 5), lambda m: m.linspace(-1, 1, 1), lambda m: m.eye(3), lambda m: m.eye(2, 4),
    lambda m: m.zeros_like(m.ones(2, 3, dtype=m.float64)), lambda m: m.ones_like(m.arange(3)),
    lambda m: m.full_like(m.zeros(2), 7), lambda m: m.zeros_like(m.zeros(2), dtype=m.int32),
])
def test_creation_matches_torch(torch, call):
    cn, t = call(cnnlab), call(torch)
    assert isinstance(cn, Tensor)
    assert cn.shape == tuple(t.shape)
    assert str(cn.dtype) == torch_dtype_name(t), (cn.dtype, t.dtype)
    np.testing.assert_allclose(cn.numpy(), t.numpy(), rtol=1e-6)


def test_empty_and_requires_grad():
    e = cnnlab.empty(2, 3)
    assert e.shape == (2, 3) and e.dtype == np.float32
    assert cnnlab.empty_like(e).shape == (2, 3)
    z = cnnlab.zeros(2, requires_grad=True)
    assert z.requires_grad and z.is_leaf
    assert cnnlab.tensor([1.0], requires_grad=True).requires_grad
    with pytest.raises(TypeError, match="only floating point tensors can require gradients"):
        cnnlab.tensor([1, 2], requires_grad=True)


def test_creation_errors():
    with pytest.raises(RuntimeError, match=r"zeros: Dimension size must be non-negative, got size \[-1, 3\]"):
        cnnlab.zeros(-1, 3)
    with pytest.raises(TypeError, match=r"ones\(\): `size` must be integers, got \(2.5,\)"):
        cnnlab.ones(2.5)
    with pytest.raises(RuntimeError, match="arange: step must be nonzero"):
        cnnlab.arange(0, 3, 0)
    with pytest.raises(RuntimeError, match="cnnlab runs on the CPU only; got device 'cuda:0'"):
        cnnlab.zeros(2, device="cuda:0")
    assert cnnlab.zeros(2, device="cpu").shape == (2,)


def test_tensor_copies_as_tensor_and_from_numpy_share(torch):
    a = np.zeros(3)
    t, s, f = cnnlab.tensor(a), cnnlab.as_tensor(a), cnnlab.from_numpy(a)
    a[0] = 5
    assert t.numpy()[0] == 0 and s.numpy()[0] == 5 and f.numpy()[0] == 5
    f[1] = 7
    assert a[1] == 7
    existing = Tensor(np.ones(2))
    assert cnnlab.as_tensor(existing) is existing
    assert cnnlab.as_tensor(existing, dtype=cnnlab.float32).dtype == np.float32
    assert cnnlab.tensor(existing).numpy() is not existing.numpy()
    with pytest.raises(TypeError, match=r"expected np.ndarray \(got list\)"):
        cnnlab.from_numpy([1, 2])
    with pytest.raises(TypeError, match=r"expected np.ndarray \(got list\)"):
        torch.from_numpy([1, 2])
    assert cnnlab.is_tensor(f) and not cnnlab.is_tensor(a) and cnnlab.numel(cnnlab.zeros(2, 5)) == 10


def test_random_tensors_follow_manual_seed():
    cnnlab.manual_seed(3)
    a = (cnnlab.rand(2, 3), cnnlab.randn((4,)), cnnlab.randint(5, (3, 2)), cnnlab.randint(-2, 2, size=(100,)))
    cnnlab.manual_seed(3)
    b = (cnnlab.rand(2, 3), cnnlab.randn((4,)), cnnlab.randint(5, (3, 2)), cnnlab.randint(-2, 2, size=(100,)))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.numpy(), y.numpy())
    assert a[0].dtype == np.float32 and a[1].dtype == np.float32 and a[2].dtype == np.int64
    assert 0 <= a[0].numpy().min() and a[0].numpy().max() < 1
    assert 0 <= a[2].numpy().min() and a[2].numpy().max() < 5
    assert set(np.unique(a[3].numpy())) == {-2, -1, 0, 1}
    assert cnnlab.rand(3, dtype=cnnlab.float64).dtype == np.float64
    assert cnnlab.randn(2, 2, requires_grad=True).requires_grad
    assert cnnlab.rand_like(cnnlab.zeros(2, 2, dtype=cnnlab.float64)).dtype == np.float64
    assert cnnlab.randn_like(cnnlab.zeros(3)).shape == (3,)
    big = cnnlab.randn(20000, dtype=cnnlab.float64).numpy()
    assert abs(big.mean()) < 0.05 and abs(big.std() - 1) < 0.05
    with pytest.raises(RuntimeError, match="random_ expects 'from' to be less than 'to', but got from=5 >= to=5"):
        cnnlab.randint(5, 5, (2,))


# --- cat and stack -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dim", [0, 1, 2, -1, -3])
def test_cat_matches_torch(torch, dim):
    shapes = [[2, 3, 4], [2, 3, 4], [2, 3, 4]]
    for i, s in enumerate(shapes):
        s[dim] = i + 1
    torch_parity(torch, lambda a, b, c: cnnlab.cat([a, b * b, c], dim), lambda a, b, c: torch.cat([a, b * b, c], dim),
                 [rand(*s) for s in shapes])
    torch_parity(torch, lambda a, b: cnnlab.cat((a, b), dim=dim), lambda a, b: torch.cat((a, b), dim=dim),
                 [rand(*shapes[0]), rand(*shapes[1])])


@pytest.mark.parametrize("dim", [0, 1, 3, -1, -4])
def test_stack_matches_torch(torch, dim):
    torch_parity(torch, lambda a, b: cnnlab.stack([a, b, a], dim), lambda a, b: torch.stack([a, b, a], dim),
                 [rand(2, 3, 4), rand(2, 3, 4)])


def test_gradcheck_cat_stack():
    gradcheck(lambda a, b: cnnlab.cat([a, b], 1), [rand(2, 3), rand(2, 2)])
    gradcheck(lambda a, b: cnnlab.stack([a, b * a], -1), [rand(2, 3), rand(2, 3)])


def test_cat_stack_errors_match_torch():
    a, b = cnnlab.zeros(2, 3), cnnlab.zeros(3, 3)
    with pytest.raises(RuntimeError, match=r"Sizes of tensors must match except in dimension 1. Expected size 2 "
                                           r"but got size 3 for tensor number 1 in the list."):
        cnnlab.cat([a, b], 1)
    with pytest.raises(RuntimeError, match="Tensors must have same number of dimensions: got 2 and 1"):
        cnnlab.cat([a, cnnlab.zeros(3)])
    with pytest.raises(ValueError, match=r"cat\(\): expected a non-empty list of Tensors"):
        cnnlab.cat([])
    with pytest.raises(TypeError, match=r"cat\(\): expected a sequence of Tensors, got a single Tensor"):
        cnnlab.cat(a)
    with pytest.raises(RuntimeError, match=r"stack expects each tensor to be equal size, but got \[2, 3\] at entry 0 "
                                           r"and \[3, 3\] at entry 1"):
        cnnlab.stack([a, b])
    with pytest.raises(RuntimeError, match="zero-dimensional tensor"):
        cnnlab.cat([cnnlab.tensor(1.0), cnnlab.tensor(2.0)])


def test_cat_promotes_integer_tensors_like_torch(torch):
    out = cnnlab.cat([cnnlab.zeros(2), cnnlab.arange(2)])
    assert out.dtype == np.float32 == np.dtype(torch_dtype_name(torch.cat([torch.zeros(2), torch.arange(2)])))
    assert cnnlab.stack([cnnlab.zeros(2, dtype=cnnlab.float64), cnnlab.zeros(2)]).dtype == np.float64


# --- the Tensor methods as functions ---------------------------------------------------------------------------------
FUNCTIONS = [
    ("flatten", lambda m, t: m.flatten(t, 1)), ("reshape", lambda m, t: m.reshape(t, (4, -1))),
    ("squeeze", lambda m, t: m.squeeze(m.unsqueeze(t, 0))), ("transpose", lambda m, t: m.transpose(t, 0, -1)),
    ("permute", lambda m, t: m.permute(t, (2, 0, 1))), ("clamp", lambda m, t: m.clamp(t, -0.5, 0.5)),
    ("clip", lambda m, t: m.clip(t, max=0.2)), ("exp", lambda m, t: m.exp(t)), ("log", lambda m, t: m.log(m.abs(t))),
    ("sqrt", lambda m, t: m.sqrt(m.abs(t))), ("pow", lambda m, t: m.pow(t, 2)), ("sigmoid", lambda m, t: m.sigmoid(t)),
    ("tanh", lambda m, t: m.tanh(t)), ("relu", lambda m, t: m.relu(t)), ("softmax", lambda m, t: m.softmax(t, 1)),
    ("log_softmax", lambda m, t: m.log_softmax(t, dim=-1)), ("sum", lambda m, t: m.sum(t, 1)),
    ("mean", lambda m, t: m.mean(t, (0, 2), keepdim=True)), ("max", lambda m, t: m.max(t, 1)[0]),
    ("max_all", lambda m, t: m.max(t)), ("min", lambda m, t: m.min(t, -1).values), ("amax", lambda m, t: m.amax(t, 0)),
    ("amin", lambda m, t: m.amin(t, (1, 2))), ("std", lambda m, t: m.std(t, 1)), ("var", lambda m, t: m.var(t, 2)),
    ("prod", lambda m, t: m.prod(t, 1)), ("norm", lambda m, t: m.norm(t, dim=1)),
    ("maximum", lambda m, t: m.maximum(t, t * 0.5)), ("minimum", lambda m, t: m.minimum(t, t * 0.5)),
    ("where", lambda m, t: m.where(t > 0, t, t * 2)), ("matmul", lambda m, t: m.matmul(t[0], t[1].T)),
]


@pytest.mark.parametrize("name,call", FUNCTIONS, ids=[f[0] for f in FUNCTIONS])
def test_top_level_functions_match_torch(torch, name, call):
    torch_parity(torch, lambda t: call(cnnlab, t), lambda t: call(torch, t), [rand(2, 3, 4)])


def test_argmax_allclose_equal_functions(torch):
    x = rand(3, 4)
    np.testing.assert_array_equal(cnnlab.argmax(Tensor(x), 1).numpy(), torch.argmax(torch.tensor(x), 1).numpy())
    np.testing.assert_array_equal(cnnlab.argmin(Tensor(x)).numpy(), torch.argmin(torch.tensor(x)).numpy())
    assert cnnlab.allclose(Tensor(x), Tensor(x + 1e-12)) and cnnlab.equal(Tensor(x), Tensor(x.copy()))


# --- dtype names, threads -----------------------------------------------------------------------------------------
def test_dtype_names_are_numpy_dtypes(torch):
    for name in ("float32", "float64", "int64", "int32", "int16", "int8", "uint8", "float", "double", "long",
                 "int", "bool"):
        assert np.dtype(getattr(cnnlab, name)) == np.dtype(torch_dtype_name(torch.empty(0, dtype=getattr(torch, name))))
    assert cnnlab.zeros(2, dtype=cnnlab.long).dtype == np.int64


def test_set_and_get_num_threads():
    pytest.importorskip("threadpoolctl")
    before = cnnlab.get_num_threads()
    assert isinstance(before, int) and before >= 1
    try:
        cnnlab.set_num_threads(1)
        assert cnnlab.get_num_threads() == 1
    finally:
        cnnlab.set_num_threads(before)
    for bad in (0, -2, 1.5, "two", True):
        with pytest.raises(ValueError, match="set_num_threads: `n` must be a positive integer"):
            cnnlab.set_num_threads(bad)


def test_a_pytorch_style_script_runs():
    """The first lines a PyTorch user writes."""
    cnnlab.manual_seed(0)
    x = cnnlab.randn(8, 1, 6, 6)
    conv = cnnlab.nn.Conv2d(1, 4, 3)
    fc = cnnlab.nn.Linear(4 * 4 * 4, 3)
    h = conv(x).relu()
    logits = fc(h.view(h.size(0), -1))
    y = cnnlab.randint(0, 3, (8,))
    loss = cnnlab.functional.cross_entropy(logits, y)
    loss.backward()
    acc = (logits.argmax(dim=1) == y).float().mean().item()
    assert 0.0 <= acc <= 1.0 and isinstance(loss.item(), float)
    with cnnlab.no_grad():
        for p in list(conv.parameters()) + list(fc.parameters()):
            p -= 0.01 * p.grad
            p.grad = None
    assert all(p.grad is None for p in fc.parameters())
    assert cnnlab.cat([h.flatten(1), h.flatten(1)], dim=1).shape == (8, 128)
    assert cnnlab.stack([logits, logits]).shape == (2, 8, 3)


def test_cnnlab_tensor_is_both_the_module_and_the_function():
    import types

    import cnnlab.tensor as module
    assert isinstance(cnnlab.tensor, types.ModuleType) and module.Tensor is Tensor
    t = cnnlab.tensor([[1, 2]], dtype=cnnlab.float64, requires_grad=True)
    assert t.dtype == np.float64 and t.requires_grad and t.shape == (1, 2)


def test_star_import_leaves_the_builtins_alone():
    namespace = {}
    exec("from cnnlab import *", namespace)
    for name in ("sum", "max", "min", "abs", "pow", "float", "int", "bool"):
        assert name not in namespace and hasattr(cnnlab, name)
    assert namespace["cat"] is cnnlab.cat and namespace["float32"] is np.float32
