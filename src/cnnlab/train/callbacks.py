"""What happens around the training steps, as callbacks: history, progress, early stopping, the
divergence guard, the same weights on every rank, and the run folder's checkpoints.

:func:`~cnnlab.train.fit` calls every callback at the same events, in this order (Keras' names,
plus PyTorch Lightning's ``on_train_epoch_end``)::

    on_train_begin(logs)
      on_epoch_begin(epoch, logs)
        on_batch_end(batch, logs)          after each optimizer step
      on_train_epoch_end(epoch, logs)      the epoch's training batches are done; before validation
      on_epoch_end(epoch, logs)            after validation, with the epoch's history row
    on_train_end(logs)

The built-in pieces below are callbacks like a user's: ``fit`` puts the divergence guard and early
stopping before the user's callbacks, and the progress output and the run folder after them.
"""
from __future__ import annotations

import csv
import io as _io
import math
import sys
import time
from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple

import numpy as np

from .. import nn
from .._schema import HISTORY_COLUMNS

__all__ = ["Callback", "LambdaCallback", "History", "TrainingDiverged", "ProgressBar", "EarlyStopping",
           "DivergenceGuard", "SameWeightsOnRanks", "non_finite_state"]


class Callback:
    """Hooks called by :func:`fit` (Keras's names).  ``self.trainer`` is set before training.

    ``self.trainer`` has ``model``, ``optimizer``, ``scheduler``, ``history``, ``epochs``
    and ``stop_training`` (set it to ``True`` to stop after the current epoch).
    ``logs`` is a dict: per batch ``{"batch", "size", "loss", "accuracy", "batch_loss"}``
    (running means over the epoch so far, and the last batch's own loss); per epoch a history row.
    """

    trainer = None

    def set_trainer(self, trainer) -> None:
        self.trainer = trainer

    def on_train_begin(self, logs: dict) -> None: ...

    def on_train_end(self, logs: dict) -> None: ...

    def on_epoch_begin(self, epoch: int, logs: dict) -> None: ...

    def on_train_epoch_end(self, epoch: int, logs: dict) -> None: ...

    def on_epoch_end(self, epoch: int, logs: dict) -> None: ...

    def on_batch_end(self, batch: int, logs: dict) -> None: ...


class LambdaCallback(Callback):
    """A callback from plain functions, e.g. ``LambdaCallback(on_epoch_end=lambda e, logs: ...)``."""

    def __init__(self, on_train_begin=None, on_train_end=None, on_epoch_begin=None, on_epoch_end=None,
                 on_batch_end=None, on_train_epoch_end=None):
        for name, fn in (("on_train_begin", on_train_begin), ("on_train_end", on_train_end),
                         ("on_epoch_begin", on_epoch_begin), ("on_epoch_end", on_epoch_end),
                         ("on_batch_end", on_batch_end), ("on_train_epoch_end", on_train_epoch_end)):
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


class TrainingDiverged(FloatingPointError):
    """The loss, a weight or a batch-norm statistic became NaN/inf; the last finite epoch's files stay."""


def non_finite_state(model: nn.Module) -> list:
    """Names of the parameters and buffers (``state_dict`` keys) holding NaN or inf."""
    return [k for k, v in model.state_dict().items()
            if np.asarray(v).dtype.kind in "fc" and not np.isfinite(v).all()]


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


class ProgressBar(Callback):
    """A tqdm bar per epoch on a terminal; one plain line per epoch otherwise (also on a terminal
    that reports no width, where a bar would print nothing).  ``verbose``: ``"auto"``, 0, 1 (bar), 2."""

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
        self.batches = 0

    # the callback events
    def on_epoch_begin(self, epoch: int, logs: dict) -> None:
        self.start_epoch(epoch, self.batches)

    def on_batch_end(self, batch: int, logs: dict) -> None:
        self.batch(logs["seen"], logs["loss"], logs["accuracy"])

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        self.end_epoch(logs, self.trainer.images_per_second if self.trainer is not None else 0.0)

    # the output itself
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


# --- early stopping and the best epoch ------------------------------------------------------------
def _improved(value: float, best: Optional[float], mode: str, min_delta: float) -> bool:
    if best is None or (isinstance(best, float) and math.isnan(best)):
        return True
    return value < best - min_delta if mode == "min" else value > best + min_delta


def _copy_state(model: nn.Module) -> Dict[str, np.ndarray]:
    return {k: np.array(v, copy=True) for k, v in model.state_dict().items()}


class EarlyStopping(Callback):
    """Track the best epoch by ``monitor`` (validation only) and stop after ``patience`` epochs
    without improvement; with ``restore_best``, end holding the best epoch's weights.

    Without validation data every epoch is the best one (the last weights are kept).  Its state
    (the best weights and the epochs waited) is part of the run's checkpoint.
    """

    def __init__(self, monitor: str = "val_loss", patience: Optional[int] = None, min_delta: float = 0.0,
                 restore_best: bool = True, validating: bool = True):
        self.monitor, self.patience, self.min_delta = monitor, patience, min_delta
        self.restore_best, self.validating = restore_best, validating
        self.best_state: Optional[Dict[str, np.ndarray]] = None
        self.wait = 0

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        history = self.trainer.history
        if not self.validating:
            history.best_epoch = epoch
            return
        value = logs[self.monitor]
        if _improved(value, history.best_value, "min" if self.monitor == "val_loss" else "max", self.min_delta):
            history.best_value, history.best_epoch = float(value), epoch
            self.best_state = _copy_state(self.trainer.model) if self.restore_best else None
            self.wait = 0
        else:
            self.wait += 1
        if self.patience is not None and self.wait >= self.patience:
            self.trainer.stop_training = True
            history.stopped_early = True

    def on_train_end(self, logs: dict) -> None:
        history = self.trainer.history
        if self.validating and self.restore_best and self.best_state is not None and history.best_epoch is not None:
            self.trainer.model.load_state_dict(self.best_state)
        else:
            history.best_epoch = history.epochs or None


# --- the divergence guard and the ranks' agreement ---------------------------------------------------
class DivergenceGuard(Callback):
    """Stop with :class:`TrainingDiverged` when a batch's loss is NaN/inf, or when weights or
    batch-norm statistics are after an epoch (a finite loss can still leave inf weights)."""

    def __init__(self, out_dir=None):
        self.out_dir = out_dir

    def _tail(self, epochs_done: int) -> str:
        kept = (f"the last finite checkpoint (epoch {epochs_done}) stays in {self.out_dir}"
                if self.out_dir is not None and epochs_done > 0 else "no model was saved")
        return f"{kept}; lower the learning rate (--lr) or clip gradients (--clip-grad)"

    def on_batch_end(self, batch: int, logs: dict) -> None:
        value = logs["batch_loss"]
        if not math.isfinite(value):
            epoch = logs["epoch"]
            raise TrainingDiverged(f"training diverged: the loss became {value} in epoch {epoch}, "
                                   f"batch {batch}; {self._tail(epoch - 1)}")

    def on_train_epoch_end(self, epoch: int, logs: dict) -> None:
        diverged = non_finite_state(self.trainer.model)
        if diverged:
            raise TrainingDiverged(
                f"training diverged in epoch {epoch}: {', '.join(diverged[:5])}"
                f"{' ...' if len(diverged) > 5 else ''} hold NaN/inf values (mean training loss "
                f"{logs['train_loss']:.4g}); {self._tail(epoch - 1)}")


class SameWeightsOnRanks(Callback):
    """Under MPI: after every epoch the ranks must hold the same weights (same cnnlab, NumPy, data)."""

    def __init__(self, group):
        self.group = group

    def on_train_epoch_end(self, epoch: int, logs: dict) -> None:
        if not self.group.same_on_all_ranks([v for v in self.trainer.model.state_dict().values()]):
            raise RuntimeError(f"the processes' weights differ after epoch {epoch}: the ranks "
                               "must run the same cnnlab, NumPy and data")
