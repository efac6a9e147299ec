"""The store's schema: numbered steps, one scheme for both backends, and their runner.

Each step (``vNNNN_name.py``) holds its SQLite and its PostgreSQL SQL (None: nothing
to do on that backend). ``schema_version`` records every step applied (version, name,
when); ``open()`` applies the missing ones in order, in one transaction: SQLite on
the writer connection (``migrate_sqlite``), PostgreSQL under
``pg_advisory_xact_lock`` (``migrate_postgres``), so that replicas starting at once
wait for each other instead of racing on the catalog. Append steps; never edit a
released one.

Databases made before versions were recorded are adopted: their layout tells which
steps they have (SQLite: the ``incidents`` table and its ``owner`` column;
PostgreSQL: its own ``schema_migrations`` table, where 1 included the leases and 2
added ``sink_leases``). The first step (idempotent) is run again over them, as every
start used to, and the steps they have are recorded without running.

Not here: the connections and transactions' retries (the stores).
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass
from typing import Any

from remediator.store.migrations import (
    v0001_initial,
    v0002_incident_leases,
    v0003_sink_leases,
    v0004_retention,
    v0005_incident_pages,
    v0006_chain_timers,
    v0007_evidence,
    v0008_budget_clusters,
    v0009_verify_polls,
    v0010_poll_slots,
)

log = logging.getLogger("remediator.store")


@dataclass(frozen=True)
class Step:
    version: int
    name: str
    sqlite: str | None
    postgres: str | None


STEPS = [Step(n, m.NAME, m.SQLITE, m.POSTGRES) for n, m in enumerate(
    (v0001_initial, v0002_incident_leases, v0003_sink_leases, v0004_retention,
     v0005_incident_pages, v0006_chain_timers, v0007_evidence, v0008_budget_clusters,
     v0009_verify_polls, v0010_poll_slots), start=1)]
LATEST = STEPS[-1].version

_SQLITE_TABLE = ("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, "
                 "name TEXT NOT NULL, applied_at TEXT NOT NULL DEFAULT "
                 "(strftime('%Y-%m-%dT%H:%M:%fZ', 'now')))")
_PG_TABLE = ("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, "
             "name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
# PostgreSQL databases of the first releases: their schema_migrations version -> ours
_PG_LEGACY = {1: 2, 2: 3}


def statements(script: str) -> list[str]:
    """A SQLite script cut into statements (``executescript`` would commit)."""
    out: list[str] = []
    current = ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            out.append(current.strip())
            current = ""
    if current.strip():
        out.append(current.strip())
    return out


def _sqlite_legacy(conn: sqlite3.Connection) -> int:
    """The steps a file made before ``schema_version`` has, by its layout."""
    columns = {r[1] for r in conn.execute("PRAGMA table_info(incidents)")}
    if not columns:
        return 0
    return 2 if "owner" in columns else 1


def _sqlite_version(conn: sqlite3.Connection) -> int:
    tracked = conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' "
                           "AND name='schema_version'").fetchone()
    if tracked:
        return int(conn.execute("SELECT coalesce(max(version), 0) FROM schema_version")
                   .fetchone()[0])
    legacy = _sqlite_legacy(conn)
    conn.execute(_SQLITE_TABLE)
    if legacy:
        for stmt in statements(STEPS[0].sqlite or ""):
            conn.execute(stmt)
        conn.executemany("INSERT INTO schema_version(version, name) VALUES (?, ?)",
                         [(s.version, s.name) for s in STEPS[:legacy]])
        log.info("store: adopted a SQLite file made before schema versions, at %d", legacy)
    return legacy


def _newer(have: int) -> None:
    if have > LATEST:
        log.warning("store: the schema is at version %d, newer than this release's %d",
                    have, LATEST)


def migrate_sqlite(conn: sqlite3.Connection) -> list[int]:
    """Bring the file to ``LATEST`` in one transaction; the versions applied."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        have = _sqlite_version(conn)
        _newer(have)
        applied = []
        for step in STEPS[have:]:
            for stmt in statements(step.sqlite or ""):
                conn.execute(stmt)
            conn.execute("INSERT INTO schema_version(version, name) VALUES (?, ?)",
                         (step.version, step.name))
            applied.append(step.version)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    for version in applied:
        log.info("applied store migration %04d", version)
    return applied


async def _pg_version(conn: Any) -> int:
    tables = {r[0] for r in await conn.fetch(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = "
        "current_schema() AND table_name IN ('schema_version', 'schema_migrations')")}
    if "schema_version" in tables:
        return int(await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_version"))
    await conn.execute(_PG_TABLE)
    if "schema_migrations" not in tables:
        return 0
    old = await conn.fetchval("SELECT max(version) FROM schema_migrations")
    legacy = _PG_LEGACY.get(int(old or 0), 0)
    if legacy:
        await conn.execute(STEPS[0].postgres)
        await conn.executemany("INSERT INTO schema_version(version, name) VALUES ($1, $2)",
                               [(s.version, s.name) for s in STEPS[:legacy]])
        log.info("store: adopted a PostgreSQL schema made before schema versions, at %d",
                 legacy)
    return legacy


async def migrate_postgres(conn: Any, lock: int) -> list[int]:
    """Bring the database to ``LATEST`` in one transaction under the advisory lock
    ``lock``; the versions applied."""
    applied = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", lock)
        have = await _pg_version(conn)
        _newer(have)
        for step in STEPS[have:]:
            if step.postgres:
                await conn.execute(step.postgres)
            await conn.execute("INSERT INTO schema_version(version, name) VALUES ($1, $2)",
                               step.version, step.name)
            applied.append(step.version)
    for version in applied:
        log.info("applied store migration %04d", version)
    return applied
