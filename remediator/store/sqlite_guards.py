"""The SQLite store's guard, outbox and approval roles.

Methods of ``SqliteStore`` (a mixin over ``SqliteBase``): the cooldown and budget
reads, the budget reservation, target locks and flags; the notification outbox and
sink state; approvals. Not here: incidents and the journal (``sqlite_queries.py``).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import datetime

from remediator.model.records import GLOBAL_PAUSE, ApprovalRecord, Reservation, pause_flag
from remediator.store.sqlite_base import SqliteBase, chunks, dt, marks
from remediator.store.sqlite_intake import ts


class SqliteGuards(SqliteBase):
    """Guards, outbox and approvals on SQLite."""

    # --- guards ------------------------------------------------------------------

    async def last_closed_at(self, incident_key: str, *, acted_only: bool) -> datetime | None:
        def run(c: sqlite3.Connection) -> datetime | None:
            sql = ("SELECT max(i.closed_at) FROM incidents i WHERE i.key=? "
                   "AND i.closed_at IS NOT NULL")
            if acted_only:
                sql += (" AND EXISTS (SELECT 1 FROM steps s WHERE s.incident_id=i.id "
                        "AND s.mutating AND s.intent_at IS NOT NULL)")
            row = c.execute(sql, (incident_key,)).fetchone()
            return dt(row[0])
        return await self._read(run)

    async def runs_since(self, incident_key: str, since: datetime) -> int:
        def run(c: sqlite3.Connection) -> int:
            row = c.execute(
                "SELECT count(DISTINCT i.id) FROM incidents i JOIN steps s ON s.incident_id=i.id "
                "WHERE i.key=? AND s.mutating AND s.intent_at >= ?",
                (incident_key, ts(since))).fetchone()
            return int(row[0])
        return await self._read(run)

    async def mutations_since(self, since: datetime, cluster: str = "") -> int:
        def run(c: sqlite3.Connection) -> int:
            row = c.execute("SELECT count(*) FROM budget WHERE cluster=? AND at >= ?",
                            (cluster, ts(since))).fetchone()
            return int(row[0])
        return await self._read(run)

    async def reserve_action(self, incident_id: str, step: str, now: datetime,
                             since: datetime, budget: int, pause_value: str,
                             cluster: str = "") -> Reservation:
        flag = pause_flag(cluster)

        def run(c: sqlite3.Connection) -> Reservation:
            if c.execute("SELECT 1 FROM flags WHERE name IN (?, ?)",
                         (GLOBAL_PAUSE, flag)).fetchone():
                return Reservation.PAUSED
            used = c.execute("SELECT count(*) FROM budget WHERE cluster=? AND at >= ?",
                             (cluster, ts(since))).fetchone()[0]
            if used >= budget:
                c.execute("INSERT INTO flags(name, value) VALUES (?, ?)", (flag, pause_value))
                return Reservation.TRIPPED
            c.execute("INSERT INTO budget(at, incident_id, step, cluster) VALUES (?,?,?,?)",
                      (ts(now), incident_id, step, cluster))
            return Reservation.OK
        return await self._write(run)

    async def acquire_target(self, target: str, incident_id: str) -> str | None:
        def run(c: sqlite3.Connection) -> str | None:
            c.execute("INSERT OR IGNORE INTO target_locks(target, incident_id) VALUES (?,?)",
                      (target, incident_id))
            row = c.execute("SELECT incident_id FROM target_locks WHERE target=?",
                            (target,)).fetchone()
            holder = str(row[0])
            return None if holder == incident_id else holder
        return await self._write(run)

    async def release_target(self, target: str, incident_id: str) -> None:
        await self._write(lambda c: c.execute(
            "DELETE FROM target_locks WHERE target=? AND incident_id=?", (target, incident_id)))

    async def get_flag(self, name: str) -> str | None:
        def run(c: sqlite3.Connection) -> str | None:
            row = c.execute("SELECT value FROM flags WHERE name=?", (name,)).fetchone()
            return str(row[0]) if row else None
        return await self._read(run)

    async def set_flag(self, name: str, value: str | None) -> None:
        def run(c: sqlite3.Connection) -> None:
            if value is None:
                c.execute("DELETE FROM flags WHERE name=?", (name,))
            else:
                c.execute("INSERT INTO flags(name, value) VALUES (?,?) "
                          "ON CONFLICT(name) DO UPDATE SET value=excluded.value", (name, value))
        await self._write(run)

    # --- outbox and sink state -----------------------------------------------------

    async def append_event(self, incident_id: str, payload: str, now: datetime) -> int:
        def run(c: sqlite3.Connection) -> int:
            cur = c.execute("INSERT INTO outbox(incident_id, payload, created_at) VALUES (?,?,?)",
                            (incident_id, payload, ts(now)))
            return int(cur.lastrowid or 0)
        return await self._write(run)

    async def undelivered_events(self, sink: str, limit: int) -> list[tuple[int, str, str]]:
        def run(c: sqlite3.Connection) -> list[tuple[int, str, str]]:
            rows = c.execute(
                "SELECT o.id, o.incident_id, o.payload FROM outbox o WHERE NOT EXISTS "
                "(SELECT 1 FROM deliveries d WHERE d.event_id=o.id AND d.sink=?) "
                "ORDER BY o.id LIMIT ?", (sink, limit)).fetchall()
            return [(int(r[0]), str(r[1]), str(r[2])) for r in rows]
        return await self._read(run)

    async def mark_delivered(self, sink: str, event_id: int) -> None:
        await self._write(lambda c: c.execute(
            "INSERT OR IGNORE INTO deliveries(event_id, sink) VALUES (?,?)", (event_id, sink)))

    async def sink_get(self, incident_id: str, key: str) -> str | None:
        def run(c: sqlite3.Connection) -> str | None:
            row = c.execute("SELECT value FROM sink_state WHERE incident_id=? AND key=?",
                            (incident_id, key)).fetchone()
            return str(row[0]) if row else None
        return await self._read(run)

    async def sink_set(self, incident_id: str, key: str, value: str) -> None:
        await self._write(lambda c: c.execute(
            "INSERT INTO sink_state(incident_id, key, value) VALUES (?,?,?) "
            "ON CONFLICT(incident_id, key) DO UPDATE SET value=excluded.value",
            (incident_id, key, value)))

    # --- approvals -----------------------------------------------------------------

    async def create_approval(self, record: ApprovalRecord) -> None:
        await self._write(lambda c: c.execute(
            "INSERT OR IGNORE INTO approvals(id, incident_id, step_index, requested_at, "
            "expires_at, approvers) VALUES (?,?,?,?,?,?)",
            (record.id, record.incident_id, record.step_index, ts(record.requested_at),
             ts(record.expires_at), json.dumps(list(record.approvers)))))

    async def get_approval(self, approval_id: str) -> ApprovalRecord | None:
        def run(c: sqlite3.Connection) -> ApprovalRecord | None:
            row = c.execute("SELECT * FROM approvals WHERE id=?", (approval_id,)).fetchone()
            return _approval(row) if row else None
        return await self._read(run)

    async def get_approvals(self, approval_ids: Sequence[str]) -> dict[str, ApprovalRecord]:
        def run(c: sqlite3.Connection) -> dict[str, ApprovalRecord]:
            found: dict[str, ApprovalRecord] = {}
            for chunk in chunks(approval_ids):
                for row in c.execute("SELECT * FROM approvals WHERE id IN "
                                     f"({marks(chunk)})", chunk):
                    found[row["id"]] = _approval(row)
            return found
        return await self._read(run)

    async def pending_approval(self, incident_id: str, step_index: int) -> ApprovalRecord | None:
        def run(c: sqlite3.Connection) -> ApprovalRecord | None:
            row = c.execute("SELECT * FROM approvals WHERE incident_id=? AND step_index=? "
                            "ORDER BY requested_at DESC LIMIT 1",
                            (incident_id, step_index)).fetchone()
            return _approval(row) if row else None
        return await self._read(run)

    async def decide_approval(self, approval_id: str, decision: str, by: str,
                              at: datetime) -> bool:
        def run(c: sqlite3.Connection) -> bool:
            cur = c.execute("UPDATE approvals SET decision=?, decided_by=?, decided_at=? "
                            "WHERE id=? AND decision IS NULL",
                            (decision, by, ts(at), approval_id))
            return cur.rowcount == 1
        return await self._write(run)


def _approval(row: sqlite3.Row) -> ApprovalRecord:
    return ApprovalRecord(
        id=row["id"], incident_id=row["incident_id"], step_index=row["step_index"],
        requested_at=datetime.fromisoformat(row["requested_at"]),
        expires_at=datetime.fromisoformat(row["expires_at"]),
        approvers=tuple(json.loads(row["approvers"])), decision=row["decision"],
        decided_by=row["decided_by"], decided_at=dt(row["decided_at"]))
