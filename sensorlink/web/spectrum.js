// A microphone's beam as a spectrogram (waterfall: time runs down, frequency across, colour is
// the level) from the service's "spectrum" rows, and its band levels as bars from the readings
// "<mic>/band/<name>" (dBFS: RMS relative to int16 full scale).

import { el, perFrame } from "./dom.js";

const ROWS = 160;
const BAR_FLOOR_DB = -100;
// Cold to hot, like the thermal maps: black, violet, red, orange, yellow, white.
const STOPS = [[0, 0, 0, 4], [0.25, 80, 18, 120], [0.5, 190, 40, 80], [0.7, 245, 110, 20],
               [0.88, 250, 210, 60], [1, 255, 255, 230]];
const LUT = buildLut();

export class SpectrumView {
  constructor(panel) {
    this.panel = panel;
    this.sensor = panel.sensor;
    this.bands = (panel.meta.bands ?? []).map((b) => b.name);
    this.levels = {};
    this.rows = 0;
    this.fMax = (panel.meta.rate ?? 16000) / 2;
    this.scheduleBars = perFrame(() => this.drawBars());
    this.waterfall = el("canvas", { class: "waterfall", width: 256, height: ROWS,
                                    "data-testid": `spectrogram-${this.sensor}`,
                                    title: "Spectrogram of the beam: time runs down, frequency across" });
    this.axis = el("div", { class: "freq-axis" });
    this.bars = el("canvas", { class: "band-bars", "data-testid": `band-bars-${this.sensor}`,
                               title: "Band levels of the beam, dBFS" });
    this.bandList = el("div", { class: "band-values muted small" });
    this.root = el("div", { class: "spectrum" },
      el("div", { class: "ro" }, el("span", { class: "k" }, "Spectrogram (beam)")), this.waterfall, this.axis,
      el("div", { class: "ro" }, el("span", { class: "k" }, "Band levels")), this.bars, this.bandList);
    panel.root.append(this.root);
    this.drawAxis();
    this.bars.classList.toggle("hidden", !this.bands.length);
  }

  drawAxis() {
    const ticks = [0, 0.25, 0.5, 0.75, 1].map((t) => t * this.fMax);
    this.axis.replaceChildren(...ticks.map((f, i) => el("span", { style: `left:${i * 25}%` },
      f >= 1000 ? `${(f / 1000).toFixed(f % 1000 ? 1 : 0)}k` : `${f}`)));
  }

  /** One "spectrum" message: a row at the bottom, the rest moves up. */
  onSpectrum(msg) {
    const levels = msg.levels;
    const cv = this.waterfall, g = cv.getContext("2d");
    if (cv.width !== levels.length) cv.width = levels.length;
    if (msg.f_max_hz !== this.fMax) { this.fMax = msg.f_max_hz; this.drawAxis(); }
    g.drawImage(cv, 0, 1, cv.width, cv.height - 1, 0, 0, cv.width, cv.height - 1);
    const row = g.createImageData(levels.length, 1);
    for (let i = 0; i < levels.length; i++) row.data.set(LUT[levels[i]], i * 4);
    g.putImageData(row, 0, cv.height - 1);
    this.rows++;
    this.lastRow = { seq: msg.seq, peak_hz: peakHz(levels, msg.f_max_hz),
                     peak_db: msg.floor_db + Math.max(...levels) / 255 * (msg.ceil_db - msg.floor_db) };
  }

  /** A band reading of the beam ("band/<name>"); raw channels' bands are listed, not drawn. */
  onBand(name, value) {
    if (!this.bands.includes(name)) {
      this.bands.push(name);
      this.bars.classList.remove("hidden");
    }
    this.levels[name] = value;
    this.scheduleBars();
  }

  drawBars() {
    const cv = this.bars, dpr = window.devicePixelRatio || 1;
    const W = cv.clientWidth || 300, H = 90;
    cv.width = Math.round(W * dpr); cv.height = Math.round(H * dpr);
    const g = cv.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, W, H);
    const n = this.bands.length, bw = W / Math.max(n, 1);
    g.font = "9px system-ui, sans-serif";
    g.textAlign = "center";
    this.bands.forEach((name, i) => {
      const v = this.levels[name];
      const frac = v === undefined ? 0 : Math.max(0, Math.min(1, (v - BAR_FLOOR_DB) / -BAR_FLOOR_DB));
      g.fillStyle = "#4dabff";
      g.fillRect(i * bw + 1, (H - 14) * (1 - frac), Math.max(1, bw - 2), (H - 14) * frac);
      g.fillStyle = "#8b96a5";
      if (n <= 24 || i % 2 === 0) g.fillText(name, i * bw + bw / 2, H - 3);
    });
    const top = Object.entries(this.levels).sort((a, b) => b[1] - a[1]).slice(0, 3);
    this.bandList.textContent = top.map(([k, v]) => `${k}: ${v.toFixed(1)} dBFS`).join(" · ");
  }

  snapshot() {
    return { rows: this.rows, bands: [...this.bands], levels: { ...this.levels },
             last_row: this.lastRow ? { ...this.lastRow } : null };
  }
}

function peakHz(levels, fMax) {
  let best = 0;
  for (let i = 1; i < levels.length; i++) if (levels[i] > levels[best]) best = i;
  return (best + 0.5) / levels.length * fMax;
}

function buildLut() {
  const out = [];
  for (let i = 0; i < 256; i++) {
    const t = i / 255;
    let k = 1;
    while (k < STOPS.length - 1 && STOPS[k][0] < t) k++;
    const [t0, ...c0] = STOPS[k - 1], [t1, ...c1] = STOPS[k];
    const u = (t - t0) / (t1 - t0 || 1);
    out.push(Uint8ClampedArray.from([...c0.map((c, j) => c + (c1[j] - c) * u), 255]));
  }
  return out;
}
