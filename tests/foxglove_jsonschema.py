"""Foxglove's JSON-Schema decoder rules, ported to Python for the tests.

No npm package publishes this decoder (checked: ``@foxglove/mcap-support`` and
``@lichtblick/mcap-support`` are not on the registry; ``@foxglove/studio`` and
``@lichtblick/suite`` hold only the extension API types). So this is a line-by-line port of
``parseJsonSchema`` from ``packages/mcap-support/src/parseJsonSchema.ts`` as read in
foxglove/studio (commit 9abf66535509a1bc62df53a3508e627415a620e3, the app's last open-source
version) and Lichtblick-Suite/lichtblick (commit 660985ee7fb002530647a8dfe763d89964d9cb11, its
maintained fork). The two differ in one place only: studio types ``integer`` as uint32,
Lichtblick as float64; neither rejects it. What the app does with a message of a ``json``
channel is the same in both: ``JSON.parse`` of the bytes, then the post-processing the schema
built (base64 strings become bytes). A schema that raises here is a topic Foxglove shows as an
error, with none of its messages.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from typing import Any

Field = dict[str, Any]
Postprocess = Callable[[dict[str, Any]], Any]


class SchemaRejected(Exception):
    """What Foxglove would show instead of the topic's messages."""


def _entries(properties: Any, type_name: str) -> list[tuple[str, Any]]:
    # Object.entries(undefined) throws a TypeError: an object without "properties" fails.
    if not isinstance(properties, dict):
        raise SchemaRejected(f"TypeError: Cannot convert undefined or null to object "
                             f"(properties of {type_name}: {properties!r})")
    return list(properties.items())


def _get(schema: Any, key: str) -> Any:
    # A JS property read: undefined (None here) for anything that is not an object.
    return schema.get(key) if isinstance(schema, dict) else None


def _js(value: Any) -> str:
    """JSON.stringify as the error messages print it (undefined for a missing key)."""
    return "undefined" if value is None else json.dumps(value)


def _is_js_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def parse_json_schema(root: dict[str, Any], root_type_name: str
                      ) -> tuple[dict[str, list[Field]], Postprocess]:
    """(datatypes, postprocess_value), or SchemaRejected with Foxglove's own message."""
    datatypes: dict[str, list[Field]] = {}

    def add_fields_recursive(schema: Any, type_name: str, key_path: list[str]) -> Postprocess:
        steps: list[Postprocess] = []
        fields: list[Field] = []
        if _get(schema, "type") != "object":
            raise SchemaRejected(f'Expected "type": "object" for schema {type_name}, '
                                 f"got {_js(_get(schema, 'type'))}")
        def complex_field(nested: Any, field_name: str, *, is_array: bool) -> Postprocess:
            # A nested object (or array of them) is a datatype of its own, named by its path.
            postprocess = add_fields_recursive(nested, f"{type_name}.{field_name}",
                                               [*key_path, field_name])
            fields.append({"name": field_name, "type": f"{type_name}.{field_name}",
                           "isComplex": True, **({"isArray": True} if is_array else {})})
            return postprocess

        for field_name, field_schema in _entries(_get(schema, "properties"), type_name):
            path = ".".join([*key_path, field_name])
            one_of = _get(field_schema, "oneOf")
            if isinstance(one_of, list):
                if all(_is_js_number(_get(alt, "const")) for alt in one_of):
                    for alt in one_of:
                        fields.append({"name": _get(alt, "title"), "type": "uint32",
                                       "isConstant": True, "value": alt["const"]})
                    fields.append({"name": field_name, "type": "uint32"})
                    continue
                raise SchemaRejected(f"Unsupported type for {path}: oneOf alternatives must "
                                     "have number values")
            kind = _get(field_schema, "type")
            if kind == "boolean":
                fields.append({"name": field_name, "type": "bool"})
            elif kind == "string":
                encoding = _get(field_schema, "contentEncoding")
                if encoding is None:
                    fields.append({"name": field_name, "type": "string"})
                elif encoding == "base64":
                    fields.append({"name": field_name, "type": "uint8", "isArray": True})
                    steps.append(_base64_step(field_name, path))
                else:
                    raise SchemaRejected(f"Unsupported contentEncoding {_js(encoding)} "
                                         f"in {path}")
            elif kind in ("number", "integer"):
                fields.append({"name": field_name,
                               "type": "float64" if kind == "number" else "uint32"})
            elif kind == "object":
                nested = complex_field(field_schema, field_name, is_array=False)
                steps.append(_nested_step(field_name, nested))
            elif kind == "array":
                items = _get(field_schema, "items")
                if not isinstance(items, dict):  # itemSchema.type on undefined throws
                    raise SchemaRejected(f"TypeError: Cannot read properties of undefined "
                                         f"(reading 'type') for array {path}")
                item_kind = items.get("type")
                if item_kind == "boolean":
                    fields.append({"name": field_name, "type": "bool", "isArray": True})
                elif item_kind == "string":
                    if items.get("contentEncoding") is not None:
                        raise SchemaRejected(f"Unsupported contentEncoding "
                                             f"{_js(items['contentEncoding'])} for array "
                                             f"item {path}")
                    fields.append({"name": field_name, "type": "string", "isArray": True})
                elif item_kind in ("number", "integer"):
                    fields.append({"name": field_name, "isArray": True,
                                   "type": "float64" if item_kind == "number" else "uint32"})
                elif item_kind == "object":
                    item = complex_field(items, field_name, is_array=True)
                    steps.append(_array_step(field_name, item))
                else:
                    raise SchemaRejected(f"Unsupported type {_js(item_kind)} for array "
                                         f"item {path}")
            else:  # "null", a list of types, no type at all (a bare enum) ...
                raise SchemaRejected(f"Unsupported type {_js(kind)} for {path}")
        datatypes[type_name] = fields

        def postprocess(value: dict[str, Any]) -> Any:
            # The TS chains closures so the last field added runs first; order is irrelevant
            # since each step touches its own field.
            for step in reversed(steps):
                value = step(value)
            return value
        return postprocess

    return datatypes, add_fields_recursive(root, root_type_name, [])


def _base64_step(name: str, path: str) -> Postprocess:
    def step(value: dict[str, Any]) -> Any:
        text = value.get(name)
        if isinstance(text, str):
            try:
                value[name] = base64.b64decode(text, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise SchemaRejected(f"Failed to decode base64 data for {path}") from exc
        return value
    return step


def _nested_step(name: str, nested: Postprocess) -> Postprocess:
    def step(value: dict[str, Any]) -> Any:
        if isinstance(value.get(name), dict):
            value[name] = nested(value[name])
        return value
    return step


def _array_step(name: str, item: Postprocess) -> Postprocess:
    def step(value: dict[str, Any]) -> Any:
        if isinstance(value.get(name), list):
            value[name] = [item(v) for v in value[name]]
        return value
    return step


def _no_constants(word: str) -> Any:
    raise ValueError(f"{word} is not JSON")  # JSON.parse has no NaN or Infinity


def decode_message(postprocess: Postprocess, data: bytes) -> Any:
    """What the app does with one message of a ``json`` channel: JSON.parse, then postprocess."""
    return postprocess(json.loads(data.decode("utf-8"), parse_constant=_no_constants))
