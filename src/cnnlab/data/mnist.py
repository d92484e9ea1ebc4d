"""MNIST and Fashion-MNIST from their original gzip-compressed IDX files.

Where the files are looked for, in order:

1. ``data_dir`` itself, then its ``mnist/`` or ``fashion-mnist/`` subfolder
   (whichever matches ``kind``), when ``data_dir`` is given;
2. the cache folder: ``$CNNLAB_CACHE/<kind>`` when that variable is set, else
   ``$XDG_CACHE_HOME/cnnlab/<kind>``, else ``~/.cache/cnnlab/<kind>``.

Each file may be the published ``.gz`` or its decompressed form (same name
without ``.gz``).  Every file is checked against its published SHA-256 before
use; a mismatch raises :class:`ChecksumError`.  Files that are still missing
are downloaded into the cache folder when ``download=True`` (written to a
temporary file first, kept only when its SHA-256 matches).  When they cannot
be found or downloaded, :class:`DatasetNotFoundError` says which files to put
in which folder.
"""
from __future__ import annotations

import hashlib
import http.client
import os
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np

from .._files import atomic_open
from .dataset import ArrayDataset
from .idx import IMAGES_MAGIC, LABELS_MAGIC, IDXFormatError, read_idx

__all__ = [
    "DatasetNotFoundError", "ChecksumError", "load_mnist", "find_mnist_files", "read_mnist",
    "cache_dir", "download_file", "fetch_url", "sha256_file", "MAX_DOWNLOAD_BYTES", "DownloadTooLargeError",
    "MNIST_CLASSES", "FASHION_MNIST_CLASSES", "MNIST_FILES", "SHA256", "MIRRORS",
]


class DatasetNotFoundError(FileNotFoundError):
    """The data set's files are neither on disk nor downloadable; the message says where to put them."""


class ChecksumError(ValueError):
    """A file's checksum differs from the published one (a corrupt or different file)."""


class DownloadTooLargeError(ChecksumError):
    """A download is larger than the cap (:data:`MAX_DOWNLOAD_BYTES`): not the published file."""


#: the most bytes one download may bring (the largest published file, Fashion-MNIST's
#: training images, is 26 MB)
MAX_DOWNLOAD_BYTES = 64 << 20


MNIST_CLASSES = [str(d) for d in range(10)]
FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]

#: split -> (images file, labels file)
MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}

#: Published SHA-256 of every file, compressed (``.gz``) and decompressed.
SHA256 = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
        "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
}

#: Public mirrors of the ``.gz`` files, tried in order.
MIRRORS = {
    "mnist": ["https://ossci-datasets.s3.amazonaws.com/mnist/"],
    "fashion-mnist": ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
}

_TITLES = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST"}
_DESCRIPTIONS = {
    "mnist": "MNIST handwritten digits (LeCun, Cortes, Burges): 28x28 grayscale, 10 classes, "
             "60,000 train / 10,000 test",
    "fashion-mnist": "Fashion-MNIST clothing images (Xiao, Rasul, Vollgraf, Zalando Research): "
                     "28x28 grayscale, 10 classes, 60,000 train / 10,000 test",
}
_ALIASES = {"mnist": "mnist", "fashion-mnist": "fashion-mnist", "fashion_mnist": "fashion-mnist",
            "fashionmnist": "fashion-mnist", "fashion": "fashion-mnist"}


def _canonical_kind(kind: str) -> str:
    key = str(kind).strip().lower()
    if key not in _ALIASES:
        raise ValueError(f"kind must be 'mnist' or 'fashion-mnist', got {kind!r}")
    return _ALIASES[key]


def _check_split(split: str) -> str:
    if split not in MNIST_FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    return split


def cache_dir(kind: Optional[str] = None) -> Path:
    """The download cache folder (``$CNNLAB_CACHE``, else ``$XDG_CACHE_HOME/cnnlab``, else ``~/.cache/cnnlab``).

    With ``kind``, the data set's own subfolder, e.g. ``~/.cache/cnnlab/mnist``.
    """
    root = os.environ.get("CNNLAB_CACHE")
    if root:
        base = Path(root).expanduser()
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "cnnlab"
    return base / kind if kind else base


def sha256_file(path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def _verify(path: Path, expected: str) -> None:
    actual = sha256_file(path)
    if actual != expected:
        raise ChecksumError(
            f"{path}: SHA-256 mismatch: expected {expected}, got {actual}. The file is corrupt or "
            "is not the published one; delete it and download it again.")


def fetch_url(url: str, out, progress: bool = True, timeout: float = 30.0,
              max_bytes: Optional[int] = None) -> None:
    """Stream ``url`` into the binary file object ``out`` (with a tqdm bar when ``progress``).

    Raises ``OSError`` (``urllib.error.URLError`` and socket errors are
    subclasses) or ``http.client.HTTPException`` when the transfer fails, and
    :class:`DownloadTooLargeError` when the server announces or sends more than
    ``max_bytes`` (default :data:`MAX_DOWNLOAD_BYTES`).
    """
    import urllib.request

    limit = MAX_DOWNLOAD_BYTES if max_bytes is None else int(max_bytes)
    too_large = DownloadTooLargeError(f"download of {url} refused: larger than {limit:,} bytes, the most "
                                      "cnnlab accepts for one file (not the published file)")
    request = urllib.request.Request(url, headers={"User-Agent": "cnnlab"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        total = response.headers.get("Content-Length")
        if total is not None and total.strip().isdigit() and int(total) > limit:
            raise too_large
        received = 0
        bar = None
        if progress:
            try:
                from tqdm import tqdm
                bar = tqdm(total=int(total) if total and total.strip().isdigit() else None, unit="B", unit_scale=True,
                           unit_divisor=1024, desc=url.rsplit("/", 1)[-1], leave=False)
            except ImportError:  # progress bars are optional
                bar = None
        try:
            while True:
                block = response.read(1 << 16)
                if not block:
                    break
                received += len(block)
                if received > limit:
                    raise too_large
                out.write(block)
                if bar is not None:
                    bar.update(len(block))
        finally:
            if bar is not None:
                bar.close()


def download_file(url: str, path, sha256: Optional[str] = None, progress: bool = True) -> Path:
    """Download ``url`` to ``path`` atomically, keeping it only when its SHA-256 matches.

    The bytes go to a temporary file in the destination folder, which replaces
    ``path`` (``os.replace``) once complete and verified, so an interrupted or
    corrupt download never leaves a partial file under the final name.

    Raises:
        ChecksumError: the downloaded bytes do not have the expected SHA-256.
        OSError, http.client.HTTPException: the transfer failed.
    """
    path = Path(path)
    with atomic_open(path, suffix=".part") as (f, tmp):
        fetch_url(url, f, progress=progress)
        f.flush()
        if sha256 is not None:
            actual = sha256_file(tmp)
            if actual != sha256:
                raise ChecksumError(
                    f"download of {url} rejected: SHA-256 mismatch: expected {sha256}, got {actual}")
    return path


def _search_dirs(kind: str, data_dir) -> List[Path]:
    dirs = []
    if data_dir is not None:
        root = Path(data_dir).expanduser()
        dirs += [root, root / kind]
        if kind == "fashion-mnist":
            dirs.append(root / "fashion_mnist")
    dirs.append(cache_dir(kind))
    return dirs


def _not_found(kind: str, split: str, data_dir, dirs: List[Path], reason: str) -> DatasetNotFoundError:
    title = _TITLES[kind]
    names = [name for pair in MNIST_FILES.values() for name in pair]
    target = Path(data_dir).expanduser() if data_dir is not None else cache_dir(kind)
    looked = ", ".join(str(d) for d in dict.fromkeys(dirs))
    return DatasetNotFoundError(
        f"{title} ({split} split) is not on disk and was not downloaded: {reason}. "
        f"Looked in: {looked}. To use it offline, place the 4 files {', '.join(names)} "
        f"(from {MIRRORS[kind][0]}) in the folder {target}, or in any folder that you pass with "
        f"--data-dir DIR (data_dir=DIR in Python).")


def find_mnist_files(data_dir=None, kind: str = "mnist", split: str = "train",
                     download: bool = True, progress: bool = True) -> Tuple[Path, Path]:
    """Locate (downloading if allowed) and verify the two files of one split.

    Returns:
        ``(images_path, labels_path)``.

    Raises:
        DatasetNotFoundError: missing and not downloadable (offline or ``download=False``).
        ChecksumError: a file found on disk, or every downloaded copy, has the wrong SHA-256.
    """
    kind = _canonical_kind(kind)
    split = _check_split(split)
    table = SHA256[kind]
    dirs = _search_dirs(kind, data_dir)
    found: List[Path] = []
    for name in MNIST_FILES[split]:
        path = None
        for folder in dirs:
            for candidate in (folder / name, folder / name[:-3]):
                if candidate.is_file():
                    path = candidate
                    break
            if path is not None:
                break
        if path is not None:
            _verify(path, table[path.name])
        else:
            if not download:
                raise _not_found(kind, split, data_dir, dirs, f"{name} is missing and download=False")
            path = cache_dir(kind) / name
            errors = []
            checksum_errors = []
            for mirror in MIRRORS[kind]:
                url = mirror + name
                try:
                    download_file(url, path, table[name], progress=progress)
                    break
                except ChecksumError as exc:
                    checksum_errors.append(exc)
                except (OSError, http.client.HTTPException) as exc:
                    errors.append(f"{url}: {exc}")
            else:
                if checksum_errors:
                    raise checksum_errors[0]
                raise _not_found(kind, split, data_dir, dirs,
                                 "the download failed (" + "; ".join(errors) + ")")
        found.append(path)
    return found[0], found[1]


def read_mnist(images_path, labels_path) -> Tuple[np.ndarray, np.ndarray]:
    """Read an IDX image file and its label file.

    Returns:
        ``(images, labels)``: uint8 array of shape (N, H, W) (28x28 for MNIST)
        and int64 array of shape (N,).

    Raises:
        IDXFormatError: bad magic number, truncated file, or image/label counts that differ.
    """
    images = read_idx(images_path, expected_magic=IMAGES_MAGIC)
    labels = read_idx(labels_path, expected_magic=LABELS_MAGIC)
    if images.shape[0] != labels.shape[0]:
        raise IDXFormatError(
            f"{images_path} holds {images.shape[0]} images but {labels_path} holds "
            f"{labels.shape[0]} labels")
    return images, labels.astype(np.int64)


def load_mnist(data_dir=None, kind: str = "mnist", split: str = "train", download: bool = True,
               progress: bool = True) -> ArrayDataset:
    """Load one split of MNIST or Fashion-MNIST.

    Args:
        data_dir: folder holding the files (flat, or in a ``mnist/`` /
            ``fashion-mnist/`` subfolder); ``None`` to use only the cache folder.
        kind: ``"mnist"`` or ``"fashion-mnist"``.
        split: ``"train"`` (60,000 images) or ``"test"`` (10,000 images).
        download: fetch missing files into the cache folder.
        progress: show a progress bar while downloading.

    Returns:
        An :class:`ArrayDataset` named ``"<kind>-<split>"`` with ``mean``/``std``
        left ``None`` (:func:`cnnlab.data.get_dataset` sets the training split's).

    Shape:
        - images: (N, 1, 28, 28), float32 in [0, 1]
        - labels: (N,), int64

    Raises:
        DatasetNotFoundError: files missing and not downloadable.
        ChecksumError: a file is not the published one.
        IDXFormatError: a file is not a valid IDX file.
    """
    kind = _canonical_kind(kind)
    images_path, labels_path = find_mnist_files(data_dir, kind, split, download, progress)
    images, labels = read_mnist(images_path, labels_path)
    classes = MNIST_CLASSES if kind == "mnist" else FASHION_MNIST_CLASSES
    if labels.size and labels.max() >= len(classes):
        raise IDXFormatError(f"{labels_path}: labels must be 0..9, found {labels.max()}")
    floats = images[:, None].astype(np.float32)  # astype, then divide in place: ~10x faster
    floats /= np.float32(255.0)                  # than one mixed-dtype np.divide
    return ArrayDataset(floats, labels, list(classes), name=f"{kind}-{split}",
                        description=_DESCRIPTIONS[kind],
                        extra={"files": [str(images_path), str(labels_path)]})
