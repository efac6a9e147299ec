"""The engine's working slots go to the lanes in turn: one playbook's storm, or the
backlog resumed at start, never makes another playbook's new incident wait behind it."""

from __future__ import annotations

import asyncio

import pytest

from remediator.engine.slots import RESUMED, FairSlots


async def granted_order(slots: FairSlots, waiters: list[tuple[str, str]]) -> list[str]:
    order: list[str] = []

    async def wait(lane: str, name: str) -> None:
        await slots.acquire(lane)
        order.append(name)
    lane_of = dict((name, lane) for lane, name in waiters)
    tasks = [asyncio.ensure_future(wait(lane, name)) for lane, name in waiters]
    await asyncio.sleep(0)
    holder = "holder"                      # one slot: its holder gives it to the next
    for _ in waiters:
        slots.release(holder)
        await asyncio.sleep(0)
        holder = lane_of[order[-1]]
    await asyncio.gather(*tasks)
    return order


async def test_free_slots_are_taken_at_once_then_lanes_queue() -> None:
    slots = FairSlots(2)
    await slots.acquire("a")
    await slots.acquire("b")
    assert slots.free == 0
    waiting = asyncio.ensure_future(slots.acquire("a"))
    await asyncio.sleep(0)
    assert not waiting.done()
    assert slots.waiting == 1
    slots.release("b")
    await waiting
    slots.release("a")
    slots.release("a")
    assert slots.free == 2


@pytest.mark.parametrize(("waiters", "order"), [
    # a storm of one playbook queued first: the other playbook's incident is second
    ([("storm", "s1"), ("storm", "s2"), ("storm", "s3"), ("other", "o1")],
     ["s1", "o1", "s2", "s3"]),
    # the backlog resumed at start does not hold back a new incident
    ([(RESUMED, "r1"), (RESUMED, "r2"), (RESUMED, "r3"), ("api", "n1"), ("api", "n2")],
     ["r1", "n1", "r2", "n2", "r3"]),
    # three lanes in turn, each first come, first served
    ([("a", "a1"), ("a", "a2"), ("b", "b1"), ("c", "c1"), ("b", "b2")],
     ["a1", "b1", "c1", "a2", "b2"]),
])
async def test_released_slots_go_to_the_lanes_in_turn(waiters: list[tuple[str, str]],
                                                      order: list[str]) -> None:
    slots = FairSlots(1)
    await slots.acquire("holder")
    assert await granted_order(slots, waiters) == order


async def test_a_cancelled_waiter_leaves_its_lane_and_loses_no_slot() -> None:
    slots = FairSlots(1)
    await slots.acquire("holder")
    gone = asyncio.ensure_future(slots.acquire("a"))
    stays = asyncio.ensure_future(slots.acquire("b"))
    await asyncio.sleep(0)
    gone.cancel()
    await asyncio.gather(gone, return_exceptions=True)
    slots.release("holder")
    await stays
    slots.release("b")
    assert (slots.free, slots.waiting) == (1, 0)


async def test_the_resumed_backlog_never_holds_the_last_slot() -> None:
    """After a restart the backlog fills every slot but one: a new incident starts at
    once instead of waiting for a resumed run to give a slot back."""
    slots = FairSlots(3)
    await slots.acquire(RESUMED)
    await slots.acquire(RESUMED)
    third = asyncio.ensure_future(slots.acquire(RESUMED))
    await asyncio.sleep(0)
    assert not third.done()                        # one slot free, but it is not theirs
    assert slots.free == 1
    await asyncio.wait_for(slots.acquire("api"), 0.1)   # the new incident: at once
    slots.release("api")
    assert not third.done()                        # still the backlog's cap
    slots.release(RESUMED)
    await asyncio.wait_for(third, 0.1)             # a resumed run gave one back
    assert (slots.free, slots.waiting) == (1, 0)


async def test_one_slot_is_not_reserved() -> None:
    slots = FairSlots(1)
    await asyncio.wait_for(slots.acquire(RESUMED), 0.1)
