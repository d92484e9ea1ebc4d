"""``fit``: the training loop, a screen long; what happens around the steps is in callbacks.

The loop itself only does what every step needs: forward, loss, backward (the gradient summed over
the ranks under MPI), gradient clipping, the optimizer and the schedule.  Validation fills the
epoch's history row.  Everything else (progress output, early stopping, the divergence guard, the
ranks' agreement, the run folder's checkpoints) is a :class:`~cnnlab.train.Callback` that sees the
same events as a user's (:mod:`cnnlab.train.callbacks`).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Tuple, Union

import numpy as np

from .. import distributed as _distributed
from .. import functional as F
from .. import nn, optim
from .. import random as _random
from ..tensor import Tensor, no_grad
from .callbacks import (Callback, DivergenceGuard, EarlyStopping, History, ProgressBar, SameWeightsOnRanks)
from .checkpoint import RunFolder, locks_its_run_directory
from .evaluation import _check_logits, _normalizer, _split_data, evaluate

__all__ = ["fit", "make_optimizer", "make_scheduler", "default_augmentation", "OPTIMIZERS", "SCHEDULES"]

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "cosine", "step", "onecycle")


# --- optimisers, schedules, augmentation ---------------------------------------------------------
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


def default_augmentation(dataset: str, input_shape: Sequence[int]):
    """The training augmentation cnnlab uses for a data set (a ``transform(batch, rng)``).

    - digits (8x8) and MNIST (handwriting): small shifts (1 px on 8x8, 2 px on 28x28)
      and rotations up to 10 degrees, no flips (a mirrored 2 is not a 2);
    - everything else (clothes, objects, your folders): horizontal flips and a random crop
      with padding 1/12 of the size (2 px on 28x28 and 32x32).  A 3 px padding on
      Fashion-MNIST under-fitted smallnet in 10 epochs (92.2% test, train accuracy 93.0%).
    """
    from ..data.transforms import Compose, RandomCrop, RandomHorizontalFlip, RandomRotation, RandomShift
    c, h, w = (int(s) for s in input_shape)
    name = str(dataset).lower()
    if name in ("digits", "mnist"):
        return Compose([RandomShift(1 if min(h, w) < 16 else 2), RandomRotation(10)])
    pad = max(1, min(h, w) // 12)
    return Compose([RandomCrop((h, w), padding=pad), RandomHorizontalFlip()])


# --- checks before training --------------------------------------------------------------------------
def _check_arguments(epochs, batch_size, label_smoothing, clip_grad, monitor, patience, augment) -> None:
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


# --- the data a fit trains on ---------------------------------------------------------------------
@dataclass
class _FitData:
    loader: object
    images: np.ndarray
    input_shape: tuple
    classes: Optional[list]
    mean: Optional[tuple]
    std: Optional[tuple]
    val: Optional[tuple]          # (images, labels, mean, std)


def _prepare_data(train_data, val_data, batch_size, augment, seed, group, input_shape, classes) -> _FitData:
    """The training loader (seeded, sharded over the ranks, normalising) and the validation data."""
    from ..data import ArrayDataset, DataLoader, compute_mean_std
    from ..data.transforms import Compose
    if isinstance(train_data, DataLoader):
        if group is not None:
            raise TypeError("data-parallel fit takes an ArrayDataset or (images, labels), not a DataLoader "
                            "(it makes a sharded loader itself)")
        loader, images, mean, std = train_data, train_data.images, None, None
        if classes is None and isinstance(loader.dataset, ArrayDataset):
            classes = list(loader.dataset.classes)
    else:
        images, labels, mean, std, data_classes = _split_data(train_data, "train_data")
        if images.shape[0] < 2:
            raise ValueError(f"train_data must hold at least 2 images, got {images.shape[0]}")
        if isinstance(train_data, ArrayDataset) and (mean is None or std is None):
            mean, std = compute_mean_std(images)
            train_data.mean, train_data.std = mean, std
        classes = classes if classes is not None else data_classes
        steps = [step for step in (augment, _normalizer(mean, std)) if step is not None]
        loader = DataLoader((images, labels), batch_size=int(batch_size), shuffle=True,
                            transform=Compose(steps) if steps else None, seed=seed,
                            shard=None if group is None else (group.rank, group.size))
    input_shape = tuple(int(s) for s in images.shape[1:]) if input_shape is None else tuple(input_shape)
    return _FitData(loader, images, input_shape, classes, mean, std,
                    _validation_data(val_data, images, mean, std))


def _validation_data(val_data, train_images, mean, std) -> Optional[tuple]:
    if val_data is None:
        return None
    v_images, v_labels, _, _, _ = _split_data(val_data, "val_data")
    if v_images.shape[1:] != train_images.shape[1:]:
        raise ValueError(f"val_data images have shape {v_images.shape[1:]}, train_data images "
                         f"{train_images.shape[1:]}")
    if v_images.shape[0] == 0:
        return None
    return v_images, v_labels, mean, std  # validated as trained: the training normalisation


def _model_to_save(model, input_shape, out_dir, classes):
    """What the run folder will describe, checked now rather than after hours of training: the number
    of scores must match the classes, and a user's own Module must trace into a graph."""
    try:
        out_shape = model.output_shape((1, *input_shape))
    except ValueError as exc:
        raise ValueError(f"the model does not fit the data ({'x'.join(map(str, input_shape))} images): "
                         f"{exc}") from None
    if classes is not None and len(classes) != int(out_shape[-1]):
        raise ValueError(f"the model gives {int(out_shape[-1])} scores per image but the data have "
                         f"{len(classes)} classes")
    if out_dir is None or isinstance(model, nn.Graph) or type(model) is nn.Sequential:
        return model
    try:
        return nn.as_graph(model, input_shape)
    except ValueError as exc:
        raise ValueError(f"the model cannot be saved to {out_dir}: {exc}") from None


def _carry_training_preprocessing(model, to_save, history) -> None:
    """The trained model carries the normalisation it was trained with (see :mod:`cnnlab.preprocessing`)."""
    from ..preprocessing import Preprocessing, attach
    pre = Preprocessing(history.mean, history.std)
    attach(model, pre)
    attach(to_save, pre)


def _with_dataset_name(model_extra: Optional[dict], train_data) -> Optional[dict]:
    """``model_extra`` plus ``"dataset"`` when the training data is a built-in data set (``"digits-train"``
    -> ``"digits"``), so ``cnnlab evaluate``/``report`` of the folder need no ``--dataset``."""
    from ..data import ArrayDataset
    from ..data.registry import dataset_key
    if (model_extra or {}).get("dataset") or not isinstance(train_data, ArrayDataset):
        return model_extra
    name = str(train_data.name or "").lower()
    for suffix in ("-train", "-test", "-val"):
        name = name[:-len(suffix)] if name.endswith(suffix) else name
    if not name or dataset_key(name) == "folder":
        return model_extra
    return {**(model_extra or {}), "dataset": dataset_key(name)}


# --- the loop ------------------------------------------------------------------------------------
class _Trainer:
    """The state callbacks see (``self.trainer`` inside a :class:`Callback`)."""

    def __init__(self, model, optimizer, scheduler, history, epochs):
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.history, self.epochs = history, epochs
        self.stop_training = False
        self.images_per_second = 0.0


def _call(callbacks, event: str, *args) -> None:
    for cb in callbacks:
        getattr(cb, event)(*args)


def _train_epoch(trainer, loader, epoch: int, first_epoch: bool, step, callbacks, skip_single: bool,
                 per_batch: bool, group) -> dict:
    """One pass over ``loader``; returns the epoch's training figures."""
    model, scheduler = trainer.model, trainer.scheduler
    loss_sum, correct, seen, t_steps = 0.0, 0, 0, 0.0
    t_batch = time.perf_counter()
    for b, (x, y) in enumerate(loader):
        n = x.shape[0] if group is None else loader.batch_slice(b)[2]  # the global batch's size
        if n < 2 and skip_single:  # said once before training (_single_image_batches)
            continue
        if group is not None:
            group.batch = loader.batch_slice(b)
        logits = model(Tensor(x))
        if b == 0 and first_epoch:
            _check_logits(logits, x.shape)
        value, right = step(logits, y, n)
        if per_batch:
            scheduler.step()
        loss_sum, correct, seen = loss_sum + value * n, correct + right, seen + n
        now = time.perf_counter()
        t_steps, t_batch = t_steps + now - t_batch, now
        _call(callbacks, "on_batch_end", b + 1, {"batch": b + 1, "size": n, "loss": loss_sum / seen,
                                                 "accuracy": correct / seen, "batch_loss": value,
                                                 "seen": seen, "epoch": epoch + 1})
    if group is not None:
        group.batch = None
    return {"loss_sum": loss_sum, "correct": correct, "seen": seen, "step_seconds": t_steps}


def _make_step(model, opt, label_smoothing: float, clip_grad, group):
    """One optimizer step on a batch's logits: ``step(logits, labels, n) -> (loss, correct)``."""
    def step(logits, y, n):
        loss = F.cross_entropy(logits, y, label_smoothing=label_smoothing)
        opt.zero_grad()
        if group is None:
            loss.backward()
            value, right = float(loss.item()), int((logits._data.argmax(axis=1) == y).sum())
        else:  # this rank's part of the global batch's gradient, summed over the ranks
            value, right = _distributed.backward(group, model, loss, logits, y, n)
        if clip_grad is not None:
            optim.clip_grad_norm_(list(model.parameters()), clip_grad)
        opt.step()
        return value, right
    return step


def _epoch_row(trainer, epoch: int, figures: dict, lr: float, val, t_epoch: float) -> dict:
    """The epoch's history row: training figures, validation, learning rate and time."""
    seen = max(figures["seen"], 1)
    row = {"epoch": epoch + 1, "train_loss": figures["loss_sum"] / seen, "train_accuracy": figures["correct"] / seen,
           "val_loss": None, "val_accuracy": None, "lr": lr}
    if val is not None:
        result = evaluate(trainer.model, (val[0], val[1]), mean=val[2], std=val[3])
        row["val_loss"], row["val_accuracy"] = result["loss"], result["accuracy"]
    row["seconds"] = time.perf_counter() - t_epoch  # training + validation, not file writing
    return row


@locks_its_run_directory
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
        callbacks: :class:`Callback` objects; they see the events the built-in pieces see
            (:mod:`cnnlab.train.callbacks`).
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
    _check_arguments(epochs, batch_size, label_smoothing, clip_grad, monitor, patience, augment)
    if isinstance(resume, (str, Path)):
        out_dir, resume = (Path(resume) if out_dir is None else out_dir), True
    if resume and out_dir is None:
        raise ValueError("resume=True needs out_dir (the run directory holding checkpoint.npz)")
    seed = int(np.random.SeedSequence().entropy % (2 ** 31)) if seed is None else int(seed)
    group = _distributed.current_group()  # data-parallel under MPI, else None
    data = _prepare_data(train_data, val_data, batch_size, augment, seed, group, input_shape, classes)
    out_dir = None if out_dir is None else Path(out_dir)
    to_save = _model_to_save(model, data.input_shape, out_dir, data.classes)
    if patience is not None and data.val is None:
        raise ValueError("patience (early stopping) needs val_data to watch")
    trainer, config, per_batch = _trainer(model, data, int(epochs), optimizer, lr, weight_decay, momentum,
                                          schedule, seed, int(batch_size), label_smoothing, clip_grad, patience,
                                          monitor)
    _carry_training_preprocessing(model, to_save, trainer.history)
    model_extra = _with_dataset_name(model_extra, train_data)
    best = EarlyStopping(monitor, patience, min_delta, restore_best, validating=data.val is not None)
    progress = ProgressBar(verbose if group is None or group.is_root else 0, trainer.epochs)
    folder = None if out_dir is None else RunFolder(
        out_dir, to_save, config, best, data.loader, per_batch, write=group is None or group.is_root,
        model_files={"input_shape": data.input_shape, "classes": data.classes, "name": model_name,
                     "extra": model_extra})
    pieces = [*([SameWeightsOnRanks(group)] if group is not None else []), DivergenceGuard(out_dir), best,
              *callbacks, progress, *([folder] if folder is not None else [])]
    for cb in pieces:
        cb.set_trainer(trainer)
    start_epoch = folder.restore(trainer) if resume else 0
    if folder is not None and folder.write and not resume:
        out_dir.mkdir(parents=True, exist_ok=True)
    skip_single = _single_image_batches(model, data.loader, data.input_shape, progress)
    progress.batches = len(data.loader)
    _call(callbacks, "on_train_begin", {"epochs": trainer.epochs, "start_epoch": start_epoch})
    if start_epoch:
        progress.message(f"resuming {out_dir} after epoch {start_epoch}")
    step = _make_step(model, trainer.optimizer, label_smoothing, clip_grad, group)
    try:
        _run_epochs(trainer, data, start_epoch, step, pieces, skip_single, per_batch, group)
        if trainer.history.stopped_early:
            progress.message(f"early stopping: {monitor} did not improve for {patience} epochs (best "
                             f"{trainer.history.best_value:.4f} at epoch {trainer.history.best_epoch})")
    finally:
        progress.close()
    best.on_train_end({})
    model.eval()
    if folder is not None:
        folder.on_train_end({})  # the final model files, before the user's callbacks hear of the end
    _call(callbacks, "on_train_end", {"epochs": trainer.history.epochs, "best_epoch": trainer.history.best_epoch})
    return trainer.history


def _trainer(model, data: _FitData, epochs: int, optimizer, lr, weight_decay, momentum, schedule, seed: int,
             batch_size: int, label_smoothing, clip_grad, patience, monitor):
    """The optimizer, the schedule and the history, as the state callbacks see; the settings a
    checkpoint stores; and whether the schedule steps per batch."""
    if isinstance(optimizer, optim.Optimizer):
        opt, opt_name = optimizer, type(optimizer).__name__.lower()
    else:
        opt_name = str(optimizer).lower()
        opt = make_optimizer(opt_name, model.parameters(), lr, weight_decay, momentum)
    scheduler, per_batch = make_scheduler(schedule, opt, epochs, len(data.loader))
    history = History(mean=None if data.mean is None else tuple(data.mean),
                      std=None if data.std is None else tuple(data.std))
    _random.manual_seed(seed)
    config = {"epochs": epochs, "batch_size": batch_size, "optimizer": opt_name, "lr": lr,
              "weight_decay": weight_decay, "schedule": schedule if isinstance(schedule, (str, type(None)))
              else type(schedule).__name__, "seed": seed, "label_smoothing": label_smoothing,
              "clip_grad": clip_grad, "patience": patience, "monitor": monitor}
    return _Trainer(model, opt, scheduler, history, epochs), config, per_batch


def _run_epochs(trainer, data: _FitData, start_epoch: int, step, pieces, skip_single: bool, per_batch: bool,
                group) -> None:
    """The epochs from ``start_epoch`` on, until the last or until a callback stops training."""
    model, history, scheduler = trainer.model, trainer.history, trainer.scheduler
    for epoch in range(start_epoch, trainer.epochs):
        if trainer.stop_training:
            break
        t_epoch = time.perf_counter()
        _call(pieces, "on_epoch_begin", epoch + 1, {})
        lr_at_start = float(trainer.optimizer.lr)
        if hasattr(data.loader, "set_epoch"):
            data.loader.set_epoch(epoch)
        model.train()
        figures = _train_epoch(trainer, data.loader, epoch, epoch == start_epoch, step, pieces, skip_single,
                               per_batch, group)
        if scheduler is not None and not per_batch:
            scheduler.step()
        _call(pieces, "on_train_epoch_end", epoch + 1, {"train_loss": figures["loss_sum"] / max(figures["seen"], 1)})
        history.train_images += figures["seen"]
        history.step_seconds += figures["step_seconds"]
        trainer.images_per_second = figures["seen"] / figures["step_seconds"] if figures["step_seconds"] > 0 else 0.0
        row = _epoch_row(trainer, epoch, figures, lr_at_start, data.val, t_epoch)
        history.train_seconds += row["seconds"]
        history.append(row)
        _call(pieces, "on_epoch_end", epoch + 1, dict(row))
