// Session controls: the record start/stop button (operator role) and, when the service replays a
// recording, the replay bar (play/pause, timeline seek, speed, loop).

import { el, fmtBytes, fmtDuration } from "./dom.js";

const SPEEDS = [0.1, 0.25, 0.5, 1, 2, 4, 8, 20];

export class RecordButton {
  constructor(host, { conn, notify }) {
    this.conn = conn;
    this.notify = notify;
    this.recording = null;
    this.button = el("button", { class: "record hidden", "data-testid": "record" }, "● Record");
    this.info = el("span", { class: "rec-info hidden" });
    host.append(this.info, this.button);
    this.button.addEventListener("click", () => this.toggle());
  }

  configure(hello) {
    this.operator = hello.role === "operator";
    this.button.classList.toggle("hidden", !this.operator || hello.replay);
  }

  async toggle() {
    const action = this.recording?.active ? "stop" : "start";
    this.button.disabled = true;
    try {
      await this.conn.request("record", { action });
    } catch (err) {
      this.notify(`Recording not ${action === "start" ? "started" : "stopped"}: ${err.message}`, "error");
    } finally {
      this.button.disabled = false;
    }
  }

  onStatus(rec) {
    this.recording = rec ?? null;
    const active = !!rec?.active;
    this.button.textContent = active ? "■ Stop recording" : "● Record";
    this.button.classList.toggle("active", active);
    this.info.classList.toggle("hidden", !active && !rec?.error);
    if (rec?.error) {
      this.info.textContent = `recording error: ${rec.error}`;
      this.info.className = "rec-info bad";
    } else if (rec?.paused) {
      this.info.textContent = `REC PAUSED: ${rec.pause_reason}${rec.queued ? ` · ${rec.queued} waiting` : ""}` +
        `${rec.dropped ? ` · ${rec.dropped} dropped` : ""}`;
      this.info.className = "rec-info bad";
    } else if (active) {
      this.info.textContent = `REC ${fmtBytes(rec.bytes ?? 0)}${rec.dropped ? ` · ${rec.dropped} dropped` : ""}`;
      this.info.className = "rec-info live";
    }
    this.info.title = rec?.path ?? "";
  }
}

const ALARM_LEAD_S = 0.5; // "Next alarm" seeks this long before the alarm

export class ReplayBar {
  constructor(host, { conn, notify }) {
    this.conn = conn;
    this.notify = notify;
    this.state = null;
    this.dragging = false;
    this.playBtn = el("button", { class: "play", "data-testid": "replay-play" }, "❚❚ Pause");
    this.timeline = el("input", { type: "range", min: "0", max: "1", step: "0.1", value: "0",
                                  class: "timeline", "data-testid": "replay-timeline" });
    this.pos = el("span", { class: "v pos" }, "—");
    this.speed = el("select", { class: "speed", title: "Replay speed" },
      ...SPEEDS.map((s) => el("option", { value: s, selected: s === 1 }, `${s}×`)));
    this.loop = el("input", { type: "checkbox", class: "loop" });
    this.file = el("span", { class: "file muted" }, "");
    // Where alarms were raised in the recording, over the timeline; "Next alarm" seeks there.
    this.marks = el("div", { class: "alarm-marks", "data-testid": "replay-alarm-marks" });
    this.nextBtn = el("button", { class: "small next-alarm", "data-testid": "replay-next-alarm",
                                  title: "Seek to the next alarm raised in the recording" }, "Next alarm ▸");
    this.nextBtn.addEventListener("click", () => this.nextAlarm());
    this.root = el("div", { class: "replay-bar hidden", "data-testid": "replay-bar" },
      el("span", { class: "badge replay" }, "REPLAY"), this.playBtn,
      el("div", { class: "timeline-wrap" }, this.timeline, this.marks), this.pos, this.nextBtn,
      el("label", {}, "Speed ", this.speed), el("label", { class: "check" }, this.loop, " Loop"), this.file);
    host.append(this.root);

    this.playBtn.addEventListener("click", () =>
      this.send(this.state?.paused ? "resume" : "pause"));
    this.timeline.addEventListener("input", () => {
      this.dragging = true;
      this.pos.textContent = `${fmtDuration(Number(this.timeline.value))} / ${fmtDuration(this.state?.duration_s)}`;
    });
    this.timeline.addEventListener("change", async () => {
      await this.send("seek", Number(this.timeline.value));
      this.dragging = false;
    });
    this.speed.addEventListener("change", () => this.send("speed", Number(this.speed.value)));
    this.loop.addEventListener("change", () => this.send("loop", this.loop.checked));
  }

  configure(hello) {
    this.root.classList.toggle("hidden", !hello.replay);
    document.body.classList.toggle("replaying", !!hello.replay);
    // A replay of the library is the viewer's own: any role may steer it (replay_controls).
    const may = hello.replay_controls ?? hello.role === "operator";
    for (const e of [this.playBtn, this.timeline, this.speed, this.loop, this.nextBtn]) e.disabled = !may;
  }

  async send(action, value) {
    const fields = value === undefined ? { action } : { action, value };
    try {
      await this.conn.request("replay", fields);
    } catch (err) {
      this.notify(`Replay ${action} refused: ${err.message}`, "error");
    }
  }

  showMarks(marks, duration) {
    const key = `${duration}|${marks.length}`;
    if (key === this.marksKey || !(duration > 0)) return;
    this.marksKey = key;
    this.alarmTimes = marks.map((m) => m.t_s);
    this.nextBtn.classList.toggle("hidden", marks.length === 0);
    this.marks.replaceChildren(...marks.map((m) => el("i", {
      class: m.level, style: `left:${(100 * m.t_s / duration).toFixed(3)}%`,
      title: `${m.rule}: ${m.level} at ${fmtDuration(m.t_s)}` })));
  }

  nextAlarm() {
    const now = this.state?.position_s ?? 0;
    // Seeks land LEAD_S before a mark (to see it come), so the one after is beyond now + 2 × LEAD_S.
    const next = (this.alarmTimes ?? []).find((t) => t > now + 2 * ALARM_LEAD_S);
    if (next === undefined) this.notify("No alarm after this point of the recording", "info");
    else this.send("seek", Math.max(0, next - ALARM_LEAD_S));
  }

  onStatus(replay) {
    if (!replay) return;
    this.state = replay;
    this.playBtn.textContent = replay.paused ? "▶ Play" : "❚❚ Pause";
    if (Number.isFinite(replay.duration_s)) this.timeline.max = String(replay.duration_s);
    if (!this.dragging && Number.isFinite(replay.position_s)) {
      this.timeline.value = String(replay.position_s);
      this.pos.textContent = `${fmtDuration(replay.position_s)} / ${fmtDuration(replay.duration_s)}`;
    }
    if (Number.isFinite(replay.speed) && document.activeElement !== this.speed) {
      const nearest = SPEEDS.reduce((a, b) => Math.abs(b - replay.speed) < Math.abs(a - replay.speed) ? b : a);
      this.speed.value = String(nearest);
    }
    if (typeof replay.loop === "boolean") this.loop.checked = replay.loop;
    this.showMarks(replay.alarms ?? [], replay.duration_s);
    this.file.textContent = replay.file ?? "";
  }
}
