"""One value of one layer, written out: the detail panel of ``cnnlab explore``.

:func:`trace_layer` takes a layer, the values of its inputs for one image and
a position in its output, and returns the arithmetic that gives that value,
using :mod:`cnnlab.explain.trace` (the functions ``cnnlab explain conv``,
``pool``, ``activation``, ``dense`` and ``softmax`` print).  ``value`` is
always the engine's own number; ``total`` is the trace's float64 result, and
the two agree to float32 rounding.
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

import numpy as np

from ..explain.trace import (_paren, _sum_text, fmt, trace_activation, trace_conv2d, trace_pool2d,
                             trace_softmax)

__all__ = ["trace_layer", "TOP_CONTRIBUTIONS"]

#: Contributions listed for a dense unit.
TOP_CONTRIBUTIONS = 10

_ACTIVATION_NAMES = {"ReLU": "relu", "LeakyReLU": "leaky_relu", "Sigmoid": "sigmoid", "Tanh": "tanh",
                     "GELU": "gelu", "Identity": "identity", "Dropout": "identity", "Dropout2d": "identity"}
_PADDING_MODES = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def _a(v) -> np.ndarray:
    return np.asarray(getattr(v, "_data", v), dtype=np.float64)


def trace_layer(layer, kind: str, ins: Sequence[np.ndarray], out: np.ndarray, pos: Tuple[int, int, int],
                value: float, classes: List[str]) -> dict:
    """The arithmetic of output ``pos = (channel, y, x)`` of ``layer`` (``y = x = 0`` for a vector).

    Returns a dict with ``formula`` (the general rule), ``expression`` (the rule with the numbers),
    ``terms`` (one entry per number that goes in), ``total`` and kind-specific entries
    (``window``, ``kernel``, ``bias``, ``sizes``, ...).
    """
    c, y, x = pos
    if kind == "Conv2d":
        return _conv(layer, ins[0], c, y, x, value)
    if kind in ("MaxPool2d", "MinPool2d", "AvgPool2d"):
        return _pool(layer, kind, ins[0], c, y, x)
    if kind in ("AdaptiveAvgPool2d", "AdaptiveMaxPool2d", "GlobalAvgPool2d", "GlobalMaxPool2d"):
        return _adaptive(kind, ins[0], out, c, y, x)
    if kind in _ACTIVATION_NAMES:
        return _activation(layer, kind, ins[0], out, c, y, x)
    if kind == "BatchNorm2d":
        return _batch_norm(layer, ins[0], c, y, x, value)
    if kind == "Linear":
        return _linear(layer, ins[0], c, value)
    if kind in ("Flatten", "Reshape"):
        src = np.unravel_index(c if out.ndim == 1 else np.ravel_multi_index((c, y, x), out.shape), ins[0].shape)
        where = ", ".join(str(int(i)) for i in src)
        return {"formula": f"{kind.lower()}: the values are laid out in one row, channel by channel, row by row",
                "expression": f"value {c} = input[{where}] = {fmt(ins[0][src])}", "total": float(ins[0][src]),
                "source": [int(i) for i in src], "terms": []}
    if kind in ("Softmax", "LogSoftmax"):
        scores = ins[0].ravel()
        labels = classes if len(classes) == scores.size else None
        t = trace_softmax(scores, labels)
        p = float(t.probabilities[c])
        expr = t.prob_texts[c] + (f"; log({fmt(p)}) = {fmt(np.log(p))}" if kind == "LogSoftmax" else "")
        return {"formula": "p_i = e^(s_i) / sum_j e^(s_j)" + ("; output log(p_i)" if kind == "LogSoftmax" else ""),
                "expression": expr, "exponentials": t.exp_texts, "sum": t.sum_text,
                "probabilities": [float(v) for v in t.probabilities], "notes": t.notes,
                "total": float(np.log(p)) if kind == "LogSoftmax" else p,
                "terms": [{"class": t.labels[i], "score": float(s), "exp": float(e), "probability": float(q)}
                          for i, (s, e, q) in enumerate(zip(t.scores, t.exps, t.probabilities))]}
    if kind in ("Add", "Sub", "Mul", "Div"):
        vals = [float(np.broadcast_to(a, out.shape)[pos if out.ndim == 3 else (c,)]) for a in ins]
        op = {"Add": " + ", "Sub": " - ", "Mul": " x ", "Div": " / "}[kind]
        import operator
        apply = {"Add": operator.add, "Sub": operator.sub, "Mul": operator.mul, "Div": np.divide}[kind]
        total = vals[0]
        for v in vals[1:]:
            total = float(apply(np.float64(total), np.float64(v)))
        return {"formula": f"{kind.lower()}: the inputs, element by element",
                "expression": op.join(_paren(v) if i else fmt(v) for i, v in enumerate(vals)) + f" = {fmt(total)}",
                "total": total, "terms": [{"input": i, "value": v} for i, v in enumerate(vals)]}
    if kind == "Concat" and out.ndim == 3:
        start = 0
        for i, a in enumerate(ins):
            if c < start + a.shape[0]:
                v = float(a[c - start, y, x])
                return {"formula": "concat: the inputs' channels one after the other",
                        "expression": f"channel {c} = channel {c - start} of input {i} = {fmt(v)}",
                        "total": v, "source": [i, c - start, y, x], "terms": []}
            start += a.shape[0]
    return {"formula": None, "expression": None, "terms": [], "total": value,
            "notes": [f"no written-out arithmetic for {kind}; the value is the engine's"]}


def _conv(layer, inp: np.ndarray, c: int, y: int, x: int, value: float) -> dict:
    weight = _a(layer.weight)
    out_ch, in_per_group, kh, kw = weight.shape
    groups = int(getattr(layer, "groups", 1))
    first = (c // (out_ch // groups)) * in_per_group
    image = inp[first:first + in_per_group]
    kernel = weight[c]
    notes = []
    dh, dw = layer.dilation
    if (dh, dw) != (1, 1):     # a dilated kernel is the kernel with zeros between its taps
        big = np.zeros((in_per_group, dh * (kh - 1) + 1, dw * (kw - 1) + 1))
        big[:, ::dh, ::dw] = kernel
        kernel = big
        notes.append(f"dilation {dh}x{dw}: the kernel is shown with zeros between its taps")
    if groups != 1:
        notes.append(f"groups={groups}: filter {c} sees input channels {first}-{first + in_per_group - 1}")
    H, W = image.shape[1:]
    (pt, pb), (pl, pr) = layer.resolved_padding(H, W)
    padding = ((pt, pb), (pl, pr))
    mode = getattr(layer, "padding_mode", "zeros")
    if mode != "zeros" and any((pt, pb, pl, pr)):
        image = np.pad(image, ((0, 0), (pt, pb), (pl, pr)), mode=_PADDING_MODES[mode])
        padding = 0
        notes.append(f"padding_mode '{mode}': the padded border repeats the input, it is not zeros")
    bias = 0.0 if layer.bias is None else float(_a(layer.bias)[c])
    multi = image.shape[0] > 1
    t = trace_conv2d(image if multi else image[0], kernel if multi else kernel[0], stride=layer.stride,
                     padding=padding, bias=bias, positions=[(y, x)])
    step = t.steps[0]
    sh, sw = layer.stride
    y0, x0 = y * sh - pt, x * sw - pl
    win = step.window if multi else step.window[None]
    ker = kernel
    terms = []
    for ci in range(win.shape[0]):
        for i in range(win.shape[1]):
            for j in range(win.shape[2]):
                if dh > 1 and i % dh or dw > 1 and j % dw:
                    continue
                yy, xx = y0 + i, x0 + j
                terms.append({"channel": first + ci, "y": yy, "x": xx, "input": float(win[ci, i, j]),
                              "weight": float(ker[ci, i, j]), "product": float(win[ci, i, j] * ker[ci, i, j]),
                              "padding": not (0 <= yy < H and 0 <= xx < W)})
    return {"formula": "sum over the window of (input x kernel), over every input channel, + bias",
            "expression": step.text, "channel_expressions": list(step.channel_texts),
            "channel_sums": [float(s) for s in step.channel_sums],
            "total": float(step.value), "bias": bias, "terms": terms,
            "window": {"y0": y0, "x0": x0, "height": kernel.shape[1], "width": kernel.shape[2],
                       "channels": [first, first + in_per_group - 1]},
            "kernel": kernel.tolist(), "sizes": [s.formula for s in t.sizes],
            "notes": notes + t.notes}


def _pool(layer, kind: str, inp: np.ndarray, c: int, y: int, x: int) -> dict:
    mode = {"MaxPool2d": "max", "MinPool2d": "min", "AvgPool2d": "avg"}[kind]
    kh, kw = layer.kernel_size
    sh, sw = layer.stride
    ph, pw = layer.padding
    dil = getattr(layer, "dilation", (1, 1))
    H, W = inp.shape[1:]
    y0, x0 = y * sh - ph, x * sw - pw
    base = {"window": {"y0": y0, "x0": x0, "height": dil[0] * (kh - 1) + 1, "width": dil[1] * (kw - 1) + 1,
                       "channels": [c, c]}}
    if dil == (1, 1) and not getattr(layer, "ceil_mode", False):
        t = trace_pool2d(inp[c], (kh, kw), (sh, sw), (ph, pw), mode, getattr(layer, "count_include_pad", True),
                         positions=[(y, x)])
        step = t.steps[0]
        terms = [{"y": y0 + i, "x": x0 + j, "input": None if np.isnan(v) else float(v),
                  "padding": bool(np.isnan(v))}
                 for i, row in enumerate(step.window) for j, v in enumerate(row)]
        base.update({"formula": {"max": "the largest value of the window", "min": "the smallest value of the window",
                                 "avg": "the mean of the window"}[mode],
                     "expression": step.text, "total": float(step.value), "terms": terms,
                     "picked": None if step.source is None else list(step.source),
                     "sizes": [s.formula for s in t.sizes], "notes": t.notes})
        return base
    # dilated or ceil-mode windows: list the taps that fall inside the input
    vals, terms = [], []
    for i in range(kh):
        for j in range(kw):
            yy, xx = y0 + i * dil[0], x0 + j * dil[1]
            inside = 0 <= yy < H and 0 <= xx < W
            terms.append({"y": yy, "x": xx, "input": float(inp[c, yy, xx]) if inside else None, "padding": not inside})
            if inside:
                vals.append(float(inp[c, yy, xx]))
    fn = {"max": max, "min": min, "avg": lambda v: sum(v) / len(v)}[mode]
    total = fn(vals)
    text = (f"{mode}({', '.join(fmt(v) for v in vals)}) = {fmt(total)}" if mode != "avg"
            else f"({_sum_text(vals)}) / {len(vals)} = {fmt(total)}")
    base.update({"formula": f"{mode} of the window's taps", "expression": text, "total": total, "terms": terms,
                 "notes": ["dilated or ceil-mode pooling: padding taps are left out"]})
    return base


def _adaptive(kind: str, inp: np.ndarray, out: np.ndarray, c: int, y: int, x: int) -> dict:
    from ..functional.shape import adaptive_windows
    H, W = inp.shape[1:]
    oh, ow = (out.shape[1], out.shape[2]) if out.ndim == 3 else (1, 1)
    rs, re_ = adaptive_windows(H, oh)
    cs, ce = adaptive_windows(W, ow)
    r0, r1, c0, c1 = rs[y], re_[y], cs[x], ce[x]
    vals = inp[c, r0:r1, c0:c1].ravel()
    is_max = "Max" in kind
    total = float(vals.max() if is_max else vals.mean())
    if is_max:
        text = f"max({', '.join(fmt(v) for v in vals)}) = {fmt(total)}"
    else:
        text = f"({_sum_text(vals)}) / {vals.size} = {fmt(float(vals.sum()))} / {vals.size} = {fmt(total)}"
    return {"formula": ("the largest" if is_max else "the mean") + f" of rows {r0}-{r1 - 1}, columns {c0}-{c1 - 1}",
            "expression": text, "total": total,
            "window": {"y0": int(r0), "x0": int(c0), "height": int(r1 - r0), "width": int(c1 - c0), "channels": [c, c]},
            "terms": [{"y": int(r0 + i // (c1 - c0)), "x": int(c0 + i % (c1 - c0)), "input": float(v)}
                      for i, v in enumerate(vals)]}


def _activation(layer, kind: str, inp: np.ndarray, out: np.ndarray, c: int, y: int, x: int) -> dict:
    name = _ACTIVATION_NAMES[kind]
    v = float(inp[c, y, x]) if inp.ndim == 3 else float(inp.ravel()[c])
    t = trace_activation([v], name, negative_slope=getattr(layer, "negative_slope", 0.01),
                         approximate=getattr(layer, "approximate", "none"))
    step = t.steps[0]
    notes = ["dropout does nothing at inference (eval mode)"] if kind.startswith("Dropout") else []
    return {"formula": t.formula, "expression": step.text, "total": float(step.output),
            "terms": [{"input": v}], "notes": notes,
            "window": {"y0": y, "x0": x, "height": 1, "width": 1, "channels": [c, c]} if inp.ndim == 3 else None}


def _batch_norm(layer, inp: np.ndarray, c: int, y: int, x: int, value: float) -> dict:
    v = float(inp[c, y, x])
    mean = float(_a(layer.running_mean)[c]) if layer.running_mean is not None else None
    var = float(_a(layer.running_var)[c]) if layer.running_var is not None else None
    gamma = 1.0 if layer.weight is None else float(_a(layer.weight)[c])
    beta = 0.0 if layer.bias is None else float(_a(layer.bias)[c])
    if mean is None:
        return {"formula": "(x - batch mean) / sqrt(batch var + eps) x gamma + beta", "expression": None,
                "total": value, "terms": [{"input": v}], "notes": ["no running statistics: batch statistics used"]}
    total = (v - mean) / np.sqrt(var + layer.eps) * gamma + beta
    expr = (f"({fmt(v)} - {_paren(mean)}) / sqrt({fmt(var)} + {fmt(layer.eps)}) x {_paren(gamma)} + {_paren(beta)}"
            f" = {fmt(total)}")
    return {"formula": "(x - running mean) / sqrt(running var + eps) x gamma + beta", "expression": expr,
            "total": float(total), "terms": [{"input": v, "mean": mean, "var": var, "gamma": gamma, "beta": beta}],
            "window": {"y0": y, "x0": x, "height": 1, "width": 1, "channels": [c, c]}}


def _linear(layer, inp: np.ndarray, c: int, value: float) -> dict:
    xs = inp.ravel()
    w = _a(layer.weight)[c]
    bias = 0.0 if layer.bias is None else float(_a(layer.bias)[c])
    products = xs * w
    order = np.argsort(-np.abs(products), kind="stable")
    top = order[:TOP_CONTRIBUTIONS]
    rest = order[TOP_CONTRIBUTIONS:]
    total = float(products.sum() + bias)
    parts = [f"({fmt(xs[i])}x{fmt(w[i])})" for i in top]
    if rest.size:
        parts.append(f"[{rest.size} more: {fmt(float(products[rest].sum()))}]")
    expr = " + ".join(parts) + (f" + bias {_paren(bias)}" if bias else "") + f" = {fmt(total)}"
    return {"formula": f"sum over the {xs.size} inputs of (input x weight) + bias; the largest contributions first",
            "expression": expr, "total": total, "bias": bias,
            "terms": [{"index": int(i), "input": float(xs[i]), "weight": float(w[i]), "product": float(products[i])}
                      for i in top],
            "rest": {"count": int(rest.size), "sum": float(products[rest].sum()) if rest.size else 0.0}}
