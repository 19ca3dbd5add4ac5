// The Recordings view: the service's recordings library by day, each run of contiguous segments
// on a 24-hour bar with its alarm marks; "Replay" plays a run in this page (a replay connection of
// its own, across segment boundaries as one timeline), "Delete" (operators) removes it, and the
// Trends panel draws any reading stream over hours to weeks.

import { el, fmtBytes } from "./dom.js";
import { TrendView, api } from "./trends.js";

const DAY_MS = 86400e3;

function clock(ns) {
  return new Date(ns / 1e6).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

export class RecordingsView {
  /**
   * @param {HTMLElement} host  where the view goes (hidden until opened)
   * @param {object} opts  token(): the page's token; request(type, fields): a control request;
   *   notify(text, level); replay({from_ns, to_ns}): switch the page to a replay of that window
   */
  constructor(host, { token, request, notify, replay }) {
    this.host = host;
    this.token = token;
    this.request = request;
    this.notify = notify;
    this.replay = replay;
    this.operator = false;
    this.listing = null;
    this.loads = 0;
    this.button = el("button", { class: "small hidden", "data-testid": "recordings-open",
                                 title: "Recorded sessions by day, replay and trends" }, "Recordings");
    this.button.addEventListener("click", () => this.toggle());
    this.days = el("div", { class: "days", "data-testid": "recordings-days" });
    this.summary = el("span", { class: "muted small" }, "");
    const close = el("button", { class: "small", "data-testid": "recordings-close" }, "Close");
    close.addEventListener("click", () => this.toggle(false));
    const reload = el("button", { class: "small" }, "Reload");
    reload.addEventListener("click", () => this.load());
    const list = el("section", { class: "panel recordings" },
      el("header", { class: "panel-head" }, el("h2", {}, "Recordings"),
        el("div", { class: "tools" }, this.summary, reload, close)),
      this.days);
    host.append(list);
    this.trends = new TrendView(host, { token, notify });
  }

  /** The home service's hello: show the button when it keeps a library. */
  configure(hello, { home }) {
    this.operator = hello.role === "operator";
    const offered = !!hello.library && home;
    this.button.classList.toggle("hidden", !offered);
    if (!offered) this.toggle(false);
  }

  get open() {
    return !this.host.classList.contains("hidden");
  }

  toggle(show = !this.open) {
    this.host.classList.toggle("hidden", !show);
    document.body.classList.toggle("library-open", show);
    this.button.classList.toggle("active", show);
    if (show) this.load();
  }

  async load() {
    let listing;
    try {
      listing = await api(this.token(), "recordings", { tz_offset_min: -new Date().getTimezoneOffset() });
    } catch (err) {
      this.notify(`Recordings: ${err.message}`, "error");
      return;
    }
    this.listing = listing;
    this.loads++;
    this.render(listing);
    const latest = listing.days[0]?.end_ns ?? Date.now() * 1e6;
    this.trends.setStreams(listing.streams, latest);
    if (!this.trends.window && listing.streams.length) this.trends.show(latest - DAY_MS * 1e6, latest);
  }

  render(listing) {
    const runs = listing.days.reduce((n, d) => n + d.runs.length, 0);
    this.summary.textContent = `${listing.days.length} days · ${runs} runs` +
      (listing.deleted.length ? ` · ${listing.deleted.length} recent deletions` : "");
    this.days.replaceChildren(...listing.days.map((day) => el("div", { class: "day", "data-day": day.day },
      el("div", { class: "day-head" }, el("strong", {}, day.day),
        el("span", { class: "muted small" }, `${day.segments} segments · ${fmtBytes(day.bytes)}`)),
      ...day.runs.map((run) => this.runRow(day, run)))));
    if (!listing.days.length) this.days.append(el("p", { class: "muted" }, "Nothing recorded yet."));
  }

  runRow(day, run) {
    const midnight = new Date(`${day.day}T00:00:00`).getTime();
    const pos = (ns) => Math.min(100, Math.max(0, ((ns / 1e6 - midnight) / DAY_MS) * 100));
    const bar = el("div", { class: "day-bar" },
      el("span", { class: "run-extent", style: `left:${pos(run.start_ns)}%;width:${Math.max(pos(run.end_ns) - pos(run.start_ns), 0.3)}%` }),
      ...run.alarms.map(([t, rule, level, transition]) => el("i", {
        class: `alarm-mark ${level}`, style: `left:${pos(t)}%`, "data-testid": "alarm-mark",
        title: `${clock(t)} ${rule}: ${transition} (${level})` })));
    const states = Object.entries(run.states).filter(([s]) => s !== "complete")
      .map(([s, n]) => el("span", { class: `badge state ${s}` }, `${n} ${s === "open" ? "recording" : s}`));
    // Asked a little wider than the run: times cross to the browser as doubles (exact to ~0.1 µs).
    const window = { from_ns: run.start_ns - 1e6, to_ns: run.end_ns + 1e6 };
    const replayable = Object.entries(run.states).some(([s]) => s !== "open");
    const replay = el("button", { class: "small primary", "data-testid": "replay-run", disabled: !replayable },
      "▶ Replay");
    replay.addEventListener("click", () => this.replay(window));
    const trend = el("button", { class: "small" }, "Trend");
    trend.addEventListener("click", () => this.trends.show(run.start_ns, run.end_ns));
    const remove = el("button", { class: `small danger${this.operator ? "" : " hidden"}`, "data-testid": "delete-run" }, "Delete");
    remove.addEventListener("click", () => this.remove(run, window));
    return el("div", { class: "run", "data-testid": "run", "data-start-ns": String(run.start_ns) },
      el("span", { class: "run-time mono" }, `${clock(run.start_ns)} – ${clock(run.end_ns)}`),
      bar,
      el("span", { class: "small" }, run.sensors.join(", ")),
      el("span", { class: "muted small" }, `${run.segments} seg · ${fmtBytes(run.bytes)}`),
      ...states, replay, trend, remove);
  }

  async remove(run, window) {
    if (!confirm(`Delete ${run.segments} segment(s) recorded ${clock(run.start_ns)} – ${clock(run.end_ns)}?`)) return;
    try {
      const result = await this.request("recordings", { action: "delete", ...window });
      this.notify(`Deleted ${result.deleted.length} segment(s)` +
        (result.kept_open.length ? `; ${result.kept_open.length} being recorded kept` : ""));
    } catch (err) {
      this.notify(`Not deleted: ${err.message}`, "error");
    }
    this.load();
  }

  snapshot() {
    const l = this.listing;
    return { open: this.open, loads: this.loads,
             days: l ? l.days.map((d) => ({ day: d.day, segments: d.segments,
               runs: d.runs.map((r) => ({ start_ns: r.start_ns, end_ns: r.end_ns, segments: r.segments,
                                           alarms: r.alarms.length, states: { ...r.states } })) })) : [],
             streams: l ? [...l.streams] : [], trend: this.trends.snapshot() };
  }
}
