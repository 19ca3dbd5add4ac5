// The link to the service: websocket signaling, one RTCPeerConnection with four negotiated data
// channels plus one recvonly transceiver per camera/microphone, control requests with replies,
// latency pings, and reconnection with backoff (aiortc has no ICE restart: a drop means a new pc).

import { decode, encode } from "./vendor/msgpack/index.mjs";

const BACKOFF_S = [0.5, 1, 2, 4, 8, 15];
// A "disconnected" pc often recovers by itself within a few seconds; past this it is rebuilt.
const DISCONNECTED_GRACE_MS = 4000;
const GATHER_TIMEOUT_MS = 4000;
const REQUEST_TIMEOUT_MS = 5000;
const PING_INTERVAL_MS = 2000;

// Which schema checks a message, by the "type" it claims; anything else is refused.
export const SCHEMA_OF = { readings: "readings", frame: "frame", status: "status", view: "view",
                    reply: "reply", error: "error", alarms: "alarms", spectrum: "spectrum" };

export class Connection {
  /**
   * @param {object} opts
   * @param {string} opts.token
   * @param {string|null} [opts.url]  the signaling websocket; null: the service that served the page
   * @param {import("./schema.js").Schemas} opts.schemas
   * @param {object} opts.on  callbacks: state(state, detail), hello(hello), track(sensor, kind,
   *   stream), message(msg, channel), invalid(channel, errorText), reset(), and optionally
   *   failure({reason, at} | null): why the last attempt failed, as the service or this browser said
   * @param {object} [opts.auth]  more fields for the auth message (replay: {from_ns, to_ns})
   */
  constructor({ token, schemas, on, url = null, auth = {} }) {
    this.token = token;
    this.url = url;
    this.auth = auth;
    this.schemas = schemas;
    this.on = on;
    this.state = "idle";
    this.detail = "";
    this.hello = null;
    this.refusedReason = null;
    this.lastFailure = null;
    this.rttMs = null;
    this.attempt = 0;
    this.nextId = 1;
    this.pending = new Map();
    this.ws = null;
    this.pc = null;
    this.channels = {};
    this.tracks = {};
    this.timers = {};
    this.generation = 0;
  }

  get wsUrl() {
    if (this.url) return this.url;
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    return `${scheme}://${location.host}/ws`;
  }

  setState(state, detail = "") {
    this.state = state;
    this.detail = detail;
    this.on.state(state, detail);
  }

  start() {
    this.refusedReason = null;
    this.attempt = 0;
    this.open();
  }

  /** Leave this target for good (switching elsewhere): no reconnect, nothing left open. */
  stop() {
    this.teardown();
    this.generation++;
    this.hello = null;
    this.refusedReason = null;
    this.lastFailure = null;
    this.on.failure?.(null);
    this.setState("idle");
  }

  open() {
    this.teardown();
    const gen = ++this.generation;
    this.setState("connecting", this.attempt ? `attempt ${this.attempt + 1}` : "");
    let ws;
    try {
      ws = new WebSocket(this.wsUrl);
    } catch (err) {
      this.scheduleReconnect(`websocket: ${err.message}`);
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      ws.send(JSON.stringify({ type: "auth", token: this.token, client: "dashboard", ...this.auth }));
      this.setState("authenticating");
    };
    ws.onmessage = (ev) => {
      if (gen === this.generation) this.onSignal(ev.data, gen);
    };
    ws.onclose = (ev) => {
      if (gen !== this.generation) return;
      if (ev.code === 4401 || this.refusedReason !== null) {
        this.refuse(this.refusedReason ?? (ev.reason || "token refused"));
      } else {
        this.scheduleReconnect(`signaling closed (${ev.code}${ev.reason ? " " + ev.reason : ""})`);
      }
    };
  }

  async onSignal(text, gen) {
    let msg;
    try {
      msg = JSON.parse(text);
    } catch {
      this.on.invalid("signaling", "not JSON");
      return;
    }
    const problem = this.schemas.check("signaling", msg);
    if (problem) {
      this.on.invalid("signaling", problem);
      if (msg?.type !== "refused") return;
    }
    if (msg.type === "refused") {
      this.refusedReason = msg.reason || "refused";
      this.refuse(this.refusedReason);
    } else if (msg.type === "hello") {
      this.hello = msg;
      this.on.hello(msg);
      try {
        await this.startPeer(msg, gen);
      } catch (err) {
        if (gen === this.generation) this.scheduleReconnect(`WebRTC setup failed: ${err.message}`);
      }
    } else if (msg.type === "answer") {
      if (!this.pc || gen !== this.generation) return;
      // Keep the mid → sensor map before applying the answer: ontrack fires while it is applied.
      this.tracks = msg.tracks || {};
      try {
        await this.pc.setRemoteDescription({ type: "answer", sdp: msg.sdp });
        this.setState("connecting-media");
      } catch (err) {
        this.scheduleReconnect(`bad answer: ${err.message}`);
      }
    } else if (msg.type === "failed") {
      // The service saw the peer connection fail (ICE, DTLS) and says why; this browser may
      // not notice for a while (a DTLS failure leaves its side "connected").
      this.fail(`connection failed: ${msg.reason}`);
    } else if (msg.type === "error" && msg.field === "sdp") {
      this.fail(`service refused the offer: ${msg.error}`);
    } else if (msg.type === "error") {
      this.on.invalid("signaling", `service error: ${msg.error}`);
    }
  }

  async startPeer(hello, gen) {
    this.setState("negotiating");
    const pc = new RTCPeerConnection({ iceServers: hello.ice_servers || [] });
    this.pc = pc;
    const ids = hello.channels || { readings: 0, frames: 1, control: 2, status: 3 };
    const options = {
      readings: { ordered: true },
      frames: { ordered: false, maxRetransmits: 0 },
      control: {},
      status: {},
    };
    for (const [name, extra] of Object.entries(options)) {
      if (!(name in ids)) continue;
      const ch = pc.createDataChannel(name, { negotiated: true, id: ids[name], ...extra });
      ch.binaryType = "arraybuffer";
      ch.onmessage = (ev) => this.onData(name, ev.data);
      ch.onopen = () => this.onChannelOpen(name);
      this.channels[name] = ch;
    }
    for (const s of hello.sensors) {
      if (s.kind === "thermal") pc.addTransceiver("video", { direction: "recvonly" });
      else if (s.kind === "microphone") pc.addTransceiver("audio", { direction: "recvonly" });
    }
    pc.ontrack = (ev) => {
      const mid = ev.transceiver?.mid;
      const sensor = this.tracks[mid];
      if (!sensor) return;
      // aiortc puts every track in one MediaStream: give each element its own track only.
      const stream = new MediaStream([ev.track]);
      this.on.track(sensor, ev.track.kind, stream);
    };
    pc.onconnectionstatechange = () => this.onPcState(pc);
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    await gatheringComplete(pc);
    if (gen !== this.generation || this.ws?.readyState !== WebSocket.OPEN) return;
    this.ws.send(JSON.stringify({ type: "offer", sdp: pc.localDescription.sdp }));
    this.setState("answering");
  }

  onPcState(pc) {
    if (pc !== this.pc) return;
    const s = pc.connectionState;
    clearTimeout(this.timers.disconnected);
    if (s === "connected") {
      this.attempt = 0;
      this.setState("live");
    } else if (s === "failed") {
      // Which layer, as far as this end can tell: ICE never connected or lost the path, or
      // ICE is up and DTLS (certificates, fingerprints) failed on top of it.
      const ice = pc.iceConnectionState;
      this.fail(["connected", "completed"].includes(ice)
        ? "peer connection failed: DTLS failed in this browser (ICE was connected)"
        : `peer connection failed: ICE ${ice} in this browser (no candidate pair connected)`);
    } else if (s === "closed") {
      this.scheduleReconnect(`peer connection ${s}`);
    } else if (s === "disconnected") {
      this.setState("unstable", "peer connection interrupted");
      this.timers.disconnected = setTimeout(() => {
        if (this.pc === pc && pc.connectionState !== "connected") {
          this.scheduleReconnect("peer connection lost");
        }
      }, DISCONNECTED_GRACE_MS);
    }
  }

  onChannelOpen(name) {
    if (name === "control") {
      clearInterval(this.timers.ping);
      this.ping();
      this.timers.ping = setInterval(() => this.ping(), PING_INTERVAL_MS);
    }
  }

  onData(channel, data) {
    let msg;
    try {
      msg = decode(new Uint8Array(data));
    } catch (err) {
      this.on.invalid(channel, `not msgpack: ${err.message}`);
      return;
    }
    const schema = SCHEMA_OF[msg?.type];
    if (!schema) {
      this.on.invalid(channel, `unknown message type ${JSON.stringify(msg?.type)}`);
      return;
    }
    const problem = this.schemas.check(schema, msg);
    if (problem) {
      this.on.invalid(channel, `${msg.type}: ${problem}`);
      return;
    }
    if ((msg.type === "reply" || msg.type === "error") && this.pending.has(msg.id)) {
      const { resolve, reject, timer } = this.pending.get(msg.id);
      this.pending.delete(msg.id);
      clearTimeout(timer);
      if (msg.type === "reply") resolve(msg.result ?? {});
      else reject(new ControlError(msg.error, msg.field));
    }
    this.deliver(msg, channel);
  }

  /** A checked message, to the app (a subclass may look at it first). */
  deliver(msg, channel) {
    this.on.message(msg, channel);
  }

  /** Send a control message; resolves with the reply's result, rejects with a ControlError. */
  request(type, fields = {}) {
    const ch = this.channels.control;
    if (!ch || ch.readyState !== "open") {
      return Promise.reject(new ControlError("not connected"));
    }
    const id = this.nextId++;
    const msg = { type, id, ...fields };
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new ControlError(`no reply to ${type} within ${REQUEST_TIMEOUT_MS / 1000} s`));
      }, REQUEST_TIMEOUT_MS);
      this.pending.set(id, { resolve, reject, timer });
      ch.send(encode(msg));
    });
  }

  async ping() {
    try {
      const result = await this.request("ping", { t_client_ms: performance.now() });
      if (typeof result.t_client_ms === "number") {
        this.rttMs = performance.now() - result.t_client_ms;
      }
    } catch {
      // A lost ping shows as a stale RTT; the connection state machine handles real drops.
    }
  }

  /** An attempt failed, and why: shown until the next failure, then tried again. */
  fail(why) {
    this.lastFailure = { reason: why, at: new Date() };
    this.on.failure?.(this.lastFailure);
    this.scheduleReconnect(why);
  }

  refuse(reason) {
    this.refusedReason = reason;
    this.teardown();
    this.generation++;
    this.setState("refused", reason);
  }

  scheduleReconnect(why) {
    if (this.state === "refused") return;
    this.teardown();
    const gen = ++this.generation;
    const base = BACKOFF_S[Math.min(this.attempt, BACKOFF_S.length - 1)];
    const delay = base * (0.8 + 0.4 * Math.random());
    this.attempt++;
    const until = performance.now() + delay * 1000;
    const tick = () => {
      if (gen !== this.generation) return;
      const left = Math.max(0, (until - performance.now()) / 1000);
      this.setState("reconnecting", `${why}; retrying in ${left.toFixed(0)} s`);
    };
    tick();
    this.timers.countdown = setInterval(tick, 1000);
    this.timers.reconnect = setTimeout(() => {
      if (gen === this.generation) this.open();
    }, delay * 1000);
  }

  teardown() {
    for (const t of Object.values(this.timers)) {
      clearTimeout(t);
      clearInterval(t);
    }
    this.timers = {};
    for (const { reject, timer } of this.pending.values()) {
      clearTimeout(timer);
      reject(new ControlError("connection closed"));
    }
    this.pending.clear();
    for (const ch of Object.values(this.channels)) {
      ch.onmessage = ch.onopen = null;
    }
    this.channels = {};
    if (this.pc) {
      this.pc.ontrack = this.pc.onconnectionstatechange = null;
      this.pc.close();
      this.pc = null;
    }
    if (this.ws) {
      this.ws.onopen = this.ws.onmessage = this.ws.onclose = null;
      if (this.ws.readyState <= WebSocket.OPEN) this.ws.close(1000);
      this.ws = null;
    }
    this.tracks = {};
    this.rttMs = null;
    this.on.reset();
  }
}

export class ControlError extends Error {
  constructor(message, field = null) {
    super(field ? `${message} (field ${field})` : message);
    this.field = field;
  }
}

export function gatheringComplete(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(done, GATHER_TIMEOUT_MS);
    function done() {
      clearTimeout(timer);
      pc.removeEventListener("icegatheringstatechange", check);
      resolve();
    }
    function check() {
      if (pc.iceGatheringState === "complete") done();
    }
    pc.addEventListener("icegatheringstatechange", check);
  });
}
