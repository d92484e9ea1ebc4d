"""One entry point from a data set name (or a folder path) to its train and test parts."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, Optional, Tuple

from .cifar import CIFAR10_FILES, _ARCHIVE, _SUBFOLDER, load_cifar10
from .dataset import ArrayDataset
from .digits import load_digits_split
from .folder import load_image_folder
from .mnist import MNIST_FILES, SHA256, load_mnist, sha256_file

__all__ = ["get_dataset", "available_datasets", "dataset_key"]

_NAMES = {
    "digits": "digits", "sklearn-digits": "digits",
    "mnist": "mnist",
    "fashion-mnist": "fashion-mnist", "fashion_mnist": "fashion-mnist", "fashionmnist": "fashion-mnist",
    "cifar10": "cifar10", "cifar-10": "cifar10", "cifar_10": "cifar10",
}

_SUMMARY = {
    "digits": "8x8 grayscale handwritten digits shipped with scikit-learn (1,797 images, offline; "
              "the default)",
    "mnist": "28x28 grayscale handwritten digits, 60,000 train / 10,000 test (downloaded or --data-dir)",
    "fashion-mnist": "28x28 grayscale clothing images, 10 classes, 60,000 train / 10,000 test "
                     "(downloaded or --data-dir)",
    "cifar10": "32x32 RGB objects, 10 classes, 50,000 train / 10,000 test (python batch files you "
               "supply with --data-dir)",
    "<folder>": "your own images: one subfolder per class (PNG, JPEG, BMP), split into train/val",
}


_DATASET_NAMES = {"digits": "digits", "sklearn-digits": "digits", "mnist": "mnist",
                  "fashion-mnist": "fashion-mnist", "fashion_mnist": "fashion-mnist",
                  "fashionmnist": "fashion-mnist", "cifar10": "cifar10", "cifar-10": "cifar10",
                  "cifar_10": "cifar10"}


def dataset_key(dataset: str) -> str:
    """Canonical name of a built-in data set, or ``"folder"`` for a path."""
    return _DATASET_NAMES.get(str(dataset).strip().lower(), "folder")


def available_datasets() -> Dict[str, str]:
    """Data set names accepted by :func:`get_dataset`, with one line on each."""
    return dict(_SUMMARY)


def _looks_like_cifar(path: Path) -> bool:
    if path.is_file():
        return path.name.endswith((".tar.gz", ".tgz", ".tar"))
    for folder in (path, path / _SUBFOLDER):
        if any((folder / name).is_file() for name in CIFAR10_FILES["train"] + CIFAR10_FILES["test"]):
            return True
    return (path / _ARCHIVE).is_file()


def _mnist_kind(path: Path) -> Optional[str]:
    """``"mnist"`` or ``"fashion-mnist"`` when ``path`` holds that data set's IDX files (told apart
    by the checksum of the small train-labels file), else None."""
    name = MNIST_FILES["train"][1]
    for folder in (path, path / "mnist", path / "fashion-mnist"):
        for candidate in (folder / name, folder / name[:-3]):
            if candidate.is_file():
                digest = sha256_file(candidate)
                for kind, table in SHA256.items():
                    if table.get(candidate.name) == digest:
                        return kind
    return None


def _with_train_stats(train: ArrayDataset, test: ArrayDataset) -> Tuple[ArrayDataset, ArrayDataset]:
    if train.mean is None or train.std is None:
        train.with_stats()
    test.mean, test.std = train.mean, train.std
    return train, test


def get_dataset(name_or_path, data_dir=None, download: bool = True, val_fraction: float = 0.2,
                seed: int = 0, size=None, channels: Optional[int] = None,
                progress: bool = True) -> Tuple[ArrayDataset, ArrayDataset]:
    """Load a data set by name, or a folder of images, as ``(train, test)``.

    Names: ``"digits"`` (default of the CLI; offline), ``"mnist"``,
    ``"fashion-mnist"``, ``"cifar10"``; anything else is taken as a path: a
    CIFAR-10 folder/archive, a folder holding the MNIST or Fashion-MNIST IDX
    files (recognised by their checksums), or an image folder with one
    subfolder per class.

    Both returned data sets carry the class names, a description, and the
    *training* part's per-channel ``mean``/``std``; ``train.metadata()`` is
    what a trained model should store to preprocess new inputs.

    Args:
        name_or_path: a name above or a path.
        data_dir: where MNIST/Fashion-MNIST/CIFAR-10 files are (see
            :func:`~cnnlab.data.load_mnist`); required for CIFAR-10 by name.
        download: allow downloading MNIST / Fashion-MNIST into the cache folder.
        val_fraction: for data sets without an official test split (digits,
            image folders), the share of each class held out as the test part.
        seed: seed of that split.
        size, channels: for image folders, see :func:`~cnnlab.data.load_image_folder`.
        progress: show download progress bars.

    Raises:
        ValueError: an unknown name that is not an existing path.
        DatasetNotFoundError: the data set's files are missing (message says where to put them).
    """
    if isinstance(name_or_path, os.PathLike):
        name_or_path = os.fspath(name_or_path)
    if not isinstance(name_or_path, str):
        raise TypeError(f"name_or_path must be a data set name or a path, got {type(name_or_path).__name__}")
    key = _NAMES.get(name_or_path.strip().lower())
    if key == "digits":
        return load_digits_split(test_fraction=val_fraction, seed=seed)
    if key in ("mnist", "fashion-mnist"):
        train = load_mnist(data_dir, key, "train", download=download, progress=progress)
        test = load_mnist(data_dir, key, "test", download=download, progress=progress)
        return _with_train_stats(train, test)
    if key == "cifar10":
        if data_dir is None:
            raise ValueError("CIFAR-10 is not downloaded by cnnlab: pass the folder holding its python "
                             "batch files (data_batch_1..5, test_batch, batches.meta) or "
                             f"{_ARCHIVE} with --data-dir DIR (data_dir=DIR in Python)")
        return _with_train_stats(load_cifar10(data_dir, "train"), load_cifar10(data_dir, "test"))

    path = Path(name_or_path).expanduser()
    if not path.exists():
        known = ", ".join(sorted(set(_NAMES.values())))
        raise ValueError(f"unknown data set {name_or_path!r}: expected one of {known}, or the path of "
                         f"an image folder (one subfolder per class); {path} does not exist")
    if _looks_like_cifar(path):
        return _with_train_stats(load_cifar10(path, "train"), load_cifar10(path, "test"))
    kind = _mnist_kind(path) if path.is_dir() else None
    if kind is not None:
        return get_dataset(kind, data_dir=path, download=False, progress=progress)
    return load_image_folder(path, size=size, channels=channels, val_fraction=val_fraction, seed=seed)
