"""The Store's retention contract (``RetentionStore``), on SQLite and PostgreSQL, and
the pass that runs it (``store.retention.Retention``) on a fake clock.

The store fixtures and alert factories are the contract suite's (``test_store``):
every case runs on both backends.
"""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from ha.pgserver import shared_server
from test_store import NOW, T0, TARGET, OpenStore, firing, open_store, resolved_, store

from remediator.clock import FakeClock
from remediator.engine.supervisor import Supervisor
from remediator.metrics import Metrics
from remediator.model.incident import EvidenceItem, IncidentState, StepRecord, TimelineEntry
from remediator.ports.store import ApprovalRecord, Routing, Store
from remediator.store.postgres import PostgresStore
from remediator.store.retention import Retention
from remediator.store.sqlite import SqliteStore

__all__ = ["open_store", "store"]        # fixtures, used by name

DAY = timedelta(days=1)
OLD = NOW - 40 * DAY           # closed long ago
CUTOFF = NOW - 30 * DAY        # store.retention = 30d
SINKS = ("console", "slack")


async def _incident(store: Store, fp: str, key: str, at: datetime) -> str:
    [out] = await store.ingest([firing(fp, starts=at, key=key)], at)
    inc = out.incident_ids[0]
    await store.save_step(inc, "ladder", StepRecord(index=0, name="restart",
                                                    action="kubernetes.restart"), at)
    await store.add_timeline(inc, TimelineEntry(at=at, kind="step", message="restarted"))
    await store.create_approval(ApprovalRecord(
        id=f"apr-{fp}", incident_id=inc, step_index=0, requested_at=at,
        expires_at=at + timedelta(minutes=15), approvers=("U1",)))
    await store.sink_set(inc, "slack:ts", "1.0")
    await store.add_evidence(inc, [EvidenceItem(at=at, kind="logs", moment="escalation",
                                                namespace="prod", pod="api-1", text="x")],
                             keep=5)
    event = await store.append_event(inc, "opened", at)
    for sink in SINKS:
        await store.mark_delivered(sink, event)
    return inc


async def _newest(store: Store) -> None:
    """Today's rows: an unmatched alert and an undelivered notification (a store keeps
    its newest rows, whose ids SQLite would hand out again)."""
    await store.ingest([firing("9" * 16, starts=NOW, routes=())], NOW)
    await store.append_event("inc-today", "opened", NOW)


async def _close(store: Store, inc: str, fp: str, at: datetime) -> None:
    await store.ingest([resolved_(fp, starts=at - timedelta(minutes=5))], at)
    await store.set_state(inc, IncidentState.RECOVERED, at)


async def test_prune_deletes_old_closed_incidents_and_keeps_the_rest(store: Store) -> None:
    old = await _incident(store, "a" * 16, "pb/old", OLD)
    await _close(store, old, "a" * 16, OLD + timedelta(minutes=5))
    recent = await _incident(store, "b" * 16, "pb/recent", NOW - DAY)
    await _close(store, recent, "b" * 16, NOW - DAY + timedelta(minutes=5))
    escalated = await _incident(store, "c" * 16, "pb/escalated", OLD)   # still firing
    await store.set_state(escalated, IncidentState.ESCALATED, OLD)
    running = await _incident(store, "d" * 16, "pb/running", OLD)
    await store.set_state(running, IncidentState.REMEDIATING, OLD)
    await _newest(store)

    counts = await store.prune(CUTOFF, sinks=SINKS)

    assert counts is not None
    assert await store.get_incident(old) is None
    for kept in (recent, escalated, running):
        view = await store.get_incident(kept)
        assert view is not None
        assert (len(view.alerts), len(view.steps), len(view.timeline)) == (1, 1, 1)
        assert await store.pending_approval(kept, 0) is not None
        assert await store.sink_get(kept, "slack:ts") == "1.0"
        assert len(await store.list_evidence(kept)) == 1
    assert await store.list_evidence(old) == []
    assert await store.get_approval("apr-" + "a" * 16) is None
    assert await store.sink_get(old, "slack:ts") is None
    assert {k: v for k, v in counts.items() if k in ("incidents", "alerts", "steps",
                                                     "approvals", "sink_state", "evidence")} == {
        "incidents": 1, "alerts": 1, "steps": 1, "approvals": 1, "sink_state": 1, "evidence": 1}
    assert counts["timeline"] >= 1
    # the firing episodes of open incidents stay duplicates when re-delivered
    for fp, key in (("c" * 16, "pb/escalated"), ("d" * 16, "pb/running")):
        [again] = await store.ingest([firing(fp, starts=OLD, key=key)], NOW)
        assert again.outcome == "duplicate"
    # every outbox row was delivered to every sink: all gone, open incidents' too
    assert counts["outbox"] == 4
    assert await store.prune(CUTOFF, sinks=SINKS) == dict.fromkeys(counts, 0)


async def test_prune_keeps_an_episode_an_open_incident_holds(store: Store) -> None:
    """An alert routed to two incidents (``continue: true``): the old closed one goes,
    the alert stays with the open one, and its re-delivery is still a duplicate."""
    routes = (Routing("pb", "pb/one", TARGET), Routing("pb2", "pb2/two", TARGET))
    item = firing("e" * 16, starts=OLD, routes=routes)
    [out] = await store.ingest([item], OLD)
    closed, still_open = out.incident_ids
    await store.set_state(closed, IncidentState.RESOLVED, OLD)

    counts = await store.prune(CUTOFF, sinks=SINKS)

    assert counts is not None
    assert counts["incidents"] == 1
    assert counts["alerts"] == 0
    assert await store.get_incident(closed) is None
    view = await store.get_incident(still_open)
    assert view is not None
    assert len(view.alerts) == 1
    [again] = await store.ingest([item], NOW)
    assert again.outcome == "duplicate"


async def test_prune_keeps_a_firing_alert_of_a_closed_incident(store: Store) -> None:
    """An incident closed while its alert still fires (a human closed it): the incident
    goes, the episode has not ended and stays."""
    [out] = await store.ingest([firing("f" * 16, starts=OLD, key="pb/f")], OLD)
    inc = out.incident_ids[0]
    await store.set_state(inc, IncidentState.RESOLVED, OLD)
    counts = await store.prune(CUTOFF, sinks=SINKS)
    assert counts is not None
    assert (counts["incidents"], counts["alerts"]) == (1, 0)
    assert len(await store.list_alerts()) == 1


async def test_prune_keeps_undelivered_notifications(store: Store) -> None:
    ids = [await store.append_event("inc-x", f"e{n}", OLD) for n in range(4)]
    for event in ids[:3]:
        await store.mark_delivered("slack", event)
    await store.mark_delivered("console", ids[0])
    await store.mark_delivered("console", ids[2])
    counts = await store.prune(CUTOFF, sinks=SINKS)
    assert counts is not None
    assert (counts["outbox"], counts["deliveries"]) == (2, 4)
    assert [e for e, _, _ in await store.undelivered_events("console", 10)] == [ids[1], ids[3]]
    assert [e for e, _, _ in await store.undelivered_events("slack", 10)] == [ids[3]]


async def test_prune_deletes_unmatched_alerts_by_age_and_old_budget(store: Store) -> None:
    await store.ingest([firing("1" * 16, starts=OLD, routes=())], OLD)
    await store.ingest([resolved_("2" * 16, starts=OLD)], OLD)     # never seen firing
    await store.ingest([firing("3" * 16, starts=NOW, routes=())], NOW)
    await store.reserve_action("inc-1", "restart", OLD, OLD - timedelta(minutes=10), 20, "x")
    await store.reserve_action("inc-1", "restart", NOW, NOW - timedelta(minutes=10), 20, "x")
    counts = await store.prune(CUTOFF, sinks=SINKS)
    assert counts is not None
    assert (counts["alerts"], counts["budget"]) == (2, 1)
    assert [a["fingerprint"] for a in await store.list_alerts()] == ["3" * 16]
    assert await store.mutations_since(OLD - DAY) == 1


async def test_prune_runs_in_small_batches(store: Store) -> None:
    """Seven old incidents, three a transaction: every one goes, over several."""
    for n in range(7):
        fp = f"{n:016x}"
        inc = await _incident(store, fp, f"pb/{n}", OLD)
        await _close(store, inc, fp, OLD + timedelta(minutes=5))
    await _newest(store)
    counts = await store.prune(CUTOFF, sinks=SINKS, batch=3)
    assert counts is not None
    assert (counts["incidents"], counts["alerts"], counts["outbox"]) == (7, 7, 7)
    assert [v.key for v in await store.list_incidents()] == []


async def test_ids_are_not_handed_out_again(store: Store) -> None:
    """A sink remembers delivered event ids: a new event must not get a pruned one's."""
    ids = [await store.append_event("inc-x", f"e{n}", OLD) for n in range(3)]
    for event in ids:
        for sink in SINKS:
            await store.mark_delivered(sink, event)
    counts = await store.prune(CUTOFF, sinks=SINKS)
    assert counts is not None
    assert await store.append_event("inc-y", "e", NOW) > max(ids)
    assert await store.undelivered_events("slack", 10) != []


async def test_prune_with_an_incident_holding_more_alerts_than_a_batch(store: Store) -> None:
    items = [firing(f"{n:016x}", starts=OLD, key="pb/storm") for n in range(12)]
    [out, *_] = await store.ingest(items, OLD)
    inc = out.incident_ids[0]
    await store.ingest([resolved_(f"{n:016x}", starts=OLD) for n in range(12)], OLD)
    await store.set_state(inc, IncidentState.RESOLVED, OLD)
    await _newest(store)
    counts = await store.prune(CUTOFF, sinks=SINKS, batch=5)
    assert counts is not None
    assert (counts["incidents"], counts["incident_alerts"], counts["alerts"]) == (1, 12, 12)


# --- the pass on the engine's clock -------------------------------------------------------

async def test_retention_prunes_every_interval_and_counts_rows(
        open_store: OpenStore) -> None:
    store = await open_store()
    inc = await _incident(store, "a" * 16, "pb/old", T0)
    await _close(store, inc, "a" * 16, T0)
    await _newest(store)
    clock = FakeClock(T0)
    metrics = Metrics()
    retention = Retention(store, clock, metrics, retention=30 * 86400.0, interval=600.0,
                          sinks=SINKS)
    tasks = Supervisor()
    tasks.start(retention.run(), name="store-retention")
    try:
        await clock.advance(29 * 86400)              # nothing is old enough yet
        assert await store.get_incident(inc) is not None   # (delivered outbox rows go)
        await clock.advance(2 * 86400)
        for _ in range(500):                         # the pass runs on the store's threads
            if metrics.registry.get_sample_value("remediator_store_pruned_rows_total",
                                                 {"table": "incidents"}):
                break
            await asyncio.sleep(0.01)
            await clock.advance(600)
        assert await store.get_incident(inc) is None
    finally:
        await tasks.close()
    value = metrics.registry.get_sample_value
    assert value("remediator_store_pruned_rows_total", {"table": "incidents"}) == 1
    assert value("remediator_store_pruned_rows_total", {"table": "outbox"}) == 1


async def test_retention_zero_keeps_everything(store: Store) -> None:
    inc = await _incident(store, "a" * 16, "pb/old", OLD)
    await _close(store, inc, "a" * 16, OLD)
    retention = Retention(store, FakeClock(NOW), Metrics(), retention=None, interval=600.0)
    assert await retention.prune_once() is None
    assert await store.get_incident(inc) is not None


# --- backend specifics -------------------------------------------------------------------

async def test_sqlite_gives_freed_pages_back(tmp_path: Path) -> None:
    """New files are made with auto_vacuum=INCREMENTAL; ``reclaim`` shrinks the file."""
    path = tmp_path / "r.db"
    store = SqliteStore(path)
    await store.open()
    try:
        big = {"blob": "x" * 2000}
        for n in range(300):
            [out] = await store.ingest([firing(f"{n:016x}", starts=OLD, key=f"pb/{n}")], OLD)
            await store.add_timeline(out.incident_ids[0], TimelineEntry(
                at=OLD, kind="note", message="m", data=big))
            await store.set_state(out.incident_ids[0], IncidentState.RESOLVED, OLD)
        pages_before = await store._read(lambda c: c.execute("PRAGMA page_count").fetchone()[0])
        await store.prune(CUTOFF, sinks=SINKS, batch=50)
        freed = await store.reclaim()
        pages_after = await store._read(lambda c: c.execute("PRAGMA page_count").fetchone()[0])
    finally:
        await store.close()
    assert freed > 300 * 2000
    assert pages_after < pages_before / 2
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA auto_vacuum").fetchone()[0] == 2
    db.close()


async def test_postgres_one_replica_prunes_at_a_time() -> None:
    """A replica that finds the prune lock held skips its pass (None)."""
    import asyncpg  # type: ignore[import-untyped]

    from remediator.store.pg_base import PRUNE_LOCK

    url = shared_server().create_schema("prune")
    store = PostgresStore(url)
    await store.open()
    other = await asyncpg.connect(url)
    try:
        inc = await _incident(store, "a" * 16, "pb/old", OLD)
        await _close(store, inc, "a" * 16, OLD)
        await other.execute("SELECT pg_advisory_lock($1)", PRUNE_LOCK)
        assert await store.prune(CUTOFF, sinks=SINKS) is None
        assert await store.get_incident(inc) is not None
        await other.execute("SELECT pg_advisory_unlock($1)", PRUNE_LOCK)
        counts = await store.prune(CUTOFF, sinks=SINKS)
        assert counts is not None
        assert counts["incidents"] == 1
    finally:
        await other.close()
        await store.close()


@pytest.mark.parametrize("retention", ["0", "null"])
def test_retention_zero_or_null_is_forever(tmp_path: Path, retention: str) -> None:
    from remediator.settings import load_settings
    config = tmp_path / "c.yaml"
    config.write_text(f"store:\n  retention: {retention}\n")
    assert load_settings(config).store.retention is None
    assert load_settings().store.retention == 30 * 86400
