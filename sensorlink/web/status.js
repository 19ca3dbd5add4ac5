// The status panel: this viewer's link (state, latency, drops, message counts) and one row per
// sensor with its driver state, sample rate, counters and last error, as the service reports them.

import { el, fmtRate } from "./dom.js";

const STATE_CLASS = { connected: "ok", starting: "warn", reconnecting: "warn", failed: "bad", stopped: "idle",
                      connecting: "warn", disconnected: "warn", listening: "ok" };

export class StatusPanel {
  constructor(parent) {
    this.rows = new Map();
    this.sensors = {};
    this.viewer = {};
    this.lastStatusAt = null;
    this.link = {};
    const kv = (key, label, title = "", wide = false) => {
      this.link[key] = el("span", { class: wide ? "v wrap" : "v", "data-testid": `link-${key}` }, "—");
      return el("div", { class: wide ? "ro wide" : "ro", title }, el("span", { class: "k" }, label),
        this.link[key]);
    };
    this.tbody = el("tbody");
    this.exportsBody = el("tbody");
    this.exportsTable = el("table", { class: "sensors exports hidden" },
      el("thead", {}, el("tr", {},
        el("th", {}, "Export"), el("th", {}, "State"), el("th", { class: "num" }, "Queued"),
        el("th", {}, "Target · detail"))),
      this.exportsBody);
    this.root = el("section", { class: "panel status" },
      el("header", { class: "panel-head" }, el("h2", {}, "Status")),
      el("div", { class: "link-grid" },
        kv("path", "Path", "How the data reaches this page: straight from the service, or via a Janus room"),
        kv("rtt", "Latency (RTT)", "Round trip of a ping over the control data channel"),
        kv("drops", "Viewer drops", "Samples the service dropped because this viewer could not keep up"),
        kv("readings", "Readings", "Readings received since the page opened"),
        kv("frames", "Thermal frames", "Exact °C frames received / video frames shown"),
        kv("invalid", "Invalid messages", "Messages that broke the schemas and were dropped"),
        kv("status-age", "Status", "Age of the last status message"),
        kv("failure", "Last failure", "Why the last connection attempt failed, as the service " +
           "or this browser said", true)),
      el("table", { class: "sensors" },
        el("thead", {}, el("tr", {},
          el("th", {}, "Sensor"), el("th", {}, "State"), el("th", { class: "num" }, "Rate"),
          el("th", {}, "Detail · counters"))),
        this.tbody),
      this.exportsTable);
    parent.append(this.root);
  }

  setSensors(sensors) {
    this.rows.clear();
    this.tbody.replaceChildren();
    for (const s of sensors) this.row(s.name, s.kind, s.driver);
  }

  row(name, kind, driver) {
    let r = this.rows.get(name);
    if (r) return r;
    r = {
      state: el("span", { class: "pill idle", "data-testid": `state-${name}` }, "waiting"),
      rate: el("td", { class: "num" }, "—"),
      counters: el("div", { class: "counters" }),
      detail: el("div", { class: "detail" }, ""),
    };
    this.tbody.append(el("tr", { "data-sensor": name },
      el("td", {}, el("span", { class: `kind-dot ${kind}` }), el("b", {}, name),
        el("div", { class: "muted small" }, `${kind}${driver ? " · " + driver : ""}`)),
      el("td", {}, r.state), r.rate, el("td", {}, r.detail, r.counters)));
    this.rows.set(name, r);
    return r;
  }

  onStatus(msg) {
    this.lastStatusAt = performance.now();
    this.viewer = msg.viewer ?? {};
    for (const s of msg.sensors) {
      this.sensors[s.sensor] = s;
      const r = this.row(s.sensor, s.kind, s.driver);
      r.state.textContent = s.state;
      r.state.className = `pill ${STATE_CLASS[s.state] ?? "idle"}`;
      r.rate.textContent = fmtRate(s.rate_hz);
      const entries = Object.entries(s.counters);
      r.counters.replaceChildren(...entries.map(([k, v]) =>
        el("span", { class: `ctr ${/drop|error|lost|resync|reconnect|timeout/.test(k) && v > 0 ? "warn" : ""}` },
          `${k.replaceAll("_", " ")} `, el("b", {}, v.toLocaleString()))));
      r.detail.textContent = s.detail || (s.state === "connected" ? "ok" : "");
      r.detail.title = s.detail || "";
      r.detail.classList.toggle("bad", s.state === "failed" || s.state === "reconnecting");
    }
  }

  /** {reason, at} of the last failed attempt (signaling.js), or null: none since connecting. */
  setFailure(failure) {
    const v = this.link.failure;
    v.textContent = failure ? failure.reason : "—";
    v.title = failure ? `at ${failure.at.toLocaleTimeString()}` : "";
    v.classList.toggle("bad", !!failure);
  }

  /** {kind: "direct"|"janus", text, url}: which way the data comes (see links.js). */
  setPath(path) {
    this.link.path.textContent = path.text;
    this.link.path.title = path.url ?? "";
    this.link.path.dataset.kind = path.kind;
  }

  /** Where the service hands data on besides the viewers (MQTT, an SFU room). */
  onExports(exports) {
    this.exportsTable.classList.toggle("hidden", !exports?.length);
    if (!exports?.length) return;
    this.exportsBody.replaceChildren(...exports.map((x) => this.exportRow(x)));
  }

  exportRow(x) {
    const counters = [["sent", x.sent], ["dropped", x.dropped], ["connects", x.connects]]
      .filter(([, v]) => Number.isFinite(v))
      .map(([k, v]) => el("span", { class: `ctr ${k === "dropped" && v > 0 ? "warn" : ""}` },
        `${k} `, el("b", { "data-testid": `export-${k}-${x.name}` }, v.toLocaleString())));
    const detail = el("div", { class: `detail ${x.state === "failed" ? "bad" : ""}` },
      [x.target, x.detail].filter(Boolean).join(" · "));
    return el("tr", { "data-export": x.name },
      el("td", {}, el("b", {}, x.name), el("div", { class: "muted small" }, x.kind)),
      el("td", {}, el("span", { class: `pill ${STATE_CLASS[x.state] ?? "idle"}`,
                                "data-testid": `export-state-${x.name}` }, x.state)),
      el("td", { class: "num", "data-testid": `export-queued-${x.name}` }, (x.queued ?? 0).toLocaleString()),
      el("td", {}, detail, el("div", { class: "counters" }, ...counters)));
  }

  /** Refresh the link figures (called a few times a second by the app). */
  tick({ rttMs, counts }) {
    const l = this.link;
    l.rtt.textContent = rttMs === null || rttMs === undefined ? "—" : `${rttMs.toFixed(1)} ms`;
    // "viewer" also carries sent totals; only what this viewer lost counts as drops.
    const drops = Object.entries(this.viewer)
      .filter(([k]) => /drop|skip|lost/.test(k)).reduce((a, [, v]) => a + (Number(v) || 0), 0);
    l.drops.textContent = drops.toLocaleString();
    l.drops.title = Object.entries(this.viewer).map(([k, v]) => `${k}: ${v}`).join("\n");
    l.drops.classList.toggle("warn", drops > 0);
    l.readings.textContent = counts.readings.toLocaleString();
    l.frames.textContent = `${counts.frames.toLocaleString()} / ${counts.video_frames.toLocaleString()} video`;
    l.invalid.textContent = counts.invalid.toLocaleString();
    l.invalid.classList.toggle("bad", counts.invalid > 0);
    const age = this.lastStatusAt === null ? null : (performance.now() - this.lastStatusAt) / 1000;
    l["status-age"].textContent = age === null ? "—" : age < 3 ? "current" : `stale (${age.toFixed(0)} s)`;
    l["status-age"].classList.toggle("warn", age !== null && age >= 3);
  }
}
