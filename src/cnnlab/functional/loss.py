"""Loss functions: how wrong a prediction is, as one number to minimise (PyTorch's definitions).

Each validates shapes, labels and weights before any arithmetic, so a mistake reads as a
sentence, not as a NumPy broadcasting error.  Arguments, defaults and positional order are
PyTorch's (the deprecated ``size_average``/``reduce`` included); a reduction given where a weight
or ``size_average`` belongs is refused with a hint to pass ``reduction=`` by name.

Class losses (``cross_entropy``, ``nll_loss``) take ``(N, C)`` scores, ``(N, C, d1, ...)`` for
per-pixel classification, or ``(C,)`` for one sample, with integer class targets ``(N,)``,
``(N, d1, ...)`` or ``()``; targets equal to ``ignore_index`` count nowhere.  With per-class
``weight``, ``'mean'`` divides by the sum of the weights of the counted targets, as PyTorch does.
A float target (regression values, binary or class probabilities) that requires a gradient gets one,
as in PyTorch.
"""
from __future__ import annotations

import warnings

import numpy as np

from ..tensor import Tensor, as_tensor
from .activation import _sigmoid

REDUCTIONS = ("mean", "sum", "none")


# --- shared checks --------------------------------------------------------------------------------
def _reduction(op: str, size_average, reduce, reduction) -> str:
    for name, value in (("size_average", size_average), ("reduce", reduce)):
        if value is not None and not isinstance(value, (bool, np.bool_)):
            hint = f"; pass the reduction by name: reduction={value!r}" if isinstance(value, str) else ""
            raise TypeError(f"{op}: {name} must be True, False or None (deprecated; use reduction=), got "
                            f"{value!r}{hint}")
    if size_average is not None or reduce is not None:
        size_average = True if size_average is None else size_average
        reduce = True if reduce is None else reduce
        reduction = "mean" if size_average and reduce else "sum" if reduce else "none"
        warnings.warn(f"size_average and reduce args will be deprecated, please use reduction='{reduction}' instead.",
                      UserWarning, stacklevel=3)
    if reduction not in REDUCTIONS:
        raise ValueError(f"{op}: reduction must be one of {REDUCTIONS}, got {reduction!r}")
    return reduction


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _float_input(input, op: str) -> Tensor:
    x = as_tensor(input)
    if x.dtype.kind != "f":
        raise TypeError(f"{op}: expected floating point input, got dtype {x.dtype}")
    return x


def _array(value) -> np.ndarray:
    return value._data if isinstance(value, Tensor) else np.asarray(value)


def _weight_array(weight, op: str, name: str, dtype) -> np.ndarray:
    if isinstance(weight, str):
        raise TypeError(f"{op}: {name} must be an array of weights, got {weight!r}; pass the reduction by name: "
                        f"reduction={weight!r}")
    w = _array(weight)
    if w.dtype.kind not in "iuf":
        raise TypeError(f"{op}: {name} must be numeric, got dtype {w.dtype}")
    return w.astype(dtype, copy=False)


def _class_weight(weight, n_classes: int, op: str, dtype):
    if weight is None:
        return None
    w = _weight_array(weight, op, "weight", dtype)
    if w.shape != (n_classes,):
        raise ValueError(f"{op}: weight should be defined for all {n_classes} classes: expected shape "
                         f"({n_classes},), got weight of shape {tuple(w.shape)}")
    return w


def _broadcast_weight(weight, shape: tuple, op: str, name: str, dtype):
    """A weight that broadcasts to ``shape`` without changing it, else a ValueError naming both shapes."""
    if weight is None:
        return None
    w = _weight_array(weight, op, name, dtype)
    try:
        fits = np.broadcast_shapes(w.shape, shape) == tuple(shape)
    except ValueError:
        fits = False
    if not fits:
        hint = f" (e.g. one weight per class of the last dimension: shape ({shape[-1]},))" if shape else ""
        raise ValueError(f"{op}: {name} of shape {tuple(w.shape)} does not broadcast to the input's shape "
                         f"{tuple(shape)}{hint}")
    return w


def _target_tensor(target, dtype) -> Tensor:
    """The target as a Tensor of the input's dtype; a float target that requires a gradient gets one."""
    t = target if isinstance(target, Tensor) else Tensor(np.asarray(target))
    return t if t.dtype == dtype else Tensor(t._data.astype(dtype))


def _check_same_shape(x: Tensor, t: np.ndarray, op: str) -> None:
    if x.shape != t.shape:
        raise ValueError(f"{op}: target shape {tuple(t.shape)} must equal input shape {tuple(x.shape)}")


def _reduce(losses: np.ndarray, reduction: str, denominator):
    """``(output, scale)``: the reduced loss and the factor its gradient gets (None for 'none')."""
    if reduction == "none":
        return losses, None
    total = losses.sum()
    if reduction == "sum":
        return np.asarray(total, dtype=losses.dtype), 1.0
    with np.errstate(invalid="ignore", divide="ignore"):  # 0 / 0 -> nan, as PyTorch's mean of nothing
        out = np.asarray(total / denominator, dtype=losses.dtype)
    # nothing counted: the value is nan but no input moves it (a zero gradient, as PyTorch's)
    return out, (np.asarray(1.0 / denominator, dtype=losses.dtype) if denominator else 0.0)


def _scaled(g, scale, reduction: str):
    return g * scale if reduction != "none" else g


# --- class losses ---------------------------------------------------------------------------------
def _n_classes(x: Tensor, op: str) -> int:
    if x.ndim < 1 or x.shape[1 if x.ndim > 1 else 0] == 0:
        raise ValueError(f"{op}: expected input of shape (N, C), (N, C, d1, ...) or (C,) with C >= 1 classes, got "
                         f"{tuple(x.shape)}")
    return x.shape[1 if x.ndim > 1 else 0]


def _class_targets(x: Tensor, t: np.ndarray, ignore_index: int, op: str):
    """Validate integer labels for ``x``; return ``(labels with ignored ones set to 0, kept mask or None)``."""
    if t.dtype.kind not in "iu":
        raise TypeError(f"{op}: expected integer class labels, got target of dtype {t.dtype} (class probabilities "
                        f"need the input's shape {tuple(x.shape)})")
    want = x.shape[:1] + x.shape[2:] if x.ndim > 1 else ()
    if t.shape != want:
        raise ValueError(f"{op}: expected target of shape {want} for input of shape {tuple(x.shape)}, got target "
                         f"of shape {tuple(t.shape)}")
    if isinstance(ignore_index, (bool, np.bool_)) or not isinstance(ignore_index, (int, np.integer)):
        raise TypeError(f"{op}: ignore_index must be an integer, got {ignore_index!r}")
    n_classes = x.shape[1 if x.ndim > 1 else 0]
    ignored = t == ignore_index
    keep = ~ignored if ignored.any() else None
    bad = (t < 0) | (t >= n_classes)
    if keep is not None:
        bad &= keep
    if bad.any():
        raise ValueError(f"{op}: labels must be in [0, {n_classes}) for {n_classes} classes, got label "
                         f"{t[bad].flat[0]}" + (f" (ignore_index={ignore_index})" if ignore_index != -100 else ""))
    labels = t.astype(np.intp, copy=keep is not None)
    if keep is not None:
        labels[ignored] = 0
    return labels, keep


def _batched(x: Tensor, labels: np.ndarray, keep):
    """View an unbatched ``(C,)`` input and its ``()`` label (and mask) as a batch of one."""
    if x.ndim > 1:
        return x._data, labels, keep
    return x._data[None], labels[None], None if keep is None else np.asarray(keep)[None]


def _label_weights(w, labels, keep, dtype):
    """Per-target weights ``w[label]`` (0 where ignored), or None when every target counts 1."""
    if w is None:
        return None if keep is None else keep.astype(dtype)
    wt = w[labels]
    if keep is not None:
        wt *= keep
    return wt


def _expand(a):
    """``(N, d1, ...)`` -> ``(N, 1, d1, ...)``: broadcast a per-target value over the class axis."""
    return a[:, None] if isinstance(a, np.ndarray) and a.ndim else a


def _target_index(lab: np.ndarray) -> tuple:
    """The index of every target's score in an ``(N, C, d1, ...)`` array: ``scores[index]`` has ``lab``'s shape."""
    k = lab.ndim
    grids = [np.arange(n).reshape((n,) + (1,) * (k - 1 - i)) for i, n in enumerate(lab.shape)]
    return (grids[0], lab, *grids[1:])


def _class_shape(w: np.ndarray, ndim: int) -> np.ndarray:
    """Per-class weights shaped ``(1, C, 1, ...)`` for an ``ndim``-dimensional batch."""
    return w.reshape((1, -1) + (1,) * (ndim - 2))


def _log_softmax(d: np.ndarray) -> np.ndarray:
    shifted = d - d.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def cross_entropy(input, target, weight=None, size_average=None, ignore_index: int = -100, reduce=None,
                  reduction: str = "mean", label_smoothing: float = 0.0) -> Tensor:
    """Softmax cross-entropy of raw scores (logits), PyTorch's definition.

    With class-index targets ``y``: ``loss_i = (1 - eps) * w[y_i] * -log p_i[y_i]
    + eps / C * sum_c w[c] * -log p_i[c]`` (``p = softmax(x_i)``, ``eps = label_smoothing``, ``w``
    the optional class weights, 1 by default); targets equal to ``ignore_index`` give 0 and are not
    counted.  ``'mean'`` divides the sum by ``sum_i w[y_i]`` over the counted targets (their number
    without weights).  With class-probability targets (a float target of the input's shape):
    ``loss_i = -sum_c w[c] q_ic log p_i[c]``, ``q = (1 - eps) target + eps / C``; ``'mean'`` divides by
    the number of samples (pixels included).  Fused: the gradient is ``softmax`` minus the
    (weighted) target, computed in one step.

    Shape:
        - input: ``(N, C)``, ``(N, C, d1, ...)`` (e.g. per-pixel ``(N, C, H, W)``) or ``(C,)``
        - target: integers ``(N,)``, ``(N, d1, ...)`` or ``()`` in ``[0, C)`` (or ``ignore_index``);
          or probabilities of the input's shape
        - output: scalar, or the target's shape (without ``C``) with ``reduction='none'``.
    """
    op = "cross_entropy"
    x = _float_input(input, op)
    reduction = _reduction(op, size_average, reduce, reduction)
    if not _is_number(label_smoothing) or not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing}")
    n_classes = _n_classes(x, op)
    w = _class_weight(weight, n_classes, op, x.dtype)
    t = _array(target)
    if t.shape == x.shape:  # class probabilities (a class-index target never has the input's shape)
        return _cross_entropy_probabilities(x, target, w, ignore_index, reduction, label_smoothing)
    labels, keep = _class_targets(x, t, ignore_index, op)
    d, lab, keep = _batched(x, labels, keep)
    eps = float(label_smoothing)
    logp = _log_softmax(d)
    sel = _target_index(lab)
    picked = logp[sel]
    wt = _label_weights(w, lab, keep, x.dtype)
    losses = -picked if wt is None else -(wt * picked)
    if eps:
        losses *= 1 - eps
        smooth = -(logp.sum(axis=1) if w is None else (logp * _class_shape(w, d.ndim)).sum(axis=1))
        if keep is not None:
            smooth *= keep
        losses += eps / n_classes * smooth
    losses = losses.astype(x.dtype, copy=False)
    denominator = losses.size if wt is None else wt.sum()
    out, scale = _reduce(losses if x.ndim > 1 else losses.reshape(()), reduction, denominator)

    def backward(g):
        # d loss_i / d x_ic = (a_i + s_i W) p_ic - a_i [c = y_i] - s_i w_c, with a_i = (1 - eps) w[y_i],
        # s_i = eps / C (0 where ignored) and W = sum_c w_c; a_i + s_i W = 1 without weights or ignored targets
        grad = np.exp(logp)
        nll_coef = (1 - eps) if wt is None else (1 - eps) * wt
        smooth_coef = eps / n_classes if keep is None else (eps / n_classes) * keep.astype(d.dtype)
        if wt is not None:
            grad *= _expand(nll_coef + smooth_coef * (n_classes if w is None else w.sum()))
        grad[sel] -= nll_coef
        if eps:
            grad -= _expand(smooth_coef) if w is None else _expand(smooth_coef) * _class_shape(w, d.ndim)
        g = _scaled(g, scale, reduction)
        grad *= _expand(np.asarray(g, dtype=d.dtype).reshape(lab.shape)) if reduction == "none" else g
        return (grad if x.ndim > 1 else grad[0],)

    return Tensor.from_op(out, (x,), backward, op)


def _cross_entropy_probabilities(x: Tensor, target, w, ignore_index, reduction: str, eps: float) -> Tensor:
    op = "cross_entropy"
    t = _array(target)
    if t.dtype.kind != "f":
        raise TypeError(f"{op}: a target of the input's shape {tuple(x.shape)} holds class probabilities and must "
                        f"be floating point, got dtype {t.dtype}")
    if ignore_index >= 0:
        raise ValueError(f"{op}: ignore_index is not supported for class-probability targets, got "
                         f"ignore_index={ignore_index}")
    target = _target_tensor(target, x.dtype)
    d = x._data if x.ndim > 1 else x._data[None]
    q = target._data if x.ndim > 1 else target._data[None]
    n_classes = d.shape[1]
    if eps:
        q = q * (1 - eps) + eps / n_classes
    wq = q if w is None else q * _class_shape(w, d.ndim)
    logp = _log_softmax(d)
    losses = -(logp * wq).sum(axis=1).astype(x.dtype, copy=False)
    out, scale = _reduce(losses if x.ndim > 1 else losses.reshape(()), reduction, losses.size)

    def backward(g):
        g = _scaled(g, scale, reduction)
        g = _expand(np.asarray(g, dtype=d.dtype).reshape(losses.shape)) if reduction == "none" else g
        grad = (np.exp(logp) * wq.sum(axis=1, keepdims=True) - wq) * g
        grad_t = None
        if target.requires_grad:  # d loss / d target_c = -(1 - eps) w_c log p_c
            grad_t = -(1 - eps) * g * (logp if w is None else logp * _class_shape(w, d.ndim))
        if x.ndim == 1:
            grad, grad_t = grad[0], None if grad_t is None else grad_t[0]
        return grad, grad_t

    return Tensor.from_op(out, (x, target), backward, op)


def nll_loss(input, target, weight=None, size_average=None, ignore_index: int = -100, reduce=None,
             reduction: str = "mean") -> Tensor:
    """Negative log-likelihood of log-probabilities (e.g. :func:`log_softmax` output), PyTorch's definition.

    ``loss_i = -w[y_i] * input_i[y_i]`` (0 where ``y_i == ignore_index``); ``'mean'`` divides by
    ``sum_i w[y_i]`` over the counted targets.

    Shape: input ``(N, C)``, ``(N, C, d1, ...)`` or ``(C,)``; target ``(N,)``, ``(N, d1, ...)`` or
    ``()`` -> scalar, or the target's shape with ``reduction='none'``.
    """
    op = "nll_loss"
    x = _float_input(input, op)
    reduction = _reduction(op, size_average, reduce, reduction)
    n_classes = _n_classes(x, op)
    w = _class_weight(weight, n_classes, op, x.dtype)
    labels, keep = _class_targets(x, _array(target), ignore_index, op)
    d, lab, keep = _batched(x, labels, keep)
    sel = _target_index(lab)
    picked = d[sel]
    wt = _label_weights(w, lab, keep, x.dtype)
    losses = (-picked if wt is None else -(wt * picked)).astype(x.dtype, copy=False)
    out, scale = _reduce(losses if x.ndim > 1 else losses.reshape(()), reduction, losses.size if wt is None
                         else wt.sum())

    def backward(g):
        g = np.asarray(_scaled(g, scale, reduction), dtype=d.dtype)
        per_target = -np.broadcast_to(g.reshape(lab.shape) if reduction == "none" else g, lab.shape)
        if wt is not None:
            per_target = per_target * wt
        grad = np.zeros_like(d)
        grad[sel] = per_target
        return (grad if x.ndim > 1 else grad[0],)

    return Tensor.from_op(out, (x,), backward, op)


# --- binary losses --------------------------------------------------------------------------------
def _binary_inputs(op: str, input, target, weight, size_average, reduce, reduction):
    """The checked ``(input, target, weight array or None, reduction)`` of a binary cross-entropy."""
    x = _float_input(input, op)
    reduction = _reduction(op, size_average, reduce, reduction)
    target = _target_tensor(target, x.dtype)
    _check_same_shape(x, target._data, op)
    return x, target, _broadcast_weight(weight, x.shape, op, "weight", x.dtype), reduction


def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None, reduce=None,
                                     reduction: str = "mean", pos_weight=None) -> Tensor:
    """Sigmoid + binary cross-entropy in one stable step, for binary and multi-label outputs.

    ``loss = -w [p t log s(x) + (1 - t) log(1 - s(x))]`` with ``s`` the sigmoid, ``w`` the optional
    ``weight`` and ``p`` the optional ``pos_weight`` (both broadcast to the input's shape; ``pos_weight``
    usually holds one weight per class of the last dimension), computed as
    ``(1 - t) x + (1 + (p - 1) t) (log(1 + e^-|x|) + max(-x, 0))``.

    Shape: input and target the same shape ``(*)``; output scalar, or ``(*)`` with ``'none'``.
    """
    op = "binary_cross_entropy_with_logits"
    x, target, w, reduction = _binary_inputs(op, input, target, weight, size_average, reduce, reduction)
    t = target._data
    pw = _broadcast_weight(pos_weight, x.shape, op, "pos_weight", x.dtype)
    d = x._data
    log_sig_neg = np.log1p(np.exp(-np.abs(d))) + np.maximum(-d, 0)  # -log sigmoid(x)
    log_weight = 1.0 if pw is None else 1 + (pw - 1) * t
    losses = (1 - t) * d + log_weight * log_sig_neg
    if w is not None:
        losses = losses * w
    out, scale = _reduce(np.asarray(losses, dtype=x.dtype), reduction, d.size)

    def backward(g):
        g = _scaled(g, scale, reduction) if w is None else _scaled(g, scale, reduction) * w
        grad = ((1 - t) - log_weight * (1 - _sigmoid(d))) * g
        if not target.requires_grad:
            return grad, None
        return grad, (-d if pw is None else (pw - 1) * log_sig_neg - d) * g

    return Tensor.from_op(out, (x, target), backward, op)


def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None,
                         reduction: str = "mean") -> Tensor:
    """Binary cross-entropy of probabilities (e.g. :func:`sigmoid` output), PyTorch's definition.

    ``loss = -w [t log x + (1 - t) log(1 - x)]`` with each log clamped at -100 (so 0 and 1 are
    finite), inputs and targets in ``[0, 1]``; prefer :func:`binary_cross_entropy_with_logits` on raw
    scores, which is stable.

    Shape: input and target the same shape ``(*)``, ``weight`` broadcastable to it; output scalar,
    or ``(*)`` with ``'none'``.
    """
    op = "binary_cross_entropy"
    x, target, w, reduction = _binary_inputs(op, input, target, weight, size_average, reduce, reduction)
    t = target._data
    d = x._data
    for name, a in (("input", d), ("target", t)):
        outside = ~((a >= 0) & (a <= 1))
        if outside.any():
            raise ValueError(f"{op}: all elements of {name} should be between 0 and 1, got {a[outside].flat[0]}"
                             + (" (for raw scores use binary_cross_entropy_with_logits)" if name == "input" else ""))
    with np.errstate(divide="ignore"):
        log_x = np.maximum(np.log(d), -100)
        log_1mx = np.maximum(np.log1p(-d), -100)
    losses = (t - 1) * log_1mx - t * log_x
    if w is not None:
        losses = losses * w
    out, scale = _reduce(np.asarray(losses, dtype=x.dtype), reduction, d.size)

    def backward(g):
        g = _scaled(g, scale, reduction) if w is None else _scaled(g, scale, reduction) * w
        grad = (d - t) / np.maximum((1 - d) * d, 1e-12) * g
        return grad, ((log_1mx - log_x) * g if target.requires_grad else None)

    return Tensor.from_op(out, (x, target), backward, op)


# --- regression losses ----------------------------------------------------------------------------
def _pointwise(op: str, input, target, reduction: str, loss_of, slope_of, weight=None,
               weighted_mean: str = "sum") -> Tensor:
    """A loss of ``diff = input - target``, elementwise: ``loss_of(diff)``, its derivative ``slope_of(diff)``.

    ``weight`` (the input's shape) multiplies each element; the weighted ``'mean'`` divides by the sum
    of the weights (``weighted_mean='sum'``, mse/l1) or by the number of elements (``'count'``, huber),
    as PyTorch does.  The target gets the opposite gradient when it requires one.
    """
    x = _float_input(input, op)
    t = _target_tensor(target, x.dtype)
    _check_same_shape(x, t._data, op)
    w = None
    if weight is not None:
        w = _weight_array(weight, op, "weight", x.dtype)
        if w.shape != x.shape:
            raise ValueError(f"{op}: weight of shape {tuple(w.shape)} must have the input's shape {tuple(x.shape)}")
    diff = x._data - t._data
    losses = loss_of(diff)
    if w is not None:
        losses = losses * w
    denominator = w.sum() if w is not None and weighted_mean == "sum" else diff.size
    out, scale = _reduce(np.asarray(losses, dtype=x.dtype), reduction, denominator)

    def backward(g):
        grad = slope_of(diff) * _scaled(g, scale, reduction)
        if w is not None:
            grad = grad * w
        return grad, (-grad if t.requires_grad else None)

    return Tensor.from_op(out, (x, t), backward, op)


def mse_loss(input, target, size_average=None, reduce=None, reduction: str = "mean", weight=None) -> Tensor:
    """Mean squared error ``(x - t)^2`` (optionally weighted per element).  Shape: input and target the same."""
    reduction = _reduction("mse_loss", size_average, reduce, reduction)
    return _pointwise("mse_loss", input, target, reduction, lambda d: d * d, lambda d: 2 * d, weight)


def l1_loss(input, target, size_average=None, reduce=None, reduction: str = "mean", weight=None) -> Tensor:
    """Mean absolute error ``|x - t|`` (gradient ``sign(x - t)``, 0 at 0).  Shape: input and target the same."""
    reduction = _reduction("l1_loss", size_average, reduce, reduction)
    return _pointwise("l1_loss", input, target, reduction, np.abs, np.sign, weight)


def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction: str = "mean",
                   beta: float = 1.0) -> Tensor:
    """``0.5 d^2 / beta`` where ``|d| < beta``, else ``|d| - 0.5 beta`` (``d = x - t``; ``beta=0`` is L1).

    Shape: input and target the same.
    """
    op = "smooth_l1_loss"
    reduction = _reduction(op, size_average, reduce, reduction)
    if not _is_number(beta) or not beta >= 0:
        raise ValueError(f"{op}: beta must be a number >= 0, got {beta!r}")
    if beta == 0:
        return _pointwise(op, input, target, reduction, np.abs, np.sign)
    return _pointwise(op, input, target, reduction,
                      lambda d: np.where(np.abs(d) < beta, 0.5 * d * d / beta, np.abs(d) - 0.5 * beta),
                      lambda d: np.clip(d / beta, -1, 1))


def huber_loss(input, target, reduction: str = "mean", delta: float = 1.0, weight=None) -> Tensor:
    """``0.5 d^2`` where ``|d| < delta``, else ``delta (|d| - 0.5 delta)`` (``d = x - t``).

    Shape: input and target the same (``weight`` too; its ``'mean'`` divides by the number of
    elements, as PyTorch's).
    """
    op = "huber_loss"
    reduction = _reduction(op, None, None, reduction)
    if not _is_number(delta) or not delta > 0:
        raise ValueError(f"{op}: delta must be a number > 0, got {delta!r}")
    return _pointwise(op, input, target, reduction,
                      lambda d: np.where(np.abs(d) < delta, 0.5 * d * d, delta * (np.abs(d) - 0.5 * delta)),
                      lambda d: np.clip(d, -delta, delta), weight, weighted_mean="count")
