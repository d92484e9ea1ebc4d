"""A model's input normalisation: one fact, decided in one place.

A model takes images in [0, 1] normalised per channel as ``(x - mean) / std``
(or not normalised at all).  That fact is stored with the model -- in
``model.json`` of a run or a :func:`cnnlab.io.save_model` folder, in the
metadata of an ONNX file cnnlab wrote -- or given once on the command line
(``--mean/--std``).  :func:`resolve_preprocessing` decides it, and every
command (``predict``, ``evaluate``, ``explain``, ``report``, the explorer) and
every Python entry point (:func:`cnnlab.io.load_model`,
:func:`cnnlab.train.evaluate`, :func:`cnnlab.train.predict`) uses its answer:

1. an explicit ``--mean``/``--std`` (or ``mean=``/``std=`` arguments) always wins;
2. else what the model records, also when it records "none" (``"mean": null``:
   trained on raw [0, 1] images, so never the data set's statistics);
3. else (an ONNX file without cnnlab metadata) the model's normalisation is
   unknown: one line on stderr says so and that none is assumed.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np

__all__ = ["Preprocessing", "resolve_preprocessing", "set_command_line", "preprocessing_of", "attach",
           "UNKNOWN", "NONE_ASSUMED_NOTE"]

#: origins of a :class:`Preprocessing`
FROM_COMMAND_LINE = "command line"
FROM_MODEL = "model"
UNKNOWN = "unknown"

NONE_ASSUMED_NOTE = ("does not record its input normalisation (mean/std); assuming none (images in [0, 1] "
                     "as they are): give --mean/--std if it was trained on normalised images")

_ATTRIBUTE = "_cnnlab_preprocessing"   # set on a model object, outside Module registration
_COMMAND_LINE = {"mean": None, "std": None}
_NOTED = set()


@dataclass(frozen=True)
class Preprocessing:
    """Per-channel normalisation of [0, 1] images, and where that fact came from.

    Attributes:
        mean, std: one value per channel, or ``None`` (no normalisation).
        origin: ``"command line"`` (``--mean/--std``, ``mean=/std=``), ``"model"``
            (recorded with the model) or ``"unknown"`` (nothing recorded; none assumed).
    """

    mean: Optional[Tuple[float, ...]] = None
    std: Optional[Tuple[float, ...]] = None
    origin: str = FROM_MODEL

    @property
    def normalises(self) -> bool:
        return self.mean is not None and self.std is not None

    def apply(self, images) -> np.ndarray:
        """``(N, C, H, W)`` [0, 1] images as the model takes them (float32)."""
        images = np.asarray(images, dtype=np.float32)
        if not self.normalises:
            return images
        mean = np.asarray(self.mean, dtype=np.float32).reshape(1, -1, 1, 1)
        std = np.asarray(self.std, dtype=np.float32).reshape(1, -1, 1, 1)
        return (images - mean) / std

    def describe(self) -> str:
        if not self.normalises:
            return "none" + (" (assumed: not recorded)" if self.origin == UNKNOWN else "")
        return (f"(x - {', '.join(f'{v:.4g}' for v in self.mean)}) / {', '.join(f'{v:.4g}' for v in self.std)}"
                f" ({self.origin})")


def set_command_line(mean: Optional[Sequence[float]] = None, std: Optional[Sequence[float]] = None) -> None:
    """Record ``--mean/--std`` for this process: every model loaded afterwards uses them."""
    _COMMAND_LINE["mean"] = None if mean is None else [float(v) for v in mean]
    _COMMAND_LINE["std"] = None if std is None else [float(v) for v in std]


def _per_channel(label: str, value, channels: Optional[int], source: str):
    if value is None:
        return None
    try:
        values = [float(v) for v in (value if isinstance(value, (list, tuple, np.ndarray)) else [value])]
    except (TypeError, ValueError):
        raise ValueError(f"{source}: {label} must be numbers, one per channel, got {value!r}") from None
    if channels is not None and len(values) == 1 and channels > 1:
        values = values * channels
    if channels is not None and len(values) != channels:
        raise ValueError(f"{source}: {label} needs one value per channel ({channels}), got {values}")
    if label.lstrip("-") == "std" and any(not v > 0 for v in values):
        raise ValueError(f"{source}: std must be positive, got {values}")
    return tuple(values)


def resolve_preprocessing(model_source=None, cli_mean: Optional[Sequence[float]] = None,
                          cli_std: Optional[Sequence[float]] = None, channels: Optional[int] = None,
                          source: str = "the model", note: bool = True) -> Preprocessing:
    """The normalisation to use for a model: the one rule every tool follows.

    Args:
        model_source: what the model records: a :class:`Preprocessing`, a mapping
            with ``"mean"``/``"std"`` keys (``model.json``'s ``preprocessing``; the keys
            present, even as ``None``, mean "recorded"), a model carrying one (see
            :func:`attach`), a :class:`cnnlab.io.SavedModel`, or ``None`` (nothing recorded).
        cli_mean, cli_std: an explicit choice (``--mean/--std``); wins over everything.
            One of the two alone: the other is 0 (mean) or 1 (std). When both are ``None``,
            the process's command-line values (:func:`set_command_line`) are used.
        channels: the model's channel count (a single value is repeated for each channel).
        source: the model's name for messages.
        note: print the one-line note on stderr when nothing is recorded (once per source).

    Returns:
        A :class:`Preprocessing`.

    Raises:
        ValueError: a mean/std with the wrong number of values, or a std that is not positive.
    """
    if cli_mean is None and cli_std is None:
        cli_mean, cli_std = _COMMAND_LINE["mean"], _COMMAND_LINE["std"]
    if cli_mean is not None or cli_std is not None:
        n = channels or len(cli_mean if cli_mean is not None else cli_std)
        mean = _per_channel("--mean", cli_mean if cli_mean is not None else [0.0], n, source)
        std = _per_channel("--std", cli_std if cli_std is not None else [1.0], n, source)
        return Preprocessing(mean, std, FROM_COMMAND_LINE)
    recorded = preprocessing_of(model_source)
    if recorded is not None:
        if channels is not None and recorded.normalises:
            return Preprocessing(_per_channel("mean", recorded.mean, channels, source),
                                 _per_channel("std", recorded.std, channels, source), recorded.origin)
        return recorded
    if note and source not in _NOTED:
        _NOTED.add(source)
        print(f"cnnlab: note: {source} {NONE_ASSUMED_NOTE}", file=sys.stderr)
    return Preprocessing(None, None, UNKNOWN)


def preprocessing_of(model_source) -> Optional[Preprocessing]:
    """What ``model_source`` records (see :func:`resolve_preprocessing`), or ``None``."""
    if model_source is None:
        return None
    if isinstance(model_source, Preprocessing):
        return model_source
    if isinstance(model_source, dict):
        if "mean" not in model_source and "std" not in model_source:
            return None
        mean, std = model_source.get("mean"), model_source.get("std")
        if mean is None or std is None:
            return Preprocessing(None, None, FROM_MODEL)
        return Preprocessing(tuple(float(v) for v in mean), tuple(float(v) for v in std), FROM_MODEL)
    found = getattr(model_source, "preprocessing", None)   # a SavedModel
    if isinstance(found, Preprocessing):
        return found
    found = getattr(model_source, "__dict__", {}).get(_ATTRIBUTE)   # a model object
    return found if isinstance(found, Preprocessing) else None


def attach(model, preprocessing: Optional[Preprocessing]):
    """Let ``model`` carry its normalisation (read back by :func:`preprocessing_of`); returns ``model``.

    :func:`cnnlab.io.load_model` and :func:`cnnlab.train.fit` do this, so
    :func:`cnnlab.train.evaluate`/``predict`` and :func:`cnnlab.io.save_model` use it.
    """
    if model is not None and preprocessing is not None:
        object.__setattr__(model, _ATTRIBUTE, preprocessing)
    return model
