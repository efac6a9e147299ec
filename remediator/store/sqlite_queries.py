"""The SQLite store's incident roles: reading incidents and alerts, leases, the journal.

Methods of ``SqliteStore`` (a mixin over ``SqliteBase``): reads on the reader
connection, writes as functions in the writer's group commit. Not here: intake
(``sqlite.py``, ``intake.py``), guards, outbox and approvals (``sqlite_guards.py``).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from remediator.model.incident import (
    EvidenceItem,
    IncidentState,
    IncidentSummary,
    IncidentView,
    StepRecord,
    TargetRef,
    TimelineEntry,
    VerifyPoll,
)
from remediator.model.records import attach_polls, count_alerts, poll_slot
from remediator.ports.store import ASCII_LOWER, PageKey
from remediator.store.gather import POLL_GATHER, Gathered
from remediator.store.sqlite_base import SqliteBase, chunks, dt, marks
from remediator.store.sqlite_intake import ACTIVE_SQL, OPEN_SQL, ts

#: A poll to journal: incident, phase, step, slot, number, record, updated_at
PollRow = tuple[str, str, int, int, int, str, str]


class SqliteIncidents(SqliteBase):
    """Incidents, leases and the journal on SQLite."""

    # --- incidents ---------------------------------------------------------------

    async def active_incident_ids(self) -> list[str]:
        """Incidents not yet closed (escalated ones included: they close when resolved)."""
        return await self._read(lambda c: [r[0] for r in c.execute(
            f"SELECT id FROM incidents WHERE state IN {OPEN_SQL} ORDER BY created_at, id")])

    async def count_open_incidents(self) -> int:
        return await self._read(lambda c: int(c.execute(
            f"SELECT count(*) FROM incidents WHERE state IN {OPEN_SQL}").fetchone()[0]))

    async def claim(self, incident_id: str, owner: str, now: datetime, lease: float) -> bool:
        until = ts(now + timedelta(seconds=lease))

        def run(c: sqlite3.Connection) -> bool:
            cur = c.execute(
                f"UPDATE incidents SET owner=?, lease_until=? WHERE id=? AND state IN {OPEN_SQL} "
                "AND (owner IS NULL OR owner=? OR lease_until < ?)",
                (owner, until, incident_id, owner, ts(now)))
            return cur.rowcount == 1
        return await self._write(run)

    async def claim_batch(self, owner: str, now: datetime, lease: float,
                          limit: int) -> list[str]:
        until = ts(now + timedelta(seconds=lease))

        def run(c: sqlite3.Connection) -> list[str]:
            ids = [r[0] for r in c.execute(
                f"SELECT id FROM incidents i WHERE (state IN {ACTIVE_SQL} "
                "OR (state = 'escalated' AND NOT EXISTS (SELECT 1 FROM incident_alerts ia "
                "JOIN alerts a ON a.id = ia.alert_id WHERE ia.incident_id = i.id "
                "AND a.status = 'firing'))) "
                "AND (owner IS NULL OR lease_until < ?) ORDER BY created_at, id LIMIT ?",
                (ts(now), limit))]
            for incident_id in ids:
                c.execute("UPDATE incidents SET owner=?, lease_until=? WHERE id=?",
                          (owner, until, incident_id))
            return ids
        return await self._write(run)

    async def claim_sink(self, sink: str, owner: str, now: datetime, lease: float) -> bool:
        return True     # one process: it always delivers

    async def release(self, incident_id: str, owner: str) -> None:
        await self._write(lambda c: c.execute(
            "UPDATE incidents SET owner=NULL, lease_until=NULL WHERE id=? AND owner=?",
            (incident_id, owner)))

    async def release_all(self) -> None:
        await self._write(lambda c: c.execute(
            "UPDATE incidents SET owner=NULL, lease_until=NULL WHERE owner IS NOT NULL"))

    async def renew_leases(self, owner: str, incident_ids: Sequence[str], now: datetime,
                           lease: float) -> set[str]:
        until = ts(now + timedelta(seconds=lease))

        def run(c: sqlite3.Connection) -> set[str]:
            held: set[str] = set()
            for chunk in chunks(incident_ids):
                held.update(r[0] for r in c.execute(
                    f"UPDATE incidents SET lease_until=? WHERE owner=? AND state IN {OPEN_SQL} "
                    f"AND id IN ({marks(chunk)}) RETURNING id",
                    (until, owner, *chunk)))
            return held
        return await self._write(run)

    async def release_leases(self, owner: str, incident_ids: Sequence[str]) -> None:
        def run(c: sqlite3.Connection) -> None:
            for chunk in chunks(incident_ids):
                c.execute("UPDATE incidents SET owner=NULL, lease_until=NULL WHERE owner=? "
                          f"AND id IN ({marks(chunk)})", (owner, *chunk))
        await self._write(run)

    async def get_incident(self, incident_id: str, *,
                           alert_limit: int | None = None) -> IncidentView | None:
        def run(c: sqlite3.Connection) -> IncidentView | None:
            # one snapshot: the row, its alerts, steps, polls and timeline as of one commit
            # (else a timeline note could be read without the context written with it)
            c.execute("BEGIN")
            try:
                return self._view(c, incident_id, full=True, alert_limit=alert_limit)
            finally:
                c.execute("ROLLBACK")
        return await self._read(run)

    def _view(self, c: sqlite3.Connection, incident_id: str, *, full: bool,
              alert_limit: int | None = None) -> IncidentView | None:
        row = c.execute("SELECT * FROM incidents WHERE id=?", (incident_id,)).fetchone()
        if row is None:
            return None
        view = IncidentView(
            id=row["id"], key=row["key"], playbook=row["playbook"],
            target=TargetRef.model_validate_json(row["target"]) if row["target"] else None,
            state=IncidentState(row["state"]), dry_run=bool(row["dry_run"]),
            created_at=dt(row["created_at"]), updated_at=dt(row["updated_at"]),
            closed_at=dt(row["closed_at"]), first_alert_at=dt(row["first_alert_at"]),
            context=json.loads(row["context"]), notify=json.loads(row["notify"]),
            summary=row["summary"])
        alerts = c.execute(
            "SELECT a.* FROM incident_alerts ia JOIN alerts a ON a.id = ia.alert_id "
            "WHERE ia.incident_id=? ORDER BY a.id LIMIT ?",
            (incident_id, -1 if alert_limit is None else alert_limit)).fetchall()
        view.alerts = [_alert_dict(a) for a in alerts]
        if alert_limit is None or len(alerts) < alert_limit:
            count_alerts(view)
        else:
            total, firing = c.execute(
                "SELECT count(*), coalesce(sum(a.status = 'firing'), 0) "
                "FROM incident_alerts ia JOIN alerts a ON a.id = ia.alert_id "
                "WHERE ia.incident_id=?", (incident_id,)).fetchone()
            view.alert_count, view.firing_count = int(total), int(firing)
        if full:
            steps = [(s["phase"], StepRecord.model_validate_json(s["record"])) for s in c.execute(
                "SELECT phase, record FROM steps WHERE incident_id=? AND phase IN "
                "('ladder', 'escalate') ORDER BY phase DESC, idx", (incident_id,))]
            attach_polls(steps, c.execute(
                "SELECT phase, idx, n, record FROM verify_polls WHERE incident_id=? AND phase "
                "IN ('ladder', 'escalate') ORDER BY phase, idx, n", (incident_id,)))
            view.steps = [rec for _, rec in steps]
            view.timeline = [
                TimelineEntry(at=dt(t["at"]), kind=t["kind"], message=t["message"],
                              data=json.loads(t["data"]))
                for t in c.execute("SELECT * FROM timeline WHERE incident_id=? ORDER BY id",
                                   (incident_id,))]
        return view

    async def list_incidents(self, *, state: str | None = None,
                             limit: int = 100) -> list[IncidentView]:
        def run(c: sqlite3.Connection) -> list[IncidentView]:
            if state:
                rows = c.execute("SELECT id FROM incidents WHERE state=? "
                                 "ORDER BY created_at DESC, id LIMIT ?", (state, limit))
            else:
                rows = c.execute("SELECT id FROM incidents ORDER BY created_at DESC, id LIMIT ?",
                                 (limit,))
            views = [self._view(c, r[0], full=False) for r in rows.fetchall()]
            return [v for v in views if v is not None]
        return await self._read(run)

    async def incident_page(self, *, state: str | None = None, playbook: str | None = None,
                            after: PageKey | None = None, limit: int = 100,
                            namespace: str | None = None, text: str | None = None
                            ) -> tuple[list[IncidentSummary], PageKey | None]:
        where: list[str] = []
        args: list[Any] = []
        if namespace:
            where.append("json_extract(target, '$.namespace')=?")
            args.append(namespace)
        if text:                  # SQLite's lower() folds ASCII letters only, as wanted
            where.append(f"instr(lower({_HAY}), ?) > 0")
            args.append(text.translate(ASCII_LOWER))
        if state:
            where.append("state=?")
            args.append(state)
        if playbook:
            where.append("playbook=?")
            args.append(playbook)
        if after is not None:     # created_at is stored as ts() writes it: compare so
            where.append("(created_at, id) < (?, ?)")
            args += [ts(after[0]), after[1]]
        sql = (f"SELECT {_SUMMARY_COLUMNS} FROM incidents "
               + (f"WHERE {' AND '.join(where)} " if where else "")
               + "ORDER BY created_at DESC, id DESC LIMIT ?")

        def run(c: sqlite3.Connection) -> tuple[list[IncidentSummary], PageKey | None]:
            rows = c.execute(sql, (*args, limit + 1)).fetchall()
            more = len(rows) > limit
            rows = rows[:limit]
            counts: dict[str, tuple[int, int]] = {}
            if rows:
                in_rows = marks(rows)
                counts = {r[0]: (int(r[1]), int(r[2])) for r in c.execute(
                    "SELECT ia.incident_id, count(*), coalesce(sum(a.status = 'firing'), 0) "
                    "FROM incident_alerts ia JOIN alerts a ON a.id = ia.alert_id "
                    f"WHERE ia.incident_id IN ({in_rows}) GROUP BY ia.incident_id",
                    [r["id"] for r in rows])}
            page = [_summary(r, *counts.get(r["id"], (0, 0))) for r in rows]
            return page, ((page[-1].created_at, page[-1].id) if more else None)
        return await self._read(run)

    async def firing_alert_count(self, incident_id: str) -> int:
        def run(c: sqlite3.Connection) -> int:
            row = c.execute(
                "SELECT count(*) FROM incident_alerts ia JOIN alerts a ON a.id = ia.alert_id "
                "WHERE ia.incident_id=? AND a.status='firing'", (incident_id,)).fetchone()
            return int(row[0])
        return await self._read(run)

    async def firing_alert_counts(self, incident_ids: Sequence[str]) -> dict[str, int]:
        def run(c: sqlite3.Connection) -> dict[str, int]:
            counts = dict.fromkeys(incident_ids, 0)
            for chunk in chunks(incident_ids):
                counts.update(c.execute(
                    "SELECT ia.incident_id, count(*) FROM incident_alerts ia "
                    "JOIN alerts a ON a.id = ia.alert_id WHERE a.status='firing' "
                    f"AND ia.incident_id IN ({marks(chunk)}) "
                    "GROUP BY ia.incident_id", chunk))
            return counts
        return await self._read(run)

    async def firing_fingerprints(self, incident_id: str) -> list[str]:
        return await self._read(lambda c: [r[0] for r in c.execute(
            "SELECT DISTINCT a.fingerprint FROM incident_alerts ia "
            "JOIN alerts a ON a.id = ia.alert_id WHERE ia.incident_id=? AND a.status='firing' "
            "ORDER BY a.fingerprint", (incident_id,))])

    # set_state, merge_context, save_step and add_timeline are journal() with one part

    async def set_state(self, incident_id: str, state: IncidentState, now: datetime, *,
                        summary: str | None = None) -> None:
        await self.journal(incident_id, now, state=state, summary=summary)

    async def merge_context(self, incident_id: str, patch: dict[str, Any],
                            now: datetime) -> None:
        await self.journal(incident_id, now, context=patch)

    async def save_step(self, incident_id: str, phase: str, step: StepRecord,
                        now: datetime) -> None:
        await self.journal(incident_id, now, step=(phase, step))

    async def add_evidence(self, incident_id: str, items: Sequence[EvidenceItem], *,
                           keep: int) -> None:
        rows = [(incident_id, ts(item.at), item.kind, item.model_dump_json()) for item in items]

        def run(c: sqlite3.Connection) -> None:
            c.executemany("INSERT INTO evidence(incident_id, at, kind, record) "
                          "VALUES (?,?,?,?)", rows)
            c.execute("DELETE FROM evidence WHERE incident_id=? AND id NOT IN (SELECT id FROM "
                      "evidence WHERE incident_id=? ORDER BY id DESC LIMIT ?)",
                      (incident_id, incident_id, keep))
        await self._write(run)

    async def list_evidence(self, incident_id: str) -> list[EvidenceItem]:
        def run(c: sqlite3.Connection) -> list[EvidenceItem]:
            return [EvidenceItem.model_validate_json(r[0]) for r in c.execute(
                "SELECT record FROM evidence WHERE incident_id=? ORDER BY id", (incident_id,))]
        return await self._read(run)

    async def add_timeline(self, incident_id: str, entry: TimelineEntry) -> None:
        await self.journal(incident_id, entry.at, timeline=(entry,))

    async def journal(self, incident_id: str, now: datetime, *,
                      step: tuple[str, StepRecord] | None = None,
                      context: dict[str, Any] | None = None,
                      state: IncidentState | None = None, summary: str | None = None,
                      timeline: Sequence[TimelineEntry] = ()) -> None:
        """The one write behind set_state, save_step and the others too: the step,
        the context patch, the state and the timeline entries given, in one transaction."""
        now_ts = ts(now)
        step_args = None
        if step is not None:
            phase, rec = step
            step_args = (incident_id, phase, rec.index, rec.status.value, rec.journal_json(),
                         int(rec.intends_change),
                         now_ts if rec.intent else None, now_ts)
        closed = now_ts if state is not None and state.closed else None
        entries = [(incident_id, ts(e.at), e.kind, e.message, _JSON.encode(e.data))
                   for e in timeline]

        def run(c: sqlite3.Connection) -> None:
            # the step, the context, the state, then the timeline
            if step_args is not None:
                c.execute(_SAVE_STEP_SQL, step_args)
            if context is not None:
                row = c.execute("SELECT context FROM incidents WHERE id=?",
                                (incident_id,)).fetchone()
                merged = json.loads(row[0]) if row else {}
                merged.update(context)
                c.execute("UPDATE incidents SET context=?, updated_at=? WHERE id=?",
                          (json.dumps(merged, default=str), now_ts, incident_id))
            if state is not None:
                c.execute("UPDATE incidents SET state=?, updated_at=?, "
                          "closed_at=COALESCE(?, closed_at), summary=COALESCE(?, summary) "
                          "WHERE id=?", (state.value, now_ts, closed, summary, incident_id))
                if not state.active:
                    c.execute("DELETE FROM target_locks WHERE incident_id=?", (incident_id,))
            elif step_args is not None and context is None:
                c.execute("UPDATE incidents SET updated_at=? WHERE id=?", (now_ts, incident_id))
            if entries:
                c.executemany("INSERT INTO timeline(incident_id, at, kind, message, data) "
                              "VALUES (?,?,?,?,?)", entries)
        await self._write(run)

    # the one-part methods above call it by this name, so that a wrapper put on an
    # instance's journal() (the store-traffic tests count calls) sees only its own callers

    def journal_poll(self, incident_id: str, now: datetime, *, phase: str, step: int,
                     number: int, poll: VerifyPoll) -> asyncio.Future[None]:
        if self._polls is None:
            self._polls = Gathered(self._write_polls, POLL_GATHER)
        # the first poll stays; of the others, the latest POLLS_KEPT - 1 (in turn)
        return self._polls.add((incident_id, phase, step, poll_slot(number), number,
                                poll.model_dump_json(), ts(now)))

    async def _write_polls(self, rows: list[PollRow]) -> None:
        def run(c: sqlite3.Connection) -> None:
            c.executemany(_POLL_SQL, [r[:6] for r in rows])
            c.executemany("UPDATE incidents SET updated_at=? WHERE id=?",
                          [(r[6], r[0]) for r in rows])
        await self._write(run)

    async def restart_ladder(self, incident_id: str, now: datetime,
                             entry: TimelineEntry) -> bool:
        now_ts = ts(now)

        def run(c: sqlite3.Connection) -> bool:
            cur = c.execute("UPDATE incidents SET state='remediating', closed_at=NULL, "
                            "updated_at=?, context=json_remove(context, '$.escalation') "
                            "WHERE id=? AND state='escalated'", (now_ts, incident_id))
            if cur.rowcount != 1:
                return False
            tries = c.execute("SELECT count(DISTINCT phase) FROM steps WHERE incident_id=? "
                              "AND phase LIKE 'ladder@%'", (incident_id,)).fetchone()[0]
            for table in ("steps", "verify_polls"):
                c.execute(f"UPDATE {table} SET phase = phase || '@' || ? WHERE incident_id=? "
                          "AND phase IN ('ladder', 'escalate')", (int(tries) + 1, incident_id))
            c.execute("INSERT INTO timeline(incident_id, at, kind, message, data) "
                      "VALUES (?,?,?,?,?)", (incident_id, ts(entry.at), entry.kind,
                                             entry.message, _JSON.encode(entry.data)))
            return True
        return await self._write(run)

    async def close_by_hand(self, incident_id: str, now: datetime, summary: str,
                            entry: TimelineEntry) -> bool:
        now_ts = ts(now)

        def run(c: sqlite3.Connection) -> bool:
            cur = c.execute("UPDATE incidents SET state='resolved', closed_at=?, updated_at=?, "
                            "summary=? WHERE id=? AND state='escalated'",
                            (now_ts, now_ts, summary, incident_id))
            if cur.rowcount != 1:
                return False
            c.execute("DELETE FROM target_locks WHERE incident_id=?", (incident_id,))
            c.execute("INSERT INTO timeline(incident_id, at, kind, message, data) "
                      "VALUES (?,?,?,?,?)", (incident_id, ts(entry.at), entry.kind,
                                             entry.message, _JSON.encode(entry.data)))
            return True
        return await self._write(run)

    async def timeline_after(self, after: int, limit: int
                             ) -> list[tuple[int, str, TimelineEntry]]:
        return await self._read(lambda c: [
            (int(t["id"]), t["incident_id"],
             TimelineEntry(at=dt(t["at"]), kind=t["kind"], message=t["message"],
                           data=json.loads(t["data"])))
            for t in c.execute("SELECT * FROM timeline WHERE id > ? ORDER BY id LIMIT ?",
                               (after, limit))])

    async def last_timeline_id(self) -> int:
        return await self._read(lambda c: int(c.execute(
            "SELECT coalesce(max(id), 0) FROM timeline").fetchone()[0]))

    async def count_by_state(self) -> dict[str, int]:
        return await self._read(lambda c: {r[0]: int(r[1]) for r in c.execute(
            "SELECT state, count(*) FROM incidents GROUP BY state")})

    async def last_steps(self, incident_ids: Sequence[str]) -> dict[str, StepRecord]:
        if not incident_ids:
            return {}
        in_ids = marks(incident_ids)
        return await self._read(lambda c: {r[0]: StepRecord.model_validate_json(r[1]) for r in
                                           c.execute(
            f"SELECT incident_id, record FROM steps WHERE incident_id IN ({in_ids}) "
            "AND phase='ladder' ORDER BY incident_id, idx", list(incident_ids))})

    async def list_alerts(self, *, outcome: str | None = None,
                          limit: int = 100) -> list[dict[str, Any]]:
        def run(c: sqlite3.Connection) -> list[dict[str, Any]]:
            if outcome:
                rows = c.execute("SELECT * FROM alerts WHERE outcome=? ORDER BY id DESC LIMIT ?",
                                 (outcome, limit))
            else:
                rows = c.execute("SELECT * FROM alerts ORDER BY id DESC LIMIT ?", (limit,))
            return [_alert_dict(r) for r in rows.fetchall()]
        return await self._read(run)

    # --- guards ------------------------------------------------------------------


_JSON = json.JSONEncoder(default=str)      # json.dumps(..., default=str), built once
_SAVE_STEP_SQL = (
    "INSERT INTO steps(incident_id, phase, idx, status, record, mutating, intent_at, "
    "updated_at) VALUES (?,?,?,?,?,?,?,?) ON CONFLICT(incident_id, phase, idx) DO UPDATE SET "
    "status=excluded.status, record=excluded.record, mutating=excluded.mutating, "
    "intent_at=COALESCE(steps.intent_at, excluded.intent_at), updated_at=excluded.updated_at")



# ports.store.search_hay in SQL: id key playbook str(target) summary state
_T = "json_extract(target, '$.{}')"
_TARGET = (f"CASE WHEN coalesce(target, '') = '' THEN '' ELSE {_T.format('kind')} || ' ' || "
           f"CASE WHEN coalesce({_T.format('namespace')}, '') != '' "
           f"THEN {_T.format('namespace')} || '/' ELSE '' END || "
           f"coalesce({_T.format('name')}, '') || "
           f"CASE WHEN coalesce({_T.format('cluster')}, '') != '' "
           f"THEN ' in cluster ' || {_T.format('cluster')} ELSE '' END END")
_HAY = (f"id || ' ' || key || ' ' || playbook || ' ' || {_TARGET} || ' ' || "
        "coalesce(summary, '') || ' ' || state")
_POLL_SQL = ("INSERT INTO verify_polls(incident_id, phase, idx, slot, n, record) "
             "VALUES (?,?,?,?,?,?) ON CONFLICT (incident_id, phase, idx, slot) DO UPDATE SET "
             "n=excluded.n, record=excluded.record")
_SUMMARY_COLUMNS = ("id, key, playbook, target, state, dry_run, created_at, updated_at, "
                    "closed_at, first_alert_at, summary")


def _summary(row: sqlite3.Row, alert_count: int, firing_count: int) -> IncidentSummary:
    return IncidentSummary(
        id=row["id"], key=row["key"], playbook=row["playbook"],
        target=TargetRef.model_validate_json(row["target"]) if row["target"] else None,
        state=IncidentState(row["state"]), dry_run=bool(row["dry_run"]),
        created_at=datetime.fromisoformat(row["created_at"]),         # NOT NULL
        updated_at=datetime.fromisoformat(row["updated_at"]), closed_at=dt(row["closed_at"]),
        first_alert_at=dt(row["first_alert_at"]), alert_count=alert_count,
        firing_count=firing_count, summary=row["summary"])


def _alert_dict(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "fingerprint": row["fingerprint"], "status": row["status"],
        "startsAt": row["starts_at"], "endsAt": row["ends_at"],
        "labels": json.loads(row["labels"]), "annotations": json.loads(row["annotations"]),
        "generatorURL": row["generator_url"], "receivedAt": row["received_at"],
        "outcome": row["outcome"],
    }

