"""On a shared store too, a run waiting for an approval parks: no task, its lease kept
and renewed with every other lease of the replica in one write, woken by a decision
made on another replica (LISTEN/NOTIFY), forgotten when another replica took its
lease, forgotten when its incident was closed without a wake reaching it, and released
at shutdown so that another replica takes it up at once.

Two engines in this process, each with its own ``PostgresStore`` on one real
PostgreSQL database, as two replicas would be. Their clocks never move by themselves.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

import pytest
from engine.rig import T0, alert, webhook

from remediator.actions import registry
from remediator.clock import FakeClock
from remediator.engine.core import Engine
from remediator.loader import load
from remediator.model.alerts import parse_webhook
from remediator.model.incident import IncidentState
from remediator.settings import DiagnosisSettings, EngineSettings
from remediator.store.postgres import PostgresStore

GATED = """
apiVersion: remediator/v1
kind: Playbook
metadata: {name: gated}
spec:
  match: ['alertname="HighErrorRate"']
  steps:
    - name: settle
      action: wait
      with: {duration: 1s}
      approval: {slack: {channel: "#oncall"}, ttl: 15m}
"""
START = datetime(2026, 8, 1, 10, 0, tzinfo=UTC)
N = 3
LEASE = 30.0


async def replica(pg_url: str, name: str) -> Engine:
    store = PostgresStore(pg_url)
    await store.open()
    engine = Engine(store=store, playbooks=load(GATED), clock=FakeClock(START),
                    catalogue=registry,
                    settings=EngineSettings(owner=name, lease=LEASE, scan_interval=5.0,
                                            diagnosis=DiagnosisSettings(enabled=False)))
    await engine.start()
    return engine


@pytest.fixture
async def replicas(pg_url: str) -> AsyncIterator[tuple[Engine, Engine]]:
    holder = await replica(pg_url, "holder")
    other = await replica(pg_url, "other")
    yield holder, other
    for engine in (holder, other):
        await engine.stop(grace=1.0)
        await engine.store.close()


def incident_tasks() -> list[str]:
    return [t.get_name() for t in asyncio.all_tasks() if not t.done()
            and t.get_name().startswith("incident-") and t.get_name() != "incident-scan"]


async def until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    for _ in range(500):                              # real time, bounded
        if await check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(what)


async def owners(engine: Engine) -> dict[str, tuple[str | None, datetime | None]]:
    store = engine.store
    assert isinstance(store, PostgresStore)
    assert store._pool is not None
    rows = await store._pool.fetch("SELECT id, owner, lease_until FROM incidents")
    return {r["id"]: (r["owner"], r["lease_until"]) for r in rows}


async def parked(holder: Engine) -> list[str]:
    """N incidents opened on ``holder``, all parked at their approval; their ids."""
    for i in range(N):
        await holder.intake.receive(parse_webhook(webhook(
            [alert(deployment=f"api-{i}", starts_at=T0)], group=f"g{i}")))

    async def all_parked() -> bool:
        return holder.parked == N and not incident_tasks()
    await until(all_parked, "every run parked at its approval")
    return await holder.store.active_incident_ids()


async def advance(*engines: Engine, seconds: float) -> None:
    for engine in engines:
        clock = engine.clock
        assert isinstance(clock, FakeClock)
        await clock.advance(seconds)


async def test_parked_waits_keep_their_leases_and_wake_from_another_replica(
        replicas: tuple[Engine, Engine]) -> None:
    holder, other = replicas
    ids = await parked(holder)
    assert {o for o, _ in (await owners(holder)).values()} == {"holder"}

    # two minutes: four lease lengths. The holder renews every lease together; the other
    # replica's scan finds nothing to take.
    for _ in range(12):
        await advance(holder, other, seconds=10)
        await asyncio.sleep(0.05)
    leases = await owners(holder)
    assert {o for o, _ in leases.values()} == {"holder"}
    assert all(until_ is not None and until_ > holder.clock.now() for _, until_ in leases.values())
    assert holder.parked == N
    assert other.running == 0
    assert incident_tasks() == []

    # approved through the other replica: the decision's NOTIFY wakes the holder's wait
    first = ids[0]
    view = await holder.store.get_incident(first)
    assert view is not None
    approval = view.context["approval"]["id"]
    assert await other.store.decide_approval(approval, "approved", "alice", other.clock.now())
    other.wake(first)                                # what the interactions endpoint does

    async def approved_step_ran() -> bool:
        v = await holder.store.get_incident(first)
        assert v is not None
        return bool(v.steps)                       # its 1 s wait started
    await until(approved_step_ran, "the holder ran the approved step")
    view = await holder.store.get_incident(first)
    assert view is not None
    assert any(t.message == "step 'settle' approved by alice" for t in view.timeline)
    assert holder.parked == N - 1
    assert other.running == 0                        # the holder's lease kept it out


async def test_a_parked_wait_whose_lease_was_taken_is_forgotten(
        replicas: tuple[Engine, Engine]) -> None:
    holder, _ = replicas
    ids = await parked(holder)
    stolen = ids[1]
    # as if the holder had stalled past its lease and another replica took it over
    assert holder.leases is not None
    await holder.store.release(stolen, "holder")
    assert await holder.store.claim(stolen, "thief", holder.clock.now(), LEASE)

    await advance(holder, seconds=LEASE / 3)         # the next renewal finds it lost

    async def forgotten() -> bool:
        return holder.parked == N - 1
    await until(forgotten, "the stolen wait was forgotten")
    assert stolen not in holder.leases
    assert incident_tasks() == []                    # no run to act on the thief's incident
    leases = await owners(holder)
    assert leases[stolen][0] == "thief"
    assert {leases[i][0] for i in ids if i != stolen} == {"holder"}
    view = await holder.store.get_incident(stolen)
    assert view is not None
    assert view.state == IncidentState.AWAITING_APPROVAL


async def test_stopping_releases_the_parked_waits_to_another_replica(
        replicas: tuple[Engine, Engine]) -> None:
    holder, other = replicas
    ids = await parked(holder)
    await holder.stop(grace=1.0)
    assert {o for o, _ in (await owners(other)).values()} == {None}

    await advance(other, seconds=5)                  # the other replica's next scan

    async def taken_up() -> bool:
        return other.parked == N and not incident_tasks()
    await until(taken_up, "the other replica parked every wait")
    assert {o for o, _ in (await owners(other)).values()} == {"other"}
    assert sorted(other.parking.ids()) == sorted(ids)


async def test_a_parked_wait_whose_incident_was_closed_is_forgotten(
        replicas: tuple[Engine, Engine]) -> None:
    holder, other = replicas
    ids = await parked(holder)
    closed = ids[2]
    # closed behind the holder's back (no wake reached it): as ``claim`` does, renewal
    # keeps only an open incident's lease
    await other.store.set_state(closed, IncidentState.RESOLVED, other.clock.now())

    await advance(holder, seconds=LEASE / 3)         # its lease is not renewed any more

    async def forgotten() -> bool:
        return holder.parked == N - 1
    await until(forgotten, "the closed incident's wait was forgotten")
    assert holder.leases is not None
    assert closed not in holder.leases
    assert incident_tasks() == []
