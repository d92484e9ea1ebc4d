"""Graph models: nn.Graph, the merge layers, graph model files, and their parity with PyTorch."""
from __future__ import annotations

import json

import numpy as np
import pytest

import cnnlab
import cnnlab.nn as nn
from cnnlab import Tensor, no_grad
from cnnlab.models import build_model, model_to_spec, parse_model_spec, resnet8

from conftest import gradcheck


def _residual_graph(dtype=np.float64):
    return nn.Graph([
        ("conv1", nn.Conv2d(2, 4, 3, padding=1, dtype=dtype), ["input"]),
        ("relu1", nn.ReLU(), ["conv1"]),
        ("conv2", nn.Conv2d(4, 4, 3, padding=1, dtype=dtype), ["relu1"]),
        ("add", nn.Add(), ["conv2", "conv1"]),
        ("a", nn.Conv2d(4, 3, 1, dtype=dtype), ["add"]),
        ("b", nn.Conv2d(4, 5, 3, padding=1, dtype=dtype), ["add"]),
        ("cat", nn.Concat(1), ["a", "b"]),
        ("gate", nn.Sigmoid(), ["cat"]),
        ("mul", nn.Mul(), ["cat", "gate"]),
        ("pool", nn.GlobalAvgPool2d(), ["mul"]),
        ("fc", nn.Linear(8, 3, dtype=dtype), ["pool"]),
        ("fc_again", nn.Identity(), ["fc"]),
    ], output="fc")


# --- the graph itself ---------------------------------------------------------------------------
def test_graph_runs_nodes_in_order_and_names_state_dict_by_node():
    g = _residual_graph()
    assert list(g.state_dict())[:4] == ["conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias"]
    x = np.random.default_rng(0).standard_normal((2, 2, 6, 6))
    values = g.run_all(Tensor(x))
    # the article's arithmetic, by hand: the residual is conv2(relu(conv1 x)) + conv1 x
    c1 = g.node("conv1").module(Tensor(x)).numpy()
    c2 = g.node("conv2").module(Tensor(np.maximum(c1, 0))).numpy()
    np.testing.assert_allclose(values["add"].numpy(), c2 + c1)
    np.testing.assert_allclose(values["cat"].numpy(), np.concatenate([values["a"].numpy(), values["b"].numpy()], 1))
    np.testing.assert_allclose(g(Tensor(x)).numpy(), values["fc"].numpy())  # output="fc", not the last node
    assert g.consumers("add") == ["a", "b"]


def test_graph_shapes_without_running_equal_the_real_shapes():
    g = _residual_graph()
    shapes = g.shapes((3, 2, 7, 5))
    values = g.run_all(Tensor(np.zeros((3, 2, 7, 5))))
    for name, value in values.items():
        assert shapes[name] == tuple(value.shape), name
    assert g.output_shape((3, 2, 7, 5)) == (3, 3)


def test_graph_gradients_match_central_differences():
    g = _residual_graph()
    gradcheck(lambda x: g(x), [np.random.default_rng(1).standard_normal((2, 2, 4, 4))])


@pytest.mark.parametrize("nodes, message", [
    ([("a", nn.ReLU(), ["input"]), ("a", nn.ReLU(), ["a"])], "name 'a' is used twice"),
    ([("input", nn.ReLU(), ["input"])], "is used twice \\(also the model's input\\)"),
    ([("a", nn.ReLU(), ["nowhere"])], "reads 'nowhere', which is not the name of any node"),
    ([("a", nn.Add(), ["input", "b"]), ("b", nn.ReLU(), ["a"])], "reads 'b', which comes later"),
    ([], "at least one node"),
])
def test_graph_refuses_bad_wiring(nodes, message):
    with pytest.raises(ValueError, match=message):
        nn.Graph(nodes)


def test_add_with_mismatched_shapes_names_both_shapes():
    g = nn.Graph([("c", nn.Conv2d(1, 4, 3), ["input"]), ("add", nn.Add(), ["c", "input"])])
    with pytest.raises(ValueError, match=r"graph node 'add' \(Add\) cannot take its input \(c \(1, 4, 6, 6\), "
                                         r"input \(1, 1, 8, 8\)\).*shapes \(1, 4, 6, 6\) and \(1, 1, 8, 8\)"):
        g.output_shape((1, 1, 8, 8))
    with pytest.raises(ValueError, match="Concat along dim 1 needs inputs equal in every other dimension"):
        nn.Concat(1).output_shape((1, 2, 4, 4), (1, 2, 5, 4))


@pytest.mark.parametrize("layer, shapes", [
    (nn.Add(), [(2, 3, 4, 4), (2, 3, 4, 4)]),
    (nn.Sub(), [(2, 3, 4, 4), (1, 3, 1, 1)]),
    (nn.Mul(), [(2, 3, 4, 4), (2, 1, 4, 4)]),
    (nn.Div(), [(2, 3, 4, 4), (2, 3, 4, 4)]),
    (nn.Add(2.5), [(2, 3)]),
    (nn.Sub(1.0, reverse=True), [(2, 3)]),
    (nn.Div(2.0, reverse=True), [(2, 3)]),
    (nn.Concat(1), [(2, 3, 4, 4), (2, 1, 4, 4), (2, 2, 4, 4)]),
    (nn.Concat(-1), [(2, 3, 4), (2, 3, 2)]),
    (nn.Reshape((-1, 2)), [(2, 3, 4)]),
    (nn.Mean((2, 3)), [(2, 3, 4, 5)]),
    (nn.Mean(-1, keepdim=True), [(2, 3, 4, 5)]),
])
def test_merge_layers_values_shapes_and_gradients(layer, shapes):
    rng = np.random.default_rng(0)
    arrays = [rng.uniform(0.5, 2.0, s) for s in shapes]
    out = layer(*[Tensor(a) for a in arrays])
    assert layer.output_shape(*shapes) == tuple(out.shape)
    expected = {
        nn.Add: lambda a, b=None: a + (layer.constant if b is None else b),
        nn.Mul: lambda a, b=None: a * b,
        nn.Div: lambda a, b=None: (layer.constant / a) if b is None else a / b,
        nn.Sub: lambda a, b=None: (layer.constant - a) if b is None else a - b,
        nn.Concat: lambda *xs: np.concatenate(xs, axis=layer.dim),
        nn.Reshape: lambda a: a.reshape(a.shape[0], -1, 2),
        nn.Mean: lambda a: a.mean(axis=tuple(d % a.ndim for d in layer.dim), keepdims=layer.keepdim),
    }[type(layer)](*arrays)
    np.testing.assert_allclose(out.numpy(), expected)
    gradcheck(lambda *xs: layer(*xs), arrays)


def test_reshape_and_mean_refuse_what_a_model_cannot_do():
    with pytest.raises(ValueError, match=r"Reshape to \[5\] needs 5 values per sample"):
        nn.Reshape((5,)).output_shape((2, 3, 4))
    with pytest.raises(ValueError, match="at most one -1"):
        nn.Reshape((-1, -1))
    with pytest.raises(ValueError, match="batch dimension"):
        nn.Mean(0).output_shape((2, 3))
    with pytest.raises(IndexError, match=r"Dimension out of range \(expected to be in range of \[-2, 1\], "
                                         r"but got 2\)"):
        nn.Mean(2).output_shape((2, 3))


# --- parity with PyTorch -------------------------------------------------------------------------
def _torch_twin(torch, g):
    """The same graph in PyTorch, written by hand as a PyTorch user would."""
    tnn = torch.nn

    class Twin(tnn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = tnn.Conv2d(2, 4, 3, padding=1)
            self.conv2 = tnn.Conv2d(4, 4, 3, padding=1)
            self.a = tnn.Conv2d(4, 3, 1)
            self.b = tnn.Conv2d(4, 5, 3, padding=1)
            self.fc = tnn.Linear(8, 3)

        def forward(self, x):
            c1 = self.conv1(x)
            add = self.conv2(torch.relu(c1)) + c1
            cat = torch.cat([self.a(add), self.b(add)], 1)
            mul = cat * torch.sigmoid(cat)
            return self.fc(mul.mean((2, 3)))

    twin = Twin().double()
    twin.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in g.state_dict().items()})
    return twin


def test_graph_model_matches_pytorch_values_and_gradients(torch):
    g = _residual_graph()
    twin = _torch_twin(torch, g)
    x = np.random.default_rng(2).standard_normal((3, 2, 6, 5))
    xc, xt = Tensor(x.copy(), requires_grad=True), torch.tensor(x, requires_grad=True)
    out_c, out_t = g(xc), twin(xt)
    np.testing.assert_allclose(out_c.numpy(), out_t.detach().numpy(), rtol=1e-10, atol=1e-12)
    w = np.random.default_rng(3).standard_normal(out_c.shape)
    out_c.backward(w)
    out_t.backward(torch.from_numpy(w))
    np.testing.assert_allclose(xc.grad, xt.grad.numpy(), rtol=1e-9, atol=1e-12)
    for (name, p), (tname, tp) in zip(g.named_parameters(), twin.named_parameters()):
        assert name == tname
        np.testing.assert_allclose(p.grad, tp.grad.numpy(), rtol=1e-9, atol=1e-12, err_msg=name)


def test_shared_layer_used_twice_accumulates_its_gradient_as_pytorch(torch):
    lin = nn.Linear(4, 4, dtype=np.float64)
    g = nn.Graph([("lin", lin, ["input"]), ("relu", nn.ReLU(), ["lin"]), ("lin_1", lin, ["relu"])])
    assert list(g.state_dict()) == ["lin.weight", "lin.bias"]
    tl = torch.nn.Linear(4, 4).double()
    tl.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in lin.state_dict().items()})
    x = np.random.default_rng(4).standard_normal((5, 4))
    out = g(Tensor(x))
    out_t = tl(torch.relu(tl(torch.from_numpy(x))))
    np.testing.assert_allclose(out.numpy(), out_t.detach().numpy(), rtol=1e-12)
    out.backward(np.ones(out.shape))
    out_t.sum().backward()
    np.testing.assert_allclose(lin.weight.grad, tl.weight.grad.numpy(), rtol=1e-10)


# --- model files -----------------------------------------------------------------------------------
RESIDUAL_JSON = """
{"input_shape": [1, 8, 8],
 "layers": [
   {"name": "stem", "type": "Conv2d", "out_channels": 8, "kernel_size": 3, "padding": 1},
   {"name": "relu", "type": "ReLU"},
   {"name": "conv", "type": "Conv2d", "out_channels": 8, "kernel_size": 3, "padding": 1},
   {"name": "add", "type": "Add", "inputs": ["conv", "stem"]},
   {"name": "pool", "type": "GlobalAvgPool2d"},
   {"name": "fc", "type": "Linear", "out_features": 10}
 ]}
"""
RESIDUAL_YAML = """
input_shape: [1, 8, 8]
layers:
  - {name: stem, type: Conv2d, out_channels: 8, kernel_size: 3, padding: 1}
  - {name: relu, type: ReLU}
  - {name: conv, type: Conv2d, out_channels: 8, kernel_size: 3, padding: 1}
  - {name: add, type: Add, inputs: [conv, stem]}
  - {name: pool, type: GlobalAvgPool2d}
  - {name: fc, type: Linear, out_features: 10}
"""
RESIDUAL_TOML = """
input_shape = [1, 8, 8]
[[layers]]
name = "stem"
type = "Conv2d"
out_channels = 8
kernel_size = 3
padding = 1
[[layers]]
name = "relu"
type = "ReLU"
[[layers]]
name = "conv"
type = "Conv2d"
out_channels = 8
kernel_size = 3
padding = 1
[[layers]]
name = "add"
type = "Add"
inputs = ["conv", "stem"]
[[layers]]
name = "pool"
type = "GlobalAvgPool2d"
[[layers]]
name = "fc"
type = "Linear"
out_features = 10
"""


@pytest.mark.parametrize("text, fmt", [(RESIDUAL_JSON, "json"), (RESIDUAL_YAML, "yaml"), (RESIDUAL_TOML, "toml")])
def test_residual_model_file_builds_a_graph_in_every_format(text, fmt):
    model = build_model(parse_model_spec(text, fmt))
    assert isinstance(model, nn.Graph)
    assert [n.name for n in model.nodes] == ["stem", "relu", "conv", "add", "pool", "fc"]
    assert model.node("add").inputs == ("conv", "stem")
    assert model.node("conv").module.in_channels == 8       # inferred from the shape flowing in
    assert model.output_shape((2, 1, 8, 8)) == (2, 10)


def test_plain_list_stays_a_sequential():
    spec = {"layers": [{"type": "Conv2d", "in_channels": 1, "out_channels": 2, "kernel_size": 3},
                       {"type": "ReLU"}]}
    assert type(build_model(spec)) is nn.Sequential


def test_layers_may_be_listed_in_any_order_and_default_to_the_previous_layer():
    spec = {"input_shape": [2, 4, 4], "layers": [
        {"name": "sum", "type": "Add", "inputs": ["a", "b"]},
        {"name": "a", "type": "ReLU", "inputs": ["input"]},
        {"name": "b", "type": "Sigmoid", "inputs": ["input"]}], "output": "sum"}
    g = build_model(spec)
    assert [n.name for n in g.nodes] == ["a", "b", "sum"]
    chain = build_model({"layers": [{"name": "x", "type": "ReLU"}, {"type": "Tanh"}]})
    assert chain.nodes[1].inputs == ("x",) and chain.nodes[0].inputs == ("input",)


@pytest.mark.parametrize("layers, message", [
    ([{"name": "a", "type": "ReLU", "inputs": ["b"]}, {"name": "b", "type": "ReLU", "inputs": ["a"]}],
     r"the layers a -> b -> a form a cycle"),
    ([{"name": "a", "type": "ReLU", "inputs": ["ghost"]}],
     r"layer 'a' reads 'ghost', which is not the name of any layer \(names: a\)"),
    ([{"name": "a", "type": "ReLU"}, {"name": "a", "type": "ReLU"}], "the name 'a' is used twice"),
    ([{"name": "a", "type": "ReLU", "inputs": []}], "'inputs' must be a non-empty list"),
    ([{"name": "a", "type": "Conv2d", "out_channels": 2, "kernel_size": 3},
      {"name": "b", "type": "Add", "inputs": ["a", "input"]}],
     r"layer 'b' \(Add\) cannot take its input of shape \(1, 2, 2, 2\) and \(1, 1, 4, 4\)"),
    ([{"name": "a", "type": "ReLU"}, {"name": "b", "same_as": "zzz"}], "'same_as' must name an earlier layer"),
])
def test_graph_model_file_errors_are_one_line_and_name_the_problem(layers, message):
    with pytest.raises(ValueError, match=message) as info:
        build_model({"input_shape": [1, 4, 4], "layers": layers}, source="net.json")
    assert "\n" not in str(info.value) and str(info.value).startswith("net.json")


def test_graph_spec_round_trips_with_same_keys_and_outputs():
    cnnlab.manual_seed(0)
    for model in (_residual_graph(np.float32), resnet8()):
        shape = (2, 6, 6) if model.nodes[0].name == "conv1" else (1, 28, 28)
        spec = json.loads(json.dumps(model_to_spec(model, shape)))
        rebuilt = build_model(spec)
        assert list(rebuilt.state_dict()) == list(model.state_dict())
        rebuilt.load_state_dict(model.state_dict())
        model.eval(), rebuilt.eval()
        x = np.random.default_rng(5).standard_normal((2,) + shape).astype(np.float32)
        with no_grad():
            np.testing.assert_array_equal(rebuilt(Tensor(x)).numpy(), model(Tensor(x)).numpy())


def test_shared_layer_round_trips_through_same_as():
    lin = nn.Linear(4, 4)
    g = nn.Graph([("lin", lin, ["input"]), ("relu", nn.ReLU(), ["lin"]), ("lin_1", lin, ["relu"])])
    spec = model_to_spec(g)
    assert spec["layers"][2] == {"name": "lin_1", "same_as": "lin"}
    rebuilt = build_model(spec)
    assert rebuilt.node("lin_1").module is rebuilt.node("lin").module


def test_resnet8_shape_and_parity_with_a_pytorch_twin(torch):
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from torch_reference import _load_weights, torch_model
    cnnlab.manual_seed(0)
    m = resnet8(in_channels=3, num_classes=10, input_size=32).double()
    m.eval()
    t = torch_model(model_to_spec(m, (3, 32, 32))).double()
    _load_weights(t, m.state_dict())
    t.eval()
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32))
    np.testing.assert_allclose(m(Tensor(x)).numpy(), t(torch.from_numpy(x)).detach().numpy(), rtol=1e-9, atol=1e-10)
    assert m.output_shape((2, 3, 32, 32)) == (2, 10)


def test_resnet8_widths_have_the_published_parameter_counts():
    # README: the zoo's resnet8 has 308,074 parameters (width 32); the MPI and explorer figures use width 16
    count = lambda m: sum(p.numpy().size for p in m.parameters())  # noqa: E731
    assert count(resnet8()) == 308_074
    assert count(resnet8(width=16)) == 77_754
    assert [n.module.out_channels for n in resnet8(width=8).nodes if isinstance(n.module, nn.Conv2d)][:2] == [8, 8]


# --- inference: activations overwrite the fresh output they read -------------------------------
def _fusion_graph():
    import cnnlab
    from cnnlab.nn.extra_layers import Hardswish
    cnnlab.manual_seed(3)
    return nn.Graph([
        ("conv1", nn.Conv2d(2, 4, 3, padding=1), ["input"]),
        ("relu1", nn.ReLU(), ["conv1"]),                    # fused: conv1 is read once
        ("conv2", nn.Conv2d(4, 4, 3, padding=1), ["relu1"]),
        ("hs", Hardswish(), ["conv2"]),                     # fused
        ("conv3", nn.Conv2d(4, 4, 1), ["hs"]),
        ("relu6", nn.ReLU6(), ["conv3"]),                   # not fused: conv3 is also read by add
        ("add", nn.Add(), ["relu6", "conv3"]),
        ("relu2", nn.ReLU(), ["add"]),                      # fused: the sum is fresh
    ])


def test_graph_inference_fuses_activations_in_place(monkeypatch):
    """Under no_grad a ReLU / ReLU6 / Hardswish overwrites the fresh output of the conv, dense,
    batch-norm or Add before it when nothing else reads that value: same numbers, no new array."""
    import cnnlab
    import cnnlab.functional as F
    from cnnlab.functional import extra
    g = _fusion_graph()
    x = np.random.default_rng(0).standard_normal((2, 2, 5, 5)).astype(np.float32)
    want = g(cnnlab.Tensor(x)).numpy()                          # grad mode on: every layer runs as written
    calls = []
    for owner, name in ((F, "relu"), (extra, "hardswish")):
        original = getattr(owner, name)
        monkeypatch.setattr(owner, name, lambda *a, _f=original, _n=name, **k: calls.append(_n) or _f(*a, **k))
    with cnnlab.no_grad():
        got = g(cnnlab.Tensor(x)).numpy()
    np.testing.assert_array_equal(got, want)
    assert calls == []                   # relu1, hs and relu2 ran in place (relu6 is a hardtanh)
    with cnnlab.no_grad():               # a hook on the producer sees its output untouched
        seen = []
        g.node("conv1").module.register_forward_hook(lambda m, args, out: seen.append(out.numpy().copy()))
        np.testing.assert_array_equal(g(cnnlab.Tensor(x)).numpy(), want)
    assert calls == ["relu"] and seen[0].min() < 0


def test_graph_fusion_keeps_values_read_twice_and_the_output():
    import cnnlab
    g = nn.Graph([("conv", nn.Conv2d(1, 2, 3), ["input"]), ("relu", nn.ReLU(), ["conv"]),
                  ("add", nn.Add(), ["relu", "conv"])])
    out = nn.Graph([("conv", nn.Conv2d(1, 2, 3), ["input"]), ("relu", nn.ReLU(), ["conv"])], output="conv")
    x = cnnlab.Tensor(np.random.default_rng(1).standard_normal((1, 1, 5, 5)).astype(np.float32))
    for model in (g, out):
        want = model(x).numpy()
        with cnnlab.no_grad():
            np.testing.assert_array_equal(model(x).numpy(), want)
    assert out(x).numpy().min() < 0         # the output node's value is the conv's, not overwritten
