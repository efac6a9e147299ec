"""PostgreSQL intake: one group-commit batch of ``ingest`` calls, decided with the
same rules as the SQLite store's ``_ingest_one``.

``bulk`` runs the whole batch in a constant number of statements (set-based, in
batch order); ``call_by_call`` is the fallback that runs each call in its own
savepoint, so that one caller's bad data fails only that caller. Both run inside
the transaction ``PostgresStore`` opens; races with other replicas are settled by
the unique constraints (``INSERT … ON CONFLICT`` and a re-read).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from remediator.store.base import IngestItem, IngestOutcome, Routing
from remediator.store.pg_schema import OPEN_STATES

Conn = Any   # asyncpg.Connection (untyped library)
_OPEN = list(OPEN_STATES)
# Errors after which a transaction is simply run again: another replica got in the way.
RETRYABLE = (asyncpg.exceptions.DeadlockDetectedError, asyncpg.exceptions.SerializationError,
             asyncpg.exceptions.UniqueViolationError)
ATTEMPTS = 10     # re-reads after losing a race, before giving the batch up


def sql_in(values: tuple[str, ...]) -> str:
    """A SQL list literal of fixed, known words (the incident states)."""
    return ",".join(f"'{v}'" for v in values)


class PgIntake:
    def __init__(self, ids: Callable[[], str]) -> None:
        self._ids = ids

    async def bulk(self, c: Conn, batch: list[tuple[
            list[IngestItem], datetime, asyncio.Future[list[IngestOutcome]]]]
            ) -> list[list[IngestOutcome] | Exception]:
        """Every call of the batch in a constant number of statements, with the outcomes
        of ``_ingest_one`` applied to the items one after the other in batch order.

        Alerts: one read of the episodes that exist, one ``INSERT … ON CONFLICT DO
        NOTHING`` of the new ones (an episode another transaction inserted meanwhile is
        re-read and decided again, as a duplicate or stale), one ``UPDATE`` of the
        resolutions that also reads their open incidents. Incidents: one read (``FOR
        SHARE``) of the open ones by key, one ``INSERT … ON CONFLICT`` of the missing
        ones (a key another transaction opened meanwhile is read again), one ``INSERT``
        of the links.
        """
        flat: list[tuple[IngestItem, datetime]] = [
            (item, now) for items, now, _ in batch for item in items]
        outcomes = await self.items(c, flat)
        results: list[list[IngestOutcome] | Exception] = []
        at = 0
        for items, _, _ in batch:
            results.append(outcomes[at:at + len(items)])
            at += len(items)
        return results

    async def items(self, c: Conn, flat: list[tuple[IngestItem, datetime]]
                            ) -> list[IngestOutcome]:
        if not flat:
            return []
        # --- episodes: (fingerprint, starts_at) as PostgreSQL compares them -------------
        keys: list[tuple[str, datetime]] = []
        index: dict[tuple[str, datetime], int] = {}
        members: list[list[int]] = []          # per episode, its items in batch order
        for i, (item, _) in enumerate(flat):
            a = item.alert
            k = (a.fingerprint, a.starts_at.astimezone(UTC))   # as asyncpg sends it
            j = index.get(k)
            if j is None:
                j = index[k] = len(keys)
                keys.append(k)
                members.append([])
            members[j].append(i)

        kinds: list[str] = [""] * len(flat)
        alert_id: dict[int, int] = {}          # episode -> alerts.id
        resolving: dict[int, int] = {}         # episode -> the item resolving its row

        def plan(j: int, row: tuple[int, str] | None) -> int | None:
            """Decide the items of episode ``j`` given its row (None: absent); return
            the item whose alert must be inserted, if any."""
            status = row[1] if row is not None else None
            insert: int | None = None
            resolving.pop(j, None)
            for i in members[j]:
                item = flat[i][0]
                if item.alert.status == "resolved":
                    if status is None:
                        insert, kinds[i] = i, "resolved"
                    elif status == "resolved":
                        kinds[i] = "duplicate"
                    else:
                        resolving[j], kinds[i] = i, "resolved"
                    status = "resolved"
                elif status is None:
                    insert, kinds[i] = i, ("new" if item.routes else "unmatched")
                    status = "firing"
                else:
                    kinds[i] = "duplicate" if status == "firing" else "stale"
            if row is not None:
                alert_id[j] = row[0]
            return insert

        async def read(js: list[int]) -> dict[int, tuple[int, str]]:
            rows = await c.fetch(
                "SELECT a.id, a.fingerprint, a.starts_at, a.status "
                "FROM unnest($1::text[], $2::timestamptz[]) AS k(fp, st) "
                "JOIN alerts a ON a.fingerprint = k.fp AND a.starts_at = k.st",
                [keys[j][0] for j in js], [keys[j][1] for j in js])
            return {index[(r["fingerprint"], r["starts_at"])]: (r["id"], r["status"])
                    for r in rows}

        pending = list(range(len(keys)))
        rows = await read(pending)
        for _ in range(ATTEMPTS):
            inserts = sorted(((j, ins) for j in pending
                              if (ins := plan(j, rows.get(j))) is not None),
                             key=lambda ji: keys[ji[0]])
            if not inserts:
                break
            alerts = [flat[i][0].alert for _, i in inserts]
            got = await c.fetch(
                "INSERT INTO alerts(fingerprint, starts_at, ends_at, status, labels, "
                "annotations, generator_url, received_at, updated_at, outcome) "
                "SELECT fp, st, en, status, labels::jsonb, annotations::jsonb, url, now, now, "
                "outcome FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[], "
                "$4::text[], $5::text[], $6::text[], $7::text[], $8::timestamptz[], "
                "$9::text[]) AS v(fp, st, en, status, labels, annotations, url, now, outcome) "
                "ON CONFLICT (fingerprint, starts_at) DO NOTHING "
                "RETURNING id, fingerprint, starts_at",
                [keys[j][0] for j, _ in inserts], [keys[j][1] for j, _ in inserts],
                [a.ends_at if a.status == "resolved" else None for a in alerts],
                ["resolved" if a.status == "resolved" else "firing" for a in alerts],
                [json.dumps(a.labels) for a in alerts],
                [json.dumps(a.annotations) for a in alerts],
                [a.generator_url for a in alerts], [flat[i][1] for _, i in inserts],
                [kinds[i] for _, i in inserts])
            for r in got:
                alert_id[index[(r["fingerprint"], r["starts_at"])]] = r["id"]
            # inserted meanwhile by another transaction: decide those episodes again
            pending = [j for j, _ in inserts if j not in alert_id]
            if not pending:
                break
            rows = await read(pending)
        else:
            raise RuntimeError("could not insert or read the alerts of the batch")

        # --- incidents of the new alerts, by key, in batch order ------------------------
        first: dict[str, tuple[Routing, int]] = {}    # key -> the route that may open it
        for i, (item, _) in enumerate(flat):
            if kinds[i] == "new":
                for route in item.routes:
                    first.setdefault(route.incident_key, (route, i))
        incident_of: dict[str, str] = {}
        opened: set[str] = set()
        wanted = sorted(first)
        for _ in range(ATTEMPTS):
            if not wanted:
                break
            # the open incidents, locked against closing until we commit
            for r in await c.fetch(
                    "SELECT key, id FROM incidents WHERE key = ANY($1::text[]) "
                    "AND state = ANY($2::text[]) ORDER BY key FOR SHARE", wanted, _OPEN):
                incident_of[r["key"]] = r["id"]
            missing = [k for k in wanted if k not in incident_of]
            if not missing:
                break
            routes = [first[k] for k in missing]
            for r in await c.fetch(
                    "INSERT INTO incidents(id, key, playbook, target, state, dry_run, "
                    "created_at, updated_at, first_alert_at, context, notify, summary) "
                    "SELECT id, key, playbook, target, 'open', dry_run, now, now, first_at, "
                    "context::jsonb, notify::jsonb, '' FROM unnest($1::text[], $2::text[], "
                    "$3::text[], $4::text[], $5::boolean[], $6::timestamptz[], "
                    "$7::timestamptz[], $8::text[], $9::text[]) "
                    "AS v(id, key, playbook, target, dry_run, now, first_at, context, notify) "
                    f"ON CONFLICT (key) WHERE state IN ({sql_in(OPEN_STATES)}) DO NOTHING "
                    "RETURNING key, id",
                    [self._ids() for _ in routes], missing, [r.playbook for r, _ in routes],
                    [r.target.model_dump_json() if r.target else None for r, _ in routes],
                    [r.dry_run for r, _ in routes], [flat[i][1] for _, i in routes],
                    [flat[i][0].alert.starts_at for _, i in routes],
                    [json.dumps({"error": r.error} if r.error else {}) for r, _ in routes],
                    [json.dumps(r.notify) for r, _ in routes]):
                incident_of[r["key"]] = r["id"]
                opened.add(r["key"])
            # another transaction opened (or just closed) one: look again
            wanted = [k for k in missing if k not in incident_of]
        if any(k not in incident_of for k in first):
            raise RuntimeError("could not find or create the incidents of the batch")

        out: list[IngestOutcome | None] = [None] * len(flat)
        links: set[tuple[str, int]] = set()
        credited: set[str] = set()
        for i, (item, _) in enumerate(flat):
            if kinds[i] != "new":
                continue
            aid = alert_id[index[(item.alert.fingerprint, item.alert.starts_at.astimezone(UTC))]]
            ids: list[str] = []
            created: list[str] = []
            for route in item.routes:
                incident_id = incident_of[route.incident_key]
                if route.incident_key in opened and route.incident_key not in credited:
                    credited.add(route.incident_key)
                    created.append(incident_id)
                links.add((incident_id, aid))
                ids.append(incident_id)
            out[i] = IngestOutcome("new", tuple(ids), tuple(created))
        if links:
            pairs = sorted(links)
            await c.execute(
                "INSERT INTO incident_alerts(incident_id, alert_id) "
                "SELECT * FROM unnest($1::text[], $2::bigint[]) ON CONFLICT DO NOTHING",
                [p[0] for p in pairs], [p[1] for p in pairs])

        # --- resolutions of firing alerts, with their open incidents ---------------------
        if resolving:
            res = sorted((alert_id[j], i) for j, i in resolving.items())
            linked = {r["id"]: tuple(r["linked"]) for r in await c.fetch(
                "WITH upd AS (UPDATE alerts a SET status='resolved', ends_at=v.ends_at, "
                "updated_at=v.now FROM unnest($1::bigint[], $2::timestamptz[], "
                "$3::timestamptz[]) AS v(id, ends_at, now) "
                "WHERE a.id = v.id AND a.status = 'firing' RETURNING a.id) "
                "SELECT upd.id, ARRAY(SELECT i.id FROM incident_alerts ia "
                "JOIN incidents i ON i.id = ia.incident_id WHERE ia.alert_id = upd.id "
                "AND i.state = ANY($4::text[]) ORDER BY i.id) AS linked FROM upd",
                [aid for aid, _ in res], [flat[i][0].alert.ends_at for _, i in res],
                [flat[i][1] for _, i in res], _OPEN)}
            for aid, i in res:
                # resolved meanwhile by another transaction: a duplicate
                out[i] = (IngestOutcome("resolved", linked[aid]) if aid in linked
                          else IngestOutcome("duplicate"))
        return [o if o is not None else IngestOutcome(kinds[i])  # type: ignore[arg-type]
                for i, o in enumerate(out)]

    async def call_by_call(self, c: Conn, batch: list[tuple[
            list[IngestItem], datetime, asyncio.Future[list[IngestOutcome]]]]
            ) -> list[list[IngestOutcome] | Exception]:
        results: list[list[IngestOutcome] | Exception] = []
        for items, now, _ in batch:
            try:
                async with c.transaction():     # a savepoint per call
                    results.append([await self.one(c, item, now) for item in items])
            except RETRYABLE:
                raise                           # the whole batch runs again
            except Exception as exc:
                results.append(exc)
        return results

    async def one(self, c: Conn, item: IngestItem, now: datetime) -> IngestOutcome:
        a = item.alert
        if a.status == "resolved":
            inserted = await c.fetchval(
                "INSERT INTO alerts(fingerprint, starts_at, ends_at, status, labels, annotations,"
                " generator_url, received_at, updated_at, outcome) "
                "VALUES ($1,$2,$3,'resolved',$4,$5,$6,$7,$7,'resolved') "
                "ON CONFLICT (fingerprint, starts_at) DO NOTHING RETURNING id",
                a.fingerprint, a.starts_at, a.ends_at, json.dumps(a.labels),
                json.dumps(a.annotations), a.generator_url, now)
            if inserted is not None:
                return IngestOutcome("resolved")
            alert_id = await c.fetchval(
                "UPDATE alerts SET status='resolved', ends_at=$3, updated_at=$4 "
                "WHERE fingerprint=$1 AND starts_at=$2 AND status='firing' RETURNING id",
                a.fingerprint, a.starts_at, a.ends_at, now)
            if alert_id is None:
                return IngestOutcome("duplicate")
            linked = [r[0] for r in await c.fetch(
                "SELECT i.id FROM incident_alerts ia JOIN incidents i ON i.id = ia.incident_id "
                "WHERE ia.alert_id=$1 AND i.state = ANY($2::text[]) ORDER BY i.id",
                alert_id, _OPEN)]
            return IngestOutcome("resolved", tuple(linked))
        # firing
        outcome = "new" if item.routes else "unmatched"
        alert_id = await c.fetchval(
            "INSERT INTO alerts(fingerprint, starts_at, ends_at, status, labels, annotations, "
            "generator_url, received_at, updated_at, outcome) "
            "VALUES ($1,$2,NULL,'firing',$3,$4,$5,$6,$6,$7) "
            "ON CONFLICT (fingerprint, starts_at) DO NOTHING RETURNING id",
            a.fingerprint, a.starts_at, json.dumps(a.labels), json.dumps(a.annotations),
            a.generator_url, now, outcome)
        if alert_id is None:
            status = await c.fetchval(
                "SELECT status FROM alerts WHERE fingerprint=$1 AND starts_at=$2",
                a.fingerprint, a.starts_at)
            return IngestOutcome("duplicate" if status == "firing" else "stale")
        ids: list[str] = []
        created: list[str] = []
        for route in item.routes:
            incident_id: str | None = None
            for _ in range(ATTEMPTS):
                # the open incident of this key, locked against closing until we commit
                incident_id = await c.fetchval(
                    "SELECT id FROM incidents WHERE key=$1 AND state = ANY($2::text[]) "
                    "FOR SHARE", route.incident_key, _OPEN)
                if incident_id is not None:
                    break
                incident_id = await c.fetchval(
                    "INSERT INTO incidents(id, key, playbook, target, state, dry_run, created_at,"
                    " updated_at, first_alert_at, context, notify, summary) "
                    "VALUES ($1,$2,$3,$4,'open',$5,$6,$6,$7,$8,$9,'') "
                    f"ON CONFLICT (key) WHERE state IN ({sql_in(OPEN_STATES)}) DO NOTHING "
                    "RETURNING id",
                    self._ids(), route.incident_key, route.playbook,
                    route.target.model_dump_json() if route.target else None,
                    route.dry_run, now, a.starts_at,
                    json.dumps({"error": route.error} if route.error else {}),
                    json.dumps(route.notify))
                if incident_id is not None:
                    created.append(incident_id)
                    break
                # another transaction created it (or just closed it): look again
            if incident_id is None:
                raise RuntimeError(f"could not find or create the incident {route.incident_key}")
            await c.execute("INSERT INTO incident_alerts(incident_id, alert_id) VALUES ($1,$2) "
                            "ON CONFLICT DO NOTHING", incident_id, alert_id)
            ids.append(incident_id)
        return IngestOutcome(outcome, tuple(ids), tuple(created))  # type: ignore[arg-type]

