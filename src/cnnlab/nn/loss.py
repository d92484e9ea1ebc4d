"""Loss modules (``nn.CrossEntropyLoss()`` and friends): PyTorch's constructor arguments, stored as
attributes of the same name; ``loss_fn(input, target)`` calls the matching ``cnnlab.functional`` loss.

Per-class ``weight`` and BCE's ``pos_weight`` are buffers (saved in ``state_dict()``), as in PyTorch.
"""
from __future__ import annotations

import numpy as np

from .. import functional as F
from ..functional.loss import REDUCTIONS, _is_number, _reduction
from ..tensor import Tensor
from .module import Module


def _buffer(value, name: str, cls: str):
    if value is None:
        return None
    if isinstance(value, str):
        raise TypeError(f"{cls}: {name} must be an array of weights, got {value!r}; pass the reduction by name: "
                        f"reduction={value!r}")
    arr = np.array(value._data if isinstance(value, Tensor) else value)
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"{cls}: {name} must be numeric, got dtype {arr.dtype}")
    return arr.astype(arr.dtype if arr.dtype.kind == "f" else np.float32)


class _Loss(Module):
    """Base: ``reduction`` ('mean', 'sum' or 'none'; the deprecated ``size_average``/``reduce`` map onto it)."""

    def __init__(self, size_average=None, reduce=None, reduction: str = "mean"):
        super().__init__()
        self.reduction = _reduction(type(self).__name__, size_average, reduce, reduction)

    def output_shape(self, input_shape: tuple) -> tuple:
        """``()`` for 'mean'/'sum'; the elementwise losses' shape for 'none'."""
        return () if self.reduction != "none" else tuple(input_shape)

    def extra_repr(self) -> str:
        return "" if self.reduction == "mean" else f"reduction={self.reduction!r}"


class _ClassLoss(_Loss):
    def __init__(self, weight=None, size_average=None, ignore_index: int = -100, reduce=None,
                 reduction: str = "mean"):
        super().__init__(size_average, reduce, reduction)
        name = type(self).__name__
        w = _buffer(weight, "weight", name)
        if w is not None and w.ndim != 1:
            raise ValueError(f"{name}: weight must hold one value per class, shape (C,), got shape {w.shape}")
        if isinstance(ignore_index, (bool, np.bool_)) or not isinstance(ignore_index, (int, np.integer)):
            raise TypeError(f"{name}: ignore_index must be an integer, got {ignore_index!r}")
        self.register_buffer("weight", w)
        self.ignore_index = int(ignore_index)

    def output_shape(self, input_shape: tuple) -> tuple:
        """``()``, or with 'none' the target's shape: ``(N, d1, ...)`` for an ``(N, C, d1, ...)`` input."""
        if self.reduction != "none":
            return ()
        shape = tuple(input_shape)
        return shape[:1] + shape[2:] if len(shape) > 1 else ()


class CrossEntropyLoss(_ClassLoss):
    """Softmax cross-entropy of raw scores against class indices or class probabilities
    (:func:`cnnlab.functional.cross_entropy`).

    Shape:
        - input: ``(N, C)``, ``(N, C, d1, ...)`` (e.g. per-pixel ``(N, C, H, W)``) or ``(C,)``
        - target: integers ``(N,)``, ``(N, d1, ...)`` or ``()``; or probabilities of the input's shape
        - output: scalar; with ``reduction='none'`` ``(N,)``, ``(N, d1, ...)`` or ``()``.
    """

    def __init__(self, weight=None, size_average=None, ignore_index: int = -100, reduce=None,
                 reduction: str = "mean", label_smoothing: float = 0.0):
        super().__init__(weight, size_average, ignore_index, reduce, reduction)
        if not _is_number(label_smoothing) or not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing}")
        self.label_smoothing = float(label_smoothing)

    def forward(self, input, target):
        return F.cross_entropy(input, target, weight=self.weight, ignore_index=self.ignore_index,
                               reduction=self.reduction, label_smoothing=self.label_smoothing)


class NLLLoss(_ClassLoss):
    """Negative log-likelihood of log-probabilities (:func:`cnnlab.functional.nll_loss`); after
    ``nn.LogSoftmax(dim=1)`` it equals :class:`CrossEntropyLoss`.

    Shape: input ``(N, C)``, ``(N, C, d1, ...)`` or ``(C,)``; target ``(N,)``, ``(N, d1, ...)`` or
    ``()``; output scalar, or the target's shape with ``reduction='none'``.
    """

    def forward(self, input, target):
        return F.nll_loss(input, target, weight=self.weight, ignore_index=self.ignore_index,
                          reduction=self.reduction)


class MSELoss(_Loss):
    """Mean squared error (:func:`cnnlab.functional.mse_loss`).

    Shape: input ``(*)``, target the same; output scalar, or ``(*)`` with ``reduction='none'``.
    """

    def forward(self, input, target):
        return F.mse_loss(input, target, reduction=self.reduction)


class L1Loss(_Loss):
    """Mean absolute error (:func:`cnnlab.functional.l1_loss`).

    Shape: input ``(*)``, target the same; output scalar, or ``(*)`` with ``reduction='none'``.
    """

    def forward(self, input, target):
        return F.l1_loss(input, target, reduction=self.reduction)


class SmoothL1Loss(_Loss):
    """Quadratic below ``beta``, linear above (:func:`cnnlab.functional.smooth_l1_loss`).

    Shape: input ``(*)``, target the same; output scalar, or ``(*)`` with ``reduction='none'``.
    """

    def __init__(self, size_average=None, reduce=None, reduction: str = "mean", beta: float = 1.0):
        super().__init__(size_average, reduce, reduction)
        if not _is_number(beta) or not beta >= 0:
            raise ValueError(f"SmoothL1Loss: beta must be a number >= 0, got {beta!r}")
        self.beta = float(beta)

    def forward(self, input, target):
        return F.smooth_l1_loss(input, target, reduction=self.reduction, beta=self.beta)


class HuberLoss(_Loss):
    """Quadratic below ``delta``, ``delta``-sloped linear above (:func:`cnnlab.functional.huber_loss`).

    Shape: input ``(*)``, target the same; output scalar, or ``(*)`` with ``reduction='none'``.
    """

    def __init__(self, reduction: str = "mean", delta: float = 1.0):
        super().__init__(reduction=reduction)
        if not _is_number(delta) or not delta > 0:
            raise ValueError(f"HuberLoss: delta must be a number > 0, got {delta!r}")
        self.delta = float(delta)

    def forward(self, input, target):
        return F.huber_loss(input, target, reduction=self.reduction, delta=self.delta)


class BCELoss(_Loss):
    """Binary cross-entropy of probabilities (:func:`cnnlab.functional.binary_cross_entropy`).

    Shape: input ``(*)`` in ``[0, 1]``, target the same; output scalar, or ``(*)`` with ``'none'``.
    """

    def __init__(self, weight=None, size_average=None, reduce=None, reduction: str = "mean"):
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", _buffer(weight, "weight", "BCELoss"))

    def forward(self, input, target):
        return F.binary_cross_entropy(input, target, weight=self.weight, reduction=self.reduction)


class BCEWithLogitsLoss(_Loss):
    """Sigmoid + binary cross-entropy in one stable step
    (:func:`cnnlab.functional.binary_cross_entropy_with_logits`); ``pos_weight`` (one per class)
    weighs the positive targets.

    Shape: input ``(*)`` raw scores, target the same; output scalar, or ``(*)`` with ``'none'``.
    """

    def __init__(self, weight=None, size_average=None, reduce=None, reduction: str = "mean", pos_weight=None):
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", _buffer(weight, "weight", "BCEWithLogitsLoss"))
        self.register_buffer("pos_weight", _buffer(pos_weight, "pos_weight", "BCEWithLogitsLoss"))

    def forward(self, input, target):
        return F.binary_cross_entropy_with_logits(input, target, weight=self.weight, reduction=self.reduction,
                                                  pos_weight=self.pos_weight)


__all__ = ["CrossEntropyLoss", "NLLLoss", "MSELoss", "L1Loss", "SmoothL1Loss", "HuberLoss", "BCELoss",
           "BCEWithLogitsLoss", "REDUCTIONS"]
