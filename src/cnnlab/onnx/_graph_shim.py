"""Stand-in for ``cnnlab.nn.Graph`` / ``Node`` / ``as_graph`` and the merge layers.

Follows the graph-model contract of ``cnnlab.nn.graph`` (same names and
signatures) until that module is merged; imported only through
``cnnlab.onnx._nn``.  Delete this file once ``cnnlab.nn.Graph`` exists.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple

import numpy as np

from .. import nn
from ..tensor import Tensor, as_tensor, concatenate


@dataclass
class Node:
    name: str
    module: nn.Module
    inputs: Tuple[str, ...]


class Graph(nn.Module):
    """Layers wired by value names; ``"input"`` is the model's input."""

    def __init__(self, nodes, output=None, input_name: str = "input"):
        super().__init__()
        built = []
        for node in nodes:
            if not isinstance(node, Node):
                name, module, inputs = node
                node = Node(str(name), module, tuple(inputs))
            built.append(node)
        known = {input_name}
        for node in built:
            for i in node.inputs:
                if i not in known:
                    raise ValueError(f"graph node {node.name!r} reads {i!r}, which no earlier node produces")
            if node.name in known:
                raise ValueError(f"graph node name {node.name!r} is used twice")
            known.add(node.name)
            setattr(self, node.name, node.module)
        object.__setattr__(self, "nodes", built)
        object.__setattr__(self, "input_name", input_name)
        object.__setattr__(self, "output", output if output is not None else built[-1].name)

    def run_all(self, x) -> Dict[str, Tensor]:
        values = {self.input_name: as_tensor(x)}
        for node in self.nodes:
            values[node.name] = node.module(*[values[i] for i in node.inputs])
        return values

    def forward(self, x):
        return self.run_all(x)[self.output]

    def shapes(self, input_shape) -> Dict[str, tuple]:
        shapes = {self.input_name: tuple(input_shape)}
        for node in self.nodes:
            shapes[node.name] = tuple(node.module.output_shape(*[shapes[i] for i in node.inputs]))
        return shapes

    def output_shape(self, input_shape):
        return self.shapes(input_shape)[self.output]


def as_graph(model, input_shape=None) -> Graph:
    if isinstance(model, Graph):
        return model
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"as_graph: cannot trace {type(model).__name__} yet (a Sequential or Graph is needed)")
    nodes, previous = [], "input"

    def walk(seq, prefix):
        nonlocal previous
        for name, layer in seq._modules.items():
            full = f"{prefix}{name}"
            if isinstance(layer, nn.Sequential):
                walk(layer, full + ".")
            else:
                nodes.append(Node(full, layer, (previous,)))
                previous = full

    walk(model, "")
    return Graph(nodes)


class _Binary(nn.Module):
    def output_shape(self, a, b=None):
        return tuple(np.broadcast_shapes(tuple(a), tuple(b if b is not None else a)))


class Add(_Binary):
    def forward(self, a, b):
        return as_tensor(a) + b


class Sub(_Binary):
    def forward(self, a, b):
        return as_tensor(a) - b


class Mul(_Binary):
    def forward(self, a, b):
        return as_tensor(a) * b


class Div(_Binary):
    def forward(self, a, b):
        return as_tensor(a) / b


class Concat(nn.Module):
    def __init__(self, dim: int = 1):
        super().__init__()
        self.dim = dim

    def forward(self, *xs):
        return concatenate(xs, axis=self.dim)

    def output_shape(self, *shapes):
        out = list(shapes[0])
        out[self.dim] = sum(s[self.dim] for s in shapes)
        return tuple(out)


class Reshape(nn.Module):
    def __init__(self, shape):
        super().__init__()
        self.shape = tuple(int(s) for s in shape)

    def forward(self, x):
        x = as_tensor(x)
        return x.reshape((x.shape[0],) + self.shape)

    def output_shape(self, input_shape):
        n = input_shape[0]
        total = int(np.prod(input_shape[1:]))
        shape = list(self.shape)
        if -1 in shape:
            known = int(np.prod([s for s in shape if s != -1]))
            shape[shape.index(-1)] = total // known
        return (n, *shape)
