"""Reader for CIFAR-10 in its "python version" batch format.

The user supplies the files -- ``data_batch_1`` .. ``data_batch_5``,
``test_batch`` and ``batches.meta`` -- in a folder (also accepted: its
``cifar-10-batches-py/`` subfolder) or inside the published archive
``cifar-10-python.tar.gz`` (read in memory, nothing is extracted).

Security: these files are Python pickles, the format the data set's authors
chose.  Unpickling untrusted data can run arbitrary code, so **only read files
you trust** (for example, whose MD5 matches the published value).  This reader
is the only place in cnnlab that reads pickles, and it narrows the risk: its
unpickler refuses every global except the few NumPy and ``codecs`` functions
needed to rebuild arrays, and it checks each file's MD5 against the published
table, warning (not failing: small test batches have other checksums) on a
mismatch.

Each batch is a dict with ``b"data"``: uint8 array (N, 3072) holding the red,
green and blue 32x32 planes of each image in row-major order, and
``b"labels"``: N ints in 0..9.  ``batches.meta`` holds ``b"label_names"``.
"""
from __future__ import annotations

import codecs
import hashlib
import io
import pickle
import tarfile
import warnings
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from .dataset import ArrayDataset
from .mnist import DatasetNotFoundError

__all__ = ["load_cifar10", "CIFAR10_CLASSES", "CIFAR10_MD5", "CIFAR10_FILES"]

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck"]

#: Published MD5 of each file of the python version.
CIFAR10_MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
    "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
    "cifar-10-python.tar.gz": "c58f30108f718f92721af3b95e74349a",
}

CIFAR10_FILES = {
    "train": [f"data_batch_{i}" for i in range(1, 6)],
    "test": ["test_batch"],
}
_ARCHIVE = "cifar-10-python.tar.gz"
_SUBFOLDER = "cifar-10-batches-py"
_DESCRIPTION = ("CIFAR-10 (Krizhevsky, Nair, Hinton): 32x32 RGB images, 10 classes, "
                "50,000 train / 10,000 test")

_reconstruct, _reconstruct_args, _ = np.zeros(0).__reduce__()
_frombuffer = np.zeros(1).__reduce_ex__(5)[0]
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,
}


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """An unpickler that can rebuild NumPy arrays and plain containers, and nothing else."""

    def find_class(self, module, name):
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load global {module}.{name}: a CIFAR-10 batch holds only arrays, "
                "lists, bytes and numbers") from None


def _unpickle(data: bytes, source: str):
    try:
        return _ArrayOnlyUnpickler(io.BytesIO(data), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError, KeyError) as exc:
        raise ValueError(f"{source}: not a CIFAR-10 python batch file ({exc})") from exc


def _md5_mismatch(name: str, data: bytes) -> Optional[str]:
    """``"name (MD5 x, published y)"`` when the file's MD5 differs from the published one."""
    expected = CIFAR10_MD5.get(name)
    if expected is None:
        return None
    actual = hashlib.md5(data).hexdigest()
    return None if actual == expected else f"{name} (MD5 {actual}, published {expected})"


def _locate(path: Path):
    """``("dir", folder)`` or ``("tar", archive)`` for a user-given path."""
    if path.is_file():
        if path.name.endswith((".tar.gz", ".tgz", ".tar")):
            return "tar", path
        raise ValueError(f"{path} is a file but not a .tar.gz archive; pass the folder holding "
                         "data_batch_1..5, test_batch and batches.meta, or cifar-10-python.tar.gz")
    if path.is_dir():
        for folder in (path, path / _SUBFOLDER, path / "cifar10" / _SUBFOLDER, path / "cifar-10" / _SUBFOLDER,
                       path / "cifar10", path / "cifar-10"):
            if (folder / "data_batch_1").is_file() or (folder / "test_batch").is_file():
                return "dir", folder
        for folder in (path, path / "cifar10", path / "cifar-10"):
            if (folder / _ARCHIVE).is_file():
                return "tar", folder / _ARCHIVE
    names = CIFAR10_FILES["train"] + CIFAR10_FILES["test"] + ["batches.meta"]
    raise DatasetNotFoundError(
        f"CIFAR-10 not found at {path}: expected a folder holding {', '.join(names)} "
        f"(or a {_SUBFOLDER}/ subfolder with them), or the archive {_ARCHIVE}. cnnlab does not "
        "download CIFAR-10: get the python version from its authors' page and pass its folder "
        "with --data-dir DIR (data_dir=DIR in Python).")


#: the largest CIFAR-10 batch file read (the real ones are 31 MB each)
MAX_MEMBER_BYTES = 64 << 20
#: the most entries of an archive looked at
MAX_MEMBERS = 1000


def _too_large(source: str, size: int) -> ValueError:
    return ValueError(f"{source} is {size:,} bytes, larger than the {MAX_MEMBER_BYTES:,} bytes a CIFAR-10 "
                      "batch file may have (the real ones are 31 MB): not a CIFAR-10 file")


def _read_capped(f, source: str) -> bytes:
    data = f.read(MAX_MEMBER_BYTES + 1)
    if len(data) > MAX_MEMBER_BYTES:
        raise _too_large(source, len(data))
    return data


def _read_files(kind: str, where: Path, names: List[str]) -> Dict[str, bytes]:
    """The bytes of the requested files that exist (missing ones are left out); each is
    capped at :data:`MAX_MEMBER_BYTES`."""
    found: Dict[str, bytes] = {}
    if kind == "dir":
        for name in names:
            file = where / name
            if file.is_file():
                if file.stat().st_size > MAX_MEMBER_BYTES:
                    raise _too_large(str(file), file.stat().st_size)
                with file.open("rb") as f:
                    found[name] = _read_capped(f, str(file))
        return found
    try:
        with tarfile.open(where, "r:*") as archive:
            for count, member in enumerate(archive):
                if count >= MAX_MEMBERS:  # the real archive holds 8 files
                    raise ValueError(f"{where}: more than {MAX_MEMBERS:,} entries; not a CIFAR-10 archive")
                if len(found) == len(set(names)):
                    break  # everything asked for is read: the rest of the archive is not
                base = member.name.rsplit("/", 1)[-1]
                if member.isfile() and base in names and base not in found:
                    if member.size > MAX_MEMBER_BYTES:
                        raise _too_large(f"{where}: member {member.name}", member.size)
                    found[base] = _read_capped(archive.extractfile(member), f"{where}: member {member.name}")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ValueError(f"{where}: cannot read the archive ({exc})") from exc
    return found


def _parse_batch(batch, source: str):
    if not isinstance(batch, dict):
        raise ValueError(f"{source}: expected a dict with b'data' and b'labels', got {type(batch).__name__}")
    data = batch.get(b"data", batch.get("data"))
    labels = batch.get(b"labels", batch.get("labels"))
    if data is None or labels is None:
        raise ValueError(f"{source}: expected keys b'data' and b'labels', got {sorted(map(repr, batch))}")
    data = np.asarray(data)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise ValueError(f"{source}: b'data' must be a uint8 array of shape (N, 3072), "
                         f"got {data.dtype} {data.shape}")
    labels = np.asarray(labels)
    if labels.dtype.kind not in "iu" or labels.shape != (data.shape[0],):
        raise ValueError(f"{source}: b'labels' must hold {data.shape[0]} integers, got "
                         f"{labels.dtype} {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(f"{source}: labels must be in 0..9, got {labels.min()}..{labels.max()}")
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def load_cifar10(path, split: str = "train") -> ArrayDataset:
    """Read one split of CIFAR-10 (python version) from a folder or ``cifar-10-python.tar.gz``.

    Read only files you trust: they are pickles (see the module notes).

    Args:
        path: a folder with the batch files (or with a ``cifar-10-batches-py/``
            subfolder or the archive), or the path of the archive itself.
        split: ``"train"`` (``data_batch_1`` .. ``data_batch_5``) or ``"test"`` (``test_batch``).

    Returns:
        An :class:`ArrayDataset` named ``"cifar10-<split>"``; class names from
        ``batches.meta`` when present, else the standard ten.

    Shape:
        - images: (N, 3, 32, 32), float32 in [0, 1]
        - labels: (N,), int64

    Raises:
        DatasetNotFoundError: no CIFAR-10 files at ``path``, or some batches of the split missing.
        ValueError: a file is not a CIFAR-10 batch.
    """
    if split not in CIFAR10_FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    path = Path(path).expanduser()
    kind, where = _locate(path)
    wanted = CIFAR10_FILES[split]
    files = _read_files(kind, where, wanted + ["batches.meta"])
    missing = [name for name in wanted if name not in files]
    if missing:
        raise DatasetNotFoundError(
            f"CIFAR-10 {split} split incomplete at {where}: missing {', '.join(missing)} "
            f"(expected {', '.join(wanted)})")
    mismatches = [m for m in (_md5_mismatch(name, data) for name, data in files.items()) if m]
    if mismatches:
        warnings.warn(f"{where}: checksums differ from the published CIFAR-10 files: "
                      f"{'; '.join(mismatches)}. These are not the original files; they are pickles, "
                      "so read them only if you trust their source.", UserWarning, stacklevel=2)
    classes = list(CIFAR10_CLASSES)
    if "batches.meta" in files:
        source = f"{where}:batches.meta" if kind == "tar" else str(where / "batches.meta")
        meta = _unpickle(files["batches.meta"], source)
        names = meta.get(b"label_names", meta.get("label_names")) if isinstance(meta, dict) else None
        if names is not None:
            classes = [n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in names]
    images, labels = [], []
    for name in wanted:
        source = f"{where}:{name}" if kind == "tar" else str(where / name)
        data, batch_labels = _parse_batch(_unpickle(files[name], source), source)
        images.append(data)
        labels.append(batch_labels)
    pixels = np.concatenate(images).astype(np.float32)
    pixels /= np.float32(255.0)
    labels_all = np.concatenate(labels)
    if labels_all.size and labels_all.max() >= len(classes):
        raise ValueError(f"{where}: labels reach {labels_all.max()} but batches.meta names only "
                         f"{len(classes)} classes")
    return ArrayDataset(pixels, labels_all, classes, name=f"cifar10-{split}", description=_DESCRIPTION,
                        extra={"source": str(where)})
