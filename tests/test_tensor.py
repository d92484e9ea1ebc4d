"""Tensor: dtypes, the autograd contract, every arithmetic op's gradient, and a light import."""
import subprocess
import sys

import numpy as np
import pytest

import cnnlab
from cnnlab import Tensor, no_grad, enable_grad, is_grad_enabled
from cnnlab.tensor import concatenate

from conftest import gradcheck, torch_parity

RNG = np.random.default_rng(1234)


def rand(*shape, low=-1.0, high=1.0):
    return RNG.uniform(low, high, size=shape)


# --- dtypes and basic API --------------------------------------------------------------
def test_float32_default_float64_kept_int_kept():
    assert Tensor([1.0, 2.0]).dtype == np.float32
    assert Tensor(3.0).dtype == np.float32
    assert Tensor(np.zeros(3, dtype=np.float16)).dtype == np.float32
    assert Tensor(np.zeros(3)).dtype == np.float64
    assert Tensor(np.float64(1.5)).dtype == np.float64
    assert Tensor(np.zeros(3, dtype=np.float32)).dtype == np.float32
    assert Tensor([1, 2, 3]).dtype.kind == "i"
    assert Tensor(np.arange(3, dtype=np.int32)).dtype == np.int32
    assert Tensor(np.array([True, False])).dtype == np.bool_
    assert Tensor([1, 2], dtype=np.float64).dtype == np.float64


def test_non_numeric_data_is_a_type_error():
    with pytest.raises(TypeError, match="numeric"):
        Tensor(np.array(["a", "b"]))
    with pytest.raises(TypeError, match="numeric"):
        Tensor(["a", "b"])


def test_integer_tensor_cannot_require_grad():
    with pytest.raises(TypeError, match="only floating point tensors can require gradients, got dtype int"):
        Tensor([1, 2], requires_grad=True)


def test_numpy_returns_the_data_and_properties():
    a = np.arange(6.0).reshape(2, 3)
    t = Tensor(a)
    assert t.numpy() is t.numpy()
    np.testing.assert_array_equal(t.numpy(), a)
    assert t.shape == (2, 3) and t.ndim == 2 and t.numel() == 6 and t.size() == (2, 3) and len(t) == 2
    assert t.is_leaf and t.grad is None and not t.requires_grad
    assert Tensor(np.float64(2.5)).item() == 2.5
    d = Tensor(a, requires_grad=True).detach()
    assert not d.requires_grad and d.is_leaf
    assert "requires_grad=True" in repr(Tensor(a, requires_grad=True))


def test_backward_fills_grad_of_leaves_only():
    x = Tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    y = x * 2
    z = (y * y).sum()
    z.backward()
    np.testing.assert_allclose(x.grad, 8 * x.numpy())
    assert y.grad is None and not y.is_leaf
    assert x.grad.shape == x.shape


def test_backward_grad_shape_is_checked():
    x = Tensor(np.ones((2, 3)), requires_grad=True)
    y = x * 3
    with pytest.raises(ValueError, match=r"grad must have the output's shape \(2, 3\), got \(3, 2\)"):
        y.backward(np.ones((3, 2)))
    with pytest.raises(ValueError, match=r"grad can be omitted only for a scalar output, got output of "
                                         r"shape \(2, 3\)"):
        y.backward()
    y.backward(np.full((2, 3), 2.0))
    np.testing.assert_allclose(x.grad, 6.0)


def test_backward_without_grad_graph_is_an_error():
    with pytest.raises(RuntimeError, match="does not require grad"):
        Tensor(np.ones(2)).sum().backward()


def test_grad_dtype_matches_leaf_dtype():
    for dtype in (np.float32, np.float64):
        x = Tensor(np.ones(3, dtype=dtype), requires_grad=True)
        (x * 2.0 + 1.0).sum().backward()
        assert x.grad.dtype == dtype


def test_grad_dtype_matches_leaf_dtype_in_mixed_precision():
    x = Tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    (x * Tensor(np.ones(3))).sum().backward()
    assert x.grad.dtype == np.float32


def test_no_grad_records_nothing():
    x = Tensor(np.ones(3), requires_grad=True)
    assert is_grad_enabled()
    with no_grad():
        assert not is_grad_enabled()
        y = (x * 2).exp().sum()
        with enable_grad():
            assert is_grad_enabled()
            z = x * 2
    assert is_grad_enabled()
    assert not y.requires_grad and y.is_leaf and y._parents == ()
    assert z.requires_grad
    with pytest.raises(RuntimeError):
        y.backward()
    assert x.grad is None


def test_no_grad_restores_state_after_exception():
    with pytest.raises(ZeroDivisionError):
        with no_grad():
            1 / 0
    assert is_grad_enabled()


def test_gradient_accumulates_over_two_backward_calls():
    x = Tensor(np.array([1.0, -2.0]), requires_grad=True)
    (x * 3).sum().backward()
    first = x.grad.clone()
    (x * x).sum().backward()
    np.testing.assert_allclose(first, [3.0, 3.0])
    np.testing.assert_allclose(x.grad, first + 2 * x.numpy())
    x.zero_grad()
    assert x.grad is None


def test_leaf_grad_is_not_aliased_to_upstream():
    x = Tensor(np.ones((2, 2)), requires_grad=True)
    x.sum().backward()  # the sum's backward returns a read-only broadcast view
    x.grad += 1  # must be an owned, writable array
    np.testing.assert_allclose(x.grad, 2.0)


def test_constant_operands_get_no_grad():
    x = Tensor(np.ones(2), requires_grad=True)
    c = Tensor(np.full(2, 5.0))
    (x * c).sum().backward()
    assert c.grad is None
    np.testing.assert_allclose(x.grad, 5.0)


def test_scalars_and_ndarrays_on_either_side():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    outs = [2.0 * x, x * 2, 1 - x, x - 1, 2 / x, x / 2, np.ones(2) + x, x + np.ones(2),
            np.float64(2.0) * x, -x, x ** 2]
    expect = [[2, 4], [2, 4], [0, -1], [0, 1], [2, 1], [0.5, 1], [2, 3], [2, 3], [2, 4], [-1, -2], [1, 4]]
    for out, e in zip(outs, expect):
        assert isinstance(out, Tensor), type(out)
        np.testing.assert_allclose(out.numpy(), e)
        assert out.dtype == np.float64
    assert (Tensor(np.array([1, 2])) + 0.5).dtype.kind == "f"
    assert (Tensor([1.0, 2.0]) * 2).dtype == np.float32


def test_comparisons_and_argmax_return_tensors_without_grad():
    t = Tensor(np.array([[1.0, 3.0], [4.0, 2.0]]), requires_grad=True)
    mask = t > 2
    assert isinstance(mask, Tensor) and mask.dtype == np.bool_ and not mask.requires_grad
    np.testing.assert_array_equal(mask.numpy(), [[False, True], [True, False]])
    np.testing.assert_array_equal(np.asarray(t > 2), [[False, True], [True, False]])
    arg = t.argmax(axis=1)
    assert isinstance(arg, Tensor) and arg.dtype == np.int64
    np.testing.assert_array_equal(arg.numpy(), [1, 0])


# --- gradient checks of every op -------------------------------------------------------
@pytest.mark.parametrize("shape_a,shape_b", [((3, 4), (3, 4)), ((3, 4), (4,)), ((3, 1), (1, 4)),
                                             ((2, 3, 4), (3, 1)), ((), (2, 3))])
def test_gradcheck_add_mul_div_sub_broadcasting(shape_a, shape_b):
    a, b = rand(*shape_a), rand(*shape_b, low=0.5, high=2.0)
    gradcheck(lambda x, y: x + y, [a, b])
    gradcheck(lambda x, y: x - y, [a, b])
    gradcheck(lambda x, y: x * y, [a, b])
    gradcheck(lambda x, y: x / y, [a, b])
    gradcheck(lambda x, y: y / (x * x + 1), [a, b])


def test_gradcheck_unary_ops():
    x = rand(3, 4, low=0.3, high=2.0)
    gradcheck(lambda t: t ** 3, [x])
    gradcheck(lambda t: t ** 0.5, [x])
    gradcheck(lambda t: t ** -1.5, [x])
    gradcheck(lambda t: t.sqrt(), [x])
    gradcheck(lambda t: t.exp(), [x - 1])
    gradcheck(lambda t: t.log(), [x])
    gradcheck(lambda t: -t, [x])
    gradcheck(lambda t: t.abs(), [rand(3, 4, low=0.1) * np.sign(rand(3, 4))])


def test_gradcheck_matmul():
    gradcheck(lambda a, b: a @ b, [rand(3, 4), rand(4, 2)])
    gradcheck(lambda a, b: (a @ b).T @ a, [rand(3, 4), rand(4, 3)])


def test_matmul_errors_name_shapes():
    with pytest.raises(ValueError, match=r"matmul: shapes \(3, 4\) and \(3, 2\) do not align \(4 != 3\)"):
        Tensor(np.ones((3, 4))) @ Tensor(np.ones((3, 2)))
    with pytest.raises(ValueError, match=r"matmul: shapes \(4,\) and \(3, 2\) do not align \(4 != 3\)"):
        Tensor(np.ones(4)) @ Tensor(np.ones((3, 2)))  # a vector is fine (PyTorch's rules) when it fits
    assert (Tensor(np.ones(3)) @ Tensor(np.ones((3, 2)))).shape == (2,)


@pytest.mark.parametrize("axis,keepdims", [(None, False), (0, False), (1, True), (-1, False),
                                           ((0, 2), False), ((0, 2), True), ((), False)])
def test_gradcheck_sum_mean(axis, keepdims):
    x = rand(2, 3, 4)
    gradcheck(lambda t: t.sum(axis=axis, keepdims=keepdims), [x])
    gradcheck(lambda t: t.mean(axis=axis, keepdims=keepdims), [x])


def test_sum_mean_values():
    x = rand(2, 3, 4)
    np.testing.assert_allclose(Tensor(x).sum(axis=(0, 2)).numpy(), x.sum(axis=(0, 2)))
    np.testing.assert_allclose(Tensor(x).mean(axis=-1, keepdims=True).numpy(), x.mean(axis=-1, keepdims=True))


def test_gradcheck_reshape_transpose():
    x = rand(2, 3, 4)
    gradcheck(lambda t: t.reshape(6, 4) * t.reshape(6, 4), [x])
    gradcheck(lambda t: t.reshape((4, -1)), [x])
    gradcheck(lambda t: t.transpose(2, 0, 1), [x])
    gradcheck(lambda t: t.transpose((1, 2, 0)), [x])
    gradcheck(lambda t: t.permute(1, 0, 2), [x])
    gradcheck(lambda t: t.T, [x])
    gradcheck(lambda t: t.transpose(), [x])


def test_gradcheck_transpose_negative_axes():
    x = rand(2, 3, 4)
    gradcheck(lambda t: t.transpose(0, -1, 1), [x])
    gradcheck(lambda t: t.permute(-1, -3, -2), [x])


@pytest.mark.parametrize("index", [
    (slice(None), 1), 0, -1, (slice(None, None, -1),), (Ellipsis, slice(1, 3)), (None, 0),
    (np.array([0, 0, 1]),), (np.array([1, 0, 1]), np.array([2, 2, 0])), "mask",
])
def test_gradcheck_getitem(index):
    x = rand(2, 3, 4)
    if isinstance(index, str):
        index = x > 0
    gradcheck(lambda t: t[index], [x])


def test_getitem_with_tensor_index():
    x = rand(4, 3)
    gradcheck(lambda t: t[Tensor(np.array([3, 3, 0]))], [x])


def test_gradcheck_concatenate():
    gradcheck(lambda a, b: concatenate([a, b * b], axis=1), [rand(2, 3), rand(2, 2)])


def test_residual_branching_graph_x_used_twice():
    """x feeds two branches that are added back together, and is used twice inside one op."""
    def fn(x, w):
        h = (x @ w).exp() * 0.1
        return (h + x @ w + x * x).sum(axis=1) / (x.sum() + 10)
    grads = gradcheck(fn, [rand(3, 3), rand(3, 3)])
    assert grads[0].shape == (3, 3)


def test_deep_graph_does_not_hit_recursion_limit():
    x = Tensor(np.array(1.0), requires_grad=True)
    y = x
    for _ in range(5000):
        y = y * 1.0001
    y.backward()
    np.testing.assert_allclose(x.grad, 1.0001 ** 5000)


def test_diamond_graph_topological_order():
    x = Tensor(np.array([2.0]), requires_grad=True)
    b = x * 3          # b depends on x
    c = b * x          # c depends on b and x
    d = c + b          # d depends on c and b
    d.sum().backward()
    # d = 3x^2 + 3x -> 6x + 3
    np.testing.assert_allclose(x.grad, [15.0])


def test_tensor_ops_match_torch(torch):
    a, b = rand(3, 4), rand(4, low=0.5, high=2.0)
    torch_parity(torch, lambda x, y: (x * y + x / y - y).exp().sum(axis=0),
                 lambda x, y: (x * y + x / y - y).exp().sum(dim=0), [a, b])
    torch_parity(torch, lambda x, y: (x @ y.reshape(4, 1)).log().mean(),
                 lambda x, y: (x @ y.reshape(4, 1)).log().mean(), [np.abs(a), b])
    torch_parity(torch, lambda x: (x ** 2.5).T[1:],
                 lambda x: (x ** 2.5).T[1:], [np.abs(a) + 0.1])


# --- import weight ----------------------------------------------------------------------
def test_import_cnnlab_imports_no_heavy_module():
    code = ("import sys, cnnlab, cnnlab.functional, cnnlab.nn, cnnlab.optim\n"
            "heavy = ['torch', 'matplotlib', 'PIL', 'sklearn', 'scipy', 'tqdm', 'yaml']\n"
            "print(','.join(m for m in heavy if m in sys.modules))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            env=_env_with_src())
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"import cnnlab loaded heavy modules: {result.stdout.strip()}"


def _env_with_src():
    import os
    env = dict(os.environ)
    src = os.path.dirname(os.path.dirname(cnnlab.__file__))
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    return env
