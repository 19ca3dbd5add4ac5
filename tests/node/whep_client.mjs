// A WHEP player for sensorlink's tests, on a WebRTC stack sensorlink did not write: werift (pure
// TypeScript ICE, DTLS, SRTP, RTP) and node's own fetch. It offers to receive one video and one
// audio track, POSTs the complete offer with the Bearer token, counts the RTP packets of each
// kind and records each track to a WebM file, OUT_FILE.<kind>.webm (werift's MediaRecorder),
// for the test to decode.
//
//   node whep_client.mjs URL TOKEN OUT_FILE KINDS      (KINDS: "video,audio", "audio", ...)
//
// A line "delete" on stdin DELETEs the session's Location, closes the peer and exits. Events go
// to stdout as JSON lines: answered (status, location, body on refusal), rtp (counts per kind,
// every 25 packets), state, deleted (the DELETE's status, the file).
import readline from "node:readline";
import { MediaRecorder } from "werift/nonstandard";
import { gathered, newPeer } from "./werift_peer.mjs";

const [url, token, file, kindList] = process.argv.slice(2);
const kinds = kindList.split(",");
const emit = (event) => process.stdout.write(`${JSON.stringify(event)}\n`);

const pc = newPeer();
// One file per track: werift's WebM writer can fail on its cue points when it interleaves a
// track that joins a running stream with another (the files: OUT_FILE.video.webm, ...).
const recorders = Object.fromEntries(kinds.map((kind) => [kind, new MediaRecorder({
  path: `${file}.${kind}.webm`, numOfTracks: 1, disableLipSync: true })]));
const rtp = Object.fromEntries(kinds.map((kind) => [kind, 0]));
pc.onTrack.subscribe((track) => {
  recorders[track.kind].addTrack(track);
  track.onReceiveRtp.subscribe(() => {
    rtp[track.kind] += 1;
    if (rtp[track.kind] % 25 === 0) emit({ event: "rtp", ...rtp });
  });
});
pc.connectionStateChange.subscribe((state) => emit({ event: "state", state }));
for (const kind of kinds) pc.addTransceiver(kind, { direction: "recvonly" });

await pc.setLocalDescription(await pc.createOffer());
await gathered(pc);
const reply = await fetch(url, {
  method: "POST", body: pc.localDescription.sdp,
  headers: { "Content-Type": "application/sdp", Authorization: `Bearer ${token}` },
});
const body = await reply.text();
const location = reply.headers.get("location") && new URL(reply.headers.get("location"), url).href;
emit({ event: "answered", status: reply.status, location, body: reply.status === 201 ? "" : body });
if (reply.status === 201) await pc.setRemoteDescription({ type: "answer", sdp: body });

for await (const line of readline.createInterface({ input: process.stdin })) {
  if (line.trim() !== "delete") continue;
  const deleted = await fetch(location, { method: "DELETE",
                                          headers: { Authorization: `Bearer ${token}` } });
  for (const recorder of Object.values(recorders)) await recorder.stop();
  await pc.close();
  emit({ event: "deleted", status: deleted.status, file, ...rtp });
  break;
}
process.exit(0);
