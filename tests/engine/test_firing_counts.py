"""Runs asking at once whether their alerts still fire share one store read, and no
run gets an answer read before it asked (``engine.firing.FiringCounts``), on a real
SQLite store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import pytest

from remediator.engine.firing import READ_BATCH, FiringCounts
from remediator.engine.supervisor import Supervisor
from remediator.model.incident import TargetRef
from remediator.ports.store import AlertRecord, IngestItem, Routing
from remediator.store.sqlite import SqliteStore

NOW = datetime(2026, 8, 1, 10, 0, tzinfo=UTC)
TARGET = TargetRef(kind="Deployment", namespace="prod", name="api")


class Store(SqliteStore):
    """The real store, its batched firing read counted and, when asked, held after the
    query ran (so that what it read is fixed while the test changes the store)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.reads: list[list[str]] = []
        self.hold: asyncio.Event | None = None
        self.fail: Exception | None = None

    async def firing_alert_counts(self, incident_ids: Sequence[str]) -> dict[str, int]:
        self.reads.append(list(incident_ids))
        if self.fail is not None:
            raise self.fail
        counts = await super().firing_alert_counts(incident_ids)
        if self.hold is not None:
            await self.hold.wait()
        return counts


def item(fp: str, status: Literal["firing", "resolved"] = "firing") -> IngestItem:
    ends = NOW + timedelta(minutes=5) if status == "resolved" else None
    routes = (Routing("pb", f"pb/{fp}", TARGET),) if status == "firing" else ()
    return IngestItem(AlertRecord(fp, NOW, ends, status, {"alertname": "A", "fp": fp}, {}),
                      routes)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = Store(tmp_path / "firing.db")
    await s.open()
    yield s
    await s.close()


async def incidents(store: Store, n: int) -> list[str]:
    ids = []
    for i in range(n):
        [out] = await store.ingest([item(f"{i:016x}")], NOW)
        ids.append(out.incident_ids[0])
    return ids


async def test_asks_during_a_read_share_the_next_one(store: Store) -> None:
    tasks = Supervisor()
    counts = FiringCounts(store, tasks)
    ids = await incidents(store, 40)
    store.hold = asyncio.Event()
    first = asyncio.ensure_future(counts.count(ids[0]))
    await asyncio.sleep(0.05)                     # the first read runs, alone
    assert store.reads == [[ids[0]]]
    rest = [asyncio.ensure_future(counts.count(i)) for i in ids[1:] + ids[1:3]]
    await asyncio.sleep(0.05)
    assert len(store.reads) == 1                  # they wait for the read in flight
    store.hold.set()
    assert await first == 1
    assert await asyncio.gather(*rest) == [1] * len(rest)
    assert store.reads[1:] == [ids[1:]]           # one read for all of them, each id once
    await tasks.close()


async def test_no_answer_is_older_than_its_question(store: Store) -> None:
    tasks = Supervisor()
    counts = FiringCounts(store, tasks)
    [inc] = await incidents(store, 1)
    store.hold = asyncio.Event()
    before = asyncio.ensure_future(counts.count(inc))
    await asyncio.sleep(0.05)                     # read: 1 firing, held
    await store.ingest([item(f"{0:016x}", "resolved")], NOW)
    after = asyncio.ensure_future(counts.count(inc))   # asked after that read ran
    store.hold.set()
    assert await before == 1
    assert await after == 0
    assert store.reads == [[inc], [inc]]
    await tasks.close()


async def test_a_failed_read_fails_its_askers_only(store: Store) -> None:
    tasks = Supervisor()
    counts = FiringCounts(store, tasks)
    a, b = await incidents(store, 2)
    store.fail = RuntimeError("database is locked")
    with pytest.raises(RuntimeError, match="database is locked"):
        await counts.count(a)
    store.fail = None
    assert await counts.count(b) == 1
    await tasks.close()


async def test_many_askers_are_read_in_batches(store: Store) -> None:
    tasks = Supervisor()
    counts = FiringCounts(store, tasks)
    ids = await incidents(store, 3)
    many = ids + [f"none-{i}" for i in range(READ_BATCH + 10)]
    got = await asyncio.gather(*(counts.count(i) for i in many))
    assert got == [1, 1, 1] + [0] * (READ_BATCH + 10)
    assert [len(r) for r in store.reads] == [READ_BATCH, len(many) - READ_BATCH]
    await tasks.close()


async def test_askers_are_not_left_waiting_when_the_reader_is_cancelled(store: Store) -> None:
    tasks = Supervisor()
    counts = FiringCounts(store, tasks)
    a, b = await incidents(store, 2)
    store.hold = asyncio.Event()
    first = asyncio.ensure_future(counts.count(a))
    await asyncio.sleep(0.05)
    second = asyncio.ensure_future(counts.count(b))
    await tasks.close()                           # shutdown cancels the read in flight
    for asked in (first, second):
        with pytest.raises(asyncio.CancelledError):
            await asked
