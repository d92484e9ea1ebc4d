"""Screenshots of `cnnlab explore` for the docs: every view of the page.

    PYTHONPATH=src python scripts/explore_screenshots.py RUN_DIR [--residual RUN_DIR] [--out docs]

Starts `cnnlab explore RUN_DIR --no-browser` on a free port of 127.0.0.1 and drives Debian's Chromium
(/usr/bin/chromium) with Playwright, as the browser test does.  Without RUN_DIR a digits run is trained
(1 epoch) in a temporary folder.  With ``--residual`` a second run (a graph model such as resnet8) gives
the picture of residual arcs.  The docs' pictures were made from an MNIST LeNet-5 run and a Fashion-MNIST
resnet8 run:

    cnnlab train --dataset mnist --data-dir DIR --model lenet5 --epochs 3 --limit 6000 --out runs/docs-mnist-lenet5
    cnnlab train --dataset fashion-mnist --data-dir DIR --model resnet8 --epochs 1 --limit 1500 --out runs/docs-resnet8
    PYTHONPATH=src python scripts/explore_screenshots.py runs/docs-mnist-lenet5 --residual runs/docs-resnet8

Pictures (in --out): explore_overview.png (the page), explore_conv_detail.png (a convolution's value
written out, with its explanation), explore_hover.png (a value hovered: edges, window, receptive field),
explore_play.png (the kernel sliding), explore_pool_detail.png, explore_dense_detail.png,
explore_softmax_detail.png, explore_why.png (Grad-CAM), explore_run.png (curves, confusion matrix),
explore_playground.png and, with --residual, explore_residual.png.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))  # the browser harness the tests use

from _browser import browser_available, launch_chromium, start_server, stop_server  # noqa: E402


def _open(page, url, hash_):
    page.goto(f"{url}/#{hash_}")
    page.wait_for_function("window.__explore && window.__explore.ready", timeout=60000)


def _traced(page, layer):
    page.wait_for_function(f"window.__explore.traced && window.__explore.traced.layer === {layer!r}", timeout=30000)
    page.wait_for_timeout(250)


def _layers(page, kind):
    return page.evaluate(f"window.__explore.model.layers.filter((l) => l.type.includes({kind!r})).map((l) => l.name)")


def lenet_views(page, url, out: Path, args):
    c, y, x = (int(v) for v in args.pixel.split(","))
    where = f"sample={args.sample}&"
    _open(page, url, f"{where}layer={args.layer}&channel={c}&y={y}&x={x}&overlay={args.overlay}")
    page.add_style_tag(content="#detail { max-height: none; }")   # the whole detail in its pictures
    _traced(page, args.layer)
    page.locator("main").screenshot(path=str(out / "explore_overview.png"))
    page.locator("#detail").screenshot(path=str(out / "explore_conv_detail.png"))

    # hover a value of the second convolution: its edges, its window on the input maps, its receptive field
    convs = _layers(page, "Conv")
    if len(convs) > 1:
        g = page.evaluate(f"(() => ({{...document.querySelector('#overview .map-wrap[data-layer=\"{convs[1]}\"]')"
                          f".grid}}))()")
        canvas = page.locator(f'#overview .map-wrap[data-layer="{convs[1]}"] canvas').first
        canvas.scroll_into_view_if_needed()
        cb = canvas.bounding_box()
        px, py = (2 % g["per"]) * (g["w"] + 1) + 4.5, (2 // g["per"]) * (g["h"] + 1) + 3.5
        page.mouse.move(cb["x"] + cb["width"] * px / g["W"], cb["y"] + cb["height"] * py / g["H"])
        page.wait_for_timeout(250)
        page.screenshot(path=str(out / "explore_hover.png"))
        page.mouse.move(1, 1)

    # play: the window slides over the input and the output fills in
    page.evaluate(f"select({args.layer!r}, {c}, 0, 0)")
    _traced(page, args.layer)
    page.click("#play")
    page.wait_for_function("window.__explore.frames >= 40", timeout=30000)
    page.locator("#detail").screenshot(path=str(out / "explore_play.png"))
    page.click("#play")   # pause (the exact arithmetic of that position is asked for then)

    for kind, name in (("Pool", "explore_pool_detail.png"), ("Linear", "explore_dense_detail.png")):
        layers = _layers(page, kind)
        if layers:
            page.evaluate(f"select({layers[0]!r}, {c}, {y // 2}, {x // 2})" if kind == "Pool"
                          else f"select({layers[0]!r}, 5, 0, 0)")
            _traced(page, layers[0])
            page.locator("#detail").screenshot(path=str(out / name))
    page.locator("#prob-bars .prob-row.best").click()
    page.wait_for_function("window.__explore.traced && window.__explore.traced.layer === 'probabilities'")
    page.wait_for_timeout(200)
    page.locator("#detail").screenshot(path=str(out / "explore_softmax_detail.png"))

    page.locator("#why").scroll_into_view_if_needed()
    page.wait_for_function("document.querySelector('#overlay-info').dataset.method", timeout=30000)
    page.locator("#why").screenshot(path=str(out / "explore_why.png"))
    if page.locator("#run").is_visible():
        page.locator("#run").screenshot(path=str(out / "explore_run.png"))

    # the playground with a stride that drops pixels
    page.select_option("#pg-layer", "")
    for field, value in (("#pg-size", "28"), ("#pg-kernel", "5"), ("#pg-stride", "3"), ("#pg-padding", "0")):
        page.fill(field, value)
    page.wait_for_function("document.querySelector('#pg-formula') && "
                           "document.querySelector('#pg-formula').textContent.includes('/ 3')")
    page.wait_for_timeout(200)
    page.locator("#playground").screenshot(path=str(out / "explore_playground.png"))


def residual_views(page, url, out: Path):
    _open(page, url, "sample=0")
    adds = _layers(page, "Add")
    if adds:
        page.evaluate(f"select({adds[0]!r}, 1, 12, 14)")   # the first block's add: a small receptive field
        _traced(page, adds[0])
    box = page.locator("#overview-panel").bounding_box()   # the first rows: the stem and two blocks
    page.screenshot(path=str(out / "explore_residual.png"), full_page=True,
                    clip={"x": box["x"], "y": box["y"], "width": box["width"], "height": min(box["height"], 1500)})


def _shrink(path: Path) -> None:
    """Re-save a screenshot with a 256-colour palette (a third of the size, the same look for a UI)."""
    from PIL import Image
    with Image.open(path) as im:
        small = im.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    small.save(path, optimize=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", nargs="?", help="run directory (default: train a digits run, 1 epoch)")
    parser.add_argument("--residual", help="a second run with a graph model (residual arcs)")
    parser.add_argument("--out", default=str(ROOT / "docs"), help="folder for the PNG files (default docs/)")
    parser.add_argument("--sample", type=int, default=0, help="test image shown (default 0)")
    parser.add_argument("--layer", default="0", help="convolution layer clicked (default 0)")
    parser.add_argument("--overlay", default="gradcam", choices=("none", "saliency", "gradcam"),
                        help="overlay on the input (default gradcam)")
    parser.add_argument("--pixel", default="1,6,9", help="channel,y,x of the value clicked (default 1,6,9)")
    parser.add_argument("--width", type=int, default=1800, help="browser window width (default 1800)")
    parser.add_argument("--height", type=int, default=1000, help="browser window height (default 1000)")
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
    written = []
    try:
        with sync_playwright() as p:
            browser = launch_chromium(p)
            for target, views in ((run, "lenet"), (args.residual, "residual")):
                if target is None:
                    continue
                proc, url = start_server(target)
                try:
                    page = browser.new_page(viewport={"width": args.width, "height": args.height})
                    before = {f: f.stat().st_mtime for f in out.glob("explore_*.png")}
                    if views == "lenet":
                        lenet_views(page, url, out, args)
                    else:
                        residual_views(page, url, out)
                    written += [f for f in out.glob("explore_*.png") if before.get(f) != f.stat().st_mtime]
                    page.close()
                finally:
                    stop_server(proc)
            browser.close()
    finally:
        if tmp is not None:
            tmp.cleanup()
    for f in sorted(written):
        _shrink(f)
        print(f"wrote {f} ({f.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
