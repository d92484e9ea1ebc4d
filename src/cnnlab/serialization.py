"""``cnnlab.save`` / ``cnnlab.load``: PyTorch's ``torch.save(model.state_dict(), PATH)`` without pickle.

What can be saved: tensors, NumPy arrays, numbers, strings, booleans, None, and dicts (string or
integer keys), lists and tuples of those, nested freely: a ``state_dict()``, an optimizer's
``state_dict()``, or a checkpoint dict ``{"epoch": 3, "model_state_dict": ..., "loss": 0.4}``.

The file is an ``.npz`` archive (one array per tensor, read back with ``allow_pickle=False``) plus a
JSON description of the structure, written atomically.  Any file name works (``model.pth`` too).  A
whole ``nn.Module`` is not saved (that would need pickle): save ``model.state_dict()`` and rebuild the
model in code.  A plain ``.npz`` of arrays loads as a dict.  A real PyTorch ``.pth`` (pickle) is
refused with a message that says how to convert it.
"""
from __future__ import annotations

import io as _io
import json
import os
import zipfile
from collections import OrderedDict

import numpy as np

from .tensor import Tensor, _check_device

__all__ = ["save", "load"]

_META_KEY = "__cnnlab_save__"
_FORMAT = "cnnlab-save"
_FORMAT_VERSION = 1
_MAX_DEPTH = 64


def _encode(obj, arrays: dict, depth: int = 0):
    if depth > _MAX_DEPTH:
        raise ValueError(f"cnnlab.save: the object is nested more than {_MAX_DEPTH} levels deep")
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (int, float)):
        return obj
    if isinstance(obj, np.generic) and obj.dtype.kind in "biuf":
        return obj.item()
    if isinstance(obj, Tensor) or isinstance(obj, np.ndarray):
        array = obj._data if isinstance(obj, Tensor) else obj
        if array.dtype.kind not in "biufc":
            raise TypeError(f"cnnlab.save: cannot save an array of dtype {array.dtype} without pickle")
        key = f"a{len(arrays)}"
        arrays[key] = np.ascontiguousarray(array)
        return {"tensor" if isinstance(obj, Tensor) else "ndarray": key,
                **({"requires_grad": True} if isinstance(obj, Tensor) and obj.requires_grad else {})}
    if isinstance(obj, dict):
        items = []
        for k, v in obj.items():
            if not isinstance(k, (str, int)) or isinstance(k, bool):
                raise TypeError(f"cnnlab.save: dict keys must be strings or integers, got {k!r}")
            items.append([k, _encode(v, arrays, depth + 1)])
        return {"dict": items, **({"ordered": True} if isinstance(obj, OrderedDict) else {})}
    if isinstance(obj, (list, tuple)):
        return {"list" if isinstance(obj, list) else "tuple": [_encode(v, arrays, depth + 1) for v in obj]}
    from .nn.module import Module  # only when the object is something else (keeps the import light)
    if isinstance(obj, Module):
        raise TypeError(f"cnnlab.save does not save a whole model ({type(obj).__name__}): that needs pickle. "
                        f"Save model.state_dict() and load it with model.load_state_dict(cnnlab.load(PATH)), "
                        f"or use cnnlab.io.save_model for a model folder")
    raise TypeError(f"cnnlab.save: cannot save {type(obj).__name__} without pickle; it saves tensors, arrays, "
                    f"numbers, strings, None and dicts/lists/tuples of those")


def _decode(node, arrays: dict, where: str):
    if node is None or isinstance(node, (bool, int, float, str)):
        return node
    if not isinstance(node, dict):
        raise ValueError(f"{where}: unexpected entry {type(node).__name__} in its structure")
    if "tensor" in node or "ndarray" in node:
        key = node.get("tensor", node.get("ndarray"))
        if key not in arrays:
            raise ValueError(f"{where}: its structure names array {key!r}, which the file does not hold")
        if "ndarray" in node:
            return arrays[key]
        return Tensor(arrays[key], requires_grad=bool(node.get("requires_grad", False)))
    if "dict" in node:
        out = OrderedDict() if node.get("ordered") else {}
        for pair in node["dict"]:
            if not isinstance(pair, list) or len(pair) != 2 or not isinstance(pair[0], (str, int)):
                raise ValueError(f"{where}: a dict entry of its structure is not a [key, value] pair")
            out[pair[0]] = _decode(pair[1], arrays, where)
        return out
    if "list" in node:
        return [_decode(v, arrays, where) for v in node["list"]]
    if "tuple" in node:
        return tuple(_decode(v, arrays, where) for v in node["tuple"])
    raise ValueError(f"{where}: unknown entry {sorted(node)} in its structure")


def save(obj, f, pickle_module=None, pickle_protocol=None, **kwargs) -> None:
    """``torch.save(obj, f)`` without pickle: ``f`` is a path or a binary file object (see module doc)."""
    if pickle_module is not None:
        raise TypeError("cnnlab.save never pickles: pickle_module is not supported")
    arrays: dict = {}
    structure = _encode(obj, arrays)
    meta = {"format": _FORMAT, "format_version": _FORMAT_VERSION, "object": structure}
    arrays[_META_KEY] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    buffer = _io.BytesIO()
    np.savez(buffer, **arrays)
    if hasattr(f, "write"):
        f.write(buffer.getvalue())
        return
    from ._files import atomic_open
    with atomic_open(os.fspath(f)) as (out, _):
        out.write(buffer.getvalue())


def _refuse_pickle(where: str):
    raise ValueError(f"{where} is a PyTorch pickle file (torch.save); cnnlab never loads pickle. Convert it "
                     f"where PyTorch is installed: numpy.savez('weights.npz', **{{k: v.numpy() for k, v in "
                     f"torch.load(path, weights_only=True).items()}}), then cnnlab.load('weights.npz')")


def load(f, map_location=None, pickle_module=None, *, weights_only=None, mmap=None, **kwargs):
    """Read what :func:`save` wrote (or a plain ``.npz`` of arrays, as a dict); never unpickles.

    ``weights_only`` and ``map_location`` (the CPU) are accepted for PyTorch code; loading is always
    as safe as PyTorch's ``weights_only=True``.
    """
    if pickle_module is not None:
        raise TypeError("cnnlab.load never unpickles: pickle_module is not supported")
    if isinstance(map_location, str) or hasattr(map_location, "type"):
        _check_device(map_location)
    if hasattr(f, "read"):
        data, where = f.read(), "the file object"
    else:
        path = os.fspath(f)
        where = str(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{where} does not exist")
        with open(path, "rb") as fh:
            data = fh.read()
    if data[:1] == b"\x80":
        _refuse_pickle(where)
    if data[:4] != b"PK\x03\x04":
        raise ValueError(f"{where} is not a file written by cnnlab.save (expected an .npz archive)")
    try:
        with zipfile.ZipFile(_io.BytesIO(data)) as archive:
            names = archive.namelist()
    except zipfile.BadZipFile as exc:
        raise ValueError(f"{where} is not a readable .npz archive: {exc}") from None
    if any(n.endswith("data.pkl") for n in names):
        _refuse_pickle(where)
    from ._schema import check_npz_members
    if not hasattr(f, "read"):
        check_npz_members(path, "saved file")  # array headers checked before NumPy allocates anything
    try:
        with np.load(_io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise ValueError(f"{where} is not a readable .npz archive: {exc}") from None
    if _META_KEY not in arrays:
        return arrays  # a plain .npz of arrays (e.g. written by numpy.savez)
    try:
        meta = json.loads(arrays.pop(_META_KEY).tobytes().decode("utf-8"))
    except ValueError as exc:
        raise ValueError(f"{where}: its structure is not valid JSON: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
        raise ValueError(f"{where} is not a file written by cnnlab.save (its description has no "
                         f"format {_FORMAT!r})")
    if meta.get("format_version") != _FORMAT_VERSION:
        raise ValueError(f"{where} was written by a newer cnnlab (format version {meta.get('format_version')!r}, "
                         f"this one reads {_FORMAT_VERSION})")
    return _decode(meta.get("object"), arrays, where)
