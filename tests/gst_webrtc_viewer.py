"""A sensorlink viewer built on GStreamer's webrtcbin: a WebRTC stack we did not write.

Run by the tests with Debian's own Python (/usr/bin/python3, never the venv): GStreamer, its
Python bindings, websockets and msgpack all come from Debian packages (scripts/setup.sh).

    /usr/bin/python3 tests/gst_webrtc_viewer.py WS_URL TOKEN [--bundle max-bundle|none]

It signs in like the dashboard (auth, hello), asks for one receive-only transceiver per camera
and microphone and creates the four negotiated data channels, gathers every candidate before it
sends its offer (aiortc does not trickle), applies the answer, then decodes what arrives: VP8
video (frames counted per sensor), Opus audio (RMS level per sensor) and the ``readings``
channel (msgpack, seq checked per stream). Twice a second it prints a JSON line of counts; a
failed connection prints one ``failed`` line and exits 1. webrtcbin keeps its default
certificate: GStreamer generates an RSA one (the point of the test).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import threading
from array import array
from typing import Any

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstSdp", "1.0")
gi.require_version("GstWebRTC", "1.0")
import msgpack  # noqa: E402
import websockets  # noqa: E402
from gi.repository import GLib, Gst, GstSdp, GstWebRTC  # noqa: E402

VIDEO_CAPS = "application/x-rtp,media=video,encoding-name=VP8,payload=97,clock-rate=90000"
AUDIO_CAPS = ("application/x-rtp,media=audio,encoding-name=OPUS,payload=96,clock-rate=48000,"
              "encoding-params=(string)2")
CHANNEL_OPTIONS = {"readings": "", "frames": ",ordered=false,max-retransmits=0",
                   "control": "", "status": ""}


def emit(event: dict[str, Any]) -> None:
    print(json.dumps(event), flush=True)


class GstViewer:
    def __init__(self, bundle: str) -> None:
        self.pipeline = Gst.Pipeline.new("viewer")
        self.webrtc = Gst.ElementFactory.make("webrtcbin", "webrtc")
        policy = {"max-bundle": GstWebRTC.WebRTCBundlePolicy.MAX_BUNDLE,
                  "none": GstWebRTC.WebRTCBundlePolicy.NONE}[bundle]
        self.webrtc.set_property("bundle-policy", policy)
        self.pipeline.add(self.webrtc)
        # libnice leaves loopback interfaces out; the service under test listens on loopback.
        # (Keep the agent's Python wrapper: webrtcbin 1.22's getter returns no reference of
        # its own, so a dropped wrapper would free the agent under webrtcbin.)
        self.ice = self.webrtc.get_property("ice-agent")
        self.ice.emit("add-local-ip-address", "127.0.0.1")
        self.webrtc.connect("pad-added", self._on_pad)
        self.webrtc.connect("notify::ice-gathering-state", self._on_gathering)
        self.webrtc.connect("notify::connection-state", self._on_connection)
        bus = self.pipeline.get_bus()
        bus.add_signal_watch()  # dispatched by the GLib main loop main() runs in a thread
        bus.connect("message::error", self._on_error)
        self.gathered = threading.Event()
        self.failed = threading.Event()
        self.errors: list[str] = []
        self.lock = threading.Lock()
        self.tracks: dict[str, str] = {}
        self.video: dict[str, int] = {}
        self.audio: dict[str, dict[str, float]] = {}
        self.readings = 0
        self.seq_gaps = 0
        self.last_seq: dict[str, int] = {}
        self.messages: dict[str, int] = {}
        self.channels: list[Any] = []

    # -- negotiation -------------------------------------------------------------------
    def prepare(self, hello: dict[str, Any]) -> None:
        for sensor in hello["sensors"]:
            caps = {"thermal": VIDEO_CAPS, "microphone": AUDIO_CAPS}.get(sensor["kind"])
            if caps:
                self.webrtc.emit("add-transceiver",
                                 GstWebRTC.WebRTCRTPTransceiverDirection.RECVONLY,
                                 Gst.Caps.from_string(caps))
        self.pipeline.set_state(Gst.State.PLAYING)
        for name, extra in CHANNEL_OPTIONS.items():
            options = Gst.Structure.new_from_string(
                f"options,negotiated=true,id={hello['channels'][name]}{extra}")
            channel = self.webrtc.emit("create-data-channel", name, options)
            assert channel is not None, f"webrtcbin would not create data channel {name}"
            channel.connect("on-message-data", self._on_data, name)
            self.channels.append(channel)

    def offer(self) -> str:
        """Create and apply the offer; return it once every candidate is in it."""
        reply = self._call("create-offer", None)
        offer = reply.get_value("offer")
        self._call("set-local-description", offer)
        if not self.gathered.wait(30):
            raise RuntimeError("webrtcbin did not finish gathering ICE candidates in 30 s")
        return self.webrtc.get_property("local-description").sdp.as_text()

    def answer(self, sdp: str, tracks: dict[str, str]) -> None:
        with self.lock:
            self.tracks = dict(tracks)
        result, message = GstSdp.SDPMessage.new_from_text(sdp)
        assert result == GstSdp.SDPResult.OK, "the answer is not SDP GStreamer can parse"
        answer = GstWebRTC.WebRTCSessionDescription.new(GstWebRTC.WebRTCSDPType.ANSWER, message)
        self._call("set-remote-description", answer)

    def _call(self, signal: str, argument: Any) -> Any:
        done = threading.Event()
        promise = Gst.Promise.new_with_change_func(lambda _p: done.set())
        if argument is None:
            self.webrtc.emit(signal, None, promise)
        else:
            self.webrtc.emit(signal, argument, promise)
        if not done.wait(30):
            raise RuntimeError(f"webrtcbin did not complete {signal} in 30 s")
        reply = promise.get_reply()
        if reply is not None and reply.has_field("error"):
            raise RuntimeError(f"{signal}: {reply.get_value('error')}")
        return reply

    def _on_gathering(self, webrtc: Any, _spec: Any) -> None:
        if webrtc.get_property("ice-gathering-state") == GstWebRTC.WebRTCICEGatheringState.COMPLETE:
            self.gathered.set()

    def _on_connection(self, webrtc: Any, _spec: Any) -> None:
        state = webrtc.get_property("connection-state")
        if state == GstWebRTC.WebRTCPeerConnectionState.FAILED:
            self.failed.set()

    def _on_error(self, _bus: Any, message: Any) -> None:
        error, debug = message.parse_error()
        self.errors.append(f"{message.src.get_name()}: {error.message} ({debug})")
        self.failed.set()

    # -- media -------------------------------------------------------------------------
    def _on_pad(self, _webrtc: Any, pad: Any) -> None:
        if pad.get_direction() != Gst.PadDirection.SRC:
            return
        mid = pad.get_property("transceiver").get_property("mid")
        caps = pad.get_current_caps() or pad.query_caps(None)
        media = caps.get_structure(0).get_value("media")
        if media == "video":
            chain = "rtpvp8depay ! vp8dec ! videoconvert ! appsink name=sink emit-signals=true sync=false"
        else:
            chain = ("rtpopusdepay ! opusdec ! audioconvert ! audio/x-raw,format=S16LE ! "
                     "appsink name=sink emit-signals=true sync=false")
        bin_ = Gst.parse_bin_from_description(chain, True)
        self.pipeline.add(bin_)
        bin_.get_by_name("sink").connect("new-sample", self._on_sample, mid, media)
        bin_.sync_state_with_parent()
        pad.link(bin_.get_static_pad("sink"))

    def _on_sample(self, sink: Any, mid: str, media: str) -> Gst.FlowReturn:
        sample = sink.emit("pull-sample")
        with self.lock:
            sensor = self.tracks.get(mid, mid)
            if media == "video":
                self.video[sensor] = self.video.get(sensor, 0) + 1
            else:
                buffer = sample.get_buffer()
                ok, info = buffer.map(Gst.MapFlags.READ)
                if ok:
                    pcm = array("h", bytes(info.data))
                    buffer.unmap(info)
                    rms = math.sqrt(sum(x * x for x in pcm) / len(pcm)) if pcm else 0.0
                    entry = self.audio.setdefault(sensor, {"frames": 0, "dbfs": -120.0})
                    entry["frames"] += 1
                    entry["dbfs"] = 20 * math.log10(rms / 32768) if rms > 0 else -120.0
        return Gst.FlowReturn.OK

    # -- data --------------------------------------------------------------------------
    def _on_data(self, _channel: Any, data: GLib.Bytes, name: str) -> None:
        message = msgpack.unpackb(data.get_data(), raw=False)
        with self.lock:
            self.messages[name] = self.messages.get(name, 0) + 1
            if name == "readings" and message.get("type") == "readings":
                for stream, seq, *_ in message["readings"]:
                    last = self.last_seq.get(stream)
                    if last is not None and seq != last + 1:
                        self.seq_gaps += 1
                    self.last_seq[stream] = seq
                    self.readings += 1

    def counts(self) -> dict[str, Any]:
        with self.lock:
            return {"event": "counts", "video_frames": dict(self.video),
                    "audio": {k: dict(v) for k, v in self.audio.items()},
                    "readings": self.readings, "seq_gaps": self.seq_gaps,
                    "streams": sorted(self.last_seq), "messages": dict(self.messages)}


async def main(url: str, token: str, bundle: str) -> int:
    Gst.init(None)
    loop = GLib.MainLoop()
    threading.Thread(target=loop.run, daemon=True).start()
    viewer = GstViewer(bundle)
    async with websockets.connect(url, max_size=2**20) as ws:
        await ws.send(json.dumps({"type": "auth", "token": token, "client": "gstreamer webrtcbin"}))
        hello = json.loads(await ws.recv())
        if hello.get("type") != "hello":
            emit({"event": "refused", "message": hello})
            return 2
        viewer.prepare(hello)
        offer = await asyncio.to_thread(viewer.offer)
        emit({"event": "offer", "sdp": offer})
        await ws.send(json.dumps({"type": "offer", "sdp": offer}))
        while (answer := json.loads(await ws.recv())).get("type") != "answer":
            if answer.get("type") == "error":
                emit({"event": "error", "message": answer})
                return 2
        emit({"event": "answer", "sdp": answer["sdp"], "tracks": answer["tracks"]})
        await asyncio.to_thread(viewer.answer, answer["sdp"], answer["tracks"])
        while not viewer.failed.is_set():
            emit(viewer.counts())
            await asyncio.sleep(0.5)
        emit({**viewer.counts(), "event": "failed", "errors": viewer.errors})
        return 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url")
    parser.add_argument("token")
    parser.add_argument("--bundle", choices=("max-bundle", "none"), default="max-bundle")
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.url, args.token, args.bundle)))
