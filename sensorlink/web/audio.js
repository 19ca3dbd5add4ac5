// One microphone array: plays its audio track (the steered beam), shows the sound level, and a
// compass with the measured direction of arrival and the beam's direction; clicking the compass
// steers the beam there, "Follow" lets the beam track the direction of arrival again.
// Angles: 0° = +x of the array (right), counter-clockwise, as the service reports them.

import { el, perFrame, wrapDeg } from "./dom.js";
import { SpectrumView } from "./spectrum.js";

const LEVEL_FLOOR_DB = -80;
const HISTORY = 40;

export class MicrophonePanel {
  constructor(parent, sensor, { conn, notify, canSteer }) {
    this.schedule = perFrame(() => this.draw());
    this.sensor = sensor.name;
    this.meta = sensor.meta || {};
    this.conn = conn;
    this.notify = notify;
    this.canSteer = canSteer;
    this.doa = null;
    this.level = null;
    this.peak = LEVEL_FLOOR_DB;
    // The beam's current direction as the service reports it (status "beams"; null while it
    // follows the DOA), and whether it follows the DOA (known from a reply or a null).
    this.beam = undefined;
    this.follow = null;
    this.history = [];
    this.hover = null;
    this.blocked = false;
    this.build(sensor);
    this.spectrum = new SpectrumView(this);
    parent.append(this.root);
  }

  onSpectrum(msg) {
    this.spectrum.onSpectrum(msg);
  }

  build(sensor) {
    this.audio = el("audio", { autoplay: true });
    this.compass = el("canvas", { class: "compass", "data-testid": `compass-${this.sensor}`,
      title: this.canSteer ? "Click to steer the beam toward a direction" : "Steering needs the operator token" });
    this.doaText = el("span", { class: "big v", "data-testid": `doa-${this.sensor}` }, "—");
    this.beamText = el("span", { class: "big v beam", "data-testid": `beam-${this.sensor}` }, "—");
    this.levelText = el("span", { class: "v", "data-testid": `level-${this.sensor}` }, "—");
    this.meterFill = el("div", { class: "meter-fill" });
    this.meterPeak = el("div", { class: "meter-peak" });
    this.followBtn = el("button", { class: "follow", disabled: !this.canSteer,
      title: "Let the beam follow the measured direction of arrival" }, "Follow DOA");
    this.listenBtn = el("button", { class: "listen primary hidden", "data-testid": `listen-${this.sensor}` },
      "🔈 Click to listen");
    this.muteBtn = el("button", { class: "mute small", title: "Mute / unmute this microphone" }, "Mute");
    this.audioState = el("span", { class: "audio-state" }, "no audio yet");
    const rate = this.meta.rate ? `${(this.meta.rate / 1000).toFixed(0)} kHz` : "";
    const mics = this.meta.positions ? `${this.meta.positions.length} mics` : "";
    this.root = el("section", { class: "panel mic", "data-sensor": this.sensor },
      el("header", { class: "panel-head" },
        el("h2", {}, el("span", { class: "kind-dot microphone" }), this.sensor,
          el("span", { class: "sub" }, [sensor.driver, mics, rate].filter(Boolean).join(" · ")))),
      el("div", { class: "mic-body" },
        el("div", { class: "compass-wrap" }, this.compass),
        el("div", { class: "mic-side" },
          el("div", { class: "ro-big" }, el("span", { class: "k" }, "Direction of arrival"), this.doaText),
          el("div", { class: "ro-big" }, el("span", { class: "k" }, "Beam"), this.beamText),
          el("div", { class: "steer-row" }, this.followBtn),
          el("div", { class: "ro" }, el("span", { class: "k" }, "Level"), this.levelText),
          el("div", { class: "meter", title: "Sound level at the array, dBFS" },
            this.meterFill, this.meterPeak,
            el("div", { class: "meter-scale" }, ...[-80, -60, -40, -20, 0].map((d) =>
              el("span", { style: `left:${((d - LEVEL_FLOOR_DB) / -LEVEL_FLOOR_DB) * 100}%` }, `${d}`)))),
          el("div", { class: "listen-row" }, this.listenBtn, this.muteBtn, this.audioState))),
      this.audio);

    this.compass.addEventListener("mousemove", (ev) => {
      this.hover = this.angleAt(ev);
      this.draw();
    });
    this.compass.addEventListener("mouseleave", () => {
      this.hover = null;
      this.draw();
    });
    this.compass.addEventListener("click", (ev) => {
      if (!this.canSteer) {
        this.notify("Steering needs the operator token", "error");
        return;
      }
      const a = this.angleAt(ev);
      if (a !== null) this.steer(Math.round(a));
    });
    this.followBtn.addEventListener("click", () => this.steer(null));
    this.listenBtn.addEventListener("click", () => this.play());
    this.muteBtn.addEventListener("click", () => {
      this.audio.muted = !this.audio.muted;
      this.updateAudioState();
    });
    for (const e of ["playing", "pause", "volumechange", "emptied"]) {
      this.audio.addEventListener(e, () => this.updateAudioState());
    }
    new ResizeObserver(() => this.resize()).observe(this.compass.parentElement);
  }

  setStream(stream) {
    this.audio.srcObject = stream;
    this.play();
  }

  async play() {
    try {
      await this.audio.play();
      this.blocked = false;
    } catch (err) {
      // Autoplay policy: sound may start only after the user interacts with the page.
      this.blocked = err.name === "NotAllowedError";
      if (!this.blocked) this.notify(`${this.sensor}: audio: ${err.message}`, "error");
    }
    this.updateAudioState();
  }

  updateAudioState() {
    const a = this.audio;
    this.listenBtn.classList.toggle("hidden", !this.blocked);
    this.muteBtn.textContent = a.muted ? "Unmute" : "Mute";
    this.muteBtn.classList.toggle("active", a.muted);
    let text;
    if (!a.srcObject) text = "no audio yet";
    else if (this.blocked) text = "blocked by the browser until you click";
    else if (a.paused) text = "paused";
    else text = a.muted ? "playing (muted)" : "playing";
    this.audioState.textContent = text;
    this.audioState.className = `audio-state ${!a.paused && !a.muted ? "on" : ""}`;
  }

  async steer(angle) {
    try {
      const result = (await this.conn.request("steer", { sensor: this.sensor, angle_deg: angle })) || {};
      this.follow = typeof result.follows_doa === "boolean" ? result.follows_doa : angle === null;
      const fixed = "angle_deg" in result ? result.angle_deg : angle;
      this.beam = this.follow ? null : fixed;
      this.lastSteer = { angle, result };
      this.draw();
    } catch (err) {
      this.notify(`${this.sensor}: beam not steered: ${err.message}`, "error");
    }
  }

  reset() {
    this.audio.srcObject = null;
    this.blocked = false;
    this.updateAudioState();
  }

  onReading(channel, value) {
    if (channel.startsWith("band/")) {
      this.spectrum.onBand(channel.slice(5), value);
      return;
    }
    if (channel === "doa") {
      this.doa = wrapDeg(value);
      this.history.push(this.doa);
      if (this.history.length > HISTORY) this.history.shift();
    } else if (channel === "level") {
      this.level = value;
      this.peak = Math.max(value, this.peak - 0.5);
    }
    this.schedule();
  }

  onBeam(angle) {
    if (angle === null) this.follow = true;
    if (angle === this.beam) return;
    this.beam = angle;
    this.schedule();
  }


  get beamAngle() {
    return typeof this.beam === "number" ? wrapDeg(this.beam) : this.doa;
  }

  angleAt(ev) {
    const r = this.compass.getBoundingClientRect();
    const dx = ev.clientX - (r.left + r.width / 2), dy = ev.clientY - (r.top + r.height / 2);
    if (Math.hypot(dx, dy) < 6) return null;
    return wrapDeg(Math.atan2(-dy, dx) * 180 / Math.PI);
  }

  resize() {
    const dpr = window.devicePixelRatio || 1;
    const size = Math.min(this.compass.parentElement.clientWidth, 260);
    this.compass.style.width = this.compass.style.height = `${size}px`;
    this.compass.width = this.compass.height = Math.round(size * dpr);
    this.draw();
  }

  draw() {
    this.doaText.textContent = this.doa === null ? "—" : `${this.doa.toFixed(0)}°`;
    const follow = this.follow === true;
    const angle = this.beamAngle;
    const how = follow ? " · follows DOA" : this.follow === false ? " · fixed" : "";
    this.beamText.textContent = this.beam === undefined && this.follow === null ? "—"
      : angle === null ? "follows DOA" : `${angle.toFixed(0)}°${how}`;
    this.followBtn.classList.toggle("active", follow);
    if (this.level !== null) {
      this.levelText.textContent = `${this.level.toFixed(1)} dBFS`;
      const pct = (v) => `${Math.max(0, Math.min(1, (v - LEVEL_FLOOR_DB) / -LEVEL_FLOOR_DB)) * 100}%`;
      this.meterFill.style.width = pct(this.level);
      this.meterPeak.style.left = pct(this.peak);
    }
    this.drawCompass();
  }

  drawCompass() {
    const cv = this.compass, g = cv.getContext("2d");
    const dpr = window.devicePixelRatio || 1;
    const S = cv.width / dpr;
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, S, S);
    const c = S / 2, R = S / 2 - 30;
    const pt = (deg, r) => [c + r * Math.cos(deg * Math.PI / 180), c - r * Math.sin(deg * Math.PI / 180)];
    g.fillStyle = "#0d1117";
    g.beginPath(); g.arc(c, c, R, 0, 2 * Math.PI); g.fill();
    g.strokeStyle = "#3a4452"; g.lineWidth = 1;
    for (const rr of [R, R * 0.66, R * 0.33]) { g.beginPath(); g.arc(c, c, rr, 0, 2 * Math.PI); g.stroke(); }
    for (let d = 0; d < 360; d += 10) {
      const major = d % 30 === 0;
      const [x0, y0] = pt(d, R - (major ? 8 : 4)), [x1, y1] = pt(d, R);
      g.strokeStyle = major ? "#8b96a5" : "#4a5563";
      g.beginPath(); g.moveTo(x0, y0); g.lineTo(x1, y1); g.stroke();
    }
    g.fillStyle = "#8b96a5";
    g.font = "11px system-ui, sans-serif";
    g.textAlign = "center"; g.textBaseline = "middle";
    for (let d = 0; d < 360; d += 45) {
      const [x, y] = pt(d, R + 15);
      g.fillText(`${d}°`, x, y);
    }
    // The array itself, to scale within the inner ring, so "0°" has a physical meaning.
    const pos = this.meta.positions;
    if (Array.isArray(pos) && pos.length) {
      const span = Math.max(...pos.map(([x, y]) => Math.hypot(x, y))) || 1;
      g.fillStyle = "#c9d1d9";
      for (const [x, y] of pos) {
        g.beginPath(); g.arc(c + x / span * R * 0.18, c - y / span * R * 0.18, 2.5, 0, 2 * Math.PI); g.fill();
      }
    }
    const beam = this.beamAngle;
    if (beam !== null && beam !== undefined) {
      const half = 14 * Math.PI / 180, b = -beam * Math.PI / 180;
      g.fillStyle = "rgba(77,171,255,0.18)";
      g.beginPath(); g.moveTo(c, c); g.arc(c, c, R, b - half, b + half); g.closePath(); g.fill();
      g.strokeStyle = "#4dabff"; g.lineWidth = 2;
      g.setLineDash(this.follow === true ? [5, 4] : []);
      const [bx, by] = pt(beam, R);
      g.beginPath(); g.moveTo(c, c); g.lineTo(bx, by); g.stroke();
      g.setLineDash([]);
    }
    this.history.forEach((d, i) => {
      const [x, y] = pt(d, R * 0.86);
      g.fillStyle = `rgba(255,176,32,${(0.08 + 0.5 * i / HISTORY).toFixed(3)})`;
      g.beginPath(); g.arc(x, y, 2.5, 0, 2 * Math.PI); g.fill();
    });
    if (this.doa !== null) arrow(g, c, pt, this.doa, R * 0.92, "#ffb020");
    if (this.hover !== null && this.canSteer) {
      const [hx, hy] = pt(this.hover, R);
      g.strokeStyle = "rgba(255,255,255,0.45)"; g.lineWidth = 1;
      g.setLineDash([2, 3]);
      g.beginPath(); g.moveTo(c, c); g.lineTo(hx, hy); g.stroke();
      g.setLineDash([]);
      g.fillStyle = "#e6edf3";
      g.fillText(`steer ${this.hover.toFixed(0)}°`, c, c + R * 0.55);
    }
  }

  snapshot() {
    return { doa: this.doa, level: this.level, beam: this.beam ?? null, follow: this.follow,
             beam_angle: this.beamAngle ?? null, steer_result: this.lastSteer?.result ?? null,
             playing: !this.audio.paused && !!this.audio.srcObject, blocked: this.blocked,
             muted: this.audio.muted, current_time: this.audio.currentTime,
             spectrum: this.spectrum.snapshot() };
  }
}

function arrow(g, c, pt, deg, len, colour) {
  const [x, y] = pt(deg, len);
  const [l1x, l1y] = pt(deg + 8, len - 14), [l2x, l2y] = pt(deg - 8, len - 14);
  g.strokeStyle = colour; g.fillStyle = colour; g.lineWidth = 3;
  g.beginPath(); g.moveTo(c, c); g.lineTo(x, y); g.stroke();
  g.beginPath(); g.moveTo(x, y); g.lineTo(l1x, l1y); g.lineTo(l2x, l2y); g.closePath(); g.fill();
  g.beginPath(); g.arc(c, c, 4, 0, 2 * Math.PI); g.fill();
}
