"""One MCAP file as the recorder writes it: a byte-counting stream (so the writer needs no
seekable file), the exclusive open that start-up recovery relies on, and the writer with its
schemas and channels registered on first use."""

from __future__ import annotations

import time
from pathlib import Path
from typing import IO

from mcap.writer import CompressionType, Writer

from sensorlink.recording import messages as mm
from sensorlink.recording.recovery import lock_exclusive


class CountingStream:
    """What the MCAP writer writes to: counts bytes so ``tell`` needs no seekable file."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.count = 0

    def write(self, data: bytes) -> int:
        # An unbuffered file may take part of a write (a disk filling up takes what fits):
        # write the rest, so that ``count`` is always exactly what the OS holds.
        view = memoryview(data)
        while view:
            n = self.raw.write(view)
            if n is None:  # a non-blocking stream that took nothing: never ours
                raise OSError("the recording stream took no bytes")
            self.count += n
            view = view[n:]
        return len(data)

    def truncate(self, size: int) -> None:
        """Cut the file back to ``size`` bytes (needs no free space: a full disk allows it)."""
        self.raw.truncate(size)
        self.count = size

    def tell(self) -> int:
        return self.count

    def flush(self) -> None:
        self.raw.flush()

    def close(self) -> None:
        self.raw.close()


def open_exclusive(path: Path) -> IO[bytes]:
    # "x": never overwrite a recording. Unbuffered: the MCAP writer hands over whole chunks,
    # and with no buffer of ours in between, the byte count is what reached the OS, so a file
    # cut by a full disk can be trimmed back to its last complete chunk exactly.
    f = open(path, "xb", buffering=0)  # noqa: SIM115
    lock_exclusive(f)  # while it is held, start-up recovery knows the file is not cut
    return f


class McapFile:
    """One open MCAP file; used only from the recorder's worker thread."""

    def __init__(self, path: Path, raw: IO[bytes], chunk_bytes: int) -> None:
        self.path = path
        self.stream = CountingStream(raw)
        # The writer's own size bound is a backstop: we cut chunks ourselves so that we know
        # exactly which samples are safely on disk.
        self.writer = Writer(self.stream, chunk_size=max(chunk_bytes * 4, 1 << 20),
                             compression=CompressionType.ZSTD)
        self.schemas: dict[tuple[str, str], int] = {}
        self.channels: dict[tuple[str, str], int] = {}
        self.opened_mono = time.monotonic()
        self.last_flush_mono = self.opened_mono
        self.unflushed_bytes = 0
        self.unflushed_samples = 0
        #: the stream's size after the last complete chunk (where a cut file may be trimmed to)
        self.flushed_offset = 0

    def channel(self, msg: mm.EncodedMessage) -> int:
        key = (msg.topic, msg.schema)
        cid = self.channels.get(key)
        if cid is None:
            sid = self.schemas.get((msg.schema, msg.schema_encoding))
            if sid is None:
                sid = self.writer.register_schema(msg.schema, msg.schema_encoding,
                                                  msg.schema_data)
                self.schemas[(msg.schema, msg.schema_encoding)] = sid
            cid = self.writer.register_channel(msg.topic, msg.message_encoding, sid,
                                               msg.channel_metadata)
            self.channels[key] = cid
        return cid
