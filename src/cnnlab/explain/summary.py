"""The summary table: every layer's output shape, parameters, and the arithmetic behind each size.

For each layer that changes the height or width, the table shows the output-size
rule with the layer's own numbers, e.g. for LeNet-5's first convolution on a
28x28 image::

    (28 + 2*2 - 5) / 1 + 1 = 28

(input + padding on both sides - kernel span) / stride + 1.  The numbers are
computed with :func:`~cnnlab.functional.conv_output_size`, the rule every
layer uses, and checked against the layer's own ``output_shape``.  When the
stride does not divide ``input + padding - span`` evenly, the division is a
floor, the last rows or columns of the (padded) input are never covered by a
window, and the table says so in a warning.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import List, Optional, Sequence, Tuple

from .. import nn
from ..functional.shape import conv_output_size

__all__ = ["summary", "summary_rows", "LayerRow", "axis_arithmetic", "format_summary"]


@dataclass
class LayerRow:
    """One line of the summary table (JSON-ready with :func:`dataclasses.asdict`)."""

    name: str                      # "0", "3.1" (the state_dict prefix)
    type: str                      # "Conv2d"
    description: str               # "Conv2d 1->6, 5x5, padding 2"
    input_shape: List[int]         # without the batch axis
    output_shape: List[int]
    params: int
    arithmetic: List[str] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)
    inputs: List[str] = field(default_factory=list)   # the values it reads ("input" = the image)


def _pad_text(before: int, after: int) -> str:
    return f"2*{before}" if before == after else f"{before} + {after}"


def axis_arithmetic(size: int, kernel: int, stride: int, before: int, after: int, dilation: int = 1,
                    ceil_mode: bool = False, axis: str = "") -> Tuple[str, int, Optional[str]]:
    """The output-size rule along one axis, written out with its numbers.

    Returns:
        ``(text, output, warning)``; e.g. ``("(28 + 2*2 - 5) / 1 + 1 = 28", 28, None)``.
        ``warning`` is set when the stride does not divide evenly.
    """
    out = conv_output_size(size, kernel, stride, (before, after), dilation, ceil_mode)
    span_text = str(kernel) if dilation == 1 else f"{dilation}*({kernel} - 1) - 1"
    span = dilation * (kernel - 1) + 1
    inner = f"{size} + {_pad_text(before, after)} - {span_text}"
    numerator = size + before + after - span
    remainder = numerator % stride
    if remainder == 0:
        text = f"({inner}) / {stride} + 1 = {out}"
        return text, out, None
    rounding = "ceil" if ceil_mode else "floor"
    text = f"{rounding}(({inner}) / {stride}) + 1 = {out}"
    if ceil_mode:
        return text, out, None
    lost = max(0, remainder - after)
    unit = {"H": "row", "W": "column"}.get(axis, "pixel")
    where = f" ({axis})" if axis else ""
    if lost:
        warning = (f"stride {stride} does not divide {numerator} = {size} + {_pad_text(before, after)} - {span}"
                   f"{where}: the last {lost} input {unit}{'s never reach' if lost > 1 else ' never reaches'} a "
                   "window (silently dropped)")
    else:
        warning = (f"stride {stride} does not divide {numerator}{where}: the last {remainder} padded "
                   f"{unit}{'s never reach' if remainder > 1 else ' never reaches'} a window (padding only, no pixels lost)")
    return text, out, warning


def _two_axes(h_args, w_args) -> Tuple[List[str], List[str], Tuple[int, int]]:
    h_text, h_out, h_warn = axis_arithmetic(*h_args, axis="H")
    w_text, w_out, w_warn = axis_arithmetic(*w_args, axis="W")
    if h_text == w_text:
        texts = [h_text]
        warnings = [h_warn.replace(" (H)", "").replace("input row", "input row/column")
                    .replace("padded row", "padded row/column")] if h_warn else []
    else:
        texts = [f"H: {h_text}", f"W: {w_text}"]
        warnings = [w for w in (h_warn, w_warn) if w]
    return texts, warnings, (h_out, w_out)


def _pair_text(p: Tuple[int, int]) -> str:
    return str(p[0]) if p[0] == p[1] else f"{p[0]}x{p[1]}"


def _describe(layer: nn.Module) -> str:
    kind = type(layer).__name__
    if isinstance(layer, nn.Conv2d):
        text = f"{kind} {layer.in_channels}->{layer.out_channels}, {layer.kernel_size[0]}x{layer.kernel_size[1]}"
        if layer.stride != (1, 1):
            text += f", stride {_pair_text(layer.stride)}"
        pad = layer.padding
        if isinstance(pad, str):
            text += f", padding '{pad}'"
        elif pad not in ((0, 0),):
            text += f", padding {_pair_text(pad) if isinstance(pad[0], int) else pad}"
        if layer.dilation != (1, 1):
            text += f", dilation {_pair_text(layer.dilation)}"
        if layer.groups != 1:
            text += f", groups {layer.groups}"
        if layer.bias is None:
            text += ", no bias"
        return text
    if isinstance(layer, nn.Linear):
        return f"{kind} {layer.in_features}->{layer.out_features}" + ("" if layer.bias is not None else ", no bias")
    if hasattr(layer, "kernel_size") and hasattr(layer, "stride") and hasattr(layer, "ceil_mode"):
        text = f"{kind} {layer.kernel_size[0]}x{layer.kernel_size[1]}"
        if layer.stride != layer.kernel_size:
            text += f", stride {_pair_text(layer.stride)}"
        if layer.padding != (0, 0):
            text += f", padding {_pair_text(layer.padding)}"
        if getattr(layer, "dilation", (1, 1)) != (1, 1):
            text += f", dilation {_pair_text(layer.dilation)}"
        return text + (", ceil_mode" if layer.ceil_mode else "")
    if isinstance(layer, nn.BatchNorm2d):
        return f"{kind}({layer.num_features})"
    if isinstance(layer, nn.Flatten) and (layer.start_dim, layer.end_dim) == (1, -1):
        return kind
    if isinstance(layer, nn.Dropout):
        return f"{kind}(p={layer.p})"
    extra = layer.extra_repr()
    return f"{kind}({extra})" if extra else kind


def _arithmetic(layer: nn.Module, in_shape: tuple, out_shape: tuple) -> Tuple[List[str], List[str]]:
    """Texts and warnings explaining how ``layer`` turns ``in_shape`` into ``out_shape`` (batch included)."""
    if isinstance(layer, nn.Conv2d):
        (t, b), (l, r) = layer.resolved_padding(in_shape[2], in_shape[3])
        kh, kw = layer.kernel_size
        texts, warnings, hw = _two_axes((in_shape[2], kh, layer.stride[0], t, b, layer.dilation[0]),
                                        (in_shape[3], kw, layer.stride[1], l, r, layer.dilation[1]))
    elif hasattr(layer, "kernel_size") and hasattr(layer, "ceil_mode") and hasattr(layer, "padding"):
        (ph, pw), d = layer.padding, getattr(layer, "dilation", (1, 1))
        texts, warnings, hw = _two_axes(
            (in_shape[2], layer.kernel_size[0], layer.stride[0], ph, ph, d[0], layer.ceil_mode),
            (in_shape[3], layer.kernel_size[1], layer.stride[1], pw, pw, d[1], layer.ceil_mode))
    elif isinstance(layer, nn.Flatten):
        dims = in_shape[1:]
        if len(dims) > 1 and len(out_shape) == 2:
            return [f"{'*'.join(map(str, dims))} = {out_shape[1]}"], []
        return [], []
    elif isinstance(layer, (nn.GlobalAvgPool2d,)):  # GlobalMaxPool2d subclasses it
        word = "max" if isinstance(layer, nn.GlobalMaxPool2d) else "mean"
        return [f"{word} over each {in_shape[2]}x{in_shape[3]} map -> 1 value"], []
    elif isinstance(layer, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        return [f"adaptive: {in_shape[2]}x{in_shape[3]} -> {out_shape[2]}x{out_shape[3]}"], []
    elif isinstance(layer, nn.FractionalMaxPool2d):
        if layer.output_ratio is not None:
            rh, rw = layer.output_ratio
            return [f"floor({in_shape[2]} * {rh}) = {out_shape[2]}, floor({in_shape[3]} * {rw}) = {out_shape[3]}"], []
        return [f"fixed output {out_shape[2]}x{out_shape[3]}"], []
    else:
        return [], []
    if tuple(hw) != tuple(out_shape[2:]):  # the table's arithmetic and the layer must agree
        raise RuntimeError(f"summary arithmetic gives {hw} but {type(layer).__name__}.output_shape gives "
                           f"{out_shape[2:]}")
    return texts, warnings


def _merge_arithmetic(layer: nn.Module, in_shapes: List[tuple], out_shape: tuple) -> List[str]:
    dims = ["x".join(map(str, shape[1:])) for shape in in_shapes]
    if isinstance(layer, nn.Concat):
        axis = layer.dim % len(out_shape)
        sizes = " + ".join(str(shape[axis]) for shape in in_shapes)
        what = "channels" if axis == 1 else f"dim {layer.dim}"
        return [f"{what}: {sizes} = {out_shape[axis]}"]
    if isinstance(layer, (nn.Add, nn.Sub, nn.Mul, nn.Div)) and len(in_shapes) == 2:
        return [f"{dims[0]} {layer.symbol} {dims[1]}, elementwise"]
    if isinstance(layer, nn.Reshape):
        return [f"{dims[0]} -> {'x'.join(map(str, out_shape[1:]))}"]
    return []


def summary_rows(model: nn.Module, input_shape: Sequence[int]) -> List[LayerRow]:
    """One :class:`LayerRow` per layer, for an input of ``(C, H, W)``.

    Any model works: a Sequential (nested ones expanded: ``"3.1"``), a graph model
    (one row per node, with the values it reads), or a user's own Module (traced).

    Raises:
        ValueError: a layer cannot take the shape reaching it (the message names the
            layer and the shapes, e.g. both shapes meeting at an ``Add``).
    """
    shape = tuple(int(s) for s in input_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"input_shape must be (C, H, W) with positive sizes, got {tuple(input_shape)}")
    from .._schema import MAX_ACTIVATION_ELEMENTS, check_tensor_size
    from ..models import check_size_budget
    check_tensor_size(shape, "one input image", MAX_ACTIVATION_ELEMENTS)
    check_size_budget(model, shape)  # by shape inference: no layer is run on an input too large
    graph = nn.as_graph(model, shape)
    shapes = {graph.input_name: (1,) + shape}
    rows, counted = [], set()
    for node in graph.nodes:
        layer = node.module
        given = [shapes[name] for name in node.inputs]
        try:
            out = tuple(layer.output_shape(*given))
        except (ValueError, TypeError, IndexError) as exc:
            if len(given) == 1:
                what = f"input of shape {tuple(given[0][1:])}"
            else:
                what = "its inputs " + " and ".join(f"{name} {tuple(g[1:])}" for name, g in zip(node.inputs, given))
            raise ValueError(f"layer {node.name} ({_describe(layer)}) cannot take {what}: {exc}") from None
        shapes[node.name] = out
        if len(given) == 1:
            texts, warnings = _arithmetic(layer, given[0], out)
        else:
            texts, warnings = _merge_arithmetic(layer, given, out), []
        params = 0 if id(layer) in counted else sum(p._data.size for p in layer.parameters())
        counted.add(id(layer))
        rows.append(LayerRow(name=node.name, type=type(layer).__name__, description=_describe(layer),
                             input_shape=list(given[0][1:]), output_shape=list(out[1:]), params=int(params),
                             arithmetic=texts, warnings=warnings, inputs=list(node.inputs)))
    return rows


def format_summary(rows: Sequence[LayerRow], input_shape: Sequence[int], title: str = "") -> str:
    """The rows as an aligned text table, with totals and warnings."""
    header = ("#", "layer", "output shape", "params", "output size arithmetic")
    lines_data = []
    previous = "input"
    for row in rows:
        shape = "x".join(map(str, row.output_shape))
        arith = row.arithmetic or [""]
        description = row.description
        if row.inputs and row.inputs != [previous]:
            description += " <- " + ", ".join(row.inputs)
        previous = row.name
        lines_data.append((row.name, description, shape, f"{row.params:,}", arith[0]))
        for extra in arith[1:]:
            lines_data.append(("", "", "", "", extra))
    widths = [max(len(header[i]), *(len(r[i]) for r in lines_data)) if lines_data else len(header[i])
              for i in range(5)]

    def fmt(cells):
        return (f"{cells[0]:<{widths[0]}}  {cells[1]:<{widths[1]}}  {cells[2]:<{widths[2]}}  "
                f"{cells[3]:>{widths[3]}}  {cells[4]}").rstrip()

    total = sum(r.params for r in rows)
    shape_text = "x".join(str(int(s)) for s in input_shape)
    out = []
    if title:
        out.append(f"{title}  (input {shape_text})")
    else:
        out.append(f"input {shape_text}")
    out.append(fmt(header))
    rule = "-" * max(len(fmt(header)), *(len(fmt(r)) for r in lines_data)) if lines_data else "-" * 20
    out.append(rule)
    out.extend(fmt(r) for r in lines_data)
    out.append(rule)
    out.append(f"total parameters: {total:,}")
    if rows:
        out.append(f"output: {'x'.join(map(str, rows[-1].output_shape))} per image")
    warnings = [f"warning: layer {r.name} ({r.description}): {w}" for r in rows for w in r.warnings]
    out.extend(warnings)
    return "\n".join(out)


def summary(model: nn.Module, input_shape: Sequence[int], title: str = "") -> str:
    """The summary table of ``model`` for inputs of ``(C, H, W)`` (Keras's ``model.summary()``).

    Example:
        >>> from cnnlab.models import lenet5
        >>> print(summary(lenet5(), (1, 28, 28)))   # doctest: +SKIP
        input 1x28x28
        #   layer                         output shape  params  output size arithmetic
        0   Conv2d 1->6, 5x5, padding 2   6x28x28          156  (28 + 2*2 - 5) / 1 + 1 = 28
        ...
    """
    return format_summary(summary_rows(model, input_shape), input_shape, title)


def rows_as_dicts(rows: Sequence[LayerRow]) -> List[dict]:
    return [asdict(r) for r in rows]
