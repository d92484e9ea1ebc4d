"""The one place the ONNX code takes graph models and merge layers from."""
from ..nn import Add, Concat, Div, Graph, Mul, Node, Reshape, Sub, as_graph  # noqa: F401
