"""Time, injected. The engine reads time and sleeps only through a ``Clock``.

``SystemClock`` is the real one. ``FakeClock`` is for tests: ``now()`` only moves
when a test calls ``advance()``, or, with ``auto_advance=True``, whenever every
task is waiting — then it jumps straight to the earliest pending sleeper, so a
ten-minute verification window takes milliseconds.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Timer(Protocol):
    def cancel(self) -> object:
        """Do not call back (a no-op once it has)."""
        ...


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time."""
        ...

    def call_later(self, seconds: float, callback: Callable[[], object]) -> Timer:
        """Call ``callback`` (on the running loop) after ``seconds`` of this clock's
        time: a timer entry, no task or coroutine (thousands of waiting runs hold one)."""
        ...


#: The event loop's timers may fire up to about a millisecond before their time by the
#: wall clock (uvloop rounds a delay to whole milliseconds of libuv's clock, read once
#: per loop iteration; measured: 45% of timers early, by up to 1.35 ms): the system
#: clock sets a timer or a sleep this much later, so that what is due at t by ``now()``
#: does not run before t (measured: none early, 0.1-0.4 ms late).
TIMER_SLACK = 0.0015


def _later(seconds: float) -> float:
    return seconds + TIMER_SLACK if seconds > 0 else 0.0


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(_later(seconds))

    def call_later(self, seconds: float, callback: Callable[[], object]) -> Timer:
        return asyncio.get_running_loop().call_later(_later(seconds), callback)


class FakeClock:
    """A manually driven clock. Sleepers wake in deadline order as time advances."""

    def __init__(self, start: datetime | None = None, *, auto_advance: bool = False) -> None:
        self._now = start or datetime(2026, 8, 1, 10, 0, 0, tzinfo=UTC)
        self._sleepers: list[tuple[datetime, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self._driver: asyncio.Task[None] | None = None
        self.auto_advance = auto_advance

    def now(self) -> datetime:
        return self._now

    async def sleep(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        deadline = self._now + timedelta(seconds=max(0.0, seconds))
        heapq.heappush(self._sleepers, (deadline, next(self._seq), fut))
        if self.auto_advance and (self._driver is None or self._driver.done()):
            self._driver = loop.create_task(self._drive())
        try:
            await fut
        finally:
            if not fut.done():
                fut.cancel()

    def call_later(self, seconds: float, callback: Callable[[], object]) -> Timer:
        """A sleeper entry like ``sleep``'s, whose future calls ``callback`` when due."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        deadline = self._now + timedelta(seconds=max(0.0, seconds))
        heapq.heappush(self._sleepers, (deadline, next(self._seq), fut))
        fut.add_done_callback(lambda f: None if f.cancelled() else callback())
        if self.auto_advance and (self._driver is None or self._driver.done()):
            self._driver = loop.create_task(self._drive())
        return fut

    def pending(self) -> int:
        return sum(1 for _, _, f in self._sleepers if not f.done())

    async def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``, waking every sleeper that falls due in order."""
        target = self._now + timedelta(seconds=seconds)
        while self._sleepers and self._sleepers[0][0] <= target:
            deadline, _, fut = heapq.heappop(self._sleepers)
            if fut.done():
                continue
            self._now = max(self._now, deadline)
            fut.set_result(None)
            await _settle()
        self._now = max(self._now, target)
        await _settle()

    async def _drive(self) -> None:
        # Let every runnable task (and quick I/O) progress, then jump to the next deadline.
        idle_rounds = 0
        while True:
            await _settle()
            self._sleepers = [s for s in self._sleepers if not s[2].done()]
            heapq.heapify(self._sleepers)
            if not self._sleepers:
                idle_rounds += 1
                if idle_rounds > 50:
                    return
                await asyncio.sleep(0.001)
                continue
            idle_rounds = 0
            deadline, _, fut = heapq.heappop(self._sleepers)
            self._now = max(self._now, deadline)
            fut.set_result(None)


async def _settle(rounds: int = 20) -> None:
    for _ in range(rounds):
        await asyncio.sleep(0)


def monotonic() -> float:
    """Real monotonic seconds, for measuring durations in metrics only."""
    return time.monotonic()
