"""`cnnlab explain|filter|report`: the commands that show what happens inside a network.

* ``cnnlab explain conv|pool|activation|dense|softmax|sigmoid`` print the
  arithmetic of one step on a small input, the way the articles write it.
* ``cnnlab filter IMAGE --kernel sobel-x`` applies a classic kernel to an
  image with cnnlab's own ``conv2d`` and writes the picture.
* ``cnnlab explain features|saliency RUN_DIR IMAGE`` draw what a trained
  network computes for one image, and why it picks its class.
* ``cnnlab explain curves|confusion|mistakes RUN_DIR`` draw the training and
  test results; ``cnnlab report RUN_DIR`` puts everything in one HTML file.

Argument parsing lives here; the work is done by :mod:`cnnlab.explain`.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path
from typing import List, Optional, Tuple

from ._errors import UsageError
from ._args import non_negative_int as _nonneg_int
from ._args import number as _number
from ._args import positive_int as _pos_int

__all__ = ["register", "parse_padding", "parse_positions", "parse_stride", "parse_params"]

_FORMATTER = argparse.RawDescriptionHelpFormatter
#: matrices larger than this (rows or columns) are summarised instead of printed
PRINT_LIMIT = 24
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm")


def _use_agg() -> None:
    """Pin matplotlib to its raster backend (no display); the CLI owns its process."""
    import matplotlib
    matplotlib.use("Agg")


# =========================================================================== argument parsing
def parse_stride(text, option: str = "--stride") -> Tuple[int, int]:
    """``"2"`` -> ``(2, 2)``; ``"2,1"`` -> ``(2, 1)`` (rows, columns)."""
    parts = [p for p in re.split(r"[,\s]+", str(text).strip()) if p]
    try:
        values = [int(p) for p in parts]
    except ValueError:
        values = []
    if len(values) == 1:
        values *= 2
    if len(values) != 2 or min(values) < 1:
        raise UsageError(f"{option} must be a positive int or 'rows,columns' such as 2 or 2,1, got {text!r}")
    return values[0], values[1]


def parse_padding(text):
    """``"1"``, ``"1,2"`` (rows, columns), ``"0,1,0,1"`` (top, bottom, left, right), ``same`` or ``valid``."""
    t = str(text).strip().lower()
    if t in ("same", "valid"):
        return t
    parts = [p for p in re.split(r"[,\s]+", t.strip("()[]")) if p]
    try:
        values = [int(p.strip("()[]")) for p in parts]
    except ValueError:
        values = []
    if values and min(values) >= 0:
        if len(values) == 1:
            return values[0]
        if len(values) == 2:
            return (values[0], values[1])
        if len(values) == 4:
            return ((values[0], values[1]), (values[2], values[3]))
    raise UsageError(f"--padding must be 'same', 'valid', N, 'rows,columns' or 'top,bottom,left,right' "
                     f"(ints >= 0), got {text!r}")


def parse_positions(text) -> Optional[List[Tuple[int, int]]]:
    """``"0,0; 1,1"`` -> ``[(0, 0), (1, 1)]``; ``"all"`` -> None (every position)."""
    t = str(text).strip()
    if t.lower() == "all":
        return None
    out = []
    for chunk in t.split(";"):
        if not chunk.strip():
            continue
        parts = [p for p in re.split(r"[,\s]+", chunk.strip().strip("()")) if p]
        try:
            pair = tuple(int(p) for p in parts)
        except ValueError:
            pair = ()
        if len(pair) != 2:
            raise UsageError(f"--positions takes 'row,column' pairs separated by ';' (like '0,0; 1,1') or "
                             f"'all', got {chunk.strip()!r} in {text!r}")
        out.append(pair)
    if not out:
        raise UsageError("--positions is empty: give 'row,column' pairs like '0,0; 1,1', or 'all'")
    return out


_ANGLES = ("theta", "phase")  # filter arguments that are angles (radians, or with a unit suffix)
PARAM_HELP = ("argument of a named filter, e.g. --param sigma=2 --param size=7 (repeatable); angles (gabor "
              "theta, phase) are in radians, or in degrees with a deg suffix: --param theta=45deg")


def parse_params(items) -> dict:
    """``["size=7", "sigma=2", "theta=45deg"]`` -> ``{"size": 7, "sigma": 2.0, "theta": 0.785...}``
    (ints stay ints; true/false are bools; ``deg``/``°`` and ``rad`` suffixes convert to radians)."""
    import math
    out = {}
    for item in items or []:
        if "=" not in item:
            raise UsageError(f"--param takes NAME=VALUE (like sigma=2), got {item!r}")
        key, value = (s.strip() for s in item.split("=", 1))
        key = key.replace("-", "_")
        low = value.lower()
        if low in ("true", "false"):
            out[key] = low == "true"
            continue
        unit = next((u for u in ("deg", "°", "rad") if low.endswith(u)), None)
        if unit is not None:
            if key not in _ANGLES:
                raise UsageError(f"--param {key}: {value!r} has an angle unit, but {key} is not an angle "
                                 f"(angles: {', '.join(_ANGLES)})")
            try:
                number = float(low[:-len(unit)].strip())
            except ValueError:
                raise UsageError(f"--param {key}: {value!r} is not an angle like 45deg or 0.785rad") from None
            out[key] = math.radians(number) if unit in ("deg", "°") else number
            continue
        if key in _ANGLES and _is_float(value) and abs(float(value)) > 2 * math.pi:
            print(f"cnnlab: note: --param {key}={value} is read in radians ({math.degrees(float(value)):g} "
                  f"degrees); write {value}deg for degrees", file=sys.stderr)
        try:
            out[key] = int(value)
        except ValueError:
            try:
                out[key] = float(value)
            except ValueError:
                raise UsageError(f"--param {key}: {value!r} is not a number") from None
    return out


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _looks_like_image(text: str) -> bool:
    return os.path.exists(text) or text.lower().endswith(_IMAGE_SUFFIXES)


# =========================================================================== inputs
def _image_input(args, channels: int, what: str = "input"):
    """An image file read for a trace: grayscale/RGB, optional crop and downscale, 0-255 or 0-1 values."""
    import numpy as np

    from ..explain.images import crop, fit_size, image_channels, load_image, parse_crop, parse_size
    path = Path(args.input)
    if not path.exists():
        raise FileNotFoundError(f"{what} image {path} does not exist")
    (h, w), _ = image_channels(path)
    notes = []
    size = None
    if args.size is not None:
        if str(args.size).lower() not in ("full", "0"):
            target = parse_size(args.size)
            size = fit_size((h, w), target[0]) if re.fullmatch(r"\s*\d+\s*", str(args.size)) else target
    elif args.crop is None and max(h, w) > 16:
        size = fit_size((h, w), 16)
    image = load_image(path, channels=channels, size=size)
    if size is not None and tuple(size) != (h, w):
        notes.append(f"image {path.name} ({h}x{w}) resized to {size[0]}x{size[1]} for a readable trace "
                     f"(choose with --size N, --size full, or --crop top,left,height,width)")
    if args.crop is not None:
        box = parse_crop(args.crop)
        image = crop(image, box)
        notes.append(f"cropped rows {box[0]}-{box[0] + box[2] - 1}, columns {box[1]}-{box[1] + box[3] - 1}")
    image = image.astype(np.float64)
    if args.pixel_range == "255":
        image = np.round(image * 255.0)
        notes.append(f"{'grayscale' if channels == 1 else 'RGB'} pixel values 0-255")
    else:
        notes.append(f"{'grayscale' if channels == 1 else 'RGB'} pixel values scaled to 0-1")
    return (image[0] if channels == 1 else image), notes


def _matrix_input(text: str):
    from ..explain import parse_array
    try:
        return parse_array(text)
    except ValueError as exc:
        raise UsageError(f"--input: {exc}") from None


def _add_image_options(p, run_note: str = "") -> None:
    g = p.add_argument_group("image input (when --input is an image file)")
    g.add_argument("--size", metavar="N|HxW|full",
                   help="resize first: N = longer side in pixels (aspect kept), HxW exact, full = as is "
                        "(default: shrink to 16 when larger, so the printed trace stays readable)"
                        + run_note)
    g.add_argument("--crop", metavar="TOP,LEFT,H,W", help="trace only this region (after --size)")
    g.add_argument("--pixel-range", choices=("255", "1"), default="255",
                   help="pixel values 0-255 integers (default, as in the articles) or 0-1")


# =========================================================================== text helpers
def _too_big(a) -> bool:
    return a.ndim >= 2 and max(a.shape[-2:]) > PRINT_LIMIT


def _stats(a) -> str:
    from ..explain import fmt
    return f"min {fmt(a.min())}, max {fmt(a.max())}, mean {fmt(a.mean())}"


def _shape(a) -> str:
    return "x".join(str(int(n)) for n in a.shape)


def _format_conv(trace, output_path: Optional[str]) -> str:
    """:func:`format_conv_trace`, with matrices too large for a terminal summarised."""
    from ..explain import format_conv_trace, format_matrix
    if not (_too_big(trace.image) or _too_big(trace.output)):
        return format_conv_trace(trace)
    full = format_conv_trace(trace).split("\n")
    where = f"; the picture is in {output_path}" if output_path else "; write it as a picture with --output FILE"
    lines = full[:2] + ["", f"input ({_shape(trace.image)}): too large to print ({_stats(trace.image)}); "
                            f"trace a small region with --crop or --size"]
    lines += [f"kernel ({_shape(trace.kernel)}):", format_matrix(trace.kernel)]
    if trace.bias:
        lines.append(f"bias: {trace.bias:g}")
    lines += ["", "output size = (W + 2P - K) / S + 1, rounded down:"]
    lines += [f"  {s.axis + ':':<7} {s.formula}" for s in trace.sizes]
    lines += [f"  warning: {w}" for w in trace.warnings]
    lines += [f"note: {n}" for n in trace.notes]
    where_pad = " of the padded input" if any(sum(p) for p in trace.padding) else ""
    for s in trace.steps:
        lines += ["", f"out[{s.position[0]}, {s.position[1]}]: window rows {s.rows[0]}-{s.rows[1] - 1}, "
                      f"columns {s.cols[0]}-{s.cols[1] - 1}{where_pad}"]
        lines += ["  " + line for line in s.text.split("\n")]
    lines += ["", f"feature map ({_shape(trace.output)}): too large to print ({_stats(trace.output)}){where}"]
    return "\n".join(lines)


def _format_pool(trace, output_path: Optional[str]) -> str:
    from ..explain import format_pool_trace
    if not (_too_big(trace.image) or _too_big(trace.output)):
        return format_pool_trace(trace)
    full = format_pool_trace(trace).split("\n")
    where = f"; the picture is in {output_path}" if output_path else "; write it as a picture with --output FILE"
    lines = full[:2] + ["", f"input ({_shape(trace.image)}): too large to print ({_stats(trace.image)}); "
                            f"trace a small region with --crop or --size", ""]
    lines += ["output size = (W + 2P - K) / S + 1, rounded down:"]
    lines += [f"  {s.axis + ':':<7} {s.formula}" for s in trace.sizes]
    lines += [f"  warning: {w}" for w in trace.warnings]
    lines += [f"note: {n}" for n in trace.notes]
    multi = trace.image.ndim == 3
    for st in trace.steps:
        ch = f"channel {st.channel}, " if multi else ""
        lines += ["", f"out[{ch}{st.position[0]}, {st.position[1]}]: window rows {st.rows[0]}-{st.rows[1] - 1}, "
                      f"columns {st.cols[0]}-{st.cols[1] - 1}", "  " + st.text]
    lines += ["", f"pooled map ({_shape(trace.output)}): too large to print ({_stats(trace.output)}){where}"]
    return "\n".join(lines)


def _say_written(path) -> None:
    print(f"wrote {path}")


# =========================================================================== explain conv
def _kernel_from_args(args):
    """``(kernel, bias, description)`` from --kernel NAME|MATRIX, or None when --run is used."""
    import numpy as np

    from .. import filters
    from ..explain import parse_array
    text = args.kernel.strip()
    params = parse_params(args.param)
    key = text.lower().replace("_", "-")
    if key in filters.NAMES or key == "box-blur":
        try:
            kernel = np.asarray(filters.get(key, **params), dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise UsageError(f"--param: {exc}") from None
        detail = ", ".join(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())
        return kernel, 0.0, f"classic filter {key}" + (f" ({detail})" if detail else "")
    if params:
        raise UsageError("--param applies to named filters (" + ", ".join(filters.NAMES) + ")")
    if not re.search(r"\d", text):
        raise UsageError(f"--kernel: unknown filter {text!r}; use one of {', '.join(filters.NAMES)} or a matrix "
                         f"like '0 1; 2 3'")
    try:
        kernel = parse_array(text)
    except ValueError as exc:
        raise UsageError(f"--kernel: {exc}") from None
    return kernel, 0.0, "kernel given on the command line"


def _finite(run):
    """Refuse a run whose weights or statistics hold NaN/inf: its pictures and scores would mean nothing."""
    from ..train import check_finite_model
    check_finite_model(run.saved.model, run.path)
    return run


def _model_input_said(model_input, saved, path, invert):
    """``model_input``, with its warnings about the image on stderr (as ``cnnlab predict`` gives them)."""
    notes: list = []
    result = model_input(saved, path, invert, notes)
    for text in notes:
        print(f"cnnlab explain: warning: {path}: {text}", file=sys.stderr)
    return result


def _layer_input(run, layer_name: str, image_path: str, invert: bool):
    """What layer ``layer_name`` of the run's model receives for this image: ``(C, H, W)`` float64."""
    import numpy as np

    from ..explain.features import layer_input
    from ..explain.runs import model_input
    _, x = model_input(run.saved, image_path, invert)
    return np.asarray(layer_input(run.model, x, layer_name)[0], dtype=np.float64)


def cmd_conv(args) -> int:
    """``cnnlab explain conv``: the kernel (a named filter, a matrix or a trained layer), the input
    (a matrix, an image, or the feature maps that reach a trained layer), the trace, and the check
    against the engine."""
    from ..explain import trace_conv2d

    notes: List[str] = []
    kernel, source, bias, stride, run, name, conv = _conv_kernel(args, notes)
    image = _conv_input(args, kernel, run, name, conv, notes)
    padding = parse_padding(args.padding) if args.padding is not None else None
    if run is not None and padding is None:
        h, w = image.shape[-2:]
        padding = conv.resolved_padding(h, w)
        if conv.padding not in ((0, 0), "valid"):
            notes.append(f"padding from layer {name}: {conv.padding}")
    padding = 0 if padding is None else padding
    positions = parse_positions(args.positions) if args.positions is not None else None
    try:
        trace = trace_conv2d(image, kernel, stride=stride, padding=padding, bias=bias, positions=positions,
                             max_positions=10 ** 9 if args.positions and positions is None else args.max_positions)
    except ValueError as exc:
        raise ValueError(f"{exc}") from None
    _print_conv_trace(args, trace, source, notes)
    return 0


def _conv_kernel(args, notes: List[str]):
    """``(kernel, source, bias, stride, run, layer_name, conv_layer)`` from ``--kernel`` or ``--run``."""
    from ..explain.features import conv_kernel, conv_layer_names, find_layer
    name = conv = None
    stride = parse_stride(args.stride) if args.stride is not None else None
    bias = args.bias
    run = None
    if args.run:
        if args.kernel:
            raise UsageError("give either --kernel or --run RUN_DIR --layer L --channel C, not both")
        from ..explain.runs import open_run
        run = open_run(args.run)
        convs = conv_layer_names(run.model)
        if not convs:
            raise ValueError(f"the model in {args.run} has no convolution layer")
        layer_name = str(args.layer) if args.layer is not None else convs[0]
        name, conv = find_layer(run.model, layer_name)
        kernel, layer_bias, source = conv_kernel(run.model, name, args.channel, args.in_channel)
        if conv.dilation != (1, 1) or conv.groups != 1 or conv.padding_mode != "zeros":
            raise ValueError(f"layer {name} uses dilation/groups/padding_mode, which the trace does not draw; "
                             "pick a plain convolution layer")
        if bias is None:
            bias = layer_bias
        if stride is None:
            stride = conv.stride
        else:
            notes.append(f"stride {stride} given on the command line (the layer uses {conv.stride})")
    else:
        if args.layer is not None or args.channel != 0 or args.in_channel is not None:
            raise UsageError("--layer, --channel and --in-channel need --run RUN_DIR")
        if not args.kernel:
            raise UsageError("give a kernel: --kernel NAME|MATRIX (e.g. sobel-x or '0 1; 2 3'), or a trained "
                             "layer with --run RUN_DIR --layer L --channel C")
        kernel, _, source = _kernel_from_args(args)
        bias = 0.0 if bias is None else bias
        stride = (1, 1) if stride is None else stride
    return kernel, source, bias, stride, run, name, conv


def _conv_input(args, kernel, run, name, conv, notes: List[str]):
    """The traced input: a matrix, an image file, or (with ``--run``) what reaches layer ``name``."""
    if _looks_like_image(args.input):
        if run is not None:
            if args.size is not None:
                raise UsageError(f"--size cannot be used with --run: the image is resized to the model's "
                                 f"input size {'x'.join(map(str, run.saved.input_shape))}")
            image = _layer_input(run, name, args.input, args.invert)
            from ..explain.features import model_graph
            first = model_graph(run.model).node(name).inputs[0] == "input"
            what = "the normalised image" if first else f"the feature maps entering layer {name}"
            notes.append(f"input: {what} for {Path(args.input).name}, exactly as the model computes it")
            if args.in_channel is not None and image.shape[0] > 1:
                image = image[args.in_channel]
                notes.append(f"only input channel {args.in_channel} is traced (--in-channel)")
            elif image.shape[0] == 1:
                image = image[0]
            if args.crop is not None:
                from ..explain.images import crop, parse_crop
                img3 = image if image.ndim == 3 else image[None]
                img3 = crop(img3, parse_crop(args.crop))
                image = img3 if image.ndim == 3 else img3[0]
                if conv.padding not in ((0, 0), "valid"):
                    notes.append("cropped: windows at the crop's border see zero padding instead of the pixels "
                                 "around the region, so those outputs differ from the model's")
        else:
            channels = kernel.shape[0] if kernel.ndim == 3 else 1
            if channels not in (1, 3):
                raise UsageError(f"an image has 1 or 3 channels, but the kernel has {channels}")
            image, image_notes = _image_input(args, channels)
            notes += image_notes
    else:
        if args.size is not None or args.crop is not None:
            raise UsageError("--size and --crop apply to image files; --input is a matrix")
        image = _matrix_input(args.input)
    return image


def _print_conv_trace(args, trace, source: str, notes: List[str]) -> None:
    """Print the trace, check it against ``cnnlab.functional.conv2d``, draw it with ``--output``."""
    import numpy as np

    from .. import functional as F
    # the engine must agree with the trace
    img4 = trace.image if trace.image.ndim == 3 else trace.image[None]
    ker4 = trace.kernel if trace.kernel.ndim == 3 else np.broadcast_to(trace.kernel, (img4.shape[0],)
                                                                        + trace.kernel.shape)
    engine = F.conv2d(img4[None].astype(np.float64), np.ascontiguousarray(ker4[None], dtype=np.float64),
                      np.array([trace.bias]), stride=trace.stride, padding=trace.padding)._data[0, 0]
    diff = float(np.abs(engine - trace.output).max())

    print(f"kernel: {source}")
    for n in notes:
        print(f"note: {n}")
    print()
    print(_format_conv(trace, args.output))
    print()
    print(f"check: cnnlab.functional.conv2d computes the same feature map (largest difference {diff:.3g})")
    if diff > 1e-6 * max(1.0, float(np.abs(engine).max())):
        raise RuntimeError(f"the traced feature map and cnnlab.functional.conv2d disagree by {diff:g}")
    if args.output:
        _use_agg()
        from ..explain.plots import conv_figure, save_figure
        s = trace.stride[0] if trace.stride[0] == trace.stride[1] else trace.stride
        (pt, pb), (pl, pr) = trace.padding
        pad = str(pt) if pt == pb == pl == pr else f"top {pt}, bottom {pb}, left {pl}, right {pr}"
        fig = conv_figure(trace.image, trace.kernel, trace.output,
                          f"convolution, stride {s}, padding {pad}: {_shape(trace.image)} -> {_shape(trace.output)}",
                          padded=trace.padded if any(map(sum, trace.padding)) else None)
        _say_written(save_figure(fig, args.output))


# =========================================================================== explain pool
def cmd_pool(args) -> int:
    import numpy as np

    from .. import functional as F
    from ..explain import trace_pool2d
    from ..tensor import Tensor

    positions = parse_positions(args.positions) if args.positions is not None else None
    stride = parse_stride(args.stride) if args.stride is not None else None
    padding = parse_padding(args.padding)
    if isinstance(padding, str) or (isinstance(padding, tuple) and isinstance(padding[0], tuple)):
        raise UsageError("pooling --padding is N or 'rows,columns' (the same on both sides, at most half the "
                         f"window), got {args.padding!r}")
    kernel_size = parse_stride(args.kernel_size, "--kernel-size")
    notes: List[str] = []
    if _looks_like_image(args.input):
        image, notes = _image_input(args, 3 if args.rgb else 1)
    else:
        if args.size is not None or args.crop is not None:
            raise UsageError("--size and --crop apply to image files; --input is a matrix")
        image = _matrix_input(args.input)
    trace = trace_pool2d(image, kernel_size=kernel_size, stride=stride, padding=padding, mode=args.mode,
                         count_include_pad=not args.exclude_pad, positions=positions,
                         max_positions=10 ** 9 if args.positions and positions is None else args.max_positions)
    x = Tensor((image if image.ndim == 3 else image[None])[None].astype(np.float64))
    if trace.mode == "max":
        engine = F.max_pool2d(x, kernel_size, trace.stride, trace.padding)
    elif trace.mode == "min":
        engine = F.min_pool2d(x, kernel_size, trace.stride, trace.padding)
    else:
        engine = F.avg_pool2d(x, kernel_size, trace.stride, trace.padding,
                              count_include_pad=not args.exclude_pad)
    engine = engine._data[0] if image.ndim == 3 else engine._data[0, 0]
    diff = float(np.abs(engine - trace.output).max())
    for n in notes:
        print(f"note: {n}")
    if notes:
        print()
    print(_format_pool(trace, args.output))
    print()
    name = {"max": "max_pool2d", "min": "min_pool2d", "avg": "avg_pool2d"}[trace.mode]
    print(f"check: cnnlab.functional.{name} computes the same map (largest difference {diff:.3g})")
    if args.output:
        _use_agg()
        from ..explain.plots import pool_figure, save_figure
        s = trace.stride[0] if trace.stride[0] == trace.stride[1] else trace.stride
        fig = pool_figure(trace.image, trace.output, f"{trace.mode} pooling, window "
                          f"{trace.kernel_size[0]}x{trace.kernel_size[1]}, stride {s}: "
                          f"{_shape(trace.image)} -> {_shape(trace.output)}")
        _say_written(save_figure(fig, args.output))
    return 0


# =========================================================================== small traces
def _numbers(args, name: str = "--input"):
    """Numbers from --input or the positional values: a vector, or a matrix with ';'."""
    from ..explain import parse_array, parse_vector
    parts = list(args.values or [])
    if args.input is not None:
        if parts:
            raise UsageError(f"give the numbers either after the command or with {name}, not both")
        parts = [args.input]
    if not parts:
        raise UsageError(f"give some numbers, e.g. {name}='-39.5 2 0.5' (or after the command: -39.5 2 0.5)")
    text = " ".join(parts)
    try:
        return parse_array(text) if (";" in text or "|" in text) else parse_vector(text)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def cmd_activation(args) -> int:
    from ..explain import format_activation_trace, trace_activation
    values = _numbers(args)
    try:
        trace = trace_activation(values, args.function, args.negative_slope, args.approximate)
    except ValueError as exc:
        raise UsageError(f"--function: {exc}") from None
    print(format_activation_trace(trace))
    return 0


def cmd_dense(args) -> int:
    from ..explain import format_dense_trace, parse_array, parse_vector, trace_dense
    inputs = _numbers(args)
    try:
        weights = parse_array(args.weights) if ";" in args.weights else parse_vector(args.weights)
        bias = parse_vector(args.bias) if args.bias is not None else 0.0
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if hasattr(bias, "size") and bias.size == 1:
        bias = float(bias[0])
    print(format_dense_trace(trace_dense(inputs, weights, bias,
                                         None if args.function == "none" else args.function)))
    return 0


def _class_index(text, classes: List[str]) -> int:
    if text in classes:
        return classes.index(text)
    try:
        k = int(text)
    except ValueError:
        raise UsageError(f"--class {text!r} is not a class of this model; classes: {', '.join(classes)}") from None
    if not 0 <= k < len(classes):
        raise UsageError(f"--class {k} is out of range: the model has {len(classes)} classes (0-{len(classes) - 1})")
    return k


def cmd_softmax(args) -> int:
    import numpy as np

    from ..explain import format_softmax_trace, trace_softmax
    labels = args.labels
    if args.run:
        from ..explain.features import layer_outputs
        from ..explain.runs import model_input, open_run
        if args.values:
            raise UsageError("with --run, --input is an image file (its scores come from the model)")
        if not args.input or not _looks_like_image(args.input):
            raise UsageError("with --run RUN_DIR, give an image file: --input IMAGE")
        run = _finite(open_run(args.run))
        _, x = model_input(run.saved, args.input, args.invert)
        outs = layer_outputs(run.model, x)
        scores = np.asarray(outs[-1].output[0], dtype=np.float64)
        if outs[-1].kind in ("Softmax", "LogSoftmax"):
            raise ValueError("the model already ends in a softmax layer; its scores are the output of layer "
                             f"{outs[-2].name}")
        labels = labels or run.classes
        print(f"scores: the output of layer {outs[-1].name} ({outs[-1].kind}) of {run.name} for "
              f"{Path(args.input).name}")
        print()
    else:
        scores = _numbers(args)
        if scores.ndim != 1:
            raise UsageError(f"softmax takes one row of scores, got a {_shape(scores)} matrix")
    sub = {"auto": None, "yes": True, "no": False}[args.subtract_max]
    try:
        trace = trace_softmax(scores, labels, sub)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    print(format_softmax_trace(trace))
    return 0


def cmd_sigmoid(args) -> int:
    from ..explain import format_sigmoid_trace, trace_sigmoid
    value = _numbers(args)
    if value.size != 1:
        raise UsageError(f"sigmoid takes one score (the binary case), got {value.size}; "
                         "use `cnnlab explain softmax` for several")
    print(format_sigmoid_trace(trace_sigmoid(float(value.ravel()[0]), args.labels)))
    return 0


# =========================================================================== filter
def cmd_filter(args) -> int:
    import numpy as np

    from .. import functional as F
    from ..explain.images import load_image, parse_size, save_png
    from ..tensor import Tensor
    _use_agg()
    from ..explain.plots import filter_figure, filter_image, save_figure

    kernel, _, source = _kernel_from_args(args)
    if kernel.ndim != 2:
        raise UsageError(f"a filter kernel is one 2-D matrix, got shape {_shape(kernel)}")
    image_path = Path(args.image)
    size = parse_size(args.size) if args.size else None
    image = load_image(image_path, channels=1 if args.gray else None, size=size)
    stride = parse_stride(args.stride)
    padding = parse_padding(args.padding)
    C = image.shape[0]
    weight = np.broadcast_to(kernel.astype(np.float32), (C, 1) + kernel.shape).copy()
    # one copy of the kernel per channel, groups=C: each channel is filtered on its own
    out = F.conv2d(Tensor(image[None]), Tensor(weight), stride=stride, padding=padding, groups=C)._data[0]
    out = np.asarray(out, dtype=np.float64)
    output = Path(args.output) if args.output else Path(f"{image_path.stem}_{args.kernel.strip().lower()}.png")
    if not args.output and not re.fullmatch(r"[a-z0-9_-]+", args.kernel.strip().lower()):
        output = Path(f"{image_path.stem}_filtered.png")
    detail = f"stride {stride[0] if stride[0] == stride[1] else stride}, padding {args.padding}"
    if args.raw:
        scale = args.scale
        if scale == "auto":
            from ..explain.plots import _resolve_scale
            scale = _resolve_scale("auto", kernel)
        pixels, sentence = filter_image(out, scale)
        save_png(pixels, output)
    else:
        fig, scale, sentence = filter_figure(image, kernel, out, args.kernel.strip(), args.scale, detail)
        save_figure(fig, output)
    kind = "RGB, each channel filtered on its own" if C == 3 else "grayscale"
    print(f"{source} on {image_path.name} ({image.shape[1]}x{image.shape[2]} {kind}), {detail} -> "
          f"{out.shape[1]}x{out.shape[2]}, computed with cnnlab.functional.conv2d")
    print(f"output values: {_stats(out)}")
    print(f"colours: {sentence}")
    _say_written(output)
    return 0


# =========================================================================== run pictures
def _default_out(run, name: str) -> Path:
    from .._files import refuse_links
    return refuse_links(Path(run.path) / "explain" / name, root=run.path)  # no link planted in the run


def _file_tag(name: str) -> str:
    """A layer name as part of a file name: ``conv1``, ``layer1-0-conv1``; a bare position (the layers
    of a Sequential) reads ``layer0``."""
    tag = str(name).replace(".", "-")
    return f"layer{tag}" if tag[:1].isdigit() else tag


# channels per feature-map picture when --max-channels is not given: every channel of a narrow
# layer, the first 16 of a wide one (a 512-channel layer would otherwise draw 64 maps per picture)
_NARROW_LAYER = 64
_WIDE_LAYER_CHANNELS = 16


def _default_max_channels(outs) -> int:
    widest = max((o.output.shape[1] for o in outs if o.output.ndim == 4), default=0)
    return _NARROW_LAYER if widest <= _NARROW_LAYER else _WIDE_LAYER_CHANNELS


def cmd_features(args) -> int:
    import numpy as np

    _use_agg()
    from ..explain.features import first_conv_weight, layer_outputs, to_probabilities
    from ..explain.plots import (feature_map_figure, kernel_figure, probability_figure, save_figure,
                                 vector_figure)
    from ..explain.runs import model_input, open_run
    from ..explain.images import save_png

    run = _finite(open_run(args.run_dir))
    raw, x = _model_input_said(model_input, run.saved, args.image, args.invert)
    out_dir = Path(args.output_dir) if args.output_dir else _default_out(run, f"features_{Path(args.image).stem}")
    outs = layer_outputs(run.model, x)
    name, weight = first_conv_weight(run.model)
    max_channels = args.max_channels or _default_max_channels(outs)
    count = 1 + (weight is not None) + len(outs) + 1
    print(f"writing {count} pictures to {out_dir} (the input, {'the first layer kernels, ' if weight is not None else ''}"
          f"{len(outs)} layer outputs with up to {max_channels} channels each, the probabilities)", flush=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    c, h, w = raw.shape
    written.append(save_png(raw, out_dir / "00_input.png", scale=max(1, 224 // max(h, w))))
    if weight is not None:
        fig = kernel_figure(weight, f"layer {name} kernels", max_channels)
        written.append(save_figure(fig, out_dir / f"01_kernels_{_file_tag(name)}.png"))
    for k, o in enumerate(outs, start=2):
        a = o.output[0]
        tag = f"{k:02d}_{_file_tag(o.name)}_{o.kind.lower()}.png"
        shape = "x".join(map(str, a.shape))
        title = f"layer {o.name}: {o.kind} -> {shape}"
        if a.ndim == 3:
            fig = feature_map_figure(a, title, max_channels)
        else:
            fig = vector_figure(a.ravel(), title)
        written.append(save_figure(fig, out_dir / tag))
    probs = to_probabilities(outs[-1].output, outs[-1].layer)[0]
    fig = probability_figure(probs, run.classes, f"{Path(args.image).name}", top_k=args.top_k)
    written.append(save_figure(fig, out_dir / f"{len(outs) + 2:02d}_probabilities.png"))
    for p in written:
        _say_written(p)
    top = np.argsort(-probs)[:3]
    print(f"prediction for {Path(args.image).name}: " + ", ".join(f"{run.classes[j]} {probs[j]:.1%}" for j in top))
    return 0


def cmd_saliency(args) -> int:
    import numpy as np

    _use_agg()
    from ..explain.plots import save_figure, saliency_figure
    from ..explain.runs import model_input, open_run
    from ..explain.saliency import grad_cam, saliency_map

    run = _finite(open_run(args.run_dir))
    raw, x = _model_input_said(model_input, run.saved, args.image, args.invert)
    target = None if args.class_ is None else _class_index(args.class_, run.classes)
    sal = saliency_map(run.model, x, target)
    cam = grad_cam(run.model, x, target, args.layer)
    probs = sal.probabilities[0]
    pred = int(probs.argmax())
    t = int(sal.target[0])
    title = (f"{Path(args.image).name}: predicted {run.classes[pred]} ({probs[pred]:.1%}); explaining class "
             f"{run.classes[t]} ({probs[t]:.1%}), score = output of the last layer before softmax")
    fig = saliency_figure(raw, sal.saliency[0], cam.heatmap[0], title, cam.cam[0], cam.layer)
    output = Path(args.output) if args.output else _default_out(run, f"saliency_{Path(args.image).stem}.png")
    _say_written(save_figure(fig, output))
    top = np.argsort(-probs)[:3]
    print("prediction: " + ", ".join(f"{run.classes[j]} {probs[j]:.1%}" for j in top))
    print(f"explained class: {run.classes[t]}" + (" (the predicted class)" if args.class_ is None else ""))
    print(f"Grad-CAM layer: {cam.layer} ({cam.layer_description}), maps {cam.cam.shape[1]}x{cam.cam.shape[2]}; "
          f"channel weights (mean gradient): " + ", ".join(f"{v:.3g}" for v in cam.weights[0][:8])
          + (" ..." if cam.weights.shape[1] > 8 else ""))
    return 0


def cmd_curves(args) -> int:
    _use_agg()
    from ..explain.plots import history_figure, save_figure
    from ..explain.runs import open_run
    run = open_run(args.run_dir)
    if run.history is None:
        raise FileNotFoundError(f"{run.path} has no history.csv (it is written by `cnnlab train`)")
    fig = history_figure(run.history, f"{run.name}: training curves")
    output = Path(args.output) if args.output else _default_out(run, "curves.png")
    _say_written(save_figure(fig, output))
    return 0


def _test_evaluation(args, run):
    from ..explain.runs import evaluate_test, load_test_data
    data = load_test_data(run, args.dataset, args.data_dir, args.limit, download=False)
    return data, evaluate_test(run, data)


def cmd_confusion(args) -> int:
    _use_agg()
    from ..explain.plots import confusion_figure, save_figure
    from ..explain.runs import open_run
    run = _finite(open_run(args.run_dir))
    data, ev = _test_evaluation(args, run)
    fig = confusion_figure(ev.confusion, run.classes, f"{run.name}, test data")
    output = Path(args.output) if args.output else _default_out(run, "confusion.png")
    print(f"accuracy {ev.accuracy:.2%} ({int((ev.predictions == ev.labels).sum())}/{len(ev.labels)}), "
          f"loss {ev.loss:.4f}")
    _say_written(save_figure(fig, output))
    return 0


def cmd_mistakes(args) -> int:
    _use_agg()
    from ..explain.plots import mistakes_figure, save_figure
    from ..explain.runs import open_run
    run = _finite(open_run(args.run_dir))
    data, ev = _test_evaluation(args, run)
    idx = ev.most_confident_mistakes(args.count)
    fig = mistakes_figure(data.images[idx], ev.labels[idx], ev.probabilities[idx], run.classes,
                          f"{run.name}: the {len(idx)} most confidently wrong of {len(ev.labels)} test images")
    output = Path(args.output) if args.output else _default_out(run, "mistakes.png")
    wrong = int((ev.predictions != ev.labels).sum())
    print(f"{wrong} of {len(ev.labels)} test images are misclassified; showing {len(idx)}")
    for i in idx:
        p, t = int(ev.predictions[i]), int(ev.labels[i])
        print(f"  test image {i}: predicted {run.classes[p]} ({ev.probabilities[i, p]:.1%}), true "
              f"{run.classes[t]} ({ev.probabilities[i, t]:.1%})")
    _say_written(save_figure(fig, output))
    return 0


def cmd_report(args) -> int:
    _use_agg()
    from ..explain.report import write_report
    path, notes = write_report(args.run_dir, args.output, dataset=args.dataset, data_dir=args.data_dir,
                               samples=args.samples, limit=args.limit)
    for n in notes:
        print(f"note: {n}")
    _say_written(path)
    return 0


# =========================================================================== registration
def _add_data_options(p) -> None:
    p.add_argument("--dataset", metavar="NAME|PATH", help="test data (default: the run's, from config.json)")
    p.add_argument("--data-dir", metavar="DIR", help="folder holding the data set's files (default: the run's)")
    p.add_argument("--limit", type=_pos_int, metavar="N", help="use only the first N test images")


def register(subparsers) -> None:
    """Add ``explain`` (with its subcommands), ``filter`` and ``report`` to the top-level parser."""
    from ..filters import NAMES
    from ..explain.trace import ACTIVATIONS

    filters_text = ", ".join(NAMES)
    ex = subparsers.add_parser(
        "explain", help="show the arithmetic of each step, and what a trained network sees",
        formatter_class=_FORMATTER,
        description="See inside a CNN: the multiply-and-sum of a convolution, pooling windows, activations, "
                    "softmax; feature maps, kernels, saliency and Grad-CAM of a trained run; training curves, "
                    "confusion matrix and mistakes.",
        epilog="examples:\n"
               "  cnnlab explain conv --input '0 1 2; 3 4 5; 6 7 8' --kernel '0 1; 2 3'\n"
               "  cnnlab explain conv --input digit.png --kernel sobel-x --positions '0,0; 3,4' --output map.png\n"
               "  cnnlab explain conv --input digit.png --run RUN_DIR --layer 0 --channel 3\n"
               "  cnnlab explain pool --input '1 0 2 3; 4 6 6 8; 3 1 1 0; 1 2 2 4' --mode max\n"
               "  cnnlab explain activation -39.5 0 2.5 --function relu\n"
               "  cnnlab explain softmax 2.5 1.8 0.2 --labels cat,dog,elephant\n"
               "  cnnlab explain features RUN_DIR digit.png\n"
               "  cnnlab explain saliency RUN_DIR digit.png --class 7")
    sub = ex.add_subparsers(dest="explain_command", metavar="WHAT")
    sub.required = True
    _add_conv(filters_text, sub)
    _add_pool(sub)
    _add_activation(ACTIVATIONS, sub)
    _add_dense(ACTIVATIONS, sub)
    _add_softmax(sub)
    _add_sigmoid(sub)
    _add_features(sub)
    _add_saliency(sub)
    _add_filter(filters_text, subparsers)
    _add_report(subparsers)


def _add_conv(filters_text, sub) -> None:
    """The ``conv`` command's arguments."""
    p = sub.add_parser(
        "conv", help="the multiply-and-sum of a convolution, window by window",
        formatter_class=_FORMATTER,
        description="Slide a kernel over an input and print, for chosen output positions, every product and "
                    "their sum, e.g. (0x0) + (1x1) + (3x2) + (4x3) = 19; then the whole feature map, with the "
                    "output-size arithmetic of the stride and padding. The result is checked against "
                    "cnnlab.functional.conv2d.",
        epilog="INPUT: a matrix, rows separated by ';' ('0 1 2; 3 4 5; 6 7 8'; channels separated by '|'), or an\n"
               "image file (converted to grayscale, shrunk to 16 pixels unless --size/--crop say otherwise).\n"
               f"KERNEL: a named filter ({filters_text}), or a matrix.\n"
               "With --run RUN_DIR the kernel is filter --channel of conv layer --layer of a trained run, the\n"
               "image is prepared as the model does it, and a deeper layer gets the feature maps that reach it.\n"
               "PADDING: N, 'rows,columns', 'top,bottom,left,right' (asymmetric), same or valid.\n\n"
               "examples:\n"
               "  cnnlab explain conv --input '0 1 2; 3 4 5; 6 7 8' --kernel '0 1; 2 3'\n"
               "  cnnlab explain conv --input '1 2 3 4; 5 6 7 8; 9 10 11 12' --kernel '1 0; 0 -1' --stride 2 "
               "--padding same\n"
               "  cnnlab explain conv --input photo.jpg --kernel sobel-y --crop 40,60,8,8 --positions '0,0; 2,3'\n"
               "  cnnlab explain conv --input digit.png --run runs/mnist --layer 0 --channel 3 --output map.png")
    p.add_argument("--input", required=True, metavar="MATRIX|IMAGE", help="the input (see below)")
    p.add_argument("--kernel", metavar="NAME|MATRIX", help=f"the kernel: {filters_text}, or a matrix")
    p.add_argument("--param", action="append", metavar="NAME=VALUE", help=PARAM_HELP)
    p.add_argument("--run", metavar="RUN_DIR", help="take the kernel from a trained run")
    p.add_argument("--layer", metavar="L", help="with --run: index of the conv layer (default: the first)")
    p.add_argument("--channel", type=_nonneg_int, default=0, metavar="C",
                   help="with --run: the filter (output channel) of that layer (default 0)")
    p.add_argument("--in-channel", type=_nonneg_int, metavar="K",
                   help="with --run: trace only input channel K of the filter (default: all)")
    p.add_argument("--invert", action="store_true", help="with --run: invert gray levels (dark strokes on white)")
    p.add_argument("--stride", metavar="S", help="step between windows: N or 'rows,columns' (default 1)")
    p.add_argument("--padding", metavar="P", help="zeros around the input (default 0; see below)")
    p.add_argument("--bias", type=_number, metavar="B", help="added to every output (default 0; with --run the "
                                                             "filter's bias)")
    p.add_argument("--positions", metavar="'R,C; R,C'|all",
                   help="output positions to write out (default: the first 16, row by row)")
    p.add_argument("--max-positions", type=_nonneg_int, default=16, metavar="N",
                   help="how many positions to write out by default (16)")
    p.add_argument("--output", metavar="FILE", help="also draw input, kernel and feature map into FILE (.png/.svg)")
    _add_image_options(p, "; ignored with --run")
    p.set_defaults(func=cmd_conv)


def _add_pool(sub) -> None:
    """The ``pool`` command's arguments."""
    p = sub.add_parser(
        "pool", help="max / average / min pooling windows and the values they pick",
        formatter_class=_FORMATTER,
        description="Print each pooling window, the value it picks (max, min: and where it was) or its mean, and "
                    "the pooled map, with the output-size arithmetic. Checked against cnnlab.functional.",
        epilog="examples:\n"
               "  cnnlab explain pool --input '1 0 2 3; 4 6 6 8; 3 1 1 0; 1 2 2 4' --mode max\n"
               "  cnnlab explain pool --input '1 0 2 3; 4 6 6 8; 3 1 1 0; 1 2 2 4' --mode avg --kernel-size 3 "
               "--stride 1\n"
               "  cnnlab explain pool --input photo.png --size 8 --output pooled.png")
    p.add_argument("--input", required=True, metavar="MATRIX|IMAGE", help="a matrix ('1 0; 4 6') or an image file")
    p.add_argument("--mode", choices=("max", "avg", "min"), default="max", help="what a window gives (default max)")
    p.add_argument("--kernel-size", default="2", metavar="K", help="window size: N or 'rows,columns' (default 2)")
    p.add_argument("--stride", metavar="S", help="step between windows (default: the window size)")
    p.add_argument("--padding", default="0", metavar="P", help="padding on each side, at most half the window")
    p.add_argument("--exclude-pad", action="store_true",
                   help="avg: divide by the real cells only (count_include_pad=False)")
    p.add_argument("--positions", metavar="'R,C; R,C'|all", help="output positions to write out")
    p.add_argument("--max-positions", type=_nonneg_int, default=16, metavar="N",
                   help="how many positions to write out by default (16)")
    p.add_argument("--rgb", action="store_true", help="read an image file as RGB (each channel pooled on its own)")
    p.add_argument("--output", metavar="FILE", help="also draw input and pooled map into FILE")
    _add_image_options(p)
    p.set_defaults(func=cmd_pool)


def _add_activation(ACTIVATIONS, sub) -> None:
    """The ``activation`` command's arguments."""
    p = sub.add_parser(
        "activation", help="an activation function applied to numbers, step by step",
        formatter_class=_FORMATTER,
        description="Apply ReLU, leaky ReLU, sigmoid, tanh or GELU to each number and show the arithmetic.",
        epilog="Negative numbers are numbers (-39.5), not options; everything after '--' is a number too,\n"
               "so put options such as --function before it.\n\nexamples:\n"
               "  cnnlab explain activation -39.5 0 2.5 --function relu\n"
               "  cnnlab explain activation --function tanh -- -1e-3 0 1e-3\n"
               "  cnnlab explain activation --input='-2 -1 0 1 2' --function sigmoid")
    p.add_argument("values", nargs="*", metavar="X", help="numbers")
    p.add_argument("--input", metavar="'X X; X X'", help="numbers as one string (a vector, or a matrix with ';')")
    p.add_argument("--function", default="relu", metavar="NAME", help=f"{', '.join(ACTIVATIONS)} (default relu)")
    p.add_argument("--negative-slope", type=_number, default=0.01, metavar="A", help="leaky-relu slope (0.01)")
    p.add_argument("--approximate", choices=("none", "tanh"), default="none", help="gelu form (default exact)")
    p.set_defaults(func=cmd_activation)


def _add_dense(ACTIVATIONS, sub) -> None:
    """The ``dense`` command's arguments."""
    p = sub.add_parser(
        "dense", help="a fully connected neuron: weighted sum, bias, activation",
        formatter_class=_FORMATTER,
        description="sum of (input x weight) + bias, then the activation, for each neuron.",
        epilog="examples:\n  cnnlab explain dense 155 60 --weights '0.27 0.2'\n"
               "  cnnlab explain dense 1 2 3 --weights '0.1 0.2 0.3; -1 0 1' --bias '0.5 0' --function sigmoid")
    p.add_argument("values", nargs="*", metavar="X", help="the inputs")
    p.add_argument("--input", metavar="'X X X'", help="the inputs as one string")
    p.add_argument("--weights", required=True, metavar="'W W; W W'", help="one row of weights per neuron")
    p.add_argument("--bias", metavar="'B B'", help="one bias, or one per neuron (default 0)")
    p.add_argument("--function", default="relu", metavar="NAME", help=f"{', '.join(ACTIVATIONS)}, or none")
    p.set_defaults(func=cmd_dense)


def _add_softmax(sub) -> None:
    """The ``softmax`` command's arguments."""
    p = sub.add_parser(
        "softmax", help="scores -> probabilities: the exponentials, their sum, each share",
        formatter_class=_FORMATTER,
        description="Turn raw scores into probabilities: e^score for each class, the sum, and each "
                    "e^score / sum. With --run, the scores are a trained model's for an image.",
        epilog="examples:\n  cnnlab explain softmax 2.5 1.8 0.2 --labels cat,dog,elephant\n"
               "  cnnlab explain softmax --run RUN_DIR --input digit.png")
    p.add_argument("values", nargs="*", metavar="SCORE", help="the scores")
    p.add_argument("--input", metavar="'S S S'|IMAGE", help="the scores as one string (or an image with --run)")
    p.add_argument("--labels", metavar="A,B,C", help="class names, comma-separated")
    p.add_argument("--run", metavar="RUN_DIR", help="use this trained model's scores for the image --input")
    p.add_argument("--invert", action="store_true", help="with --run: invert gray levels first")
    p.add_argument("--subtract-max", choices=("auto", "yes", "no"), default="auto",
                   help="subtract the largest score first (auto: only when scores are huge)")
    p.set_defaults(func=cmd_softmax)


def _add_sigmoid(sub) -> None:
    """The ``sigmoid`` command's arguments."""
    p = sub.add_parser(
        "sigmoid", help="binary classification: one score -> two probabilities",
        formatter_class=_FORMATTER, description="P(positive) = 1 / (1 + e^-score), P(negative) = 1 - that.",
        epilog="example:\n  cnnlab explain sigmoid 1.2 --labels cat,dog")
    p.add_argument("values", nargs="*", metavar="SCORE", help="one score")
    p.add_argument("--input", metavar="S", help="the score")
    p.add_argument("--labels", metavar="NEG,POS", help="the two class names (negative first)")
    p.set_defaults(func=cmd_sigmoid)


def _add_features(sub) -> None:
    """The ``features`` command's arguments."""
    p = sub.add_parser(
        "features", help="a trained network's feature maps, kernels, flattened vector and probabilities",
        formatter_class=_FORMATTER,
        description="Run a trained model on one image and draw one picture per layer: every channel's feature "
                    "map (one colour scale per layer, with a colour bar), the first layer's kernels, the "
                    "activations after ReLU and pooling, the flattened vector and the probabilities.",
        epilog="Files are numbered in the order the image flows through the network.\n\nexample:\n"
               "  cnnlab explain features runs/mnist-lenet5 seven.png --output-dir seven/")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory (or a saved model folder)")
    p.add_argument("image", metavar="IMAGE", help="an image file (resized to the model's input)")
    p.add_argument("--output-dir", metavar="DIR", help="where to write (default RUN_DIR/explain/features_IMAGE)")
    p.add_argument("--max-channels", type=_pos_int, metavar="N",
                   help="channels per picture (default 64; 16 when a layer has more than 64)")
    p.add_argument("--top-k", type=_pos_int, default=10, metavar="K",
                   help="classes in the probabilities picture; the rest are summed in one bar (10)")
    p.add_argument("--invert", action="store_true", help="invert gray levels (dark strokes on white)")
    p.set_defaults(func=cmd_features)


def _add_saliency(sub) -> None:
    """The ``saliency`` command's arguments."""
    p = sub.add_parser(
        "saliency", help="why this class: gradient saliency and Grad-CAM heat maps",
        formatter_class=_FORMATTER,
        description="Backpropagate the score of the predicted (or --class) class with cnnlab's autograd: the "
                    "gradient with respect to the pixels (saliency) and, weighted by their mean gradients, the "
                    "last convolution block's feature maps (Grad-CAM).",
        epilog="example:\n  cnnlab explain saliency runs/mnist-lenet5 seven.png --class 1 --output why1.png")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory (or a saved model folder)")
    p.add_argument("image", metavar="IMAGE", help="an image file")
    p.add_argument("--class", dest="class_", metavar="C", help="class to explain: index or name (default: predicted)")
    p.add_argument("--layer", metavar="L", help="Grad-CAM layer (default: end of the last conv block)")
    p.add_argument("--output", metavar="FILE", help="default RUN_DIR/explain/saliency_IMAGE.png")
    p.add_argument("--invert", action="store_true", help="invert gray levels (dark strokes on white)")
    p.set_defaults(func=cmd_saliency)

    # curves / confusion / mistakes
    p = sub.add_parser("curves", help="loss and accuracy per epoch from history.csv",
                       description="Draw the training and validation loss and accuracy of a run.")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--output", metavar="FILE", help="default RUN_DIR/explain/curves.png")
    p.set_defaults(func=cmd_curves)

    p = sub.add_parser("confusion", help="confusion matrix on the test data",
                       description="Classify the run's test images and draw the confusion matrix.")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--output", metavar="FILE", help="default RUN_DIR/explain/confusion.png")
    _add_data_options(p)
    p.set_defaults(func=cmd_confusion)

    p = sub.add_parser("mistakes", help="the most confidently wrong test images",
                       description="Classify the run's test images and draw the wrong ones the model was most "
                                   "sure about, with the probabilities of the predicted and the true class.")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--count", type=_pos_int, default=16, metavar="N", help="how many (16)")
    p.add_argument("--output", metavar="FILE", help="default RUN_DIR/explain/mistakes.png")
    _add_data_options(p)
    p.set_defaults(func=cmd_mistakes)


def _add_filter(filters_text, subparsers) -> None:
    """The ``filter`` command's arguments."""
    p = subparsers.add_parser(
        "filter", help="apply a classic kernel (Sobel, Gaussian, Gabor, ...) to an image",
        formatter_class=_FORMATTER,
        description="Filter an image with a hand-made kernel using cnnlab.functional.conv2d, and draw the image, "
                    "the kernel with its numbers and the result. Grayscale and RGB images (each channel filtered "
                    "on its own) are handled.",
        epilog="colour scales (--scale):\n"
               "  auto       image for blurs (weights >= 0 summing to 1), diverging for signed kernels\n"
               "  image      values clipped to [0, 1] as pixel brightness\n"
               "  diverging  signed responses: blue negative, white 0, red positive (symmetric limits)\n"
               "  abs        |response|: black 0, white the strongest\n\n"
               "examples:\n  cnnlab filter photo.jpg --kernel sobel-x\n"
               "  cnnlab filter photo.jpg --kernel gabor --param theta=45deg --scale abs --output stripes.png\n"
               "  cnnlab filter digit.png --kernel '1 0 -1; 1 0 -1; 1 0 -1' --raw --output edges.png")
    p.add_argument("image", metavar="IMAGE", help="an image file")
    p.add_argument("--kernel", required=True, metavar="NAME|MATRIX", help=f"{filters_text}, or a matrix")
    p.add_argument("--param", action="append", metavar="NAME=VALUE", help=PARAM_HELP)
    p.add_argument("--stride", default="1", metavar="S", help="step between windows (default 1)")
    p.add_argument("--padding", default="0", metavar="P", help="N, 'rows,columns', 'top,bottom,left,right', same "
                                                               "or valid (default 0)")
    p.add_argument("--scale", choices=("auto", "image", "diverging", "abs"), default="auto",
                   help="how values become colours (see below)")
    p.add_argument("--gray", action="store_true", help="convert a colour image to grayscale first")
    p.add_argument("--size", metavar="HxW", help="resize the image first")
    p.add_argument("--raw", action="store_true", help="write only the filtered image (its own pixel size)")
    p.add_argument("--output", metavar="FILE", help="output file (default IMAGE_KERNEL.png here)")
    p.set_defaults(func=cmd_filter)


def _add_report(subparsers) -> None:
    """The ``report`` command's arguments."""
    p = subparsers.add_parser(
        "report", help="one self-contained HTML page about a trained run",
        formatter_class=_FORMATTER,
        description="Write a single HTML file (pictures embedded, no external files) with the architecture and "
                    "its shape arithmetic, the training curves, test metrics and confusion matrix, sample "
                    "predictions, the most confident mistakes, the first layer's kernels, feature maps, and "
                    "saliency / Grad-CAM for a few test images.",
        epilog="example:\n  cnnlab report runs/mnist-lenet5 --data-dir ~/data/mnist")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--output", metavar="FILE", help="default RUN_DIR/report.html")
    p.add_argument("--samples", type=_nonneg_int, default=4, metavar="N",
                   help="test images explained with feature maps and saliency (4; 0: none)")
    _add_data_options(p)
    p.set_defaults(func=cmd_report)
