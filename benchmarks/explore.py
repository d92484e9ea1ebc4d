"""Speed of `cnnlab explore` as a person sees it, timed inside the browser.

    PYTHONPATH=src python benchmarks/explore.py [--repeats 20] [--json]

For LeNet-5 and the zoo's small residual network ``resnet8`` (a graph model: conv-BN-ReLU stem, three
residual blocks, two of them strided with 1x1 shortcuts, global average pooling, linear head; the same
design is built here when the zoo lacks it) on 1x28x28 images, it starts
`cnnlab explore --no-browser` on 127.0.0.1 and drives Debian's Chromium with Playwright:

* new image -> every layer's maps drawn: the page draws a new random digit-like image on a canvas, sends
  it, decodes every layer's output and draws every feature map; the time is measured by the page itself
  (performance.now from the request to two animation frames after the last map was drawn);
* trace click: one value of a convolution written out (request, the server re-running the network,
  the trace, the detail panel drawn).

The weights are untrained (speed does not depend on them).  Targets: under 300 ms (LeNet-5) and 1 s
(residual network) for a new image, under 100 ms for a trace.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))  # the browser harness the tests use

from _browser import browser_available, launch_chromium, start_server, stop_server  # noqa: E402

NEW_IMAGE_JS = """async (seed) => {
  const c = document.createElement('canvas'); c.width = 28; c.height = 28;
  const g = c.getContext('2d'); g.fillStyle = '#000'; g.fillRect(0, 0, 28, 28);
  let s = seed; const r = () => (s = (s * 16807) % 2147483647) / 2147483647;
  g.strokeStyle = '#fff'; g.lineWidth = 2 + 2 * r(); g.beginPath(); g.moveTo(6 + 16 * r(), 4 + 6 * r());
  for (let k = 0; k < 3; k++) g.lineTo(4 + 20 * r(), 6 + 18 * r());
  g.stroke();
  const n = window.__explore.timings.render.length;
  const blob = await new Promise((res) => c.toBlob(res, 'image/png'));
  useFile(blob);
  while (window.__explore.timings.render.length === n) await new Promise((res) => setTimeout(res, 2));
  return window.__explore.timings.render[n];
}"""

TRACE_JS = """async ([layer, ch, y, x]) => {
  const n = window.__explore.timings.trace.length;
  select(layer, ch, y, x);
  while (window.__explore.timings.trace.length === n) await new Promise((res) => setTimeout(res, 2));
  return window.__explore.timings.trace[n];
}"""


def residual_net():
    from cnnlab import nn
    nodes = [("stem", nn.Conv2d(1, 16, 3, padding=1, bias=False), ["input"]),
             ("stem_bn", nn.BatchNorm2d(16), ["stem"]), ("stem_relu", nn.ReLU(), ["stem_bn"])]

    def block(name, src, c_in, c_out, stride):
        nodes.extend([
            (f"{name}_conv1", nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), [src]),
            (f"{name}_bn1", nn.BatchNorm2d(c_out), [f"{name}_conv1"]),
            (f"{name}_relu1", nn.ReLU(), [f"{name}_bn1"]),
            (f"{name}_conv2", nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), [f"{name}_relu1"]),
            (f"{name}_bn2", nn.BatchNorm2d(c_out), [f"{name}_conv2"])])
        shortcut = src
        if stride != 1 or c_in != c_out:
            nodes.append((f"{name}_down", nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), [src]))
            shortcut = f"{name}_down"
        nodes.extend([(f"{name}_add", nn.Add(), [f"{name}_bn2", shortcut]),
                      (f"{name}_relu", nn.ReLU(), [f"{name}_add"])])
        return f"{name}_relu"

    x = block("block1", "stem_relu", 16, 16, 1)
    x = block("block2", x, 16, 32, 2)
    x = block("block3", x, 32, 64, 2)
    nodes.extend([("gap", nn.GlobalAvgPool2d(), [x]), ("flat", nn.Flatten(), ["gap"]),
                  ("fc", nn.Linear(64, 10), ["flat"])])
    return nn.Graph(nodes)


def make_models(folder: Path):
    import cnnlab
    from cnnlab.io import save_model
    from cnnlab.models import create_model
    cnnlab.manual_seed(0)
    lenet, _ = create_model("lenet5", (1, 28, 28), 10)
    lenet.eval()
    save_model(lenet, folder / "lenet5", (1, 28, 28), name="lenet5", mean=[0.1307], std=[0.3081])
    try:   # the zoo's residual network when this cnnlab has it, else the same design built here
        res, _ = create_model("resnet8", (1, 28, 28), 10, width=16)  # the published figures' width
    except (KeyError, ValueError):
        res = residual_net()
    res.eval()
    save_model(res, folder / "resnet", (1, 28, 28), name="small residual net", mean=[0.1307], std=[0.3081])
    conv = [n.name for n in res.nodes if type(n.module).__name__ == "Conv2d"][3]
    return {"LeNet-5": (folder / "lenet5", "0"), "resnet8": (folder / "resnet", conv)}


def measure(page, url: str, layer: str, repeats: int):
    page.goto(url + "/")
    page.wait_for_function("window.__explore && window.__explore.ready", timeout=60000)
    for i in range(3):   # warm-up
        page.evaluate(NEW_IMAGE_JS, 1000 + i)
    renders = [page.evaluate(NEW_IMAGE_JS, 7 + i) for i in range(repeats)]
    page.evaluate(TRACE_JS, [layer, 0, 2, 2])
    traces = [page.evaluate(TRACE_JS, [layer, i % 4, 1 + i % 5, 2 + i % 3]) for i in range(repeats)]
    maps = page.evaluate("[...document.querySelectorAll('#overview .map-wrap.grid')].reduce((n, w) => n + w.grid.c, 0)")
    parts = page.evaluate("window.__explore.timings.parts.slice(3)")
    split = {k: statistics.median(p[k] for p in parts) for k in parts[0]}
    return renders, traces, maps, split


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=20, help="images and traces timed per model (default 20)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)
    ok, why = browser_available()
    if not ok:
        print(f"cannot run the browser benchmark: {why}", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        models = make_models(Path(tmp))
        with sync_playwright() as p:
            browser = launch_chromium(p)
            for name, (folder, layer) in models.items():
                proc, url = start_server(folder)
                try:
                    page = browser.new_page(viewport={"width": 1600, "height": 1000})
                    renders, traces, maps, split = measure(page, url, layer, args.repeats)
                    page.close()
                finally:
                    stop_server(proc)
                results.append({"model": name, "maps_drawn": maps, "new_image_ms_median": statistics.median(renders),
                                "new_image_ms_p90": sorted(renders)[int(0.9 * (len(renders) - 1))],
                                "trace_ms_median": statistics.median(traces),
                                "trace_ms_p90": sorted(traces)[int(0.9 * (len(traces) - 1))], "trace_layer": layer,
                                "new_image_split_ms": split})
            browser.close()
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"{'model':<14} {'maps':>5}  {'new image -> all maps drawn':>28}  {'trace click':>22}")
    for r in results:
        print(f"{r['model']:<14} {r['maps_drawn']:>5}  {r['new_image_ms_median']:>9.0f} ms (p90 {r['new_image_ms_p90']:>4.0f} ms)"
              f"  {r['trace_ms_median']:>6.0f} ms (p90 {r['trace_ms_p90']:>3.0f} ms)")
    print("new image, median split (ms): " + "; ".join(
        r["model"] + ": " + ", ".join(f"{k} {v:.0f}" for k, v in r["new_image_split_ms"].items()) for r in results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
