// A WHIP endpoint (RFC 9725) for sensorlink's tests, on a WebRTC stack sensorlink did not write:
// werift (pure TypeScript ICE, DTLS, SRTP, RTP) behind node's own HTTP server. Each session's
// received tracks are written to WebM files by werift's MediaRecorder, one per track; the test
// decodes them with FFmpeg (PyAV) to see what really arrived.
//
//   node whip_endpoint.mjs PORT OUT_DIR [TOKEN]
//
// POST <any path> (application/sdp, Authorization: Bearer TOKEN when given) -> 201 + answer +
// Location /session/<id>; DELETE /session/<id> -> 200, the files finished. Events go to stdout as
// JSON lines: listening, session, track, state, deleted (with the file), refused.
import http from "node:http";
import { MediaRecorder } from "werift/nonstandard";
import { gathered, newPeer } from "./werift_peer.mjs";

const [port, outDir, token] = process.argv.slice(2);
const sessions = new Map();
let nextId = 1;

const emit = (event) => process.stdout.write(`${JSON.stringify(event)}\n`);

const readBody = (req) => new Promise((resolve, reject) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
  req.on("error", reject);
});

async function create(req, res, path, offer) {
  const id = String(nextId++);
  const pc = newPeer();
  const kinds = [...offer.matchAll(/^m=(audio|video) /gm)].map((m) => m[1]);
  // One WebM file per track, <file>.<kind>.webm: werift's WebM writer can fail on its cue
  // points when it interleaves two tracks that join a running stream.
  const file = `${outDir}/session-${id}`;
  const recorders = Object.fromEntries(kinds.map((kind) => [kind, new MediaRecorder({
    path: `${file}.${kind}.webm`, numOfTracks: 1, disableLipSync: true })]));
  sessions.set(id, { pc, recorders, file, path });
  pc.onTrack.subscribe((track) => {
    emit({ event: "track", id, kind: track.kind });
    recorders[track.kind].addTrack(track);
  });
  pc.connectionStateChange.subscribe((state) => emit({ event: "state", id, state }));
  await pc.setRemoteDescription({ type: "offer", sdp: offer });
  await pc.setLocalDescription(await pc.createAnswer());
  await gathered(pc);
  emit({ event: "session", id, path, kinds });
  res.writeHead(201, { "Content-Type": "application/sdp", Location: `/session/${id}` });
  res.end(pc.localDescription.sdp);
}

async function remove(res, id) {
  const session = sessions.get(id);
  if (!session) {
    res.writeHead(404);
    return res.end();
  }
  sessions.delete(id);
  for (const recorder of Object.values(session.recorders)) await recorder.stop();
  await session.pc.close();
  emit({ event: "deleted", id, path: session.path, file: session.file });
  res.writeHead(200);
  res.end();
}

const server = http.createServer(async (req, res) => {
  try {
    const body = await readBody(req);
    const url = new URL(req.url, "http://endpoint");
    if (token && req.headers.authorization !== `Bearer ${token}`) {
      emit({ event: "refused", authorization: req.headers.authorization ?? null });
      res.writeHead(401, { "WWW-Authenticate": "Bearer" });
      return res.end("wrong token");
    }
    const session = url.pathname.match(/^\/session\/(\w+)$/);
    if (req.method === "POST" && !session) {
      if (req.headers["content-type"] !== "application/sdp") {
        res.writeHead(415);
        return res.end();
      }
      return await create(req, res, url.pathname, body);
    }
    if (req.method === "DELETE" && session) return await remove(res, session[1]);
    res.writeHead(405);
    res.end();
  } catch (err) {
    emit({ event: "error", message: String(err?.stack ?? err) });
    res.writeHead(500);
    res.end(String(err));
  }
});

// Going away as a server restart does: every session's peer connection closed (DTLS close_notify,
// consent revoked as RFC 9725 asks), then exit.
process.on("SIGTERM", async () => {
  for (const session of sessions.values()) await session.pc.close();
  emit({ event: "exiting" });
  process.exit(0);
});

server.listen(Number(port), "127.0.0.1", () => emit({ event: "listening", port: server.address().port }));
