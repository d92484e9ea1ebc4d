"""Training, evaluation and prediction: ``fit``, ``evaluate``, ``predict`` and whole runs.

The Python API is Keras-like::

    from cnnlab.data import get_dataset
    from cnnlab.models import digitsnet
    from cnnlab.train import fit, evaluate

    train_set, test_set = get_dataset("digits")
    model = digitsnet()
    history = fit(model, train_set, epochs=20, batch_size=32, lr=2e-3, seed=0)
    print(evaluate(model, test_set))          # {'loss': ..., 'accuracy': ..., ...}

Data
----
``fit``/``evaluate``/``predict`` take an :class:`~cnnlab.data.ArrayDataset`
(images in [0, 1]; its ``mean``/``std`` normalise every batch), a pair
``(images, labels)`` of arrays (used as they are), or for ``fit`` a ready
:class:`~cnnlab.data.DataLoader`.  Training batches come from a
``DataLoader`` with seeded shuffling and the augmentation given by
``augment``; everything random in a run (shuffling, augmentation, dropout)
is drawn from generators seeded by ``seed`` whose states are saved in each
checkpoint, so the same seed and data give the same weights, and a resumed
run reproduces an uninterrupted one bit for bit.

Run directory
-------------
With ``out_dir``, :func:`fit` writes after every epoch (atomically)::

    checkpoint.npz   model + optimizer + scheduler + RNG states + epoch + history + best weights
                     (arrays, plus one JSON document stored as a uint8 array: no pickle)
    history.csv      epoch,train_loss,train_accuracy,val_loss,val_accuracy,lr,seconds
    model.npz        the weights (state_dict keys) -- the best epoch's when validating
    model.json       architecture, preprocessing (input shape, mean/std), class names

and :func:`train` (the ``cnnlab train`` command) adds ``config.json`` (every
setting of the run, read back by ``--resume``) and ``metrics.json`` (test
accuracy and loss, times, sizes).
"""
from __future__ import annotations

import contextlib
import csv
import functools
import inspect
import io as _io
import math
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence, Tuple, Union

import numpy as np

from . import distributed as _distributed
from . import functional as F
from . import nn, optim
from . import random as _random
from ._runlock import run_lock
from . import _schema
from .finetune import is_onnx_file, onnx_input_shape, pretrained_model
from .io import (MODEL_JSON, atomic_write_bytes, load_bundle, read_json, save_bundle, save_model,
                 write_json)
from .tensor import Tensor, no_grad

__all__ = ["fit", "evaluate", "predict", "train", "TrainingInterrupted", "TrainingDiverged", "non_finite_state",
           "History", "Callback", "LambdaCallback",
           "make_optimizer", "make_scheduler", "default_augmentation", "load_run_data", "RECIPES",
           "CHECKPOINT", "HISTORY_CSV", "METRICS_JSON", "CONFIG_JSON", "HISTORY_COLUMNS"]

CHECKPOINT = "checkpoint.npz"
HISTORY_CSV = "history.csv"
METRICS_JSON = "metrics.json"
CONFIG_JSON = "config.json"
HISTORY_COLUMNS = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "seconds")
OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "cosine", "step", "onecycle")


# --- callbacks and history --------------------------------------------------------------------
class Callback:
    """Hooks called by :func:`fit` (Keras's names).  ``self.trainer`` is set before training.

    ``self.trainer`` has ``model``, ``optimizer``, ``scheduler``, ``history``, ``epochs``
    and ``stop_training`` (set it to ``True`` to stop after the current epoch).
    ``logs`` is a dict: per batch ``{"batch", "size", "loss", "accuracy"}`` (running
    means over the epoch so far); per epoch a history row.
    """

    trainer = None

    def set_trainer(self, trainer) -> None:
        self.trainer = trainer

    def on_train_begin(self, logs: dict) -> None: ...

    def on_train_end(self, logs: dict) -> None: ...

    def on_epoch_begin(self, epoch: int, logs: dict) -> None: ...

    def on_epoch_end(self, epoch: int, logs: dict) -> None: ...

    def on_batch_end(self, batch: int, logs: dict) -> None: ...


class LambdaCallback(Callback):
    """A callback from plain functions, e.g. ``LambdaCallback(on_epoch_end=lambda e, logs: ...)``."""

    def __init__(self, on_train_begin=None, on_train_end=None, on_epoch_begin=None, on_epoch_end=None,
                 on_batch_end=None):
        for name, fn in (("on_train_begin", on_train_begin), ("on_train_end", on_train_end),
                         ("on_epoch_begin", on_epoch_begin), ("on_epoch_end", on_epoch_end),
                         ("on_batch_end", on_batch_end)):
            if fn is not None:
                if not callable(fn):
                    raise TypeError(f"{name} must be callable, got {type(fn).__name__}")
                setattr(self, name, fn)


@dataclass
class History:
    """What :func:`fit` returns: one list per column of ``history.csv``, plus run facts.

    Attributes:
        history: ``{"epoch": [1, 2, ...], "train_loss": [...], ..., "seconds": [...]}``
            (``val_*`` entries are ``None`` without validation data).
        best_epoch: the epoch whose weights the model holds at the end (best ``monitor``
            value with validation data and ``restore_best``; else the last).
        stopped_early: whether early stopping ended the run.
        train_seconds: wall time of the epochs (training, validation, checkpoints),
            added up over resumed sessions.
        images_per_second: training images per second of the training steps.
        mean, std: the normalisation the batches got (``None``: none).
    """

    history: Dict[str, list] = field(default_factory=lambda: {k: [] for k in HISTORY_COLUMNS})
    best_epoch: Optional[int] = None
    best_value: Optional[float] = None
    stopped_early: bool = False
    train_seconds: float = 0.0
    step_seconds: float = 0.0
    train_images: int = 0
    mean: Optional[Tuple[float, ...]] = None
    std: Optional[Tuple[float, ...]] = None

    @property
    def epochs(self) -> int:
        return len(self.history["epoch"])

    @property
    def images_per_second(self) -> float:
        return self.train_images / self.step_seconds if self.step_seconds > 0 else 0.0

    def append(self, row: dict) -> None:
        for key in HISTORY_COLUMNS:
            self.history[key].append(row.get(key))

    def row(self, index: int) -> dict:
        return {key: self.history[key][index] for key in HISTORY_COLUMNS}

    def to_csv(self) -> str:
        out = _io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(HISTORY_COLUMNS)
        for i in range(self.epochs):
            row = self.row(i)
            writer.writerow(["" if row[k] is None else (f"{row[k]:.6g}" if isinstance(row[k], float) else row[k])
                             for k in HISTORY_COLUMNS])
        return out.getvalue()

    def state(self) -> dict:
        return {"history": self.history, "best_epoch": self.best_epoch, "best_value": self.best_value,
                "stopped_early": self.stopped_early, "train_seconds": self.train_seconds,
                "step_seconds": self.step_seconds, "train_images": self.train_images}

    def load_state(self, state: dict) -> None:
        self.history = {k: list(state["history"].get(k, [])) for k in HISTORY_COLUMNS}
        for key in ("best_epoch", "best_value", "stopped_early", "train_seconds", "step_seconds",
                    "train_images"):
            setattr(self, key, state.get(key, getattr(self, key)))


# --- optimisers and schedules --------------------------------------------------------------------
def make_optimizer(name: str, params, lr: float, weight_decay: float = 0.0,
                   momentum: float = 0.9) -> optim.Optimizer:
    """``"adam"`` (L2 weight decay), ``"adamw"`` (decoupled) or ``"sgd"`` (Nesterov momentum)."""
    key = str(name).lower()
    if key == "adam":
        return optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if key == "adamw":
        return optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if key == "sgd":
        return optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=momentum > 0)
    raise ValueError(f"unknown optimizer {name!r}: expected one of {', '.join(OPTIMIZERS)}")


def make_scheduler(schedule, optimizer: optim.Optimizer, epochs: int,
                   steps_per_epoch: int) -> Tuple[Optional[optim.LRScheduler], bool]:
    """The learning-rate schedule and whether it steps per batch (else per epoch).

    ``"constant"``; ``"cosine"`` (per batch, from ``lr`` down to 0 at the last step);
    ``"step"`` (per epoch, x0.1 at 1/2 and 3/4 of the epochs); ``"onecycle"`` (per batch,
    peak ``lr``); or an :class:`~cnnlab.optim.LRScheduler` (stepped per epoch).
    """
    if schedule is None or isinstance(schedule, optim.LRScheduler):
        return schedule, False
    key = str(schedule).lower()
    total = max(epochs * steps_per_epoch, 2)
    if key == "constant":
        return None, False
    if key == "cosine":
        return optim.CosineAnnealingLR(optimizer, T_max=total), True
    if key == "step":
        return optim.MultiStepLR(optimizer, [max(1, epochs // 2), max(2, (3 * epochs) // 4)]), False
    if key == "onecycle":
        return optim.OneCycleLR(optimizer, max_lr=optimizer.param_groups[0]["lr"], total_steps=total,
                                cycle_momentum=False), True
    raise ValueError(f"unknown schedule {schedule!r}: expected one of {', '.join(SCHEDULES)}")


# --- data plumbing ------------------------------------------------------------------------
def _split_data(data, what: str):
    """``(images, labels, mean, std, classes)`` of an ArrayDataset or an (images, labels) pair."""
    from .data import ArrayDataset
    if isinstance(data, ArrayDataset):
        return data.images, data.labels, data.mean, data.std, list(data.classes)
    if isinstance(data, (tuple, list)) and len(data) == 2:
        images = data[0].data if isinstance(data[0], Tensor) else np.asarray(data[0])
        labels = data[1].data if isinstance(data[1], Tensor) else np.asarray(data[1])
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
    from .data.transforms import Normalize
    return Normalize(mean, std)


def _carry_training_preprocessing(model, to_save, history) -> None:
    """The trained model carries the normalisation it was trained with (see :mod:`cnnlab.preprocessing`)."""
    from .preprocessing import Preprocessing, attach
    pre = Preprocessing(history.mean, history.std)
    attach(model, pre)
    attach(to_save, pre)


def _with_dataset_name(model_extra: Optional[dict], train_data) -> Optional[dict]:
    """``model_extra`` plus ``"dataset"`` when the training data is a built-in data set (``"digits-train"``
    -> ``"digits"``), so ``cnnlab evaluate``/``report`` of the folder need no ``--dataset``."""
    from .data import ArrayDataset
    if (model_extra or {}).get("dataset") or not isinstance(train_data, ArrayDataset):
        return model_extra
    name = str(train_data.name or "").lower()
    for suffix in ("-train", "-test", "-val"):
        name = name[:-len(suffix)] if name.endswith(suffix) else name
    if not name or dataset_key(name) == "folder":
        return model_extra
    return {**(model_extra or {}), "dataset": dataset_key(name)}


def _model_and_normalizer(model, mean, std, data_mean, data_std):
    """``(module, normalizer)``: the one rule of :func:`cnnlab.preprocessing.resolve_preprocessing`.

    ``mean``/``std`` given win; else what the model carries (a SavedModel, or a model loaded by
    ``load_model``/trained by ``fit``: also "none"); else, for a model that records nothing,
    the data set's statistics (an ArrayDataset's ``mean``/``std``).
    """
    from .preprocessing import preprocessing_of, resolve_preprocessing
    carried = preprocessing_of(model)
    module = getattr(model, "model", model) if not isinstance(model, nn.Module) else model
    if mean is not None or std is not None:
        pre = resolve_preprocessing(carried, mean, std)
        return module, _normalizer(pre.mean, pre.std)
    if carried is not None:
        return module, _normalizer(carried.mean, carried.std)
    return module, _normalizer(data_mean, data_std)


def default_augmentation(dataset: str, input_shape: Sequence[int]):
    """The training augmentation cnnlab uses for a data set (a ``transform(batch, rng)``).

    - digits (8x8) and MNIST (handwriting): small shifts (1 px on 8x8, 2 px on 28x28)
      and rotations up to 10 degrees, no flips (a mirrored 2 is not a 2);
    - everything else (clothes, objects, your folders): horizontal flips and a random crop
      with padding 1/12 of the size (2 px on 28x28 and 32x32).  A 3 px padding on
      Fashion-MNIST under-fitted smallnet in 10 epochs (92.2% test, train accuracy 93.0%).
    """
    from .data.transforms import Compose, RandomCrop, RandomHorizontalFlip, RandomRotation, RandomShift
    c, h, w = (int(s) for s in input_shape)
    name = str(dataset).lower()
    if name in ("digits", "mnist"):
        return Compose([RandomShift(1 if min(h, w) < 16 else 2), RandomRotation(10)])
    pad = max(1, min(h, w) // 12)
    return Compose([RandomCrop((h, w), padding=pad), RandomHorizontalFlip()])


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
                _check_finite_outputs(model, logits.data, "evaluate")
                loss_sum += float(F.cross_entropy(logits, y, reduction="sum").item())
                p = logits.data.argmax(axis=1)
                correct += int((p == y).sum())
                if return_predictions:
                    preds.append(p)
                    probs.append(_softmax(logits.data))
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


def non_finite_state(model: nn.Module) -> list:
    """Names of the parameters and buffers (``state_dict`` keys) holding NaN or inf."""
    return [k for k, v in model.state_dict().items()
            if np.asarray(v).dtype.kind in "fc" and not np.isfinite(v).all()]


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
    from .data import ArrayDataset
    d_mean = d_std = None
    if isinstance(images, ArrayDataset):
        d_mean, d_std = images.mean, images.std
        images = images.images
    images = images.data if isinstance(images, Tensor) else np.asarray(images, dtype=np.float32)
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
                _check_finite_outputs(model, logits.data, "predict")
                if isinstance(last, (nn.Softmax, nn.LogSoftmax)):  # the model gives (log-)probabilities
                    from .explain.features import to_probabilities
                    out.append(to_probabilities(logits.data, last).astype(logits.data.dtype))
                else:
                    out.append(_softmax(logits.data))
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


# --- progress output -------------------------------------------------------------------------
def _terminal_width(stream) -> int:
    """Columns of the terminal ``stream`` writes to (``COLUMNS`` first); 0 when unknown."""
    import os
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns > 0:
        return columns
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, ValueError, OSError):
        return 0


class _Progress:
    """A tqdm bar per epoch on a terminal; one plain line per epoch otherwise (also on a terminal
    that reports no width, where a bar would print nothing)."""

    def __init__(self, verbose, epochs: int, stream=None):
        self.stream = stream if stream is not None else sys.stderr
        tty = getattr(self.stream, "isatty", lambda: False)()
        if verbose == "auto":
            verbose = 1 if tty else 2
        self.mode = int(verbose or 0)
        if self.mode == 1 and tty and _terminal_width(self.stream) < 40:  # no room for a bar: lines
            self.mode = 2
        self.epochs = epochs
        self.bar = None

    def start_epoch(self, epoch: int, batches: int) -> None:
        self.t0 = time.perf_counter()
        if self.mode == 1:
            from tqdm import tqdm
            width = len(str(self.epochs))
            self.bar = tqdm(total=batches, desc=f"epoch {epoch:>{width}}/{self.epochs}", unit="batch",
                            file=self.stream, leave=True, dynamic_ncols=True,
                            bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} batches "
                                       "[{elapsed}<{remaining}{postfix}]")

    def batch(self, images: int, loss: float, accuracy: float) -> None:
        if self.bar is not None:
            rate = images / max(time.perf_counter() - self.t0, 1e-9)
            self.bar.set_postfix_str(f"{rate:,.0f} img/s, loss {loss:.4f}, acc {100 * accuracy:.2f}%",
                                     refresh=False)
            self.bar.update(1)

    def end_epoch(self, row: dict, images_per_second: float) -> None:
        val = ""
        if row.get("val_loss") is not None:
            val = f", val_loss {row['val_loss']:.4f}, val_acc {100 * row['val_accuracy']:.2f}%"
        if self.bar is not None:
            self.bar.set_postfix_str(f"{images_per_second:,.0f} img/s, loss {row['train_loss']:.4f}, "
                                     f"acc {100 * row['train_accuracy']:.2f}%{val}", refresh=True)
            self.bar.close()
            self.bar = None
        elif self.mode == 2:
            width = len(str(self.epochs))
            print(f"epoch {row['epoch']:>{width}}/{self.epochs}: loss {row['train_loss']:.4f}, "
                  f"acc {100 * row['train_accuracy']:.2f}%{val}, lr {row['lr']:.3g}, "
                  f"{row['seconds']:.1f}s, {images_per_second:,.0f} img/s", file=self.stream, flush=True)

    def message(self, text: str) -> None:
        if self.mode:
            print(text, file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


# --- the training loop ---------------------------------------------------------------------------
class TrainingDiverged(FloatingPointError):
    """The loss, a weight or a batch-norm statistic became NaN/inf; the last finite epoch's files stay."""


def _one_value_batch_norms(model: nn.Module, input_shape) -> list:
    """Names of the batch-norm layers that see a 1x1 map: one image gives them one value per channel."""
    norms = [(name or "model", m) for name, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)]
    if not norms or input_shape is None:
        return []
    found = []
    for name, m in norms:
        def spy(x, _forward=m.forward, _name=name):
            if x.shape[2] * x.shape[3] == 1:
                found.append(_name)
            return _forward(x)
        object.__setattr__(m, "forward", spy)
    was_training = model.training
    try:
        model.eval()
        with no_grad():
            model(Tensor(np.zeros((1, *input_shape), np.float32)))
    finally:
        for _, m in norms:
            object.__delattr__(m, "forward")
        model.train(was_training)
    return found


def _single_image_batches(model: nn.Module, loader, input_shape, progress) -> bool:
    """Whether training skips the 1-image batches; refuses ``batch_size=1`` where it cannot train.

    Batch norm in training mode normalises with the batch's own statistics.  One image still
    gives H*W values per channel, so it trains as in PyTorch; a batch-norm layer on a 1x1 map
    gets one value per channel (no variance), which PyTorch refuses.  Then ``batch_size=1`` is
    an error, and a last batch of one image is left out of each epoch (said here, once).
    """
    n, size = loader.images.shape[0], loader.batch_size
    if size > 1 and (getattr(loader, "drop_last", False) or n % size != 1):
        return False
    layers = _one_value_batch_norms(model, input_shape)
    if not layers:
        return False
    where = f"batch-norm layer{'s' if len(layers) > 1 else ''} {', '.join(layers)} (1x1 maps)"
    if size == 1:
        raise ValueError(f"batch_size=1 cannot train this model: {where} would normalise one value per "
                         "channel, which has no variance in training mode; use batch_size >= 2")
    progress.message(f"note: {n} training images in batches of {size} leave a last batch of 1 image, which "
                     f"{where} cannot train on; that image (a different one each epoch) is left out")
    return True


class _Trainer:
    """The state callbacks see (``self.trainer`` inside a :class:`Callback`)."""

    def __init__(self, model, optimizer, scheduler, history, epochs):
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.history, self.epochs = history, epochs
        self.stop_training = False


def _copy_state(model: nn.Module) -> Dict[str, np.ndarray]:
    return {k: np.array(v, copy=True) for k, v in model.state_dict().items()}


def _improved(value: float, best: Optional[float], mode: str, min_delta: float) -> bool:
    if best is None or (isinstance(best, float) and math.isnan(best)):
        return True
    return value < best - min_delta if mode == "min" else value > best + min_delta


def _locks_its_run_directory(fit_function):
    """Hold the run directory's lock (:func:`cnnlab._runlock.run_lock`) while ``fit`` writes it:
    ``out_dir``, or the ``resume`` directory; rank 0 alone under MPI, as it alone writes."""
    signature = inspect.signature(fit_function)

    @functools.wraps(fit_function)
    def wrapper(*args, **kwargs):
        given = signature.bind(*args, **kwargs).arguments
        directory = given.get("out_dir")
        if directory is None and isinstance(given.get("resume"), (str, Path)):
            directory = given["resume"]
        group = _distributed.current_group()
        if directory is None or (group is not None and not group.is_root):
            return fit_function(*args, **kwargs)
        with run_lock(directory):
            return fit_function(*args, **kwargs)

    return wrapper


@_locks_its_run_directory
def fit(model: nn.Module, train_data, val_data=None, *, epochs: int = 10, batch_size: int = 64,
        optimizer: Union[str, optim.Optimizer] = "adam", lr: float = 1e-3, momentum: float = 0.9,
        weight_decay: float = 0.0, schedule="cosine", patience: Optional[int] = None,
        monitor: str = "val_loss", min_delta: float = 0.0, restore_best: bool = True,
        clip_grad: Optional[float] = None, label_smoothing: float = 0.0, augment=None,
        callbacks: Sequence[Callback] = (), seed: Optional[int] = 0, out_dir=None, resume=False,
        verbose="auto", input_shape: Optional[Sequence[int]] = None,
        classes: Optional[Sequence[str]] = None, model_name: str = "",
        model_extra: Optional[dict] = None) -> History:
    """Train ``model`` on ``train_data`` with cross-entropy (Keras-like ``fit``).

    Args:
        model: the network; put in train mode while training and in eval mode for validation.
        train_data: an ArrayDataset (batches normalised with its ``mean``/``std``; computed from
            its images when unset), an ``(images, labels)`` pair (used as is), or a DataLoader.
        val_data: the same kinds (not a DataLoader), evaluated after every epoch; optional.
        epochs: total epochs (a resumed run continues up to this number).
        batch_size: images per step (ignored for a DataLoader).
        optimizer: ``"adam"``, ``"adamw"``, ``"sgd"`` (Nesterov, ``momentum``) or an Optimizer.
        lr: (peak) learning rate.
        weight_decay: L2 penalty (decoupled for AdamW).
        schedule: ``"cosine"`` (default), ``"constant"``, ``"step"``, ``"onecycle"``, an
            LRScheduler (stepped per epoch) or ``None``.
        patience: stop when ``monitor`` has not improved for this many epochs (needs val_data).
        monitor: ``"val_loss"`` (lower is better) or ``"val_accuracy"``.
        restore_best: with val_data, end with the weights of the best ``monitor`` epoch.
        clip_grad: clip the global gradient L2 norm to this value.
        label_smoothing: cross-entropy label smoothing in [0, 1).
        augment: a ``transform(batch, rng)`` applied to training batches before normalisation
            (see :func:`default_augmentation`), or None.
        callbacks: :class:`Callback` objects.
        seed: seeds the shuffling, the augmentation and cnnlab's generator (dropout); ``None``
            draws one at random (recorded in the checkpoint).  Each epoch's order and each
            batch's augmentation come from their own streams (``DataLoader(seed=...)``).
        out_dir: write checkpoint, history and model files here after every epoch.  The folder
            is locked while ``fit`` runs: another process fitting into it gets ``RunLocked``.
        resume: ``True`` (or a run directory) to continue from ``out_dir``'s checkpoint.
        verbose: ``"auto"`` (bar on a terminal, a line per epoch otherwise), 0, 1 (bar), 2 (lines).
        input_shape, classes, model_name, model_extra: what ``model.json`` records (taken from
            the data when not given).

    Inside a :func:`cnnlab.distributed.session` of N ranks ``fit`` is data-parallel: each
    rank computes its share of every ``batch_size`` batch, one allreduce per step sums the
    gradients, batch norm uses the global batch's statistics, validation is split over the
    ranks, and rank 0 alone writes ``out_dir`` and the progress.

    Returns:
        A :class:`History`.  The model is left in eval mode, holding the best epoch's weights
        (with ``val_data`` and ``restore_best``) or the last epoch's.

    Raises:
        ValueError/TypeError: bad arguments or data that do not fit the model.
        FileNotFoundError: ``resume`` without a checkpoint.
    """
    from .data import ArrayDataset, DataLoader, compute_mean_std
    from .data.transforms import Compose

    # ---- arguments ----
    if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if not 0.0 <= float(label_smoothing) < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
    if clip_grad is not None and clip_grad <= 0:
        raise ValueError(f"clip_grad must be positive, got {clip_grad}")
    if monitor not in ("val_loss", "val_accuracy"):
        raise ValueError(f"monitor must be 'val_loss' or 'val_accuracy', got {monitor!r}")
    if patience is not None and (int(patience) != patience or patience < 1):
        raise ValueError(f"patience must be a positive int or None, got {patience!r}")
    if augment is not None and not callable(augment):
        raise TypeError(f"augment must be a callable transform(batch, rng) or None, got {type(augment).__name__}")
    if isinstance(resume, (str, Path)):
        out_dir = Path(resume) if out_dir is None else out_dir
        resume = True
    if resume and out_dir is None:
        raise ValueError("resume=True needs out_dir (the run directory holding checkpoint.npz)")
    out_dir = None if out_dir is None else Path(out_dir)
    if seed is None:
        seed = int(np.random.SeedSequence().entropy % (2 ** 31))
    seed = int(seed)
    group = _distributed.current_group()  # data-parallel training under MPI, else None
    writer = out_dir is not None and (group is None or group.is_root)  # rank 0 alone writes files

    # ---- data ----
    if isinstance(train_data, DataLoader):
        if group is not None:
            raise TypeError("data-parallel fit takes an ArrayDataset or (images, labels), not a DataLoader "
                            "(it makes a sharded loader itself)")
        loader = train_data
        images0 = loader.images
        mean = std = None
        if classes is None and isinstance(loader.dataset, ArrayDataset):
            classes = list(loader.dataset.classes)
    else:
        images0, labels0, mean, std, data_classes = _split_data(train_data, "train_data")
        if images0.shape[0] < 2:
            raise ValueError(f"train_data must hold at least 2 images, got {images0.shape[0]}")
        if isinstance(train_data, ArrayDataset) and (mean is None or std is None):
            mean, std = compute_mean_std(images0)
            train_data.mean, train_data.std = mean, std
        classes = classes if classes is not None else data_classes
        steps = [augment] if augment is not None else []
        norm = _normalizer(mean, std)
        if norm is not None:
            steps.append(norm)
        transform = Compose(steps) if steps else None
        loader = DataLoader((images0, labels0), batch_size=int(batch_size), shuffle=True, transform=transform,
                            seed=seed, shard=None if group is None else (group.rank, group.size))
    if input_shape is None:
        input_shape = tuple(int(s) for s in images0.shape[1:])
    try:
        out_shape = model.output_shape((1, *input_shape))
    except ValueError as exc:
        raise ValueError(f"the model does not fit the data ({'x'.join(map(str, input_shape))} images): "
                         f"{exc}") from None
    num_outputs = int(out_shape[-1])
    to_save = model
    if out_dir is not None and not isinstance(model, nn.Graph) and type(model) is not nn.Sequential:
        try:  # capture a user's own Module now, not after hours of training
            to_save = nn.as_graph(model, input_shape)
        except ValueError as exc:
            raise ValueError(f"the model cannot be saved to {out_dir}: {exc}") from None
    if classes is not None and len(classes) != num_outputs:
        raise ValueError(f"the model gives {num_outputs} scores per image but the data have "
                         f"{len(classes)} classes")
    val = None
    if val_data is not None:
        v_images, v_labels, v_mean, v_std, _ = _split_data(val_data, "val_data")
        if v_images.shape[1:] != images0.shape[1:]:
            raise ValueError(f"val_data images have shape {v_images.shape[1:]}, train_data images "
                             f"{images0.shape[1:]}")
        if v_images.shape[0] == 0:
            val_data = None
        else:
            val = (v_images, v_labels, mean, std)  # validated as trained: the training normalisation
    if patience is not None and val is None:
        raise ValueError("patience (early stopping) needs val_data to watch")

    # ---- optimiser, schedule, state ----
    if isinstance(optimizer, optim.Optimizer):
        opt = optimizer
        opt_name = type(optimizer).__name__.lower()
    else:
        opt_name = str(optimizer).lower()
        opt = make_optimizer(opt_name, model.parameters(), lr, weight_decay, momentum)
    steps_per_epoch = len(loader)
    scheduler, per_batch = make_scheduler(schedule, opt, int(epochs), steps_per_epoch)
    history = History(mean=None if mean is None else tuple(mean), std=None if std is None else tuple(std))
    _carry_training_preprocessing(model, to_save, history)
    model_extra = _with_dataset_name(model_extra, train_data)
    trainer = _Trainer(model, opt, scheduler, history, int(epochs))
    best_state: Optional[Dict[str, np.ndarray]] = None
    wait = 0
    start_epoch = 0
    _random.manual_seed(seed)
    config = {"epochs": int(epochs), "batch_size": int(batch_size), "optimizer": opt_name, "lr": lr,
              "weight_decay": weight_decay, "schedule": schedule if isinstance(schedule, (str, type(None)))
              else type(schedule).__name__, "seed": seed, "label_smoothing": label_smoothing,
              "clip_grad": clip_grad, "patience": patience, "monitor": monitor}
    if resume:
        ckpt_path = out_dir / CHECKPOINT
        if not ckpt_path.is_file():
            raise FileNotFoundError(f"cannot resume: {ckpt_path} does not exist (is {out_dir} a run "
                                    "directory whose first epoch finished?)")
        arrays, meta = load_bundle(ckpt_path, "checkpoint")
        _schema.check_checkpoint(arrays, meta, ckpt_path, model)  # every field and array, before use
        saved = meta.get("config", {})
        for key in ("batch_size", "optimizer", "schedule", "seed"):
            if key in saved and saved[key] != config[key]:
                raise ValueError(f"cannot resume {out_dir}: it was trained with {key}={saved[key]!r}, "
                                 f"now {key}={config[key]!r}")
        model.load_state_dict({k[6:]: v for k, v in arrays.items() if k.startswith("model/")})
        opt.load_state_dict({**meta["optimizer"],
                             "state": {k[6:]: v for k, v in arrays.items() if k.startswith("optim/")}})
        if scheduler is not None and meta.get("scheduler") is not None:
            if saved.get("epochs") == int(epochs) or not per_batch:
                scheduler.load_state_dict(meta["scheduler"])
            else:  # more epochs than planned: the per-batch schedule restarts its curve where it was
                scheduler.last_epoch = int(meta["scheduler"]["last_epoch"])
                closed_form = getattr(scheduler, "_get_closed_form_lr", scheduler.get_lr)
                for param_group, group_lr in zip(opt.param_groups, closed_form()):
                    param_group["lr"] = group_lr
        _random.set_state(meta["rng"])
        if meta.get("loader") is not None and hasattr(loader, "load_state_dict"):
            loader.load_state_dict(meta["loader"])
        history.load_state(meta["history"])
        best = {k[5:]: v for k, v in arrays.items() if k.startswith("best/")}
        best_state = best or None
        wait = int(meta.get("wait", 0))
        start_epoch = int(meta["epoch"])
    elif writer:
        out_dir.mkdir(parents=True, exist_ok=True)

    progress = _Progress(verbose if group is None or group.is_root else 0, int(epochs))
    skip_single = _single_image_batches(model, loader, input_shape, progress)
    for cb in callbacks:
        cb.set_trainer(trainer)
        cb.on_train_begin({"epochs": int(epochs), "start_epoch": start_epoch})
    if start_epoch:
        progress.message(f"resuming {out_dir} after epoch {start_epoch}")

    def save_model_files():
        if writer:
            save_model(to_save, out_dir, input_shape, classes, history.mean, history.std, name=model_name,
                       extra=model_extra)

    def write_checkpoint(epoch_done: int):
        arrays = {f"model/{k}": v for k, v in model.state_dict().items()}
        state = opt.state_dict()
        arrays.update({f"optim/{i}.{k}": v for i, bufs in state["state"].items() for k, v in bufs.items()})
        if best_state is not None:
            arrays.update({f"best/{k}": v for k, v in best_state.items()})
        meta = {"format": "cnnlab-checkpoint", "epoch": epoch_done, "config": config,
                "optimizer": {"param_groups": state["param_groups"]},
                "scheduler": None if scheduler is None else scheduler.state_dict(),
                "rng": _random.get_state(),
                "loader": loader.state_dict() if hasattr(loader, "state_dict") else None,
                "history": history.state(), "wait": wait}
        save_bundle(out_dir / CHECKPOINT, arrays, meta)
        atomic_write_bytes(out_dir / HISTORY_CSV, history.to_csv().encode("utf-8"))

    def diverged_tail(epochs_done: int) -> str:
        kept = (f"the last finite checkpoint (epoch {epochs_done}) stays in {out_dir}"
                if out_dir is not None and epochs_done > 0 else "no model was saved")
        return f"{kept}; lower the learning rate (--lr) or clip gradients (--clip-grad)"

    # ---- epochs ----
    try:
        for epoch in range(start_epoch, int(epochs)):
            if trainer.stop_training:
                break
            t_epoch = time.perf_counter()
            for cb in callbacks:
                cb.on_epoch_begin(epoch + 1, {})
            lr_at_start = float(opt.lr)
            if hasattr(loader, "set_epoch"):
                loader.set_epoch(epoch)
            model.train()
            progress.start_epoch(epoch + 1, steps_per_epoch)
            loss_sum, correct, seen = 0.0, 0, 0
            t_steps = 0.0
            t_batch = time.perf_counter()
            for b, (x, y) in enumerate(loader):
                n = x.shape[0] if group is None else loader.batch_slice(b)[2]  # the global batch's size
                if n < 2 and skip_single:  # said once before training (_single_image_batches)
                    continue
                if group is not None:
                    group.batch = loader.batch_slice(b)
                logits = model(Tensor(x))
                if b == 0 and epoch == start_epoch:
                    _check_logits(logits, x.shape)
                loss = F.cross_entropy(logits, y, label_smoothing=label_smoothing)
                opt.zero_grad()
                if group is None:
                    loss.backward()
                    value, right = float(loss.item()), int((logits.data.argmax(axis=1) == y).sum())
                else:  # this rank's part of the global batch's gradient, summed over the ranks
                    value, right = _distributed.backward(group, model, loss, logits, y, n)
                if clip_grad is not None:
                    optim.clip_grad_norm_(list(model.parameters()), clip_grad)
                opt.step()
                if per_batch:
                    scheduler.step()
                if not math.isfinite(value):
                    raise TrainingDiverged(f"training diverged: the loss became {value} in epoch {epoch + 1}, "
                                           f"batch {b + 1}; {diverged_tail(epoch)}")
                loss_sum += value * n
                correct += right
                seen += n
                now = time.perf_counter()
                t_steps += now - t_batch
                t_batch = now
                progress.batch(seen, loss_sum / seen, correct / seen)
                if callbacks:
                    logs = {"batch": b + 1, "size": n, "loss": loss_sum / seen, "accuracy": correct / seen}
                    for cb in callbacks:
                        cb.on_batch_end(b + 1, logs)
            if scheduler is not None and not per_batch:
                scheduler.step()
            if group is not None:
                group.batch = None
                if not group.same_on_all_ranks([v for v in model.state_dict().values()]):
                    raise RuntimeError(f"the processes' weights differ after epoch {epoch + 1}: the ranks "
                                       "must run the same cnnlab, NumPy and data")
            diverged = non_finite_state(model)
            if diverged:  # a finite loss can still leave inf weights or batch-norm statistics
                raise TrainingDiverged(
                    f"training diverged in epoch {epoch + 1}: {', '.join(diverged[:5])}"
                    f"{' ...' if len(diverged) > 5 else ''} hold NaN/inf values (mean training loss "
                    f"{loss_sum / max(seen, 1):.4g}); {diverged_tail(epoch)}")
            history.train_images += seen
            history.step_seconds += t_steps
            row = {"epoch": epoch + 1, "train_loss": loss_sum / max(seen, 1),
                   "train_accuracy": correct / max(seen, 1), "val_loss": None, "val_accuracy": None,
                   "lr": lr_at_start}
            if val is not None:
                result = evaluate(model, (val[0], val[1]), mean=val[2], std=val[3])
                row["val_loss"], row["val_accuracy"] = result["loss"], result["accuracy"]
                value = row[monitor]
                if _improved(value, history.best_value, "min" if monitor == "val_loss" else "max", min_delta):
                    history.best_value, history.best_epoch = float(value), epoch + 1
                    best_state = _copy_state(model) if restore_best else None
                    wait = 0
                else:
                    wait += 1
                if patience is not None and wait >= patience:
                    trainer.stop_training = True
                    history.stopped_early = True
            else:
                history.best_epoch = epoch + 1
            row["seconds"] = time.perf_counter() - t_epoch  # training + validation, not file writing
            history.train_seconds += row["seconds"]
            history.append(row)
            for cb in callbacks:
                cb.on_epoch_end(epoch + 1, dict(row))
            progress.end_epoch(row, seen / t_steps if t_steps > 0 else 0.0)
            if writer:  # the model files first: a checkpoint always has the run's model.json beside it
                save_model_files()
                write_checkpoint(epoch + 1)
        if history.stopped_early:
            progress.message(f"early stopping: {monitor} did not improve for {patience} epochs "
                             f"(best {history.best_value:.4f} at epoch {history.best_epoch})")
    finally:
        progress.close()

    if val is not None and restore_best and best_state is not None and history.best_epoch is not None:
        model.load_state_dict(best_state)
    else:
        history.best_epoch = history.epochs or None
    model.eval()
    save_model_files()
    for cb in callbacks:
        cb.on_train_end({"epochs": history.epochs, "best_epoch": history.best_epoch})
    return history


# --- whole runs: data set + model + fit + test + files ------------------------------------------
class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`train`; ``run_dir`` holds the checkpoint to ``--resume`` from."""

    def __init__(self, message: str, run_dir: Path):
        super().__init__(message)
        self.run_dir = run_dir


#: per data set: model, epochs, batch size, optimizer, learning rate, schedule, weight decay
RECIPES = {
    "digits": dict(model="digitsnet", epochs=30, batch_size=32, optimizer="adam", lr=2e-3,
                   schedule="cosine", weight_decay=0.0),
    "mnist": dict(model="lenet5", epochs=5, batch_size=64, optimizer="adam", lr=2e-3,
                  schedule="cosine", weight_decay=0.0),
    "fashion-mnist": dict(model="smallnet", epochs=12, batch_size=128, optimizer="adam", lr=3e-3,
                          schedule="onecycle", weight_decay=0.0),
    "cifar10": dict(model="smallnet", epochs=20, batch_size=128, optimizer="adam", lr=3e-3,
                    schedule="onecycle", weight_decay=0.0),
    "folder": dict(model=None, epochs=20, batch_size=32, optimizer="adam", lr=1e-3,
                   schedule="cosine", weight_decay=0.0),
}
_DATASET_NAMES = {"digits": "digits", "sklearn-digits": "digits", "mnist": "mnist",
                  "fashion-mnist": "fashion-mnist", "fashion_mnist": "fashion-mnist",
                  "fashionmnist": "fashion-mnist", "cifar10": "cifar10", "cifar-10": "cifar10",
                  "cifar_10": "cifar10"}


def dataset_key(dataset: str) -> str:
    """Canonical name of a built-in data set, or ``"folder"`` for a path."""
    return _DATASET_NAMES.get(str(dataset).strip().lower(), "folder")


def _dataset_label(dataset: str) -> str:
    key = dataset_key(dataset)
    if key != "folder":
        return key
    name = Path(str(dataset)).expanduser().resolve().name
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name) or "images"


def _limit(data, limit: Optional[int], seed: int, name: str):
    if limit is None or len(data) <= limit:
        return data
    index = np.sort(np.random.default_rng([seed, 7]).permutation(len(data))[:limit])
    return data.subset(index, name=name)


def _check_folder_split(dataset, train, test) -> None:
    """Refuse, before training, an image folder whose classes cannot give both a train and a test image."""
    counts = np.bincount(train.labels, minlength=len(train.classes)) + \
        np.bincount(test.labels, minlength=len(train.classes))
    few = [f"{name!r} has {int(n)}" for name, n in zip(train.classes, counts) if n < 2]
    if few:
        raise ValueError(f"image folder {dataset}: too few images per class ({'; '.join(few[:5])}"
                         f"{' ...' if len(few) > 5 else ''}); the run's train/test split (20% of each class "
                         "held out for testing) needs at least 2 images per class, one to train on and one to "
                         "test, and 3 or more to also hold one out for validation (--val-fraction)")


def load_run_data(dataset: str = "digits", data_dir=None, val_fraction: float = 0.1, seed: int = 0,
                  limit: Optional[int] = None, download: bool = True, progress: bool = True, size=None,
                  channels: Optional[int] = None):
    """``(train, val, test)`` ArrayDatasets of a data set, all normalised with the train part's stats.

    The test part is the data set's own (MNIST, Fashion-MNIST, CIFAR-10) or a fixed
    stratified 20% (digits, image folders; split seed 0, the same for every run).
    ``val`` is a stratified ``val_fraction`` of the training part (split by ``seed``), or
    ``None`` when ``val_fraction`` is 0.  ``limit`` keeps at most that many images of each part
    (a seeded random subset, for quick trials).  ``size`` ``(H, W)`` and ``channels`` set the
    images of an image folder (default: its most common size; grayscale if every image is).
    """
    from .data import get_dataset, stratified_split
    if not 0.0 <= float(val_fraction) < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if limit is not None and limit < 2:
        raise ValueError(f"limit must be at least 2, got {limit}")
    train, test = get_dataset(dataset, data_dir=data_dir, download=download, val_fraction=0.2, seed=0,
                              progress=progress, size=size, channels=channels)
    if dataset_key(dataset) == "folder":
        _check_folder_split(dataset, train, test)
    train = _limit(train, limit, seed, train.name)
    test = _limit(test, limit, seed, test.name)
    val = None
    if val_fraction > 0:
        tr_idx, va_idx = stratified_split(train.labels, val_fraction, seed)
        if len(va_idx):
            val = train.subset(va_idx, name=f"{train.name}-val")
            train = train.subset(tr_idx, name=train.name)
    train.with_stats()
    for part in (val, test):
        if part is not None:
            part.mean, part.std = train.mean, train.std
    return train, val, test


def _check_same_data(run_dir: Path, config: dict, fingerprint: str) -> None:
    """Refuse to resume a run on other data than it started with (runs before the fingerprint pass)."""
    recorded = config.get("data_fingerprint")
    if recorded is not None and recorded != fingerprint:
        raise ValueError(f"cannot resume {run_dir}: the data of {config['dataset']} changed since the run "
                         "started (images added, removed, edited or relabelled), so its train/validation/test "
                         "split would be redrawn and training images could land in the test set; restore the "
                         "data, or start a new run")


def _model_of_run(run_dir: Path, shape, num_classes: int):
    """The architecture a run trains, rebuilt from its own ``model.json`` (never the model file or zoo
    code it started from, which may have changed since): ``(model, model_info)``."""
    from .io import _read_model_json
    from .models import build_model
    info = _read_model_json(run_dir)
    where = str(run_dir / MODEL_JSON)
    net = build_model(info["architecture"], shape, where)
    out = net.output_shape((1, *shape))
    if len(out) != 2 or out[1] != num_classes:
        raise ValueError(f"cannot resume {run_dir}: the model in {where} gives {tuple(out[1:])} scores per "
                         f"image, but the data have {num_classes} classes")
    model_info = info.get("model_info") if isinstance(info.get("model_info"), dict) else {}
    return net, {**model_info, "name": str(model_info.get("name") or info.get("name") or "model")}


def _finished_run(run_dir: Path, config: dict, epochs: Optional[int], say: Callable) -> Optional[dict]:
    """The saved metrics of a run that has nothing left to train, else None.

    Finished: its ``metrics.json`` counts at least the epochs asked for (``epochs``, else the total
    in ``config.json``, which a resume with more epochs raises before it is interrupted), or it
    stopped early and no new total is given.
    """
    path = run_dir / METRICS_JSON
    metrics = read_json(path, "run metrics") if path.is_file() else None
    if not isinstance(metrics, dict) or not isinstance(metrics.get("epochs"), int):
        return None
    done = metrics["epochs"]
    target = int(epochs) if epochs is not None else config.get("epochs")
    if not (isinstance(target, int) and done >= target) and not (metrics.get("stopped_early") and epochs is None):
        return None
    how = f"stopped early after {done} epochs" if metrics.get("stopped_early") else f"{done} of {done} epochs"
    say(f"{run_dir} is complete ({how}); nothing to resume. To train it longer, give a larger total: "
        f"cnnlab train --resume {run_dir} --epochs {done + max(1, done // 2)}")
    return metrics


def _epochs_in_history(run_dir: Path) -> int:
    """Epochs a run has finished, from its ``history.csv`` (0 without one)."""
    path = run_dir / HISTORY_CSV
    if not path.is_file():
        return 0
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        return max(0, sum(1 for line in f if line.strip()) - 1)


def _forget_unstarted_run(run_dir: Path) -> None:
    """A new run that ended before its first checkpoint leaves no half run directory behind."""
    if not (run_dir / CHECKPOINT).exists():
        with contextlib.suppress(OSError):
            (run_dir / CONFIG_JSON).unlink()


def _new_run_dir(label: str, model: str, root="runs") -> Path:
    """A fresh ``root/<label>-<model>-<time>[-k]`` folder, created here: two runs started in the same
    second claim different folders (``mkdir`` fails for the second)."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    from ._files import safe_name  # a model file's "name" is data: never a path
    base = Path(root) / f"{safe_name(label, 'data')}-{safe_name(Path(model).stem if Path(model).suffix else model)}-{stamp}"
    Path(root).mkdir(parents=True, exist_ok=True)
    path, k = base, 1
    while True:
        try:
            path.mkdir()
            return path
        except FileExistsError:
            k += 1
            path = base.with_name(f"{base.name}-{k}")


def train(dataset: str = "digits", model: Optional[str] = None, data_dir=None, epochs: Optional[int] = None,
          batch_size: Optional[int] = None, lr: Optional[float] = None, optimizer: Optional[str] = None,
          schedule: Optional[str] = None, weight_decay: Optional[float] = None, label_smoothing: float = 0.0,
          patience: Optional[int] = None, clip_grad: Optional[float] = None, augment: Optional[bool] = None,
          val_fraction: float = 0.1, seed: int = 0, out_dir=None, resume=None, limit: Optional[int] = None,
          verbose="auto", download: bool = True, runs_root="runs", log: Optional[Callable] = None,
          threads="auto", new_head: bool = False, freeze: bool = False) -> dict:
    """A whole training run, as ``cnnlab train`` does it; returns the ``metrics.json`` content.

    Loads the data (:func:`load_run_data`), builds the model (a zoo name or model file; by
    default the one that suits the data), trains it with :func:`fit` (the data set's recipe
    in :data:`RECIPES` fills every setting left ``None``), evaluates it on the test part and
    writes the run directory ``out_dir`` (default ``runs/<dataset>-<model>-<timestamp>``).

    ``model`` may be an ONNX file (``.onnx``): its layers are fine-tuned (:mod:`cnnlab.finetune`);
    ``new_head=True`` replaces its classifier for the data's classes, ``freeze=True`` trains
    the classifier alone.

    ``resume=RUN_DIR`` continues an interrupted run with the settings in its ``config.json``
    (``epochs`` may be raised to train longer).  ``threads`` limits the BLAS threads
    (``"auto"``: one for images up to 16x16, see :mod:`cnnlab.threads`; ``None``: no limit).

    Inside a :func:`cnnlab.distributed.session` of several ranks (``mpiexec -n N cnnlab
    train``) the run is data-parallel: ``batch_size`` stays the global batch, rank 0 alone
    logs and writes the run directory, and ``"auto"`` threads means 1 per rank.

    Resuming a finished run returns its saved metrics and says how to continue it.

    The run directory is locked for the whole run (:mod:`cnnlab._runlock`): another process
    training into it gets ``RunLocked`` (a RuntimeError naming the holder).  A run whose loss,
    weights or batch-norm statistics become NaN/inf stops with :class:`TrainingDiverged`,
    keeping the last finite epoch's files.
    """
    args = dict(locals())
    with contextlib.ExitStack() as locks:  # the run directory stays locked for the whole run
        return _train(locks, **args)


def _train(locks: contextlib.ExitStack, dataset: str = "digits", model: Optional[str] = None, data_dir=None,
           epochs: Optional[int] = None, batch_size: Optional[int] = None, lr: Optional[float] = None,
           optimizer: Optional[str] = None, schedule: Optional[str] = None, weight_decay: Optional[float] = None,
           label_smoothing: float = 0.0, patience: Optional[int] = None, clip_grad: Optional[float] = None,
           augment: Optional[bool] = None, val_fraction: float = 0.1, seed: int = 0, out_dir=None, resume=None,
           limit: Optional[int] = None, verbose="auto", download: bool = True, runs_root="runs",
           log: Optional[Callable] = None, threads="auto", new_head: bool = False, freeze: bool = False) -> dict:
    """:func:`train`'s work; ``locks`` holds the run directory's lock until :func:`train` returns."""
    from . import __version__
    from .data import data_fingerprint
    from .models import create_model, default_model_name

    group = _distributed.current_group()
    if group is not None and not group.is_root:  # rank 0 alone speaks
        log, verbose = None, 0
    say = log or (lambda text: None)
    if resume is not None:
        run_dir = Path(resume)
        if not (run_dir / CONFIG_JSON).is_file():
            if not run_dir.exists():
                raise FileNotFoundError(f"cannot resume: run directory {run_dir} does not exist")
            raise ValueError(f"cannot resume: {run_dir} is not a cnnlab run directory (no {CONFIG_JSON})")
        if _distributed.is_root():
            locks.enter_context(run_lock(run_dir))
        config = _schema.check_config(read_json(run_dir / CONFIG_JSON, "run configuration"),
                                      run_dir / CONFIG_JSON, resume=True)
        finished = _finished_run(run_dir, config, epochs, say)
        if finished is not None:
            return finished
        if not (run_dir / CHECKPOINT).is_file():  # before any change to the run's files
            raise FileNotFoundError(f"cannot resume: {run_dir} has no {CHECKPOINT}, so its first epoch never "
                                    "finished; start the run again (cnnlab train --out DIR with its settings)")
        trained = _epochs_in_history(run_dir)
        if epochs is not None and int(epochs) < trained:
            raise ValueError(f"cannot resume {run_dir} to {int(epochs)} epochs: it has trained {trained} already; "
                             f"give --epochs {trained + 1} or more, or leave --epochs out to finish its "
                             f"{config.get('epochs')}")
        if epochs is not None and int(epochs) != config.get("epochs"):
            config["epochs"] = int(epochs)
            if _distributed.is_root():
                write_json(run_dir / CONFIG_JSON, config)  # a later --resume continues to the new total
        if out_dir is not None and Path(out_dir).resolve() != run_dir.resolve():
            raise ValueError("--out and --resume name different directories; a resumed run stays in its own "
                             f"directory ({run_dir})")
        if data_dir is not None:
            config["data_dir"] = str(data_dir)
    else:
        key = dataset_key(dataset)
        recipe = RECIPES[key]
        if key == "folder" and Path(str(dataset)).expanduser().exists():
            dataset = str(Path(str(dataset)).expanduser().resolve())  # evaluate works from any folder
        config = {
            "dataset": str(dataset),
            "data_dir": None if data_dir is None else str(Path(data_dir).expanduser().resolve()),
            "model": model, "epochs": epochs or recipe["epochs"],
            "batch_size": batch_size or recipe["batch_size"],
            "optimizer": optimizer or recipe["optimizer"], "lr": lr if lr is not None else recipe["lr"],
            "schedule": schedule or recipe["schedule"],
            "weight_decay": weight_decay if weight_decay is not None else recipe["weight_decay"],
            "label_smoothing": label_smoothing, "patience": patience, "clip_grad": clip_grad,
            "augment": True if augment is None else bool(augment), "val_fraction": val_fraction,
            "seed": int(seed), "limit": limit,
        }
        if new_head or freeze:  # fine-tuning an ONNX model (cnnlab.finetune)
            config.update(new_head=bool(new_head), freeze=bool(freeze))
        run_dir = None if out_dir is None else Path(out_dir)
        if (new_head or freeze) and not is_onnx_file(model or ""):
            raise ValueError(f"--new-head and --freeze fine-tune an ONNX model (--model MODEL.onnx), got "
                             f"{'no --model' if model is None else repr(str(model))}")
        if model is not None:  # a misspelt model should fail before the data load
            from .models import MODELS, is_model_file
            if is_onnx_file(model) and not Path(str(model)).is_file():
                raise FileNotFoundError(f"model file {model} does not exist")
            if str(model).lower() not in MODELS and not Path(str(model)).is_file():
                if is_model_file(str(model)):
                    raise FileNotFoundError(f"model file {model} does not exist")
                create_model(str(model), (1, 8, 8), 10)  # raises the "unknown model" error
        if run_dir is not None and _distributed.is_root():  # rank 0 alone writes, so it alone locks
            locks.enter_context(run_lock(run_dir))
        if run_dir is not None and (run_dir / CHECKPOINT).exists():
            raise ValueError(f"{run_dir} already holds a training run; choose another --out, or continue "
                             f"it with --resume {run_dir}")

    t_load = time.perf_counter()
    onnx_shape = onnx_input_shape(config["model"]) if is_onnx_file(config["model"] or "") else None
    train_set, val_set, test_set = load_run_data(config["dataset"], config["data_dir"],
                                                 config["val_fraction"], config["seed"], config["limit"],
                                                 download=download, progress=verbose != 0,
                                                 size=None if onnx_shape is None else onnx_shape[1:],
                                                 channels=None if onnx_shape is None else onnx_shape[0])
    load_seconds = time.perf_counter() - t_load
    fingerprint = data_fingerprint(train_set, val_set, test_set)
    if resume is not None:
        _check_same_data(run_dir, config, fingerprint)
    else:
        config["data_fingerprint"] = fingerprint
    shape = train_set.input_shape
    model_name = config["model"] or RECIPES[dataset_key(config["dataset"])]["model"] \
        or default_model_name(config["dataset"], shape)
    config["model"] = model_name
    _random.manual_seed(config["seed"])  # the weights' initialisation
    if resume is not None and (run_dir / MODEL_JSON).is_file():  # the run's own architecture
        net, model_info = _model_of_run(run_dir, shape, train_set.num_classes)
        if config.get("freeze"):  # a fine-tuned run keeps training its head alone
            from .finetune import find_head, freeze
            freeze(net, keep=[find_head(net).module])
    elif is_onnx_file(model_name):  # fine-tuning a model from elsewhere
        net, model_info = pretrained_model(model_name, shape, train_set.num_classes,
                                           config.get("new_head", False), config.get("freeze", False))
    else:
        net, model_info = create_model(model_name, shape, train_set.num_classes)
    label = _dataset_label(config["dataset"])
    if run_dir is None:
        run_dir = _new_run_dir(label, model_info["name"], runs_root) if _distributed.is_root() else None
        if group is not None:  # the name holds a time stamp: rank 0's
            run_dir = group.bcast(run_dir)
        if _distributed.is_root():
            locks.enter_context(run_lock(run_dir, remove_if_empty=True))
    if resume is None and _distributed.is_root():
        run_dir.mkdir(parents=True, exist_ok=True)
        config["cnnlab_version"] = __version__
        write_json(run_dir / CONFIG_JSON, config)
        locks.callback(_forget_unstarted_run, run_dir)
    say(f"{label}: {len(train_set)} train, {0 if val_set is None else len(val_set)} validation, "
        f"{len(test_set)} test images {'x'.join(map(str, shape))}, {train_set.num_classes} classes; "
        f"model {model_info['name']} ({net.num_parameters():,} parameters); run directory {run_dir}")

    aug = default_augmentation(dataset_key(config["dataset"]), shape) if config["augment"] else None
    from .data.inputs import data_stats  # what predict compares new images with
    from .threads import auto_threads, blas_threads
    try:
        if threads == "auto":  # under MPI one rank per core, each with one BLAS thread
            threads = 1 if group is not None else auto_threads(shape)
        with blas_threads(threads):
            history = fit(net, train_set, val_set, epochs=config["epochs"], batch_size=config["batch_size"],
                          optimizer=config["optimizer"], lr=config["lr"], weight_decay=config["weight_decay"],
                          schedule=config["schedule"], patience=config["patience"], clip_grad=config["clip_grad"],
                          label_smoothing=config["label_smoothing"], augment=aug, seed=config["seed"],
                          out_dir=run_dir, resume=resume is not None, verbose=verbose, input_shape=shape,
                          classes=train_set.classes, model_name=model_info["name"],
                          model_extra={"dataset": label, "model_info": model_info,
                                       "data_stats": data_stats(train_set.images)})
    except KeyboardInterrupt:
        if not (run_dir / CHECKPOINT).is_file() and resume is None:
            raise TrainingInterrupted("no epoch finished, so nothing was kept; start the run again",
                                      run_dir) from None
        done = (f"the checkpoint of the last finished epoch is in {run_dir}"
                if (run_dir / CHECKPOINT).is_file() else f"no epoch finished in {run_dir}")
        raise TrainingInterrupted(f"{done}; continue with: cnnlab train --resume {run_dir}",
                                  run_dir) from None
    t_test = time.perf_counter()
    result = evaluate(net, test_set)
    metrics = {
        "test_accuracy": result["accuracy"], "test_loss": result["loss"],
        "test_correct": result["correct"], "test_size": result["total"],
        "epochs": history.epochs, "best_epoch": history.best_epoch, "stopped_early": history.stopped_early,
        "train_seconds": round(history.train_seconds, 3),
        "images_per_second": round(history.images_per_second, 1),
        "test_seconds": round(time.perf_counter() - t_test, 3), "load_seconds": round(load_seconds, 3),
        "model": model_info["name"], "dataset": label, "num_parameters": net.num_parameters(),
        "train_size": len(train_set), "val_size": 0 if val_set is None else len(val_set),
        "seed": config["seed"], "batch_size": config["batch_size"], "optimizer": config["optimizer"],
        "lr": config["lr"], "schedule": config["schedule"], "augment": config["augment"],
        "final_train_loss": history.history["train_loss"][-1] if history.epochs else None,
        "final_train_accuracy": history.history["train_accuracy"][-1] if history.epochs else None,
        "best_val_accuracy": max((v for v in history.history["val_accuracy"] if v is not None), default=None),
        "cnnlab_version": __version__, "run_dir": str(run_dir),
        "finished": datetime.now().isoformat(timespec="seconds"),
        "processes": 1 if group is None else group.size,
    }
    if _distributed.is_root():
        write_json(run_dir / METRICS_JSON, metrics)
    return metrics
