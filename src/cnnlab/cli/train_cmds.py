"""`cnnlab train|evaluate|predict|summary`: train a network, measure it, use it, read its layers."""
from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
from pathlib import Path

from ._errors import UsageError, _message
from ._args import fraction as _fraction
from ._args import non_negative_float as _non_negative_float
from ._args import seed as _seed
from ._args import shown as _shown
from ._args import positive_float as _positive_float
from ._args import positive_int as _positive_int

__all__ = ["register", "parse_shape"]


def parse_shape(text: str) -> tuple:
    """``"1,28,28"`` or ``"1x28x28"`` -> ``(1, 28, 28)`` (an argparse ``type``)."""
    parts = text.replace("x", ",").replace("X", ",").split(",")
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected C,H,W such as 1,28,28, got {_shown(text)}") from None
    if len(shape) != 3 or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"expected three positive sizes C,H,W such as 1,28,28, got {_shown(text)}")
    return shape


_FORMATTER = argparse.RawDescriptionHelpFormatter


def register(subparsers) -> None:
    """Add ``train``, ``evaluate``, ``predict`` and ``summary`` to the top-level parser."""
    from ..models import MODEL_DESCRIPTIONS
    from ..train import OPTIMIZERS, RECIPES, SCHEDULES

    models_text = "\n".join(f"  {name:<10} {text}" for name, text in MODEL_DESCRIPTIONS.items())
    recipes = "\n".join(f"  {name:<14} model {r['model'] or 'by image size'}, {r['epochs']} epochs, batch "
                        f"{r['batch_size']}, {r['optimizer']} lr {r['lr']:g}, {r['schedule']}"
                        for name, r in RECIPES.items())
    _add_train(OPTIMIZERS, SCHEDULES, models_text, recipes, subparsers)
    _add_evaluate(subparsers)
    _add_predict(subparsers)
    _add_summary(models_text, subparsers)


def _add_train(OPTIMIZERS, SCHEDULES, models_text, recipes, subparsers) -> None:
    """The ``train`` command's arguments."""
    p = subparsers.add_parser(
        "train", help="train a network and save it in a run directory",
        formatter_class=_FORMATTER,
        description="Train a CNN; write weights, history, metrics and checkpoints into a run directory.",
        epilog=f"data sets:\n  digits         8x8 digits shipped with scikit-learn (default; offline)\n"
               f"  mnist, fashion-mnist   IDX files from --data-dir DIR (or downloaded into the cache)\n"
               f"  cifar10        python batch files from --data-dir DIR\n"
               f"  PATH           a folder of images, one subfolder per class\n\n"
               f"models (--model NAME, or a .json/.yaml/.toml model file):\n{models_text}\n\n"
               f"defaults per data set (override with the options):\n{recipes}\n  (folder: digitsnet below "
               f"12x12 pixels, else smallnet)\n\n"
               "A model made for another image size is an error, not a silent resize: lenet5 needs at least\n"
               "12x12 images, so for the 8x8 digits use digitsnet or smallnet.\n\n"
               "examples:\n  cnnlab train\n  cnnlab train --dataset mnist --data-dir ~/data/mnist --epochs 5\n"
               "  cnnlab train --dataset my_photos/ --model smallnet --out runs/photos\n"
               "  cnnlab train --resume runs/photos\n"
               "  cnnlab train --dataset my_photos/ --model resnet.onnx --new-head --freeze   (fine-tune)\n"
               "  mpiexec -n 4 cnnlab train --dataset mnist --data-dir ~/data/mnist   (data-parallel, 4 ranks;\n"
               "      --batch-size stays the global batch)")
    p.add_argument("--dataset", default="digits", metavar="NAME|PATH",
                   help="digits (default), mnist, fashion-mnist, cifar10, or an image folder")
    p.add_argument("--data-dir", metavar="DIR", help="folder holding the data set's files")
    p.add_argument("--model", metavar="NAME|FILE", help="zoo name or model file (default: suits the data); "
                   "an ONNX file (.onnx) is fine-tuned")
    p.add_argument("--new-head", action="store_true",
                   help="with --model MODEL.onnx: a new classifier layer for the data's classes")
    p.add_argument("--freeze", action="store_true",
                   help="with --model MODEL.onnx: train the classifier layer only")
    p.add_argument("--epochs", type=_positive_int, metavar="N", help="epochs (with --resume: the new total)")
    p.add_argument("--batch-size", type=_positive_int, metavar="N",
                   help="images per step (under MPI the global batch, split over the ranks)")
    p.add_argument("--lr", type=_positive_float, metavar="X", help="(peak) learning rate")
    p.add_argument("--optimizer", choices=OPTIMIZERS, help="optimizer (default adam)")
    p.add_argument("--schedule", choices=SCHEDULES, help="learning-rate schedule")
    p.add_argument("--weight-decay", type=_non_negative_float, metavar="X", help="L2 weight decay")
    p.add_argument("--label-smoothing", type=_fraction, default=0.0, metavar="X",
                   help="cross-entropy label smoothing in [0, 1) (default 0)")
    p.add_argument("--patience", type=_positive_int, metavar="N",
                   help="stop early when the validation loss has not improved for N epochs")
    p.add_argument("--clip-grad", type=_positive_float, metavar="X", help="clip the gradient norm to X")
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                   help="random shifts/rotations (digits) or crops/flips (others) while training (default on)")
    p.add_argument("--val-fraction", type=_fraction, default=0.1, metavar="X",
                   help="share of the training images held out for validation (default 0.1; 0: none)")
    p.add_argument("--seed", type=_seed, default=0, metavar="N", help="random seed (default 0)")
    p.add_argument("--out", metavar="DIR", help="run directory (default runs/<dataset>-<model>-<time>)")
    p.add_argument("--resume", metavar="DIR", help="continue the interrupted run in DIR")
    p.add_argument("--limit", type=_positive_int, metavar="N",
                   help="use at most N images of each split (quick trials)")
    p.add_argument("--threads", type=_positive_int, metavar="N",
                   help="threads for the matrix products "
                        "(default: 1 for images up to 16x16, else all; 1 per rank under MPI)")
    p.add_argument("--no-download", action="store_true", help="never download data (offline)")
    _distributed_option(p, "train data-parallel: each rank takes its share of every global batch")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress output, only the result")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.set_defaults(func=cmd_train)


def _add_evaluate(subparsers) -> None:
    """The ``evaluate`` command's arguments."""
    p = subparsers.add_parser(
        "evaluate", help="accuracy, loss, per-class precision/recall and confusion matrix of a run",
        formatter_class=_FORMATTER,
        description="Evaluate a trained run on its test data (or another data set of the same image size).",
        epilog="examples:\n  cnnlab evaluate runs/digits-digitsnet-20250101-120000\n"
               "  cnnlab evaluate runs/mnist-lenet5 --data-dir ~/data/mnist --json")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory written by cnnlab train")
    p.add_argument("--dataset", metavar="NAME|PATH", help="data set (default: the run's)")
    p.add_argument("--data-dir", metavar="DIR", help="folder holding the data set's files (default: the run's)")
    p.add_argument("--split", choices=("test", "val", "train"), default="test", help="which part (default test)")
    p.add_argument("--batch-size", type=_positive_int, default=256, metavar="N", help="images per forward pass")
    p.add_argument("--limit", type=_positive_int, metavar="N", help="at most N images (default: the run's)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_evaluate)


def _add_predict(subparsers) -> None:
    """The ``predict`` command's arguments."""
    p = subparsers.add_parser(
        "predict", help="classify image files with a trained run",
        formatter_class=_FORMATTER,
        description="Classify images: each is converted to the model's channels and size and normalised "
                    "as in training; prints the top-k classes with their softmax probabilities.",
        epilog="Each image is compared with the training data (stored in model.json) and warnings go to\n"
               "stderr: a background of the other polarity (MNIST-like models expect light strokes on a\n"
               "dark background; --invert flips dark-on-light scans), transparency (composited onto the\n"
               "training background), an almost empty image, colour made gray, a non-square image\n"
               "stretched (--center keeps the aspect ratio).  An unreadable file is reported and skipped;\n"
               "the exit status is then 1.\n\nexamples:\n  cnnlab predict runs/mnist-lenet5 seven.png three.jpg\n"
               "  cnnlab predict runs/mnist-lenet5 *.png --top-k 1 --json\n"
               "  cnnlab predict runs/mnist-lenet5 scans/ --output predictions.csv\n"
               "  mpiexec -n 8 cnnlab predict runs/mnist-lenet5 scans/ --output predictions.csv   (8 ranks)")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory written by cnnlab train")
    p.add_argument("images", nargs="+", metavar="IMAGE|FOLDER",
                   help="image files (PNG, JPEG, BMP, ...) or folders of them (searched recursively)")
    p.add_argument("--output", "-o", metavar="FILE.csv",
                   help="write one CSV row per file (file,class,probability,warnings) in input order; "
                        "unreadable files get a row with the reason and make the exit status 1")
    p.add_argument("--batch-size", type=_positive_int, default=256, metavar="N",
                   help="images per forward pass (default 256)")
    p.add_argument("--threads", type=_positive_int, metavar="N",
                   help="threads for the matrix products (default: all; 1 per rank under MPI)")
    _distributed_option(p, "each rank predicts its share of the files, rank 0 writes the results")
    p.add_argument("--top-k", type=_positive_int, default=3, metavar="K", help="classes per image (default 3)")
    p.add_argument("--invert", action=argparse.BooleanOptionalAction, default=None,
                   help="invert gray levels first (dark strokes on white); --no-invert: never, and no "
                        "warning about it (default: a warning when an image's background differs from the "
                        "training data's)")
    p.add_argument("--center", action="store_true",
                   help="MNIST-style centring: crop to the content, scale its long side to 20/28 of the "
                        "input, centre of mass in the middle (keeps the aspect ratio)")
    p.add_argument("--json", action="store_true", help="print JSON (with a warnings list per image)")
    p.set_defaults(func=cmd_predict)


def _add_summary(models_text, subparsers) -> None:
    """The ``summary`` command's arguments."""
    p = subparsers.add_parser(
        "summary", help="layer table: output shapes, parameters and the output-size arithmetic",
        formatter_class=_FORMATTER,
        description="Print every layer's output shape and parameter count, with the arithmetic that gives "
                    "each size, e.g. (28 + 2*2 - 5) / 1 + 1 = 28, and a warning where a stride does not "
                    "divide evenly (pixels silently dropped).",
        epilog=f"MODEL is a zoo name, a model file or a run directory.\nzoo:\n{models_text}\n\n"
               "examples:\n  cnnlab summary lenet5\n  cnnlab summary smallnet --input-shape 3,32,32\n"
               "  cnnlab summary my_model.yaml --input-shape 1,28,28\n  cnnlab summary runs/digits-digitsnet-x")
    p.add_argument("model", metavar="MODEL", help="zoo name, model file, or run directory")
    p.add_argument("--input-shape", type=parse_shape, metavar="C,H,W",
                   help="input size (default: the model's own)")
    p.add_argument("--num-classes", type=_positive_int, default=None, metavar="K",
                   help="outputs of a zoo model (default 10)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_summary)


def _distributed_option(p, what: str) -> None:
    p.add_argument("--distributed", action=argparse.BooleanOptionalAction, default=None,
                   help=f"under MPI (mpiexec -n N cnnlab ...): {what}; on by default when N > 1, "
                        "--no-distributed makes every process work alone")


# --- train ------------------------------------------------------------------------------------
@contextlib.contextmanager
def _sigterm_as_interrupt():
    """Turn SIGTERM into KeyboardInterrupt for the block, so cleanup runs as on Ctrl-C."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt("terminated (SIGTERM)")

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except (ValueError, AttributeError):  # not the main thread, or no SIGTERM on this system
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def cmd_train(args) -> int:
    from ..train import train

    if args.resume:
        fixed = {"--dataset": args.dataset != "digits", "--model": args.model, "--batch-size": args.batch_size,
                 "--lr": args.lr, "--optimizer": args.optimizer, "--schedule": args.schedule,
                 "--weight-decay": args.weight_decay, "--label-smoothing": args.label_smoothing,
                 "--patience": args.patience, "--clip-grad": args.clip_grad, "--augment": args.augment is not None,
                 "--val-fraction": args.val_fraction != 0.1, "--seed": args.seed != 0, "--limit": args.limit,
                 "--new-head": args.new_head, "--freeze": args.freeze}
        given = [flag for flag, value in fixed.items() if value]
        if given:
            raise UsageError(f"{', '.join(given)} cannot change when resuming: --resume continues the run with "
                             "its own settings (config.json); only --epochs, --data-dir and output options "
                             "may be given")
    if args.patience is not None and args.val_fraction == 0 and not args.resume:
        raise UsageError("--patience stops when the validation loss stops improving, so it needs a validation "
                         "split: leave out --val-fraction 0")
    if args.data_dir and not Path(args.data_dir).expanduser().is_dir():
        raise FileNotFoundError(f"--data-dir {args.data_dir} does not exist (or is not a folder)")
    if args.out and Path(args.out).exists() and not Path(args.out).is_dir():
        raise UsageError(f"--out {args.out} is a file; give a folder for the run")
    from ..distributed import session

    verbose = 0 if args.quiet else "auto"
    log = (lambda text: None) if args.quiet else (lambda text: print(text, file=sys.stderr, flush=True))
    import numpy as np
    # `kill PID` ends like Ctrl-C (resumable checkpoint, lock released); NumPy's overflow warnings are
    # left out: training checks the loss, weights and statistics for NaN/inf and says so in one line
    with _sigterm_as_interrupt(), np.errstate(over="ignore", invalid="ignore"), \
            session(args.distributed) as group:  # under mpiexec: data-parallel
        metrics = train(dataset=args.dataset, model=args.model, data_dir=args.data_dir, epochs=args.epochs,
                        batch_size=args.batch_size, lr=args.lr, optimizer=args.optimizer, schedule=args.schedule,
                        weight_decay=args.weight_decay, label_smoothing=args.label_smoothing,
                        patience=args.patience, clip_grad=args.clip_grad, augment=args.augment,
                        val_fraction=args.val_fraction, seed=args.seed, out_dir=args.out, resume=args.resume,
                        limit=args.limit, verbose=verbose, download=not args.no_download, log=log,
                        threads=args.threads or "auto", new_head=args.new_head, freeze=args.freeze)
    if group is not None and not group.is_root:  # rank 0 alone reports
        return 0
    if args.json:
        print(json.dumps(metrics, indent=2))
    else:
        epochs = f"{metrics['epochs']} epoch{'' if metrics['epochs'] == 1 else 's'}"
        print(f"test accuracy {100 * metrics['test_accuracy']:.2f}% ({metrics['test_correct']}/"
              f"{metrics['test_size']}), test loss {metrics['test_loss']:.4f}; {epochs} in "
              f"{metrics['train_seconds']:.1f} s ({metrics['images_per_second']:,.0f} img/s)")
        print(f"run saved in {metrics['run_dir']}  (next: cnnlab evaluate {metrics['run_dir']})")
    return 0


# --- evaluate ---------------------------------------------------------------------------------
def _with_engine(saved, args):
    """The model run by ``--engine`` (``onnxruntime``: exported in memory once, one session)."""
    engine = getattr(args, "engine", "cnnlab")
    if engine == "cnnlab":
        return saved
    from ..onnx._saved import with_engine
    return with_engine(saved, engine)


def _run_config(run_dir: Path) -> dict:
    from ..io import read_json
    from ..train import CONFIG_JSON
    from .._schema import check_config
    path = run_dir / CONFIG_JSON
    return check_config(read_json(path, "run configuration"), path) if path.is_file() else {}


def _load_finite_model(run_dir: Path):
    """``load_model``, refusing weights or statistics that hold NaN/inf (a diverged run)."""
    from ..io import load_model
    from ..train import check_finite_model
    saved = load_model(run_dir)
    check_finite_model(saved.model, run_dir)
    return saved


def _same_dataset(given: str, recorded) -> bool:
    """``--dataset MNIST`` names the run's ``mnist``; ``./photos`` its absolute folder."""
    from ..train import dataset_key
    if recorded is None:
        return False
    key = dataset_key(given)
    if key != "folder":
        return key == dataset_key(recorded)
    return Path(given).expanduser().resolve() == Path(str(recorded)).expanduser().resolve()


def cmd_evaluate(args) -> int:
    import numpy as np

    from ..train import evaluate, load_run_data

    run_dir = Path(args.run_dir)
    if args.data_dir and not Path(args.data_dir).expanduser().is_dir():
        raise FileNotFoundError(f"--data-dir {args.data_dir} does not exist (or is not a folder)")
    saved = _with_engine(_load_finite_model(run_dir), args)
    config = _run_config(run_dir) if run_dir.is_dir() else {}
    dataset = args.dataset or config.get("dataset") or saved.info.get("dataset")
    if not dataset:
        raise UsageError(f"{run_dir} does not record its data set: give --dataset")
    same_data = args.dataset is None or _same_dataset(args.dataset, config.get("dataset"))
    data_dir = args.data_dir or (config.get("data_dir") if same_data else None)
    limit = args.limit if args.limit is not None else (config.get("limit") if same_data else None)
    val_fraction = config.get("val_fraction", 0.1) if same_data else 0.1
    if args.split == "val" and not val_fraction:
        raise UsageError(f"{run_dir} was trained without a validation split (--val-fraction 0)")
    train_set, val_set, test_set = load_run_data(dataset, data_dir, val_fraction, config.get("seed", 0), limit,
                                                 progress=False)
    data = {"train": train_set, "val": val_set, "test": test_set}[args.split]
    if data is None or len(data) == 0:
        raise UsageError(f"the {args.split} split of {dataset} is empty here (limit {limit}): give a larger "
                         "--limit or another --split")
    from ..data.dataset import check_data_fits_model
    check_data_fits_model(data.classes, data.input_shape, saved.classes, saved.input_shape, run_dir, dataset)
    result = evaluate(saved, data, batch_size=args.batch_size, return_predictions=True)  # its preprocessing
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support
    labels = np.arange(len(saved.classes))
    precision, recall, f1, support = precision_recall_fscore_support(
        data.labels, result["predictions"], labels=labels, zero_division=0)
    matrix = confusion_matrix(data.labels, result["predictions"], labels=labels)
    report = {
        "run_dir": str(run_dir), "dataset": str(dataset), "split": args.split, "model": saved.name,
        "accuracy": result["accuracy"], "loss": result["loss"], "correct": result["correct"],
        "total": result["total"], "classes": saved.classes,
        "per_class": [{"class": c, "precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
                      for c, p, r, f, s in zip(saved.classes, precision, recall, f1, support)],
        "confusion_matrix": matrix.tolist(),
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{saved.name} on {dataset} ({args.split}, {result['total']} images): accuracy "
          f"{100 * result['accuracy']:.2f}% ({result['correct']}/{result['total']}), loss {result['loss']:.4f}")
    width = max(5, *(len(c) for c in saved.classes))
    print()
    print(f"{'class':<{width}}  precision  recall     f1  support")
    for row in report["per_class"]:
        print(f"{row['class']:<{width}}  {row['precision']:9.4f}  {row['recall']:6.4f}  {row['f1']:.4f}  "
              f"{row['support']:7d}")
    print()
    print("confusion matrix (rows: true class, columns: predicted class)")
    short = [c if len(c) <= 6 else c[:5] + "." for c in saved.classes]
    cell = max(5, len(str(int(matrix.max()))) + 1, *(len(s) + 1 for s in short))
    print(" " * (width + 1) + "".join(f"{s:>{cell}}" for s in short))
    for name, counts in zip(saved.classes, matrix):
        print(f"{name:<{width}} " + "".join(f"{int(v):>{cell}}" for v in counts))
    return 0


# --- predict ----------------------------------------------------------------------------------
def cmd_predict(args) -> int:
    import numpy as np

    from ..distributed import session
    from ..threads import blas_threads
    from ._predict_files import expand_inputs, predict_files, write_csv

    saved = _with_engine(_load_finite_model(Path(args.run_dir)), args)
    paths = expand_inputs(args.images)
    with session(args.distributed) as group:  # under mpiexec: each rank predicts its share
        with blas_threads(args.threads or (1 if group is not None else None)):
            table = predict_files(saved, paths, args.invert, args.batch_size, group, center=args.center)
    if table is None:  # not rank 0
        return 0
    failed = [(p, e) for p, e in zip(table.paths, table.errors) if e is not None]
    if len(paths) == 1 and failed and not args.output:
        raise failed[0][1]  # the usual one-line error
    for path, notes in zip(table.paths, table.warnings):
        for text in notes:
            print(f"cnnlab predict: warning: {path}: {text}", file=sys.stderr)
    for path, error in failed:
        print(f"cnnlab predict: error: {_message(error)} (skipped)", file=sys.stderr)
    if args.output:
        write_csv(args.output, table, saved.classes)
        print(f"{len(paths) - len(failed)} of {len(paths)} images predicted; wrote {args.output}", file=sys.stderr)
        return 1 if failed else 0
    probs = table.probabilities
    k = min(args.top_k, probs.shape[1])
    order = np.argsort(-np.nan_to_num(probs, nan=-1.0), axis=1, kind="stable")[:, :k]
    results, good = {}, []
    for path, row, top, notes, error in zip(table.paths, probs, order, table.warnings, table.errors):
        if error is not None:
            results[path] = {"image": str(path), "error": _message(error), "predictions": [], "warnings": []}
            continue
        good.append(path)
        results[path] = {"image": str(path), "warnings": notes, "predictions": [
            {"class": saved.classes[j] if j < len(saved.classes) else str(j), "index": int(j),
             "probability": float(row[j])} for j in top]}
    args.images = table.paths
    if args.json:
        print(json.dumps([results[p] for p in args.images], indent=2))
    else:
        for path in good:
            guesses = ", ".join(f"{p['class']} {100 * p['probability']:.1f}%" for p in results[path]["predictions"])
            print(f"{path}: {guesses}")
    if failed:
        print(f"cnnlab predict: {len(failed)} of {len(args.images)} images could not be read", file=sys.stderr)
        return 1
    return 0


# --- summary ----------------------------------------------------------------------------------
def cmd_summary(args) -> int:
    from ..explain.summary import format_summary, rows_as_dicts, summary_rows
    from ..io import MODEL_JSON, load_model
    from ..models import (DEFAULT_INPUT_SHAPES, MODEL_FILE_SUFFIXES, MODELS, create_model, is_model_file,
                          load_model_file, parse_model_spec)

    target = args.model
    path = Path(target)
    saved_files = path.name in (MODEL_JSON, "model.npz") and (path.parent / "model.npz").is_file()
    if path.is_file() and saved_files:  # a saved model's model.json or model.npz: read its folder
        path, target = path.parent, str(path.parent)
    elif path.is_file() and path.suffix.lower() not in MODEL_FILE_SUFFIXES + (".onnx",):
        raise ValueError(f"{path} is not a model file: expected a zoo name ({', '.join(MODELS)}), a model file "
                         f"({', '.join(MODEL_FILE_SUFFIXES)}), an .onnx file or a run directory")
    if target.lower() in MODELS:
        name = target.lower()
        shape = args.input_shape or DEFAULT_INPUT_SHAPES[name]
        model, _ = create_model(name, shape, args.num_classes or 10)
    elif path.is_dir() or target.lower().endswith(".onnx"):
        if path.is_dir() and not (path / MODEL_JSON).is_file():
            raise ValueError(f"{path} is not a cnnlab run directory (no {MODEL_JSON}) nor a model file")
        saved = load_model(path)
        if args.input_shape and tuple(args.input_shape) != tuple(saved.input_shape):
            raise ValueError(f"the model in {path} takes {'x'.join(map(str, saved.input_shape))} images; "
                             "--input-shape cannot change a trained model")
        model, shape, name = saved.model, saved.input_shape, saved.name or path.name
    elif is_model_file(target) or path.is_file():
        if not path.exists():
            raise FileNotFoundError(f"model file {path} does not exist")
        if args.input_shape is None:
            fmt = {".yml": "yaml", ".yaml": "yaml", ".toml": "toml"}.get(path.suffix.lower(), "json")
            spec = parse_model_spec(path.read_text(encoding="utf-8"), fmt, str(path))
            if not isinstance(spec, dict) or spec.get("input_shape") is None:
                raise UsageError(f"{path} has no input_shape: give --input-shape C,H,W")
        model, spec = load_model_file(path, args.input_shape)
        shape = args.input_shape or spec.get("input_shape")
        name = str(spec.get("name") or path.name)
    else:
        raise ValueError(f"unknown model {target!r}: expected a zoo name ({', '.join(MODELS)}), a model file "
                         f"({', '.join(MODEL_FILE_SUFFIXES)}), an .onnx file or a run directory")
    if args.num_classes and not target.lower() in MODELS:
        raise UsageError("--num-classes applies to zoo models only")
    rows = summary_rows(model, shape)
    if args.json:
        print(json.dumps({"model": name, "input_shape": list(shape),
                          "total_parameters": sum(r.params for r in rows), "layers": rows_as_dicts(rows)},
                         indent=2))
    else:
        print(format_summary(rows, shape, name))
    return 0
