"""How a bridge ends its sending task: a moment to flush what it holds, then cancelled."""

from __future__ import annotations

import asyncio


async def finish(task: asyncio.Task[None], flush_timeout_s: float) -> None:
    """Wait up to ``flush_timeout_s`` for ``task`` to end by itself (it has been told to stop),
    then cancel it; never raises what the task raised (a stop must not fail)."""
    try:
        await asyncio.wait_for(asyncio.shield(task), flush_timeout_s)
    except TimeoutError:
        task.cancel()
    await asyncio.gather(task, return_exceptions=True)
