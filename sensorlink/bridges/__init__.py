"""Bridges: sinks that hand the hub to other systems (MQTT now; OPC UA, Foxglove live, WHIP/WHEP
and metrics next).
"""
