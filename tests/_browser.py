"""Driving ``cnnlab explore`` in a real browser: shared by the browser test, the screenshots and the benchmark.

Starts ``cnnlab explore --no-browser`` in a subprocess on a free port of
127.0.0.1 and launches the system's Chromium (Debian's ``chromium`` package,
``/usr/bin/chromium``) through Playwright without downloading any browser.
"""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional, Tuple

__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "free_port", "start_server", "stop_server", "launch_chromium",
           "browser_available"]

CHROMIUM = os.environ.get("CNNLAB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-default-apps", "--disable-extensions"]


def browser_available() -> Tuple[bool, str]:
    """``(True, "")`` when Playwright and the Chromium executable are there, else ``(False, why)``."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return False, "the playwright package is not installed (pip install playwright; no browser download)"
    if not Path(CHROMIUM).is_file():
        return False, f"{CHROMIUM} is missing (apt-get install chromium)"
    return True, ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(target, port: Optional[int] = None, cwd=None, timeout: float = 60.0):
    """Start ``cnnlab explore TARGET --no-browser`` and wait for its ``serving ... on URL`` line.

    Returns ``(process, url)``.
    """
    port = 0 if port is None else port   # 0: the server picks a free port and prints it (no race)
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[1] / "src")  # this checkout's cnnlab
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    cmd = [sys.executable, "-m", "cnnlab", "explore", "--no-browser", "--port", str(port)]
    if target is not None:
        cmd.insert(4, str(target))
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=cwd, env=env)
    deadline = time.monotonic() + timeout
    lines = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                break
            continue
        lines.append(line)
        m = re.match(r"serving (.+) on (http://\S+)", line.strip())
        if m:
            return proc, m.group(2)
    proc.kill()
    raise RuntimeError("cnnlab explore did not start: " + "".join(lines))


def stop_server(proc) -> int:
    """Ctrl-C (SIGINT) the server and wait for it to stop; its exit status."""
    import signal
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def launch_chromium(playwright):
    """Headless Chromium from the system package (never a downloaded browser)."""
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
