"""The PostgreSQL store's guard, outbox and approval roles.

Methods of ``PostgresStore`` (a mixin over ``PgBase``). The action budget (per
cluster) is counted under ``pg_advisory_xact_lock(BUDGET_LOCK)``; the per-target lock is a
primary key; cooldowns read the shared journal. Deciding an approval notifies the
wake-up channel in the same statement, so that the replica waiting on it wakes at
once. Not here: incidents and the journal (``pg_queries.py``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from remediator.model.records import GLOBAL_PAUSE, ApprovalRecord, Reservation, pause_flag
from remediator.store.pg_base import ATTEMPTS, BUDGET_LOCK, Conn, PgBase


class PgGuards(PgBase):
    """Guards, outbox and approvals on PostgreSQL."""

    # --- guards ------------------------------------------------------------------

    async def last_closed_at(self, incident_key: str, *, acted_only: bool) -> datetime | None:
        sql = "SELECT max(i.closed_at) FROM incidents i WHERE i.key=$1 AND i.closed_at IS NOT NULL"
        if acted_only:
            sql += (" AND EXISTS (SELECT 1 FROM steps s WHERE s.incident_id=i.id "
                    "AND s.mutating AND s.intent_at IS NOT NULL)")
        value: datetime | None = await self._fetchval(sql, incident_key)
        return value

    async def runs_since(self, incident_key: str, since: datetime) -> int:
        return int(await self._fetchval(
            "SELECT count(DISTINCT i.id) FROM incidents i JOIN steps s ON s.incident_id=i.id "
            "WHERE i.key=$1 AND s.mutating AND s.intent_at >= $2", incident_key, since))

    async def mutations_since(self, since: datetime, cluster: str = "") -> int:
        return int(await self._fetchval(
            "SELECT count(*) FROM budget WHERE cluster=$1 AND at >= $2", cluster, since))

    async def reserve_action(self, incident_id: str, step: str, now: datetime,
                             since: datetime, budget: int, pause_value: str,
                             cluster: str = "") -> Reservation:
        flag = pause_flag(cluster)

        async def run(c: Conn) -> Reservation:
            # one reservation at a time, across every replica
            await c.execute("SELECT pg_advisory_xact_lock($1)", BUDGET_LOCK)
            if await c.fetchval("SELECT 1 FROM flags WHERE name IN ($1, $2)",
                                GLOBAL_PAUSE, flag):
                return Reservation.PAUSED
            used = await c.fetchval(
                "SELECT count(*) FROM budget WHERE cluster=$1 AND at >= $2", cluster, since)
            if used >= budget:
                await c.execute("INSERT INTO flags(name, value) VALUES ($1, $2) "
                                "ON CONFLICT (name) DO NOTHING", flag, pause_value)
                return Reservation.TRIPPED
            await c.execute("INSERT INTO budget(at, incident_id, step, cluster) "
                            "VALUES ($1,$2,$3,$4)", now, incident_id, step, cluster)
            return Reservation.OK
        return await self._tx(run)

    async def acquire_target(self, target: str, incident_id: str) -> str | None:
        for _ in range(ATTEMPTS):
            got = await self._fetchval(
                "INSERT INTO target_locks(target, incident_id) VALUES ($1,$2) "
                "ON CONFLICT (target) DO NOTHING RETURNING incident_id", target, incident_id)
            if got is not None:
                return None
            holder = await self._fetchval("SELECT incident_id FROM target_locks WHERE target=$1",
                                          target)
            if holder is not None:           # else released in between: try again
                return None if holder == incident_id else str(holder)
        raise RuntimeError(f"could not read the lock of {target}")

    async def release_target(self, target: str, incident_id: str) -> None:
        await self._execute("DELETE FROM target_locks WHERE target=$1 AND incident_id=$2",
                            target, incident_id)

    async def get_flag(self, name: str) -> str | None:
        value = await self._fetchval("SELECT value FROM flags WHERE name=$1", name)
        return str(value) if value is not None else None

    async def set_flag(self, name: str, value: str | None) -> None:
        if value is None:
            await self._execute("DELETE FROM flags WHERE name=$1", name)
        else:
            await self._execute("INSERT INTO flags(name, value) VALUES ($1,$2) "
                                "ON CONFLICT (name) DO UPDATE SET value=excluded.value",
                                name, value)

    # --- outbox and sink state -----------------------------------------------------

    async def append_event(self, incident_id: str, payload: str, now: datetime) -> int:
        return int(await self._fetchval(
            "INSERT INTO outbox(incident_id, payload, created_at) VALUES ($1,$2,$3) RETURNING id",
            incident_id, payload, now))

    async def undelivered_events(self, sink: str, limit: int) -> list[tuple[int, str, str]]:
        rows = await self._fetch(
            "SELECT o.id, o.incident_id, o.payload FROM outbox o WHERE NOT EXISTS "
            "(SELECT 1 FROM deliveries d WHERE d.event_id=o.id AND d.sink=$1) "
            "ORDER BY o.id LIMIT $2", sink, limit)
        return [(int(r[0]), str(r[1]), str(r[2])) for r in rows]

    async def mark_delivered(self, sink: str, event_id: int) -> None:
        await self._execute("INSERT INTO deliveries(event_id, sink) VALUES ($1,$2) "
                            "ON CONFLICT DO NOTHING", event_id, sink)

    async def sink_get(self, incident_id: str, key: str) -> str | None:
        value = await self._fetchval("SELECT value FROM sink_state WHERE incident_id=$1 "
                                     "AND key=$2", incident_id, key)
        return str(value) if value is not None else None

    async def sink_set(self, incident_id: str, key: str, value: str) -> None:
        await self._execute("INSERT INTO sink_state(incident_id, key, value) VALUES ($1,$2,$3) "
                            "ON CONFLICT (incident_id, key) DO UPDATE SET value=excluded.value",
                            incident_id, key, value)

    # --- approvals -----------------------------------------------------------------

    async def create_approval(self, record: ApprovalRecord) -> None:
        await self._execute(
            "INSERT INTO approvals(id, incident_id, step_index, requested_at, expires_at, "
            "approvers) VALUES ($1,$2,$3,$4,$5,$6) ON CONFLICT (id) DO NOTHING",
            record.id, record.incident_id, record.step_index, record.requested_at,
            record.expires_at, json.dumps(list(record.approvers)))

    async def get_approval(self, approval_id: str) -> ApprovalRecord | None:
        rows = await self._fetch("SELECT * FROM approvals WHERE id=$1", approval_id)
        return _approval(rows[0]) if rows else None

    async def get_approvals(self, approval_ids: Sequence[str]) -> dict[str, ApprovalRecord]:
        return {r["id"]: _approval(r) for r in await self._fetch(
            "SELECT * FROM approvals WHERE id = ANY($1::text[])", list(approval_ids))}

    async def pending_approval(self, incident_id: str, step_index: int) -> ApprovalRecord | None:
        rows = await self._fetch("SELECT * FROM approvals WHERE incident_id=$1 AND "
                                 "step_index=$2 ORDER BY requested_at DESC LIMIT 1",
                                 incident_id, step_index)
        return _approval(rows[0]) if rows else None

    async def decide_approval(self, approval_id: str, decision: str, by: str,
                              at: datetime) -> bool:
        """Also notifies the wake-up channel with the approval's incident (same
        statement, so only when the decision is recorded)."""
        rows = await self._fetch(
            "WITH d AS (UPDATE approvals SET decision=$1, decided_by=$2, decided_at=$3 "
            "WHERE id=$4 AND decision IS NULL RETURNING incident_id) "
            "SELECT incident_id, pg_notify($5, incident_id)::text FROM d",
            decision, by, at, approval_id, self.channel)
        return bool(rows)


def _approval(row: Any) -> ApprovalRecord:
    return ApprovalRecord(
        id=row["id"], incident_id=row["incident_id"], step_index=row["step_index"],
        requested_at=row["requested_at"], expires_at=row["expires_at"],
        approvers=tuple(json.loads(row["approvers"])), decision=row["decision"],
        decided_by=row["decided_by"], decided_at=row["decided_at"])
