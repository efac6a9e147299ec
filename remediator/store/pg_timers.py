"""The PostgreSQL store's chain timers (``ports.store.TimerStore``): due timers are
claimed with ``FOR UPDATE SKIP LOCKED`` and a lease, and moved on with a
compare-and-set, so that with several replicas each timer fires on exactly one."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from remediator.model.records import ChainTimer
from remediator.store.pg_base import PgBase

_COLUMNS = "incident_id, policy, level, round, step, level_at, due_at"


def _timer(row: Any) -> ChainTimer:
    return ChainTimer(row[0], row[1], row[2], row[3], row[4], row[5], row[6])


class PgTimers(PgBase):
    """Chain timers on PostgreSQL."""

    async def set_timer(self, timer: ChainTimer) -> None:
        t = timer
        await self._execute(
            f"INSERT INTO chain_timers({_COLUMNS}, owner, lease_until) "
            "VALUES ($1,$2,$3,$4,$5,$6,$7,NULL,NULL) ON CONFLICT (incident_id) DO UPDATE SET "
            "policy=EXCLUDED.policy, level=EXCLUDED.level, round=EXCLUDED.round, "
            "step=EXCLUDED.step, level_at=EXCLUDED.level_at, due_at=EXCLUDED.due_at, "
            "owner=NULL, lease_until=NULL",
            t.incident_id, t.policy, t.level, t.round, t.step, t.level_at, t.due_at)

    async def get_timer(self, incident_id: str) -> ChainTimer | None:
        rows = await self._fetch(f"SELECT {_COLUMNS} FROM chain_timers WHERE incident_id=$1",
                                 incident_id)
        return _timer(rows[0]) if rows else None

    async def claim_timers(self, owner: str, now: datetime, lease: float,
                           limit: int) -> list[ChainTimer]:
        rows = await self._fetch(
            "WITH due AS (SELECT incident_id FROM chain_timers WHERE due_at <= $3 AND "
            "(owner IS NULL OR lease_until < $3) ORDER BY due_at, incident_id "
            "LIMIT $4 FOR UPDATE SKIP LOCKED) "
            "UPDATE chain_timers t SET owner=$1, lease_until=$2 FROM due "
            "WHERE t.incident_id = due.incident_id RETURNING "
            + ", ".join(f"t.{c.strip()}" for c in _COLUMNS.split(",")),
            owner, now + timedelta(seconds=lease), now, limit)
        return sorted((_timer(r) for r in rows), key=lambda t: (t.due_at, t.incident_id))

    async def advance_timer(self, timer: ChainTimer, owner: str,
                            after: ChainTimer | None) -> bool:
        t = timer
        if after is None:
            done = await self._execute(
                "DELETE FROM chain_timers WHERE incident_id=$1 AND owner=$2 AND round=$3 "
                "AND level=$4 AND step=$5", t.incident_id, owner, t.round, t.level, t.step)
        else:
            a = after
            done = await self._execute(
                "UPDATE chain_timers SET level=$6, round=$7, step=$8, level_at=$9, due_at=$10, "
                "owner=NULL, lease_until=NULL WHERE incident_id=$1 AND owner=$2 AND round=$3 "
                "AND level=$4 AND step=$5", t.incident_id, owner, t.round, t.level, t.step,
                a.level, a.round, a.step, a.level_at, a.due_at)
        return done.endswith(" 1")

    async def drop_timer(self, incident_id: str) -> None:
        await self._execute("DELETE FROM chain_timers WHERE incident_id=$1", incident_id)
