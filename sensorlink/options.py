"""TOML tables checked against dataclasses: a driver's options (``Driver.Options``) and the
service-level tables (``[mqtt]`` ...). Every value is checked against its field's type hint and
every error names the file, the sensor and the field, so the message alone says what to fix.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

from sensorlink.errors import ConfigError


def build_options(options_cls: type, raw: dict[str, Any], *, source: str = "<config>",
                  sensor: str | None = None) -> Any:
    """Check a driver's option table against its Options dataclass and build it."""
    fields = {f.name: f for f in dataclasses.fields(options_cls)}
    hints = typing.get_type_hints(options_cls)
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ConfigError(f"unknown option; this driver takes {sorted(fields) or 'no options'}",
                          source=source, sensor=sensor, field=unknown[0])
    values = {}
    for key, value in raw.items():
        values[key] = _coerce(value, hints[key], source=source, sensor=sensor, field=key)
    missing = [n for n, f in fields.items() if n not in values
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ConfigError("required option missing", source=source, sensor=sensor, field=missing[0])
    try:
        return options_cls(**values)
    except (TypeError, ValueError) as exc:
        # __post_init__ checks raise ValueError("field: message") to name the field.
        text = str(exc)
        name, sep, message = text.partition(": ")
        if sep and name in fields:
            raise ConfigError(message, source=source, sensor=sensor, field=name) from exc
        raise ConfigError(text, source=source, sensor=sensor) from exc


def _coerce(value: Any, hint: Any, **where: Any) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, **where)
            except ConfigError as exc:
                errors.append(exc)
        raise errors[0]
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"expected one of {list(args)}, got {value!r}", **where)
        return value
    if origin in (list, tuple):
        if not isinstance(value, list):
            raise ConfigError(f"expected a list, got {value!r}", **where)
        inner = args[0] if args else Any
        items = [_coerce(v, inner, **where) for v in value]
        return tuple(items) if origin is tuple else items
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"expected a table, got {value!r}", **where)
        return value
    if hint is Any:
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"expected true or false, got {value!r}", **where)
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"expected an integer, got {value!r}", **where)
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"expected a number, got {value!r}", **where)
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"expected a string, got {value!r}", **where)
        return value
    return value


def parse_table(cls: type, raw: Any, table: str, source: str) -> Any:
    """A service-level table (``[mqtt]``) checked against its dataclass; errors name table.key."""
    if not isinstance(raw, dict):
        raise ConfigError("expected a table", source=source, field=table)
    known = sorted(f.name for f in dataclasses.fields(cls))
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise ConfigError(f"unknown key; known: {known}", source=source,
                          field=f"{table}.{unknown[0]}")
    try:
        return build_options(cls, raw, source=source)
    except ConfigError as exc:
        message = str(exc).partition(f"field {exc.field!r}: ")[2] or str(exc)
        raise ConfigError(message, source=source, field=f"{table}.{exc.field}" if exc.field
                          else table) from exc
