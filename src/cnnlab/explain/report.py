"""One self-contained HTML page about a trained run (``cnnlab report RUN_DIR``).

The page holds the architecture with the output-size arithmetic of every
layer, the training curves, the test metrics and confusion matrix, sample
predictions, the most confident mistakes, the first layer's kernels, and for
a few test images their feature maps, gradient saliency and Grad-CAM.  Every
picture is embedded as a base64 PNG ``data:`` URI and the style sheet is
inline: the file opens offline in any browser, with no scripts, fonts or
other files.  Sections whose data are missing (no ``history.csv``, test data
not available) are replaced by a sentence saying why.
"""
from __future__ import annotations

import base64
import html
import re
from datetime import datetime
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

__all__ = ["build_report", "write_report", "MANY_CLASSES"]

_DPI = 90

_CSS = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 0; color: #222;
       background: #f4f5f7; line-height: 1.45; }
main { max-width: 1200px; margin: 0 auto; padding: 1.5em 2em 3em; background: #fff; }
h1 { margin-bottom: 0.2em; }
h2 { border-bottom: 2px solid #d0d4da; padding-bottom: 0.2em; margin-top: 2em; }
h3 { margin-bottom: 0.3em; }
p.lead { color: #555; margin-top: 0; }
figure { margin: 0.8em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #e1e4e8; }
figcaption { font-size: 0.9em; color: #555; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.92em; }
th, td { border: 1px solid #d0d4da; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #eef1f4; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
code, td.arith { font-family: Menlo, Consolas, 'DejaVu Sans Mono', monospace; font-size: 0.92em; }
.warn { color: #a04000; }
.note { background: #fff8e1; border-left: 4px solid #f0b400; padding: 0.4em 0.8em; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(170px, 1fr)); gap: 0.6em; }
.card { border: 1px solid #d0d4da; border-radius: 4px; padding: 0.4em 0.7em; }
.card b { display: block; font-size: 1.35em; }
details { margin: 0.6em 0; }
summary { cursor: pointer; font-weight: 600; }
nav { margin-bottom: 1em; }
nav a { margin-right: 1em; }
.row { display: flex; flex-wrap: wrap; gap: 1em; align-items: flex-start; }
.row figure { margin: 0.4em 0; }
"""


def _esc(x) -> str:
    return html.escape(str(x))


def _img(fig, alt: str, caption: str = "") -> str:
    from .plots import figure_png
    data = base64.b64encode(figure_png(fig, dpi=_DPI)).decode("ascii")
    cap = f"<figcaption>{_esc(caption)}</figcaption>" if caption else ""
    return f'<figure><img src="data:image/png;base64,{data}" alt="{_esc(alt)}">{cap}</figure>'


def _note(text: str) -> str:
    return f'<p class="note">{_esc(text)}</p>'


def _num(x, digits: int = 4) -> str:
    if x is None:
        return "-"
    if isinstance(x, (int, np.integer)) and not isinstance(x, bool):
        return f"{int(x):,}"
    try:
        return f"{float(x):.{digits}g}"
    except (TypeError, ValueError):
        return _esc(x)


def _architecture(run) -> str:
    from .summary import summary_rows
    rows = summary_rows(run.model, run.saved.input_shape)
    shape = "x".join(map(str, run.saved.input_shape))
    out = ["<h2 id='architecture'>Architecture and shape arithmetic</h2>",
           f"<p>Input {shape} (channels x height x width). Each convolution or pooling layer's output size "
           "follows <code>(W + 2P - K) / S + 1</code>, rounded down: input size W, padding P on each side, "
           "kernel K, stride S; here with each layer's own numbers.</p>",
           "<table><tr><th>#</th><th>layer</th><th>output shape</th><th>parameters</th>"
           "<th>output size arithmetic</th></tr>"]
    warnings = []
    for r in rows:
        arith = "<br>".join(_esc(a) for a in r.arithmetic)
        out.append(f"<tr><td>{_esc(r.name)}</td><td>{_esc(r.description)}</td>"
                   f"<td>{'x'.join(map(str, r.output_shape))}</td><td class='num'>{r.params:,}</td>"
                   f"<td class='arith'>{arith}</td></tr>")
        warnings += [f"layer {r.name}: {w}" for w in r.warnings]
    total = sum(r.params for r in rows)
    out.append(f"<tr><th colspan='3'>total</th><th class='num'>{total:,}</th><th></th></tr></table>")
    for w in warnings:
        out.append(f"<p class='warn'>warning: {_esc(w)}</p>")
    return "\n".join(out)


def _cards(items: Sequence[Tuple[str, str]]) -> str:
    return "<div class='cards'>" + "".join(f"<div class='card'>{_esc(k)}<b>{_esc(v)}</b></div>"
                                           for k, v in items) + "</div>"


def _shown(dataset) -> Optional[str]:
    """A data set's name as a shared page may show it: an image folder's own name, never its full path."""
    if dataset is None:
        return None
    text = str(dataset)
    return text.rstrip("/\\").replace("\\", "/").split("/")[-1] or text


def _public(value):
    """A data set or model given as a path shows as its folder or file name only: a shared report
    must not carry the absolute paths of the machine that wrote it."""
    if isinstance(value, str) and ("/" in value or "\\" in value):
        return re.split(r"[/\\]", value.rstrip("/\\"))[-1] or value
    return value


def _training(run) -> str:
    from .plots import history_figure
    out = ["<h2 id='training'>Training</h2>"]
    cfg = run.config or {}
    m = run.metrics or {}
    settings = [(k, cfg.get(k, m.get(k))) for k in ("dataset", "model", "epochs", "batch_size", "optimizer", "lr",
                                                     "schedule", "weight_decay", "augment", "seed", "limit")]
    settings = [(k, _public(v)) for k, v in settings if v is not None]
    if settings:
        out.append("<table><tr>" + "".join(f"<th>{_esc(k)}</th>" for k, _ in settings) + "</tr><tr>"
                   + "".join(f"<td>{_esc(v)}</td>" for _, v in settings) + "</tr></table>")
    if run.history is None:
        out.append(_note("No history.csv in the run directory, so there are no training curves."))
        return "\n".join(out)
    augmented = " (augmented)" if cfg.get("augment") else ""
    out.append(_img(history_figure(run.history, f"{run.name}: loss and accuracy per epoch"), "training curves",
                    f"Training: mean over the epoch's batches{augmented}, while the weights were still changing; "
                    "validation: the held-out images after the epoch."))
    if m:
        facts = [("epochs", m.get("epochs")), ("best epoch", m.get("best_epoch")),
                 ("training time (s)", m.get("train_seconds")), ("images / s", m.get("images_per_second")),
                 ("train / val / test images",
                  f"{m.get('train_size', '-')} / {m.get('val_size', '-')} / {m.get('test_size', '-')}")]
        out.append(_cards([(k, _num(v) if not isinstance(v, str) else v) for k, v in facts if v is not None]))
    return "\n".join(out)


# past this many classes the page lists the classes present and the most frequent confusions instead
# of drawing a K x K matrix (whose labels no longer read) and a row for every class
MANY_CLASSES = 30
_TOP_CONFUSIONS = 20


def _per_class_table(labels: np.ndarray, predictions: np.ndarray, classes: Sequence[str]) -> str:
    """Precision, recall, F1 and support per class; with many classes only the classes present in the
    test data get a row."""
    from sklearn.metrics import precision_recall_fscore_support  # as `cnnlab evaluate`
    many = len(classes) > MANY_CLASSES
    rows_of = np.unique(labels) if many else np.arange(len(classes))
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, predictions, labels=[int(k) for k in rows_of], zero_division=0)
    rows = ["<table><tr><th>class</th><th>precision</th><th>recall</th><th>F1</th><th>test images</th></tr>"]
    for j, k in enumerate(rows_of):
        rows.append(f"<tr><td>{_esc(classes[int(k)])}</td><td class='num'>{precision[j]:.3f}</td>"
                    f"<td class='num'>{recall[j]:.3f}</td><td class='num'>{f1[j]:.3f}</td>"
                    f"<td class='num'>{int(support[j])}</td></tr>")
    rows.append("</table>")
    table = "\n".join(rows)
    if not many:
        return table
    return (f"<details><summary>Precision, recall and F1 of the {len(rows_of):,} classes present in the test "
            f"data</summary>{table}</details>")


def _classes_present(labels: np.ndarray, classes: Sequence[str]) -> str:
    present = np.unique(labels)
    shown = ", ".join(_esc(classes[int(k)]) for k in present[:MANY_CLASSES])
    more = f", ... ({len(present) - MANY_CLASSES:,} more)" if len(present) > MANY_CLASSES else ""
    return (f"<p>The test data holds images of {len(present):,} of the model's {len(classes):,} classes: "
            f"{shown}{more}.</p>")


def _confusion_list(confusion: np.ndarray, classes: Sequence[str], top: int = _TOP_CONFUSIONS) -> str:
    """The most frequent (true class, predicted class) mistakes as a table, most frequent first."""
    cm = np.asarray(confusion, dtype=np.int64)
    off = cm.copy()
    np.fill_diagonal(off, 0)
    flat = np.flatnonzero(off)
    if not flat.size:
        return "<p>No test image is misclassified.</p>"
    order = flat[np.argsort(-off.ravel()[flat], kind="stable")][:top]
    totals = cm.sum(axis=1)
    rows = [f"<h3>The most frequent confusions</h3><p>{int(off.sum()):,} mistakes in "
            f"{len(flat):,} (true class, predicted class) pairs; the {len(order)} most frequent:</p>",
            "<table><tr><th>true class</th><th>predicted as</th><th>images</th>"
            "<th>share of the true class's images</th></tr>"]
    for i in order:
        t, p = divmod(int(i), cm.shape[1])
        rows.append(f"<tr><td>{_esc(classes[t])}</td><td>{_esc(classes[p])}</td><td class='num'>{int(cm[t, p])}</td>"
                    f"<td class='num'>{cm[t, p] / max(int(totals[t]), 1):.1%}</td></tr>")
    rows.append("</table>")
    return "\n".join(rows)


def _choose_samples(ev, count: int) -> List[int]:
    """Correct predictions of different classes, plus the most confident mistake (if any)."""
    chosen: List[int] = []
    mistakes = ev.most_confident_mistakes(1)
    want_correct = count - (1 if len(mistakes) and count > 1 else 0)
    seen = set()
    for i in np.flatnonzero(ev.predictions == ev.labels):
        if len(chosen) >= want_correct:
            break
        if int(ev.labels[i]) not in seen:
            seen.add(int(ev.labels[i]))
            chosen.append(int(i))
    chosen += [int(i) for i in mistakes[:count - len(chosen)]]
    return chosen


def _stages(outs) -> List[Tuple[str, np.ndarray]]:
    """The layer outputs worth a row in the network figure: after each activation and pooling."""
    from .. import nn
    keep = (nn.ReLU, nn.LeakyReLU, nn.GELU, nn.Tanh, nn.Sigmoid, nn.MaxPool2d, nn.AvgPool2d, nn.MinPool2d,
            nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.FractionalMaxPool2d)
    stages = [(f"layer {o.name}: {o.kind}", o.output[0]) for o in outs
              if o.output.ndim == 4 and isinstance(o.layer, keep)]
    if not stages:
        stages = [(f"layer {o.name}: {o.kind}", o.output[0]) for o in outs if o.output.ndim == 4]
    return stages[:8]


def _sample_section(run, data, ev, indices: Sequence[int]) -> str:
    from .features import layer_outputs, to_probabilities
    from .plots import (feature_map_figure, network_figure, probability_figure, saliency_figure,
                        vector_figure)
    from .saliency import grad_cam, saliency_map
    out = ["<h2 id='inside'>Inside the network, image by image</h2>",
           "<p>For a few test images: the feature maps after each activation and pooling (one row per layer, "
           "first channels, one colour scale per row: blue negative, red positive, or dark to bright for values "
           "that cannot be negative), the class probabilities, and two answers to <em>why this class</em>: "
           "the <b>gradient saliency</b>, |d score / d pixel| computed by backpropagating the class score "
           "(the last layer's output before softmax) to the input, and <b>Grad-CAM</b>, the last convolution "
           "block's feature maps A<sub>k</sub> weighted by their mean gradients "
           "&alpha;<sub>k</sub> = mean d score / d A<sub>k</sub>, relu(&sum; &alpha;<sub>k</sub> A<sub>k</sub>), "
           "stretched over the input.</p>"]
    classes = run.classes
    x_all = run.saved.preprocess(data.images[list(indices)])
    sal = saliency_map(run.model, x_all)
    try:
        cam = grad_cam(run.model, x_all)
    except ValueError as exc:
        cam = None
        out.append(_note(f"Grad-CAM is not available for this model: {exc}"))
    for j, i in enumerate(indices):
        true, pred = int(data.labels[i]), int(ev.predictions[i])
        p = ev.probabilities[i]
        verdict = "correct" if true == pred else "wrong"
        out.append(f"<h3>Test image {i}: true class {_esc(classes[true])}, predicted "
                   f"{_esc(classes[pred])} ({p[pred]:.1%}, {verdict})</h3>")
        outs = layer_outputs(run.model, x_all[j:j + 1])
        stages = _stages(outs)
        probs = to_probabilities(outs[-1].output, outs[-1].layer)[0]
        row = []
        if stages:
            row.append(_img(network_figure(data.images[i], stages, f"test image {i}: feature maps", width=8.0),
                            f"feature maps of test image {i}"))
        row.append(_img(probability_figure(probs, classes, f"test image {i}", true_class=true, width=4.2),
                        f"probabilities of test image {i}"))
        out.append("<div class='row'>" + "".join(row) + "</div>")
        if cam is not None:
            title = (f"test image {i}: explaining the predicted class {classes[pred]} ({p[pred]:.1%}); "
                     f"true class {classes[true]}")
            out.append(_img(saliency_figure(data.images[i], sal.saliency[j], cam.heatmap[j], title, cam.cam[j],
                                            cam.layer), f"saliency and Grad-CAM of test image {i}"))
        if j == 0:
            body = []
            for o in outs:
                a = o.output[0]
                label = f"layer {o.name}: {o.kind} -> {'x'.join(map(str, a.shape))}"
                fig = feature_map_figure(a, label, 32) if a.ndim == 3 else vector_figure(a.ravel(), label)
                body.append(_img(fig, label))
            out.append("<details><summary>Every layer's output for this image (all channels, up to 32 per "
                       "layer; the flattened vector and dense layers as bars)</summary>" + "\n".join(body)
                       + "</details>")
    return "\n".join(out)


def _test_results(run, data, ev, dataset, grid: int, notes: List[str]) -> str:
    """The report's test section: figures, the confusion matrix (or list), per-class table, samples, mistakes."""
    from .plots import confusion_figure, mistakes_figure, predictions_figure
    parts: List[str] = []
    parts.append("<h2 id='test'>Test results</h2>")
    if ev is None:
        parts.append(_note(notes[-1]))
    else:
        n = len(ev.labels)
        parts.append(_cards([("test images", f"{n:,}"), ("accuracy", f"{ev.accuracy:.2%}"),
                             ("mistakes", f"{int((ev.predictions != ev.labels).sum()):,}"),
                             ("mean cross-entropy", f"{ev.loss:.4f}")]))
        description = str(data.description)
        for root in ((getattr(data, "extra", None) or {}).get("root"), dataset, run.dataset):
            if root and str(root) != _shown(root):  # an image folder: its name, not where it sits
                description = description.replace(str(root), _shown(root))
        parts.append(f"<p>Test data: {_esc(description)}.</p>")
        if len(run.classes) > MANY_CLASSES:
            parts.append(_classes_present(ev.labels, run.classes))
            parts.append(_confusion_list(ev.confusion, run.classes))
        else:
            parts.append(_img(confusion_figure(ev.confusion, run.classes, "confusion matrix"), "confusion matrix",
                              "Rows: the true class; columns: the predicted class. The diagonal holds the correct "
                              "predictions; each cell's colour is its share of the true class's images."))
        parts.append(_per_class_table(ev.labels, ev.predictions, run.classes))
        k = min(grid, n)
        parts.append("<h3>Sample predictions</h3>")
        parts.append(_img(predictions_figure(data.images[:k], data.labels[:k], ev.probabilities[:k], run.classes,
                                             f"the first {k} test images"), "sample predictions",
                          "Green: right, red: wrong; the percentage is the softmax probability of the "
                          "predicted class."))
        wrong = ev.most_confident_mistakes(grid)
        parts.append("<h3>The most confidently wrong test images</h3>")
        if len(wrong):
            parts.append(_img(mistakes_figure(data.images[wrong], ev.labels[wrong], ev.probabilities[wrong],
                                              run.classes, f"{len(wrong)} most confident mistakes"),
                              "most confident mistakes",
                              "Wrong predictions sorted by the probability the model gave its (wrong) answer; "
                              "below it, the probability it gave the true class."))
        else:
            parts.append("<p>No test image is misclassified.</p>")

    return "\n".join(parts)


def _first_layer(run) -> str:
    """The report's section on the first convolution's kernels."""
    from .features import first_conv_weight
    from .plots import kernel_figure
    parts: List[str] = []
    parts.append("<h2 id='kernels'>What the first layer learned</h2>")
    name, weight = first_conv_weight(run.model)
    if weight is None:
        parts.append(_note("The model has no convolution layer."))
    else:
        parts.append("<p>Each kernel slides over the input; where the image looks like the kernel (bright where "
                     "it is red, dark where it is blue) the feature map is large. Compare them with the classic "
                     "hand-made filters (<code>cnnlab filter IMAGE --kernel sobel-x</code>).</p>")
        parts.append(_img(kernel_figure(weight, f"layer {name} kernels", 64,
                                       0.85 if weight.shape[0] > 16 else 1.2), "first-layer kernels"))

    return "\n".join(parts)


def build_report(run_dir, dataset: Optional[str] = None, data_dir=None, samples: int = 4,
                 limit: Optional[int] = None, grid: int = 16) -> Tuple[str, List[str]]:
    """The report's HTML text, and notes on what could not be included.

    Args:
        run_dir: a run directory (or a saved model folder).
        dataset, data_dir: where the test images come from (default: the run's ``config.json``).
        samples: test images shown with feature maps, saliency and Grad-CAM.
        limit: use only the first ``limit`` test images.
        grid: images in the sample-prediction and mistake grids.
    """
    from ..data.dataset import DataMismatchError
    from .runs import evaluate_test, load_test_data, open_run

    run = open_run(run_dir)
    from ..train import check_finite_model
    check_finite_model(run.saved.model, run.path)  # a diverged run's page would show meaningless pictures
    notes: List[str] = []
    m = run.metrics or {}
    title = f"{run.name} on {_public(dataset or run.dataset) or 'unknown data'}"
    parts = [f"<h1>{_esc(title)}</h1>",
             f"<p class='lead'>cnnlab run <code>{_esc(Path(run.path).name)}</code>; report written "
             f"{datetime.now().strftime('%Y-%m-%d %H:%M')}.</p>",
             "<nav><a href='#architecture'>architecture</a><a href='#training'>training</a>"
             "<a href='#test'>test results</a><a href='#kernels'>kernels</a><a href='#inside'>inside the network"
             "</a></nav>"]
    headline = [("model", run.name), ("parameters", f"{run.model.num_parameters():,}"),
                ("input", "x".join(map(str, run.saved.input_shape))), ("classes", str(len(run.classes)))]
    if m.get("test_accuracy") is not None:
        headline.append(("test accuracy", f"{100 * float(m['test_accuracy']):.2f}%"))
    parts.append(_cards(headline))
    parts.append(_architecture(run))
    parts.append(_training(run))

    data = ev = None
    try:
        data = load_test_data(run, dataset, data_dir, limit, download=False)
        ev = evaluate_test(run, data)
    except DataMismatchError:
        raise  # data that would be scored against the wrong labels: refuse, as `cnnlab evaluate` does
    except (OSError, ValueError, ImportError) as exc:
        notes.append(f"test data not available: {' '.join(str(exc).split())}")

    parts.append(_test_results(run, data, ev, dataset, grid, notes))
    parts.append(_first_layer(run))
    if ev is not None and samples > 0:
        parts.append(_sample_section(run, data, ev, _choose_samples(ev, samples)))
    elif samples > 0:
        parts.append("<h2 id='inside'>Inside the network, image by image</h2>")
        parts.append(_note("Needs the test data: " + (notes[-1] if notes else "not available")))

    body = "\n".join(parts)
    page = (f"<!DOCTYPE html>\n<html lang='en'>\n<head>\n<meta charset='utf-8'>\n"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'>\n"
            f"<title>{_esc(title)} - cnnlab report</title>\n<style>{_CSS}</style>\n</head>\n"
            f"<body><main>\n{body}\n<p class='lead'>Generated by cnnlab; every picture is embedded in this "
            f"file.</p>\n</main></body>\n</html>\n")
    return page, notes


def write_report(run_dir, output=None, **kwargs) -> Tuple[Path, List[str]]:
    """Write :func:`build_report` to ``output`` (default ``RUN_DIR/report.html``) atomically.

    Returns:
        ``(path, notes)``.
    """
    from .images import atomic_write
    page, notes = build_report(run_dir, **kwargs)
    folder = Path(run_dir)
    if folder.suffix.lower() == ".onnx":  # an ONNX file: the report goes beside it, MODEL_report.html
        folder = folder.with_name(folder.stem + "_report.html")
    path = Path(output) if output else (folder if folder.suffix == ".html" else folder / "report.html")
    if path.suffix.lower() not in (".html", ".htm"):
        raise ValueError(f"the report is an HTML file: give a name ending in .html, got {path}")
    atomic_write(path, page.encode("utf-8"))
    return path, notes
