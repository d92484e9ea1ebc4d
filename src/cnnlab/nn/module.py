"""Module, Parameter and Sequential: the containers layers live in (PyTorch's contract)."""
from __future__ import annotations

from collections import OrderedDict
import weakref
from typing import Callable, Dict, Iterator, Optional, Tuple

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


class RemovableHandle:
    """What ``register_forward_hook`` returns: ``handle.remove()`` takes the hook away again.

    Also a context manager: ``with m.register_forward_hook(f): ...`` removes it on exit.
    """

    _next_id = 0

    def __init__(self, hooks: "OrderedDict[int, Callable]"):
        self._hooks = weakref.ref(hooks)
        self.id = RemovableHandle._next_id
        RemovableHandle._next_id += 1

    def remove(self) -> None:
        hooks = self._hooks()
        if hooks is not None:
            hooks.pop(self.id, None)

    def __enter__(self) -> "RemovableHandle":
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


_DTYPE_NAMES = {"float": np.float32, "float32": np.float32, "double": np.float64, "float64": np.float64}


def _float_dtype(value):
    """``np.float64``, ``'float64'``, ``torch.float64`` -> ``np.float64``; None if ``value`` is no dtype."""
    if value is None or isinstance(value, bool):
        return None
    text = str(value)
    name = text[len("torch."):] if text.startswith("torch.") else text
    if name in _DTYPE_NAMES:
        return np.dtype(_DTYPE_NAMES[name])
    try:
        dtype = np.dtype(value)
    except TypeError:
        if text.startswith("torch.") and type(value).__name__ == "dtype":
            raise TypeError(f"nn.Module.to only accepts floating point dtypes (float32, float64), "
                            f"got desired dtype={text}") from None
        return None
    if dtype.kind != "f" or dtype.itemsize < 4:
        raise TypeError(f"nn.Module.to only accepts float32 or float64, got desired dtype={dtype}")
    return dtype


def _check_device(device) -> None:
    text = str(device)
    if text not in ("cpu", "cpu:0"):
        raise ValueError(f"cnnlab runs on the CPU only: device must be 'cpu', got {text!r}")


def _check_name(kind: str, name) -> None:
    if not isinstance(name, str):
        raise TypeError(f"{kind} name should be a string, got {type(name).__name__}")
    if "." in name:
        raise KeyError(f"{kind} name can't contain \".\", got: {name}")
    if name == "":
        raise KeyError(f"{kind} name can't be empty string \"\"")


class Module:
    """Base class of every layer and model (PyTorch's ``nn.Module`` contract).

    Assigning a :class:`Parameter` or a Module as an attribute registers it, so
    ``parameters()``, ``state_dict()`` and ``train()``/``eval()`` reach it;
    ``register_buffer`` registers state that is saved but not learned (the
    running statistics of batch norm).

    As in PyTorch, a plain Python ``list``, ``tuple`` or ``dict`` of layers
    assigned as an attribute is *not* registered: its parameters are not
    trained, saved or moved.  Hold such layers in :class:`~cnnlab.nn.ModuleList`
    or :class:`~cnnlab.nn.ModuleDict` instead.
    """

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent_buffers", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_forward_hooks", OrderedDict())
        object.__setattr__(self, "_forward_pre_hooks", OrderedDict())
        object.__setattr__(self, "training", True)

    # --- registration -------------------------------------------------------
    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError("cannot assign attributes before Module.__init__() call")
        if name in self._parameters and value is not None and not isinstance(value, Parameter):
            raise TypeError(f"cannot assign '{type(value).__name__}' as parameter '{name}' "
                            "(cnnlab.nn.Parameter or None expected)")
        if name in self._buffers and (value is None or isinstance(value, np.ndarray)):
            self._buffers[name] = value  # stays a buffer, as in PyTorch
            object.__setattr__(self, name, value)
            return
        if isinstance(value, Parameter) or (value is None and name in ("weight", "bias")):
            target = self._parameters
        elif isinstance(value, Module):
            target = self._modules
        else:
            target = None
        for registry in (self._parameters, self._buffers, self._modules):
            if registry is not target:
                registry.pop(name, None)
        if target is not None:
            target[name] = value  # a name already there keeps its place, as in PyTorch
        object.__setattr__(self, name, value)

    def __delattr__(self, name):
        for registry in (self._parameters, self._buffers, self._modules):
            registry.pop(name, None)
        self._non_persistent_buffers.discard(name)
        object.__delattr__(self, name)

    def add_module(self, name: str, module: Optional["Module"]) -> None:
        """Register ``module`` as the child ``name`` (what attribute assignment does)."""
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module subclass")
        _check_name("module", name)
        if hasattr(self, name) and name not in self._modules:
            raise KeyError(f"attribute '{name}' already exists")
        self._modules[name] = module
        object.__setattr__(self, name, module)

    register_module = add_module

    def register_parameter(self, name: str, param: Optional[Parameter]) -> None:
        """Register ``param`` (a :class:`Parameter` or None) under ``name``."""
        _check_name("parameter", name)
        if hasattr(self, name) and name not in self._parameters:
            raise KeyError(f"attribute '{name}' already exists")
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"cannot assign '{type(param).__name__}' object to parameter '{name}' "
                            "(cnnlab.nn.Parameter or None required)")
        self._parameters[name] = param
        object.__setattr__(self, name, param)

    def register_buffer(self, name: str, tensor, persistent: bool = True) -> None:
        """Register an ndarray (or None) that is saved in ``state_dict`` (unless not ``persistent``)
        but not learned, such as batch norm's running statistics."""
        _check_name("buffer", name)
        if hasattr(self, name) and name not in self._buffers:
            raise KeyError(f"attribute '{name}' already exists")
        if isinstance(tensor, Tensor):
            tensor = tensor._data
        if tensor is not None and not isinstance(tensor, np.ndarray):
            raise TypeError(f"cannot assign '{type(tensor).__name__}' object to buffer '{name}' "
                            "(ndarray, Tensor or None required)")
        object.__setattr__(self, name, tensor)
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent_buffers.discard(name)
        else:
            self._non_persistent_buffers.add(name)

    def _set_buffer(self, name: str, value: np.ndarray) -> None:
        object.__setattr__(self, name, value)
        self._buffers[name] = value

    # --- hooks ----------------------------------------------------------------
    def register_forward_pre_hook(self, hook: Callable) -> RemovableHandle:
        """``hook(module, args)`` runs before ``forward``; returning a value (a tuple, or one
        input) replaces the positional arguments."""
        handle = RemovableHandle(self._forward_pre_hooks)
        self._forward_pre_hooks[handle.id] = hook
        return handle

    def register_forward_hook(self, hook: Callable) -> RemovableHandle:
        """``hook(module, args, output)`` runs after ``forward``; returning a value replaces the output."""
        handle = RemovableHandle(self._forward_hooks)
        self._forward_hooks[handle.id] = hook
        return handle

    # --- traversal ------------------------------------------------------------
    def named_modules(self, memo: Optional[set] = None, prefix: str = "",
                      remove_duplicate: bool = True) -> Iterator[Tuple[str, "Module"]]:
        """``("", self)``, then every descendant with its dotted name (each module once)."""
        if isinstance(memo, str):  # the old call named_modules(prefix)
            memo, prefix = None, memo
        if remove_duplicate:
            memo = set() if memo is None else memo
            if id(self) in memo:
                return
            memo.add(id(self))
        yield prefix, self
        for name, child in self._modules.items():
            if child is not None:
                yield from child.named_modules(memo if remove_duplicate else None,
                                               f"{prefix}.{name}" if prefix else name, remove_duplicate)

    def modules(self) -> Iterator["Module"]:
        for _, m in self.named_modules():
            yield m

    def named_children(self) -> Iterator[Tuple[str, "Module"]]:
        seen = set()
        for name, child in self._modules.items():
            if child is not None and id(child) not in seen:
                seen.add(id(child))
                yield name, child

    def children(self) -> Iterator["Module"]:
        for _, child in self.named_children():
            yield child

    def _named_members(self, registry: str, prefix: str, recurse: bool, remove_duplicate: bool):
        modules = (self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate) if recurse
                   else [(prefix, self)])
        seen = set()
        for mod_name, module in modules:
            for name, value in getattr(module, registry).items():
                if value is None or (remove_duplicate and id(value) in seen):
                    continue
                seen.add(id(value))
                yield (f"{mod_name}.{name}" if mod_name else name), value

    def named_parameters(self, prefix: str = "", recurse: bool = True,
                         remove_duplicate: bool = True) -> Iterator[Tuple[str, Parameter]]:
        """Every parameter with its dotted name; a parameter shared by two layers comes once."""
        return self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True):
        return self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True) -> Iterator[np.ndarray]:
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def get_submodule(self, target: str) -> "Module":
        """The module at dotted path ``target`` (``""`` is this module), e.g. ``"features.0"``."""
        if target == "":
            return self
        module = self
        for item in target.split("."):
            if not hasattr(module, item):
                raise AttributeError(f"{type(module).__name__} has no attribute `{item}`")
            module = getattr(module, item)
            if not isinstance(module, Module):
                raise AttributeError(f"`{item}` is not an nn.Module")
        return module

    def get_parameter(self, target: str) -> Parameter:
        """The parameter at dotted path ``target``, e.g. ``"0.weight"``."""
        module_path, _, name = target.rpartition(".")
        module = self.get_submodule(module_path)
        if not hasattr(module, name):
            raise AttributeError(f"{type(module).__name__} has no attribute `{name}`")
        param = getattr(module, name)
        if not isinstance(param, Parameter):
            raise AttributeError(f"`{name}` is not an nn.Parameter")
        return param

    def apply(self, fn: Callable[["Module"], None]) -> "Module":
        """Call ``fn`` on every child (recursively), then on this module; returns self.

        Typical use: ``model.apply(init_weights)``.
        """
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    def num_parameters(self) -> int:
        return int(sum(p._data.size for p in self.parameters()))

    # --- state ---------------------------------------------------------------
    def state_dict(self) -> "OrderedDict[str, np.ndarray]":
        """Name -> ndarray for every parameter and buffer, with PyTorch's key names."""
        state = OrderedDict()
        for mod_name, module in self.named_modules(remove_duplicate=False):
            for name, p in module._parameters.items():
                if p is not None:
                    state[f"{mod_name}.{name}" if mod_name else name] = p._data
            for name, b in module._buffers.items():
                if b is not None and name not in module._non_persistent_buffers:
                    state[f"{mod_name}.{name}" if mod_name else name] = b
        return state

    def load_state_dict(self, state_dict: Dict[str, np.ndarray], strict: bool = True):
        """Copy arrays into this module's parameters and buffers (values cast to their dtypes).

        Raises ``KeyError`` listing missing/unexpected keys when ``strict``, and
        ``ValueError`` naming the key and both shapes on a shape mismatch.
        Returns ``(missing_keys, unexpected_keys)``.
        """
        own = self.state_dict()
        given = {k: np.asarray(getattr(v, "_data", v) if isinstance(v, Tensor) else v)
                 for k, v in state_dict.items()}
        missing = [k for k in own if k not in given]
        unexpected = [k for k in given if k not in own]
        if strict and (missing or unexpected):
            raise KeyError(f"Error(s) in loading state_dict: missing keys {missing}, unexpected keys {unexpected}")
        for key, value in given.items():
            if key not in own:
                continue
            target = own[key]
            if value.dtype.kind not in "biuf":  # complex would be cast to its real part, silently
                raise ValueError(f"{key} holds {'complex numbers' if value.dtype.kind == 'c' else 'no numbers'} "
                                 f"(dtype {value.dtype}); parameters and buffers take real numbers")
            if target.dtype.kind in "iu" and value.dtype.kind == "f" and not (
                    np.isfinite(value).all() and (value == np.round(value)).all()):  # no silent cast of NaN or 2.5
                raise ValueError(f"{key} holds values that are not whole numbers (NaN, inf or fractions); it is "
                                 f"an integer {target.dtype} buffer")
            if tuple(value.shape) != tuple(target.shape):
                raise ValueError(f"size mismatch for {key}: copying a param with shape {tuple(value.shape)}, "
                                 f"the shape in the current model is {tuple(target.shape)}")
            np.copyto(target, value.astype(target.dtype, copy=False))
        return missing, unexpected

    # --- modes, gradients, dtype and device ---------------------------------------------
    def train(self, mode: bool = True) -> "Module":
        if not isinstance(mode, (bool, np.bool_)):
            raise ValueError(f"training mode is expected to be boolean, got {mode!r}")
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self) -> "Module":
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> "Module":
        """Switch gradient recording of every parameter on or off (freeze layers); returns self."""
        for p in self.parameters():
            p.requires_grad = bool(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the gradients: ``.grad = None`` (default, as PyTorch 2) or fill them with zeros."""
        for p in self.parameters():
            if set_to_none or p.grad is None:
                p.grad = None
            elif p.grad._data.flags.writeable:
                p.grad._data[...] = 0  # in place, as PyTorch's grad.zero_()
            else:
                p.grad = np.zeros_like(p._data)

    def to(self, *args, **kwargs) -> "Module":
        """``to(dtype)``, ``to('cpu')``, ``to(device='cpu', dtype=...)``, ``to('cpu', dtype)``.

        ``dtype``: ``np.float32``/``np.float64``, ``'float32'``/``'float64'`` or ``torch.float32``/
        ``torch.float64``; floating parameters and buffers are cast (the Parameter objects stay).
        ``device``: only ``'cpu'`` (a no-op); any other device is a ``ValueError``.
        """
        unknown = set(kwargs) - {"device", "dtype", "non_blocking", "memory_format"}
        if unknown:
            raise TypeError(f"to() got an unexpected keyword argument {sorted(unknown)[0]!r}")
        if len(args) > 2:
            raise TypeError(f"to() takes at most 2 positional arguments (device, dtype), got {len(args)}")
        device, dtype = kwargs.get("device"), _float_dtype(kwargs.get("dtype"))
        if kwargs.get("dtype") is not None and dtype is None:
            raise TypeError(f"to(): dtype must be a floating point dtype, got {kwargs['dtype']!r}")
        for arg in args:
            as_dtype = _float_dtype(arg)
            if as_dtype is not None:
                dtype = as_dtype
            elif isinstance(arg, (Tensor, np.ndarray)):
                dtype = _float_dtype(arg.dtype)
            else:
                device = arg
        if device is not None:
            _check_device(device)
        if dtype is not None:
            self._cast(dtype)
        return self

    def _cast(self, dtype) -> "Module":
        """Cast every floating parameter (and its gradient) and buffer to ``dtype``."""
        for module in self.modules():
            for p in module._parameters.values():
                if p is not None and p._data.dtype != dtype:
                    p._data = p._data.astype(dtype)
                    if p.grad is not None:
                        p.grad = p.grad._data.astype(dtype)
            for name, b in list(module._buffers.items()):
                if b is not None and b.dtype.kind == "f" and b.dtype != dtype:
                    module._set_buffer(name, b.astype(dtype))
        return self

    def type(self, dst_type) -> "Module":
        """Cast parameters and buffers to ``dst_type`` (as ``to(dst_type)``)."""
        dtype = _float_dtype(dst_type)
        if dtype is None:
            raise TypeError(f"type(): expected a floating point dtype, got {dst_type!r}")
        return self._cast(dtype)

    def cpu(self) -> "Module":
        """Nothing to move: cnnlab runs on the CPU. Returns self."""
        return self

    def cuda(self, device=None) -> "Module":
        raise ValueError("cnnlab runs on the CPU only: cuda() is not available; use to('cpu') or leave it out")

    def double(self) -> "Module":
        return self._cast(np.dtype(np.float64))

    def float(self) -> "Module":
        return self._cast(np.dtype(np.float32))

    # --- running ---------------------------------------------------------------------
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} has no forward()")

    def __call__(self, *args, **kwargs):
        if _tracer is not None:
            return _tracer.call_module(self, args, kwargs)
        if self._forward_pre_hooks or self._forward_hooks:
            return self._call_with_hooks(args, kwargs)
        return self.forward(*args, **kwargs)

    def _call_with_hooks(self, args: tuple, kwargs: dict):
        for hook in list(self._forward_pre_hooks.values()):
            result = hook(self, args)
            if result is not None:
                args = result if isinstance(result, tuple) else (result,)
        output = self.forward(*args, **kwargs)
        for hook in list(self._forward_hooks.values()):
            result = hook(self, args, output)
            if result is not None:
                output = result
        return output

    def output_shape(self, *input_shapes: tuple) -> tuple:
        """The output shape for inputs of ``input_shapes`` (batch included).

        cnnlab's layers that change the shape compute it without running; the
        others keep their input's shape.  A user's own Module that does not
        override this is run once, in eval mode and without gradients, on one
        zero image of each input shape (its batch size put back afterwards).
        """
        owner = next(cls for cls in type(self).__mro__ if "forward" in cls.__dict__)
        if owner.__module__.startswith("cnnlab."):
            return tuple(input_shapes[0])
        return _dry_run_shape(self, input_shapes)

    def extra_repr(self) -> str:
        """The settings shown between the parentheses of ``repr(layer)``."""
        return ""

    def __repr__(self) -> str:
        lines = [line for line in self.extra_repr().split("\n") if line]
        lines += [f"({name}): " + repr(m).replace("\n", "\n  ") for name, m in self._modules.items()]
        head = type(self).__name__ + "("
        if not self._modules and len(lines) <= 1:
            return head + "".join(lines) + ")"
        return head + "\n  " + "\n  ".join(lines) + "\n)"


def _dry_run_shape(module: Module, input_shapes) -> tuple:
    dtype = next((p._data.dtype for p in module.parameters()), np.dtype(np.float32))
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

    def extend(self, layers) -> "Sequential":
        for layer in layers:
            self.append(layer)
        return self

    def insert(self, index: int, layer: Module) -> "Sequential":
        """Put ``layer`` before position ``index``; later layers move up one name."""
        if not isinstance(layer, Module):
            raise TypeError(f"Sequential takes Modules, got {type(layer).__name__}")
        layers = list(self._modules.values())
        n = len(layers)
        if not -n <= index <= n:
            raise IndexError(f"Index out of range: {index} (Sequential of length {n})")
        layers.insert(index if index >= 0 else index + n, layer)
        self._renumber(layers)
        return self

    def pop(self, index: int = -1) -> Module:
        layer = self[index]
        del self[index]
        return layer

    def __setitem__(self, index: int, layer: Module) -> None:
        name = list(self._modules)[index]
        setattr(self, name, layer)

    def __delitem__(self, index) -> None:
        layers = list(self._modules.values())
        del layers[index]
        self._renumber(layers)

    def _renumber(self, layers) -> None:
        for name in list(self._modules):
            delattr(self, name)
        for i, layer in enumerate(layers):
            setattr(self, str(i), layer)

    def forward(self, x):
        for layer in self._modules.values():
            x = layer(x)
        return x

    def output_shape(self, input_shape: tuple) -> tuple:
        shape = tuple(input_shape)
        for layer in self._modules.values():
            shape = layer.output_shape(shape)
        return shape
