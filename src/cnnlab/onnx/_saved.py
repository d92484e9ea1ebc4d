"""ONNX files wherever cnnlab takes a run: :func:`load_saved`, and the ONNX Runtime engine.

A file exported by cnnlab carries its class names, input shape and
normalisation in ``metadata_props`` (``cnnlab.classes``, ``cnnlab.mean``,
``cnnlab.std``, ``cnnlab.input_shape``).  For a foreign file (PyTorch, Keras)
they come from the arguments, or from :data:`FOREIGN` (set by the command
line's ``--classes``), else the defaults: classes ``"0" .. "K-1"``.  The
normalisation is decided by :func:`cnnlab.preprocessing.resolve_preprocessing`
(``--mean/--std`` win; without them and without metadata, a one-line note says
that none is assumed).
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from .. import nn
from ..tensor import Tensor

__all__ = ["load_saved", "FOREIGN", "OrtEngine", "with_engine", "ENGINES", "is_onnx_path"]

#: defaults for foreign files, filled from the command line
FOREIGN = {"classes": None, "mean": None, "std": None}
ENGINES = ("cnnlab", "onnxruntime")


def is_onnx_path(path) -> bool:
    return str(path).lower().endswith(".onnx")


def _json_list(meta: dict, key: str, source: str):
    if key not in meta:
        return None
    try:
        value = json.loads(meta[key])
    except json.JSONDecodeError:
        raise ValueError(f"{source}: metadata {key!r} is not JSON: {meta[key]!r}") from None
    return list(value) if isinstance(value, list) else None


#: bound of the normalisation values of [0, 1] images: |mean| and std at most this, std at least its
#: inverse (beyond, float32 images overflow to inf or divide by zero)
NORMALISATION_LIMIT = 1e6


def _check_normalisation(mean, std, source: str) -> None:
    """Finite means and positive finite standard deviations (from the options or the file's metadata)."""
    import math
    for label, value in (("mean", mean), ("std", std)):
        if value is None:
            continue
        ok = all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                 and abs(v) <= NORMALISATION_LIMIT and (label == "mean" or v >= 1 / NORMALISATION_LIMIT)
                 for v in value)
        if not ok:
            what = (f"finite numbers from -{NORMALISATION_LIMIT:g} to {NORMALISATION_LIMIT:g}" if label == "mean"
                    else f"positive finite numbers from {1 / NORMALISATION_LIMIT:g} to {NORMALISATION_LIMIT:g}")
            raise ValueError(f"{source}: the {label} (--{label} or the file's cnnlab.{label}) must be {what}, "
                             f"got {str(list(value))[:200]}")


def load_saved(path, classes: Optional[Sequence[str]] = None, mean: Optional[Sequence[float]] = None,
               std: Optional[Sequence[float]] = None):
    """A :class:`cnnlab.io.SavedModel` read from an ONNX file.

    Raises:
        FileNotFoundError, OnnxImportError (a ValueError): as :func:`cnnlab.onnx.load`; ValueError when
        ``classes``/``mean``/``std`` do not fit the model (one per output / per channel).
    """
    from ..runs.model import SavedModel
    from ._import import load_with_info

    source = str(path)
    graph, info = load_with_info(path)
    meta = info["metadata"]
    chw = tuple(int(s) for s in info["input_shape"])
    num_outputs = graph.output_shape((1, *chw))
    if len(num_outputs) != 2:
        raise ValueError(f"{source}: the model gives outputs of shape {tuple(num_outputs)} per batch; "
                         f"cnnlab's tools need one score per class, (N, K)")
    k = int(num_outputs[1])
    classes = classes or FOREIGN["classes"] or _json_list(meta, "cnnlab.classes", source) or [str(i) for i in range(k)]
    classes = [str(c) for c in classes]
    if len(classes) != k:
        raise ValueError(f"{source}: the model gives {k} scores per image but {len(classes)} class names were "
                         f"given ({', '.join(classes[:5])}{', ...' if len(classes) > 5 else ''})")
    from ..preprocessing import resolve_preprocessing
    recorded = None
    if "cnnlab.mean" in meta or "cnnlab.std" in meta:  # written by cnnlab: the metadata records it
        recorded = {"mean": _json_list(meta, "cnnlab.mean", source), "std": _json_list(meta, "cnnlab.std", source)}
        _check_normalisation(recorded["mean"], recorded["std"], source)
    elif "cnnlab.classes" in meta:  # `cnnlab export` of an older unnormalised run (no mean/std entries)
        recorded = {"mean": None, "std": None}
    mean = mean if mean is not None else FOREIGN["mean"]
    std = std if std is not None else FOREIGN["std"]
    _check_normalisation(mean, std, source)
    pre = resolve_preprocessing(recorded, mean, std, channels=chw[0], source=source)
    name = meta.get("cnnlab.name") or Path(source).stem
    from ..preprocessing import attach
    attach(graph, pre)
    return SavedModel(model=graph, input_shape=chw, classes=classes, mean=pre.mean, std=pre.std,
                      origin=pre.origin, name=name,
                      info={"format": "onnx", "source": source, "opset": info["opset"], "producer": info["producer"],
                            "metadata": meta},
                      path=Path(source).with_suffix(""))  # outputs about the model go beside the file


class OrtEngine(nn.Module):
    """A model run by ONNX Runtime: exported in memory once, one ``InferenceSession`` reused for every call.

    Takes and returns what the cnnlab model does (``(N, C, H, W)`` -> scores), float32.

    Shape: as the wrapped model.
    """

    def __init__(self, model: nn.Module, input_shape, opset: int = 17, threads: Optional[int] = None):
        super().__init__()
        import onnxruntime as ort

        from ._export import to_model_proto
        proto = to_model_proto(model, input_shape, opset)
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
        self.session = ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name
        object.__setattr__(self, "_run", self.session.run)   # bound once: a few microseconds a call
        object.__setattr__(self, "_outputs", [self.output_name])
        object.__setattr__(self, "_model", model)  # for output_shape; not a registered child

    def forward(self, x):
        data = x._data if isinstance(x, Tensor) else np.asarray(x)
        if data.dtype.char != "f" or not data.flags.c_contiguous:
            data = np.ascontiguousarray(data, dtype=np.float32)
        out = self._run(None, {self.input_name: data})[0]  # None: no output names to look up
        return Tensor.from_op(out, (), None, "onnxruntime")  # no gradient: the cheapest wrap

    def output_shape(self, input_shape):
        return self._model.output_shape(input_shape)

    def extra_repr(self):
        return f"onnxruntime, {type(self._model).__name__}"


def with_engine(saved, engine: str = "cnnlab"):
    """``saved`` with its model run by ``engine``: ``"cnnlab"`` (unchanged) or ``"onnxruntime"``."""
    if engine in (None, "cnnlab"):
        return saved
    if engine != "onnxruntime":
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    from ._extra import _require
    _require("onnxruntime")
    return dataclasses.replace(saved, model=OrtEngine(saved.model, saved.input_shape))
