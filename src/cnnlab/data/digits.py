"""The built-in default data set: scikit-learn's 8x8 handwritten digits.

scikit-learn ships these 1,797 images inside its package
(``sklearn.datasets.load_digits``), so they load offline.  Pixel values there
run from 0 to 16; here they are divided by 16 into [0, 1].

The train/test split is stratified and seeded: for each digit, 20% of its
images (rounded) go to the test part, chosen by a permutation drawn from
``numpy.random.default_rng(seed)`` (see :func:`~cnnlab.data.stratified_split`).
With the default ``test_fraction=0.2, seed=0`` that is 1,438 train and 359
test images, the same on every machine.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np

from .dataset import ArrayDataset, stratified_split

__all__ = ["load_digits", "load_digits_split", "DIGITS_CLASSES"]

DIGITS_CLASSES = [str(d) for d in range(10)]
_DESCRIPTION = ("scikit-learn's 8x8 handwritten digits (UCI optical recognition of handwritten "
                "digits, test part): 1,797 grayscale images, 10 classes")


def _load_all() -> Tuple[np.ndarray, np.ndarray]:
    try:
        from sklearn.datasets import load_digits as sklearn_load_digits
    except ImportError as exc:  # pragma: no cover - scikit-learn is a dependency
        raise ImportError("the built-in digits data set needs scikit-learn: pip install scikit-learn") from exc
    bunch = sklearn_load_digits()
    images = np.asarray(bunch.images, dtype=np.float32).reshape(-1, 1, 8, 8) / np.float32(16.0)
    labels = np.asarray(bunch.target, dtype=np.int64)
    return images, labels


def load_digits(split: str = "all", test_fraction: float = 0.2, seed: int = 0) -> ArrayDataset:
    """Load the 8x8 digits: all 1,797 images, or the train or test part of the seeded split.

    Args:
        split: ``"all"``, ``"train"`` or ``"test"``.
        test_fraction: share of each class in the test part.
        seed: seed of the split.

    Shape:
        - images: (N, 1, 8, 8), float32 in [0, 1]
        - labels: (N,), int64
    """
    if split not in ("all", "train", "test"):
        raise ValueError(f"split must be 'all', 'train' or 'test', got {split!r}")
    images, labels = _load_all()
    full = ArrayDataset(images, labels, DIGITS_CLASSES, name="digits", description=_DESCRIPTION)
    if split == "all":
        return full
    train_idx, test_idx = stratified_split(labels, test_fraction, seed)
    return full.subset(train_idx if split == "train" else test_idx, name=f"digits-{split}")


def load_digits_split(test_fraction: float = 0.2, seed: int = 0) -> Tuple[ArrayDataset, ArrayDataset]:
    """The seeded stratified ``(train, test)`` split of the 8x8 digits, both carrying the train mean/std."""
    full = load_digits("all")
    train_idx, test_idx = stratified_split(full.labels, test_fraction, seed)
    train = full.subset(train_idx, name="digits-train").with_stats()
    test = full.subset(test_idx, name="digits-test").with_stats(train.mean, train.std)
    return train, test
