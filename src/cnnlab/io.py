"""Saving and loading models: ``cnnlab.io.save_model`` / ``cnnlab.io.load_model`` and the file helpers.

A saved model is two files in one folder (see :mod:`cnnlab.runs.model`)::

    model.npz    the state_dict: one array per parameter/buffer, PyTorch's key names
    model.json   architecture (a model file), preprocessing (input shape, mean/std), class names

No pickle anywhere, and every write is atomic (:mod:`cnnlab.runs.files`).

:func:`load_model` reads every kind of model file cnnlab knows, picking the loader by the file's kind
from :data:`MODEL_LOADERS`, the one table of them: a run or model folder (or its ``model.json`` /
``model.npz``), or an ``.onnx`` file (with the ``onnx`` extra).  Every command and the explorer load
models through it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, List, Tuple

from .runs.files import (atomic_write_bytes, load_bundle, load_npz, load_state_dict, read_json, save_bundle,
                         save_npz, save_state_dict, write_json)
from .runs.model import FORMAT, MODEL_JSON, MODEL_WEIGHTS, SavedModel, save_model
from .runs.model import load_model as load_run_model

__all__ = ["atomic_write_bytes", "write_json", "read_json", "save_npz", "load_npz", "save_bundle",
           "load_bundle", "save_state_dict", "load_state_dict", "save_model", "load_model", "save", "load",
           "SavedModel", "MODEL_WEIGHTS", "MODEL_JSON", "FORMAT", "MODEL_LOADERS", "model_kind"]


def _is_onnx(path) -> bool:
    return str(path).lower().endswith(".onnx")


def _load_onnx(path, **options) -> SavedModel:
    from .onnx import load_saved  # the onnx extra, imported only for .onnx files
    return load_saved(path, **options)


def _load_folder(path, mean=None, std=None, **options) -> SavedModel:
    if options:
        raise TypeError(f"{', '.join(sorted(options))} describe a foreign model file; a run folder's "
                        "model.json already holds its class names")
    return load_run_model(path, mean=mean, std=std)


#: ``(kind, matches(path), load(path, **options))``, tried in order; the last matches everything
MODEL_LOADERS: List[Tuple[str, Callable, Callable]] = [
    ("ONNX file", _is_onnx, _load_onnx),
    ("run or model folder", lambda path: True, _load_folder),
]


def model_kind(path) -> str:
    """The kind of model file ``path`` is, as :data:`MODEL_LOADERS` names it."""
    return next(kind for kind, matches, _ in MODEL_LOADERS if matches(path))


def load_model(path, **options) -> SavedModel:
    """Load any model file cnnlab knows: a folder written by :func:`save_model` (a run directory, or its
    ``model.json``/``model.npz``), or an ``.onnx`` file.

    ``mean``/``std`` (the command line's ``--mean/--std``) replace the normalisation the model
    records (see :func:`cnnlab.preprocessing.resolve_preprocessing`); an ``.onnx`` file also takes
    ``classes``.

    Returns:
        A :class:`SavedModel` whose ``model`` is in eval mode.

    Raises:
        FileNotFoundError: the folder or a file is missing.
        ValueError: the files are not a cnnlab model, or the weights do not fit the architecture.
    """
    for _, matches, load in MODEL_LOADERS:
        if matches(Path(path)):
            return load(path, **options)
    raise AssertionError("the last loader matches every path")  # pragma: no cover


save = save_model
load = load_model
