"""The run folder of a :func:`~cnnlab.train.fit`: a checkpoint after every epoch, the model files, and
resuming from the checkpoint.

``checkpoint.npz`` holds the model, the optimizer's state, the best epoch's weights (``model/``,
``optim/``, ``best/`` arrays) and one JSON document: the epoch, the run's settings, the optimizer's
param groups, the scheduler, the random streams, the loader, the history and the epochs waited by
early stopping.  Every field is checked before use (:func:`cnnlab._schema.check_checkpoint`).
"""
from __future__ import annotations

import functools
import inspect
from pathlib import Path
from typing import Optional

from .. import distributed as _distributed
from .. import random as _random
from .. import _schema
from ..runs.files import atomic_write_bytes, load_bundle, save_bundle
from ..runs.lock import run_lock
from ..runs.model import save_model
from .callbacks import Callback, EarlyStopping

__all__ = ["CHECKPOINT", "HISTORY_CSV", "RunFolder", "locks_its_run_directory"]

CHECKPOINT = "checkpoint.npz"
HISTORY_CSV = "history.csv"
# what must not change when a run is resumed
_RESUME_KEYS = ("batch_size", "optimizer", "schedule", "seed")


class RunFolder(Callback):
    """Write ``out_dir`` as training goes: after every epoch the checkpoint, ``history.csv`` and the
    model files (``model.npz`` + ``model.json``), and the model files once more at the end (the best
    epoch's weights).  Only the writing rank (rank 0 under MPI) has one.

    Args:
        out_dir: the run directory.
        to_save: what ``model.json`` describes (the model, or the graph traced from a user's Module).
        config: the run's settings, stored in the checkpoint and compared on resume.
        best: the :class:`EarlyStopping` whose best weights and patience count are checkpointed.
        loader, per_batch: the training loader (its seeded state) and whether the schedule steps per batch.
        model_files: ``input_shape``, ``classes``, ``name`` and ``extra`` for :func:`cnnlab.io.save_model`.
    """

    def __init__(self, out_dir: Path, to_save, config: dict, best: EarlyStopping, loader, per_batch: bool,
                 model_files: dict, write: bool = True):
        self.out_dir, self.to_save, self.config, self.best = Path(out_dir), to_save, config, best
        self.loader, self.per_batch, self.model_files, self.write = loader, per_batch, model_files, write

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        if self.write:  # the model files first: a checkpoint always has the run's model.json beside it
            self.save_model_files()
            self.write_checkpoint(epoch)

    def on_train_end(self, logs: dict) -> None:
        if self.write:
            self.save_model_files()

    def save_model_files(self) -> None:
        history = self.trainer.history
        files = self.model_files
        save_model(self.to_save, self.out_dir, files["input_shape"], files["classes"], history.mean, history.std,
                   name=files["name"], extra=files["extra"])

    def write_checkpoint(self, epoch_done: int) -> None:
        trainer = self.trainer
        arrays = {f"model/{k}": v for k, v in trainer.model.state_dict().items()}
        state = trainer.optimizer.state_dict()
        arrays.update({f"optim/{i}.{k}": v for i, bufs in state["state"].items() for k, v in bufs.items()})
        if self.best.best_state is not None:
            arrays.update({f"best/{k}": v for k, v in self.best.best_state.items()})
        meta = {"format": "cnnlab-checkpoint", "epoch": epoch_done, "config": self.config,
                "optimizer": {"param_groups": state["param_groups"]},
                "scheduler": None if trainer.scheduler is None else trainer.scheduler.state_dict(),
                "rng": _random.get_state(),
                "loader": self.loader.state_dict() if hasattr(self.loader, "state_dict") else None,
                "history": trainer.history.state(), "wait": self.best.wait}
        save_bundle(self.out_dir / CHECKPOINT, arrays, meta)
        atomic_write_bytes(self.out_dir / HISTORY_CSV, trainer.history.to_csv().encode("utf-8"))

    def restore(self, trainer) -> int:
        """Load the checkpoint into the model, optimizer, scheduler, random streams, loader, history
        and early stopping; returns the number of epochs it holds."""
        ckpt_path = self.out_dir / CHECKPOINT
        if not ckpt_path.is_file():
            raise FileNotFoundError(f"cannot resume: {ckpt_path} does not exist (is {self.out_dir} a run "
                                    "directory whose first epoch finished?)")
        arrays, meta = load_bundle(ckpt_path, "checkpoint")
        _schema.check_checkpoint(arrays, meta, ckpt_path, trainer.model)  # every field and array, before use
        saved = meta.get("config", {})
        for key in _RESUME_KEYS:
            if key in saved and saved[key] != self.config[key]:
                raise ValueError(f"cannot resume {self.out_dir}: it was trained with {key}={saved[key]!r}, "
                                 f"now {key}={self.config[key]!r}")
        trainer.model.load_state_dict({k[6:]: v for k, v in arrays.items() if k.startswith("model/")})
        trainer.optimizer.load_state_dict({**meta["optimizer"],
                                           "state": {k[6:]: v for k, v in arrays.items() if k.startswith("optim/")}})
        self._restore_scheduler(trainer, meta, same_epochs=saved.get("epochs") == self.config["epochs"])
        _random.set_state(meta["rng"])
        if meta.get("loader") is not None and hasattr(self.loader, "load_state_dict"):
            self.loader.load_state_dict(meta["loader"])
        trainer.history.load_state(meta["history"])
        self.best.best_state = {k[5:]: v for k, v in arrays.items() if k.startswith("best/")} or None
        self.best.wait = int(meta.get("wait", 0))
        return int(meta["epoch"])

    def _restore_scheduler(self, trainer, meta: dict, same_epochs: bool) -> None:
        scheduler = trainer.scheduler
        if scheduler is None or meta.get("scheduler") is None:
            return
        if same_epochs or not self.per_batch:
            scheduler.load_state_dict(meta["scheduler"])
        else:  # more epochs than planned: the per-batch schedule restarts its curve where it was
            scheduler.last_epoch = int(meta["scheduler"]["last_epoch"])
            closed_form = getattr(scheduler, "_get_closed_form_lr", scheduler.get_lr)
            for param_group, group_lr in zip(trainer.optimizer.param_groups, closed_form()):
                param_group["lr"] = group_lr


def locks_its_run_directory(fit_function):
    """Hold the run directory's lock (:func:`cnnlab.runs.lock.run_lock`) while ``fit`` writes it:
    ``out_dir``, or the ``resume`` directory; rank 0 alone under MPI, as it alone writes."""
    signature = inspect.signature(fit_function)

    @functools.wraps(fit_function)
    def wrapper(*args, **kwargs):
        given = signature.bind(*args, **kwargs).arguments
        directory: Optional[Path] = given.get("out_dir")
        if directory is None and isinstance(given.get("resume"), (str, Path)):
            directory = given["resume"]
        group = _distributed.current_group()
        if directory is None or (group is not None and not group.is_root):
            return fit_function(*args, **kwargs)
        with run_lock(directory):
            return fit_function(*args, **kwargs)

    return wrapper
