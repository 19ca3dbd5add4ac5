"""sensorlink's built-in drivers (installed as ``sensorlink_drivers``).

Each is registered in the ``sensorlink.drivers`` entry-point group in pyproject.toml, the same
way a third-party package adds a device.
"""
