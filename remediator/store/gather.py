"""Writes that may wait a little, gathered and written together.

A verification poll's journal is one small row, and with 5,000 incidents verifying
every 5 s there are 1,000 of them a second, spread over each second (the polls keep
to phases of their own): written one commit each, the commits (their fsync, the WAL
pages, the thread hand-offs) cost more than the rows. ``Gathered`` holds each for at
most ``within`` seconds and writes everything gathered meanwhile with one call of
``write`` (one transaction: the stores' ``journal_poll``). Batches are written in
order, one at a time: a write awaited later is never overtaken by an older one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")

#: How long a verification poll's journal may wait to be written with others (seconds)
POLL_GATHER = 0.05


class Gathered(Generic[T]):
    def __init__(self, write: Callable[[list[T]], Awaitable[None]], within: float) -> None:
        self._write = write
        self._within = within
        self._items: list[tuple[T, asyncio.Future[None]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._last: asyncio.Task[None] | None = None       # the latest batch's write

    def add(self, item: T) -> asyncio.Future[None]:
        """Write ``item`` within ``within`` seconds; the future of that write (its
        exception if the write failed)."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        self._items.append((item, fut))
        if self._timer is None:
            self._timer = loop.call_later(self._within, self._due)
        return fut

    def _due(self) -> None:
        self._timer = None
        batch, self._items = self._items, []
        if batch:
            self._last = asyncio.get_running_loop().create_task(self._run(batch, self._last))

    async def _run(self, batch: list[tuple[T, asyncio.Future[None]]],
                   after: asyncio.Task[None] | None) -> None:
        if after is not None:           # batches are written in order, one at a time
            await asyncio.gather(after, return_exceptions=True)
        try:
            await self._write([item for item, _ in batch])
        except Exception as exc:
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
        else:
            for _, fut in batch:
                if not fut.done():
                    fut.set_result(None)

    async def drain(self) -> None:
        """Write what is gathered now, and wait for every write under way (the store
        closes)."""
        if self._timer is not None:
            self._timer.cancel()
        self._due()
        if self._last is not None:
            await asyncio.gather(self._last, return_exceptions=True)
