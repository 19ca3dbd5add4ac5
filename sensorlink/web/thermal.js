// One thermal camera: the colour-mapped video, and over it an overlay drawn from the exact °C
// frames (data channel "frames"), never from the video's colours: the temperature under the
// cursor, min/max markers, a pinned spot, and the colour scale of the map the video uses.

import { el, fmtC, perFrame } from "./dom.js";
import { RegionLayer } from "./regions.js";

const GREY_LUT = Uint8Array.from({ length: 768 }, (_, i) => Math.floor(i / 3));

export class ThermalView {
  constructor(parent, sensor, { conn, colormaps, notify, canControl = true }) {
    this.scheduleRedraw = perFrame(() => this.redraw());
    this.sensor = sensor.name;
    this.canControl = canControl;
    this.meta = sensor.meta || {};
    this.conn = conn;
    this.notify = notify;
    this.width = this.meta.width || 32;
    this.height = this.meta.height || 24;
    this.frame = null; // {celsius: Float32Array, width, height, seq, range, ambient, min, max, ...}
    this.partial = new Map();
    this.incomplete = 0;
    this.frames = 0;
    this.videoFrames = 0;
    this.arrivals = [];
    this.cursor = null; // {px, py}
    this.spot = null;
    this.view = null;
    this.lut = GREY_LUT;
    this.build(parent, sensor, colormaps);
    this.regions = new RegionLayer(this, { conn, notify, canControl });
    this.regions.setRegions(this.meta.regions ?? []);
  }

  /** A reading of this camera (its regions' statistics). */
  onReading(channel, value) {
    if (this.regions.onReading(channel, value)) this.scheduleRedraw();
  }

  build(parent, sensor, colormaps) {
    this.mapSelect = el("select", { class: "map", title: "Colour map of the video" },
      ...colormaps.map((m) => el("option", { value: m }, m)));
    this.autoBox = el("input", { type: "checkbox", class: "auto", checked: true });
    this.loInput = el("input", { type: "number", class: "lo", step: "0.5", disabled: true });
    this.hiInput = el("input", { type: "number", class: "hi", step: "0.5", disabled: true });
    this.applyBtn = el("button", { class: "apply small", disabled: true }, "Set");
    this.sub = el("span", { class: "sub" }, `${sensor.driver} · ${this.width}×${this.height}`);
    this.video = el("video", { muted: true, playsinline: true, autoplay: true });
    this.video.muted = true;
    this.overlay = el("canvas", { class: "overlay", "data-testid": `thermal-overlay-${this.sensor}` });
    this.placeholder = el("div", { class: "placeholder" }, "Waiting for video…");
    this.stage = el("div", { class: "stage", style: `aspect-ratio: ${this.width} / ${this.height}` },
      this.video, this.overlay, this.placeholder);
    this.scaleCanvas = el("canvas", { class: "scalebar" });
    this.scaleLabels = el("div", { class: "scale-labels" });
    this.readouts = {};
    const ro = (key, label, title) => {
      this.readouts[key] = el("span", { class: `v ${key}`, "data-testid": `thermal-${key}-${this.sensor}` }, "—");
      return el("div", { class: "ro", title }, el("span", { class: "k" }, label), this.readouts[key]);
    };
    this.root = el("section", { class: "panel thermal", "data-sensor": this.sensor },
      el("header", { class: "panel-head" },
        el("h2", {}, el("span", { class: "kind-dot thermal" }), this.sensor, this.sub),
        el("div", { class: "tools" },
          el("label", {}, "Map ", this.mapSelect),
          el("label", { class: "check" }, this.autoBox, " Auto range"),
          el("span", { class: "range-ctl" }, this.loInput, "–", this.hiInput, " °C ", this.applyBtn))),
      el("div", { class: "thermal-body" },
        this.stage,
        el("div", { class: "scale" }, this.scaleCanvas, this.scaleLabels)),
      el("footer", { class: "readouts" },
        ro("cursor", "Cursor", "Exact °C of the pixel under the mouse"),
        ro("max", "Max", "Hottest pixel (red marker)"),
        ro("min", "Min", "Coldest pixel (blue marker)"),
        ro("mean", "Mean", "Mean of the frame"),
        ro("spot", "Spot", "Click the picture to pin a spot; click it again to remove it"),
        ro("ambient", "Ambient", "Sensor's ambient / die temperature")));
    parent.append(this.root);

    this.mapSelect.addEventListener("change", () => this.sendView({ map: this.mapSelect.value }));
    this.autoBox.addEventListener("change", () => {
      const auto = this.autoBox.checked;
      this.setRangeInputs(!auto);
      if (auto) this.sendView({ range: "auto" });
      else if (this.frame) {
        this.loInput.value = this.frame.range[0].toFixed(1);
        this.hiInput.value = this.frame.range[1].toFixed(1);
      }
    });
    this.applyBtn.addEventListener("click", () => {
      const lo = Number(this.loInput.value), hi = Number(this.hiInput.value);
      if (!(Number.isFinite(lo) && Number.isFinite(hi) && hi > lo)) {
        this.notify(`${this.sensor}: the range needs low < high`, "error");
        return;
      }
      this.sendView({ range: [lo, hi] });
    });
    this.overlay.addEventListener("mousemove", (ev) => {
      this.cursor = this.pixelAt(ev);
      this.redraw();
    });
    this.overlay.addEventListener("mouseleave", () => {
      this.cursor = null;
      this.redraw();
    });
    this.overlay.addEventListener("click", (ev) => {
      if (this.regions?.busy) return; // a region tool is in use: the click is its
      const p = this.pixelAt(ev);
      this.spot = this.spot && this.spot.px === p.px && this.spot.py === p.py ? null : p;
      this.redraw();
    });
    this.video.addEventListener("playing", () => this.placeholder.classList.add("hidden"));
    if (!this.canControl) {
      for (const e of [this.mapSelect, this.autoBox]) {
        e.disabled = true;
        e.title = "Changing the colour map needs the operator token";
      }
    }
    new ResizeObserver(() => this.resize()).observe(this.stage);
    this.resize();
  }

  setRangeInputs(enabled) {
    for (const e of [this.loInput, this.hiInput, this.applyBtn]) e.disabled = !enabled || !this.canControl;
  }

  async sendView(fields) {
    try {
      await this.conn.request("colormap", { sensor: this.sensor, ...fields });
    } catch (err) {
      this.notify(`${this.sensor}: colour map not changed: ${err.message}`, "error");
    }
  }

  setStream(stream) {
    this.video.srcObject = stream;
    this.video.play().catch(() => {});
    const count = () => {
      this.videoFrames++;
      this.video.requestVideoFrameCallback(count);
    };
    if (!this.counting && "requestVideoFrameCallback" in this.video) {
      this.counting = true;
      this.video.requestVideoFrameCallback(count);
    }
  }

  reset() {
    this.video.srcObject = null;
    this.placeholder.classList.remove("hidden");
    this.placeholder.textContent = "Waiting for video…";
    this.partial.clear();
  }

  onView(msg) {
    this.view = msg;
    if (msg.lut instanceof Uint8Array && msg.lut.length === 768) this.lut = msg.lut;
    if ([...this.mapSelect.options].every((o) => o.value !== msg.map)) {
      this.mapSelect.append(el("option", { value: msg.map }, msg.map));
    }
    this.mapSelect.value = msg.map;
    this.autoBox.checked = msg.auto;
    this.setRangeInputs(!msg.auto);
    if (!msg.auto && msg.range && document.activeElement !== this.loInput &&
        document.activeElement !== this.hiInput) {
      this.loInput.value = msg.range[0];
      this.hiInput.value = msg.range[1];
    }
    this.drawScale();
  }

  /** One band (or all rows) of a frame; a frame is shown once every row of it has arrived. */
  onFrame(msg) {
    const { width: w, height: h, y0, rows, seq } = msg;
    if (y0 + rows > h || msg.data.length !== rows * w * 2) return;
    let part = this.partial.get(seq);
    if (!part) {
      part = { celsius: new Float32Array(w * h), got: 0 };
      this.partial.set(seq, part);
      // Bands travel unordered without retransmits: a frame still partial two frames later is
      // lost (a replay's seek makes seq jump either way: the same rule clears what it left).
      for (const old of this.partial.keys()) {
        if (Math.abs(old - seq) > 2) {
          this.partial.delete(old);
          this.incomplete++;
        }
      }
    }
    const dv = new DataView(msg.data.buffer, msg.data.byteOffset, msg.data.byteLength);
    const inv = 1 / msg.scale;
    for (let i = 0, o = y0 * w; i < rows * w; i++, o++) part.celsius[o] = dv.getInt16(i * 2, true) * inv;
    part.got += rows;
    if (part.got < h) return;
    this.partial.delete(seq);
    // A live frame overtaken by a newer one is stale; a big step back means the service restarted.
    // A replay's seq jumps back on every seek or loop, so there the newest arrival wins.
    if (!msg.replay && this.frame && seq < this.frame.seq && this.frame.seq - seq < 8) return;
    this.acceptFrame(part.celsius, msg);
  }

  acceptFrame(celsius, msg) {
    let min = Infinity, max = -Infinity, sum = 0, iMin = 0, iMax = 0;
    for (let i = 0; i < celsius.length; i++) {
      const v = celsius[i];
      sum += v;
      if (v < min) { min = v; iMin = i; }
      if (v > max) { max = v; iMax = i; }
    }
    const w = msg.width;
    if (w !== this.width || msg.height !== this.height) {
      this.width = w;
      this.height = msg.height;
      this.stage.style.aspectRatio = `${w} / ${msg.height}`;
    }
    this.frame = {
      celsius, width: w, height: msg.height, seq: msg.seq, range: msg.range,
      ambient: msg.ambient_c ?? null, min, max, mean: sum / celsius.length,
      minAt: { px: iMin % w, py: Math.floor(iMin / w) },
      maxAt: { px: iMax % w, py: Math.floor(iMax / w) },
    };
    this.frames++;
    const now = performance.now();
    this.arrivals.push(now);
    while (this.arrivals.length && this.arrivals[0] < now - 3000) this.arrivals.shift();
    this.scheduleRedraw();
  }

  get fps() {
    const a = this.arrivals;
    return a.length > 1 ? (a.length - 1) / ((a[a.length - 1] - a[0]) / 1000) : 0;
  }

  at(p) {
    const f = this.frame;
    if (!f || !p || p.px < 0 || p.py < 0 || p.px >= f.width || p.py >= f.height) return null;
    return f.celsius[p.py * f.width + p.px];
  }

  pixelAt(ev) {
    const r = this.overlay.getBoundingClientRect();
    const px = Math.min(this.width - 1, Math.max(0, Math.floor((ev.clientX - r.left) / r.width * this.width)));
    const py = Math.min(this.height - 1, Math.max(0, Math.floor((ev.clientY - r.top) / r.height * this.height)));
    return { px, py };
  }

  resize() {
    const dpr = window.devicePixelRatio || 1;
    const r = this.stage.getBoundingClientRect();
    this.overlay.width = Math.max(1, Math.round(r.width * dpr));
    this.overlay.height = Math.max(1, Math.round(r.height * dpr));
    this.scaleCanvas.style.height = `${r.height}px`;
    this.scaleLabels.style.height = `${r.height}px`;
    this.scaleCanvas.width = Math.round(14 * dpr);
    this.scaleCanvas.height = Math.max(1, Math.round(r.height * dpr));
    this.redraw();
  }

  redraw() {
    this.drawOverlay();
    this.drawScale();
    this.updateReadouts();
  }

  updateReadouts() {
    const f = this.frame;
    const r = this.readouts;
    const c = this.at(this.cursor);
    r.cursor.textContent = c === null ? "—" : `${fmtC(c)} (${this.cursor.px}, ${this.cursor.py})`;
    const s = this.at(this.spot);
    r.spot.textContent = s === null ? "—" : `${fmtC(s)} (${this.spot.px}, ${this.spot.py})`;
    r.max.textContent = f ? fmtC(f.max) : "—";
    r.min.textContent = f ? fmtC(f.min) : "—";
    r.mean.textContent = f ? fmtC(f.mean) : "—";
    r.ambient.textContent = f && f.ambient !== null ? fmtC(f.ambient) : "—";
    if (f && this.autoBox.checked) {
      this.loInput.placeholder = f.range[0].toFixed(1);
      this.hiInput.placeholder = f.range[1].toFixed(1);
    }
    const fps = this.fps;
    this.sub.textContent = `${this.view ? this.view.map + " · " : ""}${this.width}×${this.height}` +
      (fps ? ` · ${fps.toFixed(1)} fps` : "");
  }

  drawOverlay() {
    const cv = this.overlay, g = cv.getContext("2d");
    const dpr = window.devicePixelRatio || 1;
    g.setTransform(1, 0, 0, 1, 0, 0);
    g.clearRect(0, 0, cv.width, cv.height);
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    const f = this.frame;
    if (!f) return;
    const W = cv.width / dpr, H = cv.height / dpr;
    const sx = W / f.width, sy = H / f.height;
    const centre = (p) => [(p.px + 0.5) * sx, (p.py + 0.5) * sy];
    this.regions?.draw(g, sx, sy, f);
    marker(g, ...centre(f.maxAt), "#ff4d4f", `max ${fmtC(f.max)}`, W, H, "tri-up");
    marker(g, ...centre(f.minAt), "#4dabff", `min ${fmtC(f.min)}`, W, H, "tri-down");
    if (this.spot) marker(g, ...centre(this.spot), "#ffffff", `spot ${fmtC(this.at(this.spot))}`, W, H, "square");
    if (this.cursor) {
      const [x, y] = centre(this.cursor);
      g.strokeStyle = "rgba(255,255,255,0.9)";
      g.lineWidth = 1;
      g.strokeRect(this.cursor.px * sx + 0.5, this.cursor.py * sy + 0.5, sx - 1, sy - 1);
      g.strokeStyle = "rgba(255,255,255,0.35)";
      g.beginPath();
      g.moveTo(x, 0); g.lineTo(x, this.cursor.py * sy);
      g.moveTo(x, (this.cursor.py + 1) * sy); g.lineTo(x, H);
      g.moveTo(0, y); g.lineTo(this.cursor.px * sx, y);
      g.moveTo((this.cursor.px + 1) * sx, y); g.lineTo(W, y);
      g.stroke();
      // Above-left of the pixel, clear of the max/min labels that sit to the right.
      label(g, x - sx / 2 - 8 - labelWidth(g, fmtC(this.at(this.cursor)), 13), y - sy / 2 - 4,
            fmtC(this.at(this.cursor)), W, H, "#ffffff", 13);
    }
  }

  drawScale() {
    const cv = this.scaleCanvas, g = cv.getContext("2d");
    const lut = this.lut;
    for (let y = 0; y < cv.height; y++) {
      const i = Math.round((1 - y / Math.max(1, cv.height - 1)) * 255) * 3;
      g.fillStyle = `rgb(${lut[i]},${lut[i + 1]},${lut[i + 2]})`;
      g.fillRect(0, y, cv.width, 1);
    }
    const range = this.frame?.range ?? this.view?.range;
    if (!range) return;
    const key = `${range[0].toFixed(1)}|${range[1].toFixed(1)}`;
    if (key === this.scaleKey) return;
    this.scaleKey = key;
    const ticks = 5;
    this.scaleLabels.replaceChildren(...Array.from({ length: ticks }, (_, k) => {
      const t = k / (ticks - 1);
      const v = range[1] - t * (range[1] - range[0]);
      return el("span", { style: `top: ${(t * 100).toFixed(2)}%` }, v.toFixed(1));
    }));
    this.scaleLabels.dataset.range = key;
  }

  snapshot() {
    const f = this.frame;
    const v = this.video;
    return {
      width: this.width, height: this.height, frames: this.frames, incomplete: this.incomplete,
      seq: f?.seq ?? null, min: f?.min ?? null, max: f?.max ?? null, mean: f?.mean ?? null,
      max_at: f ? { ...f.maxAt } : null, range: f ? [...f.range] : null,
      cursor: this.cursor ? { ...this.cursor, celsius: this.at(this.cursor) } : null,
      spot: this.spot ? { ...this.spot, celsius: this.at(this.spot) } : null,
      map: this.view?.map ?? null, auto: this.view?.auto ?? null, regions: this.regions.snapshot(),
      video: { frames: this.videoFrames, current_time: v.currentTime, width: v.videoWidth,
               height: v.videoHeight, paused: v.paused },
    };
  }
}

function marker(g, x, y, colour, text, W, H, shape) {
  // A marker on an edge pixel stays whole inside the picture.
  x = Math.min(Math.max(x, 8), W - 8);
  y = Math.min(Math.max(y, 8), H - 8);
  g.save();
  g.lineWidth = 2;
  g.strokeStyle = "rgba(0,0,0,0.75)";
  g.fillStyle = colour;
  g.beginPath();
  const r = 7;
  if (shape === "tri-up") { g.moveTo(x, y - r); g.lineTo(x + r, y + r * 0.8); g.lineTo(x - r, y + r * 0.8); }
  else if (shape === "tri-down") { g.moveTo(x, y + r); g.lineTo(x + r, y - r * 0.8); g.lineTo(x - r, y - r * 0.8); }
  else { g.rect(x - r * 0.7, y - r * 0.7, r * 1.4, r * 1.4); }
  g.closePath();
  g.stroke();
  g.globalAlpha = 0.9;
  g.fill();
  g.restore();
  label(g, x + 10, y + 4, text, W, H, colour, 12);
}

function labelWidth(g, text, size) {
  g.save();
  g.font = `600 ${size}px ui-monospace, "SF Mono", Menlo, Consolas, monospace`;
  const w = g.measureText(text).width + 10;
  g.restore();
  return w;
}

function label(g, x, y, text, W, H, colour, size) {
  g.save();
  g.font = `600 ${size}px ui-monospace, "SF Mono", Menlo, Consolas, monospace`;
  const w = g.measureText(text).width + 10, h = size + 8;
  // Keep the label inside the picture: flip it to the other side near the edges.
  if (x + w > W) x = Math.max(0, x - w - 20);
  if (x < 0) x = 0;
  if (y - h < 0) y = h;
  if (y > H) y = H;
  g.fillStyle = "rgba(10,13,18,0.78)";
  g.fillRect(x, y - h, w, h);
  g.fillStyle = colour;
  g.textBaseline = "middle";
  g.fillText(text, x + 5, y - h / 2 + 0.5);
  g.restore();
}
