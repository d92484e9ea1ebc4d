"""Data sets, mini-batch loaders and batch augmentation, all as NumPy arrays.

- :func:`get_dataset` -- ``"digits"`` (built in, offline), ``"mnist"``,
  ``"fashion-mnist"``, ``"cifar10"`` or a folder of images -> ``(train, test)``.
- :class:`ArrayDataset` -- images float32 (N, C, H, W) in [0, 1], labels int64
  (N,), class names, description and the normalisation mean/std.
- :class:`DataLoader` -- seeded shuffling and per-batch transforms.
- :mod:`cnnlab.data.transforms` -- ``Normalize``, ``RandomCrop``,
  ``RandomHorizontalFlip``, ``RandomShift``, ``RandomRotation``, ``Compose``.

Importing this package loads only NumPy; Pillow, scikit-learn and tqdm are
imported by the functions that need them.  It does not depend on the autograd
engine.
"""
from .dataset import ArrayDataset, as_generator, compute_mean_std, data_fingerprint, stratified_split
from .idx import IDXFormatError, parse_idx, read_idx
from .mnist import (ChecksumError, DatasetNotFoundError, FASHION_MNIST_CLASSES, MNIST_CLASSES,
                    cache_dir, find_mnist_files, load_mnist, read_mnist)
from .digits import DIGITS_CLASSES, load_digits, load_digits_split
from .folder import IMAGE_EXTENSIONS, load_image_folder
from .cifar import CIFAR10_CLASSES, load_cifar10
from .loader import DataLoader
from .transforms import (Compose, Normalize, RandomCrop, RandomHorizontalFlip, RandomRotation,
                         RandomShift, RandomVerticalFlip, Transform)
from .registry import available_datasets, get_dataset
from . import transforms

__all__ = [
    "ArrayDataset", "as_generator", "compute_mean_std", "data_fingerprint", "stratified_split",
    "IDXFormatError", "parse_idx", "read_idx",
    "ChecksumError", "DatasetNotFoundError", "FASHION_MNIST_CLASSES", "MNIST_CLASSES",
    "cache_dir", "find_mnist_files", "load_mnist", "read_mnist",
    "DIGITS_CLASSES", "load_digits", "load_digits_split",
    "IMAGE_EXTENSIONS", "load_image_folder",
    "CIFAR10_CLASSES", "load_cifar10",
    "DataLoader",
    "Compose", "Normalize", "RandomCrop", "RandomHorizontalFlip", "RandomRotation", "RandomShift",
    "RandomVerticalFlip", "Transform", "transforms",
    "available_datasets", "get_dataset",
]
