"""Recovery of a recording cut short: rewrite it as a complete, indexed MCAP file.

A recording cut by a crash, a kill or a power cut has no summary and no footer, and the default
readers (the ``mcap`` package's ``make_reader``, ``@mcap/core``'s indexed reader, so Foxglove)
refuse it. :class:`sensorlink.recording.reader.Recording` still reads every complete chunk of it; this
module writes those same schemas, channels, metadata and messages (log and publish times,
sequences, bytes, in file order) through the reference writer into a new file that has a data
end, a summary with statistics and chunk indexes, and a footer, as ``mcap recover`` does. What
was lost in the crash (the chunk being written) stays lost; nothing that ``sensorlink info``
counts is.

In place, the new file is written next to the old one, fsynced, and only then renamed over it,
so a failure at any point keeps the original. A recorder holds an exclusive ``flock`` on the
file it writes, so a file being recorded is never taken for a cut one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from mcap.writer import CompressionType, Writer

import sensorlink
from sensorlink.errors import RecordingError
from sensorlink.recording.reader import Recording

try:
    import fcntl
except ImportError:  # not on Windows: no locking there, recovery is then by hand only
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

RECOVERY_METADATA = "sensorlink.recovery"
_CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class Recovered:
    """What a recovery wrote."""

    source: Path
    path: Path
    messages: int
    chunks: int
    #: what was wrong with the source (Recording.problem)
    problem: str


def lock_exclusive(f: IO[bytes]) -> bool:
    """Take an exclusive advisory lock on ``f`` without waiting; False if another holds it.

    The recorder keeps one on the file it is writing; the lock goes with the process, so the
    file of a killed recorder is free."""
    if fcntl is None:
        return True
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def is_locked(path: Path) -> bool:
    """True while a recorder (this process or another) holds ``path`` open for writing."""
    if fcntl is None:
        return False
    try:
        with open(path, "rb") as f:
            if not lock_exclusive(f):
                return True
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
    except OSError:
        return False
    return False


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    try:
        f = open(path, "rb")  # noqa: SIM115 (held while the lock is)
    except OSError as exc:
        raise RecordingError(f"{path}: {exc.strerror or exc}") from exc
    with f:
        if not lock_exclusive(f):
            raise RecordingError(f"{path}: another process is writing it (a recorder that is "
                                 "still running): not touched")
        yield


def rewrite(rec: Recording, out: IO[bytes]) -> tuple[int, int]:
    """Write everything ``rec`` holds to ``out`` as a complete file; (messages, chunks)."""
    writer = Writer(out, chunk_size=_CHUNK_BYTES, compression=CompressionType.ZSTD)
    writer.start(profile=rec.profile, library=rec.library or f"sensorlink {sensorlink.__version__}")
    for name, data in rec.metadata:
        writer.add_metadata(name, data)
    schema_ids: dict[int, int] = {}
    channel_ids: dict[int, int] = {}
    for stream in sorted(rec.streams.values(), key=lambda s: s.channel_id):
        schema = rec.schema_of(stream)
        sid = 0
        if schema is not None:
            if schema.id not in schema_ids:
                schema_ids[schema.id] = writer.register_schema(schema.name, schema.encoding,
                                                               schema.data)
            sid = schema_ids[schema.id]
        channel_ids[stream.channel_id] = writer.register_channel(
            stream.topic, stream.message_encoding, sid, dict(stream.metadata))
    count = 0
    for stream, msg in rec.messages(log_time_order=False):
        writer.add_message(channel_ids[stream.channel_id], msg.log_time, msg.data,
                           msg.publish_time, msg.sequence)
        count += 1
    writer.add_metadata(RECOVERY_METADATA, {
        "source": rec.path.name, "problem": rec.problem, "messages": str(count),
        "recovered_by": f"sensorlink {sensorlink.__version__}",
        "recovered_at_ns": str(time.time_ns())})
    writer.finish()
    return count, rec.chunk_count


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def recover(source: str | Path, out: str | Path | None = None) -> Recovered | None:
    """Rewrite the cut recording ``source`` as a complete one: into ``out`` (a new file), or in
    place when ``out`` is None. None if ``source`` is complete already (nothing written)."""
    source = Path(source)
    with _locked(source), Recording(source) as rec:
        return None if rec.indexed else _rewrite_file(rec, out)


def _rewrite_file(rec: Recording, out: str | Path | None) -> Recovered:
    source = rec.path
    in_place = out is None or Path(out).resolve() == source.resolve()
    target = source.with_name(f".{source.name}.recovering") if in_place else Path(out)
    try:
        if in_place:
            target.unlink(missing_ok=True)  # left by a crashed earlier attempt; we hold the lock
        with open(target, "xb") as f:
            messages, chunks = rewrite(rec, f)
            f.flush()
            os.fsync(f.fileno())
        if in_place:
            os.replace(target, source)
        _fsync_dir(target.parent)
    except FileExistsError as exc:
        raise RecordingError(f"{target}: exists already: not overwritten") from exc
    except (OSError, ValueError, RecordingError) as exc:
        with contextlib.suppress(OSError):
            target.unlink(missing_ok=True)
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise RecordingError(f"{source}: recovery failed, the file is left as it was: "
                             f"{detail}") from exc
    return Recovered(source, source if in_place else target, messages, chunks, rec.problem)


def recover_directory(directory: str | Path, prefix: str) -> list[Recovered]:
    """Recover, in place, every cut recording a sensorlink recorder left in ``directory``
    (named ``<prefix>-*.mcap``, written by sensorlink, and not locked by a running recorder).
    A file that cannot be recovered is logged and left as it was."""
    done: list[Recovered] = []
    try:
        paths = sorted(Path(directory).glob(f"{prefix}-*.mcap"))
    except OSError as exc:  # the recorder reports an unusable directory itself
        log.warning("cannot look for cut recordings in %s: %s", directory, exc)
        return done
    for path in paths:
        try:
            with _locked(path), Recording(path) as rec:
                if rec.indexed or not rec.library.startswith("sensorlink"):
                    continue
                result = _rewrite_file(rec, None)
        except RecordingError as exc:
            # Being written by a running recorder, unreadable, or the rewrite failed: left
            # as it was.
            log.warning("did not recover %s: %s", path, exc)
            continue
        log.info("recovered the cut recording %s: %d messages in %d chunks, now complete and "
                 "indexed (it was: %s)", path, result.messages, result.chunks, result.problem)
        done.append(result)
    return done
