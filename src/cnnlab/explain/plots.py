"""Matplotlib figures of what a CNN computes and learns.

Every ``*_figure`` function takes NumPy arrays and returns a
``matplotlib.figure.Figure`` drawn on the Agg (raster, no display) canvas;
write it with :func:`save_figure` (atomic PNG/SVG/PDF by file name) or get
PNG bytes with :func:`figure_png`.  Figures are built without ``pyplot``, so
nothing here touches the global plotting state of the caller, and matplotlib
is imported only inside these functions.

Colour conventions:

* values that can be negative (convolution outputs, kernels, signed filter
  responses) use a *diverging* map, blue for negative, white for 0, red for
  positive, with limits symmetric around 0;
* values that cannot (activations after ReLU or pooling of them,
  probabilities, saliency, counts) use a sequential map starting at 0;
* every map in one figure of one layer shares one colour scale, shown by one
  colour bar, so panels can be compared.
"""
from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .images import atomic_write

__all__ = ["new_figure", "save_figure", "figure_png", "figure_svg", "value_scale", "feature_map_figure",
           "kernel_figure", "vector_figure", "probability_figure", "conv_figure", "pool_figure",
           "filter_figure", "filter_image", "history_figure", "confusion_figure", "mistakes_figure",
           "predictions_figure", "saliency_figure", "network_figure", "DIVERGING", "SEQUENTIAL", "HEAT"]

DIVERGING = "RdBu_r"
SEQUENTIAL = "viridis"
HEAT = "jet"
_MAX_ANNOTATED = 144   # write the numbers into a matrix panel up to 12x12 cells


# --------------------------------------------------------------------------- plumbing
def new_figure(width: float, height: float, layout: str = "constrained"):
    """A Figure on an Agg canvas (no pyplot, no display needed)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(width, height), dpi=100, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def figure_png(fig, dpi: int = 100) -> bytes:
    """The figure as PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, facecolor="white")
    return buf.getvalue()


def figure_svg(fig) -> str:
    """The figure as an SVG document (text)."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", facecolor="white")
    return buf.getvalue()


def save_figure(fig, path, dpi: int = 100) -> Path:
    """Write ``fig`` to ``path`` atomically; the format comes from the suffix (.png, .svg, .pdf, .jpg)."""
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".") or "png"
    if fmt not in ("png", "svg", "pdf", "jpg", "jpeg"):
        raise ValueError(f"cannot write a figure to {path}: use a .png, .svg, .pdf or .jpg file name")
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=dpi, facecolor="white")
    return atomic_write(path, buf.getvalue())


def value_scale(values, signed: Optional[bool] = None) -> Tuple[str, float, float]:
    """``(colormap, vmin, vmax)`` for values: diverging and symmetric when any is negative
    (or ``signed``), else sequential from 0 (or from the minimum, when it is above 0 and
    the values are not all alike)."""
    a = np.asarray(values, dtype=np.float64)
    finite = a[np.isfinite(a)] if a.size else a
    lo = float(finite.min()) if finite.size else 0.0
    hi = float(finite.max()) if finite.size else 1.0
    if signed or (signed is None and lo < 0):
        m = max(abs(lo), abs(hi)) or 1.0
        return DIVERGING, -m, m
    if hi <= 0:
        hi = 1.0
    return SEQUENTIAL, 0.0, hi


def _show_image(ax, image: np.ndarray, title: Optional[str] = None, cmap: str = "gray",
                vmin: Optional[float] = 0.0, vmax: Optional[float] = 1.0):
    """Draw a ``(C, H, W)`` / ``(H, W)`` [0, 1] image (gray or RGB) with crisp pixels."""
    a = np.asarray(image, dtype=np.float64)
    if a.ndim == 3:
        a = a[0] if a.shape[0] == 1 else np.clip(a.transpose(1, 2, 0), 0.0, 1.0)
    if a.ndim == 3:
        im = ax.imshow(a, interpolation="nearest")
    else:
        im = ax.imshow(a, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)
    return im


def _annotate(ax, matrix: np.ndarray, im, fontsize: float = 7.0) -> None:
    """Write each cell's number in it (black or white, whichever reads on the cell's colour)."""
    from .trace import fmt
    a = np.asarray(matrix, dtype=np.float64)
    norm, cmap = im.norm, im.cmap
    for (r, c), v in np.ndenumerate(a):  # at most _MAX_ANNOTATED cells
        rgba = cmap(norm(v))
        light = 0.299 * rgba[0] + 0.587 * rgba[1] + 0.114 * rgba[2] > 0.55
        text = fmt(round(v, 2)) if abs(v) >= 0.01 or v == 0 else f"{v:.0e}"
        ax.text(c, r, text, ha="center", va="center", fontsize=fontsize, color="black" if light else "white",
                in_layout=False)


def _matrix_panel(ax, matrix: np.ndarray, title: str, cmap: str, vmin: float, vmax: float, fig,
                  label: str = "value", annotate: Optional[bool] = None):
    """A matrix as coloured cells with row/column ticks, its numbers (when small) and a colour bar."""
    a = np.asarray(matrix, dtype=np.float64)
    im = ax.imshow(a, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_title(title, fontsize=10)
    h, w = a.shape
    if annotate is None:
        annotate = a.size <= _MAX_ANNOTATED
    if annotate:
        _annotate(ax, a, im, fontsize=max(5.0, min(9.0, 60.0 / max(h, w))))
    step_h, step_w = max(1, h // 8), max(1, w // 8)
    ax.set_xticks(range(0, w, step_w))
    ax.set_yticks(range(0, h, step_h))
    ax.tick_params(labelsize=7)
    ax.set_xlabel("column", fontsize=8)
    ax.set_ylabel("row", fontsize=8)
    cb = fig.colorbar(im, ax=ax, shrink=0.85)
    cb.set_label(label, fontsize=8)
    cb.ax.tick_params(labelsize=7)
    return im


def _grid(n: int, max_cols: int = 8) -> Tuple[int, int]:
    cols = min(max_cols, max(1, math.ceil(math.sqrt(n))))
    return math.ceil(n / cols), cols


# --------------------------------------------------------------------------- layers
def _montage(tiles: np.ndarray, cols: int) -> Tuple[np.ndarray, List[Tuple[float, float]]]:
    """Tile ``(n, h, w[, 3])`` into one array with NaN (or white) gaps; also each tile's label spot.

    One big image draws in one call, where a grid of ``n`` axes costs ``n``
    layouts: a 64-channel layer draws in a fraction of a second.
    """
    n, h, w = tiles.shape[:3]
    rows = math.ceil(n / cols)
    gap_x = max(1, math.ceil(0.08 * w))
    gap_y = max(1, math.ceil(0.28 * h))        # room for the label above each tile
    H = rows * (h + gap_y)
    W = cols * w + (cols - 1) * gap_x
    extra = tiles.shape[3:]
    canvas = np.full((H, W) + extra, np.nan if not extra else 1.0)
    spots = []
    for k in range(n):  # one copy per tile (channels), not per pixel
        r, c = divmod(k, cols)
        y0, x0 = r * (h + gap_y) + gap_y, c * (w + gap_x)
        canvas[y0:y0 + h, x0:x0 + w] = tiles[k]
        spots.append((x0 + (w - 1) / 2, y0 - 0.5 - gap_y / 2))
    return canvas, spots


def _tile_figure(tiles: np.ndarray, labels: Sequence[str], title: str, cmap: Optional[str] = None,
                 vmin: float = 0.0, vmax: float = 1.0, colorbar_label: Optional[str] = None,
                 annotate: bool = False, tile_inches: float = 1.15):
    """A grid of equally sized maps (or RGB tiles) drawn as one image, with labels and a colour bar."""
    n, h, w = tiles.shape[:3]
    rows, cols = _grid(n)
    canvas, spots = _montage(tiles, cols)
    scale = tile_inches / max(h, w)
    width = canvas.shape[1] * scale + (1.5 if colorbar_label else 0.4)
    height = canvas.shape[0] * scale + 0.8 + 0.18 * title.count("\n")
    fig = new_figure(max(width, 4.0), max(height, 2.0))
    ax = fig.subplots()
    if tiles.ndim == 4:
        im = ax.imshow(canvas, interpolation="nearest")
    else:
        from matplotlib import colormaps
        cm = colormaps[cmap].with_extremes(bad="white")
        im = ax.imshow(np.ma.masked_invalid(canvas), cmap=cm, vmin=vmin, vmax=vmax, interpolation="nearest")
    for (x, y), label in zip(spots, labels):
        ax.text(x, y, label, ha="center", va="center", fontsize=7, in_layout=False)
    if annotate:
        from .trace import fmt
        norm, cm_ = im.norm, im.cmap
        for k in range(n):
            x0, y0 = spots[k][0] - (w - 1) / 2, spots[k][1] + 0.5 + (math.ceil(0.28 * h) or 1) / 2
            for (r, c), v in np.ndenumerate(tiles[k]):  # small kernels only: at most 16 x 25 numbers
                rgba = cm_(norm(v))
                light = 0.299 * rgba[0] + 0.587 * rgba[1] + 0.114 * rgba[2] > 0.55
                ax.text(x0 + c, y0 + r, fmt(round(float(v), 2)), ha="center", va="center", fontsize=5.5,
                        color="black" if light else "white", in_layout=False)
    ax.set_axis_off()
    ax.set_title(title, fontsize=10)
    if colorbar_label and tiles.ndim == 3:
        cb = fig.colorbar(im, ax=ax, shrink=0.85, aspect=25, pad=0.02)
        cb.set_label(colorbar_label, fontsize=8)
        cb.ax.tick_params(labelsize=7)
    return fig


def feature_map_figure(maps: np.ndarray, title: str, max_channels: int = 64, signed: Optional[bool] = None,
                       colorbar_label: str = "activation"):
    """Every channel of one layer's output as a grid, one shared colour scale, one colour bar.

    Args:
        maps: ``(C, H, W)`` one image's feature maps.
        title: figure title (the layer and its output shape).
        max_channels: show at most this many channels (the title says so).
        signed: force a diverging (True) or sequential (False) colour map;
            default: diverging when any value is negative.

    Shape:
        maps ``(C, H, W)``.
    """
    a = np.asarray(maps, dtype=np.float64)
    if a.ndim != 3:
        raise ValueError(f"feature maps must be (C, H, W), got shape {a.shape}")
    C = a.shape[0]
    shown = a[:max_channels]
    n = shown.shape[0]
    cmap, vmin, vmax = value_scale(shown, signed)
    more = f" (first {n} of {C} channels)" if n < C else ""
    label = colorbar_label + (" (blue < 0 < red)" if cmap == DIVERGING else "")
    return _tile_figure(shown, [f"ch {k}" for k in range(n)], f"{title}{more}", cmap, vmin, vmax, label)


def kernel_figure(weight: np.ndarray, title: str, max_kernels: int = 64, tile_inches: Optional[float] = None):
    """The kernels of a convolution layer: one tile per filter.

    RGB filters (3 input channels) are drawn as colour images, every filter
    scaled by the same min/max so they can be compared; other filters are
    drawn per input channel 0 (one input channel: exactly the kernel) on a
    shared diverging scale with a colour bar.  Small kernels of up to 16
    filters carry their numbers.

    Shape:
        weight ``(out_channels, in_channels, kh, kw)``.
    """
    w = np.asarray(weight, dtype=np.float64)
    if w.ndim != 4:
        raise ValueError(f"conv weights must be (out_channels, in_channels, kh, kw), got shape {w.shape}")
    O, I, kh, kw = w.shape
    shown = w[:max_kernels]
    n = shown.shape[0]
    labels = [f"filter {k}" for k in range(n)]
    more = f", first {n} of {O}" if n < O else ""
    head = f"{title}: {O} filters of {I}x{kh}x{kw}{more}"
    inches = tile_inches or (1.15 if n > 16 else 1.5)
    if I == 3:
        lo, hi = float(shown.min()), float(shown.max())
        span = (hi - lo) or 1.0
        tiles = ((shown - lo) / span).transpose(0, 2, 3, 1)
        return _tile_figure(tiles, labels, f"{head}\nRGB, all filters scaled together: {lo:.3g} -> black, "
                                           f"{hi:.3g} -> white", tile_inches=inches)
    planes = shown[:, 0]
    note = f"\ninput channel 0 of {I} shown for each filter" if I > 1 else ""
    cmap, vmin, vmax = value_scale(planes, signed=True)
    return _tile_figure(planes, labels, head + note, cmap, vmin, vmax, "weight (blue < 0 < red)",
                        annotate=n <= 16 and kh * kw <= 25, tile_inches=inches)


def vector_figure(vector: np.ndarray, title: str):
    """The flattened vector (what the dense layers read) as one bar per value.

    Shape:
        vector ``(n,)``.
    """
    v = np.asarray(vector, dtype=np.float64).ravel()
    fig = new_figure(9.0, 2.8)
    ax = fig.subplots()
    colors = np.where(v >= 0, "#c0392b", "#2166ac")
    ax.bar(np.arange(v.size), v, width=1.0, color=colors, linewidth=0)
    ax.set_xlim(-0.5, v.size - 0.5)
    ax.axhline(0, color="black", linewidth=0.6)
    ax.set_xlabel(f"position in the flattened vector (0-{v.size - 1})", fontsize=9)
    ax.set_ylabel("value", fontsize=9)
    ax.set_title(f"{title}: {v.size} values, {int((v > 0).sum())} positive, {int((v == 0).sum())} zero",
                 fontsize=10)
    ax.tick_params(labelsize=8)
    ax.grid(axis="y", alpha=0.3)
    return fig


def probability_figure(probabilities: np.ndarray, classes: Sequence[str], title: str = "class probabilities",
                       true_class: Optional[int] = None, width: float = 6.0, top_k: Optional[int] = 10):
    """Horizontal bars of the softmax probabilities, the predicted class highlighted.

    A model with more than ``top_k`` classes shows its ``top_k`` most probable
    ones, highest first (and the true class, when given and not among them),
    then one bar for all the other classes together: the picture's size does not
    grow with the number of classes.  Up to ``top_k`` classes (or ``top_k=None``)
    every class is drawn, in class order.

    Shape:
        probabilities ``(K,)``.
    """
    p = np.asarray(probabilities, dtype=np.float64).ravel()
    names = [str(c) for c in classes]
    names += [str(k) for k in range(len(names), p.size)]
    K = p.size
    if top_k is not None and (isinstance(top_k, bool) or int(top_k) < 1):
        raise ValueError(f"top_k must be a positive number of classes or None, got {top_k!r}")
    pred = int(p.argmax())
    if top_k is None or K <= int(top_k):
        shown = list(range(K))
        rest = None
    else:
        shown = [int(j) for j in np.argsort(-p, kind="stable")[:int(top_k)]]
        if true_class is not None and 0 <= int(true_class) < K and int(true_class) not in shown:
            shown.append(int(true_class))
        rest = (K - len(shown), float(max(0.0, 1.0 - p[shown].sum())))
    values = [float(p[j]) for j in shown]
    labels = [names[j] + (" (true)" if true_class == j else "") for j in shown]
    colors = ["#c0392b" if j == pred else "#7f8c8d" for j in shown]
    if rest is not None:
        values.append(rest[1])
        labels.append(f"the other {rest[0]:,} classes")
        colors.append("#d5d8dc")
    n = len(values)
    fig = new_figure(width, 0.3 * n + 1.2 + (0.2 if rest is not None else 0.0))
    ax = fig.subplots()
    y = np.arange(n)
    ax.barh(y, values, color=colors)
    ax.set_yticks(y)
    ax.set_yticklabels(labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.12)
    ax.set_xlabel("probability (softmax of the scores)", fontsize=9)
    ax.set_ylabel("class", fontsize=9)
    for k, v in enumerate(values):
        ax.text(min(v, 1.0) + 0.01, k, f"{v:.3f}", va="center", fontsize=7, in_layout=False)
    more = f"\nthe {int(top_k)} most probable of {K:,} classes" if rest is not None else ""
    ax.set_title(f"{title}: predicted {names[pred]} ({p[pred]:.1%}){more}", fontsize=10)
    ax.tick_params(labelsize=8)
    ax.grid(axis="x", alpha=0.3)
    return fig


# --------------------------------------------------------------------------- arithmetic pictures
def conv_figure(image: np.ndarray, kernel: np.ndarray, output: np.ndarray, title: str,
                padded: Optional[np.ndarray] = None):
    """Input, kernel and feature map side by side, numbers written in when they fit.

    Shape:
        image ``(H, W)`` or ``(C, H, W)`` (first channel shown); kernel
        ``(kh, kw)`` or ``(C, kh, kw)``; output ``(out_h, out_w)``.
    """
    img = np.asarray(image if padded is None else padded, dtype=np.float64)
    ker = np.asarray(kernel, dtype=np.float64)
    out = np.asarray(output, dtype=np.float64)
    chan_note = ""
    if img.ndim == 3:
        chan_note = f" (channel 0 of {img.shape[0]})"
        img = img[0]
    if ker.ndim == 3:
        ker = ker[0]
    fig = new_figure(13.0, 4.4)
    axes = fig.subplots(1, 3, width_ratios=[img.shape[1], max(ker.shape[1], img.shape[1] * 0.45), out.shape[1]])
    lo, hi = float(img.min()), float(img.max())
    _matrix_panel(axes[0], img, ("padded input" if padded is not None else "input") + chan_note
                  + f" {img.shape[0]}x{img.shape[1]}", "gray", lo, hi if hi > lo else lo + 1, fig, "input value")
    cmap, vmin, vmax = value_scale(ker, signed=True)
    _matrix_panel(axes[1], ker, f"kernel {ker.shape[0]}x{ker.shape[1]}" + chan_note, cmap, vmin, vmax, fig,
                  "weight")
    cmap, vmin, vmax = value_scale(out)
    _matrix_panel(axes[2], out, f"feature map {out.shape[0]}x{out.shape[1]}", cmap, vmin, vmax, fig,
                  "output value")
    fig.suptitle(title, fontsize=11)
    return fig


def pool_figure(image: np.ndarray, output: np.ndarray, title: str):
    """Input and pooled map side by side (first channel), numbers written in when they fit.

    Shape:
        image ``(H, W)`` or ``(C, H, W)``; output ``(out_h, out_w)`` or ``(C, out_h, out_w)``.
    """
    img = np.asarray(image, dtype=np.float64)
    out = np.asarray(output, dtype=np.float64)
    note = ""
    if img.ndim == 3:
        note = f" (channel 0 of {img.shape[0]})"
        img, out = img[0], out[0]
    fig = new_figure(10.0, 4.4)
    axes = fig.subplots(1, 2, width_ratios=[img.shape[1], max(out.shape[1], 2)])
    cmap, vmin, vmax = value_scale(np.concatenate([img.ravel(), out.ravel()]))
    _matrix_panel(axes[0], img, f"input {img.shape[0]}x{img.shape[1]}{note}", cmap, vmin, vmax, fig)
    _matrix_panel(axes[1], out, f"pooled {out.shape[0]}x{out.shape[1]}{note}", cmap, vmin, vmax, fig)
    fig.suptitle(title, fontsize=11)
    return fig


FILTER_SCALES = ("auto", "image", "diverging", "abs")


def _resolve_scale(scale: str, kernel: np.ndarray) -> str:
    if scale not in FILTER_SCALES:
        raise ValueError(f"scale must be one of {', '.join(FILTER_SCALES)}, got {scale!r}")
    if scale != "auto":
        return scale
    k = np.asarray(kernel, dtype=np.float64)
    # a kernel with no negative weights summing to ~1 (blur) keeps the image's range: show it as an image
    if k.min() >= 0 and abs(k.sum() - 1.0) < 1e-3:
        return "image"
    return "diverging"


def filter_image(response: np.ndarray, scale: str) -> Tuple[np.ndarray, str]:
    """The filtered image itself as uint8 pixels, and a sentence saying how values became colours.

    Args:
        response: ``(C, H, W)`` conv output (C = 1 or 3).
        scale: ``"image"`` (values clipped to [0, 1], the original brightness
            scale), ``"abs"`` (``|value|`` divided by the largest ``|value|``:
            black = no response, white = strongest edge), or ``"diverging"``
            (blue negative, white 0, red positive, limits +-max ``|value|``;
            for RGB the mean over channels is mapped).

    Shape:
        ``(C, H, W)`` -> ``(H, W)`` (gray) or ``(H, W, 3)`` uint8.
    """
    from matplotlib import colormaps
    r = np.asarray(response, dtype=np.float64)
    if scale == "image":
        a = r[0] if r.shape[0] == 1 else r.transpose(1, 2, 0)
        return np.round(np.clip(a, 0, 1) * 255).astype(np.uint8), \
            "values clipped to [0, 1] and shown as pixel brightness (black 0, white 1)"
    m = float(np.abs(r).max()) or 1.0
    if scale == "abs":
        a = np.abs(r) / m
        a = a[0] if r.shape[0] == 1 else a.transpose(1, 2, 0)
        return np.round(a * 255).astype(np.uint8), \
            f"absolute-value scale: |response| / {m:.4g} (black = 0, white = the strongest response)"
    if scale == "diverging":
        plane = r[0] if r.shape[0] == 1 else r.mean(axis=0)
        rgba = colormaps[DIVERGING]((plane / m + 1.0) / 2.0)
        what = "response" if r.shape[0] == 1 else "mean response over R, G, B"
        return np.round(rgba[..., :3] * 255).astype(np.uint8), \
            f"diverging scale of the signed {what}: blue = -{m:.4g}, white = 0, red = +{m:.4g}"
    raise ValueError(f"scale must be 'image', 'abs' or 'diverging', got {scale!r}")


def filter_figure(image: np.ndarray, kernel: np.ndarray, response: np.ndarray, name: str,
                  scale: str = "auto", detail: str = ""):
    """A classic filter on an image: the image, the kernel with its numbers, and the result.

    Args:
        image: ``(C, H, W)`` in [0, 1], C = 1 or 3.
        kernel: ``(kh, kw)``.
        response: ``(C, out_h, out_w)``: the kernel applied to each channel.
        name: the filter's name, for the title.
        scale: ``"auto"`` (``"image"`` for blurs, whose weights are >= 0 and
            sum to 1; ``"diverging"`` for signed kernels such as Sobel,
            Laplacian, Gabor, sharpen), ``"image"``, ``"diverging"`` or ``"abs"``.
            RGB results on a signed scale are drawn per channel.
        detail: a line under the title (stride, padding).

    Returns:
        ``(figure, scale_used, sentence)``.
    """
    img = np.asarray(image, dtype=np.float64)
    ker = np.asarray(kernel, dtype=np.float64)
    r = np.asarray(response, dtype=np.float64)
    used = _resolve_scale(scale, ker)
    rgb = r.shape[0] == 3
    panels = 3 if not (rgb and used != "image") else 5
    ratios = [1.0, 0.8] + [1.0] * (panels - 2)
    fig = new_figure(3.3 * panels + 0.6, 4.0)
    axes = fig.subplots(1, panels, width_ratios=ratios)
    _show_image(axes[0], img, f"input {img.shape[1]}x{img.shape[2]} " + ("RGB" if img.shape[0] == 3 else "gray"))
    cmap, vmin, vmax = value_scale(ker, signed=True)
    _matrix_panel(axes[1], ker, f"kernel {ker.shape[0]}x{ker.shape[1]}", cmap, vmin, vmax, fig, "weight",
                  annotate=ker.size <= 49)
    m = float(np.abs(r).max()) or 1.0
    if used == "image":
        im = _show_image(axes[2], r if rgb else r[0], f"output {r.shape[1]}x{r.shape[2]}")
        sentence = "values clipped to [0, 1] and shown as pixel brightness (black 0, white 1)"
        if not rgb:
            cb = fig.colorbar(im, ax=axes[2], shrink=0.85)
            cb.set_label("output value", fontsize=8)
    elif not rgb:
        if used == "diverging":
            im = axes[2].imshow(r[0], cmap=DIVERGING, vmin=-m, vmax=m, interpolation="nearest")
            label = "response (blue < 0 < red)"
            sentence = f"diverging scale: blue = -{m:.4g}, white = 0, red = +{m:.4g}"
        else:
            im = axes[2].imshow(np.abs(r[0]), cmap="gray", vmin=0, vmax=m, interpolation="nearest")
            label = "|response|"
            sentence = f"absolute-value scale: black = 0, white = |response| {m:.4g}"
        axes[2].set_title(f"output {r.shape[1]}x{r.shape[2]}", fontsize=9)
        axes[2].set_xticks([])
        axes[2].set_yticks([])
        cb = fig.colorbar(im, ax=axes[2], shrink=0.85)
        cb.set_label(label, fontsize=8)
    else:
        im = None
        for c, cname in enumerate(("red", "green", "blue")):
            ax = axes[2 + c]
            if used == "diverging":
                im = ax.imshow(r[c], cmap=DIVERGING, vmin=-m, vmax=m, interpolation="nearest")
            else:
                im = ax.imshow(np.abs(r[c]), cmap="gray", vmin=0, vmax=m, interpolation="nearest")
            ax.set_title(f"output, {cname} channel", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
        cb = fig.colorbar(im, ax=list(axes[2:]), shrink=0.85)
        cb.set_label("response (blue < 0 < red)" if used == "diverging" else "|response|", fontsize=8)
        sentence = (f"{'diverging' if used == 'diverging' else 'absolute-value'} scale per channel, shared: "
                    + (f"blue = -{m:.4g}, white = 0, red = +{m:.4g}" if used == "diverging"
                       else f"black = 0, white = {m:.4g}"))
    fig.suptitle(f"filter {name}" + (f" ({detail})" if detail else "") + f"\n{sentence}", fontsize=10)
    return fig, used, sentence


# --------------------------------------------------------------------------- training and evaluation
def history_figure(history: Dict[str, Sequence], title: str = "training curves"):
    """Loss and accuracy per epoch, for the training and the validation data.

    Args:
        history: columns of ``history.csv``: ``epoch`` and any of
            ``train_loss``, ``val_loss``, ``train_accuracy``, ``val_accuracy``
            (missing or empty values are skipped).
    """
    def column(key):
        vals = history.get(key)
        if vals is None:
            return None
        arr = np.array([np.nan if v in (None, "") else float(v) for v in vals], dtype=np.float64)
        return arr if np.isfinite(arr).any() else None

    epochs = column("epoch")
    if epochs is None:
        raise ValueError(f"history has no 'epoch' column; columns: {sorted(history)}")
    fig = new_figure(11.0, 3.8)
    axes = fig.subplots(1, 2)
    for ax, metric, label in ((axes[0], "loss", "cross-entropy loss"), (axes[1], "accuracy", "accuracy")):
        drawn = False
        for part, style in (("train", "-o"), ("val", "-s")):
            ys = column(f"{part}_{metric}")
            if ys is None:
                continue
            ok = np.isfinite(ys)
            ax.plot(epochs[ok], ys[ok], style, markersize=3,
                    label={"train": "training", "val": "validation"}[part])
            drawn = True
        ax.set_xlabel("epoch", fontsize=9)
        ax.set_ylabel(label, fontsize=9)
        ax.set_title(label + " per epoch", fontsize=10)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8)
        if metric == "accuracy" and drawn:
            ax.set_ylim(top=1.0)
        if drawn:
            ax.legend(fontsize=8)
        if len(epochs) <= 20:
            ax.set_xticks(epochs)
    fig.suptitle(title, fontsize=11)
    return fig


def confusion_figure(matrix: np.ndarray, classes: Sequence[str], title: str = "confusion matrix"):
    """Counts of (true class, predicted class); colour = share of the true class's images.

    Shape:
        matrix ``(K, K)``, rows = true class, columns = predicted class.
    """
    cm = np.asarray(matrix, dtype=np.int64)
    K = cm.shape[0]
    names = [str(c) for c in classes]
    rows = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, rows, out=np.zeros(cm.shape, dtype=np.float64), where=rows > 0)
    size = min(11.0, 2.0 + 0.42 * K)
    fig = new_figure(size + 1.2, size)
    ax = fig.subplots()
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
    if K <= 30:
        for (r, c), v in np.ndenumerate(cm):
            if v:
                ax.text(c, r, str(v), ha="center", va="center", fontsize=max(5, min(9, 100 // K)),
                        color="white" if share[r, c] > 0.55 else ("#c0392b" if r != c else "black"),
                        in_layout=False)
    ax.set_xticks(range(K))
    ax.set_yticks(range(K))
    ax.set_xticklabels(names, rotation=45 if max(map(len, names)) > 2 else 0, ha="right" if
                       max(map(len, names)) > 2 else "center", fontsize=8)
    ax.set_yticklabels(names, fontsize=8)
    ax.set_xlabel("predicted class", fontsize=9)
    ax.set_ylabel("true class", fontsize=9)
    total = int(cm.sum())
    acc = np.trace(cm) / total if total else 0.0
    ax.set_title(f"{title}: {total} images, accuracy {acc:.2%}\n(numbers: image counts; off-diagonal "
                 f"= mistakes)", fontsize=10)
    cb = fig.colorbar(im, ax=ax, shrink=0.8)
    cb.set_label("share of the true class's images", fontsize=8)
    cb.ax.tick_params(labelsize=7)
    return fig


def _image_grid_figure(images, captions, title, colors=None, cols: int = 8):
    n = len(images)
    if n == 0:
        fig = new_figure(6.0, 1.5)
        ax = fig.subplots()
        ax.set_axis_off()
        ax.text(0.5, 0.5, "nothing to show", ha="center", va="center", fontsize=11)
        fig.suptitle(title, fontsize=11)
        return fig
    cols = min(cols, n)
    rows = math.ceil(n / cols)
    lines = max(c.count("\n") + 1 for c in captions)
    fig = new_figure(1.75 * cols, (1.55 + 0.2 * lines) * rows + 0.6)
    axes = fig.subplots(rows, cols, squeeze=False)
    for k, ax in enumerate(axes.ravel()):
        if k < n:
            _show_image(ax, images[k])
            ax.set_title(captions[k], fontsize=8.5, color=(colors[k] if colors else "black"), pad=3)
        else:
            ax.set_axis_off()
    fig.suptitle(title, fontsize=11)
    return fig


def mistakes_figure(images: np.ndarray, true: Sequence[int], probabilities: np.ndarray,
                    classes: Sequence[str], title: str = "most confidently wrong test images"):
    """A grid of misclassified images with the probability given to the wrong and the true class.

    Shape:
        images ``(N, C, H, W)`` in [0, 1]; true ``(N,)``; probabilities ``(N, K)``.
    """
    p = np.asarray(probabilities, dtype=np.float64)
    names = [str(c) for c in classes]
    captions = []
    for k in range(len(images)):
        pred, t = int(p[k].argmax()), int(true[k])
        captions.append(f"predicted {names[pred]}: {p[k, pred]:.1%}\ntrue {names[t]}: {p[k, t]:.1%}")
    return _image_grid_figure(images, captions, title, ["#c0392b"] * len(images))


def predictions_figure(images: np.ndarray, true: Sequence[int], probabilities: np.ndarray,
                       classes: Sequence[str], title: str = "sample test predictions"):
    """A grid of images captioned with the prediction, its probability and the true class (green
    when right, red when wrong).

    Shape:
        images ``(N, C, H, W)`` in [0, 1]; true ``(N,)``; probabilities ``(N, K)``.
    """
    p = np.asarray(probabilities, dtype=np.float64)
    names = [str(c) for c in classes]
    captions, colors = [], []
    for k in range(len(images)):
        pred, t = int(p[k].argmax()), int(true[k])
        captions.append(f"predicted {names[pred]} ({p[k, pred]:.0%})\ntrue {names[t]}")
        colors.append("#1e8449" if pred == t else "#c0392b")
    return _image_grid_figure(images, captions, title, colors)


def saliency_figure(image: np.ndarray, saliency: np.ndarray, heatmap: np.ndarray, title: str,
                    cam: Optional[np.ndarray] = None, cam_layer: str = ""):
    """Input, gradient saliency, Grad-CAM over the input (and at the layer's own resolution).

    Args:
        image: ``(C, H, W)`` in [0, 1] as the model sees it (before normalisation).
        saliency: ``(H, W)`` max over channels of ``|d score / d pixel|``.
        heatmap: ``(H, W)`` Grad-CAM in [0, 1], resized to the input.
        title: what was explained (class, probability).
        cam: ``(h, w)`` Grad-CAM before resizing, drawn as a 4th panel.
        cam_layer: the layer Grad-CAM used, for the panel title.
    """
    img = np.asarray(image, dtype=np.float64)
    panels = 4 if cam is not None else 3
    fig = new_figure(3.4 * panels + 0.8, 3.9)
    axes = fig.subplots(1, panels)
    _show_image(axes[0], img, f"input {img.shape[1]}x{img.shape[2]}")
    s = np.asarray(saliency, dtype=np.float64)
    im = axes[1].imshow(s, cmap="inferno", vmin=0, vmax=float(s.max()) or 1.0, interpolation="nearest")
    axes[1].set_title("gradient saliency\n|d score / d pixel|, max over channels", fontsize=9)
    axes[1].set_xticks([])
    axes[1].set_yticks([])
    cb = fig.colorbar(im, ax=axes[1], shrink=0.8)
    cb.set_label("|gradient|", fontsize=8)
    cb.ax.tick_params(labelsize=7)
    gray = img.mean(axis=0)
    axes[2].imshow(gray, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    im = axes[2].imshow(np.asarray(heatmap), cmap=HEAT, vmin=0, vmax=1, alpha=0.5, interpolation="bilinear")
    axes[2].set_title("Grad-CAM over the input (gray)", fontsize=9)
    axes[2].set_xticks([])
    axes[2].set_yticks([])
    cb = fig.colorbar(im, ax=axes[2], shrink=0.8)
    cb.set_label("Grad-CAM, scaled to [0, 1]", fontsize=8)
    cb.ax.tick_params(labelsize=7)
    if cam is not None:
        c = np.asarray(cam, dtype=np.float64)
        im = axes[3].imshow(c, cmap=HEAT, vmin=0, vmax=float(c.max()) or 1.0, interpolation="nearest")
        axes[3].set_title(f"Grad-CAM at layer {cam_layer}\n({c.shape[0]}x{c.shape[1]}, before resizing)",
                          fontsize=9)
        axes[3].set_xticks([])
        axes[3].set_yticks([])
        cb = fig.colorbar(im, ax=axes[3], shrink=0.8)
        cb.set_label("relu(sum_k alpha_k A_k)", fontsize=8)
        cb.ax.tick_params(labelsize=7)
    fig.suptitle(title, fontsize=10)
    return fig


def network_figure(image: np.ndarray, stages: Sequence[Tuple[str, np.ndarray]], title: str,
                   max_channels: int = 8, width: float = 10.0):
    """One image's path through the network: the input, then one row per stage (first channels).

    Each row has its own colour scale and colour bar (values grow or shrink
    from layer to layer), shared by the channels of that row.

    Args:
        image: ``(C, H, W)`` input in [0, 1].
        stages: ``(label, maps (C, h, w))`` per row, e.g. the outputs after
            each ReLU and pooling.
        title: figure title.
        max_channels: channels per row.
        width: figure width in inches.
    """
    from matplotlib import colormaps
    img = np.asarray(image, dtype=np.float64)
    canvases = []
    for label, maps in stages:
        a = np.asarray(maps, dtype=np.float64)[:max_channels]
        canvas, spots = _montage(a, a.shape[0])
        canvases.append((label, a, canvas, spots, np.asarray(maps).shape[0]))
    usable = width - 1.0                       # the colour bars take the rest
    heights = [1.4] + [usable * c.shape[0] / c.shape[1] + 0.3 for _, _, c, _, _ in canvases]
    fig = new_figure(width, sum(heights) + 0.5)
    grid = fig.add_gridspec(len(heights), 1, height_ratios=heights)
    ax = fig.add_subplot(grid[0, 0])
    if img.shape[0] == 3:
        ax.imshow(np.clip(img.transpose(1, 2, 0), 0, 1), interpolation="nearest")
    else:
        ax.imshow(img[0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    ax.set_title(f"input {img.shape[1]}x{img.shape[2]}", fontsize=9)
    for r, (label, a, canvas, spots, total) in enumerate(canvases, start=1):
        cmap, vmin, vmax = value_scale(a)
        cm = colormaps[cmap].with_extremes(bad="white")
        ax = fig.add_subplot(grid[r, 0])
        im = ax.imshow(np.ma.masked_invalid(canvas), cmap=cm, vmin=vmin, vmax=vmax, interpolation="nearest")
        for k, (x, y) in enumerate(spots):
            ax.text(x, y, f"ch {k}", ha="center", va="center", fontsize=7, in_layout=False)
        ax.set_axis_off()
        first = f"first {a.shape[0]} of " if a.shape[0] < total else ""
        ax.set_title(f"{label}: {first}{total} channels, {a.shape[1]}x{a.shape[2]}", fontsize=9)
        cb = fig.colorbar(im, ax=ax, shrink=0.9, aspect=10, pad=0.01)
        cb.ax.tick_params(labelsize=7)
    fig.suptitle(title, fontsize=10)
    return fig
