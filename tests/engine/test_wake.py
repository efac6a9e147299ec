"""The engine's light wake event and the clock's timers: what a waiting run holds
instead of an ``asyncio.Event`` and a sleeping helper task."""

from __future__ import annotations

import asyncio
import sys

from remediator.clock import FakeClock, SystemClock
from remediator.engine.run import WakeEvent


async def test_wake_event_keeps_asyncio_events_contract() -> None:
    event = WakeEvent()
    assert not event.is_set()
    waiters = [asyncio.ensure_future(event.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    assert not any(w.done() for w in waiters)
    event.set()
    assert event.is_set()
    assert await asyncio.gather(*waiters) == [True, True, True]
    assert await asyncio.wait_for(event.wait(), 1)        # set: returns at once
    event.clear()
    assert not event.is_set()
    late = asyncio.ensure_future(event.wait())
    await asyncio.sleep(0)
    assert not late.done()
    event.set()
    event.set()                                           # twice: no harm
    assert await late


async def test_a_cancelled_waiter_leaves_nothing_behind() -> None:
    event = WakeEvent()
    waiter = asyncio.ensure_future(event.wait())
    await asyncio.sleep(0)
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)
    assert event._waiters == []
    event.set()                                           # no cancelled future set
    assert event.is_set()


def test_wake_event_is_small() -> None:
    """Thousands of open incidents hold one each (an asyncio.Event is ~1.1 KB)."""
    event = WakeEvent()
    assert not hasattr(event, "__dict__")
    assert sys.getsizeof(event) < 100


async def test_fake_clock_timer_fires_when_due_and_not_when_cancelled() -> None:
    clock = FakeClock()
    fired: list[str] = []
    clock.call_later(10, lambda: fired.append("a"))
    b = clock.call_later(5, lambda: fired.append("b"))
    clock.call_later(20, lambda: fired.append("c"))
    assert clock.pending() == 3
    b.cancel()
    await clock.advance(9.9)
    assert fired == []
    await clock.advance(0.1)
    assert fired == ["a"]
    await clock.advance(100)
    assert fired == ["a", "c"]
    assert clock.pending() == 0


async def test_fake_clock_auto_advance_drives_timers() -> None:
    clock = FakeClock(auto_advance=True)
    event = WakeEvent()
    clock.call_later(600, event.set)
    await asyncio.wait_for(event.wait(), 2)               # ten minutes, no real wait
    assert (clock.now() - FakeClock().now()).total_seconds() == 600


async def test_system_clock_timer() -> None:
    event = WakeEvent()
    SystemClock().call_later(0, event.set)
    await asyncio.wait_for(event.wait(), 2)
    cancelled = WakeEvent()
    SystemClock().call_later(0, cancelled.set).cancel()
    await asyncio.sleep(0.01)
    assert not cancelled.is_set()
