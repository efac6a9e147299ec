"""A resolve received by one replica ends a wait on the replica that holds the incident,
within a second (PostgreSQL LISTEN/NOTIFY through ``Store.watch``).

Two engines in this process, each with its own ``PostgresStore`` on one real
PostgreSQL database, as two replicas would be; the webhooks go through each one's
intake. The holder's clock never moves by itself: only the wake can end its wait.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from engine.rig import T0, alert, resolved, webhook

from remediator.actions import registry
from remediator.clock import FakeClock
from remediator.engine.core import Engine
from remediator.loader import load
from remediator.model.alerts import parse_webhook
from remediator.model.incident import IncidentState, StepStatus
from remediator.settings import EngineSettings
from remediator.store.postgres import PostgresStore

WAIT_ONLY = """
apiVersion: remediator/v1
kind: Playbook
metadata: {name: settle}
spec:
  match: ['alertname="HighErrorRate"']
  steps:
    - name: let it settle
      action: wait
      with: {duration: 30m}
"""


@pytest.fixture
async def replicas(pg_url: str) -> AsyncIterator[tuple[Engine, Engine]]:
    engines = []
    for name in ("holder", "other"):
        store = PostgresStore(pg_url)
        await store.open()
        clock = FakeClock(datetime(2026, 8, 1, 10, 0, tzinfo=UTC))
        engine = Engine(store=store, playbooks=load(WAIT_ONLY), clock=clock,
                        catalogue=registry,
                        settings=EngineSettings(owner=name, lease=30.0, scan_interval=3600.0))
        await engine.start()
        engines.append(engine)
    yield engines[0], engines[1]
    for engine in engines:
        await engine.stop(grace=1.0)
        await engine.store.close()


async def test_a_resolve_on_another_replica_ends_the_holders_wait(
        replicas: tuple[Engine, Engine]) -> None:
    holder, other = replicas
    a = alert(starts_at=T0)
    await holder.intake.receive(parse_webhook(webhook([a])))
    [incident_id] = await holder.store.active_incident_ids()

    clock = holder.clock
    assert isinstance(clock, FakeClock)
    for _ in range(500):                      # until the holder's run sits in its wait
        view = await holder.store.get_incident(incident_id)
        assert view is not None
        if view.steps and view.steps[0].status == StepStatus.INTENT and clock.pending() > 0:
            break
        await asyncio.sleep(0.01)
    else:
        raise AssertionError("the holder never started waiting")

    await other.intake.receive(parse_webhook(webhook([resolved(a)])))
    await asyncio.wait_for(holder.idle(), 1.0)
    view = await holder.store.get_incident(incident_id)
    assert view is not None
    assert view.state == IncidentState.RESOLVED, view.summary
    assert view.steps[0].status == StepStatus.SKIPPED       # the wait did not run out
    assert "resolved" in (view.steps[0].result or "")
