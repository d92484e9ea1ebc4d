"""Flatten, dense (linear) layers, dropout and batch normalisation."""
from __future__ import annotations

import math

import numpy as np

from ..threads import for_work
from ..tensor import Tensor, as_tensor, flatten_shape
from ._layout import to_chwn, to_nchw


def flatten(input, start_dim: int = 1, end_dim: int = -1) -> Tensor:
    """Line the feature maps up into one long vector per image (no value changes).

    Shape: ``(N, C, H, W) -> (N, C*H*W)`` with the defaults; generally dims
    ``start_dim..end_dim`` are merged into one.

    Raises:
        IndexError: ``start_dim`` or ``end_dim`` out of range (PyTorch's message).
        ValueError: ``start_dim`` after ``end_dim``.
    """
    x = as_tensor(input)
    shape = flatten_shape(x.shape, start_dim, end_dim)  # IndexError for a dim out of range, as PyTorch
    return x.reshape(shape)


def linear(input, weight, bias=None) -> Tensor:
    """Dense layer ``y = x W^T + b``: every input feature connects to every output.

    Shape: input ``(*, in_features)``, weight ``(out_features, in_features)``,
    bias ``(out_features,)``, output ``(*, out_features)``.
    """
    x, w = as_tensor(input), as_tensor(weight)
    b = None if bias is None else as_tensor(bias)
    if w.ndim != 2:
        raise ValueError(f"linear: expected weight of shape (out_features, in_features), got {tuple(w.shape)}")
    if x.ndim < 1 or x.shape[-1] != w.shape[1]:
        raise ValueError(f"linear: input of shape {tuple(x.shape)} has {x.shape[-1] if x.ndim else 0} "
                         f"features, but weight of shape {tuple(w.shape)} expects {w.shape[1]}")
    if x.dtype.kind != "f":
        raise TypeError(f"linear: expected a floating point input (float32 or float64), got dtype {x.dtype}")
    if x.dtype != w.dtype:
        raise TypeError(f"linear: input and weight must have the same dtype, got input {x.dtype} "
                        f"and weight {w.dtype}")
    if b is not None and b.shape != (w.shape[0],):
        raise ValueError(f"linear: expected bias of shape ({w.shape[0]},), got {tuple(b.shape)}")
    lead = x.shape[:-1]
    x2 = x._data.reshape(math.prod(lead), w.shape[1])  # not -1: in_features may be 0
    for_work(x2.shape[0] * w.shape[0] * w.shape[1])  # small products: one BLAS thread
    out = x2 @ w._data.T
    if b is not None:
        out += b._data

    def backward(g):
        for_work(x2.shape[0] * w.shape[0] * w.shape[1])
        g2 = g.reshape(x2.shape[0], w.shape[0])
        gx = (g2 @ w._data).reshape(x.shape) if x.requires_grad else None
        gw = None
        if w.requires_grad:  # one row: an outer product (BLAS takes ~5x longer for a K=1 product)
            gw = np.multiply(g2.T, x2) if g2.shape[0] == 1 else g2.T @ x2
        if b is None:
            return gx, gw
        return gx, gw, (g2.sum(axis=0) if b.requires_grad else None)

    parents = (x, w) if b is None else (x, w, b)
    return Tensor.from_op(out.reshape(lead + (w.shape[0],)), parents, backward, "linear")


def dropout(input, p: float = 0.5, training: bool = True, rng=None, batch_slice=None) -> Tensor:
    """Zero each element with probability ``p`` and scale the rest by ``1/(1-p)`` (training only).

    Args:
        rng: a ``numpy.random.Generator`` (default: a fresh unseeded one).
        batch_slice: ``(start, stop, total)`` when the input holds rows ``start:stop`` of a
            batch of ``total`` (data-parallel training): the mask is drawn for the whole
            batch and these rows kept, so every split of a batch draws the same masks.
    Shape: any; the output has the input's shape.
    """
    x = as_tensor(input)
    if isinstance(p, (bool, np.bool_)) or not isinstance(p, (int, float, np.integer, np.floating)):
        raise TypeError(f"dropout: `p` must be a number between 0 and 1, got {p!r} ({type(p).__name__})")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if x.dtype.kind != "f":
        raise TypeError(f"dropout: expected a floating point input (float32 or float64), got dtype {x.dtype}")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * np.zeros((), dtype=x.dtype)
    rng = np.random.default_rng() if rng is None else rng
    shape = x.shape if batch_slice is None else (int(batch_slice[2]), *x.shape[1:])
    mask = (rng.random(shape, dtype=np.float64 if x.dtype == np.float64 else np.float32) >= p)
    if batch_slice is not None:
        mask = mask[int(batch_slice[0]):int(batch_slice[1])]
    scale = mask * x.dtype.type(1.0 / (1.0 - p))
    return Tensor.from_op(x._data * scale, (x,), lambda g: (g * scale,), "dropout")


def dropout2d(input, p: float = 0.5, training: bool = True, rng=None) -> Tensor:
    """Zero whole channels (feature maps) with probability ``p``, scale the rest by ``1/(1-p)``.

    Neighbouring pixels of a feature map are strongly correlated, so dropping
    single pixels regularises little; dropping the whole map does (Tompson et al.).
    Shape: ``(N, C, H, W)``, unchanged; one keep/drop draw per ``(n, c)``.
    """
    x = as_tensor(input)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if x.ndim != 4:
        raise ValueError(f"dropout2d: expected a 4-D input (N, C, H, W), got shape {tuple(x.shape)}")
    if not training or p == 0.0:
        return x
    rng = np.random.default_rng() if rng is None else rng
    keep = rng.random(x.shape[:2]) >= p
    scale = (keep * (1.0 / (1.0 - p) if p < 1.0 else 0.0)).astype(x.dtype)[:, :, None, None]
    return Tensor.from_op(x._data * scale, (x,), lambda g: (g * scale,), "dropout2d")


def batch_norm(input, running_mean=None, running_var=None, weight=None, bias=None,
               training: bool = False, momentum: float = 0.1, eps: float = 1e-5,
               process_group=None) -> Tensor:
    """Normalise each channel to zero mean and unit variance, then scale and shift.

    In training, statistics come from the batch (biased variance) and the
    running estimates (ndarrays, updated in place) move by ``momentum`` towards
    them (unbiased variance), as in PyTorch.  In evaluation the running
    estimates are used.

    With a ``process_group`` (a :class:`cnnlab.distributed.Group`) in training, the
    batch is the union of every rank's inputs, as PyTorch's ``SyncBatchNorm``: the
    mean and variance come from one allreduce of the per-channel sums, and the
    backward pass sums its two per-channel reductions over the ranks as well.

    Shape: ``(N, C)`` or ``(N, C, H, W)``; the output has the input's shape.
    """
    x = as_tensor(input)
    if x.dtype.kind != "f":
        raise TypeError(f"batch_norm: expected a floating point input (float32 or float64), got dtype {x.dtype}")
    if x.ndim not in (2, 4):
        raise ValueError(f"batch_norm: expected a 2-D (N, C) or 4-D (N, C, H, W) input, got {tuple(x.shape)}")
    C = x.shape[1]
    for name, arr in (("running_mean", running_mean), ("running_var", running_var),
                      ("weight", weight), ("bias", bias)):
        if arr is not None and tuple(np.shape(arr._data if isinstance(arr, Tensor) else arr)) != (C,):
            raise ValueError(f"batch_norm: expected {name} of shape ({C},) for input of shape "
                             f"{tuple(x.shape)}, got {tuple(np.shape(arr._data if isinstance(arr, Tensor) else arr))}")
    # (C, M) view: channel first, every other axis flattened into one contiguous row
    if x.ndim == 4:
        m = to_chwn(x._data).reshape(C, -1)
    else:
        m = x._data.T
    count = m.shape[1]
    group = process_group if training else None
    if training:
        if group is not None:
            mu, var, count = _global_stats(m, group)
        elif count <= 1:
            raise ValueError(f"batch_norm: expected more than 1 value per channel when training, "
                             f"got input of shape {tuple(x.shape)}")
        else:
            mu = m.mean(axis=1)
        centered = m - mu[:, None]
        if group is None:
            var = np.einsum("cm,cm->c", centered, centered) / count
        if running_mean is not None:
            running_mean *= 1 - momentum
            running_mean += momentum * mu
        if running_var is not None:
            running_var *= 1 - momentum
            running_var += momentum * var * count / (count - 1)
    else:
        if running_mean is None or running_var is None:
            raise ValueError("batch_norm: running_mean and running_var are required when training=False")
        mu = np.asarray(running_mean, dtype=x.dtype)
        var = np.asarray(running_var, dtype=x.dtype)
        centered = m - mu[:, None]
    inv_std = (1.0 / np.sqrt(var + eps)).astype(x.dtype)
    xhat = centered   # a fresh array: normalised in place (one array and one pass fewer)
    xhat *= inv_std[:, None]
    del centered
    w = None if weight is None else as_tensor(weight)
    b = None if bias is None else as_tensor(bias)
    out = xhat * w._data[:, None] if w is not None else xhat.copy()
    if b is not None:
        out += b._data[:, None]

    def to_input_layout(a):
        return to_nchw(a.reshape(C, *x.shape[2:], x.shape[0])) if x.ndim == 4 else a.T

    def backward(g):
        gm = to_chwn(g).reshape(C, -1) if x.ndim == 4 else g.T
        gw = np.einsum("cm,cm->c", gm, xhat) if w is not None and w.requires_grad else None
        gb = gm.sum(axis=1) if b is not None and b.requires_grad else None
        gx = None
        if x.requires_grad and training and group is None:
            # gx = w * inv_std * (g - mean(g) - xhat * mean(g * xhat)): the two per-channel sums are
            # the bias and weight gradients' (reused), then two scaled arrays and two passes.
            sum_g = gm.sum(axis=1) if gb is None else gb
            dot = np.einsum("cm,cm->c", gm, xhat) if gw is None else gw
            k = inv_std if w is None else (w._data * inv_std).astype(gm.dtype)
            shift = np.multiply(xhat, (k * dot / count)[:, None], dtype=gm.dtype)
            shift += (k * sum_g / count).astype(gm.dtype)[:, None]
            gx = np.multiply(gm, k[:, None], dtype=gm.dtype)
            gx -= shift
            gx = to_input_layout(gx)
        elif x.requires_grad:
            gxhat = gm * w._data[:, None] if w is not None else gm
            if training and group is not None:  # both sums over the global batch, in one allreduce
                sums = group.allreduce_sum(np.concatenate([gxhat.sum(axis=1),
                                                           np.einsum("cm,cm->c", gxhat, xhat)]))
                gx = inv_std[:, None] * (gxhat - sums[:C, None] / count - xhat * sums[C:, None] / count)
            else:
                gx = gxhat * inv_std[:, None]
            gx = to_input_layout(gx)
        grads = [gx]
        if w is not None:
            grads.append(gw)
        if b is not None:
            grads.append(gb)
        return tuple(grads)

    parents = tuple(t for t in (x, w, b) if t is not None)
    return Tensor.from_op(to_input_layout(out), parents, backward, "batch_norm")


def _global_stats(m: np.ndarray, group):
    """Mean and biased variance per channel of the rows ``m`` (C, M) of every rank, and their count.

    Each rank adds its count, ``count * mean`` and ``centered sum of squares +
    count * mean**2`` (a stable local two-pass variance) in float64 to ONE
    allreduce; the global variance is then ``S2 / N - mean**2`` in float64.
    """
    C, n = m.shape
    local_mean = m.mean(axis=1, dtype=np.float64) if n else np.zeros(C)
    centered = m - local_mean[:, None].astype(m.dtype)
    m2 = np.einsum("cm,cm->c", centered, centered).astype(np.float64)
    packed = np.concatenate([[float(n)], n * local_mean, m2 + n * local_mean ** 2])
    total = group.allreduce_sum(packed)
    count = int(round(total[0]))
    if count <= 1:
        raise ValueError(f"batch_norm: expected more than 1 value per channel when training, got {count} "
                         f"over {group.size} processes (local input of {n} values per channel)")
    mean = total[1:C + 1] / count
    var = np.maximum(total[C + 1:] / count - mean ** 2, 0.0)
    return mean.astype(m.dtype), var.astype(m.dtype), count
