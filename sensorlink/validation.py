"""The contract: every message that crosses a boundary is checked against a JSON Schema in
``schemas/`` (installed as ``sensorlink.schemas``), by Python here and by the browser with the
same files. A message that breaks its schema raises MessageError naming the offending field.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

import jsonschema

from sensorlink.errors import MessageError

#: Short names of the data-channel and signaling schemas; any other schema is found by its file
#: name without ``.schema.json`` (e.g. "mqtt-readings").
SCHEMA_FILES = {
    "readings": "readings.schema.json",
    "frame": "frame.schema.json",
    "status": "status.schema.json",
    "view": "view.schema.json",
    "control": "control.schema.json",
    "reply": "control-reply.schema.json",
    "error": "error.schema.json",
    "signaling": "signaling.schema.json",
}


def schema_dir() -> resources.abc.Traversable:
    return resources.files("sensorlink.schemas")


@functools.cache
def load_schema(name: str) -> dict[str, Any]:
    """Schema ``name``: one of SCHEMA_FILES, or the file ``<name>.schema.json`` in schemas/."""
    file = SCHEMA_FILES.get(name, f"{name}.schema.json")
    return json.loads(schema_dir().joinpath(file).read_text(encoding="utf-8"))


@functools.cache
def _validator(name: str, branch_type: str | None = None) -> jsonschema.protocols.Validator:
    schema = load_schema(name)
    if branch_type is not None:
        # Validate against the one branch of a oneOf that the message's "type" selects, so the
        # error names the real field instead of "is not valid under any of the given schemas".
        for branch in schema.get("oneOf", ()):
            if branch.get("properties", {}).get("type", {}).get("const") == branch_type:
                merged = {k: v for k, v in schema.items() if k != "oneOf"}
                merged["required"] = sorted(set(schema.get("required", [])) |
                                            set(branch.get("required", [])))
                merged.update({k: v for k, v in branch.items() if k != "required"})
                schema = merged
                break
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema)


def branch_types(name: str) -> list[str]:
    return [b["properties"]["type"]["const"] for b in load_schema(name).get("oneOf", ())]


def validate(name: str, message: Any) -> None:
    """Raise MessageError naming the offending field if ``message`` breaks schema ``name``."""
    msg_id = message.get("id") if isinstance(message, dict) else None
    if not isinstance(msg_id, int) or isinstance(msg_id, bool):
        msg_id = None
    if not isinstance(message, dict):
        raise MessageError(f"expected a map/object, got {type(message).__name__}")
    branch = None
    if "oneOf" in load_schema(name):
        branch = message.get("type")
        if branch not in branch_types(name):
            raise MessageError(f"unknown message type {branch!r}; expected one of "
                               f"{branch_types(name)}", field="type", msg_id=msg_id)
    error = jsonschema.exceptions.best_match(_validator(name, branch).iter_errors(message))
    if error is None:
        return
    path = ".".join(str(p) for p in error.absolute_path) or None
    text = error.message
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = set(error.schema.get("properties", {}))
        extra = sorted(str(k) for k in error.instance if k not in allowed)
        if extra:
            path = ".".join(filter(None, [path, extra[0]]))
            text = f"unknown field (allowed: {sorted(allowed)})"
    elif error.validator == "required":
        missing = text.split("'")[1] if "'" in text else None
        path = ".".join(filter(None, [path, missing]))
        text = "required field missing"
    raise MessageError(text, field=path, msg_id=msg_id)
