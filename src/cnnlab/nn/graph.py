"""Graph models: layers joined as a directed acyclic graph of named values.

A :class:`Sequential` is a chain: each layer reads the one before it.  A
:class:`Graph` lets a layer read any earlier value, and several layers read one
value, which is what residual networks (``Add``), Inception-style branches
(``Concat``) and gates (``Mul``) need.  It is the one representation of a model
that the rest of cnnlab shares: model files, saved runs, the summary, the
explain tools, the report and ONNX all read ``Graph.nodes``.

Every value has a name.  The model's input is ``"input"``; each node's output
is the node's name, which is also where its layer's parameters live in the
state dict (``"stem.conv.weight"``), so a traced user module keeps the keys of
its own ``state_dict``::

    g = nn.Graph([
        ("conv1", nn.Conv2d(1, 8, 3, padding=1), ["input"]),
        ("relu1", nn.ReLU(), ["conv1"]),
        ("conv2", nn.Conv2d(8, 8, 3, padding=1), ["relu1"]),
        ("add", nn.Add(), ["conv2", "conv1"]),           # a residual connection
    ])

:func:`cnnlab.nn.as_graph` (in :mod:`cnnlab.nn.trace`) turns any model into a Graph: a Sequential into the chain of
its layers (names ``"0"``, ``"1"``, nested ``"3.1"``, the same state-dict
keys), a user's own Module by tracing its ``forward`` once (see
:mod:`cnnlab.nn.trace`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

from ..tensor import Tensor, is_grad_enabled
from .module import Module, Sequential

__all__ = ["Node", "Graph", "INPUT"]

INPUT = "input"


@dataclass
class Node:
    """One step of a graph: ``module`` applied to the values named in ``inputs``.

    Attributes:
        name: the name of the value it computes (unique in its graph); its layer's
            parameters appear in the state dict as ``f"{name}.weight"`` etc.
        module: the layer it runs.
        inputs: names of earlier nodes, or ``"input"`` for the model's input.
    """

    name: str
    module: Module
    inputs: Tuple[str, ...]

    def __post_init__(self):
        if isinstance(self.inputs, str):
            self.inputs = (self.inputs,)
        self.inputs = tuple(str(i) for i in self.inputs)

    @property
    def type(self) -> str:
        return type(self.module).__name__


NodeLike = Union[Node, Tuple[str, Module, Sequence[str]]]


class Graph(Module):
    """A model whose layers form a directed acyclic graph of named values.

    Args:
        nodes: :class:`Node` objects, or ``(name, module, inputs)`` tuples, in an
            order where every node comes after the nodes it reads.
        output: the name of the value the model returns (default: the last node).
        input_name: the name of the model's input (default ``"input"``).

    One module may appear in several nodes (a shared layer): its parameters are
    registered once, under the first node's name.

    Shape:
        whatever its nodes take and give; :meth:`shapes` lists every node's
        output shape without running.
    """

    def __init__(self, nodes: Iterable[NodeLike], output: Optional[str] = None, input_name: str = INPUT):
        super().__init__()
        built: List[Node] = []
        for item in nodes:
            node = item if isinstance(item, Node) else Node(*item)
            if not isinstance(node.module, Module):
                raise TypeError(f"graph node {node.name!r}: expected a cnnlab.nn Module, "
                                f"got {type(node.module).__name__}")
            built.append(node)
        if not built:
            raise ValueError("a Graph needs at least one node")
        known = {input_name}
        for node in built:
            if not node.name or not isinstance(node.name, str):
                raise ValueError(f"graph node names must be non-empty strings, got {node.name!r}")
            if node.name in known:
                what = "the model's input" if node.name == input_name else "another node"
                raise ValueError(f"graph node name {node.name!r} is used twice (also {what})")
            if not node.inputs:
                raise ValueError(f"graph node {node.name!r} reads no value; give it inputs such as "
                                 f"[{input_name!r}]")
            for name in node.inputs:
                if name not in known:
                    later = any(n.name == name for n in built)
                    reason = ("comes later: list nodes after the values they read (a cycle cannot run)"
                              if later else "is not the name of any node or of the input")
                    raise ValueError(f"graph node {node.name!r} reads {name!r}, which {reason}")
            known.add(node.name)
        output = built[-1].name if output is None else str(output)
        if output not in known or output == input_name:
            raise ValueError(f"graph output {output!r} is not the name of a node")
        object.__setattr__(self, "nodes", built)
        object.__setattr__(self, "output", output)
        object.__setattr__(self, "input_name", input_name)
        registered = set()
        for node in built:
            if id(node.module) not in registered:
                registered.add(id(node.module))
                self._modules[node.name] = node.module
        self._build_plan()

    def _build_plan(self) -> None:
        """What forward runs: one flat tuple per node (rebuilt when a node's module is replaced)."""
        built, output = self.nodes, self.output
        # when each value is read for the last time, so forward can drop it early
        last_use: Dict[str, int] = {}
        for index, node in enumerate(built):
            for name in node.inputs:
                last_use[name] = index
        last_use[output] = len(built)
        frees = [tuple(n for n, i in last_use.items() if i == index) for index in range(len(built))]
        # one input passed without building a list; activations that may write into their producer's output
        readers: Dict[str, int] = {}
        for node in built:
            for name in node.inputs:
                readers[name] = readers.get(name, 0) + 1
        producer = {node.name: node.module for node in built}
        object.__setattr__(self, "_plan", tuple(
            (node.name, node.module, node.inputs[0] if len(node.inputs) == 1 else None, node.inputs, free,
             _fusable(node, producer, readers, output))
            for node, free in zip(built, frees)))

    # --- editing like a PyTorch module: model.fc, model.fc = nn.Linear(...) -----------------------
    def __getattr__(self, name: str):
        """``model.fc``: the module of node ``fc``; ``model.layer1`` a path to ``layer1.conv1``, ... ."""
        nodes = self.__dict__.get("nodes")
        if nodes is not None and not name.startswith("__"):
            for node in nodes:
                if node.name == name:
                    return node.module
            if any(node.name.startswith(name + ".") for node in nodes):
                return _NodePath(self, name)
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __setattr__(self, name: str, value) -> None:
        nodes = self.__dict__.get("nodes")
        if nodes is not None and any(node.name == name for node in nodes):
            self.replace_node(name, value)
            return
        if nodes is not None and isinstance(value, Module):
            raise AttributeError(f"cannot add module {name!r} to a Graph: a Graph runs only its nodes "
                                 f"({_node_list(nodes)}); assign to a node's name to replace its layer, "
                                 "or build a new Graph")
        super().__setattr__(name, value)

    def __delattr__(self, name: str) -> None:
        nodes = self.__dict__.get("nodes")
        if nodes is not None and any(node.name == name for node in nodes):
            raise AttributeError(f"cannot delete graph node {name!r}: other nodes or the output may read it; "
                                 "replace it with nn.Identity() or build a new Graph")
        super().__delattr__(name)

    def replace_node(self, name: str, module: Module) -> None:
        """Run ``module`` for node ``name`` (what ``model.fc = nn.Linear(...)`` does).

        The new layer is used by ``forward``, appears in ``parameters()``/``state_dict()`` under the
        node's name, and is what saving, export and every tool see.  A layer shared by several
        nodes (one attribute called twice in a traced ``forward``) is replaced in all of them.

        Raises:
            KeyError: no node is called ``name``.
            TypeError: ``module`` is not a cnnlab.nn Module.
        """
        old = self.node(name).module
        if not isinstance(module, Module):
            raise TypeError(f"graph node {name!r} runs a layer: expected a cnnlab.nn Module, got "
                            f"{type(module).__name__}")
        for node in self.nodes:
            if node.module is old:
                node.module = module
        for key in list(self._modules):
            if self._modules[key] is old:
                self._modules[key] = module
        self._build_plan()

    def get_submodule(self, target: str) -> Module:
        """The module at ``target``: a node's name (``"layer1.conv1"``), or a path inside a node's layer."""
        if target == "":
            return self
        for node in sorted(self.nodes, key=lambda n: -len(n.name)):
            if target == node.name:
                return node.module
            if target.startswith(node.name + "."):
                return node.module.get_submodule(target[len(node.name) + 1:])
        return super().get_submodule(target)

    def set_submodule(self, target: str, module: Module) -> None:
        """Replace the module at ``target`` (a node's name, or a path inside a node's layer)."""
        if any(node.name == target for node in self.nodes):
            self.replace_node(target, module)
            return
        parent, _, last = target.rpartition(".")
        if not parent:
            raise AttributeError(f"the graph has no node {target!r}; its nodes are: {_node_list(self.nodes)}")
        setattr(self.get_submodule(parent), last, module)

    # --- running ----------------------------------------------------------------------
    def forward(self, x):
        values = {self.input_name: x}
        in_place = not is_grad_enabled()   # inference: activations may overwrite fresh outputs
        for name, module, single, inputs, frees, fuse in self._plan:
            if single is not None:
                if fuse is not None and in_place and _run_in_place(module, fuse, values[single]):
                    values[name] = values[single]
                else:
                    values[name] = module(values[single])
            else:
                values[name] = module(*[values[i] for i in inputs])
            for free in frees:
                del values[free]
        return values[self.output]

    def run_all(self, x, upto: Optional[str] = None, given: Optional[Dict[str, object]] = None
                ) -> Dict[str, object]:
        """Every node's value (input included) for input ``x``, in the nodes' order.

        Args:
            upto: stop after the node of this name.
            given: values to use instead of computing them (by node name): Grad-CAM
                feeds a feature map back in as a leaf to differentiate against.
        """
        values = {self.input_name: x}
        for node in self.nodes:
            if given is not None and node.name in given:
                values[node.name] = given[node.name]
            else:
                values[node.name] = node.module(*[values[name] for name in node.inputs])
            if node.name == upto:
                break
        return values

    # --- shapes ----------------------------------------------------------------------------
    def shapes(self, input_shape: Sequence[int]) -> Dict[str, tuple]:
        """Every value's shape for an input of ``input_shape`` (batch included), without running.

        Raises:
            ValueError: a node cannot take the shapes reaching it (the message names the
                node, its layer and the shapes, e.g. both shapes meeting at an ``Add``).
        """
        shapes = {self.input_name: tuple(int(s) for s in input_shape)}
        for node in self.nodes:
            given = [shapes[name] for name in node.inputs]
            try:
                shapes[node.name] = tuple(node.module.output_shape(*given))
            except (ValueError, TypeError, IndexError) as exc:
                sources = ", ".join(f"{name} {shape}" for name, shape in zip(node.inputs, given))
                raise ValueError(f"graph node {node.name!r} ({node.type}) cannot take its input "
                                 f"({sources}): {exc}") from None
        return shapes

    def output_shape(self, input_shape: Sequence[int]) -> tuple:
        return self.shapes(input_shape)[self.output]

    # --- looking inside -------------------------------------------------------------------
    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(f"the graph has no node {name!r}; its nodes are: "
                       f"{', '.join(n.name for n in self.nodes)}")

    def consumers(self, name: str) -> List[str]:
        """Names of the nodes that read the value ``name``."""
        return [node.name for node in self.nodes if name in node.inputs]

    def __len__(self) -> int:
        return len(self.nodes)

    def __iter__(self):
        return iter(node.module for node in self.nodes)

    def __repr__(self) -> str:
        lines = []
        for node in self.nodes:
            layer = repr(node.module).replace("\n", "\n    ")
            lines.append(f"  {node.name} = {layer}({', '.join(node.inputs)})")
        return "Graph(\n" + "\n".join(lines) + f"\n  return {self.output}\n)"

    def code(self) -> str:
        """The graph as Python-like code, one line per node (what the summary prints)."""
        lines = [f"def forward({self.input_name}):"]
        for node in self.nodes:
            lines.append(f"    {_ident(node.name)} = {node.type}({', '.join(map(_ident, node.inputs))})")
        lines.append(f"    return {_ident(self.output)}")
        return "\n".join(lines)


def _node_list(nodes) -> str:
    names = [n.name for n in nodes]
    return ", ".join(names[:12]) + (f", ... ({len(names)} in all)" if len(names) > 12 else "")


class _NodePath:
    """``model.layer1`` of a graph whose nodes are ``layer1.conv1``, ...: attribute and index access
    (``model.layer1.conv1``, ``model.layer2[0]``) reach the nodes below, assignment replaces them."""

    def __init__(self, graph: "Graph", prefix: str):
        object.__setattr__(self, "_graph", graph)
        object.__setattr__(self, "_prefix", prefix)

    def _full(self, name) -> str:
        return f"{self._prefix}.{name}"

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        full = self._full(name)
        try:
            return self._graph.__getattr__(full)
        except AttributeError:
            raise AttributeError(f"the graph has no node {full!r} (nor nodes under it); its nodes are: "
                                 f"{_node_list(self._graph.nodes)}") from None

    def __getitem__(self, index):
        return self.__getattr__(str(index))

    def __setattr__(self, name: str, value) -> None:
        self._graph.set_submodule(self._full(name), value)

    def __setitem__(self, index, value) -> None:
        self.__setattr__(str(index), value)

    def __repr__(self) -> str:
        inside = [n.name for n in self._graph.nodes if n.name.startswith(self._prefix + ".")]
        return f"<graph nodes {self._prefix}.*: {', '.join(inside)}>"


def _ident(name: str) -> str:
    return name.replace(".", "_")


def _chain_nodes(model: Sequential, prefix: str, source: str, out: List[Node]) -> str:
    for name, layer in model._modules.items():
        full = f"{prefix}{name}"
        if type(layer) is Sequential:
            source = _chain_nodes(layer, full + ".", source, out)
        else:
            out.append(Node(full, layer, (source,)))
            source = full
    return source


def _in_place_activation(module):
    """``fn(array)`` that applies the activation layer ``module`` to ``array`` in place, or None."""
    import numpy as np

    from . import extra_layers, layers
    kind = type(module)
    if kind is layers.ReLU:
        return lambda a: np.maximum(a, 0, out=a)
    if kind in (layers.Hardtanh, layers.ReLU6):
        lo, hi = module.min_val, module.max_val

        def clip(a):
            np.maximum(a, lo, out=a)
            np.minimum(a, hi, out=a)
        return clip
    if kind is extra_layers.Hardswish:
        def hardswish(a):
            gate = np.divide(a, 6, dtype=a.dtype)
            gate += a.dtype.type(0.5)
            np.maximum(gate, 0, out=gate)
            np.minimum(gate, 1, out=gate)
            a *= gate
        return hardswish
    return None


def _fusable(node, producer: Dict[str, Module], readers: Dict[str, int], output: str):
    """``(producer module, in-place fn)`` when ``node`` is an activation that may overwrite its input
    at inference: the input is a convolution's, dense layer's, batch norm's or sum's fresh output
    that nothing else reads (and not the model's output)."""
    from . import layers, merge
    if len(node.inputs) != 1:
        return None
    source = node.inputs[0]
    fn = _in_place_activation(node.module)
    made_by = producer.get(source)
    fresh = (layers.Conv2d, layers.Linear, layers.BatchNorm2d, merge.Add)
    if fn is None or made_by is None or readers.get(source) != 1 or source == output or \
            type(made_by) not in fresh:
        return None
    return made_by, fn


def _run_in_place(module: Module, fuse, value) -> bool:
    """Apply a fused activation to ``value`` in place (no graph is recorded); False when hooks or
    tracing need the layers to run as they are, or the value is not a writeable float tensor."""
    from . import module as module_mod
    made_by, fn = fuse
    if module_mod._tracer is not None or module._forward_pre_hooks or module._forward_hooks or \
            made_by._forward_hooks:
        return False
    data = getattr(value, "_data", None)
    if not isinstance(value, Tensor) or data.dtype.kind != "f" or not data.flags.writeable:
        return False
    fn(data)
    return True
