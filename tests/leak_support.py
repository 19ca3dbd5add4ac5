"""What a leak would grow (asyncio tasks, threads, open file descriptors), and a wait for them
to come back to a baseline: for the tests where peers come and go."""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Any

from support import wait_for


def counts() -> dict[str, int]:
    """What a leak would grow. Executor threads are counted apart: the pool makes them lazily,
    up to its size, and keeps them."""
    threads = threading.enumerate()
    return {"tasks": len(asyncio.all_tasks()),
            "threads": sum(not t.name.startswith("asyncio_") for t in threads),
            "executor_threads": sum(t.name.startswith("asyncio_") for t in threads),
            "fds": len(os.listdir("/proc/self/fd"))}


async def back_to(baseline: dict[str, int], baseline_tasks: set[asyncio.Task[Any]]) -> dict[str, int]:
    pool_size = min(32, (os.cpu_count() or 1) + 4)  # ThreadPoolExecutor's default max_workers

    def back() -> bool:
        now = counts()
        return (now["tasks"] <= baseline["tasks"] and now["threads"] <= baseline["threads"]
                and now["fds"] <= baseline["fds"] and now["executor_threads"] <= pool_size)
    try:
        await wait_for(back, 30, "tasks, threads and file descriptors back to the baseline")
    except AssertionError:
        extra = "\n".join(repr(t)[:200] for t in asyncio.all_tasks() - baseline_tasks)
        raise AssertionError(f"baseline {baseline}, now {counts()}; new tasks:\n{extra}") from None
    return counts()
