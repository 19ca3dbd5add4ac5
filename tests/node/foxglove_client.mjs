// A Foxglove WebSocket client sensorlink did not write: @foxglove/ws-protocol's FoxgloveClient
// over the `ws` package, offering one subprotocol name. It subscribes to every channel the
// server advertises, decodes each message as the app does (protobuf channels with protobufjs
// from the advertised FileDescriptorSet, JSON channels with JSON.parse) and prints one JSON
// report. With a playback script it also drives a replay's timeline with Playback Control
// Requests (binary opcode 3), which FoxgloveClient 0.8 cannot send, on the same socket.
//
// Usage: node foxglove_client.mjs URL SUBPROTOCOL SPEC_JSON
//   SPEC: {"pixel": [row, col], "frames": N, "blocks": N, "readings": N, "logs": N,
//          "playback": [{"id": "r1", "command": 0|1, "speed": 1.0, "seek": NS?}, ...],
//          "kick": "advertised"?, "afterLast": [topics]?, "timeout_s": 120?}
// It stops when every thermal/audio/reading topic has its N messages, the log topic its N,
// and every playback step has been answered; or prints {"error": ...} after timeout_s (120).
import protobuf from "protobufjs";
import descriptor from "protobufjs/ext/descriptor/index.js";
import wsProtocol from "@foxglove/ws-protocol";
import WebSocket from "ws";

const { FoxgloveClient } = wsProtocol;
const [url, subprotocol, specText] = process.argv.slice(2);
const spec = JSON.parse(specText);
const ws = new WebSocket(url, [subprotocol]);
const client = new FoxgloveClient({ ws });

const report = { subprotocol: null, serverInfo: null, channels: {}, topics: {}, errors: [],
                 statuses: [], playback: [], times: 0 };
const decoders = new Map(); // channel id -> {topic, decode}
const bySubscription = new Map(); // subscription id -> channel id
const textDecoder = new TextDecoder();
let step = 0;
let waitingFor = null; // request id of the playback step sent last

function decoderFor(channel) {
  if (channel.encoding === "protobuf") {
    const bytes = Buffer.from(channel.schema, "base64");
    const root = protobuf.Root.fromDescriptor(descriptor.FileDescriptorSet.decode(bytes));
    const type = root.lookupType(channel.schemaName);
    return (data) => type.toObject(type.decode(data), { longs: Number, defaults: true });
  }
  return (data) => JSON.parse(textDecoder.decode(data));
}

function topicEntry(topic) {
  report.topics[topic] ??= { count: 0, seqs: [], pixels: [], values: [], logs: [], bytes: 0,
                             afterPlayback: {} };
  return report.topics[topic];
}

const want = (t) => (t.endsWith("/thermal") ? spec.frames : t.endsWith("/audio") ? spec.blocks
  : t === "/sensorlink/log" ? spec.logs : spec.readings);

function done() {
  const topics = Object.keys(report.channels);
  const enough = topics.length > 0 && topics.every((t) => (report.topics[t]?.count ?? 0) >= want(t));
  const steps = spec.playback ?? [];
  // each topic of spec.afterLast must also have had a message since the last step's answer
  const last = report.playback.findLast((s) => s.requestId === steps[steps.length - 1]?.id);
  const after = (spec.afterLast ?? []).every((t) => last && t in last.first);
  return enough && step >= steps.length && waitingFor === null && after;
}

function finish(error) {
  if (error) report.error = String(error);
  console.log(JSON.stringify(report));
  ws.close();
  process.exit(error ? 1 : 0);
}

function sendPlayback() {
  const s = spec.playback?.[step];
  if (!s || waitingFor !== null) return;
  const id = Buffer.from(s.id, "utf8");
  const buf = Buffer.alloc(1 + 1 + 4 + 1 + 8 + 4 + id.length);
  let o = buf.writeUInt8(3, 0);
  o = buf.writeUInt8(s.command, o);
  o = buf.writeFloatLE(s.speed, o);
  o = buf.writeUInt8(s.seek === undefined ? 0 : 1, o);
  o = buf.writeBigUInt64LE(BigInt(s.seek ?? 0), o);
  o = buf.writeUInt32LE(id.length, o);
  id.copy(buf, o);
  waitingFor = s.id;
  ws.send(buf);
}

client.on("open", () => { report.subprotocol = ws.protocol; });
client.on("serverInfo", (info) => { report.serverInfo = info; });
client.on("status", (status) => { report.statuses.push(status); });
client.on("error", (error) => {
  // FoxgloveClient 0.8 predates Playback State (opcode 5): read below, not an error here.
  if (!String(error?.message ?? error).includes("binary message: 5")) {
    report.errors.push(String(error?.message ?? error));
  }
});
client.on("advertise", (channels) => {
  for (const channel of channels) {
    report.channels[channel.topic] = { schemaName: channel.schemaName, encoding: channel.encoding,
                                       schemaEncoding: channel.schemaEncoding };
    decoders.set(channel.id, { topic: channel.topic, decode: decoderFor(channel) });
    bySubscription.set(client.subscribe(channel.id), channel.id);
  }
});
client.on("time", () => { report.times += 1; });
client.on("message", ({ subscriptionId, timestamp, data }) => {
  const { topic, decode } = decoders.get(bySubscription.get(subscriptionId));
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const body = decode(bytes);
  const entry = topicEntry(topic);
  entry.count += 1;
  if (body.seq !== undefined) entry.seqs.push(Number(body.seq));
  if (topic.endsWith("/thermal")) {
    const [row, col] = spec.pixel;
    const pixels = new DataView(body.data.buffer, body.data.byteOffset, body.data.byteLength);
    entry.pixels.push(pixels.getFloat32((row * body.width + col) * 4, true));
    entry.encoding = body.encoding;
    entry.size = [body.width, body.height];
  } else if (topic.endsWith("/audio")) {
    entry.bytes += body.data.length;
    entry.format = [body.format, body.sampleRate ?? body.sample_rate,
                    body.numberOfChannels ?? body.number_of_channels];
  } else if (topic === "/sensorlink/log") {
    entry.logs.push({ level: body.level, name: body.name, message: body.message });
  } else if (body.value !== undefined || body.value_nonfinite !== undefined) {
    entry.values.push(body.value ?? body.value_nonfinite);
  }
  // the first message of each topic after each playback answer, with its log time
  const last = report.playback[report.playback.length - 1];
  if (last && !(topic in last.first)) last.first[topic] = { seq: body.seq, logTime: String(timestamp) };
  if (done()) finish();
});
ws.on("message", (data, isBinary) => {
  if (!isBinary) return;
  const buf = Buffer.from(data); // an ArrayBuffer: FoxgloveClient set binaryType
  if (buf[0] !== 5) return;
  const n = buf.readUInt32LE(1 + 1 + 8 + 4);
  const state = { status: buf.readUInt8(1), currentTime: String(buf.readBigUInt64LE(2)),
                  speed: buf.readFloatLE(10), requestId: buf.subarray(18, 18 + n).toString("utf8"),
                  first: {} };
  if (state.requestId === "") return; // the server's own notices (it ended, ...)
  report.playback.push(state);
  if (state.requestId === waitingFor) {
    waitingFor = null;
    step += 1;
    // the next step once some data has flowed (or at once when paused: nothing will)
    setTimeout(sendPlayback, 300);
  }
  if (done()) finish();
});
client.on("close", (event) => finish(`closed: ${event?.code} ${event?.reason ?? ""}`));
setTimeout(() => finish(`timed out after ${spec.timeout_s ?? 120} s`), (spec.timeout_s ?? 120) * 1000);
// Playback starts once every channel has had a first message, or (spec.kick "advertised",
// for a replay that starts paused) as soon as channels are advertised.
const kick = setInterval(() => {
  const topics = Object.keys(report.channels).filter((t) => want(t) > 0);
  const ready = spec.kick === "advertised" ? report.serverInfo !== null && topics.length > 0
    : topics.length && topics.every((t) => report.topics[t]?.count > 0);
  if (ready) {
    clearInterval(kick);
    sendPlayback();
  }
}, 100);
