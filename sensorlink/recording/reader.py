"""Reading a recording: complete files through their index, cut-short files chunk by chunk.

A recording that was finished properly has a summary (schemas, channels, chunk index,
statistics) at its end and is opened through it. A recording cut short (killed process, disk
full, power loss) has none: it is scanned from the start, record by record, and everything up
to the last complete chunk is used; :attr:`Recording.cut_short` says so and
:attr:`Recording.problem` says where it ends. Either way :meth:`Recording.events` yields the
recorded Samples, SensorInfos, SensorStatuses and control actions in log-time order, and can
start at any time using the chunk index (a seek reads only the chunks it needs).
"""

from __future__ import annotations

import heapq
import io
import itertools
import json
import struct
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from mcap.data_stream import ReadDataStream
from mcap.exceptions import McapError
from mcap.opcode import Opcode
from mcap.reader import SeekingReader
from mcap.records import Channel, Chunk, Header, Message, Metadata, Schema
from mcap.stream_reader import breakup_chunk

from sensorlink.errors import RecordingError
from sensorlink.recording import messages as mm
from sensorlink.samples import SensorInfo

MAGIC = b"\x89MCAP0\r\n"
_KNOWN_OPCODES = {int(op) for op in Opcode}


@dataclass(frozen=True)
class Stream:
    """One MCAP channel of a recording."""

    channel_id: int
    topic: str
    schema: str
    schema_encoding: str
    message_encoding: str
    metadata: dict[str, str] = field(default_factory=dict)
    schema_id: int = 0

    @property
    def is_sample(self) -> bool:
        return self.schema in mm.SAMPLE_SCHEMAS


@dataclass(frozen=True)
class _ChunkRef:
    offset: int                       # where the chunk record starts (its opcode byte)
    length: int                       # the whole record, opcode and length prefix included
    start_ns: int
    end_ns: int
    channel_ids: frozenset[int] | None  # None: not indexed, always read


class Recording:
    """An open MCAP recording. Use as a context manager, or call :meth:`close`."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self._f = open(self.path, "rb")  # noqa: SIM115 (held for the object's life)
        except OSError as exc:
            raise RecordingError(f"{self.path}: {exc.strerror or exc}") from exc
        self.size = self.path.stat().st_size
        if self._f.read(len(MAGIC)) != MAGIC:
            self._f.close()
            raise RecordingError(f"{self.path}: not an MCAP file")
        #: the header's profile and writing library ("sensorlink 0.1.0, mcap 1.6.0")
        self.profile, self.library = self._read_header()
        self.cut_short = False
        self.problem = ""
        self.streams: dict[int, Stream] = {}
        self.message_counts: dict[int, int] = {}
        self.metadata: list[tuple[str, dict[str, str]]] = []
        self.start_ns = 0
        self.end_ns = 0
        self._chunks: list[_ChunkRef] = []
        self._schemas: dict[int, Schema] = {}
        #: opened through its summary and chunk index (what the default readers need)
        self.indexed = self._open_indexed()
        if not self.indexed:
            self._scan()

    # -- opening ---------------------------------------------------------------------------
    def _read_header(self) -> tuple[str, str]:
        head = self._f.read(9)
        if len(head) < 9 or head[0] != Opcode.HEADER:
            return "", ""
        (length,) = struct.unpack("<Q", head[1:])
        try:
            header = Header.read(ReadDataStream(io.BytesIO(self._f.read(min(length, 1 << 16)))))
        except (McapError, struct.error, ValueError, EOFError, UnicodeDecodeError):
            return "", ""
        return header.profile, header.library

    def _open_indexed(self) -> bool:
        try:
            self._f.seek(0)  # the reader checks the magic itself
            reader = SeekingReader(self._f)
            summary = reader.get_summary()
            if summary is None:
                return False
            metadata = [(m.name, dict(m.metadata)) for m in reader.iter_metadata()]
        except (McapError, struct.error, ValueError, OSError, EOFError):
            return False
        self._schemas = dict(summary.schemas)
        for channel in summary.channels.values():
            self._add_channel(channel)
        for ci in summary.chunk_indexes:
            ids = frozenset(ci.message_index_offsets) if ci.message_index_offsets else None
            self._chunks.append(_ChunkRef(ci.chunk_start_offset, ci.chunk_length,
                                          ci.message_start_time, ci.message_end_time, ids))
        stats = summary.statistics
        if stats is not None:
            self.message_counts = dict(stats.channel_message_counts)
            self.start_ns, self.end_ns = stats.message_start_time, stats.message_end_time
        elif self._chunks:
            self.start_ns = min(c.start_ns for c in self._chunks)
            self.end_ns = max(c.end_ns for c in self._chunks)
        self.metadata = metadata
        return True

    def _add_channel(self, channel: Channel) -> None:
        schema = self._schemas.get(channel.schema_id)
        self.streams[channel.id] = Stream(
            channel.id, channel.topic, schema.name if schema else "",
            schema.encoding if schema else "", channel.message_encoding, dict(channel.metadata),
            channel.schema_id)

    def _scan(self) -> None:
        """Walk the file record by record; stop at the first incomplete or unreadable one."""
        self.cut_short = True
        f, pos, counts = self._f, len(MAGIC), self.message_counts
        start, end = None, None
        while True:
            f.seek(pos)
            head = f.read(9)
            if not head:
                self.problem = f"no summary: the file ends after {pos} bytes of complete records"
                break
            if len(head) < 9:
                self.problem = f"cut short inside a record header at byte {pos}"
                break
            opcode, length = struct.unpack("<BQ", head)
            if opcode not in _KNOWN_OPCODES:
                self.problem = f"unreadable bytes from byte {pos} on (opcode 0x{opcode:02x})"
                break
            if pos + 9 + length > self.size:
                self.problem = (f"cut short inside a {Opcode(opcode).name.lower()} record at byte "
                                f"{pos} ({self.size - pos} of {9 + length} bytes present)")
                break
            body = f.read(length)
            try:
                done = self._scan_record(opcode, body, pos, counts)
            except (McapError, struct.error, ValueError, EOFError) as exc:
                self.problem = f"unreadable {Opcode(opcode).name.lower()} record at byte {pos}: {exc}"
                break
            if done:
                # A footer without a summary: finished properly, just never indexed.
                self.cut_short, self.problem = False, ""
                break
            pos += 9 + length
        for c in self._chunks:
            start = c.start_ns if start is None else min(start, c.start_ns)
            end = c.end_ns if end is None else max(end, c.end_ns)
        self.start_ns, self.end_ns = start or 0, end or 0

    def _scan_record(self, opcode: int, body: bytes, pos: int, counts: dict[int, int]) -> bool:
        stream = ReadDataStream(io.BytesIO(body))
        if opcode == Opcode.CHUNK:
            chunk = Chunk.read(stream)
            ids = set()
            for record in breakup_chunk(chunk, validate_crc=True):
                if isinstance(record, Message):
                    ids.add(record.channel_id)
                    counts[record.channel_id] = counts.get(record.channel_id, 0) + 1
                else:
                    self._take_definition(record)
            if ids:
                self._chunks.append(_ChunkRef(pos, 9 + len(body), chunk.message_start_time,
                                              chunk.message_end_time, frozenset(ids)))
        elif opcode in (Opcode.SCHEMA, Opcode.CHANNEL):
            record = (Schema if opcode == Opcode.SCHEMA else Channel).read(stream)
            self._take_definition(record)
        elif opcode == Opcode.METADATA:
            m = Metadata.read(stream)
            self.metadata.append((m.name, dict(m.metadata)))
        elif opcode == Opcode.FOOTER:
            return True
        return False

    def _take_definition(self, record: Any) -> None:
        if isinstance(record, Schema):
            self._schemas[record.id] = record
        elif isinstance(record, Channel):
            self._add_channel(record)

    # -- what is in it ---------------------------------------------------------------------
    @property
    def label(self) -> str:
        return self.path.name

    @property
    def duration_s(self) -> float:
        return max(self.end_ns - self.start_ns, 0) / 1e9

    def count(self, schemas: Collection[str]) -> int:
        """Messages of these schemas (for progress reports)."""
        return sum(self.message_counts.get(s.channel_id, 0) for s in self.streams_with(schemas))

    @property
    def message_count(self) -> int:
        return sum(self.message_counts.values())

    @property
    def chunk_count(self) -> int:
        return len(self._chunks)

    def metadata_named(self, name: str) -> dict[str, str] | None:
        for n, data in self.metadata:
            if n == name:
                return data
        return None

    @property
    def session(self) -> dict[str, Any]:
        """The recorder's session header: host, version, start time and the session dict."""
        header = self.metadata_named("sensorlink.session")
        if header is None:
            return {}
        out: dict[str, Any] = dict(header)
        try:
            out["session"] = json.loads(header.get("session", "{}"))
        except ValueError:
            pass
        return out

    def schema_of(self, stream: Stream) -> Schema | None:
        """The MCAP schema record of ``stream`` (name, encoding and the schema text)."""
        return self._schemas.get(stream.schema_id)

    def streams_with(self, schemas: Collection[str]) -> list[Stream]:
        return [s for s in self.streams.values() if s.schema in schemas]

    def sensors(self) -> dict[str, SensorInfo]:
        """Each sensor's first description in the recording."""
        out: dict[str, SensorInfo] = {}
        for _, event in self.events(schemas={mm.SENSOR_INFO}):
            assert isinstance(event, SensorInfo)
            out.setdefault(event.name, event)
        return out

    # -- reading ---------------------------------------------------------------------------
    def messages(self, *, start_ns: int | None = None, end_ns: int | None = None,
                 channel_ids: Collection[int] | None = None,
                 log_time_order: bool = True) -> Iterator[tuple[Stream, Message]]:
        """Raw MCAP messages in log-time order (or file order, cheaper, for statistics),
        ``start_ns <= log_time < end_ns``."""
        wanted = None if channel_ids is None else frozenset(channel_ids)
        if not log_time_order:
            for c in self._chunks:
                for msg in self._read_chunk(c):
                    if (msg.channel_id in self.streams
                            and (wanted is None or msg.channel_id in wanted)
                            and (start_ns is None or msg.log_time >= start_ns)
                            and (end_ns is None or msg.log_time < end_ns)):
                        yield self.streams[msg.channel_id], msg
            return
        heap: list[tuple[int, int, int, int, Any]] = []
        for i, c in enumerate(sorted(self._chunks, key=lambda c: (c.start_ns, c.offset))):
            if start_ns is not None and c.end_ns < start_ns:
                continue
            if end_ns is not None and c.start_ns >= end_ns:
                continue
            if wanted is not None and c.channel_ids is not None and not (wanted & c.channel_ids):
                continue
            heap.append((c.start_ns, 0, i, 0, c))
        heapq.heapify(heap)
        # A chunk is opened only when the merge reaches its first log time, so at most the
        # chunks that overlap in time are held in memory.
        while heap:
            _, kind, i, _, item = heapq.heappop(heap)
            if kind == 1:
                yield self.streams[item.channel_id], item
                continue
            for j, msg in enumerate(self._read_chunk(item)):
                if wanted is not None and msg.channel_id not in wanted:
                    continue
                if start_ns is not None and msg.log_time < start_ns:
                    continue
                if end_ns is not None and msg.log_time >= end_ns:
                    continue
                if msg.channel_id in self.streams:
                    heapq.heappush(heap, (msg.log_time, 1, i, j, msg))

    def _read_chunk(self, ref: _ChunkRef) -> list[Message]:
        self._f.seek(ref.offset + 9)
        try:
            chunk = Chunk.read(ReadDataStream(io.BytesIO(self._f.read(ref.length - 9))))
            return [r for r in breakup_chunk(chunk) if isinstance(r, Message)]
        except (McapError, struct.error, ValueError, EOFError) as exc:
            raise RecordingError(f"{self.path}: unreadable chunk at byte {ref.offset}: {exc}") from exc

    def events(self, *, start_ns: int | None = None, end_ns: int | None = None,
               schemas: Collection[str] | None = None, topics: Collection[str] | None = None
               ) -> Iterator[tuple[int, mm.RecordedEvent]]:
        """(log_time, event) in log-time order, decoded; channels of unknown schemas are
        skipped; ``topics`` keeps only those channels (only their chunks are read)."""
        known = set(mm.SCHEMAS) if schemas is None else set(schemas) & set(mm.SCHEMAS)
        ids = [s.channel_id for s in self.streams.values()
               if s.schema in known and mm.decodable(s.schema, s.message_encoding)
               and (topics is None or s.topic in topics)]
        for stream, msg in self.messages(start_ns=start_ns, end_ns=end_ns, channel_ids=ids):
            yield msg.log_time, mm.decode(stream.schema, msg.data, topic=stream.topic,
                                          encoding=stream.message_encoding)

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class StreamStats:
    """What ``sensorlink info`` reports per stream."""

    stream: Stream
    count: int = 0
    first_ns: int = 0
    last_ns: int = 0
    #: samples missing by seq (MCAP message sequence), and how many separate holes
    missing: int = 0
    gaps: int = 0
    #: times seq went backwards (a source restarted its count)
    resets: int = 0

    @property
    def duration_s(self) -> float:
        return max(self.last_ns - self.first_ns, 0) / 1e9

    def to_dict(self) -> dict[str, Any]:
        s = self.stream
        return {"topic": s.topic, "schema": s.schema, "message_encoding": s.message_encoding,
                "sensor": s.metadata.get("sensor"), "count": self.count,
                "first_ns": self.first_ns, "last_ns": self.last_ns,
                "duration_s": round(self.duration_s, 6), "missing": self.missing,
                "gaps": self.gaps, "resets": self.resets}


def stream_stats(recording: Recording,
                 progress: Callable[[int, int], None] | None = None) -> list[StreamStats]:
    """Counts, time span and seq gaps of every stream (reads every message, decodes none)."""
    stats = {cid: StreamStats(s) for cid, s in recording.streams.items()}
    seqs: dict[int, list[int]] = {cid: [] for cid, s in recording.streams.items() if s.is_sample}
    total = recording.message_count
    for n, (stream, msg) in enumerate(recording.messages(log_time_order=False), 1):
        st = stats[stream.channel_id]
        if st.count == 0 or msg.log_time < st.first_ns:
            st.first_ns = msg.log_time
        st.last_ns = max(st.last_ns, msg.log_time)
        st.count += 1
        if stream.channel_id in seqs:
            seqs[stream.channel_id].append(msg.sequence)
        if progress is not None and n % 20_000 == 0:
            progress(n, total)
    for cid, values in seqs.items():
        st = stats[cid]
        for prev, cur in itertools.pairwise(values):
            step = (cur - prev) & 0xFFFFFFFF  # the MCAP sequence is a wrapping uint32
            if step == 1:
                continue
            if step == 0 or step > 0x7FFFFFFF:
                st.resets += 1
            else:
                st.gaps += 1
                st.missing += step - 1
    return sorted(stats.values(), key=lambda s: s.stream.topic)


def open_recording(path: str | Path) -> Recording:
    return Recording(path)
