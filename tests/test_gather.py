"""Gathered writes (store/gather.py): what the stores' journal_poll is made of."""

from __future__ import annotations

import asyncio

import pytest

from remediator.store.gather import Gathered


async def test_items_added_within_the_window_are_written_together_in_order() -> None:
    calls: list[list[int]] = []
    slow = asyncio.Event()

    async def write(batch: list[int]) -> None:
        if batch[0] == 1:
            await slow.wait()          # the first batch is slow: the second must wait
        calls.append(batch)

    gathered = Gathered(write, 0.01)
    first = [gathered.add(i) for i in (1, 2, 3)]
    await asyncio.sleep(0.03)
    second = [gathered.add(i) for i in (4, 5)]
    await asyncio.sleep(0.03)
    assert calls == []                 # the second batch did not overtake the first
    slow.set()
    await asyncio.gather(*first, *second)
    assert calls == [[1, 2, 3], [4, 5]]


async def test_a_failed_write_fails_every_item_of_its_batch_only() -> None:
    async def write(batch: list[int]) -> None:
        if 2 in batch:
            raise OSError("disk full")

    gathered = Gathered(write, 0.01)
    bad = [gathered.add(1), gathered.add(2)]
    await asyncio.sleep(0.03)
    good = gathered.add(3)
    for fut in bad:
        with pytest.raises(OSError, match="disk full"):
            await fut
    await good


async def test_drain_writes_what_is_gathered_now() -> None:
    calls: list[list[int]] = []

    async def write(batch: list[int]) -> None:
        calls.append(batch)

    gathered = Gathered(write, 60.0)
    fut = gathered.add(7)
    await gathered.drain()
    assert fut.done()
    assert calls == [[7]]
