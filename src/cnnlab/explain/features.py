"""What each layer of a trained network makes of an image: activations, kernels, probabilities.

Any model is run as its graph (:func:`cnnlab.nn.as_graph`): these helpers run
it one node at a time and keep every intermediate result, so a picture can show
the feature maps after each convolution, activation, pooling and merge, the
flattened vector and the final probabilities.  Layers are named as in
``state_dict`` keys: ``"0"``, ``"1"``, ... (``"3.1"`` inside a nested
Sequential) for a chain, the node names (``"layer1.conv1"``) for a graph.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple, Union

import numpy as np

from .. import nn
from ..nn.probabilities import as_model_input, model_dtype, predict_proba, to_probabilities
from ..tensor import Tensor, no_grad

__all__ = ["LayerOutput", "model_graph", "layer_input", "named_layers", "find_layer", "conv_layer_names", "layer_outputs",
           "conv_kernel", "to_probabilities", "predict_proba", "describe_layer", "first_conv_weight",
           "model_dtype", "as_model_input"]


@dataclass
class LayerOutput:
    """The output of one layer: ``output`` has the batch axis first, e.g. ``(N, C, H, W)``.

    ``inputs`` names the values the layer read (``"input"`` is the image).
    """
    name: str
    layer: nn.Module
    output: np.ndarray
    inputs: Tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        return type(self.layer).__name__


def model_graph(model: nn.Module, input_shape=None) -> nn.Graph:
    """The model as a graph (a user's own Module is traced, which needs ``input_shape``)."""
    return nn.as_graph(model, input_shape)


def named_layers(model: nn.Module, input_shape=None) -> List[Tuple[str, nn.Module]]:
    """``(name, layer)`` for every node of the model's graph, in the order they run.

    A Sequential gives its layers with nested Sequentials opened (``"3.1"``).  A
    user's own Module without ``input_shape`` gives its cnnlab layers in the order
    they were registered (enough to find a layer by name).
    """
    try:
        graph = nn.as_graph(model, input_shape)
    except ValueError:
        if input_shape is not None:
            raise
        from ..nn.trace import is_layer
        return [(name, m) for name, m in model.named_modules() if name and is_layer(m)]
    return [(node.name, node.module) for node in graph.nodes]


def describe_layer(layer: nn.Module) -> str:
    """``"Conv2d(1, 6, kernel_size=(5, 5), ...)"``: the layer as it prints."""
    return repr(layer).replace("\n", " ")


def conv_layer_names(model: nn.Module) -> List[str]:
    """Names of the :class:`~cnnlab.nn.Conv2d` layers, in order."""
    return [name for name, layer in named_layers(model) if isinstance(layer, nn.Conv2d)]


def find_layer(model: nn.Module, layer: Union[int, str]) -> Tuple[str, nn.Module]:
    """The layer named ``layer`` (its index, ``3`` or ``"3"``, or a dotted name ``"3.1"``).

    Raises:
        ValueError: no such layer (the message lists the layers).
    """
    layers = named_layers(model)
    key = str(layer).strip()
    for name, module in layers:
        if name == key:
            return name, module
    if key.isdigit() and int(key) < len(layers):  # a graph's layers by position too
        return layers[int(key)]
    listing = ", ".join(f"{n} {type(m).__name__}" for n, m in layers)
    raise ValueError(f"the model has no layer {layer!r}; its layers are: {listing}")


def layer_outputs(model: nn.Module, images, upto: Optional[str] = None) -> List[LayerOutput]:
    """Run ``model`` on ``images`` node by node (no gradients) and keep every output.

    Args:
        model: any model (set to eval mode by the caller for trained models).
        images: ``(N, C, H, W)`` preprocessed images (ndarray or Tensor).
        upto: stop after the layer with this name (default: run every layer).

    Returns:
        One :class:`LayerOutput` per graph node, in order, with the names of the
        values it read.

    Shape:
        images ``(N, C, H, W)``; each output keeps the batch axis first.
    """
    x = Tensor(as_model_input(model, images))
    if x.ndim != 4:
        raise ValueError(f"images must be a 4-D (N, C, H, W) array, got shape {tuple(x.shape)}")
    graph = nn.as_graph(model, x.shape[1:])
    if upto is not None and str(upto) not in {n.name for n in graph.nodes}:
        find_layer(graph, upto)  # raises, listing the layers
    with no_grad():
        values = graph.run_all(x, upto=None if upto is None else str(upto))
    return [LayerOutput(node.name, node.module, np.ascontiguousarray(values[node.name]._data), node.inputs)
            for node in graph.nodes if node.name in values]


def layer_input(model: nn.Module, images, name: str) -> np.ndarray:
    """What layer ``name`` receives (its first input) for ``images``: the images themselves for a
    layer reading the model's input."""
    x = as_model_input(model, images)
    graph = nn.as_graph(model, x.shape[1:])
    node = graph.node(str(name))
    source = node.inputs[0]
    if source == graph.input_name:
        return x
    with no_grad():
        return np.ascontiguousarray(graph.run_all(Tensor(x), upto=source)[source]._data)


def conv_kernel(model: nn.Module, layer: Union[int, str], channel: int,
                in_channel: Optional[int] = None) -> Tuple[np.ndarray, float, str]:
    """One filter of a trained convolution layer, ready for :func:`~cnnlab.explain.trace_conv2d`.

    Args:
        model: the network.
        layer: name or index of a :class:`~cnnlab.nn.Conv2d` layer.
        channel: the output channel (filter) ``0 .. out_channels - 1``.
        in_channel: one input channel of that filter; None keeps them all.

    Returns:
        ``(kernel, bias, description)``: kernel float64 ``(kh, kw)`` (one input
        channel, or a layer with one input channel) or ``(C_in, kh, kw)``; the
        filter's bias (0 when a single input channel is chosen from several,
        since the bias is added once to the sum over all channels); a
        sentence naming what was taken.

    Raises:
        ValueError: not a conv layer, or a channel out of range.
    """
    name, conv = find_layer(model, layer)
    if not isinstance(conv, nn.Conv2d):
        convs = conv_layer_names(model)
        raise ValueError(f"layer {name} is {type(conv).__name__}, not a Conv2d; the convolution layers are "
                         f"{', '.join(convs) if convs else 'none'}")
    weight = np.asarray(conv.weight._data, dtype=np.float64)
    out_ch, in_ch = weight.shape[:2]
    if isinstance(channel, bool) or not isinstance(channel, (int, np.integer)) or not 0 <= channel < out_ch:
        raise ValueError(f"channel must be an output channel of layer {name} between 0 and {out_ch - 1} "
                         f"(it has {out_ch} filters), got {channel!r}")
    bias = 0.0 if conv.bias is None else float(conv.bias._data[channel])
    text = f"layer {name} ({describe_layer(conv)}), filter {channel}"
    if conv.groups != 1:
        text += f" (groups={conv.groups}: it sees input channels {channel // (out_ch // conv.groups) * in_ch}" \
                f"-{(channel // (out_ch // conv.groups) + 1) * in_ch - 1})"
    if in_channel is not None:
        if isinstance(in_channel, bool) or not isinstance(in_channel, (int, np.integer)) \
                or not 0 <= in_channel < in_ch:
            raise ValueError(f"in_channel must be between 0 and {in_ch - 1} (filter {channel} of layer {name} "
                             f"has {in_ch} input channel(s)), got {in_channel!r}")
        kernel = weight[channel, in_channel]
        if in_ch > 1:
            text += f", input channel {in_channel} of {in_ch} (bias left out: it is added once to the sum " \
                    f"over all {in_ch} channels)"
            bias = 0.0
        return kernel, bias, text
    kernel = weight[channel, 0] if in_ch == 1 else weight[channel]
    return kernel, bias, text


def first_conv_weight(model: nn.Module) -> Tuple[Optional[str], Optional[np.ndarray]]:
    """``(name, weight (O, I, kh, kw))`` of the first convolution layer, or ``(None, None)``."""
    for name, layer in named_layers(model):
        if isinstance(layer, nn.Conv2d):
            return name, np.asarray(layer.weight._data)
    return None, None

