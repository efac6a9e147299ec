"""The SQLite store's chain timers (``ports.store.TimerStore``): one process uses the
file, so a claim is a plain update in the single writer's transaction."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta

from remediator.model.records import ChainTimer
from remediator.store.sqlite_base import SqliteBase, dt
from remediator.store.sqlite_intake import ts

_COLUMNS = "incident_id, policy, level, round, step, level_at, due_at"


def _timer(row: sqlite3.Row | tuple[object, ...]) -> ChainTimer:
    level_at, due_at = dt(str(row[5])), dt(str(row[6]))
    assert level_at is not None
    assert due_at is not None
    return ChainTimer(str(row[0]), str(row[1]), int(str(row[2])), int(str(row[3])),
                      int(str(row[4])), level_at, due_at)


class SqliteTimers(SqliteBase):
    """Chain timers on SQLite."""

    async def set_timer(self, timer: ChainTimer) -> None:
        t = timer
        await self._write(lambda c: c.execute(
            f"INSERT OR REPLACE INTO chain_timers({_COLUMNS}, owner, lease_until) "
            "VALUES (?,?,?,?,?,?,?,NULL,NULL)",
            (t.incident_id, t.policy, t.level, t.round, t.step, ts(t.level_at), ts(t.due_at))))

    async def get_timer(self, incident_id: str) -> ChainTimer | None:
        def run(c: sqlite3.Connection) -> ChainTimer | None:
            row = c.execute(f"SELECT {_COLUMNS} FROM chain_timers WHERE incident_id=?",
                            (incident_id,)).fetchone()
            return _timer(row) if row else None
        return await self._read(run)

    async def claim_timers(self, owner: str, now: datetime, lease: float,
                           limit: int) -> list[ChainTimer]:
        def run(c: sqlite3.Connection) -> list[ChainTimer]:
            rows = c.execute(
                f"SELECT {_COLUMNS} FROM chain_timers WHERE due_at <= ? AND (owner IS NULL "
                "OR lease_until < ?) ORDER BY due_at, incident_id LIMIT ?",
                (ts(now), ts(now), limit)).fetchall()
            until = ts(now + timedelta(seconds=lease))
            c.executemany("UPDATE chain_timers SET owner=?, lease_until=? WHERE incident_id=?",
                          [(owner, until, r[0]) for r in rows])
            return [_timer(r) for r in rows]
        return await self._write(run)

    async def advance_timer(self, timer: ChainTimer, owner: str,
                            after: ChainTimer | None) -> bool:
        def run(c: sqlite3.Connection) -> bool:
            where = ("WHERE incident_id=? AND owner=? AND round=? AND level=? AND step=?",
                     (timer.incident_id, owner, timer.round, timer.level, timer.step))
            if after is None:
                cur = c.execute("DELETE FROM chain_timers " + where[0], where[1])
            else:
                a = after
                cur = c.execute(
                    "UPDATE chain_timers SET level=?, round=?, step=?, level_at=?, due_at=?, "
                    "owner=NULL, lease_until=NULL " + where[0],
                    (a.level, a.round, a.step, ts(a.level_at), ts(a.due_at), *where[1]))
            return cur.rowcount == 1
        return await self._write(run)

    async def drop_timer(self, incident_id: str) -> None:
        await self._write(lambda c: c.execute("DELETE FROM chain_timers WHERE incident_id=?",
                                              (incident_id,)))
