"""Make tests/data/recordings/v1-complete.mcap with sensorlink at commit a2262f4 (body form v1)."""
import asyncio
import sys
import time
from pathlib import Path

import numpy as np

from sensorlink.hub import Hub
from sensorlink.recording.recorder import Recorder
from sensorlink.samples import AudioBlock, Reading, SensorInfo, ThermalFrame
from sensorlink.status import SensorStatus

T0 = time.time_ns()
#: the session header's label; make_v2.py runs this same script with "v2"
FIXTURE = sys.argv[2] if len(sys.argv) > 2 else "v1"

async def main(out: Path) -> None:
    hub = Hub()
    hub.describe(SensorInfo("cam", "thermal", "sim-thermal", {"width": 4, "height": 3, "rate_hz": 8.0}))
    hub.describe(SensorInfo("probes", "probe", "sim-probes", {"streams": [{"channel": "t0", "unit": "°C"}]}))
    hub.describe(SensorInfo("mic", "microphone", "sim-mic", {"rate": 16000, "channels": 2,
                                                             "positions": [[-0.032, 0.0], [0.032, 0.0]]}))
    hub.set_status(SensorStatus("probes", "connected", "", {"samples": 3, "crc_errors": 1}, 10.0, T0))
    rec = Recorder(hub, out.parent, session={"fixture": FIXTURE}, file=out, chunk_bytes=1500,
                   chunk_seconds=60, fsync=False)
    await rec.start()
    values = [20.5, float("nan"), float("inf"), float("-inf"), -3.25, 1e-300]
    for i in range(30):
        t = T0 + i * 50_000_000
        v = values[i % len(values)]
        hub.publish(Reading("probes", "t0", "temperature", v, "°C", i, 1000 + i, t,
                            "suspect" if i % 7 == 3 else "ok"))
        if i % 3 == 0:
            c = (np.arange(12, dtype=np.float32).reshape(3, 4) / 7 + i).astype(np.float32)
            hub.publish(ThermalFrame("cam", c, i // 3, 2000 + i, t + 1, None if i % 2 else 25.5))
            pcm = (np.arange(64, dtype=np.int16).reshape(32, 2) * (i + 1)).astype(np.int16)
            hub.publish(AudioBlock("mic", pcm, 16000, i // 3, 3000 + i, t + 2, None if i % 2 else 12.5))
        if i == 10:
            rec.log_control({"type": "colormap", "sensor": "cam", "name": "turbo"}, viewer="v-1")
            hub.set_status(SensorStatus("probes", "reconnecting", "port gone", {"samples": 9, "crc_errors": 2}, 0.0, t))
        await asyncio.sleep(0.01)
    await rec.stop()
    print(rec.status())

asyncio.run(main(Path(sys.argv[1]).resolve()))
