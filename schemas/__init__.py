"""JSON Schemas for every message that crosses the wire (installed as ``sensorlink.schemas``)."""
