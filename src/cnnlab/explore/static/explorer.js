// cnnlab explore: the page. Every number shown comes from the server's JSON API (cnnlab's engine);
// this script only draws them (and, for hover and the "play" animation, looks values up in the maps it
// already has). No third-party code, nothing fetched from elsewhere.
"use strict";

const $ = (id) => document.getElementById(id);
const el = (tag, attrs = {}, ...kids) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v == null) continue;
    if (k === "class") e.className = v; else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v); else e.setAttribute(k, v);
  }
  for (const kid of kids) if (kid != null) e.append(kid);
  return e;
};
const SVG = "http://www.w3.org/2000/svg";
const svgEl = (tag, attrs = {}) => {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
};

// ------------------------------------------------------------------ state (mirrored in the URL)
const state = { sample: null, upload: null, uploadUrl: null, generated: false, invert: false, layer: null, channel: 0,
                y: 0, x: 0, overlay: "none", cls: "", opacity: 0.6 };
let model = null, current = null, trace = null, playing = null, runInfo = null, shown = null;
const timings = { render: [], trace: [] };
const edgeStats = { drawn: 0, highlighted: 0, arcs: 0 };
window.__explore = { timings, state, edges: edgeStats };

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
  let body;
  try { body = await r.json(); } catch (err) { throw new Error(`${r.status} ${r.statusText}: the server's answer is not JSON`); }
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

// ------------------------------------------------------------------ layers: names and geometry
const layerOf = (name) => model.layers.find((l) => l.name === name);
const inputInfo = () => ({ name: "input", label: "input", type: "input", description: "the image", inputs: [],
                           input_shape: model.input_shape, output_shape: model.input_shape, arithmetic: [], warnings: [] });
function lab(name) {
  if (name === "input" || name === "probabilities") return name;
  const l = layerOf(name);
  return l && l.label ? l.label : name;
}
function isClassVector(name) { return !!(current && current.maps[name] && current.maps[name].shape.length === 1 &&
  current.maps[name].shape[0] === model.classes.length && model.classes.length <= 20 && lastVectors().includes(name)); }
function lastVectors() {
  // the score / probability vectors at the end of the network (they get class labels)
  const out = [];
  for (let i = model.layers.length - 1; i >= 0; i--) {
    const l = model.layers[i];
    if (l.output_shape.length !== 1 || l.output_shape[0] !== model.classes.length) break;
    out.push(l.name);
  }
  if (model.softmax_added) out.push("probabilities");
  return out;
}
const slides = (l) => !["ConvTranspose2d", "FractionalMaxPool2d", "AdaptiveAvgPool2d", "AdaptiveMaxPool2d"].includes(l.type);

// the box of every earlier map the value (y, x) of `layer` depends on: {name: [y0, y1, x0, x1]}
function receptiveField(layer, y, x) {
  const boxes = { [layer]: [y, y, x, x] };
  const idx = model.layers.findIndex((l) => l.name === layer);
  for (let i = idx; i >= 0; i--) {
    const info = model.layers[i], name = info.name;
    if (!boxes[name]) continue;
    const [y0, y1, x0, x1] = boxes[name], ins = info.input_shape;
    if (ins.length !== 3 || info.output_shape.length !== 3) {
      if (ins.length === 3) for (const src of info.inputs) boxes[src] = [0, ins[1] - 1, 0, ins[2] - 1];
      continue;
    }
    let b;
    if (info.kernel_size && info.padding && slides(info)) {
      const [kh, kw] = info.kernel_size, [sh, sw] = info.stride, [dh, dw] = info.dilation || [1, 1];
      const pt = info.padding[0][0], pl = info.padding[1][0];
      b = [y0 * sh - pt, y1 * sh - pt + dh * (kh - 1), x0 * sw - pl, x1 * sw - pl + dw * (kw - 1)];
    } else if (info.output_shape[1] === ins[1] && info.output_shape[2] === ins[2]) b = [y0, y1, x0, x1];
    else b = [0, ins[1] - 1, 0, ins[2] - 1];
    b = [Math.max(0, b[0]), Math.min(ins[1] - 1, b[1]), Math.max(0, b[2]), Math.min(ins[2] - 1, b[3])];
    for (const src of info.inputs) {
      const o = boxes[src];
      boxes[src] = o ? [Math.min(o[0], b[0]), Math.max(o[1], b[1]), Math.min(o[2], b[2]), Math.max(o[3], b[3])] : b.slice();
    }
  }
  return boxes;
}
// which channels of input `src` (the k-th input) feed output channel ch of layer `info`
function inputChannels(info, k, ch) {
  const src = info.inputs[k], sm = shapeOf(src);
  if (!sm) return [];
  const cin = sm.length === 3 ? sm[0] : sm[0];
  if (info.type === "Conv2d" || info.type === "ConvTranspose2d") {
    const g = info.groups || 1, cout = info.output_shape[0], per = cin / g, grp = Math.floor(ch / (cout / g));
    return range(grp * per, (grp + 1) * per);
  }
  if (info.type === "Linear" || info.type === "Softmax" || info.type === "LogSoftmax") return range(0, cin);
  if (info.type === "Flatten" || info.type === "Reshape") {
    if (sm.length === 3) return [Math.floor(ch / (sm[1] * sm[2]))];
    return [ch];
  }
  if (info.type === "Concat") {
    let off = 0;
    for (let j = 0; j < k; j++) off += (shapeOf(info.inputs[j]) || [0])[0];
    return ch >= off && ch < off + cin ? [ch - off] : [];
  }
  if (cin === info.output_shape[0]) return [ch];
  return range(0, cin);
}
const range = (a, b) => { const r = []; for (let i = a; i < b; i++) r.push(i); return r; };
function shapeOf(name) {
  if (name === "input") return model.input_shape;
  if (name === "probabilities") return [model.classes.length];
  const l = layerOf(name);
  return l ? l.output_shape : null;
}

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
  const a = Math.min(lo, 0), b = Math.max(hi, a + 1e-12);
  return { lo: a, hi: b, css: "linear-gradient(to right, #fff, rgb(214,96,0))",
    f: (v) => { const t = Math.max(0, Math.min(1, (v - a) / (b - a))); return [255 - 41 * t, 255 - 159 * t, 255 - 255 * t]; } };
}
function layerScale(name) {
  const m = current.maps[name];
  return scaleOf(m.min, m.max, name === "input" && m.shape[0] !== 3);
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
function drawRgb(canvas, m) {
  const [, h, w] = m.shape;
  canvas.width = w; canvas.height = h;
  const ctx = canvas.getContext("2d"), img = ctx.createImageData(w, h);
  for (let i = 0; i < h * w; i++) { for (let k = 0; k < 3; k++) img.data[4 * i + k] = 255 * m.values[k * h * w + i]; img.data[4 * i + 3] = 255; }
  ctx.putImageData(img, 0, 0);
}
function legend(scale) {
  return el("div", { "aria-hidden": "true" }, el("div", { class: "legend", style: `background:${scale.css}` }),
    el("div", { class: "legend-labels" }, el("span", { text: String(Number(scale.lo.toPrecision(3))) }),
       el("span", { text: String(Number(scale.hi.toPrecision(3))) })));
}
function addBox(wrap, cls, y0, y1, x0, x1, h, w) {
  const b = el("div", { class: "box " + cls });
  placeBox(b, y0, y1, x0, x1, h, w);
  wrap.append(b);
  return b;
}
function placeBox(b, y0, y1, x0, x1, h, w) {
  b.style.left = (100 * x0 / w) + "%"; b.style.top = (100 * y0 / h) + "%";
  b.style.width = (100 * (x1 - x0 + 1) / w) + "%"; b.style.height = (100 * (y1 - y0 + 1) / h) + "%";
}

// ------------------------------------------------------------------ running the network
let runSeq = 0, overlaySeq = 0, heatCache = null;
function describeSource() {
  if (state.generated) return "the generated sample image";
  if (state.upload) return "the uploaded image";
  return `test image ${state.sample ?? 0}`;
}
async function run() {
  const t0 = performance.now(), seq = ++runSeq;
  stopPlay(false);
  status("running the network...");
  let t1, t2;
  const asked = describeSource();
  try {
    const r = await imageRequest("/api/predict", { maps: "1" });
    t1 = performance.now();
    const answer = await json(Promise.resolve(r));
    if (seq !== runSeq) return;            // a newer image was sent meanwhile: show only the latest
    current = answer;
  } catch (err) {
    if (seq !== runSeq) return;
    // keep the page consistent: go back to the image whose maps are on screen, and say what failed
    if (shown) { Object.assign(state, shown); $("invert").checked = state.invert; writeUrl(); }
    $("upload-error").textContent = `${asked[0].toUpperCase() + asked.slice(1)} could not be used: ${err.message}` +
      (current ? `. The page still shows ${current.input.source === "upload" ? "the previous image" : current.input.source}.` : ".");
    status("error: " + err.message);
    return;
  }
  $("upload-error").textContent = "";
  t2 = performance.now();
  current.maps = {};
  for (const l of current.layers) current.maps[l.name] = decode(l);
  current.maps.input = decode(current.input.model_input);
  current.raw = decode(current.input.image);
  if (model.softmax_added) {
    const probs = Float32Array.from(Object.values(current.probabilities));
    current.maps.probabilities = { shape: [probs.length], min: 0, max: 1, values: probs };
  }
  shown = { sample: state.sample, upload: state.upload, uploadUrl: state.uploadUrl, generated: state.generated, invert: state.invert };
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
  updateOverlay();
  if (state.layer != null && current.maps[state.layer]) await doTrace();
  else { state.layer = null; clearDetail(); }
}

// ------------------------------------------------------------------ the overview
const MAX_COLUMN_HEIGHT = 560;
const expanded = new Set();
let channelCap = 16;
const cols = {};
let edgeCanvases = null;
function spatialLayout(name, c, h, w) {
  const shownCh = expanded.has(name) ? c : Math.min(c, channelCap);
  const target = c <= 8 ? 84 : c <= 32 ? 60 : 44;
  const s = Math.max(3, Math.min(10, Math.floor(target / Math.max(h, w))));
  const per = Math.max(1, Math.ceil(shownCh * (h + 1) * s / MAX_COLUMN_HEIGHT));
  return { shown: shownCh, s, per };
}

function drawOverview() {
  const box = $("overview"); box.textContent = "";
  for (const k of Object.keys(cols)) delete cols[k];
  const names = ["input", ...model.layers.map((l) => l.name)];
  if (model.softmax_added) names.push("probabilities");
  for (const name of names) {
    const info = name === "input" ? inputInfo() : name === "probabilities" ? probInfo() : layerOf(name);
    const m = current.maps[name];
    const col = m.shape.length === 3 ? makeSpatialColumn(info, m) : isClassVector(name) ? makeClassColumn(info, m) : makeVectorColumn(info, m);
    box.append(col.el); cols[name] = col;
  }
  // the two edge canvases are kept from one image to the next (allocating them is the slow part)
  const keep = edgeCanvases || (edgeCanvases = [el("canvas", { id: "edge-canvas", "aria-hidden": "true" }), el("canvas", { id: "edge-hi", "aria-hidden": "true" })]);
  box.append(...keep, svgEl("svg", { id: "arcs", "aria-hidden": "true" }));
  const t0 = performance.now();
  drawEdges();
  const t1 = performance.now();
  markSelection();
  (timings.overview = timings.overview || []).push({ edges: t1 - t0, marks: performance.now() - t1 });
}
function probInfo() {
  const last = model.layers[model.layers.length - 1];
  return { name: "probabilities", label: "probabilities", type: "Softmax", description: "softmax of the scores",
           inputs: [last.name], input_shape: last.output_shape, output_shape: [model.classes.length],
           arithmetic: ["e^s / sum e^s"], warnings: [] };
}
function head(info) {
  const text = lab(info.name);
  return el("div", { class: "head", title: info.name !== text ? `${text} (node ${info.name}): ${info.description || info.type}` : `${text}: ${info.description || info.type}` },
    el("span", { text }), el("span", { class: "type", text: info.type === "input" ? "image" : info.type }));
}
function footer(info) {
  const foot = el("div", { class: "foot" }, el("div", { text: info.output_shape.join("×") }));
  if (info.inputs && info.inputs.length && !(info.inputs.length === 1 && info.inputs[0] === prevName(info.name)))
    foot.append(el("div", { class: "inputs", text: "← " + info.inputs.map(lab).join(" + ") }));
  for (const a of info.arithmetic || []) foot.append(el("div", { class: "arith", text: a }));
  if ((info.warnings || []).length) foot.append(el("div", { class: "warn", title: info.warnings.join("; "), text: "⚠ " + info.warnings.join("; ") }));
  return foot;
}
function order() {
  const names = ["input", ...model.layers.map((l) => l.name)];
  if (model.softmax_added) names.push("probabilities");
  return names;
}
function prevName(name) { const o = order(), i = o.indexOf(name); return i <= 0 ? null : o[i - 1]; }

// the channels of a layer in one canvas (a grid of maps one value apart), drawn at s CSS px per value
function makeSpatialColumn(info, m) {
  const [c, h, w] = m.shape, name = info.name;
  const scale = layerScale(name);
  const { shown: n, s, per } = spatialLayout(name, c, h, w);
  const rows = Math.ceil(n / per);
  const W = per * (w + 1) - 1, H = rows * (h + 1) - 1;
  const canvas = el("canvas", { "data-layer": name, tabindex: "0", role: "img",
    "aria-label": `${lab(name)}: ${c} ${c === 1 ? "map" : "maps"} of ${h}×${w} (${info.type === "input" ? "the image" : info.description || info.type})` +
      `${n < c ? `, first ${n} shown` : ""}. Arrow keys move over the values, Page Up and Page Down change the channel.` });
  canvas.width = W; canvas.height = H;
  canvas.style.width = W * s + "px"; canvas.style.height = H * s + "px";
  const ctx = canvas.getContext("2d"), img = ctx.createImageData(W, H), d = img.data;
  d.fill(255);
  if (name === "input" && c === 3) {
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
      const i = 4 * (y * W + x);
      for (let k = 0; k < 3; k++) d[i + k] = 255 * current.raw.values[k * h * w + y * w + x];
    }
  } else {
    for (let ch = 0; ch < n; ch++) {
      const ox = (ch % per) * (w + 1), oy = Math.floor(ch / per) * (h + 1), base = ch * h * w;
      for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
        const [r, g, b] = scale.f(m.values[base + y * w + x]), i = 4 * ((oy + y) * W + ox + x);
        d[i] = r; d[i + 1] = g; d[i + 2] = b;
      }
    }
  }
  ctx.putImageData(img, 0, 0);
  const grid = { c: name === "input" && c === 3 ? 1 : c, shown: name === "input" && c === 3 ? 1 : n, h, w, per, W, H, s };
  const at = (ev) => {
    const r = canvas.getBoundingClientRect();
    const px = Math.floor((ev.clientX - r.left) / r.width * W), py = Math.floor((ev.clientY - r.top) / r.height * H);
    const col = Math.floor(px / (w + 1)), row = Math.floor(py / (h + 1)), x = px % (w + 1), y = py % (h + 1);
    const ch = row * per + col;
    return x < w && y < h && ch < grid.shown && col < per ? [ch, y, x] : null;
  };
  if (name !== "input") canvas.addEventListener("click", (ev) => { const p = at(ev); if (p) select(name, ...p); });
  canvas.addEventListener("mousemove", (ev) => { const p = at(ev); if (p) hover(name, ...p, ev); else unhover(); });
  canvas.addEventListener("mouseleave", unhover);
  canvas.addEventListener("keydown", (ev) => mapKey(ev, name, grid));
  const overlay = el("canvas", { class: "overlay rf-layer", "aria-hidden": "true" });
  const wrap = el("div", { class: "map-wrap grid", "data-layer": name }, canvas, overlay);
  wrap.grid = grid;
  const colEl = el("div", { class: "column", "data-layer": name }, head(info), legend(scale), wrap);
  if (n < c || expanded.has(name)) {
    colEl.append(el("button", { type: "button", class: "more", text: expanded.has(name) ? `show ${Math.min(c, channelCap)}` : `all ${c} channels`,
      onclick: () => { if (expanded.has(name)) expanded.delete(name); else expanded.add(name); drawOverview(); } }));
  }
  colEl.append(footer(info));
  colEl.style.width = Math.max(96, W * s + 8) + "px";
  return { el: colEl, kind: "spatial", canvas, wrap, grid, name };
}

// a long vector: cells 10 px wide and 6 px tall in columns of at most 64
const MAX_EDGE_LINES = 1500;
const VEC_ROWS = 64, CELL_W = 10, CELL_H = 6, CELL_GAP = 1;
function makeVectorColumn(info, m) {
  const n = m.values.length, name = info.name, scale = layerScale(name);
  const rows = Math.min(n, VEC_ROWS), ncol = Math.ceil(n / rows);
  const canvas = el("canvas", { class: "vec-canvas", "data-layer": name, tabindex: "0", role: "img",
    "aria-label": `${lab(name)}: a vector of ${n} values (${info.description || info.type}). Arrow keys move over the values.` });
  canvas.width = ncol * (CELL_W + CELL_GAP) - CELL_GAP; canvas.height = rows * (CELL_H + CELL_GAP) - CELL_GAP;
  canvas.style.width = canvas.width + "px"; canvas.style.height = canvas.height + "px";
  const ctx = canvas.getContext("2d");
  for (let i = 0; i < n; i++) {
    const [r, g, b] = scale.f(m.values[i]);
    ctx.fillStyle = `rgb(${r},${g},${b})`;
    ctx.fillRect(Math.floor(i / rows) * (CELL_W + CELL_GAP), (i % rows) * (CELL_H + CELL_GAP), CELL_W, CELL_H);
  }
  ctx.strokeStyle = "#bbb"; ctx.strokeRect(0.5, 0.5, canvas.width - 1, canvas.height - 1);
  const grid = { n, rows, vector: true };
  const at = (ev) => {
    const r = canvas.getBoundingClientRect();
    const i = Math.floor((ev.clientX - r.left) / (CELL_W + CELL_GAP)) * rows + Math.floor((ev.clientY - r.top) / (CELL_H + CELL_GAP));
    return i >= 0 && i < n ? i : null;
  };
  canvas.addEventListener("click", (ev) => { const i = at(ev); if (i != null) select(name, i, 0, 0); });
  canvas.addEventListener("mousemove", (ev) => { const i = at(ev); if (i != null) hover(name, i, 0, 0, ev); else unhover(); });
  canvas.addEventListener("mouseleave", unhover);
  canvas.addEventListener("keydown", (ev) => mapKey(ev, name, grid));
  const wrap = el("div", { class: "map-wrap vec", "data-layer": name }, canvas);
  wrap.grid = grid;
  const colEl = el("div", { class: "column", "data-layer": name }, head(info), legend(scale), wrap, footer(info));
  colEl.style.width = Math.max(96, canvas.width + 8) + "px";
  return { el: colEl, kind: "vector", canvas, wrap, grid, name };
}
// the class scores and probabilities: one labelled row per class
function makeClassColumn(info, m) {
  const name = info.name, scale = layerScale(name), n = m.values.length;
  const isProb = name === "probabilities" || info.type === "Softmax";
  const list = el("div", { class: "classvec", role: "group", "aria-label": `${lab(name)}: ${isProb ? "probability" : "score"} of every class` });
  const rows = [];
  for (let i = 0; i < n; i++) {
    const v = m.values[i], [r, g, b] = scale.f(v);
    const cell = el("span", { class: "cell" }); cell.style.background = `rgb(${r},${g},${b})`;
    const btn = el("button", { type: "button", "data-index": i, title: `${lab(name)}[${i}] (class ${model.classes[i]}) = ${fmt(v)}`,
      onclick: () => select(name, i, 0, 0), onmouseenter: (ev) => hover(name, i, 0, 0, ev), onmouseleave: unhover,
      onfocus: () => hover(name, i, 0, 0, null), onblur: unhover },
      cell, el("span", { class: "cname", text: model.classes[i] }),
      el("span", { class: "cval", text: isProb ? (100 * v).toFixed(1) + "%" : fmt(v) }));
    btn.addEventListener("keydown", (ev) => {
      const d = { ArrowDown: 1, ArrowUp: -1 }[ev.key];
      if (d) { ev.preventDefault(); ev.stopPropagation(); const j = (i + d + n) % n; rows[j].focus(); select(name, j, 0, 0); }
    });
    rows.push(btn); list.append(btn);
  }
  const wrap = el("div", { class: "map-wrap cls", "data-layer": name }, list);
  wrap.grid = { n, classRows: rows };
  const colEl = el("div", { class: "column", "data-layer": name }, head(info), legend(scale), wrap,
    el("div", { class: "foot", text: isProb ? "probabilities" : "class scores" }), footer(info));
  return { el: colEl, kind: "class", wrap, grid: wrap.grid, name, rows };
}

// ------------------------------------------------------------------ geometry of the drawn values
function overviewBase() { return $("overview").getBoundingClientRect(); }
// anchor k of a column: the left/right x and the middle y of channel k's map (or vector cell k)
function anchor(col, k, base) {
  // positions relative to the overview, measured once per drawing (scrolling does not change them)
  if (col.kind === "class") {
    const b = col.rows[k]; if (!b) return null;
    col.cells = col.cells || [];
    if (!col.cells[k]) {
      const r = b.querySelector(".cell").getBoundingClientRect(), list = b.parentElement.getBoundingClientRect();
      // lines leave after the class names and values, and arrive at the coloured cell
      col.cells[k] = { l: r.left - base.left, r: r.right - base.left, L: r.left - base.left, R: list.right - base.left + 2, y: r.top - base.top + r.height / 2 };
    }
    return col.cells[k];
  }
  if (!col.rel) {
    const r = col.canvas.getBoundingClientRect();
    col.rel = { left: r.left - base.left, top: r.top - base.top, width: r.width, height: r.height };
  }
  const r = col.rel, g = col.grid;
  if (col.kind === "spatial") {
    if (k >= g.shown) return null;
    const row = Math.floor(k / g.per), s = r.height / g.H, c = k % g.per;
    const y = r.top + (row * (g.h + 1) + g.h / 2) * s;
    return { l: r.left + c * (g.w + 1) * s, r: r.left + (c * (g.w + 1) + g.w) * s, L: r.left, R: r.left + r.width, y };
  }
  if (k >= g.n) return null;
  const c = Math.floor(k / g.rows), y = r.top + (k % g.rows) * (CELL_H + CELL_GAP) + CELL_H / 2;
  const l = r.left + c * (CELL_W + CELL_GAP);
  return { l, r: l + CELL_W, L: r.left, R: r.left + r.width, y };
}
function anchorCount(col) { return col.kind === "spatial" ? col.grid.shown : col.grid.n; }
// the pairs (input index, output index) joining a column to its input src (the k-th input)
function edgePairs(name, k, only) {
  const info = name === "probabilities" ? probInfo() : layerOf(name);
  const src = cols[info.inputs[k]], dst = cols[name], pairs = [];
  const outs = only != null ? [only] : range(0, anchorCount(dst));
  for (const o of outs) for (const i of inputChannels(info, k, o)) if (i < anchorCount(src)) pairs.push([i, o]);
  return pairs;
}
function sameRow(a, b) { return Math.abs(a.el.offsetTop - b.el.offsetTop) < 4 && b.el.offsetLeft > a.el.offsetLeft; }

function drawEdges() {
  const box = $("overview"), base = overviewBase();
  const W = box.scrollWidth, H = box.scrollHeight;
  const cv = $("edge-canvas"), hi = $("edge-hi"), arcs = $("arcs");
  for (const c of [cv, hi]) {
    if (c.width !== W || c.height !== H) { c.width = W; c.height = H; c.style.width = W + "px"; c.style.height = H + "px"; }
    else c.getContext("2d").clearRect(0, 0, W, H);
  }
  arcs.setAttribute("width", W); arcs.setAttribute("height", H);
  const defs = svgEl("defs"); defs.append(marker("arrow", "#7b1fa2")); arcs.append(defs);
  const ctx = cv.getContext("2d");
  let drawn = 0, nArcs = 0;
  const names = order();
  for (const name of names.slice(1)) {
    const info = name === "probabilities" ? probInfo() : layerOf(name), dst = cols[name];
    info.inputs.forEach((srcName, k) => {
      const src = cols[srcName];
      if (!src || !dst) return;
      if (srcName !== prevName(name)) { drawArc(arcs, src, dst, srcName, name); nArcs++; return; }
      if (!sameRow(src, dst)) { drawnStub(ctx, src, dst, base); return; }
      const pairs = edgePairs(name, k);
      if (pairs.length > MAX_EDGE_LINES) {   // every value to every unit: one band (the lines appear on hover)
        const a0 = anchor(src, 0, base), a1 = anchor(src, anchorCount(src) - 1, base);
        const b0 = anchor(dst, 0, base), b1 = anchor(dst, anchorCount(dst) - 1, base);
        const top = (c) => c.rel ? c.rel.top : a0.y, bot = (c) => c.rel ? c.rel.top + c.rel.height : a1.y;
        ctx.fillStyle = "rgba(120,144,156,0.22)";
        ctx.beginPath(); ctx.moveTo(a0.R, top(src)); ctx.lineTo(b0.L, top(dst)); ctx.lineTo(b1.L, bot(dst)); ctx.lineTo(a1.R, bot(src)); ctx.closePath(); ctx.fill();
        ctx.strokeStyle = "rgba(120,144,156,0.5)"; ctx.stroke();
        drawn += pairs.length;
        return;
      }
      ctx.beginPath();
      ctx.strokeStyle = "#90a4ae";
      ctx.globalAlpha = Math.max(0.04, Math.min(0.6, 24 / Math.sqrt(pairs.length + 1) / 4));
      for (const [i, o] of pairs) {
        const a = anchor(src, i, base), b = anchor(dst, o, base);
        if (!a || !b) continue;
        ctx.moveTo(a.R, a.y); ctx.lineTo(b.L, b.y); drawn++;
      }
      ctx.stroke();
      ctx.globalAlpha = 1;
    });
  }
  edgeStats.drawn = drawn; edgeStats.arcs = nArcs; edgeStats.highlighted = 0;
}
function marker(id, colour) {
  const m = svgEl("marker", { id, viewBox: "0 0 10 10", refX: "9", refY: "5", markerWidth: "7", markerHeight: "7", orient: "auto-start-reverse" });
  m.append(svgEl("path", { d: "M0,0 L10,5 L0,10 z", fill: colour }));
  return m;
}
function colBox(col, base) {
  const r = col.el.getBoundingClientRect();
  return { l: r.left - base.left, r: r.right - base.left, t: r.top - base.top, b: r.bottom - base.top, cx: (r.left + r.right) / 2 - base.left };
}
// a residual or concat connection from a column further back: an arc above the row, with an arrowhead
function drawArc(svg, src, dst, srcName, dstName) {
  const base = overviewBase(), a = colBox(src, base), b = colBox(dst, base);
  let d;
  if (Math.abs(a.t - b.t) < 4) {
    const lift = Math.min(34, 14 + (b.cx - a.cx) / 20);
    d = `M${a.cx},${a.t} C${a.cx},${a.t - lift} ${b.cx},${b.t - lift} ${b.cx},${b.t - 1}`;
  } else if (rowBelow(src, dst)) {   // into the next row: down into the gap between the rows, across, down
    const gap = b.t - 24, r = 10, dir = b.cx > a.cx ? 1 : -1;
    d = `M${a.cx},${a.b} V${gap - r} Q${a.cx},${gap} ${a.cx + dir * r},${gap} H${b.cx - dir * r} Q${b.cx},${gap} ${b.cx},${gap + r} V${b.t - 1}`;
  } else {   // rows further down: along the gap under the source's row, the left margin, the gap above the target
    const tops = [...new Set(Object.values(cols).map((c) => c.el.offsetTop))].sort((x, y) => x - y);
    const next = tops.find((t) => t > src.el.offsetTop) - 24 - (src.el.offsetTop - a.t), gapB = b.t - 24, m = 12;
    d = `M${a.cx},${a.b} V${next} H${m} V${gapB} H${b.cx} V${b.t - 1}`;
  }
  const p = svgEl("path", { d, "marker-end": "url(#arrow)", "data-from": srcName, "data-to": dstName });
  svg.append(p);
}
// is dst in the row right below src's row (no other row between them)?
function rowBelow(src, dst) {
  const tops = [...new Set(Object.values(cols).map((c) => c.el.offsetTop))].sort((x, y) => x - y);
  return tops.indexOf(dst.el.offsetTop) === tops.indexOf(src.el.offsetTop) + 1;
}
function drawnStub(ctx, src, dst, base, colour = "#78909c") {
  // consecutive layers in two rows: an arrow out of the first and into the second
  const a = colBox(src, base), b = colBox(dst, base), ya = (a.t + a.b) / 2, yb = (b.t + b.b) / 2;
  ctx.strokeStyle = colour; ctx.fillStyle = colour; ctx.lineWidth = Math.max(2, ctx.lineWidth);
  ctx.beginPath(); ctx.moveTo(a.r + 2, ya); ctx.lineTo(a.r + 22, ya); ctx.stroke();
  ctx.beginPath(); ctx.moveTo(b.l - 22, yb); ctx.lineTo(b.l - 6, yb); ctx.stroke();
  for (const [x, y] of [[a.r + 28, ya], [b.l - 1, yb]]) { ctx.beginPath(); ctx.moveTo(x, y); ctx.lineTo(x - 7, y - 5); ctx.lineTo(x - 7, y + 5); ctx.fill(); }
  ctx.lineWidth = 1;
}
// the edges into value `ch` of layer `name`, drawn strongly on the highlight canvas
function highlightEdges(name, ch, colour = "#7b1fa2") {
  const hi = $("edge-hi"); if (!hi) return 0;
  const ctx = hi.getContext("2d");
  ctx.clearRect(0, 0, hi.width, hi.height);
  document.querySelectorAll("#arcs path.hi").forEach((p) => p.classList.remove("hi"));
  if (name == null || name === "input") { edgeStats.highlighted = 0; return 0; }
  const info = name === "probabilities" ? probInfo() : layerOf(name), dst = cols[name], base = overviewBase();
  let n = 0;
  ctx.strokeStyle = colour; ctx.lineWidth = 1.5; ctx.globalAlpha = 0.85;
  info.inputs.forEach((srcName, k) => {
    const src = cols[srcName];
    if (!src || !dst) return;
    if (srcName !== prevName(name)) {
      document.querySelectorAll(`#arcs path[data-to="${CSS.escape(name)}"]`).forEach((p) => { p.classList.add("hi"); n++; });
      return;
    }
    const pairs = edgePairs(name, k, ch);
    if (!sameRow(src, dst)) {   // the two layers are in different rows: their arrows light up
      ctx.save(); ctx.globalAlpha = 1; ctx.lineWidth = 3;
      drawnStub(ctx, src, dst, base, colour);
      ctx.restore();
      n += pairs.length;
      return;
    }
    ctx.globalAlpha = pairs.length > 200 ? 0.35 : 0.85;
    ctx.beginPath();
    for (const [i, o] of pairs) {
      const a = anchor(src, i, base), b = anchor(dst, o, base);
      if (!a || !b) continue;
      ctx.moveTo(a.R, a.y); ctx.lineTo(b.L, b.y); n++;
    }
    ctx.stroke();
  });
  ctx.globalAlpha = 1;
  edgeStats.highlighted = n;
  return n;
}

// ------------------------------------------------------------------ hover: the receptive field and the inputs
let hovering = null;
function valueAt(name, ch, y, x) {
  const m = current.maps[name];
  if (!m) return null;
  if (m.shape.length === 3) return m.values[(ch * m.shape[1] + y) * m.shape[2] + x];
  return m.values[ch];
}
function describeValue(name, ch, y, x) {
  const m = current.maps[name], v = valueAt(name, ch, y, x);
  if (m.shape.length === 3) {
    let text = `${lab(name)} channel ${ch} (${y}, ${x}) = ${fmt(v)}`;
    if (name !== "input") {
      const rf = receptiveField(name, y, x).input;
      if (rf) text += `; receptive field in the input: rows ${rf[0]}-${rf[1]}, columns ${rf[2]}-${rf[3]} (${rf[1] - rf[0] + 1}×${rf[3] - rf[2] + 1})`;
      const info = layerOf(name);
      text += `; inputs: ${info.inputs.map(lab).join(", ")}`;
    }
    return text;
  }
  const cls = isClassVector(name) ? ` (class ${model.classes[ch]})` : "";
  return `${lab(name)}[${ch}]${cls} = ${name === "probabilities" ? (100 * v).toFixed(2) + "%" : fmt(v)}; inputs: ${(name === "probabilities" ? probInfo() : layerOf(name)).inputs.map(lab).join(", ")}`;
}
// mouse moves come faster than frames: draw the latest one per frame
let hoverPending = null;
function hover(name, ch, y, x, ev) {
  const same = hovering && hovering.name === name && hovering.ch === ch && hovering.y === y && hovering.x === x;
  if (same && ev) { placeTip(ev); return; }
  if (!ev) { hoverNow(name, ch, y, x, null); return; }
  const first = !hoverPending;
  hoverPending = [name, ch, y, x, { clientX: ev.clientX, clientY: ev.clientY }];
  if (first) requestAnimationFrame(() => { const a = hoverPending; hoverPending = null; if (a) hoverNow(...a); });
}
function placeTip(ev) {
  const tip = $("tip"); if (!tip) return;
  tip.style.left = Math.min(window.innerWidth - 350, ev.clientX + 14) + "px"; tip.style.top = (ev.clientY + 16) + "px";
}
function hoverNow(name, ch, y, x, ev) {
  hovering = { name, ch, y, x };
  const text = describeValue(name, ch, y, x);
  $("hover-info").textContent = text;
  let tip = $("tip");
  if (ev) {
    if (!tip) { tip = el("div", { id: "tip", "aria-hidden": "true" }); document.body.append(tip); }
    tip.textContent = text; tip.hidden = false;
    placeTip(ev);
  }
  marks(name, ch, y, x, "hover", true);
  highlightEdges(name, ch);
}
function unhover() {
  hoverPending = null;
  if (!hovering) return;
  hovering = null;
  const tip = $("tip"); if (tip) tip.hidden = true;
  document.querySelectorAll("#overview .box.hover").forEach((b) => b.remove());
  document.querySelectorAll(".classvec button.hov").forEach((b) => b.classList.remove("hov"));
  markSelection();
}

// boxes on the overview for the value (name, ch, y, x): the value itself, its window on its direct inputs,
// and (shaded) its receptive field on every earlier map
function marks(name, ch, y, x, cls, rf) {
  document.querySelectorAll(`#overview .box.${cls}`).forEach((b) => b.remove());
  document.querySelectorAll(`.classvec button.${cls === "sel" ? "sel" : "hov"}`).forEach((b) => b.classList.remove(cls === "sel" ? "sel" : "hov"));
  const col = cols[name];
  if (!col) return;
  const m = current.maps[name];
  if (m.shape.length === 3) {
    if (ch < col.grid.shown) gridBox(col.wrap, cls, ch, y, y, x, x);
    const boxes = receptiveField(name, y, x);
    for (const wrap of document.querySelectorAll("#overview .map-wrap.grid")) gridShade(wrap, null);
    if (rf) for (const [src, b] of Object.entries(boxes)) if (src !== name && cols[src] && cols[src].kind === "spatial") gridShade(cols[src].wrap, b);
    const info = name === "input" ? inputInfo() : layerOf(name);
    info.inputs.forEach((src, k) => {
      const sc = cols[src]; if (!sc || sc.kind !== "spatial" || !boxes[src]) return;
      const b = boxes[src];
      for (const i of inputChannels(info, k, ch)) if (i < sc.grid.shown) gridBox(sc.wrap, cls === "sel" ? "win" : cls, i, b[0], b[1], b[2], b[3]);
    });
    if (cls === "sel" && rf && boxes.input) addBox($("input-view"), "rf", boxes.input[0], boxes.input[1], boxes.input[2], boxes.input[3], model.input_shape[1], model.input_shape[2]);
  } else if (col.kind === "class") {
    col.rows[ch] && col.rows[ch].classList.add(cls === "sel" ? "sel" : "hov");
  } else if (col.kind === "vector") {
    const r = col.grid.rows, c = Math.floor(ch / r);
    const b = el("div", { class: "box " + cls });
    b.style.left = c * (CELL_W + CELL_GAP) - 1 + "px"; b.style.top = (ch % r) * (CELL_H + CELL_GAP) - 1 + "px";
    b.style.width = CELL_W + 2 + "px"; b.style.height = CELL_H + 2 + "px";
    col.wrap.append(b);
  }
  // the input map(s) that feed a vector value (flatten, global pooling)
  if (m.shape.length !== 3) {
    const info = name === "probabilities" ? probInfo() : layerOf(name);
    info.inputs.forEach((src, k) => {
      const sc = cols[src]; if (!sc || sc.kind !== "spatial") return;
      const chans = inputChannels(info, k, ch);
      if (chans.length <= 4) for (const i of chans) if (i < sc.grid.shown) gridBox(sc.wrap, cls === "sel" ? "win" : cls, i, 0, sc.grid.h - 1, 0, sc.grid.w - 1);
    });
  }
}
function markSelection() {
  document.querySelectorAll("#overview .box, #input-view .box").forEach((b) => b.remove());
  document.querySelectorAll(".classvec button.sel, .classvec button.hov").forEach((b) => b.classList.remove("sel", "hov"));
  document.querySelectorAll("#overview .map-wrap.grid").forEach((wrap) => gridShade(wrap, null));
  if (state.layer == null || !current || !cols[state.layer]) { highlightEdges(null); return; }
  marks(state.layer, state.channel, state.y, state.x, "sel", $("show-rf").checked);
  highlightEdges(state.layer, state.channel, "#d32f2f");
}
// a box around rows y0-y1, columns x0-x1 of channel ch in a layer's grid canvas (clipped to that map)
function gridBox(wrap, cls, ch, y0, y1, x0, x1) {
  const g = wrap.grid;
  const oy = Math.floor(ch / g.per) * (g.h + 1), ox = (ch % g.per) * (g.w + 1);
  const c = (v, n) => Math.max(0, Math.min(n - 1, v));
  return addBox(wrap, cls, oy + c(y0, g.h), oy + c(y1, g.h), ox + c(x0, g.w), ox + c(x1, g.w), g.H, g.W);
}
function gridShade(wrap, b) {
  // the receptive field on every shown channel of a layer, drawn on the layer's overlay canvas
  const g = wrap.grid, ov = wrap.querySelector("canvas.rf-layer");
  if (!ov || (!b && !ov.dataset.used)) return;   // nothing drawn on it yet: nothing to clear
  ov.dataset.used = "1";
  const cw = g.W * g.s, chh = g.H * g.s;
  if (ov.width !== cw) { ov.width = cw; ov.style.width = cw + "px"; }
  if (ov.height !== chh) { ov.height = chh; ov.style.height = chh + "px"; }
  const ctx = ov.getContext("2d"), s = g.s;
  ctx.clearRect(0, 0, ov.width, ov.height);
  if (!b) return;
  ctx.fillStyle = "rgba(0,137,123,0.18)"; ctx.strokeStyle = "rgba(0,137,123,0.9)"; ctx.setLineDash([3, 2]);
  for (let k = 0; k < g.shown; k++) {
    const oy = Math.floor(k / g.per) * (g.h + 1), ox = (k % g.per) * (g.w + 1);
    const x = (ox + b[2]) * s, y = (oy + b[0]) * s, w = (b[3] - b[2] + 1) * s, h = (b[1] - b[0] + 1) * s;
    ctx.fillRect(x, y, w, h); ctx.strokeRect(x + 0.5, y + 0.5, w - 1, h - 1);
  }
}

// ------------------------------------------------------------------ keyboard on a map
function mapKey(ev, name, grid) {
  const moves = { ArrowLeft: [0, -1], ArrowRight: [0, 1], ArrowUp: [-1, 0], ArrowDown: [1, 0] };
  const chMove = { PageUp: -1, PageDown: 1 }[ev.key];
  if (!moves[ev.key] && !chMove && ev.key !== "Enter" && ev.key !== " ") return;
  ev.preventDefault(); ev.stopPropagation();
  if (name === "input") {   // the image itself: nothing is computed, show the value only
    const m = current.maps.input, [, h, w] = m.shape;
    const p = hovering && hovering.name === "input" ? hovering : { ch: 0, y: 0, x: 0 };
    const [dy, dx] = moves[ev.key] || [0, 0];
    hover("input", p.ch, (p.y + dy + h) % h, (p.x + dx + w) % w, null);
    return;
  }
  if (state.layer !== name) { select(name, 0, 0, 0); return; }
  if (chMove) {
    const n = grid.vector ? grid.n : grid.shown;
    select(name, (state.channel + chMove + n) % n, state.y, state.x);
  } else if (moves[ev.key]) step(...moves[ev.key]);
  else doTrace();
}

// ------------------------------------------------------------------ prediction and input
function drawPrediction() {
  const box = $("prediction"); box.textContent = "";
  const entries = Object.entries(current.probabilities);
  const label = current.input.label ? ` (true class ${current.input.label})` : "";
  box.append(el("div", { class: "verdict" }, "prediction: ", el("b", { id: "predicted", text: current.prediction }),
    ` with ${(100 * current.probabilities[current.prediction]).toFixed(1)}%${label}`));
  const bars = el("div", { id: "prob-bars", role: "group", "aria-label": "probability of every class" });
  const target = model.softmax_added ? "probabilities" : model.layers[model.layers.length - 1].name;
  entries.forEach(([cls, p], i) => {
    const bar = el("div", { class: "prob-bar" }); bar.style.width = (100 * p).toFixed(2) + "%";
    bars.append(el("button", { type: "button", class: "prob-row" + (cls === current.prediction ? " best" : ""), "data-class": cls,
      title: `class ${cls}: ${(100 * p).toFixed(1)}%; click for the softmax arithmetic`,
      onclick: () => select(target, i, 0, 0) },
      el("span", { class: "label", text: cls }), el("span", { class: "track" }, bar),
      el("span", { class: "pct", text: (100 * p).toFixed(1) + "%" })));
  });
  box.append(bars);
}

function drawInput() {
  const view = $("input-view"); view.textContent = "";
  const m = current.raw, [c, h, w] = m.shape;
  const canvas = el("canvas", { id: "input-canvas", role: "img", "aria-label": `the image as the model sees it, ${h}×${w}` });
  if (c === 3) drawRgb(canvas, m); else drawMap(canvas, m.values, 0, h, w, scaleOf(0, 1, true));
  const overlay = el("canvas", { class: "overlay", id: "overlay-canvas", "aria-hidden": "true" });
  overlay.style.width = "112px"; overlay.style.height = "112px";
  view.append(canvas, overlay);
  $("preprocess-steps").textContent = "";
  const src = (state.generated ? "generated sample (no test images with this model): " : "") + current.input.source +
    (current.input.original_size ? ` (${current.input.original_size.join("x")} ${current.input.original_mode})` : "");
  $("preprocess-steps").append(el("li", { text: src }));
  for (const s of current.input.steps) $("preprocess-steps").append(el("li", { text: s }));
  showWarnings(current.input.warnings);
  document.querySelectorAll("#samples button").forEach((b) => b.classList.toggle("current", !state.upload && +b.dataset.index === state.sample));
}
function showWarnings(list) {
  const box = $("warnings"); box.textContent = "";
  for (const w of list) box.append(el("div", { class: "warning", text: "⚠ " + w }));
}

// ------------------------------------------------------------------ clicking a value: the trace
function select(layer, channel, y, x) {
  stopPlay(false);
  state.layer = layer; state.channel = channel; state.y = y; state.x = x;
  writeUrl(); markSelection(); doTrace();
  if (current && current.maps[layer]) $("hover-info").textContent = describeValue(layer, channel, y, x);   // read out
  const d = $("detail"), r = d.getBoundingClientRect();
  if (r.top > window.innerHeight - 120 || r.bottom < 80) d.scrollIntoView({ block: "start" });
}
let traceSeq = 0;
async function doTrace() {
  const seq = ++traceSeq, t0 = performance.now();
  let t;
  try {
    t = await json(imageRequest("/api/trace", { layer: state.layer, channel: state.channel, y: state.y, x: state.x }));
  } catch (err) { if (seq === traceSeq) { status("error: " + err.message); $("detail-body").textContent = "error: " + err.message; } return; }
  if (seq !== traceSeq) return;
  trace = t;
  drawDetail(); markSelection();
  window.__explore.traced = { layer: t.layer, channel: t.channel, y: t.y, x: t.x, n: timings.trace.length + 1 };
  const ms = performance.now() - t0;
  timings.trace.push(ms);
  status(`value traced in ${ms.toFixed(0)} ms`);
}
function clearDetail() {
  trace = null;
  $("detail-title").textContent = "How a value is computed";
  $("teach").textContent = "";
  $("detail-body").textContent = "";
  $("detail-body").append(el("p", { class: "hint", text: "Click any value of any layer (or Tab to a map and press an arrow key): this panel writes out the arithmetic that produced it." }));
  markSelection();
}

function grid(rows, opts = {}) {
  const t = el("table", { class: "grid" });
  if (opts.caption) t.append(el("caption", { class: "cap", text: opts.caption }));
  rows.forEach((row, i) => {
    const tr = el("tr");
    row.forEach((v, j) => {
      const td = el("td", { text: v == null ? "pad" : fmt(v) });
      if (v == null) td.className = "pad";
      if (opts.pick && opts.pick[0] === i && opts.pick[1] === j) td.classList.add("pick");
      if (opts.scale && v != null) {
        const [r, g, b] = opts.scale.f(v);
        td.style.background = `rgb(${r},${g},${b})`;
        td.style.color = textOn(r, g, b);
      }
      tr.append(td);
    });
    t.append(tr);
  });
  return t;
}
function titleOf(t) {
  const spatial = current.maps[t.layer] && current.maps[t.layer].shape.length === 3;
  const pos = spatial ? `channel ${t.channel}, position (${t.y}, ${t.x})` :
    isClassVector(t.layer) ? `class ${model.classes[t.channel]}` : `value ${t.channel}`;
  const name = lab(t.layer) + (lab(t.layer) !== t.layer ? ` (node ${t.layer})` : "");
  return `${name}: ${t.type}, ${pos}`;
}

function drawDetail() {
  const t = trace, body = $("detail-body");
  $("detail-title").textContent = titleOf(t);
  const info = t.layer === "probabilities" ? probInfo() : layerOf(t.layer);
  teachInto($("teach"), info, t);
  body.textContent = "";
  body.append(bigMaps(t.layer, t.channel, t.y, t.x));
  const left = el("div", { class: "block" });
  if (t.formula) left.append(el("div", {}, el("b", { text: "rule: " }), t.formula));
  if (t.sizes) left.append(el("div", { class: "hint", text: "output size: " + t.sizes.join("; ") }));
  if (t.type === "Conv2d" && t.kernel) {
    const grids = el("div", { class: "grids scroll", tabindex: "0", role: "region", "aria-label": "windows and kernels" });
    const wH = t.window.height, wW = t.window.width, nShown = Math.min(t.kernel.length, 64);
    const srcName = (t.inputs || [])[0], sm = current.maps[srcName];
    const inScale = sm ? layerScale(srcName) : null;
    for (let ci = 0; ci < nShown; ci++) {
      const win = [], ker = t.kernel[ci];
      for (let i = 0; i < wH; i++) { const row = []; for (let j = 0; j < wW; j++) { const term = t.terms[ci * wH * wW + i * wW + j]; row.push(term && !term.padding ? term.input : term ? 0 : null); } win.push(row); }
      const kmax = Math.max(...ker.flat().map(Math.abs)) || 1;
      grids.append(el("div", {}, el("div", { class: "cap", text: `${lab(srcName)} channel ${t.window.channels[0] + ci}: window` }), grid(win, { scale: inScale })),
                   el("div", {}, el("div", { class: "cap", text: "× kernel (weights)" }), grid(ker, { scale: scaleOf(-kmax, kmax, false) })));
    }
    left.append(grids);
    if (t.kernel.length > nShown) left.append(el("div", { class: "hint", text: `... and ${t.kernel.length - nShown} more input channels (all in the sum below)` }));
  } else if (t.terms && t.terms.length && t.terms[0].y !== undefined && t.window) {
    const wH = t.window.height, wW = t.window.width, rows = [];
    for (let i = 0; i < wH; i++) rows.push(t.terms.slice(i * wW, (i + 1) * wW).map((u) => u.input));
    let pick = null;
    if (t.picked) pick = [t.picked[0] - t.window.y0, t.picked[1] - t.window.x0];
    if (wH * wW <= 400) left.append(el("div", { class: "cap", text: `window on ${lab((t.inputs || [])[0])}` }), grid(rows, { pick }));
  } else if (t.type === "Linear" && t.terms) {
    const src = (t.inputs || [])[0];
    const tbl = el("table", { class: "grid" }, el("tr", {}, el("th", { text: `${lab(src)} #` }), el("th", { text: "input" }), el("th", { text: "weight" }), el("th", { text: "product" })));
    for (const u of t.terms) tbl.append(el("tr", {}, el("td", { text: u.index }), el("td", { text: fmt(u.input) }), el("td", { text: fmt(u.weight) }), el("td", { text: fmt(u.product) })));
    left.append(el("div", { class: "cap", text: "largest contributions" }), tbl);
    if (t.rest && t.rest.count) left.append(el("div", { class: "hint", text: `the other ${t.rest.count} inputs add up to ${fmt(t.rest.sum)}` }));
  } else if (t.terms && t.terms.length && t.terms[0].input !== undefined && t.terms[0].value !== undefined && info.inputs.length > 1) {
    const tbl = el("table", { class: "grid" }, el("tr", {}, el("th", { text: "input" }), el("th", { text: "value" })));
    for (const u of t.terms) tbl.append(el("tr", {}, el("td", { text: lab(info.inputs[u.input] || String(u.input)) }), el("td", { text: fmt(u.value) })));
    left.append(el("div", { class: "cap", text: "the inputs at this position" }), tbl);
  }
  if (t.terms && t.terms.length && t.terms[0].class !== undefined) {
    const tbl = el("table", { class: "grid", id: "softmax-table" }, el("tr", {}, el("th", { text: "class" }), el("th", { text: "score s" }), el("th", { text: "e^s" }), el("th", { text: "probability" })));
    t.terms.forEach((u, i) => {
      const tr = el("tr", {}, el("th", { text: u.class }), el("td", { text: fmt(u.score) }), el("td", { text: fmt(u.exp) }), el("td", { text: (100 * u.probability).toFixed(2) + "%" }));
      if (i === t.channel) tr.className = "pickrow", tr.style.background = "#fff3e0";
      tbl.append(tr);
    });
    left.append(el("div", { class: "cap", text: "every class: its score, its exponential and its probability" }), tbl);
  }
  if (t.exponentials) {
    const named = t.exponentials.length === model.classes.length ? t.exponentials.map((e, i) => `${model.classes[i]}: ${e}`) : t.exponentials;
    left.append(el("div", { class: "cap", text: "exponentials, class by class" }), el("div", { class: "expr", tabindex: "0", text: named.join("\n") }),
                el("div", { class: "cap", text: "their sum" }), el("div", { class: "expr", tabindex: "0", text: t.sum }));
  }
  body.append(left);
  const right = el("div", { class: "block" });
  if (t.expression) right.append(el("div", { class: "cap", text: "written out" }), el("div", { class: "expr", id: "detail-expression", tabindex: "0", text: t.expression }));
  if (t.bias != null) right.append(el("div", { text: "bias: " + fmt(t.bias) }));
  right.append(el("div", { id: "detail-total", "data-value": String(t.value), text: `total = ${fmt(t.value)}` }),
               el("div", { class: "hint", text: `the engine's value: ${t.value}` + (t.total != null ? `; the float64 arithmetic above: ${t.total}` : "") }));
  for (const n of t.notes || []) right.append(el("div", { class: "hint", text: "note: " + n }));
  body.append(right);
}

// a channel drawn large (about 200 px), with boxes
function bigMap(name, ch, boxes, opts = {}) {
  const m = current.maps[name];
  const [c, h, w] = m.shape;
  const s = Math.max(3, Math.min(16, Math.floor((opts.size || 200) / Math.max(h, w))));
  const canvas = el("canvas", { role: "img", "aria-label": `${lab(name)}, channel ${ch}, drawn large (${h}×${w})` });
  canvas.style.width = w * s + "px"; canvas.style.height = h * s + "px";
  if (name === "input" && c === 3) drawRgb(canvas, current.raw);
  else drawMap(canvas, m.values, ch * h * w, h, w, layerScale(name));
  const wrap = el("div", { class: "map-wrap" }, canvas);
  const made = boxes.map(([cls, b]) => addBox(wrap, cls, b[0], b[1], b[2], b[3], h, w));
  const node = el("div", { class: "bigmap" }, wrap, el("div", { class: "cap", text: `${lab(name)}, channel ${ch}` }));
  node.canvas = canvas; node.boxes = made; node.s = s; node.mapName = name;
  return node;
}
// the layer's input with the window highlighted, and the output map with the value
function bigMaps(layer, ch, y, x) {
  const row = el("div", { class: "row bigmaps", id: "bigmaps" });
  const info = layer === "probabilities" ? probInfo() : layerOf(layer), out = current.maps[layer];
  if (!out || out.shape.length !== 3) return row;
  const boxes = receptiveField(layer, y, x);
  const src = info.inputs[0], sm = current.maps[src];
  row.inputs = [];
  if (info.inputs.length > 1 && /^(Add|Sub|Mul|Div)$/.test(info.type)) {   // a residual add: both inputs
    const op = { Add: "+", Sub: "−", Mul: "×", Div: "/" }[info.type];
    row.inputs = [];
    info.inputs.forEach((name, k) => {
      const im = current.maps[name];
      if (!im || im.shape.length !== 3) return;
      if (k) row.append(el("span", { class: "arrow", text: op, "aria-hidden": "true" }));
      const b = bigMap(name, Math.min(ch, im.shape[0] - 1), [["move", boxes[name] || [y, y, x, x]]], { size: 120 });
      row.inputs.push(b); row.append(b);
    });
    row.append(el("span", { class: "arrow", text: "=", "aria-hidden": "true" }));
    row.output = bigMap(layer, ch, [["sel move", [y, y, x, x]]], { size: 120 });
    row.append(row.output);
    return row;
  }
  if (src && sm && sm.shape.length === 3 && boxes[src]) {
    const chans = inputChannels(info, 0, ch), first = chans.slice(0, 2);
    for (const i of first) { const b = bigMap(src, i, [["move", boxes[src]]], { size: first.length > 1 ? 130 : 180 }); row.inputs.push(b); row.append(b); }
    if (chans.length > first.length) row.append(el("span", { class: "hint", text: `+ ${chans.length - first.length} more` }));
    row.append(el("span", { class: "arrow", text: "→", "aria-hidden": "true" }));
  }
  row.output = bigMap(layer, ch, [["sel move", [y, y, x, x]]], { size: 180 });
  row.append(row.output);
  return row;
}

function step(dy, dx) {
  if (state.layer == null) return;
  const m = current.maps[state.layer];
  if (!m) return;
  const [y, x, ch] = nextPos(m, state.y, state.x, state.channel, dy, dx);
  select(state.layer, ch, y, x);
}
function nextPos(m, y, x, ch, dy, dx) {
  if (m.shape.length === 3) {
    const [, h, w] = m.shape;
    x += dx; y += dy;
    if (x >= w) { x = 0; y += 1; } if (x < 0) { x = w - 1; y -= 1; }
    if (y >= h) y = 0; if (y < 0) y = h - 1;
    return [y, x, ch];
  }
  const n = m.shape[0];
  return [0, 0, (ch + dx + dy + n) % n];
}

// ------------------------------------------------------------------ play: the window slides, in the page
// The page already has every map; a convolution's weights come once from /api/kernels. No request per step.
const kernelCache = {};
async function togglePlay() {
  if (playing) { stopPlay(true); return; }
  if (state.layer == null || !current.maps[state.layer]) {
    const first = model.layers.find((l) => l.type === "Conv2d") || model.layers[0];
    state.layer = first.name; state.channel = 0; state.y = 0; state.x = 0;
  }
  const info = state.layer === "probabilities" ? probInfo() : layerOf(state.layer);
  let kernel = null;
  if (info.type === "Conv2d") {
    if (!kernelCache[info.name]) {
      try { kernelCache[info.name] = await json(fetch("/api/kernels?layer=" + encodeURIComponent(info.name))); kernelCache[info.name].w = decode(kernelCache[info.name].weight); }
      catch (err) { kernelCache[info.name] = null; }
    }
    kernel = kernelCache[info.name];
  }
  const m = current.maps[state.layer];
  $("detail-title").textContent = titleOf({ layer: state.layer, channel: state.channel, y: state.y, x: state.x, type: info.type });
  teachInto($("teach"), info, null);
  const body = $("detail-body"); body.textContent = "";
  const maps = bigMaps(state.layer, state.channel, state.y, state.x);
  const live = el("div", { class: "live", id: "play-live", "aria-live": "off", tabindex: "0", role: "region", "aria-label": "the window and the kernel at this position" });
  body.append(maps, live);
  const anim = { info, m, maps, live, kernel, frame: 0 };
  if (m.shape.length === 3) {   // the output fills in as the window slides
    const [, h, w] = m.shape, ctx = maps.output.canvas.getContext("2d");
    ctx.fillStyle = "#b0bec5"; ctx.fillRect(0, 0, w, h);
    anim.fill = (y, x) => {
      const [r, g, b] = layerScale(state.layer).f(valueAt(state.layer, state.channel, y, x));
      ctx.fillStyle = `rgb(${r},${g},${b})`; ctx.fillRect(x, y, 1, 1);
    };
    anim.clear = () => { ctx.fillStyle = "#b0bec5"; ctx.fillRect(0, 0, w, h); };
    for (let yy = 0; yy < state.y; yy++) for (let xx = 0; xx < w; xx++) anim.fill(yy, xx);
    for (let xx = 0; xx <= state.x; xx++) anim.fill(state.y, xx);
  }
  playing = anim;
  $("play").textContent = "❚❚ pause"; $("play").setAttribute("aria-pressed", "true");
  frame(anim, false);
  anim.timer = setInterval(() => frame(anim, true), 130);
}
function frame(anim, advance) {
  const m = anim.m;
  if (advance) {
    const [y, x, ch] = nextPos(m, state.y, state.x, state.channel, 0, 1);
    if (m.shape.length === 3 && y === 0 && x === 0 && anim.clear) anim.clear();
    state.y = y; state.x = x; state.channel = ch;
  }
  anim.frame++;
  if (anim.fill) anim.fill(state.y, state.x);
  const boxes = receptiveField(state.layer, state.y, state.x);
  const src = anim.info.inputs[0];
  if (m.shape.length === 3) {
    const [, h, w] = m.shape;
    for (const b of anim.maps.inputs || []) {
      const sm = current.maps[b.mapName];
      if (boxes[b.mapName]) placeBox(b.boxes[0], ...boxes[b.mapName], sm.shape[1], sm.shape[2]);
    }
    placeBox(anim.maps.output.boxes[0], state.y, state.y, state.x, state.x, h, w);
  }
  $("detail-title").textContent = titleOf({ layer: state.layer, channel: state.channel, y: state.y, x: state.x, type: anim.info.type });
  anim.live.textContent = liveText(anim, boxes);
  teachInto($("teach"), anim.info, { channel: state.channel, y: state.y, x: state.x });
  markSelection();
  writeUrl();
  window.__explore.frames = anim.frame;
}
function liveText(anim, boxes) {
  const info = anim.info, src = info.inputs[0], v = valueAt(state.layer, state.channel, state.y, state.x);
  const sm = current.maps[src];
  const out = `${lab(state.layer)}[${state.channel}](${state.y}, ${state.x}) = ${fmt(v)}`;
  if (!sm || sm.shape.length !== 3 || !boxes[src]) return out;
  let [y0, y1, x0, x1] = boxes[src];
  if (info.kernel_size && info.padding && slides(info)) {   // the whole window, padding included
    const [kh, kw] = info.kernel_size, [sh, sw] = info.stride, [dh, dw] = info.dilation || [1, 1];
    y0 = state.y * sh - info.padding[0][0]; y1 = y0 + dh * (kh - 1); x0 = state.x * sw - info.padding[1][0]; x1 = x0 + dw * (kw - 1);
  }
  const chans = inputChannels(info, 0, state.channel), ch0 = chans[0], [, h, w] = sm.shape, rows = [];
  for (let y = y0; y <= y1 && rows.length < 7; y++) {
    const r = [];
    for (let x = x0; x <= x1 && r.length < 7; x++)
      r.push((y < 0 || y >= h || x < 0 || x >= w ? "pad" : fmt(sm.values[(ch0 * h + y) * w + x])).padStart(8));
    rows.push(r.join(" "));
  }
  const padded = y0 < 0 || x0 < 0 || y1 >= h || x1 >= w;
  let text = `window of ${lab(src)} channel ${ch0}, rows ${y0} to ${y1}, columns ${x0} to ${x1}:\n${rows.join("\n")}\n` +
    (padded ? "(pad: a zero of the padding)\n" : "");
  if (info.type === "Conv2d" && anim.kernel && anim.kernel.w) {
    const k = anim.kernel.w, [, cpg, kh, kw] = k.shape, kr = [];
    const base = (state.channel * cpg) * kh * kw;
    for (let i = 0; i < Math.min(kh, 7); i++) { const r = []; for (let j = 0; j < Math.min(kw, 7); j++) r.push(fmt(k.values[base + i * kw + j]).padStart(8)); kr.push(r.join(" ")); }
    text += `× kernel ${state.channel}, input channel ${ch0}:\n${kr.join("\n")}\n`;
    text += `sum of the products over ${chans.length} input channel(s)${anim.kernel.bias ? " + bias " + fmt(anim.kernel.bias[state.channel]) : ""}\n`;
  } else if (/MaxPool/.test(info.type)) text += "the largest of the window\n";
  else if (/AvgPool/.test(info.type)) text += "the average of the window\n";
  return text + out;
}
function stopPlay(trace) {
  if (!playing) return;
  clearInterval(playing.timer); playing = null;
  $("play").textContent = "▶ play"; $("play").setAttribute("aria-pressed", "false");
  if (trace) doTrace();   // the exact arithmetic of the position where it stopped
}

// ------------------------------------------------------------------ teaching text, with the layer's own numbers
function teachInto(box, info, t) {
  box.textContent = "";
  for (const p of teach(info, t)) box.append(typeof p === "string" ? el("p", { text: p }) : p);
}
function formulaP(prefix, formula) { return el("p", {}, prefix, el("span", { class: "formula", text: formula })); }
function teach(info, t) {
  const type = info.type, ins = info.input_shape || [], out = info.output_shape || [];
  const pos = t || { channel: state.channel, y: state.y, x: state.x };
  const inName = (info.inputs || []).map(lab);
  const ps = [];
  const sizeOf = (s) => s.join("×");
  const axisFormula = () => {
    const [kh] = info.kernel_size, [sh] = info.stride, [dh] = info.dilation || [1];
    const [pt, pb] = info.padding ? info.padding[0] : [0, 0];
    const W = ins[1], keff = dh * (kh - 1) + 1;
    const P = pt === pb ? `2·${pt}` : `${pt}+${pb}`;
    return formulaP("Output size: ", `(W + 2P − K) / S + 1 = (${W} + ${P} − ${dh > 1 ? keff : kh}) / ${sh} + 1 = ${out[1]}` +
      ((W + pt + pb - keff) % sh ? " (rounded down)" : ""));
  };
  if (type === "Conv2d") {
    const [kh, kw] = info.kernel_size, [sh] = info.stride, g = info.groups || 1, cin = ins[0], cout = out[0];
    const [pt, pb] = info.padding ? info.padding[0] : [0, 0];
    ps.push(`A convolution slides small windows of weights, the kernels (or filters), over its input. ${lab(info.name)} has ${cout} filters of ${kh}×${kw}` +
      (g === 1 ? `, each reaching through all ${cin} input channel${cin > 1 ? "s" : ""}` : ` in ${g} groups, each reaching through ${cin / g} of the ${cin} input channels`) +
      `: at every position a filter multiplies each value under it by its weight, adds all the products${info.params > cout * kh * kw * (cin / g) ? " and its bias" : ""}, and the sum is one value of the output.`);
    ps.push(`Sliding one filter over every position gives one output map (a channel): ${cout} filters give ${cout} channels of ${out[1]}×${out[2]}. The filters are what the network learned (${info.params.toLocaleString()} weights).`);
    ps.push(`Stride ${sh}: the window moves ${sh} pixel${sh > 1 ? "s" : ""} at a time` + (sh > 1 ? `, so the map shrinks about ${sh} times. ` : ". ") +
      (pt || pb ? `Padding ${pt === pb ? pt : pt + "," + pb}: ${pt === pb ? pt : "some"} ring${pt === 1 ? "" : "s"} of zeros around the input, so the border values get full windows.` :
        "No padding: the window stays inside the input, so the map loses a border."));
    ps.push(axisFormula());
    if (t || state.layer === info.name) {
      const b = receptiveField(info.name, pos.y, pos.x)[info.inputs[0]];
      if (b) ps.push(`Here: channel ${pos.channel} at (${pos.y}, ${pos.x}) is the filter ${pos.channel} applied to rows ${b[0]}-${b[1]}, columns ${b[2]}-${b[3]} of ${inName[0]}.`);
    }
  } else if (type === "ReLU" || type === "ReLU6") {
    ps.push(`ReLU (rectified linear unit) keeps positive values and replaces negative ones by 0: ` + (type === "ReLU6" ? "min(max(0, x), 6)." : "relu(x) = max(0, x)."));
    ps.push(`It works on every value on its own, so the ${sizeOf(out)} shape stays. This non-linearity is what lets stacked layers learn more than one linear function; the dark (zero) areas are where a filter found nothing.`);
  } else if (["LeakyReLU", "ELU", "SELU", "GELU", "SiLU", "Sigmoid", "Tanh", "Softplus", "Mish", "Hardswish", "Hardsigmoid", "PReLU"].includes(type)) {
    const what = { LeakyReLU: "like ReLU, but negative values are multiplied by a small slope instead of set to 0 (" + info.description + ")",
      Sigmoid: "squashes every value into (0, 1): σ(x) = 1 / (1 + e^−x)", Tanh: "squashes every value into (−1, 1): tanh(x)",
      GELU: "a smooth ReLU: x·Φ(x), where Φ is the normal distribution's cumulative function", SiLU: "a smooth ReLU: x·σ(x)",
      ELU: "x for positive values, α(e^x − 1) for negative ones", SELU: "a scaled ELU", Softplus: "a smooth ReLU: log(1 + e^x)",
      Mish: "x·tanh(softplus(x))", Hardswish: "x·relu6(x + 3)/6", Hardsigmoid: "relu6(x + 3)/6", PReLU: "ReLU with a learned slope for negative values" }[type];
    ps.push(`${type} is an activation function: ${what}. It works on every value on its own, so the ${sizeOf(out)} shape stays.`);
  } else if (/Pool/.test(type)) {
    const global = /Global|Adaptive/.test(type) || !info.kernel_size, kind = /Max/.test(type) ? "max" : /Min/.test(type) ? "min" : "average";
    if (global) ps.push(`${/Global/.test(type) ? "Global" : "Adaptive"} ${kind} pooling takes the ${kind === "max" ? "largest value" : kind === "min" ? "smallest value" : "average"} of each whole map` +
      (out.length === 1 ? `: ${ins[0]} maps of ${ins[1]}×${ins[2]} become ${out[0]} numbers, one per channel.` : `, in ${out[1]}×${out[2]} regions.`));
    else {
      const [kh, kw] = info.kernel_size, [sh] = info.stride;
      ps.push(`${kind === "max" ? "Max" : kind === "min" ? "Min" : "Average"} pooling keeps the ${kind === "max" ? "largest" : kind === "min" ? "smallest" : "average"} value of each ${kh}×${kw} window, moving ${sh} pixel${sh > 1 ? "s" : ""} at a time: each of the ${ins[0]} maps shrinks from ${ins[1]}×${ins[2]} to ${out[1]}×${out[2]}; the number of channels stays. ` +
        `It has no weights. It keeps the ${kind === "max" ? "strongest response" : "typical response"} of each neighbourhood and makes the network less sensitive to small shifts.`);
      ps.push(axisFormula());
    }
  } else if (type === "Flatten" || type === "Reshape") {
    ps.push(`Flatten lays the ${ins.length === 3 ? `${ins[0]} maps of ${ins[1]}×${ins[2]}` : sizeOf(ins)} out in one row of ${ins.reduce((a, b) => a * b, 1)} values (channel by channel, row by row), so that dense layers can take them. Nothing is computed.`);
    if (ins.length === 3) ps.push(`Value ${pos.channel} is channel ${Math.floor(pos.channel / (ins[1] * ins[2]))}, row ${Math.floor(pos.channel % (ins[1] * ins[2]) / ins[2])}, column ${pos.channel % ins[2]} of ${inName[0]}.`);
  } else if (type === "Linear") {
    const last = lastVectors().includes(info.name);
    ps.push(`A dense (fully connected) layer: each of its ${out[0]} units multiplies all ${ins[0]} inputs by its own weights, adds them up and adds a bias: ${ins[0]}×${out[0]} weights + ${out[0]} biases = ${info.params.toLocaleString()} parameters. Every input is connected to every unit (the lines into a unit).`);
    if (last) ps.push(`These ${out[0]} values are the class scores (logits), one per class: the largest wins. Softmax turns them into probabilities.`);
  } else if (type === "Softmax" || type === "LogSoftmax") {
    ps.push(`Softmax turns the ${out[0]} scores into probabilities: each score s is exponentiated, e^s, and divided by the sum of all the exponentials. The results are positive and add up to 1, and the largest score gets the largest probability.`);
    ps.push(formulaP("", "p_i = e^(s_i) / Σ_j e^(s_j)"));
    if (type === "LogSoftmax") ps.push("LogSoftmax outputs the logarithm of these probabilities.");
  } else if (/BatchNorm/.test(type)) {
    ps.push(`Batch normalisation rescales each of the ${ins[0]} channels with numbers learned in training: (x − mean) / √(variance + ε) × γ + β. When the network is used, as here, it applies the running mean and variance of the training data: a fixed multiply-and-add per channel, which keeps the values in a range that trains well.`);
  } else if (type === "Add") {
    ps.push(`A residual (skip) connection: ${lab(info.name)} adds ${inName.join(" and ")} value by value (out = ${inName.join(" + ")}). Both have the shape ${sizeOf(out)}.`);
    ps.push("The shortcut lets a block learn only a correction to its input, and lets the gradient flow straight back through the network in training: deep networks train better with it.");
  } else if (type === "Concat") {
    ps.push(`Concatenation stacks the channels of ${inName.map((n, k) => `${n} (${(shapeOf(info.inputs[k]) || ["?"])[0]})`).join(" and ")} into ${out[0]} channels. No arithmetic: the maps are put side by side.`);
  } else if (/Dropout|Identity/.test(type)) {
    ps.push(`${type} zeroes random values while training (so the network cannot rely on any single one); when the network is used, as here, it passes every value through unchanged.`);
  } else if (type === "input") {
    ps.push(`The input: ${sizeOf(out)} numbers, the image's pixels after the preprocessing listed on the left.`);
  } else ps.push(`${info.description || type}: ${sizeOf(ins)} → ${sizeOf(out)}.`);
  return ps;
}

// ------------------------------------------------------------------ why this class
const HEAT_SENTENCE = {
  gradcam: (r) => `Grad-CAM weighs the feature maps of ${lab(r.layer)} by how much each raises the score of class "${r.class}", and shows where those maps are active: red regions are where the network found its evidence for "${r.class}".`,
  saliency: (r) => `Saliency is the size of the gradient |∂ score / ∂ pixel|: how much the score of class "${r.class}" would change if that pixel changed a little. Red pixels matter most.`,
};
function heatCanvas(m, canvas, opacity) {
  const [h, w] = m.shape;
  canvas.width = w; canvas.height = h;
  const ctx = canvas.getContext("2d"), img = ctx.createImageData(w, h);
  for (let i = 0; i < h * w; i++) {
    const v = Math.max(0, Math.min(1, m.values[i]));
    img.data[4 * i] = 255; img.data[4 * i + 1] = Math.round(255 * (1 - v) * 0.9); img.data[4 * i + 2] = 0;
    img.data[4 * i + 3] = Math.round(255 * v * opacity);
  }
  ctx.putImageData(img, 0, 0);
}
async function updateOverlay() {
  const canvas = $("overlay-canvas"), view = $("why-view");
  if (!canvas || !current) return;
  const ctx = canvas.getContext("2d");
  if (state.overlay === "none") {
    ctx.clearRect(0, 0, canvas.width, canvas.height); $("overlay-info").textContent = ""; view.textContent = ""; $("why-bar").hidden = true;
    $("why-sentence").textContent = "Choose an overlay to see which parts of the image made the network choose its class.";
    return;
  }
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
  const m = decode(r.heatmap);
  heatCanvas(m, canvas, state.opacity);
  // the large view: the image and the heat map over it, with a colour bar
  view.textContent = "";
  const base = el("canvas", { role: "img", "aria-label": `${r.method === "gradcam" ? "Grad-CAM" : "saliency"} heat map for class ${r.class} over the image` });
  if (current.raw.shape[0] === 3) drawRgb(base, current.raw); else drawMap(base, current.raw.values, 0, current.raw.shape[1], current.raw.shape[2], scaleOf(0, 1, true));
  const over = el("canvas", { class: "overlay", "aria-hidden": "true" });
  heatCanvas(m, over, state.opacity);
  view.append(base, over);
  $("why-bar").hidden = false;
  $("overlay-info").textContent = `${r.method === "gradcam" ? "Grad-CAM at layer " + lab(r.layer) : "saliency |d score / d pixel|"} for class ${r.class} (p = ${(100 * r.probability).toFixed(1)}%)`;
  if (m.max <= 0) $("overlay-info").textContent += ": zero everywhere (no pixel raises this class's score at that layer)";
  $("overlay-info").dataset.method = r.method;
  $("why-sentence").textContent = HEAT_SENTENCE[r.method] ? HEAT_SENTENCE[r.method](r) : "";
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
  const text = `test image ${s.index}: true ${s.label}, predicted ${s.predicted} (${(100 * s.probability).toFixed(0)}%)${s.correct ? "" : ", misclassified"}`;
  return el("button", { type: "button", "data-index": s.index, class: s.correct ? "" : "wrong", title: text,
    onclick: () => { state.sample = s.index; state.upload = null; state.uploadUrl = null; state.generated = false; run(); } },
    el("img", { src: `/api/samples/${s.index}.png?scale=2`, "data-index": s.index, alt: text }));
}
const URL_IMAGE_BYTES = 24000;   // uploads up to this size are kept in the link (base64)
async function useFile(file, generated = false) {
  if (!file) return;
  state.upload = file; state.sample = null; state.uploadUrl = null; state.generated = generated;
  if (file.size <= URL_IMAGE_BYTES && !generated) {
    const a = new Uint8Array(await file.arrayBuffer());
    let bin = ""; for (const b of a) bin += String.fromCharCode(b);
    state.uploadUrl = btoa(bin);
  }
  await run();
}
// a sample for a model without test images (an ONNX file): a drawn "7" in gray, a simple scene in colour
function generatedSample() {
  const [c, h, w] = model.input_shape, n = 4;
  const cv = document.createElement("canvas"); cv.width = w * n; cv.height = h * n;
  const ctx = cv.getContext("2d"), W = cv.width, H = cv.height;
  if (c === 1) {
    ctx.fillStyle = "#000"; ctx.fillRect(0, 0, W, H);
    ctx.strokeStyle = "#fff"; ctx.lineWidth = Math.max(2, W * 0.11); ctx.lineCap = "round"; ctx.lineJoin = "round";
    ctx.beginPath(); ctx.moveTo(W * 0.25, H * 0.24); ctx.lineTo(W * 0.72, H * 0.24); ctx.lineTo(W * 0.45, H * 0.8); ctx.stroke();
  } else {
    const g = ctx.createLinearGradient(0, 0, 0, H); g.addColorStop(0, "#5fa8e8"); g.addColorStop(1, "#d8ecff");
    ctx.fillStyle = g; ctx.fillRect(0, 0, W, H);
    ctx.fillStyle = "#3c8d2f"; ctx.fillRect(0, H * 0.7, W, H * 0.3);
    ctx.fillStyle = "#c62828"; ctx.beginPath(); ctx.arc(W * 0.5, H * 0.5, W * 0.2, 0, 2 * Math.PI); ctx.fill();
  }
  return new Promise((resolve) => cv.toBlob(resolve, "image/png"));
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
  c.setAttribute("aria-label", `${r.output} windows over an input of ${r.size}${r.dropped ? `; ${r.dropped} pixel(s) never covered` : ""}`);
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
function luminance(r, g, b) {
  const lum = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
  return 0.2126 * lum(r) + 0.7152 * lum(g) + 0.0722 * lum(b);
}
// black or white text, whichever reads better on this background
function textOn(r, g, b) { const L = luminance(r, g, b); return (1.05 / (L + 0.05)) > ((L + 0.05) / 0.05) ? "#fff" : "#000"; }
function cellColours(a, diag) {
  // the cell's colour over white, and the text colour with the better contrast on it
  const [r0, g0, b0] = diag ? [25, 118, 210] : [211, 47, 47];
  const mix = (c) => Math.round(255 + (c - 255) * a);
  const rgb = [mix(r0), mix(g0), mix(b0)];
  return { bg: `rgb(${rgb.join(",")})`, fg: textOn(...rgb) };
}
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
  const head = el("tr", {}, el("th", { text: "true \\ predicted", scope: "col" }));
  runInfo.classes.forEach((c) => head.append(el("th", { text: c, scope: "col" })));
  tbl.append(head);
  const peak = Math.max(...cm.flat());
  cm.forEach((row, i) => {
    const tr = el("tr", {}, el("th", { text: runInfo.classes[i], scope: "row" }));
    row.forEach((n, j) => {
      const label = `true ${runInfo.classes[i]}, predicted ${runInfo.classes[j]}: ${n} test image${n === 1 ? "" : "s"}`;
      const td = el("td", { class: i === j ? "diag" : "", "data-true": i, "data-pred": j, title: label });
      const { bg, fg } = cellColours(n ? 0.15 + 0.85 * n / peak : 0, i === j);
      td.style.background = bg;
      td.append(el("button", { type: "button", text: n, "aria-label": label, style: `color:${fg}`, onclick: () => cellSamples(i, j) }));
      tr.append(td);
    });
    tbl.append(tr);
  });
}
async function cellSamples(t, p) {
  const box = $("cell-samples"); box.textContent = "";
  let r;
  try { r = await json(fetch(`/api/samples?class=${t}&predicted=${p}&limit=60`)); } catch (err) { box.append(el("div", { class: "hint", text: err.message })); return; }
  box.append(el("div", { class: "hint", text: `${r.count} test image(s): true ${runInfo.classes[t]}, predicted ${runInfo.classes[p]}; click one to load it` }));
  for (const s of r.samples) box.append(sampleThumb(s));
}
function niceTicks(hi, n = 5) {
  const raw = hi / n, mag = 10 ** Math.floor(Math.log10(raw)), stepv = [1, 2, 2.5, 5, 10].map((k) => k * mag).find((k) => k >= raw);
  const t = [], top = Math.ceil(hi / stepv - 1e-9) * stepv;
  for (let v = 0; v <= top + stepv / 2; v += stepv) t.push(+v.toPrecision(6));
  return t;
}
function drawCurves(h) {
  const svg = $("curves"); svg.textContent = ""; $("curves-legend").textContent = "";
  if (!h || !h.epoch || !h.epoch.length) { svg.append(svgEl("text", { x: 20, y: 30, "font-size": 12 })).textContent = "no history"; return; }
  const W = 520, H = 250, L = 52, R = 50, T = 12, B = 36;
  const series = [["train_loss", "#1565c0", "train loss"], ["val_loss", "#d84315", "validation loss"], ["train_accuracy", "#1e88e5", "train accuracy"], ["val_accuracy", "#ef6c00", "validation accuracy"]]
    .filter(([k]) => h[k] && h[k].some((v) => v != null));
  const xs = h.epoch, n = xs.length;
  const ticks = niceTicks(Math.max(1e-9, ...["train_loss", "val_loss"].flatMap((k) => (h[k] || []).filter((v) => v != null))));
  const maxLoss = ticks[ticks.length - 1];
  const X = (i) => L + (n === 1 ? (W - L - R) / 2 : i * (W - L - R) / (n - 1));
  const yL = (v) => H - B - v / maxLoss * (H - B - T), yA = (v) => H - B - v * (H - B - T);
  const text = (x, y, s, attrs = {}) => { const t = svgEl("text", { x, y, "font-size": 11, fill: "#333", ...attrs }); t.textContent = s; svg.append(t); };
  svg.append(svgEl("path", { d: `M${L},${T} V${H - B} H${W - R} V${T}`, stroke: "#777", fill: "none" }));
  for (const v of ticks) {
    svg.append(svgEl("path", { d: `M${L - 4},${yL(v)} H${W - R}`, stroke: "#e0e0e0" }));
    text(L - 6, yL(v) + 4, String(v), { "text-anchor": "end" });
  }
  for (const v of [0, 0.25, 0.5, 0.75, 1]) { svg.append(svgEl("path", { d: `M${W - R},${yA(v)} h4`, stroke: "#777" })); text(W - R + 7, yA(v) + 4, v.toFixed(2)); }
  const every = Math.max(1, Math.ceil(n / 10));
  xs.forEach((e, i) => { if (i % every === 0 || i === n - 1) { svg.append(svgEl("path", { d: `M${X(i)},${H - B} v4`, stroke: "#777" })); text(X(i), H - B + 16, String(e), { "text-anchor": "middle" }); } });
  text(W / 2, H - 4, "epoch", { "text-anchor": "middle" });
  text(12, T + (H - B - T) / 2, "loss", { transform: `rotate(-90 12 ${T + (H - B - T) / 2})`, "text-anchor": "middle" });
  text(W - 6, T + (H - B - T) / 2, "accuracy", { transform: `rotate(90 ${W - 6} ${T + (H - B - T) / 2})`, "text-anchor": "middle" });
  for (const [k, colour, name] of series) {
    const isAcc = k.endsWith("accuracy"), Y = isAcc ? yA : yL;
    const pts = h[k].map((v, i) => v == null ? null : [X(i), Y(v)]).filter(Boolean);
    svg.append(svgEl("polyline", { points: pts.map((p) => p.join(",")).join(" "), stroke: colour, fill: "none", "stroke-width": 2, "stroke-dasharray": isAcc ? "5 3" : "none" }));
    for (const [cx, cy] of pts) svg.append(svgEl("circle", { cx, cy, r: 2.5, fill: colour }));
    const sw = el("span", { class: "swatch" }); sw.style.background = colour;
    $("curves-legend").append(el("span", {}, sw, `${name} (${isAcc ? "right axis" : "left axis"})`));
  }
  svg.setAttribute("aria-label", `training curves over ${n} epoch(s): ${series.map((s) => s[2]).join(", ")}`);
}

// ------------------------------------------------------------------ start
async function main() {
  readUrl();
  model = await json(fetch("/api/model"));
  window.__explore.model = model;
  $("model-title").textContent = `${model.name} · input ${model.input_shape.join("×")} · ${model.classes.length} classes${model.dataset ? " · " + model.dataset : ""}`;
  const maxC = Math.max(...model.layers.filter((l) => l.output_shape.length === 3).map((l) => l.output_shape[0]), 1);
  channelCap = maxC <= 16 ? 16 : 8;
  for (const [i, c] of model.classes.entries()) { $("sample-class").append(el("option", { value: i, text: c })); $("overlay-class").append(el("option", { value: i, text: c })); }
  for (const l of model.layers) if (l.kernel_size && l.input_shape.length === 3 && slides(l)) $("pg-layer").append(el("option", { value: l.name, text: `${lab(l.name)} ${l.description}` }));
  $("draw-box").hidden = !model.can_draw;
  $("run").hidden = !model.has_run;
  $("invert").checked = state.invert; $("overlay").value = state.overlay; $("overlay-class").value = state.cls; $("opacity").value = state.opacity;
  $("sample-class").addEventListener("change", loadSamples); $("sample-wrong").addEventListener("change", loadSamples);
  $("upload-button").addEventListener("click", () => $("upload").click());
  $("upload").addEventListener("change", (ev) => { useFile(ev.target.files[0]); ev.target.value = ""; });
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
    const tag = ev.target.tagName;
    if (tag === "INPUT" || tag === "SELECT" || tag === "TEXTAREA" || state.layer == null || !current) return;
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
  let resizeTimer = null;
  window.addEventListener("resize", () => { clearTimeout(resizeTimer); resizeTimer = setTimeout(() => { if (current) drawOverview(); }, 150); });
  setupDrawing();
  const haveSamples = model.has_test_images === false ? false : await loadSamples();   // no run, no test images
  $("sample-box").hidden = !haveSamples;
  if (state.sample == null && haveSamples) state.sample = 0;
  const firstPool = model.layers.find((l) => l.kernel_size && l.input_shape.length === 3 && slides(l));
  if (firstPool) { $("pg-layer").value = firstPool.name; playgroundFromLayer(); } else playground();
  if (model.has_run) loadRun();
  if (haveSamples || state.upload) await run();
  else {   // no test images (an ONNX file, a model without its run): start from a generated sample
    status("no test images: a generated sample is shown; upload, drop or draw an image");
    await useFile(await generatedSample(), true);
  }
  window.__explore.ready = true;
}
main().catch((err) => status("error: " + err.message));
