"""The live path end to end in one process: service → aiortc → a real remote peer (the viewer)."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest

from sensorlink import colormap
from sensorlink.analysis.directional import angle_difference
from sensorlink.webrtc.client import Refused
from sensorlink.webrtc.viewer import Viewer, connected_viewer

from support import wait_for

OPERATOR = "test-token-123"


def url(service) -> str:
    host, port = service.bound
    return f"http://{host}:{port}/#token={OPERATOR}"


async def test_readings_arrive_with_no_gaps_in_seq(still_service) -> None:
    async with connected_viewer(url(still_service)) as viewer:
        await wait_for(lambda: viewer.readings >= 600, 30, "600 readings")
        streams = set(viewer.last_seq)
        assert {"probes/t0", "probes/t1", "probes/t2", "mic/doa", "mic/level", "cam/ambient"} <= streams
        assert viewer.seq_gaps == 0 and viewer.invalid == 0


async def test_exact_frames_and_video_show_the_hot_spot_where_the_simulation_put_it(still_service) -> None:
    driver = still_service.runners[0].driver
    x, y, peak = driver.hot_spot(0)  # still: the same in every frame
    async with connected_viewer(url(still_service), keep_video=True) as viewer:
        await wait_for(lambda: "cam" in viewer.last_frames and viewer.video_frames["cam"] >= 10,
                       30, "frames and video")
        meta, celsius = viewer.last_frames["cam"]
        # Exact °C: the simulation has no noise here, so the data channel must match it to 0.01.
        assert np.max(np.abs(celsius - driver.expected(meta["seq"]))) <= 0.006
        assert celsius.max() > 40.0 and abs(celsius.max() - peak) < 0.5
        # Video: the hottest colour of the map sits on the hot spot.
        rgb = viewer.last_video["cam"].astype(np.float64)
        view = still_service.cameras["cam"]
        hot_colour = colormap.lut(view.map)[-1].astype(np.float64)
        distance = np.linalg.norm(rgb - hot_colour, axis=2)
        ys, xs = np.nonzero(distance < 40)
        assert len(xs) > 0
        scale = view.scale
        assert abs(xs.mean() / scale - 0.5 - x) <= 1.0 and abs(ys.mean() / scale - 0.5 - y) <= 1.0
        assert rgb.shape[:2] == (view.video_size[1], view.video_size[0])


async def test_audio_arrives_and_the_compass_reading_points_at_the_source(still_service) -> None:
    async with connected_viewer(url(still_service)) as viewer:
        doa = []
        viewer.on_event = lambda e: doa.extend(r[3] for r in e.get("readings", []) if r[0] == "mic/doa")
        await wait_for(lambda: viewer.audio_frames["mic"] >= 25 and len(doa) >= 5, 30, "audio + doa")
        assert all(angle_difference(a, 120.0) <= 10 for a in doa)


async def test_a_second_viewer_does_not_disturb_the_first(still_service) -> None:
    async with connected_viewer(url(still_service)) as first:
        await wait_for(lambda: first.readings >= 100, 30)
        async with connected_viewer(url(still_service)) as second:
            before = first.readings
            await wait_for(lambda: second.readings >= 200 and second.video_frames["cam"] >= 5, 30)
            assert len(still_service.viewers) == 2
            assert first.readings > before
        after = first.readings
        await wait_for(lambda: first.readings >= after + 100, 30, "first viewer still streaming")
        assert first.seq_gaps == 0 and second.seq_gaps == 0
        assert first.connections == 1
        assert first.last_status["viewer"]["readings_dropped"] == 0


async def test_steering_changes_the_beam_and_status_reports_it(still_service) -> None:
    async with connected_viewer(url(still_service)) as viewer:
        reply = await viewer.control({"type": "steer", "sensor": "mic", "angle_deg": 300})
        assert reply["type"] == "reply" and reply["result"]["angle_deg"] == 300
        assert still_service.beams["mic"].angle == 300
        await wait_for(lambda: (viewer.last_status.get("beams") or {}).get("mic") == 300, 10)
        reply = await viewer.control({"type": "steer", "sensor": "mic", "angle_deg": None})
        assert reply["result"]["follows_doa"] is True


async def test_bad_control_gets_an_error_and_streaming_goes_on(still_service) -> None:
    async with connected_viewer(url(still_service)) as viewer:
        bad = await viewer.control({"type": "steer", "sensor": "mic", "angle_deg": "north"})
        assert bad["type"] == "error" and bad["field"] == "angle_deg"
        unknown = await viewer.control({"type": "self-destruct"})
        assert unknown["type"] == "error" and unknown["field"] == "type"
        nosuch = await viewer.control({"type": "steer", "sensor": "nope", "angle_deg": 1})
        assert nosuch["field"] == "sensor" and "mic" in nosuch["error"]
        replayed = await viewer.control({"type": "ping", "id": 1})
        assert replayed["type"] == "error" and replayed["field"] == "id"
        errors_before = viewer.last_status.get("viewer", {}).get("control_refused", 0)
        await viewer.send_raw_control(msgpack.packb({"type": "ping", "id": 10**6, "pad": "x" * 9000}))
        await viewer.send_raw_control(b"\xc1\xc1 not msgpack")
        await wait_for(lambda: viewer.last_status.get("viewer", {}).get("control_refused", 0)
                       >= errors_before + 2, 10, "oversized and garbage refused")
        count = viewer.readings
        await wait_for(lambda: viewer.readings > count + 50, 20, "still streaming")
        ok = await viewer.control({"type": "ping", "t_client_ms": 1.0})
        assert ok["type"] == "reply"


async def test_viewer_role_may_look_but_not_steer(still_service) -> None:
    host, port = still_service.bound
    async with connected_viewer(f"http://{host}:{port}/#token=viewer-token-456") as viewer:
        assert viewer.hello["role"] == "viewer"
        refused = await viewer.control({"type": "steer", "sensor": "mic", "angle_deg": 10})
        assert refused["type"] == "error" and "operator" in refused["error"]
        assert (await viewer.control({"type": "ping"}))["type"] == "reply"


async def test_wrong_token_is_refused_with_a_reason(still_service) -> None:
    host, port = still_service.bound
    viewer = Viewer(f"http://{host}:{port}/#token=wrong-token")
    with pytest.raises(Refused, match="wrong token"):
        await viewer.run(10)


async def test_colormap_change_reaches_the_viewer(still_service) -> None:
    async with connected_viewer(url(still_service)) as viewer:
        views = []
        viewer.on_event = lambda e: views.append(e) if e.get("event") == "view" else None
        reply = await viewer.control({"type": "colormap", "sensor": "cam", "map": "ironbow",
                                      "range": [20, 50]})
        assert reply["result"] == {"sensor": "cam", "map": "ironbow", "range": [20.0, 50.0]}
        await wait_for(lambda: any(v["map"] == "ironbow" for v in views), 10)
        bad = await viewer.control({"type": "colormap", "sensor": "cam", "map": "rainbow-unicorn"})
        assert bad["field"] == "map"


async def test_video_and_audio_are_encoded_once_for_every_viewer(still_service) -> None:
    camera, beam = still_service.cameras["cam"], still_service.beams["mic"]
    async with connected_viewer(url(still_service)) as first:
        await wait_for(lambda: first.video_frames["cam"] >= 5, 30)
        async with connected_viewer(url(still_service), keep_video=True) as second:
            # The late joiner starts at a keyframe and decodes the picture.
            await wait_for(lambda: second.video_frames["cam"] >= 20 and second.audio_frames["mic"] >= 50,
                           30, "video and audio at the second viewer")
            encoded_before = camera.encoder.frames_encoded
            received_before = first.video_frames["cam"] + second.video_frames["cam"]
            await wait_for(lambda: first.video_frames["cam"] + second.video_frames["cam"]
                           >= received_before + 30, 30)
            encoded = camera.encoder.frames_encoded - encoded_before
            received = first.video_frames["cam"] + second.video_frames["cam"] - received_before
            # Two viewers, one encode: far fewer encodes than frames delivered in all.
            assert encoded < 0.75 * received, (encoded, received)
            assert len(beam.encoder._tracks) == 2 and len(camera.encoder._tracks) == 2
            assert second.last_video["cam"].shape[:2] == (camera.video_size[1], camera.video_size[0])
    await wait_for(lambda: not camera.encoder._tracks and not beam.encoder._tracks, 10,
                   "encoders released when the viewers leave")


async def test_a_viewer_without_vp8_gets_its_own_h264_encode_of_the_same_picture(still_service) -> None:
    driver = still_service.runners[0].driver
    x, y, _ = driver.hot_spot(0)
    view = still_service.cameras["cam"]
    async with connected_viewer(url(still_service), keep_video=True, video_codec="H264") as viewer:
        await wait_for(lambda: viewer.video_frames["cam"] >= 10, 30, "H264 video")
        assert not view.encoder._tracks  # the shared VP8 encoder is not used for this viewer
        rgb = viewer.last_video["cam"].astype(float)
        hot = np.linalg.norm(rgb - colormap.lut(view.map)[-1], axis=2) < 40
        ys, xs = np.nonzero(hot)
        assert len(xs) and abs(xs.mean() / view.scale - 0.5 - x) <= 1.0
        assert abs(ys.mean() / view.scale - 0.5 - y) <= 1.0
