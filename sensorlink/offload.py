"""Blocking work off the event loop, one call at a time per owner, whatever cancels the caller.

asyncio cancels the task that awaits ``run_in_executor``, never the thread: the call goes on.
When a later task hands the same state to the executor (a libvpx context, a random generator),
two threads then work on it at once. That is how a dashboard reload crashed the service: a
viewer left while its camera's frame was being encoded, the encoder's task was cancelled, the
next viewer's task started encoding on the same context from a second thread (issue 10).

:class:`SerialOffload` keeps a handle on the call in flight. The next call waits for it, and so
does :meth:`SerialOffload.idle`, which an owner awaits before it frees the state.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class SerialOffload:
    """Runs an owner's blocking calls in an executor, never two at once."""

    def __init__(self, executor: concurrent.futures.Executor | None = None) -> None:
        self._executor = executor
        self._inflight: asyncio.Future[Any] | None = None

    @property
    def busy(self) -> bool:
        """True while a call runs (possibly one whose caller was cancelled)."""
        return self._inflight is not None and not self._inflight.done()

    async def idle(self) -> None:
        """Return once no call runs. Cancelling this wait leaves the call alone."""
        while (inflight := self._inflight) is not None and not inflight.done():
            await asyncio.wait((inflight,))

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in the executor, once the previous call has returned."""
        await self.idle()
        # Nothing awaits between idle() and here, so no other caller can slip in between.
        inflight = asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        self._inflight = inflight
        # Shielded: a cancelled caller must not mark the call done while its thread still runs
        # (the shield also retrieves an exception nobody is left to read).
        return await asyncio.shield(inflight)
