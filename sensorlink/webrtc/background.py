"""The lifecycle an upstream publisher shares (Janus, each WHIP session): one task that keeps the
connection up until the service stops; start() launches it, stop() cancels it and waits."""

from __future__ import annotations

import asyncio


class BackgroundPublisher:
    """Subclasses set ``task_name`` and write ``_run`` (their connect-and-retry loop)."""

    task_name = "publish"
    state = "stopped"
    _task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.state = "connecting"
        self._task = asyncio.create_task(self._run(), name=self.task_name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self.state = "stopped"

    async def _run(self) -> None:
        raise NotImplementedError
