"""``cnnlab export``, and the options that let every run-taking command read an ``.onnx`` file.

``--classes``, ``--mean`` and ``--std`` describe a foreign ONNX file (one that
cnnlab did not write); ``--engine onnxruntime`` runs ``predict`` and
``evaluate`` in ONNX Runtime.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

from ..onnx._saved import NORMALISATION_LIMIT
from ._args import positive_int


def _floats(text: str):
    try:
        values = [float(v) for v in text.replace(" ", "").split(",") if v != ""]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers such as 0.1307 or "
                                         f"0.485,0.456,0.406, got {text!r:.80}") from None
    if not values:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r:.80}")
    if not all(math.isfinite(v) and abs(v) <= NORMALISATION_LIMIT for v in values):
        raise argparse.ArgumentTypeError(f"expected numbers from -{NORMALISATION_LIMIT:g} to {NORMALISATION_LIMIT:g}, "
                                         f"got {text!r:.80}")
    return values


def _stds(text: str):
    """``--std``: positive finite numbers (0 or inf would turn every image into NaN or zeros)."""
    values = _floats(text)
    if not all(v >= 1 / NORMALISATION_LIMIT for v in values):
        raise argparse.ArgumentTypeError(f"a standard deviation must be a positive number from "
                                         f"{1 / NORMALISATION_LIMIT:g} to {NORMALISATION_LIMIT:g}, got {text!r:.80}")
    return values


def _classes(text: str):
    path = Path(text)
    if path.is_file():
        names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    else:
        names = [c.strip() for c in text.split(",")]
    if not names or any(not n for n in names):
        raise argparse.ArgumentTypeError(f"expected class names separated by commas (or a file with one name "
                                         f"per line), got {text!r}")
    return names


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "export", help="write a trained run as an ONNX file (for ONNX Runtime, Netron, ...)",
        description="Export a run's model to ONNX with a symbolic batch size; class names, input shape and "
                    "normalisation travel in the file's metadata. Needs the onnx extra: "
                    "pip install \"cnnlab[onnx]\".",
        epilog="examples:\n  cnnlab export runs/mnist-lenet5 lenet5.onnx\n"
               "  cnnlab export runs/mnist-lenet5 lenet5.onnx --opset 13",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory (or saved model folder)")
    p.add_argument("output", metavar="OUT.onnx", help="the file to write")
    p.add_argument("--opset", type=positive_int, default=17, metavar="N", help="ONNX opset, 13 to 21 (default 17)")
    p.set_defaults(func=cmd_export)


def cmd_export(args) -> int:
    from ..io import load_model
    from ..onnx import export
    from ..onnx._export import MAX_OPSET, MIN_OPSET, saved_metadata
    from ._errors import UsageError

    if not MIN_OPSET <= args.opset <= MAX_OPSET:
        raise UsageError(f"--opset must be from {MIN_OPSET} to {MAX_OPSET}, got {args.opset}")
    if not str(args.output).lower().endswith(".onnx"):
        raise UsageError(f"the output file should end in .onnx, got {args.output}")
    saved = load_model(args.run_dir)
    from ..train import check_finite_model
    check_finite_model(saved.model, args.run_dir)  # an exported NaN model would answer NaN everywhere
    path = export(saved.model, args.output, saved.input_shape, args.opset, saved_metadata(saved))
    print(f"wrote {path} (opset {args.opset}, input (N, {', '.join(map(str, saved.input_shape))}), "
          f"{len(saved.classes)} classes)")
    return 0


_RUN_COMMANDS = {"predict", "evaluate", "summary", "report", "explore"}
_ENGINE_COMMANDS = {"predict", "evaluate"}


def _takes_a_run(parser: argparse.ArgumentParser) -> bool:
    return any(a.dest in ("run_dir", "run", "model", "target") for a in parser._actions)


def add_model_file_options(subparsers) -> None:
    """``--classes/--mean/--std`` on every command taking a run; ``--engine`` on predict and evaluate."""
    def visit(name: str, parser: argparse.ArgumentParser) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub_name, sub in action.choices.items():
                    visit(sub_name, sub)
        if not (_takes_a_run(parser) and (name in _RUN_COMMANDS or parser.prog.split()[1:2] == ["explain"])):
            return
        group = parser.add_argument_group("the model's inputs (also for a .onnx file instead of a run directory)")
        group.add_argument("--classes", type=_classes, metavar="A,B,...|FILE",
                           help="class names of a foreign .onnx model")
        group.add_argument("--mean", type=_floats, metavar="M[,M,M]",
                           help="per-channel mean of its inputs (wins over what the model records)")
        group.add_argument("--std", type=_stds, metavar="S[,S,S]",
                           help="per-channel std of its inputs (wins over what the model records)")
        if name in _ENGINE_COMMANDS:
            group.add_argument("--engine", choices=("cnnlab", "onnxruntime"), default="cnnlab",
                               help="run the model in cnnlab (default) or in ONNX Runtime (export in memory)")

    for name, parser in subparsers.choices.items():
        visit(name, parser)


def apply_model_file_options(args) -> None:
    """Hand ``--classes`` to :func:`cnnlab.onnx.load_saved`, and ``--mean/--std`` to every model this
    process loads (run folders, model folders, ONNX files: they win over what the model records)."""
    from ..preprocessing import set_command_line
    set_command_line(getattr(args, "mean", None), getattr(args, "std", None))
    if getattr(args, "classes", None) is not None:
        from ..onnx._saved import FOREIGN
        FOREIGN["classes"] = args.classes
