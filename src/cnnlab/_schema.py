"""Checks for every file cnnlab reads back: model files, ``model.json``, ``metrics.json``,
``config.json``, ``history.csv`` and checkpoints.

Files are data, never instructions: whatever a file holds, reading it either gives
the documented structure or raises a ``ValueError`` naming the file, the field,
what was expected and what was found.  Model files are also capped in size (a
small file must not describe a huge network), and YAML aliases are refused (an
800-byte "billion laughs" file would otherwise expand to 10^8 layers).

Hand-written validators, no dependency: each ``check_*`` function takes the
parsed document and the path it came from.
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Dict, Sequence

import numpy as np

#: the columns of a run's ``history.csv`` (and of the history inside its checkpoint)
HISTORY_COLUMNS = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "seconds")

__all__ = ["MAX_MODEL_FILE_BYTES", "MAX_LAYERS", "MAX_DEPTH", "MAX_SIZE", "MAX_LIST_ITEMS", "MAX_PARAMETERS",
           "read_model_text", "parse_yaml", "check_model_document", "check_weights_name", "check_model_json",
           "check_model_outputs", "check_metrics", "check_config", "check_checkpoint", "check_history"]

#: the largest model file read (bytes); real ones are a few kilobytes
MAX_MODEL_FILE_BYTES = 1 << 20
#: the most layers a model file may describe (nested blocks included)
MAX_LAYERS = 10_000
#: the deepest nesting of lists and mappings in a model file
MAX_DEPTH = 32
#: the largest int a layer argument may hold (channels, features, kernel sizes, strides, ...)
MAX_SIZE = 1 << 20
#: the longest list a layer argument may hold (pairs, nested padding, shapes)
MAX_LIST_ITEMS = 16
#: the most parameters a model file may ask for (estimated before any weight is allocated)
MAX_PARAMETERS = 200_000_000
#: the largest model.json, metrics.json, config.json or history.csv read
MAX_RUN_FILE_BYTES = 16 << 20
#: the most values one layer's output may hold for one image (4 bytes each: 1 GiB), by shape inference
MAX_ACTIVATION_ELEMENTS = 1 << 28
#: the most values one array an operation is asked to create may hold (a whole batch: 8 GiB of float32)
MAX_TENSOR_ELEMENTS = 1 << 31


class BudgetError(ValueError):
    """A size over the budget (parameters, one image's activations, one array), found before allocating."""


def _gib(count: float, itemsize: int = 4) -> str:
    return f"{count * itemsize / (1 << 30):,.1f} GiB"


def check_tensor_size(shape, what: str, limit: int = MAX_TENSOR_ELEMENTS) -> None:
    """Refuse, before allocating it, an array of ``shape`` over ``limit`` values.

    Raises:
        ValueError: ``"<what> would hold N values (X GiB), over cnnlab's limit of ..."``.
    """
    count = float(np.prod([float(max(int(s), 0)) for s in shape], dtype=np.float64)) if len(shape) else 1.0
    if count > limit:
        raise BudgetError(f"{what} would hold {count:,.0f} values ({_gib(count)} as float32) in shape "
                         f"{tuple(int(s) for s in shape)}, over cnnlab's limit of {limit:,} values")


def check_layer_parameters(entry: dict, where: str, total: float = 0.0) -> float:
    """Refuse a layer whose arguments (in_channels inferred from the shape included) ask for more than
    :data:`MAX_PARAMETERS` parameters, before it is built; with ``total`` (the parameters of the layers
    before it), refuse also a layer that brings the model past the cap.  Returns the layer's estimate."""
    params = _estimate(entry, {"channels": None, "spatial": None})
    check_layer_total(params, total, where)
    return params


def check_layer_total(params: float, total: float, where: str) -> None:
    """Refuse a layer of ``params`` parameters, alone or added to the ``total`` of the layers before it,
    over :data:`MAX_PARAMETERS`."""
    if params > MAX_PARAMETERS:
        raise BudgetError(f"{where} would have {params:,.0f} parameters ({_gib(params)} as float32), more "
                          f"than the {MAX_PARAMETERS:,} cnnlab builds")
    check_total_parameters(total + params, where)


def check_total_parameters(total: float, where: str) -> None:
    """Refuse a model whose layers so far (``where``, the last of them) add up to more than
    :data:`MAX_PARAMETERS` parameters."""
    if total > MAX_PARAMETERS:
        raise BudgetError(f"{where} brings the model to {total:,.0f} parameters ({_gib(total)} as float32), more "
                         f"than the {MAX_PARAMETERS:,} cnnlab builds")


def _kind(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a bool"
    if isinstance(value, (int, np.integer)):
        return "an int"
    if isinstance(value, (float, np.floating)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _show(value, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _bad(where, field: str, expected: str, value) -> ValueError:
    return ValueError(f"{where}: {field} must be {expected}, got {_show(value)} ({_kind(value)})")


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _is_finite(value) -> bool:
    return _is_number(value) and math.isfinite(float(value))


# --- model files ----------------------------------------------------------------------------------
def read_model_text(path: Path) -> str:
    """A model file's text, refusing files over :data:`MAX_MODEL_FILE_BYTES` and non-UTF-8 bytes."""
    return _read_text(path, MAX_MODEL_FILE_BYTES, "model file")


def _read_text(path: Path, limit: int, what: str) -> str:
    path = Path(path)
    with path.open("rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"{what} {path} is larger than {limit:,} bytes; cnnlab does not read "
                         f"{what}s that large")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{what} {path} is not UTF-8 text: {exc}") from None


_YAML_EXPONENT = re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$")


def parse_yaml(text: str):
    """``yaml.safe_load`` that refuses anchors and aliases (``&a``/``*a``): a model file lists
    its layers plainly, and aliases let a tiny file expand without bound."""
    import yaml
    from yaml.composer import ComposerError
    from yaml.events import AliasEvent, NodeEvent

    class _PlainLoader(yaml.SafeLoader):
        def compose_node(self, parent, index):
            event = self.peek_event()
            if isinstance(event, AliasEvent) or (isinstance(event, NodeEvent) and event.anchor is not None):
                raise ComposerError(None, None, "YAML anchors and aliases (&name, *name) are not allowed in "
                                    "model files; write each layer out", event.start_mark)
            return super().compose_node(parent, index)

    # YAML 1.1 reads 1e-5 (no dot) as a string; model files mean the number, as YAML 1.2 and JSON do
    _PlainLoader.add_implicit_resolver("tag:yaml.org,2002:float", _YAML_EXPONENT, list("-+0123456789"))
    loader = _PlainLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def _is_layer(value) -> bool:
    return isinstance(value, dict) and "type" in value


def check_model_document(doc, source: str = "model file") -> None:
    """Caps on a parsed model file: nesting depth, number of layers, size of every int and list
    argument, and an estimate of the parameters, all before any layer is built.

    Raises:
        ValueError: naming the file, the layer and the limit.
    """
    # nesting and node count, iteratively (no recursion limit to hit)
    stack = [(doc, 1)]
    nodes = 0
    while stack:
        value, depth = stack.pop()
        nodes += 1
        if depth > MAX_DEPTH:
            raise ValueError(f"{source}: nested more than {MAX_DEPTH} levels deep; cnnlab reads model files "
                             f"nested at most {MAX_DEPTH} levels")
        if nodes > 50 * MAX_LAYERS:
            raise ValueError(f"{source}: holds more than {50 * MAX_LAYERS:,} values; too large for a model file")
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, (list, tuple)):
            stack.extend((v, depth + 1) for v in value)
    if not isinstance(doc, dict):
        return  # build_model says what is expected
    layers = 0
    todo = [(doc.get("layers"), "layer ")]
    state = {"channels": None, "spatial": None}  # what flows into the next layer, as far as known
    shape = doc.get("input_shape")
    if isinstance(shape, list) and shape and _is_int(shape[0]):
        for i, s in enumerate(shape):
            if not _is_int(s) or not 0 < s <= MAX_SIZE:
                raise _bad(source, f"input_shape[{i}]", f"a positive int at most {MAX_SIZE:,}", s)
        state["channels"] = shape[0]
        state["spatial"] = float(np.prod(shape[1:], dtype=np.float64))
    params = 0.0
    while todo:
        entries, prefix = todo.pop(0)
        if not isinstance(entries, list):
            continue
        for index, entry in enumerate(entries):
            if not _is_layer(entry):
                continue
            layers += 1
            if layers > MAX_LAYERS:
                raise ValueError(f"{source}: describes more than {MAX_LAYERS:,} layers; cnnlab reads model "
                                 f"files of at most {MAX_LAYERS:,} layers")
            label = f"{prefix}{index} ({entry.get('type')})"
            if isinstance(entry.get("layers"), list):
                todo.insert(0, (entry["layers"], f"{prefix}{index}."))
            for key, value in entry.items():
                if key == "layers":
                    continue
                if key == "inputs":  # graph models: the names of earlier layers (a Concat may take many)
                    if isinstance(value, list) and len(value) > MAX_LAYERS:
                        raise ValueError(f"{source}: {label}: 'inputs' lists {len(value):,} layers; at most "
                                         f"{MAX_LAYERS:,}")
                    continue
                _check_argument(value, f"{label}: argument {key!r}", source)
            params += _estimate(entry, state)
            if params > MAX_PARAMETERS:
                raise ValueError(f"{source}: {label} brings the model to more than {MAX_PARAMETERS:,} "
                                 "parameters; cnnlab refuses model files that large")


def _check_argument(value, where: str, source: str) -> None:
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, (list, tuple)):
            if len(v) > MAX_LIST_ITEMS:
                raise ValueError(f"{source}: {where} is a list of {len(v):,} items; layer arguments hold at "
                                 f"most {MAX_LIST_ITEMS}")
            stack.extend(v)
        elif isinstance(v, dict):
            raise _bad(source, where, "a number, a string, a bool or a list of those", v)
        elif _is_int(v) and abs(v) > MAX_SIZE:
            raise ValueError(f"{source}: {where} is {v:,}; sizes in model files are at most {MAX_SIZE:,}")
        elif isinstance(v, float) and not math.isfinite(v):
            raise _bad(source, where, "a finite number", v)
        elif isinstance(v, str) and len(v) > 1000:
            raise ValueError(f"{source}: {where} is a string of {len(v):,} characters; at most 1,000")


def _size_product(value) -> float:
    if _is_int(value):
        return float(max(value, 1))
    if isinstance(value, (list, tuple)) and value and all(_is_int(v) for v in value):
        return float(np.prod([max(v, 1) for v in value], dtype=np.float64))
    return 1.0


def _list_product(value) -> float:
    """The number of values in an array of shape ``value`` (an int or a list of ints); 0 if unreadable."""
    if _is_int(value):
        return float(max(value, 0))
    if isinstance(value, (list, tuple)) and all(_is_int(v) for v in value):
        return float(np.prod([max(v, 0) for v in value], dtype=np.float64))
    return 0.0


def _shrink(state: dict, stride) -> None:
    if state["spatial"] is not None:
        factor = _size_product(stride) ** 2 if _is_int(stride) else _size_product(stride)
        state["spatial"] = max(state["spatial"] / factor, 1.0)


def _estimate(entry: dict, state: dict) -> float:
    """The parameters a layer adds, estimated before building it; ``state`` follows the channels
    and the pixels per channel flowing through (an upper bound: pooling and strides only shrink)."""
    kind = str(entry.get("type", "")).lower()
    channels, spatial = state["channels"], state["spatial"]
    if kind in ("conv2d", "convtranspose2d"):
        cin, cout = entry.get("in_channels", channels), entry.get("out_channels")
        if not (_is_int(cin) and _is_int(cout)):
            return 0.0
        groups = entry.get("groups", 1)
        groups = groups if _is_int(groups) and groups > 0 else 1
        kernel = entry.get("kernel_size", 1)
        area = _size_product(kernel) ** 2 if _is_int(kernel) else _size_product(kernel)
        state["channels"] = cout
        if kind == "conv2d":
            _shrink(state, entry.get("stride", 1))
        elif state["spatial"] is not None:  # a transposed convolution grows the image by its stride
            stride = entry.get("stride", 1)
            state["spatial"] *= _size_product(stride) ** 2 if _is_int(stride) else _size_product(stride)
        return max(cin, 1) * max(cout, 1) / groups * area
    if kind in ("linear", "dense"):
        cin, cout = entry.get("in_features"), entry.get("out_features")
        if cin is None and channels is not None:
            cin = channels * (spatial if spatial is not None else 1.0)
        if not (_is_number(cin) and _is_int(cout)):
            return 0.0
        state["channels"], state["spatial"] = cout, 1.0
        return float(max(cin, 1)) * max(cout, 1)
    if kind in ("batchnorm2d", "batchnorm1d"):
        n = entry.get("num_features", channels)
        return 4.0 * max(n, 1) if _is_int(n) else 0.0
    if kind in ("groupnorm", "instancenorm1d", "instancenorm2d", "prelu"):
        n = entry.get("num_channels", entry.get("num_features", entry.get("num_parameters", 1)))
        return 4.0 * max(n, 1) if _is_int(n) else 0.0
    if kind == "layernorm":  # weight and bias of normalized_shape
        return 2.0 * _list_product(entry.get("normalized_shape"))
    if kind == "elementwise":  # its constant
        return _list_product(entry.get("shape", ()))
    if kind in ("maxpool2d", "minpool2d", "avgpool2d"):
        _shrink(state, entry.get("stride") or entry.get("kernel_size", 1))
    elif kind in ("globalavgpool2d", "globalmaxpool2d"):
        state["spatial"] = 1.0
    elif kind in ("adaptiveavgpool2d", "adaptivemaxpool2d"):
        size = entry.get("output_size")
        if _is_int(size) or (isinstance(size, list) and all(_is_int(v) for v in size)):
            state["spatial"] = _size_product(size) ** (2 if _is_int(size) else 1)
    return 0.0


# --- model.json -----------------------------------------------------------------------------------
def check_weights_name(value, where) -> str:
    """A weights file name from ``model.json``: a plain file name in the model's own folder."""
    if not isinstance(value, str) or not value:
        raise _bad(where, "'weights'", "a file name such as \"model.npz\"", value)
    if value in (".", "..") or "/" in value or "\\" in value or "\0" in value or ":" in value \
            or Path(value).is_absolute() or not value.endswith(".npz"):
        raise ValueError(f"{where}: 'weights' must be a plain .npz file name in the model's own folder (no "
                         f"folders, no absolute path), such as \"model.npz\"; got {_show(value)}")
    return value


def _positive_shape(value, where, field: str):
    if not isinstance(value, list) or len(value) != 3 \
            or not all(_is_int(s) and 0 < s <= MAX_SIZE for s in value):
        raise _bad(where, field, "a list [C, H, W] of 3 positive ints", value)
    return tuple(int(s) for s in value)


def check_model_json(info, where, format_name: str = "cnnlab-model", format_version: int = 1) -> dict:
    """Every field of ``model.json`` that cnnlab reads; the architecture's layers are checked
    when it is built (:func:`cnnlab.models.build_model`).

    Raises:
        ValueError: naming the file, the field, the expected and the received value.
    """
    if not isinstance(info, dict):
        raise ValueError(f"{where} is not a cnnlab model description: expected a JSON object with "
                         f"\"format\": \"{format_name}\", got {_kind(info)}")
    if info.get("format") != format_name:
        raise ValueError(f"{where} is not a cnnlab model description (expected \"format\": "
                         f"\"{format_name}\", got {_show(info.get('format'))})")
    version = info.get("format_version", 1)
    if not _is_int(version) or version < 1:
        raise _bad(where, "'format_version'", "a positive int", version)
    if version > format_version:
        raise ValueError(f"{where} has format_version {version}; this cnnlab reads up to {format_version}: "
                         "upgrade cnnlab")
    if "name" in info and not isinstance(info["name"], str):
        raise _bad(where, "'name'", "a string", info["name"])
    if "architecture" not in info:
        raise ValueError(f"{where}: missing field 'architecture' (the model's layers)")
    if not isinstance(info["architecture"], dict):
        raise _bad(where, "'architecture'", "a mapping with a 'layers' list", info["architecture"])
    pre = info.get("preprocessing")
    if pre is not None and not isinstance(pre, dict):
        raise _bad(where, "'preprocessing'", "a mapping with 'input_shape', 'mean' and 'std'", pre)
    pre = pre or {}
    if pre.get("input_shape") is not None:
        shape = _positive_shape(pre["input_shape"], where, "'preprocessing.input_shape'")
    elif info["architecture"].get("input_shape") is not None:
        shape = _positive_shape(info["architecture"]["input_shape"], where, "'architecture.input_shape'")
    else:
        raise ValueError(f"{where}: missing field 'preprocessing.input_shape' (the [C, H, W] the model takes)")
    for key in ("mean", "std"):
        value = pre.get(key)
        if value is None:
            continue
        if not isinstance(value, list) or len(value) != shape[0] or not all(_is_finite(v) for v in value):
            raise _bad(where, f"'preprocessing.{key}'", f"null or a list of {shape[0]} finite numbers "
                       "(one per channel)", value)
        if key == "std" and not all(v > 0 for v in value):
            raise _bad(where, "'preprocessing.std'", "a list of positive numbers", value)
    if (pre.get("mean") is None) != (pre.get("std") is None):
        raise ValueError(f"{where}: 'preprocessing.mean' and 'preprocessing.std' must both be lists or both "
                         f"null, got mean={_show(pre.get('mean'))}, std={_show(pre.get('std'))}")
    pixel_range = pre.get("pixel_range")
    if pixel_range is not None and (not isinstance(pixel_range, list) or len(pixel_range) != 2
                                    or not all(_is_finite(v) for v in pixel_range)):
        raise _bad(where, "'preprocessing.pixel_range'", "a list [low, high] of 2 numbers", pixel_range)
    classes = info.get("classes", [])
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise _bad(where, "'classes'", "a list of class names (strings)", classes)
    if "weights" in info:
        check_weights_name(info["weights"], where)
    for key in ("dataset", "cnnlab_version"):
        if info.get(key) is not None and not isinstance(info[key], str):
            raise _bad(where, repr(key), "a string", info[key])
    return info


def check_model_outputs(info: dict, model, input_shape, where) -> None:
    """The architecture gives one score per class name in ``classes``."""
    try:
        out = tuple(model.output_shape((1,) + tuple(input_shape)))
    except (ValueError, TypeError, IndexError) as exc:
        raise ValueError(f"{where}: the architecture cannot take inputs of shape {list(input_shape)}: {exc}") \
            from None
    if len(out) != 2:
        raise ValueError(f"{where}: the architecture must give one score per class (shape (N, K)), but it "
                         f"gives shape {out}")
    classes = info.get("classes")
    if classes and len(classes) != out[1]:
        raise ValueError(f"{where}: 'classes' must list {out[1]} names (the model has {out[1]} outputs), "
                         f"got {len(classes)}: {_show(classes)}")


# --- metrics.json and config.json -----------------------------------------------------------------
_METRIC_FIELDS = {
    # field: (kind, nullable); kinds: "number", "int", "bool", "str"
    "test_accuracy": ("number", True), "test_loss": ("number", True), "test_correct": ("int", True),
    "test_size": ("int", True), "epochs": ("int", True), "best_epoch": ("int", True),
    "stopped_early": ("bool", True), "train_seconds": ("number", True), "images_per_second": ("number", True),
    "test_seconds": ("number", True), "load_seconds": ("number", True), "model": ("str", True),
    "dataset": ("str", True), "num_parameters": ("int", True), "train_size": ("int", True),
    "val_size": ("int", True), "seed": ("int", True), "batch_size": ("int", True), "optimizer": ("str", True),
    "lr": ("number", True), "schedule": ("str", True), "augment": ("bool", True),
    "final_train_loss": ("number", True), "final_train_accuracy": ("number", True),
    "best_val_accuracy": ("number", True), "cnnlab_version": ("str", True), "run_dir": ("str", True),
    "finished": ("str", True),
}

_CONFIG_FIELDS = {
    "dataset": ("str", False), "data_dir": ("str", True), "model": ("str", True), "epochs": ("int", False),
    "batch_size": ("int", False), "optimizer": ("str", False), "lr": ("number", False),
    "schedule": ("str", True), "weight_decay": ("number", False), "label_smoothing": ("number", False),
    "patience": ("int", True), "clip_grad": ("number", True), "augment": ("bool", False),
    "val_fraction": ("number", False), "seed": ("int", False), "limit": ("int", True),
    "cnnlab_version": ("str", True), "new_head": ("bool", True), "freeze": ("bool", True),
    "data_fingerprint": ("str", True),
}

_KIND_CHECK = {"number": _is_finite, "int": _is_int, "bool": lambda v: isinstance(v, bool),
               "str": lambda v: isinstance(v, str)}
_KIND_TEXT = {"number": "a finite number", "int": "an int", "bool": "true or false", "str": "a string"}


def _check_fields(doc, where, fields: Dict[str, tuple], what: str, required: Sequence[str] = ()) -> dict:
    if not isinstance(doc, dict):
        raise ValueError(f"{where} is not a {what}: expected a JSON object, got {_kind(doc)}")
    for key in required:
        if key not in doc:
            raise ValueError(f"{where}: missing field {key!r}")
    for key, (kind, nullable) in fields.items():
        if key not in doc or (nullable and doc[key] is None):
            continue
        value = doc[key]
        if not _KIND_CHECK[kind](value):
            raise _bad(where, repr(key), _KIND_TEXT[kind] + (" or null" if nullable else ""), value)
        if kind in ("int", "number") and value < 0 and key not in ("seed",):
            raise _bad(where, repr(key), "not negative", value)
    return doc


def check_metrics(doc, where) -> dict:
    """``metrics.json``: a mapping whose known fields have their types (accuracies in [0, 1])."""
    _check_fields(doc, where, _METRIC_FIELDS, "cnnlab metrics file")
    for key in ("test_accuracy", "final_train_accuracy", "best_val_accuracy"):
        value = doc.get(key)
        if value is not None and not 0 <= value <= 1:
            raise _bad(where, repr(key), "a number in [0, 1]", value)
    return doc


def check_config(doc, where, resume: bool = False) -> dict:
    """``config.json`` of a run: the settings ``evaluate`` and the explain commands read back (every
    field optional), and ``--resume`` (``resume=True``: the training settings are required)."""
    _check_fields(doc, where, _CONFIG_FIELDS, "cnnlab run configuration",
                  required=("dataset", "epochs", "batch_size", "optimizer", "lr") if resume else ())
    for key in ("epochs", "batch_size"):
        if doc.get(key) is not None and doc[key] < 1:
            raise _bad(where, repr(key), "a positive int", doc[key])
    if doc.get("val_fraction") is not None and not 0 <= doc["val_fraction"] < 1:
        raise _bad(where, "'val_fraction'", "a number in [0, 1)", doc["val_fraction"])
    if doc.get("limit") is not None and doc["limit"] < 1:
        raise _bad(where, "'limit'", "a positive int or null", doc["limit"])
    return doc


# --- history.csv ----------------------------------------------------------------------------------
def check_history(columns: Dict[str, list], where) -> Dict[str, list]:
    """Columns read from ``history.csv``: an ``epoch`` column of positive ints, increasing, with no
    blank cell, and numeric (or blank) cells elsewhere."""
    epochs = columns.get("epoch")
    if epochs is None:
        raise ValueError(f"{where}: missing column 'epoch'")
    for i, e in enumerate(epochs):
        if e is None or e < 1 or (i and e <= epochs[i - 1]):
            raise _bad(where, f"'epoch' on line {i + 2}", "a positive int larger than the line above", e)
    return columns


# --- checkpoints ----------------------------------------------------------------------------------
def _check_meta_type(meta, key, kind: str, where, nullable: bool = False):
    if key not in meta:
        raise ValueError(f"{where}: missing field {key!r} in the checkpoint's description")
    value = meta[key]
    if nullable and value is None:
        return value
    ok = {"int": _is_int, "number": _is_finite, "mapping": lambda v: isinstance(v, dict),
          "str": lambda v: isinstance(v, str), "list": lambda v: isinstance(v, list)}[kind]
    if not ok(value):
        text = {"int": "an int", "number": "a finite number", "mapping": "a mapping", "str": "a string",
                "list": "a list"}[kind]
        raise _bad(where, repr(key), text + (" or null" if nullable else ""), value)
    return value


def check_checkpoint(arrays: Dict[str, np.ndarray], meta, where, model=None) -> None:
    """A training checkpoint: its description's keys and types, and its arrays' names and shapes
    against ``model`` (``model/<key>`` and ``best/<key>`` for every state_dict entry).

    Raises:
        ValueError: naming the file, the field or array, the expected and the received value.
    """
    if not isinstance(meta, dict):
        raise ValueError(f"{where} is not a cnnlab checkpoint: its description is {_kind(meta)}, not a mapping")
    if meta.get("format", "cnnlab-checkpoint") != "cnnlab-checkpoint":
        raise _bad(where, "'format'", '"cnnlab-checkpoint"', meta.get("format"))
    epoch = _check_meta_type(meta, "epoch", "int", where)
    if epoch < 1:
        raise _bad(where, "'epoch'", "a positive int", epoch)
    _check_meta_type(meta, "config", "mapping", where)
    opt = _check_meta_type(meta, "optimizer", "mapping", where)
    if "param_groups" in opt:  # the optimizer's state_dict (PyTorch's layout)
        groups = _check_meta_type(opt, "param_groups", "list", f"{where}: optimizer")
        if not groups:
            raise _bad(where, "'optimizer.param_groups'", "a non-empty list", groups)
        for k, group in enumerate(groups):
            if not isinstance(group, dict):
                raise _bad(where, f"'optimizer.param_groups[{k}]'", "a mapping", group)
            if _check_meta_type(group, "lr", "number", f"{where}: optimizer.param_groups[{k}]") < 0:
                raise _bad(where, f"'optimizer.param_groups[{k}].lr'", "a number >= 0", group["lr"])
    else:  # written before param_groups
        if _check_meta_type(opt, "lr", "number", f"{where}: optimizer") < 0:
            raise _bad(where, "'optimizer.lr'", "a number >= 0", opt["lr"])
        if _check_meta_type(opt, "step_count", "int", f"{where}: optimizer") < 0:
            raise _bad(where, "'optimizer.step_count'", "not negative", opt["step_count"])
    sched = _check_meta_type(meta, "scheduler", "mapping", where, nullable=True)
    if sched is not None:
        if _check_meta_type(sched, "last_epoch", "int", f"{where}: scheduler") < -1:
            raise _bad(where, "'scheduler.last_epoch'", "an int >= -1", sched["last_epoch"])
        if "base_lrs" in sched:
            lrs = _check_meta_type(sched, "base_lrs", "list", f"{where}: scheduler")
            if not lrs or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                                  and v >= 0 for v in lrs):
                raise _bad(where, "'scheduler.base_lrs'", "a list of numbers >= 0", lrs)
        elif _check_meta_type(sched, "base_lr", "number", f"{where}: scheduler") < 0:
            raise _bad(where, "'scheduler.base_lr'", "a number >= 0", sched["base_lr"])
    from .random import get_state
    rng = _check_meta_type(meta, "rng", "mapping", where)
    _check_rng_state(rng, f"{where}: 'rng'", get_state()["bit_generator"])
    loader = _check_meta_type(meta, "loader", "mapping", where, nullable=True)
    if loader is not None and "rng_state" in loader:  # a loader with its own generator
        _check_rng_state(_check_meta_type(loader, "rng_state", "mapping", f"{where}: loader"),
                         f"{where}: 'loader.rng_state'", type(np.random.default_rng().bit_generator).__name__)
    elif loader is not None:  # the seeded loader: its streams follow from the seed and the epoch
        _check_meta_type(loader, "seed", "int", f"{where}: loader")
        if _check_meta_type(loader, "epoch", "int", f"{where}: loader") < 0:
            raise _bad(where, "'loader.epoch'", "not negative", loader["epoch"])
    history = _check_meta_type(meta, "history", "mapping", where)
    columns = _check_meta_type(history, "history", "mapping", f"{where}: history")
    lengths = set()
    for key, column in columns.items():
        if not isinstance(column, list) or not all(v is None or _is_number(v) for v in column):
            raise _bad(where, f"'history.history.{key}'", "a list of numbers or nulls", column)
        lengths.add(len(column))
    if len(lengths) > 1:
        raise ValueError(f"{where}: the history's columns have different lengths {sorted(lengths)}")
    missing = [c for c in HISTORY_COLUMNS if c not in columns]
    if missing:
        raise ValueError(f"{where}: the history has no {missing[0]!r} column (expected {', '.join(HISTORY_COLUMNS)})")
    if len(columns["epoch"]) > epoch:
        raise ValueError(f"{where}: the history holds {len(columns['epoch'])} epochs, but the checkpoint is of "
                         f"epoch {epoch}")
    # field: (test, expected, nullable); absent fields keep their defaults
    facts = {"best_epoch": (lambda v: _is_int(v) and v >= 1, "a positive int", True),
             "best_value": (_is_number, "a number", True),
             "stopped_early": (lambda v: isinstance(v, bool), "true or false", False),
             "train_seconds": (lambda v: _is_finite(v) and v >= 0, "a number >= 0", False),
             "step_seconds": (lambda v: _is_finite(v) and v >= 0, "a number >= 0", False),
             "train_images": (lambda v: _is_int(v) and v >= 0, "an int >= 0", False)}
    for key, (ok, text, nullable) in facts.items():
        if key not in history or (nullable and history[key] is None):
            continue
        if not ok(history[key]):
            raise _bad(where, f"'history.{key}'", text + (" or null" if nullable else ""), history[key])
    if _check_meta_type(meta, "wait", "int", where) < 0:
        raise _bad(where, "'wait'", "not negative", meta["wait"])
    for name, array in arrays.items():
        prefix = name.split("/", 1)[0]
        if prefix not in ("model", "optim", "best") or "/" not in name:
            raise ValueError(f"{where}: unexpected array {name!r}; a checkpoint holds model/..., optim/... "
                             "and best/... arrays")
        if array.dtype.kind not in "fiub":
            raise ValueError(f"{where}: array {name!r} has dtype {array.dtype}, expected numbers")
        if array.dtype.kind == "f" and not np.isfinite(array).all():  # training never saves these
            raise ValueError(f"{where}: array {name!r} holds NaN/inf values: the checkpoint is damaged, and "
                             "resuming from it would train on NaN")
    if model is not None:
        own = model.state_dict()
        for prefix, required in (("model", True), ("best", False)):
            given = {k[len(prefix) + 1:]: v for k, v in arrays.items() if k.startswith(prefix + "/")}
            if not given and not required:
                continue
            missing = sorted(set(own) - set(given))
            unexpected = sorted(set(given) - set(own))
            if missing or unexpected:
                raise ValueError(f"{where}: the {prefix} arrays do not match the model: missing "
                                 f"{[prefix + '/' + k for k in missing][:5]}, unexpected "
                                 f"{[prefix + '/' + k for k in unexpected][:5]}")
            for key, value in given.items():
                if tuple(value.shape) != tuple(np.shape(own[key])):
                    raise ValueError(f"{where}: array {prefix + '/' + key!r} has shape {tuple(value.shape)}, "
                                     f"the model's {key!r} has shape {tuple(np.shape(own[key]))}")
        params = list(model.parameters())
        for name, value in arrays.items():
            if not name.startswith("optim/"):
                continue
            index, _, slot = name[6:].partition(".")
            if not index.isdigit() or int(index) >= len(params) or not slot:
                raise ValueError(f"{where}: array {name!r} names no parameter of the model (it has "
                                 f"{len(params)}; expected optim/<index>.<name>)")
            want = tuple(np.shape(getattr(params[int(index)], "_data", params[int(index)])))
            if value.ndim and tuple(value.shape) != want:
                raise ValueError(f"{where}: array {name!r} has shape {tuple(value.shape)}, parameter "
                                 f"{index} has shape {want}")


def _check_rng_state(state: dict, where: str, expected: str) -> None:
    if not isinstance(state.get("bit_generator"), str) or not isinstance(state.get("state"), dict):
        raise ValueError(f"{where}: expected a NumPy generator state with 'bit_generator' and 'state', got "
                         f"{_show(state)}")
    if state["bit_generator"] != expected:
        raise _bad(where, "'bit_generator'", repr(expected), state["bit_generator"])
    try:
        generator = getattr(np.random, state["bit_generator"])
        if not isinstance(generator, type) or not issubclass(generator, np.random.BitGenerator):
            raise AttributeError
        generator().state = state
    except (AttributeError, TypeError, ValueError, KeyError, OverflowError) as exc:
        raise ValueError(f"{where}: not a valid NumPy generator state: {_show(state)} ({exc})") from None


def read_checked_json(path, what: str, check=None):
    """Read a small JSON file (at most :data:`MAX_RUN_FILE_BYTES`) and check it; ``None`` if absent."""
    import json
    path = Path(path)
    if not path.is_file():
        return None
    text = _read_text(path, MAX_RUN_FILE_BYTES, what)
    try:
        doc = json.loads(text)
    except RecursionError:
        raise ValueError(f"{what} {path} is nested too deeply to be a cnnlab file") from None
    except ValueError as exc:
        raise ValueError(f"{what} {path} is not valid JSON: {exc}") from None
    return check(doc, path) if check is not None else doc



# --- .npz files -----------------------------------------------------------------------------------
#: the most bytes the arrays of one .npz file may hold once read (weights, checkpoints)
MAX_NPZ_BYTES = 4 << 30
#: the most arrays one .npz file may hold
MAX_NPZ_ARRAYS = 100_000


def check_npz_members(path, what: str) -> None:
    """Read the header of every array in an ``.npz`` before NumPy allocates it: refuse a file whose
    headers promise more data than it holds (a 1 kB file claiming a 745 GiB array) or more than
    :data:`MAX_NPZ_BYTES` in all, and object arrays (pickle).

    Raises:
        ValueError: naming the file and the array.
    """
    import zipfile
    import zlib
    from numpy.lib import format as npy

    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            if len(members) > MAX_NPZ_ARRAYS:
                raise ValueError(f"{what} {path} holds {len(members):,} arrays; at most {MAX_NPZ_ARRAYS:,}")
            declared = 0
            for member in members:  # names, compression and declared sizes first: nothing inflated yet
                if not member.filename.endswith(".npy") or member.is_dir():
                    raise ValueError(f"{what} {path} holds {_show(member.filename)}, which is not a .npy array; "
                                     "a cnnlab .npz file holds only .npy arrays")
                if member.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                    raise ValueError(f"{what} {path}: array {_show(member.filename[:-4])} uses zip compression "
                                     f"method {member.compress_type}; cnnlab reads stored or deflated arrays")
                if member.flag_bits & 0x1:
                    raise ValueError(f"{what} {path}: array {_show(member.filename[:-4])} is encrypted")
                declared += member.file_size
                if declared > MAX_NPZ_BYTES:
                    raise ValueError(f"{what} {path} declares more than {MAX_NPZ_BYTES:,} bytes of arrays once "
                                     "unpacked; cnnlab does not read files that large")
            total = 0
            for member in members:
                name = member.filename[:-4]
                try:
                    with archive.open(member) as f:
                        version = npy.read_magic(f)
                        if version == (1, 0):
                            shape, _, dtype = npy.read_array_header_1_0(f)
                        else:
                            shape, _, dtype = npy.read_array_header_2_0(f)
                except (ValueError, TypeError, zipfile.BadZipFile, OSError, EOFError, zlib.error) as exc:
                    raise ValueError(f"{what} {path}: array {name!r} is not a readable .npy array: {exc}") \
                        from None
                if dtype.hasobject:
                    raise ValueError(f"{what} {path}: array {name!r} holds Python objects (pickle), which "
                                     "cnnlab never loads")
                size = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
                if size > member.file_size:
                    raise ValueError(f"{what} {path}: array {name!r} claims shape {tuple(shape)} ({size:,} bytes) "
                                     f"but the file holds {member.file_size:,} bytes for it: a truncated or "
                                     "forged file")
                total += size
                if total > MAX_NPZ_BYTES:
                    raise ValueError(f"{what} {path} holds more than {MAX_NPZ_BYTES:,} bytes of arrays; "
                                     "cnnlab does not read files that large")
    except (zipfile.BadZipFile, OSError, EOFError, KeyError, SyntaxError, zlib.error) as exc:
        raise ValueError(f"{what} {path} is not a readable .npz file: {exc}") from None
