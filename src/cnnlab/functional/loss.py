"""Loss functions: how wrong a prediction is, as one number to minimise.

Each validates shapes and labels before any arithmetic, so a mistake reads
as a sentence, not as a NumPy broadcasting error.
"""
from __future__ import annotations

import numpy as np

from ..tensor import Tensor, as_tensor
from .activation import _sigmoid

REDUCTIONS = ("mean", "sum", "none")


def _reduce(losses: np.ndarray, reduction: str, denominator: float):
    if reduction == "mean":
        if denominator == 0:  # the mean of no losses (an empty batch) is NaN, as in PyTorch
            return np.asarray(np.nan, dtype=losses.dtype), 0.0
        return np.asarray(losses.sum() / denominator, dtype=losses.dtype), 1.0 / denominator
    if reduction == "sum":
        return np.asarray(losses.sum(), dtype=losses.dtype), 1.0
    return losses, None


def _check_reduction(reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")


def _class_targets(input: Tensor, target, op: str) -> np.ndarray:
    """Validate ``(N, C)`` scores and ``(N,)`` integer labels in ``[0, C)``."""
    if input.ndim != 2:
        raise ValueError(f"{op}: expected input of shape (N, C), got {tuple(input.shape)}")
    if input.dtype.kind != "f":
        raise TypeError(f"{op}: expected floating point input, got dtype {input.dtype}")
    t = target.data if isinstance(target, Tensor) else np.asarray(target)
    if t.dtype.kind not in "iu":
        raise TypeError(f"{op}: expected integer class labels, got target of dtype {t.dtype}")
    if t.shape != input.shape[:1]:
        raise ValueError(f"{op}: expected target of shape ({input.shape[0]},) for input of shape "
                         f"{tuple(input.shape)}, got target of shape {tuple(t.shape)}")
    n_classes = input.shape[1]
    if t.size and (t.min() < 0 or t.max() >= n_classes):
        bad = t[(t < 0) | (t >= n_classes)][0]
        raise ValueError(f"{op}: labels must be in [0, {n_classes}) for {n_classes} classes, got label {bad}")
    return t.astype(np.intp, copy=False)


def cross_entropy(input, target, reduction: str = "mean", label_smoothing: float = 0.0) -> Tensor:
    """Softmax cross-entropy of raw scores (logits) against integer labels.

    ``loss_i = -sum_c q_ic log softmax(x_i)_c`` with ``q = (1 - eps) * onehot + eps / C``
    (``eps = label_smoothing``).  Fused: the gradient is simply ``(softmax - q) / N``.

    Shape:
        - input: ``(N, C)`` logits; target: ``(N,)`` integers in ``[0, C)``
        - output: scalar, or ``(N,)`` with ``reduction='none'``.
    """
    x = as_tensor(input)
    _check_reduction(reduction)
    t = _class_targets(x, target, "cross_entropy")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing}")
    N, C = x.shape
    shifted = x.data - x.data.max(axis=1, keepdims=True, initial=-np.inf)
    logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    rows = np.arange(N)
    losses = -(1 - label_smoothing) * logp[rows, t]
    if label_smoothing:
        losses = losses - label_smoothing / C * logp.sum(axis=1)
    out, scale = _reduce(losses.astype(x.dtype, copy=False), reduction, N)

    def backward(g):
        grad = np.exp(logp)
        grad[rows, t] -= 1 - label_smoothing
        if label_smoothing:
            grad -= label_smoothing / C
        return (grad * (g * scale if scale is not None else g[:, None]),)

    return Tensor.from_op(out, (x,), backward, "cross_entropy")


def nll_loss(input, target, reduction: str = "mean") -> Tensor:
    """Negative log-likelihood of log-probabilities (e.g. :func:`log_softmax` output).

    Shape: input ``(N, C)``, target ``(N,)`` -> scalar, or ``(N,)`` with ``reduction='none'``.
    """
    x = as_tensor(input)
    _check_reduction(reduction)
    t = _class_targets(x, target, "nll_loss")
    rows = np.arange(x.shape[0])
    out, scale = _reduce(-x.data[rows, t], reduction, x.shape[0])

    def backward(g):
        grad = np.zeros_like(x.data)
        grad[rows, t] = -(g * scale if scale is not None else g)
        return (grad,)

    return Tensor.from_op(out, (x,), backward, "nll_loss")


def _check_same_shape(x: Tensor, t: np.ndarray, op: str) -> None:
    if x.shape != t.shape:
        raise ValueError(f"{op}: target shape {tuple(t.shape)} must equal input shape {tuple(x.shape)}")
    if x.dtype.kind != "f":
        raise TypeError(f"{op}: expected floating point input, got dtype {x.dtype}")


def binary_cross_entropy_with_logits(input, target, reduction: str = "mean", pos_weight=None) -> Tensor:
    """Sigmoid + binary cross-entropy in one stable step, for binary and multi-label outputs.

    ``loss = -[p t log s(x) + (1 - t) log(1 - s(x))]`` with ``s`` the sigmoid and
    ``p`` the optional ``pos_weight``, computed as
    ``(1 - t) x + (1 + (p - 1) t) (log(1 + e^-|x|) + max(-x, 0))``.

    Shape: input and target the same shape ``(*)``; output scalar, or ``(*)`` with ``'none'``.
    """
    x = as_tensor(input)
    _check_reduction(reduction)
    t = np.asarray(target.data if isinstance(target, Tensor) else target, dtype=x.dtype)
    _check_same_shape(x, t, "binary_cross_entropy_with_logits")
    d = x.data
    log_sig_neg = np.log1p(np.exp(-np.abs(d))) + np.maximum(-d, 0)  # -log sigmoid(x)
    if pos_weight is None:
        weight = 1.0
    else:
        weight = 1 + (np.asarray(pos_weight.data if isinstance(pos_weight, Tensor) else pos_weight,
                                 dtype=x.dtype) - 1) * t
    losses = (1 - t) * d + weight * log_sig_neg
    out, scale = _reduce(losses.astype(x.dtype, copy=False), reduction, max(d.size, 1))

    def backward(g):
        s = _sigmoid(d)
        grad = (1 - t) - weight * (1 - s)
        return (grad * (g * scale if scale is not None else g),)

    return Tensor.from_op(out, (x,), backward, "binary_cross_entropy_with_logits")


def mse_loss(input, target, reduction: str = "mean") -> Tensor:
    """Mean squared error ``(x - t)^2``.  Shape: input and target the same shape."""
    x = as_tensor(input)
    _check_reduction(reduction)
    t = np.asarray(target.data if isinstance(target, Tensor) else target, dtype=x.dtype)
    _check_same_shape(x, t, "mse_loss")
    diff = x.data - t
    out, scale = _reduce(diff * diff, reduction, diff.size)

    def backward(g):
        return (2 * diff * (g * scale if scale is not None else g),)

    return Tensor.from_op(out, (x,), backward, "mse_loss")
