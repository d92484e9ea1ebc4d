"""Whole runs, as ``cnnlab train`` does them: the data set, the model, :func:`~cnnlab.train.fit`,
the test evaluation and the run directory (``config.json``, ``metrics.json`` beside ``fit``'s files)."""
from __future__ import annotations

import contextlib
import time
from datetime import datetime
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from .. import distributed as _distributed
from .. import random as _random
from .. import _schema
from ..runs.files import read_json, write_json
from ..runs.lock import run_lock
from ..finetune import is_onnx_file, onnx_input_shape, pretrained_model
from ..runs.model import MODEL_JSON
from .checkpoint import CHECKPOINT, HISTORY_CSV
from ..data.registry import dataset_key
from .evaluation import evaluate
from .loop import default_augmentation, fit

__all__ = ["train", "load_run_data", "dataset_key", "RECIPES", "TrainingInterrupted", "METRICS_JSON",
           "CONFIG_JSON"]

METRICS_JSON = "metrics.json"
CONFIG_JSON = "config.json"


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
    from ..data import get_dataset, stratified_split
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
    from ..models import build_model
    from ..runs.model import _read_model_json
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
    from .._files import safe_name  # a model file's "name" is data: never a path
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

    The run directory is locked for the whole run (:mod:`cnnlab.runs.lock`): another process
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
           log: Optional[Callable] = None, threads="auto", new_head: bool = False,
           freeze: bool = False) -> dict:
    """:func:`train`'s work; ``locks`` holds the run directory's lock until :func:`train` returns."""
    group = _distributed.current_group()
    if group is not None and not group.is_root:  # rank 0 alone speaks
        log, verbose = None, 0
    say = log or (lambda text: None)
    if resume is not None:
        run_dir = Path(resume)
        config, finished = _resumed_config(locks, run_dir, epochs, out_dir, data_dir, say)
        if finished is not None:
            return finished
    else:
        config = _new_config(dataset, model, data_dir, epochs, batch_size, lr, optimizer, schedule, weight_decay,
                             label_smoothing, patience, clip_grad, augment, val_fraction, seed, limit,
                             new_head, freeze)
        run_dir = None if out_dir is None else Path(out_dir)
        _claim_new_run_dir(locks, run_dir)

    t_load = time.perf_counter()
    onnx_shape = onnx_input_shape(config["model"]) if is_onnx_file(config["model"] or "") else None
    train_set, val_set, test_set = load_run_data(config["dataset"], config["data_dir"],
                                                 config["val_fraction"], config["seed"], config["limit"],
                                                 download=download, progress=verbose != 0,
                                                 size=None if onnx_shape is None else onnx_shape[1:],
                                                 channels=None if onnx_shape is None else onnx_shape[0])
    load_seconds = time.perf_counter() - t_load
    _fingerprint(config, run_dir, resume, train_set, val_set, test_set)
    shape = train_set.input_shape
    config["model"] = _model_name(config, shape)
    _random.manual_seed(config["seed"])  # the weights' initialisation
    net, model_info = _build_model(config, run_dir if resume is not None else None, shape, train_set.num_classes)
    label = _dataset_label(config["dataset"])
    if run_dir is None:
        run_dir = _fresh_run_dir(locks, label, model_info["name"], runs_root, group)
    if resume is None and _distributed.is_root():
        _write_new_config(locks, run_dir, config)
    say(f"{label}: {len(train_set)} train, {0 if val_set is None else len(val_set)} validation, "
        f"{len(test_set)} test images {'x'.join(map(str, shape))}, {train_set.num_classes} classes; "
        f"model {model_info['name']} ({net.num_parameters():,} parameters); run directory {run_dir}")
    history = _fit_run(net, model_info, label, config, train_set, val_set, run_dir, resume is not None, verbose,
                       threads, group)
    t_test = time.perf_counter()
    result = evaluate(net, test_set)
    metrics = _metrics(result, history, config, net, model_info, label, train_set, val_set, run_dir, group,
                       test_seconds=time.perf_counter() - t_test, load_seconds=load_seconds)
    if _distributed.is_root():
        write_json(run_dir / METRICS_JSON, metrics)
    return metrics


def _resumed_config(locks, run_dir: Path, epochs, out_dir, data_dir, say):
    """``(settings, None)`` of the run being resumed (its ``config.json``, checked; the folder locked),
    or ``(settings, metrics)`` of a run that has nothing left to train."""
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
        return config, finished
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
    return config, None


def _new_config(dataset, model, data_dir, epochs, batch_size, lr, optimizer, schedule, weight_decay,
                label_smoothing, patience, clip_grad, augment, val_fraction, seed, limit, new_head=False,
                freeze=False) -> dict:
    """A new run's settings: what was given, the data set's recipe for the rest."""
    key = dataset_key(dataset)
    recipe = RECIPES[key]
    if key == "folder" and Path(str(dataset)).expanduser().exists():
        dataset = str(Path(str(dataset)).expanduser().resolve())  # evaluate works from any folder
    if (new_head or freeze) and not is_onnx_file(model or ""):
        raise ValueError(f"--new-head and --freeze fine-tune an ONNX model (--model MODEL.onnx), got "
                         f"{'no --model' if model is None else repr(str(model))}")
    if model is not None:  # a misspelt model should fail before the data load
        from ..models import MODELS, create_model, is_model_file
        if is_onnx_file(model) and not Path(str(model)).is_file():
            raise FileNotFoundError(f"model file {model} does not exist")
        if str(model).lower() not in MODELS and not Path(str(model)).is_file():
            if is_model_file(str(model)):
                raise FileNotFoundError(f"model file {model} does not exist")
            create_model(str(model), (1, 8, 8), 10)  # raises the "unknown model" error
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
    return config


def _fingerprint(config: dict, run_dir, resume, train_set, val_set, test_set) -> None:
    """Record the data's fingerprint in a new run's settings; refuse to resume on other data."""
    from ..data import data_fingerprint
    fingerprint = data_fingerprint(train_set, val_set, test_set)
    if resume is not None:
        _check_same_data(run_dir, config, fingerprint)
    else:
        config["data_fingerprint"] = fingerprint


def _build_model(config: dict, resumed_run: Optional[Path], shape, num_classes: int):
    """``(model, model_info)``: a resumed run's own architecture, an ONNX model to fine-tune, or a zoo
    model or model file."""
    from ..models import create_model
    if resumed_run is not None and (resumed_run / MODEL_JSON).is_file():  # the run's own architecture
        net, model_info = _model_of_run(resumed_run, shape, num_classes)
        if config.get("freeze"):  # a fine-tuned run keeps training its head alone
            from ..finetune import find_head, freeze as freeze_layers
            freeze_layers(net, keep=[find_head(net).module])
        return net, model_info
    if is_onnx_file(config["model"]):  # fine-tuning a model from elsewhere
        return pretrained_model(config["model"], shape, num_classes, config.get("new_head", False),
                                config.get("freeze", False))
    return create_model(config["model"], shape, num_classes)


def _claim_new_run_dir(locks, run_dir: Optional[Path]) -> None:
    """Lock a new run's ``--out`` folder (rank 0 alone writes, so it alone locks); refuse one that
    already holds a run."""
    if run_dir is None:
        return
    if _distributed.is_root():
        locks.enter_context(run_lock(run_dir))
    if (run_dir / CHECKPOINT).exists():
        raise ValueError(f"{run_dir} already holds a training run; choose another --out, or continue "
                         f"it with --resume {run_dir}")


def _model_name(config: dict, shape) -> str:
    from ..models import default_model_name
    return config["model"] or RECIPES[dataset_key(config["dataset"])]["model"] \
        or default_model_name(config["dataset"], shape)


def _fresh_run_dir(locks, label: str, model: str, runs_root, group) -> Path:
    """``runs/<data>-<model>-<time>``, named by rank 0 and locked by it."""
    run_dir = _new_run_dir(label, model, runs_root) if _distributed.is_root() else None
    if group is not None:  # the name holds a time stamp: rank 0's
        run_dir = group.bcast(run_dir)
    if _distributed.is_root():
        locks.enter_context(run_lock(run_dir, remove_if_empty=True))
    return run_dir


def _write_new_config(locks, run_dir: Path, config: dict) -> None:
    from .. import __version__
    run_dir.mkdir(parents=True, exist_ok=True)
    config["cnnlab_version"] = __version__
    write_json(run_dir / CONFIG_JSON, config)
    locks.callback(_forget_unstarted_run, run_dir)


def _fit_run(net, model_info: dict, label: str, config: dict, train_set, val_set, run_dir: Path, resuming: bool,
             verbose, threads, group):
    """:func:`fit` with the run's settings and BLAS threads; Ctrl-C becomes :class:`TrainingInterrupted`."""
    from ..data.inputs import data_stats  # what predict compares new images with
    from ..threads import auto_threads, blas_threads
    shape = train_set.input_shape
    aug = default_augmentation(dataset_key(config["dataset"]), shape) if config["augment"] else None
    try:
        if threads == "auto":  # under MPI one rank per core, each with one BLAS thread
            threads = 1 if group is not None else auto_threads(shape)
        with blas_threads(threads):
            return fit(net, train_set, val_set, epochs=config["epochs"], batch_size=config["batch_size"],
                       optimizer=config["optimizer"], lr=config["lr"], weight_decay=config["weight_decay"],
                       schedule=config["schedule"], patience=config["patience"], clip_grad=config["clip_grad"],
                       label_smoothing=config["label_smoothing"], augment=aug, seed=config["seed"],
                       out_dir=run_dir, resume=resuming, verbose=verbose, input_shape=shape,
                       classes=train_set.classes, model_name=model_info["name"],
                       model_extra={"dataset": label, "model_info": model_info,
                                    "data_stats": data_stats(train_set.images)})
    except KeyboardInterrupt:
        if not (run_dir / CHECKPOINT).is_file() and not resuming:
            raise TrainingInterrupted("no epoch finished, so nothing was kept; start the run again",
                                      run_dir) from None
        done = (f"the checkpoint of the last finished epoch is in {run_dir}"
                if (run_dir / CHECKPOINT).is_file() else f"no epoch finished in {run_dir}")
        raise TrainingInterrupted(f"{done}; continue with: cnnlab train --resume {run_dir}",
                                  run_dir) from None


def _metrics(result: dict, history, config: dict, net, model_info: dict, label: str, train_set, val_set,
             run_dir: Path, group, test_seconds: float, load_seconds: float) -> dict:
    """The content of ``metrics.json``."""
    from .. import __version__
    return {
        "test_accuracy": result["accuracy"], "test_loss": result["loss"],
        "test_correct": result["correct"], "test_size": result["total"],
        "epochs": history.epochs, "best_epoch": history.best_epoch, "stopped_early": history.stopped_early,
        "train_seconds": round(history.train_seconds, 3),
        "images_per_second": round(history.images_per_second, 1),
        "test_seconds": round(test_seconds, 3), "load_seconds": round(load_seconds, 3),
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
