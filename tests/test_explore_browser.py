"""`cnnlab explore` in a real browser: Debian's Chromium driven by Playwright (no browser download).

Starts `cnnlab explore --no-browser` on a freshly trained digits run, draws a digit on the canvas with the
mouse, checks the prediction bars, clicks a pixel of the first convolution's feature map and compares the
total the page shows with the engine's value, switches to Grad-CAM, and checks that the page asked nothing
of any host but the local server.  Then, one test per point of the learning experience: the detail is in
view after a click, maps are drawn large enough to read, edges join consecutive layers and light up on
hover, "play" slides the window without asking the server, every layer type has its explanation with its
own numbers, names and class labels, a failed upload leaves a consistent page, a model without test images
(an ONNX file) starts from a generated sample, the training curves have ticks and a legend beside them,
everything is reachable with the keyboard, and axe-core finds no serious accessibility problem (when
``tests/browser/node_modules/axe-core`` is installed: ``npm install`` in ``tests/browser``).
Skips when playwright or /usr/bin/chromium is missing.
"""
from __future__ import annotations

import base64
import io
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest

from _browser import browser_available, launch_chromium, start_server, stop_server

ok, why = browser_available()
pytestmark = pytest.mark.skipif(not ok, reason=why)

SRC = str(Path(__file__).resolve().parents[1] / "src")
AXE = Path(__file__).resolve().parent / "browser" / "node_modules" / "axe-core" / "axe.min.js"


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("browser") / "digits-run"
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    subprocess.run([sys.executable, "-m", "cnnlab", "train", "--epochs", "1", "--out", str(out), "-q"],
                   check=True, env=env, capture_output=True)
    return out


def _residual_graph():
    from cnnlab import nn
    model = nn.Graph([
        ("stem", nn.Conv2d(1, 4, 3, padding=1), ["input"]),
        ("stem_relu", nn.ReLU(), ["stem"]),
        ("conv_a", nn.Conv2d(4, 4, 3, padding=1), ["stem_relu"]),
        ("relu_a", nn.ReLU(), ["conv_a"]),
        ("conv_b", nn.Conv2d(4, 4, 3, padding=1), ["relu_a"]),
        ("add", nn.Add(), ["conv_b", "stem_relu"]),
        ("relu", nn.ReLU(), ["add"]),
        ("down", nn.Conv2d(4, 4, 1, stride=2), ["relu"]),
        ("pool", nn.MaxPool2d(2), ["relu"]),
        ("cat", nn.Concat(dim=1), ["down", "pool"]),
        ("gap", nn.GlobalAvgPool2d(), ["cat"]),
        ("flat", nn.Flatten(), ["gap"]),
        ("fc", nn.Linear(8, 10), ["flat"]),
    ])
    model.eval()
    return model


@pytest.fixture(scope="module")
def residual_dir(tmp_path_factory):
    """A graph model with a residual add and a concat, saved without a run (no test images)."""
    import cnnlab
    from cnnlab.io import save_model
    cnnlab.manual_seed(0)
    out = tmp_path_factory.mktemp("graph") / "residual"
    save_model(_residual_graph(), out, (1, 16, 16), name="tiny-residual")
    return out


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = launch_chromium(p)
        yield b
        b.close()


@pytest.fixture(scope="module")
def digits_server(digits_run):
    pytest.importorskip("starlette")
    proc, url = start_server(digits_run)
    yield url
    stop_server(proc)


@pytest.fixture(scope="module")
def residual_server(residual_dir):
    pytest.importorskip("starlette")
    proc, url = start_server(residual_dir)
    yield url
    stop_server(proc)


class Page:
    """One tab on the explorer with the API requests it made and its script errors."""

    def __init__(self, browser, url, hash_="", width=1400, height=1000):
        self.page = browser.new_page(viewport={"width": width, "height": height})
        self.api, self.errors = [], []
        self.page.on("request", lambda r: self.api.append(urlparse(r.url).path) if "/api/" in r.url else None)
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.goto(url + "/#" + hash_)
        self.page.wait_for_function("window.__explore && window.__explore.ready", timeout=60000)

    def __enter__(self):
        return self.page

    def __exit__(self, *exc):
        self.page.close()
        assert not self.errors, self.errors


def _grid(page, layer):
    """How a layer's channels are laid out in its overview canvas: c, h, w, per (maps a row), W, H, shown."""
    return page.evaluate("(layer) => ({...document.querySelector("
                         "`#overview .map-wrap[data-layer=\"${layer}\"]`).grid})", layer)


def _click_value(page, layer, ch, y, x):
    """Click value (ch, y, x) of a layer's grid canvas in the overview."""
    wrap = page.locator(f'#overview .map-wrap[data-layer="{layer}"]')
    wrap.scroll_into_view_if_needed()
    g = _grid(page, layer)
    canvas = wrap.locator("canvas").first
    cb = canvas.bounding_box()
    px = (ch % g["per"]) * (g["w"] + 1) + x + 0.5
    py = (ch // g["per"]) * (g["h"] + 1) + y + 0.5
    canvas.click(position={"x": cb["width"] * px / g["W"], "y": cb["height"] * py / g["H"]})


def _wait_trace(page, layer, ch, y, x):
    """Wait until the detail shows value (ch, y, x) of layer (its trace answered and drawn)."""
    page.wait_for_function(
        f"(() => {{ const s = window.__explore.state, t = window.__explore.traced; return s.layer === {layer!r} && "
        f"s.channel === {ch} && s.y === {y} && s.x === {x} && t && t.layer === {layer!r} && t.channel === {ch} && "
        f"t.y === {y} && t.x === {x} && document.querySelector('#detail-total'); }})()", timeout=30000)


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
                                   timeout=60000)
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
            _click_value(page, "0", 3, 5, 2)
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

            # drop an image file on the input panel
            from PIL import Image
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


# ---------------------------------------------------------------------------------------- the detail
def test_the_detail_is_in_view_after_a_click_and_the_value_is_marked_in_both(browser, digits_server):
    with Page(browser, digits_server, width=1400, height=800) as page:
        last_map = page.evaluate("[...document.querySelectorAll('#overview .map-wrap.grid')].pop().dataset.layer")
        _click_value(page, last_map, 1, 1, 1)
        _wait_trace(page, last_map, 1, 1, 1)
        page.wait_for_timeout(200)
        view = page.viewport_size
        box = page.locator("#detail").bounding_box()
        # the detail (its title and the large map of the clicked channel) is on screen
        assert box["y"] < view["height"] - 100 and box["y"] + box["height"] > 0
        title = page.locator("#detail-title").bounding_box()
        assert 0 <= title["y"] < view["height"]
        big = page.locator("#bigmaps .bigmap").last
        bb = big.bounding_box()
        assert 0 <= bb["y"] and bb["y"] + bb["height"] <= view["height"]
        # the clicked value is marked in the overview and in the large map
        assert page.locator("#overview .box.sel").count() == 1
        assert page.locator("#bigmaps .box.sel").count() == 1
        # the channel opens large: at least 6 CSS px per value
        w = page.evaluate("(() => { const c = [...document.querySelectorAll('#bigmaps canvas')].pop();"
                          " return c.getBoundingClientRect().width / c.width; })()")
        assert w >= 6
    # a narrow window puts the detail under the overview: a click scrolls it into view
    with Page(browser, digits_server, width=1000, height=700) as page:
        _click_value(page, "0", 1, 2, 2)
        _wait_trace(page, "0", 1, 2, 2)
        page.wait_for_timeout(300)
        title = page.locator("#detail-title").bounding_box()
        assert 0 <= title["y"] < 700


def test_maps_are_readable_and_headers_do_not_overlap(browser, digits_server, residual_server):
    for url in (digits_server, residual_server):
        with Page(browser, url, width=1400) as page:
            sizes = page.evaluate("""[...document.querySelectorAll('#overview .map-wrap.grid')].map((w) => {
                const c = w.querySelector('canvas'), r = c.getBoundingClientRect();
                return [w.dataset.layer, r.width / c.width, r.height / c.height]; })""")
            assert sizes and all(sx >= 3 and sy >= 3 for _, sx, sy in sizes), sizes
            cells = page.evaluate("""[...document.querySelectorAll('#overview .map-wrap.vec')].map((w) => {
                const c = w.querySelector('canvas'); return c.getBoundingClientRect().height / w.grid.rows; })""")
            assert all(h >= 6 for h in cells), cells
            cls_rows = page.evaluate("[...document.querySelectorAll('.classvec .cell')]"
                                     ".map((c) => c.getBoundingClientRect().height)")
            assert cls_rows and min(cls_rows) >= 6
            # every column inside the panel (nothing off-screen to the right), no two headers overlapping
            panel = page.locator("#overview-panel").bounding_box()
            heads = page.evaluate("[...document.querySelectorAll('#overview .column .head')].map((h) => {"
                                  " const r = h.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; })")
            for l, t, r, b in heads:
                assert panel["x"] <= l and r <= panel["x"] + panel["width"] + 0.5
            for i, a in enumerate(heads):
                for bx in heads[i + 1:]:
                    assert a[2] <= bx[0] or bx[2] <= a[0] or a[3] <= bx[1] or bx[3] <= a[1], (a, bx)


# ---------------------------------------------------------------------------------------- edges and hover
def test_edges_are_drawn_and_light_up_on_hover(browser, digits_server):
    with Page(browser, digits_server) as page:
        edges = page.evaluate("({...window.__explore.edges})")
        assert edges["drawn"] > 0 and edges["highlighted"] == 0
        painted = page.evaluate("""(() => { const c = document.getElementById('edge-canvas');
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n; })()""")
        assert painted > 100
        # hover value (2, 3) of channel 1 of the second convolution: its edges, window and receptive field
        conv = page.evaluate("(() => { const l = window.__explore.model.layers.filter((l) => l.type === 'Conv2d');"
                             " return l[1].name; })()")
        g = _grid(page, conv)
        canvas = page.locator(f'#overview .map-wrap[data-layer="{conv}"] canvas').first
        canvas.scroll_into_view_if_needed()
        cb = canvas.bounding_box()
        px, py = (1 % g["per"]) * (g["w"] + 1) + 3 + 0.5, (1 // g["per"]) * (g["h"] + 1) + 2 + 0.5
        computed = ("performance.getEntriesByType('resource').filter((e) => e.name.includes('/api/') &&"
                    " !e.name.includes('/api/samples')).length")   # test-image thumbnails may still be arriving
        n_api = page.evaluate(computed)
        page.mouse.move(cb["x"] + cb["width"] * px / g["W"], cb["y"] + cb["height"] * py / g["H"])
        page.wait_for_function("window.__explore.edges.highlighted > 0", timeout=5000)
        hi = page.evaluate("window.__explore.edges.highlighted")
        layers = page.evaluate("window.__explore.model.layers")
        i = [lay["name"] for lay in layers].index(conv)
        assert hi == min(layers[i]["input_shape"][0], _grid(page, layers[i - 1]["name"])["shown"])   # every input map
        lit = page.evaluate("""(() => { const c = document.getElementById('edge-hi');
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n; })()""")
        assert lit > 20
        assert page.locator("#overview .box.hover").count() >= 2     # the value and its window on the input maps
        info = page.locator("#hover-info").inner_text()
        assert "receptive field in the input" in info and "inputs:" in info
        assert page.locator("#tip").is_visible()
        # hovering asks the server nothing
        assert page.evaluate(computed) == n_api
        page.mouse.move(2, 2)
        page.wait_for_function("window.__explore.edges.highlighted === 0", timeout=5000)
        # a dense layer: every input of a unit
        dense = page.evaluate("window.__explore.model.layers.find((l) => l.type === 'Linear').name")
        row = page.locator(f'#overview .map-wrap[data-layer="{dense}"] .classvec button').nth(4)
        row.hover()
        page.wait_for_function("window.__explore.edges.highlighted > 0", timeout=5000)


def test_residual_and_concat_arcs_have_arrowheads_and_are_not_clipped(browser, residual_server):
    with Page(browser, residual_server, width=1100) as page:
        arcs = page.evaluate("""[...document.querySelectorAll('#arcs > path')].map((p) => {
            const r = p.getBoundingClientRect();
            return {from: p.dataset.from, to: p.dataset.to, marker: p.getAttribute('marker-end'),
                    box: [r.left, r.top, r.right, r.bottom]}; })""")
        pairs = {(a["from"], a["to"]) for a in arcs}
        assert pairs == {("stem_relu", "add"), ("relu", "pool"), ("down", "cat")}, pairs
        assert all(a["marker"] == "url(#arrow)" for a in arcs)
        panel = page.evaluate("(() => { const r = document.getElementById('overview-panel').getBoundingClientRect();"
                              " return [r.left, r.top, r.right, r.bottom]; })()")
        for a in arcs:
            l, t, r, b = a["box"]
            assert panel[0] <= l and panel[1] <= t and r <= panel[2] and b <= panel[3], (a, panel)
        assert page.evaluate("window.__explore.edges.arcs") == len(arcs)


# ---------------------------------------------------------------------------------------- play
def test_play_slides_the_window_in_the_page_without_server_requests(browser, digits_server):
    with Page(browser, digits_server) as page:
        _click_value(page, "0", 2, 0, 0)
        _wait_trace(page, "0", 2, 0, 0)
        page.wait_for_load_state("networkidle")
        before = list(page.evaluate("performance.getEntriesByType('resource').map((e) => e.name)"))
        n_api = len([u for u in before if "/api/" in u])
        page.click("#play")
        page.wait_for_function("window.__explore.frames >= 8", timeout=20000)
        state = page.evaluate("({...window.__explore.state, upload: null})")
        assert (state["y"], state["x"]) != (0, 0) and state["layer"] == "0" and state["channel"] == 2
        # the window on the input and the value on the output move
        left0 = page.evaluate("document.querySelector('#bigmaps .bigmap .box').style.left")
        page.wait_for_function(f"document.querySelector('#bigmaps .bigmap .box').style.left !== {left0!r}",
                               timeout=5000)
        assert "window of" in page.locator("#play-live").inner_text()
        after = page.evaluate("performance.getEntriesByType('resource').map((e) => e.name)")
        new = [u for u in after[len(before):] if "/api/" in u and "/api/samples" not in u]
        # at most the weights, once: no request per step
        assert all("/api/kernels" in u for u in new) and len(new) <= 1, new
        frames = page.evaluate("window.__explore.frames")
        page.wait_for_timeout(600)
        assert page.evaluate("window.__explore.frames") > frames
        assert len([u for u in page.evaluate("performance.getEntriesByType('resource').map((e) => e.name)")
                    if "/api/trace" in u]) == len([u for u in before if "/api/trace" in u])
        # pause: the exact arithmetic of where it stopped, once
        page.click("#play")
        page.wait_for_function("document.querySelector('#detail-total')", timeout=30000)
        assert n_api < len([u for u in page.evaluate("performance.getEntriesByType('resource').map((e) => e.name)")
                            if "/api/" in u])


# ---------------------------------------------------------------------------------------- teaching text
def test_every_layer_type_is_explained_with_its_own_numbers(browser, digits_server, residual_server):
    with Page(browser, digits_server) as page:
        layers = page.evaluate("window.__explore.model.layers")
        seen = {}
        for info in layers:
            if info["type"] in seen:
                continue
            page.evaluate(f"select({info['name']!r}, 0, 0, 0)")
            _wait_trace(page, info["name"], 0, 0, 0)
            seen[info["type"]] = page.locator("#teach").inner_text()
        conv = next(l for l in layers if l["type"] == "Conv2d")
        text = seen["Conv2d"]
        w, k, p = conv["input_shape"][1], conv["kernel_size"][0], conv["padding"][0][0]
        assert "filters" in text and "Stride 1" in text and f"Padding {p}" in text
        assert f"(W + 2P − K) / S + 1 = ({w} + 2·{p} − {k}) / 1 + 1 = {conv['output_shape'][1]}" in text
        assert "max(0, x)" in seen["ReLU"]
        assert "largest value of each 2×2 window" in seen["MaxPool2d"]
        assert "running mean and variance" in seen["BatchNorm2d"]
        assert "in one row of" in seen["Flatten"]
        assert "passes every value through unchanged" in seen["Dropout"]
        lin = next(l for l in layers if l["type"] == "Linear")
        n_in, n_out = lin["input_shape"][0], lin["output_shape"][0]
        assert f"each of its {n_out} units multiplies all {n_in} inputs" in seen["Linear"]
        assert "class scores" in seen["Linear"]
        page.evaluate("select('probabilities', 3, 0, 0)")
        _wait_trace(page, "probabilities", 3, 0, 0)
        assert "e^s" in page.locator("#teach").inner_text()
    with Page(browser, residual_server) as page:
        page.evaluate("select('add', 1, 2, 3)")
        _wait_trace(page, "add", 1, 2, 3)
        text = page.locator("#teach").inner_text()
        assert "residual" in text and "conv_b and stem_relu" in text
        assert page.locator("#bigmaps .bigmap").count() == 3            # both inputs and the sum
        page.evaluate("select('cat', 5, 1, 1)")
        _wait_trace(page, "cat", 5, 1, 1)
        assert "stacks the channels of down (4) and pool (4) into 8 channels" in page.locator("#teach").inner_text()
        page.evaluate("select('gap', 2, 0, 0)")
        _wait_trace(page, "gap", 2, 0, 0)
        assert "average of each whole map" in page.locator("#teach").inner_text()


# ---------------------------------------------------------------------------------------- names
def test_layers_have_names_and_class_lists_have_labels(browser, digits_server, residual_server):
    with Page(browser, digits_server) as page:
        heads = page.locator("#overview .column .head > span:first-child").all_inner_texts()
        assert heads[:4] == ["input", "conv1", "bn1", "relu1"] and "pool1" in heads and "fc" in heads
        assert "0" not in heads
        classes = page.evaluate("window.__explore.model.classes")
        last = page.evaluate("window.__explore.model.layers.at(-1).name")
        for col in (last, "probabilities"):
            names = page.locator(f'#overview .map-wrap[data-layer="{col}"] .classvec .cname').all_inner_texts()
            assert names == classes
        page.locator("#prob-bars .prob-row").nth(7).click()
        _wait_trace(page, "probabilities", 7, 0, 0)
        rows = page.locator("#softmax-table tr th:first-child").all_inner_texts()
        assert rows[1:] == classes
        assert "class 7" in page.locator("#detail-title").inner_text()
    with Page(browser, residual_server) as page:
        assert "← conv_b + stem_relu" in page.locator('#overview .column[data-layer="add"] .foot').inner_text()
        page.evaluate("select('add', 0, 1, 1)")
        _wait_trace(page, "add", 0, 1, 1)
        inputs = page.locator("#detail-body table.grid td:first-child").all_inner_texts()
        assert inputs == ["conv_b", "stem_relu"]


# ---------------------------------------------------------------------------------------- Grad-CAM
def test_grad_cam_is_large_with_a_colour_bar_and_a_sentence(browser, digits_server):
    with Page(browser, digits_server, "overlay=gradcam") as page:
        page.wait_for_function("document.querySelector('#overlay-info').dataset.method === 'gradcam'", timeout=30000)
        size = page.locator("#why-view canvas").first.bounding_box()
        assert size["width"] >= 240 and size["height"] >= 240
        assert page.locator("#why-bar").is_visible()
        assert page.locator("#why-bar .colourbar").bounding_box()["width"] >= 200
        assert "red regions are where the network found its evidence" in page.locator("#why-sentence").inner_text()
        page.select_option("#overlay", "saliency")
        page.wait_for_function("document.querySelector('#overlay-info').dataset.method === 'saliency'", timeout=30000)
        assert "gradient" in page.locator("#why-sentence").inner_text()


# ---------------------------------------------------------------------------------------- failed upload
def test_a_failed_upload_keeps_a_consistent_page_and_says_what_failed(browser, digits_server, tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_bytes(b"this is not an image")
    with Page(browser, digits_server, "sample=4") as page:
        predicted = page.locator("#predicted").inner_text()
        page.set_input_files("#upload", str(bad))
        page.wait_for_function("document.querySelector('#upload-error').textContent.length > 0", timeout=30000)
        message = page.locator("#upload-error").inner_text()
        assert "could not be used" in message and "not an image" in message and "test image 4" in message
        state = page.evaluate("({...window.__explore.state, upload: window.__explore.state.upload === null})")
        assert state["sample"] == 4 and state["upload"] is True
        assert "sample=4" in page.url and "img=" not in page.url
        assert page.locator("#predicted").inner_text() == predicted
        # every click still works: the maps on screen are the image the requests send
        _click_value(page, "0", 0, 3, 3)
        _wait_trace(page, "0", 0, 3, 3)
        assert page.locator("#detail-total").is_visible()
        # a good image clears the message
        page.locator("#samples button").nth(2).click()
        page.wait_for_function("document.querySelector('#upload-error').textContent === ''", timeout=30000)


# ---------------------------------------------------------------------------------------- a model without a run
def test_a_model_without_test_images_starts_from_a_generated_sample(browser, residual_server):
    with Page(browser, residual_server) as page:
        assert page.locator("#run").is_hidden()                     # no empty "The run" box
        assert page.locator("#sample-box").is_hidden()
        assert "generated sample" in page.locator("#preprocess-steps").inner_text()
        assert page.locator("#predicted").inner_text() != ""
        assert page.locator("#overview .column").count() >= 14
        ink = page.evaluate("Math.max(...window.__explore.state && Array.from("
                            "document.querySelector('#overview .map-wrap[data-layer=\"input\"] canvas')"
                            ".getContext('2d').getImageData(0, 0, 16, 16).data))")
        assert ink > 0                                              # not a blank image


def test_an_onnx_file_starts_from_a_generated_sample(browser, tmp_path):
    pytest.importorskip("starlette")
    pytest.importorskip("onnx")
    import importlib.util
    if importlib.util.find_spec("cnnlab.onnx") is None:
        pytest.skip("cnnlab.onnx is not in this cnnlab")
    import cnnlab
    from cnnlab.onnx import export
    cnnlab.manual_seed(1)
    path = tmp_path / "residual.onnx"
    export(_residual_graph(), path, (1, 16, 16))
    proc, url = start_server(path)
    try:
        with Page(browser, url) as page:
            assert page.locator("#run").is_hidden()
            assert "generated sample" in page.locator("#preprocess-steps").inner_text()
            assert page.locator("#overview .map-wrap.grid").count() >= 5
            assert page.evaluate("window.__explore.edges.drawn") > 0
    finally:
        stop_server(proc)


# ---------------------------------------------------------------------------------------- the run
def test_training_curves_have_y_ticks_and_the_legend_beside_the_plot(browser, digits_server):
    with Page(browser, digits_server) as page:
        texts = page.evaluate("[...document.querySelectorAll('#curves text')].map((t) => t.textContent)")
        assert {"0", "0.00", "0.50", "1.00", "loss", "accuracy", "epoch"} <= set(texts)
        legend = page.locator("#curves-legend > span").all_inner_texts()
        assert any("train loss" in t for t in legend) and any("validation accuracy" in t for t in legend)
        svg = page.locator("#curves").bounding_box()
        leg = page.locator("#curves-legend").bounding_box()
        assert leg["y"] >= svg["y"] + svg["height"] - 1             # below the plot, never over the lines


# ---------------------------------------------------------------------------------------- keyboard and labels
def test_everything_is_reachable_with_tab_and_labelled(browser, digits_server):
    with Page(browser, digits_server, width=1400, height=900) as page:
        page.locator("body").click(position={"x": 2, "y": 2})
        reached = []
        for _ in range(700):
            page.keyboard.press("Tab")
            d = page.evaluate("""(() => { const e = document.activeElement;
                const layer = e && (e.dataset.layer || e.closest('[data-layer]')?.dataset.layer);
                return e ? [e.id, e.tagName, e.className || '', layer || '',
                            e.closest('#samples') ? 'sample' : e.closest('#prob-bars') ? 'prob' :
                            e.closest('#confusion') ? 'confusion' : ''] : null; })()""")
            reached.append(tuple(d))
        ids = {r[0] for r in reached}
        assert "upload-button" in ids and "play" in ids and "overlay" in ids and "pg-size" in ids
        where = {r[4] for r in reached}
        assert {"sample", "prob", "confusion"} <= where
        maps = set(page.evaluate("[...document.querySelectorAll('#overview canvas[tabindex]')]"
                                 ".map((c) => c.dataset.layer)"))
        assert maps and maps <= {r[3] for r in reached if r[1] == "CANVAS"}
        # arrow keys on a focused map, with no mouse click before
        page.goto("about:blank")
        page.goto(digits_server + "/#")
        page.wait_for_function("window.__explore && window.__explore.ready", timeout=60000)
        page.focus('#overview canvas[data-layer="0"]')
        page.keyboard.press("ArrowRight")
        _wait_trace(page, "0", 0, 0, 0)
        page.keyboard.press("ArrowRight")
        _wait_trace(page, "0", 0, 0, 1)
        page.keyboard.press("PageDown")
        _wait_trace(page, "0", 1, 0, 1)
        # labels: every image has an alt text, every canvas a name (or is hidden from screen readers)
        assert page.evaluate("[...document.images].every((i) => i.alt && i.alt.length > 3)")
        unnamed = page.evaluate("[...document.querySelectorAll('canvas')].filter((c) => !c.getAttribute('aria-label')"
                                " && c.getAttribute('aria-hidden') !== 'true').map((c) => c.outerHTML.slice(0, 80))")
        assert not unnamed, unnamed


def test_axe_core_finds_no_serious_accessibility_problem(browser, digits_server, residual_server):
    if not AXE.is_file():
        pytest.skip(f"axe-core is not installed ({AXE}): npm install in tests/browser")
    for url, hash_ in ((digits_server, "sample=2&layer=0&channel=1&y=3&x=4&overlay=gradcam"),
                       (residual_server, "layer=add&channel=1&y=2&x=2")):
        with Page(browser, url, hash_) as page:
            page.wait_for_selector("#detail-total", timeout=30000)
            page.add_script_tag(path=str(AXE))
            result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
            bad = [(v["id"], v["impact"], v["help"], [(n["target"], n.get("failureSummary")) for n in v["nodes"]][:3])
                   for v in result["violations"] if v["impact"] in ("serious", "critical")]
            assert not bad, bad
