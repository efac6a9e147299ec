"""The one owner of the engine's background tasks.

Every task the engine starts (incident runs, lease renewals, the scan for unclaimed
incidents, notification delivery, re-wakes after a crash) is started here, named,
kept until it ends, and its crash is logged instead of lost. ``close`` cancels what is
left and waits for it, so a stopped engine leaves no task behind (the test suite fails
any test that does).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

log = logging.getLogger("remediator.engine")
T = TypeVar("T")


class Supervisor:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self.closed = False

    def start(self, coro: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T]:
        """Start ``coro`` as a task owned here."""
        if self.closed:
            coro.close()
            raise RuntimeError(f"cannot start {name!r}: the supervisor is closed")
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task %s crashed", task.get_name(),
                      exc_info=task.exception())

    def __len__(self) -> int:
        return len(self._tasks)

    async def close(self, grace: float = 0.0) -> list[asyncio.Task[Any]]:
        """Wait up to ``grace`` seconds for the tasks to end, cancel the rest and wait
        for them; returns the tasks that had to be cancelled."""
        self.closed = True
        tasks = [t for t in self._tasks if not t.done()]
        pending: set[asyncio.Task[Any]] = set(tasks)
        if tasks and grace > 0:
            _, pending = await asyncio.wait(tasks, timeout=grace)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        return list(pending)
