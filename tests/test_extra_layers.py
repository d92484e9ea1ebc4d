"""Layers for imported networks: values and gradients against PyTorch, float64 gradient checks."""
from __future__ import annotations

import numpy as np
import pytest

from cnnlab import Tensor, nn
from cnnlab.functional import extra as FX
from conftest import gradcheck, torch_parity

rng = np.random.default_rng(0)
X = rng.standard_normal((2, 3, 5, 6)) * 4


@pytest.mark.parametrize("mode, torch_mode", [("constant", "constant"), ("reflect", "reflect"),
                                              ("replicate", "replicate"), ("circular", "circular")])
@pytest.mark.parametrize("pad", [(0, 2, 3, 1), (1, 0, 2, 2), (1, 1, 1, 1)])
def test_pad_matches_torch(torch, mode, torch_mode, pad):
    value = 0.5 if mode == "constant" else None
    kwargs = {"value": value} if mode == "constant" else {}
    torch_parity(torch, lambda x: FX.pad(x, pad, mode, value or 0.0),
                 lambda x: torch.nn.functional.pad(x, pad, mode=torch_mode, **kwargs), [X])


def test_pad_channel_axis_and_gradient():
    out = FX.pad(Tensor(X), (0, 0, 0, 0, 1, 2), "replicate")
    assert out.shape == (2, 6, 5, 6)
    np.testing.assert_array_equal(out.numpy()[:, 0], X[:, 0])
    np.testing.assert_array_equal(out.numpy()[:, 5], X[:, 2])
    gradcheck(lambda x: FX.pad(x, (2, 1, 1, 2), "reflect"), [X[:1, :2]])
    gradcheck(lambda x: FX.pad(x, (1, 1, 0, 2, 1, 0), "replicate"), [X[:1, :2]])
    layer = nn.Pad((1, 2, 3, 4), "reflect")
    assert layer.output_shape(X.shape) == layer(Tensor(X)).shape == (2, 3, 12, 9)


def test_pad_errors():
    with pytest.raises(ValueError, match=r"Pad: mode must be one of .*got 'edge'"):
        nn.Pad((1, 1), "edge")
    with pytest.raises(ValueError, match=r"reflect padding \(6, 0\) of dimension 3 must be smaller than its size 6"):
        FX.pad(Tensor(X), (6, 0), "reflect")


@pytest.mark.parametrize("name, cn, tf", [
    ("hardsigmoid", FX.hardsigmoid, lambda t, x: t.nn.functional.hardsigmoid(x)),
    ("hardswish", FX.hardswish, lambda t, x: t.nn.functional.hardswish(x)),
    ("erf", FX.erf, lambda t, x: t.erf(x)),
])
def test_activations_match_torch(torch, name, cn, tf):
    x = X + 0.0123  # keep away from the kinks
    # PyTorch's hardsigmoid backward multiplies by a single-precision 1/6
    torch_parity(torch, cn, lambda v: tf(torch, v), [x], rtol=1e-7 if name == "hardsigmoid" else 1e-9)
    gradcheck(cn, [x[:1, :1]])


def test_prelu_matches_torch(torch):
    w = np.array([0.1, -0.3, 0.7])
    torch_parity(torch, FX.prelu, torch.nn.functional.prelu, [X, w])
    torch_parity(torch, FX.prelu, torch.nn.functional.prelu, [X, w[:1]])
    gradcheck(FX.prelu, [X[:1, :, :2, :2], w])
    layer = nn.PReLU(3)
    assert layer.weight.shape == (3,) and layer.output_shape(X.shape) == X.shape
    with pytest.raises(ValueError, match=r"prelu: weight must have shape \(1,\) or \(C,\) with C = input.shape\[1\], "
                                         r"got weight \(2,\) for input \(2, 3, 5, 6\)"):
        FX.prelu(Tensor(X), np.ones(2))


def test_permute_layer():
    layer = nn.Permute((0, 2, 3, 1))
    out = layer(Tensor(X, requires_grad=True))
    assert out.shape == layer.output_shape(X.shape) == (2, 5, 6, 3)
    np.testing.assert_array_equal(out.numpy(), X.transpose(0, 2, 3, 1))
    gradcheck(lambda x: nn.Permute((0, 3, 1, 2))(x) * 2.0, [X[:1]])
    with pytest.raises(ValueError, match=r"Permute: dims must be a permutation of 0..2, got \(0, 2, 2\)"):
        nn.Permute((0, 2, 2))


@pytest.mark.parametrize("op, reverse, expected", [
    ("add", False, lambda x, c: x + c), ("sub", False, lambda x, c: x - c), ("sub", True, lambda x, c: c - x),
    ("mul", False, lambda x, c: x * c), ("div", False, lambda x, c: x / c), ("div", True, lambda x, c: c / x)])
def test_elementwise_constant(op, reverse, expected):
    layer = nn.Elementwise(op, (1, 3, 1, 1), reverse).double()
    c = np.array([1.5, -2.0, 3.0]).reshape(1, 3, 1, 1)
    layer.load_state_dict({"constant": c})
    out = layer(Tensor(X))
    np.testing.assert_allclose(out.numpy(), expected(X, c))
    assert layer.output_shape(X.shape) == out.shape
    gradcheck(lambda x: layer(x), [X[:1, :, :2, :2]])


def test_elementwise_pow_and_errors():
    layer = nn.Elementwise("pow", ()).double()
    layer.load_state_dict({"constant": np.array(2.0)})
    np.testing.assert_allclose(layer(Tensor(X)).numpy(), X ** 2)
    with pytest.raises(ValueError, match=r"op must be one of .*got 'max'"):
        nn.Elementwise("max")
    with pytest.raises(ValueError, match=r"a constant of shape \(4,\) does not broadcast with input shape"):
        nn.Elementwise("add", (4,)).output_shape(X.shape)
