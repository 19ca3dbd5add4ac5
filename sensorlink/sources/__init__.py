"""Sources: what feeds the hub. The driver runner (state, backoff, publishing), the registry
that finds drivers through the ``sensorlink.drivers`` entry points, the serial transport and
probe, and the microphone-array base. The built-in drivers live in the repository's drivers/
folder (installed as ``sensorlink_drivers``); a replay is a source too (sensorlink.recording.reader.replay).
"""
