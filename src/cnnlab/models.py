"""The model zoo, and models written as small JSON/YAML/TOML files of layers.

Every model here but ``resnet8`` is a plain :class:`~cnnlab.nn.Sequential`
whose layers read top to bottom like the network's diagram; ``resnet8`` is a
:class:`~cnnlab.nn.Graph`, since its blocks add their input back.  The sizes that depend on the input
(the ``in_features`` of the first dense layer) are computed with each layer's
``output_shape``, i.e. with the one output-size rule
:func:`~cnnlab.functional.conv_output_size`, never by hand.

The zoo
-------
``digitsnet``  (default for the 8x8 digits)
    conv3(32)-BN-ReLU, conv3(32)-BN-ReLU, maxpool2, conv3(64)-BN-ReLU,
    maxpool2, flatten, dropout, dense.  Padding 1 keeps the tiny images' edges.
``lenet5``  (LeCun et al. 1998, for 28x28 digits)
    conv5(6, padding 2)-ReLU-maxpool2, conv5(16)-ReLU-maxpool2, flatten,
    dense 120-ReLU, dense 84-ReLU, dense 10.
``tinyvgg``  (the network CNN Explainer draws, for 64x64 RGB)
    2 x [conv3-ReLU, conv3-ReLU, maxpool2] with 10 filters each, flatten, dense.
``smallnet``  (a modern small network for Fashion-MNIST and 32x32 RGB)
    [conv3(32)-BN-ReLU] x2, maxpool2, [conv3(64)-BN-ReLU] x2, maxpool2,
    conv3(128)-BN-ReLU, global average pooling, dropout, dense.
``resnet8``  (a small residual network, a :class:`~cnnlab.nn.Graph`)
    conv3-BN-ReLU stem, three residual blocks (the last two strided, with 1x1
    conv-BN shortcuts), global average pooling, dense.

Model files
-----------
A model file lists its layers by their ``cnnlab.nn`` class name and keyword
arguments; ``in_channels`` (Conv2d), ``in_features`` (Linear) and
``num_features`` (BatchNorm2d) may be left out, and are then inferred from the
shape flowing into the layer::

    {"input_shape": [1, 28, 28],
     "layers": [{"type": "Conv2d", "out_channels": 6, "kernel_size": 5, "padding": 2},
                {"type": "ReLU"},
                {"type": "MaxPool2d", "kernel_size": 2},
                {"type": "Flatten"},
                {"type": "Linear", "out_features": 10}]}

The same structure is read from ``.json``, ``.yaml``/``.yml`` or ``.toml``
files (TOML: ``input_shape = [1, 28, 28]`` and ``[[layers]]`` tables).  A
``{"type": "Sequential", "layers": [...]}`` entry nests a block.
:func:`model_to_spec` writes any such model back as this structure; that is
how a run directory stores its architecture.
"""
from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

from . import _schema, nn
from .nn.graph import INPUT
from .nn.trace import is_layer, layer_types

__all__ = ["lenet5", "tinyvgg", "smallnet", "digitsnet", "resnet8", "MODELS", "create_model", "build_model",
           "model_to_spec", "load_model_file", "parse_model_spec", "default_model_name",
           "is_model_file", "LAYER_TYPES", "MODEL_FILE_SUFFIXES", "DEFAULT_INPUT_SHAPES",
           "MODEL_DESCRIPTIONS"]

MODEL_FILE_SUFFIXES = (".json", ".yaml", ".yml", ".toml")

Size = Union[int, Tuple[int, int]]


def _size_pair(input_size: Size, name: str = "input_size") -> Tuple[int, int]:
    if isinstance(input_size, bool):
        raise TypeError(f"`{name}` must be an int or an (H, W) pair, got {input_size!r}")
    if isinstance(input_size, int):
        pair = (input_size, input_size)
    else:
        try:
            pair = tuple(int(s) for s in input_size)
        except TypeError:
            raise TypeError(f"`{name}` must be an int or an (H, W) pair, got {input_size!r}") from None
    if len(pair) != 2 or min(pair) < 1:
        raise ValueError(f"`{name}` must be a positive int or (H, W) pair, got {input_size!r}")
    return pair


def _features_after(layers: Sequence[nn.Module], in_channels: int, input_size: Size, model: str,
                    head: int = 1) -> int:
    """Number of features the flattened output of ``layers`` has, via ``output_shape``; the size budget
    (every output for one image, and the parameters with a dense layer of ``head`` outputs on top) is
    checked before that dense layer is built."""
    from ._schema import MAX_ACTIVATION_ELEMENTS, check_tensor_size, check_total_parameters
    h, w = _size_pair(input_size)
    shape = (1, in_channels, h, w)
    where = f"model {model} for {in_channels}x{h}x{w} images"
    check_tensor_size(shape[1:], f"{where}: one input image", MAX_ACTIVATION_ELEMENTS)
    for index, layer in enumerate(layers):
        try:
            shape = layer.output_shape(shape)
        except ValueError as exc:
            raise ValueError(f"model {model} does not fit {in_channels}x{h}x{w} images: layer {index} "
                             f"({type(layer).__name__}) gets shape {shape}: {exc}") from None
        check_tensor_size(shape[1:], f"{where}: layer {index} ({type(layer).__name__}) output for one image",
                          MAX_ACTIVATION_ELEMENTS)
    features = 1
    for s in shape[1:]:
        features *= s
    params = sum(p._data.size for layer in layers for p in layer.parameters())
    check_total_parameters(float(params) + float(features) * (int(head) + 1),
                           f"{where}: its dense layer of {features:,} inputs")
    return features


# --- the zoo --------------------------------------------------------------------------
def lenet5(in_channels: int = 1, num_classes: int = 10, input_size: Size = 28) -> nn.Sequential:
    """LeNet-5 (LeCun, Bottou, Bengio, Haffner 1998) with ReLU and max pooling.

    conv5(6, padding 2)-ReLU-maxpool2-conv5(16)-ReLU-maxpool2-flatten-120-ReLU-84-ReLU-classes.
    The padding 2 lets the 28x28 MNIST digits stand in for the paper's 32x32 inputs.

    Args:
        in_channels: image channels (1 gray, 3 RGB).
        num_classes: outputs of the last layer.
        input_size: H = W, or (H, W); at least 12x12 (the second conv needs 5 pixels).

    Shape:
        - input: ``(N, in_channels, H, W)``, e.g. (N, 1, 28, 28)
        - output: ``(N, num_classes)`` scores (logits)
    """
    features = [nn.Conv2d(in_channels, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten()]
    flat = _features_after(features, in_channels, input_size, "lenet5", 120)
    return nn.Sequential(*features, nn.Linear(flat, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                         nn.Linear(84, num_classes))


def tinyvgg(in_channels: int = 3, num_classes: int = 10, input_size: Size = 64,
            hidden_channels: int = 10) -> nn.Sequential:
    """TinyVGG, the network CNN Explainer (Wang et al. 2020) draws.

    2 x [conv3-ReLU-conv3-ReLU-maxpool2] with ``hidden_channels`` filters in every
    conv (10 in CNN Explainer) and no padding, then flatten and one dense layer.
    On CNN Explainer's 64x64 RGB images the feature maps go 62, 60, 30, 28, 26, 13.

    Shape:
        - input: ``(N, in_channels, H, W)``, H and W at least 16
        - output: ``(N, num_classes)``
    """
    c = hidden_channels
    features = [nn.Conv2d(in_channels, c, 3), nn.ReLU(), nn.Conv2d(c, c, 3), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(c, c, 3), nn.ReLU(), nn.Conv2d(c, c, 3), nn.ReLU(), nn.MaxPool2d(2),
                nn.Flatten()]
    flat = _features_after(features, in_channels, input_size, "tinyvgg", num_classes)
    return nn.Sequential(*features, nn.Linear(flat, num_classes))


def _conv_bn_relu(cin: int, cout: int) -> List[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]


def smallnet(in_channels: int = 1, num_classes: int = 10, input_size: Size = 28, width: int = 32,
             dropout: float = 0.2) -> nn.Sequential:
    """A modern small CNN: conv-BN-ReLU blocks and global average pooling.

    [conv3(w)-BN-ReLU] x2, maxpool2, [conv3(2w)-BN-ReLU] x2, maxpool2,
    conv3(4w)-BN-ReLU, global average pooling, dropout, dense (w = ``width``, 32).
    Convolutions before batch norm have no bias (the norm's shift replaces it).
    Global average pooling makes the dense layer independent of the input size.

    Shape:
        - input: ``(N, in_channels, H, W)``, H and W at least 4 (e.g. 28x28 gray or 32x32 RGB)
        - output: ``(N, num_classes)``
    """
    w = width
    features = (_conv_bn_relu(in_channels, w) + _conv_bn_relu(w, w) + [nn.MaxPool2d(2)]
                + _conv_bn_relu(w, 2 * w) + _conv_bn_relu(2 * w, 2 * w) + [nn.MaxPool2d(2)]
                + _conv_bn_relu(2 * w, 4 * w) + [nn.GlobalAvgPool2d()])
    flat = _features_after(features, in_channels, input_size, "smallnet", num_classes)
    head = ([nn.Dropout(dropout)] if dropout else []) + [nn.Linear(flat, num_classes)]
    return nn.Sequential(*features, *head)


def digitsnet(in_channels: int = 1, num_classes: int = 10, input_size: Size = 8,
              dropout: float = 0.25) -> nn.Sequential:
    """A small CNN for tiny images such as the 8x8 digits (the default there).

    conv3(32)-BN-ReLU, conv3(32)-BN-ReLU, maxpool2, conv3(64)-BN-ReLU, maxpool2,
    flatten, dropout, dense.  All convs pad by 1, so 8x8 -> 8 -> 8 -> 4 -> 4 -> 2.

    Shape:
        - input: ``(N, in_channels, H, W)``, H and W at least 4
        - output: ``(N, num_classes)``
    """
    features = (_conv_bn_relu(in_channels, 32) + _conv_bn_relu(32, 32) + [nn.MaxPool2d(2)]
                + _conv_bn_relu(32, 64) + [nn.MaxPool2d(2), nn.Flatten()])
    flat = _features_after(features, in_channels, input_size, "digitsnet", num_classes)
    head = ([nn.Dropout(dropout)] if dropout else []) + [nn.Linear(flat, num_classes)]
    return nn.Sequential(*features, *head)


def _residual_block(nodes: list, source: str, prefix: str, cin: int, cout: int, stride: int) -> str:
    """conv3-BN-ReLU-conv3-BN plus the shortcut (1x1 conv-BN where the shape changes), then ReLU."""
    nodes += [(f"{prefix}.conv1", nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), [source]),
              (f"{prefix}.bn1", nn.BatchNorm2d(cout), [f"{prefix}.conv1"]),
              (f"{prefix}.relu1", nn.ReLU(), [f"{prefix}.bn1"]),
              (f"{prefix}.conv2", nn.Conv2d(cout, cout, 3, padding=1, bias=False), [f"{prefix}.relu1"]),
              (f"{prefix}.bn2", nn.BatchNorm2d(cout), [f"{prefix}.conv2"])]
    shortcut = source
    if stride != 1 or cin != cout:
        nodes += [(f"{prefix}.shortcut.conv", nn.Conv2d(cin, cout, 1, stride=stride, bias=False), [source]),
                  (f"{prefix}.shortcut.bn", nn.BatchNorm2d(cout), [f"{prefix}.shortcut.conv"])]
        shortcut = f"{prefix}.shortcut.bn"
    nodes += [(f"{prefix}.add", nn.Add(), [f"{prefix}.bn2", shortcut]),
              (f"{prefix}.relu2", nn.ReLU(), [f"{prefix}.add"])]
    return f"{prefix}.relu2"


def resnet8(in_channels: int = 1, num_classes: int = 10, input_size: Size = 28, width: int = 32) -> nn.Graph:
    """A small residual network (He et al. 2016): 8 weighted layers, as a graph model.

    stem conv3(w)-BN-ReLU; three residual blocks of two conv3-BN with w, 2w (stride 2)
    and 4w (stride 2) filters, whose input is added back to their output (through a
    1x1 conv-BN where the block changes the shape); global average pooling; dense.
    Node names follow PyTorch's ResNets (``layer2.conv1``, ``layer2.shortcut.conv``).

    ``width=32`` (308k parameters on 1x28x28, 10 classes) is the default: at 16 (78k
    parameters) it under-fits Fashion-MNIST (92.6% test after 15 epochs, train accuracy
    93.4%); at 32 it reaches 93.81% in 20 epochs with label smoothing 0.1 (PyTorch's twin:
    94.11%), see the README's Accuracy table.

    Shape:
        - input: ``(N, in_channels, H, W)``, H and W at least 4 (28x28 gray, 32x32 RGB)
        - output: ``(N, num_classes)``
    """
    h, w_ = _size_pair(input_size)
    if min(h, w_) < 4:
        raise ValueError(f"model resnet8 needs images of at least 4x4, got {h}x{w_}")
    w = int(width)
    from ._schema import MAX_ACTIVATION_ELEMENTS, check_tensor_size, check_total_parameters
    where = f"model resnet8 for {in_channels}x{h}x{w_} images"
    check_tensor_size((w, h, w_), f"{where}: stem output for one image", MAX_ACTIVATION_ELEMENTS)
    check_total_parameters(298.0 * w * w + 9.0 * in_channels * w + 42.0 * w + 4.0 * w * (int(num_classes) + 1),
                           where)  # the convolutions, batch norms and the dense layer below
    nodes = [("stem.conv", nn.Conv2d(in_channels, w, 3, padding=1, bias=False), ["input"]),
             ("stem.bn", nn.BatchNorm2d(w), ["stem.conv"]),
             ("stem.relu", nn.ReLU(), ["stem.bn"])]
    x = _residual_block(nodes, "stem.relu", "layer1", w, w, 1)
    x = _residual_block(nodes, x, "layer2", w, 2 * w, 2)
    x = _residual_block(nodes, x, "layer3", 2 * w, 4 * w, 2)
    nodes += [("pool", nn.GlobalAvgPool2d(), [x]), ("fc", nn.Linear(4 * w, num_classes), ["pool"])]
    return nn.Graph(nodes)


#: name -> builder taking ``(in_channels, num_classes, input_size)``
MODELS: Dict[str, Callable[..., nn.Sequential]] = {
    "digitsnet": digitsnet, "lenet5": lenet5, "tinyvgg": tinyvgg, "smallnet": smallnet, "resnet8": resnet8}

#: the input each zoo model was designed for, (C, H, W)
DEFAULT_INPUT_SHAPES = {"digitsnet": (1, 8, 8), "lenet5": (1, 28, 28), "tinyvgg": (3, 64, 64),
                        "smallnet": (1, 28, 28), "resnet8": (1, 28, 28)}

# a short "what it is for" line per zoo model (CLI help, errors)
MODEL_DESCRIPTIONS = {
    "digitsnet": "small conv-BN-ReLU network for tiny images (default for the 8x8 digits)",
    "lenet5": "LeNet-5 (1998) for 28x28 digits (default for MNIST)",
    "tinyvgg": "CNN Explainer's TinyVGG (2 x [conv-relu-conv-relu-maxpool], 10 filters)",
    "smallnet": "modern conv-BN-ReLU network with global average pooling (Fashion-MNIST, CIFAR-10)",
    "resnet8": "small residual network, a graph model (Fashion-MNIST, CIFAR-10)",
}


def default_model_name(dataset: str, input_shape: Sequence[int]) -> str:
    """The zoo model that suits a data set: digitsnet for tiny images, lenet5 for MNIST, else smallnet."""
    c, h, w = (int(s) for s in input_shape)
    if min(h, w) < 12:
        return "digitsnet"
    if str(dataset).lower() == "mnist":
        return "lenet5"
    return "smallnet"


# --- model files --------------------------------------------------------------------------
#: the layer types a model file may use: every layer class ``cnnlab.nn`` exports, by name
LAYER_TYPES: Dict[str, type] = dict(layer_types())
_ALIASES = {"dense": "Linear"}
_LOOKUP = {name.lower(): name for name in LAYER_TYPES}
_LOOKUP.update(_ALIASES)
_SKIPPED_ARGS = {"self", "dtype", "rng"}  # never written in files
# argument -> where its value comes from when a file leaves it out
_INFERRED = {"Conv2d": ("in_channels", 1), "Linear": ("in_features", -1), "BatchNorm2d": ("num_features", 1),
             "BatchNorm1d": ("num_features", 1), "ConvTranspose2d": ("in_channels", 1)}
_GRAPH_KEYS = ("name", "inputs", "same_as")
# arguments written as one number when both entries of a pair are equal
_PAIR_ARGS = {"kernel_size", "stride", "padding", "dilation", "output_size", "output_padding"}


def is_model_file(name: str) -> bool:
    return str(name).lower().endswith(MODEL_FILE_SUFFIXES)


def _accepted_args(cls: type) -> Dict[str, inspect.Parameter]:
    params = inspect.signature(cls.__init__).parameters
    return {n: p for n, p in params.items()
            if n not in _SKIPPED_ARGS and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}


def _to_tuples(value):
    """JSON lists -> tuples (the layers take tuples for pairs and nested padding)."""
    if isinstance(value, list):
        return tuple(_to_tuples(v) for v in value)
    return value


def _shape_tuple(value, where: str) -> Tuple[int, int, int]:
    try:
        shape = tuple(int(s) for s in value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: input_shape must be a list [C, H, W] of positive ints, "
                         f"got {value!r}") from None
    if len(shape) != 3 or min(shape) < 1 or any(int(s) != s for s in value):
        raise ValueError(f"{where}: input_shape must be a list [C, H, W] of positive ints, got {value!r}")
    return shape


class _Budget:
    """The parameters of the layers built so far; with ``shape_only``, layers with large weights are
    stood in for by :class:`_ShapeOnly` (the pass that sums the size budget before anything is built)."""

    def __init__(self, shape_only: bool = False):
        self.total = 0.0
        self.shape_only = shape_only


class _ShapeOnly:
    """Stands in for a Conv2d, ConvTranspose2d or Linear while the size budget is summed: the output
    shape of the real layer, computed by a copy with one input channel (feature) per group, so that
    no large weight is allocated."""

    def __init__(self, cls: type, kwargs: dict):
        self.cls, self.kwargs = cls, kwargs

    def output_shape(self, *shapes):
        shape = tuple(shapes[0])
        if self.cls is nn.Linear:
            want, axis, size = self.kwargs["in_features"], -1, 1
            probe = dict(self.kwargs, in_features=1, out_features=1, bias=False)
            out_size = self.kwargs["out_features"]
        else:  # Conv2d, ConvTranspose2d: channels on axis 1
            groups = self.kwargs.get("groups", 1)
            want, axis, size = self.kwargs["in_channels"], 1, groups
            probe = dict(self.kwargs, in_channels=groups, out_channels=groups, bias=False)
            out_size = self.kwargs["out_channels"]
        if len(shape) < 2 or shape[axis] != want:
            raise ValueError(f"{self.cls.__name__} expects {want} input "
                             f"{'features' if axis == -1 else 'channels'}, got input shape {shape}")
        shape = list(shape)
        shape[axis] = size
        out = list(self.cls(**probe).output_shape(tuple(shape)))
        out[axis] = out_size
        return tuple(out)


class _ShapeOnlySequence:
    def __init__(self, children):
        self.children = children

    def output_shape(self, shape):
        for child in self.children:
            shape = child.output_shape(shape)
        return shape


_SHAPE_ONLY = ("Conv2d", "ConvTranspose2d", "Linear")


def _build_layer(entry, shape, where: str, label: str, inputs_shapes=None,
                 budget: Optional[_Budget] = None) -> Tuple[nn.Module, Optional[tuple]]:
    """One layer of a model file, built for inputs of ``shape``; returns it and its output shape."""
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: {label}: expected a mapping with a 'type' key such as "
                         f"{{\"type\": \"ReLU\"}}, got {entry!r}")
    if "type" not in entry:
        raise ValueError(f"{where}: {label}: missing key 'type' (the layer class, e.g. 'Conv2d'); "
                         f"got keys {sorted(entry)}")
    kind = entry["type"]
    args = {k: v for k, v in entry.items() if k != "type" and k not in _GRAPH_KEYS}
    if isinstance(kind, str) and kind.lower() == "sequential":
        unknown = sorted(set(args) - {"layers"})
        if unknown:
            raise ValueError(f"{where}: {label} (Sequential): unknown key {unknown[0]!r}; "
                             "a Sequential entry takes only 'layers'")
        children, shape = _build_layers(args.get("layers"), shape, where, f"{label}.", budget)
        if budget is not None and budget.shape_only:
            return _ShapeOnlySequence(children), shape
        return nn.Sequential(*children), shape
    name = _LOOKUP.get(str(kind).lower()) if isinstance(kind, str) else None
    if name is None:
        raise ValueError(f"{where}: {label}: unknown layer type {kind!r}; known types: "
                         f"{', '.join(sorted(LAYER_TYPES))}, Sequential")
    cls = LAYER_TYPES[name]
    accepted = _accepted_args(cls)
    for key in args:
        if key not in accepted:
            raise ValueError(f"{where}: {label} ({name}): unknown argument {key!r}; {name} accepts: "
                             f"{', '.join(accepted) or 'no arguments'}")
    kwargs = {k: _to_tuples(v) for k, v in args.items()}
    if name in _INFERRED:
        arg, axis = _INFERRED[name]
        if arg not in kwargs:
            if shape is None:
                raise ValueError(f"{where}: {label} ({name}): '{arg}' is not given and cannot be "
                                 "inferred without the input shape; add \"input_shape\": [C, H, W] "
                                 f"to the file or give '{arg}'")
            kwargs[arg] = int(shape[axis])
    missing = [n for n, p in accepted.items() if p.default is p.empty and n not in kwargs]
    if missing:
        raise ValueError(f"{where}: {label} ({name}): missing required argument {missing[0]!r}")
    from ._schema import MAX_ACTIVATION_ELEMENTS, check_layer_parameters, check_tensor_size
    # the size budget: this layer, and the model so far
    params = check_layer_parameters({"type": name, **kwargs}, f"{where}: {label} ({name})",
                                    budget.total if budget is not None else 0.0)
    if budget is not None:
        budget.total += params
    try:
        if budget is not None and budget.shape_only and name in _SHAPE_ONLY:
            cls(**{**kwargs, **_small_args(name, kwargs)})  # the arguments' own checks, on a small copy
            layer = _ShapeOnly(cls, kwargs)
        else:
            layer = cls(**kwargs)
    except (TypeError, ValueError, IndexError) as exc:
        raise ValueError(f"{where}: {label} ({name}): {exc}") from None
    given = inputs_shapes if inputs_shapes is not None else ([shape] if shape is not None else None)
    out = None
    if given is not None:
        try:
            out = tuple(layer.output_shape(*given))
        except (ValueError, TypeError, IndexError) as exc:
            shapes = " and ".join(str(tuple(g)) for g in given)
            raise ValueError(f"{where}: {label} ({name}) cannot take its input of shape "
                             f"{shapes}: {exc}") from None
        check_tensor_size(out[1:], f"{where}: {label} ({name}) output for one image", MAX_ACTIVATION_ELEMENTS)
    return layer, out


def _small_args(name: str, kwargs: dict) -> dict:
    """Arguments that make a small copy of a large Conv2d, ConvTranspose2d or Linear."""
    if name == "Linear":
        return {"in_features": 1, "out_features": 1, "bias": False}
    groups = kwargs.get("groups", 1)
    return {"in_channels": groups, "out_channels": groups, "bias": False}


def _build_layers(layers, shape, where: str, prefix: str,
                  budget: Optional[_Budget] = None) -> Tuple[List[nn.Module], Optional[tuple]]:
    if not isinstance(layers, list) or not layers:
        raise ValueError(f"{where}: 'layers' must be a non-empty list of layers, got {layers!r}")
    built = []
    for index, entry in enumerate(layers):
        layer, shape = _build_layer(entry, shape, where, f"layer {prefix}{index}", budget=budget)
        built.append(layer)
    return built, shape


def _is_graph_spec(spec: dict) -> bool:
    layers = spec.get("layers")
    return "output" in spec or (isinstance(layers, list) and any(
        isinstance(e, dict) and any(k in e for k in _GRAPH_KEYS) for e in layers))


def _graph_order(layers: list, where: str) -> Tuple[List[str], Dict[str, List[str]], List[int]]:
    """Names, inputs and a dependency order of a graph model file's layers (cycles refused)."""
    names, inputs = [], {}
    for index, entry in enumerate(layers):
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: layer {index}: expected a mapping with a 'type' key, got {entry!r}")
        name = entry.get("name", str(index))
        if not isinstance(name, str) or not name or name == INPUT:
            raise ValueError(f"{where}: layer {index}: 'name' must be a non-empty string other than "
                             f"'{INPUT}', got {name!r}")
        if name in inputs:
            raise ValueError(f"{where}: layer {index}: the name {name!r} is used twice")
        given = entry.get("inputs", [names[-1]] if names else [INPUT])
        if isinstance(given, str):
            given = [given]
        if not isinstance(given, list) or not given or not all(isinstance(g, str) for g in given):
            raise ValueError(f"{where}: layer {index} ({name}): 'inputs' must be a non-empty list of layer "
                             f"names (or \"{INPUT}\"), got {given!r}")
        names.append(name)
        inputs[name] = list(given)
    for name in names:
        for source in inputs[name]:
            if source != INPUT and source not in inputs:
                raise ValueError(f"{where}: layer {name!r} reads {source!r}, which is not the name of any "
                                 f"layer (names: {', '.join(names)}) nor \"{INPUT}\"")
    order, state = [], {}

    def visit(name, path):
        if state.get(name) == "done":
            return
        if state.get(name) == "open":
            cycle = path[path.index(name):] + [name]
            raise ValueError(f"{where}: the layers {' -> '.join(cycle)} form a cycle; a model's layers "
                             "must only read earlier values")
        state[name] = "open"
        for source in inputs[name]:
            if source != INPUT:
                visit(source, path + [name])
        state[name] = "done"
        order.append(names.index(name))

    for name in names:
        visit(name, [])
    return names, inputs, order


def _build_graph(spec: dict, shape: Optional[tuple], where: str, budget: Optional[_Budget] = None):
    layers = spec["layers"]
    if not isinstance(layers, list) or not layers:
        raise ValueError(f"{where}: 'layers' must be a non-empty list of layers, got {layers!r}")
    names, inputs, order = _graph_order(layers, where)
    shapes = {INPUT: shape}
    modules, nodes = {}, []
    for index in order:
        entry, name = layers[index], names[index]
        given = [shapes[source] for source in inputs[name]]
        known = None if any(g is None for g in given) else given
        if "same_as" in entry:
            other = entry["same_as"]
            extra = sorted(set(entry) - {"name", "inputs", "same_as"})
            if other not in modules:
                raise ValueError(f"{where}: layer {name!r}: 'same_as' must name an earlier layer whose weights "
                                 f"it shares, got {other!r}")
            if extra:
                raise ValueError(f"{where}: layer {name!r} shares the layer {other!r}: it takes no {extra[0]!r}")
            module = modules[other]
            out = None
            if known is not None:
                try:
                    out = tuple(module.output_shape(*known))
                except (ValueError, TypeError, IndexError) as exc:
                    raise ValueError(f"{where}: layer {name!r} (same as {other!r}) cannot take its input of "
                                     f"shape {' and '.join(map(str, known))}: {exc}") from None
        else:
            module, out = _build_layer(entry, given[0], where, f"layer {name!r}", known, budget)
        modules[name] = module
        shapes[name] = out
        nodes.append(nn.Node(name, module, tuple(inputs[name])))
    output = spec.get("output", names[-1])
    if output not in modules:
        raise ValueError(f"{where}: 'output' must name a layer, got {output!r}")
    if budget is not None and budget.shape_only:
        return None
    try:
        return nn.Graph(nodes, output=output)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


def build_model(spec: dict, input_shape: Optional[Sequence[int]] = None,
                source: str = "model spec") -> nn.Module:
    """Build a model from a model spec (the parsed content of a model file).

    A plain list of layers builds a :class:`~cnnlab.nn.Sequential`; when a layer
    has a ``"name"``, ``"inputs"`` or ``"same_as"`` key (or the spec an
    ``"output"``), a :class:`~cnnlab.nn.Graph`.

    Args:
        spec: ``{"input_shape": [C, H, W] (optional), "layers": [{"type": ..., ...}, ...],
            "output": name (optional)}``.
        input_shape: ``(C, H, W)`` of the data; must equal the spec's when both are given.
        source: the file name, used in error messages.

    Raises:
        ValueError: unknown layer type or argument (the message names the layer index and the
            key), a layer that cannot take the shape reaching it, a shape mismatch, an input
            name no layer has, or layers that read each other in a cycle.
    """
    if not isinstance(spec, dict):
        raise ValueError(f"{source}: expected a mapping with a 'layers' list, got {type(spec).__name__}")
    unknown = sorted(set(spec) - {"input_shape", "layers", "output", "name", "description", "format",
                                  "version"})
    if unknown:
        raise ValueError(f"{source}: unknown top-level key {unknown[0]!r}; expected 'input_shape', "
                         "'layers' and optionally 'output', 'name', 'description'")
    if "layers" not in spec:
        raise ValueError(f"{source}: missing key 'layers' (the list of layers)")
    file_shape = _shape_tuple(spec["input_shape"], source) if spec.get("input_shape") is not None else None
    data_shape = _shape_tuple(input_shape, source) if input_shape is not None else None
    if file_shape is not None and data_shape is not None and file_shape != data_shape:
        raise ValueError(f"{source} is written for inputs of shape {list(file_shape)} (C, H, W), "
                         f"but the data have shape {list(data_shape)}")
    shape = file_shape or data_shape
    if shape is not None:
        from ._schema import MAX_ACTIVATION_ELEMENTS, check_tensor_size
        check_tensor_size(shape, f"{source}: one input image", MAX_ACTIVATION_ELEMENTS)
    batch_shape = None if shape is None else (1,) + shape
    # the size budget first: every layer's parameters summed by shape inference, no large weight allocated
    from ._schema import BudgetError
    from .random import get_state, set_state
    state = get_state()
    try:
        if _is_graph_spec(spec):
            _build_graph(spec, batch_shape, source, _Budget(shape_only=True))
        else:
            _build_layers(spec["layers"], batch_shape, source, "", _Budget(shape_only=True))
    except BudgetError:
        raise
    except (ValueError, TypeError):
        pass  # not a size: building layer by layer below names it (the layers before it fit the budget)
    finally:
        set_state(state)  # the small copies drew weights: the model's own weights stay as seeded
    budget = _Budget()
    if _is_graph_spec(spec):
        model = _build_graph(spec, batch_shape, source, budget)
    else:
        layers, _ = _build_layers(spec["layers"], batch_shape, source, "", budget)
        model = nn.Sequential(*layers)
    from ._schema import MAX_PARAMETERS
    params = sum(int(p._data.size) for p in model.parameters())
    if params > MAX_PARAMETERS:
        raise ValueError(f"{source}: the model has {params:,} parameters, more than the {MAX_PARAMETERS:,} "
                         "cnnlab builds")
    return model


def parse_model_spec(text: str, fmt: str, source: str = "model file") -> dict:
    """Parse a model file's text; ``fmt`` is ``'json'``, ``'yaml'`` or ``'toml'``."""
    from ._schema import MAX_MODEL_FILE_BYTES, check_model_document, parse_yaml
    if fmt not in ("json", "yaml", "toml"):
        raise ValueError(f"unknown model file format {fmt!r}; expected 'json', 'yaml' or 'toml'")
    if len(text) > MAX_MODEL_FILE_BYTES:
        raise ValueError(f"{source} is larger than {MAX_MODEL_FILE_BYTES:,} bytes; cnnlab does not read "
                         "model files that large")
    try:
        if fmt == "json":
            spec = json.loads(text)
        elif fmt == "yaml":
            spec = parse_yaml(text)
        else:
            try:
                import tomllib
            except ImportError:  # Python < 3.11
                import tomli as tomllib
            spec = tomllib.loads(text)
    except ImportError:
        raise
    except RecursionError:
        raise ValueError(f"{source} is nested too deeply to be a model file") from None
    except Exception as exc:  # the parsers' own error classes differ; all mean "not valid"
        raise ValueError(f"{source} is not valid {fmt.upper()}: {' '.join(str(exc).split())}") from None
    check_model_document(spec, source)  # caps: nesting, layers, sizes (files are data)
    return spec


def load_model_file(path, input_shape: Optional[Sequence[int]] = None) -> Tuple[nn.Sequential, dict]:
    """Read a ``.json``/``.yaml``/``.yml``/``.toml`` model file and build it.

    Returns:
        ``(model, spec)``; the model's weights are freshly initialised.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in MODEL_FILE_SUFFIXES:
        raise ValueError(f"model file {path} must end in one of {', '.join(MODEL_FILE_SUFFIXES)}, "
                         f"got {suffix or 'no suffix'}")
    if not path.is_file():
        raise FileNotFoundError(f"model file {path} does not exist")
    fmt = {".json": "json", ".yaml": "yaml", ".yml": "yaml", ".toml": "toml"}[suffix]
    from ._schema import read_model_text
    spec = parse_model_spec(read_model_text(path), fmt, str(path))
    return build_model(spec, input_shape, str(path)), spec


# --- model -> spec ----------------------------------------------------------------------
def _jsonable(value):
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        return value.item()
    return value


def _compact(value):
    """``[3, 3] -> 3`` (what a person would write)."""
    if isinstance(value, list) and len(value) == 2 and value[0] == value[1] and not isinstance(value[0], list):
        return value[0]
    return value


def _layer_spec(layer: nn.Module) -> dict:
    if type(layer) is nn.Sequential:
        return {"type": "Sequential", "layers": [_layer_spec(child) for child in layer]}
    name = type(layer).__name__
    if name not in LAYER_TYPES or type(layer) is not LAYER_TYPES[name]:
        raise ValueError(f"cannot describe layer {name} in a model file; supported types: "
                         f"{', '.join(sorted(LAYER_TYPES))}, Sequential")
    spec = {"type": name}
    for arg, param in _accepted_args(type(layer)).items():
        if not hasattr(layer, arg):
            continue
        value = getattr(layer, arg)
        if arg == "bias":
            value = value is not None
        value = _jsonable(value)
        default = _jsonable(param.default) if param.default is not param.empty else param.empty
        if arg in _PAIR_ARGS:
            value = _compact(value)
            default = _compact(default) if default is not param.empty else default
        if default is not param.empty and value == default:
            continue
        if arg == "stride" and name.endswith("Pool2d") and value == _compact(_jsonable(layer.kernel_size)):
            continue  # pooling's stride defaults to its kernel size
        spec[arg] = value
    return spec


def _graph_spec(graph: nn.Graph) -> dict:
    layers, first_name = [], {}
    previous = INPUT
    for node in graph.nodes:
        if id(node.module) in first_name:
            entry = {"name": node.name, "same_as": first_name[id(node.module)]}
        else:
            first_name[id(node.module)] = node.name
            if isinstance(node.module, nn.Graph):
                raise ValueError(f"cannot describe graph node {node.name!r} in a model file: it holds a whole "
                                 "graph; nest its nodes in the outer graph instead")
            entry = {"name": node.name, **_layer_spec(node.module)}
        if list(node.inputs) != [previous]:
            entry["inputs"] = list(node.inputs)
        layers.append(entry)
        previous = node.name
    spec = {"layers": layers}
    if graph.output != graph.nodes[-1].name:
        spec["output"] = graph.output
    return spec


def model_to_spec(model: nn.Module, input_shape: Optional[Sequence[int]] = None) -> dict:
    """The model-file structure of a model (JSON-ready).

    A Sequential is written as a list of layers; a :class:`~cnnlab.nn.Graph` as layers
    with names and inputs; a user's own Module is traced into a graph first (that
    needs ``input_shape``).  ``build_model(model_to_spec(m, shape))`` rebuilds the same
    architecture (fresh weights) with the same ``state_dict`` keys.
    """
    spec = {}
    if input_shape is not None:
        spec["input_shape"] = [int(s) for s in input_shape]
    if type(model) is nn.Sequential:
        spec["layers"] = [_layer_spec(layer) for layer in model]
    elif is_layer(model):
        spec["layers"] = [_layer_spec(model)]
    else:
        spec.update(_graph_spec(nn.as_graph(model, input_shape)))
    return spec


# --- one entry point -------------------------------------------------------------------------
def create_model(name_or_file: str, input_shape: Sequence[int], num_classes: int,
                 **kwargs) -> Tuple[nn.Sequential, dict]:
    """Build a zoo model by name, or a model file, for data of ``input_shape`` and ``num_classes``.

    Args:
        name_or_file: a zoo name (``digitsnet``, ``lenet5``, ``tinyvgg``, ``smallnet``) or a
            path to a model file.
        input_shape: ``(C, H, W)`` of one image.
        num_classes: number of classes of the data.
        **kwargs: extra arguments of the zoo builder (e.g. ``width=64`` for smallnet).

    Returns:
        ``(model, info)`` with ``info = {"name": ..., "kwargs": {...}}`` (zoo) or
        ``{"name": ..., "file": path}`` (model file).

    Raises:
        ValueError: unknown model, a model that cannot take this input shape, or whose output
            does not have ``num_classes`` scores.
        FileNotFoundError: the model file does not exist.
    """
    from ._schema import BudgetError
    c, h, w = _shape_tuple(input_shape, "create_model")
    name = str(name_or_file)
    if name.lower() in MODELS:
        key = name.lower()
        builder = MODELS[key]
        try:
            model = builder(in_channels=c, num_classes=int(num_classes), input_size=(h, w), **kwargs)
        except BudgetError:
            raise  # too large for any model: no other zoo model to suggest
        except ValueError as exc:
            suggestion = default_model_name("", (c, h, w))
            raise ValueError(f"{exc}. Choose a model made for this size, e.g. --model {suggestion}") from None
        info = {"name": key, "kwargs": {k: _jsonable(v) for k, v in kwargs.items()}}
    elif is_model_file(name) or Path(name).is_file():
        model, spec = load_model_file(name, (c, h, w))
        info = {"name": str(spec.get("name") or Path(name).stem), "file": str(name)}
    else:
        raise ValueError(f"unknown model {name!r}: expected one of {', '.join(MODELS)}, or a model "
                         f"file ending in {', '.join(MODEL_FILE_SUFFIXES)}")
    check_size_budget(model, (c, h, w), f"model {info['name']} for {c}x{h}x{w} images")
    out = model.output_shape((1, c, h, w))
    if len(out) != 2 or out[1] != num_classes:
        raise ValueError(f"model {info['name']} outputs shape {tuple(out[1:])} per image, but the data "
                         f"have {num_classes} classes: its last layer must give {num_classes} scores")
    return model, info


def check_size_budget(model, input_shape, where: str = "model") -> None:
    """The size budget, by shape inference before any forward pass: every layer's output for one image
    of ``input_shape`` (``(C, H, W)``) holds at most :data:`_schema.MAX_ACTIVATION_ELEMENTS` values and the
    model at most :data:`_schema.MAX_PARAMETERS` parameters.  Shapes a layer cannot take are left to the
    caller's own checks.

    Raises:
        ValueError: naming ``where``, the layer and the size.
    """
    params = sum(int(p._data.size) for p in model.parameters())
    if params > _schema.MAX_PARAMETERS:
        raise ValueError(f"{where}: {params:,} parameters, more than the {_schema.MAX_PARAMETERS:,} cnnlab builds")
    try:
        shape = tuple(int(v) for v in input_shape)
        graph = nn.as_graph(model, shape) if isinstance(model, (nn.Sequential, nn.Graph)) else None
    except (ValueError, TypeError):
        return
    if graph is None:
        return
    shapes = {graph.input_name: (1,) + shape}
    for node in graph.nodes:
        try:
            out = tuple(node.module.output_shape(*[shapes[name] for name in node.inputs]))
        except (ValueError, TypeError, IndexError, KeyError):
            return  # the caller's own checks name the layer that cannot take its input
        shapes[node.name] = out
        _schema.check_tensor_size(out[1:], f"{where}: layer {node.name} ({type(node.module).__name__}) output for one "
                                   "image", _schema.MAX_ACTIVATION_ELEMENTS)
