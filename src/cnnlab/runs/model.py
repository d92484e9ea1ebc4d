"""Saving and loading models: weights in ``.npz``, architecture and preprocessing in JSON.

No pickle anywhere: weights are plain arrays read back with
``numpy.load(..., allow_pickle=False)``, and everything else is JSON.  Every
write is atomic: the bytes go to a temporary file in the destination folder,
which then replaces the target with ``os.replace``, so an interrupted write
never leaves a half-written file under the real name.

A saved model is two files in one folder::

    model.npz    the state_dict: one array per parameter/buffer, PyTorch's key names
                 ("0.weight", "0.bias", "1.running_mean", ...)
    model.json   {"format": "cnnlab-model", "format_version": 1, "cnnlab_version": ...,
                  "name": "lenet5", "architecture": {"input_shape": [C, H, W], "layers": [...]},
                  "preprocessing": {"input_shape": [C, H, W], "mean": [...], "std": [...],
                                    "pixel_range": [0.0, 1.0]},
                  "classes": ["0", "1", ...], "num_parameters": ..., ...}

``architecture`` is a model file (see :mod:`cnnlab.models`), so the folder is
readable without cnnlab.  A training run directory (see :mod:`cnnlab.train`)
holds these two files plus its history, metrics and checkpoint.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .. import nn
from .files import load_npz, read_json, save_state_dict, write_json

__all__ = ["save_model", "load_model", "SavedModel", "model_input", "image_file", "MODEL_WEIGHTS",
           "MODEL_JSON", "FORMAT"]

MODEL_WEIGHTS = "model.npz"
MODEL_JSON = "model.json"
FORMAT = "cnnlab-model"
FORMAT_VERSION = 2   # 2: the architecture may be a graph (layers with names and inputs)


# --- whole models ---------------------------------------------------------------------------
@dataclass
class SavedModel:
    """A model read back by :func:`load_model`, with what it needs to run on new images.

    Attributes:
        model: the network, in eval mode.
        input_shape: ``(C, H, W)`` it takes.
        classes: class names, ``classes[k]`` for output ``k``.
        mean, std: per-channel normalisation applied to [0, 1] images (``None``: none).
        name: the model's name (``"lenet5"``, a model file's stem, ...).
        info: the whole ``model.json`` document.
        path: the folder it was read from.
        origin: where ``mean``/``std`` came from: ``"model"`` (recorded with it),
            ``"command line"`` (``--mean/--std`` or ``load_model(mean=, std=)``) or
            ``"unknown"`` (nothing recorded: no normalisation assumed); see
            :func:`cnnlab.preprocessing.resolve_preprocessing`.
    """

    model: nn.Module
    input_shape: Tuple[int, int, int]
    classes: List[str]
    mean: Optional[Tuple[float, ...]] = None
    std: Optional[Tuple[float, ...]] = None
    name: str = ""
    info: dict = field(default_factory=dict)
    path: Optional[Path] = None
    origin: str = "model"

    @property
    def preprocessing(self):
        """The model's normalisation as a :class:`cnnlab.preprocessing.Preprocessing`."""
        from ..preprocessing import Preprocessing
        return Preprocessing(self.mean, self.std, self.origin)

    def preprocess(self, images: np.ndarray) -> np.ndarray:
        """Normalise ``(N, C, H, W)`` float images in [0, 1] the way the model was trained."""
        images = np.asarray(images, dtype=np.float32)
        if images.ndim != 4 or tuple(images.shape[1:]) != tuple(self.input_shape):
            raise ValueError(f"model {self.name} takes images of shape (N, {', '.join(map(str, self.input_shape))})"
                             f", got {images.shape}")
        return self.preprocessing.apply(images)

    def predict_image(self, path, invert: bool = False) -> Dict[str, float]:
        """Class probabilities for one image file, highest first: ``{"7": 0.98, ...}``.

        The file is read as ``cnnlab predict`` reads it (gray or RGB as the model
        takes, resized to its input size, normalised; ``invert`` for dark strokes
        on a light background).  What ``predict`` warns about (an image shrunk
        a lot, the other background polarity, ...) comes as a ``UserWarning``.
        """
        import warnings
        from ..nn.probabilities import predict_proba
        notes: List[str] = []
        _, x = model_input(self, path, invert, notes)
        for note in notes:
            warnings.warn(f"{path}: {note}", UserWarning, stacklevel=2)
        probs = predict_proba(self.model, x)[0]
        order = np.argsort(-probs, kind="stable")
        return {self.classes[k] if k < len(self.classes) else str(k): float(probs[k]) for k in order}


def save_model(model: nn.Module, directory, input_shape: Sequence[int], classes: Optional[Sequence[str]] = None,
               mean: Optional[Sequence[float]] = None, std: Optional[Sequence[float]] = None,
               name: str = "", extra: Optional[dict] = None, dataset: Optional[str] = None) -> Path:
    """Save ``model`` into ``directory`` as ``model.npz`` (weights) and ``model.json`` (the rest).

    Args:
        model: any model: a Sequential, a :class:`~cnnlab.nn.Graph`, or a user's own
            Module, whose ``forward`` is then traced into a graph (its layers' state-dict
            keys kept; what cannot be captured raises ``ValueError`` naming the op and line).
        directory: the folder (created if needed).
        input_shape: ``(C, H, W)`` the model takes.
        classes: class names (default ``"0" .. "K-1"`` for K outputs).
        mean, std: per-channel normalisation of [0, 1] images, or ``None`` (none; a model
            loaded by :func:`load_model` or trained by :func:`cnnlab.train.fit` keeps the
            normalisation it carries unless ``mean``/``std`` are given).
        name: a name such as ``"lenet5"`` (default: the folder's name).
        extra: more JSON-ready entries for ``model.json``.
        dataset: the data set it was trained on (``"digits"``, ``"mnist"``, an image folder):
            ``cnnlab evaluate``/``report`` of the folder then need no ``--dataset``.

    Returns:
        The folder.
    """
    from .. import __version__
    from ..models import model_to_spec
    from ..nn.trace import is_layer

    from ..preprocessing import preprocessing_of
    directory = Path(directory)
    carried = preprocessing_of(model) if mean is None and std is None else None
    if carried is not None and carried.normalises:
        mean, std = carried.mean, carried.std
    shape = [int(s) for s in input_shape]
    if len(shape) != 3:
        raise ValueError(f"input_shape must be (C, H, W), got {tuple(input_shape)}")
    if not (type(model) is nn.Sequential or isinstance(model, nn.Graph) or is_layer(model)):
        model = nn.as_graph(model, shape)
    out = model.output_shape((1, *shape))
    num_outputs = int(out[-1])
    if classes is None:
        classes = [str(k) for k in range(num_outputs)]
    classes = [str(c) for c in classes]
    if len(classes) != num_outputs:
        raise ValueError(f"the model gives {num_outputs} outputs but {len(classes)} class names were given")
    for label, value in (("mean", mean), ("std", std)):
        if value is not None and len(value) != shape[0]:
            raise ValueError(f"{label} needs one value per channel ({shape[0]}), got {list(value)}")
    info = {
        "format": FORMAT,
        "format_version": 2 if isinstance(model, nn.Graph) else 1,
        "cnnlab_version": __version__,
        "name": name or directory.resolve().name,
        "architecture": model_to_spec(model, shape),
        "preprocessing": {
            "input_shape": shape,
            "pixel_range": [0.0, 1.0],
            "mean": None if mean is None else [float(v) for v in mean],
            "std": None if std is None else [float(v) for v in std],
        },
        "classes": classes,
        "num_parameters": model.num_parameters(),
        "weights": MODEL_WEIGHTS,
    }
    if dataset is not None:
        info["dataset"] = str(dataset)
    if extra:
        info.update(extra)
    save_state_dict(model, directory / MODEL_WEIGHTS)
    write_json(directory / MODEL_JSON, info)
    return directory


def _model_dir(path) -> Path:
    path = Path(path)
    if path.is_dir():
        if not (path / MODEL_JSON).is_file():
            raise FileNotFoundError(f"{path} is not a cnnlab run or model folder: it has no {MODEL_JSON}")
        return path
    if path.name in (MODEL_JSON, MODEL_WEIGHTS) and path.is_file():
        return path.parent
    if not path.exists():
        raise FileNotFoundError(f"model {path} does not exist")
    raise ValueError(f"{path} is not a cnnlab model: expected a folder holding {MODEL_JSON} and "
                     f"{MODEL_WEIGHTS}, or one of those two files")


def load_model(path, mean: Optional[Sequence[float]] = None, std: Optional[Sequence[float]] = None) -> SavedModel:
    """Load a model saved by :func:`save_model` (a run directory, or its ``model.json``/``model.npz``).

    ``.onnx`` files and the other kinds of model file are read by :func:`cnnlab.io.load_model`, which
    picks the loader by file kind.

    ``mean``/``std`` (or the command line's ``--mean/--std``) replace the normalisation
    the model records (see :func:`cnnlab.preprocessing.resolve_preprocessing`); the
    returned model carries it, so :func:`cnnlab.train.evaluate`/``predict`` use it.

    Returns:
        A :class:`SavedModel` whose ``model`` is in eval mode.

    Raises:
        FileNotFoundError: the folder or a file is missing.
        ValueError: the files are not a cnnlab model, or the weights do not fit the architecture.
    """
    from ..models import build_model

    directory = _model_dir(path)
    info = _read_model_json(directory)  # every field checked (files are data: cnnlab._schema)
    pre = info.get("preprocessing") or {}
    shape = tuple(int(s) for s in pre.get("input_shape") or info["architecture"]["input_shape"])
    model = build_model(info["architecture"], shape, str(directory / MODEL_JSON))
    _check_outputs(info, model, shape, directory / MODEL_JSON)
    weights = load_npz(_weights_path(directory, info))
    try:
        model.load_state_dict(weights)
    except KeyError as exc:
        raise ValueError(f"{directory / MODEL_WEIGHTS} does not match the architecture in "
                         f"{directory / MODEL_JSON}: {exc.args[0]}") from None
    except ValueError as exc:
        raise ValueError(f"{directory / MODEL_WEIGHTS} does not match the architecture in "
                         f"{directory / MODEL_JSON}: {exc}") from None
    model.eval()
    from ..preprocessing import attach, resolve_preprocessing
    recorded = {"mean": pre.get("mean"), "std": pre.get("std")}  # a model folder always records it (null: none)
    chosen = resolve_preprocessing(recorded, mean, std, channels=shape[0], source=str(directory))
    attach(model, chosen)
    return SavedModel(model=model, input_shape=shape, classes=[str(c) for c in info.get("classes", [])],
                      mean=chosen.mean, std=chosen.std, name=str(info.get("name") or directory.resolve().name),
                      info=info,
                      path=directory, origin=chosen.origin)


# --- new images for a saved model -------------------------------------------------------------------
def image_file(path) -> Path:
    """``path`` if it is a regular image file (not a folder, a device or a link out of place)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"image file {path} does not exist")
    if path.is_dir():
        raise ValueError(f"{path} is a folder, expected an image file (PNG, JPEG, BMP, ...)")
    from ..data.folder import _regular_file
    return _regular_file(path)


def model_input(saved, path, invert: bool = False, notes: Optional[list] = None) -> Tuple[np.ndarray, np.ndarray]:
    """An image file made ready for a saved model, as ``cnnlab predict`` does it.

    The image is read with the model's channel count (grayscale or RGB),
    transparency composited onto the training background, resized to its input
    size, optionally inverted (``1 - x``: MNIST digits are white on black; a
    scan is usually black on white), and normalised with the model's mean/std
    (see :func:`cnnlab.data.inputs.read_model_input`).  ``notes``, a list,
    receives the warnings about how the image differs from the training data.

    Returns:
        ``(raw, x)``: raw ``(C, H, W)`` float32 in [0, 1] (for pictures) and
        ``x`` ``(1, C, H, W)`` as the model takes it.
    """
    from ..data.inputs import read_model_input
    stats = saved.info.get("data_stats") if isinstance(saved.info, dict) else None
    raw, warnings = read_model_input(image_file(path), saved.input_shape, stats if isinstance(stats, dict) else None,
                                     invert=True if invert else None)
    if notes is not None:
        notes.extend(warnings)
    return raw, saved.preprocess(raw[None])


# --- checks of what a model folder holds (files are data; the validators are in cnnlab._schema) ---
def _read_model_json(directory: Path) -> dict:
    from .._schema import check_model_json
    path = directory / MODEL_JSON
    return check_model_json(read_json(path, "model description"), path, FORMAT, FORMAT_VERSION)


def _weights_path(directory: Path, info: dict) -> Path:
    """The weights file named in model.json (a plain file name, checked by _schema), which must
    also stay in the folder once symbolic links are followed."""
    path = directory / info.get("weights", MODEL_WEIGHTS)
    if path.exists() and path.resolve().parent != directory.resolve():
        raise ValueError(f"{path} is a link to {path.resolve()}, outside the model's folder {directory}; "
                         "cnnlab reads weights only from the model's own folder")
    return path


def _check_outputs(info: dict, model: nn.Module, shape, path: Path) -> None:
    from .._schema import check_model_outputs
    check_model_outputs(info, model, shape, path)

