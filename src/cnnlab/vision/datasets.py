"""torchvision-shaped data sets: ``MNIST``, ``FashionMNIST``, ``CIFAR10`` from local files.

``datasets.MNIST(root="data", train=True, download=True, transform=ToTensor())``: item ``i`` is
``(transform(image), target_transform(label))``, the image a PIL image (``L`` or ``RGB``) when Pillow
is installed, else an ``H x W (x C)`` uint8 NumPy array; ``len(ds)``, ``ds.classes``, ``ds.data``,
``ds.targets`` as torchvision has them.

Where the files are looked for, under ``root``: MNIST in ``root/MNIST/raw/`` (torchvision's layout),
``root/MNIST/``, ``root/mnist/`` or ``root`` itself (``FashionMNIST``: ``root/FashionMNIST/raw/``,
``root/fashion-mnist/``, ...), the four IDX files, ``.gz`` or not.  CIFAR-10: the folder
``root/cifar-10-batches-py/`` or the archive ``root/cifar-10-python.tar.gz`` (read by
:func:`cnnlab.data.load_cifar10`).  ``download=True`` fetches missing MNIST/Fashion-MNIST files into
``root/<Name>/raw/`` with cnnlab's checksum-checked download, and the CIFAR-10 archive into ``root``
(its MD5 checked before it is kept).
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from ..tensor import Tensor
from ..utils.data import Dataset, _Batch
from .transforms import batch_plan, to_tensor_batch

__all__ = ["MNIST", "FashionMNIST", "CIFAR10"]


def _to_image(array: np.ndarray):
    try:
        from PIL import Image
    except ImportError:  # Pillow is optional: the transforms accept arrays too
        return array
    return Image.fromarray(array)


class _ImageDataset(Dataset):
    """Images (uint8, ``N x H x W`` or ``N x H x W x C``) with int labels, and torchvision's item rules."""

    classes: list = []

    def __init__(self, root, transform: Optional[Callable] = None, target_transform: Optional[Callable] = None):
        if isinstance(root, (str, os.PathLike)):
            root = os.path.expanduser(root)
        self.root = root
        self.transform = transform
        self.target_transform = target_transform

    def __len__(self) -> int:
        return len(self._pixels)

    def __getitem__(self, index):
        index = int(index)
        img, target = _to_image(self._pixels[index]), int(self._labels[index])
        if self.transform is not None:
            img = self.transform(img)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return img, target

    def __getitems__(self, indices):
        """A whole batch at once when the transform is ToTensor (+ Normalize) and there is no target transform."""
        plan = batch_plan(self.transform) if self.transform is not None else None
        if plan is None or self.target_transform is not None:
            return [self[i] for i in indices]
        index = np.asarray(indices, dtype=np.int64)
        images = to_tensor_batch(self._pixels[index])
        for step in plan[1:]:
            images = step.apply(images)
        return _Batch((Tensor(images), Tensor(self._labels[index].astype(np.int64))))

    @property
    def data(self) -> Tensor:
        """The raw pixels, as torchvision keeps them (uint8)."""
        return Tensor(self._pixels)

    @property
    def targets(self):
        return Tensor(self._labels)

    @property
    def class_to_idx(self) -> dict:
        return {c: i for i, c in enumerate(self.classes)}

    def __repr__(self) -> str:
        lines = [f"Dataset {type(self).__name__}", f"    Number of datapoints: {len(self)}",
                 f"    Root location: {self.root}", f"    Split: {'Train' if self.train else 'Test'}"]
        if self.transform is not None:
            lines.append(f"    StandardTransform\nTransform: {self.transform!r}")
        return "\n".join(lines)


class MNIST(_ImageDataset):
    """MNIST handwritten digits, torchvision's ``datasets.MNIST`` (28x28 grey images, labels 0-9)."""

    _kind = "mnist"
    _folders = ("MNIST", "mnist")
    classes = ["0 - zero", "1 - one", "2 - two", "3 - three", "4 - four", "5 - five", "6 - six", "7 - seven",
               "8 - eight", "9 - nine"]

    def __init__(self, root, train: bool = True, transform: Optional[Callable] = None,
                 target_transform: Optional[Callable] = None, download: bool = False):
        super().__init__(root, transform, target_transform)
        self.train = bool(train)
        from ..data.mnist import read_mnist
        images_path, labels_path = self._find(download)
        self._pixels, self._labels = read_mnist(images_path, labels_path)
        if self._labels.size and (self._labels.min() < 0 or self._labels.max() >= len(self.classes)):
            raise ValueError(f"{labels_path}: labels must be in 0..{len(self.classes) - 1}, got "
                             f"{self._labels.min()}..{self._labels.max()}")

    @property
    def raw_folder(self) -> Path:
        return Path(self.root) / self._folders[0] / "raw"

    def _candidates(self):
        root = Path(self.root)
        return [self.raw_folder, *(root / f for f in self._folders), root]

    def _find(self, download: bool):
        from ..data.mnist import MIRRORS, MNIST_FILES, SHA256, download_file
        split = "train" if self.train else "test"
        found = []
        for name in MNIST_FILES[split]:
            path = next((c for folder in self._candidates() for c in (folder / name[:-3], folder / name)
                         if c.is_file()), None)
            if path is None and download:
                path = self.raw_folder / name
                path.parent.mkdir(parents=True, exist_ok=True)
                errors = []
                for mirror in MIRRORS[self._kind]:
                    try:
                        download_file(mirror + name, path, SHA256[self._kind][name])
                        break
                    except Exception as exc:  # noqa: BLE001  (each mirror's failure is reported below)
                        errors.append(f"{mirror + name}: {exc}")
                else:
                    raise RuntimeError(f"{type(self).__name__}: could not download {name}: " + "; ".join(errors))
            if path is None:
                looked = ", ".join(str(c) for c in self._candidates())
                raise RuntimeError(f"{type(self).__name__} {split} file {name} (or {name[:-3]}) not found in "
                                   f"{looked}. You can use download=True to download it")
            found.append(path)
        return found


class FashionMNIST(MNIST):
    """Fashion-MNIST, torchvision's ``datasets.FashionMNIST`` (28x28 grey images of clothes, 10 classes)."""

    _kind = "fashion-mnist"
    _folders = ("FashionMNIST", "fashion-mnist", "fashion_mnist")
    classes = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
               "Ankle boot"]


_CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"


class CIFAR10(_ImageDataset):
    """CIFAR-10, torchvision's ``datasets.CIFAR10`` (32x32 RGB images, 10 classes).

    The files are Python pickles, the format the data set ships in; cnnlab's reader only rebuilds arrays
    from them (see :mod:`cnnlab.data.cifar`).  Read files you trust.
    """

    base_folder = "cifar-10-batches-py"

    def __init__(self, root, train: bool = True, transform: Optional[Callable] = None,
                 target_transform: Optional[Callable] = None, download: bool = False):
        super().__init__(root, transform, target_transform)
        self.train = bool(train)
        from ..data.cifar import load_cifar10
        from ..data.mnist import DatasetNotFoundError
        root = Path(self.root)
        if download and not (root / self.base_folder).is_dir() and not (root / "cifar-10-python.tar.gz").is_file():
            self._download(root)
        try:
            ds = load_cifar10(root, "train" if self.train else "test")
        except DatasetNotFoundError as exc:
            raise RuntimeError(f"CIFAR10: {exc}. You can use download=True to download it") from None
        # back to torchvision's uint8 H x W x C pixels (the reader gives float32 NCHW in [0, 1])
        self._pixels = np.rint(ds.images.transpose(0, 2, 3, 1) * 255).astype(np.uint8)
        self._labels = np.asarray(ds.labels, dtype=np.int64)
        self.classes = list(ds.classes)

    @staticmethod
    def _download(root: Path) -> None:
        from ..data.cifar import CIFAR10_MD5
        from ..data.mnist import ChecksumError, download_file
        root.mkdir(parents=True, exist_ok=True)
        final = root / "cifar-10-python.tar.gz"
        part = root / "cifar-10-python.tar.gz.download"
        download_file(_CIFAR10_URL, part)
        digest = hashlib.md5()
        with open(part, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        if digest.hexdigest() != CIFAR10_MD5["cifar-10-python.tar.gz"]:
            part.unlink()
            raise ChecksumError(f"download of {_CIFAR10_URL} rejected: MD5 mismatch: expected "
                                f"{CIFAR10_MD5['cifar-10-python.tar.gz']}, got {digest.hexdigest()}")
        os.replace(part, final)
