"""The one place the ONNX code takes graph models and merge layers from.

Until ``cnnlab.nn.Graph`` is merged they come from ``_graph_shim``; then this
file imports them from ``cnnlab.nn`` and the shim is deleted.
"""
from ._graph_shim import Add, Concat, Div, Graph, Mul, Node, Reshape, Sub, as_graph  # noqa: F401
