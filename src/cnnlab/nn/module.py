"""Module, Parameter and Sequential: the containers layers live in (PyTorch's contract)."""
from __future__ import annotations

from collections import OrderedDict
from typing import Dict, Iterator, Optional, Tuple

import numpy as np

from ..tensor import Tensor, no_grad

# set by cnnlab.nn.trace while it captures a forward as a graph (None otherwise)
_tracer = None


class Parameter(Tensor):
    """A Tensor a Module learns: ``requires_grad=True`` and listed by ``parameters()``."""

    def __init__(self, data, requires_grad: bool = True):
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


class Module:
    """Base class of every layer and model.

    Assigning a :class:`Parameter` or a Module as an attribute registers it, so
    ``parameters()``, ``state_dict()`` and ``train()``/``eval()`` reach it;
    ``register_buffer`` registers state that is saved but not learned (the
    running statistics of batch norm).
    """

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    # --- registration -------------------------------------------------------
    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError("call Module.__init__() before assigning attributes")
        for registry in (self._parameters, self._buffers, self._modules):
            registry.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        elif value is None and name in ("weight", "bias"):
            self._parameters[name] = None
        object.__setattr__(self, name, value)

    def register_buffer(self, name: str, value: Optional[np.ndarray]) -> None:
        object.__setattr__(self, name, value)
        self._buffers[name] = value

    def _set_buffer(self, name: str, value: np.ndarray) -> None:
        object.__setattr__(self, name, value)
        self._buffers[name] = value

    # --- traversal ------------------------------------------------------------
    def named_modules(self, prefix: str = "") -> Iterator[Tuple[str, "Module"]]:
        yield prefix, self
        for name, child in self._modules.items():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self) -> Iterator["Module"]:
        for _, m in self.named_modules():
            yield m

    def children(self) -> Iterator["Module"]:
        return iter(self._modules.values())

    def named_parameters(self, prefix: str = "") -> Iterator[Tuple[str, Parameter]]:
        for mod_name, module in self.named_modules(prefix):
            for name, p in module._parameters.items():
                if p is not None:
                    yield (f"{mod_name}.{name}" if mod_name else name), p

    def parameters(self) -> Iterator[Parameter]:
        for _, p in self.named_parameters():
            yield p

    def named_buffers(self, prefix: str = ""):
        for mod_name, module in self.named_modules(prefix):
            for name, b in module._buffers.items():
                if b is not None:
                    yield (f"{mod_name}.{name}" if mod_name else name), b

    def num_parameters(self) -> int:
        return int(sum(p.data.size for p in self.parameters()))

    # --- state ---------------------------------------------------------------
    def state_dict(self) -> "OrderedDict[str, np.ndarray]":
        """Name -> ndarray for every parameter and buffer, with PyTorch's key names."""
        state = OrderedDict()
        for mod_name, module in self.named_modules():
            for name, p in module._parameters.items():
                if p is not None:
                    state[f"{mod_name}.{name}" if mod_name else name] = p.data
            for name, b in module._buffers.items():
                if b is not None:
                    state[f"{mod_name}.{name}" if mod_name else name] = b
        return state

    def load_state_dict(self, state_dict: Dict[str, np.ndarray], strict: bool = True):
        """Copy arrays into this module's parameters and buffers (values cast to their dtypes).

        Raises ``KeyError`` listing missing/unexpected keys when ``strict``, and
        ``ValueError`` naming the key and both shapes on a shape mismatch.
        Returns ``(missing_keys, unexpected_keys)``.
        """
        own = self.state_dict()
        given = {k: np.asarray(getattr(v, "data", v) if isinstance(v, Tensor) else v)
                 for k, v in state_dict.items()}
        missing = [k for k in own if k not in given]
        unexpected = [k for k in given if k not in own]
        if strict and (missing or unexpected):
            raise KeyError(f"Error(s) in loading state_dict: missing keys {missing}, unexpected keys {unexpected}")
        for key, value in given.items():
            if key not in own:
                continue
            target = own[key]
            if tuple(value.shape) != tuple(target.shape):
                raise ValueError(f"size mismatch for {key}: copying a param with shape {tuple(value.shape)}, "
                                 f"the shape in the current model is {tuple(target.shape)}")
            np.copyto(target, value.astype(target.dtype, copy=False))
        return missing, unexpected

    # --- modes and dtype ------------------------------------------------------------
    def train(self, mode: bool = True) -> "Module":
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self) -> "Module":
        return self.train(False)

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = None

    def to(self, dtype) -> "Module":
        """Cast every floating parameter and buffer to ``dtype`` (e.g. ``np.float64``)."""
        for module in self.modules():
            for p in module._parameters.values():
                if p is not None:
                    p.data = p.data.astype(dtype)
                    p.grad = None
            for name, b in list(module._buffers.items()):
                if b is not None and b.dtype.kind == "f":
                    module._set_buffer(name, b.astype(dtype))
        return self

    def double(self) -> "Module":
        return self.to(np.float64)

    def float(self) -> "Module":
        return self.to(np.float32)

    # --- running ---------------------------------------------------------------------
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} has no forward()")

    def __call__(self, *args, **kwargs):
        if _tracer is not None:
            return _tracer.call_module(self, args, kwargs)
        return self.forward(*args, **kwargs)

    def output_shape(self, *input_shapes: tuple) -> tuple:
        """The output shape for inputs of ``input_shapes`` (batch included).

        cnnlab's layers that change the shape compute it without running; the
        others keep their input's shape.  A user's own Module that does not
        override this is run once, in eval mode and without gradients, on one
        zero image of each input shape (its batch size put back afterwards).
        """
        if type(self).forward.__module__.startswith("cnnlab."):
            return tuple(input_shapes[0])
        return _dry_run_shape(self, input_shapes)

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = [f"({name}): " + repr(m).replace("\n", "\n  ") for name, m in self._modules.items()]
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not lines:
            return head + ")"
        return head + "\n  " + "\n  ".join(lines) + "\n)"


def _dry_run_shape(module: Module, input_shapes) -> tuple:
    dtype = next((p.data.dtype for p in module.parameters()), np.dtype(np.float32))
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        with no_grad():
            out = module.forward(*[Tensor(np.zeros((1,) + tuple(int(s) for s in shape[1:]), dtype=dtype))
                                   for shape in input_shapes])
    finally:
        for m, mode in modes:
            object.__setattr__(m, "training", mode)
    shape = tuple(out.shape)
    return (int(input_shapes[0][0]),) + shape[1:] if shape else shape


class Sequential(Module):
    """Layers run one after another; children are named "0", "1", ... as in PyTorch.

    Shape: whatever the first layer takes; whatever the last layer gives.
    """

    def __init__(self, *layers: Module):
        super().__init__()
        if len(layers) == 1 and isinstance(layers[0], (OrderedDict, dict)):
            items = list(layers[0].items())
        else:
            items = [(str(i), layer) for i, layer in enumerate(layers)]
        for name, layer in items:
            if not isinstance(layer, Module):
                raise TypeError(f"Sequential takes Modules, got {type(layer).__name__} for layer {name}")
            setattr(self, name, layer)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, index):
        if isinstance(index, slice):
            return Sequential(OrderedDict(list(self._modules.items())[index]))
        return list(self._modules.values())[index]

    def append(self, layer: Module) -> "Sequential":
        setattr(self, str(len(self)), layer)
        return self

    def forward(self, x):
        for layer in self._modules.values():
            x = layer(x)
        return x

    def output_shape(self, input_shape: tuple) -> tuple:
        shape = tuple(input_shape)
        for layer in self._modules.values():
            shape = layer.output_shape(shape)
        return shape
