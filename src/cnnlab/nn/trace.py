"""Capturing a user's ``forward`` as a :class:`~cnnlab.nn.Graph`, by running it once.

``trace(model, input_shape)`` runs ``model.forward`` on an example batch and
writes down what it does, the way ``torch.fx`` does:

* a call of a cnnlab layer (``self.conv1(x)``) becomes a node that runs that very
  layer, named by its path in the model (``"block1.conv1"``), so the graph's
  state dict has the model's own keys;
* ``cnnlab.functional`` ops that a layer also does (``F.relu(x)``,
  ``F.max_pool2d(x, 2)``, ``F.dropout(x, 0.5, self.training)``) become that
  layer (``ReLU``, ``MaxPool2d(2)``, ``Dropout(0.5)``);
* tensor arithmetic (``x + y``, ``x * 0.5``, ``-x``), ``cnnlab.cat``, reshapes
  (``x.view(x.size(0), -1)``, ``x.flatten(1)``, ``unsqueeze``/``squeeze``),
  ``x.mean(dim)`` and the activation methods (``x.relu()``) become ``Add``,
  ``Mul``, ``Concat``, ``Reshape``/``Flatten``, ``Mean``, ``ReLU`` ... nodes;
* containers (``Sequential``, ``ModuleList``) and the user's own submodules are
  entered, not recorded: only what they compute is.

What cannot be captured is refused, naming the op and the line of the user's
code: an op with no layer counterpart (``x @ w``, ``x[:, 0]``), ``F.conv2d``
with the model's own weight tensors, and Python decisions on tensor values
(``if x.sum() > 0``, ``x.item()``), whose branch would be frozen.  Finally the
captured graph is run on a second batch of a different size and compared with
the model's own output, which catches what slipped through (a batch size
written into the code, say).
"""
from __future__ import annotations

import functools
import inspect
import os
import sys
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .. import functional as F
from ..random import get_rng
from ..tensor import Tensor, no_grad
from . import module as _module_mod
from .graph import INPUT, Graph, Node, _chain_nodes
from .module import Module, Sequential

__all__ = ["trace", "TraceError", "is_layer", "layer_types"]

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_CONTAINERS = {"Module", "Sequential", "Graph", "ModuleList", "ModuleDict"}


class TraceError(ValueError):
    """A ``forward`` that cannot be written down as a graph model."""


@functools.lru_cache(maxsize=1)
def layer_types() -> Dict[str, type]:
    """Every layer class ``cnnlab.nn`` exports (containers and losses excluded), by name."""
    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    return {cls.__name__: cls for cls in subclasses(Module)
            if cls.__module__.startswith("cnnlab.nn.") and cls.__name__ not in _CONTAINERS
            and not cls.__name__.startswith("_") and "Loss" not in cls.__name__}


def is_layer(module: Module) -> bool:
    """Whether ``module`` is one of cnnlab's own layers (recorded as a node when traced)."""
    return type(module).__name__ in layer_types() and type(module) is layer_types()[type(module).__name__]


# functional op -> the layer doing the same, and the op arguments that layer takes
_FUNCTIONAL_LAYERS = {
    "relu": "ReLU", "leaky_relu": "LeakyReLU", "sigmoid": "Sigmoid", "tanh": "Tanh", "softmax": "Softmax",
    "log_softmax": "LogSoftmax", "gelu": "GELU", "glu": "GLU", "identity": "Identity",
    "max_pool2d": "MaxPool2d", "min_pool2d": "MinPool2d", "avg_pool2d": "AvgPool2d",
    "adaptive_avg_pool2d": "AdaptiveAvgPool2d", "adaptive_max_pool2d": "AdaptiveMaxPool2d",
    "global_avg_pool2d": "GlobalAvgPool2d", "global_max_pool2d": "GlobalMaxPool2d",
    "flatten": "Flatten", "dropout": "Dropout", "relu6": "ReLU6", "hardtanh": "Hardtanh",
}
# functional ops that need weight tensors: the layer to use instead
_WEIGHTED = {"conv2d": "nn.Conv2d", "linear": "nn.Linear", "batch_norm": "nn.BatchNorm2d",
             "conv_transpose2d": "nn.ConvTranspose2d"}
# Tensor methods recorded with their arguments
_METHOD_LAYERS = {"relu": "ReLU", "sigmoid": "Sigmoid", "tanh": "Tanh", "softmax": "Softmax",
                  "log_softmax": "LogSoftmax"}
_RESHAPES = ("reshape", "view", "flatten", "squeeze", "unsqueeze")
_VALUE_READS = ("item", "tolist", "numpy", "__bool__", "__float__", "__int__", "__index__",
                "__lt__", "__le__", "__gt__", "__ge__", "__eq__", "__ne__", "argmax", "argmin")
_ELEMENTWISE = {"add": "Add", "sub": "Sub", "mul": "Mul", "div": "Div"}


def _user_line() -> str:
    """``file:line (code)`` of the innermost frame outside cnnlab (the user's code)."""
    frame = sys._getframe(1)
    while frame is not None:
        path = os.path.abspath(frame.f_code.co_filename)
        if not path.startswith(_PACKAGE_DIR + os.sep):
            info = inspect.getframeinfo(frame, context=1)
            code = (info.code_context or [""])[0].strip()
            return f"{info.filename}:{info.lineno}" + (f" ({code})" if code else "")
        frame = frame.f_back
    return "inside cnnlab"


class _Tracer:
    def __init__(self, root: Module, batch: int):
        self.batch = batch
        self.values: Dict[int, Tuple[str, Tensor]] = {}   # id(tensor) -> (name, tensor kept alive)
        self.nodes: List[Node] = []
        self.names = {INPUT}
        self.depth = 0
        self.scope: List[str] = []   # path of the user module whose forward is running
        self.module_names = {}
        for name, m in root.named_modules():
            self.module_names.setdefault(id(m), name)

    # --- bookkeeping ----------------------------------------------------------------
    def name_of(self, value) -> Optional[str]:
        if isinstance(value, Tensor):
            entry = self.values.get(id(value))
            if entry is not None and entry[1] is value:
                return entry[0]
        return None

    def fresh(self, base: str) -> str:
        name, k = base, 1
        while name in self.names:
            name, k = f"{base}_{k}", k + 1
        self.names.add(name)
        return name

    def add(self, name: str, module: Module, inputs: Sequence[str], out) -> None:
        if not isinstance(out, Tensor):
            raise TraceError(f"{type(module).__name__} {name!r} returned {type(out).__name__}, not a Tensor: "
                             f"only layers giving one tensor can be captured ({_user_line()})")
        self.nodes.append(Node(name, module, tuple(inputs)))
        self.values[id(out)] = (name, out)

    def input_names(self, args, what: str) -> List[str]:
        names = []
        for arg in args:
            name = self.name_of(arg)
            if name is None:
                kind = "a tensor not computed from the model's input" if isinstance(arg, Tensor) else \
                    f"a {type(arg).__name__}"
                raise TraceError(f"cannot capture {what} applied to {kind} at {_user_line()}: graph nodes "
                                 "read only values computed from the input")
            names.append(name)
        return names

    def run_inside(self, fn, *args, **kwargs):
        self.depth += 1
        try:
            return fn(*args, **kwargs)
        finally:
            self.depth -= 1

    # --- module calls --------------------------------------------------------------------
    def scoped(self, base: str) -> str:
        return f"{self.scope[-1]}.{base}" if self.scope and self.scope[-1] else base

    def call_module(self, module: Module, args, kwargs):
        if self.depth:
            return module.forward(*args, **kwargs)
        if not is_layer(module):
            self.scope.append(self.module_names.get(id(module), ""))
            try:
                return module.forward(*args, **kwargs)
            finally:
                self.scope.pop()
        base = self.module_names.get(id(module)) or self.scoped(type(module).__name__.lower())
        if kwargs:
            raise TraceError(f"layer {base!r} called with keyword arguments {sorted(kwargs)} at "
                             f"{_user_line()}: graph nodes take their inputs by position only")
        inputs = self.input_names(args, f"layer {base!r} ({type(module).__name__})")
        out = self.run_inside(module.forward, *args)
        self.add(self.fresh(base), module, inputs, out)
        return out

    # --- functional ops ---------------------------------------------------------------------
    def call_functional(self, name: str, fn, args, kwargs):
        if self.depth:
            return fn(*args, **kwargs)
        traced = [a for a in list(args) + list(kwargs.values()) if self.name_of(a) is not None]
        if not traced:
            return fn(*args, **kwargs)
        if name in _WEIGHTED:
            raise TraceError(f"F.{name} with weight tensors at {_user_line()} cannot be saved as a graph "
                             f"model: use a {_WEIGHTED[name]} layer instead (it holds its weights)")
        layer_name = _FUNCTIONAL_LAYERS.get(name)
        types = layer_types()
        if layer_name is None or layer_name not in types:
            raise TraceError(f"cannot capture F.{name} at {_user_line()}: it has no layer counterpart; "
                             f"captured functional ops: {', '.join(sorted(_FUNCTIONAL_LAYERS))}")
        bound = inspect.signature(fn).bind(*args, **kwargs)
        params = list(bound.signature.parameters)
        bound.apply_defaults()
        values = dict(bound.arguments)
        x = values.pop(params[0])
        if any(self.name_of(v) is not None for v in values.values()):
            raise TraceError(f"F.{name} at {_user_line()} takes a computed tensor as an argument: "
                             "only the first argument may be a value of the graph")
        out = self.run_inside(fn, *args, **kwargs)
        cls = types[layer_name]
        if name == "dropout" and not values.pop("training", True):
            cls, values = types["Identity"], {}
        if values.get("return_indices"):
            raise TraceError(f"F.{name}(..., return_indices=True) at {_user_line()} cannot be captured")
        accepted = inspect.signature(cls.__init__).parameters
        layer_args = {k: v for k, v in values.items() if k in accepted and k not in ("rng", "samples")}
        layer = cls(**layer_args)
        base = self.fresh(self.scoped(layer_name.lower()))
        self.add(base, layer, self.input_names([x], f"F.{name}"), out)
        return out

    # --- tensor methods ---------------------------------------------------------------------
    def call_method(self, name: str, fn, tensor, args, kwargs):
        if self.depth or self.name_of(tensor) is None:
            return fn(tensor, *args, **kwargs)
        types = layer_types()
        if name in _VALUE_READS:
            raise TraceError(f"forward reads a tensor's values (Tensor.{name}) at {_user_line()}: Python "
                             "decisions on data cannot be captured in a graph model")
        out = self.run_inside(fn, tensor, *args, **kwargs)
        inputs = self.input_names([tensor], f"Tensor.{name}")
        if name in _RESHAPES:
            if not isinstance(out, Tensor) or out.ndim == 0 or out.shape[0] != tensor.shape[0]:
                raise TraceError(f"Tensor.{name} at {_user_line()} changes the batch dimension "
                                 f"({tuple(tensor.shape)} -> {tuple(getattr(out, 'shape', ()))}): a model must "
                                 "keep each image separate")
            per_sample = int(np.prod(tensor.shape[1:], dtype=np.int64))
            if out.ndim == 2 and out.shape[1] == per_sample:
                layer = types["Flatten"]()
                base = "flatten"
            else:
                layer = types["Reshape"](tuple(int(s) for s in out.shape[1:]))
                base = "reshape"
        elif name == "mean":
            dim = kwargs.get("dim", kwargs.get("axis", args[0] if args else None))
            keep = kwargs.get("keepdim", kwargs.get("keepdims", args[1] if len(args) > 1 else False))
            if dim is None:
                raise TraceError(f"Tensor.mean() over every dimension at {_user_line()} mixes the images of "
                                 "a batch: give dim")
            layer, base = types["Mean"](dim, keep), "mean"
        elif name in _METHOD_LAYERS:
            cls = types[_METHOD_LAYERS[name]]
            accepted = inspect.signature(cls.__init__).parameters
            extra = {}
            if "dim" in accepted:
                dim = kwargs.get("dim", kwargs.get("axis", args[0] if args else None))
                if dim is None:
                    raise TraceError(f"Tensor.{name}() at {_user_line()}: give dim")
                extra["dim"] = int(dim)
            layer, base = cls(**extra), name
        else:  # pragma: no cover - the wrapped names are listed above
            raise TraceError(f"cannot capture Tensor.{name} at {_user_line()}")
        self.add(self.fresh(self.scoped(base)), layer, inputs, out)
        return out

    # --- any other op ---------------------------------------------------------------------
    def check_op(self, data, parents, op):
        """Called for every op result outside recorded calls: record what converts, refuse the rest."""
        traced = [p for p in parents if self.name_of(p) is not None]
        if self.depth or not traced:
            return None
        types = layer_types()
        if op in ("add", "sub", "mul", "div") and len(parents) == 2:
            a, b = parents
            if self.name_of(a) is not None and self.name_of(b) is not None:
                return types[_ELEMENTWISE[op]](), [self.name_of(a), self.name_of(b)], op
            const, value, reverse = (b, a, False) if self.name_of(a) is not None else (a, b, True)
            if const._data.size != 1:
                raise TraceError(f"cannot capture '{op}' with a constant array of shape "
                                 f"{tuple(const._data.shape)} at {_user_line()}: only number constants")
            return (types[_ELEMENTWISE[op]](float(const._data.reshape(-1)[0]), reverse=reverse),
                    [self.name_of(value)], op)
        if op == "neg":
            return types["Mul"](-1.0), [self.name_of(parents[0])], "neg"
        if op in ("concatenate", "cat"):
            if len(traced) != len(parents):
                raise TraceError(f"cannot capture cat of model values with constant tensors at {_user_line()}")
            axis = _concat_axis([p.shape for p in parents], data.shape)
            return types["Concat"](axis), [self.name_of(p) for p in parents], "cat"
        raise TraceError(f"cannot capture the op '{op or 'unknown'}' at {_user_line()}: it has no layer "
                         "counterpart in a graph model (captured: cnnlab layers, F.relu/F.max_pool2d/... ops, "
                         "+ - * / with tensors or numbers, cnnlab.cat, view/reshape/flatten/squeeze/"
                         "unsqueeze, mean(dim), relu()/sigmoid()/tanh()/softmax(dim))")


def _concat_axis(shapes, out_shape) -> int:
    for axis in range(len(out_shape)):
        if sum(s[axis] for s in shapes) == out_shape[axis] and \
                all(s[:axis] + s[axis + 1:] == tuple(out_shape[:axis]) + tuple(out_shape[axis + 1:])
                    for s in shapes):
            return axis
    raise TraceError(f"cannot tell along which dimension {shapes} were joined into {tuple(out_shape)}")


class _Patches:
    """Routes cnnlab's ops through the tracer while it runs (restored on exit)."""

    def __init__(self, tracer: _Tracer):
        self.tracer = tracer
        self.saved: List[Tuple[object, str, object]] = []

    def _set(self, owner, name, value):
        self.saved.append((owner, name, owner.__dict__.get(name, _MISSING) if isinstance(owner, type)
                           else getattr(owner, name)))
        setattr(owner, name, value)

    def __enter__(self):
        tracer = self.tracer
        for name in list(getattr(F, "__all__", [])):
            fn = getattr(F, name, None)
            if callable(fn) and not isinstance(fn, type) and name != "conv_output_size":
                self._set(F, name, _functional_wrapper(tracer, name, fn))
        wrapped = set(_RESHAPES) | {"mean"} | set(_METHOD_LAYERS) | set(_VALUE_READS)
        for name in wrapped:
            fn = Tensor.__dict__.get(name)
            if fn is None or isinstance(fn, (property, staticmethod, classmethod)):
                continue
            self._set(Tensor, name, _method_wrapper(tracer, name, fn))
        original_from_op = Tensor.__dict__["from_op"].__func__

        def from_op(data, parents, backward, op: str = ""):
            out = original_from_op(data, parents, backward, op)
            found = tracer.check_op(data, parents, op)
            if found is not None:
                layer, inputs, base = found
                tracer.add(tracer.fresh(tracer.scoped(base)), layer, inputs, out)
            return out

        self._set(Tensor, "from_op", staticmethod(from_op))
        _module_mod._tracer = tracer
        return self

    def __exit__(self, *exc):
        _module_mod._tracer = None
        for owner, name, value in reversed(self.saved):
            if value is _MISSING:
                delattr(owner, name)
            else:
                setattr(owner, name, value)
        return False


_MISSING = object()


def _functional_wrapper(tracer: _Tracer, name: str, fn):
    def wrapper(*args, **kwargs):
        return tracer.call_functional(name, fn, args, kwargs)
    wrapper.__wrapped__ = fn
    wrapper.__signature__ = inspect.signature(fn)
    return wrapper


def _method_wrapper(tracer: _Tracer, name: str, fn):
    def wrapper(self, *args, **kwargs):
        return tracer.call_method(name, fn, self, args, kwargs)
    wrapper.__wrapped__ = fn
    return wrapper


def trace(model: Module, input_shape: Sequence[int], check: bool = True) -> Graph:
    """Capture ``model.forward`` as a :class:`Graph` that shares the model's layers.

    Args:
        model: any Module whose ``forward`` takes one image batch and returns one tensor.
        input_shape: ``(C, H, W)`` (or ``(N, C, H, W)``: ``N`` is ignored).
        check: run the graph on another batch and compare with ``model`` (recommended).

    Returns:
        A Graph whose nodes are named by the model's own module paths (state-dict keys kept).

    Raises:
        TraceError (a ValueError): the forward does something a graph cannot hold; the
            message names the op and the line of the user's code.
    """
    shape = tuple(int(s) for s in input_shape)
    if len(shape) == 4:
        shape = shape[1:]
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"input_shape must be (C, H, W) of positive sizes, got {tuple(input_shape)}")
    if _module_mod._tracer is not None:
        raise TraceError("trace() cannot run inside another trace")
    dtype = _param_dtype(model)
    rng = np.random.default_rng(0)
    modes = [(m, m.training) for m in model.modules()]
    buffers = [(m, name, None if b is None else b.copy()) for m in model.modules()
               for name, b in m._buffers.items()]
    generator_state = get_rng().bit_generator.state
    model.train()  # training mode, so F.dropout(x, p, self.training) is captured as Dropout
    try:
        x = Tensor(rng.standard_normal((2,) + shape).astype(dtype))
        tracer = _Tracer(model, 2)
        tracer.values[id(x)] = (INPUT, x)
        with no_grad(), _Patches(tracer):
            out = model(x)
        name = tracer.name_of(out)
        if not isinstance(out, Tensor):
            raise TraceError(f"{type(model).__name__}.forward returned {type(out).__name__}; a graph model "
                             "returns one tensor")
        if name is None or name == INPUT:
            raise TraceError(f"{type(model).__name__}.forward returned a tensor that was not computed by "
                             "captured ops from its input")
        graph = Graph(tracer.nodes, output=name)
    finally:  # the trace leaves no trace: batch-norm statistics, modes and random state restored
        for m, buffer_name, value in buffers:
            if value is not None:
                np.copyto(m._buffers[buffer_name], value) if m._buffers[buffer_name] is not None \
                    and m._buffers[buffer_name].shape == value.shape else m._set_buffer(buffer_name, value)
        get_rng().bit_generator.state = generator_state
        for m, mode in modes:
            object.__setattr__(m, "training", mode)
    if check:
        model.eval()
        graph.eval()
        try:
            _check_same(model, graph, shape, dtype, rng)
        finally:
            for m, mode in modes:
                object.__setattr__(m, "training", mode)
    for node in graph.nodes:  # layers the trace made (from F.relu, F.dropout ...) take the model's mode
        if all(node.module is not m for m, _ in modes):
            node.module.train(model.training)
    object.__setattr__(graph, "training", model.training)
    return graph


def _param_dtype(model: Module):
    for p in model.parameters():
        return p._data.dtype
    return np.dtype(np.float32)


def _check_same(model: Module, graph: Graph, shape, dtype, rng) -> None:
    x = rng.standard_normal((3,) + shape).astype(dtype)
    try:
        with no_grad():
            want = model(Tensor(x))._data
            got = graph(Tensor(x))._data
    except (ValueError, TypeError, IndexError, RuntimeError) as exc:
        raise TraceError(f"the graph captured from {type(model).__name__}.forward does not reproduce it on a "
                         f"batch of 3 ({exc}): its forward seems to depend on the batch size in Python code "
                         "(use x.size(0) or -1 rather than a number)") from None
    if want.shape != got.shape or not np.allclose(got, want, rtol=1e-4, atol=1e-5 * max(1.0, float(np.abs(want).max(initial=0)))):
        raise TraceError(f"the graph captured from {type(model).__name__}.forward does not reproduce it on a "
                         f"batch of 3 (outputs {want.shape} vs {got.shape}): its forward seems to depend on "
                         "the data or the batch size in Python code, which a graph model cannot hold")


def as_graph(model: Module, input_shape: Optional[Sequence[int]] = None) -> Graph:
    """``model`` as a :class:`Graph` sharing its layers (and so its weights).

    Args:
        model: a Graph (returned as is), a Sequential (its chain of layers, nested
            Sequentials opened: names ``"0"``, ``"3.1"``), a single layer, or any
            Module whose ``forward`` can be traced.
        input_shape: ``(C, H, W)`` or ``(N, C, H, W)``; needed only to trace a
            user's own Module.

    Raises:
        ValueError: a user's Module without ``input_shape``, or a ``forward`` that
            cannot be captured (see :func:`cnnlab.nn.trace.trace`).
    """
    if isinstance(model, Graph):
        return model
    if type(model) is Sequential:
        nodes: List[Node] = []
        _chain_nodes(model, "", INPUT, nodes)
        if not nodes:
            raise ValueError("an empty Sequential has no layers to make a graph of")
        return Graph(nodes)
    if is_layer(model):
        return Graph([Node("0", model, (INPUT,))])
    if input_shape is None:
        raise ValueError(f"{type(model).__name__} is a custom Module: give input_shape=(C, H, W) so its "
                         "forward can be traced into a graph")
    return trace(model, input_shape)
