"""Folding channels-last (Keras) layouts into a plain NCHW graph after import.

Keras models run NHWC; exported to ONNX they wrap every convolution and
pooling in ``Transpose`` nodes.  Imported as they are they compute the right
numbers, but the model takes ``(N, H, W, C)`` images and its feature maps flip
between layouts.  These rewrites, repeated until none applies, give the graph
cnnlab's tools expect:

* a ``Permute(0, 3, 1, 2)`` of the input: the model takes NCHW images instead;
* ``Permute(0, 2, 3, 1)`` then ``Permute(0, 3, 1, 2)``: both go;
* ``Permute(0, 2, 3, 1)`` then an elementwise layer: the layer moves before the
  permute (a per-channel constant ``(1, 1, 1, C)`` becomes ``(1, C, 1, 1)``);
* ``Permute(0, 2, 3, 1)``, ``Flatten``, ``Linear``: flatten NCHW and reorder the
  dense layer's input columns;
* a bias-free convolution followed by adding a per-channel constant: the bias;
* zero padding of H and W right before a convolution: the convolution's padding;
* ``Reshape (N, G, -1)``, ``InstanceNormalization``, ``Reshape`` back, a per-channel ``Mul`` and ``Add``:
  one ``GroupNorm`` (PyTorch writes GroupNorm so);
* ``x * 0.5 * (1 + erf(x / sqrt 2))`` (in either order of the products): one ``GELU`` (PyTorch
  writes GELU so before opset 20).
"""
from __future__ import annotations

from typing import List, Tuple

import numpy as np

from .. import nn
from ._nn import Add, Div, Mul, Node, Sub

TO_NHWC, TO_NCHW = (0, 2, 3, 1), (0, 3, 1, 2)
_ELEMENTWISE = (nn.ReLU, nn.LeakyReLU, nn.Sigmoid, nn.Tanh, nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid, nn.GELU,
                nn.Erf, nn.Identity, nn.Dropout)


def _is_permute(module, dims) -> bool:
    return isinstance(module, nn.Permute) and module.dims == dims


def _scalar_merge(module) -> bool:
    return isinstance(module, (Add, Sub, Mul, Div)) and getattr(module, "constant", None) is not None


def _channel_constant(module, channels: int):
    """The (C,) values of an Elementwise whose constant varies along the last axis only, else None."""
    if not isinstance(module, nn.Elementwise):
        return None
    c = module.constant
    if c.ndim == 0 or c.size not in (1, channels) or any(s != 1 for s in c.shape[:-1]) or c.ndim > 4:
        return None
    return np.broadcast_to(c.reshape(-1), (channels,))


def _per_channel(module, op: str, shape: tuple):
    """The (C,) values of an Elementwise ``op`` whose constant is one value per channel of ``shape``, else None."""
    if not isinstance(module, nn.Elementwise) or module.op != op or module.constant.size != shape[1]:
        return None
    c = module.constant
    per_channel = c.reshape((1, shape[1]) + (1,) * (len(shape) - 2))
    try:
        if not np.array_equal(np.broadcast_to(c, shape), np.broadcast_to(per_channel, shape)):
            return None
        if np.broadcast_shapes(c.shape, shape) != tuple(shape):
            return None
    except ValueError:
        return None
    return c.reshape(-1)


class _Rewriter:
    def __init__(self, nodes: List[Node], output: str, input_shape: tuple):
        self.nodes, self.output, self.input_shape = list(nodes), output, tuple(input_shape)

    def consumers(self, name: str) -> List[Node]:
        return [n for n in self.nodes if name in n.inputs]

    def single_consumer(self, name: str):
        users = self.consumers(name)
        return users[0] if len(users) == 1 and name != self.output else None

    def rename(self, old: str, new: str) -> None:
        for n in self.nodes:
            n.inputs = tuple(new if i == old else i for i in n.inputs)
        if self.output == old:
            self.output = new

    def remove(self, node: Node) -> None:
        """Drop a one-input node; its readers read its input."""
        self.nodes.remove(node)
        self.rename(node.name, node.inputs[0])

    def shape_before(self, node: Node) -> tuple:
        """The (N, C, H, W) shape a Permute(0, 2, 3, 1) node reads (batch 1)."""
        from ._nn import Graph
        g = Graph(self.nodes, output=node.name)
        return g.shapes((1, *self.input_shape))[node.inputs[0]]

    def step(self) -> bool:
        for node in self.nodes:
            if _is_permute(node.module, TO_NCHW) and node.inputs == ("input",) and len(self.input_shape) == 3:
                h, w, c = self.input_shape
                self.input_shape = (c, h, w)
                self.remove(node)
                return True
            if isinstance(node.module, nn.Elementwise) and node.module.op == "add" and not node.module.reverse:
                producer = next((n for n in self.nodes if n.name == node.inputs[0]), None)
                if (producer is not None and isinstance(producer.module, nn.Conv2d) and producer.module.bias is None
                        and self.single_consumer(producer.name) is node):
                    c = node.module.constant
                    out = producer.module.out_channels
                    if c.size in (1, out) and c.shape in ((), (1,), (out,), (out, 1, 1), (1, out, 1, 1)):
                        producer.module.bias = nn.Parameter(
                            np.broadcast_to(c.reshape(-1), (out,)).astype(producer.module.weight.dtype))
                        self.remove(node)
                        return True
            if (isinstance(node.module, nn.Pad) and node.module.mode == "constant" and node.module.value == 0.0
                    and len(node.module.padding) == 4):
                conv = self.single_consumer(node.name)
                if (conv is not None and isinstance(conv.module, nn.Conv2d) and conv.module.padding == (0, 0)
                        and conv.module.padding_mode == "zeros"):
                    left, right, top, bottom = node.module.padding
                    conv.module.padding = ((top, bottom), (left, right))
                    self.remove(node)
                    return True
            if isinstance(node.module, nn.Erf) and self._fuse_gelu(node):
                return True
            if type(node.module) is nn.InstanceNorm1d and self._fuse_group_norm(node):
                return True
            if not _is_permute(node.module, TO_NHWC):
                continue
            nxt = self.single_consumer(node.name)
            if nxt is None:
                continue
            if _is_permute(nxt.module, TO_NCHW):
                self.nodes.remove(nxt)
                self.rename(nxt.name, node.inputs[0])
                self.remove(node)
                return True
            if isinstance(nxt.module, _ELEMENTWISE) or _scalar_merge(nxt.module) or (
                    _channel_constant(nxt.module, self.shape_before(node)[1]) is not None):
                if isinstance(nxt.module, nn.Elementwise):
                    channels = self.shape_before(node)[1]
                    values = _channel_constant(nxt.module, channels).astype(nxt.module.constant.dtype)
                    shape = (1, channels, 1, 1) if values.size > 1 else ()
                    layer = nn.Elementwise(nxt.module.op, shape, nxt.module.reverse, nxt.module.constant.dtype)
                    layer.constant[...] = values.reshape(shape) if shape else values[0]
                    nxt.module = layer
                self._swap(node, nxt)
                return True
            if isinstance(nxt.module, nn.Flatten) and nxt.module.start_dim == 1 and nxt.module.end_dim == -1:
                dense = self.single_consumer(nxt.name)
                if dense is not None and isinstance(dense.module, nn.Linear):
                    _, c, h, w = self.shape_before(node)
                    weight = dense.module.weight._data
                    dense.module.weight._data = np.ascontiguousarray(
                        weight.reshape(-1, h, w, c).transpose(0, 3, 1, 2).reshape(weight.shape))
                    self.remove(node)
                    return True
        return False

    def producer(self, name: str):
        return next((n for n in self.nodes if n.name == name), None)

    def _fuse_gelu(self, erf: Node) -> bool:
        """``x * 0.5 * (1 + erf(x / sqrt 2))`` (PyTorch's exporters before opset 20) -> one GELU."""
        def const(node, cls, value):
            return (node is not None and type(node.module) is cls and node.module.constant is not None
                    and not node.module.reverse and abs(node.module.constant - value) < 1e-4 * abs(value))

        scale = self.producer(erf.inputs[0])
        if not (const(scale, Div, 2 ** 0.5) or const(scale, Mul, 2 ** -0.5)) or self.single_consumer(scale.name) is not erf:
            return False
        x = scale.inputs[0]
        plus = self.single_consumer(erf.name)
        if not const(plus, Add, 1.0):
            return False
        prod = self.single_consumer(plus.name)
        if (prod is not None and type(prod.module) is Mul and prod.module.constant is not None
                and abs(prod.module.constant - 0.5) < 5e-5):  # x * (0.5 * (1 + erf)): the dynamo exporter
            last = self.single_consumer(prod.name)
            if last is None or type(last.module) is not Mul or last.module.constant is not None \
                    or sorted(last.inputs) != sorted((x, prod.name)):
                return False
            self.nodes[self.nodes.index(last)] = Node(last.name, nn.GELU(), (x,))
            for node in (scale, erf, plus, prod):
                self.nodes.remove(node)
            return True
        if prod is None or type(prod.module) is not Mul or prod.module.constant is not None:
            return False
        other = prod.inputs[0] if prod.inputs[1] == plus.name else prod.inputs[1]
        half = self.producer(other)
        if other == x:
            last = self.single_consumer(prod.name)
            if not const(last, Mul, 0.5):
                return False
            chain = [scale, erf, plus, prod, last]
        elif const(half, Mul, 0.5) and half.inputs == (x,) and self.single_consumer(half.name) is prod:
            last, chain = prod, [scale, erf, plus, half, prod]
        else:
            return False
        self.nodes[self.nodes.index(last)] = Node(last.name, nn.GELU(), (x,))
        for node in chain[:-1] if last is chain[-1] else chain:
            self.nodes.remove(node)
        return True

    def _fuse_group_norm(self, norm: Node) -> bool:
        """``Reshape (N, G, -1)``, plain ``InstanceNorm1d``, ``Reshape`` back, ``* w + b`` per channel -> GroupNorm
        (how PyTorch's exporters write ``nn.GroupNorm``)."""
        from ._nn import Graph, Reshape
        m = norm.module
        if not m.affine or np.any(m.weight._data != 1) or np.any(m.bias._data != 0):
            return False
        grouped, back = self.producer(norm.inputs[0]), self.single_consumer(norm.name)
        if (grouped is None or back is None or not isinstance(grouped.module, Reshape)
                or not isinstance(back.module, Reshape) or self.single_consumer(grouped.name) is not norm):
            return False
        x = grouped.inputs[0]
        shapes = Graph(self.nodes, output=back.name).shapes((1, *self.input_shape))
        shape = shapes[x]
        if shapes[back.name] != shape or len(shape) < 3 or shape[1] % m.num_features:
            return False
        c = shape[1]
        layer = nn.GroupNorm(m.num_features, c, eps=m.eps)
        chain, last = [grouped, norm, back], back
        for op, param in (("mul", layer.weight), ("add", layer.bias)):
            nxt = self.single_consumer(last.name)
            values = None if nxt is None else _per_channel(nxt.module, op, shape)
            if values is None:
                continue
            param._data[...] = values
            chain.append(nxt)
            last = nxt
        # the first node's name is the module's path ("gn"): the state_dict keys become PyTorch's
        self.nodes[self.nodes.index(last)] = Node(grouped.name, layer, (x,))
        for node in chain[:-1]:
            self.nodes.remove(node)
        self.rename(last.name, grouped.name)
        return True

    def _swap(self, first: Node, second: Node) -> None:
        """``second(first(x))`` -> the same with the two modules' order exchanged (names follow modules)."""
        i, j = self.nodes.index(first), self.nodes.index(second)
        source = first.inputs[0]
        moved = Node(second.name, second.module, (source,) + second.inputs[1:])
        permute = Node(first.name, first.module, (second.name,))
        self.rename(second.name, "\0tmp")
        self.nodes[i], self.nodes[j] = moved, permute
        self.rename("\0tmp", first.name)
        permute.inputs = (second.name,)


def fold_layout(nodes: List[Node], output: str, input_shape: tuple) -> Tuple[List[Node], str, tuple]:
    """Apply the rewrites above until none applies; returns (nodes, output, input_shape (C, H, W))."""
    r = _Rewriter(nodes, output, input_shape)
    for _ in range(10 * len(r.nodes) + 10):
        if not r.step():
            break
    return r.nodes, r.output, r.input_shape
