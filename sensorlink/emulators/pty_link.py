"""A pseudo-terminal with a stable path: the emulator's end of a fake serial cable.

``os.openpty`` gives a master (the emulator's side) and a slave (``/dev/pts/N``, the side a
driver opens as a serial port). ``PATH`` is a symlink to the slave, replaced atomically, so a
driver configured with ``port = PATH`` finds the device again after an unplug/replug even
though the kernel hands out a new ``/dev/pts/N``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import tty
from collections.abc import Callable
from pathlib import Path

#: Bytes kept waiting while nobody reads the port; past this whole messages are dropped, as a
#: real device's output is lost when no one listens.
MAX_BACKLOG = 64 * 1024


class PtyLink:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.master: int | None = None
        self.slave: int | None = None
        self.slave_name = ""
        self.counters: collections.Counter[str] = collections.Counter()
        self._backlog = bytearray()
        self._on_data: Callable[[bytes], None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def is_open(self) -> bool:
        return self.master is not None

    def open(self, on_data: Callable[[bytes], None] | None = None) -> None:
        """Plug in: a new pty, the symlink pointed at it, incoming bytes to ``on_data``."""
        if self.master is not None:
            return
        master, slave = os.openpty()
        # Raw: no echo and no CR/LF translation, or binary frames would be mangled and the
        # emulator would read its own output back as commands before the driver sets the port.
        tty.setraw(slave)
        os.set_blocking(master, False)
        self.master, self.slave = master, slave
        self.slave_name = os.ttyname(slave)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        tmp.symlink_to(self.slave_name)
        os.replace(tmp, self.path)
        self._backlog.clear()
        self._on_data = on_data
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(master, self._readable)
        self.counters["plugs"] += 1

    def close(self) -> None:
        """Unplug: the driver's open port sees a hang-up and the path disappears."""
        master, slave = self.master, self.slave
        self.master = self.slave = None
        if master is None:
            return
        if self._loop is not None:
            self._loop.remove_reader(master)
            self._loop.remove_writer(master)
        for fd in (master, slave):
            with contextlib.suppress(OSError):
                os.close(fd)  # type: ignore[arg-type]
        with contextlib.suppress(OSError):
            if os.readlink(self.path) == self.slave_name:
                self.path.unlink()
        self._backlog.clear()

    def write(self, data: bytes) -> bool:
        """Queue ``data`` as one message; False (and counted) if it had to be dropped."""
        if self.master is None:
            self.counters["dropped_unplugged"] += 1
            return False
        if len(self._backlog) + len(data) > MAX_BACKLOG:
            self.counters["dropped_backlog"] += 1
            return False
        self._backlog += data
        self._flush()
        return True

    def _flush(self) -> None:
        master = self.master
        if master is None:
            return
        while self._backlog:
            try:
                n = os.write(master, self._backlog)
            except BlockingIOError:
                break
            except OSError:
                self._backlog.clear()
                return
            self.counters["bytes_written"] += n
            del self._backlog[:n]
        assert self._loop is not None
        if self._backlog:
            self._loop.add_writer(master, self._flush)
        else:
            self._loop.remove_writer(master)

    def _readable(self) -> None:
        if self.master is None:
            return
        try:
            data = os.read(self.master, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return  # EIO while nothing holds the slave: we hold it, so only during close
        if data:
            self.counters["bytes_read"] += len(data)
            if self._on_data is not None:
                self._on_data(data)
