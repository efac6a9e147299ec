"""A replica takes up every incident that a dead replica held once their leases run out,
however many of them only wait: a waiting run holds no working slot, so waits must not
stop the scan for unclaimed incidents.

One engine in this process on a real PostgreSQL database; the dead replica is its
leases: five incidents opened and journaled in their waits, then claimed by ``dead``
in the store, as a SIGKILL leaves them. The engine's clock never moves by itself.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from engine.rig import T0, alert, webhook

from remediator.actions import registry
from remediator.clock import FakeClock
from remediator.engine.core import Engine
from remediator.loader import load
from remediator.model.alerts import parse_webhook
from remediator.model.incident import StepStatus
from remediator.settings import EngineSettings
from remediator.store.postgres import PostgresStore

WAIT_ONLY = """
apiVersion: remediator/v1
kind: Playbook
metadata: {name: settle}
spec:
  match: ['alertname="HighErrorRate"']
  target: {kind: Deployment, namespace: "{{ labels.namespace }}", name: "{{ labels.deployment }}"}
  steps:
    - name: let it settle
      action: wait
      with: {duration: 30m}
"""
START = datetime(2026, 8, 1, 10, 0, tzinfo=UTC)
INCIDENTS = 5


def engine(store: PostgresStore, owner: str) -> Engine:
    return Engine(store=store, playbooks=load(WAIT_ONLY), clock=FakeClock(START),
                  catalogue=registry,
                  settings=EngineSettings(owner=owner, lease=30.0, scan_interval=5.0,
                                          max_parallel=2))


async def all_waiting(store: PostgresStore, ids: list[str]) -> bool:
    for incident_id in ids:
        view = await store.get_incident(incident_id)
        assert view is not None
        if not view.steps or view.steps[0].status != StepStatus.INTENT:
            return False
    return True


async def test_a_replica_takes_up_every_waiting_incident_of_a_dead_one(pg_url: str) -> None:
    first = PostgresStore(pg_url)
    await first.open()
    opener = engine(first, "opener")
    await opener.start()
    for i in range(INCIDENTS):
        await opener.intake.receive(parse_webhook(webhook(
            [alert(deployment=f"api-{i}", starts_at=T0)], group=f"g{i}")))
    ids = await first.active_incident_ids()
    assert len(ids) == INCIDENTS
    for _ in range(500):                        # every run sits in its 30 min wait
        if await all_waiting(first, ids) and opener.clock.pending() >= INCIDENTS:
            break
        await asyncio.sleep(0.01)
    else:
        raise AssertionError("the runs never started waiting")
    await opener.stop(grace=1.0)                # releases its leases: now a dead one's
    for incident_id in ids:
        assert await first.claim(incident_id, "dead", START, 30.0)
    await first.close()

    store = PostgresStore(pg_url)
    await store.open()
    survivor = engine(store, "survivor")
    clock = survivor.clock
    assert isinstance(clock, FakeClock)
    try:
        await survivor.start()
        for _ in range(100):                    # the dead leases run out at +30 s
            await clock.advance(1.0)
            await asyncio.sleep(0.02)
            if survivor.running == INCIDENTS:
                break
        assert survivor.running == INCIDENTS, (
            f"{survivor.running} of {INCIDENTS} waiting incidents taken up "
            f"(max_parallel 2) by {clock.now() - START}")
        assert await all_waiting(store, ids)
    finally:
        await survivor.stop(grace=1.0)
        await store.close()
