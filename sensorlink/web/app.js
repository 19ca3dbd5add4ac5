// The dashboard: reads the token from the URL fragment, connects, builds one panel per sensor from
// the service's hello, routes every data-channel message to its panel, and exposes a read-only
// test hook, window.sensorlink.

import { Connection } from "./signaling.js";
import { Schemas } from "./schema.js";
import { ThermalView } from "./thermal.js";
import { ProbePlot } from "./plots.js";
import { MicrophonePanel } from "./audio.js";
import { StatusPanel } from "./status.js";
import { RecordButton, ReplayBar } from "./controls.js";
import { el } from "./dom.js";

const STATE_LABEL = {
  idle: ["Idle", "idle"], connecting: ["Connecting…", "warn"], authenticating: ["Authenticating…", "warn"],
  negotiating: ["Setting up WebRTC…", "warn"], answering: ["Setting up WebRTC…", "warn"],
  "connecting-media": ["Connecting media…", "warn"], live: ["Live", "ok"],
  unstable: ["Unstable", "warn"], reconnecting: ["Reconnecting", "warn"], refused: ["Refused", "bad"],
};

const $ = (sel) => document.querySelector(sel);
const counts = { readings: 0, reading_batches: 0, frame_messages: 0, status: 0, views: 0,
                 replies: 0, errors: 0, invalid: 0 };
const last = new Map();
const panels = { thermal: new Map(), probe: new Map(), microphone: new Map() };
const invalidLog = [];
const controlErrors = [];
let lastReply = null;
let lastStatus = null;
let beams = {};
let sensorsKey = "";

const schemas = new Schemas();
const statusPanel = new StatusPanel($("#status-host"));

function notify(text, level = "info") {
  const toast = el("div", { class: `toast ${level}`, role: level === "error" ? "alert" : "status" }, text);
  $("#toasts").append(toast);
  setTimeout(() => toast.classList.add("fade"), 5000);
  setTimeout(() => toast.remove(), 5600);
}

const conn = new Connection({
  token: tokenFromUrl(),
  schemas,
  on: {
    state: showState,
    hello: onHello,
    track(sensor, kind, stream) {
      const panel = kind === "video" ? panels.thermal.get(sensor) : panels.microphone.get(sensor);
      panel?.setStream(stream);
    },
    message: onMessage,
    invalid(channel, why) {
      counts.invalid++;
      invalidLog.push(`${channel}: ${why}`);
      if (invalidLog.length > 20) invalidLog.shift();
      console.warn(`sensorlink: dropped an invalid message on ${channel}: ${why}`);
    },
    reset() {
      for (const group of Object.values(panels)) for (const p of group.values()) p.reset();
    },
  },
});

const recordButton = new RecordButton($("#session-tools"), { conn, notify });
const replayBar = new ReplayBar($("#replay-host"), { conn, notify });

function tokenFromUrl() {
  return new URLSearchParams(location.hash.slice(1)).get("token") ?? "";
}

function showState(state, detail) {
  const [label, cls] = STATE_LABEL[state] ?? [state, "idle"];
  const pill = $("#conn-state");
  pill.textContent = label;
  pill.className = `pill conn ${cls}`;
  pill.dataset.state = state;
  const refused = state === "refused";
  // When refused, the banner says why; the top bar need not repeat it.
  $("#conn-detail").textContent = refused ? "" : detail || "";
  document.body.classList.toggle("no-session", refused && !conn.hello);
  $("#refused").classList.toggle("hidden", !refused);
  if (refused) $("#refused-reason").textContent = detail || "the service refused this token";
  document.body.classList.toggle("offline", state !== "live" && state !== "unstable" && !!conn.hello);
}

function onHello(hello) {
  $("#service-version").textContent = `v${hello.version}`;
  const role = $("#role");
  role.textContent = hello.role;
  role.className = `badge role ${hello.role}`;
  role.title = hello.role === "operator" ? "This token may steer, record and control replay"
                                         : "This token may look, not change anything";
  $("#mode").classList.toggle("hidden", !hello.replay);
  recordButton.configure(hello);
  replayBar.configure(hello);
  const key = JSON.stringify(hello.sensors.map((s) => [s.name, s.kind]));
  if (key === sensorsKey) return; // a reconnect to the same service keeps the panels and history
  sensorsKey = key;
  for (const group of Object.values(panels)) group.clear();
  for (const id of ["#cameras", "#probes", "#mics"]) $(id).replaceChildren();
  const colormaps = hello.colormaps?.length ? hello.colormaps : ["inferno"];
  const canSteer = hello.role === "operator";
  for (const s of hello.sensors) {
    if (s.kind === "thermal") panels.thermal.set(s.name, new ThermalView($("#cameras"), s, { conn, colormaps, notify, canControl: canSteer }));
    else if (s.kind === "probe") panels.probe.set(s.name, new ProbePlot($("#probes"), s));
    else if (s.kind === "microphone") panels.microphone.set(s.name, new MicrophonePanel($("#mics"), s, { conn, notify, canSteer }));
  }
  for (const id of ["#cameras", "#probes", "#mics"]) $(id).classList.toggle("hidden", !$(id).children.length);
  statusPanel.setSensors(hello.sensors);
  $("#empty").classList.toggle("hidden", hello.sensors.length > 0);
}

function onMessage(msg) {
  switch (msg.type) {
    case "readings": return onReadings(msg.readings);
    case "frame":
      counts.frame_messages++;
      return panels.thermal.get(msg.sensor)?.onFrame(msg);
    case "view":
      counts.views++;
      return panels.thermal.get(msg.sensor)?.onView(msg);
    case "status":
      counts.status++;
      lastStatus = msg;
      statusPanel.onStatus(msg);
      statusPanel.onExports(msg.exports);
      if (msg.beams) {
        beams = { ...msg.beams };
        for (const [mic, angle] of Object.entries(msg.beams)) panels.microphone.get(mic)?.onBeam(angle);
      }
      if ("recording" in msg) recordButton.onStatus(msg.recording);
      if (msg.replay) replayBar.onStatus(msg.replay);
      return;
    case "reply":
      counts.replies++;
      lastReply = msg;
      return;
    case "error":
      counts.errors++;
      controlErrors.push(msg);
      if (controlErrors.length > 20) controlErrors.shift();
      // Errors that answer a request are reported by whoever sent it; others are shown here.
      if (msg.id === null || msg.id === undefined) notify(`Service: ${msg.error}`, "error");
      return;
  }
}

function onReadings(rows) {
  counts.reading_batches++;
  counts.readings += rows.length;
  const bySensor = new Map();
  for (const row of rows) {
    const stream = row[0];
    last.set(stream, row[3]);
    const slash = stream.indexOf("/");
    const sensor = stream.slice(0, slash), channel = stream.slice(slash + 1);
    if (panels.probe.has(sensor)) {
      if (!bySensor.has(sensor)) bySensor.set(sensor, []);
      bySensor.get(sensor).push(row);
    } else if (panels.microphone.has(sensor)) {
      panels.microphone.get(sensor).onReading(channel, row[3]);
    }
  }
  for (const [sensor, list] of bySensor) panels.probe.get(sensor).add(list);
}

function videoFrames() {
  let n = 0;
  for (const v of panels.thermal.values()) n += v.videoFrames;
  return n;
}

function thermalFrames() {
  let n = 0;
  for (const v of panels.thermal.values()) n += v.frames;
  return n;
}

function snapshotOf(group) {
  return Object.fromEntries([...group].map(([name, p]) => [name, p.snapshot()]));
}

// Read-only view of the page's state for tests and for people poking around in the console.
Object.defineProperty(window, "sensorlink", {
  enumerable: true,
  value: Object.freeze({
    get state() { return conn.state; },
    get detail() { return conn.detail; },
    get refused() { return conn.refusedReason; },
    get role() { return conn.hello?.role ?? null; },
    get replay() { return conn.hello?.replay ?? null; },
    get sensors() { return conn.hello ? conn.hello.sensors.map((s) => ({ name: s.name, kind: s.kind })) : []; },
    get counts() { return { ...counts, frames: thermalFrames(), video_frames: videoFrames() }; },
    get last() { return Object.fromEntries(last); },
    get rtt_ms() { return conn.rttMs; },
    get beams() { return { ...beams }; },
    get cameras() { return snapshotOf(panels.thermal); },
    get probes() { return snapshotOf(panels.probe); },
    get microphones() { return snapshotOf(panels.microphone); },
    get status() { return lastStatus ? structuredClone(lastStatus) : null; },
    get last_reply() { return lastReply ? structuredClone(lastReply) : null; },
    get control_errors() { return controlErrors.map((e) => ({ ...e })); },
    get invalid() { return [...invalidLog]; },
    get schemas_missing() { return [...schemas.missing]; },
  }),
});

setInterval(() => {
  const c = window.sensorlink.counts;
  statusPanel.tick({ rttMs: conn.rttMs, counts: c });
  $("#rtt").textContent = conn.rttMs === null ? "RTT —" : `RTT ${conn.rttMs.toFixed(1)} ms`;
}, 250);

$("#token-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const token = $("#token-input").value.trim();
  if (!token) return;
  // Keep the token in the fragment: it never reaches a server log or a Referer header.
  history.replaceState(null, "", `#token=${encodeURIComponent(token)}`);
  conn.token = token;
  conn.start();
});

window.addEventListener("hashchange", () => {
  const token = tokenFromUrl();
  if (token && token !== conn.token) {
    conn.token = token;
    conn.start();
  }
});

async function main() {
  await schemas.load();
  if (schemas.missing.length) {
    notify(`Schemas not loaded, messages go unchecked: ${schemas.missing.join(", ")}`, "error");
  }
  if (!conn.token) {
    showState("refused", "no token in the address: open the link the service printed, or enter the token");
    return;
  }
  conn.start();
}

main();
