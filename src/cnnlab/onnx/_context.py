"""What an ONNX op's converter sees and returns (:mod:`._import_ops`), and the import error.

A converter takes a :class:`Context` (the node, its attributes, the import state) and returns a
:class:`Layer` (a cnnlab module and the values it reads), an :class:`Alias` (the output is an existing
value) or an ndarray (a value known at import).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np

from .. import nn


class OnnxImportError(ValueError):
    """An ONNX file cnnlab cannot read or turn into a model (a one-line message; the CLI exits with 2)."""

    exit_code = 2


@dataclass
class Alias:
    """A converter result: the node's output is this existing value (Identity, Dropout, no-op pads)."""
    value: str


@dataclass
class Layer:
    """A converter result: run ``module`` on the values ``inputs``."""
    module: nn.Module
    inputs: Tuple[str, ...]


@dataclass
class Context:
    """What a converter sees: the node, its attributes and the import state so far."""
    node: object
    attrs: dict
    opset: int
    importer: object   # the import state (._import._Importer)
    name: str

    @property
    def op(self) -> str:
        return self.node.op_type

    @property
    def inputs(self) -> List[str]:
        return list(self.node.input)

    def has(self, i: int) -> bool:
        return len(self.node.input) > i and self.node.input[i] != ""

    def const(self, i: int) -> Optional[np.ndarray]:
        """Input ``i`` if known at import, else None (also None for an omitted optional input)."""
        if not self.has(i):
            return None
        return self.importer.consts.get(self.node.input[i])

    def is_const(self, i: int) -> bool:
        return self.const(i) is not None

    def var(self, i: int) -> str:
        """The graph value name of input ``i`` (a value computed at run time)."""
        return self.importer.resolve(self.node.input[i])

    def shape(self, i: int) -> tuple:
        """Shape of input ``i`` with a batch of 1."""
        c = self.const(i)
        if c is not None:
            return tuple(c.shape)
        return self.importer.shapes[self.var(i)]

    def producer(self, i: int):
        """The cnnlab module computing input ``i`` (None for constants and the model input)."""
        return self.importer.modules.get(self.var(i))

    def consumers(self, i: int) -> int:
        return self.importer.consumers.get(self.node.input[i], 0)

    def parameters(self, count: float, layer: str) -> None:
        """The size budget, before the ``layer`` this node becomes is built: its ``count`` parameters,
        and the model's so far with them, at most ``cnnlab``'s cap (:data:`cnnlab._schema.MAX_PARAMETERS`)."""
        from .._schema import BudgetError, check_layer_total
        try:
            check_layer_total(float(count), self.importer.parameters, f"the {layer} it becomes")
        except BudgetError as exc:
            self.fail(str(exc))
        self.importer.parameters += float(count)

    def fail(self, reason: str):
        raise OnnxImportError(f"{self.importer.source}: node {self.node.name or self.name!r} ({self.op}, "
                              f"opset {self.opset}): {reason}")
