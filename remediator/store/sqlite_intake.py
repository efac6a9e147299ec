"""SQLite's side of the intake plan (``intake.py``): its ops as plain statements.

Each op runs its rows one statement at a time on the writer thread's connection,
inside the group-committed transaction (a statement is a function call here, not a
round trip). Times are ISO text, JSON is text. The measured fast paths: a firing
episode is inserted first (``ON CONFLICT DO NOTHING``) and read only on conflict;
attaching is a look-up plus a plain insert (one ``INSERT … SELECT … RETURNING``
costs more than both). No decisions here: they are the plan's.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from typing import Any

from pydantic_core import to_json

from remediator.model.incident import IncidentState
from remediator.store.intake import NewAlert, NewIncident

_ACTIVE = tuple(s.value for s in IncidentState if s.active)
ACTIVE_SQL = "(" + ",".join(f"'{s}'" for s in _ACTIVE) + ")"
# Open for new alerts to attach: active, or escalated and not yet resolved.
OPEN_SQL = ACTIVE_SQL[:-1] + ",'escalated')"

_INSERT_ALERT_SQL = (
    "INSERT INTO alerts(fingerprint, starts_at, ends_at, status, labels, annotations, "
    "generator_url, received_at, updated_at, outcome) VALUES (?,?,?,?,?,?,?,?,?,?) "
    "ON CONFLICT DO NOTHING")
_EPISODE_SQL = "SELECT id, status FROM alerts WHERE fingerprint=? AND starts_at=?"
_OPEN_INCIDENT_SQL = f"SELECT id FROM incidents WHERE key=? AND state IN {OPEN_SQL}"
_INSERT_INCIDENT_SQL = (
    "INSERT INTO incidents(id, key, playbook, target, state, dry_run, created_at, "
    "updated_at, first_alert_at, context, notify, summary) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)")
_LINK_SQL = "INSERT INTO incident_alerts(incident_id, alert_id) VALUES (?,?)"
_RESOLVE_SQL = ("UPDATE alerts SET status='resolved', ends_at=?, updated_at=? "
                "WHERE id=? AND status='firing'")
_LINKED_SQL = ("SELECT i.id FROM incident_alerts ia JOIN incidents i ON i.id = ia.incident_id "
               f"WHERE ia.alert_id=? AND i.state IN {OPEN_SQL} ORDER BY i.id")


def ts(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


class SqliteOps:
    """The intake ops (``intake.Ops``) on a ``sqlite3`` connection. Labels and
    annotations are encoded by pydantic-core (~7x faster than ``json.dumps`` on a label
    set; ``json.loads`` reads either)."""

    def insert_alerts(self, c: sqlite3.Connection, rows: list[NewAlert]) -> list[int | None]:
        out: list[int | None] = []
        last: datetime | None = None
        now_ts = ""
        for alert, now, status, outcome in rows:
            if now is not last:
                last, now_ts = now, now.isoformat()
            cur = c.execute(_INSERT_ALERT_SQL, (
                alert.fingerprint, alert.starts_at.isoformat(),
                ts(alert.ends_at) if status == "resolved" else None, status,
                to_json(alert.labels).decode(), to_json(alert.annotations).decode(),
                alert.generator_url, now_ts, now_ts, outcome))
            out.append(cur.lastrowid if cur.rowcount == 1 else None)
        return out

    def read_episodes(self, c: sqlite3.Connection, alerts: list[Any]
                      ) -> list[tuple[int, str] | None]:
        out: list[tuple[int, str] | None] = []
        for a in alerts:
            row = c.execute(_EPISODE_SQL, (a.fingerprint, a.starts_at.isoformat())).fetchone()
            out.append((row[0], row[1]) if row is not None else None)
        return out

    def open_incidents(self, c: sqlite3.Connection, keys: list[str]) -> dict[str, str]:
        # one look-up per key: an IN list costs SQLite more (it builds a temporary index)
        found: dict[str, str] = {}
        for key in keys:
            row = c.execute(_OPEN_INCIDENT_SQL, (key,)).fetchone()
            if row is not None:
                found[key] = row[0]
        return found

    def create_incidents(self, c: sqlite3.Connection, rows: list[NewIncident]
                         ) -> dict[str, str]:
        made: dict[str, str] = {}
        for incident_id, route, now, first_at in rows:
            now_ts = now.isoformat()
            c.execute(_INSERT_INCIDENT_SQL, (
                incident_id, route.incident_key, route.playbook,
                route.target.model_dump_json() if route.target else None,
                IncidentState.OPEN.value, int(route.dry_run), now_ts, now_ts,
                first_at.isoformat(), json.dumps({"error": route.error} if route.error else {}),
                json.dumps(route.notify), ""))
            made[route.incident_key] = incident_id
        return made

    def link(self, c: sqlite3.Connection, pairs: list[tuple[str, int]]) -> None:
        c.executemany(_LINK_SQL, pairs)

    def resolve(self, c: sqlite3.Connection, rows: list[tuple[int, datetime | None, datetime]]
                ) -> dict[int, tuple[str, ...]]:
        out: dict[int, tuple[str, ...]] = {}
        for alert_id, ends_at, now in rows:
            if c.execute(_RESOLVE_SQL, (ts(ends_at), now.isoformat(), alert_id)).rowcount:
                out[alert_id] = tuple(r[0] for r in c.execute(_LINKED_SQL, (alert_id,)))
        return out

    def wake(self, c: sqlite3.Connection, incident_ids: list[str]) -> None:
        """Nothing: one process uses the file, and its engine wakes itself."""
