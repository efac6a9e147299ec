"""The PostgreSQL store's machinery: the pool, transactions with retries, opening
(migrations under an advisory lock) and closing, and the wake-up channel.

Shared constants live here too: the advisory lock keys, the open incident states,
the errors after which a transaction is simply run again. No role queries here
(``pg_queries.py``, ``pg_guards.py``, intake in ``postgres.py`` and ``pg_intake.py``);
the listening connection itself is ``pg_listen.py``.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg  # type: ignore[import-untyped]

from remediator.store.gather import Gathered
from remediator.store.migrations import migrate_postgres
from remediator.store.pg_listen import Listener
from remediator.store.sqlite_base import new_incident_id

log = logging.getLogger("remediator.store")

T = TypeVar("T")
Conn = Any   # asyncpg.Connection (untyped library)

MIGRATION_LOCK = 0x72656D6564690001     # "remedi" + 1: serializes migrations
BUDGET_LOCK = 0x72656D6564690002        # serializes reserve_action (the global budget)
PRUNE_LOCK = 0x72656D6564690003         # held by the one replica running a retention pass
# States an incident can be attached to by a new alert (a partial unique index keeps
# one per key): the active ones and escalated. Must match IncidentState.
OPEN_STATES = ("open", "remediating", "awaiting_approval", "escalated")
# Errors after which a transaction is simply run again: another replica got in the way.
RETRYABLE = (asyncpg.exceptions.DeadlockDetectedError, asyncpg.exceptions.SerializationError,
             asyncpg.exceptions.UniqueViolationError)
ATTEMPTS = 10     # runs of a transaction that another one keeps getting in the way of


def sql_in(values: tuple[str, ...]) -> str:
    """A SQL list literal of fixed, known words (the incident states)."""
    return ",".join(f"'{v}'" for v in values)


def wake_channel(schema: str) -> str:
    """The NOTIFY channel of the store in ``schema``: channels are per database, so
    stores in other schemas of it (the tests') must not hear each other."""
    name = "remediator_wake" if schema == "public" else f"remediator_wake_{schema}"
    return name[:63]


async def _no_session_state(connection: Any) -> None:
    """The pool's reset when a connection comes back. asyncpg's default runs
    ``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`` — a second round trip
    for every query. This store leaves no session state behind on pooled connections:
    its advisory locks are transaction-scoped, it opens no cursors outside transactions,
    SETs nothing, and listens only on its own dedicated connection (``pg_listen``)."""


class PgBase:
    """The pool and transactions the role methods run on."""

    def __init__(self, url: str, *, min_size: int = 2, max_size: int = 10,
                 ids: Callable[[], str] = new_incident_id,
                 connect_timeout: float = 30.0) -> None:
        self.url = url
        self.min_size = min_size
        self.max_size = max_size
        self.connect_timeout = connect_timeout
        self._ids = ids
        self._pool: Any = None
        self._polls: Gathered[Any] | None = None     # made by journal_poll
        self._closed = False
        self.channel = wake_channel("public")
        self._listener = Listener(url)

    @property
    def listening(self) -> asyncio.Event:
        """Set while the wake-up channel is listened to (``watch``)."""
        return self._listener.ready

    async def open(self) -> None:
        deadline = asyncio.get_running_loop().time() + self.connect_timeout
        while True:
            try:
                self._pool = await asyncpg.create_pool(
                    self.url, min_size=self.min_size, max_size=self.max_size,
                    command_timeout=60, server_settings={"application_name": "remediator"},
                    reset=_no_session_state)
                break
            except (OSError, asyncpg.exceptions.CannotConnectNowError,
                    asyncpg.exceptions.TooManyConnectionsError) as exc:
                if asyncio.get_running_loop().time() > deadline:
                    raise
                log.warning("PostgreSQL not reachable yet (%s); retrying", exc)
                await asyncio.sleep(1.0)
        async with self._pool.acquire() as conn:
            await migrate_postgres(conn, MIGRATION_LOCK)
            self.channel = wake_channel(str(await conn.fetchval("SELECT current_schema()")))
        self._listener.open(self.channel)

    async def close(self) -> None:
        self._closed = True
        await self._listener.close()
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def _tx(self, fn: Callable[[Conn], Awaitable[T]]) -> T:
        """Run ``fn`` in one transaction, again when a concurrent one got in the way."""
        if self._closed or self._pool is None:
            raise RuntimeError("store is closed")
        for attempt in range(ATTEMPTS):
            try:
                async with self._pool.acquire() as conn, conn.transaction():
                    return await fn(conn)
            except RETRYABLE:
                if attempt == ATTEMPTS - 1:
                    raise
                await asyncio.sleep(random.uniform(0.001, 0.01) * (attempt + 1))
        raise AssertionError("unreachable")

    async def _fetch(self, sql: str, *args: Any) -> list[Any]:
        if self._pool is None:
            raise RuntimeError("store is closed")
        return list(await self._pool.fetch(sql, *args))

    async def _fetchval(self, sql: str, *args: Any) -> Any:
        if self._pool is None:
            raise RuntimeError("store is closed")
        return await self._pool.fetchval(sql, *args)

    async def _execute(self, sql: str, *args: Any) -> str:
        if self._closed or self._pool is None:
            raise RuntimeError("store is closed")
        return str(await self._pool.execute(sql, *args))

    async def ping(self) -> None:
        await self._fetchval("SELECT 1")

    def watch(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(incident_id)`` on every wake-up notified on this store's
        channel (by any replica's ingest or approval decision, this one's included).
        Listens on a dedicated connection from ``open`` (or now, if open already) to
        ``close``, reconnecting if it drops; wake-ups sent while it is down are lost
        (the engine's own timers remain the fallback)."""
        self._listener.add(callback)
