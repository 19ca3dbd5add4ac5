// The dashboard: reads the token from the URL fragment, connects, builds one panel per sensor from
// the service's hello, routes every data-channel message to its panel, switches to the other
// services and Janus rooms the hello lists, and exposes a read-only test hook, window.sensorlink.

import { Connection } from "./signaling.js";
import { JanusConnection } from "./janus.js";
import { LinkSelector, describePath, serviceWsUrl } from "./links.js";
import { Schemas } from "./schema.js";
import { ThermalView } from "./thermal.js";
import { ProbePlot } from "./plots.js";
import { MicrophonePanel } from "./audio.js";
import { StatusPanel } from "./status.js";
import { RecordButton, ReplayBar } from "./controls.js";
import { AlarmPanel } from "./alarms.js";
import { RecordingsView } from "./recordings.js";
import { fetchTrend } from "./trends.js";
import { el } from "./dom.js";

const STATE_LABEL = {
  idle: ["Idle", "idle"], connecting: ["Connecting…", "warn"], authenticating: ["Authenticating…", "warn"],
  negotiating: ["Setting up WebRTC…", "warn"], answering: ["Setting up WebRTC…", "warn"],
  "connecting-media": ["Connecting media…", "warn"], live: ["Live", "ok"], joining: ["Joining room…", "warn"],
  unstable: ["Unstable", "warn"], reconnecting: ["Reconnecting", "warn"], refused: ["Refused", "bad"],
};

const $ = (sel) => document.querySelector(sel);
const counts = { readings: 0, reading_batches: 0, frame_messages: 0, status: 0, views: 0,
                 replies: 0, errors: 0, invalid: 0, alarms: 0, spectra: 0 };
const last = new Map();
const panels = { thermal: new Map(), probe: new Map(), microphone: new Map() };
const invalidLog = [];
// Every connection state the pill showed, in order (the last 100): a test or a person in the
// console can tell "it showed Reconnecting" after the fact, whatever the pill shows now.
const stateLog = [];
const controlErrors = [];
let lastReply = null;
let lastStatus = null;
let beams = {};
let sensorsKey = "";
// The service that served this page lists what else the page may show (its hello's links);
// `current` is the one shown (null: that service itself), `linkTokens` the tokens typed in for
// links the page was not given one for (kept in memory only, never in the address).
let homeLinks = [];
let homeIceServers = [];
let current = null;
let pendingLink = paramFromUrl("link");
const linkTokens = new Map();

const schemas = new Schemas();
const statusPanel = new StatusPanel($("#status-host"));

function notify(text, level = "info") {
  const toast = el("div", { class: `toast ${level}`, role: level === "error" ? "alert" : "status" }, text);
  $("#toasts").append(toast);
  setTimeout(() => toast.classList.add("fade"), 5000);
  setTimeout(() => toast.remove(), 5600);
}

const handlers = {
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
  failure(failure) {
    statusPanel.setFailure(failure);
  },
};
const direct = new Connection({ token: tokenFromUrl(), schemas, on: handlers });
let active = direct; // the Connection or JanusConnection in use
// What the panels hold: requests go to whatever the page is connected to now.
const conn = { request: (type, fields) => active.request(type, fields) };
const selector = new LinkSelector($(".conn-box"), { onSelect: (name) => switchTo(name) });

const recordButton = new RecordButton($("#session-tools"), { conn, notify });
const replayBar = new ReplayBar($("#replay-host"), { conn, notify });
const alarmPanel = new AlarmPanel($("#alarm-banner-host"), $("#alarms-host"), { conn, notify });
alarmPanel.onEvent((event) => {
  const sensor = event.stream.split("/")[0];
  panels.probe.get(sensor)?.markAlarm(event);
  panels.thermal.get(sensor)?.regions.onAlarm(event, [...alarmPanel.active.values()]);
});
// The recordings library of the service that served the page; a replay of it is a connection
// of its own (auth carries the window), and "Live" goes back to the service's live view.
let replaying = null;
const seqs = new Map(); // per stream: what arrived since the panels were built (gaps in seq)
const library = new RecordingsView($("#library-host"), {
  token: () => direct.token, request: (type, fields) => direct.request(type, fields), notify,
  replay: (window) => replayWindow(window) });
const liveButton = el("button", { class: "small hidden", "data-testid": "back-live",
                                  title: "Leave the replay: back to the live sensors" }, "◀ Live");
liveButton.addEventListener("click", () => backToLive());
$("#session-tools").prepend(library.button, liveButton);

function replayWindow(window) {
  library.toggle(false);
  active.stop();
  clearPanels();
  replaying = window;
  liveButton.classList.remove("hidden");
  active = new Connection({ token: direct.token, schemas, on: handlers, auth: { replay: window } });
  active.start();
}

function backToLive() {
  active.stop();
  clearPanels();
  replaying = null;
  liveButton.classList.add("hidden");
  active = direct;
  direct.start();
}

function tokenFromUrl() {
  return paramFromUrl("token") ?? "";
}

function paramFromUrl(name) {
  return new URLSearchParams(location.hash.slice(1)).get(name);
}

/** Keep the home token and the link shown in the fragment (never sent to a server): a reload
 * or a bookmark opens the same view. */
function writeFragment(token) {
  const params = new URLSearchParams({ token });
  if (current) params.set("link", current.name);
  history.replaceState(null, "", `#${params}`);
}

function clearPanels() {
  sensorsKey = "";
  last.clear();
  seqs.clear();
  lastStatus = null;
  for (const group of Object.values(panels)) group.clear();
  for (const id of ["#cameras", "#probes", "#mics"]) $(id).replaceChildren();
  statusPanel.setSensors([]);
  statusPanel.onExports([]);
  alarmPanel.reset();
}

/** Show another service (connect there), a Janus room (subscribe), or, for null, this one. */
function switchTo(name) {
  const link = name === null ? null : homeLinks.find((l) => l.name === name);
  if (link === undefined) {
    notify(`No link named "${name}" on this service`, "error");
    selector.show(describePath(current));
    return;
  }
  active.stop();
  current = link;
  pendingLink = null;
  replaying = null;
  liveButton.classList.add("hidden");
  clearPanels();
  const path = describePath(link);
  selector.show(path);
  statusPanel.setPath(path);
  writeFragment(tokenFromUrl());
  if (link?.kind === "janus") {
    active = new JanusConnection({ schemas, on: handlers, room: link, iceServers: homeIceServers });
    active.start();
    return;
  }
  active = direct;
  direct.url = link ? serviceWsUrl(link.url) : null;
  direct.token = link ? linkTokens.get(link.name) ?? link.token ?? "" : tokenFromUrl();
  if (direct.token) direct.start();
  // A viewer is never handed another service's token: ask instead of trying an empty one.
  else direct.refuse(link ? `this page has no token for ${link.name}: enter one` : "no token");
}

function showState(state, detail) {
  const [label, cls] = STATE_LABEL[state] ?? [state, "idle"];
  if (stateLog.at(-1)?.state !== state) {
    stateLog.push({ state, label, t_ms: Math.round(performance.now()) });
    if (stateLog.length > 100) stateLog.shift();
  }
  const pill = $("#conn-state");
  pill.textContent = label;
  pill.className = `pill conn ${cls}`;
  pill.dataset.state = state;
  const refused = state === "refused";
  // When refused, the banner says why; the top bar need not repeat it.
  $("#conn-detail").textContent = refused ? "" : detail || "";
  $("#conn-detail").title = refused ? "" : detail || ""; // a long reason is cut in the bar
  document.body.classList.toggle("no-session", refused && !active.hello);
  $("#refused").classList.toggle("hidden", !refused);
  if (refused) $("#refused-reason").textContent = detail || "the service refused this token";
  document.body.classList.toggle("offline", state !== "live" && state !== "unstable" && !!active.hello);
}

function onHello(hello) {
  if (current === null && active === direct) {
    // Only the service that served the page decides what the selector offers.
    homeLinks = hello.links ?? [];
    homeIceServers = hello.ice_servers ?? [];
    selector.setLinks(homeLinks);
    if (pendingLink !== null) {
      const name = pendingLink;
      pendingLink = null;
      if (homeLinks.some((l) => l.name === name)) {
        queueMicrotask(() => switchTo(name));
        return;
      }
    }
  }
  $("#service-version").textContent = `v${hello.version}`;
  const role = $("#role");
  role.textContent = hello.role;
  role.className = `badge role ${hello.role}`;
  role.title = hello.role === "operator" ? "This token may steer, record and control replay"
                                         : "This token may look, not change anything";
  $("#mode").classList.toggle("hidden", !hello.replay);
  recordButton.configure(hello);
  replayBar.configure(hello);
  alarmPanel.configure(hello);
  library.configure(hello, { home: current === null && active === direct });
  const key = JSON.stringify(hello.sensors.map((s) => [s.name, s.kind]));
  if (key === sensorsKey) return; // a reconnect to the same service keeps the panels and history
  sensorsKey = key;
  for (const group of Object.values(panels)) group.clear();
  for (const id of ["#cameras", "#probes", "#mics"]) $(id).replaceChildren();
  const colormaps = hello.colormaps?.length ? hello.colormaps : ["inferno"];
  const canSteer = hello.role === "operator";
  for (const s of hello.sensors) {
    if (s.kind === "thermal") panels.thermal.set(s.name, new ThermalView($("#cameras"), s, { conn, colormaps, notify, canControl: canSteer }));
    else if (s.kind === "probe") panels.probe.set(s.name, new ProbePlot($("#probes"), s, { history: historyFor(hello) }));
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
    case "alarms":
      counts.alarms++;
      return alarmPanel.onMessage(msg);
    case "spectrum":
      counts.spectra++;
      return panels.microphone.get(msg.sensor)?.onSpectrum(msg);
    case "status":
      counts.status++;
      lastStatus = msg;
      statusPanel.onStatus(msg);
      statusPanel.onExports(msg.exports ?? []);
      if (msg.beams) {
        beams = { ...msg.beams };
        for (const [mic, angle] of Object.entries(msg.beams)) panels.microphone.get(mic)?.onBeam(angle);
      }
      if ("recording" in msg) recordButton.onStatus(msg.recording);
      if (msg.replay) replayBar.onStatus(msg.replay);
      for (const [camera, regions] of Object.entries(msg.regions ?? {})) {
        panels.thermal.get(camera)?.regions.setRegions(regions);
      }
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

/** Live plots reach back into the library's trends (the home service's, live only). */
function historyFor(hello) {
  if (!hello.library || hello.replay || current !== null || active !== direct) return null;
  return (streams, fromNs, toNs) => fetchTrend(direct.token, streams, fromNs, toNs);
}

function onReadings(rows) {
  counts.reading_batches++;
  counts.readings += rows.length;
  const bySensor = new Map();
  for (const row of rows) {
    const stream = row[0];
    const seen = seqs.get(stream);
    if (!seen) seqs.set(stream, { first: row[1], last: row[1], count: 1, gaps: 0, back: 0 });
    else {
      if (row[1] > seen.last + 1) seen.gaps += row[1] - seen.last - 1;
      else if (row[1] <= seen.last) seen.back++; // a seek or a loop went back
      seen.last = row[1];
      seen.count++;
    }
    last.set(stream, row[3]);
    const slash = stream.indexOf("/");
    const sensor = stream.slice(0, slash), channel = stream.slice(slash + 1);
    if (panels.probe.has(sensor)) {
      if (!bySensor.has(sensor)) bySensor.set(sensor, []);
      bySensor.get(sensor).push(row);
    } else if (panels.microphone.has(sensor)) {
      panels.microphone.get(sensor).onReading(channel, row[3]);
    } else if (panels.thermal.has(sensor)) {
      panels.thermal.get(sensor).onReading(channel, row[3]);
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
    get state() { return active.state; },
    get detail() { return active.detail; },
    get states() { return stateLog.map((e) => ({ ...e })); },
    get refused() { return active.refusedReason; },
    get failure() { return active.lastFailure?.reason ?? null; },
    get role() { return active.hello?.role ?? null; },
    get replay() { return active.hello?.replay ?? null; },
    get sensors() { return active.hello ? active.hello.sensors.map((s) => ({ name: s.name, kind: s.kind })) : []; },
    get path() { return describePath(current); },
    get links() {
      return homeLinks.map((l) => ({ name: l.name, kind: l.kind, url: l.url, room: l.room ?? null,
                                     has_token: !!(l.token || l.pin) }));
    },
    get counts() { return { ...counts, frames: thermalFrames(), video_frames: videoFrames() }; },
    get last() { return Object.fromEntries(last); },
    get rtt_ms() { return active.rttMs; },
    get beams() { return { ...beams }; },
    get cameras() { return snapshotOf(panels.thermal); },
    get probes() { return snapshotOf(panels.probe); },
    get microphones() { return snapshotOf(panels.microphone); },
    get alarms() { return alarmPanel.snapshot(); },
    get status() { return lastStatus ? structuredClone(lastStatus) : null; },
    get last_reply() { return lastReply ? structuredClone(lastReply) : null; },
    get control_errors() { return controlErrors.map((e) => ({ ...e })); },
    get invalid() { return [...invalidLog]; },
    get schemas_missing() { return [...schemas.missing]; },
    get library() { return library.snapshot(); },
    get replaying() { return replaying ? { ...replaying } : null; },
    get seqs() { return Object.fromEntries([...seqs].map(([k, v]) => [k, { ...v }])); },
  }),
});

setInterval(() => {
  const c = window.sensorlink.counts;
  statusPanel.tick({ rttMs: active.rttMs, counts: c });
  $("#rtt").textContent = active.rttMs === null ? "RTT —" : `RTT ${active.rttMs.toFixed(1)} ms`;
}, 250);

$("#token-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const token = $("#token-input").value.trim();
  if (!token) return;
  $("#token-input").value = "";
  if (current) {
    // Another service's token stays in this page's memory, out of the address bar.
    linkTokens.set(current.name, token);
  } else {
    // Keep the token in the fragment: it never reaches a server log or a Referer header.
    writeFragment(token);
  }
  direct.token = token;
  direct.start();
});

window.addEventListener("hashchange", () => {
  const link = paramFromUrl("link");
  if ((link ?? null) !== (current?.name ?? null) && (link === null || homeLinks.some((l) => l.name === link))) {
    switchTo(link);
    return;
  }
  const token = tokenFromUrl();
  if (current === null && token && token !== direct.token) {
    direct.token = token;
    direct.start();
  }
});

async function main() {
  await schemas.load();
  if (schemas.missing.length) {
    notify(`Schemas not loaded, messages go unchecked: ${schemas.missing.join(", ")}`, "error");
  }
  statusPanel.setPath(describePath(null));
  if (!direct.token) {
    showState("refused", "no token in the address: open the link the service printed, or enter the token");
    return;
  }
  direct.start();
}

main();
