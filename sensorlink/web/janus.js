// Watching a sensorlink service through a Janus VideoRoom instead of directly: a subscriber
// written against Janus' documented JSON API over its WebSocket transport (subprotocol
// "janus-protocol"): create a session, attach the videoroom plugin, find the sensorlink publisher
// with "listparticipants", "join" as a subscriber to its feed, answer Janus' offer, "start".
//
// What the room carries is what sensorlink.webrtc.janus.JanusPublisher puts in it: one video track per
// camera and one audio track per microphone beam (each stream's description is its sensor name),
// and every data message (readings, frames, status) on the one data channel Janus relays to a
// subscriber. There is no signaling hello: the panels are built from the first status message.
// A VideoRoom is one-way, so control (steering, colour maps, recording) is refused here.

import { Connection, ControlError, gatheringComplete } from "./signaling.js";

const VIDEOROOM = "janus.plugin.videoroom";
const KEEPALIVE_MS = 25000;        // Janus' session_timeout defaults to 60 s
const CALL_TIMEOUT_MS = 15000;
const FIND_PUBLISHER_TRIES = 20;   // a publisher that is (re)connecting shows up within seconds
const FIND_PUBLISHER_PAUSE_MS = 500;

export class JanusConnection extends Connection {
  /**
   * @param {object} opts  as Connection's, plus
   * @param {{url: string, room: number, display?: string, pin?: string}} opts.room
   * @param {Array} [opts.iceServers]  STUN/TURN for the path to Janus (the home service's)
   */
  constructor({ schemas, on, room, iceServers = [] }) {
    super({ token: "", schemas, on, url: room.url });
    this.room = room;
    this.iceServers = iceServers;
    this.session = null;
    this.handle = null;
    this.calls = new Map();
    this.pendingTracks = [];
    this.mids = {};
    this.feed = null;
  }

  open() {
    this.teardown();
    const gen = ++this.generation;
    this.setState("connecting", `Janus room ${this.room.room}${this.attempt ? `, attempt ${this.attempt + 1}` : ""}`);
    let ws;
    try {
      ws = new WebSocket(this.room.url, "janus-protocol");
    } catch (err) {
      this.scheduleReconnect(`Janus websocket: ${err.message}`);
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      this.subscribe(gen).catch((err) => {
        if (gen === this.generation) this.scheduleReconnect(`Janus: ${err.message}`);
      });
    };
    ws.onmessage = (ev) => {
      if (gen === this.generation) this.onJanus(ev.data);
    };
    ws.onclose = (ev) => {
      if (gen === this.generation) this.scheduleReconnect(`Janus closed the connection (${ev.code})`);
    };
  }

  async subscribe(gen) {
    this.setState("joining", `Janus room ${this.room.room}`);
    this.session = (await this.call({ janus: "create" })).data.id;
    this.timers.keepalive = setInterval(() => this.send({ janus: "keepalive" }), KEEPALIVE_MS);
    this.handle = (await this.call({ janus: "attach", plugin: VIDEOROOM })).data.id;
    const feed = await this.findPublisher(gen);
    if (gen !== this.generation) return;
    const join = { request: "join", ptype: "subscriber", room: this.room.room, streams: [{ feed }] };
    if (this.room.pin) join.pin = this.room.pin;
    const joined = await this.call({ janus: "message", body: join }, true);
    if (gen !== this.generation) return;
    if (!joined.jsep) throw new Error(`no offer from Janus: ${JSON.stringify(pluginData(joined))}`);
    this.feed = feed;
    this.mids = Object.fromEntries((pluginData(joined).streams ?? [])
      .map((s) => [s.mid, s.feed_description || s.type]));
    this.setState("negotiating", `Janus room ${this.room.room}`);
    const pc = new RTCPeerConnection({ iceServers: this.iceServers });
    this.pc = pc;
    pc.ontrack = (ev) => {
      const sensor = this.mids[ev.transceiver?.mid];
      if (!sensor) return;
      const args = [sensor, ev.track.kind, new MediaStream([ev.track])];
      // Panels exist once the first status message named the sensors.
      if (this.hello) this.on.track(...args);
      else this.pendingTracks.push(args);
    };
    pc.ondatachannel = (ev) => this.listen(ev.channel.label, ev.channel);
    // Janus relays the publisher's data to a subscriber only once the subscriber has a data
    // channel of its own (janus.js opens one too); ours only says "ready".
    this.listen("janus", pc.createDataChannel("JanusDataChannel"));
    pc.onconnectionstatechange = () => this.onPcState(pc);
    await pc.setRemoteDescription(joined.jsep);
    await pc.setLocalDescription(await pc.createAnswer());
    await gatheringComplete(pc);
    if (gen !== this.generation) return;
    await this.call({ janus: "message", body: { request: "start", room: this.room.room },
                      jsep: { type: "answer", sdp: pc.localDescription.sdp, trickle: false } }, true);
    if (gen === this.generation && this.state !== "live") {
      this.setState("connecting-media", `Janus room ${this.room.room}`);
    }
  }

  async findPublisher(gen) {
    const display = this.room.display || "sensorlink";
    for (let i = 0; i < FIND_PUBLISHER_TRIES && gen === this.generation; i++) {
      const reply = await this.call({ janus: "message",
                                      body: { request: "listparticipants", room: this.room.room } });
      const found = (pluginData(reply).participants ?? [])
        .find((p) => p.publisher && p.display === display);
      if (found) return found.id;
      this.setState("joining", `waiting for publisher "${display}" in Janus room ${this.room.room}`);
      await new Promise((resolve) => setTimeout(resolve, FIND_PUBLISHER_PAUSE_MS));
    }
    throw new Error(`no publisher "${display}" in room ${this.room.room}`);
  }

  listen(label, channel) {
    channel.binaryType = "arraybuffer";
    channel.onmessage = (ev) => {
      if (typeof ev.data === "string") this.on.invalid(label, "text where msgpack was expected");
      else this.onData(label, ev.data);
    };
    this.channels[label] = channel;
  }

  /** The first status message stands in for the service's hello: it names the sensors. */
  deliver(msg, channel) {
    if (msg.type === "status" && !this.hello) this.helloFromStatus(msg);
    this.on.message(msg, channel);
  }

  helloFromStatus(status) {
    this.hello = {
      type: "hello", version: "", role: "viewer", replay: !!status.replay, channels: {},
      colormaps: [], ice_servers: [], links: [], via: "janus",
      sensors: status.sensors.map((s) => ({ name: s.sensor, kind: s.kind, driver: s.driver ?? "", meta: {} })),
    };
    this.on.hello(this.hello);
    for (const args of this.pendingTracks.splice(0)) this.on.track(...args);
  }

  // -- Janus' JSON API: requests matched to replies by transaction -------------------------
  send(message) {
    if (this.ws?.readyState !== WebSocket.OPEN) return null;
    const transaction = Math.random().toString(36).slice(2, 14);
    const full = { ...message, transaction };
    if (this.session !== null) full.session_id = this.session;
    if (this.handle !== null && message.janus === "message") full.handle_id = this.handle;
    this.ws.send(JSON.stringify(full));
    return transaction;
  }

  /** One request; `plugin` ones are acked first, their answer follows as an event. */
  call(message, plugin = false) {
    return new Promise((resolve, reject) => {
      const transaction = this.send(message);
      if (transaction === null) {
        reject(new Error("Janus websocket is not open"));
        return;
      }
      const timer = setTimeout(() => {
        this.calls.delete(transaction);
        reject(new Error(`no reply to ${message.body?.request ?? message.janus} within ${CALL_TIMEOUT_MS / 1000} s`));
      }, CALL_TIMEOUT_MS);
      this.calls.set(transaction, { resolve, reject, timer, plugin });
    });
  }

  onJanus(text) {
    let msg;
    try {
      msg = JSON.parse(text);
    } catch {
      this.on.invalid("janus", "not JSON");
      return;
    }
    const call = this.calls.get(msg.transaction);
    if (call && !(call.plugin && msg.janus === "ack")) {
      this.calls.delete(msg.transaction);
      clearTimeout(call.timer);
      const error = msg.error ?? pluginData(msg).error;
      if (msg.janus === "error" || error) {
        call.reject(new Error(typeof error === "object" ? error.reason : String(error)));
      } else {
        call.resolve(msg);
      }
      return;
    }
    if (msg.janus === "hangup" || msg.janus === "detached") {
      this.scheduleReconnect(`Janus: ${msg.reason ?? msg.janus}`);
    } else if (msg.janus === "event") {
      const data = pluginData(msg);
      // Our publisher left the room (service stopped, or lost its link to Janus): resubscribe.
      if (this.feed !== null && (data.unpublished === this.feed || data.leaving === this.feed)) {
        this.scheduleReconnect("the publisher left the room");
      }
    }
  }

  request(type) {
    return Promise.reject(new ControlError(
      `${type}: control does not cross a Janus room; switch to the service directly`));
  }

  teardown() {
    for (const { reject, timer } of this.calls.values()) {
      clearTimeout(timer);
      reject(new Error("closed"));
    }
    this.calls.clear();
    if (this.session !== null) this.send({ janus: "destroy" });
    this.session = this.handle = this.feed = null;
    this.pendingTracks = [];
    this.hello = null;
    super.teardown();
  }
}

function pluginData(msg) {
  return msg?.plugindata?.data ?? {};
}
