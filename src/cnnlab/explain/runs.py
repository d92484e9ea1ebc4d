"""Reading a training run directory for the explain commands and the report.

A run directory (written by :func:`cnnlab.train.train`) holds ``model.json`` +
``model.npz`` (read with :func:`cnnlab.io.load_model`), ``history.csv``,
``metrics.json`` and ``config.json`` (the data set it was trained on).  A
folder written by :func:`cnnlab.io.save_model` alone has only the two model
files; everything else here is optional, and the functions say what is
missing.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from ..runs.history import read_history
from ..runs.model import model_input

__all__ = ["Run", "open_run", "read_history", "model_input", "TestData", "load_test_data", "evaluate_test",
           "Evaluation", "confusion_matrix"]


@dataclass
class Run:
    """A run directory and what it holds (``None`` for a missing file)."""
    path: Path
    saved: object                                  # cnnlab.io.SavedModel
    history: Optional[Dict[str, list]] = None      # columns of history.csv
    metrics: Optional[dict] = None                 # metrics.json
    config: Optional[dict] = None                  # config.json

    @property
    def model(self):
        return self.saved.model

    @property
    def classes(self) -> List[str]:
        classes = list(self.saved.classes)
        if not classes:
            k = self.saved.model.output_shape((1,) + tuple(self.saved.input_shape))[-1]
            classes = [str(i) for i in range(k)]
        return classes

    @property
    def name(self) -> str:
        return self.saved.name or self.path.name

    @property
    def dataset(self) -> Optional[str]:
        if self.config and self.config.get("dataset"):
            return str(self.config["dataset"])
        return self.saved.info.get("dataset") if isinstance(self.saved.info, dict) else None


def _read_json(path: Path, what: str, check) -> Optional[dict]:
    from .._schema import read_checked_json
    return read_checked_json(path, what, check)


def open_run(path) -> Run:
    """Load the model of a run (or model) directory, plus its history, metrics and config if present.

    Raises:
        FileNotFoundError / ValueError: from :func:`cnnlab.io.load_model`, naming the path.
    """
    from ..io import load_model
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"run directory {path} does not exist")
    saved = load_model(path)
    folder = Path(saved.path) if saved.path is not None else path
    history_path = folder / "history.csv"
    history = read_history(history_path) if history_path.is_file() else None
    from .._schema import check_config, check_metrics
    return Run(folder, saved, history, _read_json(folder / "metrics.json", "metrics file", check_metrics),
               _read_json(folder / "config.json", "run configuration", check_config))


@dataclass
class TestData:
    """Test images of a run's data set, in [0, 1], with labels and the class names."""
    images: np.ndarray
    labels: np.ndarray
    classes: List[str]
    description: str


def load_test_data(run: Run, dataset: Optional[str] = None, data_dir=None, limit: Optional[int] = None,
                   download: bool = False) -> TestData:
    """The test part of the data set ``run`` was trained on (from its ``config.json``), or of ``dataset``.

    The split is the one training used (:func:`cnnlab.train.load_run_data`
    with the run's settings).  ``limit`` keeps the first ``limit`` test images.

    Raises:
        ValueError: the run does not say which data set it used and none is given.
        DataMismatchError (a ValueError): the data set's images or class names do not fit the
            model (:func:`cnnlab.data.dataset.check_data_fits_model`, the check `cnnlab evaluate` makes).
    """
    from ..train import load_run_data
    config = dict(run.config or {})
    name = dataset or config.get("dataset")
    if not name:
        raise ValueError(f"{run.path} does not say which data set it was trained on (no config.json); "
                         f"pass --dataset NAME (digits, mnist, ... or an image folder) and --data-dir if needed")
    folder = data_dir if data_dir is not None else (config.get("data_dir") if not dataset else None)
    _, _, test = load_run_data(name, folder, float(config.get("val_fraction", 0.1) or 0.0),
                               int(config.get("seed", 0) or 0), config.get("limit") if not dataset else None,
                               download=download, progress=False)
    from ..data.dataset import check_data_fits_model  # the check `cnnlab evaluate` makes, same message
    check_data_fits_model(test.classes, test.images.shape[1:], run.classes, run.saved.input_shape, run.path,
                          name)
    images, labels = test.images, test.labels
    if limit is not None and limit < len(labels):
        images, labels = images[:limit], labels[:limit]
    return TestData(images, labels, [str(c) for c in test.classes], test.description or str(name))


@dataclass
class Evaluation:
    """Predictions of a model on test data."""
    probabilities: np.ndarray     # (N, K)
    predictions: np.ndarray       # (N,)
    labels: np.ndarray            # (N,)
    confusion: np.ndarray         # (K, K) rows = true class
    accuracy: float
    loss: float                   # mean cross-entropy

    def most_confident_mistakes(self, count: int) -> np.ndarray:
        """Indices of wrong predictions, highest probability of the (wrong) predicted class first."""
        wrong = np.flatnonzero(self.predictions != self.labels)
        conf = self.probabilities[wrong, self.predictions[wrong]]
        return wrong[np.argsort(-conf, kind="stable")][:count]


def confusion_matrix(labels, predictions, num_classes: int) -> np.ndarray:
    """``cm[t, p]`` = number of images of true class t predicted as p.

    Shape:
        labels, predictions ``(N,)`` -> ``(K, K)``.
    """
    labels = np.asarray(labels, dtype=np.int64)
    predictions = np.asarray(predictions, dtype=np.int64)
    return np.bincount(labels * num_classes + predictions, minlength=num_classes * num_classes) \
        .reshape(num_classes, num_classes)


def evaluate_test(run: Run, data: TestData, batch_size: int = 256) -> Evaluation:
    """Run the model on every test image (normalised as in training) and tally the results."""
    from .features import predict_proba
    x = run.saved.preprocess(data.images)
    probs = predict_proba(run.model, x, batch_size)
    preds = probs.argmax(axis=1)
    k = probs.shape[1]
    cm = confusion_matrix(data.labels, preds, k)
    picked = probs[np.arange(len(preds)), data.labels]
    loss = float(-np.log(np.maximum(picked, 1e-300)).mean())
    return Evaluation(probs, preds, data.labels, cm, float((preds == data.labels).mean()), loss)
