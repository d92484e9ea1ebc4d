"""``cnnlab.utils.data``: PyTorch's ``Dataset``, ``TensorDataset``, ``DataLoader``, ``random_split``.

These follow ``torch.utils.data`` so PyTorch tutorials run unchanged: a ``Dataset`` has ``__len__``
and ``__getitem__(i)``; ``DataLoader(dataset, batch_size, shuffle)`` yields batches as Tensors
(collated as PyTorch's ``default_collate`` does).  Batches are built in the calling process
(``num_workers`` is accepted and ignored).  A dataset with a ``__getitems__(indices)`` method
(``TensorDataset``, the datasets of :mod:`cnnlab.vision`) is asked for a whole batch at once, with
no Python loop over its items.

cnnlab's own array loader, :class:`cnnlab.data.DataLoader` (NumPy batches, batch transforms), stays
as it is; this module is the PyTorch-shaped one.
"""
from __future__ import annotations

import builtins
import math
from collections.abc import Mapping, Sequence
from typing import Callable, Optional

import numpy as np

from ..random import Generator, as_numpy_rng
from ..tensor import Tensor

__all__ = ["Dataset", "TensorDataset", "Subset", "ConcatDataset", "DataLoader", "random_split",
           "default_collate", "Generator"]


class Dataset:
    """A map-style data set: subclasses define ``__len__`` and ``__getitem__(index)``."""

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__")

    def __add__(self, other: "Dataset") -> "ConcatDataset":
        return ConcatDataset([self, other])


class TensorDataset(Dataset):
    """Tensors of the same first dimension; item ``i`` is ``(t[i] for t in tensors)``."""

    def __init__(self, *tensors):
        if not tensors:
            raise ValueError("TensorDataset needs at least one tensor")
        tensors = tuple(t if isinstance(t, Tensor) else Tensor(np.asarray(t)) for t in tensors)
        n = tensors[0].shape[0] if tensors[0].ndim else None
        if n is None or any(t.ndim == 0 or t.shape[0] != n for t in tensors):
            raise ValueError(f"Size mismatch between tensors: every tensor needs the same first dimension, "
                             f"got shapes {[tuple(t.shape) for t in tensors]}")
        self.tensors = tensors

    def __getitem__(self, index):
        return tuple(t[index] for t in self.tensors)

    def __getitems__(self, indices):
        index = np.asarray(indices, dtype=np.int64)
        return _Batch(tuple(Tensor(t._data[index]) for t in self.tensors))

    def __len__(self) -> int:
        return self.tensors[0].shape[0]


class Subset(Dataset):
    """The items ``indices`` of ``dataset``, in that order."""

    def __init__(self, dataset, indices):
        self.dataset = dataset
        self.indices = [int(i) for i in indices]

    def __getitem__(self, index):
        if isinstance(index, list):
            return [self.dataset[self.indices[i]] for i in index]
        return self.dataset[self.indices[index]]

    def __getitems__(self, indices):
        inner = [self.indices[i] for i in indices]
        if hasattr(self.dataset, "__getitems__"):
            return self.dataset.__getitems__(inner)
        return [self.dataset[i] for i in inner]

    def __len__(self) -> int:
        return len(self.indices)


class ConcatDataset(Dataset):
    """Several data sets one after the other."""

    def __init__(self, datasets):
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("datasets should not be an empty iterable")
        self.cumulative_sizes = list(np.cumsum([len(d) for d in self.datasets]))

    def __len__(self) -> int:
        return int(self.cumulative_sizes[-1])

    def __getitem__(self, index):
        if index < 0:
            if -index > len(self):
                raise ValueError("absolute value of index should not exceed dataset length")
            index += len(self)
        which = int(np.searchsorted(self.cumulative_sizes, index, side="right"))
        start = 0 if which == 0 else int(self.cumulative_sizes[which - 1])
        return self.datasets[which][index - start]


def random_split(dataset, lengths, generator: Optional[Generator] = None):
    """Split ``dataset`` into random non-overlapping :class:`Subset` s of the given lengths.

    ``lengths`` are counts summing to ``len(dataset)``, or fractions summing to 1 (the remainder is
    spread one item at a time over the first subsets, as PyTorch does).
    """
    n = len(dataset)
    lengths = list(lengths)
    if all(0 <= f <= 1 for f in lengths) and math.isclose(builtins.sum(lengths), 1) and builtins.sum(lengths) <= 1:
        counts = [int(math.floor(n * f)) for f in lengths]
        for i in range(n - builtins.sum(counts)):
            counts[i % len(counts)] += 1
        lengths = counts
    if builtins.sum(lengths) != n or any(int(x) != x or x < 0 for x in lengths):
        raise ValueError(f"Sum of input lengths ({builtins.sum(lengths)}) does not equal the length of the input "
                         f"dataset ({n})")
    order = as_numpy_rng(generator).permutation(n)
    out, start = [], 0
    for length in lengths:
        out.append(Subset(dataset, order[start:start + int(length)]))
        start += int(length)
    return out


class _Batch(tuple):
    """A batch a dataset's ``__getitems__`` has already collated (tensors with the batch dimension)."""


def default_collate(batch):
    """Stack a list of items into a batch, as PyTorch's ``default_collate``.

    Tensors and arrays are stacked along a new first dimension; Python ints become an int64 tensor,
    floats a float64 tensor; tuples, lists and dicts are collated field by field; strings stay a list.
    """
    if isinstance(batch, _Batch):
        return tuple(batch)
    if not isinstance(batch, Sequence) or not batch:
        raise TypeError(f"default_collate: expected a non-empty list of items, got {type(batch).__name__}")
    first = batch[0]
    if isinstance(first, Tensor):
        return Tensor(np.stack([b._data for b in batch]))
    if isinstance(first, np.ndarray):
        if first.dtype.kind in "OSU":
            raise TypeError(f"default_collate: batch must contain tensors, numbers, dicts or lists; found "
                            f"an array of dtype {first.dtype}")
        return Tensor(np.stack(batch))
    if isinstance(first, (bool, np.bool_)):
        return Tensor(np.asarray(batch, dtype=np.bool_))
    if isinstance(first, (int, np.integer)):
        return Tensor(np.asarray(batch, dtype=np.int64))
    if isinstance(first, (float, np.floating)):
        return Tensor(np.asarray(batch, dtype=np.float64))
    if isinstance(first, (str, bytes)):
        return list(batch)
    if isinstance(first, Mapping):
        return {key: default_collate([b[key] for b in batch]) for key in first}
    if isinstance(first, Sequence):
        if any(len(b) != len(first) for b in batch):
            raise RuntimeError("each element in list of batch should be of equal size")
        collated = [default_collate(list(field)) for field in zip(*batch)]
        return tuple(collated) if isinstance(first, tuple) else collated
    raise TypeError(f"default_collate: batch must contain tensors, NumPy arrays, numbers, dicts or lists; "
                    f"found {type(first).__name__}")


class DataLoader:
    """Batches of a :class:`Dataset`, as PyTorch's ``torch.utils.data.DataLoader``.

    Args:
        dataset: a map-style data set (``len`` and ``dataset[i]``).
        batch_size: items per batch (None: items one by one, not collated).
        shuffle: a new random order every epoch (from ``generator``, or cnnlab's generator that
            ``cnnlab.manual_seed`` seeds).
        drop_last: drop the last incomplete batch.
        collate_fn: turns a list of items into a batch (default: :func:`default_collate`).
        num_workers, pin_memory, persistent_workers, prefetch_factor, timeout: accepted for PyTorch
            code; batches are made in this process.
    """

    def __init__(self, dataset, batch_size: Optional[int] = 1, shuffle: Optional[bool] = False, sampler=None,
                 batch_sampler=None, num_workers: int = 0, collate_fn: Optional[Callable] = None,
                 pin_memory: bool = False, drop_last: bool = False, timeout: float = 0,
                 worker_init_fn=None, generator: Optional[Generator] = None, *, prefetch_factor=None,
                 persistent_workers: bool = False, **kwargs):
        if kwargs:
            raise TypeError(f"DataLoader got unexpected keyword arguments {sorted(kwargs)}")
        if batch_size is not None and (isinstance(batch_size, bool) or int(batch_size) != batch_size
                                       or batch_size <= 0):
            raise ValueError(f"batch_size should be a positive integer value, but got batch_size={batch_size}")
        if sampler is not None and shuffle:
            raise ValueError("sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None and (batch_size != 1 or shuffle or sampler is not None or drop_last):
            raise ValueError("batch_sampler option is mutually exclusive with batch_size, shuffle, sampler, "
                             "and drop_last")
        if int(num_workers) < 0:
            raise ValueError("num_workers option should be non-negative; use num_workers=0 to disable "
                             "multiprocessing.")
        self.dataset = dataset
        self.batch_size = None if batch_sampler is not None else batch_size
        self.shuffle = bool(shuffle)
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        self.drop_last = bool(drop_last)
        self.num_workers = int(num_workers)
        self.generator = generator
        self.collate_fn = collate_fn

    def _indices(self):
        if self.sampler is not None:
            return [int(i) for i in self.sampler]
        n = len(self.dataset)
        if self.shuffle:
            return as_numpy_rng(self.generator).permutation(n)
        return np.arange(n)

    def _batches(self):
        if self.batch_sampler is not None:
            yield from ([int(i) for i in b] for b in self.batch_sampler)
            return
        order = self._indices()
        size = self.batch_size
        for start in range(0, len(order), size):
            chunk = order[start:start + size]
            if self.drop_last and len(chunk) < size:
                return
            yield [int(i) for i in chunk]

    def __iter__(self):
        if self.batch_size is None and self.batch_sampler is None:
            for i in self._indices():
                item = self.dataset[int(i)]
                yield item if self.collate_fn is None else self.collate_fn(item)
            return
        fetch_many = getattr(self.dataset, "__getitems__", None)
        collate = self.collate_fn or default_collate
        for indices in self._batches():
            if fetch_many is not None:
                items = fetch_many(indices)
                if self.collate_fn is not None and isinstance(items, _Batch):
                    items = _unbatch(items, len(indices))
            else:
                items = [self.dataset[i] for i in indices]
            yield collate(items)

    def __len__(self) -> int:
        if self.batch_sampler is not None:
            return len(self.batch_sampler)
        n = len(self.sampler) if self.sampler is not None else len(self.dataset)
        if self.batch_size is None:
            return n
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)


def _unbatch(batch: _Batch, n: int) -> list:
    """A collated batch back to a list of items (for a user ``collate_fn``)."""
    return [tuple(Tensor(field._data[i]) for field in batch) for i in range(n)]
