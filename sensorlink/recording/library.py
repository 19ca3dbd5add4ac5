"""The recordings library: an index of the segments in a recording directory.

One row per segment (start, end, sensors, sample counts per stream, alarms, complete / cut /
recovered / open), its alarm events, and its trend aggregates (count, min, max and sum of every
reading stream per bucket, :mod:`sensorlink.recording.segment_stats`), plus a log of every
segment deleted and why.

Why SQLite (the standard library's ``sqlite3``): it is one file next to the recordings, needs no
server and no dependency, survives a crash mid-update (each segment is indexed in one
transaction), lets the recorder's thread write while the dashboard and the CLI read (WAL), and
its GROUP BY over an index on (stream, time) turns a week of 10 s buckets into a few hundred
points in milliseconds, which is what a trend view needs.

The files are the truth: every row is derived from a segment's own summary and metadata, and
:meth:`Library.sync` reconciles the index with the directory (new, changed and vanished files)
whenever the index is opened by a recorder or asked for by ``sensorlink recordings reindex``; an
index that is missing, unreadable or of another version is rebuilt from the files.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sensorlink.errors import RecordingError
from sensorlink.recording.recovery import is_locked
from sensorlink.recording.segment_stats import AlarmMark
from sensorlink.recording.segment_files import COLUMNS, Segment, describe_file, segment_files

log = logging.getLogger(__name__)

INDEX_NAME = ".sensorlink-index.sqlite"
SCHEMA_VERSION = "2"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS segments(
  name TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
  start_ns INTEGER NOT NULL, end_ns INTEGER NOT NULL, state TEXT NOT NULL, problem TEXT NOT NULL,
  session TEXT NOT NULL, part INTEGER NOT NULL, previous TEXT NOT NULL, host TEXT NOT NULL,
  messages INTEGER NOT NULL, samples INTEGER NOT NULL, sensors TEXT NOT NULL,
  streams TEXT NOT NULL, alarms INTEGER NOT NULL, holds_alarm INTEGER NOT NULL,
  bucket_ns INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS segments_by_time ON segments(start_ns);
CREATE TABLE IF NOT EXISTS alarms(segment TEXT NOT NULL, t_wall_ns INTEGER NOT NULL,
  rule TEXT NOT NULL, level TEXT NOT NULL, transition TEXT NOT NULL, message TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS alarms_by_segment ON alarms(segment);
-- Clustered by stream and time (WITHOUT ROWID): a trend reads one contiguous range.
CREATE TABLE IF NOT EXISTS trend(stream TEXT NOT NULL, bucket_ns INTEGER NOT NULL,
  segment TEXT NOT NULL, n INTEGER NOT NULL, lo REAL NOT NULL, hi REAL NOT NULL,
  total REAL NOT NULL, PRIMARY KEY (stream, bucket_ns, segment)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS trend_by_segment ON trend(segment);
CREATE TABLE IF NOT EXISTS deletions(name TEXT NOT NULL, start_ns INTEGER NOT NULL,
  end_ns INTEGER NOT NULL, size INTEGER NOT NULL, holds_alarm INTEGER NOT NULL,
  reason TEXT NOT NULL, deleted_at_ns INTEGER NOT NULL);
"""
class Library:
    """The index of ``directory`` (``<prefix>-*.mcap``), kept in ``directory/.sensorlink-index.sqlite``."""

    def __init__(self, directory: str | Path, *, prefix: str = "sensorlink",
                 recover_cut: bool = True) -> None:
        self.directory = Path(directory)
        self.prefix = prefix
        self.recover_cut = recover_cut
        self.path = self.directory / INDEX_NAME
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._stale = False

    # -- the database ----------------------------------------------------------------------
    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        """A transaction on this thread's connection: the recorder's worker, the dashboard's
        query threads and the CLI each have their own (sqlite3 connections are not shared
        between threads), kept open because opening and closing one costs milliseconds."""
        db = getattr(self._local, "db", None)
        if db is None or not self.path.exists():
            if db is not None:
                db.close()  # the file was deleted under us: start a new one
            self.directory.mkdir(parents=True, exist_ok=True)
            missing = not self.path.exists()
            try:
                db = self._open()
            except sqlite3.DatabaseError as exc:
                # Not a database (a crash of the disk itself, a stray file): the files are the
                # truth, so the index is moved aside and built again from them.
                log.warning("recordings index %s unreadable (%s): rebuilding it from the files",
                            self.path, exc)
                self._discard()
                db, missing = self._open(), True
            self._local.db = db
            self._connections.append(db)
            if missing or self._stale:  # a new index: built from the files before it is read
                self._stale = False
                self.sync()
        with db:  # one transaction, committed or rolled back
            yield db

    def close(self) -> None:
        """Close every thread's connection (they close with the process otherwise)."""
        for db in self._connections:
            db.close()
        self._connections.clear()
        self._local = threading.local()

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            version = None
            if db.execute("SELECT name FROM sqlite_master WHERE name='meta'").fetchone():
                found = db.execute("SELECT value FROM meta WHERE key='version'").fetchone()
                version = found[0] if found else None
            if version not in (None, SCHEMA_VERSION):
                log.warning("recordings index %s is version %s, not %s: rebuilding it",
                            self.path, version, SCHEMA_VERSION)
                for table in ("segments", "alarms", "trend", "meta"):
                    db.execute(f"DROP TABLE IF EXISTS {table}")
                self._stale = True
            db.executescript(_SCHEMA)
            db.execute("INSERT OR IGNORE INTO meta VALUES ('version', ?)", (SCHEMA_VERSION,))
            db.commit()
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db

    def _discard(self) -> None:
        for suffix in ("", "-wal", "-shm"):
            target = self.path.with_name(self.path.name + suffix)
            if target.exists():
                target.replace(target.with_name(target.name + ".unreadable"))

    # -- what the recorder tells it (worker thread; never raises into the recording) -------
    def segment_opened(self, path: Path, start_ns: int, session: str = "",
                       previous: str = "") -> None:
        try:
            with self._db() as db:
                self._put(db, Segment(path.name, 0, 0, start_ns, start_ns, "open",
                                      session=session, previous=previous), None)
        except (sqlite3.Error, OSError) as exc:
            log.warning("recordings index: cannot note %s: %s", path.name, exc)

    def segment_closed(self, path: Path) -> None:
        try:
            self.index_file(path)
        except (sqlite3.Error, OSError, RecordingError) as exc:
            log.warning("recordings index: cannot index %s: %s", path.name, exc)

    # -- keeping it true to the files ------------------------------------------------------
    def index_file(self, path: Path) -> Segment:
        segment, stats = describe_file(path, recover_cut=self.recover_cut)
        with self._db() as db:
            self._put(db, segment, stats)
        return segment

    def _put(self, db: sqlite3.Connection, segment: Segment, stats: Any) -> None:
        self._forget(db, segment.name)
        db.execute(f"INSERT INTO segments VALUES ({','.join('?' * len(COLUMNS))})", segment.row())
        if stats is None:
            return
        db.executemany("INSERT INTO alarms VALUES (?, ?, ?, ?, ?, ?)",
                       [(segment.name, a.t_wall_ns, a.rule, a.level, a.transition, a.message)
                        for a in stats.alarms])
        db.executemany("INSERT INTO trend VALUES (?, ?, ?, ?, ?, ?, ?)",
                       [(stream, start, segment.name, *rest)
                        for stream, start, *rest in stats.rows()])

    @staticmethod
    def _forget(db: sqlite3.Connection, name: str) -> None:
        for table, column in (("segments", "name"), ("alarms", "segment"), ("trend", "segment")):
            db.execute(f"DELETE FROM {table} WHERE {column} = ?", (name,))

    def sync(self) -> dict[str, list[str]]:
        """Index new and changed files, forget vanished ones; what changed, by kind."""
        changes: dict[str, list[str]] = {"added": [], "changed": [], "vanished": []}
        with self._db() as db:
            known = {row[0]: (row[1], row[2], row[3]) for row in
                     db.execute("SELECT name, size, mtime_ns, state FROM segments")}
        on_disk = segment_files(self.directory, self.prefix)
        for path, (size, mtime_ns) in on_disk.items():
            was = known.get(path.name)
            if was is not None and was[:2] == (size, mtime_ns) and was[2] != "open":
                continue
            if was is not None and was[2] == "open" and is_locked(path):
                continue  # still being recorded: the recorder's own row says more than the file
            try:
                segment = self.index_file(path)
            except RecordingError as exc:
                log.warning("recordings index: %s", exc)
                continue
            if segment.state != "open" or was is None:
                changes["added" if was is None else "changed"].append(path.name)
        names = {p.name for p in on_disk}
        with self._db() as db:
            for name in sorted(set(known) - names):
                row = db.execute("SELECT * FROM segments WHERE name = ?", (name,)).fetchone()
                segment = Segment.from_row(row)
                self._forget(db, name)
                self._log_deletion(db, segment, "the file vanished (removed outside sensorlink)")
                changes["vanished"].append(name)
        if changes["vanished"]:
            log.warning("recordings index: %d segment(s) vanished from %s: %s",
                        len(changes["vanished"]), self.directory, ", ".join(changes["vanished"]))
        return changes

    def rebuild(self) -> dict[str, list[str]]:
        """Forget every segment and index the directory again (the deletion log is kept)."""
        with self._db() as db:
            for table in ("segments", "alarms", "trend"):
                db.execute(f"DELETE FROM {table}")
        return self.sync()

    # -- deleting --------------------------------------------------------------------------
    def delete(self, segment: Segment, reason: str) -> None:
        """Delete a segment's file and its rows, and log why (the caller checked it is not
        being recorded)."""
        path = self.directory / segment.name
        path.unlink(missing_ok=True)
        with self._db() as db:
            self._forget(db, segment.name)
            self._log_deletion(db, segment, reason)
        log.info("deleted recording %s (%s, %.1f MB%s): %s", segment.name,
                 _when(segment.start_ns), segment.size / 1e6,
                 ", held an alarm" if segment.holds_alarm else "", reason)

    @staticmethod
    def _log_deletion(db: sqlite3.Connection, segment: Segment, reason: str) -> None:
        db.execute("INSERT INTO deletions VALUES (?, ?, ?, ?, ?, ?, ?)",
                   (segment.name, segment.start_ns, segment.end_ns, segment.size,
                    int(segment.holds_alarm), reason, time.time_ns()))

    # -- reading ---------------------------------------------------------------------------
    def segments(self, from_ns: int | None = None, to_ns: int | None = None) -> list[Segment]:
        """Every segment overlapping [from_ns, to_ns), oldest first."""
        query, args = "SELECT * FROM segments WHERE 1", []
        if from_ns is not None:
            query, args = query + " AND (end_ns >= ? OR state = 'open')", [*args, from_ns]
        if to_ns is not None:
            query, args = query + " AND start_ns < ?", [*args, to_ns]
        with self._db() as db:
            rows = db.execute(query + " ORDER BY start_ns, name", args).fetchall()
        return [Segment.from_row(r) for r in rows]

    def segment(self, name: str) -> Segment | None:
        with self._db() as db:
            row = db.execute("SELECT * FROM segments WHERE name = ?", (name,)).fetchone()
        return Segment.from_row(row) if row is not None else None

    def alarms(self, names: list[str] | None = None) -> dict[str, list[AlarmMark]]:
        with self._db() as db:
            rows = db.execute("SELECT segment, t_wall_ns, rule, level, transition, message "
                              "FROM alarms ORDER BY t_wall_ns").fetchall()
        out: dict[str, list[AlarmMark]] = {}
        for seg, *mark in rows:
            if names is None or seg in names:
                out.setdefault(seg, []).append(AlarmMark(*mark))
        return out

    def trend_streams(self) -> list[str]:
        with self._db() as db:
            return [r[0] for r in db.execute("SELECT DISTINCT stream FROM trend ORDER BY stream")]

    def trend_rows(self, stream: str, from_ns: int, to_ns: int,
                   bin_ns: int) -> list[tuple[int, int, float, float, float]]:
        """(bin start ns, count, min, max, sum) of ``stream`` in bins of ``bin_ns`` (aligned
        to multiples of it since the epoch), grouped by SQLite from the bucket rows."""
        with self._db() as db:
            return db.execute(
                "SELECT (bucket_ns / :bin) * :bin AS t, SUM(n), MIN(lo), MAX(hi), SUM(total) "
                "FROM trend WHERE stream = :stream AND bucket_ns >= :lo AND bucket_ns < :hi "
                "GROUP BY t ORDER BY t",
                {"bin": bin_ns, "stream": stream, "lo": from_ns - from_ns % bin_ns,
                 "hi": to_ns}).fetchall()

    def deletions(self, limit: int = 100) -> list[dict[str, Any]]:
        with self._db() as db:
            rows = db.execute("SELECT * FROM deletions ORDER BY deleted_at_ns DESC LIMIT ?",
                              (limit,)).fetchall()
        keys = ("name", "start_ns", "end_ns", "size", "holds_alarm", "reason", "deleted_at_ns")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def path_of(self, segment: Segment) -> Path:
        """Where a segment's file is: only ever from a name the index holds."""
        return self.directory / Path(segment.name).name


def _when(t_ns: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t_ns / 1e9))
