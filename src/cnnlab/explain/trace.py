"""Arithmetic traces: every number of a convolution, pooling, activation or softmax, written out.

Each ``trace_*`` function computes a small operation the way the seed articles
explain it by hand and returns a dataclass holding the intermediate numbers
*and* the sentences that show them, for example::

    >>> t = trace_conv2d(parse_matrix("0 1 2; 3 4 5; 6 7 8"), parse_matrix("0 1; 2 3"))
    >>> t.steps[0].text
    '(0x0) + (1x1) + (3x2) + (4x3) = 19'
    >>> t.output.tolist()
    [[19.0, 25.0], [37.0, 43.0]]

The matching ``format_*`` function renders a whole trace as terminal text
(aligned matrices, the output-size arithmetic, one line per window), so a
command line only has to parse its arguments and print.

Conventions:

* "Convolution" is what deep learning calls convolution: the kernel slides
  over the input *without being flipped* (a cross-correlation).
* Output sizes come from :func:`cnnlab.functional.shape.conv_output_size`,
  the rule ``(W + 2P - K) / S + 1`` (rounded down).
* Numbers are printed compactly by :func:`fmt`: integers without decimals,
  others with at most 4 decimals (``2.75``, ``0.6262``), tiny ones in
  scientific notation.  A product term is written ``(value x weight)``, e.g.
  ``(3x-1)``; a negative number added to a sum is parenthesised: ``19 + (-3)``.
* All arithmetic is float64.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..functional.shape import conv_output_size, conv_padding, pair, positive_pair

__all__ = [
    "fmt", "format_matrix", "parse_matrix", "parse_vector", "parse_array",
    "AxisSize", "axis_size",
    "ConvStep", "ConvTrace", "trace_conv2d", "format_conv_trace",
    "PoolStep", "PoolTrace", "trace_pool2d", "format_pool_trace",
    "ACTIVATIONS", "ActivationStep", "ActivationTrace", "trace_activation", "format_activation_trace",
    "NeuronStep", "DenseTrace", "trace_dense", "format_dense_trace",
    "SoftmaxTrace", "trace_softmax", "format_softmax_trace",
    "SigmoidTrace", "trace_sigmoid", "format_sigmoid_trace",
    "format_trace",
]

#: Largest number of output positions traced by default (all are still computed).
MAX_POSITIONS = 16
#: Softmax subtracts the largest score before exponentiating when that score's
#: magnitude exceeds this (e^88.7 already overflows float32).
SOFTMAX_SHIFT_ABOVE = 50.0


# =========================================================================== numbers
def fmt(x) -> str:
    """A number written compactly: ``19``, ``2.75``, ``-39.5``, ``0.6262``, ``0.06279``, ``1.234e-07``.

    Integers lose their decimals.  Values of magnitude 1 or more keep at most
    4 decimals; smaller ones keep 4 significant digits (so a small probability
    is not rounded away); trailing zeros are removed.  Values below 1e-4 (and
    above 1e12) use scientific notation.
    """
    x = float(x)
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if x == 0:
        return "0"
    if abs(x) >= 1e12 or abs(x) < 1e-4:
        return f"{x:.4g}"
    decimals = 4 if abs(x) >= 1 else 3 - math.floor(math.log10(abs(x)))
    r = round(x, decimals)
    if r == int(r):
        return str(int(r))
    return f"{r:.{decimals}f}".rstrip("0").rstrip(".")


def _paren(x) -> str:
    """:func:`fmt`, with negative numbers in parentheses (for use after a ``+``)."""
    s = fmt(x)
    return f"({s})" if s.startswith("-") else s


def _sum_text(values: Sequence[float]) -> str:
    """``1 + (-2) + 4``: the first value as is, later negative ones parenthesised."""
    return " + ".join(fmt(v) if i == 0 else _paren(v) for i, v in enumerate(values))


def _shape_text(shape) -> str:
    return "x".join(str(int(n)) for n in shape)


def format_matrix(matrix, indent: str = "  ", mask=None, mask_text: str = "pad") -> str:
    """Right-aligned columns of :func:`fmt` numbers, one line per row.

    A 1-D array prints as one row; a 3-D ``(C, H, W)`` array prints one block
    per channel under a ``channel c:`` heading.  Cells where ``mask`` is true
    print ``mask_text`` instead of their value (used for padding).
    """
    a = np.asarray(matrix, dtype=np.float64)
    m = None if mask is None else np.broadcast_to(np.asarray(mask, dtype=bool), a.shape)
    if a.ndim == 3:
        blocks = []
        for c in range(a.shape[0]):
            body = format_matrix(a[c], indent + "  ", None if m is None else m[c], mask_text)
            blocks.append(f"{indent}channel {c}:\n{body}")
        return "\n".join(blocks)
    if a.ndim == 1:
        a = a[None]
        m = None if m is None else m[None]
    if a.ndim != 2:
        raise ValueError(f"format_matrix expects a 1-D, 2-D or 3-D array, got shape {a.shape}")
    cells = [[mask_text if m is not None and m[r, c] else fmt(a[r, c]) for c in range(a.shape[1])]
             for r in range(a.shape[0])]
    widths = [max((len(row[c]) for row in cells), default=0) for c in range(a.shape[1])]
    return "\n".join(indent + "  ".join(cell.rjust(w) for cell, w in zip(row, widths)) for row in cells)


# =========================================================================== parsing
_NUMBER_SPLIT = re.compile(r"[\s,]+")


def _parse_row(text: str, where: str) -> List[float]:
    values = []
    for token in _NUMBER_SPLIT.split(text.strip()):
        if not token:
            continue
        try:
            value = float(token)
        except ValueError:
            raise ValueError(f"{where}: {token!r} is not a number (in {text.strip()!r})") from None
        if not math.isfinite(value):
            raise ValueError(f"{where}: {token!r} is not a finite number (in {text.strip()!r})")
        values.append(value)
    return values


def parse_vector(text: str) -> np.ndarray:
    """``"2.5 1.8 0.2"`` or ``"2.5, 1.8, 0.2"`` -> a 1-D float64 array.

    Raises:
        ValueError: for an empty text or a value that is not a finite number.
    """
    if not isinstance(text, str):
        raise TypeError(f"expected a string of numbers like '2.5 1.8 0.2', got {type(text).__name__}")
    values = _parse_row(text, "value list")
    if not values:
        raise ValueError(f"expected at least one number, like '2.5 1.8 0.2', got {text!r}")
    return np.array(values, dtype=np.float64)


def parse_matrix(text: str) -> np.ndarray:
    """``"0 1 2; 3 4 5; 6 7 8"`` -> a 2-D float64 array.

    Rows are separated by ``;`` (or new lines), values by spaces or commas.
    One trailing ``;`` is allowed.

    Raises:
        ValueError: for an empty text, a value that is not a finite number
            (naming its row), or rows of different lengths (naming the row).

    Shape:
        ``(rows, columns)``.
    """
    if not isinstance(text, str):
        raise TypeError(f"expected a string like '0 1 2; 3 4 5', got {type(text).__name__}")
    rows_text = re.split(r"[;\n]", text.strip())
    if len(rows_text) > 1 and not rows_text[-1].strip():
        rows_text = rows_text[:-1]
    rows = []
    for i, row_text in enumerate(rows_text, start=1):
        row = _parse_row(row_text, f"row {i}")
        if not row:
            raise ValueError(f"row {i} is empty in {text!r} (rows are separated by ';', "
                             f"values by spaces or commas)")
        if rows and len(row) != len(rows[0]):
            raise ValueError(f"row {i} has {len(row)} value(s) but row 1 has {len(rows[0])}: "
                             f"{row_text.strip()!r} (every row needs the same number of values)")
        rows.append(row)
    return np.array(rows, dtype=np.float64)


def parse_array(text: str) -> np.ndarray:
    """A matrix, or channels of matrices separated by ``|``.

    ``"1 2; 3 4"`` -> shape ``(2, 2)``; ``"1 2; 3 4 | 5 6; 7 8"`` -> shape
    ``(2, 2, 2)`` (channel, row, column).

    Raises:
        ValueError: as :func:`parse_matrix`, or when channels differ in shape.

    Shape:
        ``(H, W)`` or ``(C, H, W)``.
    """
    if not isinstance(text, str):
        raise TypeError(f"expected a string like '1 2; 3 4 | 5 6; 7 8', got {type(text).__name__}")
    parts = text.split("|")
    if len(parts) == 1:
        return parse_matrix(text)
    channels = []
    for c, part in enumerate(parts):
        try:
            m = parse_matrix(part)
        except ValueError as err:
            raise ValueError(f"channel {c}: {err}") from None
        if channels and m.shape != channels[0].shape:
            raise ValueError(f"channel {c} has shape {m.shape} but channel 0 has shape "
                             f"{channels[0].shape}: every channel needs the same size")
        channels.append(m)
    return np.stack(channels)


# =========================================================================== inputs
def _as_float_array(x, name: str) -> np.ndarray:
    data = x
    if not isinstance(x, (np.ndarray, np.generic)) and isinstance(getattr(x, "_data", None), np.ndarray):
        data = x._data  # a cnnlab Tensor
    try:
        a = np.array(data, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"`{name}` must be numeric (a number, nested list or array), "
                        f"got {type(x).__name__}") from None
    if a.size and not np.all(np.isfinite(a)):
        bad = a.ravel()[~np.isfinite(a.ravel())][:3]
        raise ValueError(f"`{name}` must contain only finite numbers, got {bad.tolist()} in shape {a.shape}")
    return a


def _as_image(x, name: str) -> np.ndarray:
    a = _as_float_array(x, name)
    if a.ndim not in (2, 3) or 0 in a.shape:
        raise ValueError(f"`{name}` must be a non-empty 2-D (H, W) or 3-D (C, H, W) array, "
                         f"got shape {a.shape}")
    return a


def _positions(positions, out_h: int, out_w: int, max_positions: int):
    """Requested output positions, validated; or the first ``max_positions`` row by row."""
    total = out_h * out_w
    if positions is None:
        if isinstance(max_positions, bool) or not isinstance(max_positions, int) or max_positions < 0:
            raise ValueError(f"`max_positions` must be an int >= 0, got {max_positions!r}")
        all_pos = [(r, c) for r in range(out_h) for c in range(out_w)][:max_positions]
        return all_pos, total > len(all_pos)
    if (isinstance(positions, tuple) and len(positions) == 2
            and all(isinstance(p, (int, np.integer)) for p in positions)):
        positions = [positions]
    out = []
    for p in positions:
        try:
            r, c = p
        except (TypeError, ValueError):
            raise TypeError(f"each position must be a (row, column) pair, got {p!r}") from None
        if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in (r, c)):
            raise TypeError(f"each position must be a (row, column) pair of ints, got {p!r}")
        if not (0 <= r < out_h and 0 <= c < out_w):
            raise ValueError(f"position ({r}, {c}) is outside the {out_h}x{out_w} output "
                             f"(rows 0-{out_h - 1}, columns 0-{out_w - 1})")
        out.append((int(r), int(c)))
    return out, False


# =========================================================================== sizes
@dataclass
class AxisSize:
    """The output-size arithmetic of one axis, with the numbers filled in.

    ``formula`` reads e.g. ``"(3 + 2*0 - 2) / 1 + 1 = 2"``; with unequal
    padding ``"(3 + 0 + 1 - 2) / 1 + 1 = 3"``; when the stride does not divide
    evenly ``"(7 + 2*0 - 2) / 2 + 1 = floor(5 / 2) + 1 = 3"`` and ``warning``
    says how many rows or columns at the end no window reaches.
    """
    axis: str                      # "height" or "width"
    size: int                      # W (or H) of the input
    kernel_size: int               # K
    stride: int                    # S
    padding: Tuple[int, int]       # (before, after)
    output: int
    formula: str
    uncovered: int                 # rows/columns at the end that no window reaches
    warning: Optional[str] = None


def axis_size(axis: str, size: int, kernel_size: int, stride: int, padding=(0, 0)) -> AxisSize:
    """:class:`AxisSize` for one axis (``axis`` is ``"height"`` or ``"width"``).

    The output length comes from :func:`conv_output_size`; its errors (kernel
    larger than the padded input, ...) propagate.
    """
    before, after = (padding, padding) if isinstance(padding, int) else padding
    out = conv_output_size(size, kernel_size, stride, (before, after))
    numerator = size + before + after - kernel_size
    pad_text = f"2*{before}" if before == after else f"{before} + {after}"
    head = f"({size} + {pad_text} - {kernel_size}) / {stride} + 1"
    uncovered = numerator % stride
    if uncovered == 0:
        formula = f"{head} = {out}"
        warning = None
    else:
        formula = f"{head} = floor({numerator} / {stride}) + 1 = {out}"
        letter, unit = ("H", "row(s)") if axis == "height" else ("W", "column(s)")
        if before == after:
            pad_sym = "2P"
        else:
            pad_sym = "P_top + P_bottom" if axis == "height" else "P_left + P_right"
        warning = (f"({letter} + {pad_sym} - K) = {numerator} is not a multiple of stride {stride}: "
                   f"the last {uncovered} {unit} are never covered")
        if after:
            warning += f" ({min(after, uncovered)} of them padding)"
    return AxisSize(axis, int(size), int(kernel_size), int(stride), (int(before), int(after)),
                    int(out), formula, int(uncovered), warning)


def _size_lines(sizes: Sequence[AxisSize]) -> List[str]:
    lines = ["output size = (W + 2P - K) / S + 1, rounded down:"]
    for s in sizes:
        lines.append(f"  {s.axis + ':':<7} {s.formula}")
    for s in sizes:
        if s.warning:
            lines.append(f"  warning: {s.warning}")
    return lines


# =========================================================================== convolution
@dataclass
class ConvStep:
    """One output value of a convolution, with its arithmetic.

    ``text`` is the articles' sentence, e.g. ``"(0x0) + (1x1) + (3x2) + (4x3) = 19"``.
    With several channels, ``channel_texts`` holds one such sentence per
    channel and ``text`` adds them up: ``"channel 0: ...\\n...\\ntotal: 19 + 25 = 44"``.
    """
    position: Tuple[int, int]          # (row, column) in the feature map
    rows: Tuple[int, int]              # [start, stop) rows of the padded input
    cols: Tuple[int, int]              # [start, stop) columns of the padded input
    window: np.ndarray                 # (kh, kw), or (C, kh, kw) for a multi-channel input
    products: np.ndarray               # window * kernel, same shape
    channel_sums: Tuple[float, ...]
    channel_texts: Tuple[str, ...]
    bias: float
    value: float
    text: str


@dataclass
class ConvTrace:
    """Everything :func:`trace_conv2d` computed; render it with :func:`format_conv_trace`."""
    image: np.ndarray                  # (H, W) or (C, H, W) as given (float64)
    kernel: np.ndarray                 # (kh, kw) or (C, kh, kw)
    stride: Tuple[int, int]
    padding: Tuple[Tuple[int, int], Tuple[int, int]]   # ((top, bottom), (left, right))
    bias: float
    padded: np.ndarray                 # the zero-padded input, same rank as ``image``
    sizes: Tuple[AxisSize, AxisSize]   # height, width
    output: np.ndarray                 # the whole feature map (out_h, out_w)
    steps: List[ConvStep]
    total_positions: int
    truncated: bool                    # True when only the first ``max_positions`` are traced
    notes: List[str] = field(default_factory=list)

    @property
    def warnings(self) -> List[str]:
        return [s.warning for s in self.sizes if s.warning]

    @property
    def channels(self) -> int:
        return self.image.shape[0] if self.image.ndim == 3 else 1


def _terms_text(window: np.ndarray, kernel: np.ndarray) -> str:
    return " + ".join(f"({fmt(v)}x{fmt(w)})" for v, w in zip(window.ravel(), kernel.ravel()))


def trace_conv2d(image, kernel, stride=1, padding=0, bias: float = 0.0, positions=None,
                 max_positions: int = MAX_POSITIONS) -> ConvTrace:
    """Trace a single-filter 2-D convolution (cross-correlation, no kernel flip).

    Each output value is the sum, over the window under the kernel, of
    ``input x kernel`` (over every channel), plus ``bias``.

    Args:
        image: ``(H, W)`` or ``(C, H, W)`` numbers.
        kernel: ``(kh, kw)`` or ``(C, kh, kw)``.  A 2-D kernel on a
            multi-channel image is used for every channel.
        stride: int or ``(sh, sw)``.
        padding: int, ``(ph, pw)``, ``((top, bottom), (left, right))``,
            ``'valid'`` (no padding) or ``'same'`` (output ``ceil(size /
            stride)``; an odd extra padding pixel goes to the bottom/right, as
            TensorFlow's SAME).  Padding is zeros.
        bias: added to every output value.
        positions: the output positions ``(row, column)`` to trace (one pair
            or a list); by default all of them, up to ``max_positions``.
        max_positions: cap on the default positions (the feature map is
            always computed whole).

    Returns:
        :class:`ConvTrace`.

    Shape:
        image ``(H, W)`` or ``(C, H, W)``, kernel ``(kh, kw)`` or
        ``(C, kh, kw)`` -> output ``(out_h, out_w)`` with
        ``out = (size + pad_before + pad_after - k) // stride + 1``.

    Example:
        >>> t = trace_conv2d([[0, 1, 2], [3, 4, 5], [6, 7, 8]], [[0, 1], [2, 3]])
        >>> for step in t.steps: print(step.text)
        (0x0) + (1x1) + (3x2) + (4x3) = 19
        (1x0) + (2x1) + (4x2) + (5x3) = 25
        (3x0) + (4x1) + (6x2) + (7x3) = 37
        (4x0) + (5x1) + (7x2) + (8x3) = 43
    """
    img = _as_image(image, "image")
    ker = _as_float_array(kernel, "kernel")
    if ker.ndim not in (2, 3) or 0 in ker.shape:
        raise ValueError(f"`kernel` must be a non-empty 2-D (kh, kw) or 3-D (C, kh, kw) array, "
                         f"got shape {ker.shape}")
    notes: List[str] = []
    img3 = img if img.ndim == 3 else img[None]
    C = img3.shape[0]
    if ker.ndim == 3:
        if ker.shape[0] != C:
            raise ValueError(f"kernel has {ker.shape[0]} channel(s) (shape {ker.shape}) but the image has "
                             f"{C} (shape {img.shape}): they must match")
        ker3 = ker
        if img.ndim == 2:
            img = img3
    else:
        ker3 = np.broadcast_to(ker, (C,) + ker.shape)
        if img.ndim == 3:
            notes.append(f"the 2-D kernel is used on each of the {C} channels")
            ker = ker3.copy()
    try:
        bias = float(bias)
    except (TypeError, ValueError):
        raise TypeError(f"`bias` must be a number, got {bias!r}") from None
    if not math.isfinite(bias):
        raise ValueError(f"`bias` must be finite, got {bias}")

    H, W = img3.shape[1:]
    kh, kw = ker3.shape[1:]
    sh, sw = positive_pair(stride, "stride")
    (pt, pb), (pl, pr) = conv_padding(padding, (H, W), (kh, kw), (sh, sw), (1, 1))
    if isinstance(padding, str) and padding == "same" and (pt, pb, pl, pr) != (0, 0, 0, 0):
        text = f"'same' padding: rows {pt} top + {pb} bottom, columns {pl} left + {pr} right"
        if pt != pb or pl != pr:
            text += " (the odd extra pixel goes to the bottom/right, as in TensorFlow)"
        notes.append(text)
    size_h = axis_size("height", H, kh, sh, (pt, pb))
    size_w = axis_size("width", W, kw, sw, (pl, pr))
    oh, ow = size_h.output, size_w.output
    from .._schema import MAX_ACTIVATION_ELEMENTS, check_tensor_size
    check_tensor_size((img3.shape[0], H + pt + pb, W + pl + pr), f"the input padded by {padding!r}",
                      MAX_ACTIVATION_ELEMENTS)  # the size budget, before allocating

    padded3 = np.pad(img3, ((0, 0), (pt, pb), (pl, pr)))
    out = np.zeros((oh, ow))
    for i in range(kh):          # loop over kernel taps only
        for j in range(kw):
            view = padded3[:, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw]
            out += np.tensordot(ker3[:, i, j], view, axes=1)
    out += bias

    chosen, truncated = _positions(positions, oh, ow, max_positions)
    if truncated:
        notes.append(f"showing the first {len(chosen)} of {oh * ow} output positions (row by row); "
                     f"pick others with positions=[(row, column), ...]")
    multi = img.ndim == 3
    steps = []
    for r, c in chosen:
        r0, c0 = r * sh, c * sw
        win3 = padded3[:, r0:r0 + kh, c0:c0 + kw]
        prod3 = win3 * ker3
        sums = tuple(float(p.sum()) for p in prod3)
        value = float(out[r, c])
        texts = tuple(f"{_terms_text(win3[ch], ker3[ch])} = {fmt(sums[ch])}" for ch in range(C))
        bias_text = f" + bias {_paren(bias)}" if bias else ""
        if multi:
            lines = [f"channel {ch}: {t}" for ch, t in enumerate(texts)]
            lines.append(f"total: {_sum_text(sums)}{bias_text} = {fmt(value)}")
            text = "\n".join(lines)
        else:
            text = f"{_terms_text(win3[0], ker3[0])}{bias_text} = {fmt(value)}"
        steps.append(ConvStep((r, c), (r0, r0 + kh), (c0, c0 + kw),
                              win3.copy() if multi else win3[0].copy(),
                              prod3 if multi else prod3[0], sums, texts, bias, value, text))
    padded = padded3 if img.ndim == 3 else padded3[0]
    return ConvTrace(img, ker, (sh, sw), ((pt, pb), (pl, pr)), bias, padded, (size_h, size_w),
                     out, steps, oh * ow, truncated, notes)


def _padding_text(padding) -> str:
    (t, b), (l, r) = padding
    if t == b == l == r:
        return str(t)
    if t == b and l == r:
        return f"({t}, {l})"
    return f"top {t}, bottom {b}, left {l}, right {r}"


def format_conv_trace(trace: ConvTrace) -> str:
    """Terminal text for a :class:`ConvTrace`: input, kernel, size arithmetic, each window, feature map."""
    t = trace
    (pt, pb), (pl, pr) = t.padding
    in_shape = _shape_text(t.image.shape)
    lines = [f"Convolution: {in_shape} input, {_shape_text(t.kernel.shape)} kernel, "
             f"stride {t.stride[0] if t.stride[0] == t.stride[1] else t.stride}, "
             f"padding {_padding_text(t.padding)} -> {_shape_text(t.output.shape)} feature map",
             "Each output value = sum of (input x kernel) over the window under the kernel"
             + (" + bias" if t.bias else "") + " (the kernel is not flipped).",
             "", f"input ({in_shape}):", format_matrix(t.image)]
    if pt or pb or pl or pr:
        lines += [f"padded with zeros ({_shape_text(t.padded.shape)}):", format_matrix(t.padded)]
    lines += [f"kernel ({_shape_text(t.kernel.shape)}):", format_matrix(t.kernel)]
    if t.bias:
        lines.append(f"bias: {fmt(t.bias)}")
    lines += [""] + _size_lines(t.sizes)
    for note in t.notes:
        lines.append(f"note: {note}")
    where = " of the padded input" if (pt or pb or pl or pr) else ""
    for s in t.steps:
        lines += ["", f"out[{s.position[0]}, {s.position[1]}]: window rows {s.rows[0]}-{s.rows[1] - 1}, "
                      f"columns {s.cols[0]}-{s.cols[1] - 1}{where}"]
        lines += ["  " + line for line in s.text.split("\n")]
    lines += ["", f"feature map ({_shape_text(t.output.shape)}):", format_matrix(t.output)]
    return "\n".join(lines)


# =========================================================================== pooling
POOL_MODES = ("max", "avg", "min")


@dataclass
class PoolStep:
    """One pooled value: ``"max(1, 0, 4, 6) = 6 at input (1, 1)"`` or
    ``"(1 + 0 + 4 + 6) / 4 = 11 / 4 = 2.75"``."""
    channel: int
    position: Tuple[int, int]          # (row, column) in the pooled map
    rows: Tuple[int, int]              # [start, stop) rows of the padded input
    cols: Tuple[int, int]
    window: np.ndarray                 # (kh, kw) values; NaN where the window is on padding
    value: float
    source: Optional[Tuple[int, int]]  # (row, column) in the input of the picked value (max/min)
    text: str


@dataclass
class PoolTrace:
    """Everything :func:`trace_pool2d` computed; render it with :func:`format_pool_trace`."""
    image: np.ndarray                  # (H, W) or (C, H, W)
    mode: str
    kernel_size: Tuple[int, int]
    stride: Tuple[int, int]
    padding: Tuple[int, int]
    count_include_pad: bool
    sizes: Tuple[AxisSize, AxisSize]
    output: np.ndarray                 # (out_h, out_w) or (C, out_h, out_w)
    steps: List[PoolStep]
    total_positions: int
    truncated: bool
    notes: List[str] = field(default_factory=list)

    @property
    def warnings(self) -> List[str]:
        return [s.warning for s in self.sizes if s.warning]


def trace_pool2d(image, kernel_size=2, stride=None, padding=0, mode: str = "max",
                 count_include_pad: bool = True, positions=None,
                 max_positions: int = MAX_POSITIONS) -> PoolTrace:
    """Trace max, average or min pooling.

    Args:
        image: ``(H, W)`` or ``(C, H, W)``; each channel is pooled on its own.
        kernel_size: int or ``(kh, kw)``.
        stride: int or pair; defaults to ``kernel_size`` (windows side by side).
        padding: int or ``(ph, pw)`` on both sides, at most half the kernel (as
            in PyTorch).  Max pooling never picks padding (it is -inf, +inf for
            min); average pooling counts padded zeros when
            ``count_include_pad`` (PyTorch's default).
        mode: ``"max"``, ``"avg"`` or ``"min"``.
        positions: output positions ``(row, column)`` to trace; by default
            all of them, up to ``max_positions`` (per channel).

    Returns:
        :class:`PoolTrace`.

    Shape:
        ``(H, W)`` -> ``(out_h, out_w)``; ``(C, H, W)`` -> ``(C, out_h, out_w)``.

    Example:
        >>> trace_pool2d([[1, 0], [4, 6]], mode="avg").steps[0].text
        '(1 + 0 + 4 + 6) / 4 = 11 / 4 = 2.75'
    """
    img = _as_image(image, "image")
    if not isinstance(mode, str) or mode.lower() not in POOL_MODES + ("average", "mean"):
        raise ValueError(f"`mode` must be one of {', '.join(POOL_MODES)}, got {mode!r}")
    mode = {"average": "avg", "mean": "avg"}.get(mode.lower(), mode.lower())
    kh, kw = positive_pair(kernel_size, "kernel_size")
    sh, sw = (kh, kw) if stride is None else positive_pair(stride, "stride")
    ph, pw = pair(padding, "padding")
    for p, k, axis in ((ph, kh, "height"), (pw, kw, "width")):
        if p < 0 or p > k // 2:
            raise ValueError(f"padding must be between 0 and half the kernel size; got padding {p} "
                             f"for a kernel of size {k} along the {axis}")
    img3 = img if img.ndim == 3 else img[None]
    C, H, W = img3.shape
    size_h = axis_size("height", H, kh, sh, (ph, ph))
    size_w = axis_size("width", W, kw, sw, (pw, pw))
    oh, ow = size_h.output, size_w.output

    fill = {"max": -np.inf, "min": np.inf, "avg": 0.0}[mode]
    padded = np.pad(img3, ((0, 0), (ph, ph), (pw, pw)), constant_values=fill)
    real = np.pad(np.ones((H, W), bool), ((ph, ph), (pw, pw)))
    reduce = {"max": np.maximum, "min": np.minimum, "avg": np.add}[mode]
    out = None
    for i in range(kh):          # loop over window taps only
        for j in range(kw):
            view = padded[:, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw]
            out = view.copy() if out is None else reduce(out, view)
    if mode == "avg":
        if count_include_pad:
            divisor = np.full((oh, ow), float(kh * kw))
        else:
            divisor = np.zeros((oh, ow))
            for i in range(kh):
                for j in range(kw):
                    divisor += real[i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw]
        out = out / divisor

    chosen, truncated = _positions(positions, oh, ow, max_positions)
    notes: List[str] = []
    if img.ndim == 3:
        notes.append(f"pooling works on each channel on its own: {C} channel(s) in, {C} channel(s) out "
                     f"(the channel count is unchanged; only height and width shrink)")
    if ph or pw:
        notes.append({"max": "padding is -inf, so a padded cell is never the maximum",
                      "min": "padding is +inf, so a padded cell is never the minimum",
                      "avg": ("padded cells count as 0 and are included in the divisor"
                              if count_include_pad else
                              "padded cells are left out, and the divisor counts only real cells")}[mode])
    if truncated:
        notes.append(f"showing the first {len(chosen)} of {oh * ow} output positions of each channel "
                     f"(row by row); pick others with positions=[(row, column), ...]")
    steps = []
    for ch in range(C):
        for r, c in chosen:
            r0, c0 = r * sh, c * sw
            win = padded[ch, r0:r0 + kh, c0:c0 + kw]
            mask = real[r0:r0 + kh, c0:c0 + kw]
            value = float(out[ch, r, c])
            source = None
            if mode in ("max", "min"):
                flat = int(np.argmax(win) if mode == "max" else np.argmin(win))
                i, j = divmod(flat, kw)
                source = (r0 + i - ph, c0 + j - pw)
                listed = ", ".join(fmt(v) if m else "pad" for v, m in zip(win.ravel(), mask.ravel()))
                text = f"{mode}({listed}) = {fmt(value)} at input ({source[0]}, {source[1]})"
            else:
                used = win.ravel() if count_include_pad else win[mask]
                total = float(used.sum())
                text = (f"({_sum_text(used)}) / {used.size} = {fmt(total)} / {used.size} "
                        f"= {fmt(value)}")
            shown = np.where(mask, win, np.nan)
            steps.append(PoolStep(ch, (r, c), (r0, r0 + kh), (c0, c0 + kw), shown, value, source, text))
    return PoolTrace(img, mode, (kh, kw), (sh, sw), (ph, pw), bool(count_include_pad), (size_h, size_w),
                     out if img.ndim == 3 else out[0], steps, oh * ow, truncated, notes)


def format_pool_trace(trace: PoolTrace) -> str:
    """Terminal text for a :class:`PoolTrace`: input, size arithmetic, each window, pooled map."""
    t = trace
    name = {"max": "Max", "avg": "Average", "min": "Min"}[t.mode]
    s = t.stride[0] if t.stride[0] == t.stride[1] else t.stride
    p = t.padding[0] if t.padding[0] == t.padding[1] else t.padding
    rule = {"max": "the largest value of its window", "min": "the smallest value of its window",
            "avg": "the mean of its window"}[t.mode]
    in_shape = _shape_text(t.image.shape)
    lines = [f"{name} pooling: {in_shape} input, {_shape_text(t.kernel_size)} window, stride {s}, "
             f"padding {p} -> {_shape_text(t.output.shape)}",
             f"Each output value is {rule}.", "", f"input ({in_shape}):", format_matrix(t.image), ""]
    lines += _size_lines(t.sizes)
    for note in t.notes:
        lines.append(f"note: {note}")
    multi = t.image.ndim == 3
    of_padded = " of the padded input" if any(t.padding) else ""
    for st in t.steps:
        where = f"channel {st.channel}, " if multi else ""
        lines += ["", f"out[{where}{st.position[0]}, {st.position[1]}]: window rows "
                      f"{st.rows[0]}-{st.rows[1] - 1}, columns {st.cols[0]}-{st.cols[1] - 1}{of_padded}",
                  "  " + st.text]
    lines += ["", f"pooled map ({_shape_text(t.output.shape)}):", format_matrix(t.output)]
    return "\n".join(lines)


# =========================================================================== activations
ACTIVATIONS = ("relu", "leaky_relu", "sigmoid", "tanh", "gelu", "identity")
_ALIASES = {"linear": "identity", "none": "identity", "leakyrelu": "leaky_relu", "logistic": "sigmoid"}

_GENERAL = {
    "relu": "relu(x) = max(0, x)",
    "leaky_relu": "leaky_relu(x) = x if x >= 0, else negative_slope * x",
    "sigmoid": "sigmoid(x) = 1 / (1 + e^-x)",
    "tanh": "tanh(x) = (e^x - e^-x) / (e^x + e^-x)",
    "gelu": "gelu(x) = x * Phi(x) = x * 0.5 * (1 + erf(x / sqrt(2))), Phi = standard normal CDF",
    "gelu_tanh": "gelu(x) ~ 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))",
    "identity": "identity(x) = x",
}


@dataclass
class ActivationStep:
    """One value through an activation: ``"relu(-39.5) = max(0, -39.5) = 0"``."""
    input: float
    output: float
    text: str


@dataclass
class ActivationTrace:
    """Everything :func:`trace_activation` computed."""
    name: str
    formula: str                       # the general rule, e.g. "relu(x) = max(0, x)"
    inputs: np.ndarray
    outputs: np.ndarray                # same shape as inputs
    steps: List[ActivationStep]
    params: Dict[str, object] = field(default_factory=dict)


def _activation_name(name) -> str:
    if not isinstance(name, str):
        raise TypeError(f"activation name must be a string, got {name!r}")
    key = name.strip().lower().replace("-", "_")
    key = _ALIASES.get(key, key)
    if key not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; valid names: {', '.join(ACTIVATIONS)}")
    return key


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def _activation_step(x: float, name: str, negative_slope: float, approximate: str) -> ActivationStep:
    a = fmt(x)
    if name == "relu":
        y = max(0.0, x)
        return ActivationStep(x, y, f"relu({a}) = max(0, {a}) = {fmt(y)}")
    if name == "leaky_relu":
        if x >= 0:
            return ActivationStep(x, x, f"leaky_relu({a}) = {a} (not negative: unchanged)")
        y = negative_slope * x
        return ActivationStep(x, y, f"leaky_relu({a}) = ({fmt(negative_slope)}x{a}) = {fmt(y)}")
    if name == "sigmoid":
        y = _sigmoid(x)
        if -x > 700:
            return ActivationStep(x, y, f"sigmoid({a}) = 1 / (1 + e^{fmt(-x)}) = {fmt(y)} "
                                        f"(e^{fmt(-x)} is astronomically large)")
        return ActivationStep(x, y, f"sigmoid({a}) = 1 / (1 + e^{fmt(-x)}) = 1 / (1 + {fmt(math.exp(-x))})"
                                    f" = {fmt(y)}")
    if name == "tanh":
        y = math.tanh(x)
        if abs(x) > 20:
            return ActivationStep(x, y, f"tanh({a}) = {fmt(y)} (saturated: |x| > 20)")
        ep, em = math.exp(x), math.exp(-x)
        return ActivationStep(x, y, f"tanh({a}) = (e^{a} - e^{fmt(-x)}) / (e^{a} + e^{fmt(-x)}) = "
                                    f"({fmt(ep)} - {fmt(em)}) / ({fmt(ep)} + {fmt(em)}) = {fmt(y)}")
    if name == "gelu":
        if approximate == "tanh":
            inner = math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)
            y = 0.5 * x * (1.0 + math.tanh(inner))
            return ActivationStep(x, y, f"gelu({a}) ~ 0.5 x {a} x (1 + tanh(0.7979 x ({a} + 0.044715 x "
                                        f"{_paren(x)}^3))) = 0.5 x {a} x (1 + tanh({fmt(inner)})) = {fmt(y)}")
        phi = 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))
        y = x * phi
        return ActivationStep(x, y, f"gelu({a}) = {a} x Phi({a}) = {a} x 0.5 x (1 + erf({fmt(x / math.sqrt(2))}))"
                                    f" = {a} x {fmt(phi)} = {fmt(y)}")
    return ActivationStep(x, x, f"identity({a}) = {a}")


def _check_activation_params(negative_slope, approximate) -> Tuple[float, str]:
    try:
        slope = float(negative_slope)
    except (TypeError, ValueError):
        raise TypeError(f"`negative_slope` must be a number, got {negative_slope!r}") from None
    if not math.isfinite(slope):
        raise ValueError(f"`negative_slope` must be finite, got {slope}")
    if approximate not in ("none", "tanh"):
        raise ValueError(f"`approximate` must be 'none' or 'tanh', got {approximate!r}")
    return slope, approximate


def trace_activation(values, name: str = "relu", negative_slope: float = 0.01,
                     approximate: str = "none") -> ActivationTrace:
    """Trace an elementwise activation on each value.

    Args:
        values: a number or an array of numbers.
        name: one of :data:`ACTIVATIONS` (``relu``, ``leaky_relu``, ``sigmoid``,
            ``tanh``, ``gelu``, ``identity``; hyphens are accepted).
        negative_slope: slope of ``leaky_relu`` for negative inputs.
        approximate: ``gelu`` form, ``'none'`` (exact, with erf) or ``'tanh'``,
            as in ``torch.nn.functional.gelu``.

    Returns:
        :class:`ActivationTrace`; one step per value (row-major).

    Shape:
        any -> the same shape.

    Example:
        >>> trace_activation(-39.5, "relu").steps[0].text
        'relu(-39.5) = max(0, -39.5) = 0'
    """
    key = _activation_name(name)
    slope, approximate = _check_activation_params(negative_slope, approximate)
    x = _as_float_array(values, "values")
    steps = [_activation_step(float(v), key, slope, approximate) for v in x.ravel()]
    outputs = np.array([s.output for s in steps], dtype=np.float64).reshape(x.shape)
    params: Dict[str, object] = {}
    formula = _GENERAL[key]
    if key == "leaky_relu":
        params["negative_slope"] = slope
        formula += f" (negative_slope = {fmt(slope)})"
    if key == "gelu":
        params["approximate"] = approximate
        if approximate == "tanh":
            formula = _GENERAL["gelu_tanh"]
    return ActivationTrace(key, formula, x, outputs, steps, params)


def format_activation_trace(trace: ActivationTrace) -> str:
    """Terminal text for an :class:`ActivationTrace`: the rule, then one line per value."""
    lines = [f"Activation {trace.name}: {trace.formula}", ""]
    lines += ["  " + s.text for s in trace.steps]
    return "\n".join(lines)


@dataclass
class NeuronStep:
    """One neuron of :func:`trace_dense`: weighted sum, then activation."""
    index: int
    products: np.ndarray               # inputs * weights
    pre_activation: float
    sum_text: str                      # "(155x0.27) + (60x0.2) = 53.85"
    activation: ActivationStep         # "relu(53.85) = max(0, 53.85) = 53.85"
    output: float


@dataclass
class DenseTrace:
    """Everything :func:`trace_dense` computed; render with :func:`format_dense_trace`."""
    inputs: np.ndarray                 # (in_features,)
    weights: np.ndarray                # (out_features, in_features)
    bias: np.ndarray                   # (out_features,)
    activation: str
    pre_activation: np.ndarray         # (out_features,)
    outputs: np.ndarray                # (out_features,)
    neurons: List[NeuronStep]


def trace_dense(inputs, weights, bias=0.0, activation: Optional[str] = "relu",
                negative_slope: float = 0.01, approximate: str = "none") -> DenseTrace:
    """Trace fully connected neurons: ``activation(sum(inputs x weights) + bias)``.

    Args:
        inputs: ``(in_features,)`` numbers.
        weights: ``(in_features,)`` for one neuron, or ``(out_features,
            in_features)`` as ``torch.nn.Linear.weight``.
        bias: a number, or one per neuron.
        activation: a name from :data:`ACTIVATIONS`, or None for none.

    Returns:
        :class:`DenseTrace`.

    Shape:
        inputs ``(n,)``, weights ``(n,)`` or ``(m, n)`` -> outputs ``(m,)`` (m = 1 for 1-D weights).

    Example:
        >>> t = trace_dense([155, 60], [0.27, 0.2])
        >>> t.neurons[0].sum_text, t.neurons[0].activation.text
        ('(155x0.27) + (60x0.2) = 53.85', 'relu(53.85) = max(0, 53.85) = 53.85')
    """
    key = _activation_name("identity" if activation is None else activation)
    slope, approximate = _check_activation_params(negative_slope, approximate)
    x = _as_float_array(inputs, "inputs")
    w = _as_float_array(weights, "weights")
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"`inputs` must be a non-empty 1-D array (in_features,), got shape {x.shape}")
    if w.ndim == 1:
        w = w[None]
    if w.ndim != 2 or w.shape[1] != x.size:
        raise ValueError(f"`weights` must have shape ({x.size},) or (out_features, {x.size}) to match "
                         f"inputs of shape {x.shape}, got shape {_as_float_array(weights, 'weights').shape}")
    b = _as_float_array(bias, "bias")
    if b.ndim == 0:
        b = np.full(w.shape[0], float(b))
    if b.shape != (w.shape[0],):
        raise ValueError(f"`bias` must be a number or have shape ({w.shape[0]},), got shape {b.shape}")
    pre = w @ x + b
    neurons = []
    for n in range(w.shape[0]):
        products = x * w[n]
        terms = " + ".join(f"({fmt(v)}x{fmt(k)})" for v, k in zip(x, w[n]))
        bias_text = f" + bias {_paren(b[n])}" if b[n] else ""
        step = _activation_step(float(pre[n]), key, slope, approximate)
        neurons.append(NeuronStep(n, products, float(pre[n]), f"{terms}{bias_text} = {fmt(pre[n])}",
                                  step, step.output))
    outputs = np.array([s.output for s in neurons])
    return DenseTrace(x, w, b, key, pre, outputs, neurons)


def format_dense_trace(trace: DenseTrace) -> str:
    """Terminal text for a :class:`DenseTrace`: each neuron's weighted sum and activation."""
    t = trace
    lines = [f"Dense layer: {t.inputs.size} input(s) -> {t.weights.shape[0]} neuron(s), "
             f"activation {t.activation}",
             "Each neuron: sum of (input x weight) + bias, then the activation.", "",
             "inputs:", format_matrix(t.inputs)]
    for s in t.neurons:
        label = f"neuron {s.index}" if t.weights.shape[0] > 1 else "neuron"
        lines += ["", f"{label}:", f"  {s.sum_text}", f"  {s.activation.text}"]
    lines += ["", "outputs:", format_matrix(t.outputs)]
    return "\n".join(lines)


# =========================================================================== softmax / sigmoid
@dataclass
class SoftmaxTrace:
    """Everything :func:`trace_softmax` computed; render with :func:`format_softmax_trace`.

    ``exps`` are the exponentials actually used (of ``scores - shift``) and
    ``total`` their sum; ``probabilities = exps / total``.
    """
    scores: np.ndarray
    labels: List[str]
    shift: float                        # subtracted from every score (0 when not needed)
    exps: np.ndarray
    total: float
    probabilities: np.ndarray
    exp_texts: List[str]                # "e^2.5 = 12.1825"
    sum_text: str                       # "12.1825 + 6.0496 + 1.2214 = 19.4535"
    prob_texts: List[str]               # "e^2.5 / (e^2.5 + e^1.8 + e^0.2) = 12.1825 / 19.4535 = 0.6262"
    predicted: int
    notes: List[str] = field(default_factory=list)

    @property
    def predicted_label(self) -> str:
        return self.labels[self.predicted]


def _labels(labels, n: int) -> List[str]:
    if labels is None:
        return [f"class {i}" for i in range(n)]
    if isinstance(labels, str):
        labels = [s.strip() for s in labels.split(",")]
    labels = [str(s) for s in labels]
    if len(labels) != n:
        raise ValueError(f"got {len(labels)} label(s) {labels} for {n} score(s): give one label per score")
    return labels


def _exp_list(exponents: Sequence[str], limit: int = 10) -> str:
    terms = [f"e^{e}" for e in exponents]
    if len(terms) > limit:
        terms = terms[:limit - 2] + ["...", terms[-1]]
    return " + ".join(terms)


def trace_softmax(scores, labels=None, subtract_max: Optional[bool] = None) -> SoftmaxTrace:
    """Trace softmax: ``p_i = e^(s_i) / sum_j e^(s_j)``.

    Subtracting the same number from every score does not change softmax, so
    for numerical safety the largest score is subtracted first when its
    magnitude exceeds :data:`SOFTMAX_SHIFT_ABOVE` (e^1000 overflows, and when
    every score is very negative every e^score underflows to 0); the trace
    then says so and shows the shifted exponents.

    Args:
        scores: ``(n,)`` raw scores (logits).
        labels: n class names (a list, or one comma-separated string).
        subtract_max: force (True) or forbid (False) the shift; None decides
            as above (the probabilities are computed stably either way).

    Returns:
        :class:`SoftmaxTrace`.

    Shape:
        ``(n,)`` -> ``(n,)``.

    Example:
        >>> t = trace_softmax([2.5, 1.8, 0.2], ["cat", "dog", "elephant"])
        >>> t.prob_texts[0]
        'e^2.5 / (e^2.5 + e^1.8 + e^0.2) = 12.1825 / 19.4535 = 0.6262'
    """
    s = _as_float_array(scores, "scores")
    if s.ndim != 1 or s.size == 0:
        raise ValueError(f"`scores` must be a non-empty 1-D array (n,), got shape {s.shape}")
    names = _labels(labels, s.size)
    top = float(s.max())
    shift_needed = abs(top) > SOFTMAX_SHIFT_ABOVE
    use_shift = shift_needed if subtract_max is None else bool(subtract_max)
    shift = top if use_shift else 0.0
    notes: List[str] = []
    # stable probabilities regardless of the displayed form
    e_stable = np.exp(s - top)
    probs = e_stable / e_stable.sum()
    if use_shift:
        shifted = s - shift
        exps = e_stable
        exponents = [fmt(v) for v in shifted]
        exp_texts = [f"e^({fmt(v)} - {_paren(shift)}) = e^{fmt(d)} = {fmt(e)}"
                     for v, d, e in zip(s, shifted, exps)]
        why = (f" (e^{fmt(top)} would overflow)" if top > 700 else
               f" (e^{fmt(top)} is far too large to write out)" if top > SOFTMAX_SHIFT_ABOVE else
               " (every e^score would underflow towards 0)" if top < -SOFTMAX_SHIFT_ABOVE else "")
        notes.append(f"the largest score {fmt(top)} is subtracted from every score first{why}; "
                     f"softmax does not change when the same number is subtracted from every score")
    else:
        exps = np.exp(s)
        exponents = [fmt(v) for v in s]
        exp_texts = [f"e^{fmt(v)} = {fmt(e)}" for v, e in zip(s, exps)]
    total = float(exps.sum())
    denominator = _exp_list(exponents)
    prob_texts = [f"e^{x} / ({denominator}) = {fmt(e)} / {fmt(total)} = {fmt(p)}"
                  for x, e, p in zip(exponents, exps, probs)]
    shown = list(exps) if exps.size <= 10 else list(exps[:8]) + [None, exps[-1]]
    sum_text = " + ".join("..." if e is None else fmt(e) for e in shown) + f" = {fmt(total)}"
    return SoftmaxTrace(s, names, shift, exps, total, probs, exp_texts, sum_text, prob_texts,
                        int(np.argmax(probs)), notes)


def format_softmax_trace(trace: SoftmaxTrace) -> str:
    """Terminal text for a :class:`SoftmaxTrace`: exponentials, their sum, each probability."""
    t = trace
    width = max(len(n) for n in t.labels)
    lines = [f"Softmax over {t.scores.size} scores: p_i = e^(s_i) / (sum of e^(s_j) over all j)", ""]
    for note in t.notes:
        lines.append(f"note: {note}")
    lines.append("exponentials:")
    lines += [f"  {n.ljust(width)}  {text}" for n, text in zip(t.labels, t.exp_texts)]
    lines += [f"sum: {t.sum_text}", "", "probabilities:"]
    lines += [f"  {n.ljust(width)}  {text}" for n, text in zip(t.labels, t.prob_texts)]
    lines += ["", "result:"]
    shown = [fmt(p) for p in t.probabilities]
    pwidth = max(len(v) for v in shown)
    lines += [f"  {n.ljust(width)}  {v.ljust(pwidth)}  ({100 * p:.1f}%)"
              for n, v, p in zip(t.labels, shown, t.probabilities)]
    lines += [f"sum of probabilities: {fmt(t.probabilities.sum())}",
              f"prediction: {t.predicted_label} (the largest score gives the largest probability)"]
    return "\n".join(lines)


@dataclass
class SigmoidTrace:
    """The binary case: one score, ``P(positive) = sigmoid(score)``, ``P(negative) = 1 - P(positive)``."""
    score: float
    labels: Tuple[str, str]             # (negative class, positive class)
    probability: float                  # P(positive class)
    step: ActivationStep
    texts: List[str]

    @property
    def predicted_label(self) -> str:
        return self.labels[1] if self.probability >= 0.5 else self.labels[0]


def trace_sigmoid(score, labels=None) -> SigmoidTrace:
    """Trace the binary classifier output ``sigmoid(score)``.

    Args:
        score: one raw score (logit).
        labels: ``(negative class, positive class)`` names (a pair, or a
            comma-separated string); default ``("class 0", "class 1")``.

    Returns:
        :class:`SigmoidTrace`; ``texts`` has the sigmoid arithmetic, both
        probabilities, and the equivalence with softmax over ``(0, score)``.

    Example:
        >>> trace_sigmoid(0).texts[0]
        'sigmoid(0) = 1 / (1 + e^0) = 1 / (1 + 1) = 0.5'
    """
    a = _as_float_array(score, "score")
    if a.size != 1:
        raise ValueError(f"`score` must be one number for the binary case, got shape {a.shape}; "
                         f"use trace_softmax for several classes or trace_activation(values, 'sigmoid')")
    z = float(a.ravel()[0])
    neg, pos = _labels(labels, 2) if labels is not None else ("class 0", "class 1")
    step = _activation_step(z, "sigmoid", 0.0, "none")
    p = step.output
    texts = [step.text,
             f"P({pos}) = {fmt(p)}, P({neg}) = 1 - {fmt(p)} = {fmt(1.0 - p)}",
             f"(the same as softmax over the two scores (0, {fmt(z)}): "
             f"e^{fmt(z)} / (e^0 + e^{fmt(z)}) = {fmt(p)})"]
    return SigmoidTrace(z, (neg, pos), p, step, texts)


def format_sigmoid_trace(trace: SigmoidTrace) -> str:
    """Terminal text for a :class:`SigmoidTrace`."""
    lines = ["Sigmoid (binary classification): P(positive) = 1 / (1 + e^-score)", ""]
    lines += ["  " + t for t in trace.texts]
    lines += [f"prediction: {trace.predicted_label}"]
    return "\n".join(lines)


# =========================================================================== dispatch
def format_trace(trace) -> str:
    """Render any trace returned by this module."""
    for cls, fn in ((ConvTrace, format_conv_trace), (PoolTrace, format_pool_trace),
                    (ActivationTrace, format_activation_trace), (DenseTrace, format_dense_trace),
                    (SoftmaxTrace, format_softmax_trace), (SigmoidTrace, format_sigmoid_trace)):
        if isinstance(trace, cls):
            return fn(trace)
    raise TypeError(f"format_trace: expected a trace from cnnlab.explain.trace, got {type(trace).__name__}")
