// Trends across recordings: any reading stream over hours to weeks, from the library's per-bucket
// aggregates (min/max band, mean line), down to the raw samples of one segment. Drag across the
// plot to zoom in: the service answers each window at the resolution it deserves (GET /api/trend).

import uPlot from "./vendor/uplot/uPlot.esm.js";
import { el } from "./dom.js";
import { PALETTE } from "./plots.js";

const NS = 1e9;
export const RANGES = [["1 h", 3600], ["8 h", 8 * 3600], ["1 day", 86400], ["1 week", 7 * 86400]];

/** GET a library route with the token in the Authorization header (never in the URL). */
export async function api(token, path, params = {}) {
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    for (const one of Array.isArray(v) ? v : [v]) query.append(k, String(one));
  }
  const res = await fetch(`/api/${path}?${query}`, { headers: { Authorization: `Bearer ${token}` },
                                                   cache: "no-store" });
  const body = await res.json().catch(() => ({ error: `HTTP ${res.status}` }));
  if (!res.ok) throw new Error(body.error ?? `HTTP ${res.status}`);
  return body;
}

export function fetchTrend(token, streams, fromNs, toNs, points = 600) {
  return api(token, "trend", { stream: streams, from_ns: Math.round(fromNs), to_ns: Math.round(toNs), points });
}

/** A trend's streams as uPlot columns on one time axis: [t, mean0, min0, max0, mean1, ...]. */
export function toColumns(trend, streams) {
  const times = new Set();
  for (const s of streams) for (const t of trend.streams[s]?.t ?? []) times.add(t);
  const t = [...times].sort((a, b) => a - b);
  const index = new Map(t.map((v, i) => [v, i]));
  const cols = [t];
  for (const s of streams) {
    const d = trend.streams[s] ?? { t: [] };
    const raw = trend.resolution === "raw";
    const mean = new Array(t.length).fill(null), lo = mean.slice(), hi = mean.slice();
    d.t.forEach((tt, i) => {
      const k = index.get(tt);
      mean[k] = raw ? d.value[i] : d.mean[i];
      lo[k] = raw ? d.value[i] : d.min[i];
      hi[k] = raw ? d.value[i] : d.max[i];
    });
    cols.push(mean, lo, hi);
  }
  return cols;
}

export class TrendView {
  constructor(parent, { token, notify }) {
    this.token = token;
    this.notify = notify;
    this.streams = [];
    this.chosen = new Set();
    this.window = null;
    this.last = null;
    this.draws = 0;
    this.picker = el("div", { class: "trend-streams", "data-testid": "trend-streams" });
    this.info = el("span", { class: "muted small", "data-testid": "trend-info" }, "");
    this.host = el("div", { class: "plot-host trend-host", "data-testid": "trend-plot" });
    const ranges = RANGES.map(([label, s]) => el("button", {
      class: "small", "data-testid": `trend-range-${label.replace(" ", "")}`,
      onclick: () => this.show(this.endNs() - s * NS, this.endNs()) }, label));
    this.root = el("section", { class: "panel trends" },
      el("header", { class: "panel-head" }, el("h2", {}, "Trends"),
        el("div", { class: "tools" }, ...ranges, this.info)),
      this.picker, this.host);
    parent.append(this.root);
    new ResizeObserver(() => this.plot?.setSize(this.size())).observe(this.host);
  }

  endNs() {
    return this.latestNs ?? Date.now() * 1e6;
  }

  setStreams(streams, latestNs) {
    this.streams = streams;
    this.latestNs = latestNs;
    if (!this.chosen.size) for (const s of streams.slice(0, 4)) this.chosen.add(s);
    this.picker.replaceChildren(...streams.map((s) => {
      const box = el("input", { type: "checkbox", checked: this.chosen.has(s), "data-stream": s });
      box.addEventListener("change", () => {
        if (box.checked) this.chosen.add(s); else this.chosen.delete(s);
        if (this.window) this.show(...this.window);
      });
      return el("label", { class: "check" }, box, s);
    }));
  }

  size() {
    return { width: Math.max(300, this.host.clientWidth), height: 260 };
  }

  /** Fetch and draw [fromNs, toNs) for the chosen streams. */
  async show(fromNs, toNs) {
    const streams = this.streams.filter((s) => this.chosen.has(s));
    this.window = [fromNs, toNs];
    if (!streams.length) return;
    const asked = performance.now();
    const seq = (this.asking = (this.asking ?? 0) + 1);
    let trend;
    try {
      trend = await fetchTrend(this.token(), streams, fromNs, toNs);
    } catch (err) {
      this.notify(`Trend: ${err.message}`, "error");
      return;
    }
    if (seq !== this.asking) return; // a newer window was asked for meanwhile
    this.draw(trend, streams);
    const ms = performance.now() - asked;
    const res = trend.resolution === "raw" ? "raw samples" : `${trend.bin_s} s buckets`;
    const points = streams.map((s) => trend.streams[s]?.t.length ?? 0);
    this.info.textContent = `${res} · ${points.reduce((a, b) => a + b, 0)} points · ${ms.toFixed(0)} ms`;
    this.last = { from_ns: trend.from_ns, to_ns: trend.to_ns, resolution: trend.resolution,
                  bin_s: trend.bin_s, streams, points, drawn_ms: ms,
                  min: streams.map((s) => Math.min(...(trend.streams[s]?.min ?? trend.streams[s]?.value ?? []).filter((v) => v !== null))),
                  max: streams.map((s) => Math.max(...(trend.streams[s]?.max ?? trend.streams[s]?.value ?? []).filter((v) => v !== null))),
                  t0: trend.streams[streams[0]]?.t[0] ?? null, t1: trend.streams[streams[0]]?.t.at(-1) ?? null };
  }

  draw(trend, streams) {
    const cols = toColumns(trend, streams);
    const series = [{}];
    const bands = [];
    streams.forEach((s, i) => {
      const colour = PALETTE[i % PALETTE.length];
      series.push({ label: s, stroke: colour, width: 1.5, spanGaps: false, points: { show: trend.resolution === "raw" } },
                  { label: `${s} min`, stroke: "transparent", points: { show: false } },
                  { label: `${s} max`, stroke: "transparent", points: { show: false } });
      bands.push({ series: [3 * i + 3, 3 * i + 2], fill: `${colour}33` });
    });
    this.plot?.destroy();
    const axis = { stroke: "#8b96a5", grid: { stroke: "rgba(255,255,255,0.06)", width: 1 } };
    this.plot = new uPlot({
      ...this.size(), legend: { show: false }, series, bands,
      cursor: { drag: { x: true, y: false, setScale: false } },
      scales: { x: { time: true } }, axes: [axis, { ...axis, size: 56 }],
      hooks: { setSelect: [(u) => {
        if (u.select.width < 4) return;
        const a = u.posToVal(u.select.left, "x"), b = u.posToVal(u.select.left + u.select.width, "x");
        u.setSelect({ width: 0, height: 0 }, false);
        this.show(a * NS, b * NS); // zoom: ask for the narrower window at its own resolution
      }] },
    }, cols, this.host);
    this.draws++;
  }

  snapshot() {
    return { streams: [...this.streams], chosen: [...this.chosen], draws: this.draws,
             last: this.last ? structuredClone(this.last) : null };
  }
}
