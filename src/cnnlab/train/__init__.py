"""Training, evaluation and prediction: ``fit``, ``evaluate``, ``predict`` and whole runs.

- :mod:`~cnnlab.train.loop`: ``fit``, a short loop; :mod:`~cnnlab.train.callbacks`: what happens around
  the steps (history, progress, early stopping, the divergence guard, the ranks' agreement);
  :mod:`~cnnlab.train.checkpoint`: the run folder's checkpoints and resuming;
  :mod:`~cnnlab.train.evaluation`: ``evaluate`` and ``predict``; :mod:`~cnnlab.train.run`: whole runs.

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

from .._schema import HISTORY_COLUMNS
from .callbacks import (Callback, DivergenceGuard, EarlyStopping, History, LambdaCallback, ProgressBar,
                        SameWeightsOnRanks, TrainingDiverged, non_finite_state)
from .callbacks import ProgressBar as _Progress  # the name older code knew
from .checkpoint import CHECKPOINT, HISTORY_CSV, RunFolder
from .evaluation import check_finite_model, evaluate, predict
from .loop import OPTIMIZERS, SCHEDULES, default_augmentation, fit, make_optimizer, make_scheduler
from ..data.registry import dataset_key
from .run import (CONFIG_JSON, METRICS_JSON, RECIPES, TrainingInterrupted, _new_run_dir, load_run_data, train)

__all__ = ["fit", "evaluate", "predict", "check_finite_model", "dataset_key", "train", "TrainingInterrupted", "TrainingDiverged", "non_finite_state",
           "History", "Callback", "LambdaCallback", "ProgressBar", "EarlyStopping", "DivergenceGuard",
           "SameWeightsOnRanks", "RunFolder",
           "make_optimizer", "make_scheduler", "default_augmentation", "load_run_data", "RECIPES",
           "CHECKPOINT", "HISTORY_CSV", "METRICS_JSON", "CONFIG_JSON", "HISTORY_COLUMNS"]
