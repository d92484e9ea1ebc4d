"""Why this class? Gradient saliency and Grad-CAM, computed with cnnlab's own backpropagation.

Both start from the *score* (the logit, before softmax) of one class and ask
how it changes:

* **Gradient saliency** (Simonyan, Vedaldi, Zisserman 2014): the gradient of
  the class score with respect to every input pixel.  A pixel with a large
  ``|d score / d pixel|`` is one whose small change moves the score most.  The
  map is the largest absolute gradient over the colour channels.
* **Grad-CAM** (Selvaraju et al. 2017): the gradient of the class score with
  respect to the feature maps ``A_k`` of a late convolution layer.  Each
  channel's weight is its gradient averaged over the map,
  ``alpha_k = mean_ij d score / d A_k[i, j]``; the map is
  ``relu(sum_k alpha_k A_k)`` (only evidence *for* the class), scaled to
  [0, 1] and stretched bilinearly to the input size.

Intermediate tensors do not keep ``.grad`` (only leaves do), so Grad-CAM runs
the layers up to the chosen one without gradients, wraps that output as a new
leaf ``Tensor(data, requires_grad=True)`` and runs the rest of the network
from it; ``backward`` then fills the leaf's ``.grad``.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Tuple, Union

import numpy as np

from .. import nn
from ..tensor import Tensor, no_grad
from .features import find_layer, model_dtype, to_probabilities

__all__ = ["SaliencyResult", "GradCamResult", "saliency_map", "grad_cam", "default_cam_layer",
           "resize_bilinear"]

# layers that continue a convolution block (the block ends at the last of them)
_BLOCK_TAIL = (nn.BatchNorm2d, nn.ReLU, nn.LeakyReLU, nn.GELU, nn.Tanh, nn.Sigmoid, nn.Identity)
_MERGES = (nn.Add, nn.Sub, nn.Mul, nn.Concat)


@dataclass
class SaliencyResult:
    """Gradient saliency of ``images`` for classes ``target``.

    Shape:
        gradient ``(N, C, H, W)``; saliency ``(N, H, W)``; probabilities ``(N, K)``.
    """
    target: np.ndarray            # (N,) the class explained for each image
    probabilities: np.ndarray     # (N, K)
    gradient: np.ndarray          # (N, C, H, W) d score / d input
    saliency: np.ndarray          # (N, H, W) max over channels of |gradient|


@dataclass
class GradCamResult:
    """Grad-CAM of ``images`` for classes ``target`` at layer ``layer``.

    Shape:
        activations/gradients ``(N, K, h, w)``; weights ``(N, K)``; cam ``(N, h, w)``;
        heatmap ``(N, H, W)`` in [0, 1].
    """
    target: np.ndarray
    probabilities: np.ndarray
    layer: str                    # name of the layer whose output was used
    layer_description: str
    activations: np.ndarray       # A: the layer's output
    gradients: np.ndarray         # d score / d A
    weights: np.ndarray           # alpha: gradients averaged over each map
    cam: np.ndarray               # relu(sum_k alpha_k A_k), at the layer's resolution, unscaled
    heatmap: np.ndarray           # cam scaled to [0, 1] per image and resized to the input


def _images(model: nn.Module, images) -> np.ndarray:
    a = np.asarray(images._data if isinstance(images, Tensor) else images)
    if a.ndim != 4:
        raise ValueError(f"images must be a 4-D (N, C, H, W) array of preprocessed images, got shape {a.shape}")
    if a.dtype.kind != "f":
        raise TypeError(f"images must be floating point (preprocessed), got dtype {a.dtype}")
    return np.array(a, dtype=model_dtype(model))


def _targets(target, scores: np.ndarray) -> np.ndarray:
    n, k = scores.shape
    if target is None:
        return scores.argmax(axis=1)
    t = np.asarray(target)
    if t.dtype.kind not in "iu" or t.ndim > 1:
        raise TypeError(f"target must be a class index or one index per image, got {target!r}")
    t = np.broadcast_to(t, (n,)).astype(np.int64) if t.ndim == 0 else t.astype(np.int64)
    if t.shape != (n,):
        raise ValueError(f"target must give one class per image ({n}), got {t.shape[0]}")
    bad = t[(t < 0) | (t >= k)]
    if bad.size:
        raise ValueError(f"class {int(bad[0])} does not exist: the model has {k} classes (0-{k - 1})")
    return t


@contextmanager
def _keep_parameter_grads(model: nn.Module):
    """Backpropagating a class score fills the parameters' ``.grad``; put the old values back after."""
    params = list(model.parameters())
    saved = [p.grad for p in params]
    try:
        yield
    finally:
        for p, g in zip(params, saved):
            p.grad = g


def _score_seed(out: Tensor, target) -> Tuple[np.ndarray, np.ndarray]:
    """The gradient to start backward with: 1 at each image's target class score, 0 elsewhere."""
    if out.ndim != 2:
        raise ValueError(f"the model must output class scores of shape (N, classes), got shape {out.shape}")
    t = _targets(target, out._data)
    seed = np.zeros(out.shape, dtype=out.dtype)
    seed[np.arange(out.shape[0]), t] = 1
    return seed, t


def saliency_map(model: nn.Module, images, target=None) -> SaliencyResult:
    """Gradient of each image's class score with respect to its pixels.

    Args:
        model: the network (in eval mode for a trained model).
        images: ``(N, C, H, W)`` preprocessed images.
        target: the class to explain: None (each image's predicted class), one
            index for every image, or one index per image.

    Returns:
        :class:`SaliencyResult`.  The score of image ``n`` depends on image
        ``n`` only (eval mode), so one backward pass of the summed scores gives
        every image's gradient.

    Shape:
        images ``(N, C, H, W)`` -> saliency ``(N, H, W)``.
    """
    data = _images(model, images)
    graph = nn.as_graph(model, data.shape[1:])
    last = graph.node(graph.output).module
    with _keep_parameter_grads(model):
        x = Tensor(data, requires_grad=True)
        out = model(x)
        seed, t = _score_seed(out, target)
        out.backward(seed)
        grad = np.asarray(x.grad, dtype=np.float64)
    probs = to_probabilities(out._data, last)
    return SaliencyResult(t, probs, grad, np.abs(grad).max(axis=1))


def default_cam_layer(model: nn.Module, input_shape=None) -> str:
    """The output Grad-CAM looks at by default: the end of the last convolution block.

    That is the last :class:`~cnnlab.nn.Conv2d` followed by the batch norm,
    activation and merge (a residual ``Add``) right after it, so the maps are the
    rectified features the rest of the network reads, before any pooling.

    Raises:
        ValueError: the model has no convolution layer.
    """
    graph = nn.as_graph(model, input_shape)
    nodes = graph.nodes
    conv_index = max((i for i, node in enumerate(nodes) if isinstance(node.module, nn.Conv2d)), default=None)
    if conv_index is None:
        raise ValueError("Grad-CAM needs a convolution layer, but the model has none: "
                         + ", ".join(node.type for node in nodes))
    end = conv_index
    while True:
        following = [i for i in range(end + 1, len(nodes)) if nodes[end].name in nodes[i].inputs
                     and isinstance(nodes[i].module, _BLOCK_TAIL + _MERGES)]
        if not following:
            return nodes[end].name
        end = following[0]


def _resize_matrix(in_size: int, out_size: int) -> np.ndarray:
    """``(out_size, in_size)`` bilinear weights, pixel centres aligned (``align_corners=False``)."""
    src = (np.arange(out_size) + 0.5) * (in_size / out_size) - 0.5
    src = np.clip(src, 0.0, in_size - 1)
    i0 = np.floor(src).astype(np.int64)
    i1 = np.minimum(i0 + 1, in_size - 1)
    frac = src - i0
    m = np.zeros((out_size, in_size))
    rows = np.arange(out_size)
    np.add.at(m, (rows, i0), 1.0 - frac)
    np.add.at(m, (rows, i1), frac)
    return m


def resize_bilinear(maps: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """Resize ``(N, h, w)`` (or ``(h, w)``) maps to ``size = (H, W)`` by bilinear interpolation.

    Same as ``torch.nn.functional.interpolate(mode="bilinear", align_corners=False)``
    when enlarging.

    Shape:
        ``(N, h, w)`` -> ``(N, H, W)``.
    """
    a = np.asarray(maps, dtype=np.float64)
    squeeze = a.ndim == 2
    if squeeze:
        a = a[None]
    mh = _resize_matrix(a.shape[1], int(size[0]))
    mw = _resize_matrix(a.shape[2], int(size[1]))
    out = np.einsum("Hh,nhw,Ww->nHW", mh, a, mw, optimize=True)
    return out[0] if squeeze else out


def grad_cam(model: nn.Module, images, target=None, layer: Union[int, str, None] = None) -> GradCamResult:
    """Grad-CAM heat maps of ``images`` for the predicted (or ``target``) classes.

    Args:
        model: the network (eval mode for a trained model).
        images: ``(N, C, H, W)`` preprocessed images.
        target: None (predicted class), one class for all, or one per image.
        layer: the layer whose output ``A`` is used (name or index); default
            :func:`default_cam_layer`.  Its output must be ``(N, K, h, w)``.

    Returns:
        :class:`GradCamResult`.

    Shape:
        images ``(N, C, H, W)`` -> heatmap ``(N, H, W)`` in [0, 1].
    """
    data = _images(model, images)
    graph = nn.as_graph(model, data.shape[1:])
    name = default_cam_layer(graph) if layer is None else find_layer(graph, layer)[0]
    cam_layer = graph.node(name).module
    with no_grad():
        before = graph.run_all(Tensor(data), upto=name)
    a = before[name]
    if a.ndim != 4:
        raise ValueError(f"Grad-CAM needs feature maps (N, channels, h, w), but layer {name} "
                         f"({type(cam_layer).__name__}) outputs shape {a.shape}; pick a convolution, "
                         f"activation or pooling layer")
    with _keep_parameter_grads(model):
        leaf = Tensor(np.array(a._data), requires_grad=True)
        out = graph.run_all(Tensor(data), given={**before, name: leaf})[graph.output]
        seed, t = _score_seed(out, target)
        out.backward(seed)
        grads = np.asarray(leaf.grad, dtype=np.float64)
    acts = np.asarray(leaf._data, dtype=np.float64)
    weights = grads.mean(axis=(2, 3))
    cam = np.maximum(np.einsum("nk,nkhw->nhw", weights, acts), 0.0)
    peak = cam.max(axis=(1, 2), keepdims=True)
    scaled = np.divide(cam, peak, out=np.zeros_like(cam), where=peak > 0)
    heat = np.clip(resize_bilinear(scaled, data.shape[2:]), 0.0, 1.0)
    probs = to_probabilities(out._data, graph.node(graph.output).module)
    return GradCamResult(t, probs, name, repr(cam_layer), acts, grads, weights, cam, heat)
