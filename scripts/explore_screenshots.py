"""Screenshots of `cnnlab explore` for the README: the overview, a convolution's detail and the playground.

    PYTHONPATH=src python scripts/explore_screenshots.py RUN_DIR [--out docs]

Starts `cnnlab explore RUN_DIR --no-browser` on a free port of 127.0.0.1 and drives Debian's Chromium
(/usr/bin/chromium) with Playwright, as the browser test does.  Without RUN_DIR a digits run is trained
(1 epoch) in a temporary folder.  The README's pictures were made from an MNIST LeNet-5 run:

    cnnlab train --dataset mnist --data-dir DIR --model lenet5 --epochs 2 --limit 12000 --out runs/docs-mnist-lenet5
    PYTHONPATH=src python scripts/explore_screenshots.py runs/docs-mnist-lenet5 --pixel 1,10,14
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from cnnlab.explore.browser import browser_available, launch_chromium, start_server, stop_server  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", nargs="?", help="run directory (default: train a digits run, 1 epoch)")
    parser.add_argument("--out", default=str(ROOT / "docs"), help="folder for the PNG files (default docs/)")
    parser.add_argument("--sample", type=int, default=0, help="test image shown (default 0)")
    parser.add_argument("--layer", default="0", help="convolution layer clicked (default 0)")
    parser.add_argument("--overlay", default="gradcam", choices=("none", "saliency", "gradcam"),
                        help="overlay on the input (default gradcam)")
    parser.add_argument("--pixel", default="1,6,9", help="channel,y,x of the value clicked (default 1,6,9)")
    parser.add_argument("--image", help="upload this image file instead (a model without test images)")
    parser.add_argument("--width", type=int, default=1800, help="browser window width (default 1800)")
    args = parser.parse_args(argv)
    ok, why = browser_available()
    if not ok:
        print(f"cannot take screenshots: {why}", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright
    tmp = None
    run = args.run
    if run is None:
        tmp = tempfile.TemporaryDirectory()
        run = str(Path(tmp.name) / "digits")
        subprocess.run([sys.executable, "-m", "cnnlab", "train", "--epochs", "1", "--out", run, "-q"], check=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    proc, url = start_server(run)
    try:
        with sync_playwright() as p:
            browser = launch_chromium(p)
            page = browser.new_page(viewport={"width": args.width, "height": 900})
            where = "" if args.image else f"sample={args.sample}&"
            c, y, x = (int(v) for v in args.pixel.split(","))
            page.goto(f"{url}/#{where}layer={args.layer}&channel={c}&y={y}&x={x}&overlay={args.overlay}")
            page.wait_for_function("window.__explore && window.__explore.ready", timeout=60000)
            if args.image:
                page.set_input_files("#upload", args.image)
            page.wait_for_selector("#detail-total", timeout=30000)
            page.wait_for_timeout(300)
            page.locator("main").screenshot(path=str(out / "explore_overview.png"))
            page.locator("#detail").screenshot(path=str(out / "explore_conv_detail.png"))
            # the playground with a stride that drops pixels
            page.select_option("#pg-layer", "")
            for field, value in (("#pg-size", "28"), ("#pg-kernel", "5"), ("#pg-stride", "3"), ("#pg-padding", "0")):
                page.fill(field, value)
            page.wait_for_function("document.querySelector('#pg-formula') && "
                                   "document.querySelector('#pg-formula').textContent.includes('/ 3')")
            page.wait_for_timeout(200)
            page.locator("#playground").screenshot(path=str(out / "explore_playground.png"))
            browser.close()
    finally:
        stop_server(proc)
        if tmp is not None:
            tmp.cleanup()
    for name in ("explore_overview.png", "explore_conv_detail.png", "explore_playground.png"):
        print(f"wrote {out / name} ({(out / name).stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
