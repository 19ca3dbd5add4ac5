"""Simulated sensors, one per kind: the demo's default and the tests' fixtures.

They are physically coherent and deterministic (seeded, time = seq / rate) so that a test can
compute what the dashboard must show: where the hot spot is, what the probes read, where the
sound comes from.
"""
