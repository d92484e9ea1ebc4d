"""Reader for the IDX file format used by MNIST and Fashion-MNIST.

An IDX file is a 4-byte magic number -- two zero bytes, a type code and the
number of dimensions -- followed by one big-endian uint32 per dimension and
then the values in row-major order.  MNIST images use magic 0x00000803
(unsigned bytes, 3 dimensions: N, 28, 28) and labels 0x00000801 (unsigned
bytes, 1 dimension: N).  Files may be gzip-compressed.
"""
from __future__ import annotations

import gzip
import io
import os
import zlib
from typing import Optional

import numpy as np

__all__ = ["IDXFormatError", "parse_idx", "read_idx", "IMAGES_MAGIC", "LABELS_MAGIC"]

IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801

# IDX type code -> big-endian NumPy dtype
_IDX_TYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


class IDXFormatError(ValueError):
    """The bytes are not a well-formed IDX file (bad magic number, truncated, trailing data)."""


def parse_idx(data: bytes, expected_magic: Optional[int] = None, source: str = "<bytes>") -> np.ndarray:
    """Parse the (uncompressed) bytes of an IDX file into an array.

    Args:
        data: the file's bytes.
        expected_magic: when given, the magic number the file must carry
            (e.g. :data:`IMAGES_MAGIC` or :data:`LABELS_MAGIC`).
        source: a name for error messages (usually the file path).

    Returns:
        An array in native byte order with the dimensions from the header
        (uint8 for unsigned-byte files).  No copy is made for byte data: the
        result is a read-only view over ``data``.

    Raises:
        IDXFormatError: bad magic number, unknown type code, a header or data
            shorter than declared, or bytes left over after the data.
    """
    view = memoryview(data)
    if len(view) < 4:
        raise IDXFormatError(
            f"{source}: truncated IDX file: {len(view)} bytes, expected at least a 4-byte magic number")
    magic = int.from_bytes(view[:4], "big")
    if expected_magic is not None and magic != expected_magic:
        raise IDXFormatError(
            f"{source}: bad IDX magic number: expected 0x{expected_magic:08X}, got 0x{magic:08X}"
            + (" (is this a gzip file that was not decompressed?)" if bytes(view[:2]) == b"\x1f\x8b" else ""))
    if view[0] != 0 or view[1] != 0:
        raise IDXFormatError(
            f"{source}: bad IDX magic number 0x{magic:08X}: the first two bytes must be zero")
    type_code, ndim = view[2], view[3]
    if type_code not in _IDX_TYPES:
        raise IDXFormatError(
            f"{source}: bad IDX magic number 0x{magic:08X}: unknown type code 0x{type_code:02X} "
            f"(known: {', '.join(f'0x{k:02X}' for k in _IDX_TYPES)})")
    if ndim == 0:
        raise IDXFormatError(f"{source}: bad IDX magic number 0x{magic:08X}: zero dimensions")
    header = 4 + 4 * ndim
    if len(view) < header:
        raise IDXFormatError(
            f"{source}: truncated IDX file: {len(view)} bytes, but the header of a {ndim}-dimensional "
            f"file needs {header}")
    shape = tuple(int(d) for d in np.frombuffer(view[4:header], dtype=">u4"))
    dtype = _IDX_TYPES[type_code]
    n_items = int(np.prod(shape, dtype=np.int64))
    expected = header + n_items * dtype.itemsize
    if len(view) < expected:
        raise IDXFormatError(
            f"{source}: truncated IDX file: dimensions {shape} of {dtype.name} need {expected} bytes, "
            f"the file has {len(view)}")
    if len(view) > expected:
        raise IDXFormatError(
            f"{source}: {len(view) - expected} unexpected bytes after the data: dimensions {shape} "
            f"of {dtype.name} need {expected} bytes, the file has {len(view)}")
    array = np.frombuffer(view, dtype=dtype, count=n_items, offset=header).reshape(shape)
    if dtype.itemsize > 1:
        array = array.astype(dtype.newbyteorder("="))
    elif dtype.kind == "u":
        array = array.view(np.uint8)
    else:
        array = array.view(np.int8)
    return array


#: the largest IDX file read, after decompression (MNIST's training images are 47 MB)
MAX_IDX_BYTES = 1 << 30


def _read_bytes(path: str) -> bytes:
    with open(path, "rb") as f:
        raw = f.read(MAX_IDX_BYTES + 1)
    if raw[:2] == b"\x1f\x8b":
        try:
            with gzip.GzipFile(fileobj=io.BytesIO(raw)) as g:
                raw = g.read(MAX_IDX_BYTES + 1)  # a gzip bomb stops at the cap
        except (EOFError, OSError, zlib.error) as exc:
            raise IDXFormatError(f"{path}: truncated or corrupt gzip file ({exc})") from exc
    if len(raw) > MAX_IDX_BYTES:
        raise IDXFormatError(f"{path}: larger than {MAX_IDX_BYTES:,} bytes (decompressed); cnnlab does not "
                             "read IDX files that large")
    return raw


def read_idx(path, expected_magic: Optional[int] = None) -> np.ndarray:
    """Read an IDX file (plain or gzip-compressed, detected from its first bytes).

    Args:
        path: the file to read.
        expected_magic: see :func:`parse_idx`.

    Returns:
        The array, e.g. uint8 of shape (N, 28, 28) for MNIST images.
    """
    path = os.fspath(path)
    return parse_idx(_read_bytes(path), expected_magic=expected_magic, source=path)
