"""The SQLite store's retention role: the pruning pass and the incremental vacuum.

Methods of ``SqliteStore`` (a mixin over ``SqliteBase``). Every batch is one function
in the writer's group commit, like any other write, so it needs no lock of its own;
between batches the pass sleeps ``PAUSE`` (real) seconds, so that the intake's
writes queued meanwhile commit in a transaction of their own instead of waiting
behind a long pass. What is deleted, and what never is, is the port's contract
(``RetentionStore.prune``). ``reclaim`` gives freed pages back with ``PRAGMA
incremental_vacuum``, a bounded number a transaction; files made before auto-vacuum
was set (``SqliteBase.open``) only reuse their freed pages. Not here: when a pass runs
(``retention.Retention``), the schema (``migrations/``).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime

from remediator.ports.store import PRUNED_TABLES
from remediator.store.sqlite_base import SqliteBase, chunks, marks
from remediator.store.sqlite_intake import OPEN_SQL, ts

PAUSE = 0.005          # real seconds between two batches: other writers go first
VACUUM_PAGES = 1000    # pages given back a transaction (about 10 ms)

# The newest row of a table with an INTEGER PRIMARY KEY stays: SQLite gives the next
# row max(id) + 1, so deleting the newest would hand its id out again, and an event id
# is what a sink remembers as delivered (an id reused for a new event was skipped).
_NOT_LAST = "id < (SELECT max(id) FROM {table})"

Counts = dict[str, int]
Batch = Callable[[sqlite3.Connection], tuple[Counts, bool]]


def _incidents_batch(cutoff: str, batch: int) -> Batch:
    """Up to ``batch`` incidents closed before ``cutoff`` (fewer when they hold many
    alerts: about ``batch`` links a transaction, one incident at least), with their
    journal, approvals, sink state and links, and their alerts nobody else holds that
    resolved before ``cutoff``."""
    def run(c: sqlite3.Connection) -> tuple[Counts, bool]:
        rows = c.execute(
            "SELECT i.id, (SELECT count(*) FROM incident_alerts ia WHERE ia.incident_id = i.id) "
            f"FROM incidents i WHERE i.closed_at IS NOT NULL AND i.closed_at < ? "
            f"AND i.state NOT IN {OPEN_SQL} ORDER BY i.closed_at LIMIT ?",
            (cutoff, batch)).fetchall()
        ids: list[str] = []
        links = 0
        for incident_id, held in rows:
            if ids and links + held > batch:
                break
            ids.append(incident_id)
            links += held
        if not ids:
            return {}, True
        in_ids = marks(ids)
        alert_ids = [r[0] for r in c.execute(
            f"SELECT DISTINCT alert_id FROM incident_alerts WHERE incident_id IN ({in_ids})", ids)]
        n: Counts = {}
        for table in ("timeline", "steps", "approvals", "sink_state", "incident_alerts",
                      "evidence", "verify_polls"):
            n[table] = c.execute(f"DELETE FROM {table} WHERE incident_id IN ({in_ids})",
                                 ids).rowcount
        c.execute(f"DELETE FROM target_locks WHERE incident_id IN ({in_ids})", ids)
        n["incidents"] = c.execute(f"DELETE FROM incidents WHERE id IN ({in_ids})", ids).rowcount
        n["alerts"] = sum(c.execute(
            f"DELETE FROM alerts WHERE id IN ({marks(chunk)}) AND status = 'resolved' "
            f"AND updated_at < ? AND {_NOT_LAST.format(table='alerts')} AND NOT EXISTS "
            "(SELECT 1 FROM incident_alerts ia WHERE ia.alert_id = alerts.id)",
            (*chunk, cutoff)).rowcount
            for chunk in chunks(alert_ids))
        return n, len(rows) < batch and len(ids) == len(rows)
    return run


def _alerts_batch(cutoff: str, batch: int) -> Batch:
    """Up to ``batch`` alerts no incident holds (unmatched, or resolutions never seen
    firing) last written before ``cutoff``."""
    def run(c: sqlite3.Connection) -> tuple[Counts, bool]:
        ids = [r[0] for r in c.execute(
            "SELECT id FROM alerts a WHERE a.outcome IN ('unmatched', 'resolved') "
            f"AND a.updated_at < ? AND a.{_NOT_LAST.format(table='alerts')} "
            "AND NOT EXISTS (SELECT 1 FROM incident_alerts ia WHERE ia.alert_id = a.id) "
            "LIMIT ?", (cutoff, batch))]
        if not ids:
            return {}, True
        deleted = c.execute(f"DELETE FROM alerts WHERE id IN ({marks(ids)})", ids).rowcount
        return {"alerts": deleted}, len(ids) < batch
    return run


def _budget_batch(cutoff: str, batch: int) -> Batch:
    def run(c: sqlite3.Connection) -> tuple[Counts, bool]:
        deleted = c.execute("DELETE FROM budget WHERE id IN (SELECT id FROM budget "
                            "WHERE at < ? ORDER BY at LIMIT ?)", (cutoff, batch)).rowcount
        return {"budget": deleted}, deleted < batch
    return run


class _OutboxCursor:
    """Outbox rows delivered to every sink, in id order, a batch at a time (the cursor
    skips the rows some sink still has to deliver)."""

    def __init__(self, sinks: Sequence[str], batch: int) -> None:
        self.sinks = sorted(set(sinks))
        self.batch = batch
        self.after = 0

    def __call__(self, c: sqlite3.Connection) -> tuple[Counts, bool]:
        ids = [r[0] for r in c.execute(
            f"SELECT o.id FROM outbox o WHERE o.id > ? AND o.{_NOT_LAST.format(table='outbox')} "
            "AND (SELECT count(*) FROM deliveries d "
            f"WHERE d.event_id = o.id AND d.sink IN ({marks(self.sinks)})) = ? "
            "ORDER BY o.id LIMIT ?", (self.after, *self.sinks, len(self.sinks), self.batch))]
        if not ids:
            return {}, True
        self.after = ids[-1]
        in_ids = marks(ids)
        n = {"deliveries": c.execute(f"DELETE FROM deliveries WHERE event_id IN ({in_ids})",
                                     ids).rowcount,
             "outbox": c.execute(f"DELETE FROM outbox WHERE id IN ({in_ids})", ids).rowcount}
        return n, len(ids) < self.batch


def _vacuum_some(c: sqlite3.Connection) -> int:
    """Give back up to VACUUM_PAGES free pages (one a statement: Python's sqlite3 steps
    ``incremental_vacuum`` once per execute); the number given back."""
    if c.execute("PRAGMA auto_vacuum").fetchone()[0] != 2:
        return 0
    free = int(c.execute("PRAGMA freelist_count").fetchone()[0])
    for _ in range(min(free, VACUUM_PAGES)):
        c.execute("PRAGMA incremental_vacuum(1)")
    return free - int(c.execute("PRAGMA freelist_count").fetchone()[0])


class SqliteRetention(SqliteBase):
    """Pruning and the incremental vacuum on SQLite."""

    async def prune(self, before: datetime, *, sinks: Sequence[str],
                    batch: int = 500) -> dict[str, int] | None:
        cutoff = ts(before) or ""
        counts = dict.fromkeys(PRUNED_TABLES, 0)
        for step in (_incidents_batch(cutoff, batch), _alerts_batch(cutoff, batch),
                     _budget_batch(cutoff, batch), _OutboxCursor(sinks, batch)):
            await self._batches(step, counts)
        return counts

    async def _batches(self, step: Batch, counts: Counts) -> None:
        """``step`` in transactions of its own until it says it is done."""
        while True:
            got, done = await self._write(step)
            for table, n in got.items():
                counts[table] += n
            if done:
                return
            await asyncio.sleep(PAUSE)

    async def reclaim(self) -> int:
        page_size = await self._read(lambda c: int(c.execute("PRAGMA page_size").fetchone()[0]))
        pages = 0
        while True:
            freed = await self._write(_vacuum_some)
            pages += freed
            if freed < VACUUM_PAGES:
                return pages * page_size
            await asyncio.sleep(PAUSE)
