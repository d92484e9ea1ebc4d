"""From a model's outputs to class probabilities: the one rule every tool uses.

A network's last output is turned into probabilities by a softmax, unless the network already ends in
:class:`~cnnlab.nn.Softmax` (probabilities) or :class:`~cnnlab.nn.LogSoftmax` (their logarithms).
``predict``, ``evaluate``, the explain tools, the report and the explorer all go through
:func:`to_probabilities`, so they give the same numbers for the same model and image.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from ..tensor import Tensor, no_grad
from .trace import as_graph
from .layers import LogSoftmax, Softmax
from .module import Module

__all__ = ["model_dtype", "as_model_input", "to_probabilities", "predict_proba"]


def model_dtype(model: Module, default=np.float32):
    """The floating dtype of the model's parameters (float32 unless it was built in float64)."""
    for p in model.parameters():
        if p._data.dtype.kind == "f":
            return p._data.dtype
    return np.dtype(default)


def as_model_input(model: Module, images) -> np.ndarray:
    """``images`` as an ndarray of the model's dtype (convolution needs input and weights alike)."""
    a = images._data if isinstance(images, Tensor) else images
    return np.asarray(a, dtype=model_dtype(model))


def to_probabilities(output: np.ndarray, last_layer: Optional[Module] = None) -> np.ndarray:
    """Class probabilities from the network's last output.

    Scores (logits) go through a numerically stable softmax; a network that
    ends in :class:`~cnnlab.Softmax` already gives probabilities, one that
    ends in :class:`~cnnlab.LogSoftmax` gives their logarithms.

    Shape:
        ``(N, K)`` -> ``(N, K)``.
    """
    out = np.asarray(output, dtype=np.float64)
    if out.ndim != 2:
        out = out.reshape(out.shape[0], -1)
    if isinstance(last_layer, LogSoftmax):
        return np.exp(out)
    if isinstance(last_layer, Softmax):
        return out
    shifted = out - out.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=1, keepdims=True)


def predict_proba(model: Module, images, batch_size: int = 256) -> np.ndarray:
    """Class probabilities for ``(N, C, H, W)`` preprocessed images, in batches, without gradients.

    Shape:
        ``(N, C, H, W)`` -> ``(N, K)`` float64.
    """
    images = as_model_input(model, images)
    graph = as_graph(model, images.shape[1:])
    last = graph.node(graph.output).module
    chunks = []
    with no_grad():
        for start in range(0, images.shape[0], batch_size):
            chunks.append(to_probabilities(model(Tensor(images[start:start + batch_size]))._data, last))
    if not chunks:
        raise ValueError("predict_proba got no images (shape (0, ...))")
    return np.concatenate(chunks)
