"""Mini-batch iteration over an in-memory data set."""
from __future__ import annotations

import copy
from typing import Iterator, Tuple

import numpy as np

from .dataset import ArrayDataset, as_generator

__all__ = ["DataLoader"]


class DataLoader:
    """Iterate over ``(images, labels)`` mini-batches, like ``torch.utils.data.DataLoader``.

    All randomness -- the shuffling order and the transform's per-image
    parameters -- comes from one ``numpy.random.Generator``, ``self.rng``.
    Each ``iter(loader)`` (one epoch) first draws the permutation, then every
    batch's transform draws from the same generator, so a seed fixes every
    epoch.  To resume training identically, save :meth:`state_dict` (the
    generator's ``bit_generator.state``) between epochs and restore it with
    :meth:`load_state_dict`.

    Args:
        dataset: an :class:`ArrayDataset`, or a pair ``(images, labels)`` of
            arrays of shapes (N, C, H, W) and (N,).
        batch_size: images per batch.
        shuffle: draw a new order every epoch.
        drop_last: skip the last batch when it is smaller than ``batch_size``.
        transform: a callable ``transform(batch, rng)`` applied to each image
            batch (e.g. :class:`~cnnlab.data.transforms.Compose` of augmentations
            and ``Normalize``).
        rng: ``None`` (fresh entropy), an int seed, or a ``numpy.random.Generator``
            (used as is, not copied).

    Yields:
        ``(images, labels)``: float32 (B, C, H, W) and int64 (B,), new arrays
        (safe to modify).

    Shape:
        - images: (B, C, H, W), float32
        - labels: (B,), int64
    """

    def __init__(self, dataset, batch_size: int = 64, shuffle: bool = False, drop_last: bool = False,
                 transform=None, rng=None):
        if isinstance(dataset, ArrayDataset):
            images, labels = dataset.images, dataset.labels
        elif isinstance(dataset, (tuple, list)) and len(dataset) == 2:
            images, labels = (np.asarray(a) for a in dataset)
        else:
            raise TypeError("dataset must be an ArrayDataset or an (images, labels) pair, "
                            f"got {type(dataset).__name__}")
        if images.ndim != 4:
            raise ValueError(f"images must have shape (N, C, H, W), got {images.shape}")
        if images.dtype.kind != "f":
            raise TypeError(f"images must be floats in [0, 1] (float32), got dtype {images.dtype}")
        if labels.dtype.kind not in "iu":
            raise TypeError(f"labels must be integers, got dtype {labels.dtype}")
        if labels.shape != (images.shape[0],):
            raise ValueError(f"labels must have shape ({images.shape[0]},), got {labels.shape}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if transform is not None and not callable(transform):
            raise TypeError(f"transform must be callable as transform(batch, rng), got {type(transform).__name__}")
        self.dataset = dataset
        self.images = images
        self.labels = labels
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.transform = transform
        self.rng: np.random.Generator = as_generator(rng)

    def __len__(self) -> int:
        """Number of batches per epoch."""
        n = self.images.shape[0]
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[Tuple[np.ndarray, np.ndarray]]:
        n = self.images.shape[0]
        order = self.rng.permutation(n) if self.shuffle else None
        for b in range(len(self)):
            start, stop = b * self.batch_size, min((b + 1) * self.batch_size, n)
            if order is None:
                images = self.images[start:stop].copy()
                labels = self.labels[start:stop].copy()
            else:
                index = order[start:stop]
                images = self.images[index]
                labels = self.labels[index]
            if images.dtype != np.float32:
                images = images.astype(np.float32)
            if labels.dtype != np.int64:
                labels = labels.astype(np.int64)
            if self.transform is not None:
                images = self.transform(images, self.rng)
            yield images, labels

    def state_dict(self) -> dict:
        """The generator state, JSON-serialisable: ``{"rng_state": rng.bit_generator.state}``."""
        return {"rng_state": copy.deepcopy(self.rng.bit_generator.state)}

    def load_state_dict(self, state: dict) -> None:
        """Restore a state from :meth:`state_dict` (the next epoch then repeats the saved run's)."""
        if not isinstance(state, dict) or "rng_state" not in state:
            raise ValueError(f"expected a dict with key 'rng_state', got {state!r:.200}")
        rng_state = state["rng_state"]
        expected = type(self.rng.bit_generator).__name__
        if rng_state.get("bit_generator") != expected:
            raise ValueError(f"rng_state is for bit generator {rng_state.get('bit_generator')!r}, "
                             f"this loader uses {expected!r}")
        self.rng.bit_generator.state = copy.deepcopy(rng_state)
