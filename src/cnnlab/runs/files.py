"""Run-folder files: atomic writes, JSON documents, ``.npz`` arrays and bundles, state dicts.

No pickle anywhere: arrays are read back with ``numpy.load(..., allow_pickle=False)`` after their zip
members and headers are checked (:func:`cnnlab._schema.check_npz_members`), and everything else is
JSON.  Every write is atomic: the bytes go to a temporary file in the destination folder, which then
replaces the target with ``os.replace``, so an interrupted write never leaves a half-written file
under the real name.
"""
from __future__ import annotations

import io as _io
import json
import zipfile
from pathlib import Path
from typing import Dict, Tuple

import numpy as np

from .. import nn
from .._files import atomic_open

__all__ = ["atomic_write_bytes", "write_json", "read_json", "save_npz", "load_npz", "save_bundle",
           "load_bundle", "save_state_dict", "load_state_dict"]

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
    from .._schema import MAX_RUN_FILE_BYTES
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
    from .._schema import check_npz_members
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
