"""One encode per sensor for every viewer: VP8 per camera, Opus per microphone beam.

aiortc encodes per sender, so ten viewers of one camera cost ten encodes of the same picture.
aiortc also accepts pre-encoded packets from a track (``RTCRtpSender`` packs ``av.Packet``s
instead of encoding frames), so here one :class:`SharedVideoEncoder` per camera encodes each
output frame once, with the settings aiortc's own VP8 encoder uses, one
:class:`SharedAudioEncoder` per microphone encodes the beam once like aiortc's Opus encoder,
and every viewer's :class:`EncodedTrack` hands the same packets to its sender.

At most one encode per codec context at a time, whatever viewers do: a viewer that leaves
mid-encode cancels the encoder's task but not the executor thread, so the next task waits for
that encode (:class:`sensorlink.offload.SerialOffload`) before it touches the context, and
:meth:`SharedVideoEncoder.stop` waits for it before it frees the context.

Keyframes: every new viewer asks for one, and one goes out every ``keyframe_interval_s`` so a
viewer that lost packets (its own sender still answers NACKs from its RTP history) recovers.
A viewer that falls behind skips to the next keyframe instead of decoding garbage.
"""

from __future__ import annotations

import asyncio
import collections
import fractions
import time
from typing import Any, Protocol

import av
import numpy as np
from aiortc import RTCRtpSender
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from sensorlink.offload import SerialOffload

VIDEO_CLOCK = 90_000
TIME_BASE = fractions.Fraction(1, VIDEO_CLOCK)


class VideoSource(Protocol):
    """What the shared encoder reads from (a media.CameraView): the picture, its size and rate."""

    sensor: str
    output_fps: float
    video_size: tuple[int, int]

    def picture_yuv420(self) -> np.ndarray:
        """The latest picture as yuv420p planes, one (3/2·H, W) uint8 array."""


def settle_on(transceiver: Any, mime_type: str) -> bool:
    """Make a transceiver negotiated from a remote offer send ``mime_type`` (video/VP8 or
    audio/opus), the codec of our shared packets.

    aiortc negotiates codecs in setRemoteDescription, in the offer's order, before preferences
    can be set on a transceiver it creates there; so the negotiated list is filtered here with
    aiortc's own preference filter. False (nothing changed) when the offer lacks the codec."""
    from aiortc.rtcpeerconnection import filter_preferred_codecs

    kind = mime_type.split("/")[0]
    wanted = (mime_type.lower(), f"{kind}/rtx")
    preferred = [c for c in RTCRtpSender.getCapabilities(kind).codecs
                 if c.mimeType.lower() in wanted]
    codecs = filter_preferred_codecs(transceiver._codecs, preferred)
    if not any(c.mimeType.lower() == mime_type.lower() for c in codecs):
        return False
    transceiver._codecs = codecs
    return True


class EncodedTrack(MediaStreamTrack):
    """A viewer's track of one sensor: the shared encoder's packets, in order."""

    def __init__(self, encoder: Any, kind: str, depth: int = 60) -> None:
        super().__init__()
        self.kind = kind
        self.encoder = encoder
        self.skipped = 0
        self.delivered = 0  # packets handed to this track (tests compare them with encodes)
        self._packets: collections.deque[av.Packet] = collections.deque()
        self._depth = depth
        # Video must start at a keyframe; every Opus packet stands alone.
        self._need_keyframe = kind == "video"
        self._waiter: asyncio.Future[None] | None = None

    def put(self, packet: av.Packet) -> None:
        if self._need_keyframe and not packet.is_keyframe:
            self.skipped += 1
            return
        self._need_keyframe = False
        if len(self._packets) >= self._depth:
            # This viewer fell behind. A P-frame without its predecessors is garbage, so video
            # drops what is queued and starts again at the next keyframe; audio drops its oldest.
            if self.kind == "audio":
                self._packets.popleft()
                self.skipped += 1
            else:
                self.skipped += len(self._packets)
                self._packets.clear()
                self._need_keyframe = True
                self.encoder.request_keyframe()
                return
        self._packets.append(packet)
        self.delivered += 1
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def recv(self) -> av.Packet:
        while not self._packets:
            if self.readyState != "live":
                raise MediaStreamError
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._packets.popleft()

    def stop(self) -> None:
        self.encoder.unsubscribe(self)
        super().stop()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


class SharedVideoEncoder:
    """Encodes a camera's picture at its steady output rate while anyone watches."""

    def __init__(self, view: VideoSource, *, bitrate: int = 500_000,
                 keyframe_interval_s: float = 2.0) -> None:
        self.view = view
        self.bitrate = bitrate
        self.keyframe_interval_s = keyframe_interval_s
        self.frames_encoded = 0
        #: times the last viewer left while a frame was in the executor (its encode finished
        #: alone, and the next run waited for it)
        self.left_mid_encode = 0
        self._tracks: list[EncodedTrack] = []
        self._task: asyncio.Task[None] | None = None
        self._codec: av.VideoCodecContext | None = None
        self._keyframe_requested = True
        self._last_keyframe = 0.0
        # One encode at a time on the context, across runs: a cancelled run's encode goes on.
        self._offload = SerialOffload()
        # pts keep rising across runs (and clock restarts): libvpx's rate control times frames
        # by their pts, and one context serves every run.
        self._next_pts = 0

    def subscribe(self) -> EncodedTrack:
        track = EncodedTrack(self, "video")
        self._tracks.append(track)
        self.request_keyframe()
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"vp8:{self.view.sensor}")
        return track

    def unsubscribe(self, track: EncodedTrack) -> None:
        if track in self._tracks:
            self._tracks.remove(track)
        if not self._tracks and self._task is not None:
            self.left_mid_encode += self._offload.busy
            self._task.cancel()
            self._task = None

    def request_keyframe(self) -> None:
        self._keyframe_requested = True

    async def stop(self) -> None:
        task, self._task = self._task, None  # the last track's stop() would only cancel it
        for track in list(self._tracks):
            track.stop()
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        # The cancelled run's encode may still be in the executor: free the context after it.
        await self._offload.idle()
        self._codec = None

    def _open_codec(self, width: int, height: int, fps: float) -> av.VideoCodecContext:
        # The settings of aiortc's Vp8Encoder (real-time, CBR, error resilient), at a fixed rate.
        codec = av.CodecContext.create("libvpx", "w")
        codec.width, codec.height = width, height
        codec.bit_rate = self.bitrate
        codec.pix_fmt = "yuv420p"
        codec.framerate = fractions.Fraction(int(fps * 1000), 1000)
        codec.time_base = TIME_BASE
        codec.gop_size = 3000
        codec.qmin, codec.qmax = 2, 56
        codec.options = {"bufsize": str(self.bitrate), "cpu-used": "4", "deadline": "realtime",
                         "lag-in-frames": "0", "minrate": str(self.bitrate),
                         "maxrate": str(self.bitrate), "noise-sensitivity": "4",
                         "partitions": "0", "static-thresh": "1", "undershoot-pct": "95"}
        codec.thread_count = 1
        return codec

    def _encode(self, codec: av.VideoCodecContext, frame: av.VideoFrame) -> list[av.Packet]:
        # The context is an argument, not self._codec: the thread keeps the one it was given.
        packets = list(codec.encode(frame))
        for packet in packets:
            packet.time_base = TIME_BASE
        return packets

    async def _run(self) -> None:
        start, index, origin = time.monotonic(), 0, self._next_pts
        while self._tracks:
            fps = self.view.output_fps
            delay = start + index / fps - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -1.0:  # the loop stalled: restart the clock rather than burst
                start, index, origin = time.monotonic(), 0, self._next_pts
            width, height = self.view.video_size
            codec = self._codec
            if codec is None or (codec.width, codec.height) != (width, height):
                codec = self._codec = self._open_codec(width, height, fps)
                self._keyframe_requested = True
            frame = av.VideoFrame.from_ndarray(self.view.picture_yuv420(), format="yuv420p")
            frame.pts = origin + int(index * VIDEO_CLOCK / fps)
            self._next_pts = frame.pts + max(1, int(VIDEO_CLOCK / fps))
            frame.time_base = TIME_BASE
            now = time.monotonic()
            if self._keyframe_requested or now - self._last_keyframe > self.keyframe_interval_s:
                frame.pict_type = av.video.frame.PictureType.I
                self._keyframe_requested = False
                self._last_keyframe = now
            # libvpx releases the GIL: encode off the event loop, once, for every viewer.
            packets = await self._offload.run(self._encode, codec, frame)
            self.frames_encoded += 1
            for packet in packets:
                for track in tuple(self._tracks):
                    track.put(packet)
            index += 1


OPUS_RATE = 48_000
OPUS_FRAME = 960  # 20 ms


class SharedAudioEncoder:
    """Encodes a microphone's beam to Opus once for every viewer (fed by the Beamformer).

    :meth:`feed` encodes on the event loop thread, synchronously (a 20 ms Opus frame costs tens
    of microseconds): no encode is ever in flight when the last viewer's :meth:`unsubscribe`
    drops the context, so the reset cannot meet a thread still using it."""

    def __init__(self, sensor: str) -> None:
        self.sensor = sensor
        self._tracks: list[EncodedTrack] = []
        self._codec: av.AudioCodecContext | None = None
        self._resampler: av.AudioResampler | None = None
        self._first_pts: int | None = None
        self._samples = 0

    @property
    def active(self) -> bool:
        return bool(self._tracks)

    def subscribe(self) -> EncodedTrack:
        track = EncodedTrack(self, "audio", depth=25)
        self._tracks.append(track)
        return track

    def unsubscribe(self, track: EncodedTrack) -> None:
        if track in self._tracks:
            self._tracks.remove(track)
        if not self._tracks:
            self._codec = self._resampler = None  # a fresh stream for the next viewer
            self._first_pts, self._samples = None, 0

    def request_keyframe(self) -> None:
        """Opus has no keyframes; present so tracks can treat both encoders alike."""

    async def stop(self) -> None:
        for track in list(self._tracks):
            track.stop()  # the last one resets the context

    def feed(self, mono: Any, rate: int) -> None:
        """One block of the steered beam (int16 mono at ``rate``) → Opus packets to every track."""
        if not self._tracks:
            return
        if self._codec is None:
            # The settings of aiortc's OpusEncoder.
            self._codec = av.CodecContext.create("libopus", "w")
            self._codec.bit_rate = 96_000
            self._codec.format = "s16"
            self._codec.layout = "stereo"
            self._codec.options = {"application": "voip"}
            self._codec.sample_rate = OPUS_RATE
            self._codec.time_base = fractions.Fraction(1, OPUS_RATE)
            self._resampler = av.AudioResampler(format="s16", layout="stereo", rate=OPUS_RATE,
                                                frame_size=OPUS_FRAME)
        assert self._resampler is not None
        frame = av.AudioFrame.from_ndarray(mono.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = rate
        frame.pts = self._samples
        frame.time_base = fractions.Fraction(1, rate)
        self._samples += mono.shape[0]
        for resampled in self._resampler.resample(frame):
            for packet in self._codec.encode(resampled):
                # libopus starts at a negative pts (its pre-skip): count from the first packet.
                if self._first_pts is None:
                    self._first_pts = packet.pts
                packet.pts -= self._first_pts
                packet.time_base = fractions.Fraction(1, OPUS_RATE)
                for track in tuple(self._tracks):
                    track.put(packet)
