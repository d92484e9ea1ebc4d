"""The in-memory image data set, stratified splits and channel statistics.

Every loader in :mod:`cnnlab.data` returns an :class:`ArrayDataset`: all
images in one float32 NCHW array scaled to [0, 1], one int64 label per image,
and the metadata a trained model needs to store (class names, input shape,
the per-channel mean and standard deviation used for normalisation).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence, Tuple

import numpy as np

from ..random import as_generator

__all__ = ["ArrayDataset", "stratified_split", "compute_mean_std", "as_generator", "check_data_fits_model",
           "DataMismatchError", "data_fingerprint"]


def _check_images_labels(images, labels) -> Tuple[np.ndarray, np.ndarray]:
    images = np.asarray(images)
    labels = np.asarray(labels)
    if images.ndim != 4:
        raise ValueError(
            f"images must be a 4-D (N, C, H, W) array, got shape {images.shape}")
    if images.dtype != np.float32:
        raise TypeError(
            f"images must be float32 in [0, 1], got dtype {images.dtype}; "
            "convert with images.astype(np.float32) / 255 for 8-bit pixels")
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise ValueError(
            f"labels must be a 1-D array with one label per image, i.e. shape ({images.shape[0]},), "
            f"got shape {labels.shape}")
    if labels.dtype.kind not in "iu":
        raise TypeError(f"labels must be integers, got dtype {labels.dtype}")
    if labels.dtype != np.int64:
        labels = labels.astype(np.int64)
    return images, labels


@dataclass(eq=False)
class ArrayDataset:
    """A labelled image data set held in memory.

    Indexing mirrors ``torch.utils.data.TensorDataset``: ``ds[i]`` returns the
    pair ``(images[i], labels[i])`` for an int, a slice or an index array.

    Args:
        images: float32 array of shape (N, C, H, W) with values in [0, 1].
        labels: integer array of shape (N,) with values in ``0 .. len(classes) - 1``
            (stored as int64).
        classes: the class names; ``classes[k]`` names label ``k``.
        name: a short name such as ``"mnist-train"``.
        description: one line saying what the data are and where they came from.
        mean, std: per-channel statistics (length C) used to normalise inputs;
            by convention those of the *training* split, copied onto its test split.
            ``None`` until computed (see :meth:`with_stats`).
        extra: free-form provenance (source files, folder), not validated.

    Shape:
        - images: (N, C, H, W), float32 in [0, 1]
        - labels: (N,), int64
    """

    images: np.ndarray
    labels: np.ndarray
    classes: Sequence[str]
    name: str = ""
    description: str = ""
    mean: Optional[Tuple[float, ...]] = None
    std: Optional[Tuple[float, ...]] = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        self.images, self.labels = _check_images_labels(self.images, self.labels)
        self.classes = [str(c) for c in self.classes]
        if len(self.classes) == 0:
            raise ValueError("classes must name at least one class, got an empty list")
        if self.labels.size and (self.labels.min() < 0 or self.labels.max() >= len(self.classes)):
            raise ValueError(
                f"labels must lie in 0..{len(self.classes) - 1} for {len(self.classes)} classes, "
                f"got values from {self.labels.min()} to {self.labels.max()}")
        channels = self.images.shape[1]
        for attr in ("mean", "std"):
            value = getattr(self, attr)
            if value is None:
                continue
            value = tuple(float(v) for v in np.atleast_1d(np.asarray(value, dtype=np.float64)))
            if len(value) != channels:
                raise ValueError(
                    f"{attr} must have one value per channel ({channels}), got {len(value)}: {value}")
            if attr == "std" and min(value) <= 0:
                raise ValueError(f"std must be positive, got {value}")
            setattr(self, attr, value)

    # -- container protocol -------------------------------------------------
    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, index):
        return self.images[index], self.labels[index]

    def __repr__(self) -> str:
        return (f"ArrayDataset(name={self.name!r}, images={self.images.shape} {self.images.dtype}, "
                f"classes={len(self.classes)})")

    # -- metadata -----------------------------------------------------------
    @property
    def input_shape(self) -> Tuple[int, int, int]:
        """(C, H, W) of one image."""
        return tuple(int(s) for s in self.images.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def class_counts(self) -> np.ndarray:
        """Number of images per class, shape (num_classes,), int64."""
        return np.bincount(self.labels, minlength=self.num_classes).astype(np.int64)

    def subset(self, indices, name: Optional[str] = None) -> "ArrayDataset":
        """A new data set holding ``images[indices]`` (a copy) with the same metadata."""
        indices = np.asarray(indices)
        return ArrayDataset(self.images[indices], self.labels[indices], list(self.classes),
                            name=self.name if name is None else name,
                            description=self.description, mean=self.mean, std=self.std,
                            extra=dict(self.extra))

    def with_stats(self, mean=None, std=None) -> "ArrayDataset":
        """Set ``mean``/``std`` (computed from these images when not given); returns ``self``."""
        if mean is None or std is None:
            computed_mean, computed_std = compute_mean_std(self.images)
            mean = computed_mean if mean is None else mean
            std = computed_std if std is None else std
        self.mean, self.std = mean, std
        self.__post_init__()
        return self

    def normalize_transform(self):
        """A :class:`~cnnlab.data.transforms.Normalize` built from this data set's mean/std."""
        from .transforms import Normalize
        if self.mean is None or self.std is None:
            self.with_stats()
        return Normalize(self.mean, self.std)

    def metadata(self) -> dict:
        """JSON-ready preprocessing metadata for storing beside a trained model.

        Keys: ``name``, ``description``, ``classes``, ``input_shape`` ([C, H, W]),
        ``mean``, ``std`` (lists, or None), ``pixel_range`` ([0.0, 1.0]: images are
        scaled to [0, 1] before normalisation).
        """
        return {
            "name": self.name,
            "description": self.description,
            "classes": list(self.classes),
            "input_shape": list(self.input_shape),
            "mean": None if self.mean is None else list(self.mean),
            "std": None if self.std is None else list(self.std),
            "pixel_range": [0.0, 1.0],
        }


def stratified_split(labels, test_fraction: float = 0.2, seed=0) -> Tuple[np.ndarray, np.ndarray]:
    """Split indices into (train, test) keeping each class's share.

    For every class with ``n`` images, ``round(n * test_fraction)`` of them
    (picked by a seeded permutation) go to the test part, clipped so that a
    class with at least two images keeps at least one in each part and a class
    with a single image keeps it in the train part.  The same labels, fraction
    and seed always give the same split.  Both index arrays are returned sorted.

    Args:
        labels: integer array of shape (N,).
        test_fraction: share of each class held out, in [0, 1).
        seed: int seed or ``numpy.random.Generator``.

    Returns:
        ``(train_indices, test_indices)``, int64 arrays.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {labels.shape}")
    if not 0.0 <= float(test_fraction) < 1.0:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}")
    rng = as_generator(seed)
    train_parts, test_parts = [], []
    for value in np.unique(labels):  # a loop over classes, not images
        members = np.flatnonzero(labels == value)
        members = members[rng.permutation(members.size)]
        n_test = int(round(members.size * float(test_fraction)))
        if test_fraction > 0 and members.size >= 2:
            n_test = min(max(n_test, 1), members.size - 1)
        else:
            n_test = min(n_test, members.size - 1)
        test_parts.append(members[:n_test])
        train_parts.append(members[n_test:])
    empty = np.zeros(0, dtype=np.int64)
    train = np.sort(np.concatenate(train_parts)) if train_parts else empty
    test = np.sort(np.concatenate(test_parts)) if test_parts else empty
    return train.astype(np.int64), test.astype(np.int64)


def compute_mean_std(images, chunk: int = 4096) -> Tuple[Tuple[float, ...], Tuple[float, ...]]:
    """Per-channel mean and (population) standard deviation of an image array.

    Accumulates in float64 over chunks of ``chunk`` images, so a large data set
    needs no float64 copy of itself.

    Args:
        images: array of shape (N, C, H, W), or an :class:`ArrayDataset`.

    Returns:
        ``(mean, std)``: two tuples of C floats.

    Shape:
        - images: (N, C, H, W)
    """
    if isinstance(images, ArrayDataset):
        images = images.images
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"images must be a 4-D (N, C, H, W) array, got shape {images.shape}")
    n, c = images.shape[:2]
    count = n * images.shape[2] * images.shape[3]
    if count == 0:
        raise ValueError(f"cannot compute statistics of an empty image array of shape {images.shape}")
    total = np.zeros(c, dtype=np.float64)
    for start in range(0, n, chunk):
        total += images[start:start + chunk].sum(axis=(0, 2, 3), dtype=np.float64)
    mean = total / count
    squares = np.zeros(c, dtype=np.float64)
    for start in range(0, n, chunk):
        centred = images[start:start + chunk].astype(np.float64) - mean[None, :, None, None]
        squares += np.einsum("nchw,nchw->c", centred, centred)
    std = np.sqrt(squares / count)
    std = np.where(std > 0, std, 1.0)  # a constant channel: leave it unscaled
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


class DataMismatchError(ValueError):
    """Data a model cannot be scored on (other image size or other class names)."""


def check_data_fits_model(data_classes: Sequence, data_input_shape: Sequence[int], model_classes: Sequence,
                          model_input_shape: Sequence[int], model_where, dataset) -> None:
    """Refuse data a model cannot be scored on: other image sizes, or other class names.

    ``cnnlab evaluate`` and ``cnnlab report --dataset`` both call this, so they refuse
    the same pairs with the same message.  Labels are positions in the class list:
    data with other names (or the same names in another order) would be compared with
    the wrong scores.

    Args:
        data_classes, data_input_shape: the data set's class names and ``(C, H, W)``.
        model_classes, model_input_shape: the model's.
        model_where: the run or model folder, for the message.
        dataset: the data set's name or folder, for the message.

    Raises:
        DataMismatchError (a ValueError): one line naming both sides.
    """
    if tuple(int(d) for d in data_input_shape) != tuple(int(d) for d in model_input_shape):
        raise DataMismatchError(f"the model in {model_where} takes {'x'.join(map(str, model_input_shape))} images, but "
                         f"{dataset} has {'x'.join(map(str, data_input_shape))} images")
    data_names = [str(c) for c in data_classes]
    model_names = [str(c) for c in model_classes]
    if data_names != model_names:
        def names(classes):
            return ", ".join(classes[:12]) + (f", ... ({len(classes)} in all)" if len(classes) > 12 else "")
        raise DataMismatchError(f"the class names differ, so the scores would be compared with the wrong labels: the "
                         f"model in {model_where} has {len(model_names)} classes ({names(model_names)}), {dataset} "
                         f"has {len(data_names)} ({names(data_names)})")


def data_fingerprint(*parts) -> str:
    """A short fingerprint of the data a run trains and tests on: ``"sha256:<hex>"``.

    ``parts`` are :class:`ArrayDataset` objects (or ``None`` for a missing part, e.g. no
    validation split), in a fixed order such as ``(train, val, test)``.  The SHA-256 covers
    each part's decoded pixels, labels, class names, shape and dtype, so any image added,
    removed, edited or moved to another class (which redraws a seeded split) changes it,
    while copying the files elsewhere (new paths, new modification times) does not.
    Hashing the pixels costs about 0.1 s per 200 MB of float32 images.
    """
    import hashlib
    digest = hashlib.sha256()
    for part in parts:
        if part is None:
            digest.update(b"none;")
            continue
        images = np.ascontiguousarray(part.images)
        labels = np.ascontiguousarray(part.labels, dtype=np.int64)
        digest.update(f"{images.shape};{images.dtype.str};{len(labels)};".encode())
        digest.update("\x00".join(str(c) for c in part.classes).encode("utf-8", "surrogatepass") + b";")
        digest.update(memoryview(images).cast("B"))
        digest.update(memoryview(labels).cast("B"))
    return "sha256:" + digest.hexdigest()
