"""Tensor methods with PyTorch's names, arguments and semantics: values and gradients against PyTorch
(float64, random shapes, negative dims, keepdim), gradient checks, and PyTorch's error messages."""
import numpy as np
import pytest

import cnnlab
from cnnlab import Tensor, no_grad, nn

from conftest import gradcheck, torch_parity

RNG = np.random.default_rng(2026)


def rand(*shape, low=-1.0, high=1.0):
    return RNG.uniform(low, high, size=shape)


def dim_error(lo, hi, got):
    return rf"Dimension out of range \(expected to be in range of \[{lo}, {hi}\], but got {got}\)"


# --- size, numel, dim ---------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(), (3,), (2, 3), (2, 1, 4), (0, 3)])
def test_size_numel_dim_match_torch(torch, shape):
    t, tt = Tensor(np.zeros(shape)), torch.zeros(shape, dtype=torch.float64)
    assert t.size() == tuple(tt.size()) == t.shape
    assert isinstance(t.size(), tuple) and isinstance(t.size(), cnnlab.Size)
    assert t.numel() == tt.numel() and t.dim() == tt.dim() == t.ndim
    for d in range(-len(shape), len(shape)):
        assert t.size(d) == tt.size(d) and isinstance(t.size(d), int)


def test_size_errors_and_repr():
    t = Tensor(np.zeros((2, 3)))
    with pytest.raises(IndexError, match=dim_error(-2, 1, 2)):
        t.size(2)
    with pytest.raises(IndexError, match=dim_error(-2, 1, -3)):
        t.size(-3)
    with pytest.raises(IndexError, match="Dimension specified as 0 but tensor has no dimensions"):
        Tensor(3.0).size(0)
    assert repr(t.size()) == "cnnlab.Size([2, 3])" and t.size().numel() == 6
    x = Tensor(np.zeros((5, 2)))
    assert x.view(x.size(0), -1).shape == (5, 2)


# --- reductions ------------------------------------------------------------------------------------
def _reduction_cases(n=14, seed=7):
    rng = np.random.default_rng(seed)
    cases = []
    for _ in range(n):
        nd = int(rng.integers(1, 5))
        shape = tuple(int(s) for s in rng.integers(1, 5, size=nd))
        d = int(rng.integers(-nd, nd))
        cases.append((shape, d, bool(rng.integers(0, 2))))
    return cases


REDUCTION_CASES = _reduction_cases()


@pytest.mark.parametrize("shape,dim,keepdim", REDUCTION_CASES)
def test_reductions_along_one_dim_match_torch(torch, shape, dim, keepdim):
    x = rand(*shape)
    for name in ("sum", "mean", "amax", "amin", "prod"):
        torch_parity(torch, lambda t: getattr(t, name)(dim, keepdim),
                     lambda t: getattr(t, name)(dim, keepdim), [x])
    if shape[dim % len(shape)] > 1:
        for name in ("std", "var"):
            torch_parity(torch, lambda t: getattr(t, name)(dim, keepdim=keepdim),
                         lambda t: getattr(t, name)(dim, keepdim=keepdim), [x])
            torch_parity(torch, lambda t: getattr(t, name)(dim, correction=0, keepdim=keepdim),
                         lambda t: getattr(t, name)(dim, correction=0, keepdim=keepdim), [x])
            torch_parity(torch, lambda t: getattr(t, name)(dim, False, keepdim),
                         lambda t: getattr(t, name)(dim, False, keepdim), [x])
    torch_parity(torch, lambda t: t.norm(dim=dim, keepdim=keepdim),
                 lambda t: t.norm(dim=dim, keepdim=keepdim), [x])
    for name in ("max", "min"):
        cn, tt = getattr(Tensor(x), name)(dim, keepdim), getattr(torch.tensor(x), name)(dim, keepdim)
        np.testing.assert_array_equal(cn.indices.numpy(), tt.indices.numpy())
        assert cn.indices.dtype == np.int64
        torch_parity(torch, lambda t: getattr(t, name)(dim, keepdim)[0],
                     lambda t: getattr(t, name)(dim, keepdim)[0], [x])
        torch_parity(torch, lambda t: getattr(t, name)(dim=dim, keepdim=keepdim).values,
                     lambda t: getattr(t, name)(dim=dim, keepdim=keepdim).values, [x])
    for name in ("argmax", "argmin"):
        cn = getattr(Tensor(x), name)(dim, keepdim)
        np.testing.assert_array_equal(cn.numpy(), getattr(torch.tensor(x), name)(dim, keepdim).numpy())
        assert cn.dtype == np.int64


@pytest.mark.parametrize("dims", [(0, 2), (-1, 0), (1,), [2, -2], ()])
@pytest.mark.parametrize("keepdim", [False, True])
def test_reductions_over_several_dims_match_torch(torch, dims, keepdim):
    x = rand(2, 3, 4)
    for name in ("sum", "mean", "amax", "amin", "std", "var"):
        # an empty dim list means every dim; PyTorch's std/var backward mishandles it, so compare with dim=None
        t_dims = dims if dims or name not in ("std", "var") else None
        torch_parity(torch, lambda t: getattr(t, name)(dims, keepdim=keepdim),
                     lambda t: getattr(t, name)(t_dims, keepdim=keepdim), [x])
    torch_parity(torch, lambda t: t.norm(dim=dims, keepdim=keepdim) if dims else t.norm(),
                 lambda t: t.norm(dim=dims, keepdim=keepdim) if dims else t.norm(), [x])


def test_full_reductions_match_torch(torch):
    x = rand(3, 4)
    for name in ("sum", "mean", "max", "min", "amax", "amin", "std", "var", "prod", "norm"):
        torch_parity(torch, lambda t: getattr(t, name)(), lambda t: getattr(t, name)(), [x])
    torch_parity(torch, lambda t: t.var(False), lambda t: t.var(False), [x])
    torch_parity(torch, lambda t: t.std(unbiased=False), lambda t: t.std(unbiased=False), [x])
    torch_parity(torch, lambda t: t.std(correction=2), lambda t: t.std(correction=2), [x])
    for p in (1, 3, float("inf")):
        torch_parity(torch, lambda t: t.norm(p), lambda t: t.norm(p), [x])
    assert Tensor(x).argmax().item() == torch.tensor(x).argmax().item()
    assert Tensor(x).argmin(keepdim=True).shape == tuple(torch.tensor(x).argmin(keepdim=True).shape)


def test_ties_share_the_gradient_as_in_torch(torch):
    x = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]])
    for fn in (lambda t: t.max(), lambda t: t.min(), lambda t: t.amax(1), lambda t: t.amin(0),
               lambda t: t.max(dim=1).values, lambda t: t.maximum(t)):
        torch_parity(torch, fn, fn, [x])
    torch_parity(torch, lambda a, b: a.maximum(b), lambda a, b: a.maximum(b), [x, x[::-1].copy()])
    torch_parity(torch, lambda a, b: a.minimum(b), lambda a, b: a.minimum(b), [x, x[::-1].copy()])


def test_prod_gradient_with_zeros_matches_torch(torch):
    x = np.array([[0.0, 2.0, 3.0], [0.0, 0.0, 4.0], [1.0, 2.0, 3.0]])
    torch_parity(torch, lambda t: t.prod(1), lambda t: t.prod(1), [x])
    torch_parity(torch, lambda t: t.prod(0, keepdim=True), lambda t: t.prod(0, keepdim=True), [x])
    torch_parity(torch, lambda t: t.prod(), lambda t: t.prod(), [x[2]])


def test_gradcheck_reductions():
    x = rand(2, 3, 4)
    for fn in (lambda t: t.std(1), lambda t: t.var((0, 2), keepdim=True), lambda t: t.max(-1)[0],
               lambda t: t.amin((0, 1)), lambda t: t.prod(2), lambda t: t.norm(dim=1), lambda t: t.norm(3),
               lambda t: t.mean(-2, keepdim=True), lambda t: t.sum(dim=(-1, 0))):
        gradcheck(fn, [x])


def test_numpy_aliases_axis_and_keepdims_still_work():
    x = rand(2, 3, 4)
    t = Tensor(x)
    np.testing.assert_allclose(t.sum(axis=1, keepdims=True).numpy(), x.sum(axis=1, keepdims=True))
    np.testing.assert_allclose(t.mean(axis=(0, 2)).numpy(), x.mean(axis=(0, 2)))
    np.testing.assert_allclose(t.max(axis=2).values.numpy(), x.max(axis=2))
    np.testing.assert_allclose(t.std(axis=0).numpy(), x.std(axis=0, ddof=1))
    np.testing.assert_array_equal(t.argmax(axis=-1).numpy(), x.argmax(axis=-1))
    np.testing.assert_allclose(t.sum(1, True).numpy(), x.sum(axis=1, keepdims=True))
    with pytest.raises(TypeError, match="give `dim` or its NumPy alias `axis`, not both"):
        t.sum(dim=0, axis=1)


def test_zero_dim_tensors_accept_dim_0_and_minus_1_as_torch(torch):
    """Regression (issue 12): ``Tensor(3.0).sum(axis=0)`` raised ZeroDivisionError."""
    x = np.array(3.0)
    for fn in (lambda t: t.sum(0), lambda t: t.sum(-1), lambda t: t.mean(0, keepdim=True),
               lambda t: t.max(0)[0], lambda t: t.amax(0), lambda t: t.prod(0), lambda t: t.sum(dim=(0,))):
        torch_parity(torch, fn, fn, [x])
    assert Tensor(3.0).sum(axis=0).item() == 3.0
    assert Tensor(3.0).max(0).indices.item() == 0 and Tensor(3.0).argmax(0).item() == 0
    with pytest.raises(IndexError, match=dim_error(-1, 0, 1)):
        Tensor(3.0).sum(1)


def test_reduction_errors_match_torch():
    with pytest.raises(RuntimeError, match=r"max\(\): Expected reduction dim to be specified for "
                                           r"input.numel\(\) == 0"):
        Tensor(np.zeros(0)).max()
    with pytest.raises(IndexError, match=r"min\(\): Expected reduction dim 1 to have non-zero size"):
        Tensor(np.zeros((2, 0))).min(1)
    with pytest.raises(RuntimeError, match="dim 0 appears multiple times in the list of dims"):
        Tensor(np.zeros((2, 3))).sum((0, 0))
    with pytest.raises(TypeError, match="a dimension must be an integer, got 1.5"):
        Tensor(np.zeros((2, 3))).sum(1.5)
    with pytest.raises(RuntimeError, match="std and var only support floating point dtypes, got int64"):
        Tensor(np.arange(3)).std()


def test_var_with_too_few_values_is_nan_as_in_torch(torch):
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = torch.zeros(1, dtype=torch.float64).std().item()
    assert np.isnan(Tensor(np.zeros(1)).std().item()) and np.isnan(expected)


# --- every dim-taking method raises PyTorch's IndexError ------------------------------------------
DIM_METHODS = {
    "sum": lambda t, d: t.sum(d), "mean": lambda t, d: t.mean(d), "std": lambda t, d: t.std(d),
    "var": lambda t, d: t.var(d), "max": lambda t, d: t.max(d), "min": lambda t, d: t.min(d),
    "amax": lambda t, d: t.amax(d), "amin": lambda t, d: t.amin(d), "argmax": lambda t, d: t.argmax(d),
    "argmin": lambda t, d: t.argmin(d), "prod": lambda t, d: t.prod(d), "norm": lambda t, d: t.norm(dim=d),
    "softmax": lambda t, d: t.softmax(d), "log_softmax": lambda t, d: t.log_softmax(d),
    "size": lambda t, d: t.size(d), "flatten_start": lambda t, d: t.flatten(d),
    "flatten_end": lambda t, d: t.flatten(0, d), "squeeze": lambda t, d: t.squeeze(d),
    "transpose": lambda t, d: t.transpose(d, 0), "transpose_2": lambda t, d: t.transpose(0, d),
    "permute": lambda t, d: t.permute(0, d), "unflatten": lambda t, d: t.unflatten(d, (1, -1)),
    "split": lambda t, d: t.split(1, d), "chunk": lambda t, d: t.chunk(2, d), "unbind": lambda t, d: t.unbind(d),
    "sum_tuple": lambda t, d: t.sum((0, d)), "axis": lambda t, d: t.sum(axis=d),
    "any": lambda t, d: t.any(d), "all": lambda t, d: t.all(d),
    "cat": lambda t, d: (cnnlab if isinstance(t, Tensor) else __import__("torch")).cat([t, t], d),
}


@pytest.mark.parametrize("name", sorted(DIM_METHODS))
@pytest.mark.parametrize("bad", [2, -3, 7])
def test_every_dim_taking_method_raises_torch_index_error(torch, name, bad):
    fn = DIM_METHODS[name]
    with pytest.raises(IndexError, match=dim_error(-2, 1, bad)):
        fn(Tensor(np.zeros((2, 3))), bad)
    if name == "axis":
        return
    try:
        fn(torch.zeros(2, 3), bad)
    except IndexError as exc:
        assert f"expected to be in range of [-2, 1], but got {bad}" in str(exc)
    except Exception as exc:  # noqa: BLE001  (argument-parsing differences: only the range matters)
        pytest.fail(f"torch raised {type(exc).__name__}: {exc}")
    else:
        pytest.fail("torch accepted the dimension")


def test_unsqueeze_and_stack_accept_one_more_dim():
    t = Tensor(np.zeros((2, 3)))
    assert t.unsqueeze(2).shape == (2, 3, 1) and t.unsqueeze(-3).shape == (1, 2, 3)
    with pytest.raises(IndexError, match=dim_error(-3, 2, 3)):
        t.unsqueeze(3)
    with pytest.raises(IndexError, match=dim_error(-3, 2, -4)):
        cnnlab.stack([t, t], -4)
    with pytest.raises(IndexError, match=dim_error(-2, 1, 2)):
        cnnlab.cat([t, t], 2)


def test_flatten_out_of_range_in_functional_and_layer():
    """Regression (issue 12): F.flatten(x, 5) and nn.Flatten(7).output_shape wrapped around."""
    x = np.zeros((2, 3, 4))
    with pytest.raises(IndexError, match=dim_error(-3, 2, 5)):
        cnnlab.functional.flatten(x, 5)
    with pytest.raises(IndexError, match=dim_error(-3, 2, -4)):
        cnnlab.functional.flatten(x, 0, -4)
    with pytest.raises(IndexError, match=dim_error(-4, 3, 7)):
        nn.Flatten(7).output_shape((2, 3, 4, 5))
    with pytest.raises(IndexError, match=dim_error(-4, 3, 7)):
        nn.Flatten(7)(Tensor(np.zeros((2, 3, 4, 5))))
    assert nn.Flatten().output_shape((2, 3, 4, 5)) == (2, 60)
    assert nn.Flatten(0, -2).output_shape((2, 3, 4)) == (6, 4)
    with pytest.raises(ValueError, match="flatten: start_dim 2 comes after end_dim 1 for a 3-D input"):
        Tensor(x).flatten(2, 1)


# --- shape ops ------------------------------------------------------------------------------------------
SHAPE_OPS = [
    ("view", lambda t: t.view(4, -1), lambda t: t.view(4, -1)),
    ("view_tuple", lambda t: t.view((-1, 2)), lambda t: t.view((-1, 2))),
    ("reshape", lambda t: t.reshape(2, 12), lambda t: t.reshape(2, 12)),
    ("flatten", lambda t: t.flatten(), lambda t: t.flatten()),
    ("flatten_1", lambda t: t.flatten(1), lambda t: t.flatten(1)),
    ("flatten_0_1", lambda t: t.flatten(0, 1), lambda t: t.flatten(0, 1)),
    ("flatten_neg", lambda t: t.flatten(-2, -1), lambda t: t.flatten(-2, -1)),
    ("unsqueeze", lambda t: t.unsqueeze(1), lambda t: t.unsqueeze(1)),
    ("unsqueeze_neg", lambda t: t.unsqueeze(-1), lambda t: t.unsqueeze(-1)),
    ("squeeze", lambda t: t.unsqueeze(0).unsqueeze(-1).squeeze(), lambda t: t.unsqueeze(0).unsqueeze(-1).squeeze()),
    ("squeeze_dim", lambda t: t.unsqueeze(0).squeeze(0), lambda t: t.unsqueeze(0).squeeze(0)),
    ("squeeze_noop", lambda t: t.squeeze(1), lambda t: t.squeeze(1)),
    ("squeeze_tuple", lambda t: t.unsqueeze(0).unsqueeze(-1).squeeze((0, -1)),
     lambda t: t.unsqueeze(0).unsqueeze(-1).squeeze((0, -1))),
    ("permute", lambda t: t.permute(2, 0, 1), lambda t: t.permute(2, 0, 1)),
    ("permute_tuple", lambda t: t.permute((-1, 1, 0)), lambda t: t.permute((-1, 1, 0))),
    ("transpose", lambda t: t.transpose(0, 2), lambda t: t.transpose(0, 2)),
    ("transpose_neg", lambda t: t.transpose(-1, 1), lambda t: t.transpose(-1, 1)),
    ("swapaxes", lambda t: t.swapaxes(0, 1), lambda t: t.swapaxes(0, 1)),
    ("mT", lambda t: t.mT, lambda t: t.mT),
    ("t", lambda t: t[0].t(), lambda t: t[0].t()),
    ("contiguous", lambda t: t.transpose(0, 1).contiguous().view(-1),
     lambda t: t.transpose(0, 1).contiguous().view(-1)),
    ("clone", lambda t: t.clone() * t, lambda t: t.clone() * t),
    ("expand", lambda t: t[:, :1].expand(2, 5, 4), lambda t: t[:, :1].expand(2, 5, 4)),
    ("expand_minus1", lambda t: t[:, :1].expand(3, -1, -1, 4), lambda t: t[:, :1].expand(3, -1, -1, 4)),
    ("repeat", lambda t: t.repeat(2, 1, 3), lambda t: t.repeat(2, 1, 3)),
    ("repeat_more", lambda t: t.repeat(2, 1, 1, 2), lambda t: t.repeat(2, 1, 1, 2)),
    ("unflatten", lambda t: t.unflatten(-1, (2, 2)), lambda t: t.unflatten(-1, (2, 2))),
    ("split", lambda t: t.split(2, 1)[1] * 2, lambda t: t.split(2, 1)[1] * 2),
    ("split_sizes", lambda t: t.split([1, 3], -1)[1], lambda t: t.split([1, 3], -1)[1]),
    ("chunk", lambda t: t.chunk(2, 2)[0], lambda t: t.chunk(2, 2)[0]),
    ("unbind", lambda t: t.unbind(1)[2], lambda t: t.unbind(1)[2]),
    ("view_as", lambda t: t.view_as(t[0].flatten()[None].expand(2, 12)),
     lambda t: t.view_as(t[0].flatten()[None].expand(2, 12))),
]


@pytest.mark.parametrize("name,cn_fn,t_fn", SHAPE_OPS, ids=[c[0] for c in SHAPE_OPS])
def test_shape_ops_match_torch(torch, name, cn_fn, t_fn):
    torch_parity(torch, cn_fn, t_fn, [rand(2, 3, 4)])


def test_gradcheck_shape_ops():
    x = rand(2, 3, 2)
    for fn in (lambda t: t.view(3, -1) * t.view(3, -1), lambda t: t.flatten(1), lambda t: t.permute(1, 2, 0),
               lambda t: t.transpose(0, -1), lambda t: t[:, :1].expand(2, 3, 2), lambda t: t.repeat(1, 2, 2),
               lambda t: t.unsqueeze(0).squeeze(0), lambda t: t.split(1, 1)[0]):
        gradcheck(fn, [x])


def test_transpose_keeps_numpy_forms():
    x = rand(2, 3, 4)
    t = Tensor(x)
    np.testing.assert_array_equal(t.transpose().numpy(), x.transpose())
    np.testing.assert_array_equal(t.transpose((2, 0, 1)).numpy(), x.transpose(2, 0, 1))
    np.testing.assert_array_equal(t.transpose(2, 0, 1).numpy(), x.transpose(2, 0, 1))
    np.testing.assert_array_equal(Tensor(x[0]).transpose(0, 1).numpy(), x[0].T)  # PyTorch's meaning
    np.testing.assert_array_equal(t.T.numpy(), x.T)


def test_shape_op_errors_match_torch():
    t = Tensor(np.zeros((2, 3)))
    with pytest.raises(RuntimeError, match=r"shape '\[4, 2\]' is invalid for input of size 6"):
        t.view(4, 2)
    with pytest.raises(RuntimeError, match="only one dimension can be inferred"):
        t.reshape(-1, -1)
    with pytest.raises(RuntimeError, match=r"permute\(\): duplicate dims are not allowed"):
        t.permute(0, 0)
    with pytest.raises(RuntimeError, match=r"permute\(\): the number of dims \(1\) does not match"):
        t.permute(0)
    with pytest.raises(RuntimeError, match=r"t\(\) expects a tensor with <= 2 dimensions, but self is 3D"):
        Tensor(np.zeros((1, 2, 3))).t()
    with pytest.raises(RuntimeError, match=r"The expanded size of the tensor \(3\) must match the existing "
                                           r"size \(2\) at non-singleton dimension 0"):
        t.expand(3, 3)
    with pytest.raises(RuntimeError, match="Number of dimensions of repeat dims can not be smaller"):
        t.repeat(2)


def test_zero_dim_shape_ops_match_torch(torch):
    for fn in (lambda t: t.flatten(), lambda t: t.unsqueeze(0), lambda t: t.unsqueeze(-1), lambda t: t.squeeze(),
               lambda t: t.squeeze(0), lambda t: t.view(1, 1), lambda t: t.reshape(-1)):
        torch_parity(torch, fn, fn, [np.array(2.5)])


# --- elementwise ------------------------------------------------------------------------------------------
ELEMENTWISE = [
    ("pow_scalar", lambda t: t.pow(3), [(3, 4)]),
    ("pow_float", lambda t: t.abs().pow(1.5), [(3, 4)]),
    ("pow_tensor", lambda a, b: a.abs().pow(b), [(3, 4), (3, 4)]),
    ("pow_broadcast", lambda a, b: a.abs() ** b, [(3, 4), (4,)]),
    ("rpow", lambda t: 2.0 ** t, [(3, 4)]),
    ("clamp", lambda t: t.clamp(-0.3, 0.4), [(3, 4)]),
    ("clamp_min", lambda t: t.clamp(min=0.1), [(3, 4)]),
    ("clamp_max", lambda t: t.clamp(max=-0.1), [(3, 4)]),
    ("clip", lambda t: t.clip(-0.5, 0.5), [(3, 4)]),
    ("exp", lambda t: t.exp(), [(3, 4)]),
    ("log", lambda t: (t.abs() + 0.1).log(), [(3, 4)]),
    ("sqrt", lambda t: (t.abs() + 0.1).sqrt(), [(3, 4)]),
    ("rsqrt", lambda t: (t.abs() + 0.1).rsqrt(), [(3, 4)]),
    ("reciprocal", lambda t: (t.abs() + 0.1).reciprocal(), [(3, 4)]),
    ("square", lambda t: t.square(), [(3, 4)]),
    ("abs", lambda t: t.abs(), [(3, 4)]),
    ("neg", lambda t: t.neg(), [(3, 4)]),
    ("sigmoid", lambda t: t.sigmoid(), [(3, 4)]),
    ("tanh", lambda t: t.tanh(), [(3, 4)]),
    ("relu", lambda t: t.relu(), [(3, 4)]),
    ("softmax", lambda t: t.softmax(1), [(3, 4)]),
    ("softmax_neg", lambda t: t.softmax(dim=-2), [(2, 3, 4)]),
    ("log_softmax", lambda t: t.log_softmax(0), [(3, 4)]),
    ("maximum", lambda a, b: a.maximum(b), [(3, 4), (4,)]),
    ("minimum", lambda a, b: a.minimum(b), [(3, 4), (3, 1)]),
    ("max_tensor", lambda a, b: a.max(b), [(3, 4), (3, 4)]),
    ("add_alpha", lambda a, b: a.add(b, alpha=2.5), [(3, 4), (4,)]),
    ("sub_alpha", lambda a, b: a.sub(b, alpha=0.5), [(3, 4), (3, 4)]),
    ("mul_div", lambda a, b: a.mul(b).div(b.abs() + 1), [(3, 4), (3, 4)]),
    ("rmatmul", lambda a, b: a @ b.T, [(3, 4), (2, 4)]),
]


@pytest.mark.parametrize("name,fn,shapes", ELEMENTWISE, ids=[c[0] for c in ELEMENTWISE])
def test_elementwise_match_torch_and_gradcheck(torch, name, fn, shapes):
    inputs = [rand(*s) for s in shapes]
    torch_parity(torch, fn, fn, inputs)
    gradcheck(fn, inputs)


def test_pow_tensor_exponent_gradient_at_zero_base_matches_torch(torch):
    a, b = np.array([0.0, 0.0, 2.0, 0.0]), np.array([2.0, 0.0, 0.5, 1.0])
    torch_parity(torch, lambda x, y: x ** y, lambda x, y: x ** y, [a, b])
    torch_parity(torch, lambda x: x ** 0, lambda x: x ** 0, [a])


def test_clamp_gradient_at_the_bounds_matches_torch(torch):
    x = np.array([-1.0, -0.5, 0.0, 0.5, 1.0])
    torch_parity(torch, lambda t: t.clamp(-0.5, 0.5), lambda t: t.clamp(-0.5, 0.5), [x])
    with pytest.raises(RuntimeError, match="clamp: at least one of 'min' or 'max' must not be None"):
        Tensor(x).clamp()


def test_where_matches_torch(torch):
    cond = rand(3, 4) > 0
    torch_parity(torch, lambda a, b: cnnlab.where(Tensor(cond), a, b),
                 lambda a, b: torch.where(torch.tensor(cond), a, b),
                 [rand(3, 4), rand(4)])
    torch_parity(torch, lambda a: a.where(Tensor(cond), 0.0), lambda a: a.where(torch.tensor(cond), 0.0), [rand(3, 4)])


# --- comparisons, logic, conversions ---------------------------------------------------------------------------
def test_comparisons_give_boolean_tensors_like_torch(torch):
    a, b = rand(3, 4), rand(3, 4)
    a[0, 0] = b[0, 0]
    ta, tb = Tensor(a), Tensor(b)
    xa, xb = torch.tensor(a), torch.tensor(b)
    for op in ("__lt__", "__le__", "__gt__", "__ge__", "__eq__", "__ne__", "lt", "le", "gt", "ge", "eq", "ne"):
        out = getattr(ta, op)(tb)
        assert isinstance(out, Tensor) and out.dtype == np.bool_
        np.testing.assert_array_equal(out.numpy(), getattr(xa, op)(xb).numpy())
        np.testing.assert_array_equal(getattr(ta, op)(0.2).numpy(), getattr(xa, op)(0.2).numpy())
    mask = (ta > 0) & (ta < 0.5) | ~(tb > 0)
    np.testing.assert_array_equal(mask.numpy(), (((xa > 0) & (xa < 0.5)) | ~(xb > 0)).numpy())
    assert bool((ta == ta).all()) and not bool((ta != ta).any())
    assert (ta > 0).sum().item() == int((xa > 0).sum())
    assert ta.equal(Tensor(a.copy())) and not ta.equal(tb) and ta.allclose(a + 1e-12)
    np.testing.assert_array_equal((np.zeros((3, 4)) < ta).numpy(), np.zeros((3, 4)) < a)


def test_tensors_stay_hashable_and_usable_in_sets():
    a, b = Tensor(np.zeros(3)), Tensor(np.zeros(3))
    assert len({a, b}) == 2 and a in {a: 1}


def test_dtype_conversions_match_torch(torch):
    x = np.array([[-1.7, 0.0, 2.5]])
    t, tt = Tensor(x), torch.tensor(x)
    for name in ("float", "double", "long", "int", "bool"):
        out = getattr(t, name)()
        np.testing.assert_array_equal(out.numpy(), getattr(tt, name)().numpy())
        assert out.dtype == np.dtype(str(getattr(tt, name)().dtype).replace("torch.", ""))
    assert t.to(cnnlab.float32).dtype == np.float32 and t.to("float32").dtype == np.float32
    assert t.to("cpu") is t and t.cpu() is t and t.to("cpu", cnnlab.int64).dtype == np.int64
    assert t.to(dtype=cnnlab.float32, device="cpu").dtype == np.float32
    assert t.type_as(Tensor(np.zeros(1, dtype=np.float32))).dtype == np.float32
    assert t.to(Tensor(np.zeros(1, dtype=np.int32))).dtype == np.int32
    assert t.double() is t
    with pytest.raises(RuntimeError, match="cnnlab runs on the CPU only; got device 'cuda'"):
        t.to("cuda")


def test_gradient_flows_through_float_conversions(torch):
    torch_parity(torch, lambda t: (t.float().double() * 2).sum(1), lambda t: (t.float().double() * 2).sum(1),
                 [rand(2, 3)], atol=1e-6, rtol=1e-6)
    x = Tensor(rand(3), requires_grad=True)
    assert not x.long().requires_grad and x.float().requires_grad


def test_python_scalar_protocols_match_torch():
    t = Tensor(np.array([[2.5]]))
    assert t.item() == 2.5 and float(t) == 2.5 and int(t) == 2 and bool(t)
    assert Tensor(np.zeros((2, 3))).tolist() == [[0.0] * 3] * 2
    assert len(Tensor(np.zeros((4, 2)))) == 4
    assert [r.shape for r in Tensor(np.zeros((2, 3)))] == [(3,), (3,)]
    assert [10, 20, 30][Tensor(np.array(1))] == 20
    with pytest.raises(RuntimeError, match="a Tensor with 6 elements cannot be converted to Scalar"):
        Tensor(np.zeros((2, 3))).item()
    with pytest.raises(RuntimeError, match="Boolean value of Tensor with more than one value is ambiguous"):
        bool(Tensor(np.zeros(2)))
    with pytest.raises(TypeError, match="len\\(\\) of a 0-d tensor"):
        len(Tensor(1.0))
    with pytest.raises(TypeError, match="only integer tensors of a single element can be converted to an index"):
        [1, 2][Tensor(np.array(1.0))]


# --- in-place operations ------------------------------------------------------------------------------------------
def test_sgd_step_under_no_grad_updates_linear_parameters_in_place(torch):
    """Regression (issue 9): ``p -= lr * p.grad`` under no_grad silently did nothing."""
    cnnlab.manual_seed(0)
    m = nn.Linear(3, 2, dtype=np.float64)
    tm = torch.nn.Linear(3, 2).double()
    with torch.no_grad():
        tm.weight.copy_(torch.tensor(m.weight.numpy(), dtype=torch.float64))
        tm.bias.copy_(torch.tensor(m.bias.numpy(), dtype=torch.float64))
    params_before = [(n, id(p)) for n, p in m.named_parameters()]
    x = rand(5, 3)
    for _ in range(3):
        for p in m.parameters():
            p.grad = None
        tm.zero_grad()
        m(Tensor(x.astype(m.weight.dtype))).pow(2).sum().backward()
        tm(torch.tensor(x)).pow(2).sum().backward()
        with no_grad():
            for p in m.parameters():
                p -= 0.1 * p.grad
        with torch.no_grad():
            for p in tm.parameters():
                p -= 0.1 * p.grad
    assert [(n, id(p)) for n, p in m.named_parameters()] == params_before
    tol = 1e-12 if m.weight.dtype == np.float64 else 1e-5
    np.testing.assert_allclose(m.weight.numpy(), tm.weight.detach().numpy(), atol=tol, rtol=tol)
    np.testing.assert_allclose(m.bias.numpy(), tm.bias.detach().numpy(), atol=tol, rtol=tol)


def test_attribute_update_keeps_the_parameter_registered():
    """Regression (issue 9): ``m.weight -= ...`` replaced the Parameter by a plain Tensor."""
    m = nn.Linear(3, 2)
    w, b = m.weight, m.bias
    before = w.numpy().copy()
    with no_grad():
        m.weight -= 0.5
        m.weight *= 2
        m.bias += 1
        m.weight.add_(1.0).mul_(0.5)
    assert m.weight is w and isinstance(m.weight, nn.Parameter) and m.bias is b
    assert [n for n, _ in m.named_parameters()] == ["weight", "bias"]
    assert dict(m.named_parameters())["weight"] is w and w.requires_grad and w.is_leaf
    np.testing.assert_allclose(w.numpy(), ((before - 0.5) * 2 + 1) * 0.5, rtol=1e-6)
    assert list(m.state_dict()) == ["weight", "bias"]


IN_PLACE = {
    "iadd": lambda t: t.__iadd__(1.0), "isub": lambda t: t.__isub__(1.0), "imul": lambda t: t.__imul__(2.0),
    "itruediv": lambda t: t.__itruediv__(2.0), "add_": lambda t: t.add_(1.0), "sub_": lambda t: t.sub_(1.0),
    "mul_": lambda t: t.mul_(2.0), "div_": lambda t: t.div_(2.0), "zero_": lambda t: t.zero_(),
    "fill_": lambda t: t.fill_(3.0), "copy_": lambda t: t.copy_(t * 0 + 2), "clamp_": lambda t: t.clamp_(0, 0.5),
    "pow_": lambda t: t.pow_(2), "setitem": lambda t: t.__setitem__(0, 5.0),
    "uniform_": lambda t: t.uniform_(), "normal_": lambda t: t.normal_(),
}


@pytest.mark.parametrize("name", sorted(IN_PLACE))
def test_in_place_on_a_leaf_that_requires_grad_raises_torch_error(name):
    t = Tensor(np.ones(3), requires_grad=True)
    with pytest.raises(RuntimeError, match="a leaf Variable that requires grad is being used in an in-place "
                                           "operation."):
        IN_PLACE[name](t)
    np.testing.assert_array_equal(t.numpy(), 1.0)


@pytest.mark.parametrize("name", sorted(IN_PLACE))
def test_in_place_under_no_grad_changes_the_same_object(torch, name):
    t = Tensor(np.linspace(0.1, 0.9, 3), requires_grad=True)
    tt = torch.tensor(np.linspace(0.1, 0.9, 3), requires_grad=True)
    data = t.numpy()
    with no_grad():
        out = IN_PLACE[name](t)
    with torch.no_grad():
        tout = IN_PLACE[name](tt)
    assert out is t or (name == "setitem" and out is None)
    assert t.numpy() is data and t.requires_grad and t.is_leaf
    if name not in ("uniform_", "normal_"):
        np.testing.assert_allclose(t.numpy(), tt.detach().numpy())
        assert (out is None) == (tout is None)


def test_in_place_on_plain_tensors_shares_memory_like_torch():
    a = np.zeros(3)
    t = cnnlab.from_numpy(a)
    t += 1
    t.mul_(3).sub_(Tensor(np.array([0.0, 1.0, 2.0])))
    t[0] = 10
    np.testing.assert_array_equal(a, [10.0, 2.0, 1.0])
    v = t.detach()
    v.zero_()
    np.testing.assert_array_equal(a, 0.0)


def test_in_place_on_a_graph_tensor():
    """``y += x`` rebinds (out of place, the gradient is right); ``y.add_(x)`` raises."""
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = x * 3
    old = y
    y += x
    y *= y
    assert y is not old
    y.sum().backward()
    np.testing.assert_allclose(x.grad, 2 * (4 * x.numpy()) * 4)  # (4x)^2 -> 32x
    z = x * 2
    with pytest.raises(RuntimeError, match=r"add_: cnnlab does not record in-place operations in the autograd "
                                           r"graph; use the out-of-place form"):
        z.add_(1)
    c = Tensor(np.zeros(2))
    with pytest.raises(RuntimeError, match="mul_: cnnlab does not record in-place operations"):
        c.mul_(x)
    acc = Tensor(np.zeros(2))
    acc += x  # a constant accumulator joined to a graph: rebinding again
    assert acc.requires_grad


def test_in_place_rebinding_gradient_matches_torch(torch):
    def cn(x, w):
        h = x * w
        h += x
        h -= w
        h *= x
        h /= w.abs() + 1
        return h

    def tf(x, w):
        h = x * w
        h += x
        h -= w
        h *= x
        h /= w.abs() + 1
        return h

    torch_parity(torch, cn, tf, [rand(3, 4), rand(4)])


def test_in_place_errors_match_torch():
    with pytest.raises(RuntimeError, match="result type float64 can't be cast to the desired output type int64"):
        Tensor(np.zeros(3, dtype=np.int64)).add_(0.5)
    with pytest.raises(RuntimeError, match=r"output with shape \[3\] doesn't match the broadcast shape \[2, 3\]"):
        Tensor(np.zeros(3)).add_(Tensor(np.zeros((2, 3))))
    with pytest.raises(RuntimeError, match=r"copy_: the source of shape \[2\] cannot be broadcast to the shape \[3\]"):
        Tensor(np.zeros(3)).copy_(np.zeros(2))


def test_in_place_on_a_read_only_view_copies_first():
    base = Tensor(np.ones(3))
    wide = base.expand(2, 3)
    wide.add_(1)
    np.testing.assert_array_equal(wide.numpy(), 2.0)
    np.testing.assert_array_equal(base.numpy(), 1.0)


def test_requires_grad_and_detach():
    t = Tensor(np.zeros(2)).requires_grad_()
    assert t.requires_grad and t.is_leaf
    with pytest.raises(RuntimeError, match="only Tensors of floating point dtype can require gradients"):
        Tensor(np.zeros(2, dtype=np.int64)).requires_grad_()
    y = t * 2
    with pytest.raises(RuntimeError, match="you can only change requires_grad flags of leaf variables"):
        y.requires_grad_(False)
    assert y.detach_() is y and not y.requires_grad and y.is_leaf


# --- indexing -----------------------------------------------------------------------------------------------------
INDICES = [
    ("int", lambda: 1), ("neg_int", lambda: -1), ("slice", lambda: slice(1, None)),
    ("tuple", lambda: (0, slice(None), 2)), ("none", lambda: (None, 1)), ("ellipsis", lambda: (Ellipsis, 1)),
    ("ellipsis_none", lambda: (0, Ellipsis, None)), ("step", lambda: (slice(None, None, 2), slice(1, 3))),
    ("int_array", lambda: np.array([0, 2, 2, 1])), ("int_tensor", lambda: Tensor(np.array([1, 1, 0]))),
    ("two_arrays", lambda: (np.array([0, 1, 1]), np.array([2, 0, 2]))),
    ("mixed", lambda: (slice(None), Tensor(np.array([2, 0, 2])))),
]


@pytest.mark.parametrize("name,index", INDICES, ids=[i[0] for i in INDICES])
def test_getitem_matches_torch(torch, name, index):
    def to_torch(i):
        if isinstance(i, Tensor):
            return torch.tensor(i.numpy())
        if isinstance(i, np.ndarray):
            return torch.tensor(i)
        if isinstance(i, tuple):
            return tuple(to_torch(j) for j in i)
        return i

    idx = index()
    torch_parity(torch, lambda t: t[idx], lambda t: t[to_torch(idx)], [rand(3, 3, 4)])
    gradcheck(lambda t: t[idx], [rand(3, 3, 4)])


def test_boolean_mask_indexing_matches_torch(torch):
    x = rand(3, 4)
    mask = x > 0
    torch_parity(torch, lambda t: t[t > 0], lambda t: t[t > 0], [x])
    torch_parity(torch, lambda t: t[Tensor(mask[:, 0])], lambda t: t[torch.tensor(mask[:, 0])], [x])
    torch_parity(torch, lambda t: t[:, Tensor(mask[0])] * 2, lambda t: t[:, torch.tensor(mask[0])] * 2, [x])


def test_setitem_under_no_grad_and_on_plain_tensors(torch):
    x = rand(3, 4)
    t, tt = Tensor(x.copy()), torch.tensor(x)
    for cn_index, t_index, value in [((0, 1), (0, 1), 5.0), (slice(1, 3), slice(1, 3), Tensor(np.ones(4))),
                                     (Tensor(x > 0.5), torch.tensor(x > 0.5), 0.0),
                                     ((Ellipsis, Tensor(np.array([0, 2]))), (Ellipsis, torch.tensor([0, 2])), -1.0)]:
        t[cn_index] = value
        tt[t_index] = torch.tensor(value.numpy()) if isinstance(value, Tensor) else value
    np.testing.assert_array_equal(t.numpy(), tt.numpy())
    p = nn.Parameter(np.zeros((2, 2)))
    with no_grad():
        p[0] = 1.0
    np.testing.assert_array_equal(p.numpy(), [[1, 1], [0, 0]])
    with pytest.raises(RuntimeError, match="a leaf Variable that requires grad"):
        p[1] = 2.0


# --- no_grad forms --------------------------------------------------------------------------------------------------
def test_no_grad_as_decorator_and_inference_mode():
    x = Tensor(np.ones(2), requires_grad=True)

    @cnnlab.no_grad()
    def f(t):
        assert not cnnlab.is_grad_enabled()
        return t * 2

    @cnnlab.no_grad
    def g(t):
        return t * 2

    @cnnlab.inference_mode()
    def h(t):
        return t * 2

    assert not f(x).requires_grad and not g(x).requires_grad and not h(x).requires_grad
    assert f.__name__ == "f" and cnnlab.is_grad_enabled()
    with cnnlab.inference_mode():
        assert not (x * 2).requires_grad
        with cnnlab.enable_grad():
            assert (x * 2).requires_grad
    with cnnlab.inference_mode(False):
        assert (x * 2).requires_grad
    with cnnlab.no_grad():
        assert cnnlab.enable_grad()(lambda: (x * 2).requires_grad)()
    with cnnlab.set_grad_enabled(False):
        assert not cnnlab.is_grad_enabled()
    assert cnnlab.is_grad_enabled()
    cnnlab.set_grad_enabled(False)
    try:
        assert not cnnlab.is_grad_enabled()
    finally:
        cnnlab.set_grad_enabled(True)
    assert cnnlab.is_grad_enabled()
    ctx = cnnlab.no_grad()
    with ctx:
        with ctx:  # one object used twice, nested
            pass
        assert not cnnlab.is_grad_enabled()
    assert cnnlab.is_grad_enabled()


def test_a_number_on_the_left_takes_the_tensor_dtype():
    """``0.1 * x`` for a float64 ``x`` used a float32 0.1 (wrong from the 8th digit)."""
    x = Tensor(np.ones(2))
    for out in (0.1 * x, 0.1 + x, 0.1 - x, 0.1 / x, np.float32(0.1) * x, 2.0 ** (x * 0.1)):
        assert out.dtype == np.float64
    assert (0.1 * x).numpy()[0] == 0.1 and (0.1 / x).numpy()[0] == 0.1 and (1 - 0.9 * x).numpy()[0] == 1 - 0.9
    assert (0.5 * Tensor(np.ones(2, dtype=np.float32))).dtype == np.float32


@pytest.mark.parametrize("name", ["sum0", "mean0", "mean", "var0", "std", "amax1", "max1", "argmax1", "prod0",
                                  "norm", "flatten", "view", "amax0", "max0", "argmax"])
def test_reductions_of_empty_tensors_match_torch(torch, name):
    import warnings
    fn = {"sum0": lambda t: t.sum(0), "mean0": lambda t: t.mean(0), "mean": lambda t: t.mean(),
          "var0": lambda t: t.var(0), "std": lambda t: t.std(), "amax1": lambda t: t.amax(1),
          "max1": lambda t: t.max(1)[0], "argmax1": lambda t: t.argmax(1), "prod0": lambda t: t.prod(0),
          "norm": lambda t: t.norm(), "flatten": lambda t: t.flatten(), "view": lambda t: t.view(-1, 3),
          "amax0": lambda t: t.amax(0), "max0": lambda t: t.max(0), "argmax": lambda t: t.argmax()}[name]
    x = np.zeros((0, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            expected = fn(torch.tensor(x))
        except (IndexError, RuntimeError) as exc:
            with pytest.raises(type(exc)) as info:
                fn(Tensor(x))
            assert str(info.value).split(".")[0] == str(exc).split(".")[0]
            return
        out = fn(Tensor(x))
    assert out.shape == tuple(expected.shape)
    np.testing.assert_array_equal(out.numpy(), expected.numpy())


# --- sorting, flip, cumsum, masked_fill, new_* ----------------------------------------------------------------------
@pytest.mark.parametrize("dim", [0, 1, -1])
@pytest.mark.parametrize("descending", [False, True])
def test_sort_argsort_topk_match_torch(torch, dim, descending):
    x = rand(3, 5)
    for cn_fn, t_fn in [(lambda t: t.sort(dim, descending).values,
                         lambda t: t.sort(dim=dim, descending=descending).values),
                        (lambda t: t.topk(2, dim, largest=descending)[0],
                         lambda t: t.topk(2, dim, largest=descending)[0]),
                        (lambda t: t.flip(dim), lambda t: t.flip(dim)),
                        (lambda t: t.flip((0, 1)), lambda t: t.flip((0, 1))),
                        (lambda t: t.cumsum(dim), lambda t: t.cumsum(dim))]:
        torch_parity(torch, cn_fn, t_fn, [x])
    np.testing.assert_array_equal(Tensor(x).sort(dim, descending).indices.numpy(),
                                  torch.tensor(x).sort(dim=dim, descending=descending).indices.numpy())
    np.testing.assert_array_equal(Tensor(x).argsort(dim, descending).numpy(),
                                  torch.tensor(x).argsort(dim=dim, descending=descending).numpy())
    np.testing.assert_array_equal(Tensor(x).topk(3, dim).indices.numpy(), torch.tensor(x).topk(3, dim).indices.numpy())


def test_sort_keeps_ties_in_order_like_torch_stable_sort(torch):
    x = np.array([[3.0, 1.0, 3.0, 2.0], [0.0, 5.0, 5.0, 1.0]])
    for descending in (False, True):
        np.testing.assert_array_equal(Tensor(x).sort(1, descending).indices.numpy(),
                                      torch.tensor(x).sort(dim=1, descending=descending, stable=True).indices.numpy())
    with pytest.raises(RuntimeError, match="selected index k out of range: k=5 for a dimension of size 4"):
        Tensor(x).topk(5)


def test_gradcheck_sort_flip_cumsum_masked_fill():
    x = rand(3, 4)
    mask = Tensor(rand(3, 4) > 0)
    for fn in (lambda t: t.sort(1)[0], lambda t: t.topk(2, 0)[0], lambda t: t.flip(1), lambda t: t.cumsum(-1),
               lambda t: t.masked_fill(mask, 0.5)):
        gradcheck(fn, [x])


def test_masked_fill_and_new_tensors_match_torch(torch):
    x = rand(3, 4)
    mask = x > 0.2
    torch_parity(torch, lambda t: t.masked_fill(Tensor(mask), -1.0),
                 lambda t: t.masked_fill(torch.tensor(mask), -1.0), [x])
    t, tt = Tensor(x), torch.tensor(x)
    for call in (lambda a: a.new_zeros(2, 3), lambda a: a.new_ones((4,)), lambda a: a.new_full((2,), 7.0),
                 lambda a: a.new_tensor([1, 2]), lambda a: a.new_empty(0, 2)):
        cn, ref = call(t), call(tt)
        assert cn.shape == tuple(ref.shape) and str(cn.dtype) == str(ref.dtype).replace("torch.", "")
        if cn.numel():
            np.testing.assert_array_equal(cn.numpy(), ref.numpy())


def test_found_by_the_property_tests(torch):
    """Softmax of a 0-d tensor; a norm of tiny values (x*x underflowed to 0); transpose of a 0-d tensor."""
    for fn in (lambda t: t.softmax(0), lambda t: t.log_softmax(-1), lambda t: t.transpose(0, -1)):
        torch_parity(torch, fn, fn, [np.array(0.7)])
    torch_parity(torch, lambda t: t.norm(), lambda t: t.norm(), [np.array([1.0266e-217])], rtol=1e-12, atol=0)
    import math
    for x in (np.array([1e-217, -3e-220]), np.array([1e200, 3e200])):  # PyTorch gives 0 and inf here
        t = Tensor(x, requires_grad=True)
        out = t.norm()
        np.testing.assert_allclose(out.item(), math.hypot(*x), rtol=1e-14)
        out.backward()
        np.testing.assert_allclose(t.grad, x / math.hypot(*x), rtol=1e-14)
        s = np.abs(x).max()
        np.testing.assert_allclose(Tensor(x).norm(3).item(), s * np.sum(np.abs(x / s) ** 3) ** (1 / 3), rtol=1e-14)


def test_floor_round_sign_floordiv_mod_match_torch(torch):
    x = rand(3, 4) * 5
    y = rand(3, 4) + np.sign(rand(3, 4)) * 1.5
    for fn in (lambda a, b: a.floor() * b, lambda a, b: a.ceil() + b, lambda a, b: a.round() * b,
               lambda a, b: a.sign() * b, lambda a, b: a % b, lambda a, b: a.remainder(2.0)):
        torch_parity(torch, fn, fn, [x, y])
    torch_parity(torch, lambda a, b: 7.5 % b, lambda a, b: torch.tensor(7.5, dtype=torch.float64) % b, [x, y])
    # PyTorch has no derivative for floor_divide; cnnlab's is zero (the op is piecewise constant)
    torch_parity(torch, lambda a, b: (a // b) * a, lambda a, b: (a.detach() // b.detach()) * a, [x, y])
    torch_parity(torch, lambda a, b: 3.0 // (b * b + 1) + a, lambda a, b: 3.0 // (b * b + 1).detach() + a, [x, y])
    torch_parity(torch, lambda a, b: a.floor_divide(b) + b, lambda a, b: a.detach().floor_divide(b.detach()) + b,
                 [x, y])
    torch_parity(torch, lambda a: a.round(decimals=2), lambda a: a.round(decimals=2), [x])
    i = Tensor(np.arange(-4, 5))
    np.testing.assert_array_equal((i // 3).numpy(), (torch.arange(-4, 5) // 3).numpy())
    np.testing.assert_array_equal((i % 3).numpy(), (torch.arange(-4, 5) % 3).numpy())


def test_format_of_a_scalar_tensor_like_torch(torch):
    assert f"{Tensor(np.float64(0.123456)):.3f}" == f"{torch.tensor(0.123456):.3f}" == "0.123"
    assert f"{Tensor(np.array(7)):d}" == "7" and format(Tensor(np.ones(2)), "") .startswith("Tensor(")


def test_split_and_chunk_errors_match_torch(torch):
    for call in (lambda t: t.chunk(0, 1), lambda t: t.split([1, 1], 1), lambda t: t.split(0, 1),
                 lambda t: t.split(-1, 1)):
        with pytest.raises(RuntimeError) as expected:
            call(torch.zeros(2, 3))
        with pytest.raises(RuntimeError) as got:
            call(Tensor(np.zeros((2, 3))))
        assert str(got.value) == str(expected.value)


def test_backward_takes_torch_arguments():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = x * x
    y.backward(gradient=np.ones(2), retain_graph=True)
    y.backward(Tensor(np.ones(2)), retain_graph=True)
    y.backward(grad=np.ones(2))
    np.testing.assert_allclose(x.grad, 3 * 2 * x.numpy())
    with pytest.raises(NotImplementedError, match="first-order gradients only"):
        y.backward(np.ones(2), create_graph=True)
    with pytest.raises(TypeError, match="give `gradient` or its alias `grad`, not both"):
        y.backward(np.ones(2), grad=np.ones(2))


# --- .data: a Tensor sharing memory, outside autograd (as PyTorch's) ------------------------------
def test_data_is_a_detached_tensor_sharing_memory():
    w = cnnlab.tensor([1.0, 2.0, 3.0], requires_grad=True)
    d = w.data
    assert isinstance(d, cnnlab.Tensor) and d.requires_grad is False and d.grad_fn is None
    assert np.shares_memory(d.numpy(), w.numpy())
    d.mul_(2)  # in place through .data: no RuntimeError on a leaf, and the leaf sees it
    np.testing.assert_array_equal(w.numpy(), [2.0, 4.0, 6.0])
    loss = (w * w).sum()
    loss.backward()
    w.data.sub_(w.grad.data * 0.25)  # the blitz's update
    np.testing.assert_array_equal(w.numpy(), [1.0, 2.0, 3.0])
    assert w.requires_grad and w.grad is not None


def test_data_assignment_replaces_values_and_shape():
    w = cnnlab.tensor([1.0, 2.0], requires_grad=True)
    w.data = cnnlab.zeros(3, 2)
    assert w.shape == (3, 2) and w.requires_grad
    w.data = np.ones(4, dtype=np.float32)
    np.testing.assert_array_equal(w.numpy(), np.ones(4))
    with pytest.raises(TypeError, match="floating point"):
        w.data = np.arange(3)  # an integer tensor cannot require grad


def test_data_of_a_read_only_view_still_updates_the_tensor():
    t = cnnlab.Tensor(np.broadcast_to(np.float32(1.0), (2, 3)))
    t.data.add_(1)
    np.testing.assert_array_equal(t.numpy(), np.full((2, 3), 2.0))


def test_data_matches_torch(torch):
    rng = np.random.default_rng(0)
    x0, w0 = rng.normal(size=(4, 3)), rng.normal(size=(3,))
    ours, theirs = [], []
    for lib, out in ((cnnlab, ours), (torch, theirs)):
        w = lib.tensor(w0.copy(), requires_grad=True)
        for _ in range(3):
            loss = (lib.tensor(x0) @ w).pow(2).sum()
            loss.backward()
            w.data.sub_(w.grad.data * 0.01)
            w.grad.data.zero_()
        out.append(w.detach().numpy().copy())
        out.append((w.data * 2).requires_grad)
    np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-12)
    assert ours[1] == theirs[1] is False
