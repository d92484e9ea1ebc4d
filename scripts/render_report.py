"""Render an HTML report to a PNG with headless Chromium, the way a browser shows it.

    python scripts/render_report.py runs/digits-x/report.html report.png [--width 1400] [--height 4000]

Chromium runs with networking features off and a throwaway profile, so the
screenshot also shows whether the page needs anything from outside the file
(it must not: the report embeds every picture).  Exits with status 2 when no
Chromium is installed (set CHROMIUM=/path/to/chromium to choose one).
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium():
    """Path of a Chromium/Chrome executable, or None."""
    env = os.environ.get("CHROMIUM")
    if env:
        return env if shutil.which(env) or Path(env).is_file() else None
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


def render(html_path, png_path, width: int = 1400, height: int = 4000, timeout: float = 120.0) -> Path:
    """Screenshot ``html_path`` into ``png_path`` with headless Chromium.

    Raises:
        FileNotFoundError: the HTML file or Chromium is missing.
        RuntimeError: Chromium failed or wrote no PNG (its output is in the message).
    """
    html_path = Path(html_path).resolve()
    png_path = Path(png_path).resolve()
    if not html_path.is_file():
        raise FileNotFoundError(f"HTML file {html_path} does not exist")
    exe = find_chromium()
    if exe is None:
        raise FileNotFoundError("no Chromium found (tried " + ", ".join(CANDIDATES) + "; set CHROMIUM=path)")
    png_path.parent.mkdir(parents=True, exist_ok=True)
    if png_path.exists():
        png_path.unlink()
    with tempfile.TemporaryDirectory(prefix="cnnlab-chromium-") as profile:
        cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--hide-scrollbars", f"--user-data-dir={profile}", f"--screenshot={png_path}",
               f"--window-size={int(width)},{int(height)}", html_path.as_uri()]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if not png_path.is_file():
        raise RuntimeError(f"Chromium wrote no screenshot (exit status {proc.returncode}): "
                           f"{(proc.stderr or proc.stdout).strip()[-2000:]}")
    return png_path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("html", help="the HTML file")
    parser.add_argument("png", help="the screenshot to write")
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=4000)
    args = parser.parse_args(argv)
    try:
        path = render(args.html, args.png, args.width, args.height)
    except FileNotFoundError as exc:
        print(f"render_report: {exc}", file=sys.stderr)
        return 2
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        print(f"render_report: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
