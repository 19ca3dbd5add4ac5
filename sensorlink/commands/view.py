"""sensorlink view URL: the headless dashboard for scripts and tests."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

from sensorlink.webrtc.client import CertificateNotTrusted, Refused, tls_context
from sensorlink.webrtc.viewer import Viewer

HELP = "connect like the dashboard and print what arrives (readings, frames, status, media counts)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("url", help="the dashboard URL sensorlink printed (http://HOST:PORT/#token=...)")
    parser.add_argument("--token", help="token, if the URL does not end in #token=...")
    parser.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--record", metavar="FILE",
                        help="also record what arrives (readings, exact frames, status, the audio "
                             "as heard) to this MCAP file")
    parser.add_argument("--quiet-readings", action="store_true",
                        help="do not print the readings themselves, only their count per batch")
    parser.add_argument("--ca-file", metavar="PEM",
                        help="for https://: trust this certificate (or the CA that signed it), "
                             "e.g. the service's own self-signed --tls-cert")
    parser.add_argument("--insecure", action="store_true",
                        help="for https://: do not verify the service's certificate at all")


def _printer(args: argparse.Namespace) -> Any:
    def emit(event: dict[str, Any]) -> None:
        if args.quiet_readings and event.get("event") == "readings":
            event = {k: v for k, v in event.items() if k != "readings"}
        if args.json:
            print(json.dumps(event, ensure_ascii=False, default=str))
        else:
            kind = event.get("event")
            if kind == "readings":
                rows = event.get("readings") or []
                text = ", ".join(f"{r[0]}={r[3]:.2f}{r[4]}" for r in rows[:6])
                print(f"readings x{event['count']}: {text}{' ...' if len(rows) > 6 else ''}")
            elif kind == "frame":
                print(f"frame {event['sensor']} #{event['seq']} {event['width']}x{event['height']} "
                      f"min {event['min_c']:.2f} °C max {event['max_c']:.2f} °C")
            elif kind == "disconnected":
                print(f"disconnected: {event['reason']} (retrying in {event['retry_s']:g} s)")
            elif kind == "status":
                print("status: " + "; ".join(f"{s['sensor']} {s['state']} {s['rate_hz']:.1f}/s"
                                             + (f" ({s['detail']})" if s["detail"] else "")
                                             for s in event["sensors"]))
            else:
                print(f"{kind}: " + json.dumps({k: v for k, v in event.items() if k != "event"},
                                               ensure_ascii=False, default=str))
    return emit


async def _view(args: argparse.Namespace) -> int:
    emit = _printer(args)
    context = None  # the default: the system's CAs
    if args.ca_file or args.insecure:
        if args.insecure:
            print("sensorlink view: warning: --insecure: the service's TLS certificate is not "
                  "verified; anyone between here and there can read and change the stream",
                  file=sys.stderr)
        context = tls_context(args.ca_file, insecure=args.insecure)
    recorder = None
    received = None
    if args.record:
        from pathlib import Path

        import sensorlink
        from sensorlink.hub import Hub
        from sensorlink.recording.recorder import Recorder
        from sensorlink.webrtc.received import ReceivedSamples

        hub = Hub()
        received = ReceivedSamples(hub)
        target = Path(args.record)
        recorder = Recorder(hub, target.parent, file=target,
                            session={"recorded_by": "sensorlink view", "source": args.url.split("#")[0],
                                     "version": sensorlink.__version__})
        await recorder.start()
    viewer = Viewer(args.url, args.token, on_event=emit, received=received, ssl=context)

    async def media_counts() -> None:
        while True:
            await asyncio.sleep(1.0)
            emit(viewer.media_counts())

    counter = asyncio.create_task(media_counts())
    started = time.monotonic()
    try:
        await viewer.run(args.duration)
    except Refused as exc:
        print(f"sensorlink view: refused: {exc}", file=sys.stderr)
        return 3
    except CertificateNotTrusted as exc:
        print(f"sensorlink view: {exc}", file=sys.stderr)
        return 5
    finally:
        counter.cancel()
        if recorder is not None:
            await recorder.stop()
            emit({"event": "recorded", **recorder.status()})
    summary = viewer.media_counts()
    summary.update(event="summary", seconds=round(time.monotonic() - started, 2),
                   connections=viewer.connections)
    emit(summary)
    return 0 if viewer.connections else 4


def main(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_view(args))
    except KeyboardInterrupt:
        return 0
