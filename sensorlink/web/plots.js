// Live plots of the temperature probes: one uPlot chart per probe sensor, one series per stream,
// a rolling window, and the latest value of every stream beside it. With the recordings library
// (opts.history), a plot reaches back past its window: the recorded trend's means go before it.

import uPlot from "./vendor/uplot/uPlot.esm.js";
import { el, perFrame } from "./dom.js";

export const PALETTE = ["#4dabff", "#ffb020", "#3ddc97", "#ff6b81", "#b794f6", "#5ee7df",
                        "#f6e05e", "#f687b3", "#a0aec0", "#f56565"];
const WINDOW_S = 120;
const MAX_ROWS = 20000;
const HISTORY = [["2 min", 0], ["1 h", 3600], ["1 day", 86400], ["1 week", 7 * 86400]];

export class ProbePlot {
  constructor(parent, sensor, { history = null } = {}) {
    this.schedule = perFrame(() => this.render());
    this.history = history;
    this.hist = null; // {t: [...], cols: [[...] per stream]}: recorded means before the live rows
    this.sensor = sensor.name;
    this.streams = Object.keys(sensor.meta?.streams ?? {}).sort(naturalOrder);
    this.units = Object.fromEntries(this.streams.map((s) => [s, sensor.meta.streams[s].unit ?? ""]));
    this.t = [];
    this.cols = this.streams.map(() => []);
    this.updates = 0;
    this.points = 0;
    this.suspect = 0;
    this.last = {};
    this.marks = []; // alarm events on this sensor's streams: {t, level, transition, rule}
    this.chips = el("div", { class: "chips" });
    this.host = el("div", { class: "plot-host", "data-testid": `plot-${this.sensor}` });
    this.root = el("section", { class: "panel probes", "data-sensor": this.sensor },
      el("header", { class: "panel-head" },
        el("h2", {}, el("span", { class: "kind-dot probe" }), this.sensor,
          el("span", { class: "sub" }, `${sensor.driver} · ${this.streams.length} channels · last ${WINDOW_S / 60} min`)),
        this.historyPicker()),
      this.chips, this.host);
    parent.append(this.root);
    this.buildChips();
    this.buildPlot();
    new ResizeObserver(() => this.fit()).observe(this.host);
  }

  historyPicker() {
    if (!this.history) return null;
    const pick = el("select", { class: "small", "data-testid": `history-${this.sensor}`,
                                title: "Reach back into the recordings" },
      ...HISTORY.map(([label, s]) => el("option", { value: s }, label)));
    pick.addEventListener("change", () => this.reachBack(Number(pick.value)));
    return pick;
  }

  async reachBack(seconds) {
    this.hist = null;
    if (seconds > 0) {
      const toNs = (this.t[0] ?? Date.now() / 1e3) * 1e9;
      try {
        const trend = await this.history(this.streams.map((s) => `${this.sensor}/${s}`), toNs - seconds * 1e9, toNs);
        const key = (s) => trend.streams[`${this.sensor}/${s}`];
        const t = key(this.streams[0])?.t ?? [];
        this.hist = { t, cols: this.streams.map((s) => {
          const d = key(s);
          return d && d.t.length === t.length ? (d.mean ?? d.value) : t.map(() => null);
        }) };
      } catch (err) {
        console.warn(`sensorlink: no history for ${this.sensor}: ${err.message}`);
      }
    }
    this.rebuild = true;
    this.schedule();
  }

  data() {
    if (!this.hist?.t.length) return [this.t, ...this.cols];
    const h = this.hist;
    return [h.t.concat(this.t), ...this.cols.map((c, i) => (h.cols[i] ?? h.t.map(() => null)).concat(c))];
  }

  buildChips() {
    this.chipValues = {};
    this.chips.replaceChildren(...this.streams.map((s, i) => {
      this.chipValues[s] = el("span", { class: "chip-v", "data-testid": `probe-${this.sensor}/${s}` }, "—");
      return el("span", { class: "chip" },
        el("i", { style: `background:${PALETTE[i % PALETTE.length]}` }), s, this.chipValues[s]);
    }));
  }

  buildPlot() {
    if (this.plot) this.plot.destroy();
    const axis = { stroke: "#8b96a5", grid: { stroke: "rgba(255,255,255,0.06)", width: 1 },
                   ticks: { stroke: "rgba(255,255,255,0.12)", width: 1 },
                   font: "11px system-ui, sans-serif" };
    const unit = this.units[this.streams[0]] ?? "";
    const opts = {
      width: Math.max(200, this.host.clientWidth),
      height: 210,
      legend: { show: false },
      cursor: { drag: { x: false, y: false }, points: { size: 6 } },
      scales: { x: { time: true }, y: { auto: true } },
      axes: [
        { ...axis, space: 70, incrs: [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600,
                                      7200, 21600, 43200, 86400],
          values: (u, splits, _a, _s, step) => splits.map((t) => step >= 3600 ? dayClock(t) : clock(t)) },
        { ...axis, size: 56, values: (u, vals) => vals.map((v) => `${v.toFixed(1)}${unit ? " " + unit : ""}`) },
      ],
      hooks: { draw: [(u) => this.drawMarks(u)] },
      series: [{}, ...this.streams.map((s, i) => ({
        label: s, stroke: PALETTE[i % PALETTE.length], width: 1.5, spanGaps: true,
        points: { show: false },
      }))],
    };
    this.plot = new uPlot(opts, this.data(), this.host);
  }

  /** An alarm event on one of this sensor's streams: a vertical marker at its time. */
  markAlarm(event) {
    if (!["raised", "escalated", "cleared"].includes(event.transition)) return;
    if (this.marks.some((m) => m.rule === event.rule && m.seq === event.seq)) return; // seen on connect
    this.marks.push({ t: event.t_wall_ns / 1e9, level: event.level, transition: event.transition,
                      rule: event.rule, seq: event.seq });
    if (this.marks.length > 100) this.marks.shift();
    this.schedule();
  }

  drawMarks(u) {
    const g = u.ctx, { top, height } = u.bbox;
    g.save();
    g.lineWidth = 2 * (window.devicePixelRatio || 1);
    for (const m of this.marks) {
      const x = u.valToPos(m.t, "x", true);
      if (!Number.isFinite(x) || x < u.bbox.left || x > u.bbox.left + u.bbox.width) continue;
      g.strokeStyle = m.transition === "cleared" ? "#3ddc97" : m.level === "alarm" ? "#ff5d5d" : "#ffb020";
      g.setLineDash(m.transition === "cleared" ? [4, 4] : []);
      g.beginPath(); g.moveTo(x, top); g.lineTo(x, top + height); g.stroke();
    }
    g.restore();
  }

  fit() {
    if (this.plot && this.host.clientWidth > 0) {
      this.plot.setSize({ width: this.host.clientWidth, height: 210 });
    }
  }

  /** Rows [stream, seq, t_wall_ns, value, unit, quality] of this sensor. */
  add(rows) {
    let added = false;
    for (const [stream, , tNs, value, unit, quality] of rows) {
      const ch = stream.slice(this.sensor.length + 1);
      let idx = this.streams.indexOf(ch);
      if (idx < 0) {
        this.streams.push(ch);
        this.units[ch] = unit;
        this.cols.push(this.t.map(() => null));
        this.buildChips();
        this.rebuild = true;
        idx = this.streams.length - 1;
      }
      const t = tNs / 1e9;
      if (this.t.length && t < this.t[this.t.length - 1] - 1) {
        // Time went back: a replay was seeked or looped. Start the history again from here.
        this.t.length = 0;
        for (const c of this.cols) c.length = 0;
      }
      const n = this.t.length;
      if (n === 0 || t > this.t[n - 1]) {
        this.t.push(t);
        for (const c of this.cols) c.push(null);
      }
      // A reading older than the newest row (rare, a late batch) goes to the newest row.
      this.cols[idx][this.t.length - 1] = value;
      this.last[ch] = { value, unit, quality };
      if (quality !== "ok") this.suspect++;
      this.points++;
      added = true;
    }
    if (!added) return;
    const cut = this.t[this.t.length - 1] - WINDOW_S;
    let drop = 0;
    while (drop < this.t.length && (this.t[drop] < cut || this.t.length - drop > MAX_ROWS)) drop++;
    if (drop) {
      this.t.splice(0, drop);
      for (const c of this.cols) c.splice(0, drop);
    }
    this.schedule();
  }

  render() {
    if (this.rebuild) {
      this.rebuild = false;
      this.buildPlot();
    } else {
      this.plot.setData(this.data());
    }
    this.updates++;
    for (const [ch, { value, unit, quality }] of Object.entries(this.last)) {
      const chip = this.chipValues[ch];
      if (!chip) continue;
      chip.textContent = `${value.toFixed(2)} ${unit}`;
      chip.classList.toggle("suspect", quality !== "ok");
      chip.title = quality === "ok" ? "" : `quality: ${quality}`;
    }
  }

  reset() {
    // Keep the history across a reconnect: the gap itself shows that the link was down.
  }

  snapshot() {
    return { streams: [...this.streams], rows: this.t.length, points: this.points,
             history_rows: this.hist?.t.length ?? 0, history_from: this.hist?.t[0] ?? null,
             updates: this.updates, suspect: this.suspect, marks: this.marks.map((m) => ({ ...m })),
             last: Object.fromEntries(Object.entries(this.last).map(([k, v]) => [k, v.value])) };
  }
}

function clock(t) {
  const d = new Date(t * 1000);
  return [d.getHours(), d.getMinutes(), d.getSeconds()].map((n) => String(n).padStart(2, "0")).join(":");
}

function dayClock(t) {
  const d = new Date(t * 1000);
  return `${d.getMonth() + 1}/${d.getDate()} ${String(d.getHours()).padStart(2, "0")}:${String(d.getMinutes()).padStart(2, "0")}`;
}

function naturalOrder(a, b) {
  return a.localeCompare(b, undefined, { numeric: true });
}
