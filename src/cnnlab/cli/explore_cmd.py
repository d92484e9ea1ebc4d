"""`cnnlab explore`: serve the interactive explorer of a run (or an .onnx file) on a local port."""
from __future__ import annotations

import argparse
import socket
import sys
import threading
from pathlib import Path
from typing import Optional

from ._errors import UsageError

__all__ = ["register", "newest_run"]

_FORMATTER = argparse.RawDescriptionHelpFormatter


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "explore", help="open an interactive page showing every layer of a run's model (local web app)",
        formatter_class=_FORMATTER,
        description="Start a local web server with an interactive explorer of a trained model: every feature "
                    "map for an image you pick, upload or draw; click any value to see its arithmetic "
                    "written out; saliency and Grad-CAM; the shape playground; the run's curves and confusion "
                    "matrix. Needs the explore extra: pip install \"cnnlab[explore]\".",
        epilog="Without RUN_DIR the newest run under ./runs is opened; when there is none, the default digits "
               "model is trained first (offline, under a minute).\n\nexamples:\n  cnnlab explore\n"
               "  cnnlab explore runs/mnist-lenet5 --port 8080 --no-browser\n  cnnlab explore model.onnx")
    p.add_argument("target", nargs="?", metavar="RUN_DIR | MODEL.onnx",
                   help="a run directory (default: the newest under ./runs) or an .onnx file")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    p.add_argument("--no-browser", action="store_true", help="do not open a web browser")
    p.add_argument("--engine", choices=("cnnlab", "onnxruntime"), default="cnnlab",
                   help="what runs the live prediction: cnnlab (default) or onnxruntime (needs the onnx extra; "
                        "the model is exported in memory once); feature maps and traces are always cnnlab's")
    p.set_defaults(func=cmd_explore)


def newest_run(root: Path = Path("runs")) -> Optional[Path]:
    """The most recently changed folder under ``root`` holding a ``model.json``, or None."""
    if not root.is_dir():
        return None
    runs = [d for d in root.iterdir() if d.is_dir() and (d / "model.json").is_file()]
    return max(runs, key=lambda d: (d / "model.json").stat().st_mtime, default=None)


def _train_default() -> Path:
    import argparse
    from . import train_cmds
    out = Path("runs") / "digits-explore"
    print(f"no run under ./runs: training the default digits model into {out} first", flush=True)
    parser = argparse.ArgumentParser(prog="cnnlab")
    train_cmds.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["train", "--out", str(out)])
    status = args.func(args)
    if status:
        raise RuntimeError(f"training the default model failed (exit status {status})")
    return out


def _open_browser(url: str) -> None:
    import webbrowser
    try:
        browser = webbrowser.get()
    except webbrowser.Error:
        print("no web browser found: open the address above yourself", flush=True)
        return
    threading.Thread(target=browser.open, args=(url,), daemon=True).start()


def cmd_explore(args) -> int:
    try:
        import uvicorn  # noqa: F401
        import starlette  # noqa: F401
        import multipart  # noqa: F401
    except ImportError as exc:
        raise ImportError(f"cnnlab explore needs the explore extra: pip install \"cnnlab[explore]\" ({exc})") from None
    from ..explore.engine import load_target
    from ..explore.server import create_app
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be between 0 and 65535, got {args.port}")
    target = Path(args.target) if args.target else newest_run()
    if target is None:
        target = _train_default()
    saved, run_dir = load_target(target)
    from ..train import check_finite_model
    check_finite_model(saved.model, target)
    from ..explore.server import LOCAL_HOSTS
    wildcard = args.host in ("0.0.0.0", "::", "")  # reached by any of the machine's names: Origin still checked
    app = create_app(saved, run_dir, engine=args.engine,
                     allowed_hosts=None if wildcard else (*LOCAL_HOSTS, args.host))
    # one image at a time: BLAS threads only cost here (241 ms -> 10 ms for a small residual net on a busy
    # 2-core machine); the server's requests are the parallelism
    from ..threads import set_num_threads
    set_num_threads(1)  # cnnlab's own setting, so the small-product rule keeps to it

    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.host, args.port))
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc} "
                      f"(another program on that port? try --port 0)") from None
    sock.listen(128)
    port = sock.getsockname()[1]
    host = f"[{args.host}]" if family == socket.AF_INET6 else args.host
    url = f"http://{host}:{port}"
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: listening on {args.host}, not 127.0.0.1: other machines on the network can reach "
              f"this server and run the model", file=sys.stderr, flush=True)
    try:  # Ctrl-C at any moment from here on (even before the server is up) stops cleanly
        print(f"serving {target} on {url}", flush=True)
        print("press Ctrl-C to stop", flush=True)
        if not args.no_browser:
            _open_browser(url)
        import uvicorn
        config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=2)
        uvicorn.Server(config).run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
    print("stopped", flush=True)
    return 0
