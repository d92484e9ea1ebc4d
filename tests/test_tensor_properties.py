"""Property tests (Hypothesis): over random shapes and dims -- out-of-range ones included -- every
reduction and shape method agrees with PyTorch in value, gradient and dtype, or both raise the same
IndexError."""
import os
import warnings

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

from cnnlab import Tensor  # noqa: E402

# CNNLAB_FUZZ_EXAMPLES=2000 for a longer search
SETTINGS = settings(max_examples=int(os.environ.get("CNNLAB_FUZZ_EXAMPLES", "60")), deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])

REDUCTIONS = {
    "sum": lambda t, d, k: t.sum(d, keepdim=k),
    "mean": lambda t, d, k: t.mean(d, keepdim=k),
    "amax": lambda t, d, k: t.amax(d, keepdim=k),
    "amin": lambda t, d, k: t.amin(d, keepdim=k),
    "std": lambda t, d, k: t.std(d, keepdim=k),
    "var0": lambda t, d, k: t.var(d, keepdim=k, correction=0),
    "max": lambda t, d, k: t.max(d, keepdim=k)[0],
    "min_indices": lambda t, d, k: t.min(d, keepdim=k)[1],
    "argmax": lambda t, d, k: t.argmax(d, keepdim=k),
    "prod": lambda t, d, k: t.prod(d, keepdim=k),
    "norm": lambda t, d, k: t.norm(dim=d, keepdim=k),
    "softmax": lambda t, d, k: t.softmax(d),
    "log_softmax": lambda t, d, k: t.log_softmax(d),
}

SHAPE_OPS = {
    "flatten_from": lambda t, d: t.flatten(d),
    "flatten_to": lambda t, d: t.flatten(0, d),
    "unsqueeze": lambda t, d: t.unsqueeze(d),
    "squeeze": lambda t, d: t.squeeze(d),
    "transpose": lambda t, d: t.transpose(d, -1),
    "size": None,
    "split": lambda t, d: t.split(1, d)[0],
    "unbind_last": lambda t, d: t.unbind(d)[-1],
}


def _same(torch, cn_fn, t_fn, x: np.ndarray):
    """Run both; equal values, dtypes and gradients, or the same IndexError text."""
    cn_in = Tensor(x.copy(), requires_grad=True)
    t_in = torch.tensor(x, requires_grad=True)
    try:
        with warnings.catch_warnings():  # PyTorch warns for std/var with too few values
            warnings.simplefilter("ignore", UserWarning)
            expected = t_fn(t_in)
    except IndexError as exc:
        with pytest.raises(IndexError) as info:
            cn_fn(cn_in)
        assert str(info.value) == str(exc)
        return
    out = cn_fn(cn_in)
    assert out.shape == tuple(expected.shape)
    assert str(out.dtype) == str(expected.dtype).replace("torch.", "")
    np.testing.assert_allclose(out.numpy(), expected.detach().numpy(), rtol=1e-9, atol=1e-12, equal_nan=True)
    if expected.requires_grad and out.requires_grad:
        w = np.random.default_rng(0).standard_normal(out.shape)
        out.backward(w)
        expected.backward(torch.tensor(w))
        np.testing.assert_allclose(cn_in.grad, t_in.grad.numpy(), rtol=1e-8, atol=1e-10, equal_nan=True)


# magnitudes below 1e-100 are left out: PyTorch's norm underflows there (x*x == 0) where cnnlab's is exact
values = st.floats(-10, 10, allow_nan=False, width=64).filter(lambda v: v == 0 or abs(v) > 1e-100)
arrays = hnp.arrays(np.float64, hnp.array_shapes(min_dims=0, max_dims=4, min_side=1, max_side=4), elements=values)


@SETTINGS
@given(x=arrays, data=st.data())
def test_reductions_agree_with_torch(torch, x, data):
    name = data.draw(st.sampled_from(sorted(REDUCTIONS)))
    nd = max(x.ndim, 1)
    dim = data.draw(st.integers(-nd - 2, nd + 1))
    keepdim = data.draw(st.booleans())
    fn = REDUCTIONS[name]
    if name in ("std",) and x.size < 2:
        return  # one value: NaN with a warning in PyTorch, NaN here; not a property worth fuzzing
    _same(torch, lambda t: fn(t, dim, keepdim), lambda t: fn(t, dim, keepdim), x)


@SETTINGS
@given(x=arrays, data=st.data())
def test_reductions_over_dim_lists_agree_with_torch(torch, x, data):
    nd = max(x.ndim, 1)
    dims = tuple(data.draw(st.lists(st.integers(-nd - 1, nd), min_size=1, max_size=3, unique=True)))
    name = data.draw(st.sampled_from(["sum", "mean", "amax", "amin"]))
    keepdim = data.draw(st.booleans())
    fn = REDUCTIONS[name]
    valid = all(-nd <= d < nd for d in dims)
    duplicate = valid and len({d % nd for d in dims}) != len(dims)
    if duplicate:  # both refuse: "dim 0 appears multiple times in the list of dims"
        with pytest.raises(RuntimeError, match="appears multiple times in the list of dims"):
            fn(Tensor(x), dims, keepdim)
        return
    _same(torch, lambda t: fn(t, dims, keepdim), lambda t: fn(t, dims, keepdim), x)


@SETTINGS
@given(x=arrays, data=st.data())
def test_shape_methods_agree_with_torch(torch, x, data):
    name = data.draw(st.sampled_from(sorted(SHAPE_OPS)))
    nd = max(x.ndim, 1)
    dim = data.draw(st.integers(-nd - 2, nd + 1))
    if name == "size":
        try:
            expected = torch.tensor(x).size(dim)
        except IndexError as exc:
            with pytest.raises(IndexError) as info:
                Tensor(x).size(dim)
            assert str(info.value) == str(exc)
            return
        assert Tensor(x).size(dim) == expected
        return
    if name in ("split", "unbind_last") and x.ndim == 0:
        return  # PyTorch refuses a 0-d tensor with another message
    fn = SHAPE_OPS[name]
    _same(torch, lambda t: fn(t, dim), lambda t: fn(t, dim), x)


@SETTINGS
@given(x=hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=4),
                    elements=st.floats(-5, 5, allow_nan=False, width=64)), data=st.data())
def test_view_and_permute_agree_with_torch(torch, x, data):
    perm = data.draw(st.permutations(range(x.ndim)))
    perm = [p - x.ndim if data.draw(st.booleans()) else p for p in perm]
    shape = list(x.shape)
    if len(shape) > 1 and data.draw(st.booleans()):
        shape = [int(np.prod(shape[:2]))] + shape[2:]
    infer = data.draw(st.integers(0, len(shape) - 1))
    shape[infer] = -1
    _same(torch, lambda t: t.permute(*perm).reshape(shape), lambda t: t.permute(*perm).reshape(shape), x)
    _same(torch, lambda t: t.view(tuple(shape)).unsqueeze(0).squeeze(0),
          lambda t: t.view(tuple(shape)).unsqueeze(0).squeeze(0), x)


def _positive_steps(index) -> bool:
    parts = index if isinstance(index, tuple) else (index,)
    return all(not isinstance(p, slice) or p.step is None or p.step > 0 for p in parts)


@SETTINGS
@given(data=st.data())
def test_basic_indexing_agrees_with_torch(torch, data):
    x = data.draw(hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=5),
                             elements=st.floats(-5, 5, allow_nan=False, width=64)))
    index = data.draw(hnp.basic_indices(x.shape, allow_newaxis=True, allow_ellipsis=True))
    hypothesis.assume(_positive_steps(index))  # PyTorch has no negative steps
    _same(torch, lambda t: t[index], lambda t: t[index], x)
    int_index = data.draw(hnp.arrays(np.int64, st.integers(1, 6), elements=st.integers(-x.shape[0], x.shape[0] - 1)))
    _same(torch, lambda t: t[Tensor(int_index)] if isinstance(t, Tensor) else t[torch.tensor(int_index)],
          lambda t: t[torch.tensor(int_index)], x)
