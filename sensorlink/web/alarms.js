// Alarms: the banner under the top bar (how many, the worst level, how many wait for an
// acknowledgement) and the list (state, since, value, limit, who acknowledged), with an Ack
// button per alarm. The service sends the whole list on connect and with every change
// ("alarms" messages on the status channel, schemas/alarms.schema.json); the events also go to
// whoever listens (markers on the plots and the thermal regions).

import { el } from "./dom.js";

const LOG_MAX = 200;

export class AlarmPanel {
  constructor(bannerHost, listHost, { conn, notify }) {
    this.conn = conn;
    this.notify = notify;
    this.operator = false;
    this.active = new Map(); // rule → latest event, while not over
    this.rules = new Map();
    this.log = []; // {rule, seq, transition, level, t_wall_ns, shown_at_ms}: when the page showed it
    this.listeners = [];
    this.acks = []; // {rule, ok, error, field}
    this.count = el("b", { "data-testid": "alarm-count" }, "0");
    this.summary = el("span", { class: "summary" }, "");
    this.banner = el("div", { class: "alarm-banner hidden", role: "alert", "data-testid": "alarm-banner" },
      el("span", { class: "bell", "aria-hidden": "true" }, "▲"), this.count, this.summary);
    this.banner.addEventListener("click", () => this.root.scrollIntoView({ behavior: "smooth" }));
    bannerHost.append(this.banner);
    this.tbody = el("tbody");
    this.empty = el("p", { class: "muted small" }, "No alarm stands.");
    this.root = el("section", { class: "panel alarms", "data-testid": "alarm-list" },
      el("header", { class: "panel-head" }, el("h2", {}, "Alarms"),
        this.rulesNote = el("span", { class: "sub" }, "")),
      el("table", { class: "sensors alarm-table" },
        el("thead", {}, el("tr", {}, el("th", {}, "Rule · stream"), el("th", {}, "State"),
          el("th", {}, "Since"), el("th", { class: "num" }, "Value · limit"), el("th", {}, "Ack"))),
        this.tbody),
      this.empty);
    listHost.append(this.root);
  }

  configure(hello) {
    this.operator = hello.role === "operator";
    this.render();
  }

  /** Call `fn(event)` for every alarm event the service sends. */
  onEvent(fn) {
    this.listeners.push(fn);
  }

  /** An "alarms" message: the list, and the event that changed it (absent on connect). */
  onMessage(msg) {
    if (msg.rules) {
      this.rules = new Map(msg.rules.map((r) => [r.name, r]));
      this.rulesNote.textContent = `${msg.rules.length} rule${msg.rules.length === 1 ? "" : "s"}`;
    }
    this.active = new Map(msg.active.map((e) => [e.rule, e]));
    this.render();
    const shownAt = Date.now();
    if (msg.event) {
      this.log.push({ rule: msg.event.rule, seq: msg.event.seq, transition: msg.event.transition,
                      level: msg.event.level, t_wall_ns: msg.event.t_wall_ns, shown_at_ms: shownAt });
      if (this.log.length > LOG_MAX) this.log.shift();
      for (const fn of this.listeners) fn(msg.event);
    } else {
      // The list on connect: what stands was raised before this page opened; mark it too.
      for (const e of this.active.values()) for (const fn of this.listeners) fn(e);
    }
  }

  reset() {
    this.active.clear();
    this.render();
  }

  render() {
    const list = [...this.active.values()].sort((a, b) =>
      (b.level === "alarm") - (a.level === "alarm") || a.since_wall_ns - b.since_wall_ns);
    const unacked = list.filter((e) => !e.acknowledged).length;
    const worst = list.some((e) => e.active && e.level === "alarm") ? "alarm"
      : list.some((e) => e.active) ? "warning" : "cleared";
    this.banner.classList.toggle("hidden", list.length === 0);
    this.banner.className = `alarm-banner ${worst}${list.length ? "" : " hidden"}`;
    this.banner.dataset.level = worst;
    this.count.textContent = String(list.length);
    this.summary.textContent = list.length === 0 ? "" :
      ` alarm${list.length === 1 ? "" : "s"}${unacked ? ` · ${unacked} unacknowledged` : ""}: ` +
      list.slice(0, 3).map((e) => e.rule).join(", ") + (list.length > 3 ? " …" : "");
    this.empty.classList.toggle("hidden", list.length > 0);
    this.tbody.replaceChildren(...list.map((e) => this.row(e)));
  }

  row(e) {
    const state = `${e.level}${e.active ? "" : " · cleared"}${e.acknowledged ? " · acknowledged" : ""}`;
    const ack = e.acknowledged
      ? el("span", { class: "muted small", "data-testid": `acked-${e.rule}` }, e.by ? `by ${e.by}` : "—")
      : el("button", { class: "small ack", "data-testid": `ack-${e.rule}`,
                       title: this.operator ? "I have seen this alarm" : "Acknowledging needs the operator token",
                       onclick: () => this.acknowledge(e.rule) }, "Ack");
    const fmt = (v) => (v === null || v === undefined ? "—" : Number(v).toPrecision(4));
    return el("tr", { "data-rule": e.rule, class: `alarm-row ${e.level} ${e.active ? "active" : "cleared"}` },
      el("td", {}, el("b", {}, e.rule), el("div", { class: "muted small" }, e.stream),
        el("div", { class: "detail small" }, e.message)),
      el("td", {}, el("span", { class: `pill ${e.level === "alarm" ? "bad" : "warn"}`,
                                "data-testid": `alarm-state-${e.rule}` }, state)),
      el("td", { class: "mono small" }, new Date(e.since_wall_ns / 1e6).toLocaleTimeString()),
      el("td", { class: "num" }, `${fmt(e.value)} · ${fmt(e.limit)}`),
      el("td", {}, ack));
  }

  async acknowledge(rule) {
    // A viewer's request goes to the service too: the service decides, and says why not.
    try {
      await this.conn.request("ack_alarm", { rule });
      this.acks.push({ rule, ok: true });
    } catch (err) {
      this.acks.push({ rule, ok: false, error: err.message, field: err.field ?? null });
      this.notify(`Alarm ${rule} not acknowledged: ${err.message}`, "error");
    }
  }

  snapshot() {
    return { active: [...this.active.values()].map((e) => ({ ...e })), rules: [...this.rules.keys()],
             shown: this.log.map((e) => ({ ...e })), acks: this.acks.map((a) => ({ ...a })),
             banner: this.banner.classList.contains("hidden") ? null : this.banner.textContent };
  }
}
