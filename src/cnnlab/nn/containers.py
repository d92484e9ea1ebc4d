"""ModuleList and ModuleDict: hold layers so that they are registered (PyTorch's containers).

A plain Python list or dict of layers assigned as an attribute is not
registered (as in PyTorch): ``parameters()``, ``state_dict()``, ``train()``
and ``to()`` do not see it.  Put the layers in one of these instead::

    self.blocks = nn.ModuleList([Block(16) for _ in range(3)])   # state_dict keys "blocks.0.conv.weight", ...
    self.heads = nn.ModuleDict({"digit": nn.Linear(64, 10), "parity": nn.Linear(64, 2)})

Neither has a ``forward``: the owner's ``forward`` decides how to call them.
"""
from __future__ import annotations

import operator
from typing import Iterable, Iterator, Mapping, Optional, Tuple

from .module import Module


def _check_module(value, where: str) -> Module:
    if not isinstance(value, Module):
        raise TypeError(f"{where} takes Modules, got {type(value).__name__}")
    return value


class ModuleList(Module):
    """A list of layers, registered under the names ``"0"``, ``"1"``, ...

    Supports ``append``, ``extend``, ``insert``, ``pop``, indexing (a slice gives a
    ModuleList), ``len``, iteration, ``+`` and ``+=``.

    Shape: none of its own (no ``forward``); the owning module calls the layers.
    """

    def __init__(self, modules: Optional[Iterable[Module]] = None):
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def _index(self, idx) -> int:
        idx = operator.index(idx)
        n = len(self)
        if not -n <= idx < n:
            raise IndexError(f"index {idx} is out of range (ModuleList of length {n})")
        return idx % n

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            return ModuleList(list(self._modules.values())[idx])
        return self._modules[str(self._index(idx))]

    def __setitem__(self, idx: int, module: Module) -> None:
        self.add_module(str(self._index(idx)), _check_module(module, "ModuleList"))

    def __delitem__(self, idx) -> None:
        modules = list(self._modules.values())
        if isinstance(idx, slice):
            del modules[idx]
        else:
            del modules[self._index(idx)]
        self._renumber(modules)

    def _renumber(self, modules) -> None:
        for name in list(self._modules):
            delattr(self, name)
        for i, module in enumerate(modules):
            self.add_module(str(i), module)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def __iadd__(self, modules: Iterable[Module]) -> "ModuleList":
        return self.extend(modules)

    def __add__(self, other: Iterable[Module]) -> "ModuleList":
        return ModuleList(list(self) + list(other))

    def append(self, module: Module) -> "ModuleList":
        self.add_module(str(len(self)), _check_module(module, "ModuleList"))
        return self

    def extend(self, modules: Iterable[Module]) -> "ModuleList":
        if not hasattr(modules, "__iter__"):
            raise TypeError(f"ModuleList.extend should be called with an iterable of Modules, "
                            f"got {type(modules).__name__}")
        for module in list(modules):
            self.append(module)
        return self

    def insert(self, index: int, module: Module) -> None:
        """Put ``module`` before position ``index``; the later ones move up one name."""
        _check_module(module, "ModuleList")
        modules = list(self._modules.values())
        modules.insert(index, module)
        self._renumber(modules)

    def pop(self, index: int = -1) -> Module:
        module = self[index]
        del self[index]
        return module

    def forward(self, *args, **kwargs):
        raise NotImplementedError("ModuleList has no forward(): iterate over it in your module's forward")


class ModuleDict(Module):
    """An ordered dict of layers, registered under their keys (keys may not contain ".").

    Supports ``d[key]``, ``d[key] = layer``, ``del d[key]``, ``key in d``, ``len``,
    iteration over keys, ``keys()``, ``values()``, ``items()``, ``update()``, ``pop()``
    and ``clear()``.

    Shape: none of its own (no ``forward``); the owning module calls the layers.
    """

    def __init__(self, modules: Optional[Mapping[str, Module]] = None):
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key: str) -> Module:
        if key not in self._modules:
            raise KeyError(f"{key!r} is not in this ModuleDict; keys: {list(self._modules)}")
        return self._modules[key]

    def __setitem__(self, key: str, module: Module) -> None:
        self.add_module(key, _check_module(module, "ModuleDict"))

    def __delitem__(self, key: str) -> None:
        self[key]  # KeyError naming the keys
        delattr(self, key)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[str]:
        return iter(self._modules)

    def __contains__(self, key) -> bool:
        return key in self._modules

    def keys(self):
        return self._modules.keys()

    def items(self):
        return self._modules.items()

    def values(self):
        return self._modules.values()

    def pop(self, key: str) -> Module:
        module = self[key]
        del self[key]
        return module

    def clear(self) -> None:
        for key in list(self._modules):
            delattr(self, key)

    def update(self, modules) -> None:
        """Add or replace entries from a mapping or an iterable of ``(key, module)`` pairs."""
        if isinstance(modules, (Mapping, ModuleDict)):
            pairs: Iterable[Tuple[str, Module]] = modules.items()
        else:
            pairs = []
            for i, entry in enumerate(modules):
                if not isinstance(entry, (tuple, list)) or len(entry) != 2:
                    raise TypeError(f"ModuleDict update sequence element #{i} should be a (key, module) "
                                    f"pair, got {entry!r}")
                pairs.append(tuple(entry))
        for key, module in pairs:
            self[key] = module

    def forward(self, *args, **kwargs):
        raise NotImplementedError("ModuleDict has no forward(): call its layers in your module's forward")


__all__ = ["ModuleList", "ModuleDict"]
