// cnnlab explore: the page. Every number shown comes from the server's JSON API (cnnlab's engine);
// this script only draws them. No third-party code, nothing fetched from elsewhere.
"use strict";

const $ = (id) => document.getElementById(id);
const el = (tag, attrs = {}, ...kids) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v; else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v); else e.setAttribute(k, v);
  }
  for (const kid of kids) if (kid != null) e.append(kid);
  return e;
};

// ------------------------------------------------------------------ state (mirrored in the URL)
const state = { sample: null, upload: null, uploadUrl: null, invert: false, layer: null, channel: 0, y: 0, x: 0,
                overlay: "none", cls: "", opacity: 0.6 };
let model = null, current = null, trace = null, playing = null, runInfo = null;
const timings = { render: [], trace: [] };
window.__explore = { timings, state };

function readUrl() {
  const q = new URLSearchParams(location.hash.slice(1));
  Object.assign(state, { sample: null, layer: null, channel: 0, y: 0, x: 0, overlay: "none", cls: "", opacity: 0.6 });
  if (q.has("img")) {   // a small uploaded or drawn image travels in the link itself
    try {
      const bin = atob(q.get("img")), a = new Uint8Array(bin.length);
      for (let i = 0; i < bin.length; i++) a[i] = bin.charCodeAt(i);
      state.upload = new Blob([a], { type: "image/png" }); state.uploadUrl = q.get("img");
    } catch (err) { state.upload = null; state.uploadUrl = null; }
  }
  if (q.has("sample")) state.sample = parseInt(q.get("sample"), 10);
  if (q.has("layer")) state.layer = q.get("layer");
  for (const k of ["channel", "y", "x"]) if (q.has(k)) state[k] = parseInt(q.get(k), 10) || 0;
  if (q.has("overlay")) state.overlay = q.get("overlay");
  if (q.has("class")) state.cls = q.get("class");
  if (q.has("opacity")) state.opacity = parseFloat(q.get("opacity"));
  state.invert = q.get("invert") === "1";
}
function writeUrl() {
  const q = new URLSearchParams();
  if (state.sample != null && !state.upload) q.set("sample", state.sample);
  if (state.upload && state.uploadUrl) q.set("img", state.uploadUrl);
  if (state.invert) q.set("invert", "1");
  if (state.layer != null) { q.set("layer", state.layer); q.set("channel", state.channel); q.set("y", state.y); q.set("x", state.x); }
  if (state.overlay !== "none") q.set("overlay", state.overlay);
  if (state.cls !== "") q.set("class", state.cls);
  if (state.opacity !== 0.6) q.set("opacity", state.opacity);
  history.replaceState(null, "", "#" + q.toString());
}

// ------------------------------------------------------------------ API
function status(text) { $("status").textContent = text; }
function imageRequest(path, params = {}) {
  const q = new URLSearchParams(params);
  if (state.invert) q.set("invert", "1");
  const url = path + (q.toString() ? "?" + q : "");
  if (state.upload) {
    const form = new FormData();
    form.append("image", state.upload, "image.png");
    return fetch(url, { method: "POST", body: form });
  }
  return fetch(url, { method: "POST", headers: { "Content-Type": "application/json" },
                      body: JSON.stringify({ sample: state.sample ?? 0 }) });
}
async function json(responsePromise) {
  const r = await responsePromise;
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}
function decode(a) {
  const bin = atob(a.data), bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return { shape: a.shape, min: a.min, max: a.max, values: new Float32Array(bytes.buffer) };
}
const fmt = (v) => {
  if (v == null || !isFinite(v)) return String(v);
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1e12 || a < 1e-4) return v.toExponential(3);
  return String(parseFloat(v.toFixed(a >= 1 ? 4 : 3 - Math.floor(Math.log10(a)))));
};

// ------------------------------------------------------------------ colours
// one scale per layer: diverging blue-white-orange around 0 when the layer has negative values,
// white to orange when it has none; the input image in gray.
function scaleOf(lo, hi, gray) {
  if (gray) return { lo, hi, f: (v) => { const t = hi > lo ? (v - lo) / (hi - lo) : 0; const g = Math.round(255 * t); return [g, g, g]; },
                     css: "linear-gradient(to right, #000, #fff)" };
  if (lo < 0 && hi > 0) {
    const m = Math.max(-lo, hi);
    return { lo: -m, hi: m, css: "linear-gradient(to right, rgb(33,102,172), #fff, rgb(214,96,0))",
      f: (v) => { const t = Math.max(-1, Math.min(1, v / m));
        return t >= 0 ? [255 - 41 * t, 255 - 159 * t, 255 - 255 * t] : [255 + 222 * t, 255 + 153 * t, 255 + 83 * t]; } };
  }
  return { lo, hi, css: "linear-gradient(to right, #fff, rgb(214,96,0))",
    f: (v) => { const t = hi > lo ? Math.max(0, Math.min(1, (v - lo) / (hi - lo))) : 0; return [255 - 41 * t, 255 - 159 * t, 255 - 255 * t]; } };
}
function drawMap(canvas, values, offset, h, w, scale) {
  canvas.width = w; canvas.height = h;
  const ctx = canvas.getContext("2d"), img = ctx.createImageData(w, h);
  for (let i = 0; i < h * w; i++) {
    const [r, g, b] = scale.f(values[offset + i]);
    img.data[4 * i] = r; img.data[4 * i + 1] = g; img.data[4 * i + 2] = b; img.data[4 * i + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
}
function legend(scale) {
  return el("div", {}, el("div", { class: "legend", style: `background:${scale.css}` }),
    el("div", { class: "legend-labels" }, el("span", { text: String(Number(scale.lo.toPrecision(3))) }),
       el("span", { text: String(Number(scale.hi.toPrecision(3))) })));
}
function addBox(wrap, cls, y0, y1, x0, x1, h, w) {
  const b = el("div", { class: "box " + cls });
  b.style.left = (100 * x0 / w) + "%"; b.style.top = (100 * y0 / h) + "%";
  b.style.width = (100 * (x1 - x0 + 1) / w) + "%"; b.style.height = (100 * (y1 - y0 + 1) / h) + "%";
  wrap.append(b);
  return b;
}

// ------------------------------------------------------------------ running the network
let runSeq = 0, overlaySeq = 0, heatCache = null;
async function run() {
  const t0 = performance.now(), seq = ++runSeq;
  status("running the network...");
  let t1, t2;
  try {
    const r = await imageRequest("/api/predict", { maps: "1" });
    t1 = performance.now();
    const answer = await json(Promise.resolve(r));
    if (seq !== runSeq) return;            // a newer image was sent meanwhile: show only the latest
    current = answer;
  } catch (err) { if (seq === runSeq) { status("error: " + err.message); showWarnings([err.message]); } return; }
  t2 = performance.now();
  current.maps = {};
  for (const l of current.layers) current.maps[l.name] = decode(l);
  current.maps.input = decode(current.input.model_input);
  current.raw = decode(current.input.image);
  const t3 = performance.now();
  drawOverview(); drawInput(); drawPrediction();
  const t4 = performance.now();
  await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
  const ms = performance.now() - t0;
  timings.render.push(ms);
  timings.parts = timings.parts || [];
  timings.parts.push({ server: t1 - t0, body: t2 - t1, decode: t3 - t2, draw: t4 - t3, paint: performance.now() - t4 });
  status(`network run and every map drawn in ${ms.toFixed(0)} ms`);
  writeUrl();
  if (state.overlay !== "none") await updateOverlay();
  if (state.layer != null && (state.layer === "probabilities" || current.maps[state.layer])) await doTrace();
  else $("detail").hidden = true;
}

function columnWidth(h, w, channels) {
  // about 84 px wide per column: one big map, or a grid of small ones
  const per = channels <= 1 ? 1 : channels <= 8 ? 2 : channels <= 32 ? 4 : 8;
  const size = Math.max(8, Math.floor((per === 1 ? 84 : 88) / per) - 2);
  return { per, cssW: size, cssH: Math.max(4, Math.round(size * h / w)) };
}

function drawOverview() {
  const box = $("overview"); box.textContent = "";
  const columns = {};
  const inputCol = makeSpatialColumn({ name: "input", type: "input", output_shape: model.input_shape, inputs: [],
                                       arithmetic: [], warnings: [] }, current.maps.input, true);
  box.append(inputCol); columns.input = inputCol;
  for (const info of model.layers) {
    const m = current.maps[info.name];
    const col = m.shape.length === 3 ? makeSpatialColumn(info, m, false) : makeVectorColumn(info, m);
    box.append(col); columns[info.name] = col;
  }
  if (model.softmax_added) {
    const probs = Object.values(current.probabilities);
    const col = makeVectorColumn({ name: "probabilities", type: "softmax", inputs: [model.layers[model.layers.length - 1].name],
      output_shape: [probs.length], arithmetic: ["e^s / sum e^s"], warnings: [] },
      { shape: [probs.length], min: 0, max: 1, values: Float32Array.from(probs) });
    box.append(col); columns.probabilities = col;
  }
  drawEdges(columns);
  markSelection();
}

function footer(info) {
  const foot = el("div", { class: "foot" }, el("div", { text: info.output_shape.join("×") }));
  if (info.inputs && info.inputs.length && !(info.inputs.length === 1 && info.inputs[0] === prevName(info.name)))
    foot.append(el("div", { class: "inputs", text: "← " + info.inputs.join(" + ") }));
  for (const a of info.arithmetic || []) foot.append(el("div", { class: "arith", text: a }));
  for (const w of info.warnings || []) foot.append(el("div", { class: "warn", text: "⚠ " + w }));
  return foot;
}
function prevName(name) {
  const i = model.layers.findIndex((l) => l.name === name);
  return i <= 0 ? "input" : model.layers[i - 1].name;
}

// all channels of a layer in one canvas (a grid of maps, one pixel apart): one canvas per layer draws and
// paints far faster than one per channel (929 maps of the residual network)
function makeSpatialColumn(info, m, gray) {
  const [c, h, w] = m.shape;
  const scale = scaleOf(m.min, m.max, gray && c !== 3);
  const { per, cssW } = columnWidth(h, w, c);
  const rows = Math.ceil(c / per);
  const W = per * (w + 1) - 1, H = rows * (h + 1) - 1, k = cssW / w;
  const canvas = el("canvas", { title: `${info.name}: ${c} channel(s) of ${h}x${w}`, "data-layer": info.name });
  canvas.width = W; canvas.height = H;
  canvas.style.width = Math.round(W * k) + "px"; canvas.style.height = Math.round(H * k) + "px";
  const ctx = canvas.getContext("2d"), img = ctx.createImageData(W, H), d = img.data;
  d.fill(255);
  for (let ch = 0; ch < c; ch++) {
    const ox = (ch % per) * (w + 1), oy = Math.floor(ch / per) * (h + 1), base = ch * h * w;
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
      const [r, g, b] = scale.f(m.values[base + y * w + x]), i = 4 * ((oy + y) * W + ox + x);
      d[i] = r; d[i + 1] = g; d[i + 2] = b;
    }
  }
  ctx.putImageData(img, 0, 0);
  const grid = { c, h, w, per, W, H };
  if (info.name !== "input") canvas.addEventListener("click", (ev) => {
    const r = canvas.getBoundingClientRect();
    const px = Math.floor((ev.clientX - r.left) / r.width * W), py = Math.floor((ev.clientY - r.top) / r.height * H);
    const col = Math.floor(px / (w + 1)), row = Math.floor(py / (h + 1)), x = px % (w + 1), y = py % (h + 1);
    const ch = row * per + col;
    if (x < w && y < h && ch < c && col < per) select(info.name, ch, y, x);
  });
  const overlay = el("canvas", { class: "overlay rf-layer" });
  const wrap = el("div", { class: "map-wrap grid", "data-layer": info.name }, canvas, overlay);
  wrap.grid = grid;
  return el("div", { class: "column", "data-layer": info.name },
    el("div", { class: "head" }, el("span", { text: info.name + " " }), el("span", { class: "type", text: info.type })),
    legend(scale), wrap, footer(info));
}
// a box around rows y0-y1, columns x0-x1 of channel ch in a layer's grid canvas (clipped to that map)
function gridBox(wrap, cls, ch, y0, y1, x0, x1) {
  const g = wrap.grid;
  const oy = Math.floor(ch / g.per) * (g.h + 1), ox = (ch % g.per) * (g.w + 1);
  const c = (v, n) => Math.max(0, Math.min(n - 1, v));
  return addBox(wrap, cls, oy + c(y0, g.h), oy + c(y1, g.h), ox + c(x0, g.w), ox + c(x1, g.w), g.H, g.W);
}
function gridShade(wrap, b) {
  // the receptive field on every channel of a layer, drawn on the layer's overlay canvas
  const g = wrap.grid, ov = wrap.querySelector("canvas.rf-layer"), main = wrap.querySelector("canvas");
  const cw = main.getBoundingClientRect().width, ch = main.getBoundingClientRect().height;
  ov.width = Math.max(1, Math.round(cw)); ov.height = Math.max(1, Math.round(ch));
  ov.style.width = cw + "px"; ov.style.height = ch + "px";
  const ctx = ov.getContext("2d"), sx = ov.width / g.W, sy = ov.height / g.H;
  ctx.clearRect(0, 0, ov.width, ov.height);
  if (!b) return;
  ctx.fillStyle = "rgba(0,137,123,0.15)"; ctx.strokeStyle = "rgba(0,137,123,0.9)"; ctx.setLineDash([3, 2]);
  for (let k = 0; k < g.c; k++) {
    const oy = Math.floor(k / g.per) * (g.h + 1), ox = (k % g.per) * (g.w + 1);
    const x = (ox + b[2]) * sx, y = (oy + b[0]) * sy, w = (b[3] - b[2] + 1) * sx, h = (b[1] - b[0] + 1) * sy;
    ctx.fillRect(x, y, w, h); ctx.strokeRect(x + 0.5, y + 0.5, w - 1, h - 1);
  }
}

function makeVectorColumn(info, m) {
  const n = m.values.length;
  const isProb = info.name === "probabilities" || info.type === "Softmax";
  const scale = scaleOf(m.min, m.max, false);
  const vec = el("div", { class: "vector" });
  vec.style.height = Math.min(300, Math.max(60, n * (n <= 20 ? 14 : 1))) + "px";
  const cells = n > 400 ? 400 : n;
  for (let i = 0; i < cells; i++) {
    const v = m.values[i];
    const [r, g, b] = scale.f(v);
    const cell = el("div", { title: `${info.name}[${i}] = ${fmt(v)}`, "data-index": i });
    cell.style.background = `rgb(${r},${g},${b})`;
    cell.addEventListener("click", () => select(info.name, i, 0, 0));
    vec.append(cell);
  }
  const col = el("div", { class: "column", "data-layer": info.name },
    el("div", { class: "head" }, el("span", { text: info.name + " " }), el("span", { class: "type", text: info.type })),
    legend(scale), vec);
  if (n > cells) col.append(el("div", { class: "hint", text: `first ${cells} of ${n}` }));
  if (n <= 20 && n === model.classes.length)
    col.append(el("div", { class: "foot", text: isProb ? "probabilities" : "class scores" }));
  col.append(footer(info));
  return col;
}

function drawEdges(columns) {
  const svg = $("edges"), box = $("overview");
  svg.textContent = "";
  svg.setAttribute("width", box.scrollWidth); svg.setAttribute("height", 40);
  const base = box.getBoundingClientRect();
  const all = [{ name: "input", inputs: [] }, ...model.layers];
  for (const info of all) for (const src of info.inputs || []) {
    if (src === prevName(info.name) && info.inputs.length === 1) continue;     // a plain chain: side by side
    const a = columns[src], b = columns[info.name];
    if (!a || !b) continue;
    const ra = a.getBoundingClientRect(), rb = b.getBoundingClientRect();
    const x1 = ra.left + ra.width / 2 - base.left, x2 = rb.left + rb.width / 2 - base.left;
    const path = document.createElementNS("http://www.w3.org/2000/svg", "path");
    path.setAttribute("d", `M${x1},14 C${x1},-10 ${x2},-10 ${x2},14`);
    path.setAttribute("stroke", "#6a1b9a"); path.setAttribute("fill", "none"); path.setAttribute("stroke-width", "2");
    path.setAttribute("marker-end", "");
    svg.append(path);
  }
  $("overview-scroll").style.paddingTop = svg.childNodes.length ? "20px" : "0";
}

function drawPrediction() {
  const box = $("prediction"); box.textContent = "";
  const entries = Object.entries(current.probabilities);
  const label = current.input.label ? ` (true class ${current.input.label})` : "";
  box.append(el("div", { class: "verdict" }, "prediction: ", el("b", { id: "predicted", text: current.prediction }),
    ` with ${(100 * current.probabilities[current.prediction]).toFixed(1)}%${label}`));
  const bars = el("div", { id: "prob-bars" });
  entries.forEach(([cls, p], i) => {
    const bar = el("div", { class: "prob-bar" }); bar.style.width = (100 * p).toFixed(2) + "%";
    bars.append(el("div", { class: "prob-row" + (cls === current.prediction ? " best" : ""), "data-class": cls,
      title: "click: the softmax arithmetic", onclick: () => select(model.softmax_added ? "probabilities" : model.layers[model.layers.length - 1].name, i, 0, 0) },
      el("span", { class: "label", text: cls }), el("span", { class: "track" }, bar),
      el("span", { class: "pct", text: (100 * p).toFixed(1) + "%" })));
  });
  box.append(bars);
}

function drawInput() {
  const view = $("input-view"); view.textContent = "";
  const m = current.raw, [c, h, w] = m.shape;
  const canvas = el("canvas"); canvas.id = "input-canvas";
  if (c === 3) {
    canvas.width = w; canvas.height = h;
    const ctx = canvas.getContext("2d"), img = ctx.createImageData(w, h);
    for (let i = 0; i < h * w; i++) { for (let k = 0; k < 3; k++) img.data[4 * i + k] = 255 * m.values[k * h * w + i]; img.data[4 * i + 3] = 255; }
    ctx.putImageData(img, 0, 0);
  } else drawMap(canvas, m.values, 0, h, w, scaleOf(0, 1, true));
  const overlay = el("canvas", { class: "overlay", id: "overlay-canvas" });
  overlay.style.width = "112px"; overlay.style.height = "112px";
  view.append(canvas, overlay);
  $("preprocess-steps").textContent = "";
  const src = current.input.source + (current.input.original_size ? ` (${current.input.original_size.join("x")} ${current.input.original_mode})` : "");
  $("preprocess-steps").append(el("li", { text: src }));
  for (const s of current.input.steps) $("preprocess-steps").append(el("li", { text: s }));
  showWarnings(current.input.warnings);
  document.querySelectorAll("#samples img").forEach((img) => img.classList.toggle("current", !state.upload && +img.dataset.index === state.sample));
}
function showWarnings(list) {
  const box = $("warnings"); box.textContent = "";
  for (const w of list) box.append(el("div", { class: "warning", text: "⚠ " + w }));
}

// ------------------------------------------------------------------ clicking a value: the trace
function select(layer, channel, y, x) {
  state.layer = layer; state.channel = channel; state.y = y; state.x = x;
  writeUrl(); doTrace();
}
let traceSeq = 0;
async function doTrace() {
  const seq = ++traceSeq, t0 = performance.now();
  let t;
  try {
    t = await json(imageRequest("/api/trace", { layer: state.layer, channel: state.channel, y: state.y, x: state.x }));
  } catch (err) { status("error: " + err.message); return; }
  if (seq !== traceSeq) return;
  trace = t;
  drawDetail(); markSelection();
  const ms = performance.now() - t0;
  timings.trace.push(ms);
  status(`value traced in ${ms.toFixed(0)} ms`);
}

function markSelection() {
  document.querySelectorAll("#overview .box, #input-view .box").forEach((b) => b.remove());
  document.querySelectorAll(".vector div.sel").forEach((d) => d.classList.remove("sel"));
  document.querySelectorAll("#overview .map-wrap.grid").forEach((wrap) => gridShade(wrap, null));
  if (!trace || state.layer == null || !current) return;
  const wrapOf = (name) => document.querySelector(`#overview .map-wrap[data-layer="${CSS.escape(name)}"]`);
  const m = current.maps[state.layer];
  if (m && m.shape.length === 3) {
    const wrap = wrapOf(state.layer);
    if (wrap) gridBox(wrap, "sel", state.channel, state.y, state.y, state.x, state.x);
  } else {
    const cell = document.querySelector(`#overview .column[data-layer="${CSS.escape(state.layer)}"] .vector div[data-index="${state.channel}"]`);
    if (cell) cell.classList.add("sel");
  }
  // the receptive field on every earlier map, then the window on the layer's input
  if ($("show-rf").checked && trace.receptive_field) {
    for (const [name, b] of Object.entries(trace.receptive_field)) {
      if (name === state.layer) continue;
      const sm = current.maps[name], wrap = wrapOf(name);
      if (!sm || sm.shape.length !== 3 || !wrap) continue;
      gridShade(wrap, b);
      if (name === "input") addBox($("input-view"), "rf", b[0], b[1], b[2], b[3], sm.shape[1], sm.shape[2]);
    }
  }
  const win = trace.window, src = (trace.inputs || [])[0];
  if (win && src && current.maps[src] && current.maps[src].shape.length === 3 && wrapOf(src)) {
    for (let ch = win.channels[0]; ch <= win.channels[1]; ch++)
      gridBox(wrapOf(src), "", ch, win.y0, win.y0 + win.height - 1, win.x0, win.x0 + win.width - 1);
  }
}

function grid(rows, opts = {}) {
  const t = el("table", { class: "grid" });
  rows.forEach((row, i) => {
    const tr = el("tr");
    row.forEach((v, j) => {
      const td = el("td", { text: v == null ? "pad" : fmt(v) });
      if (v == null) td.className = "pad";
      if (opts.pick && opts.pick[0] === i && opts.pick[1] === j) td.classList.add("pick");
      if (opts.scale && v != null) {
        const [r, g, b] = opts.scale.f(v);
        td.style.background = `rgb(${r},${g},${b})`;
        if (0.3 * r + 0.59 * g + 0.11 * b < 128) td.style.color = "#fff";
      }
      tr.append(td);
    });
    t.append(tr);
  });
  return t;
}

function drawDetail() {
  const t = trace, body = $("detail-body");
  $("detail").hidden = false;
  const pos = current.maps[t.layer] && current.maps[t.layer].shape.length === 3 ? `channel ${t.channel}, position (${t.y}, ${t.x})` : `value ${t.channel}`;
  $("detail-title").textContent = `layer ${t.layer} (${t.description || t.type}), ${pos}`;
  body.textContent = "";
  const left = el("div", { class: "block" });
  if (t.formula) left.append(el("div", {}, el("b", { text: "rule: " }), t.formula));
  if (t.sizes) left.append(el("div", { class: "hint", text: "output size: " + t.sizes.join("; ") }));
  if (t.type === "Conv2d" && t.kernel) {
    const grids = el("div", { class: "grids scroll" });
    const wH = t.window.height, wW = t.window.width, shown = Math.min(t.kernel.length, 64);
    const wScale = scaleOf(-1, 1, false);
    for (let ci = 0; ci < shown; ci++) {
      const win = [], ker = t.kernel[ci];
      for (let i = 0; i < wH; i++) { const row = []; for (let j = 0; j < wW; j++) { const term = t.terms[ci * wH * wW + i * wW + j]; row.push(term && !term.padding ? term.input : term ? 0 : null); } win.push(row); }
      const kmax = Math.max(...ker.flat().map(Math.abs)) || 1;
      const sm = current.maps[(t.inputs || [])[0]];
      const inScale = sm ? scaleOf(sm.min, sm.max, (t.inputs || [])[0] === "input") : null;
      grids.append(el("div", {}, el("div", { class: "cap", text: `input channel ${t.window.channels[0] + ci}: window` }), grid(win, { scale: inScale })),
                   el("div", {}, el("div", { class: "cap", text: "× kernel" }), grid(ker, { scale: scaleOf(-kmax, kmax, false) })));
    }
    left.append(grids);
    if (t.kernel.length > shown) left.append(el("div", { class: "hint", text: `... and ${t.kernel.length - shown} more input channels (all in the sum below)` }));
  } else if (t.terms && t.terms.length && t.terms[0].y !== undefined && t.window) {
    const wH = t.window.height, wW = t.window.width, rows = [];
    for (let i = 0; i < wH; i++) rows.push(t.terms.slice(i * wW, (i + 1) * wW).map((u) => u.input));
    let pick = null;
    if (t.picked) pick = [t.picked[0] - t.window.y0, t.picked[1] - t.window.x0];
    if (wH * wW <= 400) left.append(el("div", { class: "cap", text: "window on the input" }), grid(rows, { pick }));
  } else if (t.type === "Linear" && t.terms) {
    const tbl = el("table", { class: "grid" }, el("tr", {}, el("td", { text: "input #" }), el("td", { text: "input" }), el("td", { text: "weight" }), el("td", { text: "product" })));
    for (const u of t.terms) tbl.append(el("tr", {}, el("td", { text: u.index }), el("td", { text: fmt(u.input) }), el("td", { text: fmt(u.weight) }), el("td", { text: fmt(u.product) })));
    left.append(el("div", { class: "cap", text: "largest contributions" }), tbl);
    if (t.rest && t.rest.count) left.append(el("div", { class: "hint", text: `the other ${t.rest.count} inputs add up to ${fmt(t.rest.sum)}` }));
  }
  if (t.exponentials) {
    left.append(el("div", { class: "cap", text: "exponentials" }), el("div", { class: "expr", text: t.exponentials.join("\n") }),
                el("div", { class: "cap", text: "their sum" }), el("div", { class: "expr", text: t.sum }));
  }
  body.append(left);
  const right = el("div", { class: "block" });
  right.append(bigMaps(t));
  if (t.expression) right.append(el("div", { class: "cap", text: "written out" }), el("div", { class: "expr", id: "detail-expression", text: t.expression }));
  if (t.bias != null) right.append(el("div", { text: "bias: " + fmt(t.bias) }));
  right.append(el("div", { id: "detail-total", "data-value": String(t.value), text: `total = ${fmt(t.value)}` }),
               el("div", { class: "hint", text: `the engine's value: ${t.value}` + (t.total != null ? `; the float64 arithmetic above: ${t.total}` : "") }));
  for (const n of t.notes || []) right.append(el("div", { class: "hint", text: "note: " + n }));
  body.append(right);
}

function bigMap(name, ch, boxes) {
  const m = current.maps[name];
  const [c, h, w] = m.shape;
  const canvas = el("canvas");
  canvas.style.width = "120px"; canvas.style.height = Math.round(120 * h / w) + "px";
  drawMap(canvas, m.values, ch * h * w, h, w, scaleOf(m.min, m.max, name === "input" && c !== 3));
  const wrap = el("div", { class: "map-wrap" }, canvas);
  for (const [cls, b] of boxes) addBox(wrap, cls, b[0], b[1], b[2], b[3], h, w);
  return el("div", { class: "bigmap" }, wrap, el("div", { class: "cap", text: `${name === "input" ? "input" : "layer " + name}, channel ${ch}` }));
}
function bigMaps(t) {
  // the layer's input with the window highlighted, and the output map with the pixel
  const row = el("div", { class: "row bigmaps" });
  const src = (t.inputs || [])[0], out = current.maps[t.layer];
  if (!out || out.shape.length !== 3) return row;
  if (src && t.window && current.maps[src] && current.maps[src].shape.length === 3) {
    const w = t.window, box = [w.y0, w.y0 + w.height - 1, w.x0, w.x0 + w.width - 1];
    const last = Math.min(w.channels[1], w.channels[0] + 2);
    for (let ch = w.channels[0]; ch <= last; ch++) row.append(bigMap(src, ch, [["", box]]));
    if (w.channels[1] > last) row.append(el("span", { class: "hint", text: `+ ${w.channels[1] - last} more channels` }));
    row.append(el("span", { class: "arrow", text: "→" }));
  }
  row.append(bigMap(t.layer, t.channel, [["sel", [t.y, t.y, t.x, t.x]]]));
  return row;
}

function step(dy, dx) {
  if (!trace || state.layer == null) return;
  const m = current.maps[state.layer] || { shape: [Object.keys(current.probabilities).length] };
  if (m.shape.length === 3) {
    const [, h, w] = m.shape;
    let y = state.y, x = state.x + dx;
    y += dy;
    if (x >= w) { x = 0; y += 1; } if (x < 0) { x = w - 1; y -= 1; }
    if (y >= h) y = 0; if (y < 0) y = h - 1;
    select(state.layer, state.channel, y, x);
  } else {
    const n = m.shape[0];
    select(state.layer, (state.channel + dx + dy + n) % n, 0, 0);
  }
}
function togglePlay() {
  if (playing) { clearInterval(playing); playing = null; $("play").textContent = "▶ play"; return; }
  $("play").textContent = "❚❚ pause";
  playing = setInterval(() => step(0, 1), 350);
}

// ------------------------------------------------------------------ why this class
async function updateOverlay() {
  const canvas = $("overlay-canvas");
  if (!canvas) return;
  const ctx = canvas.getContext("2d");
  if (state.overlay === "none") { ctx.clearRect(0, 0, canvas.width, canvas.height); $("overlay-info").textContent = ""; return; }
  let r;
  const key = state.overlay + "|" + state.cls;
  if (heatCache && heatCache.key === key && heatCache.of === current) r = heatCache.r;   // opacity only: redraw
  else {
    const seq = ++overlaySeq;
    try { r = await json(imageRequest("/api/explain", { method: state.overlay, class: state.cls })); }
    catch (err) { if (seq === overlaySeq) $("overlay-info").textContent = "error: " + err.message; return; }
    if (seq !== overlaySeq) return;
    heatCache = { key, of: current, r };
  }
  const m = decode(r.heatmap), [h, w] = m.shape;
  canvas.width = w; canvas.height = h;
  const img = ctx.createImageData(w, h);
  for (let i = 0; i < h * w; i++) {
    const v = Math.max(0, Math.min(1, m.values[i]));
    img.data[4 * i] = 255; img.data[4 * i + 1] = Math.round(255 * (1 - v) * 0.9); img.data[4 * i + 2] = 0;
    img.data[4 * i + 3] = Math.round(255 * v * state.opacity);
  }
  ctx.putImageData(img, 0, 0);
  $("overlay-info").textContent = `${r.method === "gradcam" ? "Grad-CAM at layer " + r.layer : "saliency |d score / d pixel|"} for class ${r.class} (p = ${(100 * r.probability).toFixed(1)}%)`;
  if (m.max <= 0) $("overlay-info").textContent += ": zero everywhere (no pixel raises this class's score at that layer)";
  $("overlay-info").dataset.method = r.method;
}

// ------------------------------------------------------------------ input: samples, upload, drop, drawing
async function loadSamples() {
  const q = new URLSearchParams({ limit: 120 });
  if ($("sample-class").value !== "") q.set("class", $("sample-class").value);
  if ($("sample-wrong").checked) q.set("wrong", "1");
  const box = $("samples"); box.textContent = "";
  let r;
  try { r = await json(fetch("/api/samples?" + q)); } catch (err) { box.append(el("span", { class: "hint", text: err.message })); return false; }
  for (const s of r.samples) box.append(sampleThumb(s));
  if (!r.samples.length) box.append(el("span", { class: "hint", text: "no test image here" }));
  return true;
}
function sampleThumb(s) {
  return el("img", { src: `/api/samples/${s.index}.png?scale=2`, "data-index": s.index, class: s.correct ? "" : "wrong",
    title: `test image ${s.index}: true ${s.label}, predicted ${s.predicted} (${(100 * s.probability).toFixed(0)}%)${s.correct ? "" : " — misclassified"}`,
    onclick: () => { state.sample = s.index; state.upload = null; run(); } });
}
const URL_IMAGE_BYTES = 24000;   // uploads up to this size are kept in the link (base64)
async function useFile(file) {
  if (!file) return;
  state.upload = file; state.sample = null; state.uploadUrl = null;
  if (file.size <= URL_IMAGE_BYTES) {
    const a = new Uint8Array(await file.arrayBuffer());
    let bin = ""; for (const b of a) bin += String.fromCharCode(b);
    state.uploadUrl = btoa(bin);
  }
  run();
}
function setupDrawing() {
  const c = $("draw"), ctx = c.getContext("2d");
  ctx.fillStyle = "#000"; ctx.fillRect(0, 0, c.width, c.height);
  let down = false, last = null, timer = null;
  const at = (ev) => { const r = c.getBoundingClientRect(); return [(ev.clientX - r.left) * c.width / r.width, (ev.clientY - r.top) * c.height / r.height]; };
  const send = () => c.toBlob((blob) => useFile(blob), "image/png");
  c.addEventListener("pointerdown", (ev) => { down = true; last = at(ev); c.setPointerCapture && c.setPointerCapture(ev.pointerId); });
  c.addEventListener("pointermove", (ev) => {
    if (!down) return;
    const p = at(ev);
    ctx.strokeStyle = "#fff"; ctx.lineWidth = 22; ctx.lineCap = "round"; ctx.lineJoin = "round";
    ctx.beginPath(); ctx.moveTo(last[0], last[1]); ctx.lineTo(p[0], p[1]); ctx.stroke();
    last = p;
    clearTimeout(timer); timer = setTimeout(send, 120);   // live update while drawing
  });
  const up = () => { if (down) { down = false; clearTimeout(timer); send(); } };
  c.addEventListener("pointerup", up); c.addEventListener("pointerleave", up);
  $("draw-clear").addEventListener("click", () => { ctx.fillStyle = "#000"; ctx.fillRect(0, 0, c.width, c.height); });
}

// ------------------------------------------------------------------ shape playground
let playgroundSeq = 0;
async function playground() {
  const q = new URLSearchParams({ size: $("pg-size").value, kernel: $("pg-kernel").value, stride: $("pg-stride").value,
    padding: $("pg-padding").value, dilation: $("pg-dilation").value, pool: $("pg-pool").checked ? "1" : "0",
    ceil_mode: $("pg-ceil").checked ? "1" : "0" });
  const seq = ++playgroundSeq, box = $("pg-result");
  let r;
  try { r = await json(fetch("/api/shape?" + q)); } catch (err) {
    if (seq !== playgroundSeq) return;
    box.textContent = ""; box.append(el("div", { class: "warn", text: "⚠ " + err.message })); drawWindows(null); return;
  }
  if (seq !== playgroundSeq) return;   // a newer request is on its way: only the latest answer is shown
  box.textContent = "";
  box.append(el("div", { text: r.rule }), el("div", { id: "pg-formula", text: "output = " + r.formula }));
  if (r.warning) box.append(el("div", { class: "warn", text: "⚠ " + r.warning }));
  drawWindows(r);
}
function drawWindows(r) {
  const c = $("pg-canvas"), ctx = c.getContext("2d");
  ctx.clearRect(0, 0, c.width, c.height);
  if (!r) return;
  c.height = 10 + 28 + 4 + Math.min(r.windows.length, 40) * 5 + 22;
  const total = r.size + r.padding[0] + r.padding[1], cell = Math.max(3, Math.min(28, Math.floor((c.width - 20) / total)));
  const x0 = 10, yIn = 10;
  for (let i = -r.padding[0]; i < r.size + r.padding[1]; i++) {
    const x = x0 + (i + r.padding[0]) * cell, pad = i < 0 || i >= r.size;
    const dropped = !pad && i > r.windows[r.windows.length - 1][1];
    ctx.fillStyle = pad ? "#eeeeee" : dropped ? "#ef9a9a" : "#90caf9";
    ctx.fillRect(x, yIn, cell - 1, cell - 1);
  }
  const rows = Math.min(r.windows.length, 40);
  r.windows.slice(0, rows).forEach(([a, b], k) => {
    const y = yIn + cell + 4 + k * 5;
    ctx.fillStyle = k % 2 ? "#00897b" : "#4db6ac";
    const taps = r.dilation;
    for (let t = a; t <= b; t += taps) ctx.fillRect(x0 + (t + r.padding[0]) * cell, y, cell - 1, 3);
  });
  ctx.fillStyle = "#333"; ctx.font = "12px sans-serif";
  ctx.fillText(`${r.output} windows${r.windows.length > rows ? ` (first ${rows} drawn)` : ""}; blue: input, gray: padding, red: never covered`, x0, c.height - 4);
}
function playgroundFromLayer() {
  const name = $("pg-layer").value; if (!name) return;
  const l = model.layers.find((x) => x.name === name);
  $("pg-size").value = l.input_shape[1]; $("pg-kernel").value = l.kernel_size[0]; $("pg-stride").value = l.stride[0];
  const p = l.padding ? l.padding[0] : [0, 0];
  $("pg-padding").value = p[0] === p[1] ? p[0] : `${p[0]},${p[1]}`;
  $("pg-dilation").value = l.dilation ? l.dilation[0] : 1;
  $("pg-pool").checked = l.type !== "Conv2d" && l.type !== "ConvTranspose2d";
  $("pg-ceil").checked = false;
  playground();
}

// ------------------------------------------------------------------ the run
async function loadRun() {
  try { runInfo = await json(fetch("/api/run")); } catch (err) { $("run").append(el("div", { class: "hint", text: err.message })); return; }
  drawCurves(runInfo.history);
  const t = $("metrics"); t.textContent = "";
  const mx = runInfo.metrics || {};
  for (const k of ["test_accuracy", "test_loss", "epochs", "best_epoch", "model", "dataset", "num_parameters", "train_size", "optimizer", "lr", "schedule"])
    if (mx[k] != null) t.append(el("tr", {}, el("td", { text: k }), el("td", { text: typeof mx[k] === "number" ? fmt(mx[k]) : String(mx[k]) })));
  if (runInfo.test_count) t.append(el("tr", {}, el("td", { text: "test images shown" }), el("td", { text: `${runInfo.test_count} (accuracy ${(100 * runInfo.test_accuracy).toFixed(2)}%)` })));
  const cm = runInfo.confusion, tbl = $("confusion"); tbl.textContent = "";
  if (!cm) { tbl.append(el("tr", {}, el("td", { text: runInfo.test_error || "no test data" }))); return; }
  const head = el("tr", {}, el("th", { text: "" }));
  runInfo.classes.forEach((c) => head.append(el("th", { text: c })));
  tbl.append(head);
  const peak = Math.max(...cm.flat());
  cm.forEach((row, i) => {
    const tr = el("tr", {}, el("th", { text: runInfo.classes[i] }));
    row.forEach((n, j) => {
      const td = el("td", { text: n, class: i === j ? "diag" : "", "data-true": i, "data-pred": j, title: `true ${runInfo.classes[i]}, predicted ${runInfo.classes[j]}: ${n}` });
      const a = n ? 0.15 + 0.85 * n / peak : 0;
      td.style.background = i === j ? `rgba(25,118,210,${a})` : `rgba(211,47,47,${a})`;
      td.addEventListener("click", () => cellSamples(i, j));
      tr.append(td);
    });
    tbl.append(tr);
  });
}
async function cellSamples(t, p) {
  const box = $("cell-samples"); box.textContent = "";
  const r = await json(fetch(`/api/samples?class=${t}&predicted=${p}&limit=60`));
  box.append(el("div", { class: "hint", text: `${r.count} test image(s): true ${runInfo.classes[t]}, predicted ${runInfo.classes[p]}; click one to load it` }));
  for (const s of r.samples) box.append(sampleThumb(s));
}
function drawCurves(h) {
  const svg = $("curves"); svg.textContent = "";
  if (!h || !h.epoch || !h.epoch.length) { return; }
  const W = 460, H = 240, pad = 34, ns = "http://www.w3.org/2000/svg";
  const series = [["train_loss", "#1976d2"], ["val_loss", "#e65100"], ["train_accuracy", "#64b5f6"], ["val_accuracy", "#ffb74d"]]
    .filter(([k]) => h[k] && h[k].some((v) => v != null));
  const xs = h.epoch, n = xs.length;
  const maxLoss = Math.max(1e-9, ...["train_loss", "val_loss"].flatMap((k) => (h[k] || []).filter((v) => v != null)));
  const X = (i) => pad + (n === 1 ? (W - 2 * pad) / 2 : i * (W - 2 * pad) / (n - 1));
  const axis = document.createElementNS(ns, "path");
  axis.setAttribute("d", `M${pad},${pad / 2} V${H - pad} H${W - pad}`); axis.setAttribute("stroke", "#999"); axis.setAttribute("fill", "none");
  svg.append(axis);
  series.forEach(([k, colour], s) => {
    const isAcc = k.endsWith("accuracy");
    const Y = (v) => H - pad - (isAcc ? v : v / maxLoss) * (H - 1.5 * pad);
    const pts = h[k].map((v, i) => v == null ? null : `${X(i)},${Y(v)}`).filter(Boolean);
    const line = document.createElementNS(ns, "polyline");
    line.setAttribute("points", pts.join(" ")); line.setAttribute("stroke", colour); line.setAttribute("fill", "none"); line.setAttribute("stroke-width", "2");
    svg.append(line);
    for (const p of pts) { const c = document.createElementNS(ns, "circle"); const [cx, cy] = p.split(","); c.setAttribute("cx", cx); c.setAttribute("cy", cy); c.setAttribute("r", 2.5); c.setAttribute("fill", colour); svg.append(c); }
    const t = document.createElementNS(ns, "text"); t.setAttribute("x", W - pad - 110); t.setAttribute("y", 14 + 13 * s);
    t.setAttribute("fill", colour); t.setAttribute("font-size", "11"); t.textContent = k + (isAcc ? " (0-1)" : ` (max ${fmt(maxLoss)})`);
    svg.append(t);
  });
  const lab = document.createElementNS(ns, "text"); lab.setAttribute("x", W / 2 - 20); lab.setAttribute("y", H - 8); lab.setAttribute("font-size", "11");
  lab.textContent = `epoch 1-${xs[n - 1]}`; svg.append(lab);
}

// ------------------------------------------------------------------ start
const slides = (l) => !["ConvTranspose2d", "FractionalMaxPool2d", "AdaptiveAvgPool2d", "AdaptiveMaxPool2d"].includes(l.type);
async function main() {
  readUrl();
  model = await json(fetch("/api/model"));
  $("model-title").textContent = `${model.name} · input ${model.input_shape.join("×")} · ${model.classes.length} classes${model.dataset ? " · " + model.dataset : ""}`;
  for (const [i, c] of model.classes.entries()) { $("sample-class").append(el("option", { value: i, text: c })); $("overlay-class").append(el("option", { value: i, text: c })); }
  for (const l of model.layers) if (l.kernel_size && l.input_shape.length === 3 && slides(l)) $("pg-layer").append(el("option", { value: l.name, text: `${l.name} ${l.description}` }));
  $("draw-box").hidden = !model.can_draw;
  $("invert").checked = state.invert; $("overlay").value = state.overlay; $("overlay-class").value = state.cls; $("opacity").value = state.opacity;
  $("sample-class").addEventListener("change", loadSamples); $("sample-wrong").addEventListener("change", loadSamples);
  $("upload").addEventListener("change", (ev) => useFile(ev.target.files[0]));
  const dz = $("drop-zone");
  dz.addEventListener("dragover", (ev) => { ev.preventDefault(); dz.classList.add("dragging"); });
  dz.addEventListener("dragleave", () => dz.classList.remove("dragging"));
  dz.addEventListener("drop", (ev) => { ev.preventDefault(); dz.classList.remove("dragging"); useFile(ev.dataTransfer.files[0]); });
  $("invert").addEventListener("change", () => { state.invert = $("invert").checked; run(); });
  $("overlay").addEventListener("change", () => { state.overlay = $("overlay").value; writeUrl(); updateOverlay(); });
  $("overlay-class").addEventListener("change", () => { state.cls = $("overlay-class").value; writeUrl(); updateOverlay(); });
  $("opacity").addEventListener("input", () => { state.opacity = parseFloat($("opacity").value); writeUrl(); updateOverlay(); });
  $("prev").addEventListener("click", () => step(0, -1)); $("next").addEventListener("click", () => step(0, 1));
  $("play").addEventListener("click", togglePlay);
  $("show-rf").addEventListener("change", markSelection);
  document.addEventListener("keydown", (ev) => {
    if (ev.target.tagName === "INPUT" || ev.target.tagName === "SELECT" || state.layer == null) return;
    const moves = { ArrowLeft: [0, -1], ArrowRight: [0, 1], ArrowUp: [-1, 0], ArrowDown: [1, 0] };
    if (moves[ev.key]) { ev.preventDefault(); step(...moves[ev.key]); }
  });
  for (const id of ["pg-size", "pg-kernel", "pg-stride", "pg-padding", "pg-dilation", "pg-pool", "pg-ceil"]) $(id).addEventListener("input", playground);
  $("pg-layer").addEventListener("change", playgroundFromLayer);
  window.addEventListener("hashchange", () => {   // a link to another view of the same page
    state.upload = null; state.uploadUrl = null; readUrl();
    $("invert").checked = state.invert; $("overlay").value = state.overlay; $("overlay-class").value = state.cls;
    $("opacity").value = state.opacity;
    run();
  });
  setupDrawing();
  const haveSamples = await loadSamples();
  if (state.sample == null && haveSamples) state.sample = 0;
  const firstPool = model.layers.find((l) => l.kernel_size && l.input_shape.length === 3 && slides(l));
  if (firstPool) { $("pg-layer").value = firstPool.name; playgroundFromLayer(); } else playground();
  loadRun();
  if (haveSamples || state.upload) await run();
  else status("no test images: upload, drop or draw an image");
  window.__explore.ready = true;
}
main().catch((err) => status("error: " + err.message));
