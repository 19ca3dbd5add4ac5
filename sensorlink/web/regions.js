// A thermal camera's regions of interest and its isotherm, over the picture.
// Regions (spot, box, line, polygon) come from the service (status "regions", and the camera's
// meta); their max/min/mean arrive as readings "<camera>/<region>/<stat>". An operator draws a
// region with the tools (spot: click; box and line: drag; polygon: click each corner, double-
// click to close), moves one by dragging it with "Move", and deletes one with its ×; each change
// is a "region" control message, so every viewer sees it and the service keeps it in its state
// file. The isotherm highlights, from the exact °C frames, every pixel at or above a temperature.

import { el, fmtC } from "./dom.js";

const TOOLS = ["spot", "box", "line", "polygon", "move"];
const ISOTHERM_RGBA = [0, 255, 170, 150];
const COLOUR = "#7ee787", ALARM_COLOUR = "#ff5d5d", WARN_COLOUR = "#ffb020";

export class RegionLayer {
  constructor(view, { conn, notify, canControl }) {
    this.view = view;
    this.conn = conn;
    this.notify = notify;
    this.canControl = canControl;
    this.regions = [];
    this.stats = {};
    this.alarmed = new Map(); // region name → "warning" | "alarm"
    this.tool = null;
    this.draft = null;
    this.drag = null;
    this.isotherm = null;
    this.isoPixels = 0;
    this.sent = [];
    this.build();
    const ov = view.overlay;
    ov.addEventListener("mousedown", (ev) => this.down(ev));
    ov.addEventListener("mousemove", (ev) => this.move(ev));
    ov.addEventListener("mouseup", (ev) => this.up(ev));
    ov.addEventListener("dblclick", (ev) => this.finishPolygon(ev));
  }

  build() {
    const s = this.view.sensor;
    this.toolButtons = Object.fromEntries(TOOLS.map((t) => [t, el("button", {
      class: "small tool", "data-testid": `region-tool-${t}-${s}`, disabled: !this.canControl,
      title: this.canControl ? `Draw a ${t}` : "Drawing regions needs the operator token",
      onclick: () => this.setTool(this.tool === t ? null : t) }, t === "move" ? "Move" : t)]));
    this.toolButtons.move.title = this.canControl ? "Drag a region to move it" : this.toolButtons.move.title;
    this.nameInput = el("input", { type: "text", class: "region-name", size: 8, value: "r1",
                                   "data-testid": `region-name-${s}`, title: "Name of the next region" });
    this.isoBox = el("input", { type: "checkbox", "data-testid": `isotherm-on-${s}` });
    this.isoInput = el("input", { type: "number", step: "0.5", value: "40", "data-testid": `isotherm-c-${s}` });
    const iso = () => { this.isotherm = this.isoBox.checked ? Number(this.isoInput.value) : null; this.view.redraw(); };
    this.isoBox.addEventListener("change", iso);
    this.isoInput.addEventListener("input", iso);
    this.tbody = el("tbody");
    this.bar = el("div", { class: "region-tools" },
      el("span", { class: "k" }, "Regions"), ...Object.values(this.toolButtons), this.nameInput,
      el("label", { class: "check", title: "Highlight every pixel at or above this temperature" },
        this.isoBox, " Isotherm ≥"), this.isoInput, el("span", { class: "muted small" }, "°C"));
    this.table = el("table", { class: "sensors regions-table hidden", "data-testid": `regions-${s}` },
      el("thead", {}, el("tr", {}, ...["Region", "Max", "Min", "Mean", "Hottest at", ""].map((h) => el("th", {}, h)))),
      this.tbody);
    this.view.root.append(this.bar, this.table);
  }

  get busy() { return this.tool !== null; }

  setTool(tool) {
    this.tool = tool;
    this.draft = null;
    for (const [t, b] of Object.entries(this.toolButtons)) b.classList.toggle("active", t === tool);
    this.view.redraw();
  }

  setRegions(list) {
    const key = JSON.stringify(list);
    if (key === this.key) return;
    this.key = key;
    this.regions = list.map((r) => ({ ...r, points: r.points.map((p) => [...p]) }));
    const names = new Set(this.regions.map((r) => r.name));
    for (const n of Object.keys(this.stats)) if (!names.has(n)) delete this.stats[n];
    let k = 1;
    while (names.has(`r${k}`)) k++;
    if (!this.nameInput.matches(":focus") && names.has(this.nameInput.value)) this.nameInput.value = `r${k}`;
    this.renderTable();
    this.view.redraw();
  }

  /** A reading of this camera: "<region>/<stat>" → value. */
  onReading(channel, value) {
    const slash = channel.lastIndexOf("/");
    if (slash < 0) return false;
    const name = channel.slice(0, slash), stat = channel.slice(slash + 1);
    if (!this.regions.some((r) => r.name === name)) return false;
    (this.stats[name] ??= {})[stat] = value;
    this.dirty = true;
    return true;
  }

  onAlarm(event, active) {
    const prefix = `${this.view.sensor}/`;
    this.alarmed.clear();
    for (const e of active) {
      if (!e.stream.startsWith(prefix) || !e.active) continue;
      const name = e.stream.slice(prefix.length).split("/")[0];
      if (this.alarmed.get(name) !== "alarm") this.alarmed.set(name, e.level);
    }
    this.renderTable();
    this.view.redraw();
  }

  renderTable() {
    this.dirty = false;
    this.table.classList.toggle("hidden", this.regions.length === 0);
    // The rows (and their delete buttons) are rebuilt only when the regions change; a new
    // reading only rewrites the numbers. Rebuilt on every frame, a row could be replaced
    // between the press and the release of a click, and the click would be lost.
    const key = JSON.stringify(this.regions.map((r) => [r.name, r.kind, r.emissivity,
                                                       this.alarmed.get(r.name) ?? ""]));
    if (key !== this.rowsKey) {
      this.rowsKey = key;
      this.cells = new Map();
      this.tbody.replaceChildren(...this.regions.map((r) => {
        const del = el("button", { class: "small", disabled: !this.canControl, "data-testid": `region-delete-${this.view.sensor}-${r.name}`,
                                   title: "Delete this region", onclick: () => this.remove(r.name) }, "×");
        const nums = [el("td", { class: "num", "data-testid": `region-max-${this.view.sensor}-${r.name}` }),
                      el("td", { class: "num" }), el("td", { class: "num" }), el("td", { class: "num" })];
        this.cells.set(r.name, nums);
        return el("tr", { "data-region": r.name, class: this.alarmed.get(r.name) ?? "" },
          el("td", {}, el("b", {}, r.name), el("span", { class: "muted small" }, ` ${r.kind}${r.emissivity < 1 ? ` ε ${r.emissivity}` : ""}`)),
          ...nums, el("td", {}, del));
      }));
    }
    for (const r of this.regions) {
      const st = this.stats[r.name] ?? {};
      const texts = [fmtC(st.max), fmtC(st.min), fmtC(st.mean),
                     st.max_x === undefined ? "—" : `${st.max_x}, ${st.max_y}`];
      this.cells.get(r.name).forEach((td, i) => { if (td.textContent !== texts[i]) td.textContent = texts[i]; });
    }
  }

  // -- drawing with the mouse ----------------------------------------------------------------
  down(ev) {
    if (!this.tool || !this.canControl) return;
    const p = this.view.pixelAt(ev);
    const pt = [p.px, p.py];
    if (this.tool === "spot") this.send({ kind: "spot", points: [pt] });
    else if (this.tool === "box" || this.tool === "line") this.draft = { kind: this.tool, points: [pt, pt] };
    else if (this.tool === "polygon") {
      this.draft ??= { kind: "polygon", points: [] };
      this.draft.points.push(pt);
    } else if (this.tool === "move") {
      const hit = this.regions.find((r) => contains(r, pt));
      if (hit) this.drag = { region: hit, from: pt, to: pt };
    }
    this.view.redraw();
  }

  move(ev) {
    if (!this.draft && !this.drag) return;
    const p = this.view.pixelAt(ev);
    if (this.drag) this.drag.to = [p.px, p.py];
    else if (this.draft.kind !== "polygon") this.draft.points[1] = [p.px, p.py];
    this.view.redraw();
  }

  up(ev) {
    if (this.drag) {
      const { region, from, to } = this.drag;
      this.drag = null;
      if (to[0] !== from[0] || to[1] !== from[1]) {
        const [w, h] = [this.view.width, this.view.height];
        const dx = to[0] - from[0], dy = to[1] - from[1];
        const points = region.points.map(([x, y]) => [clamp(x + dx, w), clamp(y + dy, h)]);
        this.send({ ...region, points }, region.name);
      }
    } else if (this.draft && this.draft.kind !== "polygon") {
      this.move(ev);
      const draft = this.draft;
      this.draft = null;
      this.send(draft);
    }
    this.view.redraw();
  }

  finishPolygon(ev) {
    if (this.tool !== "polygon" || !this.draft) return;
    ev.preventDefault();
    // The double click's two clicks each added a corner: drop the repeat.
    const pts = this.draft.points.filter((p, i, a) => i === 0 || p[0] !== a[i - 1][0] || p[1] !== a[i - 1][1]);
    this.draft = null;
    if (pts.length >= 3) this.send({ kind: "polygon", points: pts });
    else this.notify(`${this.view.sensor}: a polygon needs at least 3 corners`, "error");
  }

  async send(region, name = null) {
    const full = { name: name ?? this.nameInput.value.trim(), kind: region.kind, points: region.points };
    for (const k of ["emissivity", "reflected_c"]) if (region[k] !== undefined) full[k] = region[k];
    try {
      const result = await this.conn.request("region", { action: "set", sensor: this.view.sensor, region: full });
      this.sent.push({ ok: true, region: full });
      if (result?.regions) this.setRegions(result.regions);
    } catch (err) {
      this.sent.push({ ok: false, region: full, error: err.message });
      this.notify(`${this.view.sensor}: region not set: ${err.message}`, "error");
    }
  }

  async remove(name) {
    try {
      const result = await this.conn.request("region", { action: "delete", sensor: this.view.sensor, name });
      if (result?.regions) this.setRegions(result.regions);
    } catch (err) {
      this.notify(`${this.view.sensor}: region ${name} not deleted: ${err.message}`, "error");
    }
  }

  // -- painting ------------------------------------------------------------------------------
  /** Called by the view's overlay redraw: isotherm under, regions over. */
  draw(g, sx, sy, frame) {
    if (this.dirty) this.renderTable();
    if (frame && this.isotherm !== null && Number.isFinite(this.isotherm)) this.drawIsotherm(g, sx, sy, frame);
    for (const r of this.regions) {
      const moved = this.drag?.region === r ? offset(r, this.drag) : r;
      const level = this.alarmed.get(r.name);
      shape(g, moved, sx, sy, level === "alarm" ? ALARM_COLOUR : level === "warning" ? WARN_COLOUR : COLOUR,
            `${r.name} ${fmtC(this.stats[r.name]?.max)}`);
    }
    if (this.draft) shape(g, this.draft, sx, sy, "#ffffff", "", true);
  }

  drawIsotherm(g, sx, sy, f) {
    if (!this.iso || this.iso.width !== f.width || this.iso.height !== f.height) {
      this.iso = new OffscreenCanvas(f.width, f.height);
    }
    const ig = this.iso.getContext("2d");
    const img = ig.createImageData(f.width, f.height);
    let n = 0;
    for (let i = 0; i < f.celsius.length; i++) {
      if (f.celsius[i] >= this.isotherm) {
        img.data.set(ISOTHERM_RGBA, i * 4);
        n++;
      }
    }
    this.isoPixels = n;
    ig.putImageData(img, 0, 0);
    g.save();
    g.imageSmoothingEnabled = false;
    g.drawImage(this.iso, 0, 0, f.width * sx, f.height * sy);
    g.restore();
  }

  snapshot() {
    return { regions: this.regions.map((r) => ({ ...r })), stats: structuredClone(this.stats),
             tool: this.tool, isotherm: this.isotherm, isotherm_pixels: this.isoPixels,
             sent: this.sent.map((s) => ({ ...s })), alarmed: Object.fromEntries(this.alarmed) };
  }
}

function clamp(v, n) { return Math.min(Math.max(v, 0), n - 1); }

function offset(r, drag) {
  const dx = drag.to[0] - drag.from[0], dy = drag.to[1] - drag.from[1];
  return { ...r, points: r.points.map(([x, y]) => [x + dx, y + dy]) };
}

function contains(r, [x, y]) {
  const xs = r.points.map((p) => p[0]), ys = r.points.map((p) => p[1]);
  return x >= Math.min(...xs) - 1 && x <= Math.max(...xs) + 1 && y >= Math.min(...ys) - 1 && y <= Math.max(...ys) + 1;
}

function shape(g, r, sx, sy, colour, text, dashed = false) {
  const c = ([x, y]) => [(x + 0.5) * sx, (y + 0.5) * sy];
  g.save();
  g.strokeStyle = colour;
  g.lineWidth = 2;
  if (dashed) g.setLineDash([4, 3]);
  g.beginPath();
  const pts = r.points;
  if (r.kind === "spot") {
    const [x, y] = c(pts[0]);
    g.arc(x, y, Math.max(4, Math.min(sx, sy) / 2), 0, 2 * Math.PI);
    g.moveTo(x - 9, y); g.lineTo(x + 9, y); g.moveTo(x, y - 9); g.lineTo(x, y + 9);
  } else if (r.kind === "box") {
    const [[x0, y0], [x1, y1]] = pts;
    g.rect(Math.min(x0, x1) * sx, Math.min(y0, y1) * sy, (Math.abs(x1 - x0) + 1) * sx, (Math.abs(y1 - y0) + 1) * sy);
  } else {
    pts.forEach((p, i) => (i ? g.lineTo(...c(p)) : g.moveTo(...c(p))));
    if (r.kind === "polygon" && !dashed) g.closePath();
  }
  g.stroke();
  if (text) {
    const [x, y] = [Math.min(...pts.map((p) => p[0])) * sx, Math.min(...pts.map((p) => p[1])) * sy];
    g.font = "600 11px ui-monospace, Menlo, Consolas, monospace";
    const w = g.measureText(text).width + 8;
    const ty = y > 16 ? y - 16 : y + 2;
    g.fillStyle = "rgba(10,13,18,0.75)";
    g.fillRect(x, ty, w, 15);
    g.fillStyle = colour;
    g.textBaseline = "middle";
    g.fillText(text, x + 4, ty + 8);
  }
  g.restore();
}
