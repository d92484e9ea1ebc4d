"""The ``cnnlab`` command: a thin layer that parses arguments and calls the library.

Errors reach the user as one line, ``cnnlab: error: ...``, with exit status 2
for a usage mistake and 1 for anything that fails while running (a missing
file, an image that cannot be read, a model that does not fit the data).
``--debug`` shows the full traceback instead.
"""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional

__all__ = ["main", "build_parser", "UsageError", "EXIT_OK", "EXIT_RUNTIME", "EXIT_USAGE"]

EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

from ._errors import UsageError, _message  # noqa: E402  (the commands raise and word errors with these)


def _version() -> str:
    from .. import __version__
    return __version__


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every subcommand registered."""
    from . import explain_cmds, explore_cmd, onnx_cmds, train_cmds

    parser = argparse.ArgumentParser(
        prog="cnnlab",
        description="Convolutional neural networks in NumPy: train, run and look inside image classifiers.",
        epilog="Start with `cnnlab train` (8x8 digits, offline, under a minute); "
               "`cnnlab COMMAND --help` describes each command.")
    parser.add_argument("--version", action="version", version=f"cnnlab {_version()}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    train_cmds.register(subparsers)
    explain_cmds.register(subparsers)
    explore_cmd.register(subparsers)
    onnx_cmds.register(subparsers)
    onnx_cmds.add_model_file_options(subparsers)  # a .onnx file wherever a run directory goes
    # `cnnlab train --debug ...` works as well as `cnnlab --debug train ...`
    for sub in subparsers.choices.values():
        if not any("--debug" in a.option_strings for a in sub._actions):
            sub.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                             help="show full tracebacks on errors")
    return parser


def _innermost(parser: argparse.ArgumentParser, args) -> argparse.ArgumentParser:
    """The deepest subcommand parser ``args`` went through (``cnnlab explain activation`` -> its parser)."""
    while True:
        actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        chosen = getattr(args, actions[0].dest, None) if actions else None
        if chosen not in (actions[0].choices if actions else {}):
            return parser
        parser = actions[0].choices[chosen]


def main(argv: Optional[List[str]] = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 runtime error, 2 usage error).

    Under MPI (``mpiexec -n N cnnlab ...``) a failure on any rank ends the whole job
    (:func:`cnnlab.distributed.finish`).
    """
    from .. import distributed
    from .._text import escaped_output
    try:
        with escaped_output():  # names from model files are printed, their control characters never obeyed
            status = _main(argv)
    except BaseException:  # --debug: the traceback, then still end every rank
        if not distributed.in_multi_rank_job():
            raise
        import traceback
        traceback.print_exc()
        status = EXIT_RUNTIME
    return distributed.finish(status)


def _main(argv: Optional[List[str]] = None) -> int:
    from ..distributed import deferred_stderr, rank_label
    from ..distributed import report_error as _report
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    parser = build_parser()
    try:
        with deferred_stderr():  # under mpiexec, one usage message (rank 0's)
            args, extras = parser.parse_known_args(argv)
            if extras:  # the usage of the (sub)command that was given, not the top-level one
                _innermost(parser, args).error(f"unrecognized arguments: {' '.join(extras)}")
    except SystemExit as exc:  # argparse: --help/--version (0) or a usage error (2)
        return int(exc.code or 0) if not isinstance(exc.code, str) else EXIT_USAGE
    debug = debug or getattr(args, "debug", False)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        from .onnx_cmds import apply_model_file_options
        apply_model_file_options(args)
        return int(args.func(args) or 0)
    except UsageError as exc:
        if debug:
            raise
        _report(f"cnnlab {args.command}{rank_label()}: error: {_message(exc)}")
        return EXIT_USAGE
    except KeyboardInterrupt as exc:
        if debug:
            raise
        detail = _message(exc) if str(exc) else ""
        # Ctrl-C reaches every rank; whichever is not stuck in a collective call tells it, as rank 0 would
        _report(f"cnnlab: interrupted{': ' + detail if detail else ''}")
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `cnnlab ... | head`
        return EXIT_OK
    except Exception as exc:  # every failure ends as one line (the traceback with --debug)
        if debug:
            raise
        known = (ValueError, TypeError, OSError, KeyError, RuntimeError, ArithmeticError, ImportError)
        prefix = "" if isinstance(exc, known) else f"internal error ({type(exc).__name__}): "
        hint = "" if isinstance(exc, known) else " (run with --debug for the traceback)"
        _report(f"cnnlab{rank_label()}: error: {prefix}{_message(exc)}{hint}")
        return int(getattr(exc, "exit_code", EXIT_RUNTIME))  # a file that is not a usable model: 2
    finally:  # --mean/--std were this command's: a later call in the same process starts clean
        from ..preprocessing import set_command_line
        set_command_line(None, None)
