"""Mini-batch iteration over an in-memory data set."""
from __future__ import annotations

import copy
from typing import Callable, Iterator, Optional, Tuple

import numpy as np

from ..distributed import batch_share
from .dataset import ArrayDataset, as_generator

__all__ = ["DataLoader"]


def _slice_params(params, lo: int, hi: int):
    if isinstance(params, tuple):
        return tuple(p[lo:hi] for p in params)
    return params[lo:hi]


def _transform_share(transform, images: np.ndarray, full_shape, lo: int, hi: int, rng,
                     whole_batch: Callable[[], np.ndarray]) -> np.ndarray:
    """Rows ``lo:hi`` of ``transform(whole batch, rng)``, computed on those rows alone.

    A random transform with ``sample_params``/``apply`` draws the parameters of all
    ``full_shape[0]`` images and applies its rows' share; a ``Compose`` does so step
    by step; a transform that draws nothing (``Normalize``) runs on the rows as is.
    Any other callable runs on the whole batch (from ``whole_batch()``), then is cut.
    """
    from .transforms import Compose, Normalize
    steps = transform.transforms if isinstance(transform, Compose) else [transform]
    if not all(isinstance(t, Normalize) or (hasattr(t, "sample_params") and hasattr(t, "apply"))
               for t in steps):
        if lo == 0 and hi == full_shape[0]:
            return transform(images, rng)
        return transform(whole_batch().astype(np.float32, copy=False), rng)[lo:hi]
    for t in steps:
        if isinstance(t, Normalize):
            images = t(images)
        else:
            images = t.apply(images, _slice_params(t.sample_params(full_shape, rng), lo, hi))
        full_shape = (full_shape[0], *images.shape[1:])
    return images


class DataLoader:
    """Iterate over ``(images, labels)`` mini-batches, like ``torch.utils.data.DataLoader``.

    All randomness -- the shuffling order and the transform's per-image
    parameters -- comes from one ``numpy.random.Generator``, ``self.rng``.
    Each ``iter(loader)`` (one epoch) first draws the permutation, then every
    batch's transform draws from the same generator, so a seed fixes every
    epoch.  To resume training identically, save :meth:`state_dict` (the
    generator's ``bit_generator.state``) between epochs and restore it with
    :meth:`load_state_dict`.  With ``seed`` instead of ``rng`` every epoch and
    batch has its own stream (what :func:`cnnlab.train.fit` uses, and what
    data-parallel training needs: see ``shard``).

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
        seed: instead of ``rng``, derive every random stream from the seed and the
            position: epoch ``e``'s order from ``(seed, e)`` and batch ``b``'s
            augmentation from ``(seed, e, b)``, drawn for the whole batch.  The epoch
            is set with :meth:`set_epoch` (as PyTorch's ``DistributedSampler``), so
            resuming needs only the epoch number, and any ``shard`` of a batch gets
            exactly the images and augmentation it has in the whole batch.
        shard: ``(part, parts)``: yield only part ``part`` (a contiguous share, see
            :func:`batch_share`) of each batch, for data-parallel training; needs
            ``seed``.  :meth:`batch_slice` tells where a batch's share lies.

    Yields:
        ``(images, labels)``: float32 (B, C, H, W) and int64 (B,), new arrays
        (safe to modify).

    Shape:
        - images: (B, C, H, W), float32
        - labels: (B,), int64
    """

    def __init__(self, dataset, batch_size: int = 64, shuffle: bool = False, drop_last: bool = False,
                 transform=None, rng=None, seed: Optional[int] = None,
                 shard: Optional[Tuple[int, int]] = None):
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
        if seed is not None and rng is not None:
            raise ValueError("give rng or seed, not both")
        if shard is not None:
            if seed is None:
                raise ValueError("shard needs seed (every part must draw the same order and augmentation)")
            part, parts = (int(v) for v in shard)
            if parts < 1 or not 0 <= part < parts:
                raise ValueError(f"shard must be (part, parts) with 0 <= part < parts, got {shard!r}")
            shard = (part, parts)
        self.seed = None if seed is None else int(seed)
        self.shard = shard
        self.epoch = 0
        self.rng: np.random.Generator = (as_generator(rng) if seed is None
                                           else np.random.default_rng([self.seed, 1]))

    def __len__(self) -> int:
        """Number of batches per epoch."""
        n = self.images.shape[0]
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """With ``seed``: the epoch whose order and augmentation the next iteration gives."""
        self.epoch = int(epoch)

    def batch_slice(self, index: int) -> Tuple[int, int, int]:
        """``(start, stop, total)``: the rows of batch ``index`` this loader's shard yields, of ``total``."""
        total = min(self.batch_size, self.images.shape[0] - index * self.batch_size)
        part, parts = self.shard or (0, 1)
        return (*batch_share(total, part, parts), total)

    def __iter__(self) -> Iterator[Tuple[np.ndarray, np.ndarray]]:
        if self.seed is not None:
            yield from self._iter_seeded()
            return
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

    def _iter_seeded(self):
        n = self.images.shape[0]
        order = np.random.default_rng([self.seed, 2, self.epoch]).permutation(n) if self.shuffle else None
        for b in range(len(self)):
            start = b * self.batch_size
            lo, hi, total = self.batch_slice(b)
            rows = np.arange(start + lo, start + hi) if order is None else order[start + lo:start + hi]
            images = self.images[rows].astype(np.float32, copy=False)
            labels = self.labels[rows].astype(np.int64, copy=False)
            if self.transform is not None:
                rng = np.random.default_rng([self.seed, 3, self.epoch, b])
                images = _transform_share(self.transform, images, (total, *images.shape[1:]), lo, hi, rng,
                                          lambda: self.images[order[start:start + total] if order is not None
                                                              else slice(start, start + total)])
            yield images, labels

    def state_dict(self) -> dict:
        """The generator state, JSON-serialisable: ``{"rng_state": rng.bit_generator.state}``;
        with ``seed``: ``{"seed": seed, "epoch": epoch}``."""
        if self.seed is not None:
            return {"seed": self.seed, "epoch": self.epoch}
        return {"rng_state": copy.deepcopy(self.rng.bit_generator.state)}

    def load_state_dict(self, state: dict) -> None:
        """Restore a state from :meth:`state_dict` (the next epoch then repeats the saved run's)."""
        if self.seed is not None and isinstance(state, dict) and "epoch" in state:
            self.epoch = int(state["epoch"])
            return
        if not isinstance(state, dict) or "rng_state" not in state:
            raise ValueError(f"expected a dict with key 'rng_state', got {state!r:.200}")
        rng_state = state["rng_state"]
        expected = type(self.rng.bit_generator).__name__
        if rng_state.get("bit_generator") != expected:
            raise ValueError(f"rng_state is for bit generator {rng_state.get('bit_generator')!r}, "
                             f"this loader uses {expected!r}")
        self.rng.bit_generator.state = copy.deepcopy(rng_state)
