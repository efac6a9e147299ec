"""The PostgreSQL store's retention role: the pruning pass, run by one replica at a time.

Methods of ``PostgresStore`` (a mixin over ``PgBase``). A pass holds the session
advisory lock ``PRUNE_LOCK`` on one pooled connection from start to end; a replica
that does not get it skips its pass (``prune`` returns None), and a replica that
dies mid-pass drops the lock with its connection. Each batch is its own transaction
(run again after a deadlock with a writer). The rows deleted, and those never
deleted, are the port's contract (``RetentionStore.prune``); the SQL is SQLite's
(``sqlite_retention.py``) in this dialect. ``reclaim`` does nothing: autovacuum
makes deleted rows' space reusable, and giving it back to the file system
(``VACUUM FULL``) would lock the tables. Not here: when a pass runs
(``retention.Retention``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

from remediator.ports.store import PRUNED_TABLES
from remediator.store.pg_base import ATTEMPTS, OPEN_STATES, PRUNE_LOCK, RETRYABLE, Conn, PgBase

Counts = dict[str, int]
Batch = Callable[[Conn], Awaitable[tuple[Counts, bool]]]


def _rows(status: str) -> int:
    """The row count of a command status (``DELETE 12``)."""
    return int(status.rsplit(" ", 1)[-1])


def _incidents_batch(cutoff: datetime, batch: int) -> Batch:
    async def run(c: Conn) -> tuple[Counts, bool]:
        rows = await c.fetch(
            "SELECT i.id, (SELECT count(*) FROM incident_alerts ia WHERE ia.incident_id = i.id) "
            "AS held FROM incidents i WHERE i.closed_at IS NOT NULL AND i.closed_at < $1 "
            "AND NOT (i.state = ANY($2::text[])) ORDER BY i.closed_at LIMIT $3",
            cutoff, list(OPEN_STATES), batch)
        ids: list[str] = []
        links = 0
        for row in rows:
            if ids and links + row["held"] > batch:
                break
            ids.append(row["id"])
            links += row["held"]
        if not ids:
            return {}, True
        alert_ids = [r[0] for r in await c.fetch(
            "SELECT DISTINCT alert_id FROM incident_alerts WHERE incident_id = ANY($1::text[])",
            ids)]
        n: Counts = {}
        for table in ("timeline", "steps", "approvals", "sink_state", "incident_alerts",
                      "evidence", "verify_polls"):
            n[table] = _rows(await c.execute(
                f"DELETE FROM {table} WHERE incident_id = ANY($1::text[])", ids))
        await c.execute("DELETE FROM target_locks WHERE incident_id = ANY($1::text[])", ids)
        n["incidents"] = _rows(await c.execute(
            "DELETE FROM incidents WHERE id = ANY($1::text[])", ids))
        n["alerts"] = _rows(await c.execute(
            "DELETE FROM alerts a WHERE a.id = ANY($1::bigint[]) AND a.status = 'resolved' "
            "AND a.updated_at < $2 AND NOT EXISTS (SELECT 1 FROM incident_alerts ia "
            "WHERE ia.alert_id = a.id)", alert_ids, cutoff))
        return n, len(rows) < batch and len(ids) == len(rows)
    return run


def _alerts_batch(cutoff: datetime, batch: int) -> Batch:
    async def run(c: Conn) -> tuple[Counts, bool]:
        deleted = _rows(await c.execute(
            "DELETE FROM alerts WHERE id IN (SELECT a.id FROM alerts a "
            "WHERE a.outcome IN ('unmatched', 'resolved') AND a.updated_at < $1 "
            "AND NOT EXISTS (SELECT 1 FROM incident_alerts ia WHERE ia.alert_id = a.id) "
            "LIMIT $2)", cutoff, batch))
        return {"alerts": deleted}, deleted < batch
    return run


def _budget_batch(cutoff: datetime, batch: int) -> Batch:
    async def run(c: Conn) -> tuple[Counts, bool]:
        deleted = _rows(await c.execute(
            "DELETE FROM budget WHERE id IN (SELECT id FROM budget WHERE at < $1 "
            "ORDER BY at LIMIT $2)", cutoff, batch))
        return {"budget": deleted}, deleted < batch
    return run


class _OutboxCursor:
    """Outbox rows delivered to every sink, in id order, a batch at a time."""

    def __init__(self, sinks: Sequence[str], batch: int) -> None:
        self.sinks = sorted(set(sinks))
        self.batch = batch
        self.after = 0

    async def __call__(self, c: Conn) -> tuple[Counts, bool]:
        ids = [r[0] for r in await c.fetch(
            "SELECT o.id FROM outbox o WHERE o.id > $1 AND (SELECT count(*) FROM deliveries d "
            "WHERE d.event_id = o.id AND d.sink = ANY($2::text[])) = $3 ORDER BY o.id LIMIT $4",
            self.after, self.sinks, len(self.sinks), self.batch)]
        if not ids:
            return {}, True
        self.after = ids[-1]
        n = {"deliveries": _rows(await c.execute(
                "DELETE FROM deliveries WHERE event_id = ANY($1::bigint[])", ids)),
             "outbox": _rows(await c.execute(
                 "DELETE FROM outbox WHERE id = ANY($1::bigint[])", ids))}
        return n, len(ids) < self.batch


class PgRetention(PgBase):
    """Pruning on PostgreSQL."""

    async def prune(self, before: datetime, *, sinks: Sequence[str],
                    batch: int = 500) -> dict[str, int] | None:
        if self._closed or self._pool is None:
            raise RuntimeError("store is closed")
        async with self._pool.acquire() as conn:
            if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", PRUNE_LOCK):
                return None                    # another replica is pruning
            try:
                counts = dict.fromkeys(PRUNED_TABLES, 0)
                for step in (_incidents_batch(before, batch), _alerts_batch(before, batch),
                             _budget_batch(before, batch), _OutboxCursor(sinks, batch)):
                    await _batches(conn, step, counts)
                return counts
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", PRUNE_LOCK)

    async def reclaim(self) -> int:
        return 0


async def _batches(conn: Conn, step: Batch, counts: Counts) -> None:
    """``step`` in transactions of its own until it says it is done."""
    while True:
        for attempt in range(ATTEMPTS):
            try:
                async with conn.transaction():
                    got, done = await step(conn)
                break
            except RETRYABLE:
                if attempt == ATTEMPTS - 1:
                    raise
        for table, n in got.items():
            counts[table] += n
        if done:
            return
        await asyncio.sleep(0)
