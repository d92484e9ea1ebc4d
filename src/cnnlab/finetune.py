"""Fine-tuning a model from elsewhere: an ONNX file as trainable cnnlab layers, a new head, frozen features.

``cnnlab train --dataset FOLDER --model MODEL.onnx [--new-head] [--freeze]`` uses
:func:`pretrained_model`; from Python::

    model = cnnlab.onnx.load("resnet.onnx", trainable=True)
    head = replace_head(model, num_classes=3)    # a fresh Linear (or 1x1 conv) for 3 classes
    freeze(model, keep=[head])                   # train the head only
    cnnlab.fit(model, train_set, ...)

The head is the layer that computes the scores: found from the output backwards,
past layers that keep the scores' meaning (softmax, flatten, dropout, global
pooling, ReLU), it must be a dense layer (ONNX ``Gemm``/``MatMul``) or a 1x1
convolution (SqueezeNet's classifier).
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Optional, Sequence, Tuple

from . import nn
from .nn.merge import Mean, Reshape

__all__ = ["is_onnx_file", "find_head", "replace_head", "freeze", "pretrained_model"]

# layers between the classifier and the output that keep one score per class
_AFTER_HEAD = (nn.Softmax, nn.LogSoftmax, nn.Flatten, nn.Identity, nn.Dropout, nn.ReLU, nn.AdaptiveAvgPool2d,
               nn.GlobalAvgPool2d, nn.AdaptiveMaxPool2d, nn.GlobalMaxPool2d, Mean, Reshape)


def is_onnx_file(name) -> bool:
    return str(name).lower().endswith(".onnx")


def _is_head(module) -> bool:
    return isinstance(module, nn.Linear) or (isinstance(module, nn.Conv2d) and tuple(module.kernel_size) == (1, 1)
                                             and module.groups == 1)


def find_head(model: nn.Graph) -> nn.Node:
    """The graph node of the classifier layer (see the module's docstring); ValueError if there is none."""
    by_name = {n.name: n for n in model.nodes}
    node, passed = by_name[model.output], []
    while not _is_head(node.module):
        if not isinstance(node.module, _AFTER_HEAD) or len(node.inputs) != 1 or node.inputs[0] not in by_name:
            raise ValueError(f"the model has no classifier head to replace: its output comes from "
                             f"{' <- '.join(passed + [f'{node.name} ({type(node.module).__name__})'])}; a head is a "
                             f"final dense layer (ONNX Gemm/MatMul) or 1x1 convolution")
        passed.append(f"{node.name} ({type(node.module).__name__})")
        node = by_name[node.inputs[0]]
    return node


def replace_head(model: nn.Graph, num_classes: int, input_shape: Optional[Sequence[int]] = None) -> nn.Module:
    """Swap the classifier layer for a freshly initialised one with ``num_classes`` outputs (in place).

    Returns the new layer.  With ``input_shape`` ``(C, H, W)``, checks that the model then
    gives ``num_classes`` scores per image.
    """
    if not isinstance(model, nn.Graph):
        raise TypeError(f"replace_head takes a graph model (cnnlab.onnx.load gives one), got {type(model).__name__}")
    head = find_head(model)
    old = head.module
    if isinstance(old, nn.Linear):
        new = nn.Linear(old.in_features, int(num_classes), bias=True)
    else:
        new = nn.Conv2d(old.in_channels, int(num_classes), 1, old.stride, 0, bias=True)
    nodes = [nn.Node(n.name, new if n is head else n.module, n.inputs) for n in model.nodes]
    training = model.training
    nn.Graph.__init__(model, nodes, output=model.output, input_name=model.input_name)
    model.train(training)
    if input_shape is not None:
        out = model.output_shape((1, *input_shape))
        if len(out) != 2 or out[1] != num_classes:
            raise ValueError(f"after replacing the head {head.name!r} the model gives scores of shape {out[1:]}, "
                             f"not {num_classes}: a layer after the head fixes the number of outputs")
    return new


def freeze(model: nn.Module, keep: Iterable[nn.Module] = ()) -> int:
    """Stop training every parameter except those of the layers in ``keep``; returns how many stay trainable.

    As ``requires_grad_(False)`` in PyTorch: frozen batch norms still update their running
    statistics while the model is in training mode.
    """
    keep_ids = {id(p) for layer in keep for p in layer.parameters()}
    trainable = 0
    for p in model.parameters():
        p.requires_grad = id(p) in keep_ids
        trainable += int(p.requires_grad) * p._data.size
    return trainable


def onnx_input_shape(path) -> Tuple[int, int, int]:
    """The ``(C, H, W)`` an ONNX model takes (for loading an image folder at that size)."""
    from .onnx._import import load_with_info
    return tuple(load_with_info(path)[1]["input_shape"])


def pretrained_model(path, input_shape: Sequence[int], num_classes: int, new_head: bool = False,
                     freeze_features: bool = False) -> Tuple[nn.Graph, dict]:
    """An ONNX model as trainable layers for ``num_classes`` classes; ``(model, info)`` as ``create_model``."""
    from .onnx import load
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file {path} does not exist")
    model = load(path, trainable=True)
    shape = tuple(int(s) for s in input_shape)
    try:
        model.output_shape((1, *shape))
    except ValueError as exc:
        raise ValueError(f"{path} takes other images than the data's {'x'.join(map(str, shape))}: {exc}") from None
    head = replace_head(model, num_classes, shape) if new_head else find_head(model).module if freeze_features \
        else None
    out = model.output_shape((1, *shape))
    if len(out) != 2 or out[1] != num_classes:
        raise ValueError(f"{path} gives {out[1:]} scores per image, but the data have {num_classes} classes: add "
                         f"--new-head to replace its classifier")
    if freeze_features:
        freeze(model, keep=[head])
    info = {"name": path.stem, "file": str(path), "new_head": bool(new_head), "freeze": bool(freeze_features)}
    return model, info
