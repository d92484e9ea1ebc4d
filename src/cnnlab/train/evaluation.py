"""Evaluation and prediction: ``evaluate`` and ``predict`` of a model on images, in batches, in eval
mode and under ``no_grad``, refusing NaN/inf answers."""
from __future__ import annotations

from typing import Optional

import numpy as np

from .. import distributed as _distributed
from .. import functional as F
from .. import nn
from ..nn.probabilities import to_probabilities
from ..tensor import Tensor, no_grad
from .callbacks import non_finite_state

__all__ = ["evaluate", "predict", "check_finite_model"]


# --- data plumbing ------------------------------------------------------------------------
def _split_data(data, what: str):
    """``(images, labels, mean, std, classes)`` of an ArrayDataset or an (images, labels) pair."""
    from ..data import ArrayDataset
    if isinstance(data, ArrayDataset):
        return data.images, data.labels, data.mean, data.std, list(data.classes)
    if isinstance(data, (tuple, list)) and len(data) == 2:
        images = data[0]._data if isinstance(data[0], Tensor) else np.asarray(data[0])
        labels = data[1]._data if isinstance(data[1], Tensor) else np.asarray(data[1])
        if images.ndim != 4:
            raise ValueError(f"{what}: images must have shape (N, C, H, W), got {images.shape}")
        if labels.shape != images.shape[:1] or labels.dtype.kind not in "iu":
            raise ValueError(f"{what}: labels must be integers of shape ({images.shape[0]},), "
                             f"got {labels.dtype} {labels.shape}")
        return images.astype(np.float32, copy=False), labels.astype(np.int64, copy=False), None, None, None
    raise TypeError(f"{what} must be an ArrayDataset, an (images, labels) pair or (fit only) a DataLoader, "
                    f"got {type(data).__name__}")


def _normalizer(mean, std):
    if mean is None or std is None:
        return None
    from ..data.transforms import Normalize
    return Normalize(mean, std)


def _model_and_normalizer(model, mean, std, data_mean, data_std):
    """``(module, normalizer)``: the one rule of :func:`cnnlab.preprocessing.resolve_preprocessing`.

    ``mean``/``std`` given win; else what the model carries (a SavedModel, or a model loaded by
    ``load_model``/trained by ``fit``: also "none"); else, for a model that records nothing,
    the data set's statistics (an ArrayDataset's ``mean``/``std``).
    """
    from ..preprocessing import preprocessing_of, resolve_preprocessing
    carried = preprocessing_of(model)
    module = getattr(model, "model", model) if not isinstance(model, nn.Module) else model
    if mean is not None or std is not None:
        pre = resolve_preprocessing(carried, mean, std)
        return module, _normalizer(pre.mean, pre.std)
    if carried is not None:
        return module, _normalizer(carried.mean, carried.std)
    return module, _normalizer(data_mean, data_std)


def _batches(images: np.ndarray, labels: np.ndarray, batch_size: int, transform):
    for start in range(0, images.shape[0], batch_size):
        x = images[start:start + batch_size]
        if x.dtype != np.float32:
            x = x.astype(np.float32)
        if transform is not None:
            x = transform(x)
        yield x, labels[start:start + batch_size]


# --- evaluation and prediction ------------------------------------------------------------
def evaluate(model: nn.Module, data, batch_size: int = 256, mean=None, std=None,
             return_predictions: bool = False) -> dict:
    """Loss and accuracy of ``model`` on ``data``, in eval mode, under ``no_grad``, in batches.

    Args:
        model: the network (its train/eval mode is restored afterwards), or a
            :class:`cnnlab.io.SavedModel`.
        data: an ArrayDataset or an ``(images, labels)`` pair of [0, 1] images.
        batch_size: images per forward pass.
        mean, std: the normalisation; when not given, the one the model carries (a model
            from :func:`cnnlab.io.load_model` or :func:`fit`, also "none"), else, for a model
            that records nothing, the ArrayDataset's ``mean``/``std``.
        return_predictions: also return ``predictions`` (N,) and ``probabilities`` (N, K).

    Returns:
        ``{"loss": mean cross-entropy, "accuracy": fraction in [0, 1], "correct": int, "total": int}``.
    """
    images, labels, d_mean, d_std, _ = _split_data(data, "evaluate data")
    if images.shape[0] == 0:
        raise ValueError("evaluate: the data set is empty")
    model, norm = _model_and_normalizer(model, mean, std, d_mean, d_std)
    n = int(images.shape[0])
    group = None if return_predictions else _distributed.current_group()
    if group is not None:  # data-parallel: each rank evaluates its share, the sums are added
        start, stop = group.share(n)
        images, labels = images[start:stop], labels[start:stop]
    was_training = model.training
    model.eval()
    loss_sum, correct = 0.0, 0
    preds, probs = [], []
    try:
        with no_grad():
            for x, y in _batches(images, labels, batch_size, norm):
                logits = model(Tensor(x))
                _check_logits(logits, x.shape)
                _check_finite_outputs(model, logits._data, "evaluate")
                loss_sum += float(F.cross_entropy(logits, y, reduction="sum").item())
                p = logits._data.argmax(axis=1)
                correct += int((p == y).sum())
                if return_predictions:
                    preds.append(p)
                    probs.append(_softmax(logits._data))
    finally:
        model.train(was_training)
    if group is not None:
        loss_sum, correct = group.allreduce_sum(np.array([loss_sum, correct], dtype=np.float64))
        correct = int(round(correct))
    result = {"loss": loss_sum / n, "accuracy": correct / n, "correct": correct, "total": n}
    if return_predictions:
        result["predictions"] = np.concatenate(preds)
        result["probabilities"] = np.concatenate(probs)
    return result


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _check_logits(logits, input_shape) -> None:
    if logits.ndim != 2:
        raise ValueError(f"the model must output (N, classes) scores, got shape {tuple(logits.shape)} "
                         f"for input of shape {tuple(input_shape)}; end it with Flatten and Linear")


def check_finite_model(model: nn.Module, where) -> None:
    """Refuse a model whose weights or statistics hold NaN/inf (a diverged run): what every command that
    uses a trained model (predict, evaluate, explain, report, export, explore) checks first."""
    bad = non_finite_state(model)
    if bad:
        raise ValueError(f"the model in {where}: {', '.join(bad[:5])}{' ...' if len(bad) > 5 else ''} hold "
                         "NaN/inf values (training diverged); its scores would mean nothing: train it again "
                         "with a lower --lr")


def _check_finite_outputs(model: nn.Module, logits: np.ndarray, what: str) -> None:
    """Refuse NaN/inf scores: a diverged model's answers are not predictions."""
    bad = ~np.isfinite(logits).all(axis=1)
    if bad.any():
        state = non_finite_state(model)
        cause = (f"its {', '.join(state[:5])}{' ...' if len(state) > 5 else ''} hold NaN/inf values "
                 "(training diverged)" if state else "the input or the model overflows")
        raise FloatingPointError(f"{what}: the model gives NaN/inf scores for {int(bad.sum())} of "
                                 f"{len(bad)} images, so it has no answer to give; {cause}")


def predict(model: nn.Module, images, batch_size: int = 256, mean=None, std=None) -> np.ndarray:
    """Softmax probabilities of every class for every image, shape ``(N, K)``.

    Args:
        model: the network, or a :class:`cnnlab.io.SavedModel`.
        images: ``(N, C, H, W)`` float array in [0, 1], or an ArrayDataset.
        mean, std: the normalisation; when not given, the one the model carries (see
            :func:`evaluate`), else an ArrayDataset's mean/std, else none.

    Shape:
        - images: (N, C, H, W); output (N, K), rows summing to 1.
    """
    from ..data import ArrayDataset
    d_mean = d_std = None
    if isinstance(images, ArrayDataset):
        d_mean, d_std = images.mean, images.std
        images = images.images
    images = images._data if isinstance(images, Tensor) else np.asarray(images, dtype=np.float32)
    if images.ndim != 4:
        raise ValueError(f"predict: images must have shape (N, C, H, W), got {images.shape}")
    model, norm = _model_and_normalizer(model, mean, std, d_mean, d_std)
    last = _last_layer(model, images.shape[1:])
    was_training = model.training
    model.eval()
    out = []
    try:
        with no_grad():
            for x, _ in _batches(images, np.zeros(images.shape[0], np.int64), batch_size, norm):
                logits = model(Tensor(x))
                _check_logits(logits, x.shape)
                _check_finite_outputs(model, logits._data, "predict")
                if isinstance(last, (nn.Softmax, nn.LogSoftmax)):  # the model gives (log-)probabilities
                    out.append(to_probabilities(logits._data, last).astype(logits._data.dtype))
                else:
                    out.append(_softmax(logits._data))
    finally:
        model.train(was_training)
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def _last_layer(model: nn.Module, input_shape) -> Optional[nn.Module]:
    """The layer that gives the model's output (None when it cannot be told, e.g. an ONNX Runtime session)."""
    model = getattr(model, "_model", model)  # the cnnlab model behind --engine onnxruntime
    try:
        graph = nn.as_graph(model, tuple(input_shape))
    except (ValueError, TypeError, RuntimeError):
        return None
    return graph.node(graph.output).module
