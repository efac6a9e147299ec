"""Incident runs give way to the intake: while a webhook is being received, and until
none has been for ``QUIET`` seconds, a run waits before each journal write and each
action call, at most ``intake_priority`` real seconds (0: never)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from remediator.actions import registry
from remediator.clock import FakeClock
from remediator.engine.action import with_retries
from remediator.engine.core import Engine
from remediator.engine.intake import QUIET
from remediator.engine.run import Run, WakeEvent
from remediator.settings import EngineSettings
from remediator.store.sqlite import SqliteStore


async def engine(tmp_path: Path, priority: float) -> Engine:
    store = SqliteStore(tmp_path / "s.db")
    await store.open()
    return Engine(store=store, playbooks=[], clock=FakeClock(), catalogue=registry,
                  settings=EngineSettings(intake_priority=priority))


async def test_a_run_waits_while_a_webhook_is_received(tmp_path: Path) -> None:
    e = await engine(tmp_path, priority=30.0)
    await asyncio.wait_for(e.gate.give_way(), 1)          # idle intake: no wait at all
    with e.gate:
        with e.gate:                           # two webhooks at once
            waiting = asyncio.ensure_future(e.gate.give_way())
            await asyncio.sleep(0.02)
            assert not waiting.done()
        await asyncio.sleep(0.02)
        assert not waiting.done()                     # one is still being received
    await asyncio.wait_for(waiting, 1)                # the intake is idle: it goes on
    await e.store.close()


async def test_a_run_waits_for_a_flooded_intake_to_be_quiet_not_only_idle(
        tmp_path: Path) -> None:
    """Under a flood the intake is idle for a moment between two group commits; a run
    that woke then would take the CPU the storm needs. It goes on once no webhook has
    been received for QUIET seconds."""
    e = await engine(tmp_path, priority=30.0)
    loop = asyncio.get_running_loop()
    with e.gate:
        pass
    with e.gate:                                      # the next one within QUIET: a flood
        waiting = asyncio.ensure_future(e.gate.give_way())
        await asyncio.sleep(0)
    received = loop.time()
    await asyncio.sleep(0)
    assert not waiting.done()                         # idle, but not yet quiet
    for _ in range(3):                                # webhooks keep coming in a flood
        await asyncio.sleep(QUIET / 2)
        with e.gate:
            received = loop.time()
        assert not waiting.done()
    await asyncio.wait_for(waiting, 1)
    assert loop.time() >= received + QUIET            # went on only after a quiet QUIET
    before = loop.time()
    await asyncio.sleep(QUIET)
    await asyncio.wait_for(e.gate.give_way(), 1)      # quiet already: no wait
    assert loop.time() - before < QUIET * 3
    await e.store.close()


async def test_a_lone_webhook_does_not_hold_the_runs_after_it(tmp_path: Path) -> None:
    """A webhook after a quiet intake (an incident opening on its own): its run, and the
    others, go on as soon as it is received, without waiting QUIET (reaction time)."""
    e = await engine(tmp_path, priority=30.0)
    loop = asyncio.get_running_loop()
    with e.gate:
        waiting = asyncio.ensure_future(e.gate.give_way())
        await asyncio.sleep(0)
        assert not waiting.done()                     # still received: it waits
    done = loop.time()
    await asyncio.wait_for(waiting, 1)
    assert loop.time() - done < QUIET / 2
    await e.store.close()


async def test_the_wait_is_bounded_and_can_be_turned_off(tmp_path: Path) -> None:
    e = await engine(tmp_path, priority=0.05)
    with e.gate:
        await asyncio.wait_for(e.gate.give_way(), 1)       # gave way 50 ms, then went on
    off = await engine(tmp_path, priority=0.0)
    with off.gate:
        await asyncio.wait_for(off.gate.give_way(), 0.01)  # 0: never waits
    await e.store.close()
    await off.store.close()


async def test_a_failed_intake_still_ends_the_wait(tmp_path: Path) -> None:
    e = await engine(tmp_path, priority=30.0)
    try:
        with e.gate:
            waiting = asyncio.ensure_future(e.gate.give_way())
            raise RuntimeError("store down")
    except RuntimeError:
        pass
    await asyncio.wait_for(waiting, 1)
    await e.store.close()


async def test_an_action_call_waits_too(tmp_path: Path) -> None:
    """Every attempt of an action call (plan or apply) gives way first: what a run does
    between two journal writes is cut into smaller pieces while alerts arrive."""
    e = await engine(tmp_path, priority=30.0)
    run = Run(e.deps, "inc-1", WakeEvent())
    called: list[int] = []

    async def call() -> str:
        called.append(1)
        return "done"
    with e.gate:
        pending = asyncio.ensure_future(with_retries(run, "call", 0, call))
        await asyncio.sleep(0.02)
        assert called == []
    assert await asyncio.wait_for(pending, 1) == "done"
    assert called == [1]
    await e.store.close()
