"""Work in the executor whose caller is cancelled: it must never meet the next caller's work.

asyncio cancels the awaiting task, not the thread. The shared video encoder, the simulated
microphone's synthesis (both through :class:`sensorlink.offload.SerialOffload`) and the
recorder's start keep what a cancelled caller left running from overlapping what comes next.


The repro of issue 10: a viewer leaves while its camera's frame is being encoded in the executor
(``unsubscribe()`` cancels the encoder's task, but the thread goes on encoding), and a viewer
joins right after. Before the fix the new task encoded on the same libvpx context from a second
thread, and 300 such cycles crashed the interpreter. Here the real codec runs inside a subclass
that counts the threads inside ``_encode`` at once; an encode that would overlap another is
counted and skipped (so a regression fails the test instead of killing it).
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import av

from sensorlink.hub import Hub
from sensorlink.offload import SerialOffload
from sensorlink.recording.reader import Recording
from sensorlink.recording.recorder import Recorder
from sensorlink.samples import SensorInfo
from sensorlink.webrtc.encoding import SharedVideoEncoder
from sensorlink.webrtc.media import CameraView

from support import wait_for

CYCLES = 300


class CountingEncoder(SharedVideoEncoder):
    """The real encoder; each encode can be held inside the codec call until released."""

    def __init__(self, view: CameraView) -> None:
        super().__init__(view)
        self.lock = threading.Lock()
        self.inside = 0
        self.overlaps = 0
        self.encodes = 0
        self.contexts: set[int] = set()
        self.freed_while_encoding = False
        self.hold = False
        self.loop = asyncio.get_running_loop()
        self.entered = asyncio.Event()   # set from the encoding thread
        self.release = threading.Event()

    def _encode(self, codec: Any, frame: av.VideoFrame) -> list[av.Packet]:
        with self.lock:
            self.inside += 1
            overlapping = self.inside > 1
            self.overlaps += overlapping
            hold = self.hold and not overlapping
            self.hold = False
        try:
            if overlapping:
                return []  # a second thread on this context: counted, and kept out of libvpx
            if hold:
                self.loop.call_soon_threadsafe(self.entered.set)
                assert self.release.wait(30), "the test never released the encode"
            self.contexts.add(id(codec))
            self.encodes += 1
            return super()._encode(codec, frame)
        finally:
            self.freed_while_encoding |= self._codec is None
            with self.lock:
                self.inside -= 1


def camera() -> CameraView:
    info = SensorInfo("cam", "thermal", "sim-thermal", {"width": 32, "height": 24, "rate_hz": 8.0})
    view = CameraView(Hub(), info)
    view.output_fps = 200.0  # the next encode comes within 5 ms: 300 cycles in seconds
    return view


async def hold_next_encode(encoder: CountingEncoder) -> None:
    """Wait until the encoder's next encode is inside the codec call, held there."""
    encoder.entered.clear()
    encoder.release.clear()
    encoder.hold = True
    await asyncio.wait_for(encoder.entered.wait(), 10)


async def test_viewers_leaving_mid_encode_and_joining_never_encode_twice_on_one_context() -> None:
    encoder = CountingEncoder(camera())
    track = encoder.subscribe()
    try:
        for cycle in range(CYCLES):
            await hold_next_encode(encoder)
            track.stop()                   # the viewer leaves while its frame is encoded ...
            track = encoder.subscribe()    # ... and the next one joins at once (a reload)
            # Give the bug its chance: a second encode entering while the first is held.
            # (A bounded wait, not an assertion: with the fix nothing enters.)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 0.005
            while encoder.inside < 2 and loop.time() < deadline:
                await asyncio.sleep(0)
            encoder.release.set()
            assert encoder.overlaps == 0, f"cycle {cycle}: two encodes at once on one context"
            # The joined viewer gets video: its first packet, a keyframe, after the held encode.
            packet = await asyncio.wait_for(track.recv(), 10)
            assert packet.is_keyframe, f"cycle {cycle}: a new viewer must start at a keyframe"
        assert encoder.overlaps == 0
        assert len(encoder.contexts) == 1  # one libvpx context all along, reused by every viewer
        assert encoder.encodes >= 2 * CYCLES
        assert encoder.left_mid_encode == CYCLES  # every cycle did cancel a run mid-encode
    finally:
        encoder.release.set()
        await encoder.stop()


async def test_stop_waits_for_the_encode_in_flight_before_it_frees_the_codec() -> None:
    encoder = CountingEncoder(camera())
    track = encoder.subscribe()
    await hold_next_encode(encoder)
    stopping = asyncio.create_task(encoder.stop())
    try:
        for _ in range(20):
            await asyncio.sleep(0)
        assert not stopping.done(), "stop() returned while an encode still ran on the codec"
        assert track.readyState == "ended"
    finally:
        encoder.release.set()
    await asyncio.wait_for(stopping, 10)
    assert encoder._codec is None and encoder.inside == 0
    assert not encoder.freed_while_encoding
    assert encoder.overlaps == 0


class Gate:
    """A blocking call held in its thread until released; counts calls inside at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.inside = self.most_inside = self.calls = 0
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, value: int) -> int:
        with self.lock:
            self.inside += 1
            self.calls += 1
            self.most_inside = max(self.most_inside, self.inside)
        try:
            self.entered.set()
            assert self.release.wait(30)
            return value
        finally:
            with self.lock:
                self.inside -= 1


async def test_the_call_of_a_cancelled_caller_finishes_before_the_next_call_starts() -> None:
    offload, gate = SerialOffload(), Gate()
    first = asyncio.create_task(offload.run(gate, 1))
    await wait_for(gate.entered.is_set, 10, "the first call in its thread")
    first.cancel()
    await asyncio.gather(first, return_exceptions=True)
    assert first.cancelled() and offload.busy  # the caller is gone, its call is not
    second = asyncio.create_task(offload.run(gate, 2))
    idle = asyncio.create_task(offload.idle())
    for _ in range(20):
        await asyncio.sleep(0)
    assert gate.calls == 1 and not second.done() and not idle.done()
    gate.release.set()
    assert await asyncio.wait_for(second, 10) == 2
    await asyncio.wait_for(idle, 10)
    assert gate.calls == 2 and gate.most_inside == 1 and not offload.busy


async def test_a_recording_start_cancelled_while_its_file_opens_is_stopped_cleanly(
        tmp_path: Path) -> None:
    """A viewer asks for a recording and leaves while the file opens (its control task is
    cancelled), then the service stops: the file must end complete, nothing left behind."""
    hub = Hub()
    opening, release = threading.Event(), threading.Event()

    def slow_open(path: Path) -> Any:
        opening.set()
        assert release.wait(30)
        return open(path, "xb")

    recorder = Recorder(hub, tmp_path, session={}, opener=slow_open)
    start = asyncio.create_task(recorder.start())
    await wait_for(opening.is_set, 10, "the file opening in the recorder's thread")
    start.cancel()
    await asyncio.gather(start, return_exceptions=True)
    stopping = asyncio.create_task(recorder.stop())
    try:
        for _ in range(20):
            await asyncio.sleep(0)
        assert not stopping.done(), "stop() returned while the file was still being opened"
    finally:
        release.set()
    await asyncio.wait_for(stopping, 10)
    assert not recorder.active and recorder.status()["error"] is None
    assert not list(hub.subscriptions)  # nothing queues for a recorder that is gone
    with Recording(recorder.path) as recording:
        assert not recording.cut_short  # summary and index written: stopped, not abandoned
