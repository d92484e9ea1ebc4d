"""ONNX import and export: bring a PyTorch or Keras CNN in, take a cnnlab model out.

``load(path)`` reads an ONNX file into a cnnlab graph model; ``export(model,
path, input_shape)`` writes one.  The ``onnx`` package (and ``onnxruntime``
for the inference engine) is an optional extra, ``pip install "cnnlab[onnx]"``,
imported only inside these functions.
"""
from __future__ import annotations

from ._extra import _require

__all__ = ["load", "export", "load_saved", "OnnxImportError", "OnnxExportError"]


def load(path, trainable: bool = False):
    """Read an ONNX model (opset 11 or newer) into a cnnlab graph model, in eval mode.

    Layer names come from the module paths PyTorch's exporters record, so the
    state_dict keys of an imported PyTorch model are PyTorch's (``fc.weight``).
    The weights are ordinary parameters: ``trainable=True`` returns the model in
    training mode, ready to fine-tune (see :mod:`cnnlab.finetune` for a new head
    and frozen features).
    Raises ``OnnxImportError`` (a ValueError) with one line naming the problem.
    """
    _require("onnx")
    from ._import import load as _load
    model = _load(path)
    return model.train() if trainable else model


def export(model, path, input_shape, opset: int = 17, metadata=None):
    """Write ``model`` (any cnnlab layer, Sequential or graph model) as an ONNX file.

    Args:
        input_shape: ``(C, H, W)`` of one image; the batch dimension is symbolic.
        opset: 13 to 21.
        metadata: extra ``metadata_props`` (str -> str), e.g. class names.
    """
    _require("onnx")
    from ._export import export as _export
    return _export(model, path, input_shape, opset, metadata)


def load_saved(path, classes=None, mean=None, std=None):
    """A :class:`cnnlab.io.SavedModel` from a ``.onnx`` file (see :mod:`._saved`)."""
    _require("onnx")
    from ._saved import load_saved as _load_saved
    return _load_saved(path, classes, mean, std)


def __getattr__(name):
    if name == "OnnxImportError":
        from ._import import OnnxImportError
        return OnnxImportError
    if name == "OnnxExportError":
        from ._export import OnnxExportError
        return OnnxExportError
    raise AttributeError(f"module 'cnnlab.onnx' has no attribute {name!r}")
