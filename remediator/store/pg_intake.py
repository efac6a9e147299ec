"""PostgreSQL's side of the intake plan (``intake.py``): its ops, one statement each.

Every op sends its rows as arrays (``unnest``): a group-commit batch costs a
constant number of round trips, not one per alert. Rows are sent in a fixed order
(by episode, key or id) so that concurrent replicas take their row locks in the
same order. Races with other replicas are settled by the unique constraints (an
insert that inserts nothing) and the plan's re-reads.

``bulk`` runs a whole batch of ``ingest`` calls as one plan; ``call_by_call`` is the
fallback that runs each call's plan in its own savepoint, so that one caller's bad
data fails only that caller. Both run inside the transaction ``PostgresStore``
opens. No decisions here: they are the plan's.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from remediator.model.records import IngestItem, IngestOutcome
from remediator.store.intake import NewAlert, NewIncident, plan, run_async
from remediator.store.pg_base import OPEN_STATES, RETRYABLE, sql_in

Conn = Any   # asyncpg.Connection (untyped library)
Batch = list[tuple[list[IngestItem], datetime, asyncio.Future[list[IngestOutcome]]]]
_OPEN = list(OPEN_STATES)

_INSERT_ALERTS_SQL = (
    "INSERT INTO alerts(fingerprint, starts_at, ends_at, status, labels, "
    "annotations, generator_url, received_at, updated_at, outcome) "
    "SELECT fp, st, en, status, labels::jsonb, annotations::jsonb, url, now, now, "
    "outcome FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[], "
    "$4::text[], $5::text[], $6::text[], $7::text[], $8::timestamptz[], "
    "$9::text[]) AS v(fp, st, en, status, labels, annotations, url, now, outcome) "
    "ON CONFLICT (fingerprint, starts_at) DO NOTHING "
    "RETURNING id, fingerprint, starts_at")
_READ_EPISODES_SQL = (
    "SELECT k.n, a.id, a.status FROM unnest($1::text[], $2::timestamptz[]) "
    "WITH ORDINALITY AS k(fp, st, n) "
    "JOIN alerts a ON a.fingerprint = k.fp AND a.starts_at = k.st")
_OPEN_INCIDENTS_SQL = (
    "SELECT key, id FROM incidents WHERE key = ANY($1::text[]) "
    "AND state = ANY($2::text[]) ORDER BY key FOR SHARE")
_CREATE_INCIDENTS_SQL = (
    "INSERT INTO incidents(id, key, playbook, target, state, dry_run, "
    "created_at, updated_at, first_alert_at, context, notify, summary) "
    "SELECT id, key, playbook, target, 'open', dry_run, now, now, first_at, "
    "context::jsonb, notify::jsonb, '' FROM unnest($1::text[], $2::text[], "
    "$3::text[], $4::text[], $5::boolean[], $6::timestamptz[], "
    "$7::timestamptz[], $8::text[], $9::text[]) "
    "AS v(id, key, playbook, target, dry_run, now, first_at, context, notify) "
    f"ON CONFLICT (key) WHERE state IN ({sql_in(OPEN_STATES)}) DO NOTHING "
    "RETURNING key, id")
_LINK_SQL = ("INSERT INTO incident_alerts(incident_id, alert_id) "
             "SELECT * FROM unnest($1::text[], $2::bigint[]) ON CONFLICT DO NOTHING")
_RESOLVE_SQL = (
    "WITH upd AS (UPDATE alerts a SET status='resolved', ends_at=v.ends_at, "
    "updated_at=v.now FROM unnest($1::bigint[], $2::timestamptz[], "
    "$3::timestamptz[]) AS v(id, ends_at, now) "
    "WHERE a.id = v.id AND a.status = 'firing' RETURNING a.id) "
    "SELECT upd.id, ARRAY(SELECT i.id FROM incident_alerts ia "
    "JOIN incidents i ON i.id = ia.incident_id WHERE ia.alert_id = upd.id "
    "AND i.state = ANY($4::text[]) ORDER BY i.id) AS linked FROM upd")
WAKE_SQL = "SELECT pg_notify($1, i) FROM unnest($2::text[]) AS i"


class PgOps:
    """The intake ops (``intake.Ops``) on an asyncpg connection; ``channel`` is where
    ``wake`` notifies."""

    def __init__(self, channel: str) -> None:
        self.channel = channel

    async def insert_alerts(self, c: Conn, rows: list[NewAlert]) -> list[int | None]:
        order = sorted(rows, key=lambda r: (r[0].fingerprint, r[0].starts_at))
        alerts = [r[0] for r in order]
        got = await c.fetch(
            _INSERT_ALERTS_SQL, [a.fingerprint for a in alerts], [a.starts_at for a in alerts],
            [a.ends_at if status == "resolved" else None for a, _, status, _ in order],
            [r[2] for r in order], [json.dumps(a.labels) for a in alerts],
            [json.dumps(a.annotations) for a in alerts], [a.generator_url for a in alerts],
            [r[1] for r in order], [r[3] for r in order])
        ids = {(r["fingerprint"], r["starts_at"].astimezone(UTC)): r["id"] for r in got}
        return [ids.get((a.fingerprint, a.starts_at.astimezone(UTC))) for a, _, _, _ in rows]

    async def read_episodes(self, c: Conn, alerts: list[Any]
                            ) -> list[tuple[int, str] | None]:
        out: list[tuple[int, str] | None] = [None] * len(alerts)
        for r in await c.fetch(_READ_EPISODES_SQL, [a.fingerprint for a in alerts],
                               [a.starts_at for a in alerts]):
            out[r["n"] - 1] = (r["id"], r["status"])
        return out

    async def open_incidents(self, c: Conn, keys: list[str]) -> dict[str, str]:
        return {r["key"]: r["id"]
                for r in await c.fetch(_OPEN_INCIDENTS_SQL, sorted(keys), _OPEN)}

    async def create_incidents(self, c: Conn, rows: list[NewIncident]) -> dict[str, str]:
        order = sorted(rows, key=lambda r: r.route.incident_key)
        routes = [r.route for r in order]
        return {r["key"]: r["id"] for r in await c.fetch(
            _CREATE_INCIDENTS_SQL, [r.id for r in order], [r.incident_key for r in routes],
            [r.playbook for r in routes],
            [r.target.model_dump_json() if r.target else None for r in routes],
            [r.dry_run for r in routes], [r.now for r in order],
            [r.first_alert_at for r in order],
            [json.dumps({"error": r.error} if r.error else {}) for r in routes],
            [json.dumps(r.notify) for r in routes])}

    async def link(self, c: Conn, pairs: list[tuple[str, int]]) -> None:
        pairs = sorted(pairs)
        await c.execute(_LINK_SQL, [p[0] for p in pairs], [p[1] for p in pairs])

    async def resolve(self, c: Conn, rows: list[tuple[int, datetime | None, datetime]]
                      ) -> dict[int, tuple[str, ...]]:
        rows = sorted(rows, key=lambda r: r[0])
        return {r["id"]: tuple(r["linked"]) for r in await c.fetch(
            _RESOLVE_SQL, [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows],
            _OPEN)}

    async def wake(self, c: Conn, incident_ids: list[str]) -> None:
        await c.execute(WAKE_SQL, self.channel, sorted(incident_ids))


class PgIntake:
    def __init__(self, ids: Callable[[], str], channel: str) -> None:
        self._ids = ids
        self.ops = PgOps(channel)

    async def bulk(self, c: Conn, batch: Batch) -> list[list[IngestOutcome] | Exception]:
        """Every call of the batch as one plan (a constant number of statements), its
        items decided one after the other in batch order."""
        flat = [(item, now) for items, now, _ in batch for item in items]
        outcomes = (await run_async(self.ops, c, plan(flat, self._ids, insert_first=False))
                    if flat else [])
        results: list[list[IngestOutcome] | Exception] = []
        at = 0
        for items, _, _ in batch:
            results.append(outcomes[at:at + len(items)])
            at += len(items)
        return results

    async def call_by_call(self, c: Conn, batch: Batch) -> list[list[IngestOutcome] | Exception]:
        results: list[list[IngestOutcome] | Exception] = []
        for items, now, _ in batch:
            try:
                async with c.transaction():     # a savepoint per call
                    results.append(await run_async(
                        self.ops, c, plan([(item, now) for item in items], self._ids,
                                                 insert_first=False)))
            except RETRYABLE:
                raise                           # the whole batch runs again
            except Exception as exc:
                results.append(exc)
        return results
