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

import io as _io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ._files import atomic_open
from . import nn

__all__ = ["atomic_write_bytes", "write_json", "read_json", "save_npz", "load_npz", "save_bundle",
           "load_bundle", "save_state_dict", "load_state_dict", "save_model", "load_model", "save", "load",
           "SavedModel", "MODEL_WEIGHTS", "MODEL_JSON", "FORMAT"]

MODEL_WEIGHTS = "model.npz"
MODEL_JSON = "model.json"
FORMAT = "cnnlab-model"
FORMAT_VERSION = 2   # 2: the architecture may be a graph (layers with names and inputs)
_META_KEY = "__meta_json__"


# --- atomic files ------------------------------------------------------------------------------
def atomic_write_bytes(path, data: bytes, root=None) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and ``os.replace``;
    a symbolic link at ``path`` (or in a folder below ``root``) is refused, never written through."""
    with atomic_open(path, root=root) as (f, _):
        f.write(data)
    return Path(path)


def _json_default(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON: {value!r}")


def write_json(path, obj) -> Path:
    """Atomically write ``obj`` as indented JSON (NumPy scalars and arrays become numbers and lists)."""
    text = json.dumps(obj, indent=2, default=_json_default) + "\n"
    return atomic_write_bytes(path, text.encode("utf-8"))


def read_json(path, what: str = "JSON file") -> dict:
    """Read a JSON file; ``FileNotFoundError``/``ValueError`` name the path."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist")
    from ._schema import MAX_RUN_FILE_BYTES
    if path.stat().st_size > MAX_RUN_FILE_BYTES:
        raise ValueError(f"{what} {path} is larger than {MAX_RUN_FILE_BYTES:,} bytes; cnnlab does not read "
                         f"{what}s that large")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except RecursionError:
        raise ValueError(f"{what} {path} is nested too deeply to be a cnnlab file") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{what} {path} is not valid JSON: {exc}") from None


def save_npz(path, arrays: Dict[str, np.ndarray], compress: bool = False) -> Path:
    """Atomically write a dict of arrays as ``.npz`` (no object arrays: no pickle)."""
    clean = {}
    for key, value in arrays.items():
        array = np.asarray(value)
        if array.dtype.kind == "O":
            raise TypeError(f"array {key!r} has dtype object, which .npz can only store with pickle")
        clean[key] = array
    buffer = _io.BytesIO()
    (np.savez_compressed if compress else np.savez)(buffer, **clean)
    return atomic_write_bytes(path, buffer.getvalue())


def load_npz(path, what: str = "weights file") -> Dict[str, np.ndarray]:
    """Read every array of an ``.npz`` file with ``allow_pickle=False``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist")
    from ._schema import check_npz_members
    _check_zip_members_readable(path, what)
    check_npz_members(path, what)  # array headers checked before NumPy allocates anything
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise ValueError(f"{what} {path} is not a readable .npz file: {exc}") from None
    _check_real_numbers(arrays, path, what)
    return arrays


def _check_zip_members_readable(path: Path, what: str) -> None:
    """Refuse encrypted members and compression methods Python's zipfile cannot read (their raw texts
    name neither the file nor the remedy)."""
    supported = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate", zipfile.ZIP_BZIP2: "bzip2",
                 zipfile.ZIP_LZMA: "lzma"}
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise ValueError(f"{what} {path} is not a readable .npz file: {exc}") from None
    for member in members:
        if member.flag_bits & 0x1:
            raise ValueError(f"{what} {path}: member {member.filename!r} is encrypted (password protected); "
                             "cnnlab reads .npz files as NumPy writes them (numpy.savez)")
        if member.compress_type not in supported:
            raise ValueError(f"{what} {path}: member {member.filename!r} uses zip compression method "
                             f"{member.compress_type}, which cannot be read; .npz files use "
                             f"{' or '.join(sorted(set(supported.values())))} (numpy.savez, savez_compressed)")


def _check_real_numbers(arrays: Dict[str, np.ndarray], path, what: str) -> None:
    """Refuse arrays that are not real numbers: complex weights would be cast to their real part (and
    NumPy warn on stderr), text or records would fail deep inside a layer."""
    for key, array in arrays.items():
        if array.dtype.kind not in "biuf":
            kind = "complex numbers" if array.dtype.kind == "c" else "no numbers"
            raise ValueError(f"{what} {path}: array {key!r} holds {kind} (dtype {array.dtype}); cnnlab reads "
                             "only real numbers (float, int or bool arrays)")


def save_bundle(path, arrays: Dict[str, np.ndarray], meta: dict) -> Path:
    """One atomic ``.npz`` holding arrays plus a JSON document (stored as a uint8 array)."""
    if _META_KEY in arrays:
        raise ValueError(f"array name {_META_KEY!r} is reserved")
    payload = json.dumps(meta, default=_json_default).encode("utf-8")
    return save_npz(path, {**arrays, _META_KEY: np.frombuffer(payload, dtype=np.uint8)})


def load_bundle(path, what: str = "checkpoint") -> Tuple[Dict[str, np.ndarray], dict]:
    """Read a file written by :func:`save_bundle`: ``(arrays, meta)``."""
    arrays = load_npz(path, what)
    if _META_KEY not in arrays:
        raise ValueError(f"{what} {path} has no {_META_KEY} entry: not written by cnnlab")
    try:
        meta = json.loads(arrays.pop(_META_KEY).tobytes().decode("utf-8"))
    except ValueError as exc:  # bad UTF-8 or JSON
        raise ValueError(f"{what} {path}: its description ({_META_KEY}) is not valid JSON: {exc}") from None
    return arrays, meta


# --- state dicts ---------------------------------------------------------------------------
def save_state_dict(model_or_state, path) -> Path:
    """Write a model's ``state_dict`` (or a dict of arrays) as ``.npz``, keys unchanged."""
    state = model_or_state.state_dict() if isinstance(model_or_state, nn.Module) else model_or_state
    return save_npz(path, {k: np.asarray(v) for k, v in state.items()})


def load_state_dict(path) -> Dict[str, np.ndarray]:
    """Read a ``.npz`` state dict (``model.load_state_dict(load_state_dict(path))``)."""
    return load_npz(path)


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
        from .preprocessing import Preprocessing
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
        from .explain.features import predict_proba
        from .explain.runs import model_input
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
    from . import __version__
    from .models import model_to_spec
    from .nn.trace import is_layer

    from .preprocessing import preprocessing_of
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

    ``mean``/``std`` (or the command line's ``--mean/--std``) replace the normalisation
    the model records (see :func:`cnnlab.preprocessing.resolve_preprocessing`); the
    returned model carries it, so :func:`cnnlab.train.evaluate`/``predict`` use it.

    Returns:
        A :class:`SavedModel` whose ``model`` is in eval mode.

    Raises:
        FileNotFoundError: the folder or a file is missing.
        ValueError: the files are not a cnnlab model, or the weights do not fit the architecture.
    """
    from .models import build_model

    if str(path).lower().endswith(".onnx"):  # an ONNX file (needs the onnx extra): see cnnlab.onnx.load_saved
        from .onnx import load_saved
        return load_saved(path, mean=mean, std=std)
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
    from .preprocessing import attach, resolve_preprocessing
    recorded = {"mean": pre.get("mean"), "std": pre.get("std")}  # a model folder always records it (null: none)
    chosen = resolve_preprocessing(recorded, mean, std, channels=shape[0], source=str(directory))
    attach(model, chosen)
    return SavedModel(model=model, input_shape=shape, classes=[str(c) for c in info.get("classes", [])],
                      mean=chosen.mean, std=chosen.std, name=str(info.get("name") or directory.resolve().name),
                      info=info,
                      path=directory, origin=chosen.origin)


# --- checks of what a model folder holds (files are data; the validators are in cnnlab._schema) ---
def _read_model_json(directory: Path) -> dict:
    from ._schema import check_model_json
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
    from ._schema import check_model_outputs
    check_model_outputs(info, model, shape, path)


save = save_model
load = load_model
