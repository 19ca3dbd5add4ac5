"""Subcommands of the ``sensorlink`` CLI, one module each (see :mod:`sensorlink.cli`)."""
