"""The numbers behind ``cnnlab explore``: every value the page shows, computed by cnnlab's engine.

This module knows nothing about HTTP.  :class:`Explorer` wraps one loaded
model (read-only) and answers the questions the page asks: run the network on
an image and keep every layer's output, write out how one value of one layer
was computed (the multiply-and-sum of a convolution, the window of a pooling,
the formula of an activation, the largest contributions of a dense unit, the
exponentials of softmax), follow a pixel's receptive field back to the input,
saliency and Grad-CAM, the run's history and test images.

Images come in as bytes (an uploaded file) or as the index of a test image;
no file path is ever taken from a client.  The arithmetic is written by
:mod:`cnnlab.explain.trace`, the same functions ``cnnlab explain conv`` prints.

Engine calls are serialised by one lock: saliency and Grad-CAM backpropagate
through the shared model, which fills (and then restores) its parameters'
``.grad``.  Requests are served concurrently, the model's weights are only
read, and nothing of one request is kept for another.
"""
from __future__ import annotations

import base64
import io
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

__all__ = ["Explorer", "RequestError", "PreparedImage", "decode_image", "encode_array", "MAX_PIXELS",
           "MAX_UPLOAD_BYTES", "shape_arithmetic", "load_target", "display_labels"]

#: Largest image (width x height) accepted from a client: 40 megapixels (8000x5000).
MAX_PIXELS = 40_000_000
#: Largest request body accepted (an uploaded image file).
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
#: Test images evaluated for the sample picker and the confusion matrix.
MAX_TEST_IMAGES = 2000
#: Layers with a kernel_size whose output pixel is not one window of the input (receptive field: the whole map)
_NOT_SLIDING = ("ConvTranspose2d", "FractionalMaxPool2d", "AdaptiveAvgPool2d", "AdaptiveMaxPool2d")
#: Name of the pseudo-layer that turns the last scores into probabilities when the model has no Softmax.
PROBABILITIES = "probabilities"


class RequestError(Exception):
    """A bad request: the message goes back to the client as ``{"error": message}`` with ``status``."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def encode_array(a: np.ndarray) -> dict:
    """``{"shape", "min", "max", "data"}``: ``data`` is base64 of little-endian float32, row-major."""
    a = np.ascontiguousarray(a, dtype="<f4")
    finite = a[np.isfinite(a)]
    return {"shape": list(a.shape), "min": float(finite.min()) if finite.size else 0.0,
            "max": float(finite.max()) if finite.size else 0.0,
            "data": base64.b64encode(a.tobytes()).decode("ascii")}


# =========================================================================== images
@dataclass
class PreparedImage:
    """An image made ready for the model, with what was done to it and what looks wrong."""
    raw: np.ndarray                    # (C, H, W) float32 in [0, 1] after conversion, resizing, inversion
    x: np.ndarray                      # (1, C, H, W) as the model takes it
    source: str                        # "upload" or "test image k"
    steps: List[str] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)
    original_size: Optional[Tuple[int, int]] = None
    original_mode: Optional[str] = None
    label: Optional[str] = None        # the true class of a test image

    def describe(self) -> dict:
        return {"source": self.source, "original_size": None if self.original_size is None
                else list(self.original_size), "original_mode": self.original_mode, "steps": self.steps,
                "warnings": self.warnings, "label": self.label, "image": encode_array(self.raw),
                "model_input": encode_array(self.x[0])}


def decode_image(data: bytes, channels: int, size: Tuple[int, int],
                 max_pixels: int = MAX_PIXELS) -> Tuple[np.ndarray, List[str], List[str], Tuple[int, int], str]:
    """Check and decode image bytes, and describe the steps (the explorer's own upload checks).

    :meth:`Explorer.prepare_upload` takes the pixels from
    :func:`cnnlab.data.inputs.read_model_input`, as ``cnnlab predict`` does; this gives the
    4xx errors, the file's size and mode, and the steps shown on the page.
    EXIF orientation, 16-bit grayscale scaled to 8 bits, converted to gray
    (``L``) or ``RGB``, resized with Pillow's bilinear filter, divided by 255.

    Returns:
        ``(image (C, H, W) float32 in [0, 1], steps, warnings, (height, width) of the file, mode)``.

    Raises:
        RequestError: not an image, truncated, or more than ``max_pixels`` pixels.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError
    if not data:
        raise RequestError("the image field is empty: expected an image file (PNG, JPEG, BMP, GIF, WebP)")
    try:
        from ..data.folder import open_image
        image = open_image(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise RequestError(f"image over the limit of {max_pixels:,} pixels: {exc}", 413) from None
    except UnidentifiedImageError:  # Pillow's text names only the in-memory buffer (<_io.BytesIO ...>)
        raise RequestError("the upload is not an image cnnlab reads: not a PNG, JPEG, BMP, GIF, TIFF, WebP or "
                           "PGM/PPM image") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise RequestError(f"not an image Pillow can read (PNG, JPEG, BMP, GIF, TIFF, WebP): {exc}") from None
    with image:
        width, height = image.size
        if width * height > max_pixels:
            raise RequestError(f"image of {width}x{height} pixels is over the limit of {max_pixels:,} pixels",
                               413)
        try:
            image.load()
            image = ImageOps.exif_transpose(image)
        except Image.DecompressionBombError as exc:
            raise RequestError(f"image too large: {exc}", 413) from None
        except (OSError, ValueError, SyntaxError, EOFError) as exc:
            raise RequestError(f"cannot decode the image (truncated or damaged file?): {exc}") from None
    mode = image.mode
    steps, warnings = [], []
    if "A" in mode or (mode == "P" and "transparency" in image.info):
        alpha = np.asarray(image.convert("RGBA"))[..., 3].astype(np.float32) / 255.0
        colour = np.asarray(image.convert("L"), dtype=np.float32) / 255.0
        if alpha.std() > 0.05 and colour.std() < 0.02:
            warnings.append("the drawing is only in the alpha channel (transparency); the colours are uniform, "
                            "so the model sees an empty image: save it with an opaque background")
    if mode.startswith("I;16"):
        a = np.asarray(image, dtype=np.float32) / np.float32(65535.0)
        image = Image.fromarray(np.round(a * 255).astype(np.uint8), mode="L")
        steps.append("16-bit gray scaled to 8 bits")
    target = "L" if channels == 1 else "RGB"
    if image.mode != target:
        image = image.convert(target)
        steps.append(f"converted {mode} to {'grayscale (L)' if channels == 1 else 'RGB'}")
    if (image.height, image.width) != tuple(size):
        steps.append(f"resized {image.height}x{image.width} -> {size[0]}x{size[1]} (bilinear)")
        image = image.resize((int(size[1]), int(size[0])), Image.BILINEAR)
    array = np.asarray(image, dtype=np.uint8)
    array = array[None] if channels == 1 else array.transpose(2, 0, 1)
    out = array.astype(np.float32)
    out /= np.float32(255.0)
    steps.append("divided by 255 (pixels in [0, 1])")
    return out, steps, warnings, (height, width), mode


def _content_warnings(raw: np.ndarray, train_mean: Optional[float]) -> List[str]:
    """What makes an image look unlike the training data (light background, nearly empty)."""
    warnings = []
    if float(raw.max() - raw.min()) < 0.05:
        warnings.append("the image is almost empty (nearly one grey level): the prediction means little")
        return warnings
    if raw.shape[0] == 1 and train_mean is not None and train_mean < 0.5:
        border = np.concatenate([raw[0, 0], raw[0, -1], raw[0, :, 0], raw[0, :, -1]])
        if float(border.mean()) > 0.5:
            warnings.append("dark strokes on a light background, but this model was trained on light strokes "
                            "on a dark background: tick 'invert'")
    return warnings


def _spec_name(layer) -> str:
    return type(layer).__name__


# =========================================================================== shapes
def shape_arithmetic(size: int, kernel: int, stride: int = 1, padding="0", dilation: int = 1,
                     ceil_mode: bool = False, pool: bool = False, max_padding: Optional[int] = None) -> dict:
    """The output size of one axis with the formula filled in (the shape playground).

    ``padding`` is an int, ``"before,after"`` or ``"same"``.  The size comes
    from :func:`cnnlab.functional.conv_output_size` (pooling: its
    ``pool_output_size`` check that padding is at most half the kernel).
    """
    from ..explain.summary import axis_arithmetic
    from ..functional.shape import pool_output_size, same_padding
    for name, value, low in (("size", size, 1), ("kernel", kernel, 1), ("stride", stride, 1),
                             ("dilation", dilation, 1)):
        if value < low:
            raise RequestError(f"{name} must be an integer >= {low}, got {value}")
    text = str(padding).strip().lower()
    if text == "same":
        if pool:
            raise RequestError("padding 'same' applies to convolutions; pooling takes a number")
        before, after = same_padding(size, kernel, stride, dilation)
    elif text == "valid":
        before = after = 0
    else:
        try:
            parts = [int(p) for p in text.replace(" ", "").split(",") if p != ""]
        except ValueError:
            raise RequestError(f"padding must be an integer, 'before,after' or 'same', got {padding!r}") from None
        if len(parts) not in (1, 2) or min(parts) < 0:
            raise RequestError(f"padding must be an integer >= 0, 'before,after' or 'same', got {padding!r}")
        before, after = (parts[0], parts[0]) if len(parts) == 1 else (parts[0], parts[1])
        if max_padding is not None and max(parts) > max_padding:
            raise RequestError(f"padding must be at most {max_padding:,} per side, got {max(parts):,}")
    try:
        if pool:
            if before != after:
                raise RequestError("pooling pads both sides alike: give one number")
            pool_output_size(size, kernel, stride, before, dilation, ceil_mode)
        formula, out, warning = axis_arithmetic(size, kernel, stride, before, after, dilation, ceil_mode)
    except ValueError as exc:
        raise RequestError(str(exc)) from None
    span = dilation * (kernel - 1) + 1
    windows = [[i * stride - before, i * stride - before + span - 1] for i in range(out)]
    covered_to = windows[-1][1]
    dropped = max(0, (size - 1) - covered_to)
    return {"size": size, "kernel": kernel, "stride": stride, "padding": [before, after], "dilation": dilation,
            "ceil_mode": bool(ceil_mode), "pool": bool(pool), "output": out, "span": span,
            "rule": "output = floor((W + P_before + P_after - D*(K-1) - 1) / S) + 1", "formula": formula,
            "windows": windows, "dropped": dropped, "warning": warning}


# =========================================================================== loading
def load_target(path) -> Tuple[object, Optional[Path]]:
    """``(SavedModel, run folder or None)`` for a run directory or an ``.onnx`` file.

    ONNX files go through :mod:`cnnlab.onnx` when it is installed: its
    ``load_saved(path)`` (a :class:`~cnnlab.io.SavedModel` with classes, input
    shape and normalisation from the file's metadata) if it has one, else its
    ``load(path)`` wrapped with the input shape the model declares.
    """
    path = Path(path).expanduser()
    if path.suffix.lower() == ".onnx":
        if not path.is_file():
            raise FileNotFoundError(f"ONNX file {path} does not exist")
        try:
            from .. import onnx as cnnlab_onnx  # written for the ONNX issue; optional
        except ImportError as exc:
            raise ImportError(f"opening an .onnx file needs cnnlab's ONNX import (cnnlab.onnx and the onnx "
                              f"package: pip install 'cnnlab[onnx]'): {exc}") from None
        if hasattr(cnnlab_onnx, "load_saved"):
            try:
                return cnnlab_onnx.load_saved(path), None
            except (ImportError, NotImplementedError):
                pass  # an older cnnlab.onnx: load the module and read the input shape below
        from ..io import SavedModel
        model = cnnlab_onnx.load(path)
        shape = getattr(model, "input_shape", None) or _onnx_input_shape(path)
        shape = tuple(int(s) for s in tuple(shape)[-3:])
        k = int(model.output_shape((1,) + shape)[-1])
        model.eval()
        return SavedModel(model=model, input_shape=shape, classes=[str(i) for i in range(k)],
                          name=path.stem, path=None), None
    from ..io import load_model
    saved = load_model(path)
    return saved, Path(saved.path) if saved.path is not None else path


def _onnx_input_shape(path) -> Tuple[int, int, int]:
    """``(C, H, W)`` of an ONNX file's first graph input (the onnx package reads the file)."""
    import onnx
    graph = onnx.load(str(path), load_external_data=False).graph
    initializers = {t.name for t in graph.initializer}
    for value in graph.input:
        if value.name in initializers:
            continue
        dims = [d.dim_value for d in value.type.tensor_type.shape.dim]
        if len(dims) == 4 and all(d > 0 for d in dims[1:]):
            return tuple(dims[1:])
        raise ValueError(f"{path}: the model's input {value.name!r} has shape {dims}, not an image batch "
                         f"(N, C, H, W) with known C, H, W")
    raise ValueError(f"{path}: the ONNX graph has no input")


# =========================================================================== the explorer
_FAMILIES = {"Conv2d": "conv", "ConvTranspose2d": "deconv", "Linear": "fc", "Flatten": "flatten",
             "BatchNorm2d": "bn", "BatchNorm1d": "bn", "Dropout": "dropout", "Dropout2d": "dropout",
             "Softmax": "softmax", "LogSoftmax": "logsoftmax", "Add": "add", "Concat": "concat"}


def display_labels(names: Sequence[str], types: Sequence[str]) -> List[str]:
    """Readable names for the page: ``conv1``, ``relu1``, ``pool1``, ``fc1`` where a layer's name is only
    its position (``"0"``, ``"features.3"`` of a Sequential); the model's own names are kept otherwise.

    A family with one member drops the number (``flatten``); the numbering counts per family.
    """
    def family(kind: str) -> str:
        if kind in _FAMILIES:
            return _FAMILIES[kind]
        if "Pool" in kind:
            return "pool"
        return kind.lower()
    totals: Dict[Tuple[str, str], int] = {}
    keys = []
    for name, kind in zip(names, types):
        prefix, _, last = str(name).rpartition(".")
        if last.isdigit():
            key = (prefix, family(kind))
            totals[key] = totals.get(key, 0) + 1
            keys.append(key)
        else:
            keys.append(None)
    seen: Dict[Tuple[str, str], int] = {}
    labels = []
    for name, key in zip(names, keys):
        if key is None:
            labels.append(str(name))
            continue
        seen[key] = seen.get(key, 0) + 1
        base = key[1] + (str(seen[key]) if totals[key] > 1 else "")
        labels.append(f"{key[0]}.{base}" if key[0] else base)
    return labels


def layer_outputs(model, x) -> list:
    """Every node's output for preprocessed images ``x``: :func:`cnnlab.explain.features.layer_outputs`.

    Each entry has ``name``, ``layer``, ``output`` and ``inputs`` (the names of
    the values it reads; ``"input"`` is the image).  For a graph model, while
    ``layer_outputs`` gives no ``inputs``, the graph's own nodes are used.
    """
    from .. import nn
    from ..explain.features import layer_outputs as explain_layer_outputs
    graph = getattr(nn, "Graph", None)
    if graph is not None and isinstance(model, graph):
        outs = explain_layer_outputs(model, x)
        if outs and getattr(outs[0], "inputs", None) is not None and len(outs) == len(model.nodes):
            return outs
        from types import SimpleNamespace

        from ..explain.features import as_model_input
        from ..tensor import Tensor, no_grad
        with no_grad():
            values = model.run_all(Tensor(as_model_input(model, x)))
        rename = {model.input_name: "input"}
        return [SimpleNamespace(name=n.name, layer=n.module, output=np.ascontiguousarray(values[n.name]._data),
                                inputs=[rename.get(i, i) for i in n.inputs]) for n in model.nodes]
    return explain_layer_outputs(model, x)


@dataclass
class _Forward:
    image: PreparedImage
    outputs: list                      # LayerOutput per node
    by_name: Dict[str, object]
    probabilities: np.ndarray          # (K,)


class Explorer:
    """One model, read-only, and everything the page asks of it.

    Args:
        saved: a :class:`cnnlab.io.SavedModel` (``load_target`` gives one).
        run_dir: the run folder (history, metrics, test data), or None.
    """

    def __init__(self, saved, run_dir=None, engine: str = "cnnlab"):
        self.saved = saved
        self.model = saved.model
        self.engine = engine
        self.fast = None  # --engine onnxruntime: the live prediction's model (exported once, one session)
        if engine != "cnnlab":
            from ..onnx._saved import with_engine
            self.fast = with_engine(saved, engine).model
        self.model.eval()
        self.run_dir = None if run_dir is None else Path(run_dir)
        self.lock = threading.RLock()
        self.input_shape = tuple(int(s) for s in saved.input_shape)
        self.mean = None if saved.mean is None else [float(v) for v in saved.mean]
        self.std = None if saved.std is None else [float(v) for v in saved.std]
        with self.lock:
            outs = layer_outputs(self.model, np.zeros((1,) + self.input_shape, np.float32))
        self._modules = {lo.name: lo.layer for lo in outs}
        self._layers = self._describe_layers(outs)
        self._layer_index = {d["name"]: i for i, d in enumerate(self._layers)}
        k = int(np.prod(outs[-1].output.shape[1:]))
        classes = list(saved.classes) or [str(i) for i in range(k)]
        self.classes = [str(c) for c in classes]
        self.needs_softmax = type(outs[-1].layer).__name__ not in ("Softmax", "LogSoftmax")
        self._test = None
        self._history = self._metrics = self._config = None
        if self.run_dir is not None:
            from ..explain.runs import read_history
            h = self.run_dir / "history.csv"
            try:
                self._history = read_history(h) if h.is_file() else None
            except ValueError:
                self._history = None
            for attr, fname in (("_metrics", "metrics.json"), ("_config", "config.json")):
                p = self.run_dir / fname
                if p.is_file():
                    try:
                        setattr(self, attr, json.loads(p.read_text(encoding="utf-8")))
                    except (OSError, ValueError):
                        pass

    # ------------------------------------------------------------------ structure
    @staticmethod
    def _inputs_of(outs, i) -> List[str]:
        got = getattr(outs[i], "inputs", None)
        if got:
            return [str(n) for n in got]
        return ["input"] if i == 0 else [outs[i - 1].name]

    def _describe_layers(self, outs) -> List[dict]:
        from ..explain.summary import _arithmetic, _describe
        shapes = {"input": (1,) + self.input_shape}
        layers = []
        for i, lo in enumerate(outs):
            inputs = self._inputs_of(outs, i)
            out_shape = tuple(lo.output.shape)
            in_shape = shapes.get(inputs[0], shapes["input"])
            try:
                arithmetic, warnings = _arithmetic(lo.layer, in_shape, out_shape)
            except Exception:  # noqa: BLE001 - a layer the summary does not know: no arithmetic shown
                arithmetic, warnings = [], []
            try:
                description = _describe(lo.layer)
            except Exception:  # noqa: BLE001
                description = type(lo.layer).__name__
            shapes[lo.name] = out_shape
            layer = lo.layer
            entry = {"name": lo.name, "type": type(layer).__name__, "description": description,
                     "inputs": inputs, "input_shape": list(in_shape[1:]), "output_shape": list(out_shape[1:]),
                     "arithmetic": arithmetic, "warnings": warnings,
                     "params": int(sum(p._data.size for p in layer.parameters()))}
            for attr in ("kernel_size", "stride", "dilation"):
                if hasattr(layer, attr):
                    entry[attr] = list(getattr(layer, attr)) if isinstance(getattr(layer, attr), tuple) \
                        else getattr(layer, attr)
            if hasattr(layer, "kernel_size") and len(in_shape) == 4:
                try:
                    if hasattr(layer, "resolved_padding"):
                        (t, b), (l, r) = layer.resolved_padding(in_shape[2], in_shape[3])
                    else:
                        (ph, pw) = layer.padding
                        t, b, l, r = ph, ph, pw, pw
                    entry["padding"] = [[int(t), int(b)], [int(l), int(r)]]
                except Exception:  # noqa: BLE001
                    pass
            if hasattr(layer, "groups"):
                entry["groups"] = int(layer.groups)
            layers.append(entry)
        for entry, label in zip(layers, display_labels([d["name"] for d in layers], [d["type"] for d in layers])):
            entry["label"] = label
        return layers

    def layer_info(self, name: str) -> dict:
        if name not in self._layer_index:
            listing = ", ".join(f"{d['name']} {d['type']}" for d in self._layers)
            raise RequestError(f"the model has no layer {name!r}; its layers are: {listing}", 404)
        return self._layers[self._layer_index[name]]

    def model_info(self) -> dict:
        dataset = None
        if isinstance(self._config, dict):
            dataset = self._config.get("dataset")
        return {"name": self.saved.name or (self.run_dir.name if self.run_dir else "model"),
                "input_shape": list(self.input_shape), "classes": self.classes,
                "mean": self.mean, "std": self.std, "preprocessing_origin": getattr(self.saved, "origin", "model"),
                "dataset": dataset,
                "softmax_added": self.needs_softmax, "layers": self._layers,
                "has_run": self._history is not None or self._metrics is not None,
                "has_test_images": self.run_dir is not None and bool(self._config),
                "can_draw": self.input_shape[0] == 1,
                "limits": {"max_pixels": MAX_PIXELS, "max_upload_bytes": MAX_UPLOAD_BYTES}}

    # ------------------------------------------------------------------ inputs
    def _train_mean(self) -> Optional[float]:
        if self.mean is not None:
            return float(np.mean(self.mean))
        return None

    def _data_stats(self) -> Optional[dict]:
        info = getattr(self.saved, "info", None)
        stats = info.get("data_stats") if isinstance(info, dict) else None
        return stats if isinstance(stats, dict) else None

    def prepare_upload(self, data: bytes, invert: bool = False) -> PreparedImage:
        """An uploaded file (or a drawing, a PNG too) read as ``cnnlab predict`` reads a file:
        :func:`cnnlab.data.inputs.read_model_input` with the training data's statistics."""
        import os
        import tempfile

        from ..data.inputs import read_model_input
        c, h, w = self.input_shape
        if c not in (1, 3):
            raise RequestError(f"the model takes {c}-channel images; image files give 1 or 3 channels")
        _, steps, _, size, mode = decode_image(data, c, (h, w))  # checks: empty, not an image, size, truncated
        stats = self._data_stats()
        fd, name = tempfile.mkstemp(prefix="cnnlab-explore-", suffix=".img")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            raw, warnings = read_model_input(name, self.input_shape, stats, invert=True if invert else None,
                                             hints="page")  # remedies in the page's words, not CLI options
        except (OSError, ValueError) as exc:
            raise RequestError(f"cannot read the image: {str(exc).replace(name, 'the upload')}") from None
        finally:
            try:
                os.unlink(name)
            except OSError:
                pass
        warnings = list(warnings)
        if invert:
            steps.append("inverted (1 - x)")
        if stats is None:  # an older run: the reader has no training polarity to compare with
            warnings += [x for x in _content_warnings(raw, self._train_mean()) if "almost empty" not in x]
        return self._finish(PreparedImage(raw, None, "upload", steps, warnings, size, mode))

    def prepare_sample(self, k, invert: bool = False) -> PreparedImage:
        test = self.test_data()
        if isinstance(k, bool) or not isinstance(k, int):
            raise RequestError(f"sample must be an integer index of a test image, got {k!r}")
        if not 0 <= k < len(test["labels"]):
            raise RequestError(f"sample {k} does not exist: there are {len(test['labels'])} test images "
                               f"(0-{len(test['labels']) - 1})")
        raw = np.asarray(test["images"][k], dtype=np.float32)
        steps = [f"test image {k} of {test['description']} (already {self.input_shape[1]}x{self.input_shape[2]}, "
                 f"in [0, 1])"]
        if invert:
            raw = (np.float32(1.0) - raw).astype(np.float32)
            steps.append("inverted (1 - x)")
        img = PreparedImage(raw, None, f"test image {k}", steps, [], None, None,
                            self.classes[int(test["labels"][k])])
        return self._finish(img)

    def _finish(self, img: PreparedImage) -> PreparedImage:
        img.x = self.saved.preprocess(img.raw[None])
        if self.mean is not None and self.std is not None:
            img.steps.append("normalised: (x - " + ", ".join(f"{m:.4g}" for m in self.mean) + ") / "
                             + ", ".join(f"{s:.4g}" for s in self.std))
        elif getattr(self.saved, "origin", "model") == "unknown":
            img.steps.append("not normalised: the model records no mean/std (none assumed)")
        return img

    # ------------------------------------------------------------------ forward
    def forward(self, img: PreparedImage) -> _Forward:
        from ..explain.features import to_probabilities
        with self.lock:
            outs = layer_outputs(self.model, img.x)
        probs = to_probabilities(outs[-1].output, outs[-1].layer)[0]
        return _Forward(img, outs, {lo.name: lo for lo in outs}, probs)

    def quick_prediction(self, img) -> dict:
        """The prediction alone, by the ``engine`` (ONNX Runtime's session with ``--engine onnxruntime``)."""
        from ..explain.features import to_probabilities
        from ..tensor import Tensor, no_grad
        with self.lock, no_grad():
            out = self.fast(Tensor(np.ascontiguousarray(img.x, dtype=np.float32)))._data
        last = self._modules[self._layers[-1]["name"]] if self._layers else None
        p = to_probabilities(out, last)[0]
        best = int(np.argmax(p))
        return {"prediction": self.classes[best], "index": best,
                "probabilities": {c: float(v) for c, v in zip(self.classes, p)},
                "input": img.describe(), "engine": self.engine}

    def prediction(self, fw: _Forward, maps: bool = False) -> dict:
        p = fw.probabilities
        best = int(np.argmax(p))
        result = {"prediction": self.classes[best], "index": best,
                  "probabilities": {c: float(v) for c, v in zip(self.classes, p)},
                  "input": fw.image.describe()}
        if maps:
            result["layers"] = [dict(name=lo.name, type=type(lo.layer).__name__, **encode_array(lo.output[0]))
                                for lo in fw.outputs]
        return result

    def _node_value(self, fw: _Forward, name: str) -> np.ndarray:
        """One image's output of node ``name`` (``"input"``: the normalised image)."""
        if name == "input":
            return np.asarray(fw.image.x[0], dtype=np.float64)
        return np.asarray(fw.by_name[name].output[0], dtype=np.float64)

    # ------------------------------------------------------------------ trace
    def trace(self, fw: _Forward, layer: str, channel: int, y: int, x: int) -> dict:
        """How the value at ``(channel, y, x)`` of ``layer`` was computed (``y = x = 0`` for vectors)."""
        if layer == PROBABILITIES and layer not in self._layer_index:
            return self._trace_probabilities(fw, channel, y, x)
        info = self.layer_info(layer)
        lo = fw.by_name[layer]
        out = lo.output[0]
        pos = self._check_position(out.shape, layer, channel, y, x)
        value = float(out[pos])
        inputs = info["inputs"]
        ins = [self._node_value(fw, n) for n in inputs]
        kind = type(lo.layer).__name__
        result = {"layer": layer, "type": kind, "description": info["description"], "channel": channel,
                  "y": y, "x": x, "value": value, "inputs": inputs, "formula": None, "expression": None,
                  "terms": [], "notes": []}
        from .traces import trace_layer
        result.update(trace_layer(lo.layer, kind, ins, out, (channel, y, x), value, self.classes))
        result["receptive_field"] = self.receptive_field(layer, y, x, len(out.shape) == 3)
        return result

    def _check_position(self, shape, layer: str, channel, y, x):
        for name, v in (("channel", channel), ("y", y), ("x", x)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise RequestError(f"{name} must be an integer, got {v!r}")
        if len(shape) == 3:
            c, h, w = shape
            if not (0 <= channel < c and 0 <= y < h and 0 <= x < w):
                raise RequestError(f"position (channel {channel}, y {y}, x {x}) is outside layer {layer}'s "
                                   f"{c}x{h}x{w} output (channels 0-{c - 1}, y 0-{h - 1}, x 0-{w - 1})")
            return (channel, y, x)
        if len(shape) == 1:
            n = shape[0]
            if not (0 <= channel < n) or y != 0 or x != 0:
                raise RequestError(f"position (channel {channel}, y {y}, x {x}) is outside layer {layer}'s "
                                   f"vector of {n} values (channel 0-{n - 1}, y = x = 0)")
            return (channel,)
        flat = np.prod(shape)
        if not 0 <= channel < flat or y != 0 or x != 0:
            raise RequestError(f"position outside layer {layer}'s output of shape {tuple(shape)}")
        return np.unravel_index(channel, shape)

    def _trace_probabilities(self, fw: _Forward, channel, y, x) -> dict:
        from ..explain.trace import trace_softmax
        last = fw.outputs[-1]
        scores = np.asarray(last.output[0], dtype=np.float64).ravel()
        self._check_position(scores.shape, PROBABILITIES, channel, y, x)
        t = trace_softmax(scores, self.classes)
        return {"layer": PROBABILITIES, "type": "Softmax", "description": "softmax of the model's last scores",
                "channel": channel, "y": 0, "x": 0, "value": float(fw.probabilities[channel]),
                "inputs": [last.name], "formula": "p_i = e^(s_i) / sum_j e^(s_j)",
                "expression": t.prob_texts[channel], "exponentials": t.exp_texts, "sum": t.sum_text,
                "probabilities": [float(v) for v in t.probabilities], "terms": [
                    {"class": c, "score": float(s), "exp": float(e), "probability": float(p)}
                    for c, s, e, p in zip(self.classes, t.scores, t.exps, t.probabilities)],
                "notes": t.notes, "receptive_field": None}

    # ------------------------------------------------------------------ receptive field
    def receptive_field(self, layer: str, y: int, x: int, spatial: bool = True) -> Optional[dict]:
        """The box of every earlier node (and the input) that the pixel ``(y, x)`` of ``layer`` depends on.

        Returns ``{node: [y0, y1, x0, x1]}`` (inclusive, clipped to the map), or None for a vector.
        """
        if not spatial:
            return None
        boxes: Dict[str, List[float]] = {layer: [y, y, x, x]}
        order = [d["name"] for d in self._layers]
        for name in reversed(order[:self._layer_index[layer] + 1]):
            if name not in boxes:
                continue
            info = self._layers[self._layer_index[name]]
            y0, y1, x0, x1 = boxes[name]
            in_shape = info["input_shape"]
            if len(in_shape) != 3:
                continue
            if "kernel_size" in info and "padding" in info and info["type"] not in _NOT_SLIDING:
                (kh, kw), (sh, sw) = info["kernel_size"], info["stride"]
                dh, dw = info.get("dilation", [1, 1])
                (pt, _), (pl, _) = info["padding"]
                box = [y0 * sh - pt, y1 * sh - pt + dh * (kh - 1), x0 * sw - pl, x1 * sw - pl + dw * (kw - 1)]
            elif len(info["output_shape"]) == 3 and info["output_shape"][1:] == in_shape[1:]:
                box = [y0, y1, x0, x1]
            else:
                box = [0, in_shape[1] - 1, 0, in_shape[2] - 1]   # adaptive/global: the whole map
            box = [max(0, box[0]), min(in_shape[1] - 1, box[1]), max(0, box[2]), min(in_shape[2] - 1, box[3])]
            for src in info["inputs"]:
                if src in boxes:
                    old = boxes[src]
                    boxes[src] = [min(old[0], box[0]), max(old[1], box[1]), min(old[2], box[2]),
                                  max(old[3], box[3])]
                else:
                    boxes[src] = list(box)
        return {k: [int(v) for v in b] for k, b in boxes.items()}

    # ------------------------------------------------------------------ why this class
    def explain(self, img: PreparedImage, method: str, target: Optional[int]) -> dict:
        from ..explain.saliency import grad_cam, saliency_map
        if target is not None and not 0 <= target < len(self.classes):
            raise RequestError(f"class {target} does not exist: the model has {len(self.classes)} classes "
                               f"(0-{len(self.classes) - 1})")
        with self.lock:
            try:
                if method == "saliency":
                    r = saliency_map(self.model, img.x, target)
                    heat = r.saliency[0]
                    peak = float(heat.max())
                    heat = heat / peak if peak > 0 else heat
                    layer = None
                elif method == "gradcam":
                    r = self._grad_cam(img.x, target)
                    heat, layer = r.heatmap[0], r.layer
                else:
                    raise RequestError(f"method must be 'saliency' or 'gradcam', got {method!r}")
            except ValueError as exc:
                raise RequestError(str(exc)) from None
        t = int(r.target[0])
        return {"method": method, "class": self.classes[t], "index": t, "layer": layer,
                "probability": float(r.probabilities[0, t]), "heatmap": encode_array(heat)}

    def _grad_cam(self, x, target):
        """:func:`cnnlab.explain.saliency.grad_cam`; for a graph model whose default Grad-CAM layer
        cannot be found, the last node with feature maps (before the maps are pooled away)."""
        from .. import nn
        from ..explain.saliency import grad_cam
        try:
            return grad_cam(self.model, x, target)
        except (ValueError, KeyError):
            if not isinstance(self.model, nn.Graph):
                raise
        candidates = [d["name"] for d in self._layers
                      if len(d["output_shape"]) == 3 and d["output_shape"][1:] != [1, 1]]
        if not candidates:
            raise RequestError("Grad-CAM needs a node with feature maps (C, H, W); this model has none")
        return grad_cam(self.model, x, target, layer=candidates[-1])

    # ------------------------------------------------------------------ run and test data
    def test_data(self) -> dict:
        """The run's test images (the first MAX_TEST_IMAGES) with predictions, evaluated once."""
        if self._test is not None:
            return self._test
        with self.lock:
            if self._test is not None:
                return self._test
            if self.run_dir is None or not self._config:
                raise RequestError("this model has no run (no config.json naming its data set): no test images; "
                                   "upload an image or draw one", 404)
            from ..explain.features import predict_proba
            from ..explain.runs import Run, load_test_data
            run = Run(self.run_dir, self.saved, self._history, self._metrics, self._config)
            try:
                data = load_test_data(run, limit=MAX_TEST_IMAGES, download=False)
            except (OSError, ValueError) as exc:
                raise RequestError(f"cannot read the run's test images: {exc}", 404) from None
            probs = predict_proba(self.model, self.saved.preprocess(data.images))
            preds = probs.argmax(axis=1)
            k = len(self.classes)
            from ..explain.runs import confusion_matrix
            cm = confusion_matrix(data.labels, preds, k)
            self._test = {"images": data.images, "labels": np.asarray(data.labels), "predictions": preds,
                          "probabilities": probs, "confusion": cm, "description": data.description}
        return self._test

    def samples(self, cls: Optional[int] = None, predicted: Optional[int] = None, wrong_only: bool = False,
                limit: int = 200) -> dict:
        test = self.test_data()
        labels, preds = test["labels"], test["predictions"]
        mask = np.ones(len(labels), bool)
        if cls is not None:
            mask &= labels == cls
        if predicted is not None:
            mask &= preds == predicted
        if wrong_only:
            mask &= labels != preds
        idx = np.flatnonzero(mask)
        return {"count": int(idx.size), "total": int(len(labels)), "samples": [
            {"index": int(i), "label": self.classes[int(labels[i])], "label_index": int(labels[i]),
             "predicted": self.classes[int(preds[i])], "predicted_index": int(preds[i]),
             "probability": float(test["probabilities"][i, preds[i]]),
             "correct": bool(labels[i] == preds[i])} for i in idx[:limit]]}

    def sample_png(self, k: int, scale: int = 1) -> bytes:
        from ..explain.images import png_bytes
        test = self.test_data()
        if not 0 <= k < len(test["labels"]):
            raise RequestError(f"sample {k} does not exist: there are {len(test['labels'])} test images", 404)
        return png_bytes(test["images"][k], scale)

    def run_info(self) -> dict:
        out = {"name": self.model_info()["name"], "history": self._history, "metrics": self._metrics,
               "config": {k: v for k, v in (self._config or {}).items() if k not in ("data_dir", "out")},
               "classes": self.classes, "confusion": None}
        if isinstance(out["metrics"], dict):
            out["metrics"] = {k: v for k, v in out["metrics"].items() if k != "run_dir"}
        try:
            test = self.test_data()
        except RequestError as exc:
            out["test_error"] = str(exc)
        else:
            out["confusion"] = test["confusion"].tolist()
            out["test_count"] = int(len(test["labels"]))
            out["test_accuracy"] = float((test["labels"] == test["predictions"]).mean())
            out["test_description"] = test["description"]
        return out

    def kernels(self, layer: str) -> dict:
        info = self.layer_info(layer)
        module = self._modules[layer]
        w = getattr(module, "weight", None)
        if w is None:
            raise RequestError(f"layer {layer} ({info['type']}) has no weights")
        b = getattr(module, "bias", None)
        return {"layer": layer, "type": info["type"], "weight": encode_array(np.asarray(w._data)),
                "bias": None if b is None else [float(v) for v in np.asarray(b._data).ravel()]}

    def feature_png(self, fw: _Forward, layer: str, channel: int, scale: int = 1) -> bytes:
        from ..explain.images import png_bytes
        self.layer_info(layer)
        out = fw.by_name[layer].output[0]
        if out.ndim != 3:
            raise RequestError(f"layer {layer} outputs a vector of shape {tuple(out.shape)}, not feature maps")
        if not 0 <= channel < out.shape[0]:
            raise RequestError(f"channel {channel} is outside layer {layer}'s {out.shape[0]} channels "
                               f"(0-{out.shape[0] - 1})")
        lo, hi = float(out.min()), float(out.max())
        m = (out[channel] - lo) / (hi - lo) if hi > lo else np.zeros_like(out[channel])
        return png_bytes(m, scale)
