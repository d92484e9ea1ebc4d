"""`cnnlab explore` in a real browser: Debian's Chromium driven by Playwright (no browser download).

Starts `cnnlab explore --no-browser` on a freshly trained digits run, draws a digit on the canvas with the
mouse, checks the prediction bars, clicks a pixel of the first convolution's feature map and compares the
total the page shows with the engine's value, switches to Grad-CAM, and checks that the page asked nothing
of any host but the local server.  Skips when playwright or /usr/bin/chromium is missing.
"""
from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest

from cnnlab.explore.browser import browser_available, launch_chromium, start_server, stop_server

ok, why = browser_available()
pytestmark = pytest.mark.skipif(not ok, reason=why)

SRC = str(Path(__file__).resolve().parents[1] / "src")


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("browser") / "digits-run"
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    subprocess.run([sys.executable, "-m", "cnnlab", "train", "--epochs", "1", "--out", str(out), "-q"],
                   check=True, env=env, capture_output=True)
    return out


def test_draw_predict_trace_and_grad_cam_in_chromium(digits_run):
    pytest.importorskip("starlette")
    from playwright.sync_api import sync_playwright

    from cnnlab.explore.engine import Explorer, load_target

    proc, url = start_server(digits_run)
    requests, outside, errors = [], [], []
    try:
        with sync_playwright() as p:
            browser = launch_chromium(p)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            local = urlparse(url).netloc

            def route(r):
                u = urlparse(r.request.url)
                requests.append(r.request.url)
                if u.scheme in ("http", "https", "ws", "wss") and u.netloc != local:
                    outside.append(r.request.url)
                    return r.abort()
                return r.continue_()
            page.route("**/*", route)
            page.on("request", lambda req: requests.append(req.url))
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(url + "/")
            page.wait_for_function("window.__explore && window.__explore.ready", timeout=60000)
            assert page.locator("#prob-bars .prob-row").count() == 10   # test image 0 shown first

            # draw a "1" with the mouse
            box = page.locator("#draw").bounding_box()
            x0, y0, w, h = box["x"], box["y"], box["width"], box["height"]
            page.mouse.move(x0 + w * 0.5, y0 + h * 0.15)
            page.mouse.down()
            for k in range(1, 15):
                page.mouse.move(x0 + w * 0.5, y0 + h * (0.15 + 0.05 * k))
            page.mouse.up()
            page.wait_for_function("document.querySelector('#preprocess-steps') && "
                                   "document.querySelector('#preprocess-steps').textContent.includes('upload')",
                                   timeout=30000)
            bars = page.locator("#prob-bars .prob-bar")
            assert bars.count() == 10
            widths = [float(bars.nth(i).evaluate("e => parseFloat(e.style.width)")) for i in range(10)]
            assert sum(widths) == pytest.approx(100, abs=0.1) and max(widths) > 10
            drawn = page.evaluate("""async () => {
                const buf = new Uint8Array(await new Response(window.__explore.state.upload).arrayBuffer());
                let s = ''; for (const b of buf) s += String.fromCharCode(b); return btoa(s); }""")
            image = base64.b64decode(drawn)

            # the engine, on the same file
            saved, run_dir = load_target(digits_run)
            ex = Explorer(saved, run_dir)
            fw = ex.forward(ex.prepare_upload(image))
            shown = {row.get_attribute("data-class"): float(row.locator(".pct").inner_text().rstrip("%"))
                     for row in page.locator("#prob-bars .prob-row").all()}
            for cls, pct in shown.items():
                assert pct == pytest.approx(100 * fw.probabilities[int(cls)], abs=0.051)
            assert page.locator("#predicted").inner_text() == ex.classes[int(np.argmax(fw.probabilities))]

            page.wait_for_function("location.hash.includes('img=')", timeout=10000)
            drawn_link, drawn_prediction = page.url, page.locator("#predicted").inner_text()

            # click pixel (row 5, column 2) of channel 3 of the first convolution
            grid = page.evaluate("(() => { const g = document.querySelector("
                                 "'#overview .map-wrap[data-layer=\"0\"]').grid; return {...g}; })()")
            canvas = page.locator('#overview .map-wrap[data-layer="0"] canvas').first
            cb = canvas.bounding_box()
            px = (3 % grid["per"]) * (grid["w"] + 1) + 2 + 0.5
            py = (3 // grid["per"]) * (grid["h"] + 1) + 5 + 0.5
            canvas.click(position={"x": cb["width"] * px / grid["W"], "y": cb["height"] * py / grid["H"]})
            page.wait_for_selector("#detail-total", timeout=30000)
            state = page.evaluate("({...window.__explore.state, upload: null})")
            assert (state["layer"], state["channel"], state["y"], state["x"]) == ("0", 3, 5, 2)
            total = float(page.locator("#detail-total").get_attribute("data-value"))
            engine = float(fw.by_name["0"].output[0, 3, 5, 2])
            assert total == engine
            assert page.locator("#detail-total").inner_text().startswith("total = ")
            expression = page.locator("#detail-expression").inner_text()
            assert expression.startswith("(") and expression.count("x") >= 9
            assert page.locator("#overview .box.sel").count() == 1          # the clicked pixel
            assert page.locator("#overview .map-wrap[data-layer='input'] .box").count() >= 1   # its window
            assert "layer=0" in page.url and "y=5" in page.url and "x=2" in page.url

            # arrow key: the next position
            page.keyboard.press("ArrowRight")
            page.wait_for_function("window.__explore.state.x === 3", timeout=10000)
            page.wait_for_function(
                "document.querySelector('#detail-title').textContent.includes('(5, 3)')", timeout=10000)

            # Grad-CAM overlay
            page.select_option("#overlay", "gradcam")
            page.wait_for_function("document.querySelector('#overlay-info').dataset.method === 'gradcam'",
                                   timeout=30000)
            assert "Grad-CAM" in page.locator("#overlay-info").inner_text()
            assert "overlay=gradcam" in page.url

            # the play button slides the window
            n = page.evaluate("window.__explore.timings.trace.length")
            page.click("#play")
            page.wait_for_function(f"window.__explore.timings.trace.length >= {n + 2}", timeout=30000)
            page.click("#play")

            # drop an image file on the input panel
            from PIL import Image
            import io
            buf = io.BytesIO()
            Image.fromarray(np.tile(np.arange(0, 240, 20, dtype=np.uint8), (12, 1))).save(buf, format="PNG")
            dt = page.evaluate_handle("""(b64) => {
                const bin = atob(b64), a = new Uint8Array(bin.length);
                for (let i = 0; i < bin.length; i++) a[i] = bin.charCodeAt(i);
                const dt = new DataTransfer(); dt.items.add(new File([a], 'ramp.png', {type: 'image/png'}));
                return dt; }""", base64.b64encode(buf.getvalue()).decode())
            page.dispatch_event("#drop-zone", "drop", {"dataTransfer": dt})
            page.wait_for_function("document.querySelector('#preprocess-steps').textContent.includes('12x12')",
                                   timeout=30000)

            # a confusion-matrix cell lists its test images; a click loads one
            page.click('#confusion td[data-true="1"][data-pred="1"]')
            page.wait_for_selector("#cell-samples img", timeout=30000)
            page.locator("#cell-samples img").first.click()
            page.wait_for_function("document.querySelector('#preprocess-steps').textContent.includes('test image')",
                                   timeout=30000)
            page.wait_for_function("location.hash.includes('sample=')", timeout=10000)

            # the shape playground warns about dropped pixels
            page.select_option("#pg-layer", "")
            for field, value in (("#pg-size", "7"), ("#pg-kernel", "2"), ("#pg-stride", "2"), ("#pg-padding", "0")):
                page.fill(field, value)
            page.wait_for_function("document.querySelector('#pg-result').textContent.includes('(7 + 2*0 - 2) / 2')",
                                   timeout=10000)
            assert "never reaches" in page.locator("#pg-result").inner_text()
            assert page.locator("#pg-formula").count() == 1

            # the link made after drawing reopens the drawing and its prediction
            page.goto("about:blank")
            page.goto(drawn_link)
            page.wait_for_function("window.__explore && window.__explore.ready", timeout=60000)
            assert "upload" in page.locator("#preprocess-steps").inner_text()
            assert page.locator("#predicted").inner_text() == drawn_prediction
            browser.close()
    finally:
        stop_server(proc)
    assert not errors, errors
    assert requests and all(urlparse(u).netloc == urlparse(url).netloc for u in requests
                            if urlparse(u).scheme in ("http", "https", "ws", "wss")), requests
    assert not outside, outside
