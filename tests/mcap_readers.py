"""A recording as readers sensorlink did not write see it: the ``mcap`` package's default reader,
``@mcap/core``'s indexed reader under node (tests/node, Foxglove's MCAP library) and Foxglove's
JSON-Schema decoder rules (foxglove_jsonschema.py), and for protobuf channels Foxglove's compiled
well-known schemas (``foxglove-schemas-protobuf``)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

from foxglove_schemas_protobuf import RawAudio_pb2, RawImage_pb2
from google.protobuf import descriptor_pb2
from mcap.reader import make_reader

from foxglove_jsonschema import SchemaRejected, decode_message, parse_json_schema

NODE_DIR = Path(__file__).parent / "node"


def default_reader(path: Path) -> dict[str, Any]:
    """make_reader (a SeekingReader on a file): the summary's statistics per topic, and the
    messages it yields per topic. Raises whatever the reader raises on a file it refuses."""
    with open(path, "rb") as f:
        reader = make_reader(f)
        summary = reader.get_summary()
        assert summary is not None, f"{path}: no summary"
        assert summary.statistics is not None, f"{path}: no statistics"
        topics = {cid: c.topic for cid, c in summary.channels.items()}
        counts = summary.statistics.channel_message_counts
        statistics = {topics[cid]: n for cid, n in counts.items()}
        read = Counter(channel.topic for _, channel, _ in reader.iter_messages())
        return {"statistics": statistics, "read": dict(read),
                "chunks": len(summary.chunk_indexes), "indexed": all(
                    c.message_index_offsets for c in summary.chunk_indexes)}


def node_indexed_reader(path: Path) -> dict[str, Any]:
    """@mcap/core's McapIndexedReader (tests/node/read_mcap.mjs): its JSON report, with
    ``"error"`` when it refuses the file."""
    node = shutil.which("node")
    assert node, "node is not installed (scripts/setup.sh --browser needs Node.js 20+)"
    assert (NODE_DIR / "node_modules" / "@mcap" / "core").is_dir(), \
        "tests/node is not installed: run scripts/setup.sh --browser"
    done = subprocess.run([node, str(NODE_DIR / "read_mcap.mjs"), str(path)], cwd=NODE_DIR,
                          capture_output=True, text=True, timeout=300)
    report = json.loads(done.stdout)
    assert ("error" in report) == (done.returncode != 0), (done.returncode, done.stderr)
    return report


#: Foxglove's own compiled messages, by schema name (FLAC blocks carry RawAudio's fields under
#: a name of sensorlink's, so the Audio panel, pcm-s16 only, does not take them)
FOXGLOVE_PROTOBUF = {"foxglove.RawImage": RawImage_pb2.RawImage,
                     "foxglove.RawAudio": RawAudio_pb2.RawAudio,
                     "sensorlink.CompressedAudio": RawAudio_pb2.RawAudio}


def protobuf_schema_matches_foxglove(name: str, data: bytes) -> None:
    """The channel's FileDescriptorSet holds message ``name`` with every field of Foxglove's
    own schema under the same number and type (the app and its panels read those)."""
    files = descriptor_pb2.FileDescriptorSet.FromString(data).file
    messages = {f"{f.package}.{m.name}": m for f in files for m in f.message_type}
    assert name in messages, (name, sorted(messages))
    ours = {f.name: (f.number, f.type, f.type_name) for f in messages[name].field}
    official = descriptor_pb2.DescriptorProto()
    FOXGLOVE_PROTOBUF[name].DESCRIPTOR.CopyToProto(official)
    for f in official.field:
        assert ours.get(f.name) == (f.number, f.type, f.type_name), (name, f.name)


def foxglove_decodes(path: Path) -> dict[str, int]:
    """Every channel's schema converted and every message decoded as Foxglove does; messages
    per topic. AssertionError naming the topic when Foxglove would show it as an error."""
    counts: Counter[str] = Counter()
    postprocess: dict[int, Any] = {}
    with open(path, "rb") as f:
        reader = make_reader(f)
        summary = reader.get_summary()
        assert summary is not None
        for cid, channel in summary.channels.items():
            schema = summary.schemas[channel.schema_id]
            if channel.message_encoding == "protobuf":
                assert schema.encoding == "protobuf", channel.topic
                protobuf_schema_matches_foxglove(schema.name, schema.data)
                postprocess[cid] = FOXGLOVE_PROTOBUF[schema.name]
                continue
            # Foxglove decodes "json" messages with a "jsonschema" schema; anything else would
            # need another decoder.
            assert (channel.message_encoding, schema.encoding) == ("json", "jsonschema"), \
                channel.topic
            try:
                _, postprocess[cid] = parse_json_schema(json.loads(schema.data), schema.name)
            except SchemaRejected as exc:
                raise AssertionError(f"Foxglove rejects {channel.topic} ({schema.name}): "
                                     f"{exc}") from exc
        for _, channel, message in reader.iter_messages():
            if channel.message_encoding == "protobuf":
                postprocess[channel.id].FromString(message.data)  # DecodeError fails the test
                counts[channel.topic] += 1
                continue
            try:
                decode_message(postprocess[channel.id], message.data)
            except (SchemaRejected, ValueError) as exc:
                raise AssertionError(f"Foxglove cannot decode a message of {channel.topic}: "
                                     f"{exc}") from exc
            counts[channel.topic] += 1
    return dict(counts)
